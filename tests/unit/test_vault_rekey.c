/* test_vault_rekey.c — vault additions: k-of-n protectors, escrow recipients in the header, and revocation by rekey. */
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
#include "core/escrow.h"
#include "core/keyring.h"
#include "core/shamir.h"
#include "core/vault.h"
#include "vault_util.h"

#define NOW 1700000000u

static uint8_t kek[4][TS_KEY_BYTES];
static uint8_t off_pub[3][32], *off_sec[3];
static const ts_kv ctx[] = { { "app", "org.example.Mail" } };

static int setup(void **state)
{
	for (int i = 0; i < 4; i++)
		randombytes_buf(kek[i], TS_KEY_BYTES);
	for (int i = 0; i < 3; i++) {
		off_sec[i] = ts_secure_alloc(32);
		assert_int_equal(ts_escrow_keygen(off_pub[i], off_sec[i]), 0);
	}
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < 3; i++)
		ts_secure_free(off_sec[i]);
	return 0;
}

/* Vault "bob" of threshold k with protectors p1..pn under kek[0..n-1]. */
static ts_vault *make(unsigned k, unsigned n)
{
	static const char *const types[] = { "fido2", "tpm2", "recovery", "pkcs11" };
	ts_vault *v = NULL;

	assert_int_equal(ts_vault_create(&v, "bob", 1001, NOW), 0);
	assert_int_equal(ts_vault_set_threshold(v, k), 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(ts_vault_add_protector(v, types[i], "token", kek[i], (const uint8_t *)"pp", 2,
		                                        NOW + i, NULL), 0);
	return v;
}

/* Serialize v into file, replacing what it held. */
static void save(ts_vault *v, ts_buf *file)
{
	file->len = 0;
	assert_int_equal(ts_vault_serialize(v, file), 0);
}

static void wrap(const ts_vault *v, const char *pt, ts_buf *out)
{
	out->len = 0;
	assert_int_equal(ts_vault_wrap(v, ctx, 1, (const uint8_t *)pt, strlen(pt), out), 0);
}

static void two_of_three_needs_two_distinct_protectors(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	ts_vault *v = make(2, 3), *w;
	int needed = -1;

	wrap(v, "k-of-n data key", &blob);
	save(v, &file);
	w = tv_reload(&file);
	assert_int_equal(w->threshold, 2);

	/* One protector alone: accepted, still locked. Twice the same: still one. */
	assert_int_equal(ts_vault_unlock(w, "p1", kek[0]), -TS_E_LOCKED);
	assert_true(ts_vault_is_locked(w));
	assert_int_equal(ts_vault_unlock_share(w, "p1", kek[0], &needed), 0);
	assert_int_equal(needed, 1);
	assert_true(ts_vault_is_locked(w));
	assert_int_equal(ts_vault_unlock_share(w, "p2", kek[0], &needed), -TS_E_AUTH_FAILED);
	assert_int_equal(ts_vault_unlock_share(w, "p9", kek[0], &needed), -TS_E_NO_SUCH_PROTECTOR);
	assert_int_equal(ts_vault_unlock_share(w, "p3", kek[2], &needed), 0);
	assert_int_equal(needed, 0);
	assert_false(ts_vault_is_locked(w));
	assert_null(w->pending);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "k-of-n data key"), 0);

	/* Every pair works; locking forgets a half-gathered set. */
	for (int a = 0; a < 3; a++)
		for (int b = 0; b < 3; b++) {
			char ia[4], ib[4];

			if (a == b)
				continue;
			snprintf(ia, sizeof(ia), "p%d", a + 1);
			snprintf(ib, sizeof(ib), "p%d", b + 1);
			ts_vault_lock(w);
			assert_int_equal(ts_vault_unlock_share(w, ia, kek[a], &needed), 0);
			assert_int_equal(needed, 1);
			ts_vault_lock(w);
			assert_int_equal(ts_vault_unlock_share(w, ib, kek[b], &needed), 0);
			assert_int_equal(needed, 1);
			assert_int_equal(ts_vault_unlock(w, ia, kek[a]), 0);
			assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "k-of-n data key"), 0);
		}
	ts_vault_free(w);
	ts_vault_free(v);
}

