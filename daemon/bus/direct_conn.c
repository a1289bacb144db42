/* direct_conn.c — what others ask of a private-socket connection (direct.c): which one a bus is, whether its process is still there, how big a message it sent. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bus/direct_conn.h"
#include "bus/direct_frame.h"

static ts_daemon *serving;

ts_direct_conn *ts_direct_find(ts_daemon *d, sd_bus *bus)
{
	for (ts_direct_conn *c = d ? d->direct : NULL; c; c = c->next)
		if (c->bus == bus)
			return c;
	return NULL;
}

void ts_direct_serving(ts_daemon *d)
{
	serving = d;
}

ts_direct_conn *ts_direct_of(sd_bus *bus)
{
	return ts_direct_find(serving, bus);
}

ssize_t ts_proc_read(pid_t pid, const char *file, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	if (pid <= 0 || size == 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW)) < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Field 22 of /proc/PID/stat (start time, clock ticks since boot), or 0. */
uint64_t ts_direct_start_time(pid_t pid)
{
	char buf[1024], *p, *end;
	unsigned long long v;
	int field;

	if (ts_proc_read(pid, "stat", buf, sizeof(buf)) <= 0)
		return 0;
	/* The command name (field 2) may hold anything but ends at the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (field = 2; field < 22; field++) {
		if ((p = strchr(p + 1, ' ')) == NULL)
			return 0;
	}
	errno = 0;
	v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || (*end != ' ' && *end != '\0'))
		return 0;
	return (uint64_t)v;
}

int ts_direct_peer_alive(const ts_direct_conn *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	/* A pidfd is readable once its process exited. */
	return c->pid > 0 && c->start_time != 0 && c->pidfd >= 0 && poll(&p, 1, 0) == 0;
}

/* Not in this libc's headers yet: 77 but on parisc and sparc, where the option is then left untried. */
#if !defined(SO_PEERPIDFD) && !defined(__hppa__) && !defined(__sparc__)
#define SO_PEERPIDFD 77
#endif

/* Is uid among the uids of the process under pid (the Uid: line of /proc/PID/status)? */
static int has_uid(pid_t pid, uid_t uid)
{
	char buf[4096], *p;
	unsigned long u[4];

	if (ts_proc_read(pid, "status", buf, sizeof(buf)) <= 0 || (p = strstr(buf, "\nUid:")) == NULL ||
	    sscanf(p + 5, "%lu %lu %lu %lu", &u[0], &u[1], &u[2], &u[3]) != 4)
		return 0;
	for (int i = 0; i < 4; i++)
		if (u[i] == (unsigned long)uid)
			return 1;
	return 0;
}

void ts_direct_peer_open(ts_direct_conn *c, int fd)
{
	socklen_t len = sizeof(int);
	int pidfd = -1, unknown = 1;

#ifdef SO_PEERPIDFD
	/*
	 * Only a kernel without the option (ENOPROTOOPT) falls back to the pid:
	 * one that has it fails (EINVAL) when the process that connected is
	 * gone, and its pid may be another's by now.
	 */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && len == sizeof(int) && pidfd >= 0)
		unknown = 0;
	else {
		unknown = errno == ENOPROTOOPT;
		pidfd = -1;
	}
#endif
	if (unknown && c->pid > 0)
		pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	c->pidfd = pidfd < 0 ? -1 : pidfd;
	c->start_time = ts_direct_start_time(c->pid);
	/* Without a pidfd (seccomp, a kernel before 5.3) a zombie would pass for its process: none is believed. */
	if (c->pidfd < 0 || !has_uid(c->pid, c->uid) || !ts_direct_peer_alive(c))
		c->start_time = 0;
}

int ts_direct_again(sd_bus_message *m)
{
	ts_direct_conn *c = ts_direct_of(sd_bus_message_get_bus(m));

	if (!c)
		return 0;
	if (c->n_again == sizeof(c->again) / sizeof(c->again[0]))
		return -ENOBUFS;
	/* Queued for read by the caller next, which holds its own reference until sd-bus dispatches it. */
	c->again[c->n_again++] = m;
	return 0;
}

int ts_direct_take_again(sd_bus_message *m)
{
	ts_direct_conn *c = ts_direct_of(sd_bus_message_get_bus(m));

	for (unsigned i = 0; c && i < c->n_again; i++)
		if (c->again[i] == m) {
			c->again[i] = c->again[--c->n_again];
			return 1;
		}
	return 0;
}

int ts_direct_creds(const ts_direct_conn *c, uint64_t mask, sd_bus_creds **ret)
{
	sd_bus_creds *creds = NULL;
	int r;

	*ret = NULL;
	if (!ts_direct_peer_alive(c))
		return -ESRCH;
	if ((r = sd_bus_creds_new_from_pid(&creds, c->pid, mask)) < 0)
		return r;
	/* Read, then checked again: a pid taken over meanwhile by another process gives nothing. */
	if (!ts_direct_peer_alive(c)) {
		sd_bus_creds_unref(creds);
		return -ESRCH;
	}
	*ret = creds;
	return 0;
}

