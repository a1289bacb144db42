/* batch_unwrap.c — a large UnwrapBatch or RewrapBatch on two threads: windows of items, halves to the caller and to one kept worker. */
#define _GNU_SOURCE 1   /* sched_getaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "batch_unwrap.h"
#include "core/blob.h"

#define WINDOW_BYTES ((size_t)128 << 10)
#define WINDOW_ITEMS 4096
#define WORKER_STACK ((size_t)256 << 10)

_Static_assert(WINDOW_BYTES >= TS_PLAINTEXT_MAX, "a window holds at least the largest plaintext");

/*
 * One half of a window: items [from, to), item i's plaintext at window +
 * off[i - base]; with rewrap, the new blobs appended to out in order (its
 * room reserved by the caller's thread, so the worker allocates nothing).
 */
struct half {
	const ts_vault *v;
	ts_blob_ctx *bctx;     /* the batch's context, encoded once; this half's own copy */
	const ts_batch_item *items;
	size_t base, from, to;
	uint8_t *window;
	const uint32_t *off;
	int rewrap;
	ts_buf *out;
	/* Result: 0, or the first failing item's error and index. */
	int r;
	size_t fail_idx;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	pthread_t tid;
	int state;             /* 0 not tried, 1 running, -1 not available */
	unsigned posted, finished;
	struct half *job;      /* set while a job is posted, NULL otherwise */
	/*
	 * The window: plaintexts in secure memory; offsets and, for rewrap,
	 * the new blobs' nonces on the heap (not secret: each nonce goes into
	 * its blob in the clear; wiped after each window all the same).
	 */
	uint8_t *window;
	uint32_t *off;
	uint8_t *nonces;       /* WINDOW_ITEMS x TS_BLOB_NONCE_BYTES */
} pool = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.go = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
};

/* The same work as the one-thread path: parse, unwrap (and wrap again); stop at the first failure. */
static void run_half(struct half *h)
{
	ts_blob_view bv;
	uint8_t *pt;
	size_t i;
	int r;

	h->r = 0;
	for (i = h->from; i < h->to; i++) {
		pt = h->window + h->off[i - h->base];
		if ((r = ts_blob_parse(h->items[i].blob, h->items[i].len, &bv)) < 0 ||
		    (r = ts_vault_unwrap_ctx(h->v, &bv, h->bctx, pt)) < 0)
			goto fail;
		if (h->rewrap) {
			r = ts_vault_wrap_ctx(h->v, h->bctx, pt, bv.plaintext_len, h->out);
			sodium_memzero(pt, bv.plaintext_len);
			if (r < 0)
				goto fail;
		}
	}
	return;
fail:
	h->r = r;
	h->fail_idx = i;
}

/*
 * The worker waits here between jobs, holding no lock: the loop forks
 * helpers (helper_spawn.c) only outside ts_batch_unwrap, so a child never
 * inherits a lock the worker held. It touches no key but through the
 * vault it is handed for one job, and pool.job is cleared after.
 */
static void *worker_main(void *arg)
{
	unsigned seen = 0;
	struct half *job;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&pool.mu);
		while (pool.posted == seen)
			pthread_cond_wait(&pool.go, &pool.mu);
		seen = pool.posted;
		job = pool.job;
		pthread_mutex_unlock(&pool.mu);

		run_half(job);

		pthread_mutex_lock(&pool.mu);
		pool.finished = seen;
		pthread_cond_signal(&pool.done);
		pthread_mutex_unlock(&pool.mu);
	}
	return NULL;
}

