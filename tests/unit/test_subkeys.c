/* test_subkeys.c — the context-check keys a keyring derives once per root key: right, wiped with their key, and giving the blobs the per-blob derivation gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/keyring.h"
#include "core/vault.h"
#include "vault_util.h"

#define NOW 1700000000u

static const uint8_t zero[TS_KEY_BYTES];
static const ts_kv ctx[] = { { "app", "org.example.Mail" } };
static const ts_kv other_ctx[] = { { "app", "org.example.Other" } };
/* docs/FORMAT.md's vector inputs (tests/unit/test_vectors.c checks the document against them). */
static const ts_kv vec_ctx[] = { { "purpose", "db-key" }, { "app", "org.example.Mail" } };
static const char vec_pt[] = "tokenseal test vector data key!!";

static void seq(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

/*
 * The system generator, except while `fixed` is set: then every request
 * gets the vectors' nonce pattern 0xc0, 0xc1, ..., so ts_blob_seal and
 * ts_blob_seal_with write the document's blob.
 */
static int fixed;

static const char *rng_name(void)
{
	return "tokenseal-test-subkeys";
}

static void rng_buf(void *buf, size_t n)
{
	if (fixed)
		seq(buf, n, 0xc0);
	else
		randombytes_sysrandom_implementation.buf(buf, n);
}

static uint32_t rng_random(void)
{
	uint32_t v;

	rng_buf(&v, sizeof(v));
	return v;
}

static randombytes_implementation rng = {
	.implementation_name = rng_name,
	.random = rng_random,
	.buf = rng_buf,
};

/* The context-check key of version `version` must be KDF(RK_version, "tsctxchk"), computed here apart. */
static void assert_ctx_key_of(const ts_keyring *k, uint32_t version)
{
	const uint8_t *rk = NULL, *ck = NULL;
	uint8_t want[32];

	assert_int_equal(ts_keyring_keys(k, version, &rk, &ck), 0);
	assert_non_null(ck);
	assert_int_equal(crypto_kdf_derive_from_key(want, sizeof(want), 1, "tsctxchk", rk), 0);
	assert_memory_equal(ck, want, sizeof(want));
	assert_memory_not_equal(ck, zero, sizeof(want));
}

static void keyring_ctx_keys_are_derived_from_each_root_key(void **state)
{
	_ts_cleanup_buf_ ts_buf sealed = { 0 };
	uint8_t vs[TS_KEY_BYTES];
	const uint8_t vid[TS_VAULT_ID_BYTES] = "vault-id-0000001";
	ts_keyring *k = NULL, *back = NULL;
	const uint8_t *a, *b;
	uint32_t v;

	randombytes_buf(vs, sizeof(vs));
	assert_int_equal(ts_keyring_new(&k, NOW), 0);
	assert_ctx_key_of(k, 1);
	for (v = 2; v <= 4; v++) {
		assert_int_equal(ts_keyring_rotate(k, NOW + v, NULL), 0);
		/* The keys already there moved with the block and are still right. */
		for (uint32_t u = 1; u <= v; u++)
			assert_ctx_key_of(k, u);
	}
	assert_int_equal(ts_keyring_keys(k, 1, &a, &b), 0);
	assert_int_equal(ts_keyring_keys(k, 2, &a, &a), 0);
	assert_memory_not_equal(a, b, TS_BLOB_CTXKEY_BYTES);
	assert_int_equal(ts_keyring_keys(k, 5, &a, &b), -TS_E_BAD_BLOB);
	assert_int_equal(ts_keyring_keys(k, 0, &a, &b), -TS_E_BAD_BLOB);

	/* Opened from its sealed form: derived again at open, the same keys. */
	assert_int_equal(ts_keyring_seal(k, vs, vid, &sealed), 0);
	assert_int_equal(ts_keyring_open(vs, vid, sealed.data, sealed.len, &back), 0);
	for (v = 1; v <= 4; v++) {
		assert_int_equal(ts_keyring_keys(k, v, &a, &a), 0);
		assert_int_equal(ts_keyring_keys(back, v, &b, &b), 0);
		assert_memory_equal(a, b, TS_BLOB_CTXKEY_BYTES);
		assert_ctx_key_of(back, v);
	}
	/* The context-check keys are never sealed: the sealed size is the layout's alone. */
	assert_int_equal(sealed.len, 24 + 16 + 12 + 4 * 44);
	ts_keyring_free(k);
	ts_keyring_free(back);
}

static void retiring_a_version_wipes_its_ctx_key(void **state)
{
	_ts_cleanup_buf_ ts_buf sealed = { 0 };
	uint8_t vs[TS_KEY_BYTES];
	const uint8_t vid[TS_VAULT_ID_BYTES] = "vault-id-0000002";
	ts_keyring *k = NULL, *back = NULL;
	const uint8_t *rk1, *ck1, *rk2, *ck2, *p;

	randombytes_buf(vs, sizeof(vs));
	assert_int_equal(ts_keyring_new(&k, NOW), 0);
	assert_int_equal(ts_keyring_rotate(k, NOW + 1, NULL), 0);
	assert_int_equal(ts_keyring_rotate(k, NOW + 2, NULL), 0);
	/* Retiring does not move the block: these pointers stay valid and must read zero after. */
	assert_int_equal(ts_keyring_keys(k, 1, &rk1, &ck1), 0);
	assert_int_equal(ts_keyring_keys(k, 2, &rk2, &ck2), 0);
	assert_memory_not_equal(ck1, zero, TS_BLOB_CTXKEY_BYTES);
	assert_memory_not_equal(ck2, zero, TS_BLOB_CTXKEY_BYTES);

	assert_int_equal(ts_keyring_retire_below(k, 3), 0);
	assert_memory_equal(rk1, zero, TS_KEY_BYTES);
	assert_memory_equal(rk2, zero, TS_KEY_BYTES);
	assert_memory_equal(ck1, zero, TS_BLOB_CTXKEY_BYTES);
	assert_memory_equal(ck2, zero, TS_BLOB_CTXKEY_BYTES);
	assert_int_equal(ts_keyring_keys(k, 1, &p, &p), -TS_E_KEY_RETIRED);
	assert_int_equal(ts_keyring_keys(k, 2, &p, NULL), -TS_E_KEY_RETIRED);
	assert_ctx_key_of(k, 3);

	/* A keyring opened with versions retired derives nothing for them. */
	assert_int_equal(ts_keyring_seal(k, vs, vid, &sealed), 0);
	assert_int_equal(ts_keyring_open(vs, vid, sealed.data, sealed.len, &back), 0);
	assert_int_equal(ts_keyring_keys(back, 1, &p, &p), -TS_E_KEY_RETIRED);
	assert_ctx_key_of(back, 3);
	/* And rotating after retiring carries the wiped slots over as zero. */
	assert_int_equal(ts_keyring_rotate(back, NOW + 3, NULL), 0);
	assert_int_equal(ts_keyring_keys(back, 1, &p, &p), -TS_E_KEY_RETIRED);
	assert_ctx_key_of(back, 3);
	assert_ctx_key_of(back, 4);
	ts_keyring_free(k);
	ts_keyring_free(back);
}

/* The attack: a vault locked, or a version retired, must not unwrap through any cached key. */
static void unwrap_fails_after_lock_and_after_retiring(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf b1 = { 0 };
	_ts_cleanup_buf_ ts_buf b2 = { 0 };
	ts_vault *v = NULL, *w;
	uint8_t *vs = ts_secure_alloc(TS_KEY_BYTES);

	assert_non_null(vs);
	assert_int_equal(ts_vault_create(&v, "alice", 1000, NOW), 0);
	assert_int_equal(ts_vault_wrap(v, ctx, 1, (const uint8_t *)"key one", 7, &b1), 0);
	assert_int_equal(ts_vault_rotate(v, NOW + 1, NULL), 0);
	assert_int_equal(ts_vault_wrap(v, ctx, 1, (const uint8_t *)"key two", 7, &b2), 0);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b1, "key one"), 0);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b2, "key two"), 0);
	assert_int_equal(tv_unwrap(v, other_ctx, 1, &b2, NULL), -TS_E_CONTEXT_MISMATCH);

	assert_int_equal(ts_vault_retire_below(v, 2), 0);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b1, NULL), -TS_E_KEY_RETIRED);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b2, "key two"), 0);
	memcpy(vs, v->vs, TS_KEY_BYTES);
	assert_int_equal(ts_vault_serialize(v, &file), 0);

	ts_vault_lock(v);
	assert_null(v->keyring);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b1, NULL), -TS_E_LOCKED);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b2, NULL), -TS_E_LOCKED);
	assert_int_equal(ts_vault_wrap(v, ctx, 1, (const uint8_t *)"x", 1, &b1), -TS_E_LOCKED);

	/* Unlocked again from its file: the retired version stays retired, the live one opens. */
	w = tv_reload(&file);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b2, NULL), -TS_E_LOCKED);
	assert_int_equal(ts_vault_unlock_vs(w, vs), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b2, "key two"), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b1, NULL), -TS_E_KEY_RETIRED);
	ts_vault_lock(w);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b2, NULL), -TS_E_LOCKED);
	ts_vault_free(w);
	ts_vault_free(v);
	ts_secure_free(vs);
}

