/* escrow.h — escrow officer keys (X25519, or an HSM's RSA key) and sealed boxes carrying the vault secret or a share of it. Pure: no I/O. */
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

/* ---- recipients of either type (docs/FORMAT.md, "Escrow") ----------------- */

/* Recipient key types, as stored in the vault header. */
enum { TS_ESCROW_TYPE_X25519 = 0, TS_ESCROW_TYPE_RSA = 1 };

/*
 * An RSA recipient is an officer's HSM key, given as its DER
 * SubjectPublicKeyInfo (rsaEncryption, NULL parameters, strict DER).
 */
#define TS_ESCROW_RSA_PREFIX "tokenseal-escrow-rsa:v1:"
#define TS_ESCROW_SPKI_MAX 2048            /* bytes of SPKI DER we accept */
#define TS_ESCROW_RSA_MIN_BITS 2048
#define TS_ESCROW_RSA_MAX_BITS 4096
/* The largest recipient key, either type. */
#define TS_ESCROW_KEY_MAX TS_ESCROW_SPKI_MAX
/* Text form of any recipient key, NUL included (the RSA form is the longest). */
#define TS_ESCROW_KEY_TEXT_MAX (sizeof(TS_ESCROW_RSA_PREFIX) - 1 + (TS_ESCROW_SPKI_MAX + 2) / 3 * 4 + 1)
/* The RSA hybrid: RSA-OAEP-SHA256 over a fresh key of this size ... */
#define TS_ESCROW_RSA_KEY_BYTES 32
/* ... which seals the message with XChaCha20-Poly1305: nonce (24) || ciphertext || tag (16). */
#define TS_ESCROW_RSA_AEAD_OVERHEAD 40
#define TS_ESCROW_RSA_AAD_LABEL "tokenseal-escrow-rsa-v1"

/*
 * Check an RSA SubjectPublicKeyInfo (hostile bytes): strict DER, exactly
 * SEQUENCE { SEQUENCE { OID rsaEncryption, NULL }, BIT STRING { SEQUENCE {
 * INTEGER n, INTEGER e } } } with nothing after it, n of 2048..4096 bits
 * and odd, e odd, 3 <= e < 2^64. One key has exactly one accepted encoding.
 * *ret_modulus_bytes (may be NULL) is the size of n (= of an RSA
 * ciphertext). 0 or -TS_E_INVALID_ARGS.
 */
int ts_escrow_rsa_spki_check(const uint8_t *spki, size_t len, size_t *ret_modulus_bytes)
	__attribute__((warn_unused_result));

/* Is key (len bytes) a usable recipient key of this type? 0 or -TS_E_INVALID_ARGS. */
int ts_escrow_key_check(unsigned type, const uint8_t *key, size_t len)
	__attribute__((warn_unused_result));

/*
 * Parse the text form of either type ("tokenseal-escrow-pub:v1:..." or
 * "tokenseal-escrow-rsa:v1:" + base64url of the SPKI DER, no padding;
 * surrounding ASCII whitespace ignored, one text form per key). key has room
 * for TS_ESCROW_KEY_MAX bytes. 0 or -TS_E_INVALID_ARGS.
 */
int ts_escrow_key_from_text(const char *text, size_t len, unsigned *ret_type, uint8_t *key, size_t *ret_len)
	__attribute__((warn_unused_result));

/* The text form into out (TS_ESCROW_KEY_TEXT_MAX bytes). 0 or -TS_E_INVALID_ARGS. */
int ts_escrow_key_to_text(unsigned type, const uint8_t *key, size_t len, char out[TS_ESCROW_KEY_TEXT_MAX])
	__attribute__((warn_unused_result));

/*
 * Fingerprint of a key of either type, what `tokenseal status` shows for
 * each recipient: the first 16 bytes of BLAKE2b-256 over its bytes (X25519:
 * the 32-byte key; RSA: the SPKI DER); as text
 * "0123:4567:89ab:cdef:0123:4567:89ab:cdef".
 */
void ts_escrow_key_fingerprint(const uint8_t *key, size_t len, uint8_t fp[TS_ESCROW_FINGERPRINT_BYTES]);
void ts_escrow_key_fingerprint_text(const uint8_t *key, size_t len, char out[TS_ESCROW_FINGERPRINT_TEXT_BYTES]);

