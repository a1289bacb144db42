/* vault_object.h — org.tokenseal1.Vault: one object per vault under /org/tokenseal1/user/UID/vault/. */
#ifndef TS_BUS_VAULT_OBJECT_H
#define TS_BUS_VAULT_OBJECT_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

int ts_vault_objects_register(ts_daemon *d);
/* Emit PropertiesChanged for the vault's changeable properties. */
void ts_vault_object_emit_changed(ts_vault_entry *e);
/*
 * The error for a vault the caller may not see: UnknownObject, word for word
 * what sd-bus says for a path with no object, so a vault that exists and one
 * that does not look the same to other users. Returns a negative errno.
 */
int ts_vault_unknown(sd_bus_message *m, sd_bus_error *error);
/* Reading a vault's properties: owner or root when the read comes from a method call. 0 or an error set. */
int ts_vault_property_authorize(sd_bus *bus, ts_vault_entry *e, sd_bus_error *error);
/* Drop every Unlock and AddProtector still waiting for a token helper (shutdown): helpers killed, no reply. */
void ts_vault_object_cancel_jobs(ts_daemon *d);

#endif
