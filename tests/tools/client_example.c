/* client_example.c — the libtokenseal API in a few lines: wrap stdin's bytes, unwrap them, check they match. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenseal.h"

/*
 * Usage: client_example VAULT [CONTEXT_VALUE]
 * Reads up to 4 KiB from stdin, wraps it in VAULT with context {app: VALUE}
 * (default "example"), prints the blob's text form, unwraps it and compares.
 * Exits with the positive TS_E_* code of the first failure (so a test can
 * tell Locked from AccessDenied), 0 on success.
 */
int main(int argc, char **argv)
{
	ts_kv ctx[] = { { "app", argc > 2 ? argv[2] : "example" } };
	uint8_t in[4096], *blob = NULL, *pt = NULL;
	size_t in_len, blob_len = 0, pt_len = 0;
	ts_client *c = NULL;
	char *text = NULL;
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: client_example VAULT [CONTEXT_VALUE] <data\n");
		return 2;
	}
	in_len = fread(in, 1, sizeof(in), stdin);

	if ((r = ts_client_open(&c, NULL)) < 0) {
		fprintf(stderr, "client_example: open: %s\n", ts_strerror(r));
		return -r;
	}
	if ((r = ts_wrap(c, argv[1], ctx, 1, in, in_len, &blob, &blob_len)) < 0 ||
	    (r = ts_blob_encode_text(blob, blob_len, &text)) < 0 ||
	    (r = ts_unwrap(c, argv[1], ctx, 1, blob, blob_len, &pt, &pt_len)) < 0) {
		fprintf(stderr, "client_example: %s [%s]\n", ts_client_last_error(c), ts_error_dbus_name(r));
		goto out;
	}
	printf("%s\n", text);
	if (pt_len != in_len || memcmp(pt, in, in_len) != 0) {
		fprintf(stderr, "client_example: round trip changed the data\n");
		r = -TS_E_FAILED;
	}
out:
	ts_secret_free(pt, pt_len);
	free(blob);
	free(text);
	ts_client_free(c);
	return r < 0 ? -r : 0;
}