static void threshold_rules_for_adding_and_removing(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	ts_vault *v = make(2, 2), *w;
	const char *id;
	int needed;

	assert_int_equal(ts_vault_set_threshold(v, 3), -TS_E_BUSY);
	assert_int_equal(ts_vault_set_threshold(v, 2), 0);
	assert_int_equal(ts_vault_set_threshold(v, 0), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_remove_protector(v, "p1"), -TS_E_LAST_PROTECTOR);
	wrap(v, "x", &blob);
	save(v, &file);

	/* A protector added later, while the others are away, gets a share of the same polynomial. */
	w = tv_reload(&file);
	assert_int_equal(ts_vault_unlock_share(w, "p1", kek[0], NULL), 0);
	assert_int_equal(ts_vault_unlock_share(w, "p2", kek[1], NULL), 0);
	assert_int_equal(ts_vault_add_protector(w, "tpm2", "late", kek[3], NULL, 0, NOW, &id), 0);
	assert_string_equal(id, "p3");
	assert_int_equal(ts_vault_remove_protector(w, "p1"), 0);
	assert_int_equal(ts_vault_remove_protector(w, "p2"), -TS_E_LAST_PROTECTOR);
	save(w, &file);
	ts_vault_free(w);
	w = tv_reload(&file);
	assert_int_equal(ts_vault_unlock_share(w, "p3", kek[3], &needed), 0);
	assert_int_equal(needed, 1);
	assert_int_equal(ts_vault_unlock_share(w, "p2", kek[1], &needed), 0);
	assert_int_equal(needed, 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "x"), 0);
	ts_vault_free(w);
	ts_vault_free(v);
}

/* ---- file edits (as an attacker with the file and libcbor would make them) ---- */

static cbor_item_t *raise_threshold(cbor_item_t *h) { tv_map_set(h, "threshold", cbor_build_uint8(3)); return h; }
static cbor_item_t *drop_threshold(cbor_item_t *h) { return tv_map_without(h, "threshold"); }
static cbor_item_t *raise_escrow_threshold(cbor_item_t *h) { tv_map_set(h, "escrow_threshold", cbor_build_uint8(3)); return h; }
static cbor_item_t *drop_escrow(cbor_item_t *h)
{
	cbor_item_t *a = tv_map_without(h, "escrow"), *b = tv_map_without(a, "escrow_threshold");

	cbor_decref(&a);
	return b;
}

/* Officer 0's entry now carries officer 2's public key (an attacker's key, say). */
static cbor_item_t *swap_recipient_key(cbor_item_t *h)
{
	cbor_item_t *e = cbor_array_handle(tv_map_get(h, "escrow", NULL))[0];

	tv_map_set(e, "pubkey", cbor_build_bytestring(off_pub[2], 32));
	return h;
}

static cbor_item_t *swap_recipient_label(cbor_item_t *h)
{
	cbor_item_t *e = cbor_array_handle(tv_map_get(h, "escrow", NULL))[1];

	tv_map_set(e, "label", cbor_build_string("Mallory"));
	return h;
}

static ts_escrow_recipient officers[3] = {
	{ .label = "Alice (security officer)", .pubkey = off_pub[0] },
	{ .label = "Bob (security officer)", .pubkey = off_pub[1] },
	{ .label = "Carol (CISO)", .pubkey = off_pub[2] },
};

/* 2-of-3 protectors, escrow 2-of-2 to officers 0 and 1. */
static void make_escrowed(ts_buf *file)
{
	ts_vault *v = make(2, 3);

	assert_int_equal(ts_vault_set_escrow(v, officers, 2, 2), 0);
	save(v, file);
	ts_vault_free(v);
}

