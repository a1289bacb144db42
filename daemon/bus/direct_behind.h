/* direct_behind.h — how long the daemon's loop has been behind (stopped or busy), so that the private socket's deadlines judge its clients, not the daemon. */
#ifndef TS_BUS_DIRECT_BEHIND_H
#define TS_BUS_DIRECT_BEHIND_H

#include <stdint.h>

#include "bus/state.h"

/*
 * While a client of the private socket has a deadline running, a beat every
 * TS_DIRECT_BEAT_USEC measures how late the loop runs it: a stopped daemon,
 * or one whose turns take long, is that much behind. A lateness under
 * TS_DIRECT_BEAT_SLACK_USEC is the scheduler's, not counted.
 */
#define TS_DIRECT_BEAT_USEC (100ull * 1000)
#define TS_DIRECT_BEAT_SLACK_USEC (2ull * 1000)

/* A deadline is running: keep the beat going (it stops itself once none is). 0 or a negative errno. */
int ts_direct_behind_watch(ts_daemon *d);
/* µs the loop has been behind since the daemon started, up to now (the beat due and not yet run included). */
uint64_t ts_direct_behind(void);
/* Stop the beat (shutdown). */
void ts_direct_behind_stop(void);

#endif
