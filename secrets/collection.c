/* collection.c — collections and items in memory: sealing each item under the collection key, searching by hash. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/buf.h"
#include "secrets.h"

#define AAD_TAG "tokenseal-secrets item v1"

int ss_valid_text(const char *s)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, SS_TEXT_MAX + 1);
	return n <= SS_TEXT_MAX;
}

ss_collection *ss_collection_new(const char *id, const char *label)
{
	ss_collection *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->next_id = 1;
	if ((c->id = strdup(id)) == NULL || (c->label = strdup(label ? label : "")) == NULL ||
	    sd_bus_path_encode(SS_COLLECTION_PREFIX, id, &c->path) < 0) {
		ss_collection_free(c);
		return NULL;
	}
	return c;
}

static void item_forget(ss_item *it)
{
	size_t i;

	free(it->label);
	free(it->content_type);
	for (i = 0; i < it->n_attrs; i++) {
		free(it->attrs[i].name);
		free(it->attrs[i].value);
	}
	free(it->attrs);
	it->label = it->content_type = NULL;
	it->attrs = NULL;
	it->n_attrs = 0;
}

void ss_item_free(ss_item *it)
{
	size_t i;

	if (!it)
		return;
	item_forget(it);
	for (i = 0; i < it->n_hattrs; i++)
		free(it->hattrs[i].name);
	free(it->hattrs);
	free(it->sealed);
	free(it);
}

void ss_collection_lock(ss_collection *c)
{
	size_t i;

	if (c->key) {
		sodium_memzero(c->key, SS_KEY_BYTES);
		sodium_free(c->key);
		c->key = NULL;
	}
	for (i = 0; i < c->n_items; i++)
		item_forget(c->items[i]);
	/* The items that did not open go back with the others: the next unlock tries them again. */
	if (c->n_bad) {
		ss_item **all = reallocarray(c->items, c->n_items + c->n_bad, sizeof(*all));

		if (all) {
			memcpy(all + c->n_items, c->bad, c->n_bad * sizeof(*all));
			c->items = all;
			c->n_items += c->n_bad;
			free(c->bad);
			c->bad = NULL;
			c->n_bad = 0;
		}
	}
}

void ss_collection_free(ss_collection *c)
{
	size_t i;

	if (!c)
		return;
	ss_collection_lock(c);
	sd_bus_slot_unref(c->opening);
	free(c->waiters);
	for (i = 0; i < c->n_items; i++)
		ss_item_free(c->items[i]);
	free(c->items);
	for (i = 0; i < c->n_bad; i++)
		ss_item_free(c->bad[i]);
	free(c->bad);
	for (i = 0; i < c->n_aliases; i++)
		free(c->aliases[i]);
	free(c->aliases);
	free(c->wrapped);
	free(c->id);
	free(c->path);
	free(c->label);
	free(c);
}

ss_item *ss_collection_item(const ss_collection *c, uint32_t id)
{
	size_t i;

	for (i = 0; i < c->n_items; i++)
		if (c->items[i]->id == id)
			return c->items[i];
	return NULL;
}

char *ss_item_path(const ss_collection *c, const ss_item *it)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%u", c->path, it->id) < 0)
		return NULL;
	return p;
}

void ss_attr_hash(const ss_collection *c, const char *name, const char *value, uint8_t out[SS_HASH_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, c->salt, sizeof(c->salt), SS_HASH_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)name, strlen(name) + 1);
	crypto_generichash_update(&st, (const uint8_t *)value, strlen(value));
	crypto_generichash_final(&st, out, SS_HASH_BYTES);
}

int ss_query_hash(const ss_collection *c, const ss_attr *q, size_t n_q, uint8_t (**ret)[SS_HASH_BYTES])
{
	uint8_t (*h)[SS_HASH_BYTES];
	size_t i;

	*ret = NULL;
	if (n_q == 0)
		return 0;
	if ((h = calloc(n_q, sizeof(*h))) == NULL)
		return -ENOMEM;
	for (i = 0; i < n_q; i++)
		ss_attr_hash(c, q[i].name, q[i].value, h[i]);
	*ret = h;
	return 0;
}

int ss_item_matches(const ss_item *it, const ss_attr *q, uint8_t (*qh)[SS_HASH_BYTES], size_t n_q)
{
	size_t i, j;

	for (i = 0; i < n_q; i++) {
		for (j = 0; j < it->n_hattrs; j++)
			if (strcmp(it->hattrs[j].name, q[i].name) == 0 && sodium_memcmp(it->hattrs[j].hash, qh[i], SS_HASH_BYTES) == 0)
				break;
		if (j == it->n_hattrs)
			return 0;
	}
	return 1;
}

