/* pinentry.c — ask for a PIN with a pinentry program (the Assuan protocol), without blocking the loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>

#include "secrets.h"

#define LINE_MAX_BYTES 4096            /* Assuan lines are at most 1000 bytes */
#define PIN_MAX 1024                   /* what tokensealed reads from a secret fd */
#define TIMEOUT_USEC (300ULL * 1000 * 1000)

struct ss_pinentry {
	sd_event_source *io, *timer;
	pid_t pid;
	int in, out;                       /* its stdin (we write), its stdout (we read) */
	char *cmds[6];                     /* sent one after the other, each after the previous OK */
	size_t n_cmds, next;
	int greeted;
	char *line;                        /* secure: a D line carries the PIN */
	size_t line_len;
	char *pin;                         /* secure */
	size_t pin_len;
	ss_pinentry_cb cb;
	void *ud;
};

static int on_child(sd_event_source *src, const siginfo_t *si, void *ud)
{
	return 0; /* reaped: nothing else to do */
}

static void pinentry_free(ss_pinentry *p)
{
	size_t i;

	if (!p)
		return;
	sd_event_source_disable_unref(p->io);
	sd_event_source_disable_unref(p->timer);
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	if (p->pid > 0) {
		/* Stop it if it still runs; a floating child source reaps it. */
		kill(p->pid, SIGTERM);
	}
	for (i = 0; i < p->n_cmds; i++)
		free(p->cmds[i]);
	if (p->line)
		sodium_free(p->line);
	if (p->pin)
		sodium_free(p->pin);
	free(p);
}

void ss_pinentry_cancel(ss_pinentry *p)
{
	pinentry_free(p);
}

static void finish(ss_pinentry *p, int r)
{
	ss_pinentry_cb cb = p->cb;
	void *ud = p->ud;

	if (p->in >= 0) {
		(void)!write(p->in, "BYE\n", 4);
	}
	if (r == 0)
		p->pin[p->pin_len] = 0;
	cb(ud, r, r == 0 ? p->pin : NULL, r == 0 ? p->pin_len : 0);
	pinentry_free(p);
}

/* Assuan's escaping of a command argument: %, CR and LF. */
static char *command(const char *verb, const char *arg)
{
	size_t n = strlen(verb) + 3 + (arg ? 3 * strlen(arg) : 0), i;
	char *s = malloc(n), *w = s;

	if (!s)
		return NULL;
	w += sprintf(w, "%s", verb);
	if (arg) {
		*w++ = ' ';
		for (i = 0; arg[i]; i++) {
			if (arg[i] == '%' || arg[i] == '\n' || arg[i] == '\r')
				w += sprintf(w, "%%%02X", (unsigned char)arg[i]);
			else
				*w++ = arg[i];
		}
	}
	*w++ = '\n';
	*w = 0;
	return s;
}

