/* vault.h — a vault: its authenticated header, protectors, keyring, and file format. Pure: no I/O. */
#ifndef TS_VAULT_H
#define TS_VAULT_H

#include "tokenseal.h"
#include "blob.h"
#include "keyring.h"

#define TS_VAULT_FORMAT_VERSION 1
#define TS_PROTECTOR_ID_MAX 16        /* "p1", "p2", ... NUL included */
#define TS_PROTECTOR_TYPE_MAX 16      /* "recovery", "fido2", "tpm2", "pkcs11" */
#define TS_PROTECTOR_DESC_MAX 256
#define TS_VAULT_MAX_PROTECTORS 32
#define TS_VAULT_FILE_MAX (4u << 20)  /* refuse larger files unread */

/*
 * A protector as the core sees it: an opaque params record (its own business,
 * see params.h) and the vault secret VS wrapped under the protector's KEK:
 * nonce || XChaCha20-Poly1305(KEK, VS, AAD = "tokenseal-protector-v1" ||
 * vault id || protector id || type). The core never talks to tokens.
 */
typedef struct ts_protector_record {
	char id[TS_PROTECTOR_ID_MAX];
	char type[TS_PROTECTOR_TYPE_MAX];
	char description[TS_PROTECTOR_DESC_MAX];
	uint64_t created;
	uint8_t *params;       /* malloc()ed, opaque */
	size_t params_len;
	uint8_t *wrapped_vs;   /* malloc()ed */
	size_t wrapped_vs_len;
} ts_protector_record;

typedef struct ts_vault {
	/* Header (authenticated with the header MAC key derived from VS). */
	char name[TS_VAULT_NAME_MAX + 1];
	uint32_t owner_uid;
	uint8_t id[TS_VAULT_ID_BYTES];
	uint64_t created;
	uint64_t generation;       /* incremented on every write */
	uint32_t next_protector;   /* ids are never reused */
	uint32_t key_version;      /* current root-key version (public copy) */
	uint32_t min_key_version;  /* public copy */
	ts_protector_record *protectors;
	size_t n_protectors;

	/* Sealed keyring as in the file. */
	uint8_t *keyring_sealed;
	size_t keyring_sealed_len;
	/* Header MAC as in the file (set by ts_vault_parse and ts_vault_serialize). */
	uint8_t mac[32];

	/* Unlocked state, NULL when locked; secure memory. */
	uint8_t *vs;
	ts_keyring *keyring;
} ts_vault;

/* Name check: [A-Za-z0-9._-]{1,64}, not starting with '.' or '-'. */
int ts_vault_name_valid(const char *name);

/* Lower-case hex of the vault id, 33 bytes with NUL. */
void ts_vault_id_hex(const ts_vault *v, char out[2 * TS_VAULT_ID_BYTES + 1]);

/* New vault, unlocked, fresh VS and RK_1, no protectors yet. */
int ts_vault_create(ts_vault **ret, const char *name, uint32_t owner_uid, uint64_t now);

/* Free (wiping secrets); accepts NULL. */
void ts_vault_free(ts_vault *v);

/* Wipe VS and the keyring from memory. Idempotent. */
void ts_vault_lock(ts_vault *v);
static inline int ts_vault_is_locked(const ts_vault *v) { return v->vs == NULL; }

/*
 * Add a protector (vault must be unlocked): wraps VS under kek. params are
 * copied. *ret_id (may be NULL) points at the new record's id.
 */
int ts_vault_add_protector(ts_vault *v, const char *type, const char *description,
                           const uint8_t kek[TS_KEY_BYTES], const uint8_t *params,
                           size_t params_len, uint64_t now, const char **ret_id);

/* Remove a protector (vault unlocked). -TS_E_NO_SUCH_PROTECTOR, -TS_E_LAST_PROTECTOR. */
int ts_vault_remove_protector(ts_vault *v, const char *id);

const ts_protector_record *ts_vault_find_protector(const ts_vault *v, const char *id);

/*
 * Unlock with the KEK a protector produced: unwraps VS, verifies the header
 * MAC, opens the keyring. -TS_E_AUTH_FAILED when the KEK does not open VS,
 * -TS_E_CORRUPT when VS opens but the header or keyring does not verify
 * (tampered file). On failure the vault stays locked and nothing leaks.
 * The MAC is checked over the header as this struct holds it, so a vault
 * changed in memory must be serialized before it is locked and unlocked again.
 */
int ts_vault_unlock(ts_vault *v, const char *protector_id, const uint8_t kek[TS_KEY_BYTES]);

/* Rotate root key (unlocked): RK_{n+1} becomes current. */
int ts_vault_rotate(ts_vault *v, uint64_t now, uint32_t *ret_version);
/* Retire versions below min (unlocked). */
int ts_vault_retire_below(ts_vault *v, uint32_t min_version);

/* Blob operations (unlocked, else -TS_E_LOCKED). Plaintext out goes to secure memory the caller gave. */
int ts_vault_wrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx,
                  const uint8_t *pt, size_t pt_len, ts_buf *out);
/* Unwrap into pt_out of at least ts_blob_view.plaintext_len bytes (use ts_blob_parse first). */
int ts_vault_unwrap(const ts_vault *v, const ts_blob_view *blob, const ts_kv *ctx, size_t n_ctx,
                    uint8_t *pt_out);
/* -TS_E_WRONG_VAULT when the blob names another vault id. */

/*
 * Serialize to the vault file format (CBOR, docs/FORMAT.md). Needs the vault
 * unlocked (the header MAC key comes from VS); bumps generation.
 */
int ts_vault_serialize(ts_vault *v, ts_buf *out);

/*
 * Parse a vault file (hostile bytes). The result is locked; its header is not
 * yet authenticated — that happens in ts_vault_unlock. Returns
 * -TS_E_CORRUPT or -TS_E_UNSUPPORTED_VERSION with nothing allocated.
 */
int ts_vault_parse(const uint8_t *b, size_t len, ts_vault **ret);

#endif
