/* test_secret.c — libtokenseal's locked memory for plaintexts (cli/lib/secret.c): slots handed out once each, wiped whole when freed, sodium_malloc past them, and safe from two threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(data_keys_take_distinct_slots_and_are_wiped_whole),
		cmocka_unit_test(two_threads_never_share_a_slot),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
