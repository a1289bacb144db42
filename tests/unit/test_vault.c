/* test_vault.c — vaults: protectors, unlock, rotation, blobs, and a file format in which no edit goes unnoticed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cbor.h>
#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/vault.h"
#include "vault_util.h"

#define NOW 1700000000u

static uint8_t kek1[TS_KEY_BYTES], kek2[TS_KEY_BYTES], bad_kek[TS_KEY_BYTES];
static const ts_kv ctx[] = { { "app", "org.example.Mail" } };

static int setup(void **state)
{
	randombytes_buf(kek1, sizeof(kek1));
	randombytes_buf(kek2, sizeof(kek2));
	randombytes_buf(bad_kek, sizeof(bad_kek));
	return 0;
}

/* A vault "alice" with two protectors p1 (kek1) and p2 (kek2), serialized into file. */
static ts_vault *make_vault(ts_buf *file)
{
	ts_vault *v = NULL;
	const char *id = NULL;

	assert_int_equal(ts_vault_create(&v, "alice", 1000, NOW), 0);
	assert_int_equal(ts_vault_add_protector(v, "recovery", "Printed recovery key", kek1,
	                                        (const uint8_t *)"\xa1\x61x\x01", 4, NOW, &id), 0);
	assert_string_equal(id, "p1");
	assert_int_equal(ts_vault_add_protector(v, "fido2", "YubiKey 5 NFC", kek2,
	                                        (const uint8_t *)"params-2", 8, NOW + 1, &id), 0);
	assert_string_equal(id, "p2");
	if (file)
		assert_int_equal(ts_vault_serialize(v, file), 0);
	return v;
}

static void wrap(const ts_vault *v, const char *pt, ts_buf *out)
{
	assert_int_equal(ts_vault_wrap(v, ctx, 1, (const uint8_t *)pt, strlen(pt), out), 0);
}

static void names_are_validated(void **state)
{
	static const char *const good[] = { "alice", "a", "A-b_c.d", "0", "x..y" };
	static const char *const bad[] = { "", ".hidden", "-opt", "a/b", "a b", "caf\xc3\xa9", "a\n", "..", NULL };
	char longest[TS_VAULT_NAME_MAX + 2];
	ts_vault *v = NULL;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(ts_vault_name_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(ts_vault_name_valid(bad[i]));
	memset(longest, 'n', sizeof(longest));
	longest[TS_VAULT_NAME_MAX] = '\0';
	assert_true(ts_vault_name_valid(longest));
	longest[TS_VAULT_NAME_MAX] = 'n';
	longest[TS_VAULT_NAME_MAX + 1] = '\0';
	assert_false(ts_vault_name_valid(longest));
	assert_int_equal(ts_vault_create(&v, "../etc", 0, NOW), -TS_E_INVALID_ARGS);
	assert_null(v);
}

static void created_vault_is_unlocked_with_fresh_ids(void **state)
{
	ts_vault *a = NULL, *b = NULL;
	char hex[33];

	assert_int_equal(ts_vault_create(&a, "alice", 1000, NOW), 0);
	assert_int_equal(ts_vault_create(&b, "alice", 1000, NOW), 0);
	assert_false(ts_vault_is_locked(a));
	assert_memory_not_equal(a->id, b->id, TS_VAULT_ID_BYTES);
	assert_int_equal(a->key_version, 1);
	assert_int_equal(a->n_protectors, 0);
	ts_vault_id_hex(a, hex);
	assert_int_equal(strlen(hex), 32);
	assert_int_equal(strspn(hex, "0123456789abcdef"), 32);
	ts_vault_free(a);
	ts_vault_free(b);
	ts_vault_free(NULL);
}

static void serialize_parse_unlock_with_each_protector(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	ts_vault *v = make_vault(&file), *w;

	wrap(v, "data key", &blob);
	w = tv_reload(&file);
	assert_string_equal(w->name, "alice");
	assert_int_equal(w->owner_uid, 1000);
	assert_memory_equal(w->id, v->id, TS_VAULT_ID_BYTES);
	assert_int_equal(w->n_protectors, 2);
	assert_string_equal(w->protectors[1].type, "fido2");
	assert_string_equal(w->protectors[1].description, "YubiKey 5 NFC");
	assert_int_equal(w->protectors[1].params_len, 8);
	assert_memory_equal(w->protectors[1].params, "params-2", 8);
	assert_true(w->generation == 1);
	assert_int_equal(w->next_protector, 3);

	assert_int_equal(ts_vault_unlock(w, "p1", kek1), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "data key"), 0);
	ts_vault_lock(w);
	assert_true(ts_vault_is_locked(w));
	assert_null(w->keyring);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, NULL), -TS_E_LOCKED);
	assert_int_equal(ts_vault_unlock(w, "p2", kek2), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "data key"), 0);
	ts_vault_free(w);
	ts_vault_free(v);
}

