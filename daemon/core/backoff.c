/* backoff.c — per-source back-off counters of Unlock, and their side-file text. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tokenseal.h"
#include "core/backoff.h"

#define HEADER "tokenseal-backoff v1\n"
#define OVERFLOW "*"

static int source_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-' || c == ':' || c == '*';
}

void ts_backoff_source_of(uid_t uid, const char *hint, char out[TS_BACKOFF_SOURCE_MAX])
{
	size_t n;

	n = (size_t)snprintf(out, TS_BACKOFF_SOURCE_MAX, "uid:%lu", (unsigned long)uid);
	if (uid != 0 || !hint || !*hint || n + 2 >= TS_BACKOFF_SOURCE_MAX)
		return;
	out[n++] = ':';
	for (; *hint && n + 1 < TS_BACKOFF_SOURCE_MAX; hint++)
		out[n++] = source_char(*hint) && *hint != '*' ? *hint : '_';
	out[n] = '\0';
}

static ts_backoff_source *find(ts_backoff *b, const char *source)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->s[i].source, source) == 0)
			return &b->s[i];
	return NULL;
}

/* Parse a decimal of at most 20 digits into *ret. Returns the characters used, 0 on error. */
static size_t parse_dec(const char *p, size_t len, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && i < 20 && p[i] >= '0' && p[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*ret = v;
	return i;
}

/* One "SOURCE FAILURES RETRY_AT" line (without its newline) into *s. 0 or -1. */
static int parse_line(const char *p, size_t len, ts_backoff_source *s)
{
	uint64_t failures, retry_at;
	size_t i = 0, n;

	while (i < len && p[i] != ' ') {
		if (!source_char(p[i]) || i + 1 >= TS_BACKOFF_SOURCE_MAX)
			return -1;
		s->source[i] = p[i];
		i++;
	}
	if (i == 0 || i >= len)
		return -1;
	s->source[i++] = '\0';
	if ((n = parse_dec(p + i, len - i, &failures)) == 0 || failures > UINT32_MAX)
		return -1;
	i += n;
	if (i >= len || p[i++] != ' ' || (n = parse_dec(p + i, len - i, &retry_at)) == 0 || i + n != len)
		return -1;
	s->failures = (uint32_t)failures;
	s->retry_at = retry_at;
	return 0;
}

int ts_backoff_parse(const uint8_t *data, size_t len, ts_backoff *b)
{
	const char *p = (const char *)data, *end = p + len;

	memset(b, 0, sizeof(*b));
	if (len < sizeof(HEADER) - 1 || memcmp(p, HEADER, sizeof(HEADER) - 1) != 0)
		return -TS_E_CORRUPT;
	p += sizeof(HEADER) - 1;
	while (p < end && b->n < TS_BACKOFF_SOURCES) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		ts_backoff_source s = { .failures = 0 };

		if (!nl)
			break;   /* a last line without its newline was cut short: not trusted */
		if (parse_line(p, (size_t)(nl - p), &s) == 0 && !find(b, s.source))
			b->s[b->n++] = s;
		p = nl + 1;
	}
	return 0;
}

int ts_backoff_format(const ts_backoff *b, ts_buf *out)
{
	char line[TS_BACKOFF_SOURCE_MAX + 48];
	int r, n;

	if ((r = ts_buf_append(out, HEADER, sizeof(HEADER) - 1)) < 0)
		return r;
	for (size_t i = 0; i < b->n; i++) {
		n = snprintf(line, sizeof(line), "%s %" PRIu32 " %" PRIu64 "\n", b->s[i].source, b->s[i].failures,
		             b->s[i].retry_at);
		if (n < 0 || (size_t)n >= sizeof(line))
			return -TS_E_FAILED;
		if ((r = ts_buf_append(out, line, (size_t)n)) < 0)
			return r;
	}
	return 0;
}

