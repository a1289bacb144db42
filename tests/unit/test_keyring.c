/* test_keyring.c — root-key versions: rotation, retirement, sealing, and a parser that distrusts the plaintext too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/keyring.h"

static uint8_t vs[TS_KEY_BYTES];
static const uint8_t vid[TS_VAULT_ID_BYTES] = "vault-id-0000001";
static const uint8_t zero[TS_KEY_BYTES];

static int setup(void **state)
{
	randombytes_buf(vs, sizeof(vs));
	return 0;
}

static void new_keyring_has_one_random_current_key(void **state)
{
	ts_keyring *k = NULL, *k2 = NULL;
	const uint8_t *a, *b;

	assert_int_equal(ts_keyring_new(&k, 1000), 0);
	assert_int_equal(ts_keyring_new(&k2, 1000), 0);
	assert_int_equal(ts_keyring_current(k), 1);
	assert_int_equal(ts_keyring_min_version(k), 1);
	assert_true(ts_keyring_current_created(k) == 1000);
	assert_int_equal(ts_keyring_key(k, 1, &a), 0);
	assert_int_equal(ts_keyring_key(k2, 1, &b), 0);
	assert_memory_not_equal(a, zero, TS_KEY_BYTES);
	assert_memory_not_equal(a, b, TS_KEY_BYTES);
	assert_int_equal(ts_keyring_key(k, 0, &a), -TS_E_BAD_BLOB);
	assert_int_equal(ts_keyring_key(k, 2, &a), -TS_E_BAD_BLOB);
	ts_keyring_free(k);
	ts_keyring_free(k2);
	ts_keyring_free(NULL);
}

static void rotation_adds_a_version_and_keeps_old_keys(void **state)
{
	ts_keyring *k = NULL;
	const uint8_t *p;
	uint8_t k1[TS_KEY_BYTES];
	uint32_t v = 0;

	assert_int_equal(ts_keyring_new(&k, 1000), 0);
	assert_int_equal(ts_keyring_key(k, 1, &p), 0);
	memcpy(k1, p, sizeof(k1));
	assert_int_equal(ts_keyring_rotate(k, 2000, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(ts_keyring_current(k), 2);
	assert_true(ts_keyring_current_created(k) == 2000);
	assert_int_equal(ts_keyring_key(k, 1, &p), 0);
	assert_memory_equal(p, k1, sizeof(k1));
	assert_int_equal(ts_keyring_key(k, 2, &p), 0);
	assert_memory_not_equal(p, k1, sizeof(k1));
	assert_int_equal(ts_keyring_rotate(k, 3000, NULL), 0);
	assert_int_equal(ts_keyring_current(k), 3);
	ts_keyring_free(k);
}

static void retire_below_refuses_old_versions_and_never_goes_back(void **state)
{
	ts_keyring *k = NULL;
	const uint8_t *p;

	assert_int_equal(ts_keyring_new(&k, 1), 0);
	assert_int_equal(ts_keyring_rotate(k, 2, NULL), 0);
	assert_int_equal(ts_keyring_rotate(k, 3, NULL), 0);
	assert_int_equal(ts_keyring_retire_below(k, 4), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_keyring_retire_below(k, 3), 0);
	assert_int_equal(ts_keyring_min_version(k), 3);
	assert_int_equal(ts_keyring_key(k, 1, &p), -TS_E_KEY_RETIRED);
	assert_int_equal(ts_keyring_key(k, 2, &p), -TS_E_KEY_RETIRED);
	assert_int_equal(ts_keyring_key(k, 3, &p), 0);
	/* Lowering the minimum cannot bring a wiped key back. */
	assert_int_equal(ts_keyring_retire_below(k, 1), 0);
	assert_int_equal(ts_keyring_min_version(k), 3);
	assert_int_equal(ts_keyring_key(k, 2, &p), -TS_E_KEY_RETIRED);
	ts_keyring_free(k);
}

static void version_count_is_limited(void **state)
{
	ts_keyring *k = NULL;
	uint32_t v = 0;

	assert_int_equal(ts_keyring_new(&k, 1), 0);
	for (uint32_t i = 2; i <= TS_KEYRING_MAX_VERSIONS; i++)
		assert_int_equal(ts_keyring_rotate(k, i, &v), 0);
	assert_int_equal(v, TS_KEYRING_MAX_VERSIONS);
	assert_int_equal(ts_keyring_rotate(k, 1, &v), -TS_E_LIMIT);
	assert_int_equal(ts_keyring_current(k), TS_KEYRING_MAX_VERSIONS);
	ts_keyring_free(k);
}

static void seal_open_round_trip_keeps_every_version(void **state)
{
	_ts_cleanup_buf_ ts_buf s = { 0 };
	_ts_cleanup_buf_ ts_buf s2 = { 0 };
	ts_keyring *k = NULL, *o = NULL;
	const uint8_t *a, *b;

	assert_int_equal(ts_keyring_new(&k, 10), 0);
	assert_int_equal(ts_keyring_rotate(k, 20, NULL), 0);
	assert_int_equal(ts_keyring_rotate(k, 30, NULL), 0);
	assert_int_equal(ts_keyring_retire_below(k, 2), 0);
	assert_int_equal(ts_keyring_seal(k, vs, vid, &s), 0);
	assert_int_equal(s.len, 24 + 16 + 12 + 3 * 44);
	assert_int_equal(ts_keyring_open(vs, vid, s.data, s.len, &o), 0);
	assert_int_equal(ts_keyring_current(o), 3);
	assert_int_equal(ts_keyring_min_version(o), 2);
	assert_true(ts_keyring_current_created(o) == 30);
	assert_int_equal(ts_keyring_key(o, 1, &a), -TS_E_KEY_RETIRED);
	for (uint32_t v = 2; v <= 3; v++) {
		assert_int_equal(ts_keyring_key(k, v, &a), 0);
		assert_int_equal(ts_keyring_key(o, v, &b), 0);
		assert_memory_equal(a, b, TS_KEY_BYTES);
	}
	/* A fresh nonce each time. */
	assert_int_equal(ts_keyring_seal(k, vs, vid, &s2), 0);
	assert_memory_not_equal(s.data, s2.data, 24);
	ts_keyring_free(k);
	ts_keyring_free(o);
}

