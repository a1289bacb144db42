/* fuzz_backoff.c — libFuzzer harness: the back-off side file (STATE/UID/NAME.backoff), read as hostile bytes. */
#include <stdio.h>

#include "core/backoff.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_backoff b, again;
	ts_buf out = { 0 };
	uint64_t wait;
	int r;

	r = ts_backoff_parse(data, size, &b);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_CORRUPT);
	TS_FUZZ_CHECK(b.n <= TS_BACKOFF_SOURCES);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0 && b.n > 0);
	if (r < 0) {
		TS_FUZZ_CHECK(b.n == 0);
		return 0;
	}
	/* What was kept is well-formed: it writes out and reads back the same. */
	TS_FUZZ_CHECK(ts_backoff_format(&b, &out) == 0);
	TS_FUZZ_CHECK(ts_backoff_parse(out.data, out.len, &again) == 0);
	TS_FUZZ_CHECK(again.n == b.n);
	TS_FUZZ_CHECK(b.n == 0 || memcmp(b.s, again.s, b.n * sizeof(b.s[0])) == 0);
	ts_buf_free(&out);
	/* Counting on top of whatever was read stays within the table and the cap. */
	for (size_t i = 0; i < b.n; i++) {
		ts_backoff_failed(&b, b.s[i].source, 1000000, 1, 300);
		TS_FUZZ_CHECK(ts_backoff_check(&b, b.s[i].source, 1000000, 300, &wait) == 0 || wait <= 300);
	}
	/* New sources, once the file's own entries wait (the full-table paths of counter()). */
	for (int i = 0; i < 3; i++) {
		char src[TS_BACKOFF_SOURCE_MAX];

		snprintf(src, sizeof(src), "uid:%d", 7000 + i);
		ts_backoff_failed(&b, src, 0, 0, 300);
		TS_FUZZ_CHECK(b.n <= TS_BACKOFF_SOURCES);
	}
	return 0;
}
