/* protector_methods.h — Vault.AddProtector, RevokeProtector and ProbeProtectors. */
#ifndef TS_BUS_PROTECTOR_METHODS_H
#define TS_BUS_PROTECTOR_METHODS_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * AddProtector(s type, a{ss} options, h secret_in, h secret_out) -> (s id):
 * enroll a token in tokenseal-helper (a job, as Unlock's; the handler
 * returns 1 and the reply follows), re-check that the vault is still
 * unlocked, save; a new recovery key is written to secret_out only once the
 * file that accepts it is on disk (handout.h).
 */
int ts_protector_method_add(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* RevokeProtector(s id) -> (): remove a protector (its token can no longer unlock the file from now on). */
int ts_protector_method_revoke(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* ProbeProtectors() -> (a(ss) presence): which tokens are there; one round per vault, later calls share it. */
int ts_protector_method_probe(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Drop every AddProtector and ProbeProtectors still waiting (shutdown): helpers killed, no reply. */
void ts_protector_methods_cancel_jobs(ts_daemon *d);

#endif
