/* blob.c — the wrapped data-key format: seal/parse/open of the binary form, and the "tokenseal:v1:" text form. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/context.h"
#include "core/internal.h"
#include "core/text.h"

#define TS_BLOB_MAGIC "TSBL"
#define TS_BLOB_VERSION 0x01
#define TS_BLOB_ALG_XCHACHA20POLY1305 0x01

/* Offsets inside the 54-byte header (docs/FORMAT.md). */
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_ALG 5
#define OFF_VAULT_ID 6
#define OFF_KEY_VERSION 22
#define OFF_CTX_CHECK 26
#define OFF_NONCE 30

_Static_assert(OFF_NONCE + TS_BLOB_NONCE_BYTES == TS_BLOB_HEADER_BYTES, "blob header layout");
_Static_assert(TS_BLOB_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(TS_BLOB_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(TS_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

int ts_kdf_derive(uint8_t out[32], const char ctx[8], const uint8_t key[32])
{
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (crypto_kdf_derive_from_key(out, 32, TS_KDF_SUBKEY_ID, ctx, key) != 0)
		return -TS_E_FAILED;
	return 0;
}

int ts_blob_ctx_key(const uint8_t key[TS_KEY_BYTES], uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES])
{
	return ts_kdf_derive(ctx_key, TS_KDF_CTX_CTXCHECK, key);
}

/*
 * The 4-byte context check: BLAKE2b-256 keyed with KDF(RK, "tsctxchk") over
 * the canonical context, truncated. It only tells "wrong context" apart from
 * "broken blob" for the user; the AEAD is what authenticates.
 */
static int ts_blob_check_of(const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES], const uint8_t *enc, size_t enc_len,
                            uint8_t check[TS_BLOB_CTXCHECK_BYTES])
{
	uint8_t h[32];
	int r = -TS_E_FAILED;

	if (crypto_generichash(h, sizeof(h), enc, enc_len, ctx_key, TS_BLOB_CTXKEY_BYTES) != 0)
		goto out;
	memcpy(check, h, TS_BLOB_CTXCHECK_BYTES);
	r = 0;
out:
	sodium_memzero(h, sizeof(h));
	return r;
}

/*
 * The AAD, header || canonical context, built on the stack when it fits
 * (every usual context does) and on the heap only for a large one: no
 * allocation per blob, and in a batch one encoding for every item
 * (ts_blob_ctx, blob.h). Not secret: it goes into the blob in the clear.
 */
void ts_blob_ctx_init(ts_blob_ctx *c, const ts_kv *ctx, size_t n_ctx)
{
	size_t enc_len = 0;
	uint8_t *p;
	int r;

	c->aad = c->stack;
	c->aad_len = TS_BLOB_HEADER_BYTES;
	c->heap = (ts_buf){ 0 };
	c->check_key = NULL;
	c->nonces = NULL;
	c->n_nonces = 0;
	r = ts_context_encode_to(ctx, n_ctx, c->stack + TS_BLOB_HEADER_BYTES,
	                         sizeof(c->stack) - TS_BLOB_HEADER_BYTES, &enc_len);
	if (r > 0) {
		if ((p = ts_buf_reserve(&c->heap, TS_BLOB_HEADER_BYTES + enc_len)) == NULL)
			r = -TS_E_NOMEM;
		else if ((r = ts_context_encode_to(ctx, n_ctx, p + TS_BLOB_HEADER_BYTES, enc_len, &enc_len)) > 0)
			r = -TS_E_FAILED;
		else
			c->aad = p;
	}
	c->r = r;
	if (r == 0)
		c->aad_len = TS_BLOB_HEADER_BYTES + enc_len;
}

void ts_blob_ctx_copy(ts_blob_ctx *dst, const ts_blob_ctx *src)
{
	uint8_t *p;

	dst->aad = dst->stack;
	dst->aad_len = src->aad_len;
	dst->heap = (ts_buf){ 0 };
	dst->check_key = src->check_key;
	memcpy(dst->check, src->check, sizeof(dst->check));
	/* Never the source's nonces: the copy is for another thread, which would seal with the same ones. */
	dst->nonces = NULL;
	dst->n_nonces = 0;
	dst->r = src->r;
	if (src->r < 0)
		return;
	if (src->aad != src->stack) {
		if ((p = ts_buf_reserve(&dst->heap, src->aad_len)) == NULL) {
			dst->r = -TS_E_NOMEM;
			dst->aad_len = TS_BLOB_HEADER_BYTES;
			return;
		}
		dst->aad = p;
	}
	memcpy(dst->aad + TS_BLOB_HEADER_BYTES, src->aad + TS_BLOB_HEADER_BYTES, src->aad_len - TS_BLOB_HEADER_BYTES);
}

int ts_blob_ctx_verify(const ts_blob_ctx *c, const ts_kv *ctx, size_t n_ctx)
{
	ts_blob_ctx fresh;
	int r;

	if (!c)
		return -TS_E_INVALID_ARGS;
	if (c->r < 0)
		return c->r;
	ts_blob_ctx_init(&fresh, ctx, n_ctx);
	r = fresh.r == 0 && fresh.aad_len == c->aad_len &&
	    memcmp(fresh.aad + TS_BLOB_HEADER_BYTES, c->aad + TS_BLOB_HEADER_BYTES,
	           c->aad_len - TS_BLOB_HEADER_BYTES) == 0 ? 0 : -TS_E_FAILED;
	ts_blob_ctx_free(&fresh);
	return r;
}

void ts_blob_ctx_free(ts_blob_ctx *c)
{
	if (!c)
		return;
	ts_buf_free(&c->heap);
	c->aad = c->stack;
	c->check_key = NULL;
	c->nonces = NULL;
	c->n_nonces = 0;
}

void ts_blob_nonces_draw(uint8_t *out, size_t n)
{
	uint8_t seed[randombytes_SEEDBYTES];

	if (n == 0)
		return;
	randombytes_buf(seed, sizeof(seed));
	randombytes_buf_deterministic(out, n * TS_BLOB_NONCE_BYTES, seed);
	sodium_memzero(seed, sizeof(seed));
}

void ts_blob_ctx_use_nonces(ts_blob_ctx *c, const uint8_t *nonces, size_t n)
{
	c->nonces = n ? nonces : NULL;
	c->n_nonces = nonces ? n : 0;
}

int ts_blob_parse(const uint8_t *blob, size_t len, ts_blob_view *ret)
{
	ts_blob_view v;

	if (!blob || !ret)
		return -TS_E_INVALID_ARGS;
	/* Magic and version first, so a future, longer format is named as such. */
	if (len < OFF_VERSION + 1 || memcmp(blob + OFF_MAGIC, TS_BLOB_MAGIC, 4) != 0)
		return -TS_E_BAD_BLOB;
	if (blob[OFF_VERSION] != TS_BLOB_VERSION)
		return -TS_E_UNSUPPORTED_VERSION;
	if (len < TS_BLOB_OVERHEAD || len > TS_BLOB_MAX)
		return -TS_E_BAD_BLOB;
	if (blob[OFF_ALG] != TS_BLOB_ALG_XCHACHA20POLY1305)
		return -TS_E_BAD_BLOB;

	memset(&v, 0, sizeof(v));
	v.header = blob;
	memcpy(v.vault_id, blob + OFF_VAULT_ID, TS_VAULT_ID_BYTES);
	v.key_version = ts_be32(blob + OFF_KEY_VERSION);
	/* Root-key versions start at 1. */
	if (v.key_version == 0)
		return -TS_E_BAD_BLOB;
	v.ctx_check = blob + OFF_CTX_CHECK;
	v.nonce = blob + OFF_NONCE;
	v.ciphertext = blob + TS_BLOB_HEADER_BYTES;
	v.ciphertext_len = len - TS_BLOB_HEADER_BYTES;
	v.plaintext_len = v.ciphertext_len - TS_BLOB_TAG_BYTES;
	*ret = v;
	return 0;
}

int ts_blob_seal_ctx(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                     const uint8_t vault_id[TS_VAULT_ID_BYTES], uint32_t key_version, ts_blob_ctx *c,
                     const uint8_t *pt, size_t pt_len, ts_buf *out)
{
	size_t orig_len;
	unsigned long long clen = 0;
	uint8_t *h, *p;
	int r;

	if (!key || !ctx_key || !vault_id || !c || !out || key_version == 0 || (pt_len > 0 && !pt))
		return -TS_E_INVALID_ARGS;
	if (pt_len > TS_PLAINTEXT_MAX)
		return -TS_E_LIMIT;
	/* The context's own error, where encoding it per call would have met it. */
	if (c->r < 0)
		return c->r;
	orig_len = out->len;

	/* AAD = header || canonical context; the header is finished before it is hashed in. */
	h = c->aad;
	memcpy(h + OFF_MAGIC, TS_BLOB_MAGIC, 4);
	h[OFF_VERSION] = TS_BLOB_VERSION;
	h[OFF_ALG] = TS_BLOB_ALG_XCHACHA20POLY1305;
	memcpy(h + OFF_VAULT_ID, vault_id, TS_VAULT_ID_BYTES);
	ts_put_be32(h + OFF_KEY_VERSION, key_version);
	/* The check depends on the key and the context only: once per key for a batch. */
	if (c->check_key != ctx_key) {
		c->check_key = NULL;
		if ((r = ts_blob_check_of(ctx_key, c->aad + TS_BLOB_HEADER_BYTES, c->aad_len - TS_BLOB_HEADER_BYTES,
		                           c->check)) < 0)
			goto out;
		c->check_key = ctx_key;
	}
	memcpy(h + OFF_CTX_CHECK, c->check, TS_BLOB_CTXCHECK_BYTES);
	/* A nonce drawn in bulk for this seal (ts_blob_nonces_draw), used once; else one of its own. */
	if (c->n_nonces > 0) {
		memcpy(h + OFF_NONCE, c->nonces, TS_BLOB_NONCE_BYTES);
		c->nonces += TS_BLOB_NONCE_BYTES;
		c->n_nonces--;
	} else
		randombytes_buf(h + OFF_NONCE, TS_BLOB_NONCE_BYTES);

	if ((r = ts_buf_append(out, h, TS_BLOB_HEADER_BYTES)) < 0)
		goto out;
	if ((p = ts_buf_reserve(out, pt_len + TS_BLOB_TAG_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(p, &clen, pt, pt_len, c->aad, c->aad_len, NULL,
	                                               h + OFF_NONCE, key) != 0 ||
	    clen != pt_len + TS_BLOB_TAG_BYTES) {
		r = -TS_E_FAILED;
		goto out;
	}
	r = 0;
out:
	if (r < 0 && out->len > orig_len) {
		sodium_memzero(out->data + orig_len, out->len - orig_len);
		out->len = orig_len;
	}
	return r;
}

int ts_blob_seal_with(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                      const uint8_t vault_id[TS_VAULT_ID_BYTES], uint32_t key_version,
                      const ts_kv *ctx, size_t n_ctx, const uint8_t *pt, size_t pt_len, ts_buf *out)
{
	ts_blob_ctx c;
	int r;

	/* seal_ctx checks the arguments first, then meets the context's error: the order it always had. */
	ts_blob_ctx_init(&c, ctx, n_ctx);
	r = ts_blob_seal_ctx(key, ctx_key, vault_id, key_version, &c, pt, pt_len, out);
	ts_blob_ctx_free(&c);
	return r;
}

int ts_blob_seal(const uint8_t key[TS_KEY_BYTES], const uint8_t vault_id[TS_VAULT_ID_BYTES],
                 uint32_t key_version, const ts_kv *ctx, size_t n_ctx,
                 const uint8_t *pt, size_t pt_len, ts_buf *out)
{
	uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES];
	int r;

	if (!key)
		return -TS_E_INVALID_ARGS;
	if ((r = ts_blob_ctx_key(key, ctx_key)) == 0)
		r = ts_blob_seal_with(key, ctx_key, vault_id, key_version, ctx, n_ctx, pt, pt_len, out);
	sodium_memzero(ctx_key, sizeof(ctx_key));
	return r;
}

int ts_blob_open_ctx(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                     const ts_blob_view *v, ts_blob_ctx *c, uint8_t *pt_out)
{
	uint8_t check[TS_BLOB_CTXCHECK_BYTES];
	unsigned long long mlen = 0;
	int r;

	if (!key || !ctx_key || !v || !c || !v->header || !v->ciphertext || v->ciphertext_len < TS_BLOB_TAG_BYTES ||
	    v->plaintext_len != v->ciphertext_len - TS_BLOB_TAG_BYTES || (v->plaintext_len && !pt_out))
		return -TS_E_INVALID_ARGS;

	/* The context's own error, where encoding it per call would have met it. */
	if ((r = c->r) < 0)
		goto out;
	memcpy(c->aad, v->header, TS_BLOB_HEADER_BYTES);
	/*
	 * The AEAD first: it authenticates the header (context check
	 * included) and the context together, so when it holds, the check
	 * the blob carries is the one its sealer computed over this very
	 * context. Only a failure needs the check, to tell a wrong context
	 * (ContextMismatch) from a damaged blob (BadBlob) — the same answer
	 * comparing it first gave, without a keyed hash per good blob.
	 */
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt_out, &mlen, NULL, v->ciphertext,
	                                               v->ciphertext_len, c->aad, c->aad_len,
	                                               v->nonce, key) == 0 &&
	    mlen == v->plaintext_len) {
		r = 0;
		goto out;
	}
	if ((r = ts_blob_check_of(ctx_key, c->aad + TS_BLOB_HEADER_BYTES, c->aad_len - TS_BLOB_HEADER_BYTES,
	                           check)) < 0)
		goto out;
	r = sodium_memcmp(check, v->ctx_check, TS_BLOB_CTXCHECK_BYTES) != 0 ? -TS_E_CONTEXT_MISMATCH
	                                                                      : -TS_E_BAD_BLOB;
out:
	if (r < 0 && pt_out && v->plaintext_len)
		sodium_memzero(pt_out, v->plaintext_len);
	return r;
}

