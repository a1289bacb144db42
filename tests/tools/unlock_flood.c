/* unlock_flood.c — test tool: many Unlock calls sent at once, none waited for before the last is sent. */
/*
 *   unlock_flood ADDRESS SECRET_FILE CONNECTIONS CALLS PATH...
 *       opens CONNECTIONS connections to the bus at ADDRESS, then sends CALLS
 *       Unlock("", fd, {}) calls, round robin over the connections and the
 *       vault object PATHs, each with its own pipe holding the bytes of
 *       SECRET_FILE (write end closed). Only then reads the replies. Prints
 *       one "NAME COUNT" line per kind of answer: "ok" for a reply, the
 *       D-Bus error name otherwise, "send-failed" for a call the bus did not
 *       take. Exit 0 when every call got an answer, else 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#define MAX_CONNS 64
#define MAX_KINDS 32

static struct { char name[128]; unsigned n; } kinds[MAX_KINDS];
static size_t n_kinds;
static unsigned pending;

static void count(const char *name)
{
	for (size_t i = 0; i < n_kinds; i++)
		if (strcmp(kinds[i].name, name) == 0) {
			kinds[i].n++;
			return;
		}
	if (n_kinds < MAX_KINDS) {
		snprintf(kinds[n_kinds].name, sizeof(kinds[0].name), "%s", name);
		kinds[n_kinds++].n = 1;
	}
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	const sd_bus_error *e = sd_bus_message_get_error(m);

	count(e ? e->name : "ok");
	pending--;
	return 0;
}

static int secret_pipe(const char *secret, size_t len)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (write(p[1], secret, len) != (ssize_t)len) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	close(p[1]);
	return p[0];
}

int main(int argc, char **argv)
{
	sd_bus *bus[MAX_CONNS] = { NULL };
	char secret[1024];
	unsigned conns, calls;
	size_t len;
	FILE *f;
	int r;

	if (argc < 6) {
		fprintf(stderr, "usage: unlock_flood ADDRESS SECRET_FILE CONNECTIONS CALLS PATH...\n");
		return 2;
	}
	conns = (unsigned)strtoul(argv[3], NULL, 10);
	calls = (unsigned)strtoul(argv[4], NULL, 10);
	if (conns == 0 || conns > MAX_CONNS || (f = fopen(argv[2], "rb")) == NULL) {
		fprintf(stderr, "unlock_flood: bad arguments\n");
		return 2;
	}
	len = fread(secret, 1, sizeof(secret), f);
	fclose(f);
	for (unsigned i = 0; i < conns; i++) {
		if ((r = sd_bus_new(&bus[i])) < 0 || (r = sd_bus_set_address(bus[i], argv[1])) < 0 ||
		    (r = sd_bus_set_bus_client(bus[i], 1)) < 0 || (r = sd_bus_start(bus[i])) < 0) {
			fprintf(stderr, "unlock_flood: connect: %s\n", strerror(-r));
			return 2;
		}
	}
	for (unsigned i = 0; i < calls; i++) {
		sd_bus *b = bus[i % conns];
		sd_bus_message *m = NULL;
		int fd = secret_pipe(secret, len);

		if (fd < 0) {
			count("send-failed");
			continue;
		}
		r = sd_bus_message_new_method_call(b, &m, "org.tokenseal1", argv[5 + i % (unsigned)(argc - 5)],
		                                   "org.tokenseal1.Vault", "Unlock");
		if (r >= 0)
			r = sd_bus_message_append(m, "sha{ss}", "", fd, 0);
		close(fd);   /* the message holds its own copy */
		if (r >= 0)
			r = sd_bus_call_async(b, NULL, m, on_reply, NULL, 120ull * 1000000);
		sd_bus_message_unref(m);
		if (r < 0)
			count("send-failed");
		else
			pending++;
	}
	/* Everything is sent (or queued in our sockets): now read the answers. */
	while (pending > 0) {
		int progressed = 0;

		for (unsigned i = 0; i < conns; i++)
			while ((r = sd_bus_process(bus[i], NULL)) > 0)
				progressed = 1;
		if (r < 0) {
			fprintf(stderr, "unlock_flood: %s\n", strerror(-r));
			break;
		}
		if (!progressed) {
			struct pollfd pfd[MAX_CONNS];

			for (unsigned i = 0; i < conns; i++) {
				pfd[i].fd = sd_bus_get_fd(bus[i]);
				pfd[i].events = (short)sd_bus_get_events(bus[i]);
			}
			if (poll(pfd, conns, 1000) < 0 && errno != EINTR)
				break;
		}
	}
	for (size_t i = 0; i < n_kinds; i++)
		printf("%s %u\n", kinds[i].name, kinds[i].n);
	for (unsigned i = 0; i < conns; i++)
		sd_bus_flush_close_unref(bus[i]);
	return pending == 0 ? 0 : 1;
}
