/* store.c — one file per collection (docs/SECRETS.md, "Files"): strict parser, atomic replace, mode 0600. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "secrets.h"

#define MAGIC "TSSECRT1"
#define MAGIC_LEN 8
#define FILE_MAX (256u << 20)
#define SUFFIX ".collection"

static void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_close_dir_ __attribute__((cleanup(closep)))

int ss_valid_id(const char *id)
{
	size_t n = 0;

	for (; id[n]; n++)
		if (!((id[n] >= 'a' && id[n] <= 'z') || (id[n] >= 'A' && id[n] <= 'Z') || (id[n] >= '0' && id[n] <= '9') ||
		      id[n] == '_'))
			return 0;
	return n > 0 && n <= SS_ID_MAX;
}

/* ---- reading: every length is checked against what is left ---- */

typedef struct rd {
	const uint8_t *p, *end;
} rd;

static int rd_bytes(rd *r, size_t n, const uint8_t **ret)
{
	if ((size_t)(r->end - r->p) < n)
		return -EBADMSG;
	*ret = r->p;
	r->p += n;
	return 0;
}

static int rd_u32(rd *r, uint32_t *v)
{
	const uint8_t *b;

	if (rd_bytes(r, 4, &b) < 0)
		return -EBADMSG;
	*v = ts_be32(b);
	return 0;
}

static int rd_u64(rd *r, uint64_t *v)
{
	const uint8_t *b;

	if (rd_bytes(r, 8, &b) < 0)
		return -EBADMSG;
	*v = ts_be64(b);
	return 0;
}

static int rd_str(rd *r, char **ret)
{
	const uint8_t *b;
	uint32_t n;

	if (rd_u32(r, &n) < 0 || n > SS_TEXT_MAX || rd_bytes(r, n, &b) < 0 || memchr(b, 0, n))
		return -EBADMSG;
	return (*ret = strndup((const char *)b, n)) ? 0 : -ENOMEM;
}

static int parse_item(rd *r, ss_item *it)
{
	const uint8_t *b;
	uint32_t n, i;
	int e;

	if (rd_u32(r, &it->id) < 0 || it->id == 0 || rd_u64(r, &it->created) < 0 || rd_u64(r, &it->modified) < 0 ||
	    rd_u32(r, &n) < 0 || n > SS_ATTRS_MAX)
		return -EBADMSG;
	if (n && (it->hattrs = calloc(n, sizeof(*it->hattrs))) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if ((e = rd_str(r, &it->hattrs[i].name)) < 0)
			return e;
		it->n_hattrs++;
		if (rd_bytes(r, SS_HASH_BYTES, &b) < 0)
			return -EBADMSG;
		memcpy(it->hattrs[i].hash, b, SS_HASH_BYTES);
	}
	if (rd_bytes(r, SS_NONCE_BYTES, &b) < 0)
		return -EBADMSG;
	memcpy(it->nonce, b, SS_NONCE_BYTES);
	if (rd_u32(r, &n) < 0 || n > SS_SECRET_MAX + 4 * SS_TEXT_MAX * (2 * SS_ATTRS_MAX + 2) || rd_bytes(r, n, &b) < 0)
		return -EBADMSG;
	if ((it->sealed = malloc(n ? n : 1)) == NULL)
		return -ENOMEM;
	memcpy(it->sealed, b, n);
	it->sealed_len = n;
	return 0;
}

