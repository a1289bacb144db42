/* test_error.c — the error table: every code has a message and a D-Bus name, and names map back to codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tokenseal.h"

#define PREFIX "org.tokenseal1.Error."

static void every_code_has_a_message_for_either_sign(void **state)
{
	for (int c = TS_E_FAILED; c < _TS_E_MAX; c++) {
		assert_non_null(ts_strerror(c));
		assert_true(strlen(ts_strerror(c)) > 0);
		assert_string_equal(ts_strerror(c), ts_strerror(-c));
	}
}

static void unknown_codes_get_a_generic_message_never_null(void **state)
{
	assert_string_equal(ts_strerror(_TS_E_MAX), "Unknown error");
	assert_string_equal(ts_strerror(-_TS_E_MAX), "Unknown error");
	assert_string_equal(ts_strerror(-2147483647 - 1), "Unknown error");
	assert_string_equal(ts_strerror(2147483647), "Unknown error");
	assert_non_null(ts_strerror(0));
}

static void dbus_names_are_unique_prefixed_and_round_trip(void **state)
{
	for (int c = TS_E_FAILED; c < _TS_E_MAX; c++) {
		const char *n = ts_error_dbus_name(-c);

		assert_int_equal(strncmp(n, PREFIX, strlen(PREFIX)), 0);
		assert_true(strlen(n) > strlen(PREFIX));
		assert_string_equal(n, ts_error_dbus_name(c));
		assert_int_equal(ts_error_from_dbus_name(n), c);
		for (int d = TS_E_FAILED; d < c; d++)
			assert_string_not_equal(n, ts_error_dbus_name(d));
	}
}

static void names_match_the_api_contract(void **state)
{
	/* These names are part of docs/DBUS-API.md: clients match on them. */
	static const struct { int code; const char *name; } want[] = {
		{ TS_E_FAILED, "Failed" }, { TS_E_NOMEM, "NoMemory" }, { TS_E_INVALID_ARGS, "InvalidArgs" },
		{ TS_E_LOCKED, "Locked" }, { TS_E_BAD_BLOB, "BadBlob" },
		{ TS_E_CONTEXT_MISMATCH, "ContextMismatch" }, { TS_E_WRONG_VAULT, "WrongVault" },
		{ TS_E_KEY_RETIRED, "KeyRetired" }, { TS_E_ACCESS_DENIED, "AccessDenied" },
		{ TS_E_NO_SUCH_VAULT, "NoSuchVault" }, { TS_E_VAULT_EXISTS, "VaultExists" },
		{ TS_E_NO_SUCH_PROTECTOR, "NoSuchProtector" }, { TS_E_LAST_PROTECTOR, "LastProtector" },
		{ TS_E_POLICY_VIOLATION, "PolicyViolation" }, { TS_E_TOKEN_ABSENT, "TokenAbsent" },
		{ TS_E_TOKEN_NOT_ENROLLED, "TokenNotEnrolled" }, { TS_E_PIN_INVALID, "PinInvalid" },
		{ TS_E_PIN_BLOCKED, "PinBlocked" }, { TS_E_PIN_REQUIRED, "PinRequired" },
		{ TS_E_TIMEOUT, "Timeout" }, { TS_E_TOUCH_DENIED, "TouchDenied" },
		{ TS_E_PCR_MISMATCH, "PcrMismatch" }, { TS_E_NOT_SUPPORTED, "NotSupported" },
		{ TS_E_KEY_NOT_FOUND, "KeyNotFound" }, { TS_E_AUTH_FAILED, "AuthenticationFailed" },
		{ TS_E_BAD_RECOVERY_KEY, "BadRecoveryKey" }, { TS_E_CORRUPT, "VaultCorrupt" },
		{ TS_E_UNSUPPORTED_VERSION, "UnsupportedVersion" }, { TS_E_IO, "IOError" },
		{ TS_E_LIMIT, "LimitExceeded" }, { TS_E_BUSY, "Busy" }, { TS_E_NO_DAEMON, "ServiceUnknown" },
		{ TS_E_AMBIGUOUS, "AmbiguousProtector" }, { TS_E_ROLLBACK, "Rollback" },
	};
	char buf[128];

	assert_int_equal(sizeof(want) / sizeof(want[0]), _TS_E_MAX - 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		snprintf(buf, sizeof(buf), PREFIX "%s", want[i].name);
		assert_string_equal(ts_error_dbus_name(-want[i].code), buf);
	}
}

static void unknown_or_foreign_names_map_to_failed(void **state)
{
	assert_int_equal(ts_error_from_dbus_name(NULL), TS_E_FAILED);
	assert_int_equal(ts_error_from_dbus_name(""), TS_E_FAILED);
	assert_int_equal(ts_error_from_dbus_name("org.freedesktop.DBus.Error.AccessDenied"), TS_E_FAILED);
	assert_int_equal(ts_error_from_dbus_name(PREFIX "NoSuchThing"), TS_E_FAILED);
	assert_int_equal(ts_error_from_dbus_name(PREFIX "Locked "), TS_E_FAILED);
	assert_int_equal(ts_error_from_dbus_name(PREFIX "locked"), TS_E_FAILED);
	assert_string_equal(ts_error_dbus_name(9999), PREFIX "Failed");
	assert_string_equal(ts_error_dbus_name(0), PREFIX "Failed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_code_has_a_message_for_either_sign),
		cmocka_unit_test(unknown_codes_get_a_generic_message_never_null),
		cmocka_unit_test(dbus_names_are_unique_prefixed_and_round_trip),
		cmocka_unit_test(names_match_the_api_contract),
		cmocka_unit_test(unknown_or_foreign_names_map_to_failed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
