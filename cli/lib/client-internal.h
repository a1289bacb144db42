/* client-internal.h — the rest of the bus API (vault administration), for the tokenseal CLI only; not exported. */
#ifndef TS_CLIENT_INTERNAL_H
#define TS_CLIENT_INTERNAL_H

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "tokenseal.h"

#define TS_BUS_NAME "org.tokenseal1"
#define TS_MANAGER_PATH "/org/tokenseal1"
#define TS_MANAGER_IFACE "org.tokenseal1.Manager"
#define TS_VAULT_PATH_PREFIX "/org/tokenseal1/vault"
#define TS_VAULT_IFACE "org.tokenseal1.Vault"

/* Secrets sent to the daemon through a pipe: the daemon reads at most this much. */
#define TS_CLIENT_SECRET_MAX 1024

/* Calls that may wait for a human (touch, PIN entry on a pinpad) get this long. */
#define TS_CLIENT_SLOW_TIMEOUT_USEC (120ULL * 1000 * 1000)

struct ts_client {
	sd_bus *bus;
	char *default_vault;        /* the caller's user name, looked up once */
	int last_code;              /* positive TS_E_* of the last failure, 0 after success */
	char last_error[512];
	char vault[TS_VAULT_NAME_MAX + 1];  /* vault of the call in progress, for messages */
};

/* Record a failure on c (message printf-style) and return -code. */
int ts_client_fail(ts_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Positive TS_E_* code of the last failure on c (0 if the last call succeeded). */
int ts_client_last_code(const ts_client *c);

/*
 * Object path of vault (NULL: the caller's own vault) into *ret (free()).
 * The path is computed (sd_bus_path_encode), so a missing vault shows up as
 * NoSuchVault on the first call to it.
 */
int ts_client_vault_path(ts_client *c, const char *vault, char **ret);

/* One protector of a vault, as the Protectors property lists it. */
typedef struct ts_protector_info {
	char *id;
	char *type;
	char *description;
	uint64_t created;           /* unix time */
	ts_kv *facts;               /* key/value strings, owned */
	size_t n_facts;
	char *presence;             /* from ts_client_probe_protectors(); NULL until then */
} ts_protector_info;

/* The properties of one vault. */
typedef struct ts_vault_info {
	char *name;
	char *id;                   /* hex */
	uint32_t owner;
	int locked;
	char *lock_reason;
	uint64_t lock_changed;      /* unix time in µs of the last lock/unlock; 0 if the daemon does not say */
	uint32_t key_version;
	uint32_t min_key_version;
	ts_protector_info *protectors;
	size_t n_protectors;
} ts_vault_info;

/* Free a ts_vault_info and everything in it; accepts NULL. */
void ts_vault_info_free(ts_vault_info *v);

/*
 * Ask the daemon which of v's protectors could unlock now (ProbeProtectors):
 * sets each protector's presence ("present", "absent", "needs-secret",
 * "unknown"). Never makes the token ask for a touch or a PIN.
 */
int ts_client_probe_protectors(ts_client *c, const char *vault, ts_vault_info *v);

/* Look up a fact of a protector; NULL if absent. */
const char *ts_protector_info_fact(const ts_protector_info *p, const char *key);

/* Properties of one vault. *ret is freed with ts_vault_info_free(). */
int ts_client_vault_info(ts_client *c, const char *vault, ts_vault_info **ret);

/* Names of the vaults the caller may use. *ret is a NULL-terminated array; free each and it. */
int ts_client_list_vaults(ts_client *c, char ***ret, size_t *ret_n);
void ts_strv_free(char **v);

/*
 * Create vault name (NULL: the caller's user name). The new recovery key is
 * returned in *ret_key (secure memory, NUL-terminated, *ret_key_len without
 * the NUL); release it with ts_secret_free(*ret_key, *ret_key_len + 1).
 */
int ts_client_create_vault(ts_client *c, const char *name, const ts_kv *opts, size_t n_opts,
                           char **ret_key, size_t *ret_key_len);

/*
 * Unlock with protector (id, type, or "" / NULL for any that fits). secret
 * may be NULL (len 0): an empty pipe is sent, for protectors without a PIN.
 */
int ts_client_unlock(ts_client *c, const char *vault, const char *protector,
                     const uint8_t *secret, size_t secret_len);

int ts_client_lock(ts_client *c, const char *vault);

/* Add a root key version; options: retire_below. *ret_version is the new version. */
int ts_client_rotate(ts_client *c, const char *vault, const ts_kv *opts, size_t n_opts, uint32_t *ret_version);

/*
 * Enroll a protector of type with options. secret_in (may be NULL) is the
 * token PIN or new PIN. *ret_id (free()) is the new protector's id. When the
 * daemon mints a secret (type recovery), *ret_secret holds it (secure memory,
 * NUL-terminated, release with ts_secret_free(*ret_secret, *ret_secret_len + 1)),
 * else *ret_secret is NULL.
 */
int ts_client_add_protector(ts_client *c, const char *vault, const char *type, const ts_kv *opts, size_t n_opts,
                            const uint8_t *secret_in, size_t secret_in_len, char **ret_id,
                            char **ret_secret, size_t *ret_secret_len);

int ts_client_revoke(ts_client *c, const char *vault, const char *id);

/*
 * Batch forms. blobs[i]/lens[i], n <= TS_BATCH_MAX. Unwrap: ret_pts[i] each in
 * secure memory (ts_secret_free(ret_pts[i], ret_lens[i])), arrays malloc()ed.
 * Rewrap: ret_blobs[i] malloc()ed. All or nothing.
 */
int ts_client_unwrap_batch(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                           const uint8_t *const *blobs, const size_t *lens, size_t n,
                           uint8_t ***ret_pts, size_t **ret_lens);
int ts_client_rewrap_batch(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                           const uint8_t *const *blobs, const size_t *lens, size_t n,
                           uint8_t ***ret_blobs, size_t **ret_lens);

/* Make a pipe holding secret (closed write end); returns the read end or a negative TS_E_*. */
int ts_client_secret_pipe(ts_client *c, const uint8_t *secret, size_t len);

/* Fill *error-derived state on c from a failed call and return the negative code. */
int ts_client_error(ts_client *c, int r, const sd_bus_error *error);

/* Append a{ss}. */
int ts_client_append_kv(sd_bus_message *m, const ts_kv *kv, size_t n);

#endif
