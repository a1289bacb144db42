/* recovery.h — recovery keys: generation, the printed grouped form, and Argon2id stretching. Pure. */
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

typedef struct ts_recovery_params {
	uint8_t salt[16];
	uint64_t opslimit;
	uint64_t memlimit;
} ts_recovery_params;

/* Fresh random salt and the default Argon2id cost. */
void ts_recovery_params_default(ts_recovery_params *p);

/* KEK = Argon2id(key, salt, opslimit, memlimit). Cost limits are checked (hostile params). */
int ts_recovery_derive_kek(const uint8_t key[TS_RECOVERY_KEY_BYTES], const ts_recovery_params *p,
                           uint8_t kek[TS_KEY_BYTES]);

/* CBOR encode / decode the params record stored in the protector (opaque to the vault core). */
int ts_recovery_params_encode(const ts_recovery_params *p, ts_buf *out);
int ts_recovery_params_decode(const uint8_t *b, size_t len, ts_recovery_params *ret);

#endif
