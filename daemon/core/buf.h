/* buf.h — growable byte buffers (public data) and secure allocations (secrets). */
#ifndef TS_BUF_H
#define TS_BUF_H

#include <stddef.h>
#include <stdint.h>

/*
 * ts_buf: a growable malloc()ed buffer for NON-secret bytes (encoded blobs,
 * vault files). Zero-initialise ({0}) before first use. On free the bytes are
 * wiped anyway, since a buffer may have held a ciphertext next to a secret.
 */
typedef struct ts_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} ts_buf;

/* Append n bytes. Returns 0 or -TS_E_NOMEM / -TS_E_LIMIT (len would pass 256 MiB). */
int ts_buf_append(ts_buf *b, const void *p, size_t n);
int ts_buf_append_u8(ts_buf *b, uint8_t v);
int ts_buf_append_be32(ts_buf *b, uint32_t v);
int ts_buf_append_be64(ts_buf *b, uint64_t v);
/* Make room for n more bytes and return a pointer to them (len grows by n). NULL on failure. */
uint8_t *ts_buf_reserve(ts_buf *b, size_t n);
/* Wipe and free the contents; the struct is reset to {0}. Accepts NULL. */
void ts_buf_free(ts_buf *b);

/*
 * Secrets: every secret lives in sodium_malloc() memory (guard pages, mlock,
 * excluded from core dumps). ts_secure_alloc returns zero-filled memory or
 * NULL; ts_secure_free wipes (sodium_free does) and accepts NULL.
 */
void *ts_secure_alloc(size_t n);
void ts_secure_free(void *p);

/* For __attribute__((cleanup)). */
static inline void ts_buf_freep(ts_buf *b) { ts_buf_free(b); }
static inline void ts_secure_freep(void *pp) { ts_secure_free(*(void **)pp); }
#define _ts_cleanup_buf_ __attribute__((cleanup(ts_buf_freep)))
#define _ts_cleanup_secure_ __attribute__((cleanup(ts_secure_freep)))

/* Big-endian readers and writers, the one copy of each; the caller has checked bounds. */
static inline uint32_t ts_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t ts_be64(const uint8_t *p)
{
	return (uint64_t)ts_be32(p) << 32 | ts_be32(p + 4);
}
static inline void ts_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void ts_put_be64(uint8_t *p, uint64_t v)
{
	ts_put_be32(p, (uint32_t)(v >> 32));
	ts_put_be32(p + 4, (uint32_t)v);
}

#endif