static void tampered_threshold_or_escrow_never_unlocks(void **state)
{
	struct { cbor_item_t *(*edit)(cbor_item_t *); int parse; } cases[] = {
		{ raise_threshold, 0 },               /* shares bind k: AEAD fails */
		{ drop_threshold, -TS_E_CORRUPT },    /* wrapped shares are not wrapped VS */
		{ raise_escrow_threshold, -TS_E_CORRUPT }, /* 3 of 2 recipients */
		{ drop_escrow, 0 },                   /* silent removal of escrow: MAC */
		{ swap_recipient_key, 0 },            /* MAC */
		{ swap_recipient_label, 0 },          /* MAC */
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		_ts_cleanup_buf_ ts_buf file = { 0 };
		ts_vault *w = NULL;
		int r1, r2;

		make_escrowed(&file);
		tv_edit_header(&file, cases[c].edit);
		assert_int_equal(ts_vault_parse(file.data, file.len, &w), cases[c].parse);
		if (cases[c].parse < 0) {
			assert_null(w);
			continue;
		}
		r1 = ts_vault_unlock_share(w, "p1", kek[0], NULL);
		r2 = ts_vault_unlock_share(w, "p2", kek[1], NULL);
		assert_true(r1 < 0 || r2 < 0);
		assert_true(r1 == -TS_E_AUTH_FAILED || r2 == -TS_E_CORRUPT);
		assert_true(ts_vault_is_locked(w));
		assert_null(w->pending);
		ts_vault_free(w);
	}
}

static void header_without_kofn_or_escrow_has_no_new_keys(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	struct cbor_load_result res;
	ts_vault *v = make(1, 1);
	cbor_item_t *top, *hb, *hdr;

	save(v, &file);
	top = cbor_load(file.data, file.len, &res);
	hb = tv_map_get(top, "header", NULL);
	hdr = cbor_load(cbor_bytestring_handle(hb), cbor_bytestring_length(hb), &res);
	assert_int_equal(cbor_map_size(hdr), 9);
	assert_null(tv_map_get(hdr, "threshold", NULL));
	assert_null(tv_map_get(hdr, "escrow", NULL));
	assert_int_equal(cbor_bytestring_length(tv_map_get(cbor_array_handle(tv_map_get(hdr, "protectors", NULL))[0],
	                                                "wrapped_vs", NULL)), 72);
	cbor_decref(&hdr);
	cbor_decref(&top);
	ts_vault_free(v);
}

/* Officer i opens its entry of w; returns a secure buffer of TS_VAULT_ESCROW_PLAIN_BYTES. */
static uint8_t *officer_open(const ts_vault *w, size_t entry, int officer)
{
	uint8_t *out = ts_secure_alloc(TS_VAULT_ESCROW_PLAIN_BYTES);

	assert_int_equal(ts_escrow_open(off_pub[officer], off_sec[officer], w->escrow[entry].sealed,
	                                w->escrow[entry].sealed_len, out), 0);
	return out;
}