/*
 * A sealed keyring of 7 versions whose RK_7 is the vectors' root key
 * (00 01 .. 1f), built here byte by byte as docs/FORMAT.md describes it,
 * and opened by the code: so the vector blob goes through the keyring's
 * own derived key.
 */
static ts_keyring *vector_keyring(void)
{
	uint8_t vs[TS_KEY_BYTES], kk[32], plain[12 + 7 * 44], sealed[24 + sizeof(plain) + 16];
	const uint8_t vid[TS_VAULT_ID_BYTES] = "vault-id-0000007";
	ts_keyring *k = NULL;
	uint8_t aad[20 + TS_VAULT_ID_BYTES];

	randombytes_buf(vs, sizeof(vs));
	ts_put_be32(plain, 7);
	ts_put_be32(plain + 4, 7);
	ts_put_be32(plain + 8, 1);
	for (uint32_t i = 1; i <= 7; i++) {
		uint8_t *e = plain + 12 + (i - 1) * 44;

		ts_put_be32(e, i);
		ts_put_be64(e + 4, NOW + i);
		if (i == 7)
			seq(e + 12, 32, 0x00);
		else
			randombytes_buf(e + 12, 32);
	}
	memcpy(aad, "tokenseal-keyring-v1", 20);
	memcpy(aad + 20, vid, TS_VAULT_ID_BYTES);
	assert_int_equal(crypto_kdf_derive_from_key(kk, 32, 1, "tskeyrng", vs), 0);
	randombytes_buf(sealed, 24);
	assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + 24, NULL, plain, sizeof(plain), aad,
	                                                            sizeof(aad), NULL, sealed, kk), 0);
	assert_int_equal(ts_keyring_open(vs, vid, sealed, sizeof(sealed), &k), 0);
	sodium_memzero(plain, sizeof(plain));
	sodium_memzero(kk, sizeof(kk));
	return k;
}

