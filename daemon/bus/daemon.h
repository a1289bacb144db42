/* daemon.h — the vault table: loading, persisting with rollback, locking, idle and share timers. */
#ifndef TS_DAEMON_H
#define TS_DAEMON_H

#include <stdint.h>

#include "bus/message.h"
#include "bus/state.h"

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

/*
 * The "vault unlocked" event. Who needs to know registers once at start
 * (vault_object.c: autolock's token watch, the policy's [keys] max-age, the
 * escrow methods' last unlock); ts_daemon_unlocked runs each listener, in
 * the order registered, when Unlock has opened (or confirmed) the vault and
 * before it records and answers the call. Registering fn twice keeps one.
 * 0, or -TS_E_LIMIT past TS_UNLOCKED_LISTENERS_MAX.
 */
int ts_daemon_listen_unlocked(ts_daemon *d, ts_unlocked_fn fn);
void ts_daemon_unlocked(ts_vault_entry *e, const char *protector_id);

/* Lock one vault, record why, emit PropertiesChanged, log. */
void ts_daemon_lock_vault(ts_vault_entry *e, const char *reason, const ts_caller *caller);
/* Lock all vaults (shutdown). */
void ts_daemon_lock_all(ts_daemon *d, const char *reason);
/* (Re)arm the idle-lock timer of an unlocked vault after a use. */
void ts_daemon_touch(ts_vault_entry *e);
/*
 * After a batch of TS_TRIM_MIN_ITEMS or more, by a caller the vault's rules
 * let in (data_methods.c): once no such batch has come for TS_TRIM_USEC,
 * give the heap's free memory back to the system (malloc_trim), so that a
 * burst of large messages does not stay in the daemon's RSS. Others' calls,
 * refused or malformed ones and small batches never arm it: a trim walks
 * the heap, and nobody else decides when.
 */
#define TS_TRIM_USEC (1000ull * 1000)
#define TS_TRIM_MIN_ITEMS 1000
void ts_daemon_trim_later(ts_daemon *d);
/*
 * Forget the k-of-n shares given to Unlock so far (expiry, an automatic lock
 * trigger): a later Unlock starts from none. Emits SharesNeeded when there
 * were any.
 */
void ts_daemon_forget_shares(ts_vault_entry *e, const char *why);
/* A share was kept and more are needed: start the [lock] share-timeout clock if it is not running. */
void ts_daemon_shares_pending(ts_vault_entry *e);
/* e's back-off counters: an empty table while it has none (read only). */
const ts_backoff *ts_daemon_backoff(const ts_vault_entry *e);
/* The same, made at the first wrong secret to count; NULL when out of memory. */
ts_backoff *ts_daemon_backoff_mut(ts_vault_entry *e);
/* Write e's back-off counters to its side file: 0, or the error, logged (the counters in memory still hold). */
int ts_daemon_save_backoff(ts_vault_entry *e);

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

#endif
