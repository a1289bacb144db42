/* params.c — typed key/value records (protector parameters) and their deterministic CBOR encoding. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/internal.h"
#include "core/params.h"
#include "core/vault.h"

#define TS_PARAMS_MAX_ENTRIES 64
#define TS_PARAMS_KEY_MAX 64
#define TS_PARAMS_BYTES_MAX 65536
#define TS_PARAMS_STR_MAX 4096

struct ts_param {
	char *key;        /* NUL-terminated, 1..64 bytes of UTF-8 */
	size_t key_len;
	char type;        /* 'b', 's', 'u' */
	uint8_t *data;    /* bytes or text, always NUL-terminated (data[len] == 0) */
	size_t len;
	uint64_t u;
};

struct ts_params {
	/* Kept sorted in the deterministic CBOR order of the keys, so encoding is a walk. */
	struct ts_param e[TS_PARAMS_MAX_ENTRIES];
	size_t n;
};

/*
 * RFC 8949 §4.2.1 order (bytewise on the encoded keys). For text keys of at
 * most 64 bytes that is: shorter first, then bytewise.
 */
static int ts_param_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

int ts_params_new(ts_params **ret)
{
	ts_params *p;

	if (!ret)
		return -TS_E_INVALID_ARGS;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -TS_E_NOMEM;
	*ret = p;
	return 0;
}

static void ts_param_clear(struct ts_param *e)
{
	free(e->key);
	if (e->data) {
		/* Public by contract, but cheap to wipe and a backend may get it wrong. */
		sodium_memzero(e->data, e->len);
		free(e->data);
	}
	memset(e, 0, sizeof(*e));
}

void ts_params_free(ts_params *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n; i++)
		ts_param_clear(&p->e[i]);
	free(p);
}

static int ts_param_key_valid(const char *key, size_t len)
{
	return len > 0 && len <= TS_PARAMS_KEY_MAX && ts_utf8_valid((const uint8_t *)key, len);
}

