/* batch.c — libtokenseal's batches: UnwrapBatchPacked / RewrapBatchPacked (one array each way), UnwrapBatch / RewrapBatch when the daemon has no packed form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "client-internal.h"
#include "core/blob.h"
#include "core/packed.h"

#define NOMEM(c) ts_client_fail((c), -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM))

static int call(ts_client *c, sd_bus_message *m, sd_bus_message **reply)
{
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if ((r = sd_bus_call(c->bus, m, 0, &error, reply)) < 0)
		return ts_client_error(c, r, &error);
	c->last_code = 0;
	return 0;
}

/* ---- UnwrapBatch, RewrapBatch: an "aay" each way ------------------------------------------- */

static int aay_call(ts_client *c, const char *vault, const char *method, const ts_kv *ctx, size_t n_ctx,
                    const uint8_t *const *blobs, const size_t *lens, size_t n, sd_bus_message **reply)
{
	_cleanup_msg_ sd_bus_message *m = NULL;
	int r;

	if (n > TS_BATCH_MAX)
		return ts_client_fail(c, -TS_E_LIMIT, "more than %d items in one batch", TS_BATCH_MAX);
	if ((r = ts_client_new_vault_call(c, vault, method, &m)) < 0)
		return r;
	if ((r = sd_bus_message_open_container(m, 'a', "ay")) < 0)
		return ts_client_error(c, r, NULL);
	for (size_t i = 0; i < n; i++)
		if ((r = sd_bus_message_append_array(m, 'y', blobs[i], lens[i])) < 0)
			return ts_client_error(c, r, NULL);
	if ((r = sd_bus_message_close_container(m)) < 0 || (r = ts_client_append_kv(m, ctx, n_ctx)) < 0)
		return ts_client_error(c, r, NULL);
	return call(c, m, reply);
}

/*
 * The n answers located in a reply (src[i]), into memory of the caller's:
 * with secret (plaintexts), all in one locked allocation
 * (ts_client_secret_batch; each freed with ts_secret_free), the reply's
 * copy of each wiped once copied; else each its own malloc(). Takes src.
 */
