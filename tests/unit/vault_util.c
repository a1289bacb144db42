/* vault_util.c — see vault_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "vault_util.h"

ts_vault *tv_reload(const ts_buf *file)
{
	ts_vault *v = NULL;

	assert_int_equal(ts_vault_parse(file->data, file->len, &v), 0);
	assert_true(ts_vault_is_locked(v));
	return v;
}

int tv_unwrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx, const ts_buf *blob, const char *want)
{
	uint8_t *pt;
	ts_blob_view bv;
	int r;

	if ((r = ts_blob_parse(blob->data, blob->len, &bv)) < 0)
		return r;
	pt = ts_secure_alloc(bv.plaintext_len + 1);
	assert_non_null(pt);
	r = ts_vault_unwrap(v, &bv, ctx, n_ctx, pt);
	if (r == 0 && want) {
		assert_int_equal(bv.plaintext_len, strlen(want));
		assert_memory_equal(pt, want, strlen(want));
	}
	ts_secure_free(pt);
	return r;
}

cbor_item_t *tv_map_get(cbor_item_t *map, const char *key, size_t *idx)
{
	struct cbor_pair *p = cbor_map_handle(map);

	for (size_t i = 0; i < cbor_map_size(map); i++)
		if (cbor_string_length(p[i].key) == strlen(key) &&
		    memcmp(cbor_string_handle(p[i].key), key, strlen(key)) == 0) {
			if (idx)
				*idx = i;
			return p[i].value;
		}
	return NULL;
}

void tv_map_set(cbor_item_t *map, const char *key, cbor_item_t *value)
{
	size_t i;

	assert_non_null(tv_map_get(map, key, &i));
	cbor_decref(&cbor_map_handle(map)[i].value);
	cbor_map_handle(map)[i].value = value;
}

cbor_item_t *tv_map_without(cbor_item_t *map, const char *key)
{
	cbor_item_t *n = cbor_new_definite_map(cbor_map_size(map) - 1);
	struct cbor_pair *p = cbor_map_handle(map);

	for (size_t i = 0; i < cbor_map_size(map); i++)
		if (!(cbor_string_length(p[i].key) == strlen(key) &&
		      memcmp(cbor_string_handle(p[i].key), key, strlen(key)) == 0))
			assert_true(cbor_map_add(n, (struct cbor_pair){ .key = p[i].key, .value = p[i].value }));
	return n;
}

void tv_serialize_into(cbor_item_t *item, ts_buf *out)
{
	unsigned char *p = NULL;
	size_t cap = 0, n = cbor_serialize_alloc(item, &p, &cap);

	assert_true(n > 0);
	out->len = 0;
	assert_int_equal(ts_buf_append(out, p, n), 0);
	free(p);
}

void tv_edit_header(ts_buf *file, cbor_item_t *(*edit)(cbor_item_t *hdr))
{
	struct cbor_load_result res;
	cbor_item_t *top = cbor_load(file->data, file->len, &res), *hb, *hdr, *nh;
	_ts_cleanup_buf_ ts_buf hbuf = { 0 };

	assert_non_null(top);
	hb = tv_map_get(top, "header", NULL);
	hdr = cbor_load(cbor_bytestring_handle(hb), cbor_bytestring_length(hb), &res);
	assert_non_null(hdr);
	nh = edit(hdr);
	tv_serialize_into(nh, &hbuf);
	tv_map_set(top, "header", cbor_build_bytestring(hbuf.data, hbuf.len));
	tv_serialize_into(top, file);
	if (nh != hdr)
		cbor_decref(&nh);
	cbor_decref(&hdr);
	cbor_decref(&top);
}
