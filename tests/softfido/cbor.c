/* cbor.c — a strict reader for hostile CTAP2 requests (over libcbor) and a writer of canonical CTAP2 CBOR. */
#include <string.h>

#include "softfido.h"

/*
 * The writer is ours rather than libcbor's serializer because CTAP2 wants the
 * canonical form (shortest integers, map keys in length-then-bytewise order)
 * and clients such as python-fido2 check it byte for byte: callers emit map
 * entries already in canonical order and this code only has to get the
 * integer widths right.
 */

void sf_cw_raw(sf_out *o, const void *p, size_t n) {
	if (o->overflow || n > sizeof(o->buf) - o->len) {
		o->overflow = 1;
		return;
	}
	if (n)
		memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void head(sf_out *o, uint8_t major, uint64_t v) {
	uint8_t b[9];
	size_t n;

	major <<= 5;
	if (v < 24) {
		b[0] = major | (uint8_t)v;
		n = 1;
	} else if (v <= 0xff) {
		b[0] = major | 24;
		b[1] = (uint8_t)v;
		n = 2;
	} else if (v <= 0xffff) {
		b[0] = major | 25;
		b[1] = (uint8_t)(v >> 8);
		b[2] = (uint8_t)v;
		n = 3;
	} else if (v <= 0xffffffffu) {
		b[0] = major | 26;
		for (int i = 0; i < 4; i++)
			b[1 + i] = (uint8_t)(v >> (24 - 8 * i));
		n = 5;
	} else {
		b[0] = major | 27;
		for (int i = 0; i < 8; i++)
			b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
		n = 9;
	}
	sf_cw_raw(o, b, n);
}

void sf_cw_uint(sf_out *o, uint64_t v) { head(o, 0, v); }

void sf_cw_int(sf_out *o, int64_t v) {
	if (v >= 0)
		head(o, 0, (uint64_t)v);
	else
		head(o, 1, (uint64_t)(-1 - v));
}

void sf_cw_bytes(sf_out *o, const void *p, size_t n) {
	head(o, 2, n);
	sf_cw_raw(o, p, n);
}

void sf_cw_text(sf_out *o, const char *s) {
	head(o, 3, strlen(s));
	sf_cw_raw(o, s, strlen(s));
}

void sf_cw_array(sf_out *o, size_t n) { head(o, 4, n); }
void sf_cw_map(sf_out *o, size_t n) { head(o, 5, n); }

void sf_cw_bool(sf_out *o, int v) {
	uint8_t b = v ? 0xf5 : 0xf4;
	sf_cw_raw(o, &b, 1);
}

void sf_cw_cose_p256(sf_out *o, int64_t alg, const uint8_t x[32], const uint8_t y[32]) {
	/* Canonical order of the keys 1, 3, -1, -2, -3. */
	sf_cw_map(o, 5);
	sf_cw_int(o, 1);
	sf_cw_int(o, 2);  /* kty: EC2 */
	sf_cw_int(o, 3);
	sf_cw_int(o, alg);
	sf_cw_int(o, -1);
	sf_cw_int(o, 1);  /* crv: P-256 */
	sf_cw_int(o, -2);
	sf_cw_bytes(o, x, 32);
	sf_cw_int(o, -3);
	sf_cw_bytes(o, y, 32);
}

/* ---- reader ------------------------------------------------------------- */

#define CBOR_MAX_DEPTH 16

/*
 * A pass over the raw bytes before libcbor sees them. libcbor 0.8 allocates
 * (and zeroes) a definite array or map as large as its header claims, so
 * nine hostile bytes could make it allocate gigabytes; here every count must
 * fit in the bytes that are left (each item takes at least one), nesting is
 * bounded, and indefinite lengths, which CTAP2's canonical form excludes, are
 * refused. Returns 0 if (p, n) from *off holds one well-formed item.
 */
static int wellformed(const uint8_t *p, size_t n, size_t *off, int depth) {
	uint8_t major, ai;
	uint64_t v = 0;
	size_t len, i;

	if (depth > CBOR_MAX_DEPTH || *off >= n)
		return -1;
	major = p[*off] >> 5;
	ai = p[*off] & 0x1f;
	(*off)++;
	if (ai < 24) {
		v = ai;
	} else if (ai <= 27) {
		len = (size_t)1 << (ai - 24);
		if (len > n - *off)
			return -1;
		for (i = 0; i < len; i++)
			v = v << 8 | p[(*off)++];
	} else {
		return -1; /* 28-30 reserved; 31 indefinite length or break */
	}
	switch (major) {
	case 0: /* unsigned, negative */
	case 1:
		return 0;
	case 2: /* byte, text string */
	case 3:
		if (v > n - *off)
			return -1;
		*off += (size_t)v;
		return 0;
	case 4: /* array, map */
	case 5:
		if (v > (n - *off) / (major == 5 ? 2 : 1))
			return -1;
		for (uint64_t k = 0; k < v * (major == 5 ? 2 : 1); k++)
			if (wellformed(p, n, off, depth + 1) < 0)
				return -1;
		return 0;
	case 6: /* tag */
		return wellformed(p, n, off, depth + 1);
	default: /* simple values and floats: the header was the whole item */
		return 0;
	}
}

int sf_cbor_args(const uint8_t *p, size_t n, cbor_item_t **root, cbor_item_t *args[SF_MAX_ARGS]) {
	struct cbor_load_result res;
	struct cbor_pair *pairs;
	cbor_item_t *item;
	size_t i, cnt, off;
	uint64_t k;
	uint32_t seen = 0;

	memset(args, 0, sizeof(cbor_item_t *) * SF_MAX_ARGS);
	*root = NULL;
	if (n == 0)
		return CTAP2_OK;
	off = 0;
	if (wellformed(p, n, &off, 0) < 0 || off != n)
		return CTAP2_ERR_INVALID_CBOR;
	item = cbor_load(p, n, &res);
	if (!item)
		return CTAP2_ERR_INVALID_CBOR; /* also for absurd declared sizes (CBOR_ERR_MEMERROR) */
	if (res.read != n) {
		cbor_decref(&item);
		return CTAP2_ERR_INVALID_CBOR;
	}
	if (!cbor_isa_map(item)) {
		cbor_decref(&item);
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	}
	cnt = cbor_map_size(item);
	pairs = cbor_map_handle(item);
	for (i = 0; i < cnt; i++) {
		if (!pairs[i].key || !cbor_isa_uint(pairs[i].key)) {
			cbor_decref(&item);
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		}
		k = cbor_get_int(pairs[i].key);
		if (k >= SF_MAX_ARGS)
			continue;
		if (seen & (1u << k)) { /* a duplicate key makes the map invalid CBOR for CTAP */
			cbor_decref(&item);
			return CTAP2_ERR_INVALID_CBOR;
		}
		seen |= 1u << k;
		args[k] = pairs[i].value;
	}
	*root = item;
	return CTAP2_OK;
}

int sf_cbor_bytes(const cbor_item_t *it, const uint8_t **ret_p, size_t *ret_n) {
	if (!it || !cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	*ret_p = cbor_bytestring_handle(it);
	*ret_n = cbor_bytestring_length(it);
	return CTAP2_OK;
}

int sf_cbor_text(const cbor_item_t *it, const char **ret_p, size_t *ret_n) {
	if (!it || !cbor_isa_string(it) || !cbor_string_is_definite(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	*ret_p = (const char *)cbor_string_handle(it);
	*ret_n = cbor_string_length(it);
	return CTAP2_OK;
}

int sf_cbor_uint(const cbor_item_t *it, uint64_t *ret) {
	if (!it || !cbor_isa_uint(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	*ret = cbor_get_int(it);
	return CTAP2_OK;
}

int sf_cbor_int(const cbor_item_t *it, int64_t *ret) {
	uint64_t v;

	if (!it || (!cbor_isa_uint(it) && !cbor_isa_negint(it)))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	v = cbor_get_int(it);
	if (v > INT64_MAX)
		return CTAP1_ERR_INVALID_PARAMETER;
	*ret = cbor_isa_uint(it) ? (int64_t)v : -1 - (int64_t)v;
	return CTAP2_OK;
}

int sf_cbor_bool(const cbor_item_t *it, int *ret) {
	if (!it || !cbor_isa_float_ctrl(it) || !cbor_is_bool(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	*ret = cbor_get_bool(it);
	return CTAP2_OK;
}

int sf_cbor_is_text(const cbor_item_t *it, const char *s) {
	size_t n = strlen(s);

	return it && cbor_isa_string(it) && cbor_string_is_definite(it) && cbor_string_length(it) == n &&
	       memcmp(cbor_string_handle(it), s, n) == 0;
}

cbor_item_t *sf_cbor_get_text_key(const cbor_item_t *map, const char *key) {
	struct cbor_pair *pairs;
	size_t i, n;

	if (!map || !cbor_isa_map(map))
		return NULL;
	n = cbor_map_size(map);
	pairs = cbor_map_handle(map);
	for (i = 0; i < n; i++)
		if (sf_cbor_is_text(pairs[i].key, key))
			return pairs[i].value;
	return NULL;
}

cbor_item_t *sf_cbor_get_int_key(const cbor_item_t *map, int64_t key) {
	struct cbor_pair *pairs;
	size_t i, n;
	int64_t k;

	if (!map || !cbor_isa_map(map))
		return NULL;
	n = cbor_map_size(map);
	pairs = cbor_map_handle(map);
	for (i = 0; i < n; i++)
		if (pairs[i].key && sf_cbor_int(pairs[i].key, &k) == CTAP2_OK && k == key)
			return pairs[i].value;
	return NULL;
}

int sf_cbor_cose_p256(const cbor_item_t *it, uint8_t x[32], uint8_t y[32]) {
	const uint8_t *px, *py;
	size_t nx, ny;
	int64_t kty, crv, alg;
	cbor_item_t *v;
	int r;

	if (!it || !cbor_isa_map(it))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!(v = sf_cbor_get_int_key(it, 1)))
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_int(v, &kty)) != CTAP2_OK)
		return r;
	if (!(v = sf_cbor_get_int_key(it, -1)))
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_int(v, &crv)) != CTAP2_OK)
		return r;
	/* The platform's key says alg -25 (ECDH-ES+HKDF-256) though the KDF is the protocol's. */
	if ((v = sf_cbor_get_int_key(it, 3)) && (r = sf_cbor_int(v, &alg)) != CTAP2_OK)
		return r;
	if ((r = sf_cbor_bytes(sf_cbor_get_int_key(it, -2), &px, &nx)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(sf_cbor_get_int_key(it, -3), &py, &ny)) != CTAP2_OK)
		return sf_cbor_get_int_key(it, -2) && sf_cbor_get_int_key(it, -3) ? r : CTAP2_ERR_MISSING_PARAMETER;
	if (kty != 2 || crv != 1 || nx != 32 || ny != 32)
		return CTAP1_ERR_INVALID_PARAMETER;
	memcpy(x, px, 32);
	memcpy(y, py, 32);
	return CTAP2_OK;
}