/* Start the worker once: only with two CPUs or more; its signals all blocked, so the loop gets them. */
static int worker_ready(void)
{
	pthread_attr_t attr;
	sigset_t all, old;
	cpu_set_t cpus;
	int ok;

	if (pool.state != 0)
		return pool.state > 0;
	pool.state = -1;
	CPU_ZERO(&cpus);
	if (sched_getaffinity(0, sizeof(cpus), &cpus) < 0 || CPU_COUNT(&cpus) < 2)
		return 0;
	if (pthread_attr_init(&attr) != 0)
		return 0;
	sigfillset(&all);
	ok = pthread_attr_setstacksize(&attr, WORKER_STACK) == 0 &&
	     pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
	     pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
	if (ok) {
		ok = pthread_create(&pool.tid, &attr, worker_main, NULL) == 0;
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	if (ok)
		pool.state = 1;
	return ok;
}

int ts_batch_worker_running(void)
{
	return pool.state > 0;
}

/* Both halves of [base, end): the second on the worker when there is one, the first here. */
static void run_window(struct half *a, struct half *b, int parallel)
{
	if (!parallel || b->from == b->to || !worker_ready()) {
		run_half(a);
		if (a->r == 0)
			run_half(b);
		else
			b->r = 0;
		return;
	}
	pthread_mutex_lock(&pool.mu);
	pool.job = b;
	pool.posted++;
	pthread_cond_signal(&pool.go);
	pthread_mutex_unlock(&pool.mu);

	run_half(a);

	pthread_mutex_lock(&pool.mu);
	while (pool.finished != pool.posted)
		pthread_cond_wait(&pool.done, &pool.mu);
	pool.job = NULL;
	pthread_mutex_unlock(&pool.mu);
}

int ts_batch_unwrap_prepare(void)
{
	if (!pool.window && (pool.window = ts_secure_alloc(WINDOW_BYTES)) == NULL)
		return -TS_E_NOMEM;
	if (!pool.off && (pool.off = calloc(WINDOW_ITEMS, sizeof(uint32_t))) == NULL)
		return -TS_E_NOMEM;
	if (!pool.nonces && (pool.nonces = malloc((size_t)WINDOW_ITEMS * TS_BLOB_NONCE_BYTES)) == NULL)
		return -TS_E_NOMEM;
	return 0;
}

/* Room in out for the new blobs of items [from, to) (each as long as its plaintext + the overhead); len 0. */
static int reserve_out(ts_buf *out, const uint32_t *off, size_t base, size_t from, size_t to, size_t used)
{
	size_t need = 0, i;

	for (i = from; i < to; i++)
		need += (i + 1 < to ? off[i + 1 - base] : used) - off[i - base] + TS_BLOB_OVERHEAD;
	out->len = 0;
	if (need > out->cap && ts_buf_reserve(out, need) == NULL)
		return -TS_E_NOMEM;
	out->len = 0;
	return 0;
}

int ts_batch_unwrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx, const ts_batch_item *items, size_t n,
                    int parallel, int rewrap, ts_batch_emit_fn emit, void *userdata, size_t *ret_idx,
                    int *ret_emit_failed)
{
	_ts_cleanup_buf_ ts_buf out_a = { 0 };
	_ts_cleanup_buf_ ts_buf out_b = { 0 };
	ts_blob_ctx ctx_a, ctx_b;
	struct half a, b;
	ts_blob_view bv;
	size_t base = 0, end, used, mid, i, ra, rb;
	int r = 0, pending;

	*ret_emit_failed = 0;
	if (n == 0)
		return 0;
	if (ts_batch_unwrap_prepare() < 0)
		return -TS_E_NOMEM;
	/*
	 * The context is checked and encoded once for the whole batch, not
	 * per item; each thread gets its own copy (each blob's header is
	 * written in front of the encoding). An error of the context's
	 * surfaces at the first item that gets that far, as it did per item.
	 */
	ts_blob_ctx_init(&ctx_a, ctx, n_ctx);
	ts_blob_ctx_copy(&ctx_b, &ctx_a);

	while (base < n) {
		/* The window: items while their plaintexts fit; a blob that does not parse ends it. */
		pending = 0;
		used = 0;
		for (end = base; end < n && end - base < WINDOW_ITEMS; end++) {
			if ((r = ts_blob_parse(items[end].blob, items[end].len, &bv)) < 0) {
				pending = r;
				break;
			}
			if (bv.plaintext_len > WINDOW_BYTES - used)
				break;
			pool.off[end - base] = (uint32_t)used;
			used += bv.plaintext_len;
		}
		mid = base + (end - base) / 2;
		/* Room for the new blobs, made here: the worker allocates nothing. */
		if (rewrap && ((r = reserve_out(&out_a, pool.off, base, base, mid,
		                                mid < end ? pool.off[mid - base] : used)) < 0 ||
		               (r = reserve_out(&out_b, pool.off, base, mid, end, used)) < 0)) {
			*ret_idx = base;
			break;
		}
		/*
		 * The window's new blobs' nonces, drawn here at once (one
		 * getrandom for the window, not one per blob), then split: the
		 * first half's seals take [base, mid), the worker's [mid, end),
		 * each nonce once. A fresh seed per window, so no two windows,
		 * batches or threads share one.
		 */
		if (rewrap) {
			ts_blob_nonces_draw(pool.nonces, end - base);
			ts_blob_ctx_use_nonces(&ctx_a, pool.nonces, mid - base);
			ts_blob_ctx_use_nonces(&ctx_b, pool.nonces + (mid - base) * TS_BLOB_NONCE_BYTES, end - mid);
		}
		a = (struct half){ .v = v, .bctx = &ctx_a, .items = items, .base = base, .from = base, .to = mid,
		                   .window = pool.window, .off = pool.off, .rewrap = rewrap, .out = &out_a };
		b = a;
		b.bctx = &ctx_b;
		b.from = mid;
		b.to = end;
		b.out = &out_b;
		run_window(&a, &b, parallel);
		if (rewrap) {
			ts_blob_ctx_use_nonces(&ctx_a, NULL, 0);
			ts_blob_ctx_use_nonces(&ctx_b, NULL, 0);
			sodium_memzero(pool.nonces, (end - base) * TS_BLOB_NONCE_BYTES);
		}

		/* The lowest failing index wins: the first half's, else the second's, else the unparsed one. */
		if (a.r < 0 || b.r < 0 || pending < 0) {
			r = a.r < 0 ? a.r : b.r < 0 ? b.r : pending;
			*ret_idx = a.r < 0 ? a.fail_idx : b.r < 0 ? b.fail_idx : end;
			break;
		}
		/*
		 * Each new blob was opened again under the encoding it was sealed
		 * with (ts_vault_wrap_ctx); before any leaves, both copies of the
		 * encoding must still be the context's (ts_vault_wrap's check,
		 * once a window). Should one not be, no item of the window is
		 * handed out, and the first is named.
		 */
		if (rewrap && end > base &&
		    (ts_blob_ctx_verify(&ctx_a, ctx, n_ctx) < 0 || ts_blob_ctx_verify(&ctx_b, ctx, n_ctx) < 0)) {
			r = -TS_E_FAILED;
			*ret_idx = base;
			break;
		}
		for (i = base, ra = rb = 0; i < end; i++) {
			size_t len = (i + 1 < end ? pool.off[i + 1 - base] : used) - pool.off[i - base];

			if (!rewrap)
				r = emit(userdata, i, pool.window + pool.off[i - base], len);
			else if (i < mid) {
				r = emit(userdata, i, out_a.data + ra, len + TS_BLOB_OVERHEAD);
				ra += len + TS_BLOB_OVERHEAD;
			} else {
				r = emit(userdata, i, out_b.data + rb, len + TS_BLOB_OVERHEAD);
				rb += len + TS_BLOB_OVERHEAD;
			}
			if (r < 0) {
				*ret_emit_failed = 1;
				break;
			}
		}
		sodium_memzero(pool.window, used);
		if (r < 0)
			break;
		base = end;
	}
	/* On a failure the window may hold the plaintexts of the items before it. */
	if (r < 0)
		sodium_memzero(pool.window, WINDOW_BYTES);
	ts_blob_ctx_free(&ctx_a);
	ts_blob_ctx_free(&ctx_b);
	return r < 0 ? r : 0;
}
