/* test_secret.c — libtokenseal's locked memory for plaintexts (cli/lib/secret.c): slots handed out once each, wiped whole when freed, sodium_malloc past them, a batch's in one block freed item by item, and safe from two threads. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "client-internal.h"

#define SLOTS 64
#define SLOT 64

static const uint8_t zero[SLOT];

/* 64 data keys held at once take 64 distinct slots of one block; the 65th, and a longer plaintext, get their own. */
static void data_keys_take_distinct_slots_and_are_wiped_whole(void **state)
{
	uint8_t *p[SLOTS + 1], *big, *again;
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	for (int i = 0; i <= SLOTS; i++) {
		assert_non_null(p[i] = ts_client_secret_alloc(i % 2 ? 32 : SLOT));
		memset(p[i], 0xa0 + i % 16, i % 2 ? 32 : SLOT);
		if (i < SLOTS) {
			lo = (uintptr_t)p[i] < lo ? (uintptr_t)p[i] : lo;
			hi = (uintptr_t)p[i] > hi ? (uintptr_t)p[i] : hi;
		}
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(p[i], p[j]);
	}
	/* The pool is one block of 64 slots; the 65th lies outside it. */
	assert_int_equal(hi - lo, (SLOTS - 1) * SLOT);
	assert_true((uintptr_t)p[SLOTS] < lo || (uintptr_t)p[SLOTS] > hi);
	assert_non_null(big = ts_client_secret_alloc(SLOT + 1));
	assert_true((uintptr_t)big < lo || (uintptr_t)big > hi);
	memset(big, 0x5a, SLOT + 1);
	ts_secret_free(big, SLOT + 1);
	ts_secret_free(p[SLOTS], SLOT);

	/* Freed with a shorter length than written: the slot is wiped whole all the same. */
	ts_secret_free(p[10], 1);
	assert_memory_equal(p[10], zero, SLOT);   /* the pool stays mapped: reading a free slot is the test's right */
	/* The next data key takes the slot freed, wiped. */
	assert_ptr_equal(again = ts_client_secret_alloc(16), p[10]);
	assert_memory_equal(again, zero, SLOT);
	ts_secret_free(again, 16);
	for (int i = 0; i < SLOTS; i++)
		if (i != 10) {
			ts_secret_free(p[i], i % 2 ? 32 : SLOT);
			assert_memory_equal(p[i], zero, SLOT);
		}
	/* Every slot free again: the lowest comes back first. */
	assert_ptr_equal(again = ts_client_secret_alloc(0), (uint8_t *)lo);
	ts_secret_free(again, 0);
	ts_secret_free(NULL, 12);
}

/* Two threads taking and giving back keys: no slot is ever handed to both, nothing is lost. */
struct worker {
	uint8_t tag;
	int bad;
};

static void *churn(void *arg)
{
	struct worker *w = arg;
	uint8_t *held[8];

	for (int round = 0; round < 20000; round++) {
		for (int k = 0; k < 8; k++) {
			if ((held[k] = ts_client_secret_alloc(32)) == NULL) {
				w->bad = 1;
				return NULL;
			}
			memset(held[k], w->tag, 32);
		}
		for (int k = 0; k < 8; k++) {
			for (int b = 0; b < 32; b++)
				if (held[k][b] != w->tag)
					w->bad = 1;
			ts_secret_free(held[k], 32);
		}
	}
	return NULL;
}

static void two_threads_never_share_a_slot(void **state)
{
	struct worker w[2] = { { .tag = 0x11 }, { .tag = 0x22 } };
	pthread_t t[2];
	uint8_t *p[SLOTS];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(w[0].bad, 0);
	assert_int_equal(w[1].bad, 0);
	/* All 64 slots free again. */
	for (int i = 0; i < SLOTS; i++)
		assert_non_null(p[i] = ts_client_secret_alloc(32));
	for (int i = 1; i < SLOTS; i++)
		assert_int_equal((uintptr_t)p[i] - (uintptr_t)p[i - 1], SLOT);
	for (int i = 0; i < SLOTS; i++)
		ts_secret_free(p[i], 32);
}

/*
 * Whether the page holding p is still mapped (mincore fails with ENOMEM on
 * an unmapped one; not msync, whose address valgrind checks as memory).
 */
static int mapped(const void *p)
{
	long size = sysconf(_SC_PAGESIZE);
	uintptr_t page = (uintptr_t)p & ~(uintptr_t)(size - 1);
	unsigned char vec;

	return mincore((void *)page, (size_t)size, &vec) == 0 || errno != ENOMEM;
}

/*
 * A batch's plaintexts share one block: items one after another (an empty
 * one takes a byte), each wiped whole when it is freed, whatever length
 * the caller gives, the others untouched; the block stays mapped while any
 * item is held and goes back with the last.
 */
