/* handout.h — a secret the daemon minted (a recovery key) reaches its caller only once the vault that accepts it is on disk. */
#ifndef TS_HANDOUT_H
#define TS_HANDOUT_H

#include <stddef.h>

#include "bus/state.h"

/*
 * The vault in memory holds a new protector new_id whose secret (len bytes,
 * its trailing newline included) the daemon minted; old_id (NULL or "") is a
 * protector the new one replaces, still in the vault. In order:
 *   1. save the vault with both;
 *   2. write secret to fd; if that fails, remove new_id and save again;
 *   3. remove old_id and save.
 * So the file opens with a secret the caller holds at every step: a key is
 * written only for a file that accepts it, and the old one stays valid until
 * the new one has been delivered. A failed save is undone in memory
 * (ts_daemon_persist). Returns 0, or a negative TS_E_* with msg saying what
 * stayed as it was ("" where the error's own text says it).
 */
int ts_handout_secret(ts_vault_entry *e, const char *new_id, const char *old_id, int fd, const char *secret,
                      size_t len, char *msg, size_t msglen);

#endif
