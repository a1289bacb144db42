/* authorize.h — who may call a Vault method or read its properties, decided in one place. */
#ifndef TS_BUS_AUTHORIZE_H
#define TS_BUS_AUTHORIZE_H

#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"

/*
 * The error for a vault the caller may not see: UnknownObject, word for word
 * what sd-bus says for a path with no object, so a vault that exists and one
 * that does not look the same to other users. Returns a negative errno.
 */
int ts_vault_unknown(sd_bus_message *m, sd_bus_error *error);

/*
 * Who is calling m (into *caller), and may they use vault e for what (the
 * audit event's name)? 0: yes. <0: no, error set. 1: polkit is being asked
 * about a caller who is neither the owner nor root; the handler returns 1
 * without replying and runs again with the answer (polkit.c). Callers test
 * "!= 0". Someone else's vault that polkit does not open to the caller
 * looks exactly like no vault (UnknownObject), and so does the ghost.
 */
int ts_vault_authorize(sd_bus_message *m, ts_vault_entry *e, const char *what, ts_caller *caller,
                       sd_bus_error *error);
/*
 * The escrow and re-key methods: the owner (or root) only, never polkit, and
 * the vault unlocked. 0, or an error set (UnknownObject, with an audit
 * record of what refused, for anyone else; Locked).
 */
int ts_vault_authorize_owner(sd_bus_message *m, ts_vault_entry *e, const char *what, ts_caller *caller,
                             sd_bus_error *error);
/* 0 when e is unlocked, else -EIO with Locked set ("vault 'NAME' is locked (REASON)"). */
int ts_vault_require_unlocked(ts_vault_entry *e, sd_bus_error *error);
/* Reading a vault's properties: owner or root when the read comes from a method call. 0 or an error set. */
int ts_vault_property_authorize(sd_bus *bus, ts_vault_entry *e, sd_bus_error *error);

#endif
