/* keyring.c — versioned root keys kept as their fixed binary layout in secure memory, sealed under a VS-derived key. */
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/internal.h"
#include "core/keyring.h"

/*
 * The plaintext layout (docs/FORMAT.md), which is also the in-memory form,
 * so sealing never copies a key outside secure memory:
 *   u32 count | u32 current | u32 min_version | count x (u32 version | u64 created | key[32])
 * all big-endian; entry i holds version i + 1.
 */
#define KR_HDR 12
#define KR_ENTRY (4 + 8 + TS_KEY_BYTES)
#define KR_SIZE(n) (KR_HDR + (size_t)(n) * KR_ENTRY)
#define KR_AAD_LABEL "tokenseal-keyring-v1"
#define KR_SEALED_OVERHEAD (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES)
/* The layout plus, after it, each version's context-check key (never sealed). */
#define KR_MEM(n) (KR_SIZE(n) + (size_t)(n) * TS_BLOB_CTXKEY_BYTES)

/*
 * mem holds the layout (len bytes, the part that is sealed) followed by
 * count context-check keys, KDF(RK_v, "tsctxchk") for version v at sub +
 * (v - 1) * 32, derived once when a key enters the keyring (new, rotate,
 * open) rather than once per blob. They live and die with the root keys:
 * the same secure block, all zero for a retired version, wiped by
 * ts_keyring_free (hence by ts_vault_lock).
 */
struct ts_keyring {
	uint8_t *mem;   /* secure memory, KR_MEM(count) bytes */
	size_t len;     /* KR_SIZE(count) */
	uint8_t *sub;   /* mem + len */
};

static uint32_t kr_count(const ts_keyring *k) { return ts_be32(k->mem); }
static uint8_t *kr_entry(const ts_keyring *k, uint32_t version) { return k->mem + KR_SIZE(version - 1); }
static uint8_t *kr_sub(const ts_keyring *k, uint32_t version)
{
	return k->sub + (size_t)(version - 1) * TS_BLOB_CTXKEY_BYTES;
}

/* Derive the context-check key of a live version from its root key. */
static int kr_derive_sub(ts_keyring *k, uint32_t version)
{
	return ts_blob_ctx_key(kr_entry(k, version) + 12, kr_sub(k, version));
}

uint32_t ts_keyring_current(const ts_keyring *k) { return ts_be32(k->mem + 4); }
uint32_t ts_keyring_min_version(const ts_keyring *k) { return ts_be32(k->mem + 8); }

uint64_t ts_keyring_current_created(const ts_keyring *k)
{
	return ts_be64(kr_entry(k, ts_keyring_current(k)) + 4);
}

/* A keyring whose layout is len bytes with room for n context-check keys. */
static ts_keyring *kr_alloc(size_t len, uint32_t n)
{
	ts_keyring *k;

	if ((k = ts_secure_alloc(sizeof(*k))) == NULL)
		return NULL;
	if ((k->mem = ts_secure_alloc(len + (size_t)n * TS_BLOB_CTXKEY_BYTES)) == NULL) {
		ts_secure_free(k);
		return NULL;
	}
	k->len = len;
	k->sub = k->mem + len;
	return k;
}

void ts_keyring_free(ts_keyring *k)
{
	if (!k)
		return;
	ts_secure_free(k->mem);
	ts_secure_free(k);
}

int ts_keyring_new(ts_keyring **ret, uint64_t now)
{
	ts_keyring *k;
	uint8_t *e;

	if (!ret)
		return -TS_E_INVALID_ARGS;
	if ((k = kr_alloc(KR_SIZE(1), 1)) == NULL)
		return -TS_E_NOMEM;
	ts_put_be32(k->mem, 1);
	ts_put_be32(k->mem + 4, 1);
	ts_put_be32(k->mem + 8, 1);
	e = kr_entry(k, 1);
	ts_put_be32(e, 1);
	ts_put_be64(e + 4, now);
	randombytes_buf(e + 12, TS_KEY_BYTES);
	if (kr_derive_sub(k, 1) < 0) {
		ts_keyring_free(k);
		return -TS_E_FAILED;
	}
	*ret = k;
	return 0;
}

