/* escrow.c — escrow officer keys, their text forms and fingerprints, and X25519 sealed boxes. */
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/escrow.h"

_Static_assert(TS_ESCROW_PUBLIC_BYTES == crypto_box_PUBLICKEYBYTES, "escrow public key size");
_Static_assert(TS_ESCROW_SECRET_BYTES == crypto_box_SECRETKEYBYTES, "escrow secret key size");
_Static_assert(TS_ESCROW_SEAL_OVERHEAD == crypto_box_SEALBYTES, "sealed box overhead");

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

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
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
	while (len > 0 && is_space(text[0])) {
		text++;
		len--;
	}
	while (len > 0 && is_space(text[len - 1]))
		len--;
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

void ts_escrow_fingerprint(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], uint8_t fp[TS_ESCROW_FINGERPRINT_BYTES])
{
	uint8_t h[32];

	crypto_generichash(h, sizeof(h), pub, TS_ESCROW_PUBLIC_BYTES, NULL, 0);
	memcpy(fp, h, TS_ESCROW_FINGERPRINT_BYTES);
}

void ts_escrow_fingerprint_text(const uint8_t pub[TS_ESCROW_PUBLIC_BYTES], char out[TS_ESCROW_FINGERPRINT_TEXT_BYTES])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t fp[TS_ESCROW_FINGERPRINT_BYTES];
	size_t i, o = 0;

	ts_escrow_fingerprint(pub, fp);
	for (i = 0; i < sizeof(fp); i++) {
		if (i > 0 && i % 2 == 0)
			out[o++] = ':';
		out[o++] = hex[fp[i] >> 4];
		out[o++] = hex[fp[i] & 15];
	}
	out[o] = '\0';
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
