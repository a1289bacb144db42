/* test_params.c — typed params records: setters/getters, deterministic CBOR, and a decoder that refuses hostile bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "core/params.h"

static void setters_and_typed_getters(void **state)
{
	ts_params *p = NULL;
	const uint8_t *b;
	const char *s, *k;
	size_t bl;
	uint64_t u;
	char t;

	assert_int_equal(ts_params_new(&p), 0);
	assert_int_equal(ts_params_set_bytes(p, "salt", (const uint8_t *)"\x00\x01\x02", 3), 0);
	assert_int_equal(ts_params_set_str(p, "alg", "argon2id13"), 0);
	assert_int_equal(ts_params_set_uint(p, "ops", UINT64_MAX), 0);
	assert_int_equal(ts_params_set_bytes(p, "empty", NULL, 0), 0);
	assert_int_equal(ts_params_count(p), 4);

	assert_int_equal(ts_params_get_bytes(p, "salt", &b, &bl), 0);
	assert_int_equal(bl, 3);
	assert_memory_equal(b, "\x00\x01\x02", 3);
	assert_int_equal(ts_params_get_str(p, "alg", &s), 0);
	assert_string_equal(s, "argon2id13");
	assert_int_equal(ts_params_get_uint(p, "ops", &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(ts_params_get_bytes(p, "empty", &b, &bl), 0);
	assert_int_equal(bl, 0);

	/* Missing keys and wrong types are "corrupt": params come from files. */
	assert_int_equal(ts_params_get_uint(p, "nope", &u), -TS_E_CORRUPT);
	assert_int_equal(ts_params_get_uint(p, "alg", &u), -TS_E_CORRUPT);
	assert_int_equal(ts_params_get_str(p, "salt", &s), -TS_E_CORRUPT);
	assert_int_equal(ts_params_get_bytes(p, "ops", &b, &bl), -TS_E_CORRUPT);
	assert_true(ts_params_has(p, "alg"));
	assert_false(ts_params_has(p, "Alg"));

	/* Iteration lists every key once, with its type. */
	for (size_t i = 0; i < ts_params_count(p); i++) {
		assert_int_equal(ts_params_entry(p, i, &k, &t), 0);
		assert_true(ts_params_has(p, k));
		assert_non_null(strchr("bsu", t));
	}
	assert_int_equal(ts_params_entry(p, 4, &k, &t), -TS_E_INVALID_ARGS);
	ts_params_free(p);
	ts_params_free(NULL);
}

static void setting_a_key_again_replaces_it_even_with_another_type(void **state)
{
	ts_params *p = NULL;
	const char *s;
	uint64_t u;

	assert_int_equal(ts_params_new(&p), 0);
	assert_int_equal(ts_params_set_uint(p, "x", 1), 0);
	assert_int_equal(ts_params_set_uint(p, "x", 2), 0);
	assert_int_equal(ts_params_get_uint(p, "x", &u), 0);
	assert_true(u == 2);
	assert_int_equal(ts_params_set_str(p, "x", "two"), 0);
	assert_int_equal(ts_params_count(p), 1);
	assert_int_equal(ts_params_get_str(p, "x", &s), 0);
	assert_string_equal(s, "two");
	assert_int_equal(ts_params_get_uint(p, "x", &u), -TS_E_CORRUPT);
	ts_params_free(p);
}

static void setters_enforce_limits(void **state)
{
	ts_params *p = NULL;
	char key[66], val[4098];
	uint8_t *big = calloc(1, 65537);

	assert_int_equal(ts_params_new(&p), 0);
	memset(key, 'k', sizeof(key));
	key[64] = '\0';
	assert_int_equal(ts_params_set_uint(p, key, 1), 0);
	key[64] = 'k';
	key[65] = '\0';
	assert_int_equal(ts_params_set_uint(p, key, 1), -TS_E_LIMIT);
	assert_int_equal(ts_params_set_uint(p, "", 1), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_params_set_uint(p, "\xff", 1), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_params_set_bytes(p, "b", big, 65536), 0);
	assert_int_equal(ts_params_set_bytes(p, "b", big, 65537), -TS_E_LIMIT);
	memset(val, 'v', sizeof(val));
	val[4096] = '\0';
	assert_int_equal(ts_params_set_str(p, "s", val), 0);
	val[4096] = 'v';
	val[4097] = '\0';
	assert_int_equal(ts_params_set_str(p, "s", val), -TS_E_LIMIT);
	assert_int_equal(ts_params_set_str(p, "s", "\xc0\xaf"), -TS_E_INVALID_ARGS);
	ts_params_free(p);

	assert_int_equal(ts_params_new(&p), 0);
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		assert_int_equal(ts_params_set_uint(p, key, (uint64_t)i), 0);
	}
	assert_int_equal(ts_params_set_uint(p, "one-too-many", 1), -TS_E_LIMIT);
	assert_int_equal(ts_params_set_uint(p, "k07", 9), 0);   /* replacing is still fine */
	ts_params_free(p);
	free(big);
}

