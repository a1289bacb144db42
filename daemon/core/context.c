/* context.c — the canonical byte encoding of a caller's encryption context (bound to blobs as AAD). */
#include <stdlib.h>
#include <string.h>

#include "tokenseal.h"
#include "core/context.h"
#include "core/internal.h"

int ts_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0, k, len;
	uint32_t cp, min;

	while (i < n) {
		uint8_t c = s[i];

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			len = 3, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			len = 4, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		/* Overlong forms would give one string two encodings, hence two AADs. */
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

struct ts_ctx_entry {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/* Plain bytewise order; a proper prefix sorts first. */
static int ts_ctx_entry_cmp(const void *a, const void *b)
{
	const struct ts_ctx_entry *x = a, *y = b;
	size_t m = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, m);

	if (c != 0)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

int ts_context_encode(const ts_kv *kv, size_t n, ts_buf *out)
{
	struct ts_ctx_entry e[TS_CONTEXT_MAX_ENTRIES];
	size_t i, orig_len = out->len;
	int r;

	if (n > TS_CONTEXT_MAX_ENTRIES || (n > 0 && !kv))
		return -TS_E_INVALID_ARGS;
	for (i = 0; i < n; i++) {
		if (!kv[i].key || !kv[i].value)
			return -TS_E_INVALID_ARGS;
		/* strnlen: a missing NUL must not send us past the limit. */
		e[i].key = kv[i].key;
		e[i].key_len = strnlen(kv[i].key, TS_CONTEXT_KEY_MAX + 1);
		e[i].value = kv[i].value;
		e[i].value_len = strnlen(kv[i].value, TS_CONTEXT_VALUE_MAX + 1);
		if (e[i].key_len == 0 || e[i].key_len > TS_CONTEXT_KEY_MAX ||
		    e[i].value_len > TS_CONTEXT_VALUE_MAX ||
		    !ts_utf8_valid((const uint8_t *)e[i].key, e[i].key_len) ||
		    !ts_utf8_valid((const uint8_t *)e[i].value, e[i].value_len))
			return -TS_E_INVALID_ARGS;
	}
	if (n > 1)
		qsort(e, n, sizeof(e[0]), ts_ctx_entry_cmp);
	/* After sorting, duplicates are neighbours. */
	for (i = 1; i < n; i++)
		if (ts_ctx_entry_cmp(&e[i - 1], &e[i]) == 0)
			return -TS_E_INVALID_ARGS;

	if ((r = ts_buf_append_be32(out, (uint32_t)n)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = ts_buf_append_be32(out, (uint32_t)e[i].key_len)) < 0 ||
		    (r = ts_buf_append(out, e[i].key, e[i].key_len)) < 0 ||
		    (r = ts_buf_append_be32(out, (uint32_t)e[i].value_len)) < 0 ||
		    (r = ts_buf_append(out, e[i].value, e[i].value_len)) < 0)
			goto out;
	}
	r = 0;
out:
	/* Never leave a half-written encoding behind in the caller's buffer. */
	if (r < 0)
		out->len = orig_len;
	return r;
}
