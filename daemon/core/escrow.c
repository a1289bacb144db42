/* escrow.c — escrow officer keys, their text forms and fingerprints, X25519 sealed boxes, and the pure half of RSA boxes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/escrow.h"
#include "core/text.h"

_Static_assert(TS_ESCROW_PUBLIC_BYTES == crypto_box_PUBLICKEYBYTES, "escrow public key size");
_Static_assert(TS_ESCROW_SECRET_BYTES == crypto_box_SECRETKEYBYTES, "escrow secret key size");
_Static_assert(TS_ESCROW_SEAL_OVERHEAD == crypto_box_SEALBYTES, "sealed box overhead");
_Static_assert(TS_ESCROW_RSA_AEAD_OVERHEAD ==
               crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "RSA box AEAD overhead");
_Static_assert(TS_ESCROW_RSA_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "RSA box key size");

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define KEY_B64_CHARS 43

int ts_escrow_keygen(uint8_t pub[TS_ESCROW_PUBLIC_BYTES], uint8_t *sec)
{
	if (!pub || !sec)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0 || crypto_box_keypair(pub, sec) != 0)
		return -TS_E_FAILED;
	return 0;
}

static void key_to_text(const char *prefix, const uint8_t key[32], char *out)
{
	size_t pl = strlen(prefix);

	memcpy(out, prefix, pl);
	sodium_bin2base64(out + pl, KEY_B64_CHARS + 1, key, 32, B64_VARIANT);
}

void ts_escrow_pub_to_text(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], char out[TS_ESCROW_PUB_TEXT_BYTES])
{
	key_to_text(TS_ESCROW_PUB_PREFIX, pub, out);
}

void ts_escrow_sec_to_text(const uint8_t *sec, char *out)
{
	key_to_text(TS_ESCROW_SEC_PREFIX, sec, out);
}

/*
 * prefix || 43 base64url characters -> 32 bytes. The decoder is strict and
 * the result is re-encoded and compared as well, so one key has exactly one
 * text form (a fingerprint or a policy comparison can never be fooled by an
 * alternative spelling).
 */
static int key_from_text(const char *prefix, const char *text, size_t len, uint8_t key[32])
{
	char again[KEY_B64_CHARS + 1];
	size_t pl = strlen(prefix), bin_len = 0;
	const char *end = NULL;
	int r = -TS_E_INVALID_ARGS;

	if (!text || !key)
		return -TS_E_INVALID_ARGS;
	ts_text_trim(&text, &len);
	if (len != pl + KEY_B64_CHARS || memcmp(text, prefix, pl) != 0)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (sodium_base642bin(key, 32, text + pl, KEY_B64_CHARS, NULL, &bin_len, &end, B64_VARIANT) != 0 ||
	    bin_len != 32 || end != text + len)
		goto out;
	sodium_bin2base64(again, sizeof(again), key, 32, B64_VARIANT);
	if (memcmp(again, text + pl, KEY_B64_CHARS) != 0)
		goto out;
	r = 0;
out:
	if (r < 0)
		sodium_memzero(key, 32);
	sodium_memzero(again, sizeof(again));
	return r;
}

/*
 * A public key whose shared secret with any peer is fixed (zero or of low
 * order) would make every box to it readable by everyone; crypto_box refuses
 * to compute with it, so we try once with a throw-away key pair.
 */
static int pub_usable(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES])
{
	uint8_t epk[crypto_box_PUBLICKEYBYTES], esk[crypto_box_SECRETKEYBYTES], k[crypto_box_BEFORENMBYTES];
	int ok;

	if (sodium_init() < 0 || sodium_is_zero(pub, TS_ESCROW_PUBLIC_BYTES))
		return 0;
	crypto_box_keypair(epk, esk);
	ok = crypto_box_beforenm(k, pub, esk) == 0;
	sodium_memzero(esk, sizeof(esk));
	sodium_memzero(k, sizeof(k));
	return ok;
}

int ts_escrow_pub_from_text(const char *text, size_t len, uint8_t pub[TS_ESCROW_PUBLIC_BYTES])
{
	int r;

	if ((r = key_from_text(TS_ESCROW_PUB_PREFIX, text, len, pub)) < 0)
		return r;
	if (!pub_usable(pub)) {
		sodium_memzero(pub, TS_ESCROW_PUBLIC_BYTES);
		return -TS_E_INVALID_ARGS;
	}
	return 0;
}

