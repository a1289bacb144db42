/* test_direct_conn.c — what a private-socket client's message brings in (ts_direct_message_size): the largest legitimate calls fit the bounds; more bytes, fds or values do not. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	assert_true(st.bytes >= (uint64_t)TS_BATCH_MAX * (4 + sizeof(blob)));
	assert_true(st.bytes < TS_DIRECT_MESSAGE_MAX / 2);
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
	assert_true(st.bytes > TS_DIRECT_MESSAGE_MAX);
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
	assert_true(st.bytes > 1000 && st.bytes <= 1006);
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
	assert_true(st.bytes < TS_DIRECT_MESSAGE_MAX);
	done(m, bus);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_largest_batch_fits),
		cmocka_unit_test(a_body_past_the_cap_is_over),
		cmocka_unit_test(a_walk_stops_at_the_cap),
		cmocka_unit_test(more_values_than_a_call_has_are_over),
		cmocka_unit_test(more_fds_than_a_method_takes_are_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
