/* client_batch.c — exercises the client library's internal batch calls (UnwrapBatch, RewrapBatch) against a live daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenseal.h"
#include "../../cli/lib/client-internal.h"

#define N 50

/*
 * Usage: client_batch VAULT
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

	if (argc != 2) {
		fprintf(stderr, "usage: client_batch VAULT\n");
		return 2;
	}
	if ((r = ts_client_open(&c, NULL)) < 0) {
		fprintf(stderr, "client_batch: %s\n", ts_strerror(r));
		return 1;
	}
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
	printf("batch ok: %d items unwrapped and rewrapped\n", N);
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
