/* test_batch_unwrap.c — UnwrapBatch on two threads gives what one thread gives, and what item by item gives: the same plaintexts in order, the same first failing index and error (the context encoded once), nothing after a lock or a retire; RewrapBatch's nonces, drawn per window, never repeat. */
#define _GNU_SOURCE 1   /* sched_getaffinity, CPU_COUNT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sched.h>

#include <sodium.h>

#include "tokenseal.h"
#include "batch_unwrap.h"
#include "core/blob.h"
#include "core/vault.h"

#define NOW 1700000000u

static const ts_kv ctx[] = { { "app", "org.example.Mail" }, { "purpose", "batch" } };

/* n blobs of vault v: item i's plaintext is len(i) bytes of (i * 7 + k) & 0xff. */
struct set {
	ts_buf *blobs;
	ts_batch_item *items;
	size_t n;
};

static size_t pt_len_of(size_t i, size_t big)
{
	return big ? TS_PLAINTEXT_MAX - i % 3 : (i % 5 == 4 ? 0 : 16 + i % 48);
}

static void fill(uint8_t *p, size_t len, size_t i)
{
	for (size_t k = 0; k < len; k++)
		p[k] = (uint8_t)(i * 7 + k);
}

static void make_set(ts_vault *v, struct set *s, size_t n, size_t big)
{
	uint8_t *pt = malloc(TS_PLAINTEXT_MAX);

	assert_non_null(pt);
	s->n = n;
	s->blobs = calloc(n, sizeof(*s->blobs));
	s->items = calloc(n, sizeof(*s->items));
	assert_non_null(s->blobs);
	assert_non_null(s->items);
	for (size_t i = 0; i < n; i++) {
		size_t len = pt_len_of(i, big);

		fill(pt, len, i);
		assert_int_equal(ts_vault_wrap(v, ctx, 2, pt, len, &s->blobs[i]), 0);
		s->items[i].blob = s->blobs[i].data;
		s->items[i].len = s->blobs[i].len;
	}
	free(pt);
}

static void free_set(struct set *s)
{
	for (size_t i = 0; i < s->n; i++)
		ts_buf_free(&s->blobs[i]);
	free(s->blobs);
	free(s->items);
}

/* What emit saw: every plaintext (or, with rewrap, the new blob's), in order, checked against fill(). */
struct seen {
	size_t next, big, stop_at;
	int bad;
	const ts_vault *rewrapped_by;   /* set: emit gets new blobs of this vault */
	const struct set *inputs;
};

static int check_plain(struct seen *s, size_t idx, const uint8_t *pt, size_t pt_len)
{
	static uint8_t want[TS_PLAINTEXT_MAX];

	if (idx != s->next || pt_len != pt_len_of(idx, s->big))
		return -1;
	fill(want, pt_len, idx);
	return pt_len && memcmp(pt, want, pt_len) != 0 ? -1 : 0;
}

/* A new blob: not the old one, of the vault's current key, and it opens to item idx's plaintext. */
static int check_new_blob(struct seen *s, size_t idx, const uint8_t *blob, size_t len)
{
	static uint8_t pt[TS_PLAINTEXT_MAX];
	ts_blob_view bv;

	if (ts_blob_parse(blob, len, &bv) < 0 || bv.key_version != s->rewrapped_by->key_version ||
	    (len == s->inputs->items[idx].len && memcmp(blob, s->inputs->items[idx].blob, len) == 0) ||
	    ts_vault_unwrap(s->rewrapped_by, &bv, ctx, 2, pt) < 0)
		return -1;
	return check_plain(s, idx, pt, bv.plaintext_len);
}

static int check_emit(void *userdata, size_t idx, const uint8_t *p, size_t len)
{
	struct seen *s = userdata;

	if (idx == s->stop_at)
		return -22;
	if ((s->rewrapped_by ? check_new_blob(s, idx, p, len) : check_plain(s, idx, p, len)) < 0)
		s->bad = 1;
	s->next++;
	return 0;
}

/* Counts what emit saw, in order, without looking at it. */
static int check_count(void *userdata, size_t idx, const uint8_t *p, size_t len)
{
	struct seen *s = userdata;

	(void)p;
	(void)len;
	if (idx != s->next)
		s->bad = 1;
	s->next++;
	return 0;
}

