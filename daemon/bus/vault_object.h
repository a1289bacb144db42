/* vault_object.h — org.tokenseal1.Vault: one object per vault under /org/tokenseal1/user/UID/vault/. */
#ifndef TS_BUS_VAULT_OBJECT_H
#define TS_BUS_VAULT_OBJECT_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * Once per daemon: check the vtable against the authorization table,
 * register the unlocked event's listeners, make the ghost. 0 or a
 * negative errno.
 */
int ts_vault_objects_init(ts_daemon *d);
/*
 * Serve the Vault interface under /org/tokenseal1/user/ on bus (every
 * vault as its object; the ghost for others' paths): the system bus, or
 * one client's direct connection (direct.c). 0 or a negative errno.
 */
int ts_vault_objects_serve(ts_daemon *d, sd_bus *bus);
/* Drop every Unlock, AddProtector and ProbeProtectors still waiting for a token helper (shutdown): helpers killed, no reply. */
void ts_vault_object_cancel_jobs(ts_daemon *d);

#endif
