/* properties.h — org.tokenseal1.Vault's properties (sd-bus getters) and their PropertiesChanged signal. */
#ifndef TS_BUS_PROPERTIES_H
#define TS_BUS_PROPERTIES_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/* Emit PropertiesChanged for the vault's changeable properties (to its subscribers; Protectors invalidated only). */
void ts_properties_emit_changed(ts_vault_entry *e);

/*
 * sd-bus property getters of the Vault interface (userdata: the
 * ts_vault_entry). Each answers only a read its caller may make
 * (ts_vault_authorize, the table's property row); sd_bus_property_get_t's contract otherwise.
 */
int ts_prop_name(sd_bus *bus, const char *path, const char *interface, const char *property, sd_bus_message *reply,
                 void *userdata, sd_bus_error *error);
int ts_prop_id(sd_bus *bus, const char *path, const char *interface, const char *property, sd_bus_message *reply,
               void *userdata, sd_bus_error *error);
int ts_prop_owner(sd_bus *bus, const char *path, const char *interface, const char *property, sd_bus_message *reply,
                  void *userdata, sd_bus_error *error);
int ts_prop_locked(sd_bus *bus, const char *path, const char *interface, const char *property, sd_bus_message *reply,
                   void *userdata, sd_bus_error *error);
int ts_prop_key_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_min_key_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_lock_reason(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_lock_changed(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_protectors(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_escrow_recipients(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_shares_needed(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_prop_policy_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error);

#endif