static int two_cpus(void)
{
	cpu_set_t c;

	CPU_ZERO(&c);
	return sched_getaffinity(0, sizeof(c), &c) == 0 && CPU_COUNT(&c) >= 2;
}

/* Unwrap, then rewrap, on one thread and on two: every item, in order, right. */
static void run_both(ts_vault *v, struct set *s, size_t big)
{
	for (int rewrap = 0; rewrap <= 1; rewrap++)
		for (int parallel = 0; parallel <= 1; parallel++) {
			struct seen seen = { .big = big, .stop_at = SIZE_MAX, .rewrapped_by = rewrap ? v : NULL,
			                     .inputs = s };
			size_t idx = 12345;
			int emit_failed = 7;

			assert_int_equal(ts_batch_unwrap(v, ctx, 2, s->items, s->n, parallel, rewrap, check_emit, &seen,
			                                 &idx, &emit_failed), 0);
			assert_int_equal(emit_failed, 0);
			assert_int_equal(seen.bad, 0);
			assert_int_equal(seen.next, s->n);
		}
}

static void both_paths_give_every_plaintext_in_order(void **state)
{
	struct set s, big;
	ts_vault *v = NULL;

	assert_int_equal(ts_vault_create(&v, "batch", 1000, NOW), 0);
	/* 10,000 items: three windows by count; 9 of 64 KiB: windows by bytes (one item each half). */
	make_set(v, &s, 10000, 0);
	make_set(v, &big, 9, 1);
	run_both(v, &s, 0);
	run_both(v, &big, 1);
	if (two_cpus())
		assert_true(ts_batch_worker_running());
	/* One item, and none. */
	s.n = 1;
	run_both(v, &s, 0);
	s.n = 0;
	run_both(v, &s, 0);
	s.n = 10000;
	free_set(&s);
	free_set(&big);
	ts_vault_free(v);
}

static void expect_failure(ts_vault *v, struct set *s, int want_r, size_t want_idx)
{
	for (int rewrap = 0; rewrap <= 1; rewrap++)
		for (int parallel = 0; parallel <= 1; parallel++) {
			struct seen seen = { .stop_at = SIZE_MAX, .rewrapped_by = rewrap ? v : NULL, .inputs = s };
			size_t idx = 12345;
			int emit_failed = 7;

			assert_int_equal(ts_batch_unwrap(v, ctx, 2, s->items, s->n, parallel, rewrap, check_emit, &seen,
			                                 &idx, &emit_failed), want_r);
			assert_int_equal(emit_failed, 0);
			assert_int_equal(idx, want_idx);
			/* Nothing of the failing window reaches emit. */
			assert_true(seen.next <= want_idx);
			assert_int_equal(seen.bad, 0);
		}
}

static void the_first_failing_index_wins_on_both_threads(void **state)
{
	_ts_cleanup_buf_ ts_buf foreign = { 0 };
	ts_vault *v = NULL, *w = NULL;
	struct set s;
	uint8_t keep;

	assert_int_equal(ts_vault_create(&v, "batch", 1000, NOW), 0);
	assert_int_equal(ts_vault_create(&w, "other", 1000, NOW), 0);
	assert_int_equal(ts_vault_wrap(w, ctx, 2, (const uint8_t *)"k", 1, &foreign), 0);
	make_set(v, &s, 1000, 0);

	/* A flipped tag in the worker's half (window 0..999, halves at 500). */
	keep = s.blobs[700].data[s.blobs[700].len - 1];
	s.blobs[700].data[s.blobs[700].len - 1] ^= 1;
	expect_failure(v, &s, -TS_E_BAD_BLOB, 700);
	/* And an earlier one in the caller's half: that one is named. */
	s.items[300] = (ts_batch_item){ foreign.data, foreign.len };
	expect_failure(v, &s, -TS_E_WRONG_VAULT, 300);
	/* A blob that does not parse ends the window: named only when nothing before it fails. */
	s.items[300] = (ts_batch_item){ s.blobs[300].data, s.blobs[300].len };
	s.items[650] = (ts_batch_item){ s.blobs[650].data, 10 };
	expect_failure(v, &s, -TS_E_BAD_BLOB, 650);
	s.blobs[700].data[s.blobs[700].len - 1] = keep;
	expect_failure(v, &s, -TS_E_BAD_BLOB, 650);
	s.items[650] = (ts_batch_item){ s.blobs[650].data, s.blobs[650].len };
	run_both(v, &s, 0);

	/* The wrong context: every item fails, the first is named. */
	{
		size_t idx = 0;
		int ef = 0;
		struct seen seen = { .stop_at = SIZE_MAX };

		assert_int_equal(ts_batch_unwrap(v, ctx, 1, s.items, s.n, 1, 0, check_emit, &seen, &idx, &ef),
		                 -TS_E_CONTEXT_MISMATCH);
		assert_int_equal(idx, 0);
		assert_int_equal(seen.next, 0);
	}
	/* emit's own failure stops the batch and says so. */
	{
		size_t idx = 0;
		int ef = 0;
		struct seen seen = { .stop_at = 5 };

		assert_int_equal(ts_batch_unwrap(v, ctx, 2, s.items, s.n, 1, 0, check_emit, &seen, &idx, &ef), -22);
		assert_int_equal(ef, 1);
		assert_int_equal(seen.next, 5);
	}
	free_set(&s);
	ts_vault_free(v);
	ts_vault_free(w);
}

