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

#endif
