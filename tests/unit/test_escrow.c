/* test_escrow.c — escrow officer keys: text forms, fingerprints, and sealed boxes only the officer opens. */
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
#include "core/escrow.h"

static void keygen_text_forms_round_trip(void **state)
{
	uint8_t pub[32], pub2[32], *sec = ts_secure_alloc(32), *sec2 = ts_secure_alloc(32);
	char ptext[TS_ESCROW_PUB_TEXT_BYTES], *stext = ts_secure_alloc(TS_ESCROW_SEC_TEXT_BYTES);
	char padded[128];

	assert_int_equal(ts_escrow_keygen(pub, sec), 0);
	ts_escrow_pub_to_text(pub, ptext);
	assert_int_equal(strlen(ptext), strlen(TS_ESCROW_PUB_PREFIX) + 43);
	assert_memory_equal(ptext, "tokenseal-escrow-pub:v1:", 24);
	assert_int_equal(ts_escrow_pub_from_text(ptext, strlen(ptext), pub2), 0);
	assert_memory_equal(pub, pub2, 32);
	snprintf(padded, sizeof(padded), " \t%s\n", ptext);
	assert_int_equal(ts_escrow_pub_from_text(padded, strlen(padded), pub2), 0);
	assert_memory_equal(pub, pub2, 32);

	ts_escrow_sec_to_text(sec, stext);
	assert_memory_equal(stext, "tokenseal-escrow-sec:v1:", 24);
	assert_int_equal(ts_escrow_sec_from_text(stext, strlen(stext), sec2), 0);
	assert_memory_equal(sec, sec2, 32);
	/* The secret form is not a public key and vice versa. */
	assert_int_equal(ts_escrow_pub_from_text(stext, strlen(stext), pub2), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_sec_from_text(ptext, strlen(ptext), sec2), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_sec_to_pub(sec, pub2), 0);
	assert_memory_equal(pub, pub2, 32);
	ts_secure_free(stext);
	ts_secure_free(sec2);
	ts_secure_free(sec);
}