static void make_aad(const ss_collection *c, uint32_t id, ts_buf *aad)
{
	/* Binding the collection and the item id: a sealed part moved to another item or file does not open. */
	ts_buf_append(aad, AAD_TAG, sizeof(AAD_TAG));
	ts_buf_append(aad, c->id, strlen(c->id) + 1);
	ts_buf_append_be32(aad, id);
}

static int put_str(uint8_t **w, const char *s)
{
	size_t n = strlen(s);

	ts_put_be32(*w, (uint32_t)n);
	memcpy(*w + 4, s, n);
	*w += 4 + n;
	return 0;
}

int ss_item_seal(const ss_collection *c, ss_item *it, const uint8_t *secret, size_t secret_len)
{
	_ts_cleanup_buf_ ts_buf aad = {0};
	uint8_t *pt, *w, *sealed;
	size_t n, i;
	unsigned long long clen;
	const char *ct = it->content_type ? it->content_type : "text/plain";
	const char *label = it->label ? it->label : "";

	if (!c->key)
		return -EPERM;
	if (secret_len > SS_SECRET_MAX)
		return -E2BIG;
	n = 4 + strlen(label) + 4 + strlen(ct) + 4 + 4 + secret_len;
	for (i = 0; i < it->n_attrs; i++)
		n += 8 + strlen(it->attrs[i].name) + strlen(it->attrs[i].value);
	if ((pt = sodium_malloc(n ? n : 1)) == NULL)
		return -ENOMEM;
	w = pt;
	put_str(&w, label);
	put_str(&w, ct);
	ts_put_be32(w, (uint32_t)it->n_attrs);
	w += 4;
	for (i = 0; i < it->n_attrs; i++) {
		put_str(&w, it->attrs[i].name);
		put_str(&w, it->attrs[i].value);
	}
	ts_put_be32(w, (uint32_t)secret_len);
	if (secret_len)
		memcpy(w + 4, secret, secret_len);
	make_aad(c, it->id, &aad);
	if (!aad.data || (sealed = malloc(n + crypto_aead_xchacha20poly1305_ietf_ABYTES)) == NULL) {
		sodium_free(pt);
		return -ENOMEM;
	}
	randombytes_buf(it->nonce, sizeof(it->nonce));
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, &clen, pt, n, aad.data, aad.len, NULL, it->nonce, c->key);
	sodium_free(pt);
	free(it->sealed);
	it->sealed = sealed;
	it->sealed_len = (size_t)clen;
	/* The clear hashes follow the attributes just sealed. */
	for (i = 0; i < it->n_hattrs; i++)
		free(it->hattrs[i].name);
	free(it->hattrs);
	it->hattrs = NULL;
	it->n_hattrs = 0;
	if (it->n_attrs && (it->hattrs = calloc(it->n_attrs, sizeof(*it->hattrs))) == NULL)
		return -ENOMEM;
	for (i = 0; i < it->n_attrs; i++) {
		if ((it->hattrs[i].name = strdup(it->attrs[i].name)) == NULL)
			return -ENOMEM;
		ss_attr_hash(c, it->attrs[i].name, it->attrs[i].value, it->hattrs[i].hash);
		it->n_hattrs++;
	}
	return 0;
}

/* Decrypt it's sealed part into secure memory. */
static int unseal(const ss_collection *c, const ss_item *it, uint8_t **ret, size_t *ret_len)
{
	_ts_cleanup_buf_ ts_buf aad = {0};
	unsigned long long n;
	uint8_t *pt;

	if (!c->key)
		return -EPERM;
	if (it->sealed_len < crypto_aead_xchacha20poly1305_ietf_ABYTES)
		return -EBADMSG;
	make_aad(c, it->id, &aad);
	if (!aad.data || (pt = sodium_malloc(it->sealed_len)) == NULL)
		return -ENOMEM;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &n, NULL, it->sealed, it->sealed_len, aad.data, aad.len,
	                                               it->nonce, c->key) != 0) {
		sodium_free(pt);
		return -EBADMSG;
	}
	*ret = pt;
	*ret_len = (size_t)n;
	return 0;
}

