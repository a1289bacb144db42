/* unlock.h — Vault.Unlock and Lock. */
#ifndef TS_BUS_UNLOCK_H
#define TS_BUS_UNLOCK_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * Unlock(s protector, h secret, a{ss} options) -> (s protector_used, u
 * shares_needed) (docs/DBUS-API.md). The call is kept as a job: the secret
 * is read from the loop, each candidate protector is tried in turn (a token
 * in tokenseal-helper, answered through a callback), and the reply is sent
 * when the job ends; the handler itself returns 1 without replying. A
 * success runs the unlocked event's listeners (ts_daemon_unlocked).
 */
int ts_unlock_method_unlock(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Lock() -> (): lock the vault now (reason "request"). */
int ts_unlock_method_lock(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Drop every Unlock still waiting (shutdown): helpers killed, no reply. */
void ts_unlock_cancel_jobs(ts_daemon *d);

#endif
