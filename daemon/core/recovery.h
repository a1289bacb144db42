/* recovery.h — recovery keys: generation, the printed grouped form, and their KEK (BLAKE2b; Argon2id for old records). Pure. */
#ifndef TS_RECOVERY_H
#define TS_RECOVERY_H

#include "blob.h"

#define TS_RECOVERY_KEY_BYTES 20      /* 160 random bits */
#define TS_RECOVERY_CHECK_BYTES 5     /* BLAKE2b checksum, catches typos */
/* 40 Crockford base32 characters in 8 groups of 5, dashes between: 47 + NUL */
#define TS_RECOVERY_TEXT_BYTES 48

/*
 * Fill key (secure memory, TS_RECOVERY_KEY_BYTES) with random bytes and text
 * (secure memory, TS_RECOVERY_TEXT_BYTES) with its printed form, e.g.
 * "7K3QF-0ZJ9M-...". Returns 0 or negative TS_E_*.
 */
int ts_recovery_generate(uint8_t key[TS_RECOVERY_KEY_BYTES], char text[TS_RECOVERY_TEXT_BYTES]);

/*
 * Parse what a user typed: case-insensitive, separators ignored (dashes,
 * dots, underscores, white space, and any non-ASCII character: the
 * typographic dashes, soft hyphens and odd spaces a document may have put
 * there), Crockford substitutions (O->0, I/L->1, U invalid). Returns 0, or -TS_E_BAD_RECOVERY_KEY
 * when the length or the checksum is wrong (a typo), never a partial key.
 */
int ts_recovery_parse(const char *text, size_t len, uint8_t key[TS_RECOVERY_KEY_BYTES]);

/*
 * Does what a user typed have the shape of a recovery key: 36 to 44 ASCII
 * letters and digits (40, give or take four typed twice or left out),
 * grouped by any of the parser's separators, and no other ASCII character
 * (a PIN with a '!' or a ',' is no recovery key)?
 * Such input is never a token PIN for tokensealed: it goes to recovery
 * protectors only, so a mistyped recovery key spends no token's PIN retry.
 * 1 or 0; nothing is decoded.
 */
int ts_recovery_looks_like(const char *text, size_t len);
/*
 * Is c a separator a person (or a word processor) may have put between
 * groups (recovery_shape.c)? 1 or 0.
 */
int ts_recovery_separator(unsigned char c);

/*
 * How a protector's KEK comes from its key. The key is 160 random bits, so a
 * keyed hash is as strong as any stretching: guessing it is 2^160 work
 * either way. Argon2id (64 MiB per attempt) is what records written before
 * held; they are still read, never written.
 */
enum {
	TS_RECOVERY_KDF_BLAKE2B = 1,       /* "blake2b-kek1": salt only */
	TS_RECOVERY_KDF_ARGON2ID = 2,      /* "argon2id13": salt, ops, mem */
};

typedef struct ts_recovery_params {
	unsigned kdf;                      /* TS_RECOVERY_KDF_* */
	uint8_t salt[16];
	uint64_t opslimit;                 /* Argon2id only (0 otherwise) */
	uint64_t memlimit;                 /* Argon2id only (0 otherwise) */
} ts_recovery_params;

/* Fresh random salt and the KDF of new protectors (BLAKE2b). */
void ts_recovery_params_default(ts_recovery_params *p);
/* Fresh random salt and the Argon2id cost records were written with before (to test that they still open). */
void ts_recovery_params_argon2id(ts_recovery_params *p);

/*
 * BLAKE2b: KEK = BLAKE2b-256(key = K, message = "tokenseal-recovery-kek-v2"
 * || vault_id || salt) (docs/FORMAT.md). Argon2id: KEK = Argon2id(K, salt,
 * opslimit, memlimit); the cost limits are checked (hostile params) and
 * vault_id is not used. Returns 0 or negative TS_E_*.
 */
int ts_recovery_derive_kek(const uint8_t key[TS_RECOVERY_KEY_BYTES], const ts_recovery_params *p,
                           const uint8_t vault_id[TS_VAULT_ID_BYTES], uint8_t kek[TS_KEY_BYTES]);

/* CBOR encode / decode the params record stored in the protector (opaque to the vault core). */
int ts_recovery_params_encode(const ts_recovery_params *p, ts_buf *out);
int ts_recovery_params_decode(const uint8_t *b, size_t len, ts_recovery_params *ret);

#endif
