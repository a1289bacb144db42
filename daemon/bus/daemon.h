/* daemon.h — tokensealed's state (vaults, bus, event loop) and the helpers its D-Bus objects share. */
#ifndef TS_DAEMON_H
#define TS_DAEMON_H

#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/vault.h"
#include "protectors/protector.h"

#define TS_BUS_NAME "org.tokenseal1"
#define TS_MANAGER_PATH "/org/tokenseal1"
/*
 * A vault is named by its owner and its name: /org/tokenseal1/user/UID/vault/NAME
 * (NAME escaped with sd_bus_path_encode). Two users' vaults of one name are
 * two vaults; nobody can take a name in another user's namespace.
 */
#define TS_USER_PATH_PREFIX "/org/tokenseal1/user"
#define TS_MANAGER_IFACE "org.tokenseal1.Manager"
#define TS_VAULT_IFACE "org.tokenseal1.Vault"

/* Secrets read from a caller's fd: at most this many bytes, within this time. */
#define TS_SECRET_IN_MAX 1024
#define TS_SECRET_FD_TIMEOUT_MS 5000

/* Longest LockReason ("startup", "request", "idle", ...). */
#define TS_LOCK_REASON_MAX 32

struct ts_daemon;

/* One loaded vault and its bus object. */
typedef struct ts_vault_entry {
	struct ts_daemon *d;
	ts_vault *vault;
	char *path;                     /* object path */
	char *dir;                      /* the directory of its file: STATE/UID (or STATE, not yet moved) */
	ts_buf disk;                    /* the file bytes last written/read: the rollback point */
	int stale;                      /* a failed save left memory that is not the file: locked, reload before unlocking */
	char lock_reason[TS_LOCK_REASON_MAX];
	uint64_t lock_changed;          /* CLOCK_REALTIME µs of the last Locked change (or of loading) */
	sd_event_source *idle_timer;
	sd_event_source *share_timer;   /* forgets k-of-n shares given to Unlock ([lock] share-timeout) */
	ts_backoff backoff;             /* wrong secrets per source; the side file NAME.backoff */
	char unlocked_by[16];           /* protector type of the last unlock ("" while locked): autolock.c */
	char unlocked_with[TS_PROTECTOR_ID_MAX];  /* ... and its id, to watch that very token */
	char last_unlock[TS_PROTECTOR_ID_MAX];    /* the protector of the last successful Unlock: RotateRecoveryKey("") */
	/*
	 * The current root key as the last unlock showed it (its creation time
	 * is in the sealed keyring, so a locked vault keeps what it saw), for
	 * the policy's [keys] max-age: policy_enforce.c.
	 */
	struct {
		int known;
		uint32_t version;
		uint64_t created;
		int reported;           /* the rotation-due event for this unlock and version was recorded */
	} key_age;
	struct ts_vault_entry *next;
} ts_vault_entry;

typedef struct ts_daemon {
	sd_bus *bus;
	sd_event *event;
	const char *state_dir;
	uint64_t idle_lock_usec;        /* 0: never */
	ts_config config;
	ts_vault_entry *vaults;
	size_t n_vaults;
	/* --print-introspection: the object tree answers for a placeholder vault. */
	int introspect_only;
	ts_vault_entry *placeholder;
	struct ts_autolock *autolock;   /* autolock.c: logind signals, token removal */
	struct ts_polkit_query *polkit_queries;  /* polkit.c: questions in flight */
	size_t n_polkit_queries;
	struct ts_unlock_job *unlock_jobs;       /* vault_object.c: Unlock calls waiting for a token helper */
	struct ts_enroll_job *enroll_jobs;       /* ... and AddProtector calls */
	struct ts_subscriber *subscribers;       /* signals.c: connections that asked for vault signals */
	size_t n_subscribers;
	sd_bus_slot *subscribers_slot;
	ts_vault_entry *ghost;          /* vault_object.c: stands for another user's vault that does not exist */
} ts_daemon;

/* The caller of the message being handled, from the bus (never from arguments). */
typedef struct ts_caller {
	uid_t uid;
	pid_t pid;                      /* 0 when unknown */
} ts_caller;

static inline void ts_bus_message_unrefp(sd_bus_message **m) { sd_bus_message_unref(*m); }
#define _ts_cleanup_reply_ __attribute__((cleanup(ts_bus_message_unrefp)))

/* ---- log.c ------------------------------------------------------------------ */

enum { TS_LOG_ERR = 3, TS_LOG_WARNING = 4, TS_LOG_NOTICE = 5, TS_LOG_INFO = 6, TS_LOG_DEBUG = 7 };

