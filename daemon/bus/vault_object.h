/* vault_object.h — org.tokenseal1.Vault: one object per vault under /org/tokenseal1/user/UID/vault/. */
#ifndef TS_BUS_VAULT_OBJECT_H
#define TS_BUS_VAULT_OBJECT_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * Serve the Vault interface under /org/tokenseal1/user/ on d->bus (every
 * vault as its object; the ghost for others' paths) and register the
 * unlocked event's listeners. 0 or a negative errno.
 */
int ts_vault_objects_register(ts_daemon *d);
/* Drop every Unlock, AddProtector and ProbeProtectors still waiting for a token helper (shutdown): helpers killed, no reply. */
void ts_vault_object_cancel_jobs(ts_daemon *d);

#endif
