/* store.c — vault files on disk: atomic replace (temp, fsync, link .bak, rename, fsync dir), bounded reads. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/vault.h"
#include "store.h"

#define VAULT_SUFFIX ".vault"
#define BACKUP_SUFFIX ".vault.bak"
#define TMP_INFIX ".vault.tmp."
#define TMP_RANDOM 6
#define TMP_TRIES 32
#define LIST_MAX 100000

/* [.]NAME SUFFIX, checked to fit: names are at most 64 bytes, so this cannot fail for valid ones. */
static int file_name(char *dst, size_t size, const char *pfx, const char *name, const char *sfx)
{
	int n = snprintf(dst, size, "%s%s%s", pfx, name, sfx);

	return n < 0 || (size_t)n >= size ? -TS_E_INVALID_ARGS : 0;
}

static int open_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -TS_E_NO_SUCH_VAULT : -TS_E_IO;
	return fd;
}

int ts_store_init(const char *dir)
{
	struct stat st;

	if (!dir || !*dir)
		return -TS_E_INVALID_ARGS;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -TS_E_IO;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return -TS_E_IO;
	return 0;
}

int ts_store_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -TS_E_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A fresh ".BASE" INFIX "XXXXXX" name (random suffix) in tmp: ".NAME.vault.tmp.XXXXXX" for a vault's files. */
static int temp_name(char *tmp, size_t size, const char *base, const char *infix)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	char rnd[TMP_RANDOM + 1];
	int k, n;

	for (k = 0; k < TMP_RANDOM; k++)
		rnd[k] = alnum[randombytes_uniform(sizeof(alnum) - 1)];
	rnd[TMP_RANDOM] = '\0';
	n = snprintf(tmp, size, ".%s%s%s", base, infix, rnd);
	return n < 0 || (size_t)n >= size ? -TS_E_INVALID_ARGS : 0;
}

/* Create a temp file (temp_name) in dfd exclusively, never through a symlink; the name goes to tmp. */
static int create_temp(int dfd, const char *base, const char *infix, char *tmp, size_t size)
{
	int i, fd, r;

	for (i = 0; i < TMP_TRIES; i++) {
		if ((r = temp_name(tmp, size, base, infix)) < 0)
			return r;
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -TS_E_IO;
	}
	return -TS_E_IO;
}

/* Hard-link DIR/cur to a fresh temp name (returned in tmp). */
static int link_temp(int dfd, const char *cur, const char *name, char *tmp, size_t size)
{
	int i, r;

	for (i = 0; i < TMP_TRIES; i++) {
		if ((r = temp_name(tmp, size, name, TMP_INFIX)) < 0)
			return r;
		if (linkat(dfd, cur, dfd, tmp, 0) == 0)
			return 0;
		if (errno != EEXIST)
			return -TS_E_IO;
	}
	return -TS_E_IO;
}

/*
 * New contents, complete and on disk under a fresh temp name nobody reads
 * (temp_name, returned in tmp): created, written, fsynced, closed. On
 * failure nothing is left behind.
 */
static int write_temp(int dfd, const char *base, const char *infix, const uint8_t *data, size_t len, char *tmp,
                      size_t size)
{
	int fd, r;

	if ((fd = create_temp(dfd, base, infix, tmp, size)) < 0)
		return fd;
	r = ts_store_write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -TS_E_IO;
	if (close(fd) < 0 && r == 0)
		r = -TS_E_IO;
	if (r < 0)
		unlinkat(dfd, tmp, 0);
	return r;
}

