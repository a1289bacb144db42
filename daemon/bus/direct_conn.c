/* direct_conn.c — what others ask of a private-socket connection (direct.c): which one a bus is, whether its process is still there, how big a message it sent. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/direct_conn.h"
#include "bus/message.h"

ts_direct_conn *ts_direct_find(ts_daemon *d, sd_bus *bus)
{
	for (ts_direct_conn *c = d->direct; c; c = c->next)
		if (c->bus == bus)
			return c;
	return NULL;
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
	return c->pid > 0 && c->start_time != 0 && ts_direct_start_time(c->pid) == c->start_time;
}

static int fixed(char c)
{
	return c != '\0' && strchr("ybnqiuxtd", c) != NULL;
}

static int over(const ts_direct_msg_size *st)
{
	return st->bytes > st->max_bytes || st->fds > st->max_fds || st->values > st->max_values;
}

/*
 * Walk the container m is in, adding to *st. Arrays of fixed-size items are
 * taken whole (sd_bus_message_read_array), arrays of those (an UnwrapBatch's
 * blobs) and of strings item by item without a type check each (about
 * 0.1 µs an item); anything else value by value. Stops (1) once past a
 * bound, so a hostile message costs at most a walk of max_values values,
 * not of sd-bus's 128 MiB.
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
		if (type == 'a' && fixed(contents[0]) && contents[1] == '\0') {
			if ((r = sd_bus_message_read_array(m, contents[0], &p, &n)) < 0)
				return r;
			st->bytes += 8 + n;
		} else if (type == 'a' && ((contents[0] == 'a' && fixed(contents[1]) && contents[2] == '\0') ||
		                           (contents[0] && strchr("sog", contents[0]) && contents[1] == '\0'))) {
			if ((r = sd_bus_message_enter_container(m, type, contents)) < 0)
				return r;
			st->bytes += 8;
			while ((r = contents[0] == 'a' ? sd_bus_message_read_array(m, contents[1], &p, &n)
			                               : sd_bus_message_read_basic(m, contents[0], &str)) > 0) {
				st->values++;
				st->bytes += contents[0] == 'a' ? 8 + n : 5 + strlen(str);
				if (over(st))
					return 1;
			}
			if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
				return r;
		} else if (type == 'a' || type == 'v' || type == 'r' || type == 'e') {
			if ((r = sd_bus_message_enter_container(m, type, contents)) < 0)
				return r;
			st->bytes += 8;
			if ((r = walk(m, st, depth + 1)) != 0)
				return r;
			if ((r = sd_bus_message_exit_container(m)) < 0)
				return r;
		} else if (type == 's' || type == 'o' || type == 'g') {
			if ((r = sd_bus_message_read_basic(m, type, &str)) < 0)
				return r;
			st->bytes += 5 + strlen(str);
		} else {
			union {
				uint64_t u64;
				double d;
				int fd;
			} v;

			if ((r = sd_bus_message_read_basic(m, type, &v)) < 0)
				return r;
			st->bytes += 8;
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