static void wrong_kek_gives_auth_failed_and_stays_locked(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(&file), *w = tv_reload(&file);

	assert_int_equal(ts_vault_unlock(w, "p1", bad_kek), -TS_E_AUTH_FAILED);
	assert_true(ts_vault_is_locked(w));
	/* Another protector's KEK does not open this one either (the AAD binds the id). */
	assert_int_equal(ts_vault_unlock(w, "p1", kek2), -TS_E_AUTH_FAILED);
	assert_int_equal(ts_vault_unlock(w, "p3", kek1), -TS_E_NO_SUCH_PROTECTOR);
	assert_int_equal(ts_vault_unlock(w, "p", kek1), -TS_E_NO_SUCH_PROTECTOR);
	assert_true(ts_vault_is_locked(w));
	assert_null(w->keyring);
	ts_vault_free(w);
	ts_vault_free(v);
}

static void locked_vault_refuses_every_operation(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf out = { 0 };
	ts_vault *v = make_vault(&file);

	ts_vault_lock(v);
	ts_vault_lock(v);
	assert_int_equal(ts_vault_wrap(v, ctx, 1, (const uint8_t *)"x", 1, &out), -TS_E_LOCKED);
	assert_int_equal(ts_vault_add_protector(v, "tpm2", "", kek1, NULL, 0, NOW, NULL), -TS_E_LOCKED);
	assert_int_equal(ts_vault_remove_protector(v, "p1"), -TS_E_LOCKED);
	assert_int_equal(ts_vault_rotate(v, NOW, NULL), -TS_E_LOCKED);
	assert_int_equal(ts_vault_retire_below(v, 1), -TS_E_LOCKED);
	assert_int_equal(ts_vault_serialize(v, &out), -TS_E_LOCKED);
	assert_int_equal(out.len, 0);
	ts_vault_free(v);
}

static void rotation_keeps_old_blobs_until_retired_across_reloads(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf file2 = { 0 };
	_ts_cleanup_buf_ ts_buf b1 = { 0 };
	_ts_cleanup_buf_ ts_buf b2 = { 0 };
	ts_vault *v = make_vault(NULL), *w;
	ts_blob_view bv;
	uint32_t ver = 0;

	wrap(v, "old", &b1);
	assert_int_equal(ts_vault_rotate(v, NOW + 10, &ver), 0);
	assert_int_equal(ver, 2);
	wrap(v, "new", &b2);
	assert_int_equal(ts_blob_parse(b2.data, b2.len, &bv), 0);
	assert_int_equal(bv.key_version, 2);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b1, "old"), 0);
	assert_int_equal(ts_vault_serialize(v, &file), 0);

	w = tv_reload(&file);
	assert_int_equal(w->key_version, 2);
	assert_int_equal(ts_vault_unlock(w, "p2", kek2), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b1, "old"), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b2, "new"), 0);
	assert_int_equal(ts_vault_retire_below(w, 3), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_retire_below(w, 2), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b1, NULL), -TS_E_KEY_RETIRED);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b2, "new"), 0);
	assert_int_equal(ts_vault_serialize(w, &file2), 0);
	ts_vault_free(w);

	w = tv_reload(&file2);
	assert_int_equal(w->min_key_version, 2);
	assert_int_equal(ts_vault_unlock(w, "p1", kek1), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b1, NULL), -TS_E_KEY_RETIRED);
	assert_int_equal(tv_unwrap(w, ctx, 1, &b2, "new"), 0);
	ts_vault_free(w);
	ts_vault_free(v);
}