int ts_escrow_sec_from_text(const char *text, size_t len, uint8_t *sec)
{
	return key_from_text(TS_ESCROW_SEC_PREFIX, text, len, sec);
}

int ts_escrow_sec_to_pub(const uint8_t *sec, uint8_t pub[TS_ESCROW_PUBLIC_BYTES])
{
	if (!sec || !pub)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0 || crypto_scalarmult_base(pub, sec) != 0)
		return -TS_E_FAILED;
	return 0;
}

int ts_escrow_seal(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], const uint8_t *msg, size_t len, ts_buf *out)
{
	size_t orig_len;
	uint8_t *dst;

	if (!pub || !msg || !out || len == 0 || len > TS_ESCROW_MESSAGE_MAX)
		return -TS_E_INVALID_ARGS;
	if (!pub_usable(pub))
		return -TS_E_INVALID_ARGS;
	orig_len = out->len;
	if ((dst = ts_buf_reserve(out, len + TS_ESCROW_SEAL_OVERHEAD)) == NULL)
		return -TS_E_NOMEM;
	if (crypto_box_seal(dst, msg, len, pub) != 0) {
		sodium_memzero(dst, len + TS_ESCROW_SEAL_OVERHEAD);
		out->len = orig_len;
		return -TS_E_FAILED;
	}
	return 0;
}

int ts_escrow_open(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], const uint8_t *sec,
                   const uint8_t *sealed, size_t len, uint8_t *out)
{
	uint8_t derived[TS_ESCROW_PUBLIC_BYTES];
	int r;

	if (!pub || !sec || !sealed || !out || len <= TS_ESCROW_SEAL_OVERHEAD ||
	    len > TS_ESCROW_SEAL_OVERHEAD + TS_ESCROW_MESSAGE_MAX)
		return -TS_E_INVALID_ARGS;
	/* A mismatched pair would only fail later with a less helpful error. */
	if ((r = ts_escrow_sec_to_pub(sec, derived)) < 0)
		return r;
	if (sodium_memcmp(derived, pub, sizeof(derived)) != 0)
		return -TS_E_INVALID_ARGS;
	if (crypto_box_seal_open(out, sealed, len, pub, sec) != 0) {
		sodium_memzero(out, len - TS_ESCROW_SEAL_OVERHEAD);
		return -TS_E_AUTH_FAILED;
	}
	return 0;
}

/* ---- recipients of either type -------------------------------------------- */

static ts_escrow_rsa_wrap_key_fn rsa_key_wrapper;
static ts_escrow_rsa_key_source_fn rsa_key_source;

void ts_escrow_set_rsa_key_wrapper(ts_escrow_rsa_wrap_key_fn fn)
{
	rsa_key_wrapper = fn;
}

void ts_escrow_set_rsa_key_source(ts_escrow_rsa_key_source_fn fn)
{
	rsa_key_source = fn;
}

/* A strict DER reader over (pointer, length): one tag, a minimal length, the contents. */
struct der {
	const uint8_t *p;
	size_t len;
};

static int der_next(struct der *d, uint8_t tag, struct der *ret)
{
	size_t n, i, hdr;

	if (d->len < 2 || d->p[0] != tag)
		return -1;
	if (d->p[1] < 0x80) {
		n = d->p[1];
		hdr = 2;
	} else {
		/* Long form: 1 or 2 length bytes (our largest item is under 64 KiB), no leading zero, not < 128. */
		size_t nb = d->p[1] & 0x7f;

		if (nb < 1 || nb > 2 || d->len < 2 + nb || d->p[2] == 0)
			return -1;
		for (n = 0, i = 0; i < nb; i++)
			n = (n << 8) | d->p[2 + i];
		if (n < 0x80)
			return -1;
		hdr = 2 + nb;
	}
	if (n > d->len - hdr)
		return -1;
	ret->p = d->p + hdr;
	ret->len = n;
	d->p += hdr + n;
	d->len -= hdr + n;
	return 0;
}