/* Parse "err|warning|notice|info|debug" (or 3..7). -1 if unknown. */
int ts_log_parse_level(const char *s);
void ts_log_set_level(int level);
/*
 * One line on stderr, "<N>" prefixed so the journal keeps the priority, made
 * safe with ts_log_clean (so no argument can start a line of its own). Never
 * pass secret bytes.
 */
void ts_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * s as one printable line in out (cap bytes, NUL-terminated, cut to fit):
 * ASCII control characters and DEL, bytes that are not UTF-8, C1 controls,
 * U+2028/U+2029 and the bidirectional overrides each become "\xNN" per byte;
 * a backslash becomes "\\", so every escape in the output was made here.
 * Returns out.
 */
const char *ts_log_clean(const char *s, char *out, size_t cap);
/*
 * A caller-supplied word made safe for a log or audit line: [A-Za-z0-9._-]
 * kept, anything else '?', cut to size - 1; "-" for NULL or "". Returns buf
 * or the constant "-".
 */
const char *ts_log_word(const char *s, char *buf, size_t size);
/*
 * A security event, the one entry point for every event (log.c): one
 * stderr/journal line with fixed fields
 *   event=unlock vault=NAME owner=UID uid=U pid=P protector=ID result=ok|ERRORNAME
 * then the same event to the audit sinks (journal fields TOKENSEAL_EVENT=...
 * when journald is there, the --audit-log line: audit.c). vault and
 * protector may be NULL ("-"), owner TS_NO_OWNER ("-"); r is 0 or a
 * negative TS_E_*. owner is the vault's owner (names are per owner), uid the
 * caller's. Returns 0, or -TS_E_IO when the audit file could not be written
 * (callers that must not go on without their record check it).
 */
#define TS_NO_OWNER UINT32_MAX
int ts_audit(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector,
             int r);
/* owner as a log word: decimal, or "-" for TS_NO_OWNER. Returns buf or "-". */
const char *ts_log_owner(uint32_t owner, char buf[16]);

/* ---- secretfd.c ------------------------------------------------------------- */

/*
 * A secret fd is a pipe or a socket, nothing else: a regular file on FUSE
 * or a hung NFS mount, a device or a directory could block read() for as
 * long as it likes. 0, or -TS_E_INVALID_ARGS for any other kind of file.
 */
int ts_secretfd_check(int fd);
/* The message for an error of the functions below (-TS_E_INVALID_ARGS, -TS_E_TIMEOUT, ...). */
const char *ts_secretfd_strerror(int r);

typedef struct ts_secretfd_op ts_secretfd_op;
/*
 * Called once from the loop: r 0 with secret (secure memory, now the
 * callee's to ts_secure_free; NULL when the secret is empty) and its length,
 * or a negative TS_E_* (-TS_E_TIMEOUT, -TS_E_LIMIT, -TS_E_INVALID_ARGS).
 * The op is freed already.
 */
typedef void (*ts_secretfd_read_fn)(void *userdata, int r, uint8_t *secret, size_t len);
/*
 * Read a secret from fd (checked with ts_secretfd_check; a copy of it is
 * made non-blocking, which the caller's copy shares) until EOF, without ever
 * waiting in the loop: at most TS_SECRET_IN_MAX bytes within
 * TS_SECRET_FD_TIMEOUT_MS in all, one trailing "\n" stripped. done runs from
 * event's loop, never before this returns. 0 and *ret (for
 * ts_secretfd_cancel), or negative TS_E_* (done will not run).
 */
int ts_secretfd_read_start(sd_event *event, int fd, ts_secretfd_read_fn done, void *userdata, ts_secretfd_op **ret);
/* Stop a read without calling done (NULL is fine). */
void ts_secretfd_cancel(ts_secretfd_op *op);

/*
 * The secret of method call m's fd, for a handler that keeps no job of its
 * own: the first call starts the read and returns 0 (the handler returns 1
 * without replying; m is dispatched again when the read has ended), the
 * call from that second dispatch returns 1 with *ret, *ret_len as
 * ts_secretfd_read_fn gets them (the handler's to ts_secure_free). Negative
 * with error set (named after what, e.g. "secret_in") on failure, or Busy
 * when too many reads of the caller's uid are in flight. Whatever the
 * handler does before this call runs twice: only checks belong there. A
 * secret read but not taken (the second dispatch failed before this call,
 * or waits for polkit) is wiped 150 s after the read ended.
 */
int ts_secretfd_take(ts_daemon *d, sd_bus_message *m, int fd, const char *what, uint8_t **ret, size_t *ret_len,
                     sd_bus_error *error);
