/* secrets.h — tokenseal-secrets: a Secret Service provider (org.freedesktop.secrets) sealed by a tokenseal vault. */
#ifndef SS_SECRETS_H
#define SS_SECRETS_H

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "tokenseal.h"

/* A message reference dropped at the end of its scope. */
#define _ss_cleanup_msg_ __attribute__((cleanup(sd_bus_message_unrefp)))

#define SS_BUS_NAME "org.freedesktop.secrets"
#define SS_PATH "/org/freedesktop/secrets"
#define SS_COLLECTION_PREFIX "/org/freedesktop/secrets/collection"
#define SS_ALIAS_PREFIX "/org/freedesktop/secrets/aliases"
#define SS_SESSION_PREFIX "/org/freedesktop/secrets/session"
#define SS_PROMPT_PREFIX "/org/freedesktop/secrets/prompt"
#define SS_SERVICE_IFACE "org.freedesktop.Secret.Service"
#define SS_COLLECTION_IFACE "org.freedesktop.Secret.Collection"
#define SS_ITEM_IFACE "org.freedesktop.Secret.Item"
#define SS_SESSION_IFACE "org.freedesktop.Secret.Session"
#define SS_PROMPT_IFACE "org.freedesktop.Secret.Prompt"

#define SS_ERR_IS_LOCKED "org.freedesktop.Secret.Error.IsLocked"
#define SS_ERR_NO_SESSION "org.freedesktop.Secret.Error.NoSession"
#define SS_ERR_NO_SUCH_OBJECT "org.freedesktop.Secret.Error.NoSuchObject"
#define SS_ERR_NOT_SUPPORTED "org.freedesktop.DBus.Error.NotSupported"
#define SS_ERR_INVALID_ARGS "org.freedesktop.DBus.Error.InvalidArgs"
#define SS_ERR_FAILED "org.freedesktop.DBus.Error.Failed"

/* Limits on what a client (or a file) may make us hold. */
#define SS_ID_MAX 64                 /* collection id: [A-Za-z0-9_]{1,64} */
#define SS_TEXT_MAX 4096             /* a label, attribute name or value, content type, alias */
#define SS_ATTRS_MAX 64              /* attributes per item */
#define SS_SECRET_MAX (1u << 20)     /* one secret */
#define SS_ITEMS_MAX 100000          /* items per collection */
#define SS_COLLECTIONS_MAX 64
#define SS_ALIASES_MAX 16            /* aliases per collection */
#define SS_SESSIONS_MAX 1024
#define SS_SESSIONS_PER_CLIENT 64
#define SS_PROMPTS_MAX 64
#define SS_PROMPTS_PER_CLIENT 8
#define SS_KEY_BYTES 32              /* collection key: XChaCha20-Poly1305 */
#define SS_SALT_BYTES 16
#define SS_HASH_BYTES 32
#define SS_NONCE_BYTES 24
#define SS_VAULT_CALL_TIMEOUT_USEC (5ULL * 1000 * 1000) /* GenerateDataKey, Unwrap, Subscribe, properties */

typedef struct ss_attr {
	char *name;
	char *value;
} ss_attr;

/* The part of an item kept in the clear: a salted hash per attribute, for searching while locked. */
typedef struct ss_hattr {
	char *name;
	uint8_t hash[SS_HASH_BYTES];
} ss_hattr;

typedef struct ss_item {
	uint32_t id;
	uint64_t created, modified;        /* unix seconds */
	ss_hattr *hattrs;
	size_t n_hattrs;
	uint8_t nonce[SS_NONCE_BYTES];
	uint8_t *sealed;                   /* AEAD(label, content type, attributes, secret) */
	size_t sealed_len;
	/* Known only while the collection is unlocked (read from sealed at unlock). */
	char *label;
	char *content_type;
	ss_attr *attrs;
	size_t n_attrs;
} ss_item;

typedef struct ss_collection {
	char *id;
	char *path;                        /* SS_COLLECTION_PREFIX/id */
	char *label;
	uint64_t created, modified;
	uint8_t salt[SS_SALT_BYTES];
	uint8_t *wrapped;                  /* the collection key as a tokenseal blob; NULL until first unlock */
	size_t wrapped_len;
	char **aliases;
	size_t n_aliases;
	ss_item **items;
	size_t n_items;
	/* Items that did not open with the key (tampered with?): not served, kept and saved as they were. */
	ss_item **bad;
	size_t n_bad;
	uint32_t next_id;
	uint8_t *key;                      /* sodium_malloc()ed SS_KEY_BYTES while unlocked, else NULL */
	int locked_by_client;              /* Lock()ed by a client: opens again only with the PIN, vault open or not */
	sd_bus_slot *opening;              /* Unwrap / GenerateDataKey in flight at tokensealed (opener.c) */
	struct ss_waiter *waiters;         /* who waits for it */
	size_t n_waiters;
} ss_collection;

