/* client_batch.c — exercises the client library's internal batch calls (UnwrapBatch, RewrapBatch) against a live daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>

#include <sodium.h>

#include "tokenseal.h"
#include "../../cli/lib/client-internal.h"

#define N 50
#define KEY 32

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * client_batch VAULT loop ROUNDS ITEMS: ITEMS distinct 32-byte keys wrapped
 * (untimed), then ROUNDS UnwrapBatch calls of them through
 * ts_client_unwrap_batch, each key checked and freed with ts_secret_free
 * (timed with the call): the client's side of a batch, for strace -c and
 * the median time per batch.
 */
static int loop(ts_client *c, const char *vault, long rounds, size_t items)
{
	ts_kv ctx[] = { { "batch", "loop" } };
	uint8_t **blobs = calloc(items, sizeof(*blobs)), *keys = sodium_malloc(items * KEY), **out = NULL;
	size_t *lens = calloc(items, sizeof(*lens)), *out_lens = NULL;
	double *us = calloc((size_t)rounds, sizeof(*us));
	struct timespec t0, t1;
	int r, rc = 1;

	if (!blobs || !keys || !lens || !us)
		goto out;
	randombytes_buf(keys, items * KEY);
	for (size_t i = 0; i < items; i++)
		if ((r = ts_wrap(c, vault, ctx, 1, keys + i * KEY, KEY, &blobs[i], &lens[i])) < 0)
			goto fail;
	for (long k = 0; k < rounds; k++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if ((r = ts_client_unwrap_batch(c, vault, ctx, 1, (const uint8_t *const *)blobs, lens, items, &out,
		                                &out_lens)) < 0)
			goto fail;
		for (size_t i = 0; i < items; i++) {
			if (out_lens[i] != KEY || sodium_memcmp(out[i], keys + i * KEY, KEY) != 0) {
				fprintf(stderr, "client_batch: item %zu changed in UnwrapBatch\n", i);
				goto out;
			}
			ts_secret_free(out[i], out_lens[i]);
		}
		free(out);
		free(out_lens);
		out = NULL;
		out_lens = NULL;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us[k] = (double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
	}
	qsort(us, (size_t)rounds, sizeof(*us), cmp_double);
	printf("%ld UnwrapBatch of %zu through ts_client_unwrap_batch: median %.1f us per batch (%.0f keys/s), min %.1f, max %.1f\n",
	       rounds, items, us[rounds / 2], (double)items * 1e6 / us[rounds / 2], us[0], us[rounds - 1]);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "client_batch: %s [%s]\n", ts_client_last_error(c), ts_error_dbus_name(r));
out:
	for (size_t i = 0; blobs && i < items; i++)
		free(blobs[i]);
	free(blobs);
	free(lens);
	free(us);
	sodium_free(keys);
	return rc;
}

/* One UnwrapBatchPacked of the len bytes at p, on the library's connection: 0, or the daemon's error (name, message). */
static int raw_packed(ts_client *c, const char *vault, const void *p, size_t len, char *name, char *msg, size_t size)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	int r;

	if ((r = ts_client_new_vault_call(c, vault, "UnwrapBatchPacked", &m)) < 0)
		return r;
	if ((r = sd_bus_message_append_array(m, 'y', p, len)) >= 0 && (r = ts_client_append_kv(m, NULL, 0)) >= 0)
		r = sd_bus_call(c->bus, m, 0, &error, &reply);
	if (r < 0 && error.name) {
		snprintf(name, size, "%s", error.name);
		snprintf(msg, size, "%s", error.message ? error.message : "");
	}
	sd_bus_error_free(&error);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
	return r < 0 ? r : 0;
}

/*
 * client_batch VAULT hostile: malformed packed arrays straight to the
 * daemon, each answered with the error and message that name the shape and
 * the item; and a well-formed one whose item 1 is not a blob names item 1.
 */