static void officers_recover_with_m_of_n_boxes(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	uint8_t both[2 * TS_VAULT_ESCROW_PLAIN_BYTES], *o0, *o1, *o2;
	ts_vault *v = make(1, 1), *w;

	assert_int_equal(ts_vault_set_escrow(v, officers, 3, 2), 0);
	wrap(v, "escrowed", &blob);
	save(v, &file);
	w = tv_reload(&file);
	assert_int_equal(w->n_escrow, 3);
	assert_int_equal(w->escrow_threshold, 2);
	assert_string_equal(w->escrow[2].label, "Carol (CISO)");
	/* An officer cannot open a colleague's box. */
	{
		uint8_t *x = ts_secure_alloc(TS_VAULT_ESCROW_PLAIN_BYTES);
		assert_int_equal(ts_escrow_open(off_pub[1], off_sec[1], w->escrow[0].sealed, w->escrow[0].sealed_len, x),
		                 -TS_E_AUTH_FAILED);
		ts_secure_free(x);
	}
	o0 = officer_open(w, 0, 0);
	o1 = officer_open(w, 1, 1);
	o2 = officer_open(w, 2, 2);
	assert_memory_equal(o0, w->id, TS_VAULT_ID_BYTES);
	assert_int_equal(o2[TS_VAULT_ID_BYTES], w->escrow[2].x);
	/* One share is not enough; the same share twice is not two. */
	assert_int_equal(ts_vault_unlock_escrow(w, o1, 1), -TS_E_INVALID_ARGS);
	memcpy(both, o1, TS_VAULT_ESCROW_PLAIN_BYTES);
	memcpy(both + TS_VAULT_ESCROW_PLAIN_BYTES, o1, TS_VAULT_ESCROW_PLAIN_BYTES);
	assert_int_equal(ts_vault_unlock_escrow(w, both, 2), -TS_E_INVALID_ARGS);
	/* A box forged by anyone (sealing is public) does not verify. */
	memcpy(both + TS_VAULT_ESCROW_PLAIN_BYTES, o2, TS_VAULT_ESCROW_PLAIN_BYTES);
	both[2 * TS_VAULT_ESCROW_PLAIN_BYTES - 1] ^= 1;
	assert_int_equal(ts_vault_unlock_escrow(w, both, 2), -TS_E_AUTH_FAILED);
	assert_true(ts_vault_is_locked(w));
	/* A box of another vault is named as such. */
	both[0] ^= 1;
	assert_int_equal(ts_vault_unlock_escrow(w, both, 2), -TS_E_WRONG_VAULT);
	memcpy(both, o2, TS_VAULT_ESCROW_PLAIN_BYTES);
	memcpy(both + TS_VAULT_ESCROW_PLAIN_BYTES, o0, TS_VAULT_ESCROW_PLAIN_BYTES);
	assert_int_equal(ts_vault_unlock_escrow(w, both, 2), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "escrowed"), 0);
	sodium_memzero(both, sizeof(both));
	ts_secure_free(o0);
	ts_secure_free(o1);
	ts_secure_free(o2);
	ts_vault_free(w);

	/* m = 1: each officer alone holds VS whole. */
	assert_int_equal(ts_vault_set_escrow(v, officers + 1, 1, 1), 0);
	save(v, &file);
	w = tv_reload(&file);
	assert_int_equal(w->escrow[0].x, 0);
	o1 = officer_open(w, 0, 1);
	assert_int_equal(ts_vault_unlock_escrow(w, o1, 1), 0);
	assert_int_equal(tv_unwrap(w, ctx, 1, &blob, "escrowed"), 0);
	ts_secure_free(o1);
	ts_vault_free(w);

	/* Bad escrow requests. */
	assert_int_equal(ts_vault_set_escrow(v, officers, 2, 3), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_set_escrow(v, officers, 2, 0), -TS_E_INVALID_ARGS);
	{
		ts_escrow_recipient dup[2] = { officers[0], { .label = "again", .pubkey = off_pub[0] } };
		assert_int_equal(ts_vault_set_escrow(v, dup, 2, 1), -TS_E_INVALID_ARGS);
	}
	assert_int_equal(ts_vault_set_escrow(v, NULL, 0, 0), 0);
	assert_int_equal(v->n_escrow, 0);
	ts_vault_free(v);
}

/*
 * The revocation property: serialize, rekey dropping p1, serialize again.
 * p1's KEK still opens the old file (it always will: the old file is out of
 * our hands) but gets nothing from the new one, and the old VS opens neither
 * the new keyring nor blobs made after the rekey.
 */
