/* test_blob.c — blob seal/parse/open and the text form: round trips, every flip and truncation refused, contexts bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"

static uint8_t key[TS_KEY_BYTES], other_key[TS_KEY_BYTES];
static const uint8_t vid[TS_VAULT_ID_BYTES] = "0123456789abcdef";
static const ts_kv ctx[] = { { "app", "org.example.Mail" }, { "purpose", "db" } };
#define N_CTX 2

static int setup(void **state)
{
	randombytes_buf(key, sizeof(key));
	randombytes_buf(other_key, sizeof(other_key));
	return 0;
}

/* Seal pt under key/ctx into b. */
static void seal(ts_buf *b, const uint8_t *pt, size_t len)
{
	assert_int_equal(ts_blob_seal(key, vid, 3, ctx, N_CTX, pt, len, b), 0);
}

/* Parse + open with key and the given context; returns the code, checks plaintext on success. */
static int open_with(const uint8_t *k, const uint8_t *b, size_t len, const ts_kv *c, size_t n,
                     const uint8_t *want, size_t want_len)
{
	ts_blob_view v;
	uint8_t *pt;
	int r;

	if ((r = ts_blob_parse(b, len, &v)) < 0)
		return r;
	pt = ts_secure_alloc(v.plaintext_len + 1);
	assert_non_null(pt);
	memset(pt, 0xa5, v.plaintext_len + 1);
	r = ts_blob_open(k, &v, c, n, pt);
	if (r == 0) {
		assert_int_equal(v.plaintext_len, want_len);
		if (want_len)
			assert_memory_equal(pt, want, want_len);
	} else {
		/* A failed open leaves no plaintext behind. */
		for (size_t i = 0; i < v.plaintext_len; i++)
			assert_int_equal(pt[i], 0);
	}
	ts_secure_free(pt);
	return r;
}

static void round_trip_for_sizes_from_empty_to_the_limit(void **state)
{
	static const size_t sizes[] = { 0, 1, 16, 32, 64, 1000, TS_PLAINTEXT_MAX };
	uint8_t *pt = malloc(TS_PLAINTEXT_MAX);

	assert_non_null(pt);
	randombytes_buf(pt, TS_PLAINTEXT_MAX);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		_ts_cleanup_buf_ ts_buf b = { 0 };
		ts_blob_view v;

		seal(&b, pt, sizes[i]);
		assert_int_equal(b.len, sizes[i] + TS_BLOB_OVERHEAD);
		assert_int_equal(ts_blob_parse(b.data, b.len, &v), 0);
		assert_int_equal(v.key_version, 3);
		assert_memory_equal(v.vault_id, vid, TS_VAULT_ID_BYTES);
		assert_int_equal(v.plaintext_len, sizes[i]);
		assert_memory_equal(b.data, "TSBL\x01\x01", 6);
		assert_int_equal(open_with(key, b.data, b.len, ctx, N_CTX, pt, sizes[i]), 0);
	}
	free(pt);
}

static void plaintext_over_the_limit_is_refused(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	uint8_t *pt = calloc(1, TS_PLAINTEXT_MAX + 1);

	assert_non_null(pt);
	assert_int_equal(ts_blob_seal(key, vid, 1, ctx, N_CTX, pt, TS_PLAINTEXT_MAX + 1, &b), -TS_E_LIMIT);
	assert_int_equal(b.len, 0);
	assert_int_equal(ts_blob_seal(key, vid, 0, ctx, N_CTX, pt, 1, &b), -TS_E_INVALID_ARGS);
	free(pt);
}

static void two_seals_of_the_same_input_differ(void **state)
{
	_ts_cleanup_buf_ ts_buf a = { 0 };
	_ts_cleanup_buf_ ts_buf b = { 0 };

	seal(&a, (const uint8_t *)"secret", 6);
	seal(&b, (const uint8_t *)"secret", 6);
	assert_int_equal(a.len, b.len);
	assert_memory_not_equal(a.data + 30, b.data + 30, TS_BLOB_NONCE_BYTES);
	assert_memory_not_equal(a.data + TS_BLOB_HEADER_BYTES, b.data + TS_BLOB_HEADER_BYTES, 6);
}

/* Whether blob b's nonce (offset 30, docs/FORMAT.md) is nonce n. */
static int nonce_is(const ts_buf *b, const uint8_t *n)
{
	return memcmp(b->data + 30, n, TS_BLOB_NONCE_BYTES) == 0;
}

/*
 * Nonces drawn in bulk (ts_blob_nonces_draw, RewrapBatch) for the seals
 * under one ts_blob_ctx: each seal takes the next, in order, none twice; a
 * copy for another thread takes none of them; once they are used up or
 * taken back, seals draw their own. Every blob opens; no two draws share
 * a nonce.
 */
