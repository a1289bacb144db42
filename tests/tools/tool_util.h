/* tool_util.h — what the TYPE_check tools share: file I/O, secrets read into secure memory, fact lines, the unlock timer. */
#ifndef TS_TOOL_UTIL_H
#define TS_TOOL_UTIL_H

/*
 * Header-only (static inline): the Makefile builds every .c file of tests/tools
 * into a program of its own, so shared code cannot be a .c file there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/buf.h"
#include "core/vault.h"
#include "protectors/protector.h"

/* A PIN or recovery key file larger than this is refused unread. */
#define TOOL_SECRET_FILE_MAX 4096

/* Read a whole file of public bytes (params, a PEM key) into out. 0, or -1 with errno set. */
static inline int tool_read_file(const char *path, ts_buf *out) {
	uint8_t tmp[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;

	if (fd < 0)
		return -1;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		if (ts_buf_append(out, tmp, (size_t)n) < 0) {
			errno = ENOMEM;
			break;
		}
	saved = errno;
	sodium_memzero(tmp, sizeof(tmp));
	close(fd);
	errno = saved;
	return n == 0 ? 0 : -1;
}

/*
 * Read a secret file (a PIN, a recovery key) straight into secure memory,
 * without trailing newlines. On success *ret (ts_secure_free) holds *ret_len
 * bytes and a NUL after them; an empty file gives an empty, non-NULL secret.
 * -1 with errno set on failure (EFBIG: more than TOOL_SECRET_FILE_MAX bytes).
 */
static inline int tool_read_secret_file(const char *path, uint8_t **ret, size_t *ret_len) {
	uint8_t *s = NULL;
	size_t len = 0;
	ssize_t n = -1;
	int fd, saved;

	*ret = NULL;
	*ret_len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	/* One byte more than the limit, to tell a file at the limit from a larger one; one for the NUL. */
	if ((s = ts_secure_alloc(TOOL_SECRET_FILE_MAX + 2)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	while (len <= TOOL_SECRET_FILE_MAX) {
		n = read(fd, s + len, TOOL_SECRET_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	saved = errno;
	close(fd);
	if (n < 0 || len > TOOL_SECRET_FILE_MAX) {
		ts_secure_free(s);
		errno = n < 0 ? saved : EFBIG;
		return -1;
	}
	while (len && s[len - 1] == '\n')
		s[--len] = 0;
	*ret = s;
	*ret_len = len;
	return 0;
}

/* Write b to path (created or truncated). 0, or -1. */
static inline int tool_write_file(const char *path, const uint8_t *b, size_t len) {
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(b, 1, len, f) != len) {
		if (f)
			fclose(f);
		return -1;
	}
	return fclose(f);
}

/* The describe() callback: one "fact KEY=VALUE" line per public fact. */
static inline int tool_print_fact(void *ud, const char *k, const char *v) {
	(void)ud;
	printf("fact %s=%s\n", k, v);
	return 0;
}

/* "kek <BLAKE2b-128 of the KEK>": lets a test compare KEKs without ever printing one. */
static inline void tool_print_kek(const uint8_t *kek) {
	uint8_t h[16];
	char hex[33];

	crypto_generichash(h, sizeof(h), kek, TS_KEY_BYTES, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	printf("kek %s\n", hex);
}

static inline int tool_cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * `TYPE_check bench-unlock`: the in-process baseline of the unlock benchmark
 * (tests/bench). Reads the vault file vault_path as the daemon stores it and
 * takes the params of protector_id from it; req->vault_id and vault_name are
 * set here from the file. One untimed call first, whose KEK must open the
 * vault (the same token and credential the daemon used), then count timed
 * calls of ops->unlock, each of which must give that KEK again.
 * Prints "sample_us X" per call, then "median_us X" and "p99_us X".
 * step: print "ready" after the first call, then wait for a line on stdin
 * before each timed call, so that a driver (tests/bench) can take turns
 * with its own calls and both see the same load on the machine.
 * Returns 0 or a negative TS_E_* (req->err may say more).
 */
static inline int tool_bench_unlock(const ts_protector_ops *ops, ts_protector_request *req, const char *vault_path,
                                    const char *protector_id, long count, int step) {
	ts_buf file = { 0 };
	ts_vault *v = NULL;
	const ts_protector_record *p;
	uint8_t *kek = NULL, *first = NULL;
	uint64_t *t = NULL;
	struct timespec a, b;
	char go[16];
	int r;

	if (count < 1 || count > 100000)
		return -TS_E_INVALID_ARGS;
	if (tool_read_file(vault_path, &file) < 0) {
		perror(vault_path);
		r = -TS_E_IO;
		goto out;
	}
	if ((r = ts_vault_parse(file.data, file.len, &v)) < 0)
		goto out;
	if ((p = ts_vault_find_protector(v, protector_id)) == NULL || strcmp(p->type, ops->type) != 0) {
		r = -TS_E_NO_SUCH_PROTECTOR;
		goto out;
	}
	req->vault_id = v->id;
	req->vault_name = v->name;
	if (!(kek = ts_secure_alloc(TS_KEY_BYTES)) || !(first = ts_secure_alloc(TS_KEY_BYTES)) ||
	    !(t = calloc((size_t)count, sizeof(*t)))) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if ((r = ops->unlock(req, p->params, p->params_len, first)) < 0)
		goto out;
	if ((r = ts_vault_unlock(v, protector_id, first)) < 0)
		goto out;
	ts_vault_lock(v);
	if (step) {
		printf("ready\n");
		fflush(stdout);
	}
	for (long i = 0; i < count; i++) {
		if (step && !fgets(go, sizeof(go), stdin)) {
			r = -TS_E_IO;
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &a);
		r = ops->unlock(req, p->params, p->params_len, kek);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (r < 0)
			goto out;
		if (sodium_memcmp(kek, first, TS_KEY_BYTES) != 0) {
			r = -TS_E_AUTH_FAILED;
			goto out;
		}
		t[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
		printf("sample_us %.1f\n", (double)t[i] / 1000.0);
		if (step)
			fflush(stdout);
	}
	qsort(t, (size_t)count, sizeof(*t), tool_cmp_u64);
	printf("median_us %.1f\n", (double)t[(size_t)(0.5 * (double)(count - 1) + 0.5)] / 1000.0);
	printf("p99_us %.1f\n", (double)t[(size_t)(0.99 * (double)(count - 1) + 0.5)] / 1000.0);
	r = 0;
out:
	req->vault_id = NULL;   /* they pointed into v */
	req->vault_name = NULL;
	free(t);
	ts_secure_free(kek);
	ts_secure_free(first);
	ts_vault_free(v);
	ts_buf_free(&file);
	return r;
}

#endif
