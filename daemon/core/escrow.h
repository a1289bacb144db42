/* escrow.h — escrow officer keys (X25519) and sealed boxes carrying the vault secret or a share of it. Pure: no I/O. */
#ifndef TS_ESCROW_H
#define TS_ESCROW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define TS_ESCROW_PUBLIC_BYTES 32          /* crypto_box_PUBLICKEYBYTES */
#define TS_ESCROW_SECRET_BYTES 32          /* crypto_box_SECRETKEYBYTES */
#define TS_ESCROW_SEAL_OVERHEAD 48         /* crypto_box_SEALBYTES: ephemeral public key + tag */
#define TS_ESCROW_FINGERPRINT_BYTES 16
#define TS_ESCROW_PUB_PREFIX "tokenseal-escrow-pub:v1:"
#define TS_ESCROW_SEC_PREFIX "tokenseal-escrow-sec:v1:"
/* Text forms: prefix + 43 base64url characters (no padding) + NUL. */
#define TS_ESCROW_PUB_TEXT_BYTES (sizeof(TS_ESCROW_PUB_PREFIX) - 1 + 43 + 1)
#define TS_ESCROW_SEC_TEXT_BYTES (sizeof(TS_ESCROW_SEC_PREFIX) - 1 + 43 + 1)
/* Fingerprint text: 8 groups of 4 lower-case hex digits joined by ':' + NUL. */
#define TS_ESCROW_FINGERPRINT_TEXT_BYTES 40
/* The largest message an escrow box carries (a share of a 32-byte secret plus framing). */
#define TS_ESCROW_MESSAGE_MAX 256

/*
 * New officer key pair. sec must be secure memory (ts_secure_alloc) of
 * TS_ESCROW_SECRET_BYTES. Returns 0 or -TS_E_FAILED.
 */
int ts_escrow_keygen(uint8_t pub[TS_ESCROW_PUBLIC_BYTES], uint8_t *sec)
	__attribute__((warn_unused_result));

/* "tokenseal-escrow-pub:v1:<base64url>" into out (TS_ESCROW_PUB_TEXT_BYTES). */
void ts_escrow_pub_to_text(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], char out[TS_ESCROW_PUB_TEXT_BYTES]);

/*
 * Parse the public text form (len bytes, surrounding ASCII whitespace
 * ignored). Exactly one encoding is accepted per key (no padding, no
 * standard-alphabet characters, zero unused bits); an all-zero or low-order
 * key is refused too. 0 or -TS_E_INVALID_ARGS.
 */
int ts_escrow_pub_from_text(const char *text, size_t len, uint8_t pub[TS_ESCROW_PUBLIC_BYTES])
	__attribute__((warn_unused_result));

/* Secret text form into out (TS_ESCROW_SEC_TEXT_BYTES; give secure memory). */
void ts_escrow_sec_to_text(const uint8_t *sec, char *out);

/* Parse the secret text form into sec (secure memory). 0 or -TS_E_INVALID_ARGS. */
int ts_escrow_sec_from_text(const char *text, size_t len, uint8_t *sec)
	__attribute__((warn_unused_result));

/* The public key belonging to a secret key. 0 or -TS_E_FAILED. */
int ts_escrow_sec_to_pub(const uint8_t *sec, uint8_t pub[TS_ESCROW_PUBLIC_BYTES])
	__attribute__((warn_unused_result));

/* First 16 bytes of BLAKE2b-256(pub): what `tokenseal status` shows for each recipient. */
void ts_escrow_fingerprint(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES],
                           uint8_t fp[TS_ESCROW_FINGERPRINT_BYTES]);
/* "0123:4567:89ab:cdef:0123:4567:89ab:cdef" */
void ts_escrow_fingerprint_text(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES],
                                char out[TS_ESCROW_FINGERPRINT_TEXT_BYTES]);

/*
 * Seal msg (1..TS_ESCROW_MESSAGE_MAX bytes) to pub with crypto_box_seal and
 * append the len + 48 bytes to out. Anyone can seal; only the holder of the
 * secret key opens. 0, -TS_E_INVALID_ARGS (bad size or low-order key) or
 * -TS_E_NOMEM.
 */
int ts_escrow_seal(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], const uint8_t *msg, size_t len, ts_buf *out)
	__attribute__((warn_unused_result));

/*
 * Open a sealed box (hostile bytes) with the officer's key pair; out gets
 * len - 48 bytes (give secure memory). -TS_E_INVALID_ARGS when pub is not
 * sec's public key or len is out of range, -TS_E_AUTH_FAILED when the box
 * does not open (another recipient, or tampered). out is wiped on failure.
 */
int ts_escrow_open(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], const uint8_t *sec,
                   const uint8_t *sealed, size_t len, uint8_t *out)
	__attribute__((warn_unused_result));

#endif
