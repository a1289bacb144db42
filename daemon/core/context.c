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

/* Insertion sort for the few entries contexts usually have; qsort above that. */
static void ts_ctx_sort(struct ts_ctx_entry *e, size_t n)
{
	size_t i, j;

	if (n > 8) {
		qsort(e, n, sizeof(e[0]), ts_ctx_entry_cmp);
		return;
	}
	for (i = 1; i < n; i++) {
		struct ts_ctx_entry x = e[i];

		for (j = i; j > 0 && ts_ctx_entry_cmp(&e[j - 1], &x) > 0; j--)
			e[j] = e[j - 1];
		e[j] = x;
	}
}

/* Check every entry, sort, refuse duplicates; *ret_len is the length of the encoding. */
static int ts_ctx_prepare(const ts_kv *kv, size_t n, struct ts_ctx_entry *e, size_t *ret_len)
{
	size_t i, len = 4;

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
		/* Bounded by the limits above: at most TS_CONTEXT_ENCODED_MAX in all. */
		len += 8 + e[i].key_len + e[i].value_len;
	}
	if (n > 1)
		ts_ctx_sort(e, n);
	/* After sorting, duplicates are neighbours. */
	for (i = 1; i < n; i++)
		if (ts_ctx_entry_cmp(&e[i - 1], &e[i]) == 0)
			return -TS_E_INVALID_ARGS;
	*ret_len = len;
	return 0;
}

/* Write the encoding of prepared entries to dst (exactly the length ts_ctx_prepare gave). */
static void ts_ctx_write(const struct ts_ctx_entry *e, size_t n, uint8_t *dst)
{
	size_t i;

	ts_put_be32(dst, (uint32_t)n);
	dst += 4;
	for (i = 0; i < n; i++) {
		ts_put_be32(dst, (uint32_t)e[i].key_len);
		memcpy(dst + 4, e[i].key, e[i].key_len);
		dst += 4 + e[i].key_len;
		ts_put_be32(dst, (uint32_t)e[i].value_len);
		memcpy(dst + 4, e[i].value, e[i].value_len);
		dst += 4 + e[i].value_len;
	}
}

int ts_context_encode(const ts_kv *kv, size_t n, ts_buf *out)
{
	struct ts_ctx_entry e[TS_CONTEXT_MAX_ENTRIES];
	size_t len;
	uint8_t *p;
	int r;

	if (!out)
		return -TS_E_INVALID_ARGS;
	if ((r = ts_ctx_prepare(kv, n, e, &len)) < 0)
		return r;
	/* Nothing is appended unless the whole encoding is. */
	if ((p = ts_buf_reserve(out, len)) == NULL)
		return -TS_E_NOMEM;
	ts_ctx_write(e, n, p);
	return 0;
}

int ts_context_encode_to(const ts_kv *kv, size_t n, uint8_t *dst, size_t cap, size_t *ret_len)
{
	struct ts_ctx_entry e[TS_CONTEXT_MAX_ENTRIES];
	size_t len;
	int r;

	if (!ret_len || (cap > 0 && !dst))
		return -TS_E_INVALID_ARGS;
	if ((r = ts_ctx_prepare(kv, n, e, &len)) < 0)
		return r;
	*ret_len = len;
	if (len > cap)
		return 1;
	ts_ctx_write(e, n, dst);
	return 0;
}

const char *ts_kv_find(const ts_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return kv[i].value;
	return NULL;
}
