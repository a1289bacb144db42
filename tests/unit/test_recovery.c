/* test_recovery.c — recovery keys: printed form, forgiving but checksummed parsing, Argon2id params and cost limits. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/params.h"
#include "core/recovery.h"
#include "core/vault.h"

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The printed form computed from docs/FORMAT.md, independently of recovery.c. */
static void reference_text(const uint8_t key[20], char out[48])
{
	uint8_t raw[25], h[32];
	size_t o = 0;

	memcpy(raw, key, 20);
	crypto_generichash(h, 32, key, 20, (const uint8_t *)"tokenseal-recovery-v1", 21);
	memcpy(raw + 20, h, 5);
	for (size_t d = 0; d < 40; d++) {
		size_t bit = d * 5;
		unsigned v = 0;

		for (size_t b = 0; b < 5; b++)
			v = v << 1 | ((raw[(bit + b) / 8] >> (7 - (bit + b) % 8)) & 1);
		if (d && d % 5 == 0)
			out[o++] = '-';
		out[o++] = alphabet[v];
	}
	out[o] = '\0';
}

static void generated_key_prints_in_eight_groups_and_parses_back(void **state)
{
	uint8_t *key = ts_secure_alloc(TS_RECOVERY_KEY_BYTES), *back = ts_secure_alloc(TS_RECOVERY_KEY_BYTES);
	char *text = ts_secure_alloc(TS_RECOVERY_TEXT_BYTES);
	char ref[48];

	for (int round = 0; round < 50; round++) {
		assert_int_equal(ts_recovery_generate(key, text), 0);
		assert_int_equal(strlen(text), 47);
		for (int i = 0; i < 47; i++) {
			if (i % 6 == 5)
				assert_int_equal(text[i], '-');
			else
				assert_non_null(strchr(alphabet, text[i]));
		}
		reference_text(key, ref);
		assert_string_equal(text, ref);
		assert_int_equal(ts_recovery_parse(text, strlen(text), back), 0);
		assert_memory_equal(back, key, TS_RECOVERY_KEY_BYTES);
	}
	ts_secure_free(key);
	ts_secure_free(back);
	ts_secure_free(text);
}

static void two_generated_keys_differ(void **state)
{
	uint8_t a[20], b[20];
	char ta[48], tb[48];

	assert_int_equal(ts_recovery_generate(a, ta), 0);
	assert_int_equal(ts_recovery_generate(b, tb), 0);
	assert_memory_not_equal(a, b, 20);
	assert_string_not_equal(ta, tb);
}

/* A key whose printed form has many '0' and '1': 00001 repeated is 0x08 0x42 0x10 0x84 0x21. */
static void ones_and_zeros_key(uint8_t key[20], char text[48])
{
	static const uint8_t pat[5] = { 0x08, 0x42, 0x10, 0x84, 0x21 };

	for (int i = 0; i < 20; i++)
		key[i] = i < 10 ? pat[i % 5] : 0;
	reference_text(key, text);
	assert_int_equal(strncmp(text, "11111-11111-11111-10000-00000-00000-0", 37), 0);
}

static void lowercase_spaces_and_crockford_substitutions_are_accepted(void **state)
{
	uint8_t key[20], back[20];
	char text[48], typed[128];
	size_t o = 0;

	ones_and_zeros_key(key, text);
	/* Lower case, spaces instead of dashes, a trailing newline as from a pipe. */
	for (size_t i = 0; text[i]; i++)
		typed[o++] = text[i] == '-' ? ' ' : (char)tolower((unsigned char)text[i]);
	typed[o++] = '\n';
	memset(back, 0, sizeof(back));
	assert_int_equal(ts_recovery_parse(typed, o, back), 0);
	assert_memory_equal(back, key, 20);

	/* O for 0, I and L for 1, no separators at all. */
	o = 0;
	for (size_t i = 0; text[i]; i++) {
		char c = text[i];

		if (c == '-')
			continue;
		if (c == '0')
			c = i % 2 ? 'O' : 'o';
		else if (c == '1')
			c = "IiLl"[i % 4];
		typed[o++] = c;
	}
	memset(back, 0, sizeof(back));
	assert_int_equal(ts_recovery_parse(typed, o, back), 0);
	assert_memory_equal(back, key, 20);
}

