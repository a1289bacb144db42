/* cborutil.c — the core's one CBOR reader (a structural pre-check, then libcbor) and small writer helpers. */
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/internal.h"

/* More containers than any tokenseal record has (the vault header is 3 deep). */
#define TS_CBOR_MAX_DEPTH 8

/*
 * Walk one item at b[*pos]. Every count is checked against the bytes that
 * remain (each item takes at least one byte), so a 5-byte input can never
 * announce a 2^32-entry array: libcbor allocates the item table of a
 * definite array or map up front, before reading a single entry.
 */
static int ts_cbor_walk(const uint8_t *b, size_t len, size_t *pos, unsigned depth, unsigned max_depth)
{
	uint8_t ib, major, ai;
	uint64_t arg = 0, i, items;
	size_t n, k;

	if (*pos >= len)
		return -1;
	ib = b[(*pos)++];
	major = ib >> 5;
	ai = ib & 0x1f;
	if (ai < 24) {
		arg = ai;
	} else if (ai <= 27) {
		n = (size_t)1 << (ai - 24);
		if (len - *pos < n)
			return -1;
		for (k = 0; k < n; k++)
			arg = arg << 8 | b[(*pos)++];
	} else {
		/* 28..30 are reserved, 31 is an indefinite length: neither is ours. */
		return -1;
	}

	switch (major) {
	case 0: /* unsigned integer */
		return 0;
	case 2: /* byte string */
	case 3: /* text string */
		if (arg > len - *pos)
			return -1;
		*pos += (size_t)arg;
		return 0;
	case 4: /* array */
	case 5: /* map */
		if (depth >= max_depth)
			return -1;
		if (arg > len - *pos)
			return -1;
		items = major == 5 ? arg * 2 : arg;
		if (items > len - *pos)
			return -1;
		for (i = 0; i < items; i++)
			if (ts_cbor_walk(b, len, pos, depth + 1, max_depth) < 0)
				return -1;
		return 0;
	default:
		/* Negative integers, tags, floats and simple values appear in no tokenseal record. */
		return -1;
	}
}

cbor_item_t *ts_cbor_load(const uint8_t *b, size_t len, unsigned max_depth)
{
	struct cbor_load_result res;
	cbor_item_t *item;
	size_t pos = 0;

	if (!b || len == 0)
		return NULL;
	if (max_depth > TS_CBOR_MAX_DEPTH)
		max_depth = TS_CBOR_MAX_DEPTH;
	if (ts_cbor_walk(b, len, &pos, 0, max_depth) < 0 || pos != len)
		return NULL;
	memset(&res, 0, sizeof(res));
	item = cbor_load(b, len, &res);
	if (!item)
		return NULL;
	/* Trailing bytes would be an unauthenticated hiding place: the whole input must be one item. */
	if (res.error.code != CBOR_ERR_NONE || res.read != len) {
		cbor_decref(&item);
		return NULL;
	}
	return item;
}

cbor_item_t *ts_cbor_build_uint(uint64_t v)
{
	if (v <= UINT8_MAX)
		return cbor_build_uint8((uint8_t)v);
	if (v <= UINT16_MAX)
		return cbor_build_uint16((uint16_t)v);
	if (v <= UINT32_MAX)
		return cbor_build_uint32((uint32_t)v);
	return cbor_build_uint64(v);
}

int ts_cbor_map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
	cbor_item_t *k = NULL;
	int r = -TS_E_NOMEM;

	if (!value)
		goto out;
	if ((k = cbor_build_string(key)) == NULL)
		goto out;
	if (!cbor_map_add(map, (struct cbor_pair){ .key = k, .value = value }))
		goto out;
	r = 0;
out:
	/* cbor_map_add took its own references. */
	if (k)
		cbor_decref(&k);
	if (value)
		cbor_decref(&value);
	return r;
}

int ts_cbor_serialize(const cbor_item_t *item, ts_buf *out)
{
	unsigned char *p = NULL;
	size_t cap = 0, n;
	int r;

	n = cbor_serialize_alloc(item, &p, &cap);
	if (n == 0 || !p) {
		free(p);
		return -TS_E_NOMEM;
	}
	r = ts_buf_append(out, p, n);
	free(p);
	return r;
}
