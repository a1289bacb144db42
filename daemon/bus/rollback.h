/* rollback.h — no silent rollback: vault files older than their generation anchor are refused at load. */
#ifndef TS_ROLLBACK_H
#define TS_ROLLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "bus/state.h"

/*
 * tokensealed --accept-rollback OWNER:NAME:GENERATION: serve vault NAME of
 * uid OWNER from a file of exactly that generation although its anchor is
 * higher (disaster recovery), lowering the anchor, with a rollback-accept
 * audit record. At most 16. 0, or -TS_E_INVALID_ARGS / -TS_E_LIMIT.
 */
int ts_rollback_accept(const char *spec);

/*
 * At load, the file of vault v (parsed, not yet served) against its anchor:
 * 0 to serve it (no anchor yet, or one at or below the file's generation:
 * the anchor is then raised to it, or an accepted rollback), or
 * -TS_E_ROLLBACK with why (cap bytes) saying what to do; the refusal is
 * logged and audited (event rollback) and remembered for GetVault.
 */
int ts_rollback_check(ts_daemon *d, const ts_vault *v, char *why, size_t cap);

/* After a vault file was saved: its anchor follows (a failure is logged; the next load catches up). */
void ts_rollback_saved(ts_vault_entry *e);

/*
 * After a saved change that took a way in away (a revocation, a retired root
 * key, a rotated recovery key): remove NAME.vault.bak, the generation that
 * way still opens. A failure is logged; the anchor refuses that file anyway.
 */
void ts_rollback_drop_backup(ts_vault_entry *e, const char *why);

/* Vault (owner, name) refused at load: 1 and the message for its owner, or 0. */
int ts_rollback_refused(uint32_t owner, const char *name, char *msg, size_t cap);

#endif
