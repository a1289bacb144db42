/* secrets_bench.c — GetSecret round trip of a Secret Service provider, against Peer.Ping to the same peer. */
/*
 *   secrets_bench ADDRESS N ATTR VALUE
 *
 * On the session bus ADDRESS: OpenSession("plain"), SearchItems({ATTR: VALUE}) for one unlocked item,
 * then N times Item.GetSecret and N times org.freedesktop.DBus.Peer.Ping, interleaved in rounds of 100
 * so that both see the same machine load. Prints "getsecret_us MEDIAN MEAN", "ping_us MEDIAN MEAN".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-bus.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(const char *what, double *v, size_t n)
{
	double sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof(*v), cmp);
	printf("%s %.1f %.1f\n", what, v[n / 2], sum / (double)n);
}

int main(int argc, char **argv)
{
	sd_bus *bus = NULL;
	sd_bus_message *reply = NULL;
	sd_bus_error e = SD_BUS_ERROR_NULL;
	const char *session, *item = NULL;
	char *session_copy, *item_copy;
	double *gs, *ping;
	size_t n, i, k;
	int r;

	if (argc != 5 || (n = strtoul(argv[2], NULL, 10)) == 0 || n > 10000000) {
		fprintf(stderr, "usage: secrets_bench ADDRESS N ATTR VALUE\n");
		return 2;
	}
	if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, argv[1])) < 0 || (r = sd_bus_set_bus_client(bus, 1)) < 0 ||
	    (r = sd_bus_start(bus)) < 0) {
		fprintf(stderr, "connect: %s\n", strerror(-r));
		return 1;
	}
	if ((r = sd_bus_call_method(bus, "org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service",
	                            "OpenSession", &e, &reply, "sv", "plain", "s", "")) < 0 ||
	    (r = sd_bus_message_skip(reply, "v")) < 0 || (r = sd_bus_message_read(reply, "o", &session)) < 0) {
		fprintf(stderr, "OpenSession: %s\n", e.message ? e.message : strerror(-r));
		return 1;
	}
	session_copy = strdup(session);
	reply = sd_bus_message_unref(reply);
	if ((r = sd_bus_call_method(bus, "org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.Secret.Service",
	                            "SearchItems", &e, &reply, "a{ss}", 1, argv[3], argv[4])) < 0 ||
	    (r = sd_bus_message_enter_container(reply, 'a', "o")) < 0 || (r = sd_bus_message_read(reply, "o", &item)) <= 0) {
		fprintf(stderr, "SearchItems: no unlocked item %s=%s\n", argv[3], argv[4]);
		return 1;
	}
	item_copy = strdup(item);
	reply = sd_bus_message_unref(reply);
	gs = calloc(n, sizeof(*gs));
	ping = calloc(n, sizeof(*ping));
	if (!gs || !ping || !session_copy || !item_copy)
		return 1;
	for (i = 0; i < n; i += 100) {
		for (k = i; k < n && k < i + 100; k++) {
			double t0 = now_us();

			if ((r = sd_bus_call_method(bus, "org.freedesktop.secrets", item_copy, "org.freedesktop.Secret.Item", "GetSecret",
			                            &e, &reply, "o", session_copy)) < 0) {
				fprintf(stderr, "GetSecret: %s\n", e.message ? e.message : strerror(-r));
				return 1;
			}
			gs[k] = now_us() - t0;
			reply = sd_bus_message_unref(reply);
		}
		for (k = i; k < n && k < i + 100; k++) {
			double t0 = now_us();

			if ((r = sd_bus_call_method(bus, "org.freedesktop.secrets", "/org/freedesktop/secrets", "org.freedesktop.DBus.Peer",
			                            "Ping", &e, NULL, "")) < 0) {
				fprintf(stderr, "Ping: %s\n", e.message ? e.message : strerror(-r));
				return 1;
			}
			ping[k] = now_us() - t0;
		}
	}
	report("getsecret_us", gs, n);
	report("ping_us", ping, n);
	free(gs);
	free(ping);
	free(session_copy);
	free(item_copy);
	sd_bus_flush_close_unref(bus);
	return 0;
}
