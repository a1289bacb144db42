/* internal.h — helpers shared by the core's own modules; not a contract for anyone else. */
#ifndef TS_CORE_INTERNAL_H
#define TS_CORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cbor.h>

/*
 * KDF subkey purposes (crypto_kdf contexts, exactly 8 bytes, docs/FORMAT.md).
 * Every derivation uses subkey id TS_KDF_SUBKEY_ID; the context alone
 * separates the purposes.
 */
#define TS_KDF_CTX_CTXCHECK "tsctxchk"   /* RK  -> key of the blob's context check */
#define TS_KDF_CTX_KEYRING  "tskeyrng"   /* VS  -> key sealing the keyring */
#define TS_KDF_CTX_HDRMAC   "tshdrmac"   /* VS  -> key of the vault header MAC */
#define TS_KDF_SUBKEY_ID 1

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF); NUL is refused too. (context.c) */
int ts_utf8_valid(const uint8_t *s, size_t n);

/* out (32 bytes) = crypto_kdf_derive_from_key(key, TS_KDF_SUBKEY_ID, ctx). 0 or -TS_E_FAILED. (blob.c) */
int ts_kdf_derive(uint8_t out[32], const char ctx[8], const uint8_t key[32]);

/*
 * One CBOR reader (cborutil.c). ts_cbor_load first walks the bytes itself —
 * definite lengths only; major types uint, bstr, tstr, array, map only; at
 * most max_depth levels of containers; no count larger than the bytes left
 * could hold — so libcbor never sees a count it would allocate for blindly,
 * then runs cbor_load and checks that it succeeded and consumed all of len.
 * Returns a new reference or NULL (hostile or unexpected input).
 */
cbor_item_t *ts_cbor_load(const uint8_t *b, size_t len, unsigned max_depth);

/* A uint item of the smallest width that holds v (deterministic encoding); NULL on allocation failure. */
cbor_item_t *ts_cbor_build_uint(uint64_t v);

/*
 * Add key (a text string) -> value to a definite map. Consumes the caller's
 * reference to value even on failure; value NULL (a failed build) is
 * reported as -TS_E_NOMEM, so builders can be chained.
 */
int ts_cbor_map_put(cbor_item_t *map, const char *key, cbor_item_t *value);

/* Serialize to a ts_buf. 0 or -TS_E_NOMEM. */
struct ts_buf;
int ts_cbor_serialize(const cbor_item_t *item, struct ts_buf *out);

/* For __attribute__((cleanup)). */
static inline void ts_cbor_decrefp(cbor_item_t **p)
{
	if (*p)
		cbor_decref(p);
}
#define _ts_cleanup_cbor_ __attribute__((cleanup(ts_cbor_decrefp)))

#endif
