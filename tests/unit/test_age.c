/* test_age.c — Bech32 against BIP-173's vectors; the age recipient, identity and stanza: vectors, round trips, every flip refused. */
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
#include "core/age.h"
#include "core/bech32.h"

/* ---- Bech32: BIP-173 ------------------------------------------------------------------ */

static void test_bip173_valid(void **state)
{
	static const char *const valid[] = {
		"A12UEL5L",
		"a12uel5l",
		"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
		"?1ezyfcl",
	};
	char hrp[TS_BECH32_HRP_MAX + 1], again[TS_BECH32_MAX + 1];
	uint8_t d5[TS_BECH32_MAX], bytes[TS_BECH32_MAX];
	size_t n5, n;

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		const char *s = valid[i];
		assert_int_equal(ts_bech32_decode5(s, strlen(s), hrp, sizeof(hrp), d5, sizeof(d5), &n5), 0);
		assert_int_equal(strlen(hrp) + 1 + n5 + 6, strlen(s));
		/* Each of these also regroups to bytes, and encodes back to itself (in lower case). */
		assert_int_equal(ts_bech32_decode(s, strlen(s), hrp, sizeof(hrp), bytes, sizeof(bytes), &n), 0);
		assert_int_equal(ts_bech32_encode(hrp, bytes, n, again, sizeof(again)), 0);
		for (size_t k = 0; s[k]; k++)
			assert_int_equal(again[k], s[k] >= 'A' && s[k] <= 'Z' ? s[k] - 'A' + 'a' : s[k]);
		/* One flipped character anywhere in the data or checksum is caught. */
		for (size_t k = strlen(hrp) + 1; s[k]; k++) {
			char t[TS_BECH32_MAX + 1];
			strcpy(t, s);
			t[k] = (t[k] == 'q' || t[k] == 'Q') ? (t[k] == 'q' ? 'p' : 'P') : (t[k] >= 'A' && t[k] <= 'Z' ? 'Q' : 'q');
			assert_int_not_equal(ts_bech32_decode5(t, strlen(t), hrp, sizeof(hrp), d5, sizeof(d5), &n5), 0);
		}
	}
}

static void test_bip173_invalid(void **state)
{
	static const char *const invalid[] = {
		"\x20" "1nwldj5",      /* HRP character out of range */
		"\x7f" "1axkwrx",
		"\x80" "1eym55h",
		/* overall max length exceeded */
		"an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
		"pzry9x0s0muk",        /* no separator */
		"1pzry9x0s0muk",       /* empty HRP */
		"x1b4n0q5v",           /* invalid data character */
		"li1dgmt3",            /* too short checksum */
		"de1lg7wt\xff",        /* invalid character in checksum */
		"A1G7SGD8",            /* checksum calculated with upper-case HRP */
		"10a06t8",             /* empty HRP */
		"1qzzfhee",            /* empty HRP */
		"A12uEL5L",            /* mixed case */
	};
	char hrp[TS_BECH32_HRP_MAX + 1];
	uint8_t d5[TS_BECH32_MAX + 8];
	size_t n5;

	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		assert_int_equal(ts_bech32_decode5(invalid[i], strlen(invalid[i]), hrp, sizeof(hrp), d5, sizeof(d5), &n5),
		                 -TS_E_INVALID_ARGS);
}

