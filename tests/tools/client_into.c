/* client_into.c — ts_unwrap_into, the unwrap into a caller's buffer: the same plaintext as ts_unwrap, a named error for a short buffer, nothing left in the buffer on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"

/*
 * Usage:
 *   client_into VAULT <data
 *       wraps stdin's bytes (1 to 4096) in VAULT and checks ts_unwrap_into
 *       against ts_unwrap: the same bytes; a buffer one byte short gives
 *       TS_E_LIMIT with the length needed; a short buffer, a wrong context
 *       and a flipped blob byte each leave the buffer all zero (it was
 *       filled with 0xAA before each call). One "ok: ..." line per check;
 *       exits 1 at the first that fails.
 *   client_into VAULT loop unwrap|into N
 *       wraps 32 random bytes, then N ts_unwrap (allocating) or
 *       ts_unwrap_into (one buffer) calls: for `strace -c -f`.
 */
static const ts_kv ctx[] = { { "app", "into" } };
static const ts_kv other_ctx[] = { { "app", "other" } };

static int all(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static int fail(ts_client *c, const char *what, int r)
{
	fprintf(stderr, "client_into: %s: %d %s\n", what, r, c ? ts_client_last_error(c) : "");
	return 1;
}

static int loop(ts_client *c, const char *vault, const char *how, long n)
{
	uint8_t key[32], *blob = NULL, *buf = sodium_malloc(TS_PLAINTEXT_MAX);
	size_t blob_len = 0, len;
	int into = strcmp(how, "into") == 0, r;

	randombytes_buf(key, sizeof(key));
	if (!buf || (r = ts_wrap(c, vault, ctx, 1, key, sizeof(key), &blob, &blob_len)) < 0)
		return fail(c, "wrap", buf ? r : -TS_E_NOMEM);
	for (long i = 0; i < n; i++) {
		if (into) {
			r = ts_unwrap_into(c, vault, ctx, 1, blob, blob_len, buf, TS_PLAINTEXT_MAX, &len);
		} else {
			uint8_t *pt = NULL;

			if ((r = ts_unwrap(c, vault, ctx, 1, blob, blob_len, &pt, &len)) == 0)
				ts_secret_free(pt, len);
		}
		if (r < 0)
			return fail(c, "unwrap", r);
	}
	sodium_free(buf);
	free(blob);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t in[4096], *blob = NULL, *pt = NULL, *buf = NULL;
	size_t in_len, blob_len = 0, pt_len = 0, len = 0;
	ts_client *c = NULL;
	int r, rc = 1;

	if (argc < 2 || (argc > 2 && argc != 5)) {
		fprintf(stderr, "usage: client_into VAULT <data | client_into VAULT loop unwrap|into N\n");
		return 2;
	}
	if (sodium_init() < 0 || (r = ts_client_open(&c, NULL)) < 0) {
		fprintf(stderr, "client_into: cannot start\n");
		return 1;
	}
	if (argc == 5) {
		rc = loop(c, argv[1], argv[3], atol(argv[4]));
		ts_client_free(c);
		return rc;
	}
	in_len = fread(in, 1, sizeof(in), stdin);
	if (in_len == 0 || (buf = sodium_malloc(in_len + 16)) == NULL) {
		fprintf(stderr, "client_into: no input\n");
		goto out;
	}
	if ((r = ts_wrap(c, argv[1], ctx, 1, in, in_len, &blob, &blob_len)) < 0 ||
	    (r = ts_unwrap(c, argv[1], ctx, 1, blob, blob_len, &pt, &pt_len)) < 0) {
		fail(c, "wrap/unwrap", r);
		goto out;
	}

	memset(buf, 0xAA, in_len + 16);
	if ((r = ts_unwrap_into(c, argv[1], ctx, 1, blob, blob_len, buf, in_len + 16, &len)) < 0) {
		fail(c, "unwrap_into", r);
		goto out;
	}
	if (len != pt_len || memcmp(buf, pt, len) != 0 || memcmp(buf, in, in_len) != 0 || !all(buf + len, 16, 0xAA)) {
		fprintf(stderr, "client_into: unwrap_into gave %zu other bytes than ts_unwrap's %zu\n", len, pt_len);
		goto out;
	}
	printf("ok: the same %zu bytes as ts_unwrap, nothing written past them\n", len);

	memset(buf, 0xAA, in_len + 16);
	r = ts_unwrap_into(c, argv[1], ctx, 1, blob, blob_len, buf, in_len - 1, &len);
	if (r != -TS_E_LIMIT || len != in_len || !all(buf, in_len - 1, 0)) {
		fprintf(stderr, "client_into: a buffer one byte short: %d (%s), length %zu, wiped %d\n", r,
		        ts_client_last_error(c), len, all(buf, in_len - 1, 0));
		goto out;
	}
	printf("ok: a buffer one byte short: LimitExceeded (%s), length %zu given, buffer wiped\n",
	       ts_client_last_error(c), len);

	memset(buf, 0xAA, in_len + 16);
	r = ts_unwrap_into(c, argv[1], other_ctx, 1, blob, blob_len, buf, in_len + 16, &len);
	if (r != -TS_E_CONTEXT_MISMATCH || len != 0 || !all(buf, in_len + 16, 0)) {
		fprintf(stderr, "client_into: another context: %d, wiped %d\n", r, all(buf, in_len + 16, 0));
		goto out;
	}
	printf("ok: another context: %s, buffer wiped\n", ts_error_dbus_name(r));

	blob[blob_len - 1] ^= 1;
	memset(buf, 0xAA, in_len + 16);
	r = ts_unwrap_into(c, argv[1], ctx, 1, blob, blob_len, buf, in_len + 16, &len);
	if (r != -TS_E_BAD_BLOB || len != 0 || !all(buf, in_len + 16, 0)) {
		fprintf(stderr, "client_into: a flipped byte: %d, wiped %d\n", r, all(buf, in_len + 16, 0));
		goto out;
	}
	printf("ok: a flipped blob byte: %s, buffer wiped\n", ts_error_dbus_name(r));
	rc = 0;
out:
	ts_secret_free(pt, pt_len);
	sodium_free(buf);
	free(blob);
	ts_client_free(c);
	return rc;
}
