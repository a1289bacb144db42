/* rekey.h — Vault.RevokeAndRekey and RotateRecoveryKey: true revocation by re-keying the vault. */
#ifndef TS_BUS_REKEY_H
#define TS_BUS_REKEY_H

#include <systemd/sd-bus.h>

/*
 * RevokeAndRekey(s id, h secrets) -> (as kept, as dropped) and
 * RotateRecoveryKey(s protector, h secrets, h recovery_key_out) -> (s id,
 * as kept, as dropped) (docs/DBUS-API.md): a new vault secret and root
 * key, re-wrapped for every protector kept. The owner's or root's decision
 * only. The handler returns 1 without replying while the secrets are read
 * (ts_secretfd_take), box keys are wrapped (escrow_ready.h) or the
 * protectors' KEKs are asked of tokenseal-helper (a job); the call is
 * dispatched again each time and answers once.
 */
int ts_rekey_method_revoke_and_rekey(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_rekey_method_rotate_recovery_key(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Drop every re-key waiting for the token helper (shutdown): helpers killed, no reply. */
void ts_rekey_stop(void);

#endif