static int send_next(ss_pinentry *p)
{
	const char *c = p->cmds[p->next++];
	size_t n = strlen(c), off = 0;

	while (off < n) {
		ssize_t w = write(p->in, c + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		off += (size_t)w;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One line from pinentry (without its LF). Returns 1 when done (finish called), 0 to go on, <0 on error. */
static int handle_line(ss_pinentry *p, const char *l, size_t n)
{
	size_t i;

	if (n >= 2 && l[0] == 'D' && l[1] == ' ') {
		for (i = 2; i < n; i++) {
			int c = (unsigned char)l[i];

			if (c == '%') {
				int h, lo;

				if (i + 2 >= n + 0 || (h = hexval(l[i + 1])) < 0 || (lo = hexval(l[i + 2])) < 0)
					return -EBADMSG;
				c = h * 16 + lo;
				i += 2;
			}
			if (p->pin_len >= PIN_MAX)
				return -E2BIG;
			p->pin[p->pin_len++] = (char)c;
		}
		return 0;
	}
	if ((n == 2 && memcmp(l, "OK", 2) == 0) || (n > 2 && memcmp(l, "OK ", 3) == 0)) {
		if (!p->greeted) {
			p->greeted = 1;
			return send_next(p);
		}
		if (p->next == p->n_cmds) {
			finish(p, 0);
			return 1;
		}
		return send_next(p);
	}
	if (n >= 3 && memcmp(l, "ERR", 3) == 0) {
		if (!p->greeted)
			return -EIO;
		if (p->next == p->n_cmds) {
			/* GETPIN failed: the user cancelled (or closed the window). */
			finish(p, -ECANCELED);
			return 1;
		}
		return send_next(p); /* an option this pinentry does not know: go on */
	}
	if (n >= 7 && memcmp(l, "INQUIRE", 7) == 0) {
		if (write(p->in, "CAN\n", 4) != 4)
			return -EIO;
		return 0;
	}
	return 0; /* status (S) and comment (#) lines */
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	ss_pinentry *p = ud;
	char buf[512];
	ssize_t n;
	size_t i;
	int r = 0;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		finish(p, n == 0 ? -ECANCELED : -errno);
		return 0;
	}
	for (i = 0; i < (size_t)n; i++) {
		if (buf[i] != '\n') {
			if (p->line_len >= LINE_MAX_BYTES - 1) {
				r = -E2BIG;
				break;
			}
			p->line[p->line_len++] = buf[i];
			continue;
		}
		r = handle_line(p, p->line, p->line_len);
		if (r > 0)
			break; /* finished: p is gone */
		sodium_memzero(p->line, p->line_len);
		p->line_len = 0;
		if (r < 0)
			break;
	}
	sodium_memzero(buf, sizeof(buf));
	if (r < 0)
		finish(p, r);
	return 0;
}

static int on_timeout(sd_event_source *src, uint64_t usec, void *ud)
{
	finish(ud, -ETIMEDOUT);
	return 0;
}

static int start(sd_event *ev, const char *program, const char *title, const char *desc, const char *error, int message,
                 ss_pinentry_cb cb, void *ud, ss_pinentry **ret)
{
	int to_child[2] = {-1, -1}, from_child[2] = {-1, -1}, r;
	ss_pinentry *p = calloc(1, sizeof(*p));
	sd_event_source *child = NULL;

	if (!p)
		return -ENOMEM;
	p->in = p->out = -1;
	p->cb = cb;
	p->ud = ud;
	if ((p->line = sodium_malloc(LINE_MAX_BYTES)) == NULL || (p->pin = sodium_malloc(PIN_MAX + 1)) == NULL) {
		pinentry_free(p);
		return -ENOMEM;
	}
	p->cmds[p->n_cmds++] = command("SETTITLE", title);
	p->cmds[p->n_cmds++] = command("SETDESC", desc);
	if (message) {
		/* A notice, not a question: its OK button ends it; the owner may close it first. */
		p->cmds[p->n_cmds++] = command("MESSAGE", NULL);
	} else {
		p->cmds[p->n_cmds++] = command("SETPROMPT", "PIN:");
		if (error)
			p->cmds[p->n_cmds++] = command("SETERROR", error);
		p->cmds[p->n_cmds++] = command("GETPIN", NULL);
	}
	for (size_t i = 0; i < p->n_cmds; i++)
		if (!p->cmds[i]) {
			pinentry_free(p);
			return -ENOMEM;
		}
	if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	if ((p->pid = fork()) < 0) {
		r = -errno;
		goto fail;
	}
	if (p->pid == 0) {
		sigset_t none;

		/* Our blocked signals and ignored SIGPIPE would survive exec: pinentry gets the defaults (and dies on SIGTERM). */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(to_child[0], 0) < 0 || dup2(from_child[1], 1) < 0)
			_exit(127);
		execlp(program, program, (char *)NULL);
		_exit(127);
	}
	close(to_child[0]);
	close(from_child[1]);
	p->in = to_child[1];
	p->out = from_child[0];
	to_child[0] = to_child[1] = from_child[0] = from_child[1] = -1;
	(void)fcntl(p->out, F_SETFL, O_NONBLOCK);
	if ((r = sd_event_add_child(ev, &child, p->pid, WEXITED, on_child, NULL)) >= 0) {
		sd_event_source_set_floating(child, 1);
		sd_event_source_unref(child);
	}
	if ((r = sd_event_add_io(ev, &p->io, p->out, EPOLLIN, on_io, p)) < 0 ||
	    (r = sd_event_add_time_relative(ev, &p->timer, CLOCK_MONOTONIC, TIMEOUT_USEC, 0, on_timeout, p)) < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (to_child[i] >= 0)
			close(to_child[i]);
		if (from_child[i] >= 0)
			close(from_child[i]);
	}
	pinentry_free(p);
	return r;
}

int ss_pinentry_start(sd_event *ev, const char *program, const char *title, const char *desc, const char *error,
                      ss_pinentry_cb cb, void *ud, ss_pinentry **ret)
{
	return start(ev, program, title, desc, error, 0, cb, ud, ret);
}

int ss_pinentry_message(sd_event *ev, const char *program, const char *title, const char *desc, ss_pinentry_cb cb,
                        void *ud, ss_pinentry **ret)
{
	return start(ev, program, title, desc, NULL, 1, cb, ud, ret);
}