static void revoked_protector_with_old_file_gets_nothing_new(void **state)
{
	_ts_cleanup_buf_ ts_buf old_file = { 0 };
	_ts_cleanup_buf_ ts_buf new_file = { 0 };
	_ts_cleanup_buf_ ts_buf old_blob = { 0 };
	_ts_cleanup_buf_ ts_buf new_blob = { 0 };
	uint8_t new_kek3[TS_KEY_BYTES], *o;
	ts_vault *v = make(1, 3), *a, *b;
	ts_keyring *kr = NULL;
	uint32_t version = 0;
	ts_vault_keep keep[2];

	randombytes_buf(new_kek3, sizeof(new_kek3));
	assert_int_equal(ts_vault_set_escrow(v, officers, 1, 1), 0);
	wrap(v, "before revocation", &old_blob);
	save(v, &old_file);

	/* p2 re-derived (same KEK), p3 freshly enrolled (new KEK and params), p1 revoked. */
	keep[0] = (ts_vault_keep){ .id = "p2", .kek = kek[1] };
	keep[1] = (ts_vault_keep){ .id = "p3", .kek = new_kek3, .params = (const uint8_t *)"fresh", .params_len = 5 };
	assert_int_equal(ts_vault_rekey(v, NOW + 100, keep, 2, &version), 0);
	assert_int_equal(version, 2);
	assert_int_equal(v->n_protectors, 2);
	assert_null(ts_vault_find_protector(v, "p1"));
	wrap(v, "after revocation", &new_blob);
	save(v, &new_file);

	/* Old file + revoked token: opens, old blob yes, new blob no. */
	a = tv_reload(&old_file);
	assert_int_equal(ts_vault_unlock(a, "p1", kek[0]), 0);
	assert_int_equal(tv_unwrap(a, ctx, 1, &old_blob, "before revocation"), 0);
	assert_int_equal(tv_unwrap(a, ctx, 1, &new_blob, "after revocation"), -TS_E_BAD_BLOB);

	/* New file + revoked token: nothing, under any protector slot. */
	b = tv_reload(&new_file);
	assert_int_equal(ts_vault_unlock(b, "p1", kek[0]), -TS_E_NO_SUCH_PROTECTOR);
	assert_int_equal(ts_vault_unlock(b, "p2", kek[0]), -TS_E_AUTH_FAILED);
	assert_int_equal(ts_vault_unlock(b, "p3", kek[0]), -TS_E_AUTH_FAILED);
	/* The old VS (what the revoked token yields) opens neither keyring nor header. */
	assert_int_equal(ts_keyring_open(a->vs, b->id, b->keyring_sealed, b->keyring_sealed_len, &kr),
	                 -TS_E_CORRUPT);
	assert_null(kr);
	assert_memory_not_equal(a->vs, v->vs, TS_KEY_BYTES);
	/* Old KEK of the re-enrolled p3 is dead too. */
	assert_int_equal(ts_vault_unlock(b, "p3", kek[2]), -TS_E_AUTH_FAILED);
	assert_true(ts_vault_is_locked(b));

	/* The kept protectors open the new file, and old blobs still unwrap (RK_1 carried over). */
	assert_int_equal(ts_vault_unlock(b, "p3", new_kek3), 0);
	assert_memory_equal(ts_vault_find_protector(b, "p3")->params, "fresh", 5);
	assert_int_equal(tv_unwrap(b, ctx, 1, &old_blob, "before revocation"), 0);
	assert_int_equal(tv_unwrap(b, ctx, 1, &new_blob, "after revocation"), 0);
	ts_vault_lock(b);
	assert_int_equal(ts_vault_unlock(b, "p2", kek[1]), 0);
	assert_int_equal(b->key_version, 2);

	/* Escrow was re-sealed to the same officer: the new box holds the new VS. */
	o = officer_open(b, 0, 0);
	assert_memory_equal(o + TS_VAULT_ID_BYTES + 1, b->vs, TS_KEY_BYTES);
	ts_secure_free(o);
	o = officer_open(a, 0, 0);
	assert_memory_not_equal(o + TS_VAULT_ID_BYTES + 1, b->vs, TS_KEY_BYTES);
	ts_secure_free(o);

	ts_vault_free(a);
	ts_vault_free(b);
	ts_vault_free(v);
}