static void cached_and_uncached_paths_agree_on_the_vectors(void **state)
{
	_ts_cleanup_buf_ ts_buf a = { 0 };
	_ts_cleanup_buf_ ts_buf b = { 0 };
	_ts_cleanup_buf_ ts_buf c = { 0 };
	uint8_t key[32], vid[16], ck[TS_BLOB_CTXKEY_BYTES], pt1[64], pt2[64];
	const uint8_t *rk7, *ck7;
	ts_keyring *k = vector_keyring();
	ts_blob_view v;

	seq(key, sizeof(key), 0x00);
	seq(vid, sizeof(vid), 0xa0);
	assert_int_equal(ts_keyring_keys(k, 7, &rk7, &ck7), 0);
	assert_memory_equal(rk7, key, sizeof(key));
	assert_int_equal(ts_blob_ctx_key(key, ck), 0);
	assert_memory_equal(ck, ck7, sizeof(ck));

	/* Seal: per-blob derivation, a given key, the keyring's key: one blob, byte for byte. */
	fixed = 1;
	assert_int_equal(ts_blob_seal(key, vid, 7, vec_ctx, 2, (const uint8_t *)vec_pt, strlen(vec_pt), &a), 0);
	assert_int_equal(ts_blob_seal_with(key, ck, vid, 7, vec_ctx, 2, (const uint8_t *)vec_pt, strlen(vec_pt), &b),
	                 0);
	assert_int_equal(ts_blob_seal_with(rk7, ck7, vid, 7, vec_ctx, 2, (const uint8_t *)vec_pt, strlen(vec_pt),
	                                   &c), 0);
	fixed = 0;
	assert_int_equal(a.len, 70 + strlen(vec_pt));
	assert_int_equal(b.len, a.len);
	assert_int_equal(c.len, a.len);
	assert_memory_equal(a.data, b.data, a.len);
	assert_memory_equal(a.data, c.data, a.len);

	/* Open: the same plaintext, and the same error for each way of getting it wrong. */
	assert_int_equal(ts_blob_parse(a.data, a.len, &v), 0);
	assert_int_equal(ts_blob_open(key, &v, vec_ctx, 2, pt1), 0);
	assert_int_equal(ts_blob_open_with(rk7, ck7, &v, vec_ctx, 2, pt2), 0);
	assert_memory_equal(pt1, vec_pt, strlen(vec_pt));
	assert_memory_equal(pt2, vec_pt, strlen(vec_pt));
	assert_int_equal(ts_blob_open(key, &v, vec_ctx, 1, pt1), -TS_E_CONTEXT_MISMATCH);
	assert_int_equal(ts_blob_open_with(rk7, ck7, &v, vec_ctx, 1, pt2), -TS_E_CONTEXT_MISMATCH);
	assert_memory_equal(pt2, zero, strlen(vec_pt));
	a.data[a.len - 1] ^= 1;
	assert_int_equal(ts_blob_open(key, &v, vec_ctx, 2, pt1), -TS_E_BAD_BLOB);
	assert_int_equal(ts_blob_open_with(rk7, ck7, &v, vec_ctx, 2, pt2), -TS_E_BAD_BLOB);
	assert_memory_equal(pt2, zero, strlen(vec_pt));
	/* Another version's key: its context check does not match. */
	assert_int_equal(ts_keyring_keys(k, 6, &rk7, &ck7), 0);
	a.data[a.len - 1] ^= 1;
	assert_int_equal(ts_blob_open_with(rk7, ck7, &v, vec_ctx, 2, pt2), -TS_E_CONTEXT_MISMATCH);
	ts_keyring_free(k);
	sodium_memzero(pt1, sizeof(pt1));
}

