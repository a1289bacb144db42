/* direct.h — the private socket: one sd-bus server connection per client, serving what the bus serves, without dbus-daemon in between. */
#ifndef TS_BUS_DIRECT_H
#define TS_BUS_DIRECT_H

#include <systemd/sd-bus.h>

#include "tokenseal.h"

#include "bus/state.h"

/* Clients at once, and per uid: a uid past its share is refused at accept (its client falls back to the bus). */
#define TS_DIRECT_MAX 256
#define TS_DIRECT_PER_UID 16
/*
 * Replies and signals a client may leave unread: past this its connection is
 * closed, checked after every turn of the loop (dbus-daemon would stop it too).
 */
#define TS_DIRECT_UNREAD_MAX 32
/*
 * One message from a direct client, as dbus-daemon bounds one on the system
 * bus: at most 32 MiB (its max_message_size, so whatever a client sends over
 * the bus fits here; an UnwrapBatch of TS_BATCH_MAX blobs of 32-byte keys is
 * 10.8 MB) and at most 2 file descriptors (the most any method takes:
 * AddProtector, RotateRecoveryKey). A client past either is disconnected.
 */
#define TS_DIRECT_MESSAGE_MAX (32u << 20)
#define TS_DIRECT_FDS_MAX 2
/*
 * And at most this many values (arguments, containers, array items): the
 * largest call, an UnwrapBatch of TS_BATCH_MAX blobs with a full context,
 * has about TS_BATCH_MAX + 200. It bounds the time the check itself takes
 * (about 0.1 µs a value), where 32 MiB of empty strings would be millions.
 */
#define TS_DIRECT_VALUES_MAX (TS_BATCH_MAX + 4096)

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
