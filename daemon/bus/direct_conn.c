/* direct_conn.c — what others ask of a private-socket connection (direct.c): which one a bus is, whether its process is still there. */
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
