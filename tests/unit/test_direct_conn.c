/* test_direct_conn.c — what a private-socket client brings in: its message (ts_direct_message_size: the largest legitimate calls fit the bounds; more bytes, fds or values do not) and its process (ts_direct_peer_open). */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus/direct.h"
#include "bus/direct_conn.h"
#include "tokenseal.h"

/*
 * A method call on a connection of a socketpair (sd-bus makes messages
 * only for an open connection; nothing is sent).
 */
static int peer = -1;

static sd_bus_message *call(sd_bus **bus, const char *member)
{
	sd_bus_message *m = NULL;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	peer = sv[1];
	assert_int_equal(sd_bus_new(bus), 0);
	assert_int_equal(sd_bus_set_fd(*bus, sv[0], sv[0]), 0);
	assert_int_equal(sd_bus_start(*bus), 0);
	assert_int_equal(sd_bus_message_new_method_call(*bus, &m, "org.tokenseal1", "/org/tokenseal1/vault/v",
	                                                "org.tokenseal1.Vault", member),
	                 0);
	return m;
}

static void done(sd_bus_message *m, sd_bus *bus)
{
	sd_bus_message_unref(m);
	sd_bus_close_unref(bus);
	close(peer);
	peer = -1;
}

/* Sealed and rewound: read as the daemon reads one it received. */
static int size_of(sd_bus_message *m, ts_direct_msg_size *st)
{
	assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
	assert_true(sd_bus_message_rewind(m, 1) >= 0);
	st->max_bytes = TS_DIRECT_MESSAGE_MAX;
	st->max_fds = TS_DIRECT_FDS_MAX;
	st->max_values = TS_DIRECT_VALUES_MAX;
	return ts_direct_message_size(m, st);
}

/* UnwrapBatch of TS_BATCH_MAX blobs of 32-byte keys (102 bytes each) and the largest context there is. */
static void the_largest_batch_fits(void **state)
{
	static uint8_t blob[102];
	static char key[TS_CONTEXT_KEY_MAX + 1], value[TS_CONTEXT_VALUE_MAX + 1];
	ts_direct_msg_size st;
	sd_bus_message *m;
	sd_bus *bus;
	const void *p;
	size_t n;

	m = call(&bus, "UnwrapBatch");
	assert_true(sd_bus_message_open_container(m, 'a', "ay") >= 0);
	for (int i = 0; i < TS_BATCH_MAX; i++)
		assert_true(sd_bus_message_append_array(m, 'y', blob, sizeof(blob)) >= 0);
	assert_true(sd_bus_message_close_container(m) >= 0);
	memset(value, 'v', TS_CONTEXT_VALUE_MAX);
	assert_true(sd_bus_message_open_container(m, 'a', "{ss}") >= 0);
	for (int i = 0; i < TS_CONTEXT_MAX_ENTRIES; i++) {
		memset(key, 'a' + i % 26, TS_CONTEXT_KEY_MAX);
		key[0] = (char)('0' + i / 26);
		assert_true(sd_bus_message_append(m, "{ss}", key, value) >= 0);
	}
	assert_true(sd_bus_message_close_container(m) >= 0);

	assert_int_equal(size_of(m, &st), 0);
	/* At least the bytes the message holds, and well under the cap. */
	assert_true(st.bytes + st.body >= (uint64_t)TS_BATCH_MAX * (4 + sizeof(blob)));
	assert_true(st.bytes + st.body < TS_DIRECT_MESSAGE_MAX / 2);
	assert_int_equal(st.fds, 0);
	assert_true(st.values > TS_BATCH_MAX && st.values < TS_BATCH_MAX + 256);
	/* Rewound: the handler reads the first blob first. */
	assert_int_equal(sd_bus_message_enter_container(m, 'a', "ay"), 1);
	assert_int_equal(sd_bus_message_read_array(m, 'y', &p, &n), 1);
	assert_int_equal(n, sizeof(blob));
	done(m, bus);
}

static void a_body_past_the_cap_is_over(void **state)
{
	size_t len = TS_DIRECT_MESSAGE_MAX + 1;
	uint8_t *big = calloc(1, len);
	ts_direct_msg_size st;
	sd_bus_message *m;
	sd_bus *bus;

	assert_non_null(big);
	m = call(&bus, "Unwrap");
	assert_true(sd_bus_message_append_array(m, 'y', big, len) >= 0);
	assert_true(sd_bus_message_append(m, "a{ss}", 0) >= 0);
	assert_int_equal(size_of(m, &st), 1);
	assert_true(st.bytes + st.body > TS_DIRECT_MESSAGE_MAX);
	done(m, bus);
	free(big);
}