static int hostile(ts_client *c, const char *vault)
{
	const struct {
		const char *what, *name, *msg;
		size_t len;
		const uint8_t *p;
	} cases[] = {
		{ "no items", "org.tokenseal1.Error.InvalidArgs", "no items", 0, (const uint8_t *)"" },
		{ "a short length", "org.tokenseal1.Error.InvalidArgs", "item 1: length cut short (2 of its 4 bytes)", 9,
		  (const uint8_t[]){ 3, 0, 0, 0, 1, 2, 3, 7, 0 } },
		{ "a length past the end", "org.tokenseal1.Error.InvalidArgs",
		  "item 1: length 1000 runs past the end of the array (3 bytes left)", 14,
		  (const uint8_t[]){ 3, 0, 0, 0, 1, 2, 3, 0xe8, 3, 0, 0, 1, 2, 3 } },
		{ "trailing bytes", "org.tokenseal1.Error.InvalidArgs", "item 1: length cut short (3 of its 4 bytes)", 9,
		  (const uint8_t[]){ 2, 0, 0, 0, 1, 2, 0, 0, 0 } },
		{ "an oversized item", "org.tokenseal1.Error.InvalidArgs",
		  "item 0: length 65607 is over the largest, 65606 bytes", 8, (const uint8_t[]){ 0x47, 0, 1, 0, 0, 0, 0, 0 } },
		{ "an item that is no blob", "org.tokenseal1.Error.BadBlob", "item 0: ", 7,
		  (const uint8_t[]){ 3, 0, 0, 0, 1, 2, 3 } },
	};
	char name[256], msg[256];
	uint8_t *many;
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		name[0] = msg[0] = 0;
		r = raw_packed(c, vault, cases[i].p, cases[i].len, name, msg, sizeof(name));
		if (r >= 0 || strcmp(name, cases[i].name) != 0 || strstr(msg, cases[i].msg) == NULL) {
			fprintf(stderr, "client_batch: %s: %d %s '%s', want %s '%s'\n", cases[i].what, r, name, msg,
			        cases[i].name, cases[i].msg);
			return 1;
		}
	}
	/* TS_BATCH_MAX + 1 empty items: LimitExceeded before any item is opened. */
	if ((many = calloc(TS_BATCH_MAX + 1, 4)) == NULL)
		return 1;
	r = raw_packed(c, vault, many, (size_t)(TS_BATCH_MAX + 1) * 4, name, msg, sizeof(name));
	free(many);
	if (r >= 0 || strcmp(name, "org.tokenseal1.Error.LimitExceeded") != 0 || !strstr(msg, "more than 100000 items")) {
		fprintf(stderr, "client_batch: too many items: %d %s '%s'\n", r, name, msg);
		return 1;
	}
	printf("hostile ok: every malformed packed array named\n");
	return 0;
}

/*
 * client_batch VAULT echo: against a daemon without the packed forms whose
 * UnwrapBatch answers each blob as its own plaintext
 * (tests/integration/core_packed_standin.py): two batches, each answered
 * in order, the first after an UnknownMethod to UnwrapBatchPacked, the
 * second sent as UnwrapBatch at once.
 */
static int echo(ts_client *c, const char *vault)
{
	static const uint8_t a[] = "first", b[] = "second blob", d[] = "3";
	const uint8_t *blobs[3] = { a, b, d };
	size_t lens[3] = { sizeof(a), sizeof(b), sizeof(d) }, *out_lens = NULL;
	uint8_t **out = NULL;
	int r;

	for (int round = 0; round < 2; round++) {
		if ((r = ts_client_unwrap_batch(c, vault, NULL, 0, blobs, lens, 3, &out, &out_lens)) < 0) {
			fprintf(stderr, "client_batch: %s [%s]\n", ts_client_last_error(c), ts_error_dbus_name(r));
			return 1;
		}
		for (size_t i = 0; i < 3; i++) {
			if (out_lens[i] != lens[i] || memcmp(out[i], blobs[i], lens[i]) != 0) {
				fprintf(stderr, "client_batch: item %zu changed on the way back\n", i);
				return 1;
			}
			ts_secret_free(out[i], out_lens[i]);
		}
		free(out);
		free(out_lens);
		if (!c->no_packed) {
			fprintf(stderr, "client_batch: no fall-back recorded\n");
			return 1;
		}
	}
	printf("echo ok: the aay form after UnknownMethod\n");
	return 0;
}

/*
 * Usage: client_batch VAULT [aay | hostile | echo]  |  client_batch VAULT loop ROUNDS ITEMS (above)
 * With aay the library is made to use UnwrapBatch / RewrapBatch (as with a
 * daemon that has no packed forms); hostile, echo: above.
 * Wraps N distinct plaintexts (lengths 1..N, with NULs), unwraps them in one
 * batch, rewraps them in one batch, unwraps the new blobs singly, and then
 * checks that a batch with one blob under the wrong context fails as a whole.
 * Exits 0, or 1 with a message.
 */
