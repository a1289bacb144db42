/* unlock_backoff.h — Unlock's recovery-key back-off: an attempt counted (and saved) before its check, settled after. */
#ifndef TS_UNLOCK_BACKOFF_H
#define TS_UNLOCK_BACKOFF_H

#include <stddef.h>

#include "core/backoff.h"
#include "bus/state.h"

/*
 * A secret is about to reach e's recovery protectors from source: refused
 * (-TS_E_BUSY, why says how long) while the source waits; otherwise counted
 * now and saved, *before keeping the counter it went to as it was. Returns
 * 0 to go on, or an error with why set and nothing counted (see the .c).
 */
int ts_unlock_backoff_reserve(ts_vault_entry *e, const char *source, ts_backoff_source *before, char *why,
                              size_t why_len);

/*
 * The reserved attempt is over without a wrong secret: reset (1, a recovery
 * key of source's own counter opened the vault) or given back (0). Returns
 * 1 when the side file must be saved (ts_daemon_save_backoff, after the reply).
 */
int ts_unlock_backoff_settle(ts_vault_entry *e, const char *source, const ts_backoff_source *before, int reset);

#endif
