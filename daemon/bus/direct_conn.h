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

/*
 * What a direct client's message brings in, as far as sd-bus lets us see it:
 * its bytes (header fields sd-bus knows, and the body), the file descriptors
 * its arguments carry, and its values (each argument, container and array
 * item: what walking it costs). The max_* are set by the caller: the walk
 * stops past any of them.
 */
typedef struct ts_direct_msg_size {
	uint64_t bytes, max_bytes;
	unsigned fds, max_fds;
	unsigned values, max_values;
} ts_direct_msg_size;
/*
 * Walk m's body (then rewind it): 1 when it is past st's bounds, 0 within
 * them, a negative errno when the body does not parse (the method handler
 * answers that as for any caller).
 */
int ts_direct_message_size(sd_bus_message *m, ts_direct_msg_size *st);

#endif