static void each_key_has_exactly_one_text_form(void **state)
{
	uint8_t pub[32], out[32], *sec = ts_secure_alloc(32), low[32] = { 1 };
	char t[TS_ESCROW_PUB_TEXT_BYTES], bad[128];
	size_t pl = strlen(TS_ESCROW_PUB_PREFIX), last = pl + 42;
	const char *alt;

	assert_int_equal(ts_escrow_keygen(pub, sec), 0);
	ts_escrow_pub_to_text(pub, t);
	/* Padding, truncation, extension, wrong version, inner space. */
	snprintf(bad, sizeof(bad), "%s=", t);
	assert_int_equal(ts_escrow_pub_from_text(bad, strlen(bad), out), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_pub_from_text(t, strlen(t) - 1, out), -TS_E_INVALID_ARGS);
	snprintf(bad, sizeof(bad), "%sA", t);
	assert_int_equal(ts_escrow_pub_from_text(bad, strlen(bad), out), -TS_E_INVALID_ARGS);
	memcpy(bad, t, sizeof(t));
	bad[pl - 2] = '2';
	assert_int_equal(ts_escrow_pub_from_text(bad, strlen(bad), out), -TS_E_INVALID_ARGS);
	memcpy(bad, t, sizeof(t));
	bad[pl + 5] = ' ';
	assert_int_equal(ts_escrow_pub_from_text(bad, strlen(bad), out), -TS_E_INVALID_ARGS);
	/* Standard-alphabet characters instead of '-' and '_'. */
	memcpy(bad, t, sizeof(t));
	bad[pl + 3] = '+';
	assert_int_equal(ts_escrow_pub_from_text(bad, strlen(bad), out), -TS_E_INVALID_ARGS);
	/*
	 * 43 characters carry 258 bits: the last one has 2 unused bits, which
	 * must be zero. Flip them and the same key would have a second spelling.
	 */
	memcpy(bad, t, sizeof(t));
	alt = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", bad[last]);
	assert_non_null(alt);
	bad[last] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	                [(alt - "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ^ 1];
	assert_int_equal(ts_escrow_pub_from_text(bad, strlen(bad), out), -TS_E_INVALID_ARGS);
	/* All-zero and low-order points would make every box readable by anyone. */
	memset(out, 0, sizeof(out));
	ts_escrow_pub_to_text(out, t);
	assert_int_equal(ts_escrow_pub_from_text(t, strlen(t), out), -TS_E_INVALID_ARGS);
	ts_escrow_pub_to_text(low, t);
	assert_int_equal(ts_escrow_pub_from_text(t, strlen(t), out), -TS_E_INVALID_ARGS);
	ts_secure_free(sec);
}

static void fingerprint_is_blake2b_prefix_in_hex_groups(void **state)
{
	uint8_t pub[32], fp[16], h[32], *sec = ts_secure_alloc(32);
	char text[TS_ESCROW_FINGERPRINT_TEXT_BYTES], hex[33], joined[40];
	size_t i, o = 0;

	assert_int_equal(ts_escrow_keygen(pub, sec), 0);
	ts_escrow_fingerprint(pub, fp);
	crypto_generichash(h, 32, pub, 32, NULL, 0);
	assert_memory_equal(fp, h, 16);
	ts_escrow_fingerprint_text(pub, text);
	assert_int_equal(strlen(text), 39);
	sodium_bin2hex(hex, sizeof(hex), h, 16);
	for (i = 0; i < 32; i++) {
		if (i && i % 4 == 0)
			joined[o++] = ':';
		joined[o++] = hex[i];
	}
	joined[o] = '\0';
	assert_string_equal(text, joined);
	/* Another key, another fingerprint. */
	pub[0] ^= 1;
	ts_escrow_fingerprint_text(pub, joined);
	assert_string_not_equal(text, joined);
	ts_secure_free(sec);
}

static void only_the_officer_opens_a_sealed_box(void **state)
{
	uint8_t pub[32], pub2[32], *sec = ts_secure_alloc(32), *sec2 = ts_secure_alloc(32);
	uint8_t msg[49], *out = ts_secure_alloc(49);
	ts_buf box = { 0 }, box2 = { 0 };

	assert_int_equal(ts_escrow_keygen(pub, sec), 0);
	assert_int_equal(ts_escrow_keygen(pub2, sec2), 0);
	randombytes_buf(msg, sizeof(msg));
	assert_int_equal(ts_escrow_seal(pub, msg, sizeof(msg), &box), 0);
	assert_int_equal(box.len, sizeof(msg) + TS_ESCROW_SEAL_OVERHEAD);
	/* Sealing is randomized. */
	assert_int_equal(ts_escrow_seal(pub, msg, sizeof(msg), &box2), 0);
	assert_memory_not_equal(box.data, box2.data, box.len);

	assert_int_equal(ts_escrow_open(pub, sec, box.data, box.len, out), 0);
	assert_memory_equal(out, msg, sizeof(msg));
	assert_int_equal(ts_escrow_open(pub2, sec2, box.data, box.len, out), -TS_E_AUTH_FAILED);
	assert_true(sodium_is_zero(out, sizeof(msg)));
	/* A key pair that does not belong together is a usage error, not a failed box. */
	assert_int_equal(ts_escrow_open(pub2, sec, box.data, box.len, out), -TS_E_INVALID_ARGS);
	for (size_t i = 0; i < box.len; i++) {
		box.data[i] ^= 0x40;
		assert_int_equal(ts_escrow_open(pub, sec, box.data, box.len, out), -TS_E_AUTH_FAILED);
		box.data[i] ^= 0x40;
	}
	assert_int_equal(ts_escrow_open(pub, sec, box.data, box.len - 1, out), -TS_E_AUTH_FAILED);
	assert_int_equal(ts_escrow_open(pub, sec, box.data, TS_ESCROW_SEAL_OVERHEAD, out), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_seal(pub, msg, 0, &box2), -TS_E_INVALID_ARGS);
	{
		uint8_t zero[32] = { 0 };
		assert_int_equal(ts_escrow_seal(zero, msg, sizeof(msg), &box2), -TS_E_INVALID_ARGS);
	}
	ts_buf_free(&box);
	ts_buf_free(&box2);
	ts_secure_free(out);
	ts_secure_free(sec2);
	ts_secure_free(sec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keygen_text_forms_round_trip),
		cmocka_unit_test(each_key_has_exactly_one_text_form),
		cmocka_unit_test(fingerprint_is_blake2b_prefix_in_hex_groups),
		cmocka_unit_test(only_the_officer_opens_a_sealed_box),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