int ts_store_save(const char *dir, const char *name, const uint8_t *data, size_t len)
{
	_cleanup_fd_ int dfd = -1;
	char cur[NAME_MAX + 1], bak[NAME_MAX + 1], tmp[NAME_MAX + 1], baktmp[NAME_MAX + 1];
	int r, have_tmp = 0, have_baktmp = 0, had_cur = 0;
	struct stat st;

	if (!dir || !ts_vault_name_valid(name) || (len && !data))
		return -TS_E_INVALID_ARGS;
	if (len > TS_VAULT_FILE_MAX)
		return -TS_E_LIMIT;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if ((r = file_name(cur, sizeof(cur), "", name, VAULT_SUFFIX)) < 0 ||
	    (r = file_name(bak, sizeof(bak), "", name, BACKUP_SUFFIX)) < 0)
		return r;
	if ((dfd = open_dir(dir)) < 0)
		return dfd == -TS_E_NO_SUCH_VAULT ? -TS_E_IO : dfd;

	/* 1. The new contents, complete and on disk, under a name nobody reads. */
	if ((r = write_temp(dfd, name, TMP_INFIX, data, len, tmp, sizeof(tmp))) < 0)
		goto out;
	have_tmp = 1;

	/*
	 * 2. Keep the previous generation: hard-link the current file to a temp
	 * name and rename that over NAME.vault.bak. NAME.vault itself is never
	 * absent, and a crash here leaves only a temp file that ts_store_list
	 * sweeps away.
	 */
	if (fstatat(dfd, cur, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		had_cur = 1;
		if ((r = link_temp(dfd, cur, name, baktmp, sizeof(baktmp))) < 0)
			goto out;
		have_baktmp = 1;
		if (renameat(dfd, baktmp, dfd, bak) < 0) {
			r = -TS_E_IO;
			goto out;
		}
		have_baktmp = 0;
	} else if (errno != ENOENT) {
		r = -TS_E_IO;
		goto out;
	}

	/* 3. The switch: rename is atomic, NAME.vault is the old or the new file. */
	if (renameat(dfd, tmp, dfd, cur) < 0) {
		r = -TS_E_IO;
		goto out;
	}
	have_tmp = 0;
	/*
	 * 4. Make the renames durable. If that fails the caller goes on with
	 * the old contents, so the file is put back to them (.bak holds them).
	 */
	if (fsync(dfd) < 0) {
		if (!had_cur)
			(void)unlinkat(dfd, cur, 0);
		else if (link_temp(dfd, bak, name, baktmp, sizeof(baktmp)) == 0 &&
		         renameat(dfd, baktmp, dfd, cur) < 0)
			(void)unlinkat(dfd, baktmp, 0);
		(void)fsync(dfd);
		r = -TS_E_IO;
		goto out;
	}
	r = 0;
out:
	if (have_tmp)
		unlinkat(dfd, tmp, 0);
	if (have_baktmp)
		unlinkat(dfd, baktmp, 0);
	return r;
}

/* Read dfd/fn (a regular file, not through a symlink) into out, bounded. */
static int load_at(int dfd, const char *fn, ts_buf *out)
{
	_cleanup_fd_ int fd = -1;
	size_t orig_len, total = 0;
	struct stat st;
	uint8_t *p;
	ssize_t n;
	int r;

	/* O_NOFOLLOW: a symlink planted in the state directory is not followed. */
	if ((fd = openat(dfd, fn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)) < 0)
		return errno == ENOENT ? -TS_E_NO_SUCH_VAULT : -TS_E_IO;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return -TS_E_IO;
	if (st.st_size > (off_t)TS_VAULT_FILE_MAX)
		return -TS_E_LIMIT;

	orig_len = out->len;
	/*
	 * Room for one byte more than fstat saw: a file of ours never changes
	 * after its rename, so more data means someone else is writing it.
	 */
	if ((p = ts_buf_reserve(out, (size_t)st.st_size + 1)) == NULL)
		return -TS_E_NOMEM;
	for (;;) {
		n = read(fd, p + total, (size_t)st.st_size + 1 - total);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -TS_E_IO;
			break;
		}
		if (n == 0) {
			r = 0;
			break;
		}
		total += (size_t)n;
		if (total > (size_t)st.st_size) {
			r = -TS_E_IO;
			break;
		}
	}
	out->len = orig_len + (r == 0 ? total : 0);
	return r;
}

