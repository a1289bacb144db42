/* context.h — the caller's encryption context (string map) and its canonical encoding. */
#ifndef TS_CONTEXT_H
#define TS_CONTEXT_H

#include "tokenseal.h"
#include "buf.h"

/*
 * Append the canonical encoding of a context to out (see docs/FORMAT.md):
 * u32 count, then entries sorted by key bytes, each u32 key length, key,
 * u32 value length, value. Keys and values are UTF-8 without NUL; limits
 * TS_CONTEXT_*. Duplicate keys, empty keys, invalid UTF-8 or a limit exceeded
 * give -TS_E_INVALID_ARGS. The input array is not modified.
 */
int ts_context_encode(const ts_kv *kv, size_t n, ts_buf *out);

/* The largest encoding the limits allow (279,044 bytes). */
#define TS_CONTEXT_ENCODED_MAX \
	(4 + (size_t)TS_CONTEXT_MAX_ENTRIES * (8 + TS_CONTEXT_KEY_MAX + TS_CONTEXT_VALUE_MAX))

/*
 * The same encoding into a caller's buffer (no allocation): checks as
 * ts_context_encode does, sets *ret_len to the encoding's length, and
 * returns 0 when it was written to dst (cap bytes), 1 when it does not fit
 * (nothing written; call again with *ret_len bytes), or -TS_E_INVALID_ARGS.
 */
int ts_context_encode_to(const ts_kv *kv, size_t n, uint8_t *dst, size_t cap, size_t *ret_len);

/* The value of the first entry named key, or NULL (options, contexts: one reading everywhere). */
const char *ts_kv_find(const ts_kv *kv, size_t n, const char *key);

#endif