/* Item by item with the per-call forms, as before batches encoded the context once: the first failure, its index. */
static int per_item(const ts_vault *v, const ts_kv *c, size_t n_c, const struct set *s, int rewrap, size_t *ret_idx)
{
	static uint8_t pt[TS_PLAINTEXT_MAX];
	_ts_cleanup_buf_ ts_buf out = { 0 };
	ts_blob_view bv;
	int r = 0;

	for (size_t i = 0; i < s->n; i++) {
		if ((r = ts_blob_parse(s->items[i].blob, s->items[i].len, &bv)) < 0 ||
		    (r = ts_vault_unwrap(v, &bv, c, n_c, pt)) < 0 ||
		    (rewrap && (r = ts_vault_wrap(v, c, n_c, pt, bv.plaintext_len, &out)) < 0)) {
			*ret_idx = i;
			return r;
		}
		sodium_memzero(pt, bv.plaintext_len);
	}
	return 0;
}

/* The batch under context c, on one thread and two, unwrap and rewrap: what per_item gives, and nothing handed out past it. */
static void same_as_per_item(ts_vault *v, const ts_kv *c, size_t n_c, struct set *s, int want_r)
{
	for (int rewrap = 0; rewrap <= 1; rewrap++) {
		size_t want_idx = SIZE_MAX;
		int r = per_item(v, c, n_c, s, rewrap, &want_idx);

		assert_int_equal(r, want_r);
		for (int parallel = 0; parallel <= 1; parallel++) {
			struct seen seen = { .stop_at = SIZE_MAX };
			size_t idx = SIZE_MAX;
			int ef = 7;

			assert_int_equal(ts_batch_unwrap(v, c, n_c, s->items, s->n, parallel, rewrap, check_count, &seen,
			                                 &idx, &ef), want_r);
			assert_int_equal(ef, 0);
			assert_int_equal(seen.bad, 0);
			if (want_r < 0) {
				assert_int_equal(idx, want_idx);
				assert_true(seen.next <= want_idx);
			} else
				assert_int_equal(seen.next, s->n);
		}
	}
}

/*
 * The context is encoded once per batch: a malformed one, a wrong one and
 * one too large for the stack give, at the same item, the error the
 * per-item path gives, behind each item's own earlier errors.
 */