static void rekey_of_k_of_n_vault_and_refusals(void **state)
{
	_ts_cleanup_buf_ ts_buf old_file = { 0 };
	_ts_cleanup_buf_ ts_buf new_file = { 0 };
	ts_vault *v = make(2, 3), *a, *b;
	ts_vault_keep keep[3] = {
		{ .id = "p2", .kek = kek[1] }, { .id = "p3", .kek = kek[2] }, { .id = "p2", .kek = kek[1] },
	};
	ts_vault_keep bogus = { .id = "p7", .kek = kek[0] };
	uint8_t *old_vs = ts_secure_alloc(TS_KEY_BYTES);
	int needed;

	save(v, &old_file);
	memcpy(old_vs, v->vs, TS_KEY_BYTES);
	assert_int_equal(ts_vault_rekey(v, NOW, keep, 0, NULL), -TS_E_LAST_PROTECTOR);
	assert_int_equal(ts_vault_rekey(v, NOW, keep, 1, NULL), -TS_E_LAST_PROTECTOR);
	assert_int_equal(ts_vault_rekey(v, NOW, keep, 3, NULL), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_vault_rekey(v, NOW, &bogus, 1, NULL), -TS_E_NO_SUCH_PROTECTOR);
	/* Refusals changed nothing. */
	assert_memory_equal(old_vs, v->vs, TS_KEY_BYTES);
	assert_int_equal(v->n_protectors, 3);
	assert_int_equal(v->key_version, 1);

	assert_int_equal(ts_vault_rekey(v, NOW, keep, 2, NULL), 0);
	assert_memory_not_equal(old_vs, v->vs, TS_KEY_BYTES);
	save(v, &new_file);
	b = tv_reload(&new_file);
	assert_int_equal(ts_vault_unlock_share(b, "p1", kek[0], &needed), -TS_E_NO_SUCH_PROTECTOR);
	assert_int_equal(ts_vault_unlock_share(b, "p3", kek[2], &needed), 0);
	assert_int_equal(ts_vault_unlock_share(b, "p2", kek[1], &needed), 0);
	assert_int_equal(needed, 0);
	assert_memory_equal(b->vs, v->vs, TS_KEY_BYTES);
	/* p1 with the old file still reaches only the old VS. */
	a = tv_reload(&old_file);
	assert_int_equal(ts_vault_unlock_share(a, "p1", kek[0], &needed), 0);
	assert_int_equal(ts_vault_unlock_share(a, "p2", kek[1], &needed), 0);
	assert_memory_equal(a->vs, old_vs, TS_KEY_BYTES);

	ts_vault_lock(v);
	assert_int_equal(ts_vault_rekey(v, NOW, keep, 2, NULL), -TS_E_LOCKED);
	ts_secure_free(old_vs);
	ts_vault_free(a);
	ts_vault_free(b);
	ts_vault_free(v);
}

/*
 * A re-key whose last step fails (the keyring holds the most versions it
 * may) changes nothing and leaks nothing: the escrow boxes it had re-sealed
 * are freed (the sanitizer build's leak check sees them otherwise).
 */
static void failed_rekey_changes_and_leaks_nothing(void **state)
{
	ts_vault *v = make(1, 2);
	ts_vault_keep keep = { .id = "p2", .kek = kek[1] };
	uint8_t *vs = ts_secure_alloc(TS_KEY_BYTES), *box0, *wrapped1;
	const ts_escrow_record *e0;
	uint32_t version = 0;

	assert_int_equal(ts_vault_set_escrow(v, officers, 2, 1), 0);
	while (v->key_version < TS_KEYRING_MAX_VERSIONS)
		assert_int_equal(ts_vault_rotate(v, NOW, NULL), 0);
	memcpy(vs, v->vs, TS_KEY_BYTES);
	e0 = &v->escrow[0];
	box0 = e0->sealed;
	wrapped1 = v->protectors[1].wrapped_vs;
	assert_int_equal(ts_vault_rekey(v, NOW + 1, &keep, 1, &version), -TS_E_LIMIT);
	assert_int_equal(version, 0);
	/* The very same VS, protectors and boxes: nothing was swapped in. */
	assert_memory_equal(vs, v->vs, TS_KEY_BYTES);
	assert_int_equal(v->key_version, TS_KEYRING_MAX_VERSIONS);
	assert_int_equal(v->n_protectors, 2);
	assert_ptr_equal(v->protectors[1].wrapped_vs, wrapped1);
	assert_int_equal(v->n_escrow, 2);
	assert_ptr_equal(v->escrow[0].sealed, box0);
	ts_secure_free(vs);
	ts_vault_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_of_three_needs_two_distinct_protectors),
		cmocka_unit_test(threshold_rules_for_adding_and_removing),
		cmocka_unit_test(tampered_threshold_or_escrow_never_unlocks),
		cmocka_unit_test(header_without_kofn_or_escrow_has_no_new_keys),
		cmocka_unit_test(officers_recover_with_m_of_n_boxes),
		cmocka_unit_test(revoked_protector_with_old_file_gets_nothing_new),
		cmocka_unit_test(rekey_of_k_of_n_vault_and_refusals),
		cmocka_unit_test(failed_rekey_changes_and_leaks_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