/* The counter that holds source's wrong secrets: its own, or when it has none, the shared one (if any). */
static const ts_backoff_source *holder(const ts_backoff *b, const char *source)
{
	const ts_backoff_source *s = find((ts_backoff *)b, source);

	/* A source without a counter of its own may have been counted on the shared one. */
	return s ? s : find((ts_backoff *)b, OVERFLOW);
}

int ts_backoff_check(const ts_backoff *b, const char *source, uint64_t now, uint64_t max_sec, uint64_t *ret_wait_sec)
{
	const ts_backoff_source *s = holder(b, source);
	uint64_t wait;

	if (!s || s->retry_at <= now)
		return 0;
	wait = (s->retry_at - now + 999999) / 1000000;
	if (max_sec == 0)
		return 0;
	*ret_wait_sec = wait > max_sec ? max_sec : wait;
	return -TS_E_BUSY;
}

/*
 * The counter for source, made if need be: its own, or once the shared one
 * exists (the table was full), that one, as holder() finds it. No counter is
 * ever handed to another source: that would wipe a count (two sources taking
 * turns would each find a fresh one), and a source counted on the shared
 * counter stays there, so room made later cannot give it a fresh count.
 */
static ts_backoff_source *counter(ts_backoff *b, const char *source)
{
	ts_backoff_source *s = find(b, source);

	if (s || (s = find(b, OVERFLOW)) != NULL)
		return s;
	if (b->n < TS_BACKOFF_SOURCES - 1) {
		s = &b->s[b->n++];
		memset(s, 0, sizeof(*s));
		snprintf(s->source, sizeof(s->source), "%s", source);
		return s;
	}
	if (b->n < TS_BACKOFF_SOURCES) {
		s = &b->s[b->n++];
		memset(s, 0, sizeof(*s));
	} else {
		/*
		 * A table full of sources and no shared counter (only a file
		 * written by hand can be so): the last slot becomes the shared
		 * counter, keeping its count and wait, so nobody's wait is shortened.
		 */
		s = &b->s[TS_BACKOFF_SOURCES - 1];
	}
	snprintf(s->source, sizeof(s->source), OVERFLOW);
	return s;
}

static void charge(ts_backoff_source *s, uint64_t now, unsigned free_failures, uint64_t max_sec)
{
	uint64_t delay;
	unsigned shift;

	if (s->failures < UINT32_MAX)
		s->failures++;
	if (max_sec == 0 || s->failures <= free_failures)
		return;
	shift = s->failures - free_failures - 1;
	delay = shift > 30 ? max_sec : 1ull << shift;
	if (delay > max_sec)
		delay = max_sec;
	s->retry_at = now + delay * 1000000;
}

void ts_backoff_failed(ts_backoff *b, const char *source, uint64_t now, unsigned free_failures, uint64_t max_sec)
{
	charge(counter(b, source), now, free_failures, max_sec);
}

void ts_backoff_reserve(ts_backoff *b, const char *source, uint64_t now, unsigned free_failures, uint64_t max_sec,
                        ts_backoff_source *before)
{
	ts_backoff_source *s = counter(b, source);

	*before = *s;   /* a counter made just now is all zeros but its name */
	charge(s, now, free_failures, max_sec);
}

/* A counter that goes: removed, or while the shared counter exists, kept at zero (its source stays off it). */
static void drop(ts_backoff *b, ts_backoff_source *s)
{
	if (find(b, OVERFLOW) && strcmp(s->source, OVERFLOW) != 0) {
		s->failures = 0;
		s->retry_at = 0;
		return;
	}
	*s = b->s[--b->n];
}

int ts_backoff_succeeded(ts_backoff *b, const char *source)
{
	ts_backoff_source *s = find(b, source);

	if (!s)
		return 0;
	drop(b, s);
	return 1;
}

void ts_backoff_restore(ts_backoff *b, const ts_backoff_source *before)
{
	ts_backoff_source *s = find(b, before->source);

	if (!s)
		return;
	if (before->failures == 0 && before->retry_at == 0) {
		drop(b, s);
		return;
	}
	s->failures = before->failures;
	s->retry_at = before->retry_at;
}
