/* direct.h — the private socket: one sd-bus server connection per client, serving what the bus serves, without dbus-daemon in between. */
#ifndef TS_BUS_DIRECT_H
#define TS_BUS_DIRECT_H

#include <systemd/sd-bus.h>

#include "tokenseal.h"

#include "bus/direct_frame.h"
#include "bus/state.h"

/*
 * Clients at once, and per uid: a uid past its share is refused at accept
 * (its client falls back to the bus). All uids but root may hold
 * TS_DIRECT_MAX - TS_DIRECT_PER_UID together: root's share is kept for root
 * (a login's PAM module), whatever the others hold.
 */
#define TS_DIRECT_MAX 256
#define TS_DIRECT_PER_UID 16
/*
 * Replies and signals a client may leave unread: past this its connection is
 * closed, checked after every turn of the loop (dbus-daemon would stop it too).
 */
#define TS_DIRECT_UNREAD_MAX 32
/*
 * The kernel's send buffer of a client's socket (SO_SNDBUF; the kernel
 * doubles it): what a client that reads nothing leaves in kernel memory.
 * sd-bus raises it to 8 MiB, which a root daemon gets (SO_SNDBUFFORCE):
 * 2 GiB on 256 connections. Answers past it wait in sd-bus's queue, where
 * the bounds above count them.
 */
#define TS_DIRECT_SNDBUF (128 << 10)


/*
 * Listen on the Unix socket path (mode 0666: every local user may connect;
 * who they are comes from the socket, and every call is authorized as on
 * the bus). A stale socket at path is replaced; anything else there is
 * refused. Each client gets its own connection served by ts_serve, from
 * d->event. 0 or a negative errno (logged).
 */
int ts_direct_listen(ts_daemon *d, const char *path);
/* Stop listening and close every client connection (shutdown). */
void ts_direct_stop(ts_daemon *d);

#endif
