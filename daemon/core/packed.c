/* packed.c — a batch as one byte array: the reader every packed request and reply goes through, and its writer. */
#include <stdio.h>
#include <string.h>

#include "tokenseal.h"
#include "packed.h"

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fail(ts_packed_status *st, ts_packed_error err, size_t idx, size_t n, size_t limit)
{
	*st = (ts_packed_status){ .err = err, .idx = idx, .n = n, .limit = limit };
	return err == TS_PACKED_TOO_MANY ? -TS_E_LIMIT : -TS_E_INVALID_ARGS;
}

int ts_packed_parse(const uint8_t *p, size_t len, size_t max_items, size_t max_item, size_t expect,
                    ts_batch_item *items, size_t *ret_n, ts_packed_status *st)
{
	size_t off = 0, i = 0, left, item;

	*st = (ts_packed_status){ .err = TS_PACKED_OK };
	if (expect > 0)
		max_items = expect;
	while (off < len) {
		left = len - off;
		if (expect > 0 && i == expect)
			return fail(st, TS_PACKED_TRAILING, i, left, expect);
		if (i == max_items)
			return fail(st, TS_PACKED_TOO_MANY, i, left, max_items);
		if (left < TS_PACKED_LEN_BYTES)
			return fail(st, TS_PACKED_SHORT_LENGTH, i, left, TS_PACKED_LEN_BYTES);
		item = get_le32(p + off);
		left -= TS_PACKED_LEN_BYTES;
		if (item > max_item)
			return fail(st, TS_PACKED_OVERSIZED, i, item, max_item);
		if (item > left)
			return fail(st, TS_PACKED_PAST_END, i, item, left);
		off += TS_PACKED_LEN_BYTES;
		if (items)
			items[i] = (ts_batch_item){ p + off, item };
		off += item;
		i++;
	}
	if (i == 0)
		return fail(st, TS_PACKED_EMPTY, 0, 0, 0);
	if (expect > 0 && i < expect)
		return fail(st, TS_PACKED_MISSING, i, 0, expect);
	*ret_n = i;
	return 0;
}

void ts_packed_message(const ts_packed_status *st, char *buf, size_t size)
{
	switch (st->err) {
	case TS_PACKED_OK:
		snprintf(buf, size, "well formed");
		break;
	case TS_PACKED_EMPTY:
		snprintf(buf, size, "no items: a packed batch holds at least one");
		break;
	case TS_PACKED_TOO_MANY:
		snprintf(buf, size, "more than %zu items in one batch", st->limit);
		break;
	case TS_PACKED_SHORT_LENGTH:
		snprintf(buf, size, "item %zu: length cut short (%zu of its %d bytes)", st->idx, st->n, TS_PACKED_LEN_BYTES);
		break;
	case TS_PACKED_PAST_END:
		snprintf(buf, size, "item %zu: length %zu runs past the end of the array (%zu bytes left)", st->idx, st->n,
		         st->limit);
		break;
	case TS_PACKED_OVERSIZED:
		snprintf(buf, size, "item %zu: length %zu is over the largest, %zu bytes", st->idx, st->n, st->limit);
		break;
	case TS_PACKED_MISSING:
		snprintf(buf, size, "item %zu: missing (the array ends after %zu of %zu items)", st->idx, st->idx, st->limit);
		break;
	case TS_PACKED_TRAILING:
		snprintf(buf, size, "%zu trailing bytes after the last of %zu items", st->n, st->limit);
		break;
	default:
		snprintf(buf, size, "malformed packed batch");
		break;
	}
}

size_t ts_packed_size(size_t n, size_t total)
{
	if (n > (SIZE_MAX - total) / TS_PACKED_LEN_BYTES)
		return 0;
	return n * TS_PACKED_LEN_BYTES + total;
}

void ts_packed_put_len(uint8_t *dst, size_t len)
{
	dst[0] = (uint8_t)len;
	dst[1] = (uint8_t)(len >> 8);
	dst[2] = (uint8_t)(len >> 16);
	dst[3] = (uint8_t)(len >> 24);
}

size_t ts_packed_put(uint8_t *dst, const void *data, size_t len)
{
	ts_packed_put_len(dst, len);
	if (len)
		memcpy(dst + TS_PACKED_LEN_BYTES, data, len);
	return TS_PACKED_LEN_BYTES + len;
}
