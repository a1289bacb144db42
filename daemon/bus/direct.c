/*
 * direct.c — the private socket: one sd-bus server connection per client,
 * serving what the bus serves, without dbus-daemon in between.
 *
 * A call on the bus crosses dbus-daemon twice. On the private socket the
 * client speaks the same D-Bus protocol straight to the daemon (as
 * systemctl does on /run/systemd/private): the same vtables (ts_serve),
 * the same authorization table, policy and audit. What the bus daemon did
 * for us, done here instead:
 *   - the client's bytes: read by the daemon (direct_frame.c) and passed on
 *     to sd-bus over a socketpair, one message at a time, so each message's
 *     header is seen before its body is read. A message larger than
 *     TS_DIRECT_MESSAGE_MAX (TS_FRAME_SMALL_MAX for all but the data
 *     methods), with a header field sd-bus would skip or a sender, with
 *     more than TS_DIRECT_FDS_MAX descriptors, with descriptors that did
 *     not come with its header or that come with any message but a call
 *     that takes them, or past the uid's share of large messages being read
 *     or answered (TS_DIRECT_BIG_PER_UID), is refused before the rest of it is read; so
 *     are descriptors while authenticating, and a handshake sd-bus would
 *     not end where the scanner does. A message sd-bus drops unparsed is
 *     seen (on_post) and refused too. sd-bus replies straight to the
 *     client's socket;
 *   - who is calling: the socket's peer credentials (SO_PEERCRED,
 *     SO_PEERGROUPS) and the process's start time, taken at accept
 *     (ts_caller_get, ts_direct_creds; polkit.c's unix-process subject).
 *     sd-bus's own idea of its peer is the daemon, and is never asked;
 *   - bounds: TS_DIRECT_MAX connections, TS_DIRECT_PER_UID per uid, and
 *     root's share of both kept for root (direct.h, direct_io.h); a
 *     client that leaves more than TS_DIRECT_UNREAD_MAX replies unread, or
 *     any unread for TS_DIRECT_UNREAD_USEC past its socket's send buffer
 *     (TS_DIRECT_SNDBUF, so the kernel holds little), is disconnected, so
 *     no client holds the daemon's memory for long; so is one whose
 *     message carries more than TS_DIRECT_FDS_MAX file descriptors in its
 *     arguments, holds more than TS_DIRECT_VALUES_MAX values, carries a
 *     variant, cannot be walked, or has more body bytes than its arguments
 *     account for (the check runs before ts_serve's filter, so before any
 *     method, even one that wants no reply);
 *   - the bus policy (contrib/org.tokenseal1.conf): a call on an interface
 *     it does not list, or naming none, is answered AccessDenied
 *     (bus_policy_refuses);
 *   - signals: Manager.Subscribe on a direct connection subscribes that
 *     connection (signals.c sends there, nowhere else).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "bus/direct.h"
#include "bus/direct_behind.h"
#include "bus/direct_conn.h"
#include "bus/direct_io.h"
#include "bus/log.h"
#include "bus/polkit.h"
#include "bus/serve.h"
#include "core/clock.h"

static sd_id128_t server_id;
static unsigned next_id;

/* What on_accept gave c of its own. */
static void conn_free(ts_direct_conn *c)
{
	if (c->pidfd >= 0)
		close(c->pidfd);
	free(c->groups);
	free(c);
}

/* Take c off the list: 1, or 0 when it was not on it (closed already). */
static int conn_unlink(ts_direct_conn *c)
{
	ts_daemon *d = c->d;

	for (ts_direct_conn **pp = &d->direct; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return 1;
		}
	return 0;
}

/*
 * Close c and free it. Called from c's own callbacks: sd-bus holds its
 * own reference while it processes a message, and sd-event lets a source
 * go while it dispatches. Calls still waiting for a helper or polkit keep
 * a reference to the bus in their message: their replies go nowhere.
 */
static void conn_close(ts_direct_conn *c, const char *why)
{
	if (!conn_unlink(c))
		return;
	ts_log(TS_LOG_DEBUG, "direct:%u (uid %ld pid %ld): %s", c->id, (long)c->uid, (long)c->pid, why);
	ts_polkit_forget_bus(c->d, c->bus);
	ts_dio_free(c->io);
	sd_bus_close(c->bus);
	(void)sd_bus_detach_event(c->bus);
	sd_bus_unref(c->bus);
	conn_free(c);
}