/*
 * A context encoded once (ts_blob_ctx, for batches): the vector blob byte
 * for byte, again with the check it keeps, under another key (the check
 * computed anew), from a copy; the same errors as the per-call forms.
 */
static void a_context_encoded_once_gives_the_same_blobs_and_errors(void **state)
{
	static const ts_kv dup[] = { { "app", "a" }, { "app", "a" } };
	_ts_cleanup_buf_ ts_buf want = { 0 };
	_ts_cleanup_buf_ ts_buf want6 = { 0 };
	_ts_cleanup_buf_ ts_buf got = { 0 };
	const uint8_t *pt = (const uint8_t *)vec_pt;
	const size_t len = strlen(vec_pt);
	const uint8_t *rk7, *ck7, *rk6, *ck6;
	ts_keyring *k = vector_keyring();
	ts_blob_ctx c, c2, bad;
	uint8_t vid[16], out[64];
	ts_blob_view v;

	seq(vid, sizeof(vid), 0xa0);
	assert_int_equal(ts_keyring_keys(k, 7, &rk7, &ck7), 0);
	assert_int_equal(ts_keyring_keys(k, 6, &rk6, &ck6), 0);
	fixed = 1;
	assert_int_equal(ts_blob_seal_with(rk7, ck7, vid, 7, vec_ctx, 2, pt, len, &want), 0);
	assert_int_equal(ts_blob_seal_with(rk6, ck6, vid, 6, vec_ctx, 2, pt, len, &want6), 0);

	ts_blob_ctx_init(&c, vec_ctx, 2);
	assert_int_equal(c.r, 0);
	for (int round = 0; round < 2; round++) {   /* the second with the check kept */
		got.len = 0;
		assert_int_equal(ts_blob_seal_ctx(rk7, ck7, vid, 7, &c, pt, len, &got), 0);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len);
	}
	got.len = 0;
	assert_int_equal(ts_blob_seal_ctx(rk6, ck6, vid, 6, &c, pt, len, &got), 0);
	assert_memory_equal(got.data, want6.data, want6.len);
	ts_blob_ctx_copy(&c2, &c);
	got.len = 0;
	assert_int_equal(ts_blob_seal_ctx(rk7, ck7, vid, 7, &c2, pt, len, &got), 0);
	assert_memory_equal(got.data, want.data, want.len);
	fixed = 0;
	assert_int_equal(ts_blob_ctx_verify(&c, vec_ctx, 2), 0);
	assert_int_equal(ts_blob_ctx_verify(&c2, vec_ctx, 2), 0);
	assert_int_equal(ts_blob_ctx_verify(&c, vec_ctx, 1), -TS_E_FAILED);
	c2.aad[c2.aad_len - 1] ^= 1;
	assert_int_equal(ts_blob_ctx_verify(&c2, vec_ctx, 2), -TS_E_FAILED);
	ts_blob_ctx_free(&c2);

	/* Open: the plaintext; a wrong key's context check says ContextMismatch, a flipped tag BadBlob. */
	assert_int_equal(ts_blob_parse(want.data, want.len, &v), 0);
	assert_int_equal(ts_blob_open_ctx(rk7, ck7, &v, &c, out), 0);
	assert_memory_equal(out, vec_pt, len);
	assert_int_equal(ts_blob_open_ctx(rk6, ck6, &v, &c, out), -TS_E_CONTEXT_MISMATCH);
	assert_memory_equal(out, zero, len);
	want.data[want.len - 1] ^= 1;
	assert_int_equal(ts_blob_open_ctx(rk7, ck7, &v, &c, out), -TS_E_BAD_BLOB);
	assert_memory_equal(out, zero, len);
	want.data[want.len - 1] ^= 1;
	ts_blob_ctx_free(&c);

	/* A malformed context: its error after the call's own checks, as per call; the output wiped. */
	ts_blob_ctx_init(&bad, dup, 2);
	assert_int_equal(bad.r, -TS_E_INVALID_ARGS);
	assert_int_equal(ts_blob_seal_ctx(rk7, ck7, vid, 7, &bad, pt, TS_PLAINTEXT_MAX + 1, &got),
	                 ts_blob_seal_with(rk7, ck7, vid, 7, dup, 2, pt, TS_PLAINTEXT_MAX + 1, &got));
	assert_int_equal(ts_blob_seal_ctx(rk7, ck7, vid, 7, &bad, pt, len, &got), -TS_E_INVALID_ARGS);
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(ts_blob_open_ctx(rk7, ck7, &v, &bad, out), -TS_E_INVALID_ARGS);
	assert_memory_equal(out, zero, len);
	assert_int_equal(ts_blob_ctx_verify(&bad, dup, 2), -TS_E_INVALID_ARGS);
	ts_blob_ctx_copy(&c2, &bad);
	assert_int_equal(c2.r, -TS_E_INVALID_ARGS);
	ts_blob_ctx_free(&c2);
	ts_blob_ctx_free(&bad);
	ts_keyring_free(k);
	sodium_memzero(out, sizeof(out));
}