/* A key pasted from a document: typographic dashes, no-break spaces, dots. */
static void typographic_separators_are_accepted_and_shaped_like_a_key(void **state)
{
	static const char *const seps[] = { "\xe2\x80\x93", "\xe2\x80\x94", "\xe2\x88\x92", "\xc2\xa0", "\xe2\x80\xaf",
	                                    "\xc2\xad", "\xe2\x80\x89", "\xef\xbc\x8d", ".", "_", " - " };
	uint8_t key[20], back[20];
	char text[48], typed[256];

	assert_int_equal(ts_recovery_generate(key, text), 0);
	for (size_t k = 0; k < sizeof(seps) / sizeof(seps[0]); k++) {
		size_t o = 0;

		for (size_t i = 0; text[i]; i++) {
			if (text[i] != '-') {
				typed[o++] = text[i];
				continue;
			}
			memcpy(typed + o, seps[k], strlen(seps[k]));
			o += strlen(seps[k]);
		}
		memset(back, 0, sizeof(back));
		assert_int_equal(ts_recovery_parse(typed, o, back), 0);
		assert_memory_equal(back, key, 20);
		/* Shaped like a key, so never sent to a token as a PIN; a typo in it too. */
		assert_true(ts_recovery_looks_like(typed, o));
		typed[2] = typed[2] == 'X' ? 'Y' : 'X';
		assert_true(ts_recovery_looks_like(typed, o));
	}
	/* PINs are not: short ones, long ones with other characters, a 40-character word in a sentence. */
	assert_false(ts_recovery_looks_like("123456", 6));
	assert_false(ts_recovery_looks_like("correct horse battery staple", 28));
	assert_false(ts_recovery_looks_like("a!b@c#d$e%f^g&h*i(j)k=l+m?n<o>p{q}r[s]t", 39));
	/* A passphrase PIN: letters enough, but with punctuation no key has. */
	assert_false(ts_recovery_looks_like("Tr0ub4dor&3, correct horse battery staples!!", 44));
	assert_true(ts_recovery_looks_like(text, 46));   /* one character left out */
}

static void any_single_character_typo_is_detected(void **state)
{
	uint8_t key[20], back[20];
	char text[48], t[48];

	assert_int_equal(ts_recovery_generate(key, text), 0);
	for (int i = 0; i < 47; i++) {
		if (text[i] == '-')
			continue;
		for (const char *c = alphabet; *c; c++) {
			if (*c == text[i])
				continue;
			memcpy(t, text, sizeof(t));
			t[i] = *c;
			memset(back, 0xa5, sizeof(back));
			assert_int_equal(ts_recovery_parse(t, 47, back), -TS_E_BAD_RECOVERY_KEY);
			/* Never a partial key. */
			for (int k = 0; k < 20; k++)
				assert_int_equal(back[k], 0xa5);
		}
	}
}

static void swapped_neighbours_are_detected(void **state)
{
	uint8_t key[20], back[20];
	char text[48], t[48];

	assert_int_equal(ts_recovery_generate(key, text), 0);
	for (int i = 0; i + 1 < 47; i++) {
		if (text[i] == '-' || text[i + 1] == '-' || text[i] == text[i + 1])
			continue;
		memcpy(t, text, sizeof(t));
		t[i] = text[i + 1];
		t[i + 1] = text[i];
		assert_int_equal(ts_recovery_parse(t, 47, back), -TS_E_BAD_RECOVERY_KEY);
	}
}

static void wrong_lengths_and_invalid_characters_are_refused(void **state)
{
	uint8_t key[20], back[20];
	char text[48], t[64];

	assert_int_equal(ts_recovery_generate(key, text), 0);
	assert_int_equal(ts_recovery_parse(text, 46, back), -TS_E_BAD_RECOVERY_KEY);
	snprintf(t, sizeof(t), "%sA", text);
	assert_int_equal(ts_recovery_parse(t, strlen(t), back), -TS_E_BAD_RECOVERY_KEY);
	assert_int_equal(ts_recovery_parse("", 0, back), -TS_E_BAD_RECOVERY_KEY);
	assert_int_equal(ts_recovery_parse("-----", 5, back), -TS_E_BAD_RECOVERY_KEY);
	for (const char *bad = "Uu*.+_/=\x80\xff"; *bad; bad++) {
		memcpy(t, text, sizeof(text));
		t[7] = *bad;
		assert_int_equal(ts_recovery_parse(t, 47, back), -TS_E_BAD_RECOVERY_KEY);
	}
	/* An embedded NUL is not the end of the input. */
	memcpy(t, text, sizeof(text));
	t[7] = '\0';
	assert_int_equal(ts_recovery_parse(t, 47, back), -TS_E_BAD_RECOVERY_KEY);
}

