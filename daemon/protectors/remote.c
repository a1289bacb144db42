/*
 * remote.c — the fido2, tpm2 and pkcs11 protectors as the daemon sees them:
 * each operation runs in a fresh tokenseal-helper process (helper_wire.h).
 *
 * The daemon links this file instead of the real backends, so libfido2,
 * tpm2-tss, p11-kit and libcrypto are never mapped into the process that
 * holds the root keys; the helper links the backends and nothing of the bus.
 * No token operation is waited for: they are started from the loop and
 * answered through a callback (the jobs at the end, remote.h: unlock,
 * enroll, present, describe, NV counters, escrow key wraps); the table's
 * enroll, unlock and present refuse. describe and needs_secret only decode
 * the public record, so their answers are cached by a hash of (type,
 * record) and read from that cache alone. After each operation one spare
 * helper is started ahead (warm_*), and answered helpers are reaped from the
 * loop. A helper is a child (fork and exec, helper_spawn.h) or, in socket
 * mode, a connection to the socket the service manager starts helpers on:
 * there a job and the spare connect without waiting and wait for the
 * helper's hello in the loop (job_connect, job_hello, warm_connect), and a
 * helper given up on counts until it hangs up (helper_linger); requests and
 * replies are the same bytes on fd 3 either way. Only the synchronous NV
 * counter read at load (ts_remote_nv) waits for a helper. What reaches a
 * server (a tang enrollment or unlock, a directory request) goes to a
 * network helper instead (request_kind, helper_spawn.h): its own user and
 * socket, checked on its hello the same way, and no spare.
 */
#define _GNU_SOURCE 1   /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/blob.h"
#include "core/clock.h"
#include "core/vault.h"
#include "protectors/helper_spawn.h"
#include "protectors/helper_wire.h"
#include "protectors/tpm2_nv.h"
#include "protectors/protector.h"
#include "protectors/remote.h"


#define PRESENT_TIMEOUT_MS 15000
#define DESCRIBE_TIMEOUT_MS 5000       /* decoding a public record: no token is touched */
/* RSA-wrapping an escrow box key touches no token; nobody waits in the loop for it. */
#define ESCROW_TIMEOUT_MS 5000
/* A directory request: connect, StartTLS, bind, read, write, read back, each bounded by 10 s in the helper. */
#define LDAP_TIMEOUT_MS 75000
#define TOKEN_GRACE_MS 60000           /* on top of the touch timeout, for TPM/PKCS#11 work */
#define EXIT_WAIT_MS 2000
/* Socket mode: from connect to the helper's hello (the service manager starts it meanwhile). */
#define HELLO_TIMEOUT_MS 5000
#define CACHE_INITIAL 256
#define PREFETCH_MAX 65536           /* records waiting to be described ahead: a bound that is never the limit */
#define PREFETCH_PARALLEL 4

#ifndef TS_HELPER_PATH
#define TS_HELPER_PATH "/usr/libexec/tokenseal-helper"
#endif

static char helper_path[4096] = TS_HELPER_PATH;

/*
 * Helpers alive: started and not yet reaped (the spare, those at work, those
 * that answered and are exiting); in socket mode, connections open. An
 * asynchronous job that would start one more than max_helpers gets Busy;
 * the spare is not started then.
 */
static unsigned n_alive, max_helpers;

void ts_protector_remote_set_max_helpers(unsigned n)
{
	max_helpers = n;
}

/*
 * Full for this caller? Root's calls and the daemon's own (reserved_ok) may
 * use every helper; other callers leave a quarter (at least one, when the
 * cap is 2 or more) for them.
 */
static int helpers_full(int reserved_ok)
{
	unsigned reserve = max_helpers >= 8 ? max_helpers / 4 : max_helpers >= 2 ? 1 : 0;

	return max_helpers > 0 && n_alive >= (reserved_ok ? max_helpers : max_helpers - reserve);
}

void ts_protector_remote_set_helper(const char *path)
{
	snprintf(helper_path, sizeof(helper_path), "%s", path);
}

const char *ts_protector_remote_helper(void)
{
	return helper_path;
}

/* What error messages name: the program the daemon starts, or the socket it connects to. */
static const char *helper_where(ts_helper_kind kind)
{
	return ts_helper_socket(kind) ? ts_helper_socket(kind) : helper_path;
}

/*
 * Which kind of helper runs a request (helper_spawn.h): a network helper
 * for what reaches a server (a tang enrollment or unlock, a directory
 * request), a token helper for everything else, describing a tang record
 * included (that needs no network).
 */
static ts_helper_kind request_kind(uint8_t op, const char *type)
{
	if (op == TS_WIRE_OP_LDAP)
		return TS_HELPER_NET;
	if ((op == TS_WIRE_OP_ENROLL || op == TS_WIRE_OP_UNLOCK) && type && strcmp(type, "tang") == 0)
		return TS_HELPER_NET;
	return TS_HELPER_TOKEN;
}

/* ---- one helper run ---------------------------------------------------------- */

/* Wait for pid (at start-up or shutdown, or when the loop cannot take it): killed after EXIT_WAIT_MS. */
static void reap(ts_helper_kind kind, pid_t pid, int killed)
{
	struct timespec pause = { 0, 2 * 1000 * 1000 };
	int status;

	if (n_alive > 0)
		n_alive--;
	for (int waited = 0; waited < EXIT_WAIT_MS; waited += 2) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		if (r == 0)
			nanosleep(&pause, NULL);
	}
	if (!killed)
		(void)ts_helper_kill(kind, pid);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/*
 * What a helper writes to its stderr (its own diagnostics, a seccomp
 * refusal) reaches the log through the daemon, a line at a time, escaped and
 * marked as the helper's: a helper cannot write a line that passes for the
 * daemon's (an audit event), nor flood the log (HELPER_LOG_LINES per helper).
 */
#define HELPER_LOG_LINES 32
#define HELPER_LOG_LINE 400
typedef struct helper_log {
	struct helper_log *next;
	sd_event_source *src;
	pid_t pid;
	unsigned lines;
	size_t len;
	char buf[HELPER_LOG_LINE + 1];
} helper_log;

static helper_log *helper_logs;
static ts_remote_log_fn log_fn;
static ts_remote_warn_fn log_warn_fn;
static sd_event *remote_event;

void ts_protector_remote_set_logger(ts_remote_log_fn fn, ts_remote_warn_fn warn)
{
	log_fn = fn;
	log_warn_fn = warn;
}

static void helper_log_line(helper_log *h)
{
	h->buf[h->len] = '\0';
	if (h->len > 0 && log_fn && h->lines < HELPER_LOG_LINES)
		log_fn(h->pid, h->buf);
	else if (h->len > 0 && log_fn && h->lines == HELPER_LOG_LINES)
		log_fn(h->pid, "(more output of this helper not logged)");
	h->lines++;
	h->len = 0;
}

static void helper_log_free(helper_log *h)
{
	for (helper_log **pp = &helper_logs; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	if (h->len > 0)
		helper_log_line(h);
	sd_event_source_disable_unref(h->src);   /* closes the fd (owned by the source) */
	free(h);
}

/* One read per wake-up, at the lowest priority: a helper that writes without end cannot hold the loop. */
static int on_helper_log(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	helper_log *h = userdata;
	char b[1024];
	ssize_t n = read(fd, b, sizeof(b));

	for (ssize_t i = 0; i < n; i++) {
		if (b[i] == '\n' || h->len == HELPER_LOG_LINE)
			helper_log_line(h);
		if (b[i] != '\n')
			h->buf[h->len++] = b[i];
	}
	/* Past its lines, the pipe is closed: the helper's further writes fail, nothing more is read. */
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || h->lines > HELPER_LOG_LINES)
		helper_log_free(h);
	return 0;
}

/* Watch the read end of a new helper's stderr from the loop (or close it: the helper's writes then fail). */
static void helper_log_watch(int fd, pid_t pid)
{
	helper_log *h;

	if (!remote_event || (h = calloc(1, sizeof(*h))) == NULL) {
		close(fd);
		return;
	}
	h->pid = pid;
	if (sd_event_add_io(remote_event, &h->src, fd, EPOLLIN, on_helper_log, h) < 0) {
		close(fd);
		free(h);
		return;
	}
	(void)sd_event_source_set_io_fd_own(h->src, 1);
	(void)sd_event_source_set_priority(h->src, SD_EVENT_PRIORITY_IDLE);
	h->next = helper_logs;
	helper_logs = h;
}

/*
 * Start a helper: 0 with *ret_pid and *ret_fd (the daemon's end of fd 3),
 * or -TS_E_FAILED with err set. In socket mode the service manager starts
 * it, and its stderr is the journal's, not a pipe of the daemon's; this
 * waits for its hello, so in socket mode only the synchronous calls (not
 * from the loop) come here.
 */