typedef struct ss_session {
	uint64_t n;
	char *path;
	char *owner;                       /* unique bus name of the client that opened it */
	uint8_t *aes_key;                  /* sodium_malloc()ed 16 bytes (DH session), NULL for plain */
} ss_session;

typedef struct ss_service ss_service;
typedef struct ss_prompt ss_prompt;

struct ss_service {
	sd_event *event;
	sd_bus *bus;                       /* session bus: our clients */
	ts_client *ts;                     /* tokensealed (its bus is attached to our loop) */
	const char *vault;                 /* [OWNER:]NAME, NULL: the user's own */
	char *vault_path;
	char *daemon_name;                 /* tokensealed's unique name on the bus (its signals only), NULL: unknown */
	int vault_locked;
	char *dir;                         /* storage directory */
	const char *pinentry;
	ss_collection **colls;
	size_t n_colls;
	ss_session **sessions;
	size_t n_sessions;
	uint64_t next_session;
	ss_prompt **prompts;
	size_t n_prompts;
	uint64_t next_prompt;
};

/* ---- store.c: one file per collection ---- */

/* Load every DIR/ID.collection; a file that does not parse is logged and skipped (never rewritten). */
int ss_store_load_all(ss_service *s);
/* Read DIR/ID.collection again (after a failed write: memory must equal disk). */
int ss_store_load_one(ss_service *s, const char *id, ss_collection **ret);
/* Parse one collection file's bytes (hostile input). 0 and *ret, or a negative errno. */
int ss_store_parse(const uint8_t *p, size_t len, ss_collection **ret);
/* Serialize c (its clear and sealed parts only). */
int ss_store_serialize(const ss_collection *c, uint8_t **ret, size_t *ret_len);
/* Write c atomically (tmp, fsync, rename, fsync dir), mode 0600. */
int ss_store_save(ss_service *s, const ss_collection *c);
int ss_store_remove(ss_service *s, const ss_collection *c);

/* ---- collection.c: the in-memory model ---- */

ss_collection *ss_collection_new(const char *id, const char *label);
void ss_collection_free(ss_collection *c);
void ss_item_free(ss_item *it);
/* Wipe the key and forget what only an unlocked collection knows. */
void ss_collection_lock(ss_collection *c);
/* With key set: read every item's sealed part (items that do not open are dropped from memory and logged). */
int ss_collection_open_items(ss_collection *c);
/* Seal label, content type, attributes and secret into it (collection unlocked). */
int ss_item_seal(const ss_collection *c, ss_item *it, const uint8_t *secret, size_t secret_len);
/* The secret of it, in sodium_malloc() memory (free with ts_secret_free). */
int ss_item_unseal_secret(const ss_collection *c, const ss_item *it, uint8_t **ret, size_t *ret_len);
/* The hashes of a query's values under c's salt (*ret calloc()ed, NULL for an empty query). */
int ss_query_hash(const ss_collection *c, const ss_attr *q, size_t n_q, uint8_t (**ret)[SS_HASH_BYTES]);
/* Does it match every (name, value) of q (qh: ss_query_hash)? Uses the clear hashes, so it works while locked. */
int ss_item_matches(const ss_item *it, const ss_attr *q, uint8_t (*qh)[SS_HASH_BYTES], size_t n_q);
void ss_attr_hash(const ss_collection *c, const char *name, const char *value, uint8_t out[SS_HASH_BYTES]);
ss_item *ss_collection_item(const ss_collection *c, uint32_t id);
char *ss_item_path(const ss_collection *c, const ss_item *it);
int ss_valid_text(const char *s);
/* An id (collection) or alias: [A-Za-z0-9_]{1,SS_ID_MAX}. */
int ss_valid_id(const char *id);

/* ---- service.c ---- */

ss_collection *ss_service_collection(ss_service *s, const char *id);
ss_collection *ss_service_alias(ss_service *s, const char *alias);
/* Resolve an object path (collection, alias, or item under either). */
int ss_service_resolve(ss_service *s, const char *path, ss_collection **ret_c, ss_item **ret_it);
int ss_service_register(ss_service *s);
/* The vault locked: lock every collection and tell clients. */
void ss_service_lock_all(ss_service *s);
/* The vault unlocked: open every collection (asynchronously). */
void ss_service_open_all(ss_service *s);
/* Tell clients that c (and its items) locked or opened. */
void ss_service_emit_locked(ss_service *s, ss_collection *c);

/* ---- opener.c: getting a collection's key without blocking the loop ---- */

