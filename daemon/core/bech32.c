/* bech32.c — Bech32 (BIP-173): checksum, 8-to-5-bit regrouping, strict decoding of hostile strings. */
#include <string.h>

#include "tokenseal.h"
#include "core/bech32.h"

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/* BIP-173's BCH code over GF(32): the checksum is valid when the polymod of everything is 1. */
static uint32_t polymod_step(uint32_t chk, uint8_t v)
{
	static const uint32_t gen[5] = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3 };
	uint32_t top = chk >> 25;

	chk = ((chk & 0x1ffffff) << 5) ^ v;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

/* The polymod of the expanded (lower-case) HRP. */
static uint32_t polymod_hrp(const char *hrp, size_t n)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (uint8_t)hrp[i] >> 5);
	chk = polymod_step(chk, 0);
	for (size_t i = 0; i < n; i++)
		chk = polymod_step(chk, (uint8_t)hrp[i] & 31);
	return chk;
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

int ts_bech32_encode(const char *hrp, const uint8_t *data, size_t len, char *out, size_t cap)
{
	char lhrp[TS_BECH32_HRP_MAX + 1];
	size_t hn, n5, pos = 0;
	int has_upper = 0, has_lower = 0, upper;
	uint32_t chk, acc = 0;
	unsigned bits = 0;

	if (!hrp || !out || (!data && len))
		return -TS_E_INVALID_ARGS;
	hn = strlen(hrp);
	if (hn < 1 || hn > TS_BECH32_HRP_MAX)
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < hn; i++) {
		unsigned char c = (unsigned char)hrp[i];
		if (c < 33 || c > 126)
			return -TS_E_INVALID_ARGS;
		has_upper |= c >= 'A' && c <= 'Z';
		has_lower |= c >= 'a' && c <= 'z';
		lhrp[i] = (char)lower(c);
	}
	if (has_upper && has_lower)
		return -TS_E_INVALID_ARGS;
	upper = has_upper;
	n5 = (len * 8 + 4) / 5;
	if (len > TS_BECH32_MAX || hn + 1 + n5 + 6 > TS_BECH32_MAX || hn + 1 + n5 + 6 + 1 > cap)
		return -TS_E_LIMIT;
	memcpy(out, upper ? hrp : lhrp, hn);
	pos = hn;
	out[pos++] = '1';
	chk = polymod_hrp(lhrp, hn);
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			uint8_t v = (acc >> (bits - 5)) & 31;
			bits -= 5;
			chk = polymod_step(chk, v);
			out[pos++] = charset[v];
		}
	}
	if (bits) {
		uint8_t v = (acc << (5 - bits)) & 31;
		chk = polymod_step(chk, v);
		out[pos++] = charset[v];
	}
	for (int i = 0; i < 6; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (int i = 0; i < 6; i++)
		out[pos++] = charset[(chk >> (5 * (5 - i))) & 31];
	out[pos] = '\0';
	if (upper)
		for (size_t i = hn + 1; i < pos; i++)
			if (out[i] >= 'a' && out[i] <= 'z')
				out[i] = (char)(out[i] - 'a' + 'A');
	return 0;
}

int ts_bech32_decode5(const char *s, size_t len, char *hrp, size_t hrp_cap, uint8_t *d5, size_t d5_cap,
                      size_t *ret_n5)
{
	size_t sep = 0, n5;
	int has_upper = 0, has_lower = 0, found = 0;
	uint32_t chk;

	if (!s || !hrp || !ret_n5 || len > TS_BECH32_MAX)
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126)
			return -TS_E_INVALID_ARGS;
		has_upper |= c >= 'A' && c <= 'Z';
		has_lower |= c >= 'a' && c <= 'z';
		if (c == '1') {
			sep = i;
			found = 1;
		}
	}
	/* One case only; a non-empty HRP; six checksum characters at least. */
	if ((has_upper && has_lower) || !found || sep < 1 || sep + 7 > len || sep + 1 > hrp_cap)
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < sep; i++)
		hrp[i] = (char)lower((unsigned char)s[i]);
	hrp[sep] = '\0';
	n5 = len - sep - 1 - 6;
	if (n5 > d5_cap)
		return -TS_E_INVALID_ARGS;
	chk = polymod_hrp(hrp, sep);
	for (size_t i = sep + 1; i < len; i++) {
		const char *p = strchr(charset, lower((unsigned char)s[i]));
		uint8_t v;
		if (!p || !*p)
			return -TS_E_INVALID_ARGS;
		v = (uint8_t)(p - charset);
		chk = polymod_step(chk, v);
		if (i - sep - 1 < n5)
			d5[i - sep - 1] = v;
	}
	if (chk != 1)
		return -TS_E_INVALID_ARGS;
	*ret_n5 = n5;
	return 0;
}

int ts_bech32_decode(const char *s, size_t len, char *hrp, size_t hrp_cap, uint8_t *out, size_t cap,
                     size_t *ret_len)
{
	uint8_t d5[TS_BECH32_MAX];
	size_t n5, n = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	int r;

	if (!out || !ret_len)
		return -TS_E_INVALID_ARGS;
	if ((r = ts_bech32_decode5(s, len, hrp, hrp_cap, d5, sizeof(d5), &n5)) < 0)
		return r;
	for (size_t i = 0; i < n5; i++) {
		acc = ((acc << 5) | d5[i]) & 0xfff;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -TS_E_INVALID_ARGS;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* Padding: fewer than 5 bits, all zero (one spelling per byte string). */
	if (bits >= 5 || (acc & ((1u << bits) - 1)) != 0)
		return -TS_E_INVALID_ARGS;
	*ret_len = n;
	return 0;
}