static void open_refuses_wrong_vs_wrong_vault_flips_and_truncations(void **state)
{
	_ts_cleanup_buf_ ts_buf s = { 0 };
	ts_keyring *k = NULL, *o = NULL;
	uint8_t other[TS_KEY_BYTES];
	uint8_t other_vid[TS_VAULT_ID_BYTES];

	memcpy(other_vid, vid, sizeof(other_vid));
	other_vid[15] ^= 1;
	randombytes_buf(other, sizeof(other));
	assert_int_equal(ts_keyring_new(&k, 10), 0);
	assert_int_equal(ts_keyring_seal(k, vs, vid, &s), 0);
	assert_int_equal(ts_keyring_open(other, vid, s.data, s.len, &o), -TS_E_CORRUPT);
	assert_int_equal(ts_keyring_open(vs, other_vid, s.data, s.len, &o), -TS_E_CORRUPT);
	for (size_t i = 0; i < s.len; i++) {
		s.data[i] ^= 0x40;
		assert_int_equal(ts_keyring_open(vs, vid, s.data, s.len, &o), -TS_E_CORRUPT);
		s.data[i] ^= 0x40;
	}
	for (size_t len = 0; len < s.len; len++)
		assert_int_equal(ts_keyring_open(vs, vid, s.data, len, &o), -TS_E_CORRUPT);
	assert_null(o);
	ts_keyring_free(k);
}

/*
 * Seal a hand-made plaintext exactly as docs/FORMAT.md describes, written
 * independently of keyring.c: what authenticates must still make sense.
 */
static int open_crafted(const uint8_t *pt, size_t len)
{
	uint8_t key[32], aad[20 + TS_VAULT_ID_BYTES], *sealed;
	ts_keyring *o = NULL;
	int r;

	assert_int_equal(crypto_kdf_derive_from_key(key, 32, 1, "tskeyrng", vs), 0);
	memcpy(aad, "tokenseal-keyring-v1", 20);
	memcpy(aad + 20, vid, TS_VAULT_ID_BYTES);
	sealed = malloc(24 + len + 16);
	randombytes_buf(sealed, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + 24, NULL, pt, len, aad, sizeof(aad), NULL, sealed, key);
	r = ts_keyring_open(vs, vid, sealed, 24 + len + 16, &o);
	ts_keyring_free(o);
	free(sealed);
	return r;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* count | current | min, then n entries of version | created | key. */
static void make(uint8_t *pt, uint32_t n, uint32_t cur, uint32_t min)
{
	put32(pt, n);
	put32(pt + 4, cur);
	put32(pt + 8, min);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *e = pt + 12 + i * 44;

		put32(e, i + 1);
		memset(e + 4, 0, 8);
		if (i + 1 >= min)
			randombytes_buf(e + 12, 32);
		else
			memset(e + 12, 0, 32);
	}
}

static void authentic_but_inconsistent_plaintexts_are_corrupt(void **state)
{
	uint8_t pt[12 + 4 * 44];
	const size_t l3 = 12 + 3 * 44;

	make(pt, 3, 3, 2);
	assert_int_equal(open_crafted(pt, l3), 0);   /* the layout as documented opens */

	make(pt, 3, 2, 1);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* current is not the last */
	make(pt, 3, 3, 0);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* min 0 */
	make(pt, 3, 3, 4);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* min past current */
	make(pt, 4, 4, 1);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* count larger than the data */
	make(pt, 2, 2, 1);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* trailing entry */
	make(pt, 0, 0, 0);
	assert_int_equal(open_crafted(pt, 12), -TS_E_CORRUPT);           /* empty */
	make(pt, 3, 3, 1);
	put32(pt + 12 + 44, 7);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* versions out of sequence */
	make(pt, 3, 3, 2);
	pt[12 + 12] = 1;
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* retired slot still has a key */
	make(pt, 3, 3, 1);
	memset(pt + 12 + 2 * 44 + 12, 0, 32);
	assert_int_equal(open_crafted(pt, l3), -TS_E_CORRUPT);   /* live slot without a key */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_keyring_has_one_random_current_key),
		cmocka_unit_test(rotation_adds_a_version_and_keeps_old_keys),
		cmocka_unit_test(retire_below_refuses_old_versions_and_never_goes_back),
		cmocka_unit_test(version_count_is_limited),
		cmocka_unit_test(seal_open_round_trip_keeps_every_version),
		cmocka_unit_test(open_refuses_wrong_vs_wrong_vault_flips_and_truncations),
		cmocka_unit_test(authentic_but_inconsistent_plaintexts_are_corrupt),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
