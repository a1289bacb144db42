/* test_shamir.c — GF(2^8) arithmetic and k-of-n Shamir sharing: recovery, secrecy below k, bad shares. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/shamir.h"

/* Textbook multiplication (carry-less product, then reduction by 0x11b): an independent reference. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0, i;

	for (i = 0; i < 8; i++)
		if (b & (1u << i))
			p ^= (unsigned)a << i;
	for (i = 15; i >= 8; i--)
		if (p & (1u << i))
			p ^= 0x11bu << (i - 8);
	return (uint8_t)p;
}

static void field_matches_reference_and_inverts(void **state)
{
	unsigned a, b;

	/* FIPS-197 section 4.2 examples. */
	assert_int_equal(ts_gf256_mul(0x57, 0x83), 0xc1);
	assert_int_equal(ts_gf256_mul(0x57, 0x13), 0xfe);
	for (a = 0; a < 256; a++)
		for (b = 0; b < 256; b++)
			assert_int_equal(ts_gf256_mul((uint8_t)a, (uint8_t)b), ref_mul((uint8_t)a, (uint8_t)b));
	assert_int_equal(ts_gf256_inv(0), 0);
	for (a = 1; a < 256; a++)
		assert_int_equal(ts_gf256_mul((uint8_t)a, ts_gf256_inv((uint8_t)a)), 1);
}

/*
 * Known answer, derivable by hand from FIPS-197: f(x) = 0x42 + 0x57 x, so
 * f(0x83) = 0x42 ^ 0xc1 = 0x83 and f(0x13) = 0x42 ^ 0xfe = 0xbc.
 */
static void known_answer_vector(void **state)
{
	const uint8_t secret[1] = { 0x42 }, coeff[1] = { 0x57 };
	const uint8_t want[4] = { 0x83, 0x83, 0x13, 0xbc };
	uint8_t shares[4], out[1];

	assert_int_equal(ts_shamir_share_at(secret, 1, 2, coeff, 0x83, shares), 0);
	assert_int_equal(ts_shamir_share_at(secret, 1, 2, coeff, 0x13, shares + 2), 0);
	assert_memory_equal(shares, want, sizeof(want));
	assert_int_equal(ts_shamir_combine(want, 2, 1, out), 0);
	assert_int_equal(out[0], 0x42);
	/* Degree 2, multi-byte: f_i(x) = s_i + c1_i x + c2_i x^2, checked against the reference field. */
	{
		const uint8_t s2[2] = { 0x00, 0xff }, c2[4] = { 0x01, 0x02, 0x03, 0x04 };
		uint8_t sh[3 * 3], o2[2];
		unsigned x, i;

		for (x = 1; x <= 3; x++) {
			assert_int_equal(ts_shamir_share_at(s2, 2, 3, c2, (uint8_t)x, sh + (x - 1) * 3), 0);
			for (i = 0; i < 2; i++) {
				uint8_t y = s2[i] ^ ref_mul(c2[i], (uint8_t)x) ^
				            ref_mul(c2[2 + i], ref_mul((uint8_t)x, (uint8_t)x));
				assert_int_equal(sh[(x - 1) * 3 + 1 + i], y);
			}
		}
		assert_int_equal(ts_shamir_combine(sh, 3, 2, o2), 0);
		assert_memory_equal(o2, s2, 2);
	}
}

/* Copy the shares named by the bits of mask into out; returns how many. */
static size_t pick(const uint8_t *shares, size_t len, unsigned n, unsigned long mask, uint8_t *out)
{
	size_t c = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		if (mask & (1ul << i))
			memcpy(out + c++ * (1 + len), shares + i * (1 + len), 1 + len);
	return c;
}

static void every_subset_of_3_of_5_at_or_above_k_recovers(void **state)
{
	uint8_t secret[32], out[32], *shares = ts_secure_alloc(5 * 33), sub[5 * 33];
	unsigned long mask;
	size_t c;
	int n_ok = 0;

	randombytes_buf(secret, sizeof(secret));
	assert_int_equal(ts_shamir_split(secret, 32, 3, 5, shares), 0);
	for (mask = 1; mask < 32; mask++) {
		c = pick(shares, 32, 5, mask, sub);
		assert_int_equal(ts_shamir_combine(sub, c, 32, out), 0);
		if (c >= 3) {
			assert_memory_equal(out, secret, 32);
			n_ok++;
		} else {
			assert_memory_not_equal(out, secret, 32);
		}
	}
	assert_int_equal(n_ok, 10 + 5 + 1);
	/* Shares are numbered 1..n. */
	for (c = 0; c < 5; c++)
		assert_int_equal(shares[c * 33], c + 1);
	ts_secure_free(shares);
}

/*
 * Below the threshold the result carries no information: with a fixed
 * secret byte and fresh splits, k-1 shares combine to each value with
 * probability 1/256. Over 25600 trials the secret shows up about 100 times
 * and every value appears (a leak would pull the count towards 25600).
 */
