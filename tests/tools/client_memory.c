/* client_memory.c — test tool: a long-lived libtokenseal client that unlocks, moves a known data key through every data call, then stays alive for a memory scan. */
/*
 *   client_memory VAULT PIN_FILE RECOVERY_KEY_FILE PATTERN_FILE N [keep]
 *
 * Unlocks VAULT with the recovery key, locks it, unlocks it with the PIN
 * (its token protector), then N times: Wrap(pattern) (contexts of growing
 * size), Unwrap, Wrap and Unwrap of the pattern plus 3 bytes, Rewrap,
 * Unwrap, UnwrapBatch of 8 blobs, the same batch with its last blob under
 * another context (refused after 7 keys), RewrapBatch, GenerateDataKey;
 * every answer is checked. The secrets are read from the files into
 * secure memory (never through stdio) and wiped when done. Then
 * it prints "ready" and waits until stdin closes: the scan of this process
 * (tests/tools/core_memscan) must find no copy of any of them. Exit 0, or 1
 * with a message. With "keep" it leaves one copy of the pattern in its heap
 * on purpose: the scanner's control.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "tokenseal.h"
#include "../../cli/lib/client-internal.h"

#define PATTERN_BYTES 32
#define BATCH 8

static void die(ts_client *c, const char *what)
{
	fprintf(stderr, "client_memory: %s: %s\n", what, c ? ts_client_last_error(c) : strerror(errno));
	exit(1);
}

/* The file's bytes (a trailing newline stripped) in secure memory. */
static uint8_t *read_secret(const char *path, size_t *ret_len)
{
	uint8_t *b = sodium_malloc(1024);
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (!b || fd < 0)
		die(NULL, path);
	while ((n = read(fd, b + len, 1024 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n < 0 || len == 0 || len == 1024)
		die(NULL, path);
	if (b[len - 1] == '\n')
		b[--len] = 0;
	*ret_len = len;
	return b;
}

static void check_pt(const uint8_t *pt, size_t len, const uint8_t *want, const char *what)
{
	if (len != PATTERN_BYTES || sodium_memcmp(pt, want, PATTERN_BYTES) != 0) {
		fprintf(stderr, "client_memory: %s gave a wrong plaintext\n", what);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	uint8_t *pin, *rk, *hex, *pattern, *longer, *kept = NULL;
	size_t pin_len, rk_len, hex_len, bin_len = 0;
	ts_client *c = NULL;
	unsigned needed = 0;
	char ctxval[200], line[16];
	int n;

	if (argc < 6 || argc > 7 || (n = atoi(argv[5])) <= 0 || (argc == 7 && strcmp(argv[6], "keep") != 0)) {
		fprintf(stderr, "usage: client_memory VAULT PIN_FILE RECOVERY_KEY_FILE PATTERN_FILE N [keep]\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	pin = read_secret(argv[2], &pin_len);
	rk = read_secret(argv[3], &rk_len);
	hex = read_secret(argv[4], &hex_len);
	if ((pattern = sodium_malloc(PATTERN_BYTES)) == NULL ||
	    sodium_hex2bin(pattern, PATTERN_BYTES, (char *)hex, hex_len, NULL, &bin_len, NULL) < 0 ||
	    bin_len != PATTERN_BYTES)
		die(NULL, "the pattern file must hold 32 bytes in hex");
	sodium_free(hex);
	if ((longer = sodium_malloc(PATTERN_BYTES + 3)) == NULL)
		die(NULL, "sodium_malloc");
	memcpy(longer, pattern, PATTERN_BYTES);
	memcpy(longer + PATTERN_BYTES, "end", 3);
	if (ts_client_open(&c, NULL) < 0)
		die(c, "connect");

	if (ts_client_unlock(c, argv[1], "recovery", rk, rk_len, NULL, NULL, &needed) < 0 || needed)
		die(c, "Unlock with the recovery key");
	if (ts_client_lock(c, argv[1]) < 0)
		die(c, "Lock");
	if (ts_client_unlock(c, argv[1], "pkcs11", pin, pin_len, NULL, NULL, &needed) < 0 || needed)
		die(c, "Unlock with the PIN");
	sodium_free(pin);
	sodium_free(rk);

	for (int i = 0; i < n; i++) {
		uint8_t *blob = NULL, *blob2 = NULL, *blob3 = NULL, *pt = NULL, *gdk = NULL, *gblob = NULL;
		uint8_t **pts = NULL, **nblobs = NULL;
		const uint8_t *blobs[BATCH];
		size_t blob_len, blob2_len, blob3_len, pt_len, gblob_len, lens[BATCH], *pt_lens = NULL, *nb_lens = NULL;
		ts_kv ctx[1], other[1] = { { "memscan", "other" } };

		/* Contexts from 1 to ~190 bytes: requests of different sizes around the plaintext. */
		snprintf(ctxval, sizeof(ctxval), "%0*d", 1 + (i * 37) % 190, i);
		ctx[0] = (ts_kv){ "memscan", ctxval };
		if (ts_wrap(c, argv[1], ctx, 1, pattern, PATTERN_BYTES, &blob, &blob_len) < 0)
			die(c, "Wrap");
		if (ts_unwrap(c, argv[1], ctx, 1, blob, blob_len, &pt, &pt_len) < 0)
			die(c, "Unwrap");
		check_pt(pt, pt_len, pattern, "Unwrap");
		ts_secret_free(pt, pt_len);
		/* The pattern and 3 more bytes: an array whose length is not a multiple of 4 (padding follows it). */
		if (ts_wrap(c, argv[1], ctx, 1, longer, PATTERN_BYTES + 3, &blob3, &blob3_len) < 0)
			die(c, "Wrap of 35 bytes");
		if (ts_unwrap(c, argv[1], ctx, 1, blob3, blob3_len, &pt, &pt_len) < 0)
			die(c, "Unwrap of 35 bytes");
		if (pt_len != PATTERN_BYTES + 3 || sodium_memcmp(pt, longer, PATTERN_BYTES + 3) != 0)
			die(NULL, "Unwrap of 35 bytes gave a wrong plaintext");
		ts_secret_free(pt, pt_len);
		free(blob3);
		blob3 = NULL;
		if (ts_rewrap(c, argv[1], ctx, 1, blob, blob_len, &blob2, &blob2_len) < 0)
			die(c, "Rewrap");
		if (ts_unwrap(c, argv[1], ctx, 1, blob2, blob2_len, &pt, &pt_len) < 0)
			die(c, "Unwrap after Rewrap");
		check_pt(pt, pt_len, pattern, "Unwrap after Rewrap");
		ts_secret_free(pt, pt_len);
		for (int j = 0; j < BATCH; j++) {
			blobs[j] = j % 2 ? blob2 : blob;
			lens[j] = j % 2 ? blob2_len : blob_len;
		}
		if (ts_client_unwrap_batch(c, argv[1], ctx, 1, blobs, lens, BATCH, &pts, &pt_lens) < 0)
			die(c, "UnwrapBatch");
		for (int j = 0; j < BATCH; j++) {
			check_pt(pts[j], pt_lens[j], pattern, "UnwrapBatch");
			ts_secret_free(pts[j], pt_lens[j]);
		}
		free(pts);
		free(pt_lens);
		/* A batch whose last item fails: the daemon drops a reply already holding 7 keys. */
		if (ts_wrap(c, argv[1], other, 1, pattern, PATTERN_BYTES, &blob3, &blob3_len) < 0)
			die(c, "Wrap under another context");
		blobs[BATCH - 1] = blob3;
		lens[BATCH - 1] = blob3_len;
		if (ts_client_unwrap_batch(c, argv[1], ctx, 1, blobs, lens, BATCH, &pts, &pt_lens) >= 0) {
			fprintf(stderr, "client_memory: a batch with a blob of another context unwrapped\n");
			return 1;
		}
		blobs[BATCH - 1] = blob2;
		lens[BATCH - 1] = blob2_len;
		if (ts_client_rewrap_batch(c, argv[1], ctx, 1, blobs, lens, BATCH, &nblobs, &nb_lens) < 0)
			die(c, "RewrapBatch");
		for (int j = 0; j < BATCH; j++)
			free(nblobs[j]);
		free(nblobs);
		free(nb_lens);
		if (ts_generate_data_key(c, argv[1], ctx, 1, PATTERN_BYTES, &gdk, &gblob, &gblob_len) < 0)
			die(c, "GenerateDataKey");
		ts_secret_free(gdk, PATTERN_BYTES);
		free(gblob);
		free(blob);
		free(blob2);
		free(blob3);
	}
	if (argc == 7 && (kept = malloc(PATTERN_BYTES)) != NULL) {
		memcpy(kept, pattern, PATTERN_BYTES);
		__asm__ volatile("" : : "r"(kept) : "memory");   /* the copy is the point: keep the store */
	}
	sodium_free(pattern);
	sodium_free(longer);
	printf("ready\n");
	fflush(stdout);
	/* Stay alive, connection open, until the test has scanned this process. */
	while (read(0, line, sizeof(line)) > 0)
		;
	ts_client_free(c);
	free(kept);
	return 0;
}
