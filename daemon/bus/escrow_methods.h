/* escrow_methods.h — Vault.SetEscrow and the EscrowChanged signal: escrow of the vault secret to officers' keys. */
#ifndef TS_BUS_ESCROW_METHODS_H
#define TS_BUS_ESCROW_METHODS_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * SetEscrow(as recipients, u threshold) -> (): seal VS (or k-of-n shares of
 * it) to the recipients' keys; the owner's or root's decision only, never
 * polkit's. Dispatched again once RSA recipients' box keys are held
 * (escrow_ready.h).
 */
int ts_escrow_method_set_escrow(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Send EscrowChanged (the recipients' fingerprints) to e's subscribers. 0 or a negative errno. */
int ts_escrow_emit_changed(ts_vault_entry *e);
/* A listener of the unlocked event (ts_daemon_listen_unlocked): the protector RotateRecoveryKey("") means. */
void ts_escrow_note_unlock(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p);

#endif
