/* store.h — the vault file store: one CBOR file per vault, written atomically, previous generation kept. */
#ifndef TS_STORE_H
#define TS_STORE_H

#include <stdint.h>
#include <unistd.h>

#include "core/buf.h"

/*
 * Files: DIR/NAME.vault (current) and DIR/NAME.vault.bak (previous
 * generation). Writes go to DIR/.NAME.vault.tmp.XXXXXX, fsync, link the old
 * file to .bak (replacing it), rename the temp over the file, fsync DIR.
 * A crash at any point leaves NAME.vault either old or new.
 *
 * A vault is named by its owner and its name: its files live in the owner's
 * directory STATE/UID (ts_store_owner_dir), so two users' vaults of the same
 * name never share a file. Files of the flat layout of earlier versions
 * (STATE/NAME.vault) are moved there by ts_store_adopt when the daemon
 * loads them.
 */

/* "STATE/UID" into buf. -TS_E_INVALID_ARGS when it does not fit. */
int ts_store_owner_dir(const char *state_dir, uint32_t owner, char *buf, size_t size);

/*
 * Calls cb for each owner directory STATE/UID (a real directory whose name
 * is a canonical decimal uid), in ascending uid order; stops on cb error.
 */
int ts_store_list_owners(const char *state_dir, int (*cb)(void *ud, uint32_t owner), void *ud);

/*
 * Move STATE/NAME.vault (and NAME.vault.bak) of the flat layout into the
 * owner's directory, creating it. Never replaces a file: when the owner's
 * directory already has NAME.vault, the flat file is removed only if it is
 * byte for byte the same (a move interrupted by a crash), else
 * -TS_E_VAULT_EXISTS and nothing moves. A crash at any point leaves the
 * vault readable in at least one of the two places.
 */
int ts_store_adopt(const char *state_dir, const char *name, uint32_t owner);

/* Create DIR (mode 0700) if missing. */
int ts_store_init(const char *dir);

/* Atomically replace DIR/NAME.vault with data (mode 0600). */
int ts_store_save(const char *dir, const char *name, const uint8_t *data, size_t len);

/*
 * Atomically replace the file fn in the directory dfd with data (mode
 * 0600): a temp file ".BASE" INFIX "XXXXXX" created exclusively, written
 * and fsynced, renamed over fn, then dfd fsynced. On failure fn is the old
 * file and no temp file is left. 0, -TS_E_IO, -TS_E_INVALID_ARGS.
 */
int ts_store_replace_at(int dfd, const char *fn, const char *base, const char *infix, const void *data, size_t len);

/* close(2) for __attribute__((cleanup)): an fd that is -1 is left alone. */
static inline void ts_store_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}
#define _cleanup_fd_ __attribute__((cleanup(ts_store_closep)))

/* write(2) all of buf to fd, again after EINTR and short writes: 0 or -TS_E_IO. */
int ts_store_write_all(int fd, const void *buf, size_t len);

/* Read DIR/NAME.vault (at most TS_VAULT_FILE_MAX). -TS_E_NO_SUCH_VAULT, -TS_E_IO, -TS_E_LIMIT. */
int ts_store_load(const char *dir, const char *name, ts_buf *out);

/* Read DIR/NAME.vault.bak. */
int ts_store_load_backup(const char *dir, const char *name, ts_buf *out);

/*
 * Does DIR hold NAME.vault (NAME.vault.bak with backup), whatever it is (a
 * file that cannot be loaded, a symlink, a directory: the name is taken)?
 * 1 or 0 (also when DIR is not there); -TS_E_IO when that cannot be told
 * (out of descriptors, DIR unreadable), which is not an answer either way.
 */
int ts_store_name_taken(const char *dir, const char *name, int backup);

/*
 * A side file of vault NAME: DIR/NAME.SUFFIX (SUFFIX [a-z]{1,16}, not
 * "vault"), e.g. its unlock back-off counters. Replaced atomically (temp
 * file, fsync, rename, fsync DIR) with no backup kept; read at most
 * TS_STORE_SIDE_MAX bytes. Loading a missing one gives -TS_E_NO_SUCH_VAULT.
 */
#define TS_STORE_SIDE_MAX 65536
int ts_store_save_side(const char *dir, const char *name, const char *suffix, const uint8_t *data, size_t len);
int ts_store_load_side(const char *dir, const char *name, const char *suffix, ts_buf *out);

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

/*
 * Remove DIR/NAME.vault.bak (none: 0) and fsync DIR: after a revocation the
 * previous generation, which the revoked token still opens, must not stay
 * on disk. 0 or -TS_E_IO.
 */
int ts_store_remove_backup(const char *dir, const char *name);

/* Remove DIR/NAME.vault and its backup. */
int ts_store_remove(const char *dir, const char *name);

#endif
