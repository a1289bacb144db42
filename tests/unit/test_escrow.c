/* test_escrow.c — escrow officer keys (X25519 and HSM RSA): text forms, fingerprints, hostile SPKIs, and sealed boxes only the officer opens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/escrow.h"
#include "core/vault.h"
#include "protectors/escrow_rsa.h"
#include "test_escrow_keys.h"

/* One of the fixed test keys (test_escrow_keys.h). */
static EVP_PKEY *load_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

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
	ts_escrow_key_fingerprint(pub, TS_ESCROW_PUBLIC_BYTES, fp);
	crypto_generichash(h, 32, pub, 32, NULL, 0);
	assert_memory_equal(fp, h, 16);
	ts_escrow_key_fingerprint_text(pub, TS_ESCROW_PUBLIC_BYTES, text);
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
	ts_escrow_key_fingerprint_text(pub, TS_ESCROW_PUBLIC_BYTES, joined);
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

/* ---- RSA (HSM) recipients -------------------------------------------------- */

static EVP_PKEY *rsa_a, *rsa_b;

/* The SPKI DER of an OpenSSL key, into a ts_buf. */
static void spki_of(EVP_PKEY *k, ts_buf *out)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(k, &der);

	assert_true(len > 0);
	assert_non_null(ts_buf_append(out, der, (size_t)len) == 0 ? out : NULL);
	OPENSSL_free(der);
}

/* What the officer's token does: RSA-OAEP-SHA256 decryption of the box's first modulus bytes. */
static void token_decrypt(EVP_PKEY *k, const uint8_t *ct, size_t ct_len, uint8_t *key)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	uint8_t out[512];
	size_t out_len = sizeof(out);

	assert_non_null(c);
	assert_int_equal(EVP_PKEY_decrypt_init(c), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_decrypt(c, out, &out_len, ct, ct_len), 1);
	assert_int_equal(out_len, TS_ESCROW_RSA_KEY_BYTES);
	memcpy(key, out, out_len);
	EVP_PKEY_CTX_free(c);
}

/* A token that only does raw RSA (CKM_RSA_X_509). */
static void token_decrypt_raw(EVP_PKEY *k, const uint8_t *ct, size_t ct_len, uint8_t *em)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	size_t out_len = ct_len;

	assert_non_null(c);
	assert_int_equal(EVP_PKEY_decrypt_init(c), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, RSA_NO_PADDING), 1);
	assert_int_equal(EVP_PKEY_decrypt(c, em, &out_len, ct, ct_len), 1);
	assert_int_equal(out_len, ct_len);
	EVP_PKEY_CTX_free(c);
}