static void params_round_trip_through_cbor(void **state)
{
	_ts_cleanup_buf_ ts_buf e = { 0 };
	ts_recovery_params p, q, r2;

	/* New protectors: BLAKE2b, no cost fields. */
	ts_recovery_params_default(&p);
	assert_int_equal(p.kdf, TS_RECOVERY_KDF_BLAKE2B);
	assert_true(p.opslimit == 0 && p.memlimit == 0);
	ts_recovery_params_default(&r2);
	assert_memory_not_equal(p.salt, r2.salt, 16);
	assert_int_equal(ts_recovery_params_encode(&p, &e), 0);
	assert_int_equal(ts_recovery_params_decode(e.data, e.len, &q), 0);
	assert_int_equal(q.kdf, TS_RECOVERY_KDF_BLAKE2B);
	assert_memory_equal(q.salt, p.salt, 16);
	assert_true(q.opslimit == 0 && q.memlimit == 0);
	/* Old ones: Argon2id at the cost they were written with. */
	ts_buf_free(&e);
	ts_recovery_params_argon2id(&p);
	assert_true(p.opslimit == crypto_pwhash_OPSLIMIT_INTERACTIVE);
	assert_true(p.memlimit == crypto_pwhash_MEMLIMIT_INTERACTIVE);
	assert_int_equal(ts_recovery_params_encode(&p, &e), 0);
	assert_int_equal(ts_recovery_params_decode(e.data, e.len, &q), 0);
	assert_int_equal(q.kdf, TS_RECOVERY_KDF_ARGON2ID);
	assert_memory_equal(q.salt, p.salt, 16);
	assert_true(q.opslimit == p.opslimit && q.memlimit == p.memlimit);
}

/* A BLAKE2b record: alg and salt, and extra (a uint field) when not NULL. */
static int decode_blake2b_with(const char *alg, size_t salt_len, const char *extra)
{
	_ts_cleanup_buf_ ts_buf e = { 0 };
	uint8_t salt[32] = { 0 };
	ts_recovery_params out;
	ts_params *p = NULL;

	assert_int_equal(ts_params_new(&p), 0);
	assert_int_equal(ts_params_set_str(p, "alg", alg), 0);
	if (salt_len)
		assert_int_equal(ts_params_set_bytes(p, "salt", salt, salt_len), 0);
	if (extra)
		assert_int_equal(ts_params_set_uint(p, extra, 2), 0);
	assert_int_equal(ts_params_encode(p, &e), 0);
	ts_params_free(p);
	return ts_recovery_params_decode(e.data, e.len, &out);
}

