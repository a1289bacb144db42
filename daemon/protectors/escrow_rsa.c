/* escrow_rsa.c — RSA-OAEP-SHA256 of escrow box keys to an officer's HSM key, and RSA key parsing (OpenSSL). */
/* RSA_padding_check_PKCS1_OAEP_mgf1 is deprecated in OpenSSL 3 but is the one constant-time OAEP decoder offered. */
#define _GNU_SOURCE 1
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "tokenseal.h"
#include "core/escrow.h"
#include "protectors/escrow_rsa.h"

static int fail(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* The public key of a checked SPKI. NULL if OpenSSL does not take it. */
static EVP_PKEY *spki_pkey(const uint8_t *spki, size_t len)
{
	const unsigned char *p = spki;
	EVP_PKEY *k;

	if (ts_escrow_rsa_spki_check(spki, len, NULL) < 0)
		return NULL;
	if ((k = d2i_PUBKEY(NULL, &p, (long)len)) == NULL)
		return NULL;
	if (p != spki + len || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

int ts_escrow_rsa_wrap_key(const uint8_t *spki, size_t spki_len, const uint8_t *k, ts_buf *out, char *err,
                           size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t *dst;
	size_t mod = 0, ct_len, orig_len;
	int r = 0;

	if (!spki || !k || !out || ts_escrow_rsa_spki_check(spki, spki_len, &mod) < 0)
		return fail(err, errlen, -TS_E_INVALID_ARGS, "not an RSA public key of 2048..4096 bits");
	if ((pkey = spki_pkey(spki, spki_len)) == NULL)
		return fail(err, errlen, -TS_E_INVALID_ARGS, "OpenSSL does not accept the RSA public key");
	orig_len = out->len;
	if ((dst = ts_buf_reserve(out, mod)) == NULL) {
		r = fail(err, errlen, -TS_E_NOMEM, "out of memory");
		goto out;
	}
	ct_len = mod;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL || EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
	    EVP_PKEY_encrypt(ctx, dst, &ct_len, k, TS_ESCROW_RSA_KEY_BYTES) != 1 || ct_len != mod) {
		r = fail(err, errlen, -TS_E_FAILED, "RSA-OAEP encryption failed");
		goto out;
	}
out:
	if (r < 0)
		out->len = orig_len;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return r;
}

/* Append pkey's SPKI DER to out if it is an RSA key we accept. */
static int append_spki(EVP_PKEY *pkey, ts_buf *out, char *err, size_t errlen)
{
	unsigned char *der = NULL;
	uint8_t *dst;
	int len, r;

	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
		return fail(err, errlen, -TS_E_INVALID_ARGS, "not an RSA key (escrow to an HSM takes RSA 2048..4096)");
	if ((len = i2d_PUBKEY(pkey, &der)) <= 0)
		return fail(err, errlen, -TS_E_FAILED, "cannot encode the public key");
	if (ts_escrow_rsa_spki_check(der, (size_t)len, NULL) < 0) {
		r = fail(err, errlen, -TS_E_INVALID_ARGS, "RSA key of %d bits: escrow takes 2048..4096 bits, odd e >= 3",
		         EVP_PKEY_get_bits(pkey));
	} else if ((dst = ts_buf_reserve(out, (size_t)len)) == NULL) {
		r = fail(err, errlen, -TS_E_NOMEM, "out of memory");
	} else {
		memcpy(dst, der, (size_t)len);
		r = 0;
	}
	OPENSSL_free(der);
	return r;
}

int ts_escrow_rsa_spki_from_bytes(const uint8_t *in, size_t len, ts_buf *out, char *err, size_t errlen)
{
	const unsigned char *p = in;
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	BIO *bio = NULL;
	int r;

	if (!in || !out || len == 0 || len > (1u << 20))
		return fail(err, errlen, -TS_E_INVALID_ARGS, "empty or oversized key file");
	if (len > 10 && memmem(in, len, "-----BEGIN ", 11)) {
		if ((bio = BIO_new_mem_buf(in, (int)len)) == NULL)
			return fail(err, errlen, -TS_E_NOMEM, "out of memory");
		if ((pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) == NULL) {
			(void)BIO_reset(bio);
			if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
				pkey = X509_get_pubkey(x);
		}
	} else if ((x = d2i_X509(NULL, &p, (long)len)) != NULL && p == in + len) {
		pkey = X509_get_pubkey(x);
	} else {
		p = in;
		if ((pkey = d2i_PUBKEY(NULL, &p, (long)len)) != NULL && p != in + len) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
	if (!pkey)
		r = fail(err, errlen, -TS_E_INVALID_ARGS,
		         "not a public key: expected PEM PUBLIC KEY or CERTIFICATE, or a DER certificate or SubjectPublicKeyInfo");
	else
		r = append_spki(pkey, out, err, errlen);
	EVP_PKEY_free(pkey);
	X509_free(x);
	BIO_free(bio);
	return r;
}

int ts_escrow_rsa_spki_from_ne(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, ts_buf *out,
                               char *err, size_t errlen)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int r;

	if (!n || !e || n_len == 0 || e_len == 0 || n_len > 1024 || e_len > 64) {
		r = fail(err, errlen, -TS_E_INVALID_ARGS, "RSA key with an empty or oversized modulus or exponent");
		goto out;
	}
	bn = BN_bin2bn(n, (int)n_len, NULL);
	be = BN_bin2bn(e, (int)e_len, NULL);
	if (bld && bn && be && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL && EVP_PKEY_fromdata_init(ctx) == 1)
		(void)EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	if (!pkey)
		r = fail(err, errlen, -TS_E_INVALID_ARGS, "the token's RSA modulus and exponent do not make a key");
	else
		r = append_spki(pkey, out, err, errlen);
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return r;
}

int ts_escrow_rsa_oaep_decode(const uint8_t *spki, size_t spki_len, const uint8_t *em, size_t em_len, uint8_t *k)
{
	uint8_t *to = NULL;
	size_t mod = 0;
	int n, r = -TS_E_AUTH_FAILED;

	if (!em || !k || ts_escrow_rsa_spki_check(spki, spki_len, &mod) < 0 || em_len != mod)
		return -TS_E_INVALID_ARGS;
	if ((to = ts_secure_alloc(mod)) == NULL)
		return -TS_E_NOMEM;
	n = RSA_padding_check_PKCS1_OAEP_mgf1(to, (int)mod, em, (int)em_len, (int)mod, NULL, 0, EVP_sha256(),
	                                      EVP_sha256());
	if (n == TS_ESCROW_RSA_KEY_BYTES) {
		memcpy(k, to, TS_ESCROW_RSA_KEY_BYTES);
		r = 0;
	}
	ts_secure_free(to);
	return r;
}
