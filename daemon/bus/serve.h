/* serve.h — what one connection serves: the Manager, every vault, the object manager, the unanswered-call filter. */
#ifndef TS_BUS_SERVE_H
#define TS_BUS_SERVE_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

/*
 * Serve the daemon's objects on bus: the system bus (d->bus) or one
 * client's direct connection. ts_vault_objects_init has run. Everything
 * registered lives as long as bus. 0 or a negative errno.
 */
int ts_serve(ts_daemon *d, sd_bus *bus);

#endif