static void fewer_than_k_shares_reveal_nothing(void **state)
{
	const uint8_t secret[1] = { 0xa5 };
	unsigned counts[256] = { 0 }, t, v, min = ~0u, max = 0;
	uint8_t shares[4 * 2], out[1];

	for (t = 0; t < 25600; t++) {
		assert_int_equal(ts_shamir_split(secret, 1, 3, 4, shares), 0);
		/* Two shares of a 3-of-4 split: shares 2 and 4. */
		memcpy(shares, shares + 2, 2);
		memcpy(shares + 2, shares + 6, 2);
		assert_int_equal(ts_shamir_combine(shares, 2, 1, out), 0);
		counts[out[0]]++;
	}
	for (v = 0; v < 256; v++) {
		if (counts[v] < min)
			min = counts[v];
		if (counts[v] > max)
			max = counts[v];
	}
	/* Mean 100, sd 10: these bounds are ~6 sd away. */
	assert_true(counts[secret[0]] > 40 && counts[secret[0]] < 160);
	assert_true(min > 40);
	assert_true(max < 160);
}

static void random_secrets_thresholds_and_subsets(void **state)
{
	uint8_t secret[64], out[64], *shares, *sub, order[255];
	unsigned t, i, j, k, n, len;

	shares = ts_secure_alloc(255 * 65);
	sub = ts_secure_alloc(255 * 65);
	for (t = 0; t < 300; t++) {
		len = 16 + randombytes_uniform(49);
		n = 1 + randombytes_uniform(t % 50 == 0 ? 255 : 12);
		k = 1 + randombytes_uniform(n);
		randombytes_buf(secret, len);
		assert_int_equal(ts_shamir_split(secret, len, (uint8_t)k, (uint8_t)n, shares), 0);
		/* A random k-subset in random order. */
		for (i = 0; i < n; i++)
			order[i] = (uint8_t)i;
		for (i = n - 1; i > 0; i--) {
			uint8_t tmp;

			j = randombytes_uniform(i + 1);
			tmp = order[i];
			order[i] = order[j];
			order[j] = tmp;
		}
		for (i = 0; i < k; i++)
			memcpy(sub + i * (1 + len), shares + order[i] * (1 + len), 1 + len);
		assert_int_equal(ts_shamir_combine(sub, k, len, out), 0);
		assert_memory_equal(out, secret, len);
		/* One short: a different value (equal with probability 2^-128 at least). */
		if (k > 1) {
			assert_int_equal(ts_shamir_combine(sub, k - 1, len, out), 0);
			assert_memory_not_equal(out, secret, len);
		}
		/* One corrupted y byte changes the result. */
		sub[1 + randombytes_uniform(len)] ^= 1;
		assert_int_equal(ts_shamir_combine(sub, k, len, out), 0);
		assert_memory_not_equal(out, secret, len);
	}
	ts_secure_free(sub);
	ts_secure_free(shares);
}

static void bad_parameters_and_shares_are_refused(void **state)
{
	uint8_t secret[4] = { 1, 2, 3, 4 }, shares[3 * 5], out[4];
	const uint8_t c[4] = { 9, 9, 9, 9 };

	assert_int_equal(ts_shamir_split(secret, 4, 0, 3, shares), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_split(secret, 4, 4, 3, shares), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_split(secret, 4, 1, 0, shares), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_split(secret, 0, 1, 1, shares), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_split(NULL, 4, 1, 1, shares), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_share_at(secret, 4, 2, c, 0, shares), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_share_at(secret, 4, 2, NULL, 1, shares), -TS_E_INVALID_ARGS);

	/* 1-of-n: every share is the secret itself. */
	assert_int_equal(ts_shamir_split(secret, 4, 1, 3, shares), 0);
	assert_memory_equal(shares + 1, secret, 4);
	assert_memory_equal(shares + 11, secret, 4);

	assert_int_equal(ts_shamir_split(secret, 4, 2, 3, shares), 0);
	assert_int_equal(ts_shamir_combine(shares, 0, 4, out), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_combine(shares, 2, 0, out), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_shamir_combine(shares, 256, 4, out), -TS_E_INVALID_ARGS);
	shares[5] = shares[0];                       /* duplicate x */
	assert_int_equal(ts_shamir_combine(shares, 2, 4, out), -TS_E_INVALID_ARGS);
	shares[5] = 0;                               /* zero x */
	assert_int_equal(ts_shamir_combine(shares, 2, 4, out), -TS_E_INVALID_ARGS);
	shares[5] = 2;
	assert_int_equal(ts_shamir_combine(shares, 2, 4, out), 0);
	assert_memory_equal(out, secret, 4);
}

static void full_255_of_255_split(void **state)
{
	uint8_t secret[32], out[32], *shares = ts_secure_alloc(255 * 33);

	randombytes_buf(secret, sizeof(secret));
	assert_int_equal(ts_shamir_split(secret, 32, 255, 255, shares), 0);
	assert_int_equal(ts_shamir_combine(shares, 255, 32, out), 0);
	assert_memory_equal(out, secret, 32);
	assert_int_equal(ts_shamir_combine(shares + 33, 254, 32, out), 0);
	assert_memory_not_equal(out, secret, 32);
	ts_secure_free(shares);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(field_matches_reference_and_inverts),
		cmocka_unit_test(known_answer_vector),
		cmocka_unit_test(every_subset_of_3_of_5_at_or_above_k_recovers),
		cmocka_unit_test(fewer_than_k_shares_reveal_nothing),
		cmocka_unit_test(random_secrets_thresholds_and_subsets),
		cmocka_unit_test(bad_parameters_and_shares_are_refused),
		cmocka_unit_test(full_255_of_255_split),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
