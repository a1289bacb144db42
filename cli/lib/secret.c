/* secret.c — the locked memory libtokenseal returns plaintexts in: data keys from one kept pool, a batch's in one block, larger ones each its own sodium_malloc. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client-internal.h"

/*
 * One sodium_malloc() and sodium_free() cost about ten system calls (mmap,
 * mprotect, mlock, madvise, munlock, munmap) and page faults: tens of
 * microseconds, as much as the Unwrap call itself (docs/PERFORMANCE.md).
 * So plaintexts of up to POOL_SLOT bytes (every data key of 512 bits or
 * less) are handed out from slots of one sodium_malloc() block, made at
 * the first use and kept for the life of the process: locked, out of core
 * dumps, guard pages around the block. A slot is wiped whole by
 * ts_secret_free before it can be handed out again. A free slot is found
 * and returned with atomic operations on one word, so ts_secret_free may
 * be called from any thread, as before. When all are taken, and for
 * longer plaintexts, each gets its own sodium_malloc() as before.
 *
 * What the pool gives up: a slot has no guard page of its own, so a caller
 * writing past its plaintext reaches another slot, not a fault; and only
 * ts_secret_free may free it, as tokenseal.h has always said. The slots
 * start one slot into the block, so that sodium_free() of any of them
 * meets no canary in front of it and stops the process (libsodium's
 * misuse check) instead of freeing the pool under the other slots.
 */
#define POOL_SLOT 64
#define POOL_SLOTS 64          /* one bit each in pool_used */
#define POOL_BYTES (POOL_SLOT * POOL_SLOTS)

static uint8_t *pool;          /* the first slot (the block + POOL_SLOT); set once, then never changed */
static uint64_t pool_used;     /* bit i: slot i is handed out */

