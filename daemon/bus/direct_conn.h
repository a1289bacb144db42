/* direct_conn.h — what others ask of a private-socket connection (direct.c): which one a bus is, whether its process is still there. */
#ifndef TS_BUS_DIRECT_CONN_H
#define TS_BUS_DIRECT_CONN_H

#include <stdint.h>

#include <systemd/sd-bus.h>

#include "bus/state.h"

/* The direct connection bus belongs to, or NULL (the system bus, or none). */
ts_direct_conn *ts_direct_find(ts_daemon *d, sd_bus *bus);
/* Is the process that connected still the one running under its pid (its start time unchanged)? */
int ts_direct_peer_alive(const ts_direct_conn *c);
/* Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot; 0 when unknown. */
uint64_t ts_direct_start_time(pid_t pid);

#endif
