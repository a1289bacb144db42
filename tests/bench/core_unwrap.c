/* core_unwrap.c — in-process unwrap of 32-byte data keys against the bare AEAD, for callgrind and a keys/s check. */
/*
 *   core_unwrap MODE N
 *       MODE unwrap: N x (ts_blob_parse + ts_vault_unwrap), what the daemon does per
 *                    item of UnwrapBatch and what `make bench` calls in-process;
 *            aead:   N x crypto_aead_xchacha20poly1305_ietf_decrypt of a 32-byte key,
 *                    no AAD (the bare AEAD);
 *            aead-aad: the same with an AAD as long as a blob's (header + context);
 *            batch:  one ts_batch_unwrap of N items on one thread (UnwrapBatch's core);
 *            batch2: the same on two threads;
 *            rebatch, rebatch2: the same with rewrap (RewrapBatch's core);
 *       over 1,000 distinct blobs of one vault, context {app: bench, purpose: latency}
 *       (the bench's). The loop is the function run_MODE, so that
 *         valgrind --tool=callgrind --toggle-collect=run_unwrap core_unwrap unwrap 100000
 *       counts the loop's instructions only; divide by N.
 *   core_unwrap rate SECONDS
 *       keys/s of each mode, taking turns in 20 rounds (wall clock), and of
 *       ts_batch_unwrap over batches of 10,000 on one thread and on two
 *       (daemon/batch_unwrap.c, UnwrapBatch's core).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "batch_unwrap.h"
#include "core/blob.h"
#include "core/vault.h"

#define N_BLOBS 1000
#define KEY_LEN 32

static const ts_kv ctx[2] = { { "app", "bench" }, { "purpose", "latency" } };

struct fixture {
	ts_vault *v;
	uint8_t *blobs;       /* N_BLOBS x blob_len */
	size_t blob_len;
	uint8_t *aead_ct;     /* N_BLOBS x (KEY_LEN + tag), nonces in aead_nonce */
	uint8_t *aead_nonce;
	uint8_t *aead_key;    /* secure memory */
	uint8_t aad[128];
	size_t aad_len;
	uint8_t *pt;          /* secure memory */
};

static void die(const char *what)
{
	fprintf(stderr, "core_unwrap: %s\n", what);
	exit(1);
}

static void setup(struct fixture *f)
{
	ts_buf b = { 0 };
	uint8_t key[KEY_LEN];
	size_t i;

	if (sodium_init() < 0)
		die("sodium_init");
	if (ts_vault_create(&f->v, "bench-core", 0, (uint64_t)time(NULL)) < 0)
		die("ts_vault_create");
	randombytes_buf(key, sizeof(key));
	for (i = 0; i < N_BLOBS; i++) {
		b.len = 0;
		if (ts_vault_wrap(f->v, ctx, 2, key, KEY_LEN, &b) < 0)
			die("ts_vault_wrap");
		if (i == 0) {
			f->blob_len = b.len;
			if ((f->blobs = malloc(N_BLOBS * b.len)) == NULL)
				die("out of memory");
		}
		memcpy(f->blobs + i * f->blob_len, b.data, f->blob_len);
	}
	/* The blob's AAD is header || context: as long as the blob minus ciphertext, plus the context. */
	f->aad_len = TS_BLOB_HEADER_BYTES + 4 + (4 + 3 + 4 + 5) + (4 + 7 + 4 + 7);
	randombytes_buf(f->aad, f->aad_len);
	if ((f->aead_key = sodium_malloc(KEY_LEN)) == NULL || (f->pt = sodium_malloc(TS_PLAINTEXT_MAX)) == NULL ||
	    (f->aead_ct = malloc(N_BLOBS * (KEY_LEN + TS_BLOB_TAG_BYTES))) == NULL ||
	    (f->aead_nonce = malloc(N_BLOBS * TS_BLOB_NONCE_BYTES)) == NULL)
		die("out of memory");
	randombytes_buf(f->aead_key, KEY_LEN);
	ts_buf_free(&b);
	sodium_memzero(key, sizeof(key));
}

/* Bare ciphertexts, with or without the AAD (the AAD is part of the tag). */
static void setup_aead(struct fixture *f, int with_aad)
{
	size_t i;

	for (i = 0; i < N_BLOBS; i++) {
		uint8_t *n = f->aead_nonce + i * TS_BLOB_NONCE_BYTES;

		randombytes_buf(n, TS_BLOB_NONCE_BYTES);
		randombytes_buf(f->pt, KEY_LEN);
		crypto_aead_xchacha20poly1305_ietf_encrypt(f->aead_ct + i * (KEY_LEN + TS_BLOB_TAG_BYTES), NULL,
		                                           f->pt, KEY_LEN, with_aad ? f->aad : NULL,
		                                           with_aad ? f->aad_len : 0, NULL, n, f->aead_key);
	}
}

/* noinline: callgrind's --toggle-collect needs the functions by name. */
__attribute__((noinline)) static void run_unwrap(struct fixture *f, size_t n)
{
	ts_blob_view bv;
	size_t i;

	for (i = 0; i < n; i++) {
		const uint8_t *b = f->blobs + (i % N_BLOBS) * f->blob_len;

		if (ts_blob_parse(b, f->blob_len, &bv) < 0 || ts_vault_unwrap(f->v, &bv, ctx, 2, f->pt) < 0)
			die("unwrap failed");
		sodium_memzero(f->pt, bv.plaintext_len);
	}
}

