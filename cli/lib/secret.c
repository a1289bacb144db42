/* secret.c — the locked memory libtokenseal returns plaintexts in: data keys from one kept pool, larger ones each its own sodium_malloc. */
#include <stdint.h>
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
	/* sodium_free wipes too; the explicit wipe keeps that true whatever allocator changes. */
	sodium_memzero(p, len);
	sodium_free(p);
}
