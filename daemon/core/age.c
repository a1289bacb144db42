/* age.c — the vault's age keys, recipient and identity strings, and the "tokenseal" stanza (docs/FORMAT.md). */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/buf.h"
#include "tokenseal.h"
#include "core/age.h"
#include "core/bech32.h"
#include "core/text.h"

#define SECRET_LABEL "tokenseal-age-x25519-v1"
#define WRAP_LABEL "tokenseal-age-wrap-v1"
/* Payloads inside the Bech32 strings. */
#define RECIPIENT_BYTES (1 + TS_AGE_VAULT_TAG_BYTES + 2 + TS_AGE_KEY_BYTES)   /* 43: fits age's 90 characters */
#define IDENTITY_BYTES (1 + TS_VAULT_ID_BYTES)

int ts_age_derive_secret(const uint8_t rk[TS_KEY_BYTES], const uint8_t vault_id[TS_VAULT_ID_BYTES],
                         uint32_t version, uint8_t sk[TS_AGE_KEY_BYTES])
{
	crypto_generichash_state st;
	uint8_t v[4];
	int r = 0;

	if (version < 1 || version > TS_AGE_VERSION_MAX)
		return -TS_E_INVALID_ARGS;
	ts_put_be32(v, version);
	if (crypto_generichash_init(&st, rk, TS_KEY_BYTES, TS_AGE_KEY_BYTES) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)SECRET_LABEL, sizeof(SECRET_LABEL) - 1) != 0 ||
	    crypto_generichash_update(&st, vault_id, TS_VAULT_ID_BYTES) != 0 ||
	    crypto_generichash_update(&st, v, sizeof(v)) != 0 ||
	    crypto_generichash_final(&st, sk, TS_AGE_KEY_BYTES) != 0)
		r = -TS_E_FAILED;
	sodium_memzero(&st, sizeof(st));
	return r;
}

int ts_age_public_key(const uint8_t sk[TS_AGE_KEY_BYTES], uint8_t pk[TS_AGE_KEY_BYTES])
{
	return crypto_scalarmult_base(pk, sk) == 0 ? 0 : -TS_E_FAILED;
}

/* The wrap key from the shared secret S and everything the stanza and recipient say. */
static int wrap_key(const uint8_t S[TS_AGE_KEY_BYTES], const uint8_t tag[TS_AGE_VAULT_TAG_BYTES], uint32_t version,
                    const uint8_t share[TS_AGE_KEY_BYTES], const uint8_t pk[TS_AGE_KEY_BYTES],
                    uint8_t key[crypto_aead_chacha20poly1305_ietf_KEYBYTES])
{
	crypto_generichash_state st;
	uint8_t v[4];
	int r = 0;

	ts_put_be32(v, version);
	if (crypto_generichash_init(&st, S, TS_AGE_KEY_BYTES, crypto_aead_chacha20poly1305_ietf_KEYBYTES) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)WRAP_LABEL, sizeof(WRAP_LABEL) - 1) != 0 ||
	    crypto_generichash_update(&st, tag, TS_AGE_VAULT_TAG_BYTES) != 0 ||
	    crypto_generichash_update(&st, v, sizeof(v)) != 0 ||
	    crypto_generichash_update(&st, share, TS_AGE_KEY_BYTES) != 0 ||
	    crypto_generichash_update(&st, pk, TS_AGE_KEY_BYTES) != 0 ||
	    crypto_generichash_final(&st, key, crypto_aead_chacha20poly1305_ietf_KEYBYTES) != 0)
		r = -TS_E_FAILED;
	sodium_memzero(&st, sizeof(st));
	return r;
}

static const uint8_t zero_nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