/* A client past a bound: a log line (at most 10 a second: a flood of cut-off clients must not flood the journal), and it goes. */
static void conn_refuse(ts_direct_conn *c, const char *what)
{
	static uint64_t window;
	static unsigned logged, quiet;
	uint64_t now = ts_mono_usec();

	if (now - window >= 1000000u) {
		window = now;
		logged = 0;
	}
	if (logged < 10) {
		ts_log(TS_LOG_WARNING, "direct:%u (uid %ld pid %ld): %s; disconnected%s", c->id, (long)c->uid, (long)c->pid,
		       what, quiet ? " (more were cut off, not logged)" : "");
		logged++;
		quiet = 0;
	} else
		quiet++;
	conn_close(c, "a message past the bounds");
}

/* (Re)arm *src to fire once, usec from now. */
static int time_once(ts_direct_conn *c, sd_event_source **src, uint64_t usec, sd_event_time_handler_t cb)
{
	int r;

	/* A deadline runs: the beat measures how far behind the loop falls meanwhile. */
	if ((r = ts_direct_behind_watch(c->d)) < 0)
		return r;
	/* Accuracy 1 µs: with 0, sd-event's default lets a timer run up to 250 ms late to coalesce wake-ups. */
	if (!*src)
		return sd_event_add_time_relative(c->d->event, src, CLOCK_MONOTONIC, usec, 1, cb, c);
	if ((r = sd_event_source_set_time_relative(*src, usec)) < 0)
		return r;
	return sd_event_source_set_enabled(*src, SD_EVENT_ONESHOT);
}

/*
 * A deadline, span after since, is the client's time, not the daemon's: it
 * moves on by as long as the loop was behind since then (stopped or busy:
 * ts_direct_behind, from behind_then), and while bytes the client sent wait
 * for the daemon (waiting) it is looked at again TS_DIRECT_AGAIN_USEC
 * later; never past TS_DIRECT_LATE_USEC after since. 1 when re-armed; 0
 * when the client goes.
 */
static int once_more(ts_direct_conn *c, sd_event_source *s, uint64_t since, uint64_t span, uint64_t behind_then,
                     int waiting, sd_event_time_handler_t cb)
{
	uint64_t now = ts_mono_usec(), end = since + span + (ts_direct_behind() - behind_then);

	if (waiting && end < now + TS_DIRECT_AGAIN_USEC)
		end = now + TS_DIRECT_AGAIN_USEC;
	if (end > since + TS_DIRECT_LATE_USEC)
		end = since + TS_DIRECT_LATE_USEC;
	if (now >= end)
		return 0;
	return time_once(c, &s, end - now, cb) >= 0;
}

/*
 * A large message's deadline: still not sent whole, its client goes (it
 * held its uid's share meanwhile); unless the daemon is behind: the timer
 * ran late, or bytes the client sent wait for the daemon to read them or
 * to pass them on.
 */
static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_direct_conn *c = userdata;
	struct ts_direct_io *io = c->io;
	char what[96];
	int waiting = 0;

	if (io->sent >= io->big_end)
		return 0;
	if (once_more(c, s, io->big_since, TS_DIRECT_BIG_USEC, io->big_behind,
	              io->len > 0 || (ioctl(io->cfd, SIOCINQ, &waiting) == 0 && waiting > 0), on_deadline))
		return 0;
	snprintf(what, sizeof(what), "a large message not sent whole within %u seconds",
	         (unsigned)((ts_mono_usec() - io->big_since + 500000) / 1000000));
	conn_refuse(c, what);
	return 0;
}

/*
 * Answers or signals have waited unsent (past the socket's buffer) since the
 * timer was armed: the client does not read them, and holds the memory
 * (and a large call's share of TS_DIRECT_BIG_PER_UID) meanwhile; unless the
 * timer ran late (the daemon, stopped or busy, may not have written). What
 * the client reads does not count: a read now and then would keep its share.
 */