static void rsa_spki_check_is_strict_der(void **state)
{
	ts_buf a = { 0 };
	uint8_t bad[TS_ESCROW_SPKI_MAX + 8];
	size_t mod = 0, i;
	EVP_PKEY *small = load_key(TEST_RSA_1024_PEM);

	spki_of(rsa_a, &a);
	assert_int_equal(ts_escrow_rsa_spki_check(a.data, a.len, &mod), 0);
	assert_int_equal(mod, 256);
	assert_int_equal(ts_escrow_key_check(TS_ESCROW_TYPE_RSA, a.data, a.len), 0);
	/* Every truncation, a trailing byte, any single bit flipped in the structure. */
	for (i = 0; i < a.len; i++)
		assert_int_equal(ts_escrow_rsa_spki_check(a.data, i, NULL), -TS_E_INVALID_ARGS);
	memcpy(bad, a.data, a.len);
	bad[a.len] = 0;
	assert_int_equal(ts_escrow_rsa_spki_check(bad, a.len + 1, NULL), -TS_E_INVALID_ARGS);
	/* Every header, length and algorithm byte, up to the modulus' leading zero (offset 32 for 2048 bits). */
	for (i = 0; i < 32; i++) {
		memcpy(bad, a.data, a.len);
		bad[i] ^= 0x01;
		assert_int_equal(ts_escrow_rsa_spki_check(bad, a.len, NULL), -TS_E_INVALID_ARGS);
	}
	/* Even modulus, e = 1, an X25519 key as an SPKI, a 1024-bit key. */
	memcpy(bad, a.data, a.len);
	bad[a.len - 6] ^= 0x01;      /* last modulus byte: "02 03 01 00 01" follows it */
	assert_int_equal(ts_escrow_rsa_spki_check(bad, a.len, NULL), -TS_E_INVALID_ARGS);
	memcpy(bad, a.data, a.len);
	bad[a.len - 3] = 0; bad[a.len - 2] = 0; bad[a.len - 1] = 1;   /* e = 0x000001: not minimal */
	assert_int_equal(ts_escrow_rsa_spki_check(bad, a.len, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_rsa_spki_check(a.data, 32, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_key_check(TS_ESCROW_TYPE_X25519, a.data, a.len), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_key_check(7, a.data, a.len), -TS_E_INVALID_ARGS);
	{
		ts_buf s = { 0 };
		assert_non_null(small);
		spki_of(small, &s);
		assert_int_equal(ts_escrow_rsa_spki_check(s.data, s.len, NULL), -TS_E_INVALID_ARGS);
		ts_buf_free(&s);
	}
	EVP_PKEY_free(small);
	ts_buf_free(&a);
}

static void rsa_text_form_round_trips_and_is_unique(void **state)
{
	ts_buf a = { 0 };
	char text[TS_ESCROW_KEY_TEXT_MAX], bad[TS_ESCROW_KEY_TEXT_MAX + 8], fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
	char fp2[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
	uint8_t key[TS_ESCROW_KEY_MAX], pub[32], *sec = ts_secure_alloc(32);
	unsigned type = 99;
	size_t len = 0;

	spki_of(rsa_a, &a);
	assert_int_equal(ts_escrow_key_to_text(TS_ESCROW_TYPE_RSA, a.data, a.len, text), 0);
	assert_memory_equal(text, TS_ESCROW_RSA_PREFIX, strlen(TS_ESCROW_RSA_PREFIX));
	assert_int_equal(ts_escrow_key_from_text(text, strlen(text), &type, key, &len), 0);
	assert_int_equal(type, TS_ESCROW_TYPE_RSA);
	assert_int_equal(len, a.len);
	assert_memory_equal(key, a.data, len);
	/* Padding, a standard-alphabet spelling, a truncated key, an inner space. */
	snprintf(bad, sizeof(bad), "%s=", text);
	assert_int_equal(ts_escrow_key_from_text(bad, strlen(bad), &type, key, &len), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_key_from_text(text, strlen(text) - 4, &type, key, &len), -TS_E_INVALID_ARGS);
	snprintf(bad, sizeof(bad), "%s", text);
	bad[40] = ' ';
	assert_int_equal(ts_escrow_key_from_text(bad, strlen(bad), &type, key, &len), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_key_from_text(TS_ESCROW_RSA_PREFIX, strlen(TS_ESCROW_RSA_PREFIX), &type, key, &len),
	                 -TS_E_INVALID_ARGS);
	/* The X25519 form still parses through the same door. */
	assert_int_equal(ts_escrow_keygen(pub, sec), 0);
	ts_escrow_pub_to_text(pub, text);
	assert_int_equal(ts_escrow_key_from_text(text, strlen(text), &type, key, &len), 0);
	assert_int_equal(type, TS_ESCROW_TYPE_X25519);
	assert_int_equal(len, 32);
	/* Fingerprints: the X25519 one unchanged, the RSA one over the SPKI DER. */
	ts_escrow_key_fingerprint_text(pub, TS_ESCROW_PUBLIC_BYTES, fp);
	ts_escrow_key_fingerprint_text(pub, 32, fp2);
	assert_string_equal(fp, fp2);
	ts_escrow_key_describe(TS_ESCROW_TYPE_RSA, a.data, a.len, text, sizeof(text));
	assert_string_equal(text, "rsa-2048");
	ts_secure_free(sec);
	ts_buf_free(&a);
}

static void rsa_box_opens_only_with_the_officers_token(void **state)
{
	ts_buf a = { 0 }, b = { 0 }, box = { 0 }, box2 = { 0 };
	uint8_t msg[49], *k = ts_secure_alloc(32), *out = ts_secure_alloc(64), em[256];

	spki_of(rsa_a, &a);
	spki_of(rsa_b, &b);
	randombytes_buf(msg, sizeof(msg));
	assert_int_equal(ts_escrow_sealed_len(TS_ESCROW_TYPE_RSA, a.data, a.len, sizeof(msg)), 256 + 40 + 49);
	/* No key wrapper registered: the core cannot do RSA on its own. */
	ts_escrow_set_rsa_key_wrapper(NULL);
	assert_int_equal(ts_escrow_seal_to(TS_ESCROW_TYPE_RSA, a.data, a.len, msg, sizeof(msg), &box), -TS_E_NOT_SUPPORTED);
	assert_int_equal(box.len, 0);
	ts_escrow_set_rsa_key_wrapper(ts_escrow_rsa_wrap_key);
	assert_int_equal(ts_escrow_seal_to(TS_ESCROW_TYPE_RSA, a.data, a.len, msg, sizeof(msg), &box), 0);
	assert_int_equal(box.len, 256 + 40 + 49);
	assert_int_equal(ts_escrow_seal_to(TS_ESCROW_TYPE_RSA, a.data, a.len, msg, sizeof(msg), &box2), 0);
	assert_memory_not_equal(box.data, box2.data, box.len);

	token_decrypt(rsa_a, box.data, 256, k);
	assert_int_equal(ts_escrow_rsa_open(a.data, a.len, k, box.data, box.len, out), 0);
	assert_memory_equal(out, msg, sizeof(msg));
	/* A token that decrypts raw RSA only: the padding is checked in software, same key. */
	token_decrypt_raw(rsa_a, box.data, 256, em);
	{
		uint8_t *k2 = ts_secure_alloc(32);
		assert_int_equal(ts_escrow_rsa_oaep_decode(a.data, a.len, em, sizeof(em), k2), 0);
		assert_memory_equal(k, k2, 32);
		em[100] ^= 1;
		assert_int_equal(ts_escrow_rsa_oaep_decode(a.data, a.len, em, sizeof(em), k2), -TS_E_AUTH_FAILED);
		ts_secure_free(k2);
	}
	/* The box is bound to its recipient: another key's fingerprint is another AAD. */
	assert_int_equal(ts_escrow_rsa_open(b.data, b.len, k, box.data, box.len, out), -TS_E_AUTH_FAILED);
	assert_true(sodium_is_zero(out, sizeof(msg)));
	for (size_t i = 256; i < box.len; i++) {
		box.data[i] ^= 0x20;
		assert_int_equal(ts_escrow_rsa_open(a.data, a.len, k, box.data, box.len, out), -TS_E_AUTH_FAILED);
		box.data[i] ^= 0x20;
	}
	assert_int_equal(ts_escrow_rsa_open(a.data, a.len, k, box.data, 256 + 40, out), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_rsa_open(a.data, 20, k, box.data, box.len, out), -TS_E_INVALID_ARGS);
	ts_buf_free(&a);
	ts_buf_free(&b);
	ts_buf_free(&box);
	ts_buf_free(&box2);
	ts_secure_free(k);
	ts_secure_free(out);
}

/* A key source as the daemon's: one box key wrapped ahead (here by the in-process wrapper), given out once. */
static uint8_t *source_k;
static ts_buf source_wrapped;

static int one_key_source(const uint8_t *spki, size_t spki_len, uint8_t *k, ts_buf *out, char *err, size_t errlen)
{
	int r;

	if (!source_k) {
		snprintf(err, errlen, "no box key wrapped ahead");
		return -TS_E_BUSY;
	}
	memcpy(k, source_k, 32);
	r = ts_buf_append(out, source_wrapped.data, source_wrapped.len);
	ts_secure_free(source_k);
	source_k = NULL;
	ts_buf_free(&source_wrapped);
	return r;
}

static void rsa_key_source_gives_each_key_once(void **state)
{
	ts_buf a = { 0 }, box = { 0 };
	uint8_t msg[49], *k = ts_secure_alloc(32), *out = ts_secure_alloc(64);
	char err[256];

	spki_of(rsa_a, &a);
	randombytes_buf(msg, sizeof(msg));
	source_k = ts_secure_alloc(32);
	randombytes_buf(source_k, 32);
	assert_int_equal(ts_escrow_rsa_wrap_key(a.data, a.len, source_k, &source_wrapped, err, sizeof(err)), 0);
	/* The source wins over a wrapper; the box opens with the key it had wrapped ahead. */
	ts_escrow_set_rsa_key_wrapper(ts_escrow_rsa_wrap_key);
	ts_escrow_set_rsa_key_source(one_key_source);
	assert_int_equal(ts_escrow_seal_to(TS_ESCROW_TYPE_RSA, a.data, a.len, msg, sizeof(msg), &box), 0);
	assert_int_equal(box.len, 256 + 40 + 49);
	token_decrypt(rsa_a, box.data, 256, k);
	assert_int_equal(ts_escrow_rsa_open(a.data, a.len, k, box.data, box.len, out), 0);
	assert_memory_equal(out, msg, sizeof(msg));
	/* None left: Busy at once, nothing appended. */
	assert_int_equal(ts_escrow_seal_to(TS_ESCROW_TYPE_RSA, a.data, a.len, msg, sizeof(msg), &box), -TS_E_BUSY);
	assert_int_equal(box.len, 256 + 40 + 49);
	ts_escrow_set_rsa_key_source(NULL);
	ts_buf_free(&a);
	ts_buf_free(&box);
	ts_secure_free(k);
	ts_secure_free(out);
}

static void rsa_keys_read_from_pem_and_certificates(void **state)
{
	ts_buf a = { 0 }, got = { 0 };
	char err[256];
	unsigned char *der = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	X509 *x = X509_new();
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	char *pem;
	long pem_len;
	int der_len;

	spki_of(rsa_a, &a);
	/* PEM public key. */
	assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa_a), 1);
	pem_len = BIO_get_mem_data(bio, &pem);
	assert_int_equal(ts_escrow_rsa_spki_from_bytes((uint8_t *)pem, (size_t)pem_len, &got, err, sizeof(err)), 0);
	assert_int_equal(got.len, a.len);
	assert_memory_equal(got.data, a.data, a.len);
	/* A self-signed certificate, DER then PEM. */
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"officer", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_int_equal(X509_set_pubkey(x, rsa_a), 1);
	assert_true(X509_sign(x, rsa_a, EVP_sha256()) > 0);
	der_len = i2d_X509(x, &der);
	assert_true(der_len > 0);
	got.len = 0;
	assert_int_equal(ts_escrow_rsa_spki_from_bytes(der, (size_t)der_len, &got, err, sizeof(err)), 0);
	assert_memory_equal(got.data, a.data, a.len);
	(void)BIO_reset(bio);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	pem_len = BIO_get_mem_data(bio, &pem);
	got.len = 0;
	assert_int_equal(ts_escrow_rsa_spki_from_bytes((uint8_t *)pem, (size_t)pem_len, &got, err, sizeof(err)), 0);
	assert_memory_equal(got.data, a.data, a.len);
	/* A DER certificate with a byte after it, garbage, an EC key. */
	got.len = 0;
	der[der_len - 1] ^= 0xff;
	assert_int_not_equal(ts_escrow_rsa_spki_from_bytes(der, (size_t)der_len - 3, &got, err, sizeof(err)), 0);
	assert_int_equal(ts_escrow_rsa_spki_from_bytes((const uint8_t *)"hello", 5, &got, err, sizeof(err)),
	                 -TS_E_INVALID_ARGS);
	(void)BIO_reset(bio);
	assert_int_equal(PEM_write_bio_PUBKEY(bio, ec), 1);
	pem_len = BIO_get_mem_data(bio, &pem);
	assert_int_equal(ts_escrow_rsa_spki_from_bytes((uint8_t *)pem, (size_t)pem_len, &got, err, sizeof(err)),
	                 -TS_E_INVALID_ARGS);
	assert_non_null(strstr(err, "not an RSA key"));
	assert_int_equal(got.len, 0);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(ec);
	BIO_free(bio);
	ts_buf_free(&a);
	ts_buf_free(&got);
}

/* Replace the first occurrence of needle (n bytes) in buf with repl (same length). */
static int patch(ts_buf *buf, const void *needle, const void *repl, size_t n)
{
	for (size_t i = 0; i + n <= buf->len; i++)
		if (memcmp(buf->data + i, needle, n) == 0) {
			memcpy(buf->data + i, repl, n);
			return 1;
		}
	return 0;
}

static void vault_escrows_to_rsa_and_x25519_officers(void **state)
{
	ts_buf a = { 0 }, file = { 0 }, bad = { 0 };
	uint8_t xpub[32], *xsec = ts_secure_alloc(32), *k = ts_secure_alloc(32);
	uint8_t *opened = ts_secure_alloc(2 * TS_VAULT_ESCROW_PLAIN_BYTES);
	ts_vault *v = NULL, *w = NULL;
	ts_escrow_recipient r[2];
	size_t ia, ix;

	spki_of(rsa_a, &a);
	assert_int_equal(ts_escrow_keygen(xpub, xsec), 0);
	r[0] = (ts_escrow_recipient){ .label = "hsm", .pubkey = a.data, .type = TS_ESCROW_TYPE_RSA, .pubkey_len = a.len };
	r[1] = (ts_escrow_recipient){ .label = "alice", .pubkey = xpub };
	assert_int_equal(ts_vault_create(&v, "mixed", 1000, 1700000000), 0);
	ts_escrow_set_rsa_key_wrapper(NULL);
	assert_int_equal(ts_vault_set_escrow(v, r, 2, 2), -TS_E_NOT_SUPPORTED);
	assert_int_equal(v->n_escrow, 0);
	ts_escrow_set_rsa_key_wrapper(ts_escrow_rsa_wrap_key);
	/* The same key twice, or an RSA key that is not one, is refused. */
	{
		ts_escrow_recipient dup[2] = { r[0], r[0] };
		assert_int_equal(ts_vault_set_escrow(v, dup, 2, 1), -TS_E_INVALID_ARGS);
		dup[1] = (ts_escrow_recipient){ .label = "x", .pubkey = a.data, .type = TS_ESCROW_TYPE_RSA, .pubkey_len = 40 };
		assert_int_equal(ts_vault_set_escrow(v, dup, 2, 1), -TS_E_INVALID_ARGS);
	}
	assert_int_equal(ts_vault_set_escrow(v, r, 2, 2), 0);
	assert_int_equal(ts_vault_serialize(v, &file), 0);

	assert_int_equal(ts_vault_parse(file.data, file.len, &w), 0);
	assert_int_equal(w->n_escrow, 2);
	ia = w->escrow[0].type == TS_ESCROW_TYPE_RSA ? 0 : 1;
	ix = 1 - ia;
	assert_int_equal(w->escrow[ia].type, TS_ESCROW_TYPE_RSA);
	assert_int_equal(w->escrow[ia].pubkey_len, a.len);
	assert_memory_equal(w->escrow[ia].pubkey, a.data, a.len);
	assert_int_equal(w->escrow[ix].type, TS_ESCROW_TYPE_X25519);
	assert_int_equal(w->escrow[ia].sealed_len, 256 + 40 + TS_VAULT_ESCROW_PLAIN_BYTES);
	/* Each officer opens its box; together they unlock. */
	token_decrypt(rsa_a, w->escrow[ia].sealed, 256, k);
	assert_int_equal(ts_escrow_rsa_open(a.data, a.len, k, w->escrow[ia].sealed, w->escrow[ia].sealed_len, opened), 0);
	assert_int_equal(ts_vault_unlock_escrow(w, opened, 1), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_escrow_open(xpub, xsec, w->escrow[ix].sealed, w->escrow[ix].sealed_len,
	                                opened + TS_VAULT_ESCROW_PLAIN_BYTES), 0);
	assert_int_equal(ts_vault_unlock_escrow(w, opened, 2), 0);
	assert_false(ts_vault_is_locked(w));
	ts_vault_free(w);
	w = NULL;

	/* Hostile files: an unknown type, an SPKI that is not strict DER, a box of the wrong size. */
	assert_int_equal(ts_buf_append(&bad, file.data, file.len), 0);
	assert_true(patch(&bad, "\x63rsa", "\x63RSA", 4));
	assert_int_equal(ts_vault_parse(bad.data, bad.len, &w), -TS_E_CORRUPT);
	bad.len = 0;
	assert_int_equal(ts_buf_append(&bad, file.data, file.len), 0);
	{
		uint8_t swapped[8];
		memcpy(swapped, a.data, 8);
		swapped[0] = 0x31;
		assert_true(patch(&bad, a.data, swapped, 8));
	}
	assert_int_equal(ts_vault_parse(bad.data, bad.len, &w), -TS_E_CORRUPT);
	/* Old files: an X25519-only vault carries no "type" key at all. */
	assert_int_equal(ts_vault_set_escrow(v, &r[1], 1, 1), 0);
	file.len = 0;
	assert_int_equal(ts_vault_serialize(v, &file), 0);
	assert_false(patch(&file, "\x64type", "\x64type", 5));
	assert_int_equal(ts_vault_parse(file.data, file.len, &w), 0);
	assert_int_equal(w->escrow[0].type, TS_ESCROW_TYPE_X25519);
	ts_vault_free(w);
	ts_vault_free(v);
	ts_buf_free(&a);
	ts_buf_free(&file);
	ts_buf_free(&bad);
	ts_secure_free(xsec);
	ts_secure_free(k);
	ts_secure_free(opened);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keygen_text_forms_round_trip),
		cmocka_unit_test(each_key_has_exactly_one_text_form),
		cmocka_unit_test(fingerprint_is_blake2b_prefix_in_hex_groups),
		cmocka_unit_test(only_the_officer_opens_a_sealed_box),
		cmocka_unit_test(rsa_spki_check_is_strict_der),
		cmocka_unit_test(rsa_text_form_round_trips_and_is_unique),
		cmocka_unit_test(rsa_box_opens_only_with_the_officers_token),
		cmocka_unit_test(rsa_key_source_gives_each_key_once),
		cmocka_unit_test(rsa_keys_read_from_pem_and_certificates),
		cmocka_unit_test(vault_escrows_to_rsa_and_x25519_officers),
	};
	int r;

	if (sodium_init() < 0 || (rsa_a = load_key(TEST_RSA_A_PEM)) == NULL || (rsa_b = load_key(TEST_RSA_B_PEM)) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	EVP_PKEY_free(rsa_a);
	EVP_PKEY_free(rsa_b);
	return r;
}
