/* test_packed.c — the packed batch reader (core/packed.c): every malformed shape named at its item, and the writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/packed.h"

#define MAX_ITEM TS_BLOB_MAX

/* Two items, "ab" and "", then "xyz": the well-formed array the shapes below break. */
static const uint8_t good[] = { 2, 0, 0, 0, 'a', 'b', 0, 0, 0, 0, 3, 0, 0, 0, 'x', 'y', 'z' };

static int parse(const uint8_t *p, size_t len, size_t expect, ts_batch_item *items, size_t *n, ts_packed_status *st)
{
	return ts_packed_parse(p, len, TS_BATCH_MAX, MAX_ITEM, expect, items, n, st);
}

static void a_well_formed_array_gives_each_item_in_place(void **state)
{
	ts_batch_item items[3];
	ts_packed_status st;
	size_t n = 0;

	assert_int_equal(parse(good, sizeof(good), 0, NULL, &n, &st), 0);
	assert_int_equal(n, 3);
	assert_int_equal(st.err, TS_PACKED_OK);
	assert_int_equal(parse(good, sizeof(good), 0, items, &n, &st), 0);
	assert_ptr_equal(items[0].blob, good + 4);
	assert_int_equal(items[0].len, 2);
	assert_int_equal(items[1].len, 0);
	assert_ptr_equal(items[2].blob, good + 14);
	assert_int_equal(items[2].len, 3);
	/* A reply of exactly the count expected. */
	assert_int_equal(parse(good, sizeof(good), 3, items, &n, &st), 0);
	assert_int_equal(n, 3);
}