/* A positive INTEGER in minimal form: its magnitude (leading 0x00 stripped) in ret. */
static int der_uint(struct der *d, struct der *ret)
{
	if (der_next(d, 0x02, ret) < 0 || ret->len == 0 || (ret->p[0] & 0x80))
		return -1;
	if (ret->p[0] == 0) {
		if (ret->len < 2 || !(ret->p[1] & 0x80))
			return -1;
		ret->p++;
		ret->len--;
	}
	return 0;
}

int ts_escrow_rsa_spki_check(const uint8_t *spki, size_t len, size_t *ret_modulus_bytes)
{
	static const uint8_t rsa_alg[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00 };
	struct der top = { spki, len }, seq, alg, bits, key, rsa, n, e;
	size_t nbits;
	uint8_t b;

	if (!spki || len == 0 || len > TS_ESCROW_SPKI_MAX)
		return -TS_E_INVALID_ARGS;
	if (der_next(&top, 0x30, &seq) < 0 || top.len != 0 ||
	    der_next(&seq, 0x30, &alg) < 0 || alg.len != sizeof(rsa_alg) || memcmp(alg.p, rsa_alg, alg.len) != 0 ||
	    der_next(&seq, 0x03, &bits) < 0 || seq.len != 0 || bits.len < 1 || bits.p[0] != 0)
		return -TS_E_INVALID_ARGS;
	key.p = bits.p + 1;
	key.len = bits.len - 1;
	if (der_next(&key, 0x30, &rsa) < 0 || key.len != 0 || der_uint(&rsa, &n) < 0 || der_uint(&rsa, &e) < 0 ||
	    rsa.len != 0)
		return -TS_E_INVALID_ARGS;
	/* Bits of n: whole bytes below the first, plus the first's significant bits. */
	for (nbits = (n.len - 1) * 8, b = n.p[0]; b; b >>= 1)
		nbits++;
	if (nbits < TS_ESCROW_RSA_MIN_BITS || nbits > TS_ESCROW_RSA_MAX_BITS || !(n.p[n.len - 1] & 1))
		return -TS_E_INVALID_ARGS;
	if (e.len > 8 || !(e.p[e.len - 1] & 1) || (e.len == 1 && e.p[0] < 3))
		return -TS_E_INVALID_ARGS;
	if (ret_modulus_bytes)
		*ret_modulus_bytes = n.len;
	return 0;
}

int ts_escrow_key_check(unsigned type, const uint8_t *key, size_t len)
{
	if (!key)
		return -TS_E_INVALID_ARGS;
	if (type == TS_ESCROW_TYPE_X25519)
		return len == TS_ESCROW_PUBLIC_BYTES && pub_usable(key) ? 0 : -TS_E_INVALID_ARGS;
	if (type == TS_ESCROW_TYPE_RSA)
		return ts_escrow_rsa_spki_check(key, len, NULL);
	return -TS_E_INVALID_ARGS;
}