static int start_helper(ts_helper_kind kind, pid_t *ret_pid, int *ret_fd, char *err, size_t errlen)
{
	int sv[2], ep[2], child, r;

	if (ts_helper_socket(kind)) {
		if ((r = ts_helper_connect(kind, HELLO_TIMEOUT_MS, ret_fd, ret_pid, err, errlen)) < 0) {
			if (log_warn_fn)
				log_warn_fn(err);
			return r;
		}
		n_alive++;
		return 0;
	}

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "token helper: socketpair: %s", strerror(errno));
		return -TS_E_FAILED;
	}
	/* dup2(3, 3) would leave close-on-exec set: make sure the child's end is not fd 3 already. */
	child = sv[1];
	if (child == 3) {
		child = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
		close(sv[1]);
		if (child < 0) {
			close(sv[0]);
			snprintf(err, errlen, "token helper: fcntl: %s", strerror(errno));
			return -TS_E_FAILED;
		}
	}
	if (pipe2(ep, O_CLOEXEC | O_NONBLOCK) < 0) {
		close(sv[0]);
		close(child);
		snprintf(err, errlen, "token helper: pipe: %s", strerror(errno));
		return -TS_E_FAILED;
	}
	/* As the helper's own user, with a minimal environment (helper_spawn.h). */
	r = ts_helper_spawn(kind, helper_path, child, ep[1], ret_pid, err, errlen);
	close(child);
	close(ep[1]);
	if (r < 0) {
		close(ep[0]);
		close(sv[0]);
		return r;
	}
	helper_log_watch(ep[0], *ret_pid);
	{
		static int warned;
		/* The child checked as the helper's user (ACLs too): said once. */
		if (!warned && log_fn && ts_helper_binary_readable(kind, helper_path)) {
			warned = 1;
			log_fn(*ret_pid, "its program can be read by its user (mode or ACL): each helper is open to the others "
			       "while it starts; install it execute-only, mode 0711, with no ACL granting read");
		}
	}
	*ret_fd = sv[0];
	n_alive++;
	return 0;
}

typedef struct call {
	uint8_t *body;              /* the reply body, secure memory */
	size_t len;
	int32_t rc, value;
	char err[512];
} call;

static void call_done(call *c)
{
	ts_secure_free(c->body);
	c->body = NULL;
}

/* Parse a reply body into c (rc, value, err). 0 or -TS_E_FAILED (malformed: c->err says so, the body is freed). */
static int parse_reply(call *c)
{
	ts_wire_field f;
	size_t off = 0;
	int r;

	c->rc = -TS_E_FAILED;
	while ((r = ts_wire_next(c->body, c->len, &off, &f)) > 0) {
		if (f.tag == TS_WIRE_RC)
			r = ts_wire_get_i32(&f, &c->rc);
		else if (f.tag == TS_WIRE_VALUE)
			r = ts_wire_get_i32(&f, &c->value);
		else if (f.tag == TS_WIRE_ERR)
			r = ts_wire_get_str(&f, c->err, sizeof(c->err));
		if (r < 0)
			break;
	}
	if (r < 0 || c->rc > 0 || c->rc <= -_TS_E_MAX) {
		snprintf(c->err, sizeof(c->err), "the token helper sent a malformed reply");
		call_done(c);
		return -TS_E_FAILED;
	}
	return 0;
}

/*
 * One spare helper, started after each use and kept for warm_keep_usec: it
 * has exec'd and loaded its libraries already, so the next operation does
 * not wait for that. It is still used for one request only, and nothing is
 * sent to it before that request. After warm_keep_usec without a token
 * operation it is killed, so an idle daemon has no child at all.
 */
static uint64_t warm_keep_usec;
static sd_event_source *warm_timer, *warm_defer;
static pid_t warm_pid;
static int warm_fd = -1;
/*
 * Socket mode: the spare is connected without waiting (warm_hello watches
 * for its hello, warm_timer bounds that wait to HELLO_TIMEOUT_MS); only once
 * its hello has been checked is it the spare (warm_pid set). Until then the
 * next operation connects on its own.
 */
static sd_event_source *warm_hello;
static int warm_connecting;

static void kill_close(ts_helper_kind kind, pid_t pid, int fd);
static void helper_linger(int fd);
static int warm_arm(uint64_t usec);

static void warm_drop(void)
{
	if (warm_hello) {
		warm_hello = sd_event_source_disable_unref(warm_hello);
		kill_close(TS_HELPER_TOKEN, 0, warm_fd);
	} else if (warm_pid > 0)
		kill_close(TS_HELPER_TOKEN, warm_pid, warm_fd);
	warm_pid = 0;
	warm_fd = -1;
}

static int on_warm_expired(sd_event_source *s, uint64_t usec, void *userdata)
{
	if (warm_hello && log_warn_fn) {
		char err[512];
		snprintf(err, sizeof(err), "no token helper answered on %.200s within %d ms", helper_where(TS_HELPER_TOKEN),
		         HELLO_TIMEOUT_MS);
		log_warn_fn(err);
	}
	warm_drop();
	return 0;
}

/* Socket mode: the spare's connection is made, or its hello came (checked as ts_helper_connect does). */
static int on_warm_hello(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	char err[512];
	pid_t pid;
	int r;

	if (warm_connecting) {
		if (ts_helper_connect_done(TS_HELPER_TOKEN, fd, err, sizeof(err)) < 0 ||
		    sd_event_source_set_io_events(s, EPOLLIN) < 0)
			goto fail;
		warm_connecting = 0;
		return 0;
	}
	if ((r = ts_helper_hello(TS_HELPER_TOKEN, fd, &pid, err, sizeof(err))) == 1)
		return 0;
	if (r < 0)
		goto fail;
	warm_hello = sd_event_source_disable_unref(warm_hello);
	warm_pid = pid;
	if (warm_arm(warm_keep_usec) < 0)
		warm_drop();
	return 0;
fail:
	if (log_warn_fn)
		log_warn_fn(err);
	warm_drop();
	return 0;
}

/* Socket mode: connect a spare, from the loop; it is the spare once on_warm_hello has checked it. */
static int warm_connect(void)
{
	char err[512];
	int fd, r;

	if ((r = ts_helper_connect_start(TS_HELPER_TOKEN, &fd, &warm_connecting, err, sizeof(err))) < 0) {
		if (log_warn_fn)
			log_warn_fn(err);
		return r;
	}
	n_alive++;
	warm_fd = fd;
	if (sd_event_add_io(remote_event, &warm_hello, fd, warm_connecting ? EPOLLOUT : EPOLLIN, on_warm_hello,
	                    NULL) < 0) {
		/* Not watched yet: nothing of warm_drop's applies; the connection and its count go here. */
		warm_hello = NULL;
		warm_fd = -1;
		helper_linger(fd);
		return -TS_E_FAILED;
	}
	if (warm_arm((uint64_t)HELLO_TIMEOUT_MS * 1000) < 0) {
		warm_drop();
		return -TS_E_FAILED;
	}
	return 0;
}

/* (Re)arm the spare's timer: it is let go (or, in socket mode, given up on before its hello) after usec. */
static int warm_arm(uint64_t usec)
{
	if (!warm_timer)
		return sd_event_add_time_relative(remote_event, &warm_timer, CLOCK_MONOTONIC, usec, 0, on_warm_expired,
		                                  NULL);
	if (sd_event_source_set_time_relative(warm_timer, usec) < 0 ||
	    sd_event_source_set_enabled(warm_timer, SD_EVENT_ONESHOT) < 0)
		return -1;
	return 0;
}

/* Start the spare (from the loop, once the current call has been answered). */
static int on_warm_defer(sd_event_source *s, void *userdata)
{
	char err[512];

	if (warm_hello)
		return 0;   /* socket mode: one is being connected already */
	if (warm_pid <= 0 && helpers_full(0))
		return 0;   /* the cap has room for no spare now (nor takes one kept back) */
	if (warm_pid <= 0 && ts_helper_socket(TS_HELPER_TOKEN)) {
		(void)warm_connect();
		return 0;
	}
	if (warm_pid <= 0 && start_helper(TS_HELPER_TOKEN, &warm_pid, &warm_fd, err, sizeof(err)) < 0) {
		warm_pid = 0;
		warm_fd = -1;
		return 0;
	}
	if (!warm_timer) {
		if (sd_event_add_time_relative(remote_event, &warm_timer, CLOCK_MONOTONIC, warm_keep_usec, 0,
		                               on_warm_expired, NULL) < 0)
			warm_drop();
	} else if (sd_event_source_set_time_relative(warm_timer, warm_keep_usec) < 0 ||
	           sd_event_source_set_enabled(warm_timer, SD_EVENT_ONESHOT) < 0)
		warm_drop();
	return 0;
}

