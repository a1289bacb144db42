/* anchor.c — generation anchors on disk: STATE/generations/ID, replaced atomically, parsed strictly. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "tokenseal.h"
#include "anchor.h"
#include "store.h"

#define MAGIC "tokenseal-anchor v1\n"
#define ID_HEX (2 * TS_VAULT_ID_BYTES)
#define TMP_INFIX ".tmp."
#define TMP_RANDOM 6 /* ts_store_replace_at's temp names: ".ID.tmp.XXXXXX" */

/* STATE/generations, opened (created first when create is set). An fd, or -TS_E_NO_SUCH_VAULT / -TS_E_IO. */
static int open_anchor_dir(const char *state_dir, int create)
{
	char path[PATH_MAX];
	int n, fd;

	if (!state_dir || !*state_dir)
		return -TS_E_INVALID_ARGS;
	n = snprintf(path, sizeof(path), "%s/" TS_ANCHOR_DIR, state_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -TS_E_INVALID_ARGS;
	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return -TS_E_IO;
	/* O_NOFOLLOW: a symlink planted in place of the directory is not followed. */
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return errno == ENOENT ? -TS_E_NO_SUCH_VAULT : -TS_E_IO;
	return fd;
}

static void id_hex(const uint8_t id[TS_VAULT_ID_BYTES], char out[ID_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < TS_VAULT_ID_BYTES; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 0xf];
	}
	out[ID_HEX] = '\0';
}

/* "KEY DIGITS\n" at *p (no leading zero, at most max): the value, *p moved past it. 0 or -TS_E_CORRUPT. */
static int read_number(const char **p, const char *end, const char *key, uint64_t max, uint64_t *ret)
{
	size_t kl = strlen(key);
	const char *s = *p;
	uint64_t v = 0;

	if ((size_t)(end - s) < kl + 2 || memcmp(s, key, kl) != 0 || s[kl] != ' ')
		return -TS_E_CORRUPT;
	s += kl + 1;
	if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] != '\n'))
		return -TS_E_CORRUPT;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -TS_E_CORRUPT;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (s >= end || *s != '\n')
		return -TS_E_CORRUPT;
	*p = s + 1;
	*ret = v;
	return 0;
}

/* The whole file, hostile: the magic line, generation, owner, name (a valid vault name), nothing else. */
static int parse(const char *b, size_t len, uint64_t *ret_gen)
{
	const char *p = b, *end = b + len, *nl;
	char name[TS_VAULT_NAME_MAX + 1];
	uint64_t gen, owner;

	if (len < strlen(MAGIC) || memcmp(p, MAGIC, strlen(MAGIC)) != 0)
		return -TS_E_CORRUPT;
	p += strlen(MAGIC);
	if (read_number(&p, end, "generation", UINT64_MAX, &gen) < 0 ||
	    read_number(&p, end, "owner", UINT32_MAX - 1, &owner) < 0)
		return -TS_E_CORRUPT;
	if ((size_t)(end - p) < 6 || memcmp(p, "name ", 5) != 0 || (nl = memchr(p, '\n', (size_t)(end - p))) == NULL ||
	    nl + 1 != end || (size_t)(nl - p - 5) > TS_VAULT_NAME_MAX)
		return -TS_E_CORRUPT;
	memcpy(name, p + 5, (size_t)(nl - p - 5));
	name[nl - p - 5] = '\0';
	if (!ts_vault_name_valid(name) || gen == 0)
		return -TS_E_CORRUPT;
	*ret_gen = gen;
	return 0;
}

int ts_anchor_load(const char *state_dir, const uint8_t id[TS_VAULT_ID_BYTES], uint64_t *ret_gen)
{
	_cleanup_fd_ int dfd = -1;
	_cleanup_fd_ int fd = -1;
	char fn[ID_HEX + 1], b[TS_ANCHOR_FILE_MAX + 1];
	size_t total = 0;
	struct stat st;
	ssize_t n;

	if (!id || !ret_gen)
		return -TS_E_INVALID_ARGS;
	if ((dfd = open_anchor_dir(state_dir, 0)) < 0)
		return dfd;
	id_hex(id, fn);
	if ((fd = openat(dfd, fn, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return errno == ENOENT ? -TS_E_NO_SUCH_VAULT : errno == ELOOP ? -TS_E_CORRUPT : -TS_E_IO;
	if (fstat(fd, &st) < 0)
		return -TS_E_IO;
	if (!S_ISREG(st.st_mode) || st.st_size > TS_ANCHOR_FILE_MAX)
		return -TS_E_CORRUPT;
	while (total < sizeof(b)) {
		n = read(fd, b + total, sizeof(b) - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -TS_E_IO;
		if (n == 0)
			break;
		total += (size_t)n;
	}
	if (total > TS_ANCHOR_FILE_MAX)
		return -TS_E_CORRUPT;
	return parse(b, total, ret_gen);
}

int ts_anchor_save(const char *state_dir, const ts_vault *v, uint64_t gen)
{
	_cleanup_fd_ int dfd = -1;
	char fn[ID_HEX + 1], b[TS_ANCHOR_FILE_MAX + 1];
	int n;

	if (!v || gen == 0 || !ts_vault_name_valid(v->name) || v->owner_uid == UINT32_MAX)
		return -TS_E_INVALID_ARGS;
	n = snprintf(b, sizeof(b), MAGIC "generation %" PRIu64 "\nowner %" PRIu32 "\nname %s\n", gen, v->owner_uid,
	             v->name);
	if (n < 0 || n > TS_ANCHOR_FILE_MAX)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if ((dfd = open_anchor_dir(state_dir, 1)) < 0)
		return dfd == -TS_E_NO_SUCH_VAULT ? -TS_E_IO : dfd;
	id_hex(v->id, fn);
	return ts_store_replace_at(dfd, fn, fn, TMP_INFIX, b, (size_t)n);
}

/* ".ID.tmp.XXXXXX": a leftover of an interrupted ts_anchor_save. */
static int is_stale_temp(const char *fn)
{
	size_t len = strlen(fn);

	if (len != 1 + ID_HEX + strlen(TMP_INFIX) + TMP_RANDOM || fn[0] != '.' ||
	    memcmp(fn + 1 + ID_HEX, TMP_INFIX, strlen(TMP_INFIX)) != 0)
		return 0;
	for (size_t i = 1; i <= ID_HEX; i++)
		if (!((fn[i] >= '0' && fn[i] <= '9') || (fn[i] >= 'a' && fn[i] <= 'f')))
			return 0;
	return 1;
}

void ts_anchor_sweep(const char *state_dir)
{
	struct dirent *de;
	DIR *d;
	int dfd;

	if ((dfd = open_anchor_dir(state_dir, 0)) < 0)
		return;
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (is_stale_temp(de->d_name))
			unlinkat(dfd, de->d_name, 0);
	closedir(d);
}