static void encoding_is_deterministic_cbor_with_sorted_keys(void **state)
{
	/* {"b": h'0102', "n": 5, "s": "hi", "long": 256}: shorter keys first, then bytewise. */
	static const uint8_t want[] = { 0xa4, 0x61, 'b', 0x42, 0x01, 0x02, 0x61, 'n', 0x05,
	                                0x61, 's', 0x62, 'h', 'i', 0x64, 'l', 'o', 'n', 'g', 0x19, 0x01, 0x00 };
	ts_params *p = NULL, *q = NULL;
	_ts_cleanup_buf_ ts_buf a = { 0 };
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_params_new(&p), 0);
	assert_int_equal(ts_params_set_uint(p, "long", 256), 0);
	assert_int_equal(ts_params_set_str(p, "s", "hi"), 0);
	assert_int_equal(ts_params_set_uint(p, "n", 5), 0);
	assert_int_equal(ts_params_set_bytes(p, "b", (const uint8_t *)"\x01\x02", 2), 0);
	assert_int_equal(ts_params_encode(p, &a), 0);
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));

	/* Another insertion order, same bytes. */
	assert_int_equal(ts_params_new(&q), 0);
	assert_int_equal(ts_params_set_bytes(q, "b", (const uint8_t *)"\x01\x02", 2), 0);
	assert_int_equal(ts_params_set_uint(q, "n", 5), 0);
	assert_int_equal(ts_params_set_str(q, "s", "hi"), 0);
	assert_int_equal(ts_params_set_uint(q, "long", 256), 0);
	assert_int_equal(ts_params_encode(q, &b), 0);
	assert_int_equal(b.len, a.len);
	assert_memory_equal(b.data, a.data, a.len);
	ts_params_free(p);
	ts_params_free(q);
}

static void decode_round_trips_and_sorts_unsorted_input(void **state)
{
	/* {"s": "hi", "b": h'01'} — keys out of order are accepted and re-encoded sorted. */
	static const uint8_t in[] = { 0xa2, 0x61, 's', 0x62, 'h', 'i', 0x61, 'b', 0x41, 0x01 };
	static const uint8_t canon[] = { 0xa2, 0x61, 'b', 0x41, 0x01, 0x61, 's', 0x62, 'h', 'i' };
	_ts_cleanup_buf_ ts_buf e = { 0 };
	ts_params *p = NULL;
	const char *s;

	assert_int_equal(ts_params_decode(in, sizeof(in), &p), 0);
	assert_int_equal(ts_params_get_str(p, "s", &s), 0);
	assert_string_equal(s, "hi");
	assert_int_equal(ts_params_encode(p, &e), 0);
	assert_int_equal(e.len, sizeof(canon));
	assert_memory_equal(e.data, canon, sizeof(canon));
	ts_params_free(p);
}

static void expect_corrupt(const uint8_t *b, size_t len, const char *what)
{
	ts_params *p = (ts_params *)0x1;
	uint8_t *copy = malloc(len ? len : 1);
	int r;

	/* Exactly sized, so any read past len shows up under valgrind. */
	if (len)
		memcpy(copy, b, len);
	r = ts_params_decode(copy, len, &p);
	if (r != -TS_E_CORRUPT)
		fail_msg("%s: got %d", what, r);
	assert_null(p);
	free(copy);
}

#define CORRUPT(what, ...) do { \
	static const uint8_t in_[] = { __VA_ARGS__ }; \
	expect_corrupt(in_, sizeof(in_), what); \
} while (0)

