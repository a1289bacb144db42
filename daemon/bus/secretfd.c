/* secretfd.c — secrets in and out through a caller's file descriptor: pipes and sockets only, never a wait in the event loop. */
#define _GNU_SOURCE 1   /* F_GETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bus/secretfd.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/state.h"
#include "bus/redispatch.h"

/* Reads waiting for a method call that has no job of its own (ts_secretfd_take): a flood gets Busy. */
#define TAKE_MAX_PER_UID 16
#define TAKE_MAX 256
/*
 * A secret read for a call that was dispatched again but did not take it
 * (its handler failed first, or waits for polkit, whose interactive answer
 * may take 120 s) is wiped after this long.
 */
#define TAKE_KEEP_USEC (150ull * 1000000)

int ts_secretfd_check(int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -TS_E_INVALID_ARGS;
	return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ? 0 : -TS_E_INVALID_ARGS;
}

const char *ts_secretfd_strerror(int r)
{
	switch (r) {
	case -TS_E_INVALID_ARGS:
		return "not a readable pipe or socket (a secret fd must be one: files, devices and directories are refused)";
	case -TS_E_TIMEOUT:
		return "timed out reading the secret fd (close the write end)";
	case -TS_E_LIMIT:
		return "secret longer than 1024 bytes";
	case -TS_E_BUSY:
		return "too many secret fds of this caller being read";
	default:
		return "cannot read the secret fd";
	}
}