/*
 * After a token operation: have a spare ready for the next one. Starting one
 * blocks until the child has exec'd, so this is deferred to the loop: the
 * caller's reply goes out first.
 */
static void warm_refill(void)
{
	if (!remote_event || warm_keep_usec == 0)
		return;
	if (!warm_defer) {
		if (sd_event_add_defer(remote_event, &warm_defer, on_warm_defer, NULL) < 0)
			return;
	}
	(void)sd_event_source_set_enabled(warm_defer, SD_EVENT_ONESHOT);
}

/*
 * A helper that has answered is left to exit on its own (its libraries'
 * clean-up can take milliseconds the caller need not wait for) and reaped
 * from the loop; one that has not exited REAP_GRACE_MS after its answer is
 * killed. Without a loop (or with too many pending) it is reaped at once.
 */
#define REAP_MAX 64
#define REAP_GRACE_MS 1000
#define REAP_POLL_USEC (50ull * 1000)
static struct { pid_t pid; uint64_t deadline_ms; int killed; ts_helper_kind kind; } reaping[REAP_MAX];
static size_t n_reaping;
static sd_event_source *reap_timer;

static void reap_some(void)
{
	uint64_t now = ts_mono_ms();
	int status;

	for (size_t i = 0; i < n_reaping;) {
		pid_t r = waitpid(reaping[i].pid, &status, WNOHANG);
		if (r == reaping[i].pid || (r < 0 && errno == ECHILD)) {
			reaping[i] = reaping[--n_reaping];
			if (n_alive > 0)
				n_alive--;
			continue;
		}
		if (!reaping[i].killed && now >= reaping[i].deadline_ms) {
			(void)ts_helper_kill(reaping[i].kind, reaping[i].pid);
			reaping[i].killed = 1;
		}
		i++;
	}
}

static int on_reap_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	reap_some();
	if (n_reaping > 0 && sd_event_source_set_time_relative(s, REAP_POLL_USEC) >= 0)
		(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/*
 * Socket mode: the helper's connection is closed and that is all. It reads
 * EOF or gets EPIPE and exits, the service manager reaps it, and the helper
 * unit's RuntimeMaxSec= ends one that does neither; its pid is no child of
 * ours, and may be anyone's process by now, so it is neither waited for nor
 * signalled.
 */
static void helper_gone(void)
{
	if (n_alive > 0)
		n_alive--;
}

/*
 * Socket mode: a helper the daemon gave up on (no answer in time, a call
 * cancelled, no hello yet) may go on with its token operation until the
 * helper unit's RuntimeMaxSec= ends it; until then it still counts toward
 * [limits] helpers. Its connection is kept, half-closed (it reads EOF), and
 * watched: what it still sends is read and wiped, and it is counted gone
 * when it hangs up, or after LINGER_MAX_USEC (tokenseal-helper@.service's
 * RuntimeMaxSec=) at the latest.
 */
#define LINGER_MAX_USEC (5ull * 60 * 1000 * 1000)
typedef struct helper_linger_t {
	struct helper_linger_t *next;
	sd_event_source *io, *timer;
} held_helper;
static held_helper *lingers;

static void linger_end(held_helper *l)
{
	for (held_helper **pp = &lingers; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	sd_event_source_disable_unref(l->io);   /* closes the fd (owned by the source) */
	sd_event_source_disable_unref(l->timer);
	free(l);
	helper_gone();
}

/* One read per wake-up, at the lowest priority; the bytes are wiped unread. */
static int on_linger_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	uint8_t b[4096];
	ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);

	sodium_memzero(b, sizeof(b));
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
	    (n < 0 && (revents & (EPOLLHUP | EPOLLERR))))
		linger_end(userdata);
	return 0;
}

static int on_linger_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	linger_end(userdata);
	return 0;
}

static void helper_linger(int fd)
{
	held_helper *l;

	if (!remote_event || (l = calloc(1, sizeof(*l))) == NULL)
		goto now;
	(void)shutdown(fd, SHUT_WR);
	if (sd_event_add_io(remote_event, &l->io, fd, EPOLLIN, on_linger_io, l) < 0) {
		free(l);
		goto now;
	}
	(void)sd_event_source_set_io_fd_own(l->io, 1);
	(void)sd_event_source_set_priority(l->io, SD_EVENT_PRIORITY_IDLE);
	if (sd_event_add_time_relative(remote_event, &l->timer, CLOCK_MONOTONIC, LINGER_MAX_USEC, 0, on_linger_timer,
	                               l) < 0) {
		sd_event_source_disable_unref(l->io);
		free(l);
		helper_gone();
		return;
	}
	l->next = lingers;
	lingers = l;
	return;
now:
	close(fd);
	helper_gone();
}

static void reap_later_as(ts_helper_kind kind, pid_t pid, int killed)
{
	if (ts_helper_socket(kind)) {
		helper_gone();
		return;
	}
	if (!remote_event || n_reaping == REAP_MAX) {
		reap(kind, pid, killed);
		return;
	}
	reaping[n_reaping].pid = pid;
	reaping[n_reaping].kind = kind;
	reaping[n_reaping].deadline_ms = ts_mono_ms() + REAP_GRACE_MS;
	reaping[n_reaping].killed = killed;
	n_reaping++;
	if (!reap_timer) {
		if (sd_event_add_time_relative(remote_event, &reap_timer, CLOCK_MONOTONIC, REAP_POLL_USEC, 0,
		                               on_reap_timer, NULL) < 0) {
			n_reaping--;
			reap(kind, pid, killed);
		}
	} else if (sd_event_source_set_time_relative(reap_timer, REAP_POLL_USEC) >= 0)
		(void)sd_event_source_set_enabled(reap_timer, SD_EVENT_ONESHOT);
}

static void reap_later(ts_helper_kind kind, pid_t pid)
{
	reap_later_as(kind, pid, 0);
}

/*
 * A helper that overran its time, or whose request or reply failed: killed
 * (CAP_KILL, ts_helper_kill) and reaped from the loop, never waited for in it.
 */
static void kill_reap(ts_helper_kind kind, pid_t pid)
{
	if (!ts_helper_socket(kind))
		(void)ts_helper_kill(kind, pid);
	reap_later_as(kind, pid, 1);
}

/* The same with its connection, fd: closed; in socket mode kept half-closed until it hangs up (helper_linger). */
static void kill_close(ts_helper_kind kind, pid_t pid, int fd)
{
	if (ts_helper_socket(kind)) {
		helper_linger(fd);
		return;
	}
	close(fd);
	kill_reap(kind, pid);
}

/* Is the spare (a token helper) still there? A child not exited (it is reaped if it has); a connection not hung up. */
static int helper_alive(pid_t pid, int fd)
{
	int status;

	if (ts_helper_socket(TS_HELPER_TOKEN)) {
		char b;
		ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
	return waitpid(pid, &status, WNOHANG) == 0;
}

/* The spare (token) helper if there is one and it is still alive: 1 with *pid, *fd; else 0. */
static int take_spare(pid_t *pid, int *fd)
{
	if (warm_pid > 0) {
		pid_t p = warm_pid;
		int f = warm_fd;
		warm_pid = 0;
		warm_fd = -1;
		if (helper_alive(p, f)) {
			*pid = p;
			*fd = f;
			return 1;
		}
		/*
		 * It died (and is reaped now) or hung up: start another. In socket
		 * mode one that sent more than its hello is given up on, and counted
		 * until it hangs up.
		 */
		if (ts_helper_socket(TS_HELPER_TOKEN))
			helper_linger(f);
		else {
			close(f);
			if (n_alive > 0)
				n_alive--;
		}
	}
	return 0;
}

/*
 * A token request: the spare if it is still alive, else a new helper; a
 * network request: always a new one (no spare is kept for those). In
 * socket mode this waits for its hello: not from the loop.
 */
static int take_helper(ts_helper_kind kind, pid_t *pid, int *fd, char *err, size_t errlen)
{
	if (kind == TS_HELPER_TOKEN && take_spare(pid, fd))
		return 0;
	return start_helper(kind, pid, fd, err, errlen);
}

void ts_protector_remote_set_event(sd_event *event, uint64_t keep_usec)
{
	remote_event = event;
	warm_keep_usec = keep_usec;
}

static void prefetch_stop(void);
static void cache_clear(void);

void ts_protector_remote_shutdown(void)
{
	prefetch_stop();
	cache_clear();
	warm_drop();
	while (lingers)
		linger_end(lingers);
	for (size_t i = 0; i < n_reaping; i++)
		reap(reaping[i].kind, reaping[i].pid, reaping[i].killed);
	n_reaping = 0;
	while (helper_logs)
		helper_log_free(helper_logs);
	reap_timer = sd_event_source_disable_unref(reap_timer);
	warm_timer = sd_event_source_disable_unref(warm_timer);
	warm_defer = sd_event_source_disable_unref(warm_defer);
	remote_event = NULL;
}

/* Start a helper and send it the request. 0 with *pid, *fd; or a transport error with c->err set. */
static int helper_send(ts_helper_kind kind, const ts_wire_field *fields, size_t n, call *c, pid_t *pid, int *fd)
{
	_ts_cleanup_secure_ uint8_t *frame = NULL;
	size_t frame_len;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = ts_wire_encode(fields, n, &frame, &frame_len)) < 0)
		return r;
	if ((r = take_helper(kind, pid, fd, c->err, sizeof(c->err))) < 0)
		return r;
	if ((r = ts_wire_write(*fd, frame, frame_len)) < 0) {
		kill_close(kind, *pid, *fd);
		snprintf(c->err, sizeof(c->err), "the %s %.300s exited before reading its request",
		         ts_helper_kind_name(kind), helper_where(kind));
		return -TS_E_FAILED;
	}
	return 0;
}

