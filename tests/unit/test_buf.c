/* test_buf.c — byte buffers (append, big-endian writers, reserve, limits) and the secure allocator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "core/buf.h"

static void append_writes_big_endian_integers(void **state)
{
	static const uint8_t want[] = { 0xab, 0x01, 0x02, 0x03, 0x04, 0x01, 0x02, 0x03, 0x04,
	                                0x05, 0x06, 0x07, 0x08, 'h', 'i' };
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_buf_append_u8(&b, 0xab), 0);
	assert_int_equal(ts_buf_append_be32(&b, 0x01020304u), 0);
	assert_int_equal(ts_buf_append_be64(&b, 0x0102030405060708ull), 0);
	assert_int_equal(ts_buf_append(&b, "hi", 2), 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	assert_int_equal(ts_be32(b.data + 1), 0x01020304u);
	assert_true(ts_be64(b.data + 5) == 0x0102030405060708ull);
}

static void growth_keeps_contents(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	uint8_t byte;

	for (unsigned i = 0; i < 100000; i++) {
		byte = (uint8_t)(i * 31);
		assert_int_equal(ts_buf_append(&b, &byte, 1), 0);
	}
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len);
	for (unsigned i = 0; i < 100000; i++)
		assert_int_equal(b.data[i], (uint8_t)(i * 31));
}

static void reserve_returns_zeroed_room_and_grows_len(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	uint8_t *p;

	assert_int_equal(ts_buf_append(&b, "xy", 2), 0);
	p = ts_buf_reserve(&b, 1000);
	assert_non_null(p);
	assert_ptr_equal(p, b.data + 2);
	assert_int_equal(b.len, 1002);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(p[i], 0);
	assert_memory_equal(b.data, "xy", 2);
	assert_non_null(ts_buf_reserve(&b, 0));
	assert_int_equal(b.len, 1002);
}

static void sizes_past_256_mib_are_refused_without_allocating(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_buf_append(&b, "a", 1), 0);
	/* The data pointer is never read for a refused size. */
	assert_int_equal(ts_buf_append(&b, b.data, ((size_t)256 << 20)), -TS_E_LIMIT);
	assert_int_equal(ts_buf_append(&b, b.data, SIZE_MAX), -TS_E_LIMIT);
	assert_null(ts_buf_reserve(&b, SIZE_MAX - 1));
	assert_int_equal(b.len, 1);
}

static void free_resets_and_accepts_null(void **state)
{
	ts_buf b = { 0 };

	assert_int_equal(ts_buf_append(&b, "abc", 3), 0);
	ts_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	ts_buf_free(&b);
	ts_buf_free(NULL);
}

static void secure_alloc_is_zero_filled(void **state)
{
	for (size_t n = 1; n < 5000; n = n * 3 + 1) {
		uint8_t *p = ts_secure_alloc(n);

		assert_non_null(p);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(p[i], 0);
		memset(p, 0x5a, n);
		ts_secure_free(p);
	}
	ts_secure_free(NULL);
}

static void cleanup_attribute_frees_secure_memory(void **state)
{
	_ts_cleanup_secure_ uint8_t *p = ts_secure_alloc(32);

	assert_non_null(p);
	p[31] = 1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(append_writes_big_endian_integers),
		cmocka_unit_test(growth_keeps_contents),
		cmocka_unit_test(reserve_returns_zeroed_room_and_grows_len),
		cmocka_unit_test(sizes_past_256_mib_are_refused_without_allocating),
		cmocka_unit_test(free_resets_and_accepts_null),
		cmocka_unit_test(secure_alloc_is_zero_filled),
		cmocka_unit_test(cleanup_attribute_frees_secure_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
