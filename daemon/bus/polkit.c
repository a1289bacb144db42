/* polkit.c — asynchronous polkit CheckAuthorization for operations on vaults that are not the caller's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/polkit.h"
#include "bus/direct_conn.h"
#include "bus/direct_frame.h"
#include "bus/direct_io.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/state.h"
#include "bus/redispatch.h"

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_IFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_FLAG_ALLOW_USER_INTERACTION 1u

/*
 * Questions in flight at once: each holds a message; a flood gets Busy, not
 * memory. Per sender (one bus connection) and per caller uid (one user may
 * open many connections), so that one user's flood answers Busy to that user
 * only; the global cap bounds what many users together can hold.
 */
#define POLKIT_MAX_QUERIES_PER_SENDER 8
#define POLKIT_MAX_QUERIES_PER_UID 16
#define POLKIT_MAX_QUERIES 256
/*
 * And the bytes of the calls they hold, as their arguments are counted
 * (ts_direct_message_size): a data method's call may be 32 MiB (an
 * UnwrapBatch on a vault polkit opens to the caller), so 16 of one uid's
 * could hold 512 MiB. Two such calls per uid, six in all: together with
 * the private socket's large messages of every uid but root (root never
 * waits here), so that root's share there stays root's (direct_io.h).
 */
#define POLKIT_MAX_BYTES_PER_UID (64ull << 20)
#define POLKIT_MAX_BYTES TS_DIRECT_BIG_OTHERS
/* An authentication dialog may take a person a while; without one polkit answers at once. */
#define POLKIT_TIMEOUT_INTERACTIVE_USEC (120ull * 1000000)
#define POLKIT_TIMEOUT_USEC (10ull * 1000000)

typedef struct ts_polkit_query {
	ts_daemon *d;
	sd_bus_message *request;       /* the caller's method call, dispatched again on the answer */
	sd_bus_slot *slot;             /* the CheckAuthorization call; NULL once answered */
	char action[64];
	char *sender;                  /* the caller's unique bus name */
	uid_t uid;                     /* ... and its uid */
	uint64_t bytes;                /* request's arguments, as counted */
	int answered;
	int allowed;
	char why[192];                 /* for the AccessDenied message */
	struct ts_polkit_query *next;
} ts_polkit_query;

uint64_t ts_polkit_bytes(ts_daemon *d, uid_t uid, uint64_t *all)
{
	uint64_t of_uid = 0;

	*all = 0;
	for (ts_polkit_query *q = d->polkit_queries; q; q = q->next) {
		*all += q->bytes;
		of_uid += q->uid == uid ? q->bytes : 0;
	}
	return of_uid;
}

static void query_free(ts_polkit_query *q)
{
	sd_bus_slot_unref(q->slot);
	sd_bus_message_unref(q->request);
	free(q->sender);
	free(q);
}

static void query_unlink(ts_daemon *d, ts_polkit_query *q)
{
	for (ts_polkit_query **pp = &d->polkit_queries; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			d->n_polkit_queries--;
			return;
		}
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	ts_polkit_query *q = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(reply);
	int authorized = 0, challenge = 0, r;

	q->slot = sd_bus_slot_unref(q->slot);
	q->answered = 1;
	if (e) {
		if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
			snprintf(q->why, sizeof(q->why), "polkit is not running: only the vault's owner and root may do this");
		else
			snprintf(q->why, sizeof(q->why), "polkit did not answer (%s)", e->name);
	} else if ((r = sd_bus_message_enter_container(reply, 'r', "bba{ss}")) < 0 ||
	           (r = sd_bus_message_read(reply, "bb", &authorized, &challenge)) < 0) {
		snprintf(q->why, sizeof(q->why), "unexpected answer from polkit");
	} else {
		q->allowed = authorized;
		if (!authorized)
			snprintf(q->why, sizeof(q->why), "not authorized for %s%s", q->action,
			         challenge ? " (authentication required: call with interactive authorization)" : "");
	}
	/* Run the caller's method again from the start; it finds this answer. */
	if (ts_bus_dispatch_again(q->request, "polkit's answer") < 0) {
		query_unlink(q->d, q);
		query_free(q);
	}
	return 0;
}