int ts_escrow_key_from_text(const char *text, size_t len, unsigned *ret_type, uint8_t *key, size_t *ret_len)
{
	static const char pfx[] = TS_ESCROW_RSA_PREFIX;
	char *again = NULL;
	size_t pl = sizeof(pfx) - 1, bin_len = 0, b64_len;
	const char *end = NULL;
	int r = -TS_E_INVALID_ARGS;

	if (!text || !ret_type || !key || !ret_len)
		return -TS_E_INVALID_ARGS;
	ts_text_trim(&text, &len);
	if (len < pl || memcmp(text, pfx, pl) != 0) {
		if ((r = ts_escrow_pub_from_text(text, len, key)) < 0)
			return r;
		*ret_type = TS_ESCROW_TYPE_X25519;
		*ret_len = TS_ESCROW_PUBLIC_BYTES;
		return 0;
	}
	b64_len = len - pl;
	if (b64_len == 0 || b64_len > (TS_ESCROW_SPKI_MAX + 2) / 3 * 4)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (sodium_base642bin(key, TS_ESCROW_KEY_MAX, text + pl, b64_len, NULL, &bin_len, &end, B64_VARIANT) != 0 ||
	    end != text + len || ts_escrow_rsa_spki_check(key, bin_len, NULL) < 0)
		goto out;
	/* One text form per key: re-encode and compare (no padding, zero unused bits). */
	if ((again = malloc(b64_len + 1)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if (sodium_base64_encoded_len(bin_len, B64_VARIANT) != b64_len + 1)
		goto out;
	sodium_bin2base64(again, b64_len + 1, key, bin_len, B64_VARIANT);
	if (memcmp(again, text + pl, b64_len) != 0)
		goto out;
	*ret_type = TS_ESCROW_TYPE_RSA;
	*ret_len = bin_len;
	r = 0;
out:
	free(again);
	return r;
}

int ts_escrow_key_to_text(unsigned type, const uint8_t *key, size_t len, char out[TS_ESCROW_KEY_TEXT_MAX])
{
	size_t pl = sizeof(TS_ESCROW_RSA_PREFIX) - 1;

	if (!out || ts_escrow_key_check(type, key, len) < 0)
		return -TS_E_INVALID_ARGS;
	if (type == TS_ESCROW_TYPE_X25519) {
		ts_escrow_pub_to_text(key, out);
		return 0;
	}
	memcpy(out, TS_ESCROW_RSA_PREFIX, pl);
	sodium_bin2base64(out + pl, TS_ESCROW_KEY_TEXT_MAX - pl, key, len, B64_VARIANT);
	return 0;
}

void ts_escrow_key_fingerprint(const uint8_t *key, size_t len, uint8_t fp[TS_ESCROW_FINGERPRINT_BYTES])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof(h), key, len, NULL, 0);
	memcpy(fp, h, TS_ESCROW_FINGERPRINT_BYTES);
}

void ts_escrow_key_fingerprint_text(const uint8_t *key, size_t len, char out[TS_ESCROW_FINGERPRINT_TEXT_BYTES])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t fp[TS_ESCROW_FINGERPRINT_BYTES];
	size_t i, o = 0;

	ts_escrow_key_fingerprint(key, len, fp);
	for (i = 0; i < sizeof(fp); i++) {
		if (i > 0 && i % 2 == 0)
			out[o++] = ':';
		out[o++] = hex[fp[i] >> 4];
		out[o++] = hex[fp[i] & 15];
	}
	out[o] = '\0';
}

void ts_escrow_key_describe(unsigned type, const uint8_t *key, size_t len, char *out, size_t outlen)
{
	size_t mod = 0;

	if (type == TS_ESCROW_TYPE_X25519)
		snprintf(out, outlen, "x25519");
	else if (type == TS_ESCROW_TYPE_RSA && ts_escrow_rsa_spki_check(key, len, &mod) == 0)
		snprintf(out, outlen, "rsa-%zu", mod * 8);
	else
		snprintf(out, outlen, "unknown");
}

size_t ts_escrow_sealed_len(unsigned type, const uint8_t *key, size_t len, size_t msg_len)
{
	size_t mod = 0;

	if (type == TS_ESCROW_TYPE_X25519)
		return len == TS_ESCROW_PUBLIC_BYTES ? msg_len + TS_ESCROW_SEAL_OVERHEAD : 0;
	if (type == TS_ESCROW_TYPE_RSA && ts_escrow_rsa_spki_check(key, len, &mod) == 0)
		return mod + TS_ESCROW_RSA_AEAD_OVERHEAD + msg_len;
	return 0;
}

