/* client-internal.h — the rest of the bus API (vault administration), for the tokenseal CLI only; not exported. */
#ifndef TS_CLIENT_INTERNAL_H
#define TS_CLIENT_INTERNAL_H

#include <stdint.h>
#include <systemd/sd-bus.h>

#include "tokenseal.h"

#define TS_BUS_NAME "org.tokenseal1"
#define TS_MANAGER_PATH "/org/tokenseal1"
#define TS_MANAGER_IFACE "org.tokenseal1.Manager"
#define TS_USER_PATH_PREFIX "/org/tokenseal1/user"   /* + /UID/vault/NAME */
#define TS_VAULT_IFACE "org.tokenseal1.Vault"

/* Secrets sent to the daemon through a pipe: the daemon reads at most this much. */
#define TS_CLIENT_SECRET_MAX 1024

/* Calls that may wait for a human (touch, PIN entry on a pinpad) get this long. */
#define TS_CLIENT_SLOW_TIMEOUT_USEC (120ULL * 1000 * 1000)

/* sd-bus objects for __attribute__((cleanup)), in every file of the library. */
static inline void ts_bus_message_unrefp(sd_bus_message **m) { sd_bus_message_unref(*m); }
static inline void ts_bus_error_freep(sd_bus_error *e) { sd_bus_error_free(e); }
#define _cleanup_msg_ __attribute__((cleanup(ts_bus_message_unrefp)))
#define _cleanup_bus_error_ __attribute__((cleanup(ts_bus_error_freep)))

struct ts_client {
	sd_bus *bus;
	char *default_vault;        /* the caller's user name, looked up once */
	int last_code;              /* negative TS_E_* of the last failure, 0 after success */
	char last_error[512];
	char vault[TS_VAULT_NAME_MAX + 300];  /* vault of the call in progress as given ([OWNER:]NAME), for messages */
	int no_packed;              /* the daemon answered UnknownMethod to a packed batch: the "aay" forms only */
};