static int ask(ts_daemon *d, sd_bus_message *m, const char *action, const char *vault, uint32_t owner,
               sd_bus_error *error)
{
	_ts_cleanup_reply_ sd_bus_message *call = NULL;
	const char *sender = sd_bus_message_get_sender(m);
	int interactive = sd_bus_message_get_allow_interactive_authorization(m) > 0;
	size_t n_sender = 0, n_uid = 0;
	uint64_t bytes, bytes_uid = 0, bytes_all = 0;
	ts_direct_conn *direct = NULL;
	ts_polkit_query *q;
	ts_caller caller;
	char owner_s[16], direct_name[32];
	int r;

	/*
	 * A client of the private socket is named "direct:ID" where a bus name would stand (counts,
	 * logs): decided by the connection, never by the sender field, which such a client writes.
	 */
	if ((direct = ts_direct_find(d, sd_bus_message_get_bus(m))) != NULL) {
		snprintf(direct_name, sizeof(direct_name), "direct:%u", direct->id);
		sender = direct_name;
		/* Its process, as polkit will be told: gone, or its pid taken by another, is no subject. */
		if (!ts_direct_peer_alive(direct))
			return ts_bus_error(error, -TS_E_ACCESS_DENIED, "the connecting process is gone");
	}
	if (!sender || ts_caller_get(m, &caller) < 0)
		return ts_bus_error(error, -TS_E_ACCESS_DENIED, "no sender");
	/* Walked before the handler reads it (the walk rewinds it); past the bounds counts as the most. */
	if ((bytes = ts_direct_message_bytes(m, TS_DIRECT_MESSAGE_MAX)) == UINT64_MAX)
		bytes = TS_DIRECT_MESSAGE_MAX;
	/*
	 * A large direct call counted as answered since it was taken waits here
	 * instead (counted below; again as answered when it comes back); the
	 * private socket's large messages share the bytes bound.
	 */
	if (direct)
		ts_dio_unhold(direct, bytes);
	bytes_uid = ts_dio_large_bytes(d, caller.uid, &bytes_all);
	for (q = d->polkit_queries; q; q = q->next) {
		n_sender += strcmp(q->sender, sender) == 0;
		n_uid += q->uid == caller.uid;
		bytes_uid += q->uid == caller.uid ? q->bytes : 0;
		bytes_all += q->bytes;
	}
	if (n_sender >= POLKIT_MAX_QUERIES_PER_SENDER || n_uid >= POLKIT_MAX_QUERIES_PER_UID ||
	    bytes_uid + bytes > POLKIT_MAX_BYTES_PER_UID)
		return ts_bus_error(error, -TS_E_BUSY, "too many authorization checks of this caller in progress");
	if (d->n_polkit_queries >= POLKIT_MAX_QUERIES || bytes_all + bytes > POLKIT_MAX_BYTES)
		return ts_bus_error(error, -TS_E_BUSY, "too many authorization checks in progress");
	if ((q = calloc(1, sizeof(*q))) == NULL || (q->sender = strdup(sender)) == NULL) {
		free(q);
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	}
	q->d = d;
	q->uid = caller.uid;
	q->bytes = bytes;
	q->request = sd_bus_message_ref(m);
	snprintf(q->action, sizeof(q->action), "%s", action);
	snprintf(owner_s, sizeof(owner_s), "%u", (unsigned)owner);
	/*
	 * A packed batch is its "aay" form to a rule (method=UnwrapBatch or
	 * RewrapBatch, form=packed): a rule written for UnwrapBatch holds for
	 * both, and the library's batches, which go packed, meet it.
	 */
	const char *method = sd_bus_message_get_member(m) ? sd_bus_message_get_member(m) : "";
	int packed = strcmp(method, "UnwrapBatchPacked") == 0 || strcmp(method, "RewrapBatchPacked") == 0;
	if (packed)
		method = method[0] == 'U' ? "UnwrapBatch" : "RewrapBatch";
	/*
	 * The subject is the caller's bus name: polkit asks the bus who that is, no
	 * pid race. A client of the private socket has none: its subject is its
	 * process, by pid and start time as read at accept (checked just above to
	 * be still that process) and its uid from the socket, polkit's
	 * unix-process. The details name the vault, for rules
	 * (action.lookup("vault")) and for $(vault) / $(owner) in the action's
	 * message.
	 */
	if ((r = sd_bus_message_new_method_call(d->bus, &call, POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE,
	                                        "CheckAuthorization")) < 0 ||
	    (r = direct ? sd_bus_message_append(call, "(sa{sv})s", "unix-process", 3, "pid", "u", (uint32_t)direct->pid,
	                                        "start-time", "t", direct->start_time, "uid", "i", (int32_t)direct->uid,
	                                        action)
	                : sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender, action)) < 0 ||
	    (r = packed ? sd_bus_message_append(call, "a{ss}", 4, "vault", vault, "owner", owner_s, "method", method,
	                                        "form", "packed")
	                : sd_bus_message_append(call, "a{ss}", 3, "vault", vault, "owner", owner_s, "method", method)) < 0 ||
	    (r = sd_bus_message_append(call, "us", interactive ? POLKIT_FLAG_ALLOW_USER_INTERACTION : 0u, "")) < 0 ||
	    (r = sd_bus_call_async(d->bus, &q->slot, call, on_reply, q,
	                           interactive ? POLKIT_TIMEOUT_INTERACTIVE_USEC : POLKIT_TIMEOUT_USEC)) < 0) {
		query_free(q);
		return ts_bus_error(error, -TS_E_FAILED, "cannot ask polkit");
	}
	q->next = d->polkit_queries;
	d->polkit_queries = q;
	d->n_polkit_queries++;
	return 0;
}

