/* fuzz_blob_text.c — libFuzzer harness: the "tokenseal:v1:..." text form parser. */
#include <sodium.h>

#include "core/blob.h"
#include "core/buf.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_buf out = { 0 }, again = { 0 };
	ts_blob_view v;
	char *text, *canon = NULL;
	int r;

	/*
	 * An exactly sized copy, not NUL-terminated: the parser takes (ptr, len)
	 * and ASan reports any read past len.
	 */
	if ((text = malloc(size ? size : 1)) == NULL)
		abort();
	if (size)
		memcpy(text, data, size);
	r = ts_blob_from_text(text, size, &out);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_BAD_BLOB || r == -TS_E_UNSUPPORTED_VERSION);
	if (r < 0) {
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		goto out;
	}
	/* Text that decodes must still pass the binary parser before use. */
	r = ts_blob_parse(out.data, out.len, &v);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_BAD_BLOB || r == -TS_E_UNSUPPORTED_VERSION);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	/* Whatever decoded re-encodes to a text that decodes to the same bytes. */
	if (out.len > 0) {
		TS_FUZZ_CHECK(ts_blob_to_text(out.data, out.len, &canon) == 0);
		TS_FUZZ_CHECK(ts_blob_from_text(canon, strlen(canon), &again) == 0);
		TS_FUZZ_CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);
	}
out:
	ts_buf_free(&again);
	ts_buf_free(&out);
	free(canon);
	free(text);
	return 0;
}