static void zero_items_are_refused(void **state)
{
	ts_packed_status st;
	char msg[128];
	size_t n = 99;

	assert_int_equal(parse(good, 0, 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_EMPTY);
	assert_int_equal(n, 99);   /* set only on success */
	ts_packed_message(&st, msg, sizeof(msg));
	assert_non_null(strstr(msg, "no items"));
}

static void a_short_length_names_its_item(void **state)
{
	ts_packed_status st;
	char msg[128];
	size_t n;

	/* The array ends 1, 2 and 3 bytes into item 1's length (after item 0 of 6 bytes). */
	for (size_t cut = 1; cut < 4; cut++) {
		assert_int_equal(parse(good, 6 + cut, 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
		assert_int_equal(st.err, TS_PACKED_SHORT_LENGTH);
		assert_int_equal(st.idx, 1);
		assert_int_equal(st.n, cut);
	}
	assert_int_equal(parse(good, 2, 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_SHORT_LENGTH);
	assert_int_equal(st.idx, 0);
	ts_packed_message(&st, msg, sizeof(msg));
	assert_string_equal(msg, "item 0: length cut short (2 of its 4 bytes)");
}

static void a_length_past_the_end_names_its_item(void **state)
{
	uint8_t bad[sizeof(good)];
	ts_packed_status st;
	char msg[128];
	size_t n;

	/* Item 2 cut one byte short, and item 2 claiming one byte more than is left. */
	assert_int_equal(parse(good, sizeof(good) - 1, 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_PAST_END);
	assert_int_equal(st.idx, 2);
	memcpy(bad, good, sizeof(bad));
	bad[10] = 4;
	assert_int_equal(parse(bad, sizeof(bad), 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_PAST_END);
	assert_int_equal(st.idx, 2);
	assert_int_equal(st.n, 4);
	ts_packed_message(&st, msg, sizeof(msg));
	assert_string_equal(msg, "item 2: length 4 runs past the end of the array (3 bytes left)");
	/* A length of 2^32 - 1 on a short array: no overflow, the same error. */
	bad[10] = bad[11] = bad[12] = bad[13] = 0xff;
	assert_int_equal(ts_packed_parse(bad, sizeof(bad), TS_BATCH_MAX, UINT32_MAX, 0, NULL, &n, &st),
	                 -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_PAST_END);
	assert_int_equal(st.idx, 2);
}

static void trailing_bytes_are_refused(void **state)
{
	uint8_t more[sizeof(good) + 5];
	ts_packed_status st;
	char msg[128];
	size_t n;

	memcpy(more, good, sizeof(good));
	memset(more + sizeof(good), 0, 5);
	/* A reply of 3 items with bytes after them (here one more empty item and a byte). */
	assert_int_equal(parse(more, sizeof(more), 3, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_TRAILING);
	assert_int_equal(st.idx, 3);
	assert_int_equal(st.n, 5);
	ts_packed_message(&st, msg, sizeof(msg));
	assert_string_equal(msg, "5 trailing bytes after the last of 3 items");
	/* A request with 1..3 bytes after its last item: item 3's length is cut short. */
	assert_int_equal(parse(more, sizeof(good) + 3, 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_SHORT_LENGTH);
	assert_int_equal(st.idx, 3);
	/* A reply with fewer items than asked for. */
	assert_int_equal(parse(good, sizeof(good), 4, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_MISSING);
	assert_int_equal(st.idx, 3);
}

static void too_many_items_are_a_limit(void **state)
{
	uint8_t *p = calloc(TS_BATCH_MAX + 1, TS_PACKED_LEN_BYTES);
	ts_packed_status st;
	char msg[128];
	size_t n = 0;

	assert_non_null(p);
	/* TS_BATCH_MAX empty items pass; one more is refused before it is read. */
	assert_int_equal(parse(p, (size_t)TS_BATCH_MAX * TS_PACKED_LEN_BYTES, 0, NULL, &n, &st), 0);
	assert_int_equal(n, TS_BATCH_MAX);
	assert_int_equal(parse(p, (size_t)(TS_BATCH_MAX + 1) * TS_PACKED_LEN_BYTES, 0, NULL, &n, &st), -TS_E_LIMIT);
	assert_int_equal(st.err, TS_PACKED_TOO_MANY);
	assert_int_equal(st.idx, TS_BATCH_MAX);
	ts_packed_message(&st, msg, sizeof(msg));
	assert_string_equal(msg, "more than 100000 items in one batch");
	/* Even one byte after the last allowed item is one item too many. */
	assert_int_equal(parse(p, (size_t)TS_BATCH_MAX * TS_PACKED_LEN_BYTES + 1, 0, NULL, &n, &st), -TS_E_LIMIT);
	free(p);
}

static void an_oversized_item_names_its_index(void **state)
{
	size_t len = 2 * (TS_PACKED_LEN_BYTES + MAX_ITEM) + TS_PACKED_LEN_BYTES + 1;
	uint8_t *p = calloc(1, len);
	ts_packed_status st;
	char msg[128];
	size_t n = 0;

	assert_non_null(p);
	/* Item 0 of the largest length passes; item 1 one byte longer is named, with the bound. */
	ts_packed_put_len(p, MAX_ITEM);
	ts_packed_put_len(p + TS_PACKED_LEN_BYTES + MAX_ITEM, MAX_ITEM + 1);
	assert_int_equal(parse(p, len, 0, NULL, &n, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(st.err, TS_PACKED_OVERSIZED);
	assert_int_equal(st.idx, 1);
	assert_int_equal(st.n, MAX_ITEM + 1);
	ts_packed_message(&st, msg, sizeof(msg));
	assert_string_equal(msg, "item 1: length 65607 is over the largest, 65606 bytes");
	free(p);
}

static void the_writer_makes_what_the_reader_reads(void **state)
{
	uint8_t out[sizeof(good)], *w = out;

	assert_int_equal(ts_packed_size(3, 5), sizeof(good));
	assert_int_equal(ts_packed_size(SIZE_MAX / 2, SIZE_MAX / 2), 0);
	w += ts_packed_put(w, "ab", 2);
	w += ts_packed_put(w, NULL, 0);
	w += ts_packed_put(w, "xyz", 3);
	assert_int_equal(w - out, sizeof(good));
	assert_memory_equal(out, good, sizeof(good));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_well_formed_array_gives_each_item_in_place),
		cmocka_unit_test(zero_items_are_refused),
		cmocka_unit_test(a_short_length_names_its_item),
		cmocka_unit_test(a_length_past_the_end_names_its_item),
		cmocka_unit_test(trailing_bytes_are_refused),
		cmocka_unit_test(too_many_items_are_a_limit),
		cmocka_unit_test(an_oversized_item_names_its_index),
		cmocka_unit_test(the_writer_makes_what_the_reader_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