static void the_context_once_fails_where_each_item_did(void **state)
{
	static char big[TS_CONTEXT_VALUE_MAX + 1];
	static const ts_kv dup[] = { { "app", "org.example.Mail" }, { "app", "org.example.Mail" } };
	static const ts_kv empty_key[] = { { "", "x" } };
	static const ts_kv bad_utf8[] = { { "app", "\xc0\x80" } };
	ts_kv big_ctx[2] = { { "app", "org.example.Mail" }, { "blob", big } };
	_ts_cleanup_buf_ ts_buf foreign = { 0 };
	ts_vault *v = NULL, *w = NULL;
	struct set s, sb;

	memset(big, 'x', TS_CONTEXT_VALUE_MAX);
	assert_int_equal(ts_vault_create(&v, "batch", 1000, NOW), 0);
	assert_int_equal(ts_vault_create(&w, "other", 1000, NOW), 0);
	assert_int_equal(ts_vault_wrap(w, ctx, 2, (const uint8_t *)"k", 1, &foreign), 0);
	make_set(v, &s, 600, 0);

	same_as_per_item(v, ctx, 2, &s, 0);
	/* Malformed contexts: refused at the first item, on both threads, for unwrap and rewrap. */
	same_as_per_item(v, dup, 2, &s, -TS_E_INVALID_ARGS);
	same_as_per_item(v, empty_key, 1, &s, -TS_E_INVALID_ARGS);
	same_as_per_item(v, bad_utf8, 1, &s, -TS_E_INVALID_ARGS);
	/* Well-formed but not the blobs' context. */
	same_as_per_item(v, ctx, 1, &s, -TS_E_CONTEXT_MISMATCH);
	same_as_per_item(v, big_ctx, 2, &s, -TS_E_CONTEXT_MISMATCH);
	/* An item's own error comes first: a foreign blob, then one that does not parse, at item 0. */
	s.items[0] = (ts_batch_item){ foreign.data, foreign.len };
	same_as_per_item(v, dup, 2, &s, -TS_E_WRONG_VAULT);
	s.items[0] = (ts_batch_item){ s.blobs[0].data, 10 };
	same_as_per_item(v, dup, 2, &s, -TS_E_BAD_BLOB);
	s.items[0] = (ts_batch_item){ s.blobs[0].data, s.blobs[0].len };
	/* A locked vault says so before the context is looked at. */
	ts_vault_lock(v);
	same_as_per_item(v, dup, 2, &s, -TS_E_LOCKED);
	free_set(&s);
	ts_vault_free(v);

	/* A context whose encoding does not fit the stack (heap, one copy per thread): every item right. */
	assert_int_equal(ts_vault_create(&v, "batch", 1000, NOW), 0);
	sb.n = 600;
	sb.blobs = calloc(sb.n, sizeof(*sb.blobs));
	sb.items = calloc(sb.n, sizeof(*sb.items));
	assert_non_null(sb.blobs);
	assert_non_null(sb.items);
	for (size_t i = 0; i < sb.n; i++) {
		uint8_t pt[64];

		fill(pt, pt_len_of(i, 0), i);
		assert_int_equal(ts_vault_wrap(v, big_ctx, 2, pt, pt_len_of(i, 0), &sb.blobs[i]), 0);
		sb.items[i] = (ts_batch_item){ sb.blobs[i].data, sb.blobs[i].len };
	}
	same_as_per_item(v, big_ctx, 2, &sb, 0);
	same_as_per_item(v, ctx, 2, &sb, -TS_E_CONTEXT_MISMATCH);
	for (int parallel = 0; parallel <= 1; parallel++) {
		struct seen seen = { .stop_at = SIZE_MAX };
		size_t idx = 0;
		int ef = 0;

		assert_int_equal(ts_batch_unwrap(v, big_ctx, 2, sb.items, sb.n, parallel, 0, check_emit, &seen, &idx,
		                                 &ef), 0);
		assert_int_equal(seen.bad, 0);
		assert_int_equal(seen.next, sb.n);
	}
	free_set(&sb);
	ts_vault_free(v);
	ts_vault_free(w);
}

static void nothing_unwraps_after_lock_or_retire(void **state)
{
	ts_vault *v = NULL;
	struct set s1, s2;

	assert_int_equal(ts_vault_create(&v, "batch", 1000, NOW), 0);
	make_set(v, &s1, 600, 0);
	assert_int_equal(ts_vault_rotate(v, NOW + 1, NULL), 0);
	make_set(v, &s2, 600, 0);
	run_both(v, &s1, 0);
	/* Version 1 retired: its blobs fail from the first, version 2's still open. */
	assert_int_equal(ts_vault_retire_below(v, 2), 0);
	expect_failure(v, &s1, -TS_E_KEY_RETIRED, 0);
	run_both(v, &s2, 0);
	/* A retired blob in the worker's half of a good batch. */
	s2.items[450] = s1.items[450];
	expect_failure(v, &s2, -TS_E_KEY_RETIRED, 450);
	s2.items[450] = (ts_batch_item){ s2.blobs[450].data, s2.blobs[450].len };
	ts_vault_lock(v);
	expect_failure(v, &s2, -TS_E_LOCKED, 0);
	free_set(&s1);
	free_set(&s2);
	ts_vault_free(v);
}