static void test_bech32_padding_and_limits(void **state)
{
	char s[TS_BECH32_MAX + 1], hrp[TS_BECH32_HRP_MAX + 1];
	uint8_t data[64] = { 0 }, out[64];
	size_t n;

	/* Non-zero padding bits: "a1" + 'l' (31, 5 bits, all padding) with a valid checksum is not a byte string. */
	assert_int_equal(ts_bech32_encode("a", data, 1, s, sizeof(s)), 0);
	assert_int_equal(ts_bech32_decode(s, strlen(s), hrp, sizeof(hrp), out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ts_bech32_decode("a1lqfn3a", 8, hrp, sizeof(hrp), out, sizeof(out), &n), -TS_E_INVALID_ARGS);
	/* 90 characters at most, as age 1.1 requires: 52 bytes under "age1tokenseal" do not fit. */
	assert_int_equal(ts_bech32_encode("age1tokenseal", data, 44, s, sizeof(s)), -TS_E_LIMIT);
	assert_int_equal(ts_bech32_encode("age1tokenseal", data, 43, s, sizeof(s)), 0);
	assert_int_equal(strlen(s), 89);
	/* A mixed-case HRP is refused. */
	assert_int_equal(ts_bech32_encode("Ab", data, 1, s, sizeof(s)), -TS_E_INVALID_ARGS);
	/* Output too small. */
	assert_int_equal(ts_bech32_encode("a", data, 1, s, 10), -TS_E_LIMIT);
}

/* ---- the construction: docs/FORMAT.md's test vector ----------------------------------- */

static void vector_inputs(uint8_t rk[32], uint8_t vid[16], uint8_t fk[16], uint8_t eph[32])
{
	for (int i = 0; i < 32; i++) {
		rk[i] = (uint8_t)i;
		eph[i] = (uint8_t)(0x40 + i);
	}
	for (int i = 0; i < 16; i++) {
		vid[i] = (uint8_t)(0xa0 + i);
		fk[i] = (uint8_t)(0x10 + i);
	}
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	sodium_bin2hex(out, 2 * n + 1, p, n);
}

static void test_vector(void **state)
{
	uint8_t rk[32], vid[16], fk[16], eph[32], sk[32], pk[32], got[16], id[16];
	char h[65], s[TS_AGE_STRING_MAX], tag[12], ver[6], share[44], body[64];
	ts_age_recipient r, back;
	ts_age_stanza st;

	vector_inputs(rk, vid, fk, eph);
	assert_int_equal(ts_age_derive_secret(rk, vid, 1, sk), 0);
	hex(sk, 32, h);
	assert_string_equal(h, "6f06b95d4a304dcc7433731482386d4232a34d9aaccfac3fc972df1c31343bfd");
	assert_int_equal(ts_age_public_key(sk, pk), 0);
	hex(pk, 32, h);
	assert_string_equal(h, "4b870b829999a1304fc5c588494563cd2e9c0940bf6fd40baad54d06a368997d");
	memcpy(r.vault_tag, vid, 8);
	r.key_version = 1;
	memcpy(r.public_key, pk, 32);
	assert_int_equal(ts_age_recipient_encode(&r, s), 0);
	assert_string_equal(s, "age1tokenseal1qxs2rg4r5jj6dfcqq99cwzuznxv6zvz0chzcsj29v0xja8qfgzlkl4qt4t256p4rdzvh6zx9lpp");
	assert_int_equal(ts_age_recipient_decode(s, strlen(s), &back), 0);
	assert_memory_equal(&back, &r, sizeof(r));
	assert_int_equal(ts_age_identity_encode(vid, s), 0);
	assert_string_equal(s, "AGE-PLUGIN-TOKENSEAL-1QXS2RG4R5JJ6DFAG4X42HT9D46HSRMSFKD");
	assert_int_equal(ts_age_identity_decode(s, strlen(s), id), 0);
	assert_memory_equal(id, vid, 16);

	assert_int_equal(ts_age_wrap(&r, fk, eph, &st), 0);
	assert_int_equal(ts_age_stanza_format(&st, tag, ver, share), 0);
	assert_string_equal(tag, "oKGio6Slpqc");
	assert_string_equal(ver, "1");
	assert_string_equal(share, "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo");
	sodium_bin2base64(body, sizeof(body), st.body, 32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	assert_string_equal(body, "vTjkeyHaoAXD02FkJzozNDtgx/EKwe37Sg1i/Z/lEUw");
	assert_int_equal(ts_age_unwrap(sk, &st, got), 0);
	assert_memory_equal(got, fk, 16);
}

/* ---- what must be refused --------------------------------------------------------------- */

static void test_every_flip_refused(void **state)
{
	uint8_t rk[32], vid[16], fk[16], eph[32], sk[32], sk2[32], got[16];
	ts_age_recipient r;
	ts_age_stanza st, t;

	vector_inputs(rk, vid, fk, eph);
	assert_int_equal(ts_age_derive_secret(rk, vid, 1, sk), 0);
	memcpy(r.vault_tag, vid, 8);
	r.key_version = 1;
	assert_int_equal(ts_age_public_key(sk, r.public_key), 0);
	assert_int_equal(ts_age_wrap(&r, fk, NULL, &st), 0);
	/* Every bit of the tag, share and body. */
	for (size_t i = 0; i < 8 * (8 + 32 + 32); i++) {
		uint8_t *p;
		size_t byte = i / 8;
		t = st;
		p = byte < 8 ? t.vault_tag + byte : byte < 40 ? t.share + byte - 8 : t.body + byte - 40;
		*p ^= (uint8_t)(1u << (i % 8));
		memset(got, 0xee, sizeof(got));
		/* Bit 255 of the share is ignored by X25519 (RFC 7748), but it is hashed into the wrap key. */
		assert_int_equal(ts_age_unwrap(sk, &t, got), -TS_E_BAD_BLOB);
		for (size_t k = 0; k < sizeof(got); k++)
			assert_int_equal(got[k], 0xee);   /* nothing written on failure */
	}
	/* The version is bound: the same stanza claimed for version 2. */
	t = st;
	t.key_version = 2;
	assert_int_equal(ts_age_unwrap(sk, &t, got), -TS_E_BAD_BLOB);
	/* Another version's key, or another vault's (same root key, other id), opens nothing. */
	assert_int_equal(ts_age_derive_secret(rk, vid, 2, sk2), 0);
	assert_int_equal(ts_age_unwrap(sk2, &st, got), -TS_E_BAD_BLOB);
	vid[15] ^= 1;
	assert_int_equal(ts_age_derive_secret(rk, vid, 1, sk2), 0);
	assert_int_equal(ts_age_unwrap(sk2, &st, got), -TS_E_BAD_BLOB);
	/* A low-order share (all zero) gives an all-zero secret: refused. */
	t = st;
	memset(t.share, 0, sizeof(t.share));
	assert_int_equal(ts_age_unwrap(sk, &t, got), -TS_E_BAD_BLOB);
	/* And no wrap to a low-order public key. */
	memset(r.public_key, 0, sizeof(r.public_key));
	assert_int_equal(ts_age_wrap(&r, fk, NULL, &st), -TS_E_INVALID_ARGS);
	/* Versions outside 1..65535. */
	assert_int_equal(ts_age_derive_secret(rk, vid, 0, sk2), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_age_derive_secret(rk, vid, 65536, sk2), -TS_E_INVALID_ARGS);
}

static void test_stanza_parse_strict(void **state)
{
	static const uint8_t body[32] = { 1 };
	const char *ok[] = { "oKGio6Slpqc", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" };
	const char *bad[][3] = {
		{ "oKGio6Slpqc=", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },   /* padding */
		{ "oKGio6Slpqd", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },    /* non-zero trailing bits */
		{ "oKGio6Slpq", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },     /* short */
		{ "oKGio6Slpqc", "01", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },   /* leading zero */
		{ "oKGio6Slpqc", "0", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },
		{ "oKGio6Slpqc", "65536", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },
		{ "oKGio6Slpqc", "-1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRo" },
		{ "oKGio6Slpqc", "1", "eaYx7t4b-cmPEgMs3q3Q56B5OY_HhriMyEbsia-FpRo" },   /* URL alphabet */
		{ "oKGio6Slpqc", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpRp" },   /* trailing bits */
		{ "oKGio6Slpqc", "1", "eaYx7t4b+cmPEgMs3q3Q56B5OY/HhriMyEbsia+FpR" },
	};
	ts_age_stanza st;

	assert_int_equal(ts_age_stanza_parse(ok, 3, body, 32, &st), 0);
	assert_int_equal(st.key_version, 1);
	assert_int_equal(ts_age_stanza_parse(ok, 2, body, 32, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_age_stanza_parse(ok, 3, body, 31, &st), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_age_stanza_parse(ok, 3, body, 0, &st), -TS_E_INVALID_ARGS);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ts_age_stanza_parse(bad[i], 3, body, 32, &st), -TS_E_INVALID_ARGS);
}

static void test_strings_refused(void **state)
{
	ts_age_recipient r;
	uint8_t id[16];
	const char *rs = "age1tokenseal1qxs2rg4r5jj6dfcqq99cwzuznxv6zvz0chzcsj29v0xja8qfgzlkl4qt4t256p4rdzvh6zx9lpp";
	const char *is = "AGE-PLUGIN-TOKENSEAL-1QXS2RG4R5JJ6DFAG4X42HT9D46HSRMSFKD";
	char t[TS_AGE_STRING_MAX + 8], upper[TS_AGE_STRING_MAX];
	uint8_t p[44] = { 0 };

	/* An identity is not a recipient, nor the other way round. */
	assert_int_equal(ts_age_recipient_decode(is, strlen(is), &r), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_age_identity_decode(rs, strlen(rs), id), -TS_E_INVALID_ARGS);
	/* Identities are case-insensitive Bech32; a recipient in upper case is refused as age does. */
	for (size_t i = 0; i <= strlen(is); i++)
		t[i] = (char)(is[i] >= 'A' && is[i] <= 'Z' ? is[i] - 'A' + 'a' : is[i]);
	assert_int_equal(ts_age_identity_decode(t, strlen(t), id), 0);
	for (size_t i = 0; i <= strlen(rs); i++)
		upper[i] = (char)(rs[i] >= 'a' && rs[i] <= 'z' ? rs[i] - 'a' + 'A' : rs[i]);
	assert_int_equal(ts_age_recipient_decode(upper, strlen(upper), &r), -TS_E_INVALID_ARGS);
	/* Another format version: a clear "unsupported", not "malformed". */
	p[0] = 2;
	p[10] = 1;
	assert_int_equal(ts_bech32_encode(TS_AGE_RECIPIENT_HRP, p, 43, t, sizeof(t)), 0);
	assert_int_equal(ts_age_recipient_decode(t, strlen(t), &r), -TS_E_UNSUPPORTED_VERSION);
	/* Version 0, and a payload one byte short. */
	p[0] = 1;
	p[10] = 0;
	assert_int_equal(ts_bech32_encode(TS_AGE_RECIPIENT_HRP, p, 43, t, sizeof(t)), 0);
	assert_int_equal(ts_age_recipient_decode(t, strlen(t), &r), -TS_E_INVALID_ARGS);
	p[10] = 1;
	assert_int_equal(ts_bech32_encode(TS_AGE_RECIPIENT_HRP, p, 42, t, sizeof(t)), 0);
	assert_int_equal(ts_age_recipient_decode(t, strlen(t), &r), -TS_E_INVALID_ARGS);
	/* Truncated strings. */
	assert_int_equal(ts_age_recipient_decode(rs, strlen(rs) - 1, &r), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_age_identity_decode(is, strlen(is) - 1, id), -TS_E_INVALID_ARGS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bip173_valid),
		cmocka_unit_test(test_bip173_invalid),
		cmocka_unit_test(test_bech32_padding_and_limits),
		cmocka_unit_test(test_vector),
		cmocka_unit_test(test_every_flip_refused),
		cmocka_unit_test(test_stanza_parse_strict),
		cmocka_unit_test(test_strings_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
