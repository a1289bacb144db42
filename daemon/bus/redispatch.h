/* redispatch.h — a method call that waited off the loop (polkit, a secret fd, box keys, KEKs) runs again from the start. */
#ifndef TS_BUS_REDISPATCH_H
#define TS_BUS_REDISPATCH_H

#include <systemd/sd-bus.h>

/*
 * Dispatch the method call m again from the start, from the loop: its
 * handler returned 1 without replying and now finds what it waited for.
 * 0, or a negative errno: then m has been answered with Failed and the
 * reason logged, naming what it waited for.
 */
int ts_bus_dispatch_again(sd_bus_message *m, const char *what);

#endif
