/* fuzz_context.c — libFuzzer harness: canonical encoding of a caller's context (NUL-separated key/value input). */
#include <sodium.h>

#include "core/buf.h"
#include "core/context.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF), written independently of the core so the two can disagree.
 */
static int utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp, min;

	while (i < n) {
		uint8_t c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* Walk an encoding that was accepted: count, then sorted, unique (len, key, len, value) entries, nothing after. */
static void check_encoding(const ts_buf *e, size_t n)
{
	const uint8_t *p = e->data, *end = e->data + e->len, *prev = NULL;
	size_t prev_len = 0, i, kl, vl, m;

	TS_FUZZ_CHECK(e->len >= 4);
	TS_FUZZ_CHECK(ts_be32(p) == n);
	p += 4;
	for (i = 0; i < n; i++) {
		TS_FUZZ_CHECK(end - p >= 4);
		kl = ts_be32(p);
		p += 4;
		TS_FUZZ_CHECK(kl > 0 && kl <= (size_t)(end - p));
		if (prev != NULL) {
			m = prev_len < kl ? prev_len : kl;
			int c = memcmp(prev, p, m);
			TS_FUZZ_CHECK(c < 0 || (c == 0 && prev_len < kl));
		}
		prev = p, prev_len = kl;
		p += kl;
		TS_FUZZ_CHECK(end - p >= 4);
		vl = ts_be32(p);
		p += 4;
		TS_FUZZ_CHECK(vl <= (size_t)(end - p));
		p += vl;
	}
	TS_FUZZ_CHECK(p == end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_buf enc = { 0 }, enc_rev = { 0 };
	ts_kv *kv = NULL, *rev = NULL;
	char *copy = NULL, *s;
	size_t n_str = 0, n, i, j;
	int r, dup = 0, bad = 0;

	/* A copy with a terminating NUL, so the last string ends too. */
	if ((copy = malloc(size + 1)) == NULL)
		abort();
	if (size)
		memcpy(copy, data, size);
	copy[size] = '\0';
	for (i = 0; i <= size; i++)
		n_str += copy[i] == '\0';
	/* No bytes at all is the empty context (valid); otherwise at least one key. */
	n = size == 0 ? 0 : (n_str + 1) / 2;
	if ((kv = calloc(n + 1, sizeof(*kv))) == NULL || (rev = calloc(n + 1, sizeof(*rev))) == NULL)
		abort();
	/* Strings alternate key, value; an odd last key gets the empty value. */
	for (s = copy, i = 0; i < 2 * n && i < n_str; i++, s += strlen(s) + 1) {
		if (i % 2 == 0)
			kv[i / 2].key = s, kv[i / 2].value = "";
		else
			kv[i / 2].value = s;
	}

	/* The independent verdict: which inputs the contract says must be refused. */
	for (i = 0; i < n; i++) {
		if (kv[i].key[0] == '\0' ||
		    !utf8_valid((const uint8_t *)kv[i].key, strlen(kv[i].key)) ||
		    !utf8_valid((const uint8_t *)kv[i].value, strlen(kv[i].value)))
			bad = 1;
		for (j = 0; j < i; j++)
			dup |= strcmp(kv[i].key, kv[j].key) == 0;
	}

	r = ts_context_encode(kv, n, &enc);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_INVALID_ARGS);
	if (dup || bad)
		TS_FUZZ_CHECK(r == -TS_E_INVALID_ARGS);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	if (r == 0) {
		TS_FUZZ_CHECK(n <= TS_CONTEXT_MAX_ENTRIES);
		for (i = 0; i < n; i++)
			TS_FUZZ_CHECK(strlen(kv[i].key) <= TS_CONTEXT_KEY_MAX &&
			              strlen(kv[i].value) <= TS_CONTEXT_VALUE_MAX);
		check_encoding(&enc, n);
		/* Canonical: the order the caller listed the entries in does not matter. */
		for (i = 0; i < n; i++)
			rev[i] = kv[n - 1 - i];
		TS_FUZZ_CHECK(ts_context_encode(rev, n, &enc_rev) == 0);
		TS_FUZZ_CHECK(enc.len == enc_rev.len && memcmp(enc.data, enc_rev.data, enc.len) == 0);
	}
	ts_buf_free(&enc_rev);
	ts_buf_free(&enc);
	free(rev);
	free(kv);
	free(copy);
	return 0;
}
