/* fuzz_keyring.c — libFuzzer harness: the keyring's plaintext layout, as ts_keyring_open sees it after decryption. */
#include <sodium.h>

#include "core/buf.h"
#include "core/keyring.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The plaintext is only reachable by someone holding VS, so random bytes
 * never get past the AEAD. The harness plays that VS holder: it seals the
 * input itself, the way docs/FORMAT.md says a keyring is sealed (key =
 * crypto_kdf(VS, id 1, "tskeyrng"), AAD = "tokenseal-keyring-v1" || vault
 * id, nonce || XChaCha20-Poly1305), and hands the result to ts_keyring_open.
 * If the format moves, the ok-* seeds stop opening and the hardening test
 * says so.
 */
static const uint8_t vs[TS_KEY_BYTES] = "fuzz-keyring-vault-secret-32byte";
static const uint8_t vault_id[TS_VAULT_ID_BYTES] = "fuzz-keyring-id.";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0)
		abort();
	return 0;
}

static void seal_as_vs_holder(const uint8_t *pt, size_t len, ts_buf *out)
{
	static const char label[] = "tokenseal-keyring-v1";
	uint8_t key[TS_KEY_BYTES], aad[sizeof(label) - 1 + TS_VAULT_ID_BYTES];
	uint8_t *p;

	if (crypto_kdf_derive_from_key(key, sizeof(key), 1, "tskeyrng", vs) != 0)
		abort();
	memcpy(aad, label, sizeof(label) - 1);
	memcpy(aad + sizeof(label) - 1, vault_id, TS_VAULT_ID_BYTES);
	if ((p = ts_buf_reserve(out, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len +
	                             crypto_aead_xchacha20poly1305_ietf_ABYTES)) == NULL)
		abort();
	memset(p, 0x42, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(p + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	                                           NULL, pt, len, aad, sizeof(aad), NULL, p, key);
	sodium_memzero(key, sizeof(key));
}

/* What any keyring that opened must honour: versions, retirement, rotation, and its own seal. */
static void check_keyring(ts_keyring *k)
{
	uint32_t cur = ts_keyring_current(k), min = ts_keyring_min_version(k), v, nv;
	ts_buf sealed = { 0 };
	ts_keyring *again = NULL;
	const uint8_t *key, *key2;

	TS_FUZZ_CHECK(cur >= 1 && cur <= TS_KEYRING_MAX_VERSIONS);
	TS_FUZZ_CHECK(min >= 1 && min <= cur);
	TS_FUZZ_CHECK(ts_keyring_key(k, 0, &key) < 0);
	TS_FUZZ_CHECK(ts_keyring_key(k, cur + 1, &key) == -TS_E_BAD_BLOB);
	for (v = 1; v <= cur; v++)
		TS_FUZZ_CHECK(ts_keyring_key(k, v, &key) == (v < min ? -TS_E_KEY_RETIRED : 0));
	(void)ts_keyring_current_created(k);

	/* Its own seal opens to the same keys. */
	TS_FUZZ_CHECK(ts_keyring_seal(k, vs, vault_id, &sealed) == 0);
	TS_FUZZ_CHECK(ts_keyring_open(vs, vault_id, sealed.data, sealed.len, &again) == 0);
	TS_FUZZ_CHECK(ts_keyring_current(again) == cur && ts_keyring_min_version(again) == min);
	TS_FUZZ_CHECK(ts_keyring_key(k, cur, &key) == 0 && ts_keyring_key(again, cur, &key2) == 0);
	TS_FUZZ_CHECK(sodium_memcmp(key, key2, TS_KEY_BYTES) == 0);
	ts_keyring_free(again);
	ts_buf_free(&sealed);

	/* Rotation adds one version (or hits the limit); retiring the old ones keeps the new. */
	if (cur < TS_KEYRING_MAX_VERSIONS) {
		TS_FUZZ_CHECK(ts_keyring_rotate(k, 1, &nv) == 0 && nv == cur + 1);
		TS_FUZZ_CHECK(ts_keyring_retire_below(k, nv) == 0);
		TS_FUZZ_CHECK(ts_keyring_key(k, cur, &key) == -TS_E_KEY_RETIRED);
		TS_FUZZ_CHECK(ts_keyring_key(k, nv, &key) == 0);
	} else {
		TS_FUZZ_CHECK(ts_keyring_rotate(k, 1, &nv) == -TS_E_LIMIT);
	}
	TS_FUZZ_CHECK(ts_keyring_retire_below(k, ts_keyring_current(k) + 1) == -TS_E_INVALID_ARGS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_buf sealed = { 0 };
	ts_keyring *k = NULL;
	int r;

	seal_as_vs_holder(data, size, &sealed);
	r = ts_keyring_open(vs, vault_id, sealed.data, sealed.len, &k);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_CORRUPT);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	if (r == 0)
		check_keyring(k);
	else
		TS_FUZZ_CHECK(k == NULL);

	/* The same bytes under another vault id never open (the id is bound as AAD). */
	if (r == 0) {
		static const uint8_t other_id[TS_VAULT_ID_BYTES] = "another-vault-id";
		ts_keyring *k2 = NULL;

		TS_FUZZ_CHECK(ts_keyring_open(vs, other_id, sealed.data, sealed.len, &k2) == -TS_E_CORRUPT);
	}
	ts_keyring_free(k);
	ts_buf_free(&sealed);
	return 0;
}
