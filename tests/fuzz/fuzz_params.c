/* fuzz_params.c — libFuzzer harness: the CBOR params record decoder and its canonical re-encoding. */
#include <sodium.h>

#include "core/buf.h"
#include "core/params.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every entry the iterator lists must be readable through the typed getter of its type. */
static void check_entries(const ts_params *p)
{
	size_t i, n = ts_params_count(p), blen;
	const uint8_t *b;
	const char *key, *s;
	uint64_t u;
	char type;

	TS_FUZZ_CHECK(n <= 64);
	for (i = 0; i < n; i++) {
		TS_FUZZ_CHECK(ts_params_entry(p, i, &key, &type) == 0);
		TS_FUZZ_CHECK(key != NULL && strlen(key) <= 64);
		TS_FUZZ_CHECK(ts_params_has(p, key));
		switch (type) {
		case 'b':
			TS_FUZZ_CHECK(ts_params_get_bytes(p, key, &b, &blen) == 0);
			TS_FUZZ_CHECK(blen <= 65536);
			TS_FUZZ_CHECK(ts_params_get_str(p, key, &s) == -TS_E_CORRUPT);
			break;
		case 's':
			TS_FUZZ_CHECK(ts_params_get_str(p, key, &s) == 0);
			TS_FUZZ_CHECK(s != NULL && strlen(s) <= 4096);
			TS_FUZZ_CHECK(ts_params_get_uint(p, key, &u) == -TS_E_CORRUPT);
			break;
		case 'u':
			TS_FUZZ_CHECK(ts_params_get_uint(p, key, &u) == 0);
			TS_FUZZ_CHECK(ts_params_get_bytes(p, key, &b, &blen) == -TS_E_CORRUPT);
			break;
		default:
			TS_FUZZ_CHECK(!"unknown entry type");
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_params *p = NULL, *q = NULL;
	ts_buf enc1 = { 0 }, enc2 = { 0 };
	int r;

	r = ts_params_decode(data, size, &p);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_CORRUPT);
	if (r < 0) {
		TS_FUZZ_CHECK(p == NULL || !ts_fuzz_expect_valid());
		return 0;
	}
	check_entries(p);

	/* decode ∘ encode is the identity on what was accepted: the encoding is canonical. */
	TS_FUZZ_CHECK(ts_params_encode(p, &enc1) == 0);
	TS_FUZZ_CHECK(ts_params_decode(enc1.data, enc1.len, &q) == 0);
	TS_FUZZ_CHECK(ts_params_count(q) == ts_params_count(p));
	TS_FUZZ_CHECK(ts_params_encode(q, &enc2) == 0);
	TS_FUZZ_CHECK(enc1.len == enc2.len && memcmp(enc1.data, enc2.data, enc1.len) == 0);

	ts_buf_free(&enc2);
	ts_buf_free(&enc1);
	ts_params_free(q);
	ts_params_free(p);
	return 0;
}