static void a_batch_is_one_block_freed_item_by_item(void **state)
{
	static const size_t lens[] = { 32, 0, 5, 64, 100, 1, 65536, 32 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	static const size_t order[N] = { 2, 0, 7, 1, 6, 3, 5, 4 };
	static const uint8_t zeros[65536];
	uint8_t *items[N];
	size_t k, i;

	assert_int_equal(ts_client_secret_batch(lens, N, items), 0);
	for (i = 0; i < N; i++) {
		if (i > 0)
			assert_int_equal((uintptr_t)items[i] - (uintptr_t)items[i - 1], lens[i - 1] ? lens[i - 1] : 1);
		memset(items[i], 0x30 + (int)i, lens[i]);
	}
	for (k = 0; k < N; k++) {
		/* Freed with a wrong length (1): the item is wiped whole all the same. */
		ts_secret_free(items[order[k]], k == 0 ? 1 : lens[order[k]]);
		if (k == N - 1)
			break;
		assert_true(mapped(items[order[k]]));
		assert_memory_equal(items[order[k]], zeros, lens[order[k]]);
		for (size_t j = k + 1; j < N; j++)
			for (size_t b = 0; b < lens[order[j]]; b++)
				assert_int_equal(items[order[j]][b], 0x30 + (int)order[j]);
	}
	/* The last one gave the block back. */
	assert_false(mapped(items[order[N - 1]]));
	assert_false(mapped(items[0]));
	/* No items: nothing allocated. */
	assert_int_equal(ts_client_secret_batch(lens, 0, items), 0);
}

/*
 * In a child, a batch of three items and bad() on them: 1 when that
 * stopped the process (sodium_misuse's SIGABRT, or the SIGSEGV libsodium
 * raises when sodium_free meets no canary), 0 when it exited.
 */
static int stopped_by(void (*bad)(uint8_t **items))
{
	static const size_t lens[] = { 8, 8, 8 };
	uint8_t *items[3];
	int status;
	pid_t pid;

	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		/* cmocka catches these signals in the test process; the child dies of them. */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		if (ts_client_secret_batch(lens, 3, items) < 0)
			_exit(2);
		bad(items);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && (WTERMSIG(status) == SIGABRT || WTERMSIG(status) == SIGSEGV);
}

static void free_twice(uint8_t **items)
{
	ts_secret_free(items[1], 8);
	ts_secret_free(items[1], 8);
}

static void free_inside(uint8_t **items)
{
	ts_secret_free(items[1] + 3, 5);
}

static void free_with_sodium_free(uint8_t **items)
{
	sodium_free(items[0]);
}

static void free_all_once(uint8_t **items)
{
	for (int i = 0; i < 3; i++)
		ts_secret_free(items[i], 8);
}

/* An item freed twice, a pointer into an item, sodium_free of an item: the process stops; freeing each once does not. */
static void a_bad_free_of_a_batch_item_stops_the_process(void **state)
{
	assert_true(stopped_by(free_twice));
	assert_true(stopped_by(free_inside));
	assert_true(stopped_by(free_with_sodium_free));
	assert_false(stopped_by(free_all_once));
}

/* Two threads each taking batches and freeing their items (and pool slots) meanwhile: no item is shared, nothing is lost. */
static void *batch_churn(void *arg)
{
	struct worker *w = arg;
	size_t lens[40];
	uint8_t *items[40], *key;

	for (size_t i = 0; i < 40; i++)
		lens[i] = i % 7 == 0 ? 0 : 16 + i;
	for (int round = 0; round < 3000; round++) {
		if (ts_client_secret_batch(lens, 40, items) < 0 || (key = ts_client_secret_alloc(32)) == NULL) {
			w->bad = 1;
			return NULL;
		}
		for (size_t i = 0; i < 40; i++)
			memset(items[i], w->tag, lens[i]);
		memset(key, w->tag, 32);
		for (size_t i = 0; i < 40; i++) {
			size_t k = (i * 17 + (size_t)round) % 40;   /* every item once, in another order each round */

			for (size_t b = 0; b < lens[k]; b++)
				if (items[k][b] != w->tag)
					w->bad = 1;
			ts_secret_free(items[k], lens[k]);
		}
		ts_secret_free(key, 32);
	}
	return NULL;
}

static void two_threads_free_batches_at_once(void **state)
{
	struct worker w[2] = { { .tag = 0x33 }, { .tag = 0x44 } };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, batch_churn, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(w[0].bad, 0);
	assert_int_equal(w[1].bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(data_keys_take_distinct_slots_and_are_wiped_whole),
		cmocka_unit_test(two_threads_never_share_a_slot),
		cmocka_unit_test(a_batch_is_one_block_freed_item_by_item),
		cmocka_unit_test(a_bad_free_of_a_batch_item_stops_the_process),
		cmocka_unit_test(two_threads_free_batches_at_once),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