/* r: 0 (c is open now) or a negative errno (it stays locked). */
typedef void (*ss_open_cb)(ss_service *s, ss_collection *c, int r, void *ud);
/*
 * Open c: 0 if it is open already (cb is not called), 1 if its key was asked for (cb, if not NULL, is
 * called with the outcome), or a negative errno now (-EPERM: the vault is locked).
 */
int ss_open_async(ss_service *s, ss_collection *c, ss_open_cb cb, void *ud);
/* Drop the waits of ud on c (ud is going away). */
void ss_open_cancel(ss_collection *c, void *ud);
/* Shutting down: stop asking, tell every waiter -ECANCELED. */
void ss_open_abandon(ss_service *s, ss_collection *c);
void ss_service_emit_collection_changed(ss_service *s, ss_collection *c);
int ss_service_add_collection(ss_service *s, ss_collection *c);
int ss_service_create_collection(ss_service *s, const char *label, const char *alias, ss_collection **ret);
int ss_objects_register(ss_service *s);
int ss_read_attrs(sd_bus_message *m, ss_attr **ret, size_t *ret_n, sd_bus_error *e);
void ss_attrs_free(ss_attr *a, size_t n);

/* ---- vault.c: following tokensealed ---- */

int ss_vault_start(ss_service *s);
/* The vault's state as tokensealed says it: locked locks every collection; the change to unlocked opens them. */
void ss_vault_set_locked(ss_service *s, int locked);
/*
 * After a change that could not be sealed or saved: c as its file says
 * (label, aliases, items, times; the key kept), or locked if the file
 * cannot be read back.
 */
void ss_collection_reload(ss_service *s, ss_collection *c);
/* Send Unlock with pin (async); cb(s, r, shares_needed, msg, ud) when the daemon answers. */
typedef void (*ss_vault_unlock_cb)(ss_service *s, int r, unsigned needed, const char *msg, void *ud);
int ss_vault_unlock_async(ss_service *s, const uint8_t *pin, size_t pin_len, ss_vault_unlock_cb cb, void *ud,
                          sd_bus_slot **ret_slot);

/* ---- session.c ---- */

int ss_session_open(ss_service *s, sd_bus_message *m, sd_bus_error *e);
ss_session *ss_session_find(ss_service *s, const char *path, const char *sender);
void ss_session_free(ss_session *se);
void ss_sessions_drop_owner(ss_service *s, const char *owner);
/* Append a (oayays) secret for the session. */
int ss_session_append_secret(ss_session *se, sd_bus_message *reply, const uint8_t *secret, size_t len,
                             const char *content_type);
/* Read a (oayays) secret sent by sender: plaintext in sodium_malloc() memory. */
int ss_session_read_secret(ss_service *s, sd_bus_message *m, uint8_t **ret, size_t *ret_len, char **ret_ct,
                           sd_bus_error *e);
int ss_session_register(ss_service *s);

/* ---- prompt.c ---- */

/*
 * A prompt that unlocks the vault (pinentry) and then opens the collections colls[]; its result lists
 * objects[] (taken over, also on failure) that are open then. *ret_path: borrowed.
 */
int ss_prompt_new(ss_service *s, const char *owner, ss_collection **colls, size_t n, char **objects,
                  size_t n_objects, const char **ret_path);
/* A client left the bus: its prompts go (a prompt being shown is dismissed). */
void ss_prompts_drop_owner(ss_service *s, const char *owner);
/* tokensealed waits for a touch of the key of a prompt's Unlock: tell the user. */
void ss_prompts_touch(ss_service *s);
int ss_prompt_register(ss_service *s);
void ss_prompts_free(ss_service *s);

/* ---- pinentry.c: the Assuan conversation with pinentry, on the loop ---- */

typedef struct ss_pinentry ss_pinentry;
/* r: 0 and pin (secure, NUL-terminated; the callee wipes it after the callback), -ECANCELED, or another error. */
typedef void (*ss_pinentry_cb)(void *ud, int r, const char *pin, size_t len);
int ss_pinentry_start(sd_event *ev, const char *program, const char *title, const char *desc, const char *error,
                      ss_pinentry_cb cb, void *ud, ss_pinentry **ret);
/* A notice with an OK button (Assuan MESSAGE): cb(ud, 0 or error, NULL, 0) when it is closed. */
int ss_pinentry_message(sd_event *ev, const char *program, const char *title, const char *desc, ss_pinentry_cb cb,
                        void *ud, ss_pinentry **ret);
/* Stop it (kills the program); the callback is not called. Accepts NULL. */
void ss_pinentry_cancel(ss_pinentry *p);

void ss_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Free an array of n malloc()ed strings (and the array). */
void ss_strv_free(char **v, size_t n);

#endif
