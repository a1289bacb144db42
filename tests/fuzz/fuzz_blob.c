/* fuzz_blob.c — libFuzzer harness: binary blob parser, decryption with a fixed key, and the text round trip. */
#include <sodium.h>

#include "core/blob.h"
#include "core/buf.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The view must point inside the input and agree with its own lengths. */
static void check_view(const uint8_t *data, size_t size, const ts_blob_view *v)
{
	const uint8_t *end = data + size;

	TS_FUZZ_CHECK(size >= TS_BLOB_OVERHEAD);
	TS_FUZZ_CHECK(v->header == data);
	TS_FUZZ_CHECK(v->ctx_check >= data && v->ctx_check + TS_BLOB_CTXCHECK_BYTES <= end);
	TS_FUZZ_CHECK(v->nonce >= data && v->nonce + TS_BLOB_NONCE_BYTES <= end);
	TS_FUZZ_CHECK(v->ciphertext_len >= TS_BLOB_TAG_BYTES);
	TS_FUZZ_CHECK(v->ciphertext >= data + TS_BLOB_HEADER_BYTES);
	TS_FUZZ_CHECK(v->ciphertext + v->ciphertext_len <= end);
	TS_FUZZ_CHECK(v->plaintext_len == v->ciphertext_len - TS_BLOB_TAG_BYTES);
	TS_FUZZ_CHECK(v->plaintext_len <= TS_PLAINTEXT_MAX);
}

static void check_open(const ts_blob_view *v)
{
	uint8_t *pt;
	size_t i;
	int r;

	/* Exactly plaintext_len bytes (+1 so malloc(0) is not special): ASan sees any overrun. */
	if ((pt = malloc(v->plaintext_len + 1)) == NULL)
		abort();
	memset(pt, 0xa5, v->plaintext_len + 1);
	r = ts_blob_open(ts_fuzz_blob_key, v, ts_fuzz_ctx, TS_FUZZ_N_CTX, pt);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_BAD_BLOB || r == -TS_E_CONTEXT_MISMATCH);
	if (r < 0) {
		/* The contract: a failed open leaves no partial plaintext behind. */
		for (i = 0; i < v->plaintext_len; i++)
			TS_FUZZ_CHECK(pt[i] == 0 || pt[i] == 0xa5);
	}
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	free(pt);
}

static void check_text_round_trip(const uint8_t *data, size_t size)
{
	ts_buf back = { 0 };
	char *text = NULL;
	size_t tlen;
	int r;

	r = ts_blob_to_text(data, size, &text);
	TS_FUZZ_CHECK(r == 0 && text != NULL);
	tlen = strlen(text);
	TS_FUZZ_CHECK(tlen > strlen(TS_BLOB_TEXT_PREFIX));
	TS_FUZZ_CHECK(memcmp(text, TS_BLOB_TEXT_PREFIX, strlen(TS_BLOB_TEXT_PREFIX)) == 0);
	r = ts_blob_from_text(text, tlen, &back);
	TS_FUZZ_CHECK(r == 0);
	TS_FUZZ_CHECK(back.len == size && memcmp(back.data, data, size) == 0);
	ts_buf_free(&back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_blob_view v;
	int r;

	memset(&v, 0, sizeof(v));
	r = ts_blob_parse(data, size, &v);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_BAD_BLOB || r == -TS_E_UNSUPPORTED_VERSION);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	if (r < 0)
		return 0;
	check_view(data, size, &v);
	check_open(&v);
	check_text_round_trip(data, size);
	return 0;
}
