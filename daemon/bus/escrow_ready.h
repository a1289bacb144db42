/* escrow_ready.h — a method that seals to RSA escrow recipients waits for its box keys off the loop: the call is dispatched again once a helper has wrapped them. */
#ifndef TS_ESCROW_READY_H
#define TS_ESCROW_READY_H

#include <stddef.h>

#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"
#include "core/vault.h"

/*
 * Before m seals to rec[0..n) (the X25519 ones need nothing): 1 when a box
 * key for every RSA recipient is in the stock (escrow_stock.h), so the
 * handler seals now, before it returns to the loop; 0 when helpers are
 * wrapping them: the handler returns 1 without replying, and m is
 * dispatched again when they are ready or cannot be (then this returns the
 * error); negative TS_E_* with msg set (Busy for a caller with too many
 * calls or RSA recipients waiting, escrow_stock.h, or no helper free).
 * Whatever the handler does before this call runs twice: only checks belong
 * there. The keys stay held until the call comes back; a call that does not
 * (its handler stopped at an earlier check) is forgotten after 2 s.
 */
int ts_escrow_ready(ts_daemon *d, sd_bus_message *m, const ts_caller *caller, const ts_escrow_recipient *rec,
                    size_t n, char *msg, size_t msglen)
	__attribute__((warn_unused_result));

/* Is m a call dispatched again by ts_escrow_ready (ask before calling it: a handler skips what it did once)? */
int ts_escrow_ready_resumed(sd_bus_message *m);

/* Forget every waiting call without a reply (shutdown). */
void ts_escrow_ready_stop(void);

#endif
