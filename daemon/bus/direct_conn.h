/* direct_conn.h — what others ask of a private-socket connection (direct.c): which one a bus is, whether its process is still there. */
#ifndef TS_BUS_DIRECT_CONN_H
#define TS_BUS_DIRECT_CONN_H

#include <stdint.h>

#include <systemd/sd-bus.h>

#include "bus/state.h"

/* The direct connection bus belongs to, or NULL (the system bus, or none). */
ts_direct_conn *ts_direct_find(ts_daemon *d, sd_bus *bus);
/* The same, for callers that have no daemon at hand: the connections of the daemon that listens (ts_direct_listen). */
void ts_direct_serving(ts_daemon *d);
ts_direct_conn *ts_direct_of(sd_bus *bus);
/*
 * m, a call already admitted on its connection, is about to go through the
 * filters again (ts_bus_dispatch_again, after polkit or a helper answered):
 * let it pass unchecked once. 0 (also for a bus that is not direct), or
 * -ENOBUFS when too many calls of the connection wait for that.
 */
int ts_direct_again(sd_bus_message *m);
/* Was m let through by ts_direct_again? Forgets it: 1 or 0. */
int ts_direct_take_again(sd_bus_message *m);
/*
 * A direct caller's credentials for the policy's [unwrap] rules, as sd-bus
 * reports a bus caller's: the gid and groups from the socket at accept, the
 * unit, user unit, slice and executable from /proc/PID, read only while the
 * process that connected still runs under that pid (ts_direct_peer_alive).
 * A negative errno when they cannot be had.
 */
int ts_direct_creds(const ts_direct_conn *c, uint64_t mask, sd_bus_creds **ret);
/*
 * Is the process that connected still running under its pid? Only with a
 * pidfd (ts_direct_peer_open): while it runs (not exited, not a zombie),
 * its pid is not another's. Without one, never.
 */
int ts_direct_peer_alive(const ts_direct_conn *c);
/*
 * c->pidfd and c->start_time for the peer of socket fd, whose SO_PEERCRED
 * pid and uid c holds. The pidfd is of the process that connected where
 * the kernel has SO_PEERPIDFD (Linux 6.5), else of the process under the
 * pid now (pidfd_open, Linux 5.3), which may have taken the pid over
 * between the connect and the accept; -1 when neither. The start time is
 * read while that process runs, and is 0 (the process counts as gone) when
 * it does not, when there is no pidfd, or when none of its uids (real,
 * effective, saved, fs) is the socket's: a pid taken over by another
 * user's process is not the caller.
 */
void ts_direct_peer_open(ts_direct_conn *c, int fd);
/* /proc/PID/FILE into buf, NUL-terminated (at most size - 1 bytes, one read): its length, or -1. */
ssize_t ts_proc_read(pid_t pid, const char *file, char *buf, size_t size);
/* Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot; 0 when unknown. */
uint64_t ts_direct_start_time(pid_t pid);

/*
 * What a direct client's message brings in, as far as sd-bus lets us see it:
 * its header fields sd-bus knows (bytes), the most bytes its body's values
 * can take on the wire with their padding (body), the file descriptors its
 * arguments carry, and its values (each argument, container and array item:
 * what walking it costs). The max_* are set by the caller: the walk stops
 * past any of them (bytes + body against max_bytes).
 */
typedef struct ts_direct_msg_size {
	uint64_t bytes, body, max_bytes;
	unsigned fds, max_fds;
	unsigned values, max_values;
} ts_direct_msg_size;
/*
 * Walk m's body (then rewind it): 1 when it is past st's bounds, 0 within
 * them, a negative errno when the body does not parse (the method handler
 * answers that as for any caller).
 */
int ts_direct_message_size(sd_bus_message *m, ts_direct_msg_size *st);
/*
 * The bytes m's arguments (and the header fields sd-bus knows) can take,
 * walked within max bytes and the bounds of any message (then rewound):
 * UINT64_MAX when past them or when the body cannot be read.
 */
uint64_t ts_direct_message_bytes(sd_bus_message *m, uint64_t max);

#endif