static int take_items(ts_client *c, ts_batch_item *src, size_t n, int secret, uint8_t ***ret_items,
                      size_t **ret_lens)
{
	uint8_t **items = calloc(n ? n : 1, sizeof(*items));
	size_t *lens = calloc(n ? n : 1, sizeof(*lens));
	int r = 0;

	if (!items || !lens) {
		r = NOMEM(c);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		lens[i] = src[i].len;
	if (secret)
		r = ts_client_secret_batch(lens, n, items);
	else
		for (size_t i = 0; i < n && r == 0; i++)
			if ((items[i] = malloc(lens[i] ? lens[i] : 1)) == NULL)
				r = -TS_E_NOMEM;
	if (r < 0) {
		for (size_t i = 0; !secret && i < n; i++)
			free(items[i]);
		r = NOMEM(c);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (lens[i] == 0)
			continue;
		memcpy(items[i], src[i].blob, lens[i]);
		/* As for Unwrap: the message body is ours, wipe its copy of the plaintext. */
		if (secret)
			sodium_memzero((void *)(uintptr_t)src[i].blob, lens[i]);
	}
	*ret_items = items;
	*ret_lens = lens;
	items = NULL;
	lens = NULL;
out:
	free(src);
	free(items);
	free(lens);
	return r;
}

/* The items of an "aay" reply: exactly n, located first so that one allocation can take them all. */
static int read_aay(ts_client *c, sd_bus_message *reply, size_t n, int secret,
                    uint8_t ***ret_items, size_t **ret_lens)
{
	ts_batch_item *src = calloc(n ? n : 1, sizeof(*src));
	const void *p;
	size_t i = 0, len;
	int r;

	if (!src)
		return NOMEM(c);
	if (sd_bus_message_enter_container(reply, 'a', "ay") < 0)
		goto bad;
	while ((r = sd_bus_message_read_array(reply, 'y', &p, &len)) > 0) {
		if (i == n)
			goto bad;   /* a sensitive reply is wiped whole when dropped */
		src[i++] = (ts_batch_item){ p, len };
	}
	if (r < 0 || i != n)
		goto bad;
	return take_items(c, src, n, secret, ret_items, ret_lens);
bad:
	free(src);
	return ts_client_fail(c, -TS_E_FAILED, "unexpected batch reply from tokensealed");
}

/* ---- the packed forms: one "ay" each way (core/packed.h) ---------------------------------- */

/* The largest message the system bus (and the private socket) takes. */
#define PACKED_MESSAGE_MAX (32u << 20)

/*
 * The packed call: the items (each at most TS_BLOB_MAX bytes: the caller
 * sees to it) written straight into the message's one array. 1 when the
 * daemon does not know the method (c->no_packed is set: the caller uses
 * the "aay" form, now and from then on); 0 with *reply; or a negative
 * TS_E_* recorded on c.
 */

static int packed_call(ts_client *c, const char *vault, const char *method, const ts_kv *ctx, size_t n_ctx,
                       const uint8_t *const *blobs, const size_t *lens, size_t n, sd_bus_message **reply)
{
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_msg_ sd_bus_message *m = NULL;
	size_t total = 0, off = 0;
	void *space;
	int r;

	/* Summed without wrapping (a 32-bit size_t): no message past the bus's 32 MiB is built at all. */
	for (size_t i = 0; i < n; i++) {
		if (lens[i] > PACKED_MESSAGE_MAX - total)
			return ts_client_fail(c, -TS_E_LIMIT, "a batch of more than %u bytes", PACKED_MESSAGE_MAX);
		total += lens[i];
	}
	if (ts_packed_size(n, total) == 0 || ts_packed_size(n, total) > PACKED_MESSAGE_MAX)
		return ts_client_fail(c, -TS_E_LIMIT, "a batch of more than %u bytes", PACKED_MESSAGE_MAX);
	if ((r = ts_client_new_vault_call(c, vault, method, &m)) < 0)
		return r;
	if ((r = sd_bus_message_append_array_space(m, 'y', ts_packed_size(n, total), &space)) < 0)
		return ts_client_error(c, r, NULL);
	for (size_t i = 0; i < n; i++)
		off += ts_packed_put((uint8_t *)space + off, blobs[i], lens[i]);
	if ((r = ts_client_append_kv(m, ctx, n_ctx)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = sd_bus_call(c->bus, m, 0, &error, reply)) < 0) {
		if (sd_bus_error_has_name(&error, SD_BUS_ERROR_UNKNOWN_METHOD)) {
			c->no_packed = 1;
			return 1;
		}
		return ts_client_error(c, r, &error);
	}
	c->last_code = 0;
	return 0;
}

/* The n answers of a packed reply, read as hostile input (exactly n items, each at most max_item bytes, nothing after them). */
static int read_packed(ts_client *c, sd_bus_message *reply, size_t n, size_t max_item, int secret,
                       uint8_t ***ret_items, size_t **ret_lens)
{
	ts_batch_item *src = calloc(n ? n : 1, sizeof(*src));
	ts_packed_status st;
	const void *p;
	char msg[160];
	size_t len, got;

	if (!src)
		return NOMEM(c);
	if (sd_bus_message_read_array(reply, 'y', &p, &len) < 0) {
		free(src);
		return ts_client_fail(c, -TS_E_FAILED, "unexpected batch reply from tokensealed");
	}
	if (ts_packed_parse(p, len, TS_BATCH_MAX, max_item, n, src, &got, &st) < 0) {
		free(src);
		ts_packed_message(&st, msg, sizeof(msg));
		return ts_client_fail(c, -TS_E_FAILED, "unexpected batch reply from tokensealed: %s", msg);
	}
	return take_items(c, src, n, secret, ret_items, ret_lens);
}

/*
 * A batch: the packed form first, the "aay" form when the daemon has none;
 * also for 0 items and for an item longer than any blob, which the packed
 * form does not take (so that such a batch fails as it always did, with
 * BadBlob at the first failing index).
 */
static int batch(ts_client *c, const char *vault, int rewrap, const ts_kv *ctx, size_t n_ctx,
                 const uint8_t *const *blobs, const size_t *lens, size_t n, uint8_t ***ret_items, size_t **ret_lens)
{
	_cleanup_msg_ sd_bus_message *reply = NULL;
	size_t i;
	int r;

	if (n > TS_BATCH_MAX)
		return ts_client_fail(c, -TS_E_LIMIT, "more than %d items in one batch", TS_BATCH_MAX);
	for (i = 0; i < n && lens[i] <= TS_BLOB_MAX; i++)
		;
	if (n > 0 && i == n && !c->no_packed) {
		r = packed_call(c, vault, rewrap ? "RewrapBatchPacked" : "UnwrapBatchPacked", ctx, n_ctx, blobs, lens, n,
		                &reply);
		if (r < 0)
			return r;
		if (r == 0) {
			/* Every plaintext read is wiped in the body; sensitive wipes the rest when a bad reply is dropped. */
			if (!rewrap)
				(void)sd_bus_message_sensitive(reply);
			return read_packed(c, reply, n, rewrap ? TS_BLOB_MAX : TS_PLAINTEXT_MAX, !rewrap, ret_items,
			                   ret_lens);
		}
	}
	if ((r = aay_call(c, vault, rewrap ? "RewrapBatch" : "UnwrapBatch", ctx, n_ctx, blobs, lens, n, &reply)) < 0)
		return r;
	if (!rewrap)
		(void)sd_bus_message_sensitive(reply);
	return read_aay(c, reply, n, !rewrap, ret_items, ret_lens);
}

int ts_client_unwrap_batch(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                           const uint8_t *const *blobs, const size_t *lens, size_t n,
                           uint8_t ***ret_pts, size_t **ret_lens)
{
	return batch(c, vault, 0, ctx, n_ctx, blobs, lens, n, ret_pts, ret_lens);
}

int ts_client_rewrap_batch(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                           const uint8_t *const *blobs, const size_t *lens, size_t n,
                           uint8_t ***ret_blobs, size_t **ret_lens)
{
	return batch(c, vault, 1, ctx, n_ctx, blobs, lens, n, ret_blobs, ret_lens);
}
