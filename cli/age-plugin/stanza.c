/* stanza.c — the age plugin protocol's stanzas: a strict line parser, a writer, a line reader. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "tokenseal.h"
#include "stanza.h"

#define BODY_COLUMNS 64
#define BODY_LINE_BYTES 48   /* what 64 base64 characters hold */

int ts_stanza_init(ts_stanza *s)
{
	memset(s, 0, sizeof(*s));
	if ((s->body = sodium_malloc(TS_STANZA_BODY_MAX)) == NULL)
		return -TS_E_NOMEM;
	return 0;
}

void ts_stanza_free(ts_stanza *s)
{
	if (!s)
		return;
	if (s->body)
		sodium_free(s->body);   /* wipes */
	sodium_memzero(s->header, sizeof(s->header));
	s->body = NULL;
	s->body_len = 0;
}

static void reset(ts_stanza *s)
{
	if (s->body_len)
		sodium_memzero(s->body, s->body_len);
	s->body_len = 0;
	s->type = NULL;
	s->n_args = 0;
	s->in_body = 0;
}

/* An argument or type: 1.. bytes of printable ASCII (33..126). */
static int word_valid(const char *w, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)w[i] < 33 || (unsigned char)w[i] > 126)
			return 0;
	return 1;
}

static int feed_header(ts_stanza *s, const char *line, size_t len)
{
	size_t start, i;

	if (len < 4 || memcmp(line, "-> ", 3) != 0 || len > TS_STANZA_LINE_MAX)
		return len > TS_STANZA_LINE_MAX ? -TS_E_LIMIT : -TS_E_INVALID_ARGS;
	memcpy(s->header, line + 3, len - 3);
	s->header[len - 3] = '\0';
	/* Words separated by exactly one space: no empty word, no leading or trailing space. */
	for (start = 0, i = 0;; i++) {
		if (s->header[i] != ' ' && s->header[i] != '\0')
			continue;
		if (!word_valid(s->header + start, i - start))
			return -TS_E_INVALID_ARGS;
		if (!s->type)
			s->type = s->header + start;
		else if (s->n_args >= TS_STANZA_ARGS_MAX)
			return -TS_E_LIMIT;
		else
			s->args[s->n_args++] = s->header + start;
		if (s->header[i] == '\0')
			break;
		s->header[i] = '\0';
		start = i + 1;
	}
	s->in_body = 1;
	return 0;
}

static int feed_body(ts_stanza *s, const char *line, size_t len)
{
	size_t got = 0;
	const char *end = NULL;

	if (len > BODY_COLUMNS)
		return -TS_E_INVALID_ARGS;
	if (len == 0) {
		s->in_body = 0;
		return 1;
	}
	if (s->body_len + BODY_LINE_BYTES > TS_STANZA_BODY_MAX)
		return -TS_E_LIMIT;
	/* Canonical unpadded base64: libsodium refuses padding, stray characters and non-zero trailing bits. */
	if (len % 4 == 1 || sodium_base642bin(s->body + s->body_len, TS_STANZA_BODY_MAX - s->body_len, line, len, NULL,
	                                      &got, &end, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
	    end != line + len)
		return -TS_E_INVALID_ARGS;
	s->body_len += got;
	if (len < BODY_COLUMNS) {
		s->in_body = 0;
		return 1;
	}
	return 0;
}

int ts_stanza_feed(ts_stanza *s, const char *line, size_t len)
{
	int r;

	if (!s->in_body) {
		reset(s);
		/* A NUL would cut the header's words short, the rest dropped unseen: refused, as a body's is by base64. */
		if (memchr(line, '\0', len))
			return -TS_E_INVALID_ARGS;
		r = feed_header(s, line, len);
	} else {
		r = feed_body(s, line, len);
	}
	if (r < 0)
		reset(s);
	return r;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -TS_E_IO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int ts_stanza_write(int fd, const char *type, const char *const *args, size_t n, const uint8_t *body, size_t len)
{
	char line[BODY_COLUMNS + 2];
	size_t off = 0;
	int r = 0;

	if (!type || !word_valid(type, strlen(type)) || (n && !args) || (len && !body))
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < n; i++)
		if (!args[i] || !word_valid(args[i], strlen(args[i])))
			return -TS_E_INVALID_ARGS;
	if ((r = write_all(fd, "-> ", 3)) < 0 || (r = write_all(fd, type, strlen(type))) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = write_all(fd, " ", 1)) < 0 || (r = write_all(fd, args[i], strlen(args[i]))) < 0)
			return r;
	if ((r = write_all(fd, "\n", 1)) < 0)
		return r;
	/* Full lines of 64 characters, then a shorter last line (empty when the body fills its lines). */
	for (;;) {
		size_t k = len - off > BODY_LINE_BYTES ? BODY_LINE_BYTES : len - off, el;
		sodium_bin2base64(line, sizeof(line), body ? body + off : (const uint8_t *)"", k,
		                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
		el = strlen(line);
		line[el] = '\n';
		r = write_all(fd, line, el + 1);
		sodium_memzero(line, sizeof(line));
		if (r < 0)
			return r;
		off += k;
		if (k < BODY_LINE_BYTES)
			return 0;
	}
}

int ts_stanza_read_line(int fd, char *line, size_t cap, size_t *ret_len)
{
	size_t n = 0;

	/* A byte at a time: nothing of the peer's (a PIN) is left in a buffer of ours past the line. */
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -TS_E_IO;
		if (r == 0) {
			if (n == 0)
				return 0;
			return -TS_E_IO;   /* a line cut short */
		}
		if (c == '\n')
			break;
		if (n + 1 >= cap)
			return -TS_E_LIMIT;
		line[n++] = c;
	}
	line[n] = '\0';
	*ret_len = n;
	return 1;
}
