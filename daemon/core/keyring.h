/* keyring.h — the versioned root keys RK_1..RK_n of a vault. Pure: no I/O. */
#ifndef TS_KEYRING_H
#define TS_KEYRING_H

#include "blob.h"

#define TS_KEYRING_MAX_VERSIONS 1024

/*
 * A keyring lives entirely in secure memory. Its plaintext serialization is
 * a fixed binary layout built directly in secure memory (never CBOR, never
 * malloc): see docs/FORMAT.md.
 */
typedef struct ts_keyring ts_keyring;

/* New keyring holding RK_1 (random), created at unix time now. */
int ts_keyring_new(ts_keyring **ret, uint64_t now);

/* Add RK_{n+1} and make it current. *ret_version (may be NULL) is the new version. */
int ts_keyring_rotate(ts_keyring *k, uint64_t now, uint32_t *ret_version);

/*
 * Retire every version below min_version: their keys are wiped and blobs
 * made with them no longer unwrap (-TS_E_KEY_RETIRED). min_version may not
 * pass the current version (-TS_E_INVALID_ARGS).
 */
int ts_keyring_retire_below(ts_keyring *k, uint32_t min_version);

uint32_t ts_keyring_current(const ts_keyring *k);
uint32_t ts_keyring_min_version(const ts_keyring *k);
/* Creation time of the current root key (for rotation-due policy). */
uint64_t ts_keyring_current_created(const ts_keyring *k);

/*
 * Key of a version: 0 and *ret_key pointing into the keyring, or
 * -TS_E_KEY_RETIRED (below min) / -TS_E_BAD_BLOB (unknown version).
 */
int ts_keyring_key(const ts_keyring *k, uint32_t version, const uint8_t **ret_key);

/*
 * The same, and *ret_ctx_key (may be NULL) pointing at the version's
 * context-check key (ts_blob_ctx_key of its root key), derived once when
 * the version entered the keyring and kept beside it in secure memory;
 * wiped with the root key when the version is retired or the keyring freed.
 */
int ts_keyring_keys(const ts_keyring *k, uint32_t version, const uint8_t **ret_key,
                    const uint8_t **ret_ctx_key);

/*
 * Encrypt the keyring under a key derived from the vault secret vs, binding
 * vault_id, and append nonce || ciphertext to out.
 */
int ts_keyring_seal(const ts_keyring *k, const uint8_t vs[TS_KEY_BYTES],
                    const uint8_t vault_id[TS_VAULT_ID_BYTES], ts_buf *out);

/* Inverse of ts_keyring_seal. -TS_E_CORRUPT when it does not authenticate or parse. */
int ts_keyring_open(const uint8_t vs[TS_KEY_BYTES], const uint8_t vault_id[TS_VAULT_ID_BYTES],
                    const uint8_t *sealed, size_t len, ts_keyring **ret);

/* Wipe and free; accepts NULL. */
void ts_keyring_free(ts_keyring *k);

#endif