/* A vault's blobs (cached path) open with the bare root key (per-blob path), and the other way round. */
static void vault_blobs_open_on_both_paths(void **state)
{
	static char big[TS_CONTEXT_VALUE_MAX + 1];
	_ts_cleanup_buf_ ts_buf a = { 0 };
	_ts_cleanup_buf_ ts_buf b = { 0 };
	ts_kv big_ctx[2] = { { "app", "org.example.Mail" }, { "blob", big } };
	uint8_t pt[16];
	const uint8_t *rk;
	ts_vault *v = NULL;
	ts_blob_view bv;

	/* A context larger than the stack buffer for the AAD: the heap path must give the same. */
	memset(big, 'x', TS_CONTEXT_VALUE_MAX);
	assert_int_equal(ts_vault_create(&v, "bob", 1000, NOW), 0);
	assert_int_equal(ts_keyring_key(v->keyring, 1, &rk), 0);
	for (size_t n = 1; n <= 2; n++) {
		const ts_kv *c = n == 1 ? ctx : big_ctx;

		a.len = b.len = 0;
		assert_int_equal(ts_vault_wrap(v, c, n, (const uint8_t *)"cached wrap", 11, &a), 0);
		assert_int_equal(ts_blob_parse(a.data, a.len, &bv), 0);
		assert_int_equal(ts_blob_open(rk, &bv, c, n, pt), 0);
		assert_memory_equal(pt, "cached wrap", 11);
		assert_int_equal(ts_blob_open(rk, &bv, ctx, n == 1 ? 0 : 1, pt), -TS_E_CONTEXT_MISMATCH);

		assert_int_equal(ts_blob_seal(rk, v->id, 1, c, n, (const uint8_t *)"bare seal", 9, &b), 0);
		assert_int_equal(tv_unwrap(v, c, n, &b, "bare seal"), 0);
		assert_int_equal(tv_unwrap(v, ctx, n == 1 ? 0 : 1, &b, NULL), -TS_E_CONTEXT_MISMATCH);
	}
	sodium_memzero(pt, sizeof(pt));
	ts_vault_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keyring_ctx_keys_are_derived_from_each_root_key),
		cmocka_unit_test(retiring_a_version_wipes_its_ctx_key),
		cmocka_unit_test(unwrap_fails_after_lock_and_after_retiring),
		cmocka_unit_test(cached_and_uncached_paths_agree_on_the_vectors),
		cmocka_unit_test(vault_blobs_open_on_both_paths),
		cmocka_unit_test(a_context_encoded_once_gives_the_same_blobs_and_errors),
	};

	if (randombytes_set_implementation(&rng) != 0 || sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
