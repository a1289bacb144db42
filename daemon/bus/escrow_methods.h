/* escrow_methods.h — Vault methods and properties for escrow, true revocation (re-keying), k-of-n and policy status. */
#ifndef TS_BUS_ESCROW_METHODS_H
#define TS_BUS_ESCROW_METHODS_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/* Vault interface additions: SetEscrow, RevokeAndRekey, EscrowRecipients, SharesNeeded, PolicyStatus. */
int ts_escrow_method_set_escrow(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_escrow_method_revoke_and_rekey(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Drop every RevokeAndRekey waiting for the token helper (shutdown): helpers killed, no reply. */
void ts_escrow_methods_stop(void);
/* A listener of the unlocked event (ts_daemon_listen_unlocked): the protector RotateRecoveryKey("") means. */
void ts_escrow_note_unlock(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p);
int ts_escrow_method_rotate_recovery_key(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_escrow_prop_recipients(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_escrow_prop_shares_needed(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error);
int ts_escrow_prop_policy_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error);

#endif