static void blake2b_params_take_exactly_alg_and_salt(void **state)
{
	assert_int_equal(decode_blake2b_with("blake2b-kek1", 16, NULL), 0);
	assert_int_equal(decode_blake2b_with("blake2b-kek1", 15, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_blake2b_with("blake2b-kek1", 0, NULL), -TS_E_CORRUPT);
	/* Argon2id's cost fields in a BLAKE2b record are no parameter to ignore. */
	assert_int_equal(decode_blake2b_with("blake2b-kek1", 16, "ops"), -TS_E_CORRUPT);
	assert_int_equal(decode_blake2b_with("blake2b-kek1", 16, "mem"), -TS_E_CORRUPT);
	assert_int_equal(decode_blake2b_with("blake2b-kek2", 16, NULL), -TS_E_NOT_SUPPORTED);
	/* An Argon2id record without its cost is corrupt, not a BLAKE2b one. */
	assert_int_equal(decode_blake2b_with("argon2id13", 16, NULL), -TS_E_CORRUPT);
}

/*
 * The BLAKE2b KEK is docs/FORMAT.md's construction, bound to the vault id
 * and the salt; no vault id, no KEK.
 */
static void blake2b_kek_is_keyed_hash_of_label_vault_id_and_salt(void **state)
{
	static const char label[] = "tokenseal-recovery-kek-v2";
	ts_recovery_params p;
	uint8_t key[20], id[16], id2[16], k1[32], k2[32], want[32], msg[sizeof(label) - 1 + 32];

	ts_recovery_params_default(&p);
	randombytes_buf(key, sizeof(key));
	randombytes_buf(id, sizeof(id));
	memcpy(id2, id, sizeof(id));
	id2[15] ^= 1;
	assert_int_equal(ts_recovery_derive_kek(key, &p, id, k1), 0);
	memcpy(msg, label, sizeof(label) - 1);
	memcpy(msg + sizeof(label) - 1, id, 16);
	memcpy(msg + sizeof(label) - 1 + 16, p.salt, 16);
	assert_int_equal(crypto_generichash(want, 32, msg, sizeof(msg), key, sizeof(key)), 0);
	assert_memory_equal(k1, want, 32);
	assert_int_equal(ts_recovery_derive_kek(key, &p, id2, k2), 0);
	assert_memory_not_equal(k1, k2, 32);
	p.salt[0] ^= 1;
	assert_int_equal(ts_recovery_derive_kek(key, &p, id, k2), 0);
	assert_memory_not_equal(k1, k2, 32);
	assert_int_equal(ts_recovery_derive_kek(key, &p, NULL, k2), -TS_E_INVALID_ARGS);
	/* A cost on a BLAKE2b record is not ours: refused, not ignored. */
	p.opslimit = 2;
	assert_int_equal(ts_recovery_derive_kek(key, &p, id, k2), -TS_E_INVALID_ARGS);
}

static int decode_with(const char *alg, size_t salt_len, uint64_t ops, uint64_t mem, const char *extra)
{
	_ts_cleanup_buf_ ts_buf e = { 0 };
	uint8_t salt[32] = { 0 };
	ts_recovery_params out;
	ts_params *p = NULL;
	int r;

	assert_int_equal(ts_params_new(&p), 0);
	if (alg)
		assert_int_equal(ts_params_set_str(p, "alg", alg), 0);
	if (salt_len)
		assert_int_equal(ts_params_set_bytes(p, "salt", salt, salt_len), 0);
	assert_int_equal(ts_params_set_uint(p, "ops", ops), 0);
	assert_int_equal(ts_params_set_uint(p, "mem", mem), 0);
	if (extra)
		assert_int_equal(ts_params_set_uint(p, extra, 1), 0);
	assert_int_equal(ts_params_encode(p, &e), 0);
	ts_params_free(p);
	r = ts_recovery_params_decode(e.data, e.len, &out);
	return r;
}

static void hostile_or_malformed_params_are_refused(void **state)
{
	assert_int_equal(decode_with("argon2id13", 16, 2, 64 << 20, NULL), 0);
	assert_int_equal(decode_with("argon2id13", 16, 16, 1u << 30, NULL), 0);
	assert_int_equal(decode_with("argon2id13", 16, 1, 8192, NULL), 0);
	assert_int_equal(decode_with("argon2id13", 16, 17, 64 << 20, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 16, 0, 64 << 20, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 16, 2, (1ull << 30) + 1, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 16, 2, 8191, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 16, UINT64_MAX, UINT64_MAX, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 15, 2, 64 << 20, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 17, 2, 64 << 20, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 0, 2, 64 << 20, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with(NULL, 16, 2, 64 << 20, NULL), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2id13", 16, 2, 64 << 20, "parallelism"), -TS_E_CORRUPT);
	assert_int_equal(decode_with("argon2i13", 16, 2, 64 << 20, NULL), -TS_E_NOT_SUPPORTED);
	assert_int_equal(ts_recovery_params_decode((const uint8_t *)"\xa0", 1, &(ts_recovery_params){ 0 }),
	                 -TS_E_CORRUPT);
}

static void kek_depends_on_key_and_salt_and_refuses_hostile_cost(void **state)
{
	ts_recovery_params p = { .kdf = TS_RECOVERY_KDF_ARGON2ID, .opslimit = 1, .memlimit = 8192 };
	uint8_t key[20], k1[32], k2[32], k3[32], k4[32], zero[32] = { 0 };

	memset(p.salt, 7, sizeof(p.salt));
	randombytes_buf(key, sizeof(key));
	assert_int_equal(ts_recovery_derive_kek(key, &p, NULL, k1), 0);
	assert_int_equal(ts_recovery_derive_kek(key, &p, NULL, k2), 0);
	assert_memory_equal(k1, k2, 32);
	assert_memory_not_equal(k1, zero, 32);
	/* It is Argon2id over the 20 key bytes, as docs/FORMAT.md says. */
	assert_int_equal(crypto_pwhash(k4, 32, (const char *)key, 20, p.salt, 1, 8192, crypto_pwhash_ALG_ARGON2ID13), 0);
	assert_memory_equal(k1, k4, 32);
	p.salt[0] ^= 1;
	assert_int_equal(ts_recovery_derive_kek(key, &p, NULL, k3), 0);
	assert_memory_not_equal(k1, k3, 32);
	p.opslimit = 17;
	assert_int_equal(ts_recovery_derive_kek(key, &p, NULL, k3), -TS_E_INVALID_ARGS);
	p.opslimit = 1;
	p.memlimit = (1ull << 30) + 1;
	assert_int_equal(ts_recovery_derive_kek(key, &p, NULL, k3), -TS_E_INVALID_ARGS);
}

/*
 * A vault with one recovery protector of each kind, written and read back:
 * each key opens its own (the Argon2id record written before still opens),
 * and neither KEK opens the other's.
 */
static void argon2id_and_blake2b_records_both_open_their_vault(void **state)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf old_rec = { 0 };
	_ts_cleanup_buf_ ts_buf new_rec = { 0 };
	ts_recovery_params old_p, new_p, q;
	uint8_t key_old[20], key_new[20], kek[32];
	const char *id = NULL;
	char old_id[TS_PROTECTOR_ID_MAX], new_id[TS_PROTECTOR_ID_MAX];
	const ts_protector_record *rec;
	ts_vault *v = NULL, *w = NULL;

	randombytes_buf(key_old, sizeof(key_old));
	randombytes_buf(key_new, sizeof(key_new));
	assert_int_equal(ts_vault_create(&v, "alice", 1000, 1700000000), 0);
	ts_recovery_params_argon2id(&old_p);
	old_p.opslimit = 1;
	old_p.memlimit = 8192;
	ts_recovery_params_default(&new_p);
	assert_int_equal(ts_recovery_derive_kek(key_old, &old_p, v->id, kek), 0);
	assert_int_equal(ts_recovery_params_encode(&old_p, &old_rec), 0);
	assert_int_equal(ts_vault_add_protector(v, "recovery", "old", kek, old_rec.data, old_rec.len, 1700000000,
	                                        &id), 0);
	snprintf(old_id, sizeof(old_id), "%s", id);
	assert_int_equal(ts_recovery_derive_kek(key_new, &new_p, v->id, kek), 0);
	assert_int_equal(ts_recovery_params_encode(&new_p, &new_rec), 0);
	assert_int_equal(ts_vault_add_protector(v, "recovery", "new", kek, new_rec.data, new_rec.len, 1700000000,
	                                        &id), 0);
	snprintf(new_id, sizeof(new_id), "%s", id);
	assert_int_equal(ts_vault_serialize(v, &file), 0);
	assert_int_equal(ts_vault_parse(file.data, file.len, &w), 0);

	rec = ts_vault_find_protector(w, old_id);
	assert_non_null(rec);
	assert_int_equal(ts_recovery_params_decode(rec->params, rec->params_len, &q), 0);
	assert_int_equal(q.kdf, TS_RECOVERY_KDF_ARGON2ID);
	assert_int_equal(ts_recovery_derive_kek(key_new, &q, w->id, kek), 0);
	assert_int_equal(ts_vault_unlock(w, old_id, kek), -TS_E_AUTH_FAILED);
	assert_int_equal(ts_recovery_derive_kek(key_old, &q, w->id, kek), 0);
	assert_int_equal(ts_vault_unlock(w, old_id, kek), 0);
	ts_vault_lock(w);

	rec = ts_vault_find_protector(w, new_id);
	assert_non_null(rec);
	assert_int_equal(ts_recovery_params_decode(rec->params, rec->params_len, &q), 0);
	assert_int_equal(q.kdf, TS_RECOVERY_KDF_BLAKE2B);
	assert_int_equal(ts_recovery_derive_kek(key_old, &q, w->id, kek), 0);
	assert_int_equal(ts_vault_unlock(w, new_id, kek), -TS_E_AUTH_FAILED);
	assert_int_equal(ts_recovery_derive_kek(key_new, &q, w->id, kek), 0);
	assert_int_equal(ts_vault_unlock(w, new_id, kek), 0);
	ts_vault_free(v);
	ts_vault_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(generated_key_prints_in_eight_groups_and_parses_back),
		cmocka_unit_test(two_generated_keys_differ),
		cmocka_unit_test(lowercase_spaces_and_crockford_substitutions_are_accepted),
		cmocka_unit_test(typographic_separators_are_accepted_and_shaped_like_a_key),
		cmocka_unit_test(any_single_character_typo_is_detected),
		cmocka_unit_test(swapped_neighbours_are_detected),
		cmocka_unit_test(wrong_lengths_and_invalid_characters_are_refused),
		cmocka_unit_test(params_round_trip_through_cbor),
		cmocka_unit_test(hostile_or_malformed_params_are_refused),
		cmocka_unit_test(kek_depends_on_key_and_salt_and_refuses_hostile_cost),
		cmocka_unit_test(blake2b_params_take_exactly_alg_and_salt),
		cmocka_unit_test(blake2b_kek_is_keyed_hash_of_label_vault_id_and_salt),
		cmocka_unit_test(argon2id_and_blake2b_records_both_open_their_vault),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
