/* direct_client.c — test tool: raw sd-bus clients of tokensealed's private socket, as an attacker or a subscriber would use it. */
/*
 *   direct_client hold SOCKET N
 *       opens N connections (each through the D-Bus handshake), prints
 *       "held K" (K: how many the daemon kept after the handshake) and
 *       keeps them until its stdin closes.
 *   direct_client flood SOCKET N VAULT_PATH
 *       one connection: sends N Vault property reads (Properties.GetAll)
 *       without reading a reply, waits 2 s, then reads what is there.
 *       Prints "replies R closed C" (C 1: the daemon closed the
 *       connection). Exit 0.
 *   direct_client forge SOCKET SENDER VAULT_PATH
 *       one connection: Properties.GetAll on VAULT_PATH with the message's
 *       sender field set to SENDER (a bus name: on the bus only the bus
 *       driver writes it). Prints "reply", "error NAME" or "closed".
 *   direct_client call SOCKET|bus:ADDRESS PATH IFACE MEMBER
 *       one method call without arguments, on the private socket or
 *       through the bus at ADDRESS (to org.tokenseal1); IFACE "-" names no
 *       interface. Prints "reply", "error NAME" or "closed".
 *   direct_client subscribe SOCKET VAULT_PATH SECONDS
 *       Manager.Subscribe, then waits up to SECONDS for PropertiesChanged on
 *       VAULT_PATH saying Locked=true; prints "signal locked" and exits 0,
 *       else 1. Prints "subscribed" once subscribed (stdout is flushed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#define MAX_HOLD 64

static int connect_to(const char *path, sd_bus **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	sd_bus *bus = NULL;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_fd(bus, fd, fd)) < 0 || (r = sd_bus_start(bus)) < 0) {
		sd_bus_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

/* Drive bus until its handshake is done: 1 ready, 0 closed or timed out. */
static int wait_ready(sd_bus *bus)
{
	for (int i = 0; i < 200; i++) {
		int r = sd_bus_is_ready(bus);

		if (r > 0)
			return 1;
		if (r < 0 || sd_bus_process(bus, NULL) < 0)
			return 0;
		if (sd_bus_wait(bus, 10000) < 0)
			return 0;
	}
	return 0;
}

static int hold(const char *path, int n)
{
	sd_bus *buses[MAX_HOLD] = { 0 };
	int kept = 0;
	char c;

	for (int i = 0; i < n && i < MAX_HOLD; i++)
		if (connect_to(path, &buses[i]) < 0)
			buses[i] = NULL;
	for (int i = 0; i < n && i < MAX_HOLD; i++)
		if (buses[i]) {
			/* The daemon refuses at accept by closing: the handshake never completes. */
			if (wait_ready(buses[i]))
				kept++;
		}
	printf("held %d\n", kept);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	for (int i = 0; i < MAX_HOLD; i++)
		sd_bus_flush_close_unref(buses[i]);
	return 0;
}

static int flood(const char *path, int n, const char *vault)
{
	sd_bus *bus = NULL;
	int replies = 0, closed = 0, r;

	if (connect_to(path, &bus) < 0 || !wait_ready(bus)) {
		fprintf(stderr, "cannot connect\n");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		sd_bus_message *m = NULL;

		if (sd_bus_message_new_method_call(bus, &m, NULL, vault, "org.freedesktop.DBus.Properties", "GetAll") < 0 ||
		    sd_bus_message_append(m, "s", "org.tokenseal1.Vault") < 0) {
			fprintf(stderr, "cannot build\n");
			return 1;
		}
		uint64_t cookie;

		/* With a cookie asked for, the call expects its reply (without, sd-bus sends it as needing none). */
		r = sd_bus_send(bus, m, &cookie);
		sd_bus_message_unref(m);
		if (r < 0) {
			closed = 1;
			break;
		}
		/* Write what fits, read nothing. */
		(void)sd_bus_flush(bus);
	}
	sleep(2);
	for (;;) {
		sd_bus_message *m = NULL;

		r = sd_bus_process(bus, &m);
		if (r < 0) {
			closed = 1;
			break;
		}
		if (m) {
			uint8_t type;
			if (sd_bus_message_get_type(m, &type) >= 0 &&
			    (type == SD_BUS_MESSAGE_METHOD_RETURN || type == SD_BUS_MESSAGE_METHOD_ERROR))
				replies++;
			sd_bus_message_unref(m);
			continue;
		}
		if (r > 0)
			continue;
		if (sd_bus_is_open(bus) <= 0) {
			closed = 1;
			break;
		}
		if ((r = sd_bus_wait(bus, 200000)) <= 0) {
			if (r < 0)
				closed = 1;
			break;
		}
	}
	printf("replies %d closed %d\n", replies, closed);
	sd_bus_unref(bus);
	return 0;
}