static void bulk_nonces_are_each_used_once_in_order(void **state)
{
	enum { N = 3 };
	uint8_t ck[TS_BLOB_CTXKEY_BYTES], nonces[2 * N * TS_BLOB_NONCE_BYTES];
	const uint8_t *pt = (const uint8_t *)"data key";
	ts_buf b[5] = { { 0 } };
	ts_blob_ctx c, c2;
	size_t i, j;

	assert_int_equal(ts_blob_ctx_key(key, ck), 0);
	ts_blob_nonces_draw(nonces, N);
	ts_blob_nonces_draw(nonces + N * TS_BLOB_NONCE_BYTES, N);
	for (i = 0; i < 2 * N; i++)
		for (j = 0; j < i; j++)
			assert_memory_not_equal(nonces + i * TS_BLOB_NONCE_BYTES, nonces + j * TS_BLOB_NONCE_BYTES,
			                        TS_BLOB_NONCE_BYTES);

	ts_blob_ctx_init(&c, ctx, N_CTX);
	ts_blob_ctx_use_nonces(&c, nonces, 2);
	ts_blob_ctx_copy(&c2, &c);
	assert_int_equal(c2.n_nonces, 0);
	assert_int_equal(ts_blob_seal_ctx(key, ck, vid, 3, &c, pt, 8, &b[0]), 0);
	assert_int_equal(ts_blob_seal_ctx(key, ck, vid, 3, &c2, pt, 8, &b[1]), 0);
	assert_int_equal(ts_blob_seal_ctx(key, ck, vid, 3, &c, pt, 8, &b[2]), 0);
	assert_int_equal(ts_blob_seal_ctx(key, ck, vid, 3, &c, pt, 8, &b[3]), 0);
	assert_true(nonce_is(&b[0], nonces));
	assert_true(nonce_is(&b[2], nonces + TS_BLOB_NONCE_BYTES));
	/* The copy's and the one past the two given: their own, none of the drawn ones. */
	for (j = 0; j < 2 * N; j++) {
		assert_false(nonce_is(&b[1], nonces + j * TS_BLOB_NONCE_BYTES));
		assert_false(nonce_is(&b[3], nonces + j * TS_BLOB_NONCE_BYTES));
	}
	/* Given, then taken back before use. */
	ts_blob_ctx_use_nonces(&c, nonces + 2 * TS_BLOB_NONCE_BYTES, 1);
	ts_blob_ctx_use_nonces(&c, NULL, 0);
	assert_int_equal(ts_blob_seal_ctx(key, ck, vid, 3, &c, pt, 8, &b[4]), 0);
	assert_false(nonce_is(&b[4], nonces + 2 * TS_BLOB_NONCE_BYTES));
	assert_false(nonce_is(&b[4], b[3].data + 30));
	for (i = 0; i < 5; i++) {
		assert_int_equal(open_with(key, b[i].data, b[i].len, ctx, N_CTX, pt, 8), 0);
		ts_buf_free(&b[i]);
	}
	ts_blob_ctx_free(&c);
	ts_blob_ctx_free(&c2);
	sodium_memzero(ck, sizeof(ck));
}

static void every_single_byte_flip_is_rejected(void **state)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	_ts_cleanup_buf_ ts_buf b = { 0 };
	uint8_t pt[32];

	randombytes_buf(pt, sizeof(pt));
	seal(&b, pt, sizeof(pt));
	for (size_t i = 0; i < b.len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			int r;

			b.data[i] ^= masks[m];
			r = open_with(key, b.data, b.len, ctx, N_CTX, pt, sizeof(pt));
			if (r != -TS_E_BAD_BLOB && r != -TS_E_CONTEXT_MISMATCH && r != -TS_E_UNSUPPORTED_VERSION)
				fail_msg("flip %#x at byte %zu gave %d", masks[m], i, r);
			/* Only the version byte may claim another version. */
			if (r == -TS_E_UNSUPPORTED_VERSION)
				assert_int_equal(i, 4);
			/* Only the ctx check itself makes a context mismatch. */
			if (r == -TS_E_CONTEXT_MISMATCH)
				assert_true(i >= 26 && i < 30);
			b.data[i] ^= masks[m];
		}
	}
	assert_int_equal(open_with(key, b.data, b.len, ctx, N_CTX, pt, sizeof(pt)), 0);
}

static void every_truncation_is_rejected(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	uint8_t pt[40];

	randombytes_buf(pt, sizeof(pt));
	seal(&b, pt, sizeof(pt));
	for (size_t len = 0; len < b.len; len++) {
		/* An exact-size copy, so a read past len is a real overrun under ASan/valgrind. */
		uint8_t *t = malloc(len ? len : 1);
		int r;

		memcpy(t, b.data, len);
		r = open_with(key, t, len, ctx, N_CTX, pt, sizeof(pt));
		assert_true(r == -TS_E_BAD_BLOB);
		free(t);
	}
}

