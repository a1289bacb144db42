/* data_methods.c — Vault's data methods: Wrap, Unwrap, Rewrap, GenerateDataKey, the batches (aay and packed), and RotateKey. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/blob.h"
#include "core/packed.h"
#include "core/text.h"
#include "batch_unwrap.h"

#include "bus/data_methods.h"
#include "bus/audit.h"
#include "bus/authorize.h"
#include "bus/daemon.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/properties.h"
#include "bus/rollback.h"
#include "bus/state.h"

/* ---- blobs -------------------------------------------------------------------------- */

/* Read "ay a{ss}" (the blob or plaintext, then the context). */
static int read_bytes_ctx(sd_bus_message *m, const void **p, size_t *n, ts_kv **ctx, size_t *n_ctx)
{
	int r;

	if ((r = sd_bus_message_read_array(m, 'y', p, n)) < 0)
		return -TS_E_INVALID_ARGS;
	return ts_bus_read_kv(m, ctx, n_ctx, TS_CONTEXT_MAX_ENTRIES);
}

/* Unwrap one binary blob into pt (secure, TS_PLAINTEXT_MAX bytes). */
static int unwrap_one(const ts_vault *v, const void *blob, size_t len, const ts_kv *ctx, size_t n_ctx,
                      uint8_t *pt, size_t *pt_len)
{
	ts_blob_view bv;
	int r;

	if ((r = ts_blob_parse(blob, len, &bv)) < 0)
		return r;
	if (bv.plaintext_len > TS_PLAINTEXT_MAX)
		return -TS_E_LIMIT;
	if ((r = ts_vault_unwrap(v, &bv, ctx, n_ctx, pt)) < 0)
		return r;
	*pt_len = bv.plaintext_len;
	return 0;
}

/*
 * One secure scratch buffer for plaintexts, allocated once. A fresh
 * sodium_malloc of 64 KiB per call (guard pages, mlock, fill) cost about as
 * much as the whole bus round trip (docs/PERFORMANCE.md). The daemon runs
 * one handler at a time; each handler wipes what it wrote before it returns.
 */
static uint8_t *plaintext_scratch(void)
{
	static uint8_t *buf;

	if (!buf)
		buf = ts_secure_alloc(TS_PLAINTEXT_MAX);
	return buf;
}

/* The table's checks for a data method (authorize.c): 0, or return it from the handler (error set, or 1). */
static int data_call_allowed(sd_bus_message *m, ts_vault_entry *e, sd_bus_error *error)
{
	ts_caller caller;

	return ts_vault_authorize(m, e, &caller, error);
}

/* A reply holding one non-secret "ay". */
static int reply_bytes(sd_bus_message *m, const void *p, size_t n)
{
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	int r;

	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 ||
	    (r = sd_bus_message_append_array(reply, 'y', p, n)) < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

int ts_data_method_wrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	const void *pt;
	_ts_cleanup_kv_ ts_kv *ctx = NULL;
	size_t pt_len, n_ctx;
	int r;

	/* The request carries the plaintext: sd-bus wipes the received body when it frees the message. */
	(void)sd_bus_message_sensitive(m);
	if ((r = read_bytes_ctx(m, &pt, &pt_len, &ctx, &n_ctx)) < 0)
		goto fail;
	if (pt_len > TS_PLAINTEXT_MAX) {
		r = -TS_E_LIMIT;
		goto fail;
	}
	if ((r = data_call_allowed(m, e, error)) != 0)
		return r;
	if ((r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, pt_len, &blob)) < 0)
		goto fail;
	ts_daemon_touch(e);
	return ts_bus_errno(error, reply_bytes(m, blob.data, blob.len));
fail:
	return ts_bus_error(error, r, NULL);
}