int ts_polkit_check(ts_daemon *d, sd_bus_message *m, const char *action, const ts_vault *v, sd_bus_error *error)
{
	ts_polkit_query *q;
	char why[sizeof(q->why)];

	for (q = d->polkit_queries; q; q = q->next)
		if (q->request == m && strcmp(q->action, action) == 0)
			break;
	if (!q)
		return ask(d, m, action, v->name, v->owner_uid, error);
	if (!q->answered)
		return 0;
	/* One answer, one use: a later call of the same client asks again. */
	query_unlink(d, q);
	if (q->allowed) {
		ts_direct_conn *direct = ts_direct_find(d, sd_bus_message_get_bus(m));

		query_free(q);
		/* The process polkit was asked about must still be there when the answer is used (a dialog may take minutes). */
		if (direct && !ts_direct_peer_alive(direct))
			return ts_bus_error(error, -TS_E_ACCESS_DENIED, "the connecting process is gone");
		return 1;
	}
	snprintf(why, sizeof(why), "%s", q->why);
	query_free(q);
	return ts_bus_error(error, -TS_E_ACCESS_DENIED, why);
}

void ts_polkit_forget_bus(ts_daemon *d, sd_bus *bus)
{
	for (ts_polkit_query **pp = &d->polkit_queries, *q; (q = *pp) != NULL;)
		if (sd_bus_message_get_bus(q->request) == bus) {
			*pp = q->next;
			d->n_polkit_queries--;
			query_free(q);
		} else
			pp = &q->next;
}

void ts_polkit_stop(ts_daemon *d)
{
	ts_polkit_query *q, *next;

	for (q = d->polkit_queries; q; q = next) {
		next = q->next;
		query_free(q);
	}
	d->polkit_queries = NULL;
	d->n_polkit_queries = 0;
}
