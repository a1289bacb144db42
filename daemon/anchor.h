/* anchor.h — the generation anchor: the last generation written of each vault, kept outside its vault file. */
#ifndef TS_ANCHOR_H
#define TS_ANCHOR_H

#include <stdint.h>

#include "core/vault.h"

/*
 * STATE/generations/ID (ID: the vault id in lower-case hex, 32 digits), one
 * small file per vault (mode 0600, directory 0700, both root's like the rest
 * of the state directory):
 *
 *   tokenseal-anchor v1
 *   generation N
 *   owner UID
 *   name NAME
 *
 * N is the generation of the last vault file the daemon wrote (or accepted
 * at load); owner and name are there for the administrator, the id is the
 * key. Replaced atomically (temp file, fsync, rename, fsync the directory).
 * A vault file whose generation is below N has been put back from an older
 * copy. docs/FORMAT.md, "Generation anchor".
 */
#define TS_ANCHOR_DIR "generations"
#define TS_ANCHOR_FILE_MAX 256

/*
 * The anchor of vault id: *ret_gen. -TS_E_NO_SUCH_VAULT when there is none,
 * -TS_E_CORRUPT when the file is not an anchor (never half-trusted), -TS_E_IO.
 */
int ts_anchor_load(const char *state_dir, const uint8_t id[TS_VAULT_ID_BYTES], uint64_t *ret_gen);

/*
 * Set the anchor of v to generation gen (higher or lower: the caller
 * decides), creating STATE/generations if missing. 0, -TS_E_IO, -TS_E_INVALID_ARGS.
 */
int ts_anchor_save(const char *state_dir, const ts_vault *v, uint64_t gen);

/* Remove temp files an interrupted ts_anchor_save left (start-up only, never while saving). */
void ts_anchor_sweep(const char *state_dir);

#endif