int ts_keyring_rotate(ts_keyring *k, uint64_t now, uint32_t *ret_version)
{
	uint32_t n;
	uint8_t *mem, *e;

	if (!k)
		return -TS_E_INVALID_ARGS;
	n = kr_count(k);
	if (n >= TS_KEYRING_MAX_VERSIONS)
		return -TS_E_LIMIT;
	/*
	 * Grow by copying inside secure memory, the new key and its
	 * context-check key made in place; only once both are there does the
	 * new block replace the old, which ts_secure_free wipes.
	 */
	if ((mem = ts_secure_alloc(KR_MEM(n + 1))) == NULL)
		return -TS_E_NOMEM;
	memcpy(mem, k->mem, k->len);
	memcpy(mem + KR_SIZE(n + 1), k->sub, (size_t)n * TS_BLOB_CTXKEY_BYTES);
	e = mem + KR_SIZE(n);
	ts_put_be32(e, n + 1);
	ts_put_be64(e + 4, now);
	randombytes_buf(e + 12, TS_KEY_BYTES);
	if (ts_blob_ctx_key(e + 12, mem + KR_SIZE(n + 1) + (size_t)n * TS_BLOB_CTXKEY_BYTES) < 0) {
		ts_secure_free(mem);
		return -TS_E_FAILED;
	}
	ts_put_be32(mem, n + 1);
	ts_put_be32(mem + 4, n + 1);
	ts_secure_free(k->mem);
	k->mem = mem;
	k->len = KR_SIZE(n + 1);
	k->sub = mem + k->len;
	if (ret_version)
		*ret_version = n + 1;
	return 0;
}

int ts_keyring_retire_below(ts_keyring *k, uint32_t min_version)
{
	uint32_t v, old_min;

	if (!k || min_version > ts_keyring_current(k))
		return -TS_E_INVALID_ARGS;
	old_min = ts_keyring_min_version(k);
	/* Retired keys are gone: the minimum can only move up. */
	if (min_version <= old_min)
		return 0;
	for (v = old_min; v < min_version; v++) {
		sodium_memzero(kr_entry(k, v) + 12, TS_KEY_BYTES);
		sodium_memzero(kr_sub(k, v), TS_BLOB_CTXKEY_BYTES);
	}
	ts_put_be32(k->mem + 8, min_version);
	return 0;
}

int ts_keyring_keys(const ts_keyring *k, uint32_t version, const uint8_t **ret_key,
                    const uint8_t **ret_ctx_key)
{
	if (!k || !ret_key)
		return -TS_E_INVALID_ARGS;
	if (version == 0 || version > kr_count(k))
		return -TS_E_BAD_BLOB;
	if (version < ts_keyring_min_version(k))
		return -TS_E_KEY_RETIRED;
	*ret_key = kr_entry(k, version) + 12;
	if (ret_ctx_key)
		*ret_ctx_key = kr_sub(k, version);
	return 0;
}

int ts_keyring_key(const ts_keyring *k, uint32_t version, const uint8_t **ret_key)
{
	return ts_keyring_keys(k, version, ret_key, NULL);
}

/* AAD = "tokenseal-keyring-v1" || vault id. */
static void kr_aad(uint8_t aad[sizeof(KR_AAD_LABEL) - 1 + TS_VAULT_ID_BYTES],
                   const uint8_t vault_id[TS_VAULT_ID_BYTES])
{
	memcpy(aad, KR_AAD_LABEL, sizeof(KR_AAD_LABEL) - 1);
	memcpy(aad + sizeof(KR_AAD_LABEL) - 1, vault_id, TS_VAULT_ID_BYTES);
}

