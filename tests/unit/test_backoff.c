/* test_backoff.c — Unlock's per-source back-off: the counting, and its side file read as hostile bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tokenseal.h"
#include "core/backoff.h"

#define SEC 1000000ull

static int parse(const char *text, ts_backoff *b)
{
	return ts_backoff_parse((const uint8_t *)text, strlen(text), b);
}

static void sources_are_uid_and_only_roots_hint(void **state)
{
	char s[TS_BACKOFF_SOURCE_MAX];

	ts_backoff_source_of(1000, "pam:login", s);
	assert_string_equal(s, "uid:1000");
	ts_backoff_source_of(0, "pam:login", s);
	assert_string_equal(s, "uid:0:pam:login");
	ts_backoff_source_of(0, NULL, s);
	assert_string_equal(s, "uid:0");
	/* A hint cannot smuggle a separator, a newline or the shared counter's name. */
	ts_backoff_source_of(0, "a b\n*", s);
	assert_string_equal(s, "uid:0:a_b__");
	ts_backoff_source_of(0, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", s);
	assert_int_equal(strlen(s), TS_BACKOFF_SOURCE_MAX - 1);
}

static void failures_back_off_per_source(void **state)
{
	ts_backoff b = { .n = 0 };
	uint64_t now = 100000 * SEC, wait = 0;

	/* Two free failures, then 1 s, 2 s, 4 s ... capped. */
	ts_backoff_failed(&b, "uid:0:pam:login", now, 2, 300);
	ts_backoff_failed(&b, "uid:0:pam:login", now, 2, 300);
	assert_int_equal(ts_backoff_check(&b, "uid:0:pam:login", now, 300, &wait), 0);
	ts_backoff_failed(&b, "uid:0:pam:login", now, 2, 300);
	assert_int_equal(ts_backoff_check(&b, "uid:0:pam:login", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(wait, 1);
	ts_backoff_failed(&b, "uid:0:pam:login", now, 2, 300);
	assert_int_equal(ts_backoff_check(&b, "uid:0:pam:login", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(wait, 2);
	/* Another source is not held up; the first is free again after its wait. */
	assert_int_equal(ts_backoff_check(&b, "uid:1000", now, 300, &wait), 0);
	assert_int_equal(ts_backoff_check(&b, "uid:0:pam:login", now + 2 * SEC, 300, &wait), 0);
	/* Capped at max-backoff, and a clock set back never makes it longer. */
	for (int i = 0; i < 40; i++)
		ts_backoff_failed(&b, "uid:0:pam:login", now, 2, 300);
	assert_int_equal(ts_backoff_check(&b, "uid:0:pam:login", now - 3600 * SEC, 300, &wait), -TS_E_BUSY);
	assert_int_equal(wait, 300);
	/* The right secret from the source starts it again. */
	assert_int_equal(ts_backoff_succeeded(&b, "uid:0:pam:login"), 1);
	assert_int_equal(ts_backoff_check(&b, "uid:0:pam:login", now, 300, &wait), 0);
	assert_int_equal(ts_backoff_succeeded(&b, "uid:0:pam:login"), 0);
}

/* A reserved attempt that checked no secret is given back exactly; one that did stays. */
static void a_reserved_attempt_is_given_back_exactly(void **state)
{
	ts_backoff b = { .n = 0 };
	ts_backoff_source before;
	uint64_t now = 100000 * SEC, wait = 0;

	/* A source with no counter: reserved, then given back, leaves none. */
	ts_backoff_reserve(&b, "uid:1000", now, 1, 300, &before);
	assert_int_equal(before.failures, 0);
	assert_string_equal(before.source, "uid:1000");
	assert_int_equal(b.n, 1);
	ts_backoff_restore(&b, &before);
	assert_int_equal(b.n, 0);
	/* A source already waiting: the reservation lengthens its wait; giving it back restores the wait. */
	ts_backoff_failed(&b, "uid:1000", now, 1, 300);
	ts_backoff_failed(&b, "uid:1000", now, 1, 300);
	assert_int_equal(ts_backoff_check(&b, "uid:1000", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(wait, 1);
	ts_backoff_reserve(&b, "uid:1000", now, 1, 300, &before);
	assert_int_equal(before.failures, 2);
	assert_int_equal(ts_backoff_check(&b, "uid:1000", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(wait, 2);
	ts_backoff_restore(&b, &before);
	assert_int_equal(ts_backoff_check(&b, "uid:1000", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(wait, 1);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.s[0].failures, 2);
}

static void a_full_table_never_resets_a_waiting_source(void **state)
{
	ts_backoff b = { .n = 0 };
	char src[TS_BACKOFF_SOURCE_MAX];
	uint64_t now = 1000 * SEC, wait;

	/* The attacker waits out nothing: its source is made to wait... */
	for (int i = 0; i < 3; i++)
		ts_backoff_failed(&b, "uid:666", now, 1, 300);
	assert_int_equal(ts_backoff_check(&b, "uid:666", now, 300, &wait), -TS_E_BUSY);
	/* ...and a flood of other sources (each waiting too) cannot push it out. */
	for (int i = 0; i < 200; i++) {
		snprintf(src, sizeof(src), "uid:%d", 2000 + i);
		ts_backoff_failed(&b, src, now, 0, 300);
	}
	assert_true(b.n <= TS_BACKOFF_SOURCES);
	assert_int_equal(ts_backoff_check(&b, "uid:666", now, 300, &wait), -TS_E_BUSY);
	/* Sources that found no room share one counter, which waits too. */
	assert_int_equal(ts_backoff_check(&b, "uid:4000", now, 300, &wait), -TS_E_BUSY);
}

/*
 * A full table: two sources taking turns cannot wipe each other's count (each
 * finding a fresh one), nor can one leave the shared counter for room made
 * later; and an attempt given back on the shared counter leaves it as it was.
 */
static void a_full_table_loses_no_count(void **state)
{
	ts_backoff b = { .n = 0 };
	ts_backoff_source before;
	char src[TS_BACKOFF_SOURCE_MAX];
	uint64_t now = 1000 * SEC, wait;
	int tried = 0;

	/* The table full of sources with one wrong secret each, none waiting (5 free failures). */
	for (int i = 0; i < TS_BACKOFF_SOURCES - 1; i++) {
		snprintf(src, sizeof(src), "uid:%d", 2000 + i);
		ts_backoff_failed(&b, src, now, 5, 300);
	}
	assert_int_equal(b.n, TS_BACKOFF_SOURCES - 1);
	for (int i = 0; i < 50; i++) {
		const char *who = i % 2 ? "uid:666" : "uid:667";

		if (ts_backoff_check(&b, who, now, 300, &wait) < 0)
			break;
		ts_backoff_reserve(&b, who, now, 5, 300, &before);
		/* Judged by the counter it went to: from the second guess on, nobody is clean. */
		assert_string_equal(before.source, "*");
		assert_int_equal(before.failures, tried);
		tried++;
	}
	/* They share one counter: its five free failures, then the wait. */
	assert_int_equal(tried, 6);
	assert_int_equal(b.n, TS_BACKOFF_SOURCES);
	/* A source that has no counter yet is held by the shared one's wait. */
	assert_int_equal(ts_backoff_check(&b, "uid:4000", now, 300, &wait), -TS_E_BUSY);
	/* A right key keeps its source's own counter, at zero: the shared counter's wait does not hold it. */
	assert_int_equal(ts_backoff_succeeded(&b, "uid:2000"), 1);
	assert_int_equal(ts_backoff_succeeded(&b, "uid:2001"), 1);
	assert_int_equal(b.n, TS_BACKOFF_SOURCES);
	assert_int_equal(ts_backoff_check(&b, "uid:2000", now, 300, &wait), 0);
	ts_backoff_reserve(&b, "uid:2000", now, 5, 300, &before);
	assert_string_equal(before.source, "uid:2000");
	assert_int_equal(before.failures, 0);
	ts_backoff_restore(&b, &before);
	assert_int_equal(b.n, TS_BACKOFF_SOURCES);
	/* ... and nobody on the shared counter gets a fresh one later. */
	now += 301 * SEC;
	ts_backoff_reserve(&b, "uid:666", now, 5, 300, &before);
	assert_string_equal(before.source, "*");
	assert_int_equal(ts_backoff_check(&b, "uid:666", now, 300, &wait), -TS_E_BUSY);
	/* An attempt given back there (a right key, nothing tried) leaves the shared count as it was. */
	ts_backoff_restore(&b, &before);
	assert_int_equal(ts_backoff_check(&b, "uid:666", now, 300, &wait), 0);
	ts_backoff_reserve(&b, "uid:5000", now, 5, 300, &before);
	assert_int_equal(before.failures, 6);
	ts_backoff_restore(&b, &before);
	ts_backoff_reserve(&b, "uid:5000", now, 5, 300, &before);
	assert_int_equal(before.failures, 6);
	/* The others' counts are all still there. */
	for (int i = 2; i < TS_BACKOFF_SOURCES - 1; i++) {
		snprintf(src, sizeof(src), "uid:%d", 2000 + i);
		ts_backoff_reserve(&b, src, now, 5, 300, &before);
		assert_string_equal(before.source, src);
		assert_int_equal(before.failures, 1);
	}
}

static void a_full_file_of_waiting_sources_stays_in_bounds(void **state)
{
	ts_backoff b;
	ts_buf in = { 0 };
	char line[64];
	uint64_t now = 100 * SEC, wait;

	/* 32 sources, all waiting, no shared counter: a file the daemon never writes, but may find. */
	assert_int_equal(ts_buf_append(&in, "tokenseal-backoff v1\n", 21), 0);
	for (int i = 0; i < TS_BACKOFF_SOURCES; i++) {
		int n = snprintf(line, sizeof(line), "uid:%d 9 %llu\n", 100 + i, (unsigned long long)(now + 60 * SEC));
		assert_int_equal(ts_buf_append(&in, line, (size_t)n), 0);
	}
	assert_int_equal(ts_backoff_parse(in.data, in.len, &b), 0);
	assert_int_equal(b.n, TS_BACKOFF_SOURCES);
	ts_backoff_failed(&b, "uid:999", now, 1, 300);
	assert_int_equal(b.n, TS_BACKOFF_SOURCES);
	/* The new source counts on the shared counter, which waits; the others wait as before. */
	assert_int_equal(ts_backoff_check(&b, "uid:999", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(ts_backoff_check(&b, "uid:100", now, 300, &wait), -TS_E_BUSY);
	assert_int_equal(ts_backoff_check(&b, "uid:130", now, 300, &wait), -TS_E_BUSY);
	ts_buf_free(&in);
}

static void the_file_round_trips(void **state)
{
	ts_backoff b = { .n = 0 }, c;
	ts_buf out = { 0 };

	ts_backoff_failed(&b, "uid:0:pam:sshd", 5 * SEC, 0, 60);
	ts_backoff_failed(&b, "uid:1000", 7 * SEC, 5, 60);
	assert_int_equal(ts_backoff_format(&b, &out), 0);
	assert_int_equal(ts_backoff_parse(out.data, out.len, &c), 0);
	assert_int_equal(c.n, 2);
	assert_memory_equal(&b.s[0], &c.s[0], sizeof(b.s[0]));
	assert_memory_equal(&b.s[1], &c.s[1], sizeof(b.s[1]));
	ts_buf_free(&out);
}

static void hostile_files_are_never_half_trusted(void **state)
{
	ts_backoff b;
	char big[8192];

	assert_int_equal(parse("", &b), -TS_E_CORRUPT);
	assert_int_equal(parse("tokenseal-backoff v2\n", &b), -TS_E_CORRUPT);
	assert_int_equal(b.n, 0);
	/* Each malformed line is dropped; good lines around it stay. */
	assert_int_equal(parse("tokenseal-backoff v1\n"
	                       "uid:1 3 100\n"
	                       "uid:2 3\n"                       /* a field missing */
	                       "uid:3 -1 100\n"                  /* a sign */
	                       "uid:4 99999999999 100\n"         /* failures over 32 bits */
	                       "uid:5 1 100000000000000000000000\n" /* over 64 bits */
	                       "uid 6 1 100\n"                   /* a space in the source */
	                       "u\x01id:7 1 100\n"               /* a control byte */
	                       "uid:8 1 100 \n"                  /* trailing junk */
	                       "uid:1 9 9\n"                     /* a second uid:1: the first one counts */
	                       "uid:9 2 200\n"
	                       "uid:10 2 200", &b), 0);          /* no newline: cut short, dropped */
	assert_int_equal(b.n, 2);
	assert_string_equal(b.s[0].source, "uid:1");
	assert_int_equal(b.s[0].failures, 3);
	assert_int_equal(b.s[0].retry_at, 100);
	assert_string_equal(b.s[1].source, "uid:9");
	/* An over-long source is dropped, and so are lines beyond the table. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "tokenseal-backoff v1\n", 21);
	big[sizeof(big) - 1] = '\n';
	assert_int_equal(ts_backoff_parse((const uint8_t *)big, sizeof(big), &b), 0);
	assert_int_equal(b.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sources_are_uid_and_only_roots_hint),
		cmocka_unit_test(failures_back_off_per_source),
		cmocka_unit_test(a_reserved_attempt_is_given_back_exactly),
		cmocka_unit_test(a_full_table_never_resets_a_waiting_source),
		cmocka_unit_test(a_full_table_loses_no_count),
		cmocka_unit_test(a_full_file_of_waiting_sources_stays_in_bounds),
		cmocka_unit_test(the_file_round_trips),
		cmocka_unit_test(hostile_files_are_never_half_trusted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
