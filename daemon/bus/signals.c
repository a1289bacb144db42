/*
 * signals.c — vault signals reach only those allowed to see the vault.
 *
 * A broadcast signal goes to every connection on the bus, and a vault's
 * object path alone names its owner and its name. So the daemon sends no
 * vault signal to the bus at large: a client asks for them with
 * Manager.Subscribe, and each signal about a vault is sent to each
 * subscribed connection of the vault's owner (and of root), addressed to it
 * alone. What a polkit-allowed caller does to someone else's vault still
 * reaches the owner's subscribers. A subscription ends with Unsubscribe or
 * when the connection goes (the bus driver's NameOwnerChanged). A client
 * of the private socket (direct.c) subscribes its own connection: signals
 * go there, to nobody else, and end with it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/signals.h"
#include "bus/authorize.h"
#include "bus/direct_conn.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/state.h"

/* Bounded: each subscriber costs a copy of every signal about its vaults. */
#define SUBSCRIBERS_MAX 1024
#define SUBSCRIBERS_PER_UID 32

typedef struct ts_subscriber {
	char name[64];                 /* unique bus name */
	uid_t uid;
	struct ts_subscriber *next;
} ts_subscriber;

static ts_subscriber *find(ts_daemon *d, const char *name)
{
	for (ts_subscriber *s = d->subscribers; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static void drop(ts_daemon *d, const char *name)
{
	for (ts_subscriber **pp = &d->subscribers; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			ts_subscriber *s = *pp;
			*pp = s->next;
			free(s);
			d->n_subscribers--;
			return;
		}
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	ts_daemon *d = userdata;
	const char *name, *old, *new;

	/* Only the bus driver's word counts (the match names it as sender; checked again here). */
	if (!sd_bus_message_get_sender(m) || strcmp(sd_bus_message_get_sender(m), "org.freedesktop.DBus") != 0 ||
	    sd_bus_message_read(m, "sss", &name, &old, &new) < 0)
		return 0;
	if (name[0] == ':' && !*new)
		drop(d, name);
	return 0;
}

int ts_signals_start(ts_daemon *d)
{
	return sd_bus_match_signal(d->bus, &d->subscribers_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	                           "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, d);
}

void ts_signals_stop(ts_daemon *d)
{
	while (d->subscribers) {
		ts_subscriber *s = d->subscribers;
		d->subscribers = s->next;
		free(s);
	}
	d->n_subscribers = 0;
	d->subscribers_slot = sd_bus_slot_unref(d->subscribers_slot);
}

int ts_signals_method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_daemon *d = userdata;
	const char *sender = sd_bus_message_get_sender(m);
	ts_subscriber *s;
	ts_direct_conn *direct;
	ts_caller caller;
	size_t same_uid = 0;
	int r;

	if ((r = ts_manager_authorize(m, &caller, error)) < 0)
		return r;
	/* A direct connection is itself the subscriber, whatever sender field its client wrote. */
	if ((direct = ts_direct_find(d, sd_bus_message_get_bus(m))) != NULL) {
		direct->subscribed = 1;
		return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
	}
	if (!sender || sender[0] != ':' || strlen(sender) >= sizeof(s->name))
		return ts_bus_error(error, -TS_E_INVALID_ARGS, "subscriptions are per connection (no unique name)");
	if (find(d, sender))
		return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
	for (s = d->subscribers; s; s = s->next)
		same_uid += s->uid == caller.uid;
	if (d->n_subscribers >= SUBSCRIBERS_MAX || same_uid >= SUBSCRIBERS_PER_UID)
		return ts_bus_error(error, -TS_E_LIMIT, "too many subscribed connections");
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	snprintf(s->name, sizeof(s->name), "%s", sender);
	s->uid = caller.uid;
	s->next = d->subscribers;
	d->subscribers = s;
	d->n_subscribers++;
	return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
}

int ts_signals_method_unsubscribe(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_daemon *d = userdata;
	const char *sender = sd_bus_message_get_sender(m);
	ts_direct_conn *direct;
	ts_caller caller;
	int r;

	if ((r = ts_manager_authorize(m, &caller, error)) < 0)
		return r;
	if ((direct = ts_direct_find(d, sd_bus_message_get_bus(m))) != NULL)
		direct->subscribed = 0;
	else if (sender)
		drop(d, sender);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
}

int ts_signals_emit(ts_daemon *d, uint32_t owner, const char *path, const char *iface, const char *member,
                    ts_signal_build_fn build, void *userdata)
{
	int r = 0;

	if (!d->bus)
		return 0;
	for (ts_subscriber *s = d->subscribers; s; s = s->next) {
		_ts_cleanup_reply_ sd_bus_message *sig = NULL;

		if (s->uid != 0 && (uint32_t)s->uid != owner)
			continue;
		if ((r = sd_bus_message_new_signal(d->bus, &sig, path, iface, member)) < 0 ||
		    (r = sd_bus_message_set_destination(sig, s->name)) < 0 || (build && (r = build(sig, userdata)) < 0) ||
		    (r = sd_bus_send(NULL, sig, NULL)) < 0)
			ts_log(TS_LOG_DEBUG, "signal %s.%s to %s: %s", iface, member, s->name, strerror(-r));
	}
	for (ts_direct_conn *c = d->direct; c; c = c->next) {
		_ts_cleanup_reply_ sd_bus_message *sig = NULL;

		if (!c->subscribed || (c->uid != 0 && (uint32_t)c->uid != owner))
			continue;
		if ((r = sd_bus_message_new_signal(c->bus, &sig, path, iface, member)) < 0 ||
		    (build && (r = build(sig, userdata)) < 0) || (r = sd_bus_send(NULL, sig, NULL)) < 0)
			ts_log(TS_LOG_DEBUG, "signal %s.%s to direct:%u: %s", iface, member, c->id, strerror(-r));
	}
	return 0;
}