int ts_keyring_seal(const ts_keyring *k, const uint8_t vs[TS_KEY_BYTES],
                    const uint8_t vault_id[TS_VAULT_ID_BYTES], ts_buf *out)
{
	uint8_t aad[sizeof(KR_AAD_LABEL) - 1 + TS_VAULT_ID_BYTES];
	uint8_t key[TS_KEY_BYTES];
	size_t orig_len;
	uint8_t *p;
	int r;

	if (!k || !vs || !vault_id || !out)
		return -TS_E_INVALID_ARGS;
	orig_len = out->len;
	if ((r = ts_kdf_derive(key, TS_KDF_CTX_KEYRING, vs)) < 0)
		goto out;
	if ((p = ts_buf_reserve(out, KR_SEALED_OVERHEAD + k->len)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	kr_aad(aad, vault_id);
	randombytes_buf(p, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(p + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	                                               NULL, k->mem, k->len, aad, sizeof(aad), NULL,
	                                               p, key) != 0) {
		r = -TS_E_FAILED;
		goto out;
	}
	r = 0;
out:
	sodium_memzero(key, sizeof(key));
	if (r < 0)
		out->len = orig_len;
	return r;
}

/* Every invariant the writer keeps; anything else is a corrupt (or forged-by-VS-holder) keyring. */
static int kr_check(const uint8_t *m, size_t len)
{
	static const uint8_t zero[TS_KEY_BYTES];
	uint32_t n, cur, min, i;
	const uint8_t *e;

	if (len < KR_SIZE(1))
		return -TS_E_CORRUPT;
	n = ts_be32(m);
	cur = ts_be32(m + 4);
	min = ts_be32(m + 8);
	if (n == 0 || n > TS_KEYRING_MAX_VERSIONS || len != KR_SIZE(n))
		return -TS_E_CORRUPT;
	if (cur != n || min == 0 || min > cur)
		return -TS_E_CORRUPT;
	for (i = 1; i <= n; i++) {
		e = m + KR_SIZE(i - 1);
		if (ts_be32(e) != i)
			return -TS_E_CORRUPT;
		/* Retired slots are all zero; live ones never are. */
		if ((i < min) != (sodium_memcmp(e + 12, zero, TS_KEY_BYTES) == 0))
			return -TS_E_CORRUPT;
	}
	return 0;
}

int ts_keyring_open(const uint8_t vs[TS_KEY_BYTES], const uint8_t vault_id[TS_VAULT_ID_BYTES],
                    const uint8_t *sealed, size_t len, ts_keyring **ret)
{
	uint8_t aad[sizeof(KR_AAD_LABEL) - 1 + TS_VAULT_ID_BYTES];
	uint8_t key[TS_KEY_BYTES];
	ts_keyring *k = NULL;
	size_t plen;
	uint32_t i;
	int r;

	if (!vs || !vault_id || !ret || (len && !sealed))
		return -TS_E_INVALID_ARGS;
	if (len < KR_SEALED_OVERHEAD + KR_SIZE(1) || len > KR_SEALED_OVERHEAD + KR_SIZE(TS_KEYRING_MAX_VERSIONS))
		return -TS_E_CORRUPT;
	plen = len - KR_SEALED_OVERHEAD;
	if ((r = ts_kdf_derive(key, TS_KDF_CTX_KEYRING, vs)) < 0)
		goto out;
	/* Room for the context-check keys of as many versions as plen could hold; kr_check checks the count. */
	if ((k = kr_alloc(plen, (uint32_t)((plen - KR_HDR) / KR_ENTRY))) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	kr_aad(aad, vault_id);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(k->mem, NULL, NULL,
	                                               sealed + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	                                               len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	                                               aad, sizeof(aad), sealed, key) != 0) {
		r = -TS_E_CORRUPT;
		goto out;
	}
	if ((r = kr_check(k->mem, plen)) < 0)
		goto out;
	for (i = ts_keyring_min_version(k); i <= kr_count(k); i++)
		if (kr_derive_sub(k, i) < 0) {
			r = -TS_E_FAILED;
			goto out;
		}
	*ret = k;
	k = NULL;
	r = 0;
out:
	sodium_memzero(key, sizeof(key));
	ts_keyring_free(k);
	return r;
}