static int on_unread(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_direct_conn *c = userdata;
	uint64_t unsent = 0;
	char what[96];

	if (sd_bus_get_n_queued_write(c->bus, &unsent) < 0 || unsent == 0) {
		c->io->unread_timed = 0;
		return 0;
	}
	if (once_more(c, s, c->io->unread_since, TS_DIRECT_UNREAD_USEC, c->io->unread_behind, 0, on_unread))
		return 0;
	snprintf(what, sizeof(what), "answers or signals not read within %u seconds",
	         (unsigned)((ts_mono_usec() - c->io->unread_since + 500000) / 1000000));
	conn_refuse(c, what);
	return 0;
}

/* What the client sent, on to sd-bus; a client past a bound goes; a large message begun is timed. */
static void pump(ts_direct_conn *c)
{
	struct ts_direct_io *io = c->io;
	const char *why;
	int r;

	if ((r = ts_dio_pump(c, &why)) < 0) {
		if (why)
			conn_refuse(c, why);
		else
			conn_close(c, strerror(-r));
		return;
	}
	if (io->big_new) {
		io->big_new = 0;
		io->big_since = ts_mono_usec();
		io->big_behind = ts_direct_behind();
		if (time_once(c, &io->deadline, TS_DIRECT_BIG_USEC, on_deadline) < 0)
			conn_close(c, "cannot time a large message");
	}
}

/*
 * What the client sent went on to sd-bus: let sd-bus read and dispatch it
 * now rather than a turn of the loop later (the socketpair's readiness
 * would wake the loop again: two epoll_wait calls a call). A few steps
 * only, so a client that sends many calls at once does not keep the loop
 * from the others; sd-bus's own source takes the rest. c may be closed
 * meanwhile (by a bound in on_incoming): the bus is held and c looked up
 * again after each step.
 */
static int on_client_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	ts_direct_conn *c = userdata;
	ts_daemon *d = c->d;
	sd_bus *bus = sd_bus_ref(c->bus);
	uint64_t sent = c->io->sent;

	pump(c);
	/* Until sd-bus has met every message passed on (ts_dio_take): no read that finds nothing. */
	if (ts_direct_find(d, bus) == c && c->io->sent != sent)
		for (int i = 0; i < 8 && ts_direct_find(d, bus) == c && c->io->q_n > 0 && sd_bus_process(bus, NULL) > 0;
		     i++)
			;
	sd_bus_unref(bus);
	return 0;
}

static int on_pair_writable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	pump(userdata);
	return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	conn_close(userdata, "disconnected");
	return 0;
}

/*
 * The bus policy (contrib/org.tokenseal1.conf), enforced here as dbus-daemon
 * enforces it there: a method call whose interface is not one of these, or
 * that names none, is answered AccessDenied and reaches no method (on the
 * bus, ObjectManager's GetManagedObjects is refused so, to root too).
 * 1 when refused (m is consumed), 0 when it goes on.
 */
static const char *const bus_policy_ifaces[] = {
	TS_MANAGER_IFACE, TS_VAULT_IFACE, "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable",
	"org.freedesktop.DBus.Peer",
};

static int bus_policy_refuses(sd_bus_message *m)
{
	const char *iface = sd_bus_message_get_interface(m);

	if (sd_bus_message_is_method_call(m, NULL, NULL) <= 0)
		return 0;
	for (size_t i = 0; iface && i < sizeof(bus_policy_ifaces) / sizeof(bus_policy_ifaces[0]); i++)
		if (strcmp(iface, bus_policy_ifaces[i]) == 0)
			return 0;
	if (sd_bus_message_get_expect_reply(m))
		(void)sd_bus_reply_method_errorf(m, SD_BUS_ERROR_ACCESS_DENIED,
		                                 "the bus policy does not let this call through (interface %s)",
		                                 iface ? iface : "none");
	return 1;
}

/*
 * Every message the client sends, before any method (this filter runs
 * before ts_serve's, which drops calls that want no reply). The scanner
 * saw its header; here its body is walked: a client that leaves more than
 * TS_DIRECT_UNREAD_MAX replies unread, whose message carries a variant (no
 * method or writable property takes one, and variants' own signatures
 * would multiply the walk), more values or descriptors than any method
 * takes, a body the walk cannot read, or body bytes its arguments do not
 * account for, is cut off before anything reads the message.
 */
