/* vault.h — a vault: its authenticated header, protectors, keyring, and file format. Pure: no I/O. */
#ifndef TS_VAULT_H
#define TS_VAULT_H

#include "tokenseal.h"
#include "blob.h"
#include "escrow.h"
#include "keyring.h"

#define TS_VAULT_FORMAT_VERSION 1
#define TS_PROTECTOR_ID_MAX 16        /* "p1", "p2", ... NUL included */
#define TS_PROTECTOR_TYPE_MAX 16      /* "recovery", "fido2", "tpm2", "pkcs11" */
#define TS_PROTECTOR_DESC_MAX 256
#define TS_VAULT_MAX_PROTECTORS 32
#define TS_VAULT_FILE_MAX (4u << 20)  /* refuse larger files unread */
#define TS_VAULT_MAX_ESCROW 16        /* escrow recipients per vault */
#define TS_VAULT_ESCROW_LABEL_MAX 64  /* NUL included */
/* What an escrow box holds: vault id (16) || x (1; 0 = VS whole) || VS or the share's y (32). */
#define TS_VAULT_ESCROW_PLAIN_BYTES (TS_VAULT_ID_BYTES + 1 + TS_KEY_BYTES)
#define TS_VAULT_NV_AUTH_BYTES 32     /* the NV counter index's authValue */
#define TS_VAULT_NV_HANDLE_FIRST 0x01000000u  /* the owner range of NV index handles */
#define TS_VAULT_NV_HANDLE_LAST 0x013fffffu

/*
 * A protector as the core sees it: an opaque params record (its own business,
 * see params.h) and the vault secret VS wrapped under the protector's KEK:
 * nonce || XChaCha20-Poly1305(KEK, VS, AAD = "tokenseal-protector-v1" ||
 * vault id || protector id || type). The core never talks to tokens.
 * In a k-of-n vault (threshold > 1) the protector wraps a Shamir share of VS
 * instead: x || nonce || XChaCha20-Poly1305(KEK, y, AAD = ... || k || x)
 * (docs/FORMAT.md, "k-of-n vaults").
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

/*
 * An escrow recipient as stored in the header: the officer's public key
 * (type X25519: 32 bytes; type RSA: the SPKI DER of an HSM key, see
 * escrow.h), a label for humans, and a sealed box holding
 * TS_VAULT_ESCROW_PLAIN_BYTES: VS whole (x == 0) or the share at x.
 */
typedef struct ts_escrow_record {
	char label[TS_VAULT_ESCROW_LABEL_MAX];
	uint8_t *pubkey;       /* malloc()ed, pubkey_len bytes */
	size_t pubkey_len;
	uint8_t type;          /* TS_ESCROW_TYPE_X25519 or TS_ESCROW_TYPE_RSA */
	uint8_t x;
	uint8_t *sealed;       /* malloc()ed, ts_escrow_sealed_len(type, pubkey, TS_VAULT_ESCROW_PLAIN_BYTES) */
	size_t sealed_len;
} ts_escrow_record;

/* An escrow recipient as a caller names it (ts_vault_set_escrow). */
typedef struct ts_escrow_recipient {
	const char *label;         /* [printable UTF-8]{0,63} */
	const uint8_t *pubkey;     /* pubkey_len bytes */
	unsigned type;             /* TS_ESCROW_TYPE_X25519 (0) or TS_ESCROW_TYPE_RSA */
	size_t pubkey_len;         /* 0 for an X25519 key means 32 */
} ts_escrow_recipient;

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
	uint8_t threshold;         /* k of k-of-n over protectors; 1 = any one protector */
	ts_escrow_record *escrow;
	size_t n_escrow;
	uint8_t escrow_threshold;  /* m of m-of-n among escrow recipients; 0 when none */
	/*
	 * The TPM NV counter this file is bound to (docs/FORMAT.md, "TPM NV
	 * counter"): nv_handle 0 when none. nv_value is the counter value the
	 * file expects; the core only carries it (the daemon sets it before
	 * serializing).
	 */
	uint32_t nv_handle;
	uint64_t nv_value;
	uint8_t nv_auth[TS_VAULT_NV_AUTH_BYTES];

	/* Sealed keyring as in the file. */
	uint8_t *keyring_sealed;
	size_t keyring_sealed_len;
	/* Header MAC as in the file (set by ts_vault_parse and ts_vault_serialize). */
	uint8_t mac[32];

	/* Unlocked state, NULL when locked; secure memory. */
	uint8_t *vs;
	ts_keyring *keyring;

	/* Shares gathered by ts_vault_unlock_share (secure memory, threshold x 33 bytes). */
	uint8_t *pending;
	size_t n_pending;
	char pending_ids[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX];
} ts_vault;

