/* params.h — a small typed key/value record, CBOR-encoded; protectors keep their public parameters in it. */
#ifndef TS_PARAMS_H
#define TS_PARAMS_H

#include "buf.h"

/*
 * A ts_params is a CBOR map with text keys (<= 64 bytes) and values that are
 * byte strings (<= 64 KiB), text strings (<= 4 KiB, valid UTF-8) or
 * unsigned integers; at most 64 entries. All CBOR in tokenseal is read
 * through this module and vault.c — the one place that parses hostile CBOR.
 * Values are public (credential ids, salts, sealed objects), never secrets.
 */
typedef struct ts_params ts_params;

int ts_params_new(ts_params **ret);
void ts_params_free(ts_params *p);   /* accepts NULL */

/* Setters copy; setting an existing key replaces it. 0 or -TS_E_NOMEM / -TS_E_LIMIT. */
int ts_params_set_bytes(ts_params *p, const char *key, const uint8_t *v, size_t len);
int ts_params_set_str(ts_params *p, const char *key, const char *v);
int ts_params_set_uint(ts_params *p, const char *key, uint64_t v);

/*
 * Getters: 0 with pointers into p (valid until p changes or is freed),
 * -TS_E_NO_SUCH_PROTECTOR never; -TS_E_CORRUPT when the key is missing or
 * has another type.
 */
int ts_params_get_bytes(const ts_params *p, const char *key, const uint8_t **ret, size_t *ret_len);
int ts_params_get_str(const ts_params *p, const char *key, const char **ret);
int ts_params_get_uint(const ts_params *p, const char *key, uint64_t *ret);
/* Non-zero when key is present (any type). */
int ts_params_has(const ts_params *p, const char *key);

/* Iterate for display: i in [0, ts_params_count). Type: 'b' bytes, 's' text, 'u' uint. */
size_t ts_params_count(const ts_params *p);
int ts_params_entry(const ts_params *p, size_t i, const char **ret_key, char *ret_type);

/* Deterministic (keys sorted) CBOR encoding, appended to out. */
int ts_params_encode(const ts_params *p, ts_buf *out);
/* Decode hostile bytes. -TS_E_CORRUPT on anything unexpected. */
int ts_params_decode(const uint8_t *b, size_t len, ts_params **ret);

#endif
