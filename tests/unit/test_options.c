/* test_options.c — ts_protector_check_options: what a caller may pass to a protector's enrollment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/context.h"
#include "protectors/protector.h"

static int check(const char *type, const ts_kv *kv, size_t n, char *err, size_t len)
{
	err[0] = '\0';
	return ts_protector_check_options(type, kv, n, err, len);
}

/* A key given twice is refused: the daemon's checks and the backend must read one and the same value. */
static void test_twice(void **state)
{
	static const ts_kv twice[] = { { "url", "http://10.0.0.1:8080" }, { "url", "https://tang.example" } };
	static const ts_kv once[] = { { "url", "https://tang.example" }, { "thp", "abc" } };
	static const ts_kv replace2[] = { { "replace", "p1" }, { "replace", "p2" } };
	char err[256];

	(void)state;
	assert_int_equal(check("tang", twice, 2, err, sizeof(err)), -TS_E_INVALID_ARGS);
	assert_string_equal(err, "option url= given twice");
	assert_int_equal(check("tang", replace2, 2, err, sizeof(err)), -TS_E_INVALID_ARGS);
	assert_string_equal(err, "option replace= given twice");
	assert_int_equal(check("tang", once, 2, err, sizeof(err)), 0);
	assert_string_equal(ts_kv_find(twice, 2, "url"), "http://10.0.0.1:8080");
	assert_null(ts_kv_find(once, 2, "missing"));
}

/* Unknown options and the administrator's (device, module) are refused with the reason. */
static void test_refused(void **state)
{
	static const ts_kv unknown[] = { { "colour", "blue" } };
	static const ts_kv device[] = { { "device", "/dev/hidraw0" } };
	char err[256];

	(void)state;
	assert_int_equal(check("tang", unknown, 1, err, sizeof(err)), -TS_E_INVALID_ARGS);
	assert_non_null(strstr(err, "unknown option 'colour' for tang protectors"));
	assert_int_equal(check("fido2", device, 1, err, sizeof(err)), -TS_E_INVALID_ARGS);
	assert_non_null(strstr(err, "set by the administrator"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_twice),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
