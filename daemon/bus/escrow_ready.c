/* escrow_ready.c — SetEscrow and CreateVault wait for RSA-wrapped box keys without a wait in the loop (escrow_ready.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/escrow_ready.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/state.h"
#include "bus/redispatch.h"
#include "core/escrow.h"
#include "protectors/escrow_stock.h"

#define READY_MAX_PER_UID 4
#define READY_MAX 64
/*
 * A call dispatched again comes back here on its dispatch, at once; one that
 * did not (its vault was locked or deleted meanwhile, or a check before
 * this one failed) is forgotten after this.
 */
#define READY_KEEP_USEC (2ull * 1000000)

typedef struct ready {
	struct ready *next;
	sd_bus_message *m;          /* the caller's method call, dispatched again when its keys are held */
	uid_t uid;
	ts_escrow_stock_hold *hold;
	int done, rc;
	char err[256];
	sd_event_source *expire;
} ready;

static ready *readies;
static size_t n_readies;

static ready *ready_of(sd_bus_message *m)
{
	ready *w;

	for (w = readies; w && w->m != m; w = w->next)
		;
	return w;
}

static void ready_free(ready *w)
{
	for (ready **pp = &readies; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			n_readies--;
			break;
		}
	ts_escrow_stock_release(w->hold);
	sd_event_source_disable_unref(w->expire);
	sd_bus_message_unref(w->m);
	free(w);
}

static int on_ready_expire(sd_event_source *s, uint64_t usec, void *userdata)
{
	ready_free(userdata);
	return 0;
}

static void on_ready(void *userdata, int rc, const char *err)
{
	ready *w = userdata;
	sd_bus *bus = sd_bus_message_get_bus(w->m);
	int r;

	w->done = 1;
	w->rc = rc;
	snprintf(w->err, sizeof(w->err), "%s", err ? err : "");
	/* Run the caller's method again from the start; it finds its keys held, or this error. */
	if ((r = sd_event_add_time_relative(sd_bus_get_event(bus), &w->expire, CLOCK_MONOTONIC, READY_KEEP_USEC, 0,
	                                    on_ready_expire, w)) < 0 ||
	    ts_bus_dispatch_again(w->m, "its escrow box keys") < 0) {
		if (r < 0) {   /* no timer: not dispatched again */
			ts_log(TS_LOG_ERR, "cannot resume a request: %s", strerror(-r));
			(void)sd_bus_reply_method_errorf(w->m, ts_error_dbus_name(-TS_E_FAILED), "internal error");
		}
		ready_free(w);
	}
}

int ts_escrow_ready_resumed(sd_bus_message *m)
{
	return ready_of(m) != NULL;
}

int ts_escrow_ready(ts_daemon *d, sd_bus_message *m, const ts_caller *caller, const ts_escrow_recipient *rec,
                    size_t n, char *msg, size_t msglen)
{
	const uint8_t *spkis[TS_VAULT_MAX_ESCROW];
	size_t lens[TS_VAULT_MAX_ESCROW], nr = 0, n_uid = 0;
	ts_escrow_stock_hold *hold = NULL;
	char err[256] = "";
	ready *w = ready_of(m);
	int r;

	if (w) {
		if (!w->done)
			return 0;   /* not expected: the call is only queued again when done */
		if ((r = w->rc) < 0) {
			snprintf(msg, msglen, "escrow to an RSA recipient: no box key could be wrapped (%.200s); nothing "
			         "changed", w->err);
			ready_free(w);
			return r;
		}
		/* Its keys go back to the stock and are held again below, then taken by this seal: nothing runs between. */
		ready_free(w);
	}
	for (size_t i = 0; i < n && nr < TS_VAULT_MAX_ESCROW; i++)
		if (rec[i].type == TS_ESCROW_TYPE_RSA) {
			spkis[nr] = rec[i].pubkey;
			lens[nr++] = rec[i].pubkey_len;
		}
	if (nr == 0)
		return 1;
	for (ready *o = readies; o; o = o->next)
		n_uid += o->uid == caller->uid;
	if (n_uid >= READY_MAX_PER_UID || n_readies >= READY_MAX) {
		snprintf(msg, msglen, "too many calls of this caller wait for escrow box keys; try again");
		return -TS_E_BUSY;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -TS_E_NOMEM;
	/* A helper run started for this call is this caller's: root's may use the helpers [limits] keeps back. */
	r = ts_escrow_stock_prepare(d->event, spkis, lens, nr, caller->uid, on_ready, w, &hold, err, sizeof(err));
	if (r != 0) {
		free(w);
		ts_escrow_stock_release(hold);   /* 1: the keys are in the stock, for this seal */
		if (r < 0)
			snprintf(msg, msglen, "escrow to an RSA recipient: %.200s; nothing changed", err);
		return r;
	}
	w->m = sd_bus_message_ref(m);
	w->uid = caller->uid;
	w->hold = hold;
	w->next = readies;
	readies = w;
	n_readies++;
	return 0;
}

void ts_escrow_ready_stop(void)
{
	while (readies)
		ready_free(readies);
}