int ts_data_method_unwrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	uint8_t *pt;
	const void *blob;
	_ts_cleanup_kv_ ts_kv *ctx = NULL;
	size_t blob_len, n_ctx, pt_len = 0;
	int r;

	if ((r = read_bytes_ctx(m, &blob, &blob_len, &ctx, &n_ctx)) < 0)
		goto fail;
	if ((r = data_call_allowed(m, e, error)) != 0)
		return r;
	if ((pt = plaintext_scratch()) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	if ((r = unwrap_one(e->vault, blob, blob_len, ctx, n_ctx, pt, &pt_len)) < 0)
		goto fail;
	ts_daemon_touch(e);
	/*
	 * The plaintext the caller asked for is the one secret that goes on the
	 * wire: sensitive, so that sd-bus wipes the reply's body when it frees it.
	 */
	if ((r = sd_bus_message_new_method_return(m, &reply)) >= 0 && (r = sd_bus_message_sensitive(reply)) >= 0)
		r = sd_bus_message_append_array(reply, 'y', pt, pt_len);
	sodium_memzero(pt, pt_len);
	if (r < 0)
		return ts_bus_errno(error, r);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
fail:
	return ts_bus_error(error, r, NULL);
}

int ts_data_method_rewrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_buf_ ts_buf out = { 0 };
	uint8_t *pt;
	const void *blob;
	_ts_cleanup_kv_ ts_kv *ctx = NULL;
	size_t blob_len, n_ctx, pt_len = 0;
	int r;

	if ((r = read_bytes_ctx(m, &blob, &blob_len, &ctx, &n_ctx)) < 0)
		goto fail;
	/* Rewrap opens the blob as Unwrap does: the same [unwrap] rules apply (as for RewrapBatch). */
	if ((r = data_call_allowed(m, e, error)) != 0)
		return r;
	if ((pt = plaintext_scratch()) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	if ((r = unwrap_one(e->vault, blob, blob_len, ctx, n_ctx, pt, &pt_len)) == 0)
		r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, pt_len, &out);
	sodium_memzero(pt, pt_len);
	if (r < 0)
		goto fail;
	ts_daemon_touch(e);
	return ts_bus_errno(error, reply_bytes(m, out.data, out.len));
fail:
	return ts_bus_error(error, r, NULL);
}

int ts_data_method_generate_data_key(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	uint8_t *pt;
	_ts_cleanup_kv_ ts_kv *ctx = NULL;
	size_t n_ctx;
	uint32_t size;
	int r;

	if ((r = sd_bus_message_read(m, "u", &size)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_bus_read_kv(m, &ctx, &n_ctx, TS_CONTEXT_MAX_ENTRIES)) < 0)
		goto fail;
	if (size == 0 || size > TS_PLAINTEXT_MAX)
		return ts_bus_error(error, size ? -TS_E_LIMIT : -TS_E_INVALID_ARGS, "size must be 1..65536 bytes");
	if ((r = data_call_allowed(m, e, error)) != 0)
		return r;
	if ((pt = plaintext_scratch()) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	randombytes_buf(pt, size);
	if ((r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, size, &blob)) < 0) {
		sodium_memzero(pt, size);
		goto fail;
	}
	ts_daemon_touch(e);
	if ((r = sd_bus_message_new_method_return(m, &reply)) >= 0 && (r = sd_bus_message_sensitive(reply)) >= 0 &&
	    (r = sd_bus_message_append_array(reply, 'y', pt, size)) >= 0)
		r = sd_bus_message_append_array(reply, 'y', blob.data, blob.len);
	sodium_memzero(pt, size);
	if (r < 0)
		return ts_bus_errno(error, r);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
fail:
	return ts_bus_error(error, r, NULL);
}

/* The plaintexts (UnwrapBatch) or new blobs (RewrapBatch) go into the reply as ts_batch_unwrap hands them over. */
static int append_bytes(void *userdata, size_t idx, const uint8_t *pt, size_t pt_len)
{
	(void)idx;
	return sd_bus_message_append_array(userdata, 'y', pt, pt_len);
}

/*
 * The items of the "aay" (pointers into m, valid while it lives), read in
 * one pass and counted against TS_BATCH_MAX (-TS_E_LIMIT past it). When the
 * array cannot grow, the items are dropped and *ret_nomem set, but the
 * count goes on to the end: a broken message (-TS_E_INVALID_ARGS) or a bad
 * context is still answered before the lack of memory, as it was when the
 * array was allocated after them.
 */