static inline __attribute__((always_inline)) void run_aead_common(struct fixture *f, size_t n, const uint8_t *aad, size_t aad_len)
{
	size_t i;

	for (i = 0; i < n; i++) {
		size_t k = i % N_BLOBS;

		if (crypto_aead_xchacha20poly1305_ietf_decrypt(f->pt, NULL, NULL,
		                                               f->aead_ct + k * (KEY_LEN + TS_BLOB_TAG_BYTES),
		                                               KEY_LEN + TS_BLOB_TAG_BYTES, aad, aad_len,
		                                               f->aead_nonce + k * TS_BLOB_NONCE_BYTES,
		                                               f->aead_key) != 0)
			die("bare AEAD failed");
		sodium_memzero(f->pt, KEY_LEN);
	}
}

__attribute__((noinline)) static void run_aead(struct fixture *f, size_t n)
{
	run_aead_common(f, n, NULL, 0);
}

__attribute__((noinline)) static void run_aead_aad(struct fixture *f, size_t n)
{
	run_aead_common(f, n, f->aad, f->aad_len);
}

/* UnwrapBatch's part in the daemon without the bus: ts_batch_unwrap over n items (the blobs repeated). */
static int emit_nothing(void *userdata, size_t idx, const uint8_t *pt, size_t pt_len)
{
	(void)userdata;
	(void)idx;
	(void)pt;
	(void)pt_len;
	return 0;
}

__attribute__((noinline)) static void run_batch(struct fixture *f, size_t n, int parallel, int rewrap)
{
	static ts_batch_item *items;
	static size_t have;
	size_t i, idx;
	int ef;

	if (have < n) {
		free(items);
		if ((items = calloc(n, sizeof(*items))) == NULL)
			die("out of memory");
		have = n;
	}
	for (i = 0; i < n; i++)
		items[i] = (ts_batch_item){ f->blobs + (i % N_BLOBS) * f->blob_len, f->blob_len };
	if (ts_batch_unwrap(f->v, ctx, 2, items, n, parallel, rewrap, emit_nothing, NULL, &idx, &ef) < 0)
		die("batch unwrap failed");
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct fixture f = { 0 };
	size_t n;

	if (argc != 3)
		die("usage: core_unwrap unwrap|aead|aead-aad|batch|batch2|rebatch|rebatch2 N | core_unwrap rate SECONDS");
	setup(&f);
	if (strcmp(argv[1], "unwrap") == 0) {
		n = strtoul(argv[2], NULL, 10);
		run_unwrap(&f, n);
	} else if (strcmp(argv[1], "aead") == 0 || strcmp(argv[1], "aead-aad") == 0) {
		int aad = argv[1][4] != '\0';

		n = strtoul(argv[2], NULL, 10);
		setup_aead(&f, aad);
		if (aad)
			run_aead_aad(&f, n);
		else
			run_aead(&f, n);
	} else if (strcmp(argv[1], "batch") == 0 || strcmp(argv[1], "batch2") == 0 ||
	           strcmp(argv[1], "rebatch") == 0 || strcmp(argv[1], "rebatch2") == 0) {
		/* One ts_batch_unwrap of N items on one thread, or two (callgrind --separate-threads=yes: each's part). */
		int re = argv[1][0] == 'r';

		run_batch(&f, strtoul(argv[2], NULL, 10), argv[1][re ? 7 : 5] == '2', re);
	} else if (strcmp(argv[1], "rate") == 0) {
		/* Rounds taking turns, so a busy phase of the machine hits every mode alike. */
		static const char *const names[5] = { "unwrap", "aead", "aead-aad", "batch-1t", "batch-2t" };
		const double total = strtod(argv[2], NULL);
		const size_t chunk = 10000, rounds = 20;
		double r[5][20], t0;
		size_t k, m;

		for (k = 0; k < rounds; k++)
			for (m = 0; m < 5; m++) {
				size_t done = 0;

				if (m == 1 || m == 2)
					setup_aead(&f, m == 2);
				t0 = now_s();
				do {
					if (m == 0)
						run_unwrap(&f, chunk);
					else if (m == 1)
						run_aead(&f, chunk);
					else if (m == 2)
						run_aead_aad(&f, chunk);
					else
						run_batch(&f, chunk, m == 4, 0);
					done += chunk;
				} while (now_s() - t0 < total / (5.0 * (double)rounds));
				r[m][k] = (double)done / (now_s() - t0);
			}
		for (m = 0; m < 5; m++)
			qsort(r[m], rounds, sizeof(double), cmp_double);
		/* Median of the rounds, and the spread. */
		for (m = 0; m < 5; m++)
			printf("%-9s %10.0f keys/s (rounds %.0f..%.0f)  median %.2f x bare AEAD\n", names[m],
			       r[m][rounds / 2], r[m][0], r[m][rounds - 1], r[m][rounds / 2] / r[1][rounds / 2]);
	} else
		die("unknown mode");
	ts_vault_free(f.v);
	sodium_free(f.aead_key);
	sodium_free(f.pt);
	free(f.blobs);
	free(f.aead_ct);
	free(f.aead_nonce);
	return 0;
}
