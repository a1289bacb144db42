/* batch_unwrap.h — the items of a large UnwrapBatch or RewrapBatch on two threads (the caller's and one kept worker). */
#ifndef TS_BATCH_UNWRAP_H
#define TS_BATCH_UNWRAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/packed.h"
#include "core/vault.h"

/* UnwrapBatch and RewrapBatch of at least this many items are split over two threads (when there are two CPUs). */
#define TS_BATCH_PARALLEL_MIN 256

/* An item (core/packed.h, ts_batch_item): a binary blob inside the caller's message (not copied). */

/* Receives item idx's plaintext (or new blob) on the calling thread, in order; a negative return stops the batch. */
typedef int (*ts_batch_emit_fn)(void *userdata, size_t idx, const uint8_t *pt, size_t pt_len);

/*
 * Unwrap items[0..n) with v under ctx (ts_blob_parse + ts_vault_unwrap
 * each) and hand each plaintext to emit, in order; with rewrap, wrap each
 * plaintext again (ts_vault_wrap, the current key; the plaintext wiped at
 * once) and hand emit the new blob instead. The context is encoded once
 * for the batch (and its check, for rewrap, computed once), not per item:
 * same checks, same errors at the same items (core/blob.h, ts_blob_ctx). Work goes by windows of
 * at most 4,096 items and 128 KiB of plaintext: the caller's thread takes
 * the first half of a window, a worker thread started at the first call
 * (all signals blocked; of its own only a stack and, once it has rewrapped,
 * ts_vault_wrap's per-thread secure scratch) the second, and the
 * plaintexts land in one kept sodium_malloc window, wiped once emitted or
 * on failure (with rewrap: as soon as each is wrapped again; the new blobs
 * go to buffers reserved on the caller's thread, and their nonces are drawn
 * for the whole window at once on the caller's thread, ts_blob_nonces_draw,
 * into a kept heap array of WINDOW_ITEMS nonces, each half taking its own
 * part of it). While the worker runs the caller waits, so the vault
 * cannot change under it (the daemon's loop is single-threaded and the
 * call holds it). With fewer than two CPUs, or when the worker cannot be
 * started, everything runs on the caller's thread; parallel = 0 forces it.
 *
 * Returns 0; or the error of the first failing item (the lowest index,
 * whichever thread met it) with *ret_idx set and *ret_emit_failed = 0; or
 * emit's error with *ret_emit_failed = 1 (-TS_E_NOMEM also when the window
 * cannot be allocated: call ts_batch_unwrap_prepare first to tell that
 * apart). One thread only may call these (the daemon's loop): the window
 * and the worker are the process's.
 */
int ts_batch_unwrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx, const ts_batch_item *items, size_t n,
                    int parallel, int rewrap, ts_batch_emit_fn emit, void *userdata, size_t *ret_idx,
                    int *ret_emit_failed);

/* Allocate the window and its nonces (once, kept): 0 or -TS_E_NOMEM. */
int ts_batch_unwrap_prepare(void);

/* Whether a worker thread is running (for tests). */
int ts_batch_worker_running(void);

#endif