static int read_items(sd_bus_message *m, ts_batch_item **ret, size_t *ret_n, int *ret_nomem)
{
	ts_batch_item *items = NULL, *more;
	size_t n = 0, cap = 0, len;
	const void *blob;
	int r;

	*ret = NULL;
	*ret_n = 0;
	*ret_nomem = 0;
	if (sd_bus_message_enter_container(m, 'a', "ay") < 0)
		return -TS_E_INVALID_ARGS;
	while ((r = sd_bus_message_read_array(m, 'y', &blob, &len)) > 0) {
		if (n == TS_BATCH_MAX) {
			free(items);
			return -TS_E_LIMIT;
		}
		if (n == cap && !*ret_nomem) {
			cap = cap == 0 ? 256 : cap < TS_BATCH_MAX / 2 ? 2 * cap : TS_BATCH_MAX;
			if ((more = realloc(items, cap * sizeof(*items))) == NULL) {
				free(items);
				items = NULL;
				*ret_nomem = 1;
			} else
				items = more;
		}
		if (items)
			items[n] = (ts_batch_item){ blob, len };
		n++;
	}
	if (r < 0 || sd_bus_message_exit_container(m) < 0) {
		free(items);
		return -TS_E_INVALID_ARGS;
	}
	*ret = items;
	*ret_n = n;
	return 0;
}

/*
 * UnwrapBatch or RewrapBatch's items: ts_batch_unwrap does the work, a
 * large batch (TS_BATCH_PARALLEL_MIN items or more) on two threads.
 * Returns 0; a negative TS_E_* with *ret_item = 1 and *ret_idx for the
 * first failing item, or *ret_item = 0 for a failure before any item (no
 * memory); or a negative errno from building the reply with *ret_item = -1.
 */
static int batch_items(ts_batch_emit_fn emit, void *out, ts_vault_entry *e, const ts_kv *ctx, size_t n_ctx,
                       const ts_batch_item *items, size_t n, int nomem, int rewrap, size_t *ret_idx, int *ret_item)
{
	size_t idx = 0;
	int r, emit_failed = 0;

	*ret_item = 0;
	if (n == 0)
		return 0;
	/* The window first: out of memory there is no item's fault. */
	if (ts_batch_unwrap_prepare() < 0 || nomem)
		return -TS_E_NOMEM;
	r = ts_batch_unwrap(e->vault, ctx, n_ctx, items, n, n >= TS_BATCH_PARALLEL_MIN, rewrap, emit, out, &idx,
	                    &emit_failed);
	if (r < 0) {
		*ret_item = emit_failed ? -1 : 1;
		*ret_idx = idx;
		return r;
	}
	return 0;
}

/*
 * UnwrapBatch and RewrapBatch: the reply is built as we go and dropped
 * whole (and wiped) if one item fails, so the caller gets all items or an
 * error that names the first failing index.
 */
static int batch(sd_bus_message *m, ts_vault_entry *e, int rewrap, int *big, sd_bus_error *error)
{
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	_ts_cleanup_kv_ ts_kv *ctx = NULL;
	ts_batch_item *items = NULL;
	char msg[160];
	size_t n_ctx, idx = 0, count = 0;
	ts_caller caller;
	int r, item = 0, nomem = 0;

	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	/*
	 * The context comes after the array in the message: the items are
	 * taken in one walk of the array (by sd_bus_message_read_array each;
	 * sd_bus_message_skip steps through it byte by byte and cost 80% of a
	 * batch, and a second walk after a rewind cost a third of the daemon's
	 * time per item), then the context is read.
	 */
	if ((r = read_items(m, &items, &count, &nomem)) < 0) {
		if (r == -TS_E_LIMIT)
			snprintf(msg, sizeof(msg), "more than %d items in one batch", TS_BATCH_MAX);
		return ts_bus_error(error, r, r == -TS_E_LIMIT ? msg : NULL);
	}
	*big = count >= TS_TRIM_MIN_ITEMS;
	if ((r = ts_bus_read_kv(m, &ctx, &n_ctx, TS_CONTEXT_MAX_ENTRIES)) < 0) {
		free(items);
		return ts_bus_error(error, r == -TS_E_LIMIT ? r : -TS_E_INVALID_ARGS, NULL);
	}
	/* Sensitive: a reply dropped half-built on a failing item is wiped as well as a sent one. */
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 || (r = sd_bus_message_sensitive(reply)) < 0 ||
	    (r = sd_bus_message_open_container(reply, 'a', "ay")) < 0)
		goto out;
	r = batch_items(append_bytes, reply, e, ctx, n_ctx, items, count, nomem, rewrap, &idx, &item);
	free(items);
	items = NULL;
	if (r < 0) {
		if (item > 0)
			goto fail_item;
		if (item < 0)
			goto out;
		return ts_bus_error(error, r, NULL);
	}
	if ((r = sd_bus_message_close_container(reply)) < 0)
		goto out;
	ts_daemon_touch(e);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