int ts_age_wrap(const ts_age_recipient *r, const uint8_t file_key[TS_AGE_FILE_KEY_BYTES],
                const uint8_t *eph, ts_age_stanza *out)
{
	uint8_t e[TS_AGE_KEY_BYTES], S[TS_AGE_KEY_BYTES], key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
	unsigned long long clen = 0;
	int ret = -TS_E_INVALID_ARGS;

	if (!r || !file_key || !out || r->key_version < 1 || r->key_version > TS_AGE_VERSION_MAX)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (eph)
		memcpy(e, eph, sizeof(e));
	else
		randombytes_buf(e, sizeof(e));
	memset(out, 0, sizeof(*out));
	memcpy(out->vault_tag, r->vault_tag, TS_AGE_VAULT_TAG_BYTES);
	out->key_version = r->key_version;
	if (crypto_scalarmult_base(out->share, e) != 0 || crypto_scalarmult(S, e, r->public_key) != 0)
		goto out;   /* a low-order public key: refuse rather than wrap under a known key */
	if ((ret = wrap_key(S, r->vault_tag, r->key_version, out->share, r->public_key, key)) < 0)
		goto out;
	if (crypto_aead_chacha20poly1305_ietf_encrypt(out->body, &clen, file_key, TS_AGE_FILE_KEY_BYTES, NULL, 0,
	                                              NULL, zero_nonce, key) != 0 || clen != TS_AGE_BODY_BYTES)
		ret = -TS_E_FAILED;
out:
	sodium_memzero(e, sizeof(e));
	sodium_memzero(S, sizeof(S));
	sodium_memzero(key, sizeof(key));
	return ret;
}

int ts_age_unwrap(const uint8_t sk[TS_AGE_KEY_BYTES], const ts_age_stanza *s,
                  uint8_t file_key[TS_AGE_FILE_KEY_BYTES])
{
	uint8_t pk[TS_AGE_KEY_BYTES], S[TS_AGE_KEY_BYTES], key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
	uint8_t out[TS_AGE_FILE_KEY_BYTES];
	unsigned long long mlen = 0;
	int ret = -TS_E_BAD_BLOB;

	if (!sk || !s || !file_key)
		return -TS_E_INVALID_ARGS;
	if (crypto_scalarmult_base(pk, sk) != 0 || crypto_scalarmult(S, sk, s->share) != 0)
		goto out;
	if (wrap_key(S, s->vault_tag, s->key_version, s->share, pk, key) < 0) {
		ret = -TS_E_FAILED;
		goto out;
	}
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, s->body, TS_AGE_BODY_BYTES, NULL, 0,
	                                              zero_nonce, key) != 0 || mlen != TS_AGE_FILE_KEY_BYTES)
		goto out;
	memcpy(file_key, out, TS_AGE_FILE_KEY_BYTES);
	ret = 0;
out:
	sodium_memzero(S, sizeof(S));
	sodium_memzero(key, sizeof(key));
	sodium_memzero(out, sizeof(out));
	return ret;
}

int ts_age_recipient_encode(const ts_age_recipient *r, char out[TS_AGE_STRING_MAX])
{
	uint8_t p[RECIPIENT_BYTES];

	if (!r || r->key_version < 1 || r->key_version > TS_AGE_VERSION_MAX)
		return -TS_E_INVALID_ARGS;
	p[0] = TS_AGE_FORMAT;
	memcpy(p + 1, r->vault_tag, TS_AGE_VAULT_TAG_BYTES);
	p[1 + TS_AGE_VAULT_TAG_BYTES] = (uint8_t)(r->key_version >> 8);
	p[2 + TS_AGE_VAULT_TAG_BYTES] = (uint8_t)r->key_version;
	memcpy(p + 3 + TS_AGE_VAULT_TAG_BYTES, r->public_key, TS_AGE_KEY_BYTES);
	return ts_bech32_encode(TS_AGE_RECIPIENT_HRP, p, sizeof(p), out, TS_AGE_STRING_MAX) < 0 ? -TS_E_INVALID_ARGS : 0;
}

