/* nvcounter.h — a vault's TPM NV counter: binds its file to a value root cannot make go back. */
#ifndef TS_NVCOUNTER_H
#define TS_NVCOUNTER_H

#include <stddef.h>

#include "bus/state.h"

/*
 * A vault with a tpm2 protector gets a TPM NV counter (docs/FORMAT.md, "TPM
 * NV counter"): its header names the index and the value the file expects.
 * Every save writes that value as the last counter value known + 1 and then
 * increments the counter in a helper, off the loop; at start the counter is
 * read before the vault is served.
 */

/*
 * At load (start-up, before the loop runs; waits for a helper): the file of
 * v against its counter. 0 to serve it (no counter; the file's value is the
 * counter's, or one ahead: a crash between a save and its increment, which
 * is made up now; the TPM not reachable: served, logged, audited
 * rollback-unchecked; accepted: the value is re-based at the next save), or
 * -TS_E_ROLLBACK with why (cap bytes), logged and audited (rollback, with
 * file_counter and tpm_counter).
 */
int ts_nvcounter_check(ts_daemon *d, const ts_vault *v, int accepted, char *why, size_t cap);

/* Before e's vault is serialized: the value it will carry, a counter gained or given up since. */
void ts_nvcounter_saving(ts_vault_entry *e);

/* After it is on disk: the counter follows (increment, define or undefine; asynchronous, failures logged). */
void ts_nvcounter_saved(ts_vault_entry *e);

/*
 * How a counter just defined reaches the file of an unlocked vault: the
 * daemon's write path (ts_daemon_persist), which itself calls this module
 * before and after each save; so it is handed in once at start rather than
 * called by name. Unset, the counter goes into the header at the vault's
 * next save.
 */
void ts_nvcounter_set_persist(int (*persist)(ts_vault_entry *e));

/* Stop the helpers still working on counters (shutdown). */
void ts_nvcounter_shutdown(void);

#endif
