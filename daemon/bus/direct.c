/*
 * direct.c — the private socket: one sd-bus server connection per client,
 * serving what the bus serves, without dbus-daemon in between.
 *
 * A call on the bus crosses dbus-daemon twice. On the private socket the
 * client speaks the same D-Bus protocol straight to the daemon (as
 * systemctl does on /run/systemd/private): the same vtables (ts_serve),
 * the same authorization table, policy and audit. What the bus daemon did
 * for us, done here instead:
 *   - who is calling: the socket's peer credentials (SO_PEERCRED), read
 *     by sd-bus for every call of the connection (ts_caller_get), and the
 *     process's start time taken at accept, for polkit's unix-process
 *     subject (polkit.c);
 *   - bounds: TS_DIRECT_MAX connections, TS_DIRECT_PER_UID per uid, and a
 *     client that leaves more than TS_DIRECT_UNREAD_MAX replies unread is
 *     disconnected, so no client holds the daemon's memory; so is one whose
 *     message is larger than TS_DIRECT_MESSAGE_MAX, carries more than
 *     TS_DIRECT_FDS_MAX file descriptors in its arguments, holds more than
 *     TS_DIRECT_VALUES_MAX values, carries a variant or cannot be walked
 *     (the check runs before ts_serve's filter). sd-bus has read that message by then
 *     (it takes up to 128 MiB and the fds that came with it, and has no
 *     knob to take less): the check keeps the message from any method (so
 *     from being held while polkit or a token helper answers) and the
 *     client from sending another on that connection. Not counted: unknown
 *     header fields and bytes past the last argument, which a method that
 *     waits (polkit, a secret fd, a helper) then holds (docs/DBUS-API.md);
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
#include <sys/un.h>
#include <unistd.h>

#include "bus/direct.h"
#include "bus/direct_conn.h"
#include "bus/log.h"
#include "bus/serve.h"
#include "core/clock.h"

static sd_id128_t server_id;
static unsigned next_id;

/* Take c off the list: 1, or 0 when it was not on it (closed already). */
static int conn_unlink(ts_direct_conn *c)
{
	ts_daemon *d = c->d;

	for (ts_direct_conn **pp = &d->direct; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			d->n_direct--;
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
	sd_bus_close(c->bus);
	(void)sd_bus_detach_event(c->bus);
	sd_bus_unref(c->bus);
	free(c);
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	conn_close(userdata, "disconnected");
	return 0;
}

/*
 * Every message the client sends. A sender field is the bus driver's to
 * write: on a direct connection the client would be naming someone else
 * (a cached bus caller, a polkit subject), so such a client is cut off
 * before anything reads it. So is one that leaves too many replies unread.
 */
static int on_incoming(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_direct_conn *c = userdata;
	uint64_t queued = 0;

	/* (sd-bus's own Disconnected signal names its local sender; no client can send that interface.) */
	if (sd_bus_message_get_sender(m) && sd_bus_message_is_signal(m, "org.freedesktop.DBus.Local", NULL) <= 0) {
		ts_log(TS_LOG_WARNING, "direct:%u (uid %ld pid %ld): a message naming a sender (%s); disconnected", c->id,
		       (long)c->uid, (long)c->pid, sd_bus_message_get_sender(m));
		conn_close(c, "a message naming a sender");
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
	int r;

	/*
	 * No method or property here takes a variant (no property is writable):
	 * a variant is refused before the walk, whose cost variants' own
	 * signatures would multiply. A body the walk cannot read (an array past
	 * sd-bus's limits, nesting too deep, a bad length) is refused too: no
	 * sd-bus client sends one, and a handler that asks polkit before it reads
	 * its arguments would hold it meanwhile.
	 */
	if (sig && strchr(sig, 'v'))
		r = -EBADMSG;
	else
		r = ts_direct_message_size(m, &st);
	if (r != 0) {
		char what[96];
		uint64_t now = ts_mono_usec();

		if (r < 0)
			snprintf(what, sizeof(what), "a message whose body is a variant or cannot be read");
		else if (st.values > TS_DIRECT_VALUES_MAX)
			snprintf(what, sizeof(what), "a message of more than %d values", TS_DIRECT_VALUES_MAX);
		else if (st.fds > TS_DIRECT_FDS_MAX)
			snprintf(what, sizeof(what), "a message with more than %d file descriptors", TS_DIRECT_FDS_MAX);
		else
			snprintf(what, sizeof(what), "a message larger than %u bytes", TS_DIRECT_MESSAGE_MAX);
		static uint64_t window;
		static unsigned logged, quiet;

		/* At most 10 lines a second: a flood of cut-off clients must not flood the journal (and its audit events). */
		if (now - window >= 1000000u) {
			window = now;
			logged = 0;
		}
		if (logged < 10) {
			ts_log(TS_LOG_WARNING, "direct:%u (uid %ld pid %ld): %s; disconnected%s", c->id, (long)c->uid,
			       (long)c->pid, what, quiet ? " (more were cut off, not logged)" : "");
			logged++;
			quiet = 0;
		} else
			quiet++;
		conn_close(c, "a message past the bounds");
		return 1;
	}
	return 0;
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
		}
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

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	ts_daemon *d = userdata;
	ts_direct_conn *c;
	struct ucred uc;
	socklen_t len = sizeof(uc);
	size_t same_uid = 0;
	int cfd, r;

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
		return 0;
	}
	for (c = d->direct; c; c = c->next)
		same_uid += c->uid == uc.uid;
	if (d->n_direct >= TS_DIRECT_MAX || same_uid >= TS_DIRECT_PER_UID) {
		static uint64_t last_log;
		uint64_t now = ts_now_usec();

		/* At most one line a second: a connect loop must not flood the journal. */
		if (now - last_log >= 1000000) {
			last_log = now;
			ts_log(TS_LOG_INFO, "private socket: uid %ld pid %ld refused: %s", (long)uc.uid, (long)uc.pid,
			       same_uid >= TS_DIRECT_PER_UID ? "too many connections of this uid" : "too many connections");
		}
		close(cfd);
		return 0;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(cfd);
		return 0;
	}
	c->d = d;
	c->uid = uc.uid;
	c->pid = uc.pid;
	c->start_time = ts_direct_start_time(uc.pid);
	c->id = ++next_id;
	if ((r = sd_bus_new(&c->bus)) < 0 || (r = sd_bus_set_fd(c->bus, cfd, cfd)) < 0) {
		sd_bus_unref(c->bus);
		close(cfd);
		free(c);
		return 0;
	}
	/*
	 * on_incoming after ts_serve: sd-bus runs the filter added last first, so
	 * every message meets the bounds before ts_serve's own filter (which drops
	 * calls that want no reply) can take it.
	 */
	if ((r = sd_bus_set_server(c->bus, 1, server_id)) < 0 || (r = sd_bus_negotiate_fds(c->bus, 1)) < 0 ||
	    (r = sd_bus_match_signal(c->bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
	                             "Disconnected", on_disconnected, c)) < 0 ||
	    (r = ts_serve(d, c->bus)) < 0 || (r = sd_bus_add_filter(c->bus, NULL, on_incoming, c)) < 0 ||
	    (r = sd_bus_attach_event(c->bus, d->event, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
	    (r = sd_bus_start(c->bus)) < 0) {
		ts_log(TS_LOG_WARNING, "private socket: cannot serve uid %ld: %s", (long)uc.uid, strerror(-r));
		/* Not flushed: a flush would wait in the loop for a client that may never read. */
		sd_bus_close_unref(c->bus);
		free(c);
		return 0;
	}
	c->next = d->direct;
	d->direct = c;
	d->n_direct++;
	return 0;
}

int ts_direct_listen(ts_daemon *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		ts_log(TS_LOG_ERR, "private socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((r = sd_id128_randomize(&server_id)) < 0)
		return r;
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
}