/* The new blobs' nonces, as emit sees them (and each blob checked as check_emit does). */
struct nonces_seen {
	struct seen seen;
	uint8_t *nonces;
	size_t n, cap;
};

static int collect_nonce(void *userdata, size_t idx, const uint8_t *blob, size_t len)
{
	struct nonces_seen *ns = userdata;
	ts_blob_view bv;

	if (ns->n < ns->cap && ts_blob_parse(blob, len, &bv) == 0)
		memcpy(ns->nonces + ns->n++ * TS_BLOB_NONCE_BYTES, bv.nonce, TS_BLOB_NONCE_BYTES);
	else
		ns->seen.bad = 1;
	return check_emit(&ns->seen, idx, blob, len);
}

static int cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, TS_BLOB_NONCE_BYTES);
}

/*
 * RewrapBatch draws its nonces in bulk, once per window, and splits them
 * between the two threads: every new blob still opens to its plaintext,
 * and no nonce repeats, within a window, across the three windows of
 * 10,000 items, across the threads, across batches (on two threads, one,
 * two), nor meets an original blob's. They look uniform: each of the 192
 * bits is set in 48-52 % of the 30,000 (about 7 standard deviations; a
 * counter, a constant or a stretch used twice would not pass).
 */
static void rewrap_nonces_never_repeat_across_windows_threads_and_batches(void **state)
{
	enum { N = 10000, BATCHES = 3 };
	struct nonces_seen ns = { .cap = (BATCHES + 1) * N };
	ts_vault *v = NULL;
	ts_blob_view bv;
	struct set s;
	size_t i, bit, set_count, n_new;

	assert_int_equal(ts_vault_create(&v, "batch", 1000, NOW), 0);
	make_set(v, &s, N, 0);
	assert_non_null(ns.nonces = malloc(ns.cap * TS_BLOB_NONCE_BYTES));
	for (int b = 0; b < BATCHES; b++) {
		size_t idx = 0;
		int ef = 0;

		ns.seen = (struct seen){ .stop_at = SIZE_MAX, .rewrapped_by = v, .inputs = &s };
		assert_int_equal(ts_batch_unwrap(v, ctx, 2, s.items, s.n, b != 1, 1, collect_nonce, &ns, &idx, &ef), 0);
		assert_int_equal(ns.seen.bad, 0);
		assert_int_equal(ns.seen.next, N);
	}
	if (two_cpus())
		assert_true(ts_batch_worker_running());
	n_new = ns.n;
	assert_int_equal(n_new, BATCHES * N);
	for (bit = 0; bit < 8 * TS_BLOB_NONCE_BYTES; bit++) {
		set_count = 0;
		for (i = 0; i < n_new; i++)
			set_count += (ns.nonces[i * TS_BLOB_NONCE_BYTES + bit / 8] >> (bit % 8)) & 1;
		assert_in_range(set_count, n_new * 48 / 100, n_new * 52 / 100);
	}
	for (i = 0; i < N; i++) {
		assert_int_equal(ts_blob_parse(s.items[i].blob, s.items[i].len, &bv), 0);
		memcpy(ns.nonces + ns.n++ * TS_BLOB_NONCE_BYTES, bv.nonce, TS_BLOB_NONCE_BYTES);
	}
	qsort(ns.nonces, ns.n, TS_BLOB_NONCE_BYTES, cmp_nonce);
	for (i = 1; i < ns.n; i++)
		assert_memory_not_equal(ns.nonces + (i - 1) * TS_BLOB_NONCE_BYTES, ns.nonces + i * TS_BLOB_NONCE_BYTES,
		                        TS_BLOB_NONCE_BYTES);
	free(ns.nonces);
	free_set(&s);
	ts_vault_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(both_paths_give_every_plaintext_in_order),
		cmocka_unit_test(the_first_failing_index_wins_on_both_threads),
		cmocka_unit_test(nothing_unwraps_after_lock_or_retire),
		cmocka_unit_test(the_context_once_fails_where_each_item_did),
		cmocka_unit_test(rewrap_nonces_never_repeat_across_windows_threads_and_batches),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