int ts_escrow_seal_to(unsigned type, const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len, ts_buf *out)
{
	_ts_cleanup_secure_ uint8_t *k = NULL;
	char err[256] = "";
	size_t orig_len, mod = 0, want;
	int r;

	if (!key || !msg || !out || len == 0 || len > TS_ESCROW_MESSAGE_MAX)
		return -TS_E_INVALID_ARGS;
	if (type == TS_ESCROW_TYPE_X25519)
		return key_len == TS_ESCROW_PUBLIC_BYTES ? ts_escrow_seal(key, msg, len, out) : -TS_E_INVALID_ARGS;
	if (type != TS_ESCROW_TYPE_RSA || ts_escrow_rsa_spki_check(key, key_len, &mod) < 0)
		return -TS_E_INVALID_ARGS;
	if (!rsa_key_source && !rsa_key_wrapper)
		return -TS_E_NOT_SUPPORTED;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if ((k = ts_secure_alloc(TS_ESCROW_RSA_KEY_BYTES)) == NULL)
		return -TS_E_NOMEM;
	want = ts_escrow_sealed_len(type, key, key_len, len);
	orig_len = out->len;
	/* The RSA implementation sees the box key and the public key only; the message stays here. */
	if (rsa_key_source)
		r = rsa_key_source(key, key_len, k, out, err, sizeof(err));
	else {
		randombytes_buf(k, TS_ESCROW_RSA_KEY_BYTES);
		r = rsa_key_wrapper(key, key_len, k, out, err, sizeof(err));
	}
	/* Whatever implements RSA, its part must have the size of the modulus. */
	if (r == 0 && out->len - orig_len != mod)
		r = -TS_E_FAILED;
	if (r == 0)
		r = ts_escrow_rsa_aead_seal(key, key_len, k, msg, len, out);
	if (r == 0 && out->len - orig_len != want)
		r = -TS_E_FAILED;
	if (r < 0) {
		if (out->len > orig_len)
			sodium_memzero(out->data + orig_len, out->len - orig_len);
		out->len = orig_len;
		return r == -TS_E_NOMEM || r == -TS_E_INVALID_ARGS || r == -TS_E_BUSY ? r : -TS_E_FAILED;
	}
	return 0;
}

/* AAD of an RSA box: label || fingerprint of the recipient's SPKI. */
static void rsa_aad(const uint8_t *spki, size_t spki_len, uint8_t aad[sizeof(TS_ESCROW_RSA_AAD_LABEL) - 1 +
                                                                    TS_ESCROW_FINGERPRINT_BYTES])
{
	memcpy(aad, TS_ESCROW_RSA_AAD_LABEL, sizeof(TS_ESCROW_RSA_AAD_LABEL) - 1);
	ts_escrow_key_fingerprint(spki, spki_len, aad + sizeof(TS_ESCROW_RSA_AAD_LABEL) - 1);
}

int ts_escrow_rsa_aead_seal(const uint8_t *spki, size_t spki_len, const uint8_t *k, const uint8_t *msg,
                            size_t len, ts_buf *out)
{
	uint8_t aad[sizeof(TS_ESCROW_RSA_AAD_LABEL) - 1 + TS_ESCROW_FINGERPRINT_BYTES];
	size_t orig_len;
	uint8_t *dst;

	if (!spki || !k || !msg || !out || len == 0 || len > TS_ESCROW_MESSAGE_MAX ||
	    ts_escrow_rsa_spki_check(spki, spki_len, NULL) < 0)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	rsa_aad(spki, spki_len, aad);
	orig_len = out->len;
	if ((dst = ts_buf_reserve(out, TS_ESCROW_RSA_AEAD_OVERHEAD + len)) == NULL)
		return -TS_E_NOMEM;
	randombytes_buf(dst, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(dst + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL, msg,
	                                               len, aad, sizeof(aad), NULL, dst, k) != 0) {
		sodium_memzero(dst, TS_ESCROW_RSA_AEAD_OVERHEAD + len);
		out->len = orig_len;
		return -TS_E_FAILED;
	}
	return 0;
}

int ts_escrow_rsa_open(const uint8_t *spki, size_t spki_len, const uint8_t *k, const uint8_t *sealed, size_t len,
                       uint8_t *out)
{
	uint8_t aad[sizeof(TS_ESCROW_RSA_AAD_LABEL) - 1 + TS_ESCROW_FINGERPRINT_BYTES];
	const uint8_t *nonce;
	size_t mod = 0, ct_len;

	if (!spki || !k || !sealed || !out || ts_escrow_rsa_spki_check(spki, spki_len, &mod) < 0)
		return -TS_E_INVALID_ARGS;
	if (len <= mod + TS_ESCROW_RSA_AEAD_OVERHEAD || len > mod + TS_ESCROW_RSA_AEAD_OVERHEAD + TS_ESCROW_MESSAGE_MAX)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	rsa_aad(spki, spki_len, aad);
	nonce = sealed + mod;
	ct_len = len - mod - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	                                               ct_len, aad, sizeof(aad), nonce, k) != 0) {
		sodium_memzero(out, ct_len - crypto_aead_xchacha20poly1305_ietf_ABYTES);
		return -TS_E_AUTH_FAILED;
	}
	return 0;
}