/* The reply was read into c (r 0) or not (r < 0): reap the helper, parse. 0 or a transport error with c->err set. */
static int helper_received(ts_helper_kind kind, pid_t pid, int fd, int r, call *c)
{
	if (r < 0)
		kill_close(kind, pid, fd);
	else {
		close(fd);
		reap_later(kind, pid);
	}
	reap_some();
	warm_refill();
	if (r < 0) {
		snprintf(c->err, sizeof(c->err), "the %s %.300s: %s", ts_helper_kind_name(kind), helper_where(kind),
		         r == -TS_E_TIMEOUT ? "no answer in time" :
		         r == -TS_E_LIMIT ? "a reply over the size limit" : "exited without an answer");
		return r == -TS_E_TIMEOUT ? r : -TS_E_FAILED;
	}
	return parse_reply(c);
}

/* Read the reply (waiting at most timeout_ms: the synchronous ops only), reap the helper, parse. */
static int helper_receive(ts_helper_kind kind, pid_t pid, int fd, int timeout_ms, call *c)
{
	return helper_received(kind, pid, fd, ts_wire_read(fd, timeout_ms, &c->body, &c->len), c);
}

/* Send fields to a token helper, wait for the reply; fills c (c->rc is the backend's result). 0 or a transport error. */
static int helper_call(const ts_wire_field *fields, size_t n, int timeout_ms, call *c)
{
	pid_t pid;
	int fd, r;

	if ((r = helper_send(TS_HELPER_TOKEN, fields, n, c, &pid, &fd)) < 0)
		return r;
	return helper_receive(TS_HELPER_TOKEN, pid, fd, timeout_ms, c);
}

/* ---- requests ---------------------------------------------------------------- */

#define MAX_FIELDS (16 + TS_WIRE_MAX_OPTIONS)

typedef struct fields {
	ts_wire_field f[MAX_FIELDS];
	size_t n;
	uint8_t op;
	uint8_t timeout[4];
	char options[TS_WIRE_MAX_OPTIONS][TS_WIRE_STR_MAX + 1];
} fields;

static void put(fields *q, uint8_t tag, const void *data, size_t len)
{
	if (q->n < MAX_FIELDS)
		q->f[q->n++] = (ts_wire_field){ .tag = tag, .data = data, .len = len };
}

static void put_str(fields *q, uint8_t tag, const char *s)
{
	if (s && *s)
		put(q, tag, s, strlen(s));
}

static const uint8_t test_devices_on = 1;

static int build(fields *q, uint8_t op, const char *type, const ts_protector_request *req,
                 const uint8_t *params, size_t params_len)
{
	/*
	 * A network helper gets what its request is about and nothing of the
	 * tokens: no PIN (a caller may send one with Unlock --protector tang;
	 * a reused PIN must not reach a process that parses servers' answers),
	 * no TPM, FIDO2 or PKCS#11 setting.
	 */
	int net = request_kind(op, type) == TS_HELPER_NET;

	q->op = op;
	put(q, TS_WIRE_OP, &q->op, 1);
	put_str(q, TS_WIRE_TYPE, type);
	if (req) {
		const ts_config *cf = net ? NULL : req->config;
		if (cf) {
			uint32_t t = cf->fido2_timeout_ms;
			put_str(q, TS_WIRE_TCTI, cf->tpm2_tcti);
			put_str(q, TS_WIRE_FIDO2_DEVICE, cf->fido2_device);
			put_str(q, TS_WIRE_PKCS11_MODULE, cf->pkcs11_module);
			ts_put_be32(q->timeout, t);
			put(q, TS_WIRE_FIDO2_TIMEOUT, q->timeout, 4);
			if (cf->test_devices)
				put(q, TS_WIRE_TEST_DEVICES, &test_devices_on, 1);
		}
		put_str(q, TS_WIRE_VAULT_NAME, req->vault_name);
		if (req->vault_id)
			put(q, TS_WIRE_VAULT_ID, req->vault_id, TS_VAULT_ID_BYTES);
		if (req->n_options > TS_WIRE_MAX_OPTIONS)
			return ts_protector_fail(req, -TS_E_LIMIT, "too many options");
		for (size_t i = 0; i < req->n_options; i++) {
			int l = snprintf(q->options[i], sizeof(q->options[i]), "%s%c%s", req->options[i].key, '\0',
			                 req->options[i].value);
			if (l < 0 || (size_t)l >= sizeof(q->options[i]) || !*req->options[i].key)
				return ts_protector_fail(req, -TS_E_INVALID_ARGS, "option '%s' too long", req->options[i].key);
			put(q, TS_WIRE_OPTION, q->options[i], (size_t)l);
		}
		if (req->pin && !net)
			put(q, TS_WIRE_PIN, req->pin, req->pin_len);
	}
	if (params)
		put(q, TS_WIRE_PARAMS, params, params_len);
	return 0;
}

static int token_timeout(const ts_protector_request *req)
{
	unsigned t = req->config && req->config->fido2_timeout_ms ? req->config->fido2_timeout_ms : 30000;
	return (int)t + TOKEN_GRACE_MS;
}

/* The backend's result: its code and message, or the transport's. */
static int finish(const ts_protector_request *req, int transport, call *c)
{
	int rc = transport < 0 ? transport : c->rc;

	if (rc < 0 && req)
		(void)ts_protector_fail(req, rc, "%s", c->err[0] ? c->err : ts_strerror(rc));
	return rc;
}

/*
 * The fields a successful reply must carry for op, pointing into c's body
 * (desc copied, NUL-terminated). 0 or -TS_E_FAILED with c->err set.
 */
static int reply_fields(uint8_t op, call *c, ts_remote_reply *out, char *desc, size_t desc_cap)
{
	ts_wire_field f;
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	desc[0] = '\0';
	out->desc = desc;
	while (ts_wire_next(c->body, c->len, &off, &f) > 0) {
		if (f.tag == TS_WIRE_KEK && f.len == TS_KEY_BYTES)
			out->kek = f.data;
		else if (f.tag == TS_WIRE_PARAMS && f.len > 0)
			out->params = f.data, out->params_len = f.len;
		else if (f.tag == TS_WIRE_DESC && ts_wire_get_str(&f, desc, desc_cap) < 0)
			desc[0] = '\0';
		else if (f.tag == TS_WIRE_SECRET)
			out->secret = f.data, out->secret_len = f.len;
	}
	if (op == TS_WIRE_OP_NV || op == TS_WIRE_OP_ESCROW_WRAP_KEY) {
		if (!out->params) {
			snprintf(c->err, sizeof(c->err), "the token helper sent an incomplete answer");
			return -TS_E_FAILED;
		}
		return 0;
	}
	if (op == TS_WIRE_OP_LDAP) {
		out->value = c->value;
		return 0;
	}
	if (op == TS_WIRE_OP_PRESENT) {
		/* desc, when the helper sent one, names the token that answered. */
		out->present = c->value > 0;
		return 0;
	}
	if (!out->kek || (op == TS_WIRE_OP_ENROLL && !out->params)) {
		snprintf(c->err, sizeof(c->err), "the token helper sent an incomplete answer");
		return -TS_E_FAILED;
	}
	return 0;
}

/*
 * The table's enroll, unlock and present: a token operation is never waited
 * for in the daemon, only started from the loop (ts_remote_*_start, below).
 * They stay set so that callers can tell what a backend offers.
 */
static int remote_not_here(ts_protector_request *req)
{
	return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token operations run in the helper, from the event loop");
}

/* ---- describe / needs_secret, cached --------------------------------------------- */