int ts_blob_open_with(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                      const ts_blob_view *v, const ts_kv *ctx, size_t n_ctx, uint8_t *pt_out)
{
	ts_blob_ctx c;
	int r;

	ts_blob_ctx_init(&c, ctx, n_ctx);
	r = ts_blob_open_ctx(key, ctx_key, v, &c, pt_out);
	ts_blob_ctx_free(&c);
	return r;
}

int ts_blob_open(const uint8_t key[TS_KEY_BYTES], const ts_blob_view *v,
                 const ts_kv *ctx, size_t n_ctx, uint8_t *pt_out)
{
	uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES];
	int r;

	if (!key)
		return -TS_E_INVALID_ARGS;
	if ((r = ts_blob_ctx_key(key, ctx_key)) == 0)
		r = ts_blob_open_with(key, ctx_key, v, ctx, n_ctx, pt_out);
	sodium_memzero(ctx_key, sizeof(ctx_key));
	return r;
}

int ts_blob_to_text(const uint8_t *blob, size_t len, char **ret)
{
	const size_t plen = sizeof(TS_BLOB_TEXT_PREFIX) - 1;
	size_t b64_len;
	char *s;

	if (!blob || !ret || len == 0)
		return -TS_E_INVALID_ARGS;
	if (len > TS_BLOB_MAX)
		return -TS_E_LIMIT;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	b64_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if ((s = malloc(plen + b64_len)) == NULL)
		return -TS_E_NOMEM;
	memcpy(s, TS_BLOB_TEXT_PREFIX, plen);
	sodium_bin2base64(s + plen, b64_len, blob, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	*ret = s;
	return 0;
}


int ts_blob_from_text(const char *text, size_t len, ts_buf *out)
{
	static const char pfx[] = "tokenseal:v";
	const char *p, *end, *b64_end = NULL;
	size_t digits, bin_len = 0, max_b64, orig_len = out->len;
	uint8_t *bin;

	if (!text || !out)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	ts_text_trim(&text, &len);
	p = text;
	end = text + len;

	if ((size_t)(end - p) < sizeof(pfx) - 1 || memcmp(p, pfx, sizeof(pfx) - 1) != 0)
		return -TS_E_BAD_BLOB;
	p += sizeof(pfx) - 1;
	for (digits = 0; p + digits < end && p[digits] >= '0' && p[digits] <= '9'; digits++)
		if (digits > 9)
			return -TS_E_BAD_BLOB;
	if (digits == 0 || p + digits >= end || p[digits] != ':' || p[0] == '0')
		return -TS_E_BAD_BLOB;
	if (digits != 1 || p[0] != '1')
		return -TS_E_UNSUPPORTED_VERSION;
	p += digits + 1;

	max_b64 = sodium_base64_ENCODED_LEN(TS_BLOB_MAX, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
	if (p == end || (size_t)(end - p) > max_b64)
		return -TS_E_BAD_BLOB;
	if ((bin = ts_buf_reserve(out, (size_t)(end - p) / 4 * 3 + 3)) == NULL)
		return -TS_E_NOMEM;
	/*
	 * No ignore set and b64_end checked: every character must be base64url.
	 * libsodium also refuses non-zero leftover bits, so one text, one blob.
	 */
	if (sodium_base642bin(bin, (size_t)(end - p) / 4 * 3 + 3, p, (size_t)(end - p), NULL, &bin_len,
	                      &b64_end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    b64_end != end || bin_len == 0) {
		out->len = orig_len;
		return -TS_E_BAD_BLOB;
	}
	out->len = orig_len + bin_len;
	return 0;
}

/* Public client API wrappers (include/tokenseal.h). */

int ts_blob_encode_text(const uint8_t *blob, size_t len, char **ret)
{
	return ts_blob_to_text(blob, len, ret);
}

int ts_blob_decode_text(const char *text, uint8_t **ret, size_t *ret_len)
{
	ts_buf b = { 0 };
	int r;

	if (!text || !ret || !ret_len)
		return -TS_E_INVALID_ARGS;
	if ((r = ts_blob_from_text(text, strlen(text), &b)) < 0) {
		ts_buf_free(&b);
		return r;
	}
	/* Hand the malloc()ed bytes over; the caller free()s them. */
	*ret = b.data;
	*ret_len = b.len;
	return 0;
}