/* Drop every read of ts_secretfd_take in flight (shutdown): no reply. */
void ts_secretfd_stop(void);

/*
 * An output fd that ts_secretfd_write may take len bytes through: a pipe or
 * a socket (else -TS_E_INVALID_ARGS), and a pipe with room for len bytes now
 * (else -TS_E_IO), so that a full pipe is refused before any work is done.
 */
int ts_secretfd_check_out(int fd, size_t len);

/*
 * Write all of p (at most 4096 bytes) to fd, a pipe or a socket, at once or
 * not at all: never a wait. A full or closed pipe is -TS_E_IO, any other
 * kind of file -TS_E_INVALID_ARGS, so the caller can roll back.
 */
int ts_secretfd_write(int fd, const void *p, size_t len);

/* ---- daemon.c --------------------------------------------------------------- */

/*
 * Load every vault file: the owners' directories STATE/UID first, then files
 * of the flat layout of earlier versions (STATE/NAME.vault), each moved into
 * its owner's directory (the owner is read from the file).
 */
int ts_daemon_load_vaults(ts_daemon *d);
/*
 * Have a helper describe each token protector of the vaults loaded, and wait
 * for the answers (at most timeout_usec), before the daemon serves: no
 * property read or Unlock then waits for a helper (remote.h). The cache
 * keeps the descriptions of the records d holds. 0 or -TS_E_TIMEOUT (the
 * rest is described from the loop).
 */
int ts_daemon_describe_loaded(ts_daemon *d, uint64_t timeout_usec);
/* Queue v's token protectors to be described from the loop (those not described yet). */
void ts_daemon_describe_ahead(const ts_vault *v);
/* The vault (owner, name), or NULL. */
ts_vault_entry *ts_daemon_find(ts_daemon *d, uint32_t owner, const char *name);
ts_vault_entry *ts_daemon_find_path(ts_daemon *d, const char *path);
/* The object path of vault (owner, name); malloc()ed into *ret. 0 or -TS_E_NOMEM. */
int ts_vault_object_path(uint32_t owner, const char *name, char **ret);
/*
 * Take ownership of v (whose file bytes are in *disk, moved in) and add it;
 * dir is the directory its file is in (copied).
 */
int ts_daemon_add(ts_daemon *d, ts_vault *v, ts_buf *disk, const char *dir, const char *lock_reason,
                  ts_vault_entry **ret);
void ts_daemon_free(ts_daemon *d);

/* Lock one vault, record why, emit PropertiesChanged, log. */
void ts_daemon_lock_vault(ts_vault_entry *e, const char *reason, const ts_caller *caller);
/* Lock all vaults (shutdown). */
void ts_daemon_lock_all(ts_daemon *d, const char *reason);
/* (Re)arm the idle-lock timer of an unlocked vault after a use. */
void ts_daemon_touch(ts_vault_entry *e);
/*
 * Forget the k-of-n shares given to Unlock so far (expiry, an automatic lock
 * trigger): a later Unlock starts from none. Emits SharesNeeded when there
 * were any.
 */
void ts_daemon_forget_shares(ts_vault_entry *e, const char *why);
/* A share was kept and more are needed: start the [lock] share-timeout clock if it is not running. */
void ts_daemon_shares_pending(ts_vault_entry *e);
/* Write e->backoff to its side file (a failure is logged; the counters in memory still hold). */
void ts_daemon_save_backoff(ts_vault_entry *e);

/*
 * Put the in-memory vault back to the file as last written or read
 * (e->disk), whatever a change touched (protectors, escrow, root keys, the
 * vault secret): the vault is read back from those bytes. It stays unlocked
 * when the vault secret in memory opens the file (the change kept VS);
 * otherwise it is locked (reason "save-failed") and a protector of the file
 * opens it again. If the bytes cannot even be read back (out of memory), the
 * vault is locked and marked stale: nothing unlocks it until a reload works.
 * Emits PropertiesChanged. Returns 0, or the reload's negative TS_E_*.
 */
int ts_daemon_revert(ts_vault_entry *e);

/*
 * Persist the in-memory vault: serialize and save atomically. On failure the
 * vault is put back to the file (ts_daemon_revert), so memory never holds a
 * state that a restart would not find. Returns 0 or negative TS_E_* (the
 * save's).
 */
int ts_daemon_persist(ts_vault_entry *e);

/* sd_bus filter: drop NO_REPLY_EXPECTED calls to methods whose only effect is their reply (1: dropped). */
int ts_bus_drop_unanswered(sd_bus_message *m, void *userdata, sd_bus_error *error);

