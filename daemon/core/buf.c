/* buf.c — growable byte buffers for public bytes, and the secure allocator every secret goes through. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"

/* Nothing tokenseal builds comes near this; a larger request is a bug or an attack. */
#define TS_BUF_MAX ((size_t)256 << 20)

static int ts_buf_grow(ts_buf *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (n > TS_BUF_MAX || b->len > TS_BUF_MAX - n)
		return -TS_E_LIMIT;
	need = b->len + n;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > TS_BUF_MAX / 2 ? TS_BUF_MAX : cap * 2;
	/*
	 * Not realloc(): the old block may hold ciphertext next to key material
	 * handled by the same caller, and realloc would free it unwiped.
	 */
	if ((p = malloc(cap)) == NULL)
		return -TS_E_NOMEM;
	if (b->data) {
		memcpy(p, b->data, b->len);
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int ts_buf_append(ts_buf *b, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if ((r = ts_buf_grow(b, n)) < 0)
		return r;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int ts_buf_append_u8(ts_buf *b, uint8_t v)
{
	return ts_buf_append(b, &v, 1);
}

int ts_buf_append_be32(ts_buf *b, uint32_t v)
{
	uint8_t p[4];

	ts_put_be32(p, v);
	return ts_buf_append(b, p, sizeof(p));
}

int ts_buf_append_be64(ts_buf *b, uint64_t v)
{
	int r;

	if ((r = ts_buf_append_be32(b, (uint32_t)(v >> 32))) < 0)
		return r;
	return ts_buf_append_be32(b, (uint32_t)v);
}

uint8_t *ts_buf_reserve(ts_buf *b, size_t n)
{
	uint8_t *p;

	/* Even for n == 0 the caller gets a valid pointer. */
	if (ts_buf_grow(b, n ? n : 1) < 0)
		return NULL;
	p = b->data + b->len;
	memset(p, 0, n);
	b->len += n;
	return p;
}

void ts_buf_free(ts_buf *b)
{
	if (!b)
		return;
	if (b->data) {
		sodium_memzero(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}

void *ts_secure_alloc(size_t n)
{
	void *p;

	/* Idempotent and thread-safe: every entry point may be the first one. */
	if (sodium_init() < 0)
		return NULL;
	if ((p = sodium_malloc(n)) == NULL)
		return NULL;
	/* sodium_malloc fills with 0xdb; callers rely on zeroed memory. */
	memset(p, 0, n);
	return p;
}

void ts_secure_free(void *p)
{
	/* sodium_free wipes the region and checks the canary; accepts NULL. */
	sodium_free(p);
}