/* Name check: [A-Za-z0-9._-]{1,64}, not starting with '.' or '-'. */
int ts_vault_name_valid(const char *name);

/* Lower-case hex of the vault id, 33 bytes with NUL. */
void ts_vault_id_hex(const ts_vault *v, char out[2 * TS_VAULT_ID_BYTES + 1]);

/* New vault, unlocked, fresh VS and RK_1, no protectors yet. */
int ts_vault_create(ts_vault **ret, const char *name, uint32_t owner_uid, uint64_t now);

/* Free (wiping secrets); accepts NULL. */
void ts_vault_free(ts_vault *v);

/* Wipe VS, the keyring and any gathered shares from memory. Idempotent. */
void ts_vault_lock(ts_vault *v);
static inline int ts_vault_is_locked(const ts_vault *v) { return v->vs == NULL; }

/*
 * Add a protector (vault must be unlocked): wraps VS under kek. params are
 * copied. *ret_id (may be NULL) points at the new record's id.
 */
int ts_vault_add_protector(ts_vault *v, const char *type, const char *description,
                           const uint8_t kek[TS_KEY_BYTES], const uint8_t *params,
                           size_t params_len, uint64_t now, const char **ret_id);

/*
 * Remove a protector (vault unlocked). -TS_E_NO_SUCH_PROTECTOR, -TS_E_LAST_PROTECTOR
 * (the last one, or fewer than the threshold would remain). Removing does not
 * take VS away from the removed token: revocation is ts_vault_rekey.
 */
int ts_vault_remove_protector(ts_vault *v, const char *id);

const ts_protector_record *ts_vault_find_protector(const ts_vault *v, const char *id);

/*
 * Unlock with the KEK a protector produced: unwraps VS, verifies the header
 * MAC, opens the keyring. -TS_E_AUTH_FAILED when the KEK does not open VS,
 * -TS_E_CORRUPT when VS opens but the header or keyring does not verify
 * (tampered file). On failure the vault stays locked and nothing leaks.
 * The MAC is checked over the header as this struct holds it, so a vault
 * changed in memory must be serialized before it is locked and unlocked again.
 * In a k-of-n vault this gathers the protector's share like
 * ts_vault_unlock_share and returns -TS_E_LOCKED while more are needed.
 */
int ts_vault_unlock(ts_vault *v, const char *protector_id, const uint8_t kek[TS_KEY_BYTES]);

/*
 * Unlock with the vault secret itself (copied; the caller keeps vs), checked
 * exactly as ts_vault_unlock checks the VS a protector yields. For a vault
 * read back from its file while the daemon still holds VS: -TS_E_CORRUPT
 * when vs is not this file's vault secret (a change replaced it).
 */
int ts_vault_unlock_vs(ts_vault *v, const uint8_t vs[TS_KEY_BYTES]);

/*
 * k-of-n unlock: unwrap this protector's share (-TS_E_AUTH_FAILED if the KEK
 * does not open it) and keep it in secure memory; once threshold shares from
 * distinct protectors are there, combine them and verify exactly as
 * ts_vault_unlock does. *ret_needed (may be NULL) is set to the number of
 * shares still missing (0 = unlocked). Giving a protector twice changes
 * nothing. On a verification failure every gathered share is wiped. On a
 * 1-of-n vault this is ts_vault_unlock.
 */