int ss_store_parse(const uint8_t *p, size_t len, ss_collection **ret)
{
	rd r = {p, p + len};
	const uint8_t *b;
	ss_collection *c = NULL;
	char *id = NULL, *label = NULL;
	uint32_t n, i;
	int e = -EBADMSG;

	*ret = NULL;
	if (rd_bytes(&r, MAGIC_LEN, &b) < 0 || memcmp(b, MAGIC, MAGIC_LEN) != 0)
		return -EBADMSG;
	if ((e = rd_str(&r, &id)) < 0 || (e = rd_str(&r, &label)) < 0)
		goto out;
	e = -EBADMSG;
	if (!ss_valid_id(id))
		goto out;
	if ((c = ss_collection_new(id, label)) == NULL) {
		e = -ENOMEM;
		goto out;
	}
	if (rd_u64(&r, &c->created) < 0 || rd_u64(&r, &c->modified) < 0 || rd_bytes(&r, SS_SALT_BYTES, &b) < 0)
		goto out;
	memcpy(c->salt, b, SS_SALT_BYTES);
	if (rd_u32(&r, &n) < 0 || n > 4 * TS_PLAINTEXT_MAX || rd_bytes(&r, n, &b) < 0)
		goto out;
	if (n) {
		if ((c->wrapped = malloc(n)) == NULL) {
			e = -ENOMEM;
			goto out;
		}
		memcpy(c->wrapped, b, n);
		c->wrapped_len = n;
	}
	if (rd_u32(&r, &n) < 0 || n > SS_ALIASES_MAX)
		goto out;
	if (n && (c->aliases = calloc(n, sizeof(char *))) == NULL) {
		e = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((e = rd_str(&r, &c->aliases[i])) < 0)
			goto out;
		c->n_aliases++;
		e = -EBADMSG;
		if (!ss_valid_id(c->aliases[i]))
			goto out;
	}
	if (rd_u32(&r, &c->next_id) < 0 || rd_u32(&r, &n) < 0 || n > SS_ITEMS_MAX)
		goto out;
	if (n && (c->items = calloc(n, sizeof(*c->items))) == NULL) {
		e = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		ss_item *it = calloc(1, sizeof(*it));

		if (!it) {
			e = -ENOMEM;
			goto out;
		}
		c->items[c->n_items++] = it;
		if ((e = parse_item(&r, it)) < 0)
			goto out;
		e = -EBADMSG;
		/* Ids are unique and below next_id (else a new item could take an old one's sealed part's id). */
		if (it->id >= c->next_id || ss_collection_item(c, it->id) != it)
			goto out;
	}
	if (r.p != r.end)
		goto out;
	*ret = c;
	c = NULL;
	e = 0;
out:
	free(id);
	free(label);
	ss_collection_free(c);
	return e;
}

static int put_str(ts_buf *b, const char *s)
{
	size_t n = strlen(s);
	int r;

	if ((r = ts_buf_append_be32(b, (uint32_t)n)) < 0)
		return r;
	return ts_buf_append(b, s, n);
}

int ss_store_serialize(const ss_collection *c, uint8_t **ret, size_t *ret_len)
{
	ts_buf b = {0};
	size_t i, j;
	int r = 0;

	r |= ts_buf_append(&b, MAGIC, MAGIC_LEN);
	r |= put_str(&b, c->id);
	r |= put_str(&b, c->label);
	r |= ts_buf_append_be64(&b, c->created);
	r |= ts_buf_append_be64(&b, c->modified);
	r |= ts_buf_append(&b, c->salt, SS_SALT_BYTES);
	r |= ts_buf_append_be32(&b, (uint32_t)c->wrapped_len);
	if (c->wrapped_len)
		r |= ts_buf_append(&b, c->wrapped, c->wrapped_len);
	r |= ts_buf_append_be32(&b, (uint32_t)c->n_aliases);
	for (i = 0; i < c->n_aliases; i++)
		r |= put_str(&b, c->aliases[i]);
	r |= ts_buf_append_be32(&b, c->next_id);
	/* The items that did not open are written back as they were read: a save never drops one. */
	r |= ts_buf_append_be32(&b, (uint32_t)(c->n_items + c->n_bad));
	for (i = 0; i < c->n_items + c->n_bad; i++) {
		const ss_item *it = i < c->n_items ? c->items[i] : c->bad[i - c->n_items];

		r |= ts_buf_append_be32(&b, it->id);
		r |= ts_buf_append_be64(&b, it->created);
		r |= ts_buf_append_be64(&b, it->modified);
		r |= ts_buf_append_be32(&b, (uint32_t)it->n_hattrs);
		for (j = 0; j < it->n_hattrs; j++) {
			r |= put_str(&b, it->hattrs[j].name);
			r |= ts_buf_append(&b, it->hattrs[j].hash, SS_HASH_BYTES);
		}
		r |= ts_buf_append(&b, it->nonce, SS_NONCE_BYTES);
		r |= ts_buf_append_be32(&b, (uint32_t)it->sealed_len);
		r |= ts_buf_append(&b, it->sealed, it->sealed_len);
	}
	if (r != 0) {
		ts_buf_free(&b);
		return -ENOMEM;
	}
	*ret = b.data;
	*ret_len = b.len;
	return 0;
}

