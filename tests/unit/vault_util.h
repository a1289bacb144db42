/* vault_util.h — what the vault unit tests share: reload a file, unwrap and compare, and edit a vault file's header with libcbor, as an attacker holding the file would. */
#ifndef TS_TEST_VAULT_UTIL_H
#define TS_TEST_VAULT_UTIL_H

#include <stddef.h>

#include <cbor.h>

#include "core/buf.h"
#include "core/context.h"
#include "core/vault.h"

/* Parse file: it must parse, and come back locked. */
ts_vault *tv_reload(const ts_buf *file);
/* Unwrap blob with v under ctx: the code; on success the plaintext must be want (NULL: not compared). */
int tv_unwrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx, const ts_buf *blob, const char *want);

/* The value of text key in map (and its index), or NULL. */
cbor_item_t *tv_map_get(cbor_item_t *map, const char *key, size_t *idx);
/* Replace the value of key (which must be there); takes value's reference. */
void tv_map_set(cbor_item_t *map, const char *key, cbor_item_t *value);
/* A new map: map without key, the rest in order. */
cbor_item_t *tv_map_without(cbor_item_t *map, const char *key);
/* item's encoding into out, replacing what it held. */
void tv_serialize_into(cbor_item_t *item, ts_buf *out);
/*
 * Decode file, let edit() change the header map (it returns the map to
 * write: hdr itself, or a new one it made), and write header and file back.
 */
void tv_edit_header(ts_buf *file, cbor_item_t *(*edit)(cbor_item_t *hdr));

#endif