static void hostile_encodings_are_corrupt(void **state)
{
	expect_corrupt(NULL, 0, "empty input");
	CORRUPT("array at top", 0x80);
	CORRUPT("uint at top", 0x01);
	CORRUPT("bytes at top", 0x41, 0x00);
	CORRUPT("uint key", 0xa1, 0x01, 0x01);
	CORRUPT("bytes key", 0xa1, 0x41, 'a', 0x01);
	CORRUPT("empty key", 0xa1, 0x60, 0x01);
	CORRUPT("duplicate key", 0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02);
	CORRUPT("duplicate key, other type", 0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x41, 0x00);
	CORRUPT("nested map", 0xa1, 0x61, 'a', 0xa0);
	CORRUPT("nested array", 0xa1, 0x61, 'a', 0x80);
	CORRUPT("trailing byte", 0xa0, 0x00);
	CORRUPT("second item", 0xa0, 0xa0);
	CORRUPT("indefinite map", 0xbf, 0xff);
	CORRUPT("indefinite bytes", 0xa1, 0x61, 'a', 0x5f, 0x41, 0x00, 0xff);
	CORRUPT("indefinite text key", 0xa1, 0x7f, 0x61, 'a', 0xff, 0x01);
	CORRUPT("negative int", 0xa1, 0x61, 'a', 0x20);
	CORRUPT("tag", 0xa1, 0x61, 'a', 0xc1, 0x01);
	CORRUPT("half float", 0xa1, 0x61, 'a', 0xf9, 0x00, 0x00);
	CORRUPT("true", 0xa1, 0x61, 'a', 0xf5);
	CORRUPT("null", 0xa1, 0x61, 'a', 0xf6);
	CORRUPT("reserved additional info", 0xa1, 0x61, 'a', 0x1c);
	CORRUPT("invalid utf-8 value", 0xa1, 0x61, 'a', 0x61, 0xff);
	CORRUPT("NUL in text value", 0xa1, 0x61, 'a', 0x62, 'x', 0x00);
	CORRUPT("NUL in key", 0xa1, 0x62, 'a', 0x00, 0x01);
	CORRUPT("overlong utf-8 key", 0xa1, 0x62, 0xc0, 0xaf, 0x01);
	CORRUPT("map count past the data", 0xa2, 0x61, 'a', 0x01);
	CORRUPT("huge map count", 0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	CORRUPT("65535-entry map, no data", 0xb9, 0xff, 0xff);
	CORRUPT("2^32-byte string", 0xa1, 0x61, 'a', 0x5b, 0, 0, 0, 1, 0, 0, 0, 0);
	CORRUPT("uint width past the data", 0xa1, 0x61, 'a', 0x1b, 0x01);
}

static void too_many_entries_long_keys_and_big_values_are_corrupt(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	char key[8];

	/* 65 entries. */
	assert_int_equal(ts_buf_append(&b, "\xb8\x41", 2), 0);
	for (int i = 0; i < 65; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		assert_int_equal(ts_buf_append_u8(&b, 0x63), 0);
		assert_int_equal(ts_buf_append(&b, key, 3), 0);
		assert_int_equal(ts_buf_append_u8(&b, 0x00), 0);
	}
	expect_corrupt(b.data, b.len, "65 entries");
	/* 64 of them are fine. */
	b.data[1] = 0x40;
	{
		ts_params *p = NULL;

		assert_int_equal(ts_params_decode(b.data, b.len - 5, &p), 0);
		assert_int_equal(ts_params_count(p), 64);
		ts_params_free(p);
	}
	ts_buf_free(&b);

	/* A 65-byte key. */
	assert_int_equal(ts_buf_append(&b, "\xa1\x78\x41", 3), 0);
	for (int i = 0; i < 65; i++)
		assert_int_equal(ts_buf_append_u8(&b, 'k'), 0);
	assert_int_equal(ts_buf_append_u8(&b, 0x00), 0);
	expect_corrupt(b.data, b.len, "65-byte key");
	ts_buf_free(&b);

	/* A 65537-byte byte string. */
	assert_int_equal(ts_buf_append(&b, "\xa1\x61" "b" "\x5a\x00\x01\x00\x01", 8), 0);
	assert_non_null(ts_buf_reserve(&b, 65537));
	expect_corrupt(b.data, b.len, "65537-byte value");
	ts_buf_free(&b);

	/* A 4097-byte text string. */
	assert_int_equal(ts_buf_append(&b, "\xa1\x61" "s" "\x79\x10\x01", 6), 0);
	for (int i = 0; i < 4097; i++)
		assert_int_equal(ts_buf_append_u8(&b, 'x'), 0);
	expect_corrupt(b.data, b.len, "4097-byte text");
}

static void every_truncation_of_a_valid_record_is_corrupt(void **state)
{
	_ts_cleanup_buf_ ts_buf e = { 0 };
	ts_params *p = NULL;

	assert_int_equal(ts_params_new(&p), 0);
	assert_int_equal(ts_params_set_bytes(p, "credential", (const uint8_t *)"0123456789", 10), 0);
	assert_int_equal(ts_params_set_str(p, "rp", "tokenseal:abc"), 0);
	assert_int_equal(ts_params_set_uint(p, "n", 70000), 0);
	assert_int_equal(ts_params_encode(p, &e), 0);
	ts_params_free(p);
	for (size_t len = 0; len < e.len; len++)
		expect_corrupt(e.data, len, "truncated");
	assert_int_equal(ts_params_decode(e.data, e.len, &p), 0);
	ts_params_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(setters_and_typed_getters),
		cmocka_unit_test(setting_a_key_again_replaces_it_even_with_another_type),
		cmocka_unit_test(setters_enforce_limits),
		cmocka_unit_test(encoding_is_deterministic_cbor_with_sorted_keys),
		cmocka_unit_test(decode_round_trips_and_sorts_unsorted_input),
		cmocka_unit_test(hostile_encodings_are_corrupt),
		cmocka_unit_test(too_many_entries_long_keys_and_big_values_are_corrupt),
		cmocka_unit_test(every_truncation_of_a_valid_record_is_corrupt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