static int file_name(const ss_service *s, const char *id, const char *suffix, char **ret)
{
	return asprintf(ret, "%s/%s%s%s", s->dir, id, SUFFIX, suffix) < 0 ? -ENOMEM : 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int ss_store_save(ss_service *s, const ss_collection *c)
{
	char *path = NULL, *tmp = NULL;
	uint8_t *data = NULL;
	size_t len, off = 0;
	int fd = -1, r;

	if ((r = ss_store_serialize(c, &data, &len)) < 0 || (r = file_name(s, c->id, "", &path)) < 0 ||
	    (r = file_name(s, c->id, ".tmp", &tmp)) < 0)
		goto out;
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		r = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = w < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		r = -errno;
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	r = fsync_dir(s->dir);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && tmp)
		(void)unlink(tmp);
	if (r < 0)
		ss_log("cannot write collection %s: %s", c->id, strerror(-r));
	free(data);
	free(path);
	free(tmp);
	return r;
}

int ss_store_remove(ss_service *s, const ss_collection *c)
{
	char *path = NULL;
	int r;

	if ((r = file_name(s, c->id, "", &path)) < 0)
		return r;
	r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	free(path);
	return r < 0 ? r : fsync_dir(s->dir);
}

static int read_file(int dfd, const char *name, uint8_t **ret, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int fd, r = 0;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > FILE_MAX) {
		close(fd);
		return -EBADMSG;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		/* Not ours, or others could have read it: say so, and use it only if it is ours. */
		ss_log("warning: %s has owner %u and mode %04o (expected %u, 0600)", name, (unsigned)st.st_uid,
		       (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		if (st.st_uid != geteuid()) {
			close(fd);
			return -EPERM;
		}
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EBADMSG;
			break;
		}
		off += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = off;
	return 0;
}

int ss_store_load_one(ss_service *s, const char *id, ss_collection **ret)
{
	_cleanup_close_dir_ int dfd = -1;
	char *name = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	*ret = NULL;
	if (asprintf(&name, "%s%s", id, SUFFIX) < 0)
		return -ENOMEM;
	if ((dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = -errno;
	else if ((r = read_file(dfd, name, &data, &len)) >= 0 && (r = ss_store_parse(data, len, ret)) >= 0 &&
	         strcmp((*ret)->id, id) != 0) {
		ss_collection_free(*ret);
		*ret = NULL;
		r = -EBADMSG;
	}
	free(data);
	free(name);
	return r;
}

int ss_store_load_all(ss_service *s)
{
	DIR *d;
	struct dirent *de;

	if ((d = opendir(s->dir)) == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name), sl = strlen(SUFFIX);
		ss_collection *c = NULL;
		uint8_t *data = NULL;
		size_t len = 0;
		int r;

		if (n <= sl || strcmp(de->d_name + n - sl, SUFFIX) != 0)
			continue;
		if ((r = read_file(dirfd(d), de->d_name, &data, &len)) < 0 || (r = ss_store_parse(data, len, &c)) < 0) {
			free(data);
			ss_log("%s/%s: %s; not loaded, left as it is", s->dir, de->d_name,
			       r == -EBADMSG ? "not a valid collection file" : strerror(-r));
			continue;
		}
		free(data);
		if (strncmp(de->d_name, c->id, n - sl) != 0 || strlen(c->id) != n - sl || ss_service_collection(s, c->id) ||
		    ss_service_add_collection(s, c) < 0) {
			ss_log("%s/%s: names collection %s, not the file's; not loaded", s->dir, de->d_name, c->id);
			ss_collection_free(c);
		}
	}
	closedir(d);
	return 0;
}