fail_item:
	if (r == -TS_E_LIMIT)
		snprintf(msg, sizeof(msg), "more than %d items in one batch", TS_BATCH_MAX);
	else
		snprintf(msg, sizeof(msg), "item %zu: %s", idx, ts_strerror(r));
	return ts_bus_error(error, r, msg);
out:
	free(items);
	return ts_bus_errno(error, r);
}

/* ---- packed batches: one "ay" each way (core/packed.h) --------------------------------- */

/* The reply's one array, reserved at its final size; each item is written in place. */
struct packed_out {
	uint8_t *p;
	size_t off, size;
};

static int put_packed(void *userdata, size_t idx, const uint8_t *pt, size_t pt_len)
{
	struct packed_out *o = userdata;

	(void)idx;
	if (pt_len > o->size - o->off || o->size - o->off - pt_len < TS_PACKED_LEN_BYTES)
		return -TS_E_FAILED;
	o->off += ts_packed_put(o->p + o->off, pt, pt_len);
	return 0;
}

/*
 * The reply's size: each answer's length is in its blob's header (the
 * plaintext, or the new blob that much longer). An item that does not
 * parse ends the sum: the batch fails at it or before it.
 */
static size_t packed_reply_size(const ts_batch_item *items, size_t n, int rewrap)
{
	ts_blob_view bv;
	size_t total = 0, i;

	for (i = 0; i < n && ts_blob_parse(items[i].blob, items[i].len, &bv) == 0; i++)
		total += TS_PACKED_LEN_BYTES + bv.plaintext_len + (rewrap ? TS_BLOB_OVERHEAD : 0);
	return total;
}

/*
 * UnwrapBatchPacked and RewrapBatchPacked: UnwrapBatch and RewrapBatch with
 * the items in one "ay" each way, so sd-bus handles one array per call, not
 * one per item. The same rules, errors and all-or-nothing; a malformed
 * array is answered with what is wrong and at which item before any item
 * is opened (as a broken "aay" is). The items are located in place (one
 * array of n, no allocation per item); the answers are written straight
 * into the sensitive reply.
 */
static int batch_packed(sd_bus_message *m, ts_vault_entry *e, int rewrap, int *big, sd_bus_error *error)
{
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	_ts_cleanup_kv_ ts_kv *ctx = NULL;
	ts_batch_item *items = NULL;
	struct packed_out out = { 0 };
	ts_packed_status st;
	const void *p;
	char msg[160];
	size_t len, n_ctx, idx = 0, count = 0;
	ts_caller caller;
	int r, item = 0, nomem = 0;
	void *space;

	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	if (sd_bus_message_read_array(m, 'y', &p, &len) < 0)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, NULL);
	if ((r = ts_packed_parse(p, len, TS_BATCH_MAX, TS_BLOB_MAX, 0, NULL, &count, &st)) < 0) {
		ts_packed_message(&st, msg, sizeof(msg));
		return ts_bus_error(error, r, msg);
	}
	*big = count >= TS_TRIM_MIN_ITEMS;
	if ((r = ts_bus_read_kv(m, &ctx, &n_ctx, TS_CONTEXT_MAX_ENTRIES)) < 0)
		return ts_bus_error(error, r == -TS_E_LIMIT ? r : -TS_E_INVALID_ARGS, NULL);
	if ((items = malloc(count * sizeof(*items))) == NULL)
		nomem = 1;
	else
		(void)ts_packed_parse(p, len, TS_BATCH_MAX, TS_BLOB_MAX, 0, items, &count, &st);
	/* Sensitive: a reply dropped half-written on a failing item is wiped as well as a sent one. */
	out.size = items ? packed_reply_size(items, count, rewrap) : 0;
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 || (r = sd_bus_message_sensitive(reply)) < 0 ||
	    (r = sd_bus_message_append_array_space(reply, 'y', out.size, &space)) < 0)
		goto out;
	out.p = space;
	r = batch_items(put_packed, &out, e, ctx, n_ctx, items, count, nomem, rewrap, &idx, &item);
	free(items);
	items = NULL;
	if (r == 0 && out.off != out.size) {
		r = -TS_E_FAILED;
		item = 0;
	}
	if (r < 0) {
		if (out.p)
			sodium_memzero(out.p, out.off);
		if (item > 0) {
			snprintf(msg, sizeof(msg), "item %zu: %s", idx, ts_strerror(r));
			return ts_bus_error(error, r, msg);
		}
		return ts_bus_error(error, r, NULL);
	}
	ts_daemon_touch(e);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
