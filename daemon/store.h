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

/* Remove DIR/NAME.vault and its backup. */
int ts_store_remove(const char *dir, const char *name);

#endif
