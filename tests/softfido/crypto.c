/* crypto.c — the OpenSSL 3 primitives softfido needs: P-256 (ECDSA, ECDH), AES, HMAC, HKDF, SHA-256. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "softfido.h"

void sf_wipe(void *p, size_t n) {
	if (p && n)
		OPENSSL_cleanse(p, n);
}

int sf_ct_equal(const void *a, const void *b, size_t n) {
	return CRYPTO_memcmp(a, b, n) == 0;
}

int sf_random(void *p, size_t n) {
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

void sf_sha256(uint8_t out[32], const void *p, size_t n) {
	unsigned int len = 32;

	if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
		memset(out, 0, 32); /* cannot happen with the default provider */
}

int sf_hmac_sha256(uint8_t out[32], const void *key, size_t key_len, const void *p, size_t n) {
	unsigned int len = 32;
	static const uint8_t empty;

	return HMAC(EVP_sha256(), key, (int)key_len, n ? p : &empty, n, out, &len) ? 0 : -1;
}

/* HKDF-SHA-256 with a salt of 32 zero bytes (PIN/UV auth protocol 2). */
int sf_hkdf_sha256(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const char *info) {
	uint8_t salt[32] = { 0 };
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5];
	int r = -1;

	if (!(kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) || !(ctx = EVP_KDF_CTX_new(kdf)))
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof(salt));
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, 32, params) == 1)
		r = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return r;
}

int sf_aes256_cbc(int enc, const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out) {
	EVP_CIPHER_CTX *ctx;
	int len = 0, fin = 0, r = -1;

	if (n % 16 || n > 0x10000)
		return -1;
	if (!(ctx = EVP_CIPHER_CTX_new()))
		return -1;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv, enc) != 1 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	    EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1 ||
	    EVP_CipherFinal_ex(ctx, out + len, &fin) != 1 || (size_t)(len + fin) != n)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

static int gcm(int enc, const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
               const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[16]) {
	EVP_CIPHER_CTX *ctx;
	int len = 0, r = -1;

	if (!(ctx = EVP_CIPHER_CTX_new()))
		return -1;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len) != 1 ||
	    EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int sf_aes256_gcm_seal(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[16]) {
	return gcm(1, key, iv, aad, aad_len, in, n, out, tag);
}

int sf_aes256_gcm_open(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t n, const uint8_t tag[16], uint8_t *out) {
	uint8_t t[16];
	int r;

	memcpy(t, tag, 16);
	r = gcm(0, key, iv, aad, aad_len, in, n, out, t);
	if (r < 0)
		sf_wipe(out, n);
	return r;
}

EVP_PKEY *sf_p256_generate(void) {
	return EVP_EC_gen("P-256");
}

int sf_p256_private(EVP_PKEY *k, uint8_t d[32]) {
	BIGNUM *bn = NULL;
	int r = -1;

	if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 && BN_bn2binpad(bn, d, 32) == 32)
		r = 0;
	BN_clear_free(bn);
	return r;
}

int sf_p256_public(EVP_PKEY *k, uint8_t x[32], uint8_t y[32]) {
	BIGNUM *bx = NULL, *by = NULL;
	int r = -1;

	if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
	    BN_bn2binpad(bx, x, 32) == 32 && BN_bn2binpad(by, y, 32) == 32)
		r = 0;
	BN_free(bx);
	BN_free(by);
	return r;
}

/* Builds an EVP_PKEY from an uncompressed point and optionally a scalar. */
static EVP_PKEY *p256_from_data(const uint8_t pub[65], const BIGNUM *priv) {
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;

	if (!(bld = OSSL_PARAM_BLD_new()) ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 65) ||
	    (priv && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv)) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld)) ||
	    !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return k;
}

EVP_PKEY *sf_p256_from_private(const uint8_t d[32]) {
	EC_GROUP *grp = NULL;
	EC_POINT *pt = NULL;
	BIGNUM *bn = NULL;
	BN_CTX *bctx = NULL;
	uint8_t pub[65];
	EVP_PKEY *k = NULL;

	if (!(grp = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) || !(bctx = BN_CTX_new()) ||
	    !(bn = BN_bin2bn(d, 32, NULL)) || !(pt = EC_POINT_new(grp)))
		goto out;
	/* A scalar outside [1, n-1] is not a key (it can only come from a forged id). */
	if (BN_is_zero(bn) || BN_cmp(bn, EC_GROUP_get0_order(grp)) >= 0)
		goto out;
	if (EC_POINT_mul(grp, pt, bn, NULL, NULL, bctx) != 1 ||
	    EC_POINT_point2oct(grp, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), bctx) != sizeof(pub))
		goto out;
	k = p256_from_data(pub, bn);
out:
	BN_clear_free(bn);
	EC_POINT_free(pt);
	BN_CTX_free(bctx);
	EC_GROUP_free(grp);
	return k;
}

int sf_p256_ecdh(EVP_PKEY *k, const uint8_t x[32], const uint8_t y[32], uint8_t z[32]) {
	uint8_t pub[65];
	EVP_PKEY *peer;
	EVP_PKEY_CTX *ctx = NULL;
	size_t len = 32;
	int r = -1;

	pub[0] = 0x04;
	memcpy(pub + 1, x, 32);
	memcpy(pub + 33, y, 32);
	/* fromdata decodes the point and refuses one that is not on the curve. */
	if (!(peer = p256_from_data(pub, NULL)))
		return -1;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL)) && EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) == 1 && EVP_PKEY_derive(ctx, z, &len) == 1 && len == 32)
		r = 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return r;
}

int sf_p256_sign(EVP_PKEY *k, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                 uint8_t sig[80], size_t *ret_sig_len) {
	EVP_MD_CTX *md;
	size_t len = 80;
	int r = -1;

	if (!(md = EVP_MD_CTX_new()))
		return -1;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 && EVP_DigestSignUpdate(md, a, a_len) == 1 &&
	    EVP_DigestSignUpdate(md, b, b_len) == 1 && EVP_DigestSignFinal(md, sig, &len) == 1) {
		*ret_sig_len = len;
		r = 0;
	}
	EVP_MD_CTX_free(md);
	return r;
}
