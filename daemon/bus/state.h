/* state.h — tokensealed's state: the daemon (bus, loop, vault table) and one loaded vault. Types only. */
#ifndef TS_BUS_STATE_H
#define TS_BUS_STATE_H

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
struct ts_vault_entry;

/*
 * A listener of the "vault unlocked" event (daemon.h, ts_daemon_unlocked):
 * vault e was opened, or confirmed open, with protector id; p is its record
 * (NULL if it went meanwhile).
 */
typedef void (*ts_unlocked_fn)(struct ts_vault_entry *e, const char *protector_id, const ts_protector_record *p);
#define TS_UNLOCKED_LISTENERS_MAX 8

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
	ts_backoff *backoff;            /* wrong secrets per source (NULL: none yet); the side file NAME.backoff */
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

/*
 * One client's connection to the private socket (direct.c): the same
 * vtables as on the bus, on an sd-bus server of its own. Who it is comes
 * from the socket (SO_PEERCRED and SO_PEERGROUPS at accept, and the
 * process's start time then, for polkit's unix-process subject), never from
 * sd-bus: sd-bus reads the client's bytes from a socketpair of the daemon's
 * own (direct.c), whose peer is the daemon.
 */
typedef struct ts_direct_conn {
	struct ts_daemon *d;
	sd_bus *bus;
	uid_t uid;
	pid_t pid;
	uint64_t start_time;            /* /proc/PID/stat field 22 at accept; 0 unknown */
	int pidfd;                      /* the process's (ts_direct_peer_pidfd), or -1 */
	gid_t gid;                      /* SO_PEERCRED's gid, and SO_PEERGROUPS, at accept */
	gid_t *groups;
	size_t n_groups;
	unsigned id;                    /* "direct:ID" where a bus name would stand (logs, per-caller counts) */
	int subscribed;                 /* Manager.Subscribe on this connection */
	struct ts_direct_io *io;        /* direct.c: the client's bytes on their way to sd-bus */
	sd_bus_message *again[64];      /* admitted calls sent through the filters once more (ts_direct_again) */
	unsigned n_again;
	struct ts_direct_conn *next;
} ts_direct_conn;

typedef struct ts_daemon {
	sd_bus *bus;
	sd_event *event;
	const char *state_dir;
	uint64_t idle_lock_usec;        /* 0: never */
	ts_config config;
	ts_vault_entry *vaults;
	size_t n_vaults;
	size_t load_skipped;            /* vault files found at start that could not be loaded */
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
	ts_unlocked_fn unlocked_listeners[TS_UNLOCKED_LISTENERS_MAX];  /* daemon.c: ts_daemon_listen_unlocked */
	size_t n_unlocked_listeners;
	ts_direct_conn *direct;         /* direct.c: clients of the private socket */
	sd_event_source *direct_listener;
	sd_event_source *direct_post;   /* direct.c: the unread-messages check after each turn */
	sd_event_source *trim_timer;    /* daemon.c: the heap given back after the last batch (ts_daemon_trim_later) */
} ts_daemon;

#endif