/*
 * Each record is described by a helper once per daemon run: the answer only
 * depends on the public record. No read ever waits for that helper. The
 * records of the vaults loaded are described before the daemon serves
 * (ts_remote_describe_wait), a new enrollment's reply carries its record's
 * description, and a record met otherwise (a vault file accepted back) is
 * described from the loop (ts_remote_describe_prefetch); until that answer
 * is in, its facts read as unknown and it counts as needing no secret. The
 * cache grows with the records the daemon holds and, when full, first drops
 * the entries of records no vault holds any more (ts_remote_describe_set_records),
 * never a held one: so no pattern of enrollments can make another user's
 * record unknown again.
 */
typedef struct cached {
	uint8_t hash[crypto_generichash_BYTES];
	int needs_secret;
	int rc;
	int held;                    /* the sweep's mark */
	char *facts;                 /* "key\0value\0" repeated */
	size_t facts_len;
} cached;

static cached *cache;
static size_t n_cache, cap_cache;
static ts_remote_records_fn held_records;
static void *held_records_ctx;

void ts_remote_describe_set_records(ts_remote_records_fn records, void *ctx)
{
	held_records = records;
	held_records_ctx = ctx;
}

static void record_hash(const char *type, const uint8_t *params, size_t params_len,
                        uint8_t hash[crypto_generichash_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)type, strlen(type) + 1);
	crypto_generichash_update(&st, params, params_len);
	crypto_generichash_final(&st, hash, crypto_generichash_BYTES);
}

static cached *cache_find(const uint8_t hash[crypto_generichash_BYTES])
{
	for (size_t i = 0; i < n_cache; i++)
		if (memcmp(cache[i].hash, hash, crypto_generichash_BYTES) == 0)
			return &cache[i];
	return NULL;
}

static void mark_held(const char *type, const uint8_t *params, size_t params_len, void *ud)
{
	uint8_t hash[crypto_generichash_BYTES];
	cached *e;

	record_hash(type, params, params_len, hash);
	if ((e = cache_find(hash)) != NULL)
		e->held = 1;
}

/* Room for one more entry: drop those of records no vault holds, else grow. 0, or -TS_E_NOMEM. */
static int cache_make_room(void)
{
	size_t kept = 0;
	cached *grown;

	if (n_cache < cap_cache)
		return 0;
	if (held_records && n_cache > 0) {
		for (size_t i = 0; i < n_cache; i++)
			cache[i].held = 0;
		held_records(held_records_ctx, mark_held, NULL);
		for (size_t i = 0; i < n_cache; i++) {
			if (!cache[i].held) {
				free(cache[i].facts);
				continue;
			}
			cache[kept++] = cache[i];
		}
		n_cache = kept;
	}
	/* Grown while more than half is held, so a sweep runs once per that many new records at most. */
	if (n_cache < cap_cache / 2)
		return 0;
	if ((grown = reallocarray(cache, cap_cache ? cap_cache * 2 : CACHE_INITIAL, sizeof(*cache))) == NULL)
		return n_cache < cap_cache ? 0 : -TS_E_NOMEM;
	cache = grown;
	cap_cache = cap_cache ? cap_cache * 2 : CACHE_INITIAL;
	return 0;
}

/* Keep a helper's DESCRIBE (or ENROLL) answer, c's body, for hash. The entry, or NULL. */
static const cached *cache_store(const uint8_t hash[crypto_generichash_BYTES], const call *c)
{
	const cached *old = cache_find(hash);
	cached e = { .rc = c->rc, .needs_secret = c->value };
	ts_wire_field f;
	size_t off = 0;
	int r;

	if (old)
		return old;
	memcpy(e.hash, hash, sizeof(e.hash));
	while ((r = ts_wire_next(c->body, c->len, &off, &f)) > 0) {
		char *grown;
		if (f.tag != TS_WIRE_FACT)
			continue;
		if (f.len > TS_WIRE_STR_MAX || (grown = realloc(e.facts, e.facts_len + f.len + 1)) == NULL) {
			r = -TS_E_NOMEM;
			break;
		}
		e.facts = grown;
		memcpy(e.facts + e.facts_len, f.data, f.len);
		e.facts[e.facts_len + f.len] = '\0';
		e.facts_len += f.len + 1;
	}
	if (r < 0 || cache_make_room() < 0) {
		free(e.facts);
		return NULL;
	}
	cache[n_cache] = e;
	return &cache[n_cache++];
}

static void cache_clear(void)
{
	for (size_t i = 0; i < n_cache; i++)
		free(cache[i].facts);
	free(cache);
	cache = NULL;
	n_cache = cap_cache = 0;
}

/*
 * Records whose helper did not answer (timed out, died, or sent nothing
 * usable): not asked again for FAILED_RETRY_MS, so a record made to hang its
 * helper costs one helper run per that time, not one per property read.
 * Their facts read as unknown meanwhile.
 */
#define FAILED_MAX 256
#define FAILED_RETRY_MS (10ull * 60 * 1000)
static struct {
	uint8_t hash[crypto_generichash_BYTES];
	uint64_t until_ms;
} failed[FAILED_MAX];

static int failed_recently(const uint8_t hash[crypto_generichash_BYTES])
{
	uint64_t now = ts_mono_ms();

	for (size_t i = 0; i < FAILED_MAX; i++)
		if (failed[i].until_ms > now && memcmp(failed[i].hash, hash, crypto_generichash_BYTES) == 0)
			return 1;
	return 0;
}

static void failed_note(const uint8_t hash[crypto_generichash_BYTES])
{
	uint64_t now = ts_mono_ms();
	size_t slot = randombytes_uniform(FAILED_MAX);

	for (size_t i = 0; i < FAILED_MAX; i++)
		if (failed[i].until_ms <= now) {
			slot = i;
			break;
		}
	memcpy(failed[slot].hash, hash, crypto_generichash_BYTES);
	failed[slot].until_ms = now + FAILED_RETRY_MS;
}

static void prefetch_start_some(void);

/* The record's description, or NULL while it is unknown (then asked of a helper from the loop). */
static const cached *describe_cached(const ts_protector_ops *ops, const uint8_t *params, size_t params_len)
{
	uint8_t hash[crypto_generichash_BYTES];
	const cached *e;

	record_hash(ops->type, params, params_len, hash);
	if ((e = cache_find(hash)) != NULL)
		return e;
	if (!failed_recently(hash))
		ts_remote_describe_prefetch(ops, params, params_len);
	return NULL;
}

static int remote_describe(const ts_protector_ops *ops, const uint8_t *params, size_t params_len,
                           int (*add)(void *ud, const char *key, const char *value), void *ud)
{
	const cached *e = describe_cached(ops, params, params_len);
	const char *p, *end;
	int r;

	if (!e)
		return -TS_E_FAILED;
	for (p = e->facts, end = e->facts + e->facts_len; p && p < end;) {
		const char *key = p, *nul = memchr(p, '\0', (size_t)(end - p)), *value;
		if (!nul || nul + 1 >= end)
			break;
		value = nul + 1;
		if ((r = add(ud, key, value)) < 0)
			return r;
		p = value + strlen(value) + 1;
	}
	return e->rc;
}

static int remote_needs_secret(const ts_protector_ops *ops, const uint8_t *params, size_t params_len)
{
	const cached *e = describe_cached(ops, params, params_len);

	return e ? e->needs_secret : 0;
}

/* ---- the four backends ----------------------------------------------------------------- */

#define REMOTE_OPS(name, typestr)                                                                              \
	static int name##_enroll(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc,      \
	                         char *secret_out, size_t cap, size_t *len) {                                      \
		*len = 0;                                                                                          \
		return remote_not_here(req);                                                                       \
	}                                                                                                          \
	static int name##_unlock(ts_protector_request *req, const uint8_t *params, size_t len, uint8_t *kek) {     \
		return remote_not_here(req);                                                                       \
	}                                                                                                          \
	static int name##_describe(const uint8_t *params, size_t len,                                              \
	                           int (*add)(void *ud, const char *key, const char *value), void *ud) {          \
		return remote_describe(&ts_protector_##name, params, len, add, ud);                                \
	}                                                                                                          \
	static int name##_needs_secret(const uint8_t *params, size_t len) {                                        \
		return remote_needs_secret(&ts_protector_##name, params, len);                                     \
	}                                                                                                          \
	static int name##_present(ts_protector_request *req, const uint8_t *params, size_t len) {                  \
		return remote_not_here(req);                                                                       \
	}                                                                                                          \
	const ts_protector_ops ts_protector_##name = {                                                             \
		.type = typestr,                                                                                   \
		.enroll = name##_enroll,                                                                           \
		.unlock = name##_unlock,                                                                           \
		.describe = name##_describe,                                                                       \
		.needs_secret = name##_needs_secret,                                                               \
		.present = name##_present,                                                                         \
	}

