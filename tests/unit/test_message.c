/* test_message.c — a handler's errors after its arguments are read go out as named tokenseal errors (message.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(success_and_pending_pass_through),
		cmocka_unit_test(an_sd_bus_errno_becomes_a_named_error),
		cmocka_unit_test(an_error_named_before_is_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