static int load_file(const char *dir, const char *name, const char *sfx, ts_buf *out)
{
	_cleanup_fd_ int dfd = -1;
	char fn[NAME_MAX + 1];
	int r;

	if (!dir || !out || !ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if ((r = file_name(fn, sizeof(fn), "", name, sfx)) < 0)
		return r;
	if ((dfd = open_dir(dir)) < 0)
		return dfd;
	return load_at(dfd, fn, out);
}

static int side_suffix(char *dst, size_t size, const char *suffix)
{
	size_t i, n = suffix ? strlen(suffix) : 0;

	if (n == 0 || n > 16 || strcmp(suffix, "vault") == 0)
		return -TS_E_INVALID_ARGS;
	for (i = 0; i < n; i++)
		if (suffix[i] < 'a' || suffix[i] > 'z')
			return -TS_E_INVALID_ARGS;
	return snprintf(dst, size, ".%s", suffix) < 0 ? -TS_E_INVALID_ARGS : 0;
}

int ts_store_save_side(const char *dir, const char *name, const char *suffix, const uint8_t *data, size_t len)
{
	_cleanup_fd_ int dfd = -1;
	char fn[NAME_MAX + 1], sfx[24];
	int r;

	if (!dir || !ts_vault_name_valid(name) || (len && !data))
		return -TS_E_INVALID_ARGS;
	if (len > TS_STORE_SIDE_MAX)
		return -TS_E_LIMIT;
	if ((r = side_suffix(sfx, sizeof(sfx), suffix)) < 0 || (r = file_name(fn, sizeof(fn), "", name, sfx)) < 0)
		return r;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if ((dfd = open_dir(dir)) < 0)
		return dfd == -TS_E_NO_SUCH_VAULT ? -TS_E_IO : dfd;
	/* The temp file is named like a vault's, so an interrupted write is swept the same way. */
	return ts_store_replace_at(dfd, fn, name, TMP_INFIX, data, len);
}

int ts_store_replace_at(int dfd, const char *fn, const char *base, const char *infix, const void *data, size_t len)
{
	char tmp[NAME_MAX + 1];
	int r;

	/* 1. The new contents under a name nobody reads, 2. the switch (old or new, never neither), 3. durable. */
	if ((r = write_temp(dfd, base, infix, data, len, tmp, sizeof(tmp))) < 0)
		return r;
	if (renameat(dfd, tmp, dfd, fn) < 0) {
		unlinkat(dfd, tmp, 0);
		return -TS_E_IO;
	}
	return fsync(dfd) < 0 ? -TS_E_IO : 0;
}

int ts_store_load_side(const char *dir, const char *name, const char *suffix, ts_buf *out)
{
	_cleanup_fd_ int dfd = -1;
	char fn[NAME_MAX + 1], sfx[24];
	size_t before;
	int r;

	if (!dir || !out || !ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if ((r = side_suffix(sfx, sizeof(sfx), suffix)) < 0 || (r = file_name(fn, sizeof(fn), "", name, sfx)) < 0)
		return r;
	if ((dfd = open_dir(dir)) < 0)
		return dfd;
	before = out->len;
	if ((r = load_at(dfd, fn, out)) < 0)
		return r;
	if (out->len - before > TS_STORE_SIDE_MAX) {
		out->len = before;
		return -TS_E_LIMIT;
	}
	return 0;
}

int ts_store_load(const char *dir, const char *name, ts_buf *out)
{
	return load_file(dir, name, VAULT_SUFFIX, out);
}

int ts_store_load_backup(const char *dir, const char *name, ts_buf *out)
{
	return load_file(dir, name, BACKUP_SUFFIX, out);
}

int ts_store_name_taken(const char *dir, const char *name, int backup)
{
	_cleanup_fd_ int dfd = -1;
	char fn[NAME_MAX + 1];
	struct stat st;
	int r;

	if (!dir || !ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if ((r = file_name(fn, sizeof(fn), "", name, backup ? BACKUP_SUFFIX : VAULT_SUFFIX)) < 0)
		return r;
	if ((dfd = open_dir(dir)) < 0)
		return dfd == -TS_E_NO_SUCH_VAULT ? 0 : dfd;
	if (fstatat(dfd, fn, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : -TS_E_IO;
}

/* ".NAME.vault.tmp.XXXXXX" with a valid NAME: a leftover of an interrupted save. */
static int is_stale_temp(const char *fn)
{
	char name[TS_VAULT_NAME_MAX + 1];
	const char *t;
	size_t nl;

	if (fn[0] != '.' || (t = strstr(fn + 1, TMP_INFIX)) == NULL)
		return 0;
	nl = (size_t)(t - (fn + 1));
	if (nl == 0 || nl > TS_VAULT_NAME_MAX || strlen(t + strlen(TMP_INFIX)) != TMP_RANDOM)
		return 0;
	memcpy(name, fn + 1, nl);
	name[nl] = '\0';
	return ts_vault_name_valid(name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory to list: the DIR and its fd (owned by the DIR). 0 or -TS_E_IO. */
static int dir_open(const char *dir, DIR **ret, int *ret_dfd)
{
	int dfd;

	if ((dfd = open_dir(dir)) < 0)
		return dfd == -TS_E_NO_SUCH_VAULT ? -TS_E_IO : dfd;
	if ((*ret = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -TS_E_IO;
	}
	*ret_dfd = dfd;
	return 0;
}

/*
 * Room for one more element in a listing: arrp points at the array pointer
 * (n of *cap elements, each size bytes), grown by doubling up to LIST_MAX.
 * 0, -TS_E_LIMIT or -TS_E_NOMEM (the array is then unchanged).
 */
static int list_room(void *arrp, size_t n, size_t *cap, size_t size)
{
	void *arr, *grown;
	size_t want;

	if (n < *cap)
		return 0;
	if (*cap >= LIST_MAX)
		return -TS_E_LIMIT;
	want = *cap ? *cap * 2 : 16;
	memcpy(&arr, arrp, sizeof(arr));
	if ((grown = realloc(arr, want * size)) == NULL)
		return -TS_E_NOMEM;
	memcpy(arrp, &grown, sizeof(grown));
	*cap = want;
	return 0;
}

/* The next entry: 1 and *ret, 0 at the end, -TS_E_IO. */
static int dir_next(DIR *d, struct dirent **ret)
{
	errno = 0;
	if ((*ret = readdir(d)) != NULL)
		return 1;
	return errno != 0 ? -TS_E_IO : 0;
}

int ts_store_list(const char *dir, int (*cb)(void *ud, const char *name), void *ud)
{
	char **names = NULL;
	size_t n = 0, cap = 0, i, len;
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	int dfd, r = 0;

	if (!dir || !cb)
		return -TS_E_INVALID_ARGS;
	if ((r = dir_open(dir, &d, &dfd)) < 0)
		return r;
	while ((r = dir_next(d, &de)) > 0) {
		if (is_stale_temp(de->d_name)) {
			/* Not while a save runs: the daemon lists at start-up, under its own lock. */
			unlinkat(dfd, de->d_name, 0);
			continue;
		}
		len = strlen(de->d_name);
		if (len <= strlen(VAULT_SUFFIX) ||
		    strcmp(de->d_name + len - strlen(VAULT_SUFFIX), VAULT_SUFFIX) != 0)
			continue;
		de->d_name[len - strlen(VAULT_SUFFIX)] = '\0';
		if (!ts_vault_name_valid(de->d_name))
			continue;
		/* Only regular files count; a symlink or directory named like a vault does not. */
		de->d_name[len - strlen(VAULT_SUFFIX)] = '.';
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		de->d_name[len - strlen(VAULT_SUFFIX)] = '\0';
		if ((r = list_room(&names, n, &cap, sizeof(*names))) < 0)
			break;
		if ((names[n] = strdup(de->d_name)) == NULL) {
			r = -TS_E_NOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	/* Sorted, so listings are stable whatever order the filesystem keeps. */
	if (r == 0 && n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; r == 0 && i < n; i++)
		if ((r = cb(ud, names[i])) < 0)
			break;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int ts_store_remove(const char *dir, const char *name)
{
	_cleanup_fd_ int dfd = -1;
	char cur[NAME_MAX + 1], bak[NAME_MAX + 1];
	int r;

	if (!dir || !ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if ((r = file_name(cur, sizeof(cur), "", name, VAULT_SUFFIX)) < 0 ||
	    (r = file_name(bak, sizeof(bak), "", name, BACKUP_SUFFIX)) < 0)
		return r;
	if ((dfd = open_dir(dir)) < 0)
		return dfd;
	if (unlinkat(dfd, cur, 0) < 0)
		return errno == ENOENT ? -TS_E_NO_SUCH_VAULT : -TS_E_IO;
	if (unlinkat(dfd, bak, 0) < 0 && errno != ENOENT)
		return -TS_E_IO;
	if (fsync(dfd) < 0)
		return -TS_E_IO;
	return 0;
}

int ts_store_remove_backup(const char *dir, const char *name)
{
	_cleanup_fd_ int dfd = -1;
	char bak[NAME_MAX + 1];
	int r;

	if (!dir || !ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if ((r = file_name(bak, sizeof(bak), "", name, BACKUP_SUFFIX)) < 0)
		return r;
	if ((dfd = open_dir(dir)) < 0)
		return -TS_E_IO;
	if (unlinkat(dfd, bak, 0) < 0)
		return errno == ENOENT ? 0 : -TS_E_IO;
	return fsync(dfd) < 0 ? -TS_E_IO : 0;
}

int ts_store_lock(const char *dir, int *ret_fd)
{
	_cleanup_fd_ int dfd = -1;
	int fd;

	if (!dir || !ret_fd)
		return -TS_E_INVALID_ARGS;
	if ((dfd = open_dir(dir)) < 0)
		return -TS_E_IO;
	if ((fd = openat(dfd, TS_STORE_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return -TS_E_IO;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		return e == EWOULDBLOCK ? -TS_E_BUSY : -TS_E_IO;
	}
	*ret_fd = fd;
	return 0;
}

void ts_store_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* ---- owners' directories ------------------------------------------------- */

int ts_store_owner_dir(const char *state_dir, uint32_t owner, char *buf, size_t size)
{
	int n;

	if (!state_dir || !*state_dir || owner == UINT32_MAX)
		return -TS_E_INVALID_ARGS;
	n = snprintf(buf, size, "%s/%" PRIu32, state_dir, owner);
	return n < 0 || (size_t)n >= size ? -TS_E_INVALID_ARGS : 0;
}

/* A canonical decimal uid: digits, no leading zero (but "0"), below (uid_t)-1. 1 and *ret, or 0. */
static int parse_owner(const char *s, uint32_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (!s[0] || strlen(s) > 10 || (s[0] == '0' && s[1]))
		return 0;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= UINT32_MAX)
		return 0;
	*ret = (uint32_t)v;
	return 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int ts_store_list_owners(const char *state_dir, int (*cb)(void *ud, uint32_t owner), void *ud)
{
	uint32_t *owners = NULL, uid;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	int dfd, r = 0;

	if (!state_dir || !cb)
		return -TS_E_INVALID_ARGS;
	if ((r = dir_open(state_dir, &d, &dfd)) < 0)
		return r;
	while ((r = dir_next(d, &de)) > 0) {
		/* Only real directories named by a uid; a symlink named "1000" is not an owner's directory. */
		if (!parse_owner(de->d_name, &uid) || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if ((r = list_room(&owners, n, &cap, sizeof(*owners))) < 0)
			break;
		owners[n++] = uid;
	}
	closedir(d);
	if (r == 0 && n > 1)
		qsort(owners, n, sizeof(*owners), cmp_u32);
	for (i = 0; r == 0 && i < n; i++)
		if ((r = cb(ud, owners[i])) < 0)
			break;
	free(owners);
	return r;
}

/* Are dfd1/fn and dfd2/fn the same bytes? 1 yes, 0 no, negative TS_E_* when one cannot be read. */
static int same_bytes(int dfd1, int dfd2, const char *fn)
{
	_ts_cleanup_buf_ ts_buf a = { 0 };
	_ts_cleanup_buf_ ts_buf b = { 0 };
	int r;

	if ((r = load_at(dfd1, fn, &a)) < 0 || (r = load_at(dfd2, fn, &b)) < 0)
		return r;
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

int ts_store_adopt(const char *state_dir, const char *name, uint32_t owner)
{
	_cleanup_fd_ int sdfd = -1;
	_cleanup_fd_ int odfd = -1;
	char odir[PATH_MAX], cur[NAME_MAX + 1], bak[NAME_MAX + 1];
	struct stat st;
	int r, bak_moved = 0;

	if (!ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if ((r = ts_store_owner_dir(state_dir, owner, odir, sizeof(odir))) < 0 ||
	    (r = file_name(cur, sizeof(cur), "", name, VAULT_SUFFIX)) < 0 ||
	    (r = file_name(bak, sizeof(bak), "", name, BACKUP_SUFFIX)) < 0)
		return r;
	if ((r = ts_store_init(odir)) < 0)
		return r;
	if ((sdfd = open_dir(state_dir)) < 0 || (odfd = open_dir(odir)) < 0)
		return -TS_E_IO;
	/* A second name for the file first (link never replaces), the old name goes last. */
	if (linkat(sdfd, cur, odfd, cur, 0) < 0) {
		if (errno != EEXIST)
			return -TS_E_IO;
		if ((r = same_bytes(sdfd, odfd, cur)) < 0)
			return r;
		if (r == 0)
			return -TS_E_VAULT_EXISTS;
	}
	if (fstatat(sdfd, bak, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
		if (linkat(sdfd, bak, odfd, bak, 0) == 0)
			bak_moved = 1;
		else if (errno == EEXIST)
			bak_moved = same_bytes(sdfd, odfd, bak) == 1;
		else
			return -TS_E_IO;
	}
	if (fsync(odfd) < 0)
		return -TS_E_IO;
	/* Both names are durable in the owner's directory: now the flat ones may go. */
	if (bak_moved && unlinkat(sdfd, bak, 0) < 0 && errno != ENOENT)
		return -TS_E_IO;
	if (unlinkat(sdfd, cur, 0) < 0 && errno != ENOENT)
		return -TS_E_IO;
	if (fsync(sdfd) < 0)
		return -TS_E_IO;
	return 0;
}