static void blobs_of_another_vault_or_unknown_version_are_refused(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	ts_vault *v = make_vault(NULL), *other = make_vault(NULL);

	wrap(other, "theirs", &b);
	assert_int_equal(tv_unwrap(v, ctx, 1, &b, NULL), -TS_E_WRONG_VAULT);
	ts_buf_free(&b);
	wrap(v, "mine", &b);
	b.data[25] = 9;   /* key version 9: this vault has only 1 */
	assert_int_equal(tv_unwrap(v, ctx, 1, &b, NULL), -TS_E_BAD_BLOB);
	b.data[25] = 1;
	assert_int_equal(tv_unwrap(v, ctx, 1, &b, "mine"), 0);
	ts_vault_free(v);
	ts_vault_free(other);
}

static void protectors_are_removed_but_never_the_last(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(NULL), *w;
	const char *id;

	assert_int_equal(ts_vault_remove_protector(v, "p9"), -TS_E_NO_SUCH_PROTECTOR);
	assert_int_equal(ts_vault_remove_protector(v, "p1"), 0);
	assert_null(ts_vault_find_protector(v, "p1"));
	assert_int_equal(ts_vault_remove_protector(v, "p2"), -TS_E_LAST_PROTECTOR);
	/* Ids are never reused. */
	assert_int_equal(ts_vault_add_protector(v, "tpm2", "TPM", kek1, NULL, 0, NOW, &id), 0);
	assert_string_equal(id, "p3");
	assert_int_equal(ts_vault_serialize(v, &file), 0);
	w = tv_reload(&file);
	assert_int_equal(ts_vault_unlock(w, "p1", kek1), -TS_E_NO_SUCH_PROTECTOR);
	assert_int_equal(ts_vault_unlock(w, "p3", kek1), 0);
	ts_vault_free(w);
	ts_vault_free(v);
}