/* A (u32 length, bytes) string at *p (bounded by end) into a new C string; no NUL inside. */
/* A u32-length string at *p: copied into *ret, or only checked and stepped over when ret is NULL. */
static int get_str(const uint8_t **p, const uint8_t *end, char **ret)
{
	uint32_t n;

	if (end - *p < 4)
		return -EBADMSG;
	n = ts_be32(*p);
	if (n > SS_TEXT_MAX || (size_t)(end - *p - 4) < n || memchr(*p + 4, 0, n))
		return -EBADMSG;
	if (ret && (*ret = strndup((const char *)*p + 4, n)) == NULL)
		return -ENOMEM;
	*p += 4 + n;
	return 0;
}

/*
 * Read the sealed part: metadata into it (it NULL: only checked, nothing
 * copied, as GetSecret needs), and the secret's place (pointer into pt)
 * into *ret_secret.
 */
static int parse_sealed(ss_item *it, const uint8_t *pt, size_t len, const uint8_t **ret_secret, size_t *ret_slen)
{
	const uint8_t *p = pt, *end = pt + len;
	uint32_t n, i, slen;
	int r;

	if (it)
		item_forget(it);
	if ((r = get_str(&p, end, it ? &it->label : NULL)) < 0 ||
	    (r = get_str(&p, end, it ? &it->content_type : NULL)) < 0)
		goto fail;
	r = -EBADMSG;
	if (end - p < 4 || (n = ts_be32(p)) > SS_ATTRS_MAX)
		goto fail;
	p += 4;
	if (it && n && (it->attrs = calloc(n, sizeof(*it->attrs))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((r = get_str(&p, end, it ? &it->attrs[i].name : NULL)) < 0 ||
		    (r = get_str(&p, end, it ? &it->attrs[i].value : NULL)) < 0) {
			if (it)
				it->n_attrs = i + 1;
			goto fail;
		}
		if (it)
			it->n_attrs = i + 1;
	}
	r = -EBADMSG;
	if (end - p < 4 || (slen = ts_be32(p)) != (size_t)(end - p - 4))
		goto fail;
	*ret_secret = p + 4;
	*ret_slen = slen;
	return 0;
fail:
	if (it)
		item_forget(it);
	return r;
}

int ss_item_unseal_secret(const ss_collection *c, const ss_item *it, uint8_t **ret, size_t *ret_len)
{
	const uint8_t *sp;
	uint8_t *pt, *out;
	size_t len, slen;
	int r;

	if ((r = unseal(c, it, &pt, &len)) < 0)
		return r;
	if ((r = parse_sealed(NULL, pt, len, &sp, &slen)) < 0) {
		sodium_free(pt);
		return r;
	}
	if ((out = sodium_malloc(slen ? slen : 1)) == NULL) {
		sodium_free(pt);
		return -ENOMEM;
	}
	memcpy(out, sp, slen);
	sodium_free(pt);
	*ret = out;
	*ret_len = slen;
	return 0;
}

int ss_collection_open_items(ss_collection *c)
{
	size_t i, j, k, bad = 0;

	for (i = 0; i < c->n_items;) {
		ss_item *it = c->items[i];
		const uint8_t *sp;
		uint8_t *pt = NULL, h[SS_HASH_BYTES];
		size_t len, slen;
		int r, ok = 1;

		if ((r = unseal(c, it, &pt, &len)) < 0 || (r = parse_sealed(it, pt, len, &sp, &slen)) < 0)
			ok = 0;
		if (pt)
			sodium_free(pt);
		if (r == -ENOMEM)
			return r;
		/* The clear hashes must say what the sealed attributes say, else a search could find the wrong item. */
		if (ok && it->n_hattrs != it->n_attrs)
			ok = 0;
		for (j = 0; ok && j < it->n_attrs; j++) {
			ss_attr_hash(c, it->attrs[j].name, it->attrs[j].value, h);
			for (k = 0; k < it->n_hattrs; k++)
				if (strcmp(it->hattrs[k].name, it->attrs[j].name) == 0 &&
				    sodium_memcmp(it->hattrs[k].hash, h, sizeof(h)) == 0)
					break;
			if (k == it->n_hattrs)
				ok = 0;
		}
		if (ok) {
			i++;
			continue;
		}
		ss_log("collection %s: item %u does not open with the collection key (tampered with?); it is not served, "
		       "and kept in the file as it is", c->id, it->id);
		{
			ss_item **nb = reallocarray(c->bad, c->n_bad + 1, sizeof(*nb));

			if (!nb)
				return -ENOMEM;
			c->bad = nb;
			c->bad[c->n_bad++] = it;
		}
		memmove(&c->items[i], &c->items[i + 1], (c->n_items - i - 1) * sizeof(*c->items));
		c->n_items--;
		bad++;
	}
	return (int)bad;
}