static void appended_bytes_are_rejected(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	seal(&b, (const uint8_t *)"k", 1);
	assert_int_equal(ts_buf_append_u8(&b, 0), 0);
	assert_int_equal(open_with(key, b.data, b.len, ctx, N_CTX, NULL, 0), -TS_E_BAD_BLOB);
}

static void wrong_context_gives_context_mismatch(void **state)
{
	static const ts_kv other_value[] = { { "app", "org.example.Evil" }, { "purpose", "db" } };
	static const ts_kv missing[] = { { "app", "org.example.Mail" } };
	static const ts_kv extra[] = { { "app", "org.example.Mail" }, { "purpose", "db" }, { "x", "y" } };
	static const ts_kv renamed[] = { { "app", "org.example.Mail" }, { "Purpose", "db" } };
	static const ts_kv reordered[] = { { "purpose", "db" }, { "app", "org.example.Mail" } };
	_ts_cleanup_buf_ ts_buf b = { 0 };

	seal(&b, (const uint8_t *)"data key", 8);
	assert_int_equal(open_with(key, b.data, b.len, other_value, 2, NULL, 0), -TS_E_CONTEXT_MISMATCH);
	assert_int_equal(open_with(key, b.data, b.len, missing, 1, NULL, 0), -TS_E_CONTEXT_MISMATCH);
	assert_int_equal(open_with(key, b.data, b.len, extra, 3, NULL, 0), -TS_E_CONTEXT_MISMATCH);
	assert_int_equal(open_with(key, b.data, b.len, renamed, 2, NULL, 0), -TS_E_CONTEXT_MISMATCH);
	assert_int_equal(open_with(key, b.data, b.len, NULL, 0, NULL, 0), -TS_E_CONTEXT_MISMATCH);
	/* The same entries in another order are the same context. */
	assert_int_equal(open_with(key, b.data, b.len, reordered, 2, (const uint8_t *)"data key", 8), 0);
}

static void malformed_context_at_open_is_invalid_args(void **state)
{
	static const ts_kv dup[] = { { "app", "a" }, { "app", "a" } };
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_blob_seal(key, vid, 1, dup, 2, (const uint8_t *)"x", 1, &b), -TS_E_INVALID_ARGS);
	assert_int_equal(b.len, 0);
	seal(&b, (const uint8_t *)"x", 1);
	assert_int_equal(open_with(key, b.data, b.len, dup, 2, NULL, 0), -TS_E_INVALID_ARGS);
}

static void wrong_key_never_opens(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	int r;

	seal(&b, (const uint8_t *)"x", 1);
	r = open_with(other_key, b.data, b.len, ctx, N_CTX, NULL, 0);
	assert_true(r == -TS_E_CONTEXT_MISMATCH || r == -TS_E_BAD_BLOB);
}

static void header_fields_are_checked_by_parse(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	ts_blob_view v;

	seal(&b, (const uint8_t *)"x", 1);
	b.data[0] = 'X';
	assert_int_equal(ts_blob_parse(b.data, b.len, &v), -TS_E_BAD_BLOB);
	b.data[0] = 'T';
	b.data[4] = 2;
	assert_int_equal(ts_blob_parse(b.data, b.len, &v), -TS_E_UNSUPPORTED_VERSION);
	/* A future version is named even when it is shorter than ours. */
	assert_int_equal(ts_blob_parse(b.data, 5, &v), -TS_E_UNSUPPORTED_VERSION);
	b.data[4] = 1;
	b.data[5] = 2;
	assert_int_equal(ts_blob_parse(b.data, b.len, &v), -TS_E_BAD_BLOB);
	b.data[5] = 1;
	memset(b.data + 22, 0, 4);
	assert_int_equal(ts_blob_parse(b.data, b.len, &v), -TS_E_BAD_BLOB);
}