static void protector_fields_and_count_are_limited(void **state)
{
	ts_vault *v = NULL;
	char desc[TS_PROTECTOR_DESC_MAX + 1];

	assert_int_equal(ts_vault_create(&v, "bob", 1, NOW), 0);
	assert_int_equal(ts_vault_add_protector(v, "", "", kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_add_protector(v, "fido 2", "", kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_add_protector(v, "a-type-too-long!", "", kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_add_protector(v, "x", "evil\x1b[2J", kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_add_protector(v, "x", "c1 \xc2\x9b", kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_add_protector(v, "x", "\xff", kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	memset(desc, 'd', sizeof(desc));
	desc[TS_PROTECTOR_DESC_MAX - 1] = '\0';
	assert_int_equal(ts_vault_add_protector(v, "x", desc, kek1, NULL, 0, NOW, NULL), 0);
	desc[TS_PROTECTOR_DESC_MAX - 1] = 'd';
	desc[TS_PROTECTOR_DESC_MAX] = '\0';
	assert_int_equal(ts_vault_add_protector(v, "x", desc, kek1, NULL, 0, NOW, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_add_protector(v, "x", "caf\xc3\xa9 \xe2\x82\xac", kek1, NULL, 0, NOW, NULL), 0);
	for (int i = 2; i < TS_VAULT_MAX_PROTECTORS; i++)
		assert_int_equal(ts_vault_add_protector(v, "x", "", kek1, NULL, 0, NOW, NULL), 0);
	assert_int_equal(ts_vault_add_protector(v, "x", "", kek1, NULL, 0, NOW, NULL), -TS_E_LIMIT);
	assert_int_equal(v->n_protectors, TS_VAULT_MAX_PROTECTORS);
	ts_vault_free(v);
}

static void each_serialize_bumps_generation_and_reseals(void **state)
{
	_ts_cleanup_buf_ ts_buf f1 = { 0 };
	_ts_cleanup_buf_ ts_buf f2 = { 0 };
	ts_vault *v = make_vault(&f1), *w;
	uint8_t nonce1[24];

	memcpy(nonce1, v->keyring_sealed, 24);
	assert_int_equal(ts_vault_serialize(v, &f2), 0);
	assert_true(v->generation == 2);
	assert_memory_not_equal(v->keyring_sealed, nonce1, 24);
	w = tv_reload(&f2);
	assert_true(w->generation == 2);
	assert_int_equal(ts_vault_unlock(w, "p1", kek1), 0);
	ts_vault_free(w);
	/* The in-memory vault can be locked and unlocked again from what it wrote. */
	ts_vault_lock(v);
	assert_int_equal(ts_vault_unlock(v, "p2", kek2), 0);
	ts_vault_free(v);
}

static void every_single_byte_flip_of_the_file_fails_parse_or_unlock(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(&file), *w;
	size_t parsed = 0;

	for (size_t i = 0; i < file.len; i++) {
		static const uint8_t masks[] = { 0x01, 0x80 };

		for (size_t m = 0; m < sizeof(masks); m++) {
			int r;

			file.data[i] ^= masks[m];
			w = NULL;
			r = ts_vault_parse(file.data, file.len, &w);
			if (r == 0) {
				parsed++;
				for (size_t p = 0; p < w->n_protectors; p++) {
					const uint8_t *k = strcmp(w->protectors[p].id, "p1") == 0 ? kek1 : kek2;

					r = ts_vault_unlock(w, w->protectors[p].id, k);
					if (r == 0)
						fail_msg("flip %#x at byte %zu of %zu still unlocks", masks[m], i, file.len);
					assert_true(ts_vault_is_locked(w));
				}
				ts_vault_free(w);
			} else {
				assert_null(w);
				assert_true(r == -TS_E_CORRUPT || r == -TS_E_UNSUPPORTED_VERSION);
			}
			file.data[i] ^= masks[m];
		}
	}
	/* Many flips land in byte strings (wrapped VS, keyring, MAC): those must fail at unlock. */
	assert_true(parsed > 100);
	w = tv_reload(&file);
	assert_int_equal(ts_vault_unlock(w, "p1", kek1), 0);
	ts_vault_free(w);
	ts_vault_free(v);
}

static void every_truncation_and_extension_of_the_file_is_corrupt(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(&file), *w = NULL;

	for (size_t len = 0; len < file.len; len++) {
		uint8_t *t = malloc(len ? len : 1);

		memcpy(t, file.data, len);
		assert_int_equal(ts_vault_parse(t, len, &w), -TS_E_CORRUPT);
		assert_null(w);
		free(t);
	}
	assert_int_equal(ts_buf_append_u8(&file, 0), 0);
	assert_int_equal(ts_vault_parse(file.data, file.len, &w), -TS_E_CORRUPT);
	ts_vault_free(v);
}

/* ---- editing the file with an independent CBOR writer ---------------------- */

static cbor_item_t *drop_last_protector(cbor_item_t *hdr)
{
	cbor_item_t *arr = tv_map_get(hdr, "protectors", NULL), *n = cbor_new_definite_array(1);

	assert_true(cbor_array_push(n, cbor_array_handle(arr)[0]));
	tv_map_set(hdr, "protectors", n);
	return hdr;
}

static cbor_item_t *edit_description(cbor_item_t *hdr)
{
	cbor_item_t *p0 = cbor_array_handle(tv_map_get(hdr, "protectors", NULL))[0];

	tv_map_set(p0, "description", cbor_build_string("Printed recovery kez"));
	return hdr;
}

static cbor_item_t *change_owner(cbor_item_t *hdr)
{
	tv_map_set(hdr, "owner", cbor_build_uint16(1001));
	return hdr;
}

static cbor_item_t *lower_min_key_version(cbor_item_t *hdr)
{
	tv_map_set(hdr, "min_key_version", cbor_build_uint8(1));
	return hdr;
}

static cbor_item_t *widen_owner_encoding(cbor_item_t *hdr)
{
	/* Same value, 8-byte encoding: a second spelling of the same header. */
	tv_map_set(hdr, "owner", cbor_build_uint64(1000));
	return hdr;
}

static void tampered_headers_parse_but_never_unlock(void **state)
{
	cbor_item_t *(*edits[])(cbor_item_t *) = { drop_last_protector, edit_description, change_owner };

	for (size_t e = 0; e < sizeof(edits) / sizeof(edits[0]); e++) {
		_ts_cleanup_buf_ ts_buf file = { 0 };
		ts_vault *v = make_vault(&file), *w = NULL;

		tv_edit_header(&file, edits[e]);
		/* Well-formed: the edit is only caught by the MAC, which is the point. */
		assert_int_equal(ts_vault_parse(file.data, file.len, &w), 0);
		assert_int_equal(ts_vault_unlock(w, "p1", kek1), -TS_E_CORRUPT);
		assert_true(ts_vault_is_locked(w));
		ts_vault_free(w);
		ts_vault_free(v);
	}
}

static void unretiring_keys_in_the_header_is_corrupt(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(NULL), *w = NULL;

	assert_int_equal(ts_vault_rotate(v, NOW, NULL), 0);
	assert_int_equal(ts_vault_retire_below(v, 2), 0);
	assert_int_equal(ts_vault_serialize(v, &file), 0);
	tv_edit_header(&file, lower_min_key_version);
	assert_int_equal(ts_vault_parse(file.data, file.len, &w), 0);
	assert_int_equal(ts_vault_unlock(w, "p2", kek2), -TS_E_CORRUPT);
	ts_vault_free(w);
	ts_vault_free(v);
}

static void non_canonical_header_encoding_is_corrupt(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(&file), *w = NULL;

	tv_edit_header(&file, widen_owner_encoding);
	assert_int_equal(ts_vault_parse(file.data, file.len, &w), -TS_E_CORRUPT);
	assert_null(w);
	ts_vault_free(v);
}

/* The nv_counter map as an edit writes it: auth of auth_len bytes, value, handle. */
static size_t nv_auth_len;
static uint64_t nv_value, nv_handle;

static cbor_item_t *set_nv_counter(cbor_item_t *hdr)
{
	cbor_item_t *m = cbor_new_definite_map(3), *v;
	uint8_t auth[64];

	memset(auth, 0xab, sizeof(auth));
	v = cbor_build_bytestring(auth, nv_auth_len);
	assert_true(cbor_map_add(m, (struct cbor_pair){ .key = cbor_move(cbor_build_string("auth")), .value = cbor_move(v) }));
	v = nv_value > UINT32_MAX ? cbor_build_uint64(nv_value) : nv_value > UINT8_MAX ? cbor_build_uint32((uint32_t)nv_value) :
	                                                                                 cbor_build_uint8((uint8_t)nv_value);
	assert_true(cbor_map_add(m, (struct cbor_pair){ .key = cbor_move(cbor_build_string("value")), .value = cbor_move(v) }));
	v = nv_handle > UINT32_MAX ? cbor_build_uint64(nv_handle) : cbor_build_uint32((uint32_t)nv_handle);
	assert_true(cbor_map_add(m, (struct cbor_pair){ .key = cbor_move(cbor_build_string("handle")), .value = cbor_move(v) }));
	tv_map_set(hdr, "nv_counter", m);
	return hdr;
}

/* The optional TPM NV counter: round-trips, is under the MAC, and its limits are enforced. */
static void nv_counter_round_trips_is_maced_and_limited(void **state)
{
	static const struct { size_t auth_len; uint64_t value, handle; int parses; } cases[] = {
		{ 32, 8, 0x01000001u, 1 },            /* well-formed, another value: only the MAC catches it */
		{ 32, 7, 0x01000002u, 1 },            /* another index */
		{ 31, 7, 0x01000001u, 0 },            /* auth not 32 bytes */
		{ 32, 0, 0x01000001u, 0 },            /* value 0 */
		{ 32, 7, 0x00ffffffu, 0 },            /* handle below the owner range */
		{ 32, 7, 0x01400000u, 0 },            /* ... above it */
		{ 32, 7, 0x101000001ull, 0 },         /* not even 32 bits */
	};
	_ts_cleanup_buf_ ts_buf file = { 0 }, plain = { 0 };
	ts_vault *v = make_vault(&plain), *w;

	/* Without a counter the header has no nv_counter key (older files stay byte for byte the same). */
	for (size_t i = 0; i + 10 <= plain.len; i++)
		assert_false(memcmp(plain.data + i, "nv_counter", 10) == 0);
	v->nv_handle = 0x01000001u;
	v->nv_value = 7;
	memset(v->nv_auth, 0xab, sizeof(v->nv_auth));
	assert_int_equal(ts_vault_serialize(v, &file), 0);
	w = tv_reload(&file);
	assert_int_equal(w->nv_handle, 0x01000001u);
	assert_int_equal(w->nv_value, 7);
	assert_memory_equal(w->nv_auth, v->nv_auth, TS_VAULT_NV_AUTH_BYTES);
	assert_int_equal(ts_vault_unlock(w, "p1", kek1), 0);
	ts_vault_free(w);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_ts_cleanup_buf_ ts_buf f = { 0 };

		assert_int_equal(ts_buf_append(&f, file.data, file.len), 0);
		nv_auth_len = cases[i].auth_len, nv_value = cases[i].value, nv_handle = cases[i].handle;
		tv_edit_header(&f, set_nv_counter);
		w = NULL;
		if (!cases[i].parses) {
			assert_int_equal(ts_vault_parse(f.data, f.len, &w), -TS_E_CORRUPT);
			assert_null(w);
			continue;
		}
		assert_int_equal(ts_vault_parse(f.data, f.len, &w), 0);
		assert_int_equal(ts_vault_unlock(w, "p1", kek1), -TS_E_CORRUPT);
		ts_vault_free(w);
	}
	ts_vault_free(v);
}

/* A vault read back from its file opens with the secret held in memory, and only with this file's. */
static void read_back_file_opens_with_its_own_vault_secret_only(void **state)
{
	ts_buf file = { 0 }, blob = { 0 }, other_file = { 0 };
	ts_vault *v = make_vault(&file), *back = tv_reload(&file), *other = make_vault(&other_file);
	uint8_t pt[64];
	ts_blob_view bv;

	wrap(v, "data key", &blob);
	assert_int_equal(ts_vault_unlock_vs(back, other->vs), -TS_E_CORRUPT);
	assert_true(ts_vault_is_locked(back));
	assert_int_equal(ts_vault_unlock_vs(back, v->vs), 0);
	assert_false(ts_vault_is_locked(back));
	assert_int_equal(ts_blob_parse(blob.data, blob.len, &bv), 0);
	assert_int_equal(ts_vault_unwrap(back, &bv, ctx, 1, pt), 0);
	assert_memory_equal(pt, "data key", 8);
	ts_vault_free(back);
	ts_vault_free(other);
	ts_vault_free(v);
	ts_buf_free(&file);
	ts_buf_free(&other_file);
	ts_buf_free(&blob);
}

static void keyring_swapped_in_from_another_vault_is_corrupt(void **state)
{
	_ts_cleanup_buf_ ts_buf fa = { 0 };
	_ts_cleanup_buf_ ts_buf fb = { 0 };
	ts_vault *a = make_vault(&fa), *b = make_vault(&fb), *w = NULL;
	struct cbor_load_result res;
	cbor_item_t *ta = cbor_load(fa.data, fa.len, &res), *tb = cbor_load(fb.data, fb.len, &res);

	tv_map_set(ta, "keyring", cbor_incref(tv_map_get(tb, "keyring", NULL)));
	tv_serialize_into(ta, &fa);
	assert_int_equal(ts_vault_parse(fa.data, fa.len, &w), 0);
	assert_int_equal(ts_vault_unlock(w, "p1", kek1), -TS_E_CORRUPT);
	ts_vault_free(w);
	cbor_decref(&ta);
	cbor_decref(&tb);
	ts_vault_free(a);
	ts_vault_free(b);
}

static int parse_top(cbor_item_t *top)
{
	_ts_cleanup_buf_ ts_buf f = { 0 };
	ts_vault *w = NULL;
	int r;

	tv_serialize_into(top, &f);
	r = ts_vault_parse(f.data, f.len, &w);
	ts_vault_free(w);
	return r;
}

static void format_version_and_top_level_keys_are_checked(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_vault *v = make_vault(&file);
	struct cbor_load_result res;
	cbor_item_t *top, *m;

	top = cbor_load(file.data, file.len, &res);
	tv_map_set(top, "format", cbor_build_uint8(2));
	assert_int_equal(parse_top(top), -TS_E_UNSUPPORTED_VERSION);
	tv_map_set(top, "format", cbor_build_string("1"));
	assert_int_equal(parse_top(top), -TS_E_CORRUPT);
	tv_map_set(top, "format", cbor_build_uint8(1));
	assert_int_equal(parse_top(top), 0);
	tv_map_set(top, "mac", cbor_build_bytestring((const uint8_t *)"short", 5));
	assert_int_equal(parse_top(top), -TS_E_CORRUPT);
	cbor_decref(&top);

	/* A future format is named even with keys we do not know. */
	m = cbor_new_definite_map(2);
	assert_true(cbor_map_add(m, (struct cbor_pair){ cbor_move(cbor_build_string("format")), cbor_move(cbor_build_uint8(7)) }));
	assert_true(cbor_map_add(m, (struct cbor_pair){ cbor_move(cbor_build_string("shards")), cbor_move(cbor_build_uint8(1)) }));
	assert_int_equal(parse_top(m), -TS_E_UNSUPPORTED_VERSION);
	cbor_decref(&m);

	/* An extra or a missing top-level key is corrupt. */
	top = cbor_load(file.data, file.len, &res);
	m = cbor_new_definite_map(5);
	for (size_t i = 0; i < 4; i++)
		assert_true(cbor_map_add(m, cbor_map_handle(top)[i]));
	assert_true(cbor_map_add(m, (struct cbor_pair){ cbor_move(cbor_build_string("policy")), cbor_move(cbor_build_uint8(0)) }));
	assert_int_equal(parse_top(m), -TS_E_CORRUPT);
	cbor_decref(&m);
	m = cbor_new_definite_map(3);
	for (size_t i = 1; i < 4; i++)
		assert_true(cbor_map_add(m, cbor_map_handle(top)[i]));
	assert_int_equal(parse_top(m), -TS_E_CORRUPT);
	cbor_decref(&m);
	/* A duplicated key is corrupt. */
	m = cbor_new_definite_map(4);
	for (size_t i = 0; i < 3; i++)
		assert_true(cbor_map_add(m, cbor_map_handle(top)[i]));
	assert_true(cbor_map_add(m, cbor_map_handle(top)[1]));
	assert_int_equal(parse_top(m), -TS_E_CORRUPT);
	cbor_decref(&m);
	cbor_decref(&top);
	ts_vault_free(v);
}

static void oversized_input_is_refused_unread(void **state)
{
	ts_vault *w = NULL;
	uint8_t *big = calloc(1, TS_VAULT_FILE_MAX + 1);

	big[0] = 0xa0;
	assert_int_equal(ts_vault_parse(big, TS_VAULT_FILE_MAX + 1, &w), -TS_E_CORRUPT);
	assert_null(w);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_are_validated),
		cmocka_unit_test(created_vault_is_unlocked_with_fresh_ids),
		cmocka_unit_test(serialize_parse_unlock_with_each_protector),
		cmocka_unit_test(wrong_kek_gives_auth_failed_and_stays_locked),
		cmocka_unit_test(locked_vault_refuses_every_operation),
		cmocka_unit_test(rotation_keeps_old_blobs_until_retired_across_reloads),
		cmocka_unit_test(blobs_of_another_vault_or_unknown_version_are_refused),
		cmocka_unit_test(protectors_are_removed_but_never_the_last),
		cmocka_unit_test(protector_fields_and_count_are_limited),
		cmocka_unit_test(each_serialize_bumps_generation_and_reseals),
		cmocka_unit_test(every_single_byte_flip_of_the_file_fails_parse_or_unlock),
		cmocka_unit_test(every_truncation_and_extension_of_the_file_is_corrupt),
		cmocka_unit_test(tampered_headers_parse_but_never_unlock),
		cmocka_unit_test(nv_counter_round_trips_is_maced_and_limited),
		cmocka_unit_test(unretiring_keys_in_the_header_is_corrupt),
		cmocka_unit_test(non_canonical_header_encoding_is_corrupt),
		cmocka_unit_test(read_back_file_opens_with_its_own_vault_secret_only),
		cmocka_unit_test(keyring_swapped_in_from_another_vault_is_corrupt),
		cmocka_unit_test(format_version_and_top_level_keys_are_checked),
		cmocka_unit_test(oversized_input_is_refused_unread),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
