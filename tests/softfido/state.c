/* state.c — softfido's persistent state: a small text file, rewritten atomically on every change. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "softfido.h"

/*
 * Format, one "name value" per line, every line required:
 *   softfido-state 1
 *   aaguid <32 hex>
 *   master <64 hex>
 *   pin <32 hex> | pin -
 *   retries <0..8>
 *   counter <decimal>
 * It is a test tool's state: the master key sits in a 0600 file, which is as
 * much protection as a software authenticator can give it.
 */

#define STATE_MAX 1024

static int unhex(const char *s, size_t slen, uint8_t *out, size_t n) {
	if (slen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char c = s[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return -1;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void tohex(char *out, const uint8_t *p, size_t n) {
	static const char hx[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[p[i] >> 4];
		out[2 * i + 1] = hx[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int parse_uint(const char *s, size_t n, unsigned long max, unsigned long *ret) {
	unsigned long v = 0;

	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*ret = v;
	return 0;
}

/* Parses the file contents (p, n); fills *st. */
static int parse(sf_state *st, const char *p, size_t n) {
	enum { F_MAGIC = 1, F_AAGUID = 2, F_MASTER = 4, F_PIN = 8, F_RETRIES = 16, F_COUNTER = 32, F_ALL = 63 };
	unsigned seen = 0;
	const char *end = p + n;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *sp, *val;
		size_t klen, vlen;
		unsigned long v;

		if (!nl)
			return -1;
		if (!(sp = memchr(p, ' ', (size_t)(nl - p))))
			return -1;
		klen = (size_t)(sp - p);
		val = sp + 1;
		vlen = (size_t)(nl - val);
#define KEY(s) (klen == strlen(s) && memcmp(p, s, klen) == 0)
		if (KEY("softfido-state")) {
			if (vlen != 1 || val[0] != '1')
				return -1;
			seen |= F_MAGIC;
		} else if (KEY("aaguid")) {
			if (unhex(val, vlen, st->aaguid, 16) < 0)
				return -1;
			seen |= F_AAGUID;
		} else if (KEY("master")) {
			if (unhex(val, vlen, st->master, 32) < 0)
				return -1;
			seen |= F_MASTER;
		} else if (KEY("pin")) {
			if (vlen == 1 && val[0] == '-')
				st->pin_set = 0;
			else if (unhex(val, vlen, st->pin_hash, 16) == 0)
				st->pin_set = 1;
			else
				return -1;
			seen |= F_PIN;
		} else if (KEY("retries")) {
			if (parse_uint(val, vlen, SF_PIN_RETRIES_MAX, &v) < 0)
				return -1;
			st->pin_retries = (unsigned)v;
			seen |= F_RETRIES;
		} else if (KEY("counter")) {
			if (parse_uint(val, vlen, 0xffffffffUL, &v) < 0)
				return -1;
			st->sign_count = (uint32_t)v;
			seen |= F_COUNTER;
		} else {
			return -1;
		}
#undef KEY
		p = nl + 1;
	}
	return seen == F_ALL ? 0 : -1;
}

int sf_state_save(const sf_state *st, const char *path) {
	char buf[STATE_MAX], hex_master[65], hex_aaguid[33], hex_pin[33];
	char *tmp = NULL;
	int fd = -1, len, r = -1;

	tohex(hex_master, st->master, 32);
	tohex(hex_aaguid, st->aaguid, 16);
	if (st->pin_set)
		tohex(hex_pin, st->pin_hash, 16);
	else
		strcpy(hex_pin, "-");
	len = snprintf(buf, sizeof(buf), "softfido-state 1\naaguid %s\nmaster %s\npin %s\nretries %u\ncounter %u\n",
	               hex_aaguid, hex_master, hex_pin, st->pin_retries, (unsigned)st->sign_count);
	if (len < 0 || (size_t)len >= sizeof(buf))
		goto out;
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		tmp = NULL;
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		goto out;
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0)
		goto out;
	if (close(fd) < 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto out;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && tmp)
		unlink(tmp);
	free(tmp);
	sf_wipe(buf, sizeof(buf));
	sf_wipe(hex_master, sizeof(hex_master));
	return r;
}

int sf_state_load(sf_state *st, const char *path, const uint8_t *aaguid) {
	char buf[STATE_MAX + 1];
	ssize_t n;
	int fd, r;

	memset(st, 0, sizeof(*st));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			return -1;
		if (sf_random(st->master, sizeof(st->master)) < 0)
			return -1;
		if (aaguid)
			memcpy(st->aaguid, aaguid, 16);
		else if (sf_random(st->aaguid, sizeof(st->aaguid)) < 0)
			return -1;
		st->pin_retries = SF_PIN_RETRIES_MAX;
		return sf_state_save(st, path);
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	r = (n > 0 && n <= STATE_MAX) ? parse(st, buf, (size_t)n) : -1;
	sf_wipe(buf, sizeof(buf));
	if (r < 0)
		return -1;
	if (aaguid && memcmp(st->aaguid, aaguid, 16) != 0) {
		memcpy(st->aaguid, aaguid, 16);
		return sf_state_save(st, path);
	}
	return 0;
}