static void text_form_round_trips_and_ignores_surrounding_space(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	_ts_cleanup_buf_ ts_buf back = { 0 };
	_ts_cleanup_buf_ ts_buf back2 = { 0 };
	char *text = NULL, *padded;
	size_t tl;

	seal(&b, (const uint8_t *)"data key", 8);
	assert_int_equal(ts_blob_to_text(b.data, b.len, &text), 0);
	assert_int_equal(strncmp(text, "tokenseal:v1:", 13), 0);
	tl = strlen(text);
	for (size_t i = 13; i < tl; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", text[i]));
	assert_int_equal(ts_blob_from_text(text, tl, &back), 0);
	assert_int_equal(back.len, b.len);
	assert_memory_equal(back.data, b.data, b.len);

	padded = malloc(tl + 8);
	snprintf(padded, tl + 8, " \t%s\r\n ", text);
	assert_int_equal(ts_blob_from_text(padded, strlen(padded), &back2), 0);
	assert_memory_equal(back2.data, b.data, b.len);
	free(padded);
	free(text);
}

static void text_form_refuses_other_versions_and_bad_base64(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	_ts_cleanup_buf_ ts_buf out = { 0 };
	char *text = NULL, *t;
	size_t tl;

	seal(&b, (const uint8_t *)"x", 1);
	assert_int_equal(ts_blob_to_text(b.data, b.len, &text), 0);
	tl = strlen(text);
	t = strdup(text);

	t[11] = '2';
	assert_int_equal(ts_blob_from_text(t, tl, &out), -TS_E_UNSUPPORTED_VERSION);
	assert_int_equal(ts_blob_from_text("tokenseal:v12:AAAA", 18, &out), -TS_E_UNSUPPORTED_VERSION);
	assert_int_equal(ts_blob_from_text("tokenseal:v0:AAAA", 17, &out), -TS_E_BAD_BLOB);
	assert_int_equal(ts_blob_from_text("tokenseal:vx:AAAA", 17, &out), -TS_E_BAD_BLOB);
	assert_int_equal(ts_blob_from_text("tokenseal:v1", 12, &out), -TS_E_BAD_BLOB);
	assert_int_equal(ts_blob_from_text("tokenseal:v1:", 13, &out), -TS_E_BAD_BLOB);
	assert_int_equal(ts_blob_from_text("Tokenseal:v1:AAAA", 17, &out), -TS_E_BAD_BLOB);
	assert_int_equal(ts_blob_from_text("", 0, &out), -TS_E_BAD_BLOB);
	strcpy(t, text);
	t[20] = '+';   /* standard base64, not url-safe */
	assert_int_equal(ts_blob_from_text(t, tl, &out), -TS_E_BAD_BLOB);
	strcpy(t, text);
	t[20] = ' ';   /* inner space */
	assert_int_equal(ts_blob_from_text(t, tl, &out), -TS_E_BAD_BLOB);
	assert_int_equal(out.len, 0);
	free(t);

	/* Padding and a non-zero leftover bit give a second spelling: both refused. */
	t = malloc(tl + 3);
	snprintf(t, tl + 3, "%s==", text);
	assert_int_equal(ts_blob_from_text(t, strlen(t), &out), -TS_E_BAD_BLOB);
	strcpy(t, text);
	/* 71 bytes -> 95 chars, the last one carries 2 bits of padding. */
	assert_int_equal((tl - 13) % 4, 3);
	t[tl - 1] = t[tl - 1] == 'A' ? 'B' : (char)(t[tl - 1] ^ 1);
	assert_int_equal(ts_blob_from_text(t, tl, &out), -TS_E_BAD_BLOB);
	free(t);
	free(text);
}

static void public_text_wrappers_match_the_core(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	char *text = NULL;
	uint8_t *bin = NULL;
	size_t bin_len = 0;

	seal(&b, (const uint8_t *)"abc", 3);
	assert_int_equal(ts_blob_encode_text(b.data, b.len, &text), 0);
	assert_int_equal(ts_blob_decode_text(text, &bin, &bin_len), 0);
	assert_int_equal(bin_len, b.len);
	assert_memory_equal(bin, b.data, b.len);
	assert_int_equal(ts_blob_decode_text("tokenseal:v9:AA", &bin, &bin_len), -TS_E_UNSUPPORTED_VERSION);
	assert_int_equal(ts_blob_decode_text(NULL, &bin, &bin_len), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_blob_encode_text(b.data, 0, &text), -TS_E_INVALID_ARGS);
	free(bin);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_for_sizes_from_empty_to_the_limit),
		cmocka_unit_test(plaintext_over_the_limit_is_refused),
		cmocka_unit_test(two_seals_of_the_same_input_differ),
		cmocka_unit_test(bulk_nonces_are_each_used_once_in_order),
		cmocka_unit_test(every_single_byte_flip_is_rejected),
		cmocka_unit_test(every_truncation_is_rejected),
		cmocka_unit_test(appended_bytes_are_rejected),
		cmocka_unit_test(wrong_context_gives_context_mismatch),
		cmocka_unit_test(malformed_context_at_open_is_invalid_args),
		cmocka_unit_test(wrong_key_never_opens),
		cmocka_unit_test(header_fields_are_checked_by_parse),
		cmocka_unit_test(text_form_round_trips_and_ignores_surrounding_space),
		cmocka_unit_test(text_form_refuses_other_versions_and_bad_base64),
		cmocka_unit_test(public_text_wrappers_match_the_core),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
