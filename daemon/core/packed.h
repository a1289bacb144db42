/* packed.h — a batch as one byte array: items of (u32 little-endian length, bytes), read from hostile input. Pure: no I/O. */
#ifndef TS_PACKED_H
#define TS_PACKED_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of an item's length field. */
#define TS_PACKED_LEN_BYTES 4

/* One item: its bytes inside the array read (not copied). */
typedef struct ts_batch_item {
	const void *blob;
	size_t len;
} ts_batch_item;

/* What is wrong with an array; each names the item it was met at (ts_packed_status.idx). */
typedef enum ts_packed_error {
	TS_PACKED_OK = 0,
	TS_PACKED_EMPTY,          /* no items at all */
	TS_PACKED_TOO_MANY,       /* more items than allowed (idx = the limit) */
	TS_PACKED_SHORT_LENGTH,   /* 1 to 3 bytes left where item idx's length should be (n = bytes left) */
	TS_PACKED_PAST_END,       /* item idx's length n runs past the end of the array */
	TS_PACKED_OVERSIZED,      /* item idx's length n is over the largest allowed */
	TS_PACKED_MISSING,        /* the array ends after idx items, fewer than expected */
	TS_PACKED_TRAILING,       /* n bytes after the idx items expected */
} ts_packed_error;

typedef struct ts_packed_status {
	ts_packed_error err;
	size_t idx;               /* the first bad item's index (see each error) */
	size_t n;                 /* the length read, or the bytes left (see each error) */
	size_t limit;             /* the bound broken (items or bytes), or the count expected */
} ts_packed_status;

/*
 * Read the packed array p[0..len): items of a 4-byte little-endian length
 * then that many bytes, one after another, the array consumed exactly.
 * With expect = 0, 1..max_items items; else exactly expect (a reply whose
 * count the reader knows). Each length at most max_item. With items NULL
 * the array is only checked and counted; else items[] (room for the count,
 * e.g. from a first call) receives each item, pointing into p. Nothing is
 * allocated and no count or length from the input is trusted before it is
 * checked against len. Returns 0 with *ret_n set; or -TS_E_LIMIT
 * (TS_PACKED_TOO_MANY) or -TS_E_INVALID_ARGS (any other) with *st saying
 * what and where (st->err is TS_PACKED_OK on success).
 */
int ts_packed_parse(const uint8_t *p, size_t len, size_t max_items, size_t max_item, size_t expect,
                    ts_batch_item *items, size_t *ret_n, ts_packed_status *st);

/* A message for a failed ts_packed_parse ("item 3: length 70000 is over the largest, 65606 bytes"), into buf. */
void ts_packed_message(const ts_packed_status *st, char *buf, size_t size);

/* The bytes of an array of n items of total bytes between them: 0 when it would not fit in a size_t. */
size_t ts_packed_size(size_t n, size_t total);

/* Write one item (its length, then len bytes of data) at dst; returns the bytes written (4 + len). len < 2^32. */
size_t ts_packed_put(uint8_t *dst, const void *data, size_t len);

/* Write only an item's length field at dst (the caller writes the len bytes after it). */
void ts_packed_put_len(uint8_t *dst, size_t len);

#endif
