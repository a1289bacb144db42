/*
 * age.h — the construction behind age-plugin-tokenseal (docs/FORMAT.md, "age
 * recipients"): a vault's per-key-version X25519 key, the recipient and
 * identity strings, and the "tokenseal" stanza that wraps an age file key.
 * Pure: no I/O. The daemon derives and uses the secret half; the plugin
 * wraps with the public half only.
 */
#ifndef TS_AGE_H
#define TS_AGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/blob.h"

#define TS_AGE_FORMAT 1                 /* first byte of a recipient's and an identity's payload */
#define TS_AGE_FILE_KEY_BYTES 16        /* age's file key */
#define TS_AGE_KEY_BYTES 32             /* X25519 keys and shares */
#define TS_AGE_BODY_BYTES (TS_AGE_FILE_KEY_BYTES + 16)  /* ChaCha20-Poly1305 of the file key */
#define TS_AGE_VAULT_TAG_BYTES 8        /* the first bytes of the vault id, as the recipient carries them */
#define TS_AGE_VERSION_MAX 65535        /* a key version must fit the recipient's 16 bits */
#define TS_AGE_STANZA_TYPE "tokenseal"
#define TS_AGE_RECIPIENT_HRP "age1tokenseal"
#define TS_AGE_IDENTITY_HRP "AGE-PLUGIN-TOKENSEAL-"
#define TS_AGE_STRING_MAX 91            /* a recipient or identity string with its NUL */

/* What a recipient string says. */
typedef struct ts_age_recipient {
	uint8_t vault_tag[TS_AGE_VAULT_TAG_BYTES];
	uint32_t key_version;           /* 1..TS_AGE_VERSION_MAX */
	uint8_t public_key[TS_AGE_KEY_BYTES];
} ts_age_recipient;

/* A "tokenseal" stanza: -> tokenseal TAG VERSION SHARE, then the body. */
typedef struct ts_age_stanza {
	uint8_t vault_tag[TS_AGE_VAULT_TAG_BYTES];
	uint32_t key_version;
	uint8_t share[TS_AGE_KEY_BYTES];      /* the ephemeral X25519 public key */
	uint8_t body[TS_AGE_BODY_BYTES];
} ts_age_stanza;

/*
 * The X25519 secret of key version `version` of the vault vault_id, from
 * that version's root key rk: BLAKE2b-256 keyed with rk over
 * "tokenseal-age-x25519-v1" || vault id || version (big-endian u32). sk
 * should be secure memory. 0 or -TS_E_INVALID_ARGS (version out of range).
 */
int ts_age_derive_secret(const uint8_t rk[TS_KEY_BYTES], const uint8_t vault_id[TS_VAULT_ID_BYTES],
                         uint32_t version, uint8_t sk[TS_AGE_KEY_BYTES]);

/* The public half of sk. 0 or -TS_E_FAILED. */
int ts_age_public_key(const uint8_t sk[TS_AGE_KEY_BYTES], uint8_t pk[TS_AGE_KEY_BYTES]);

/*
 * Wrap an age file key to r: a fresh ephemeral key (eph NULL: random; a
 * fixed one only for test vectors), then as ts_age_unwrap describes. 0, or
 * -TS_E_INVALID_ARGS (a public key that gives an all-zero shared secret).
 */
int ts_age_wrap(const ts_age_recipient *r, const uint8_t file_key[TS_AGE_FILE_KEY_BYTES],
                const uint8_t *eph, ts_age_stanza *out);

/*
 * Open a stanza with the secret sk of its key version: S = X25519(sk,
 * share), the wrap key BLAKE2b-256 keyed with S over "tokenseal-age-wrap-v1"
 * || vault tag || version (u32 BE) || share || pk, the body opened with
 * ChaCha20-Poly1305 (nonce zero, no AAD). file_key is written only when the
 * body authenticates. 0, or -TS_E_BAD_BLOB (not authentic, or a share that
 * gives an all-zero secret).
 */
int ts_age_unwrap(const uint8_t sk[TS_AGE_KEY_BYTES], const ts_age_stanza *s,
                  uint8_t file_key[TS_AGE_FILE_KEY_BYTES]);

/* The recipient string (lower case) into out. 0 or -TS_E_INVALID_ARGS. */
int ts_age_recipient_encode(const ts_age_recipient *r, char out[TS_AGE_STRING_MAX]);
/* Parse a recipient string (len bytes). 0, -TS_E_INVALID_ARGS, or -TS_E_UNSUPPORTED_VERSION. */
int ts_age_recipient_decode(const char *s, size_t len, ts_age_recipient *ret);

/* The identity string (upper case, as age writes identities): which vault, nothing secret. */
int ts_age_identity_encode(const uint8_t vault_id[TS_VAULT_ID_BYTES], char out[TS_AGE_STRING_MAX]);
/* Parse an identity string (either case). 0, -TS_E_INVALID_ARGS, or -TS_E_UNSUPPORTED_VERSION. */
int ts_age_identity_decode(const char *s, size_t len, uint8_t vault_id[TS_VAULT_ID_BYTES]);

/*
 * A stanza's arguments (after the type "tokenseal") and body, as age hands
 * them over: exactly three arguments, the tag and the share in canonical
 * unpadded standard base64, the version in decimal without leading zero
 * (1..TS_AGE_VERSION_MAX), a 32-byte body. 0 or -TS_E_INVALID_ARGS.
 */
int ts_age_stanza_parse(const char *const *args, size_t n_args, const uint8_t *body, size_t body_len,
                        ts_age_stanza *ret);

/*
 * The arguments of a stanza as text: tag (12 bytes with NUL), version (6),
 * share (44). 0 or -TS_E_FAILED.
 */
int ts_age_stanza_format(const ts_age_stanza *s, char tag[12], char version[6], char share[44]);

#endif