int ts_vault_unlock_share(ts_vault *v, const char *protector_id, const uint8_t kek[TS_KEY_BYTES],
                          int *ret_needed);

/* Wipe shares gathered so far without unlocking. */
void ts_vault_forget_shares(ts_vault *v);

/*
 * Make the vault k-of-n over its protectors (1 <= k <= TS_VAULT_MAX_PROTECTORS).
 * Unlocked, and before any protector is added (-TS_E_BUSY otherwise): each
 * protector then wraps a share of VS. The shares come from a polynomial
 * derived from VS (KDF context "tsshpoly"), so protectors can be added later
 * without the others. Until k protectors exist the vault cannot be unlocked
 * from its file.
 */
int ts_vault_set_threshold(ts_vault *v, unsigned k);

/*
 * Escrow VS to recipients (vault unlocked): m == 1 seals VS whole to each,
 * 1 < m <= n seals one Shamir share (fresh random polynomial) to each, any m
 * of which recover VS. n == 0 removes escrow. At most TS_VAULT_MAX_ESCROW,
 * distinct usable public keys. The recipients are part of the MACed header.
 * An RSA recipient needs the RSA key wrapper or a key source registered
 * (core/escrow.h), else -TS_E_NOT_SUPPORTED; -TS_E_BUSY when the source has
 * no box key for it now. On any error the vault's escrow is unchanged.
 */
int ts_vault_set_escrow(ts_vault *v, const ts_escrow_recipient *r, size_t n, unsigned m);

/*
 * Unlock with escrow: opened holds count boxes opened by officers
 * (ts_escrow_open of ts_escrow_record.sealed), TS_VAULT_ESCROW_PLAIN_BYTES
 * each. -TS_E_WRONG_VAULT for a box of another vault, -TS_E_INVALID_ARGS for
 * fewer than escrow_threshold distinct shares, -TS_E_AUTH_FAILED when the
 * result does not verify against the header (a forged or mixed-up box).
 */
int ts_vault_unlock_escrow(ts_vault *v, const uint8_t *opened, size_t count);

/* A protector that stays through ts_vault_rekey, with its (re-derived or fresh) KEK. */
typedef struct ts_vault_keep {
	const char *id;
	const uint8_t *kek;        /* TS_KEY_BYTES */
	const uint8_t *params;     /* NULL: keep the old params; else new ones (fresh enrollment) */
	size_t params_len;
} ts_vault_keep;

/*
 * Revocation (vault unlocked): replace VS with a fresh random one, wrap it
 * (or the share of it) under the KEK of each protector in keep, drop every
 * other protector, re-seal escrow to the same recipients, and rotate in a new
 * root key RK_{n+1}. The old root keys stay in the keyring so old blobs still
 * unwrap until retired. An old vault file plus a dropped protector yields only
 * the old VS, which opens neither the new file's keyring nor its root key.
 * All or nothing. -TS_E_NO_SUCH_PROTECTOR, -TS_E_INVALID_ARGS (duplicate id),
 * -TS_E_LAST_PROTECTOR (none kept, or fewer than the threshold).
 * *ret_version (may be NULL) is the new root-key version. Serialize afterwards.
 */
int ts_vault_rekey(ts_vault *v, uint64_t now, const ts_vault_keep *keep, size_t n_keep,
                   uint32_t *ret_version);

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
 * The same two under a context encoded once (blob.h, ts_blob_ctx: one per
 * thread), for the items of a batch: the same checks in the same order,
 * the same errors and the same blobs as the forms above. ts_vault_wrap_ctx
 * opens each new blob again under c, as ts_vault_wrap does; that c still
 * holds the context's encoding is the caller's to check, with
 * ts_blob_ctx_verify before it hands out what it wrapped (ts_vault_wrap
 * does, after its one wrap).
 */
int ts_vault_wrap_ctx(const ts_vault *v, ts_blob_ctx *c, const uint8_t *pt, size_t pt_len, ts_buf *out);
int ts_vault_unwrap_ctx(const ts_vault *v, const ts_blob_view *blob, ts_blob_ctx *c, uint8_t *pt_out);

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