/* "x25519" or "rsa-N" (N = modulus bits) into out. */
void ts_escrow_key_describe(unsigned type, const uint8_t *key, size_t len, char *out, size_t outlen);

/* Size of the box sealing msg_len bytes to this key; 0 if the key is not usable. */
size_t ts_escrow_sealed_len(unsigned type, const uint8_t *key, size_t len, size_t msg_len);

/*
 * The RSA half of an RSA box: appends RSA-OAEP-SHA256 (MGF1-SHA256, empty
 * label) of the box key k (TS_ESCROW_RSA_KEY_BYTES, secure memory) to spki,
 * exactly the modulus size, to out. It needs an RSA implementation, which
 * the core does not have: the program registers one (the tests do; the
 * daemon registers a key source instead, below). It is given only k and the
 * public key, never the message: the box key opens this one box and nothing
 * else, and the AEAD over the message is done here (ts_escrow_seal_to). A
 * failure may leave a message in err.
 */
typedef int (*ts_escrow_rsa_wrap_key_fn)(const uint8_t *spki, size_t spki_len, const uint8_t *k, ts_buf *out,
                                         char *err, size_t errlen);
/* Register (or with NULL remove) the RSA key wrapper. Not thread-safe: call before sealing. */
void ts_escrow_set_rsa_key_wrapper(ts_escrow_rsa_wrap_key_fn fn);

/*
 * Instead of a wrapper, a source of box keys wrapped earlier, for a program
 * that must not wait for RSA while it seals (the daemon: its RSA runs in
 * tokenseal-helper, asked ahead from its event loop). It writes into k
 * (secure memory, TS_ESCROW_RSA_KEY_BYTES) a fresh random box key it holds
 * for spki, never given out before, and appends that key's RSA-OAEP-SHA256
 * to spki (exactly the modulus size) to out; then it forgets the key. With
 * none at hand it returns at once, -TS_E_BUSY, err saying so. A registered
 * source is used instead of the wrapper. Not thread-safe: call before
 * sealing; NULL removes it.
 */
typedef int (*ts_escrow_rsa_key_source_fn)(const uint8_t *spki, size_t spki_len, uint8_t *k, ts_buf *out,
                                           char *err, size_t errlen);
void ts_escrow_set_rsa_key_source(ts_escrow_rsa_key_source_fn fn);

/*
 * Seal msg (1..TS_ESCROW_MESSAGE_MAX bytes) to a recipient of either type,
 * appending exactly ts_escrow_sealed_len() bytes to out. X25519:
 * ts_escrow_seal. RSA: a box key k in secure memory and its RSA-OAEP, from
 * the registered key source, else a fresh random k and the registered key
 * wrapper's RSA-OAEP of it (-TS_E_NOT_SUPPORTED when neither is
 * registered), then ts_escrow_rsa_aead_seal(k, msg) here; k is wiped. 0,
 * -TS_E_INVALID_ARGS (unusable key), -TS_E_NOMEM, -TS_E_BUSY (the source
 * has no key for this recipient now), -TS_E_FAILED.
 */
int ts_escrow_seal_to(unsigned type, const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len, ts_buf *out)
	__attribute__((warn_unused_result));

/*
 * The symmetric half of an RSA box (ts_escrow_seal_to does it after the RSA
 * half; exposed for tests and seed generators): appends nonce (24) ||
 * XChaCha20-Poly1305(k, msg, AAD = "tokenseal-escrow-rsa-v1" ||
 * fingerprint(spki)) to out. k is secure memory of TS_ESCROW_RSA_KEY_BYTES.
 */
int ts_escrow_rsa_aead_seal(const uint8_t *spki, size_t spki_len, const uint8_t *k, const uint8_t *msg,
                            size_t len, ts_buf *out)
	__attribute__((warn_unused_result));

/*
 * Open an RSA box (hostile bytes) once the officer's token has decrypted its
 * first modulus-size bytes (RSA-OAEP-SHA256) into k. out gets len - modulus
 * - 40 bytes (give secure memory). -TS_E_INVALID_ARGS for a bad key or size,
 * -TS_E_AUTH_FAILED when the box does not open; out is wiped on failure.
 */
int ts_escrow_rsa_open(const uint8_t *spki, size_t spki_len, const uint8_t *k, const uint8_t *sealed, size_t len,
                       uint8_t *out)
	__attribute__((warn_unused_result));

#endif
