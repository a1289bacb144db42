/* fuzz_vault.c — libFuzzer harness: the vault file parser and unlock of a parsed (hostile) vault. */
#include <sodium.h>

#include "core/buf.h"
#include "core/vault.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Only the fixture of mkseeds.c has a protector under the fixed KEK, and
 * nobody without its VS can recompute the header MAC. So whatever unlocks
 * must still be that fixture, field for field: a mutation that survived
 * unlock is a tamper the header MAC failed to cover.
 */
static void check_is_fixture(const ts_vault *v)
{
	TS_FUZZ_CHECK(strcmp(v->name, TS_FUZZ_VAULT_NAME) == 0);
	TS_FUZZ_CHECK(v->owner_uid == TS_FUZZ_VAULT_OWNER);
	TS_FUZZ_CHECK(v->created == TS_FUZZ_NOW);
	TS_FUZZ_CHECK(v->n_protectors == 2 && v->next_protector == 3);
	TS_FUZZ_CHECK(strcmp(v->protectors[0].type, "recovery") == 0);
	TS_FUZZ_CHECK(strcmp(v->protectors[0].description, TS_FUZZ_P1_DESC) == 0);
	TS_FUZZ_CHECK(v->protectors[0].created == TS_FUZZ_NOW);
	TS_FUZZ_CHECK(strcmp(v->protectors[1].type, "fido2") == 0);
	TS_FUZZ_CHECK(strcmp(v->protectors[1].description, TS_FUZZ_P2_DESC) == 0);
	TS_FUZZ_CHECK(v->protectors[1].created == TS_FUZZ_NOW + 1);
	TS_FUZZ_CHECK(strcmp(v->protectors[0].id, v->protectors[1].id) != 0);
	TS_FUZZ_CHECK(v->key_version == 1 || v->key_version == 3);
	TS_FUZZ_CHECK(v->min_key_version == (v->key_version == 1 ? 1 : 2));
}

/* What an unlocked vault must be able to do: wrap/unwrap, and survive a serialize → parse → unlock cycle. */
static void check_unlocked(ts_vault *v, const char *protector_id)
{
	static const uint8_t pt[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	ts_buf blob = { 0 }, file = { 0 };
	ts_blob_view bv;
	ts_vault *again = NULL;
	uint8_t *out;

	TS_FUZZ_CHECK(!ts_vault_is_locked(v));
	TS_FUZZ_CHECK(ts_vault_wrap(v, ts_fuzz_ctx, TS_FUZZ_N_CTX, pt, sizeof(pt), &blob) == 0);
	TS_FUZZ_CHECK(ts_blob_parse(blob.data, blob.len, &bv) == 0);
	TS_FUZZ_CHECK(bv.plaintext_len == sizeof(pt));
	if ((out = ts_secure_alloc(sizeof(pt))) == NULL)
		abort();
	TS_FUZZ_CHECK(ts_vault_unwrap(v, &bv, ts_fuzz_ctx, TS_FUZZ_N_CTX, out) == 0);
	TS_FUZZ_CHECK(memcmp(out, pt, sizeof(pt)) == 0);
	ts_secure_free(out);

	TS_FUZZ_CHECK(ts_vault_serialize(v, &file) == 0);
	TS_FUZZ_CHECK(ts_vault_parse(file.data, file.len, &again) == 0);
	TS_FUZZ_CHECK(ts_vault_is_locked(again));
	TS_FUZZ_CHECK(ts_vault_unlock(again, protector_id, ts_fuzz_kek) == 0);
	TS_FUZZ_CHECK(memcmp(again->id, v->id, TS_VAULT_ID_BYTES) == 0);
	TS_FUZZ_CHECK(again->n_protectors == v->n_protectors);
	ts_vault_free(again);
	ts_buf_free(&file);
	ts_buf_free(&blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_vault *v = NULL;
	size_t i, n, opened = 0;
	int r;

	r = ts_vault_parse(data, size, &v);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_CORRUPT || r == -TS_E_UNSUPPORTED_VERSION);
	if (r < 0) {
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		return 0;
	}
	TS_FUZZ_CHECK(v != NULL && ts_vault_is_locked(v));
	TS_FUZZ_CHECK(v->n_protectors <= TS_VAULT_MAX_PROTECTORS);

	n = v->n_protectors;
	for (i = 0; i < n; i++) {
		/* Copy the id: a failed unlock must not touch it, but do not rely on it. */
		char id[TS_PROTECTOR_ID_MAX];

		TS_FUZZ_CHECK(memchr(v->protectors[i].id, '\0', TS_PROTECTOR_ID_MAX) != NULL);
		TS_FUZZ_CHECK(memchr(v->protectors[i].type, '\0', TS_PROTECTOR_TYPE_MAX) != NULL);
		TS_FUZZ_CHECK(memchr(v->protectors[i].description, '\0', TS_PROTECTOR_DESC_MAX) != NULL);
		TS_FUZZ_CHECK(ts_vault_find_protector(v, v->protectors[i].id) != NULL);
		memcpy(id, v->protectors[i].id, sizeof(id));

		r = ts_vault_unlock(v, id, ts_fuzz_kek);
		if (r < 0) {
			TS_FUZZ_CHECK(r == -TS_E_AUTH_FAILED || r == -TS_E_CORRUPT ||
			              r == -TS_E_UNSUPPORTED_VERSION || r == -TS_E_NOMEM);
			/* On failure the vault stays locked and nothing leaks. */
			TS_FUZZ_CHECK(ts_vault_is_locked(v) && v->keyring == NULL);
			continue;
		}
		/* Only the fixed-KEK fixture (or a mutation that kept it intact) gets here. */
		opened++;
		check_is_fixture(v);
		check_unlocked(v, id);
		ts_vault_lock(v);
		TS_FUZZ_CHECK(ts_vault_is_locked(v) && v->keyring == NULL);
	}
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(opened > 0);
	/* An id the file does not have is refused, not matched by prefix or by accident. */
	if (ts_vault_find_protector(v, "no-such-id") == NULL) {
		r = ts_vault_unlock(v, "no-such-id", ts_fuzz_kek);
		TS_FUZZ_CHECK(r < 0 && ts_vault_is_locked(v));
	}
	ts_vault_free(v);
	return 0;
}
