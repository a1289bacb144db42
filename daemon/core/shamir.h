/* shamir.h — Shamir secret sharing over GF(2^8) (k-of-n splits of the vault secret). Pure: no I/O. */
#ifndef TS_SHAMIR_H
#define TS_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Field: GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11b).
 * Arithmetic is table-free and constant time: multiplication by shift and
 * add with masks, inversion as a^254. No branch and no memory index depends
 * on a secret byte (share x coordinates are public and may be branched on).
 *
 * A share of a len-byte secret is 1 + len bytes: x (1..255) || y (len bytes),
 * y[i] = f_i(x) where f_i is a polynomial of degree k-1 with f_i(0) = secret[i].
 * Any k shares give the secret back; k-1 shares give no information about it.
 */
#define TS_SHAMIR_MAX_SHARES 255
#define TS_SHAMIR_SHARE_BYTES(len) ((size_t)(len) + 1)

/*
 * Split secret (len >= 1 bytes) into n shares, any k of which recover it,
 * 1 <= k <= n <= 255. shares receives n * (1 + len) bytes; share j (0-based)
 * has x = j + 1. The random coefficients come from randombytes_buf and live in
 * secure memory that is wiped. shares holds secrets: give secure memory.
 * Returns 0, -TS_E_INVALID_ARGS or -TS_E_NOMEM; on failure shares is wiped.
 */
int ts_shamir_split(const uint8_t *secret, size_t len, uint8_t k, uint8_t n, uint8_t *shares)
	__attribute__((warn_unused_result));

/*
 * The share at x of the polynomial with constant term secret and the given
 * coefficients: coeffs holds (k - 1) * len bytes, coefficient of x^m (m >= 1)
 * for byte i at coeffs[(m - 1) * len + i]. Lets a caller that derives its
 * coefficients (the vault derives them from VS) issue further shares later.
 * share_out receives 1 + len bytes (x || y). x must be 1..255; 1 <= k <= 255.
 */
int ts_shamir_share_at(const uint8_t *secret, size_t len, uint8_t k, const uint8_t *coeffs,
                       uint8_t x, uint8_t *share_out) __attribute__((warn_unused_result));

/*
 * Recover the secret from count shares (count * (1 + len) bytes, x || y each)
 * by Lagrange interpolation at 0. Every share given is used: with at least k
 * genuine shares the result is the secret; with fewer it is an unrelated
 * value (nothing here can tell). A zero or duplicate x is -TS_E_INVALID_ARGS,
 * as are count == 0, count > 255 and len == 0. secret_out gets len bytes.
 */
int ts_shamir_combine(const uint8_t *shares, size_t count, size_t len, uint8_t *secret_out)
	__attribute__((warn_unused_result));

/* The field itself, exposed for the unit tests. */
uint8_t ts_gf256_mul(uint8_t a, uint8_t b);
uint8_t ts_gf256_inv(uint8_t a);

#endif
