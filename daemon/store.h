/* store.h — the vault file store: one CBOR file per vault, written atomically, previous generation kept. */
#ifndef TS_STORE_H
#define TS_STORE_H

#include "core/buf.h"

/*
 * Files: DIR/NAME.vault (current) and DIR/NAME.vault.bak (previous
 * generation). Writes go to DIR/.NAME.vault.tmp.XXXXXX, fsync, link the old
 * file to .bak (replacing it), rename the temp over the file, fsync DIR.
 * A crash at any point leaves NAME.vault either old or new.
 */

/* Create DIR (mode 0700) if missing. */
int ts_store_init(const char *dir);

/* Atomically replace DIR/NAME.vault with data (mode 0600). */
int ts_store_save(const char *dir, const char *name, const uint8_t *data, size_t len);

/* Read DIR/NAME.vault (at most TS_VAULT_FILE_MAX). -TS_E_NO_SUCH_VAULT, -TS_E_IO, -TS_E_LIMIT. */
int ts_store_load(const char *dir, const char *name, ts_buf *out);

/* Read DIR/NAME.vault.bak. */
int ts_store_load_backup(const char *dir, const char *name, ts_buf *out);

/* Calls cb for each NAME with a DIR/NAME.vault file (valid names only); stops on cb error. Stale temp files are removed. */
int ts_store_list(const char *dir, int (*cb)(void *ud, const char *name), void *ud);

/*
 * The state directory's lock: DIR/tokensealed.lock (created mode 0600),
 * flock(LOCK_EX | LOCK_NB). tokensealed holds it for its lifetime and an
 * offline rewrite (tokenseal escrow recover) for its whole duration, so the
 * two never write the same vault files at once. *ret_fd holds the lock;
 * ts_store_unlock releases it. -TS_E_BUSY when another process holds it,
 * -TS_E_IO otherwise.
 */
#define TS_STORE_LOCK_FILE "tokensealed.lock"
int ts_store_lock(const char *dir, int *ret_fd);
void ts_store_unlock(int fd);

/* Remove DIR/NAME.vault and its backup. */
int ts_store_remove(const char *dir, const char *name);

#endif