/* Our own descriptor of the caller's pipe or socket, non-blocking. The flag is on the open file, shared with the caller. */
static int own_fd(int fd)
{
	int r, fl, copy;

	if ((r = ts_secretfd_check(fd)) < 0)
		return r;
	if ((copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return errno == EMFILE || errno == ENFILE ? -TS_E_LIMIT : -TS_E_INVALID_ARGS;
	if ((fl = fcntl(copy, F_GETFL)) < 0 || ((fl & O_ACCMODE) == O_WRONLY) ||
	    (!(fl & O_NONBLOCK) && fcntl(copy, F_SETFL, fl | O_NONBLOCK) < 0)) {
		close(copy);
		return -TS_E_INVALID_ARGS;
	}
	return copy;
}

/* ---- reading, from the loop ---------------------------------------------------------- */

struct ts_secretfd_op {
	int fd;
	uint8_t *buf;                 /* secure memory, TS_SECRET_IN_MAX + 1 (one spare byte tells "too long") */
	size_t len;
	sd_event_source *io, *timer;
	ts_secretfd_read_fn done;
	void *userdata;
};

void ts_secretfd_cancel(ts_secretfd_op *op)
{
	if (!op)
		return;
	sd_event_source_disable_unref(op->io);
	sd_event_source_disable_unref(op->timer);
	if (op->fd >= 0)
		close(op->fd);
	ts_secure_free(op->buf);
	free(op);
}

static void read_finish(ts_secretfd_op *op, int r)
{
	ts_secretfd_read_fn done = op->done;
	void *userdata = op->userdata;
	uint8_t *secret = NULL;
	size_t len = 0;

	if (r >= 0) {
		len = op->len;
		if (len > 0 && op->buf[len - 1] == '\n')
			op->buf[--len] = 0;
		if (len > 0) {
			secret = op->buf;
			op->buf = NULL;
		}
	}
	ts_secretfd_cancel(op);
	done(userdata, r, secret, secret ? len : 0);
}

static int on_read_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	ts_secretfd_op *op = userdata;
	ssize_t n;

	for (;;) {
		n = read(op->fd, op->buf + op->len, TS_SECRET_IN_MAX + 1 - op->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;   /* more later (or the deadline) */
		if (n < 0) {
			/* EINVAL (a write-only socket end), ECONNRESET ...: not a readable secret. */
			read_finish(op, -TS_E_INVALID_ARGS);
			return 0;
		}
		if (n == 0) {
			read_finish(op, 0);
			return 0;
		}
		op->len += (size_t)n;
		if (op->len > TS_SECRET_IN_MAX) {
			read_finish(op, -TS_E_LIMIT);
			return 0;
		}
	}
}

static int on_read_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	read_finish(userdata, -TS_E_TIMEOUT);
	return 0;
}

int ts_secretfd_read_start(sd_event *event, int fd, ts_secretfd_read_fn done, void *userdata, ts_secretfd_op **ret)
{
	ts_secretfd_op *op;
	int r;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return -TS_E_NOMEM;
	op->done = done;
	op->userdata = userdata;
	if ((op->fd = own_fd(fd)) < 0) {
		r = op->fd;
		free(op);
		return r;
	}
	if ((op->buf = ts_secure_alloc(TS_SECRET_IN_MAX + 1)) == NULL) {
		ts_secretfd_cancel(op);
		return -TS_E_NOMEM;
	}
	if (sd_event_add_io(event, &op->io, op->fd, EPOLLIN, on_read_io, op) < 0 ||
	    sd_event_add_time_relative(event, &op->timer, CLOCK_MONOTONIC, (uint64_t)TS_SECRET_FD_TIMEOUT_MS * 1000, 0,
	                               on_read_timer, op) < 0) {
		ts_secretfd_cancel(op);
		return -TS_E_FAILED;
	}
	*ret = op;
	return 0;
}

/* ---- reading for a handler without a job: the call is dispatched again --------------- */

typedef struct take {
	sd_bus_message *m;            /* the caller's method call, dispatched again when the read ends */
	uid_t uid;
	ts_secretfd_op *op;           /* NULL once done */
	sd_event_source *expire;      /* once done: wipes a secret nobody took */
	int r;
	uint8_t *secret;
	size_t len;
	struct take *next;
} take;

static take *takes;
static size_t n_takes;

static void take_unlink_free(take *t)
{
	for (take **pp = &takes; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			n_takes--;
			break;
		}
	ts_secretfd_cancel(t->op);
	sd_event_source_disable_unref(t->expire);
	ts_secure_free(t->secret);
	sd_bus_message_unref(t->m);
	free(t);
}

static int on_take_expire(sd_event_source *s, uint64_t usec, void *userdata)
{
	take_unlink_free(userdata);
	return 0;
}

static void on_take_read(void *userdata, int r, uint8_t *secret, size_t len)
{
	take *t = userdata;
	sd_bus *bus = sd_bus_message_get_bus(t->m);

	t->op = NULL;
	t->r = r;
	t->secret = secret;
	t->len = len;
	/* Run the caller's method again from the start; it finds this secret. */
	if ((r = sd_event_add_time_relative(sd_bus_get_event(bus), &t->expire, CLOCK_MONOTONIC, TAKE_KEEP_USEC, 0,
	                                    on_take_expire, t)) < 0 ||
	    ts_bus_dispatch_again(t->m, "reading its secret fd") < 0) {
		if (r < 0) {   /* no timer: not dispatched again */
			ts_log(TS_LOG_ERR, "cannot resume a request: %s", strerror(-r));
			(void)sd_bus_reply_method_errorf(t->m, ts_error_dbus_name(-TS_E_FAILED), "internal error");
		}
		take_unlink_free(t);
	}
}

int ts_secretfd_take(ts_daemon *d, sd_bus_message *m, int fd, const char *what, uint8_t **ret, size_t *ret_len,
                     sd_bus_error *error)
{
	char msg[256];
	ts_caller caller;
	size_t n_uid = 0;
	take *t;
	int r;

	*ret = NULL;
	*ret_len = 0;
	for (t = takes; t; t = t->next)
		if (t->m == m)
			break;
	if (t) {
		if (t->op)
			return 0;   /* still reading (not expected: the call is only queued again when done) */
		r = t->r;
		*ret = t->secret;
		*ret_len = t->len;
		t->secret = NULL;
		take_unlink_free(t);
		if (r < 0) {
			snprintf(msg, sizeof(msg), "%s: %s", what, ts_secretfd_strerror(r));
			return ts_bus_error(error, r, msg);
		}
		return 1;
	}
	if ((r = ts_caller_get(m, &caller)) < 0)
		return ts_bus_error(error, r, NULL);
	for (t = takes; t; t = t->next)
		n_uid += t->uid == caller.uid;
	if (n_uid >= TAKE_MAX_PER_UID || n_takes >= TAKE_MAX) {
		snprintf(msg, sizeof(msg), "%s: %s", what, ts_secretfd_strerror(-TS_E_BUSY));
		return ts_bus_error(error, -TS_E_BUSY, msg);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	if ((r = ts_secretfd_read_start(d->event, fd, on_take_read, t, &t->op)) < 0) {
		free(t);
		snprintf(msg, sizeof(msg), "%s: %s", what, ts_secretfd_strerror(r));
		return ts_bus_error(error, r, msg);
	}
	t->m = sd_bus_message_ref(m);
	t->uid = caller.uid;
	t->next = takes;
	takes = t;
	n_takes++;
	return 0;
}

void ts_secretfd_stop(void)
{
	while (takes)
		take_unlink_free(takes);
}

int ts_secretfd_check_out(int fd, size_t len)
{
	struct stat st;
	int cap, used;

	if (fd < 0 || fstat(fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return -TS_E_INVALID_ARGS;
	/* A pipe says how full it is: one that cannot take len bytes is refused before any work is done. */
	if (S_ISFIFO(st.st_mode) && (cap = fcntl(fd, F_GETPIPE_SZ)) > 0 && ioctl(fd, FIONREAD, &used) == 0 &&
	    used >= 0 && (size_t)(cap - used) < len)
		return -TS_E_IO;
	return 0;
}

/* ---- writing: at once or not at all ------------------------------------------------------ */

int ts_secretfd_write(int fd, const void *p, size_t len)
{
	struct stat st;
	ssize_t n;
	int copy, fl;

	if (fd < 0 || fstat(fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return -TS_E_INVALID_ARGS;
	if (S_ISSOCK(st.st_mode)) {
		do
			n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
	} else {
		/*
		 * A pipe write of at most PIPE_BUF bytes is all or nothing: with
		 * O_NONBLOCK a full pipe answers EAGAIN at once, never a wait.
		 */
		if (len > 4096 || (copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
			return -TS_E_INVALID_ARGS;
		if ((fl = fcntl(copy, F_GETFL)) < 0 || (fl & O_ACCMODE) == O_RDONLY ||
		    (!(fl & O_NONBLOCK) && fcntl(copy, F_SETFL, fl | O_NONBLOCK) < 0)) {
			close(copy);
			return -TS_E_INVALID_ARGS;
		}
		do
			n = write(copy, p, len);
		while (n < 0 && errno == EINTR);
		close(copy);
	}
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && (errno == EBADF || errno == EINVAL || errno == ENOTCONN))
		return -TS_E_INVALID_ARGS;
	return -TS_E_IO;   /* full (EAGAIN), closed (EPIPE), or cut short */
}
