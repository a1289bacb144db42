/* fuzz_packed.c — libFuzzer harness: the packed batch reader (core/packed.c), as a request and as a reply, and the writer. */
#include <sodium.h>

#include "core/blob.h"
#include "core/packed.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_batch_item *items;
	ts_packed_status st;
	uint8_t *copy, *again, *w;
	size_t n = 0, total = 0, m = 0;
	int r;

	/* An exactly sized copy: any read past the end shows. */
	if ((copy = malloc(size ? size : 1)) == NULL)
		abort();
	memcpy(copy, data, size);
	r = ts_packed_parse(copy, size, TS_BATCH_MAX, TS_BLOB_MAX, 0, NULL, &n, &st);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_INVALID_ARGS || r == -TS_E_LIMIT);
	TS_FUZZ_CHECK((r == 0) == (st.err == TS_PACKED_OK));
	if (r < 0) {
		char msg[160];

		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		TS_FUZZ_CHECK((r == -TS_E_LIMIT) == (st.err == TS_PACKED_TOO_MANY));
		ts_packed_message(&st, msg, sizeof(msg));
		free(copy);
		return 0;
	}
	TS_FUZZ_CHECK(n >= 1 && n <= TS_BATCH_MAX);
	if ((items = calloc(n, sizeof(*items))) == NULL)
		abort();
	TS_FUZZ_CHECK(ts_packed_parse(copy, size, TS_BATCH_MAX, TS_BLOB_MAX, 0, items, &m, &st) == 0 && m == n);
	/* Every item inside the input, in order, back to back: the array consumed exactly. */
	for (size_t i = 0; i < n; i++) {
		const uint8_t *b = items[i].blob;

		TS_FUZZ_CHECK(items[i].len <= TS_BLOB_MAX);
		TS_FUZZ_CHECK(b >= copy + TS_PACKED_LEN_BYTES && b + items[i].len <= copy + size);
		TS_FUZZ_CHECK(b == copy + (i + 1) * TS_PACKED_LEN_BYTES + total);
		total += items[i].len;
	}
	TS_FUZZ_CHECK(ts_packed_size(n, total) == size);
	/* The same bytes as a reply of n items; n + 1 expected is one missing, n - 1 leaves bytes over. */
	TS_FUZZ_CHECK(ts_packed_parse(copy, size, TS_BATCH_MAX, TS_BLOB_MAX, n, NULL, &m, &st) == 0 && m == n);
	TS_FUZZ_CHECK(ts_packed_parse(copy, size, TS_BATCH_MAX, TS_BLOB_MAX, n + 1, NULL, &m, &st) < 0 &&
	              st.err == TS_PACKED_MISSING && st.idx == n);
	if (n > 1)
		TS_FUZZ_CHECK(ts_packed_parse(copy, size, TS_BATCH_MAX, TS_BLOB_MAX, n - 1, NULL, &m, &st) < 0 &&
		              st.err == TS_PACKED_TRAILING && st.idx == n - 1);
	/* The writer gives the input back byte for byte. */
	if ((again = malloc(size)) == NULL)
		abort();
	for (size_t i = 0, off = 0; i < n; i++) {
		w = again + off;
		off += ts_packed_put(w, items[i].blob, items[i].len);
	}
	TS_FUZZ_CHECK(memcmp(again, copy, size) == 0);
	/* With ts_fuzz_expect_valid, the ok-* seeds also hold real blobs (the fixed key's): each one parses. */
	if (ts_fuzz_expect_valid())
		for (size_t i = 0; i < n; i++) {
			ts_blob_view bv;

			TS_FUZZ_CHECK(ts_blob_parse(items[i].blob, items[i].len, &bv) == 0);
		}
	free(again);
	free(items);
	free(copy);
	return 0;
}