/* Identify the sender of m. 0 or negative TS_E_*. */
int ts_caller_get(sd_bus_message *m, ts_caller *ret);
/* Owner or root. */
int ts_caller_may_use(const ts_caller *c, const ts_vault *v);

/* Set a named D-Bus error for r (negative TS_E_*); msg NULL or "" gives the default text. Returns r mapped to -errno-ish for sd-bus. */
int ts_bus_error(sd_bus_error *error, int r, const char *msg);


/* ---- manager.c / vault_object.c ----------------------------------------------- */

int ts_manager_register(ts_daemon *d);
int ts_vault_objects_register(ts_daemon *d);
int ts_manager_emit_vault_added(ts_daemon *d, ts_vault_entry *e);
/* Emit PropertiesChanged for the vault's changeable properties. */
void ts_vault_object_emit_changed(ts_vault_entry *e);
/*
 * The error for a vault the caller may not see: UnknownObject, word for word
 * what sd-bus says for a path with no object, so a vault that exists and one
 * that does not look the same to other users. Returns a negative errno.
 */
int ts_vault_unknown(sd_bus_message *m, sd_bus_error *error);
/* Reading a vault's properties: owner or root when the read comes from a method call. 0 or an error set. */
int ts_vault_property_authorize(sd_bus *bus, ts_vault_entry *e, sd_bus_error *error);
/* Drop every Unlock and AddProtector still waiting for a token helper (shutdown): helpers killed, no reply. */
void ts_vault_object_cancel_jobs(ts_daemon *d);

/* Read an a{ss} into a ts_kv array (strings alias m). Limits TS_CONTEXT_*. */
int ts_bus_read_kv(sd_bus_message *m, ts_kv **ret, size_t *ret_n, size_t max);

/* XML of the Manager and Vault interfaces as served, for --print-introspection. malloc()ed. */
int ts_daemon_introspection(ts_daemon *d, char **ret);

/* ---- signals.c --------------------------------------------------------------- */

/*
 * Vault signals go only to connections that asked for them (Manager.Subscribe)
 * and may see the vault: its owner's and root's, each addressed alone. Call
 * ts_signals_start once the bus is attached (it follows connections going away).
 */
int ts_signals_start(ts_daemon *d);
void ts_signals_stop(ts_daemon *d);
int ts_signals_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_signals_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Fills a signal's body (called once per recipient). */
typedef int (*ts_signal_build_fn)(sd_bus_message *sig, void *userdata);
/* Send path's iface.member (body from build, may be NULL) to each subscriber allowed to see owner's vaults. */
int ts_signals_emit(ts_daemon *d, uint32_t owner, const char *path, const char *iface, const char *member,
                    ts_signal_build_fn build, void *userdata);

/* ---- autolock.c -------------------------------------------------------------- */

/*
 * Lock vaults when the user or the token goes away: logind's PrepareForSleep
 * (reason "suspend") and Session.Lock ("screen-lock"), trusted only from the
 * owner of org.freedesktop.login1; FIDO2 token removal ("token-removed"):
 * hidraw removal seen through sd-device events and inotify on /dev, and for unix: test devices a
 * once-a-second connect probe. Call after the bus is attached to d->event.
 */
int ts_autolock_start(ts_daemon *d);
/* Vault e was just unlocked with a protector of this type: watch its token. */
void ts_autolock_unlocked(ts_vault_entry *e, const char *protector_type);
/* A share of a k-of-n vault was given with a protector of this type: watch its token, forget shares when it goes. */
void ts_autolock_share(ts_vault_entry *e, const char *protector_type);
void ts_autolock_stop(ts_daemon *d);

/* ---- polkit.c ---------------------------------------------------------------- */

#define TS_POLKIT_ACTION_MANAGE_OTHER "org.tokenseal1.manage-other"
#define TS_POLKIT_ACTION_USE_OTHER "org.tokenseal1.use-other"

/*
 * May the sender of m do action on vault v (not theirs)? Asks
 * org.freedesktop.PolicyKit1 asynchronously, with the details "vault" (v's
 * name) and "owner" (v's owner uid, decimal): the first call returns 0
 * ("pending": the handler returns 1 without replying) and m is dispatched
 * again when the answer arrives; that second call returns 1 (allowed) or a
 * negative value with error set to AccessDenied. Busy when too many
 * questions of that sender, of its uid or of everyone are in flight. Without
 * polkit on the bus the answer is no (root never gets here). Never blocks
 * the daemon.
 */
int ts_polkit_check(ts_daemon *d, sd_bus_message *m, const char *action, const ts_vault *v, sd_bus_error *error);
/* Drop every question in flight (shutdown). */
void ts_polkit_stop(ts_daemon *d);

#endif