static int fixed(char c)
{
	return c != '\0' && strchr("ybnqiuxtdh", c) != NULL;
}

/* Bytes of a fixed-size type (its alignment too). */
static uint64_t fixed_size(char c)
{
	return c == 'y' ? 1 : c == 'n' || c == 'q' ? 2 : c == 'x' || c == 't' || c == 'd' ? 8 : 4;
}

static int over(const ts_direct_msg_size *st)
{
	return st->bytes + st->body > st->max_bytes || st->fds > st->max_fds || st->values > st->max_values;
}

/*
 * Walk the container m is in, adding to *st. Arrays of fixed-size items are
 * taken whole (sd_bus_message_read_array), arrays of those (an UnwrapBatch's
 * blobs) and of strings item by item without a type check each (about
 * 0.1 µs an item); anything else value by value. Stops (1) once past a
 * bound, so a hostile message costs at most a walk of max_values values,
 * not of sd-bus's 128 MiB.
 *
 * st->body grows by the most each value can take on the wire: its bytes
 * and the padding before it (a length or a fixed value is aligned to its
 * size, a struct or dict entry to 8, an array's first item to its own
 * alignment). A body longer than the sum holds bytes no argument reads.
 */
static int walk(sd_bus_message *m, ts_direct_msg_size *st, unsigned depth)
{
	const char *contents, *str;
	const void *p;
	size_t n;
	char type;
	int r;

	if (depth > 64)
		return -EBADMSG;
	while ((r = sd_bus_message_peek_type(m, &type, &contents)) > 0) {
		st->values++;
		if (type == 'a' && fixed(contents[0]) && contents[1] == '\0' && contents[0] != 'h') {
			if ((r = sd_bus_message_read_array(m, contents[0], &p, &n)) < 0)
				return r;
			st->body += 3 + 4 + 7 + n;
		} else if (type == 'a' && ((contents[0] == 'a' && fixed(contents[1]) && contents[1] != 'h' &&
		                            contents[2] == '\0') ||
		                           (contents[0] && strchr("sog", contents[0]) && contents[1] == '\0'))) {
			if ((r = sd_bus_message_enter_container(m, type, contents)) < 0)
				return r;
			st->body += 3 + 4;
			while ((r = contents[0] == 'a' ? sd_bus_message_read_array(m, contents[1], &p, &n)
			                               : sd_bus_message_read_basic(m, contents[0], &str)) > 0) {
				st->values++;
				st->body += contents[0] == 'a' ? 3 + 4 + 7 + n : 3 + 4 + strlen(str) + 1;
				if (over(st))
					return 1;
			}
			if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
				return r;
		} else if (type == 'a' || type == 'v' || type == 'r' || type == 'e') {
			if ((r = sd_bus_message_enter_container(m, type, contents)) < 0)
				return r;
			/* An array's length and its first item's padding; a struct's or dict entry's padding; a variant's signature. */
			st->body += type == 'a' ? 3 + 4 + 7 : type == 'v' ? 1 + strlen(contents) + 1 : 7;
			if ((r = walk(m, st, depth + 1)) != 0)
				return r;
			if ((r = sd_bus_message_exit_container(m)) < 0)
				return r;
		} else if (type == 's' || type == 'o' || type == 'g') {
			if ((r = sd_bus_message_read_basic(m, type, &str)) < 0)
				return r;
			st->body += 3 + 4 + strlen(str) + 1;
		} else {
			union {
				uint64_t u64;
				double d;
				int fd;
			} v;

			if ((r = sd_bus_message_read_basic(m, type, &v)) < 0)
				return r;
			st->body += 2 * fixed_size(type) - 1;
			st->fds += type == 'h';
		}
		if (over(st))
			return 1;
	}
	return r;
}

int ts_direct_message_size(sd_bus_message *m, ts_direct_msg_size *st)
{
	const char *fields[] = { sd_bus_message_get_path(m), sd_bus_message_get_interface(m),
		                 sd_bus_message_get_member(m), sd_bus_message_get_destination(m),
		                 sd_bus_message_get_signature(m, 1) };
	int r;

	st->bytes = 16;
	st->body = 0;
	st->fds = 0;
	st->values = 0;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		st->bytes += fields[i] ? 8 + strlen(fields[i]) : 0;
	if (st->bytes > st->max_bytes)
		return 1;
	r = walk(m, st, 0);
	/* The handler reads the message from its start. */
	(void)sd_bus_message_rewind(m, 1);
	return r;
}

uint64_t ts_direct_message_bytes(sd_bus_message *m, uint64_t max)
{
	ts_direct_msg_size st = { .max_bytes = max, .max_fds = TS_DIRECT_FDS_MAX, .max_values = TS_DIRECT_VALUES_MAX };

	return ts_direct_message_size(m, &st) == 0 ? st.bytes + st.body : UINT64_MAX;
}
