/* polkit.h — asking polkit, asynchronously, whether a caller may act on another user's vault. */
#ifndef TS_BUS_POLKIT_H
#define TS_BUS_POLKIT_H

#include <systemd/sd-bus.h>

#include "bus/state.h"

#define TS_POLKIT_ACTION_MANAGE_OTHER "org.tokenseal1.manage-other"
#define TS_POLKIT_ACTION_USE_OTHER "org.tokenseal1.use-other"

/*
 * May the sender of m do action on vault v (not theirs)? Asks
 * org.freedesktop.PolicyKit1 asynchronously, with the details "vault" (v's
 * name) and "owner" (v's owner uid, decimal): the first call returns 0
 * ("pending": the handler returns 1 without replying) and m is dispatched
 * again when the answer arrives; that second call returns 1 (allowed) or a
 * negative value with error set to AccessDenied. Busy when too many
 * questions of that sender, of its uid or of everyone are in flight. Without
 * polkit on the bus the answer is no (root never gets here). Never blocks
 * the daemon.
 */
int ts_polkit_check(ts_daemon *d, sd_bus_message *m, const char *action, const ts_vault *v, sd_bus_error *error);
/* Drop every question in flight (shutdown). */
void ts_polkit_stop(ts_daemon *d);
/*
 * A connection closes (the private socket's): its questions go with it,
 * asked or answered. An answered one waits for its call to come through the
 * filters again, which a closed connection never does, and would hold the
 * call and its place in the caller's share for good.
 */
void ts_polkit_forget_bus(ts_daemon *d, sd_bus *bus);
/*
 * The bytes of uid's calls waiting for polkit; *all: of every caller's.
 * They count against the private socket's shares of large messages
 * (direct_io.h), and its large messages against polkit's.
 */
uint64_t ts_polkit_bytes(ts_daemon *d, uid_t uid, uint64_t *all);

#endif