out:
	free(items);
	return ts_bus_errno(error, r);
}

/* Any of the four batch methods; a large one arms the heap trim (ts_daemon_trim_later) once it is answered. */
static int batch_call(sd_bus_message *m, ts_vault_entry *e, int packed, int rewrap, sd_bus_error *error)
{
	int big = 0, r = packed ? batch_packed(m, e, rewrap, &big, error) : batch(m, e, rewrap, &big, error);

	if (big)
		ts_daemon_trim_later(e->d);
	return r;
}

int ts_data_method_unwrap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return batch_call(m, userdata, 0, 0, error);
}

int ts_data_method_rewrap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return batch_call(m, userdata, 0, 1, error);
}

int ts_data_method_unwrap_batch_packed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return batch_call(m, userdata, 1, 0, error);
}

int ts_data_method_rewrap_batch_packed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return batch_call(m, userdata, 1, 1, error);
}

/* ---- key and protector management ----------------------------------------------------- */

int ts_data_method_rotate_key(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	char errbuf[160] = "";
	_ts_cleanup_kv_ ts_kv *opts = NULL;
	size_t n_opts;
	uint32_t version = 0, retire = 0;
	uint64_t v;
	int have_retire = 0;
	ts_caller caller;
	int r;

	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 16)) < 0)
		return ts_bus_error(error, r, NULL);
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "retire_below") == 0 &&
		    ts_parse_uint(opts[i].value, strlen(opts[i].value), UINT32_MAX, &v) == 0) {
			retire = (uint32_t)v;
			have_retire = 1;
			continue;
		}
		return ts_bus_error(error, -TS_E_INVALID_ARGS,
		                    "unknown or malformed option (known: retire_below=<decimal version>)");
	}
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0 ||
	    (r = ts_audit_gate("rotate", e->vault->name, e->vault->owner_uid, &caller, NULL, error)) < 0)
		return r;
	if (have_retire && (retire < 1 || retire > e->vault->key_version + 1)) {
		snprintf(errbuf, sizeof(errbuf), "retire_below must be 1..%u (the new version)",
		         e->vault->key_version + 1);
		return ts_bus_error(error, -TS_E_INVALID_ARGS, errbuf);
	}
	if ((r = ts_vault_rotate(e->vault, ts_now(), &version)) < 0)
		goto fail;
	if (have_retire && retire > e->vault->min_key_version &&
	    (r = ts_vault_retire_below(e->vault, retire)) < 0) {
		(void)ts_daemon_revert(e);
		goto fail;
	}
	if ((r = ts_daemon_persist(e)) < 0)
		goto fail;
	if (have_retire)
		ts_rollback_drop_backup(e, "retire");
	(void)ts_audit("rotate", e->vault->name, e->vault->owner_uid, &caller, NULL, 0);
	ts_daemon_touch(e);
	ts_properties_emit_changed(e);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, "u", version));
fail:
	(void)ts_audit("rotate", e->vault->name, e->vault->owner_uid, &caller, NULL, r);
	return ts_bus_error(error, r, errbuf);
}
