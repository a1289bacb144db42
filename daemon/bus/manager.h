/* manager.h — org.tokenseal1.Manager at /org/tokenseal1: create, list and look up vaults, subscribe. */
#ifndef TS_BUS_MANAGER_H
#define TS_BUS_MANAGER_H

#include "bus/state.h"

/* Serve the Manager at TS_MANAGER_PATH on bus (checked against its authorization table first). */
int ts_manager_register(ts_daemon *d, sd_bus *bus);
int ts_manager_emit_vault_added(ts_daemon *d, ts_vault_entry *e);

#endif
