/* signals.h — vault signals, sent only to subscribers who may see the vault. */
#ifndef TS_BUS_SIGNALS_H
#define TS_BUS_SIGNALS_H

#include <stdint.h>

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * Vault signals go only to connections that asked for them (Manager.Subscribe)
 * and may see the vault: its owner's and root's, each addressed alone. Call
 * ts_signals_start once the bus is attached (it follows connections going away).
 */
int ts_signals_start(ts_daemon *d);
void ts_signals_stop(ts_daemon *d);
int ts_signals_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_signals_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* Fills a signal's body (called once per recipient). */
typedef int (*ts_signal_build_fn)(sd_bus_message *sig, void *userdata);
/* Send path's iface.member (body from build, may be NULL) to each subscriber allowed to see owner's vaults. */
int ts_signals_emit(ts_daemon *d, uint32_t owner, const char *path, const char *iface, const char *member,
                    ts_signal_build_fn build, void *userdata);

#endif
