/* test_context.c — canonical encoding of encryption contexts: exact bytes, order independence, every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "core/context.h"

static void encodes_count_then_sorted_length_prefixed_entries(void **state)
{
	static const ts_kv kv[] = { { "purpose", "test" }, { "app", "mail" } };
	static const uint8_t want[] = {
		0, 0, 0, 2,
		0, 0, 0, 3, 'a', 'p', 'p', 0, 0, 0, 4, 'm', 'a', 'i', 'l',
		0, 0, 0, 7, 'p', 'u', 'r', 'p', 'o', 's', 'e', 0, 0, 0, 4, 't', 'e', 's', 't',
	};
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_context_encode(kv, 2, &b), 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	/* The caller's array is left as it was. */
	assert_string_equal(kv[0].key, "purpose");
}

static void empty_context_is_a_zero_count(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_context_encode(NULL, 0, &b), 0);
	assert_int_equal(b.len, 4);
	assert_int_equal(ts_be32(b.data), 0);
}

static void order_of_entries_does_not_matter(void **state)
{
	ts_kv a[] = { { "a", "1" }, { "ab", "2" }, { "b", "3" }, { "\xc3\xa9t\xc3\xa9", "4" }, { "A", "" } };
	ts_kv r[5];
	_ts_cleanup_buf_ ts_buf ea = { 0 };

	assert_int_equal(ts_context_encode(a, 5, &ea), 0);
	/* Every rotation and the reversal encode the same. */
	for (int s = 0; s < 5; s++) {
		_ts_cleanup_buf_ ts_buf eb = { 0 };

		for (int i = 0; i < 5; i++)
			r[i] = a[(i + s) % 5];
		assert_int_equal(ts_context_encode(r, 5, &eb), 0);
		assert_int_equal(eb.len, ea.len);
		assert_memory_equal(eb.data, ea.data, ea.len);
	}
	{
		_ts_cleanup_buf_ ts_buf eb = { 0 };

		for (int i = 0; i < 5; i++)
			r[i] = a[4 - i];
		assert_int_equal(ts_context_encode(r, 5, &eb), 0);
		assert_memory_equal(eb.data, ea.data, ea.len);
	}
	/* Bytewise order: "A" < "a" < "ab" < "b" < "\xc3..." */
	assert_int_equal(ea.data[8], 'A');
}

static void key_value_boundaries_are_distinct(void **state)
{
	/* ("ab","c") and ("a","bc") must not collide: lengths are part of the encoding. */
	ts_kv x[] = { { "ab", "c" } }, y[] = { { "a", "bc" } };
	_ts_cleanup_buf_ ts_buf ex = { 0 };
	_ts_cleanup_buf_ ts_buf ey = { 0 };

	assert_int_equal(ts_context_encode(x, 1, &ex), 0);
	assert_int_equal(ts_context_encode(y, 1, &ey), 0);
	assert_int_equal(ex.len, ey.len);
	assert_memory_not_equal(ex.data, ey.data, ex.len);
}

static void expect_refused(const ts_kv *kv, size_t n)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_buf_append(&b, "keep", 4), 0);
	assert_int_equal(ts_context_encode(kv, n, &b), -TS_E_INVALID_ARGS);
	/* A refused context leaves the buffer as it was. */
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "keep", 4);
}

static void duplicate_keys_are_refused(void **state)
{
	ts_kv kv[] = { { "app", "a" }, { "x", "y" }, { "app", "b" } };
	ts_kv same[] = { { "k", "v" }, { "k", "v" } };

	expect_refused(kv, 3);
	expect_refused(same, 2);
}

static void empty_or_null_keys_and_values_are_refused(void **state)
{
	ts_kv empty_key[] = { { "", "v" } };
	ts_kv null_key[] = { { NULL, "v" } };
	ts_kv null_value[] = { { "k", NULL } };
	ts_kv empty_value[] = { { "k", "" } };
	_ts_cleanup_buf_ ts_buf b = { 0 };

	expect_refused(empty_key, 1);
	expect_refused(null_key, 1);
	expect_refused(null_value, 1);
	expect_refused(NULL, 1);
	/* An empty value is a value. */
	assert_int_equal(ts_context_encode(empty_value, 1, &b), 0);
}

static void limits_are_enforced_exactly(void **state)
{
	char *k = malloc(TS_CONTEXT_KEY_MAX + 2), *v = malloc(TS_CONTEXT_VALUE_MAX + 2);
	ts_kv kv[TS_CONTEXT_MAX_ENTRIES + 1];
	char keys[TS_CONTEXT_MAX_ENTRIES + 1][8];
	ts_kv one[1];

	assert_non_null(k);
	assert_non_null(v);
	memset(k, 'k', TS_CONTEXT_KEY_MAX + 1);
	memset(v, 'v', TS_CONTEXT_VALUE_MAX + 1);
	k[TS_CONTEXT_KEY_MAX] = '\0';
	v[TS_CONTEXT_VALUE_MAX] = '\0';
	one[0] = (ts_kv){ k, v };
	{
		_ts_cleanup_buf_ ts_buf b = { 0 };

		assert_int_equal(ts_context_encode(one, 1, &b), 0);
		assert_int_equal(b.len, 4 + 4 + TS_CONTEXT_KEY_MAX + 4 + TS_CONTEXT_VALUE_MAX);
	}
	k[TS_CONTEXT_KEY_MAX] = 'k';
	k[TS_CONTEXT_KEY_MAX + 1] = '\0';
	expect_refused(one, 1);
	k[TS_CONTEXT_KEY_MAX] = '\0';
	v[TS_CONTEXT_VALUE_MAX] = 'v';
	v[TS_CONTEXT_VALUE_MAX + 1] = '\0';
	expect_refused(one, 1);

	for (int i = 0; i <= TS_CONTEXT_MAX_ENTRIES; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		kv[i] = (ts_kv){ keys[i], "v" };
	}
	{
		_ts_cleanup_buf_ ts_buf b = { 0 };

		assert_int_equal(ts_context_encode(kv, TS_CONTEXT_MAX_ENTRIES, &b), 0);
	}
	expect_refused(kv, TS_CONTEXT_MAX_ENTRIES + 1);
	free(k);
	free(v);
}

static void invalid_utf8_is_refused(void **state)
{
	static const char *const bad[] = {
		"\x80",               /* lone continuation */
		"\xc0\xaf",           /* overlong '/' */
		"\xe0\x80\xaf",       /* overlong */
		"\xed\xa0\x80",       /* surrogate U+D800 */
		"\xf4\x90\x80\x80",   /* > U+10FFFF */
		"\xc3",               /* truncated */
		"\xff",
		"a\xe2\x82",          /* truncated 3-byte */
	};
	static const char *const good[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\x91", "\x7f" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ts_kv as_key[] = { { bad[i], "v" } }, as_value[] = { { "k", bad[i] } };

		expect_refused(as_key, 1);
		expect_refused(as_value, 1);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ts_kv kv[] = { { good[i], good[i] } };
		_ts_cleanup_buf_ ts_buf b = { 0 };

		assert_int_equal(ts_context_encode(kv, 1, &b), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encodes_count_then_sorted_length_prefixed_entries),
		cmocka_unit_test(empty_context_is_a_zero_count),
		cmocka_unit_test(order_of_entries_does_not_matter),
		cmocka_unit_test(key_value_boundaries_are_distinct),
		cmocka_unit_test(duplicate_keys_are_refused),
		cmocka_unit_test(empty_or_null_keys_and_values_are_refused),
		cmocka_unit_test(limits_are_enforced_exactly),
		cmocka_unit_test(invalid_utf8_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