static int on_incoming(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_direct_conn *c = userdata;
	ts_frame_msg frame;
	uint64_t queued = 0;
	const char *sender = sd_bus_message_get_sender(m);

	/*
	 * sd-bus's own Disconnected names its local sender (the scanner refuses a
	 * client's message naming one); a call admitted before comes again once
	 * polkit or a helper answered (ts_bus_dispatch_again), and its answer,
	 * made now, counts against the shares of large messages until it went.
	 */
	if (sender && strcmp(sender, "org.freedesktop.DBus.Local") == 0)
		return 0;
	if (ts_direct_take_again(m)) {
		uint64_t size = ts_direct_message_bytes(m, TS_DIRECT_MESSAGE_MAX);

		ts_dio_hold(c, size < TS_DIRECT_MESSAGE_MAX ? size : TS_DIRECT_MESSAGE_MAX);
		return 0;
	}
	if (!ts_dio_take(c, m, &frame)) {
		conn_refuse(c, "a message sd-bus could not read");
		return 1;
	}

	if (sd_bus_get_n_queued_write(c->bus, &queued) >= 0 && queued > TS_DIRECT_UNREAD_MAX) {
		ts_log(TS_LOG_INFO, "direct:%u (uid %ld): more than %d replies unread; disconnected", c->id, (long)c->uid,
		       TS_DIRECT_UNREAD_MAX);
		conn_close(c, "too many replies unread");
		return 1;
	}

	ts_direct_msg_size st = { .max_bytes = TS_DIRECT_MESSAGE_MAX, .max_fds = TS_DIRECT_FDS_MAX,
		                  .max_values = TS_DIRECT_VALUES_MAX };
	const char *sig = sd_bus_message_get_signature(m, 1);
	char what[96];
	int r;

	if (sig && strchr(sig, 'v'))
		r = -EBADMSG;
	else
		r = ts_direct_message_size(m, &st);
	if (r == 0 && frame.body_size <= st.body)
		return bus_policy_refuses(m);
	if (r < 0)
		snprintf(what, sizeof(what), "a message whose body is a variant or cannot be read");
	else if (r == 0)
		snprintf(what, sizeof(what), "a message with %" PRIu64 " body bytes no argument accounts for",
		         (uint64_t)frame.body_size - st.body);
	else if (st.values > TS_DIRECT_VALUES_MAX)
		snprintf(what, sizeof(what), "a message of more than %d values", TS_DIRECT_VALUES_MAX);
	else if (st.fds > TS_DIRECT_FDS_MAX)
		snprintf(what, sizeof(what), "a message with more than %d file descriptors", TS_DIRECT_FDS_MAX);
	else
		snprintf(what, sizeof(what), "a message larger than %u bytes", TS_DIRECT_MESSAGE_MAX);
	conn_refuse(c, what);
	return 1;
}

/*
 * After every turn of the loop: a client whose replies and signals pile up
 * unread is cut off even if it sends nothing more (a subscriber that never
 * reads, a client that stopped after its last call).
 */
static int on_post(sd_event_source *s, void *userdata)
{
	ts_daemon *d = userdata;

	for (ts_direct_conn *c = d->direct, *next; c; c = next) {
		uint64_t queued = 0;

		next = c->next;
		if (sd_bus_get_n_queued_write(c->bus, &queued) >= 0 && queued > TS_DIRECT_UNREAD_MAX) {
			ts_log(TS_LOG_INFO, "direct:%u (uid %ld): more than %d messages unread; disconnected", c->id,
			       (long)c->uid, TS_DIRECT_UNREAD_MAX);
			conn_close(c, "too many messages unread");
			continue;
		}
		/* Nor for long: timed from when messages began to wait unsent, until none does. */
		if (queued > 0 && !c->io->unread_timed) {
			if (time_once(c, &c->io->unread, TS_DIRECT_UNREAD_USEC, on_unread) < 0) {
				conn_close(c, "cannot time unread messages");
				continue;
			}
			c->io->unread_timed = 1;
			c->io->unread_since = ts_mono_usec();
			c->io->unread_behind = ts_direct_behind();
		} else if (queued == 0 && c->io->unread_timed) {
			(void)sd_event_source_set_enabled(c->io->unread, SD_EVENT_OFF);
			c->io->unread_timed = 0;
		}
		/*
		 * A message passed on whole, sd-bus has read every byte of the
		 * socketpair and holds nothing to dispatch, and it never met the
		 * message: sd-bus dropped it unparsed (and would wait for ever for
		 * the next one, while this connection waits for it to be met).
		 */
		if (ts_dio_dropped(c))
			conn_refuse(c, "a message sd-bus could not read");
		else
			ts_dio_resume(c);
	}
	return 0;
}