REMOTE_OPS(fido2, "fido2");
REMOTE_OPS(tpm2, "tpm2");
REMOTE_OPS(pkcs11, "pkcs11");
REMOTE_OPS(tang, "tang");

/* ---- enroll and unlock without blocking the event loop ----------------------------------- */

/*
 * In socket mode a job that connects first waits for the helper's hello
 * (JOB_CONNECTING, JOB_HELLO: the request, in secure memory, is kept
 * until then), checks who sent it, then sends the request; the loop never
 * waits for any of it. In fork mode, or given a checked spare, a job starts
 * in JOB_REPLYING.
 */
enum { JOB_REPLYING, JOB_CONNECTING, JOB_HELLO };

struct ts_remote_job {
	pid_t pid;
	int fd;
	ts_helper_kind kind;                      /* which helper runs it (request_kind) */
	uint8_t op;
	int phase;
	uint8_t *frame;                           /* the request until sent: secure memory */
	size_t frame_len;
	int timeout_ms;                           /* for the reply, from when the request is sent */
	/* The reply frame, read as it arrives (never waited for in the loop). */
	uint8_t hdr[4];
	size_t hdr_got;
	uint8_t *body;                            /* secure memory, body_len bytes once the header is in */
	uint32_t body_len;
	size_t body_got;
	const char *type;                         /* the backend's (static) */
	uint8_t hash[crypto_generichash_BYTES];   /* DESCRIBE: the record's cache key */
	sd_event_source *io, *timer;
	ts_remote_reply_fn done;
	void *userdata;
};

int ts_protector_is_remote(const ts_protector_ops *ops)
{
	return ops == &ts_protector_fido2 || ops == &ts_protector_tpm2 || ops == &ts_protector_pkcs11 ||
	       ops == &ts_protector_tang;
}

int ts_protector_unlocks_in_helper(const ts_protector_ops *ops)
{
	return ts_protector_is_remote(ops) || ops == &ts_protector_recovery;
}

static void job_free(ts_remote_job *j)
{
	sd_event_source_disable_unref(j->io);
	sd_event_source_disable_unref(j->timer);
	ts_secure_free(j->body);
	ts_secure_free(j->frame);   /* wipes the request (a PIN) if it was never sent */
	free(j);
}

void ts_remote_job_cancel(ts_remote_job *j)
{
	if (!j)
		return;
	j->io = sd_event_source_disable_unref(j->io);   /* off epoll first: the fd may be watched on (helper_linger) */
	kill_close(j->kind, j->pid, j->fd);
	job_free(j);
}

enum { JOB_REPLY, JOB_TIMEOUT, JOB_EOF, JOB_TOO_LONG, JOB_NO_HELPER };

/*
 * Finish: the whole reply is in (JOB_REPLY), the timer fired, or the helper
 * hung up or sent too much; or (JOB_NO_HELPER, socket mode) no helper was
 * sent the request: err says why.
 */
static void job_finish_as(ts_remote_job *j, int how, const char *err)
{
	ts_remote_reply_fn done = j->done;
	void *userdata = j->userdata;
	uint8_t op = j->op;
	const char *type = j->type;
	char desc[TS_PROTECTOR_DESC_MAX];
	ts_remote_reply reply;
	uint8_t hash[crypto_generichash_BYTES];
	call c;
	int r;

	pid_t pid = j->pid;

	j->io = sd_event_source_disable_unref(j->io);   /* off epoll first: the fd may be watched on (helper_linger) */
	memcpy(hash, j->hash, sizeof(hash));
	memset(&c, 0, sizeof(c));
	if (how == JOB_REPLY) {
		c.body = j->body;
		c.len = j->body_len;
		j->body = NULL;
	}
	if (how == JOB_NO_HELPER) {
		kill_close(j->kind, j->pid, j->fd);
		snprintf(c.err, sizeof(c.err), "%s", err);
		r = -TS_E_FAILED;
	} else
		r = helper_received(j->kind, j->pid, j->fd, how == JOB_REPLY ? 0 : how == JOB_TIMEOUT ? -TS_E_TIMEOUT :
		                    how == JOB_TOO_LONG ? -TS_E_LIMIT : -TS_E_IO, &c);
	job_free(j);
	if (op == TS_WIRE_OP_DESCRIBE) {
		/* Kept even when the backend refused the record: its answer will not change. */
		if (r >= 0 && !cache_store(hash, &c))
			r = -TS_E_NOMEM;
		else if (r < 0) {
			char line[256];
			failed_note(hash);   /* a helper that started and did not answer */
			snprintf(line, sizeof(line), "did not describe a %s protector record (%s): its facts read as "
			         "unknown, asked again in %llu min", type, ts_strerror(r),
			         (unsigned long long)(FAILED_RETRY_MS / 60000));
			if (log_fn)
				log_fn(pid, line);
		}
		done(userdata, r, NULL, c.err);
		call_done(&c);
		return;
	}
	if (r >= 0 && (r = c.rc) >= 0)
		r = reply_fields(op, &c, &reply, desc, sizeof(desc));
	if (r >= 0 && op == TS_WIRE_OP_ENROLL) {
		/* The reply describes the new record too: kept, before anybody reads it. */
		record_hash(type, reply.params, reply.params_len, hash);
		(void)cache_store(hash, &c);
	}
	done(userdata, r, r >= 0 ? &reply : NULL, c.err);
	call_done(&c);   /* wipes the KEK and any secret the reply carried */
}

static void job_finish(ts_remote_job *j, int how)
{
	job_finish_as(j, how, NULL);
}

/* Socket mode, no helper yet: nothing is sent, the job ends with err (logged as ts_helper_connect's failures were). */
static void job_no_helper(ts_remote_job *j, const char *err)
{
	if (log_warn_fn)
		log_warn_fn(err);
	job_finish_as(j, JOB_NO_HELPER, err);
}

/* The request, whole, to a helper whose hello was checked (non-blocking: a short write is a failure). */
static int job_write(ts_remote_job *j)
{
	int r = ts_wire_write(j->fd, j->frame, j->frame_len);

	ts_secure_free(j->frame);
	j->frame = NULL;
	return r;
}

/* Socket mode: the connection is made, or the hello came: checked, then the request goes out. */
static int job_hello(ts_remote_job *j, sd_event_source *s)
{
	char err[512];
	int r;

	if (j->phase == JOB_CONNECTING) {
		if (ts_helper_connect_done(j->kind, j->fd, err, sizeof(err)) < 0) {
			job_no_helper(j, err);
			return 0;
		}
		if (sd_event_source_set_io_events(s, EPOLLIN) < 0) {
			snprintf(err, sizeof(err), "cannot watch the %s socket %.200s", ts_helper_kind_name(j->kind),
			         helper_where(j->kind));
			job_no_helper(j, err);
			return 0;
		}
		j->phase = JOB_HELLO;
		return 0;
	}
	if ((r = ts_helper_hello(j->kind, j->fd, &j->pid, err, sizeof(err))) == 1)
		return 0;
	if (r < 0) {
		job_no_helper(j, err);
		return 0;
	}
	if (job_write(j) < 0) {
		snprintf(err, sizeof(err), "the %s %.300s exited before reading its request", ts_helper_kind_name(j->kind),
		         helper_where(j->kind));
		job_finish_as(j, JOB_NO_HELPER, err);
		return 0;
	}
	j->phase = JOB_REPLYING;
	if (sd_event_source_set_time_relative(j->timer, (uint64_t)j->timeout_ms * 1000) < 0)
		job_finish(j, JOB_TIMEOUT);
	return 0;
}

/* Whatever the helper has sent so far, taken without waiting: a helper that stops half-way holds only its own job. */
static int on_job_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	ts_remote_job *j = userdata;

	if (j->phase != JOB_REPLYING)
		return job_hello(j, s);
	for (;;) {
		uint8_t *dst = j->hdr_got < sizeof(j->hdr) ? j->hdr + j->hdr_got : j->body + j->body_got;
		size_t want = j->hdr_got < sizeof(j->hdr) ? sizeof(j->hdr) - j->hdr_got : j->body_len - j->body_got;
		ssize_t n;

		if (want == 0) {
			job_finish(j, JOB_REPLY);
			return 0;
		}
		n = recv(fd, dst, want, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;   /* the rest later; the job's timer still runs */
		if (n <= 0) {
			job_finish(j, JOB_EOF);
			return 0;
		}
		if (j->hdr_got < sizeof(j->hdr)) {
			j->hdr_got += (size_t)n;
			if (j->hdr_got < sizeof(j->hdr))
				continue;
			j->body_len = ts_be32(j->hdr);
			if (j->body_len > TS_WIRE_FRAME_MAX) {
				job_finish(j, JOB_TOO_LONG);
				return 0;
			}
			if ((j->body = ts_secure_alloc(j->body_len ? j->body_len : 1)) == NULL) {
				job_finish(j, JOB_EOF);
				return 0;
			}
		} else
			j->body_got += (size_t)n;
	}
}

