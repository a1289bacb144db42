/* shamir.c — Shamir secret sharing over GF(2^8): constant-time, table-free field arithmetic. */
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/shamir.h"

/* Largest len for which n * (1 + len) cannot overflow, with room to spare. */
#define SHAMIR_LEN_MAX ((size_t)1 << 24)

/*
 * Russian-peasant multiplication. The usual log/exp tables would index
 * memory with secret bytes (a cache-timing channel), so every step uses
 * masks instead of branches: -(b & 1) is 0xff or 0x00.
 */
uint8_t ts_gf256_mul(uint8_t a, uint8_t b)
{
	uint8_t p = 0, hi;
	int i;

	for (i = 0; i < 8; i++) {
		p ^= (uint8_t)(-(b & 1) & a);
		hi = (uint8_t)-(a >> 7);
		a = (uint8_t)((a << 1) ^ (hi & 0x1b));
		b >>= 1;
	}
	return p;
}

/* a^254 = a^-1 in GF(2^8)^* (and 0 for 0): a fixed chain of squarings and multiplications. */
uint8_t ts_gf256_inv(uint8_t a)
{
	uint8_t a2 = ts_gf256_mul(a, a);          /* a^2 */
	uint8_t a3 = ts_gf256_mul(a2, a);         /* a^3 */
	uint8_t a6 = ts_gf256_mul(a3, a3);        /* a^6 */
	uint8_t a12 = ts_gf256_mul(a6, a6);       /* a^12 */
	uint8_t a15 = ts_gf256_mul(a12, a3);      /* a^15 */
	uint8_t a30 = ts_gf256_mul(a15, a15);     /* a^30 */
	uint8_t a60 = ts_gf256_mul(a30, a30);     /* a^60 */
	uint8_t a120 = ts_gf256_mul(a60, a60);    /* a^120 */
	uint8_t a126 = ts_gf256_mul(a120, a6);    /* a^126 */
	uint8_t a127 = ts_gf256_mul(a126, a);     /* a^127 */

	return ts_gf256_mul(a127, a127);          /* a^254 */
}

int ts_shamir_share_at(const uint8_t *secret, size_t len, uint8_t k, const uint8_t *coeffs,
                       uint8_t x, uint8_t *share_out)
{
	size_t i;
	uint8_t y;
	int m;

	if (!secret || !share_out || len == 0 || len > SHAMIR_LEN_MAX || k == 0 || x == 0 ||
	    (k > 1 && !coeffs))
		return -TS_E_INVALID_ARGS;
	share_out[0] = x;
	for (i = 0; i < len; i++) {
		/* Horner: ((a_{k-1} x + a_{k-2}) x + ... + a_1) x + secret. */
		y = 0;
		for (m = k - 1; m >= 1; m--)
			y = ts_gf256_mul(y, x) ^ coeffs[(size_t)(m - 1) * len + i];
		share_out[1 + i] = ts_gf256_mul(y, x) ^ secret[i];
	}
	return 0;
}

int ts_shamir_split(const uint8_t *secret, size_t len, uint8_t k, uint8_t n, uint8_t *shares)
{
	uint8_t *coeffs = NULL;
	unsigned j;
	int r = 0;

	if (!secret || !shares || len == 0 || len > SHAMIR_LEN_MAX || k == 0 || n == 0 || k > n)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (k > 1) {
		if ((coeffs = ts_secure_alloc((size_t)(k - 1) * len)) == NULL)
			return -TS_E_NOMEM;
		randombytes_buf(coeffs, (size_t)(k - 1) * len);
	}
	for (j = 0; j < n && r == 0; j++)
		r = ts_shamir_share_at(secret, len, k, coeffs, (uint8_t)(j + 1), shares + j * (1 + len));
	ts_secure_free(coeffs);
	if (r < 0)
		sodium_memzero(shares, (size_t)n * (1 + len));
	return r;
}

int ts_shamir_combine(const uint8_t *shares, size_t count, size_t len, uint8_t *secret_out)
{
	uint8_t basis[TS_SHAMIR_MAX_SHARES], xj, xm, num, den;
	size_t i, j, m, stride = len + 1;

	if (!shares || !secret_out || count == 0 || count > TS_SHAMIR_MAX_SHARES || len == 0 ||
	    len > SHAMIR_LEN_MAX)
		return -TS_E_INVALID_ARGS;
	/* The x coordinates are public: checking them with branches is fine. */
	for (j = 0; j < count; j++) {
		if (shares[j * stride] == 0)
			return -TS_E_INVALID_ARGS;
		for (m = 0; m < j; m++)
			if (shares[m * stride] == shares[j * stride])
				return -TS_E_INVALID_ARGS;
	}
	/* Lagrange basis at 0: l_j = prod_{m != j} x_m / (x_m - x_j); minus is xor here. */
	for (j = 0; j < count; j++) {
		xj = shares[j * stride];
		num = 1;
		den = 1;
		for (m = 0; m < count; m++) {
			if (m == j)
				continue;
			xm = shares[m * stride];
			num = ts_gf256_mul(num, xm);
			den = ts_gf256_mul(den, xm ^ xj);
		}
		basis[j] = ts_gf256_mul(num, ts_gf256_inv(den));
	}
	for (i = 0; i < len; i++) {
		uint8_t acc = 0;

		for (j = 0; j < count; j++)
			acc ^= ts_gf256_mul(shares[j * stride + 1 + i], basis[j]);
		secret_out[i] = acc;
	}
	return 0;
}
