/* test_log.c — the daemon's log lines: whatever the arguments hold, one printable line per ts_log call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus/log.h"

static void clean_is(const char *in, const char *want)
{
	char out[256];

	assert_string_equal(ts_log_clean(in, out, sizeof(out)), want);
}

static void control_characters_and_separators_are_escaped(void **state)
{
	clean_is("plain text: ok", "plain text: ok");
	clean_is("a\nevent=unlock result=ok", "a\\x0aevent=unlock result=ok");
	clean_is("cr\rtab\tesc\x1b[2Kdel\x7f", "cr\\x0dtab\\x09esc\\x1b[2Kdel\\x7f");
	clean_is("back\\slash \\x0a", "back\\\\slash \\\\x0a");
	/* UTF-8 text stays; C1 (NEL), U+2028, U+2029 and bidi overrides do not. */
	clean_is("Schl\xc3\xbcssel \xe2\x82\xac \xf0\x9f\x94\x91", "Schl\xc3\xbcssel \xe2\x82\xac \xf0\x9f\x94\x91");
	clean_is("a\xc2\x85" "b", "a\\xc2\\x85b");
	clean_is("a\xe2\x80\xa8" "b\xe2\x80\xa9", "a\\xe2\\x80\\xa8b\\xe2\\x80\\xa9");
	clean_is("\xe2\x80\xae" "evil\xe2\x81\xa6", "\\xe2\\x80\\xaeevil\\xe2\\x81\\xa6");
	/* Not UTF-8: a lone continuation byte, an overlong '/', a surrogate, a cut sequence. */
	clean_is("\x80\xc0\xaf\xed\xa0\x80\xe2\x82", "\\x80\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82");
}

/* Undo ts_log_clean: "\\" and "\xNN" are the only escapes. */
static size_t unescape(const char *s, unsigned char *out)
{
	size_t n = 0;

	while (*s) {
		if (s[0] == '\\' && s[1] == '\\') {
			out[n++] = '\\';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x') {
			char hex[3] = { s[2], s[3], 0 };
			out[n++] = (unsigned char)strtoul(hex, NULL, 16);
			s += 4;
		} else {
			out[n++] = (unsigned char)*s++;
		}
	}
	return n;
}

/* Every byte of the output is printable ASCII or part of a UTF-8 sequence that is not a line break. */
static void assert_one_printable_line(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		assert_false(*p < 0x20 || *p == 0x7f);
		if (*p < 0x80) {
			p++;
			continue;
		}
		/* Well-formed (the cleaner's own check is what is tested; this one is deliberately simpler). */
		size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
		assert_true(*p >= 0xc2 && *p <= 0xf4);
		for (size_t i = 1; i < n; i++)
			assert_int_equal(p[i] & 0xc0, 0x80);
		assert_false(p[0] == 0xc2 && p[1] <= 0x9f);
		assert_false(p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xa8 && p[2] <= 0xae);
		assert_false(p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9);
		p += n;
	}
}

/* Property, over random byte strings: one printable line out, and the input back from it. */
static void random_input_gives_one_line_that_decodes_back(void **state)
{
	unsigned char in[64], back[64 * 4];
	char out[64 * 4 + 1];
	uint32_t x = 0x2545f491;

	for (int round = 0; round < 50000; round++) {
		size_t len = 0;

		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		len = x % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 17, x ^= x << 5;
			/* Mostly the interesting bytes: controls, UTF-8 lead and continuation bytes. */
			in[i] = (unsigned char)(x % 3 == 0 ? x >> 8 : x % 3 == 1 ? 0x80 + ((x >> 8) & 0x7f) : 0x01 + ((x >> 8) % 0x7f));
			if (in[i] == 0)
				in[i] = '\n';
		}
		in[len] = '\0';
		ts_log_clean((const char *)in, out, sizeof(out));
		assert_one_printable_line(out);
		assert_int_equal(unescape(out, back), len);
		assert_memory_equal(back, in, len);
	}
}

/* A small buffer: always terminated, never half an escape or half a character. */
static void output_is_cut_whole(void **state)
{
	char out[8];

	assert_string_equal(ts_log_clean("abc\ndef", out, sizeof(out)), "abc\\x0a");
	assert_string_equal(ts_log_clean("abcde\n", out, sizeof(out)), "abcde");
	assert_string_equal(ts_log_clean("abcd\xe2\x82\xac", out, sizeof(out)), "abcd\xe2\x82\xac");
	assert_string_equal(ts_log_clean("abcde\xe2\x82\xac", out, sizeof(out)), "abcde");
	assert_string_equal(ts_log_clean("\\\\\\\\", out, sizeof(out)), "\\\\\\\\\\\\");
	assert_string_equal(ts_log_clean("x", out, 1), "");
}

/* ts_log itself: a message with newlines is written as one line. */
static void ts_log_writes_one_line(void **state)
{
	char path[] = "/tmp/tokenseal-test-log.XXXXXX", buf[512];
	int fd = mkstemp(path), saved = dup(2);
	FILE *f;
	size_t n;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	ts_log(TS_LOG_WARNING, "vault=%s: %s", "v", "helper broke\n<5>tokensealed: event=unlock vault=alice result=ok");
	(void)ts_audit("unlock\nforged", "v\n", 1000, NULL, "p1\r", 0);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	assert_non_null(f = fdopen(fd, "r"));
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	assert_string_equal(buf,
	                    "<4>tokensealed: vault=v: helper broke\\x0a<5>tokensealed: event=unlock vault=alice result=ok\n"
	                    "<5>tokensealed: event=unlock\\x0aforged vault=v? owner=1000 uid=-1 pid=0 protector=p1? result=ok\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(control_characters_and_separators_are_escaped),
		cmocka_unit_test(random_input_gives_one_line_that_decodes_back),
		cmocka_unit_test(output_is_cut_whole),
		cmocka_unit_test(ts_log_writes_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