int ts_age_recipient_decode(const char *s, size_t len, ts_age_recipient *ret)
{
	char hrp[TS_BECH32_HRP_MAX + 1];
	uint8_t p[RECIPIENT_BYTES + 1];
	size_t n;
	uint32_t v;

	if (!s || !ret || ts_bech32_decode(s, len, hrp, sizeof(hrp), p, sizeof(p), &n) < 0 ||
	    strcmp(hrp, TS_AGE_RECIPIENT_HRP) != 0 || n < 1)
		return -TS_E_INVALID_ARGS;
	/* The recipient age encrypts to is the string in lower case; upper case is refused as age does. */
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return -TS_E_INVALID_ARGS;
	if (p[0] != TS_AGE_FORMAT)
		return -TS_E_UNSUPPORTED_VERSION;
	if (n != RECIPIENT_BYTES)
		return -TS_E_INVALID_ARGS;
	v = ((uint32_t)p[1 + TS_AGE_VAULT_TAG_BYTES] << 8) | p[2 + TS_AGE_VAULT_TAG_BYTES];
	if (v < 1)
		return -TS_E_INVALID_ARGS;
	memcpy(ret->vault_tag, p + 1, TS_AGE_VAULT_TAG_BYTES);
	ret->key_version = v;
	memcpy(ret->public_key, p + 3 + TS_AGE_VAULT_TAG_BYTES, TS_AGE_KEY_BYTES);
	return 0;
}

int ts_age_identity_encode(const uint8_t vault_id[TS_VAULT_ID_BYTES], char out[TS_AGE_STRING_MAX])
{
	uint8_t p[IDENTITY_BYTES];

	if (!vault_id)
		return -TS_E_INVALID_ARGS;
	p[0] = TS_AGE_FORMAT;
	memcpy(p + 1, vault_id, TS_VAULT_ID_BYTES);
	return ts_bech32_encode(TS_AGE_IDENTITY_HRP, p, sizeof(p), out, TS_AGE_STRING_MAX) < 0 ? -TS_E_INVALID_ARGS : 0;
}

int ts_age_identity_decode(const char *s, size_t len, uint8_t vault_id[TS_VAULT_ID_BYTES])
{
	char hrp[TS_BECH32_HRP_MAX + 1];
	uint8_t p[IDENTITY_BYTES + 1];
	size_t n;

	if (!s || !vault_id || ts_bech32_decode(s, len, hrp, sizeof(hrp), p, sizeof(p), &n) < 0 ||
	    strcmp(hrp, "age-plugin-tokenseal-") != 0 || n < 1)
		return -TS_E_INVALID_ARGS;
	if (p[0] != TS_AGE_FORMAT)
		return -TS_E_UNSUPPORTED_VERSION;
	if (n != IDENTITY_BYTES)
		return -TS_E_INVALID_ARGS;
	memcpy(vault_id, p + 1, TS_VAULT_ID_BYTES);
	return 0;
}

/* Canonical unpadded standard base64 of exactly n bytes (libsodium refuses non-zero trailing bits). */
static int b64_exact(const char *s, uint8_t *out, size_t n)
{
	size_t len = strlen(s), got = 0;
	const char *end = NULL;

	if (len != (n * 4 + 2) / 3)
		return -TS_E_INVALID_ARGS;
	if (sodium_base642bin(out, n, s, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
	    got != n || end != s + len)
		return -TS_E_INVALID_ARGS;
	return 0;
}

int ts_age_stanza_parse(const char *const *args, size_t n_args, const uint8_t *body, size_t body_len,
                        ts_age_stanza *ret)
{
	uint64_t v;

	if (!args || !ret || n_args != 3 || !body || body_len != TS_AGE_BODY_BYTES)
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < 3; i++)
		if (!args[i])
			return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (b64_exact(args[0], ret->vault_tag, TS_AGE_VAULT_TAG_BYTES) < 0 ||
	    ts_parse_uint(args[1], strlen(args[1]), TS_AGE_VERSION_MAX, &v) < 0 || v < 1 ||
	    b64_exact(args[2], ret->share, TS_AGE_KEY_BYTES) < 0)
		return -TS_E_INVALID_ARGS;
	ret->key_version = (uint32_t)v;
	memcpy(ret->body, body, TS_AGE_BODY_BYTES);
	return 0;
}

int ts_age_stanza_format(const ts_age_stanza *s, char tag[12], char version[6], char share[44])
{
	if (!s || s->key_version < 1 || s->key_version > TS_AGE_VERSION_MAX)
		return -TS_E_FAILED;
	sodium_bin2base64(tag, 12, s->vault_tag, TS_AGE_VAULT_TAG_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	sodium_bin2base64(share, 44, s->share, TS_AGE_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	snprintf(version, 6, "%u", (unsigned)s->key_version);
	return 0;
}
