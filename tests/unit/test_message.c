/* test_message.c — a handler's errors after its arguments are read go out as named tokenseal errors, and its a{ss} arguments read back entry by entry (message.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus/message.h"

static void success_and_pending_pass_through(void **state)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;

	assert_int_equal(ts_bus_errno(&error, 0), 0);
	assert_int_equal(ts_bus_errno(&error, 1), 1);
	assert_false(sd_bus_error_is_set(&error));
}

static void an_sd_bus_errno_becomes_a_named_error(void **state)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;

	assert_true(ts_bus_errno(&error, -ENOMEM) < 0);
	assert_string_equal(error.name, "org.tokenseal1.Error.NoMemory");
	sd_bus_error_free(&error);

	assert_true(ts_bus_errno(&error, -ENOTCONN) < 0);
	assert_string_equal(error.name, "org.tokenseal1.Error.Failed");
	assert_non_null(strstr(error.message, "cannot answer: "));
	sd_bus_error_free(&error);
}

static void an_error_named_before_is_kept(void **state)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r = ts_bus_error(&error, -TS_E_LOCKED, "vault 'v' is locked (idle)");

	assert_int_equal(ts_bus_errno(&error, r), r);
	assert_string_equal(error.name, "org.tokenseal1.Error.Locked");
	assert_string_equal(error.message, "vault 'v' is locked (idle)");
	sd_bus_error_free(&error);
}

/*
 * A method call holding an a{ss} of n entries (keys[i], values[i]) and
 * then a u, sealed and rewound as sd-bus hands a received call to a
 * handler. The bus is one end of a socketpair, never connected further:
 * sd-bus builds messages only for a bus that has started.
 */
static sd_bus_message *kv_call(sd_bus **ret_bus, int fds[2], const char *const *keys,
                               const char *const *values, size_t n)
{
	sd_bus_message *m = NULL;
	sd_bus *bus = NULL;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
	assert_int_equal(sd_bus_new(&bus), 0);
	assert_int_equal(sd_bus_set_fd(bus, fds[0], fds[0]), 0);
	assert_true(sd_bus_start(bus) >= 0);
	assert_true(sd_bus_message_new_method_call(bus, &m, "org.example.Peer", "/org/example", "org.example.I",
	                                           "M") >= 0);
	assert_true(sd_bus_message_open_container(m, 'a', "{ss}") >= 0);
	for (size_t i = 0; i < n; i++)
		assert_true(sd_bus_message_append(m, "{ss}", keys[i], values[i]) >= 0);
	assert_true(sd_bus_message_close_container(m) >= 0);
	assert_true(sd_bus_message_append(m, "u", 7u) >= 0);
	assert_true(sd_bus_message_seal(m, 1, 0) >= 0);
	assert_true(sd_bus_message_rewind(m, 1) >= 0);
	*ret_bus = bus;
	return m;
}

static void kv_call_free(sd_bus *bus, sd_bus_message *m, int fds[2])
{
	sd_bus_message_unref(m);
	sd_bus_close(bus);   /* no flush: nobody answers the other end */
	sd_bus_unref(bus);
	close(fds[1]);
}

/*
 * ts_bus_read_kv gives every entry of an a{ss}, in order and aliasing the
 * message (an empty value and an empty array included), and leaves the
 * message at the next argument; more entries than max is LimitExceeded,
 * anything but an a{ss} InvalidArgs.
 */
static void an_a_ss_reads_back_entry_by_entry(void **state)
{
	static const char *const keys[] = { "app", "purpose", "z", "\xc3\xa9t\xc3\xa9" };
	static const char *const values[] = { "org.example.Mail", "", "last", "utf-8 \xe2\x9c\x93" };
	sd_bus_message *m;
	sd_bus *bus;
	ts_kv *kv;
	size_t n;
	uint32_t u;
	int fds[2];

	for (size_t count = 0; count <= 4; count++) {
		m = kv_call(&bus, fds, keys, values, count);
		assert_int_equal(ts_bus_read_kv(m, &kv, &n, 64), 0);
		assert_int_equal(n, count);
		for (size_t i = 0; i < count; i++) {
			assert_string_equal(kv[i].key, keys[i]);
			assert_string_equal(kv[i].value, values[i]);
		}
		free(kv);
		assert_true(sd_bus_message_read(m, "u", &u) > 0);
		assert_int_equal(u, 7);
		kv_call_free(bus, m, fds);
	}

	m = kv_call(&bus, fds, keys, values, 4);
	assert_int_equal(ts_bus_read_kv(m, &kv, &n, 3), -TS_E_LIMIT);
	assert_null(kv);
	kv_call_free(bus, m, fds);

	/* The u where the a{ss} should be. */
	m = kv_call(&bus, fds, keys, values, 1);
	assert_true(sd_bus_message_skip(m, "a{ss}") >= 0);
	assert_int_equal(ts_bus_read_kv(m, &kv, &n, 64), -TS_E_INVALID_ARGS);
	assert_null(kv);
	kv_call_free(bus, m, fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(success_and_pending_pass_through),
		cmocka_unit_test(an_sd_bus_errno_becomes_a_named_error),
		cmocka_unit_test(an_error_named_before_is_kept),
		cmocka_unit_test(an_a_ss_reads_back_entry_by_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