static int on_job_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_remote_job *j = userdata;

	if (j->phase != JOB_REPLYING) {
		char err[512];
		snprintf(err, sizeof(err), "no %s answered on %.200s within %d ms", ts_helper_kind_name(j->kind),
		         helper_where(j->kind), HELLO_TIMEOUT_MS);
		job_no_helper(j, err);
		return 0;
	}
	job_finish(j, JOB_TIMEOUT);
	return 0;
}

/*
 * Socket mode: the checked spare gets the request at once; else connect
 * without waiting and keep the request (secure memory) for when the hello
 * has been checked (job_hello). 0, or a transport error with c->err set.
 */
static int job_connect(ts_remote_job *j, const ts_wire_field *fields, size_t n, call *c)
{
	int r, connecting;

	memset(c, 0, sizeof(*c));
	if ((r = ts_wire_encode(fields, n, &j->frame, &j->frame_len)) < 0)
		return r;
	if (j->kind == TS_HELPER_TOKEN && take_spare(&j->pid, &j->fd)) {
		if (job_write(j) < 0) {
			kill_close(j->kind, j->pid, j->fd);
			snprintf(c->err, sizeof(c->err), "the token helper %.300s exited before reading its request",
			         helper_where(j->kind));
			return -TS_E_FAILED;
		}
		j->phase = JOB_REPLYING;
		return 0;
	}
	if ((r = ts_helper_connect_start(j->kind, &j->fd, &connecting, c->err, sizeof(c->err))) < 0) {
		if (log_warn_fn)
			log_warn_fn(c->err);
		ts_secure_free(j->frame);
		j->frame = NULL;
		return r;
	}
	n_alive++;
	j->phase = connecting ? JOB_CONNECTING : JOB_HELLO;
	return 0;
}

/*
 * Send the request fields (op is theirs) to a helper and watch for its
 * reply from the loop. 0 and *ret, or negative TS_E_* with req->err set.
 */
static int job_send(sd_event *event, ts_helper_kind kind, uint8_t op, const ts_wire_field *f, size_t n, int timeout_ms, int reserved_ok,
                    const uint8_t hash[crypto_generichash_BYTES], const ts_protector_request *req,
                    ts_remote_reply_fn done, void *userdata, ts_remote_job **ret)
{
	ts_remote_job *j;
	call c;
	int r;

	/* Taking the spare starts no helper; starting one past the cap would (token and network helpers count alike). */
	if ((kind != TS_HELPER_TOKEN || warm_pid <= 0) && helpers_full(reserved_ok))
		return ts_protector_fail(req, -TS_E_BUSY, "%u helpers are running, the most [limits] helpers "
		                         "allows for this caller; try again", n_alive);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return ts_protector_fail(req, -TS_E_NOMEM, "out of memory");
	j->op = op;
	j->kind = kind;
	if (hash)
		memcpy(j->hash, hash, sizeof(j->hash));
	j->done = done;
	j->userdata = userdata;
	j->timeout_ms = timeout_ms;
	if ((r = ts_helper_socket(kind) ? job_connect(j, f, n, &c) : helper_send(kind, f, n, &c, &j->pid, &j->fd)) < 0) {
		free(j);
		return finish(req, r, &c);
	}
	if ((r = sd_event_add_io(event, &j->io, j->fd, j->phase == JOB_CONNECTING ? EPOLLOUT : EPOLLIN, on_job_io,
	                         j)) < 0 ||
	    (r = sd_event_add_time_relative(event, &j->timer, CLOCK_MONOTONIC,
	                                    (uint64_t)(j->phase == JOB_REPLYING ? timeout_ms : HELLO_TIMEOUT_MS) * 1000,
	                                    0, on_job_timer, j)) < 0) {
		ts_remote_job_cancel(j);
		return ts_protector_fail(req, -TS_E_FAILED, "cannot watch the %s: %s", ts_helper_kind_name(kind),
		                         strerror(-r));
	}
	*ret = j;
	return 0;
}

static int job_start(sd_event *event, uint8_t op, const ts_protector_ops *ops, const ts_protector_request *req,
                     const uint8_t *params, size_t params_len, ts_remote_reply_fn done, void *userdata,
                     ts_remote_job **ret)
{
	fields q = { .n = 0 };
	uint8_t hash[crypto_generichash_BYTES];
	int r, timeout_ms = op == TS_WIRE_OP_DESCRIBE ? DESCRIBE_TIMEOUT_MS :
	                    op == TS_WIRE_OP_PRESENT ? PRESENT_TIMEOUT_MS : token_timeout(req);

	if (op == TS_WIRE_OP_NV)
		timeout_ms = PRESENT_TIMEOUT_MS;
	if (!ts_protector_is_remote(ops) && !(op == TS_WIRE_OP_UNLOCK && ts_protector_unlocks_in_helper(ops)))
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "protector type '%s' does not run in the helper", ops->type);
	if ((r = build(&q, op, ops->type, op == TS_WIRE_OP_DESCRIBE ? NULL : req, params, params_len)) < 0)
		return r;
	if (op == TS_WIRE_OP_DESCRIBE)
		record_hash(ops->type, params, params_len, hash);
	if ((r = job_send(event, request_kind(op, ops->type), op, q.f, q.n, timeout_ms, req->reserved_ok || op == TS_WIRE_OP_DESCRIBE,
	                  op == TS_WIRE_OP_DESCRIBE ? hash : NULL, req, done, userdata, ret)) < 0)
		return r;
	(*ret)->type = ops->type;
	return 0;
}

int ts_remote_unlock_start(sd_event *event, const ts_protector_ops *ops, const ts_protector_request *req,
                           const uint8_t *params, size_t params_len, ts_remote_reply_fn done, void *userdata,
                           ts_remote_job **ret)
{
	return job_start(event, TS_WIRE_OP_UNLOCK, ops, req, params, params_len, done, userdata, ret);
}

int ts_remote_enroll_start(sd_event *event, const ts_protector_ops *ops, const ts_protector_request *req,
                           ts_remote_reply_fn done, void *userdata, ts_remote_job **ret)
{
	return job_start(event, TS_WIRE_OP_ENROLL, ops, req, NULL, 0, done, userdata, ret);
}

int ts_remote_present_start(sd_event *event, const ts_protector_ops *ops, const ts_protector_request *req,
                            const uint8_t *params, size_t params_len, ts_remote_reply_fn done, void *userdata,
                            ts_remote_job **ret)
{
	return job_start(event, TS_WIRE_OP_PRESENT, ops, req, params, params_len, done, userdata, ret);
}

/* ---- escrow to an RSA key ------------------------------------------------------------ */

int ts_remote_escrow_wrap_start(sd_event *event, const uint8_t *spki, size_t spki_len, const uint8_t *k,
                                int reserved_ok, ts_remote_reply_fn done, void *userdata, ts_remote_job **ret,
                                char *err, size_t errlen)
{
	uint8_t op = TS_WIRE_OP_ESCROW_WRAP_KEY;
	const ts_wire_field q[] = {
		{ .tag = TS_WIRE_OP, .data = &op, .len = 1 },
		{ .tag = TS_WIRE_TYPE, .data = "rsa", .len = 3 },
		{ .tag = TS_WIRE_PARAMS, .data = spki, .len = spki_len },
		{ .tag = TS_WIRE_BOX_KEY, .data = k, .len = TS_WIRE_BOX_KEY_BYTES },
	};
	ts_protector_request req = { .err = err, .err_len = errlen };

	return job_send(event, TS_HELPER_TOKEN, op, q, sizeof(q) / sizeof(q[0]), ESCROW_TIMEOUT_MS, reserved_ok, NULL, &req, done,
	                userdata, ret);
}

/* ---- escrow records in a directory ------------------------------------------------------- */

