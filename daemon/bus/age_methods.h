/* age_methods.h — the Vault's age methods (age-plugin-tokenseal): the public recipient, and the unwrap of a stanza. */
#ifndef TS_BUS_AGE_METHODS_H
#define TS_BUS_AGE_METHODS_H

#include <systemd/sd-bus.h>

/*
 * sd-bus method handlers of org.tokenseal1.Vault (userdata: the
 * ts_vault_entry), as docs/DBUS-API.md describes them; the construction is
 * core/age.h's. Both need the vault unlocked: the X25519 key of a key
 * version is derived from that version's root key, inside the daemon.
 * Return 1 without replying while polkit is asked.
 */
/* AgeRecipient() -> (ay vault_id, u key_version, ay public_key): the current key version's public key. */
int ts_age_method_recipient(sd_bus_message *m, void *userdata, sd_bus_error *error);
/*
 * AgeUnwrap(u key_version, ay share, ay body) -> (ay file_key): the 16-byte
 * file key, only when the body authenticates under that version's key (a
 * retired version: KeyRetired). Never the X25519 output itself.
 */
int ts_age_method_unwrap(sd_bus_message *m, void *userdata, sd_bus_error *error);

#endif