/* Many small strings past the cap: the walk stops at the cap, not at the end of the message. */
static void a_walk_stops_at_the_cap(void **state)
{
	ts_direct_msg_size st;
	sd_bus_message *m;
	sd_bus *bus;

	m = call(&bus, "Unwrap");
	assert_true(sd_bus_message_open_container(m, 'a', "s") >= 0);
	for (int i = 0; i < 1000; i++)
		assert_true(sd_bus_message_append(m, "s", "x") >= 0);
	assert_true(sd_bus_message_close_container(m) >= 0);
	assert_int_equal(sd_bus_message_seal(m, 1, 0), 0);
	assert_true(sd_bus_message_rewind(m, 1) >= 0);
	st.max_bytes = 1000;
	st.max_fds = TS_DIRECT_FDS_MAX;
	st.max_values = TS_DIRECT_VALUES_MAX;
	assert_int_equal(ts_direct_message_size(m, &st), 1);
	/* Each "x" is at most 3 + 4 + 1 + 1 bytes on the wire. */
	assert_true(st.bytes + st.body > 1000 && st.bytes + st.body <= 1009);
	done(m, bus);
}

/* Small in bytes, but more values than any call has: over, after at most TS_DIRECT_VALUES_MAX + 1 of them. */
static void more_values_than_a_call_has_are_over(void **state)
{
	ts_direct_msg_size st;
	sd_bus_message *m;
	sd_bus *bus;

	m = call(&bus, "Unwrap");
	assert_true(sd_bus_message_open_container(m, 'a', "s") >= 0);
	for (int i = 0; i < TS_DIRECT_VALUES_MAX + 10; i++)
		assert_true(sd_bus_message_append(m, "s", "") >= 0);
	assert_true(sd_bus_message_close_container(m) >= 0);
	assert_int_equal(size_of(m, &st), 1);
	assert_int_equal(st.values, TS_DIRECT_VALUES_MAX + 1);
	assert_true(st.bytes + st.body < TS_DIRECT_MESSAGE_MAX);
	done(m, bus);
}