/* Send m on bus and print its fate: "reply", "error NAME" or "closed". Both are released. 0. */
static int send_report(sd_bus *bus, sd_bus_message *m)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int r = sd_bus_call(bus, m, 5000000, &error, &reply);

	if (r >= 0)
		printf("reply\n");
	else if (sd_bus_error_is_set(&error) && !sd_bus_error_has_names(&error, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED))
		printf("error %s\n", error.name);
	else
		printf("closed\n");
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
	sd_bus_error_free(&error);
	sd_bus_unref(bus);
	return 0;
}

static int forge(const char *path, const char *sender, const char *vault)
{
	sd_bus_message *m = NULL;
	sd_bus *bus = NULL;

	if (connect_to(path, &bus) < 0 || !wait_ready(bus)) {
		fprintf(stderr, "cannot connect\n");
		return 1;
	}
	if (sd_bus_message_new_method_call(bus, &m, NULL, vault, "org.freedesktop.DBus.Properties", "GetAll") < 0 ||
	    sd_bus_message_append(m, "s", "org.tokenseal1.Vault") < 0 || sd_bus_message_set_sender(m, sender) < 0) {
		fprintf(stderr, "cannot build\n");
		return 1;
	}
	return send_report(bus, m);
}

static int call(const char *where, const char *path, const char *iface, const char *member)
{
	sd_bus_message *m = NULL;
	const char *dest = NULL;
	sd_bus *bus = NULL;
	int r;

	if (strncmp(where, "bus:", 4) == 0) {
		dest = "org.tokenseal1";
		r = sd_bus_new(&bus);
		if (r >= 0)
			r = sd_bus_set_address(bus, where + 4);
		if (r >= 0)
			r = sd_bus_set_bus_client(bus, 1);
		if (r >= 0)
			r = sd_bus_start(bus);
	} else
		r = connect_to(where, &bus) < 0 || !wait_ready(bus) ? -ECONNREFUSED : 0;
	if (r < 0) {
		fprintf(stderr, "cannot connect\n");
		return 1;
	}
	if (sd_bus_message_new_method_call(bus, &m, dest, path, strcmp(iface, "-") ? iface : NULL, member) < 0) {
		fprintf(stderr, "cannot build\n");
		return 1;
	}
	return send_report(bus, m);
}

static int on_changed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	int *locked = userdata, b;
	const char *iface, *name;

	if (sd_bus_message_read(m, "s", &iface) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
		return 0;
	while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
		if (sd_bus_message_read(m, "s", &name) < 0)
			return 0;
		if (strcmp(name, "Locked") == 0 && sd_bus_message_read(m, "v", "b", &b) > 0) {
			if (b)
				*locked = 1;
		} else if (sd_bus_message_skip(m, "v") < 0)
			return 0;
		if (sd_bus_message_exit_container(m) < 0)
			return 0;
	}
	return 0;
}

static int subscribe(const char *path, const char *vault, int seconds)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus *bus = NULL;
	int locked = 0;
	time_t end;

	if (connect_to(path, &bus) < 0 || !wait_ready(bus)) {
		fprintf(stderr, "cannot connect\n");
		return 1;
	}
	if (sd_bus_match_signal(bus, NULL, NULL, vault, "org.freedesktop.DBus.Properties", "PropertiesChanged",
	                        on_changed, &locked) < 0 ||
	    sd_bus_call_method(bus, NULL, "/org/tokenseal1", "org.tokenseal1.Manager", "Subscribe", &error, NULL, "") < 0) {
		fprintf(stderr, "Subscribe: %s\n", error.message ? error.message : "failed");
		return 1;
	}
	printf("subscribed\n");
	fflush(stdout);
	end = time(NULL) + seconds;
	while (!locked && time(NULL) < end) {
		int r = sd_bus_process(bus, NULL);

		if (r < 0)
			break;
		if (r == 0 && sd_bus_wait(bus, 200000) < 0)
			break;
	}
	if (locked)
		printf("signal locked\n");
	sd_bus_flush_close_unref(bus);
	return locked ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "hold") == 0)
		return hold(argv[2], atoi(argv[3]));
	if (argc == 5 && strcmp(argv[1], "flood") == 0)
		return flood(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 5 && strcmp(argv[1], "forge") == 0)
		return forge(argv[2], argv[3], argv[4]);
	if (argc == 6 && strcmp(argv[1], "call") == 0)
		return call(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 5 && strcmp(argv[1], "subscribe") == 0)
		return subscribe(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: direct_client hold SOCKET N | flood SOCKET N VAULT_PATH | forge SOCKET SENDER VAULT_PATH | call SOCKET|bus:ADDRESS PATH IFACE MEMBER | subscribe SOCKET VAULT_PATH SECONDS\n");
	return 2;
}