int ts_remote_ldap_start(sd_event *event, const ts_remote_ldap *l, ts_remote_reply_fn done, void *userdata,
                         ts_remote_job **ret, char *err, size_t errlen)
{
	const char *keys[] = { "action", "uri", "base", "machine", "bind-dn", "ca-file", "cert-file", "key-file" };
	const char *values[] = { l->action, l->uri, l->base, l->machine, l->bind_dn, l->ca_file, l->cert_file,
	                         l->key_file };
	char opt[sizeof(keys) / sizeof(keys[0])][TS_WIRE_STR_MAX + 1];
	uint8_t op = TS_WIRE_OP_LDAP;
	ts_wire_field q[4 + sizeof(keys) / sizeof(keys[0])];
	/* The daemon's own work: it may use the helpers [limits] keeps back. */
	ts_protector_request req = { .err = err, .err_len = errlen, .reserved_ok = 1 };
	size_t n = 0;

	q[n++] = (ts_wire_field){ .tag = TS_WIRE_OP, .data = &op, .len = 1 };
	q[n++] = (ts_wire_field){ .tag = TS_WIRE_TYPE, .data = "ldap", .len = 4 };
	q[n++] = (ts_wire_field){ .tag = TS_WIRE_PARAMS, .data = l->data, .len = l->len };
	if (l->password)
		q[n++] = (ts_wire_field){ .tag = TS_WIRE_PIN, .data = l->password, .len = l->password_len };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t kl = strlen(keys[i]), vl;

		if (!values[i])
			continue;
		if ((vl = strlen(values[i])) == 0 || kl + 1 + vl > TS_WIRE_STR_MAX)
			return ts_protector_fail(&req, -TS_E_INVALID_ARGS, "[escrow] %s: empty or too long", keys[i]);
		memcpy(opt[i], keys[i], kl + 1);
		memcpy(opt[i] + kl + 1, values[i], vl);
		q[n++] = (ts_wire_field){ .tag = TS_WIRE_OPTION, .data = opt[i], .len = kl + 1 + vl };
	}
	/* A network helper: the bind password goes only to a hello of the network helper's user. */
	return job_send(event, request_kind(op, "ldap"), op, q, n, LDAP_TIMEOUT_MS, 1, NULL, &req, done, userdata, ret);
}

/* ---- a vault's TPM NV counter ------------------------------------------------------------ */

int ts_remote_nv(const ts_config *config, uint8_t action, uint32_t handle, const uint8_t *auth, uint32_t *ret_handle,
                 uint64_t *ret_value, char *err, size_t errlen)
{
	uint8_t rec[TS_NV_REQUEST_BYTES];
	ts_protector_request req = { .config = config, .err = err, .err_len = errlen };
	ts_remote_reply reply;
	char desc[8];
	fields q = { .n = 0 };
	call c;
	int r;

	ts_nv_request_encode(rec, action, handle, auth);
	r = build(&q, TS_WIRE_OP_NV, "tpm2", &req, rec, sizeof(rec));
	if (r >= 0) {
		r = helper_call(q.f, q.n, PRESENT_TIMEOUT_MS, &c);
		if (r >= 0 && (r = c.rc) >= 0 && (r = reply_fields(TS_WIRE_OP_NV, &c, &reply, desc, sizeof(desc))) >= 0 &&
		    ts_nv_reply_decode(reply.params, reply.params_len, ret_handle, ret_value) < 0) {
			snprintf(c.err, sizeof(c.err), "the token helper sent a malformed NV counter answer");
			r = -TS_E_FAILED;
		}
		if (r < 0)
			snprintf(err, errlen, "%s", c.err[0] ? c.err : ts_strerror(r));
		call_done(&c);
	}
	sodium_memzero(rec, sizeof(rec));
	return r;
}

int ts_remote_nv_start(sd_event *event, const ts_config *config, uint8_t action, uint32_t handle,
                       const uint8_t *auth, ts_remote_reply_fn done, void *userdata, ts_remote_job **ret, char *err,
                       size_t errlen)
{
	uint8_t rec[TS_NV_REQUEST_BYTES];
	/* The daemon's own work after a save: may use the helpers [limits] keeps back. */
	ts_protector_request req = { .config = config, .err = err, .err_len = errlen, .reserved_ok = 1 };
	int r;

	ts_nv_request_encode(rec, action, handle, auth);
	r = job_start(event, TS_WIRE_OP_NV, &ts_protector_tpm2, &req, rec, sizeof(rec), done, userdata, ret);
	sodium_memzero(rec, sizeof(rec));
	return r;
}

/* ---- describing records ahead ------------------------------------------------------------ */

/* Records to describe, oldest first: only records the daemon holds come here, so it grows with them. */
static struct prefetch_item {
	const ts_protector_ops *ops;
	uint8_t *params;
	size_t params_len;
	uint8_t hash[crypto_generichash_BYTES];
} *prefetch_queue;
static size_t n_prefetch, cap_prefetch;
static ts_remote_job *prefetch_running[PREFETCH_PARALLEL];
static uint8_t prefetch_running_hash[PREFETCH_PARALLEL][crypto_generichash_BYTES];

static void on_prefetch_done(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	size_t slot = (size_t)(uintptr_t)userdata;

	prefetch_running[slot] = NULL;
	prefetch_start_some();
}

static void prefetch_start_some(void)
{
	for (size_t slot = 0; slot < PREFETCH_PARALLEL && n_prefetch > 0 && remote_event; slot++) {
		ts_protector_request req = { 0 };
		char errbuf[256];

		if (prefetch_running[slot])
			continue;
		while (n_prefetch > 0) {
			const ts_protector_ops *ops = prefetch_queue[0].ops;
			uint8_t *params = prefetch_queue[0].params;
			size_t len = prefetch_queue[0].params_len;
			int r = -1;

			memcpy(prefetch_running_hash[slot], prefetch_queue[0].hash, crypto_generichash_BYTES);
			memmove(&prefetch_queue[0], &prefetch_queue[1], (n_prefetch - 1) * sizeof(prefetch_queue[0]));
			n_prefetch--;
			req.err = errbuf;
			req.err_len = sizeof(errbuf);
			if (!cache_find(prefetch_running_hash[slot]))
				r = job_start(remote_event, TS_WIRE_OP_DESCRIBE, ops, &req, params, len, on_prefetch_done,
				              (void *)(uintptr_t)slot, &prefetch_running[slot]);
			free(params);
			if (r >= 0)
				break;
		}
	}
}

void ts_remote_describe_prefetch(const ts_protector_ops *ops, const uint8_t *params, size_t params_len)
{
	uint8_t hash[crypto_generichash_BYTES];

	if (!remote_event || !ts_protector_is_remote(ops) || n_prefetch == PREFETCH_MAX)
		return;
	if (n_prefetch == cap_prefetch) {
		size_t cap = cap_prefetch ? cap_prefetch * 2 : 64;
		struct prefetch_item *grown = reallocarray(prefetch_queue, cap, sizeof(*prefetch_queue));
		if (!grown)
			return;
		prefetch_queue = grown;
		cap_prefetch = cap;
	}
	record_hash(ops->type, params, params_len, hash);
	if (cache_find(hash))
		return;
	for (size_t i = 0; i < n_prefetch; i++)
		if (memcmp(prefetch_queue[i].hash, hash, sizeof(hash)) == 0)
			return;
	for (size_t i = 0; i < PREFETCH_PARALLEL; i++)
		if (prefetch_running[i] && memcmp(prefetch_running_hash[i], hash, sizeof(hash)) == 0)
			return;
	if ((prefetch_queue[n_prefetch].params = malloc(params_len ? params_len : 1)) == NULL)
		return;
	memcpy(prefetch_queue[n_prefetch].params, params, params_len);
	prefetch_queue[n_prefetch].params_len = params_len;
	prefetch_queue[n_prefetch].ops = ops;
	memcpy(prefetch_queue[n_prefetch].hash, hash, sizeof(hash));
	n_prefetch++;
	prefetch_start_some();
}

static void prefetch_stop(void)
{
	for (size_t i = 0; i < PREFETCH_PARALLEL; i++) {
		ts_remote_job_cancel(prefetch_running[i]);
		prefetch_running[i] = NULL;
	}
	for (size_t i = 0; i < n_prefetch; i++)
		free(prefetch_queue[i].params);
	free(prefetch_queue);
	prefetch_queue = NULL;
	n_prefetch = cap_prefetch = 0;
}

int ts_remote_describe_wait(uint64_t timeout_usec)
{
	uint64_t until = ts_mono_ms() + timeout_usec / 1000;

	for (;;) {
		int busy = n_prefetch > 0, r, state;
		uint64_t now = ts_mono_ms();

		for (size_t i = 0; i < PREFETCH_PARALLEL; i++)
			busy |= prefetch_running[i] != NULL;
		if (!busy || !remote_event)
			return 0;
		if (now >= until)
			return -TS_E_TIMEOUT;
		if ((r = sd_event_run(remote_event, (until - now) * 1000)) < 0)
			return r;
		/* Asked to stop meanwhile: the caller finds the loop finished. */
		if ((state = sd_event_get_state(remote_event)) < 0 || state == SD_EVENT_EXITING || state == SD_EVENT_FINISHED)
			return 0;
	}
}