static uint8_t *pool_block(void)
{
	uint8_t *p = __atomic_load_n(&pool, __ATOMIC_ACQUIRE), *fresh;

	if (p)
		return p;
	if ((fresh = sodium_malloc(POOL_SLOT + POOL_BYTES)) == NULL)
		return NULL;
	/* sodium_malloc fills with 0xdb: slots start wiped, as they are after each use. */
	sodium_memzero(fresh, POOL_SLOT + POOL_BYTES);
	/* Two threads may both get here: one block wins, the other is given back. */
	if (!__atomic_compare_exchange_n(&pool, &p, fresh + POOL_SLOT, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		sodium_free(fresh);
		return p;
	}
	return fresh + POOL_SLOT;
}

static uint8_t *pool_take(void)
{
	uint64_t used, bit;
	uint8_t *p;

	if ((p = pool_block()) == NULL)
		return NULL;
	used = __atomic_load_n(&pool_used, __ATOMIC_RELAXED);
	do {
		if (used == UINT64_MAX)
			return NULL;
		bit = ~used & (used + 1);   /* the lowest free slot */
	} while (!__atomic_compare_exchange_n(&pool_used, &used, used | bit, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
	return p + (size_t)__builtin_ctzll(bit) * POOL_SLOT;
}

void *ts_client_secret_alloc(size_t n)
{
	uint8_t *p;

	if (n <= POOL_SLOT && (p = pool_take()) != NULL)
		return p;
	return sodium_malloc(n ? n : 1);
}

/*
 * A batch's plaintexts (ts_client_unwrap_batch) in one sodium_malloc()
 * block, not one each: for 1,000 keys, about ten system calls instead of
 * ten thousand, and one locked page run instead of a locked page (and two
 * guard pages) per key. Each item is still freed by itself with
 * ts_secret_free, as tokenseal.h has always said, from any thread: it
 * wipes the item at once and marks it given back, and the last one gives
 * the block back (sodium_free wipes it whole). The live blocks are on a
 * list under a mutex; ts_secret_free looks there only while some batch is
 * held. Items are at least one byte apart (an empty one takes a byte), so
 * each pointer names one item; freeing a pointer that is not an item's
 * start, or an item twice, stops the process as sodium_free would. The
 * items start BATCH_HEAD bytes into the block, so that sodium_free() of
 * any of them meets no canary in front of it and stops the process too.
 * As in the pool, an item has no guard page of its own.
 */
#define BATCH_HEAD 16   /* libsodium's canary is 16 bytes */

struct batch {
	struct batch *next;
	uint8_t *block;     /* sodium_malloc()ed: BATCH_HEAD bytes, then the items */
	uintptr_t items;    /* the first item */
	size_t *off;        /* n + 1: item i is [items + off[i], items + off[i + 1]) */
	uint8_t *held;      /* held[i]: item i not yet freed */
	size_t n, left;
};

static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct batch *batches;   /* the live blocks, under batch_mu */
static size_t n_batches;        /* their number, also read without the lock */

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	sodium_free(b->block);
	free(b->off);
	free(b->held);
	free(b);
}

int ts_client_secret_batch(const size_t *lens, size_t n, uint8_t **ret_items)
{
	struct batch *b;
	size_t total = 0, i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		size_t room = lens[i] ? lens[i] : 1;

		if (room > SIZE_MAX - BATCH_HEAD - total)
			return -TS_E_NOMEM;
		total += room;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -TS_E_NOMEM;
	if (n > SIZE_MAX / sizeof(*b->off) - 1 || (b->off = malloc((n + 1) * sizeof(*b->off))) == NULL ||
	    (b->held = malloc(n)) == NULL || (b->block = sodium_malloc(BATCH_HEAD + total)) == NULL) {
		batch_free(b);
		return -TS_E_NOMEM;
	}
	/* sodium_malloc fills with 0xdb; the head must not pass for a canary, and is zero. */
	memset(b->block, 0, BATCH_HEAD);
	b->items = (uintptr_t)b->block + BATCH_HEAD;
	b->off[0] = 0;
	for (i = 0; i < n; i++) {
		b->off[i + 1] = b->off[i] + (lens[i] ? lens[i] : 1);
		ret_items[i] = b->block + BATCH_HEAD + b->off[i];
	}
	memset(b->held, 1, n);
	b->n = b->left = n;
	pthread_mutex_lock(&batch_mu);
	b->next = batches;
	batches = b;
	__atomic_store_n(&n_batches, n_batches + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&batch_mu);
	return 0;
}

/* 1 when address a was an item of a live batch (now wiped and given back), 0 when it is in none of them. */
static int batch_release(uintptr_t a)
{
	struct batch **pp, *b;
	size_t lo, hi, mid, at;

	pthread_mutex_lock(&batch_mu);
	for (pp = &batches; (b = *pp) != NULL; pp = &b->next)
		if (a >= b->items && a - b->items < b->off[b->n])
			break;
	if (!b) {
		pthread_mutex_unlock(&batch_mu);
		return 0;
	}
	/* The item that starts at a: off[] increases strictly. */
	at = a - b->items;
	lo = 0;
	hi = b->n;
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (b->off[mid] <= at)
			lo = mid;
		else
			hi = mid;
	}
	/* Not an item's start, or an item freed before: a caller's bug, stopped as sodium_free would. */
	if (b->off[lo] != at || !b->held[lo])
		sodium_misuse();
	/* The whole item, whatever len says; the block stays while other items are held. */
	sodium_memzero((void *)a, b->off[lo + 1] - at);
	b->held[lo] = 0;
	if (--b->left > 0) {
		pthread_mutex_unlock(&batch_mu);
		return 1;
	}
	*pp = b->next;
	__atomic_store_n(&n_batches, n_batches - 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&batch_mu);
	batch_free(b);
	return 1;
}

void ts_secret_free(void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)__atomic_load_n(&pool, __ATOMIC_ACQUIRE);
	uint64_t bit;

	if (!p)
		return;
	if (base && a >= base && a < base + POOL_BYTES) {
		bit = (uint64_t)1 << ((a - base) / POOL_SLOT);
		/* Not a slot's start, or a slot not handed out: a caller's bug, stopped as sodium_free would. */
		if ((a - base) % POOL_SLOT != 0 || !(__atomic_load_n(&pool_used, __ATOMIC_RELAXED) & bit))
			sodium_misuse();
		/* The whole slot, whatever len says; wiped before another caller can take it. */
		sodium_memzero(p, POOL_SLOT);
		if (!(__atomic_fetch_and(&pool_used, ~bit, __ATOMIC_RELEASE) & bit))
			sodium_misuse();
		return;
	}
	if (__atomic_load_n(&n_batches, __ATOMIC_ACQUIRE) > 0 && batch_release(a))
		return;
	/* sodium_free wipes too; the explicit wipe keeps that true whatever allocator changes. */
	sodium_memzero(p, len);
	sodium_free(p);
}