/* Record a failure on c (message printf-style): code is a negative TS_E_*, returned (anything else: -TS_E_FAILED). */
int ts_client_fail(ts_client *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Locked memory for a plaintext of n bytes the library hands out (secret.c):
 * a slot of a kept pool for a data key, else its own sodium_malloc(); NULL
 * when out of memory. Free only with ts_secret_free(p, n), which wipes it.
 */
void *ts_client_secret_alloc(size_t n);

/*
 * Locked memory for the n plaintexts of a batch, lens[i] bytes each, in one
 * sodium_malloc() (secret.c): ret_items[i] is item i's room. Each item is
 * still freed on its own, with ts_secret_free(ret_items[i], lens[i]), which
 * wipes it at once; the block goes back, wiped whole, with the last one.
 * 0, or -TS_E_NOMEM with nothing allocated. n == 0 allocates nothing.
 */
int ts_client_secret_batch(const size_t *lens, size_t n, uint8_t **ret_items);

/* Negative TS_E_* code of the last failure on c (0 if the last call succeeded). */
int ts_client_last_code(const ts_client *c);

/*
 * A vault is named by its owner and its name. vault is "NAME" (the caller's
 * own vault), "OWNER:NAME" (OWNER a uid or a user name: another user's
 * vault, for root and callers polkit allows), or NULL (the caller's vault
 * named after the user). ts_client_vault_ref splits it (*ret_name points
 * into vault, or into the default name).
 */
int ts_client_vault_ref(ts_client *c, const char *vault, uint32_t *ret_owner, const char **ret_name);

/*
 * Object path of vault (as above) into *ret (free()):
 * /org/tokenseal1/user/UID/vault/NAME. The path is computed
 * (sd_bus_path_encode), so a missing vault shows up as NoSuchVault on the
 * first call to it.
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
	uint32_t shares_needed;     /* k-of-n: shares still to give to unlock it (0 while unlocked) */
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

/* Does unlocking with p take a PIN or recovery key (recovery and PKCS#11 always; others by their "pin" fact)? */
int ts_protector_info_needs_secret(const ts_protector_info *p);

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

/* The optional parts of an unlock. */
typedef struct ts_unlock_opts {
	const char *source;            /* Unlock's "source" option (root only: e.g. "pam:login"), or NULL */
	int need_user;                 /* Unlock's "need_user" option: only protectors that show somebody is there */
	uint64_t timeout_usec;         /* 0: TS_CLIENT_SLOW_TIMEOUT_USEC */
	/* Called when the daemon says the key it is unlocking with waits for a touch. */
	void (*on_touch)(void *ud, const char *protector);
	void *ud;
} ts_unlock_opts;

/*
 * Unlock with protector (id, type, or "" / NULL: the daemon chooses, see
 * docs/DBUS-API.md). secret may be NULL (len 0): an empty pipe is sent, for
 * protectors without a PIN. o may be NULL. On success *ret_id (free(); may
 * be NULL) names the protector taken and *ret_needed the shares of a k-of-n
 * vault still needed: the vault is unlocked only when it is 0.
 */
int ts_client_unlock(ts_client *c, const char *vault, const char *protector, const uint8_t *secret,
                     size_t secret_len, const ts_unlock_opts *o, char **ret_id, unsigned *ret_needed);

/* What an interactive unlock asks of, and tells, the person at the keyboard (the CLI's terminal, PAM's conversation). */
typedef struct ts_unlock_ui {
	void *ud;
	/* A secret, without echo; what says what ("Security key PIN", "Recovery key", "PIN or recovery
	 * key"; the UI adds its punctuation): 0 and *ret (sodium_malloc()ed, NUL-terminated, freed with
	 * ts_secret_free(*ret, *ret_len + 1)), or a negative TS_E_* to give up. */
	int (*ask_secret)(void *ud, const char *what, char **ret, size_t *ret_len);
	/* Which of n protectors: an index, or negative to give up. NULL: an ambiguous PIN is an error. */
	int (*choose)(void *ud, const char *question, const ts_protector_info *const *p, size_t n);
	/* A message: "Touch your security key", "share accepted, 1 more needed". */
	void (*info)(void *ud, const char *msg);
	ts_unlock_opts opts;           /* source, timeout; on_touch is set by the loop */
	const uint8_t *secret;         /* a secret given ahead (--pin-fd, PAM_AUTHTOK): used for the first one asked */
	size_t secret_len;
	int once;                      /* one protector only (a secret given ahead and nobody to ask) */
	/*
	 * Only protectors that show somebody is there count: a secret, or a
	 * security key's touch; never a TPM without PIN, which opens for anyone
	 * at the machine (a login must not).
	 */
	int need_user;
} ts_unlock_ui;

/*
 * Unlock as a person would: protectors that need nothing first, then a PIN
 * or recovery key (one prompt; the daemon sends it to one token only), and
 * for a k-of-n vault the next protector, until the vault is unlocked.
 * which is "" / NULL or a protector id or type. When the daemon says
 * several tokens could take the PIN, ui->choose picks one of those present
 * and the same secret goes to it alone. Returns 0 when the vault is
 * unlocked (*ret_needed 0), or after one share with ui->once (*ret_needed
 * > 0), else a negative TS_E_* (ts_client_last_error says why).
 */
int ts_client_unlock_interactive(ts_client *c, const char *vault, const char *which, const ts_unlock_ui *ui,
                                 unsigned *ret_needed);

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
 * secure memory (ts_secret_free(ret_pts[i], ret_lens[i])), arrays malloc()ed;
 * the plaintexts share one locked allocation (ts_client_secret_batch), given
 * back when the last of them is freed, so an item must not be written past
 * its length (no guard page between items). Rewrap: ret_blobs[i] malloc()ed.
 * All or nothing. Sent as UnwrapBatchPacked / RewrapBatchPacked (one array
 * each way), or as UnwrapBatch / RewrapBatch to a daemon that answers
 * UnknownMethod to those (remembered for the connection) and for n = 0.
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

/*
 * age-plugin-tokenseal (docs/FORMAT.md, "age recipients"). The recipient of
 * vault's current root key version (AgeRecipient; the vault unlocked): its
 * id (16 bytes), the version and the X25519 public key (32 bytes).
 */
int ts_client_age_recipient(ts_client *c, const char *vault, uint8_t ret_vault_id[16], uint32_t *ret_version,
                            uint8_t ret_public_key[32]);
/*
 * The file key of a "tokenseal" stanza (AgeUnwrap): 16 bytes into
 * file_key, which the caller keeps in secure memory. -TS_E_BAD_BLOB when the
 * stanza does not open with the vault's key, -TS_E_KEY_RETIRED, -TS_E_LOCKED.
 */
int ts_client_age_unwrap(ts_client *c, const char *vault, uint32_t version, const uint8_t share[32],
                         const uint8_t body[32], uint8_t file_key[16]);

/* A new call of Vault.METHOD on vault ([OWNER:]NAME, NULL: the default) into *ret. 0 or a failure recorded on c. */
int ts_client_new_vault_call(ts_client *c, const char *vault, const char *method, sd_bus_message **ret);

/* How long ts_client_open gives the private socket (connect and handshake) before it falls back to the bus. */
#define TS_CLIENT_DIRECT_USEC (1000ULL * 1000)

/*
 * A direct connection to tokensealed's private socket at path (what ts_client_open tries first): the
 * peer must be root or this user, connect and handshake done within TS_CLIENT_DIRECT_USEC. 0 or a
 * negative errno.
 */
int ts_client_open_direct(sd_bus **ret, const char *path);

/*
 * ts_client_open within timeout_usec in all (0: as ts_client_open): the
 * private socket's connect and handshake, the fall-back to the system bus
 * (only in the time left; the default socket gets TS_CLIENT_DIRECT_USEC at
 * most, a socket named by $TOKENSEAL_PRIVATE_SOCKET all of it) and a bus's
 * handshake and Hello, so that a daemon or bus that does not answer costs at
 * most timeout_usec, whichever the transport. Calls made without a timeout
 * of their own then get what connecting left of timeout_usec: connecting and
 * the first call together take at most that. A caller with more calls to
 * make sets their timeout itself (sd_bus_set_method_call_timeout on c->bus).
 */
int ts_client_open_timeout(ts_client **ret, const char *bus, uint64_t timeout_usec);

#endif