/* The body length sd-bus writes in m's header, after the authentication (answered here as a server would). */
static uint32_t body_written(sd_bus *bus, sd_bus_message *m)
{
	static const char ok[] = "DATA\r\nOK 0123456789abcdef0123456789abcdef\r\nAGREE_UNIX_FD\r\n";
	static uint8_t wire[4096];
	const uint8_t *begin, *h;
	ssize_t n;

	assert_int_equal(write(peer, ok, strlen(ok)), (ssize_t)strlen(ok));
	assert_true(sd_bus_send(bus, m, NULL) >= 0);
	assert_true(sd_bus_flush(bus) >= 0);
	n = read(peer, wire, sizeof(wire));
	assert_true(n > 0);
	begin = memmem(wire, (size_t)n, "BEGIN\r\n", 7);
	assert_non_null(begin);
	h = begin + 7;
	assert_true(h + 16 <= wire + n);
	return (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
}

/*
 * The body bound is never less than the body sd-bus writes (what the
 * daemon's scanner reads in its header), for every shape of value, and
 * more by no more than each value's padding: a longer body has bytes no
 * argument reads. The first bodies are all padding the bound must count.
 */
static void the_body_bound_covers_every_body(void **state)
{
	static const uint8_t blob[5] = { 1, 2, 3, 4, 5 };

	for (int shape = 0; shape < 6; shape++) {
		ts_direct_msg_size st;
		sd_bus_message *m;
		sd_bus *bus;
		uint32_t body;

		m = call(&bus, "Unwrap");
		switch (shape) {
		case 0: /* 1 + 7 + 8 */
			assert_true(sd_bus_message_append(m, "yt", 1, (uint64_t)2) >= 0);
			break;
		case 1: /* 1 + 3 + 4 + 4 */
			assert_true(sd_bus_message_append(m, "ys", 1, "str") >= 0);
			break;
		case 2: /* 1 + 7 + 1 + 7 + 8 */
			assert_true(sd_bus_message_append(m, "y(yt)", 1, 2, (uint64_t)3) >= 0);
			break;
		case 3: /* 1 + 1 + 2 + 4 + 4 + 4 + 4 + 4(8 - 4) + 8 */
			assert_true(sd_bus_message_append(m, "ybnqiuxd", 1, 1, 2, 3, 4, 5, (int64_t)6, 7.0) >= 0);
			break;
		case 4:
			assert_true(sd_bus_message_append_array(m, 'y', blob, sizeof(blob)) >= 0);
			assert_true(sd_bus_message_append(m, "a{ss}", 2, "k", "v", "key2", "value2") >= 0);
			assert_true(sd_bus_message_append(m, "ataasgy", 2, (uint64_t)1, (uint64_t)2, 1, 2, "a", "bc",
			                                   "a{sv}", 1) >= 0);
			break;
		default:
			assert_true(sd_bus_message_open_container(m, 'a', "ay") >= 0);
			for (int i = 0; i < 3; i++)
				assert_true(sd_bus_message_append_array(m, 'y', blob, (size_t)i) >= 0);
			assert_true(sd_bus_message_close_container(m) >= 0);
			assert_true(sd_bus_message_append(m, "y", 1) >= 0);
			break;
		}
		assert_int_equal(size_of(m, &st), 0);
		body = body_written(bus, m);
		assert_true(body <= st.body);
		assert_true(st.body - body <= 7 * st.values);
		done(m, bus);
	}
}

static void more_fds_than_a_method_takes_are_over(void **state)
{
	ts_direct_msg_size st;
	sd_bus_message *m;
	sd_bus *bus;
	int p[2];

	assert_int_equal(pipe(p), 0);
	/* AddProtector's two fds: within. */
	m = call(&bus, "AddProtector");
	assert_true(sd_bus_message_append(m, "sa{ss}hh", "recovery", 0, p[0], p[1]) >= 0);
	assert_int_equal(size_of(m, &st), 0);
	assert_int_equal(st.fds, 2);
	done(m, bus);
	/* Three at the top. */
	m = call(&bus, "AddProtector");
	assert_true(sd_bus_message_append(m, "hhh", p[0], p[1], p[0]) >= 0);
	assert_int_equal(size_of(m, &st), 1);
	assert_int_equal(st.fds, 3);
	done(m, bus);
	/* Three in an array inside a variant. */
	m = call(&bus, "Unlock");
	assert_true(sd_bus_message_append(m, "v", "ah", 3, p[0], p[1], p[0]) >= 0);
	assert_int_equal(size_of(m, &st), 1);
	assert_int_equal(st.fds, 3);
	done(m, bus);
	close(p[0]);
	close(p[1]);
}

/*
 * The peer is a running process holding the socket's uid: this one, under
 * its own uid; not under another uid (a pid taken over by another user's
 * process); and a child that exited is gone while it is still a zombie,
 * whose pid and start time stay.
 */
static void the_peer_runs_and_holds_the_sockets_uid(void **state)
{
	ts_direct_conn c = { .pid = getpid(), .uid = getuid() };
	siginfo_t si;
	int sv[2];
	pid_t k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ts_direct_peer_open(&c, sv[0]);
	assert_true(c.pidfd >= 0);
	assert_int_not_equal(c.start_time, 0);
	assert_true(ts_direct_peer_alive(&c));
	close(c.pidfd);

	c = (ts_direct_conn){ .pid = getpid(), .uid = getuid() + 1 };
	ts_direct_peer_open(&c, sv[0]);
	assert_int_equal(c.start_time, 0);
	assert_false(ts_direct_peer_alive(&c));
	if (c.pidfd >= 0)
		close(c.pidfd);
	close(sv[0]);
	close(sv[1]);

	/*
	 * A child connects (SO_PEERPIDFD of the accepted socket; pidfd_open of
	 * its pid where the kernel lacks the option), then exits when told.
	 */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sa_len = offsetof(struct sockaddr_un, sun_path) + 1 +
	                   (socklen_t)snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ts-peer-%ld", (long)getpid());
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), go[2], afd;
	struct ucred uc;
	socklen_t uc_len = sizeof(uc);
	char b = 0;

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sa_len), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(pipe(go), 0);
	if ((k = fork()) == 0) {
		int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		alarm(10);
		if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sa_len) < 0)
			_exit(2);
		_exit(read(go[0], &b, 1) == 1 ? 0 : 1);
	}
	assert_true(k > 0);
	assert_true((afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0);
	assert_int_equal(getsockopt(afd, SOL_SOCKET, SO_PEERCRED, &uc, &uc_len), 0);
	assert_int_equal(uc.pid, k);
	c = (ts_direct_conn){ .pid = uc.pid, .uid = uc.uid };
	ts_direct_peer_open(&c, afd);
	/* Told to go whatever the checks below find: no child left waiting. */
	assert_int_equal(write(go[1], &b, 1), 1);
	assert_true(c.pidfd >= 0);
	assert_int_not_equal(c.start_time, 0);
	assert_int_equal(waitid(P_PID, (id_t)k, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(ts_direct_start_time(k), c.start_time);
	assert_false(ts_direct_peer_alive(&c));
	assert_int_equal(waitpid(k, NULL, 0), k);
	close(c.pidfd);
	close(afd);
	close(lfd);
	close(go[0]);
	close(go[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_largest_batch_fits),
		cmocka_unit_test(a_body_past_the_cap_is_over),
		cmocka_unit_test(a_walk_stops_at_the_cap),
		cmocka_unit_test(more_values_than_a_call_has_are_over),
		cmocka_unit_test(more_fds_than_a_method_takes_are_over),
		cmocka_unit_test(the_body_bound_covers_every_body),
		cmocka_unit_test(the_peer_runs_and_holds_the_sockets_uid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