int main(int argc, char **argv)
{
	ts_kv ctx[] = { { "batch", "yes" } }, bad[] = { { "batch", "no" } };
	uint8_t *blobs[N] = { 0 }, pts[N][N], **out = NULL, **nb = NULL, *pt = NULL;
	size_t lens[N], *out_lens = NULL, *nb_lens = NULL, pt_len = 0;
	ts_client *c = NULL;
	int r, rc = 1;

	if ((argc != 2 && argc != 3 && argc != 5) ||
	    (argc == 3 && strcmp(argv[2], "aay") != 0 && strcmp(argv[2], "hostile") != 0 && strcmp(argv[2], "echo") != 0) ||
	    (argc == 5 && (strcmp(argv[2], "loop") != 0 || atol(argv[3]) <= 0 ||
	                                                atol(argv[4]) <= 0))) {
		fprintf(stderr, "usage: client_batch VAULT [aay | hostile | echo] | client_batch VAULT loop ROUNDS ITEMS\n");
		return 2;
	}
	if ((r = ts_client_open(&c, NULL)) < 0) {
		fprintf(stderr, "client_batch: %s\n", ts_strerror(r));
		return 1;
	}
	if (argc == 5) {
		rc = loop(c, argv[1], atol(argv[3]), (size_t)atol(argv[4]));
		ts_client_free(c);
		return rc;
	}
	if (argc == 3 && strcmp(argv[2], "hostile") != 0 && strcmp(argv[2], "aay") != 0) {
		rc = echo(c, argv[1]);
		ts_client_free(c);
		return rc;
	}
	if (argc == 3 && strcmp(argv[2], "hostile") == 0) {
		rc = hostile(c, argv[1]);
		ts_client_free(c);
		return rc;
	}
	if (argc == 3)
		c->no_packed = 1;
	for (size_t i = 0; i < N; i++) {
		for (size_t j = 0; j <= i; j++)
			pts[i][j] = (uint8_t)(i * 31 + j * 7);   /* includes 0x00 and '\n' */
		if ((r = ts_wrap(c, argv[1], ctx, 1, pts[i], i + 1, &blobs[i], &lens[i])) < 0)
			goto fail;
	}
	if ((r = ts_client_unwrap_batch(c, argv[1], ctx, 1, (const uint8_t *const *)blobs, lens, N, &out,
	                                &out_lens)) < 0)
		goto fail;
	for (size_t i = 0; i < N; i++)
		if (out_lens[i] != i + 1 || memcmp(out[i], pts[i], i + 1) != 0) {
			fprintf(stderr, "client_batch: item %zu changed in UnwrapBatch\n", i);
			goto out;
		}
	if ((r = ts_client_rewrap_batch(c, argv[1], ctx, 1, (const uint8_t *const *)blobs, lens, N, &nb,
	                                &nb_lens)) < 0)
		goto fail;
	for (size_t i = 0; i < N; i++) {
		if (nb_lens[i] == lens[i] && memcmp(nb[i], blobs[i], lens[i]) == 0) {
			fprintf(stderr, "client_batch: RewrapBatch returned blob %zu unchanged\n", i);
			goto out;
		}
		if ((r = ts_unwrap(c, argv[1], ctx, 1, nb[i], nb_lens[i], &pt, &pt_len)) < 0)
			goto fail;
		if (pt_len != i + 1 || memcmp(pt, pts[i], pt_len) != 0) {
			fprintf(stderr, "client_batch: rewrapped item %zu changed\n", i);
			goto out;
		}
		ts_secret_free(pt, pt_len);
		pt = NULL;
	}
	/* All or nothing: a wrong context fails the whole batch with a named error. */
	{
		uint8_t **x = NULL;
		size_t *xl = NULL;

		r = ts_client_unwrap_batch(c, argv[1], bad, 1, (const uint8_t *const *)blobs, lens, N, &x, &xl);
		if (r != -TS_E_CONTEXT_MISMATCH) {
			fprintf(stderr, "client_batch: wrong-context batch gave %d (%s), want ContextMismatch\n", r,
			        ts_client_last_error(c));
			goto out;
		}
	}
	/* An item longer than any blob: BadBlob naming its index, as it always was (sent as UnwrapBatch). */
	{
		uint8_t **x = NULL, *big = calloc(1, TS_PLAINTEXT_MAX + 71);
		const uint8_t *three[3] = { blobs[0], blobs[1], big };
		size_t three_lens[3] = { lens[0], lens[1], TS_PLAINTEXT_MAX + 71 }, *xl = NULL;

		r = big ? ts_client_unwrap_batch(c, argv[1], ctx, 1, three, three_lens, 3, &x, &xl) : -TS_E_NOMEM;
		free(big);
		if (r != -TS_E_BAD_BLOB || !strstr(ts_client_last_error(c), "item 2")) {
			fprintf(stderr, "client_batch: an oversized item gave %d (%s), want BadBlob at item 2\n", r,
			        ts_client_last_error(c));
			goto out;
		}
	}
	printf("batch ok: %d items unwrapped and rewrapped (%s)\n", N, c->no_packed ? "aay" : "packed");
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "client_batch: %s [%s]\n", ts_client_last_error(c), ts_error_dbus_name(r));
out:
	for (size_t i = 0; i < N; i++) {
		free(blobs[i]);
		if (out)
			ts_secret_free(out[i], out_lens[i]);
		if (nb)
			free(nb[i]);
	}
	free(out);
	free(out_lens);
	free(nb);
	free(nb_lens);
	ts_secret_free(pt, pt_len);
	ts_client_free(c);
	return rc;
}