/* Index of key, or -(insertion point) - 1. */
static long ts_params_find(const ts_params *p, const char *key, size_t klen)
{
	size_t lo = 0, hi = p->n, mid;
	int c;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		c = ts_param_key_cmp(p->e[mid].key, p->e[mid].key_len, key, klen);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Insert or replace; takes ownership of data (malloc()ed, len + 1 bytes) on success only. */
static int ts_params_put(ts_params *p, const char *key, size_t klen, char type, uint8_t *data,
                         size_t len, uint64_t u)
{
	struct ts_param *e;
	long at;
	size_t i;
	char *k;

	if (!ts_param_key_valid(key, klen))
		return klen > TS_PARAMS_KEY_MAX ? -TS_E_LIMIT : -TS_E_INVALID_ARGS;
	at = ts_params_find(p, key, klen);
	if (at >= 0) {
		e = &p->e[at];
		if (e->data) {
			sodium_memzero(e->data, e->len);
			free(e->data);
		}
	} else {
		if (p->n >= TS_PARAMS_MAX_ENTRIES)
			return -TS_E_LIMIT;
		if ((k = malloc(klen + 1)) == NULL)
			return -TS_E_NOMEM;
		memcpy(k, key, klen);
		k[klen] = '\0';
		i = (size_t)(-at - 1);
		memmove(&p->e[i + 1], &p->e[i], (p->n - i) * sizeof(p->e[0]));
		p->n++;
		e = &p->e[i];
		memset(e, 0, sizeof(*e));
		e->key = k;
		e->key_len = klen;
	}
	e->type = type;
	e->data = data;
	e->len = len;
	e->u = u;
	return 0;
}

static uint8_t *ts_dup0(const void *v, size_t len)
{
	uint8_t *d;

	if ((d = malloc(len + 1)) == NULL)
		return NULL;
	if (len)
		memcpy(d, v, len);
	d[len] = 0;
	return d;
}

int ts_params_set_bytes(ts_params *p, const char *key, const uint8_t *v, size_t len)
{
	uint8_t *d;
	int r;

	if (!p || !key || (len && !v))
		return -TS_E_INVALID_ARGS;
	if (len > TS_PARAMS_BYTES_MAX)
		return -TS_E_LIMIT;
	if ((d = ts_dup0(v, len)) == NULL)
		return -TS_E_NOMEM;
	if ((r = ts_params_put(p, key, strnlen(key, TS_PARAMS_KEY_MAX + 1), 'b', d, len, 0)) < 0)
		free(d);
	return r;
}

int ts_params_set_str(ts_params *p, const char *key, const char *v)
{
	size_t len;
	uint8_t *d;
	int r;

	if (!p || !key || !v)
		return -TS_E_INVALID_ARGS;
	len = strnlen(v, TS_PARAMS_STR_MAX + 1);
	if (len > TS_PARAMS_STR_MAX)
		return -TS_E_LIMIT;
	if (!ts_utf8_valid((const uint8_t *)v, len))
		return -TS_E_INVALID_ARGS;
	if ((d = ts_dup0(v, len)) == NULL)
		return -TS_E_NOMEM;
	if ((r = ts_params_put(p, key, strnlen(key, TS_PARAMS_KEY_MAX + 1), 's', d, len, 0)) < 0)
		free(d);
	return r;
}

int ts_params_set_uint(ts_params *p, const char *key, uint64_t v)
{
	if (!p || !key)
		return -TS_E_INVALID_ARGS;
	return ts_params_put(p, key, strnlen(key, TS_PARAMS_KEY_MAX + 1), 'u', NULL, 0, v);
}

static const struct ts_param *ts_params_lookup(const ts_params *p, const char *key)
{
	size_t klen;
	long at;

	if (!p || !key)
		return NULL;
	klen = strnlen(key, TS_PARAMS_KEY_MAX + 1);
	if (klen > TS_PARAMS_KEY_MAX)
		return NULL;
	at = ts_params_find(p, key, klen);
	return at >= 0 ? &p->e[at] : NULL;
}

int ts_params_get_bytes(const ts_params *p, const char *key, const uint8_t **ret, size_t *ret_len)
{
	const struct ts_param *e = ts_params_lookup(p, key);

	if (!e || e->type != 'b')
		return -TS_E_CORRUPT;
	if (ret)
		*ret = e->data;
	if (ret_len)
		*ret_len = e->len;
	return 0;
}

int ts_params_get_str(const ts_params *p, const char *key, const char **ret)
{
	const struct ts_param *e = ts_params_lookup(p, key);

	if (!e || e->type != 's')
		return -TS_E_CORRUPT;
	if (ret)
		*ret = (const char *)e->data;
	return 0;
}

int ts_params_get_uint(const ts_params *p, const char *key, uint64_t *ret)
{
	const struct ts_param *e = ts_params_lookup(p, key);

	if (!e || e->type != 'u')
		return -TS_E_CORRUPT;
	if (ret)
		*ret = e->u;
	return 0;
}

int ts_params_has(const ts_params *p, const char *key)
{
	return ts_params_lookup(p, key) != NULL;
}

size_t ts_params_count(const ts_params *p)
{
	return p ? p->n : 0;
}

int ts_params_entry(const ts_params *p, size_t i, const char **ret_key, char *ret_type)
{
	if (!p || i >= p->n)
		return -TS_E_INVALID_ARGS;
	if (ret_key)
		*ret_key = p->e[i].key;
	if (ret_type)
		*ret_type = p->e[i].type;
	return 0;
}

int ts_params_encode(const ts_params *p, ts_buf *out)
{
	_ts_cleanup_cbor_ cbor_item_t *map = NULL;
	const struct ts_param *e;
	cbor_item_t *v;
	size_t i;
	int r;

	if (!p || !out)
		return -TS_E_INVALID_ARGS;
	if ((map = cbor_new_definite_map(p->n)) == NULL)
		return -TS_E_NOMEM;
	/* Entries are already in deterministic order; libcbor writes pairs as added. */
	for (i = 0; i < p->n; i++) {
		e = &p->e[i];
		if (e->type == 'b')
			v = cbor_build_bytestring(e->data, e->len);
		else if (e->type == 's')
			v = cbor_build_stringn((const char *)e->data, e->len);
		else
			v = ts_cbor_build_uint(e->u);
		if ((r = ts_cbor_map_put(map, e->key, v)) < 0)
			return r;
	}
	return ts_cbor_serialize(map, out);
}

int ts_params_decode(const uint8_t *b, size_t len, ts_params **ret)
{
	_ts_cleanup_cbor_ cbor_item_t *item = NULL;
	ts_params *p = NULL;
	struct cbor_pair *pairs;
	const cbor_item_t *k, *v;
	const char *key;
	size_t i, n, klen, vlen;
	uint8_t *d;
	int r = -TS_E_CORRUPT;

	if (!ret)
		return -TS_E_INVALID_ARGS;
	*ret = NULL;
	if (!b || len > TS_VAULT_FILE_MAX)
		return -TS_E_CORRUPT;
	/* One level: a map of scalars. Nested containers fail the pre-check. */
	if ((item = ts_cbor_load(b, len, 1)) == NULL)
		return -TS_E_CORRUPT;
	if (!cbor_isa_map(item) || !cbor_map_is_definite(item))
		return -TS_E_CORRUPT;
	n = cbor_map_size(item);
	if (n > TS_PARAMS_MAX_ENTRIES)
		return -TS_E_CORRUPT;
	if ((r = ts_params_new(&p)) < 0)
		return r;
	pairs = cbor_map_handle(item);
	for (i = 0; i < n; i++) {
		k = pairs[i].key;
		v = pairs[i].value;
		if (!k || !v || !cbor_isa_string(k) || !cbor_string_is_definite(k))
			goto corrupt;
		key = (const char *)cbor_string_handle(k);
		klen = cbor_string_length(k);
		if (!key || !ts_param_key_valid(key, klen))
			goto corrupt;
		/* A duplicate key would make the record mean two things. */
		if (ts_params_find(p, key, klen) >= 0)
			goto corrupt;
		if (cbor_isa_uint(v)) {
			if ((r = ts_params_put(p, key, klen, 'u', NULL, 0, cbor_get_int(v))) < 0)
				goto fail;
			continue;
		}
		if (cbor_isa_bytestring(v) && cbor_bytestring_is_definite(v)) {
			vlen = cbor_bytestring_length(v);
			if (vlen > TS_PARAMS_BYTES_MAX)
				goto corrupt;
			d = ts_dup0(cbor_bytestring_handle(v), vlen);
			if (!d) {
				r = -TS_E_NOMEM;
				goto fail;
			}
			if ((r = ts_params_put(p, key, klen, 'b', d, vlen, 0)) < 0) {
				free(d);
				goto fail;
			}
			continue;
		}
		if (cbor_isa_string(v) && cbor_string_is_definite(v)) {
			vlen = cbor_string_length(v);
			if (vlen > TS_PARAMS_STR_MAX ||
			    !ts_utf8_valid(cbor_string_handle(v), vlen))
				goto corrupt;
			d = ts_dup0(cbor_string_handle(v), vlen);
			if (!d) {
				r = -TS_E_NOMEM;
				goto fail;
			}
			if ((r = ts_params_put(p, key, klen, 's', d, vlen, 0)) < 0) {
				free(d);
				goto fail;
			}
			continue;
		}
		goto corrupt;
	}
	*ret = p;
	return 0;
corrupt:
	r = -TS_E_CORRUPT;
fail:
	ts_params_free(p);
	/* Nothing but "corrupt" or "out of memory" may come out of hostile bytes. */
	return r == -TS_E_NOMEM ? r : -TS_E_CORRUPT;
}