/* Out of file descriptors: stop accepting for a second rather than wake on the same error at once. */
static int on_resume(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_daemon *d = userdata;

	if (d->direct_listener)
		(void)sd_event_source_set_enabled(d->direct_listener, SD_EVENT_ON);
	return 0;
}

/* The peer's supplementary groups (SO_PEERGROUPS), as sd-bus would have read them: 0, or a negative errno. */
static int peer_groups(int fd, gid_t **ret, size_t *ret_n)
{
	socklen_t len = 16 * sizeof(gid_t);

	*ret = NULL;
	*ret_n = 0;
	for (;;) {
		gid_t *g = malloc(len ? len : 1);

		if (!g)
			return -ENOMEM;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			*ret = g;
			*ret_n = len / sizeof(gid_t);
			return 0;
		}
		free(g);
		if (errno != ERANGE)
			return -errno;
	}
}

/* One connection off the listen queue: taken or refused (1), or none there (0). */
static int accept_one(ts_daemon *d, int fd)
{
	ts_direct_conn *c;
	struct ts_direct_io *io;
	struct ucred uc;
	socklen_t len = sizeof(uc);
	size_t same_uid = 0, others = 0;
	int cfd, sv[2], r;

	if ((cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0) {
		if ((errno == EMFILE || errno == ENFILE) &&
		    sd_event_source_set_enabled(d->direct_listener, SD_EVENT_OFF) >= 0) {
			ts_log(TS_LOG_WARNING, "private socket: out of file descriptors; not accepting for a second");
			if (sd_event_add_time_relative(d->event, NULL, CLOCK_MONOTONIC, 1000000, 0, on_resume, d) < 0)
				(void)sd_event_source_set_enabled(d->direct_listener, SD_EVENT_ON);
		}
		return 0;
	}
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || len != sizeof(uc)) {
		close(cfd);
		return 1;
	}
	for (c = d->direct; c; c = c->next) {
		same_uid += c->uid == uc.uid;
		others += c->uid != 0;
	}
	if (same_uid >= TS_DIRECT_PER_UID || (uc.uid != 0 && others >= TS_DIRECT_MAX - TS_DIRECT_PER_UID)) {
		static uint64_t last_log;
		uint64_t now = ts_now_usec();

		/* At most one line a second: a connect loop must not flood the journal. */
		if (now - last_log >= 1000000) {
			last_log = now;
			ts_log(TS_LOG_INFO, "private socket: uid %ld pid %ld refused: %s", (long)uc.uid, (long)uc.pid,
			       same_uid >= TS_DIRECT_PER_UID ? "too many connections of this uid" : "too many connections");
		}
		close(cfd);
		return 1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL || (io = calloc(1, sizeof(*io))) == NULL) {
		free(c);
		close(cfd);
		return 1;
	}
	c->d = d;
	c->io = io;
	c->uid = uc.uid;
	c->gid = uc.gid;
	c->pid = uc.pid;
	ts_direct_peer_open(c, cfd);
	c->id = ++next_id;
	/* A descriptor of its own for reading: sd-bus watches cfd (its output) in the same epoll. */
	io->cfd = fcntl(cfd, F_DUPFD_CLOEXEC, 3);
	io->pfd = -1;
	ts_frame_init(&io->frame, TS_DIRECT_MESSAGE_MAX, TS_DIRECT_FDS_MAX);
	if ((io->cfd < 0 && (r = -errno) < 0) || (r = peer_groups(cfd, &c->groups, &c->n_groups)) < 0 ||
	    (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0 && (r = -errno) < 0)) {
		ts_log(TS_LOG_WARNING, "private socket: cannot serve uid %ld: %s", (long)uc.uid, strerror(-r));
		close(cfd);
		ts_dio_free(io);
		conn_free(c);
		return 1;
	}
	io->pfd = sv[0];
	/*
	 * sd-bus reads the client's bytes from the socketpair (as io_scan passes
	 * them on) and writes its replies and signals straight to the client. Its
	 * peer there is the daemon itself, so it authenticates anyone (the SASL
	 * uid is not believed; who the client is was taken above) and is never
	 * asked who called (ts_caller_get, ts_direct_creds).
	 */
	if ((r = sd_bus_new(&c->bus)) < 0 || (r = sd_bus_set_fd(c->bus, sv[1], cfd)) < 0) {
		sd_bus_unref(c->bus);
		close(sv[1]);
		close(cfd);
		ts_dio_free(io);
		conn_free(c);
		return 1;
	}
	/*
	 * on_incoming after ts_serve: sd-bus runs the filter added last first, so
	 * every message meets the bounds before ts_serve's own filter (which drops
	 * calls that want no reply) can take it.
	 */
	if ((r = sd_bus_set_server(c->bus, 1, server_id)) < 0 || (r = sd_bus_set_anonymous(c->bus, 1)) < 0 ||
	    (r = sd_bus_negotiate_fds(c->bus, 1)) < 0 ||
	    (r = sd_bus_match_signal(c->bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
	                             "Disconnected", on_disconnected, c)) < 0 ||
	    (r = ts_serve(d, c->bus)) < 0 || (r = sd_bus_add_filter(c->bus, NULL, on_incoming, c)) < 0 ||
	    (r = sd_bus_attach_event(c->bus, d->event, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
	    (r = sd_event_add_io(d->event, &io->in_src, io->cfd, EPOLLIN, on_client_readable, c)) < 0 ||
	    (r = sd_event_add_io(d->event, &io->out_src, io->pfd, EPOLLOUT, on_pair_writable, c)) < 0 ||
	    (r = sd_event_source_set_enabled(io->out_src, SD_EVENT_OFF)) < 0 || (r = sd_bus_start(c->bus)) < 0 ||
	    /* After sd_bus_start, which raised it. */
	    (r = setsockopt(io->cfd, SOL_SOCKET, SO_SNDBUF, &(int){ TS_DIRECT_SNDBUF }, sizeof(int)) < 0 ? -errno : 0) < 0) {
		ts_log(TS_LOG_WARNING, "private socket: cannot serve uid %ld: %s", (long)uc.uid, strerror(-r));
		/* Not flushed: a flush would wait in the loop for a client that may never read. */
		ts_dio_free(io);
		sd_bus_close_unref(c->bus);
		conn_free(c);
		return 1;
	}
	c->next = d->direct;
	d->direct = c;
	return 1;
}

/*
 * The listen queue is emptied at each turn (up to its 4096): taking one
 * connection a turn, while busy clients take theirs, a flood of connections
 * that are refused kept the queue full, and root's connect was turned away.
 * The listener keeps the clients' priority: first in every turn, a flood
 * that never stops would starve them.
 */
static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	for (int i = 0; i < 4096 && accept_one(userdata, fd); i++)
		;
	return 0;
}

int ts_direct_listen(ts_daemon *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	/* The calls waiting for polkit count against the shares of large messages too. */
	ts_dio_asked = ts_polkit_bytes;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		ts_log(TS_LOG_ERR, "private socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((r = sd_id128_randomize(&server_id)) < 0)
		return r;
	ts_direct_serving(d);
	/* A socket left by an earlier run is replaced; a file of another kind is not ours to remove. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			ts_log(TS_LOG_ERR, "private socket %s: exists and is not a socket", path);
			return -EEXIST;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			ts_log(TS_LOG_ERR, "private socket %s: cannot remove the old one: %s", path, strerror(errno));
			return -errno;
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0666) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		ts_log(TS_LOG_ERR, "private socket %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	if ((r = sd_event_add_io(d->event, &d->direct_listener, fd, EPOLLIN, on_accept, d)) < 0 ||
	    (r = sd_event_source_set_io_fd_own(d->direct_listener, 1)) < 0 ||
	    (r = sd_event_add_post(d->event, &d->direct_post, on_post, d)) < 0) {
		d->direct_listener = sd_event_source_unref(d->direct_listener);
		close(fd);
		return r;
	}
	return 0;
}

void ts_direct_stop(ts_daemon *d)
{
	d->direct_listener = sd_event_source_disable_unref(d->direct_listener);
	d->direct_post = sd_event_source_disable_unref(d->direct_post);
	while (d->direct)
		conn_close(d->direct, "shutdown");
	ts_direct_behind_stop();
}
