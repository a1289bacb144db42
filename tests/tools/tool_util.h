/* tool_util.h — what the TYPE_check tools share: file I/O, secrets read into secure memory, fact lines. */
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
#include <unistd.h>

#include <sodium.h>

#include "core/buf.h"
#include "tokenseal.h"

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

#endif
