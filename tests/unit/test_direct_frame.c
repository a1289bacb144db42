/* test_direct_frame.c — the private socket's scanner (ts_frame_next): what a client's byte stream may hold, fed whole and a byte at a time. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus/direct.h"
#include "bus/direct_frame.h"

static const char auth[] = "AUTH EXTERNAL 31303030\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n";

typedef struct {
	uint8_t b[1 << 20];
	size_t n;
} stream;

static void put(stream *s, const void *p, size_t n)
{
	assert_true(s->n + n <= sizeof(s->b));
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void pad(stream *s, size_t base, size_t a)
{
	while ((s->n - base) % a)
		s->b[s->n++] = 0;
}

static void u32(stream *s, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	put(s, b, 4);
}

static void begin(stream *s)
{
	s->n = 0;
	put(s, "", 1);
	put(s, auth, strlen(auth));
}

/* One header field of a string type: code, signature t, the string. */
static void field_str(stream *s, size_t base, uint8_t code, char t, const char *v)
{
	uint8_t sig[4] = { code, 1, (uint8_t)t, 0 };

	pad(s, base, 8);
	put(s, sig, 4);
	if (t == 'g') {
		uint8_t l = (uint8_t)strlen(v);

		put(s, &l, 1);
	} else
		u32(s, (uint32_t)strlen(v));
	put(s, v, strlen(v) + 1);
}

static void field_u32(stream *s, size_t base, uint8_t code, uint32_t v)
{
	uint8_t sig[4] = { code, 1, 'u', 0 };

	pad(s, base, 8);
	put(s, sig, 4);
	u32(s, v);
}

/*
 * A method call to the vault with member, serial, unix_fds (a field only when
 * not 0), an extra field (code, 0 for none) and body_len bytes of body.
 */
static size_t call(stream *s, const char *member, uint32_t serial, uint32_t fds, uint8_t extra, uint32_t body_len)
{
	size_t start = s->n, fields_at, fields_end;
	uint8_t fixed[4] = { 'l', 1, 0, 1 };

	put(s, fixed, 4);
	u32(s, body_len);
	u32(s, serial);
	u32(s, 0); /* fields length, filled in below */
	fields_at = s->n;
	field_str(s, start, 1, 'o', "/org/tokenseal1/vault/v");
	field_str(s, start, 2, 's', "org.tokenseal1.Vault");
	field_str(s, start, 3, 's', member);
	/* The signature of the call that takes those fds (direct_frame.c lets fds come with no other). */
	field_str(s, start, 8, 'g', !fds ? "ay" : strcmp(member, "Unlock") == 0 ? "sha{ss}" : "sa{ss}hh");
	if (fds)
		field_u32(s, start, 9, fds);
	if (extra == 7)
		field_str(s, start, 7, 's', ":1.5");
	else if (extra == 2)
		field_str(s, start, 2, 's', "org.tokenseal1.Vault");
	else if (extra == 10)
		field_str(s, start, 10, 's', "hidden bytes the daemon would never see");
	else if (extra == 8)
		field_u32(s, start, 8, 1); /* a signature field of type u */
	fields_end = s->n;
	{
		uint32_t fl = (uint32_t)(fields_end - fields_at);
		uint8_t b[4] = { (uint8_t)fl, (uint8_t)(fl >> 8), (uint8_t)(fl >> 16), (uint8_t)(fl >> 24) };

		memcpy(s->b + start + 12, b, 4);
	}
	pad(s, start, 8);
	for (uint32_t i = 0; i < body_len && s->n < sizeof(s->b); i++)
		s->b[s->n++] = (uint8_t)i;
	return s->n - start;
}

/*
 * Feed s to a scanner chunk bytes at a time, as io_scan does: the segments
 * passed on, the headers met, and the first refusal (0 when none).
 */
typedef struct {
	size_t passed;
	unsigned headers;
	ts_frame_msg last;
	int refused;
	const char *why;
} outcome;

static outcome feed(const stream *s, size_t chunk, uint32_t max_size)
{
	static uint8_t buf[1 << 20];
	outcome o = { 0 };
	ts_frame f;
	size_t have = 0, fed = 0;

	ts_frame_init(&f, max_size, TS_DIRECT_FDS_MAX);
	while (fed < s->n || have > 0) {
		size_t take = s->n - fed < chunk ? s->n - fed : chunk;
		ts_frame_msg msg;
		int got;
		long n = 0;

		memcpy(buf + have, s->b + fed, take);
		have += take;
		fed += take;
		while (have > 0 && (n = ts_frame_next(&f, buf, have, &msg, &got, &o.why)) > 0) {
			assert_true((size_t)n <= have);
			if (got) {
				o.headers++;
				o.last = msg;
			}
			o.passed += (size_t)n;
			memmove(buf, buf + n, have - (size_t)n);
			have -= (size_t)n;
		}
		if (have > 0 && n < 0) {
			o.refused = (int)n;
			return o;
		}
		if (take == 0)
			break; /* the rest waits for bytes that never come */
	}
	return o;
}

static void messages_pass_whole_and_byte_by_byte(void **state)
{
	stream *s = malloc(sizeof(*s));
	size_t one, two;

	begin(s);
	one = call(s, "Unwrap", 1, 0, 0, 100);
	two = call(s, "Unlock", 2, 1, 0, 30);
	for (size_t chunk = 1; chunk <= s->n; chunk = chunk < 64 ? chunk + 1 : chunk * 2) {
		outcome o = feed(s, chunk, TS_DIRECT_MESSAGE_MAX);

		assert_int_equal(o.refused, 0);
		assert_int_equal(o.passed, 1 + strlen(auth) + one + two);
		assert_int_equal(o.headers, 2);
		assert_int_equal(o.last.serial, 2);
		assert_int_equal(o.last.fds, 1);
		assert_int_equal(o.last.body_size, 30);
		assert_int_equal(o.last.size, two);
		assert_int_equal(o.last.data_method, 0);
	}
	free(s);
}

static void expect_refused(stream *s, const char *why_part)
{
	outcome whole = feed(s, s->n, TS_DIRECT_MESSAGE_MAX), bytes = feed(s, 1, TS_DIRECT_MESSAGE_MAX);

	assert_int_equal(whole.refused, -EBADMSG);
	assert_int_equal(bytes.refused, -EBADMSG);
	assert_non_null(whole.why);
	if (!strstr(whole.why, why_part))
		print_message("refused as \"%s\", not \"%s\"\n", whole.why, why_part);
	assert_non_null(strstr(whole.why, why_part));
	assert_string_equal(whole.why, bytes.why);
}

/* The handshake and one call (call()'s arguments), refused for why_part. */
static void call_refused(stream *s, const char *member, uint32_t serial, uint32_t fds, uint8_t extra, const char *why_part)
{
	begin(s);
	call(s, member, serial, fds, extra, 8);
	expect_refused(s, why_part);
}

static void header_fields_sd_bus_would_skip_are_refused(void **state)
{
	stream *s = malloc(sizeof(*s));

	call_refused(s, "Unlock", 1, 0, 10, "does not know");
	call_refused(s, "Unlock", 1, 0, 7, "sender");
	call_refused(s, "Unlock", 1, 0, 2, "twice");
	begin(s);
	call(s, "Unlock", 1, 0, 8, 8);
	expect_refused(s, "twice"); /* the signature already came as 'g' */
	free(s);
}

static void sizes_are_bounded_at_the_header(void **state)
{
	stream *s = malloc(sizeof(*s));
	outcome o;

	/* A data method may be large: its header passes, and the body streams on. */
	begin(s);
	call(s, "UnwrapBatch", 1, 0, 0, 600000);
	o = feed(s, 4096, TS_DIRECT_MESSAGE_MAX);
	assert_int_equal(o.refused, 0);
	assert_int_equal(o.headers, 1);
	assert_int_equal(o.last.data_method, 1);
	assert_int_equal(o.passed, s->n);
	/* So may the packed batches (one "ay" of the items). */
	begin(s);
	call(s, "UnwrapBatchPacked", 1, 0, 0, 600000);
	o = feed(s, 4096, TS_DIRECT_MESSAGE_MAX);
	assert_int_equal(o.refused, 0);
	assert_int_equal(o.last.data_method, 1);
	begin(s);
	call(s, "RewrapBatchPacked", 1, 0, 0, 600000);
	o = feed(s, 4096, TS_DIRECT_MESSAGE_MAX);
	assert_int_equal(o.refused, 0);
	assert_int_equal(o.last.data_method, 1);
	/* Any other method is small: refused before its body is read. */
	begin(s);
	call(s, "Unlock", 1, 0, 0, TS_FRAME_SMALL_MAX);
	s->n -= TS_FRAME_SMALL_MAX - 10; /* the header and a little: the refusal comes before the rest */
	expect_refused(s, "larger than its method takes");
	/* Past the daemon's size for any message: the header says so. */
	begin(s);
	call(s, "UnwrapBatch", 1, 0, 0, 64);
	memcpy(s->b + 1 + strlen(auth) + 4, (uint8_t[]){ 0, 0, 0, 3 }, 4); /* body length 48 MiB */
	expect_refused(s, "larger than the daemon takes");
	free(s);
}

static void descriptors_and_serials(void **state)
{
	stream *s = malloc(sizeof(*s));

	call_refused(s, "AddProtector", 1, TS_DIRECT_FDS_MAX + 1, 0, "too many file descriptors");
	/* A 16-byte call (sd-bus would read 8 bytes, and their fds, of the next), and padding that is not zero. */
	begin(s);
	put(s, (uint8_t[]){ 'l', 1, 0, 1, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0 }, 16);
	call(s, "AddProtector", 10, 2, 0, 8);
	expect_refused(s, "too short");
	begin(s);
	call(s, "AddProtector", 1, 2, 0, 8);
	/* The path field takes 32 bytes from 16, the interface's 29 from 48: 3 bytes of padding after it. */
	s->b[1 + strlen(auth) + 48 + 4 + 4 + strlen("org.tokenseal1.Vault") + 1] = 1;
	expect_refused(s, "other than zero");
	/* Descriptors only with a call that takes them, with its own signature. */
	call_refused(s, "Ping", 1, 1, 0, "takes none");
	begin(s);
	call(s, "AddProtector", 1, 2, 0, 8);
	assert_int_equal(feed(s, 1, TS_DIRECT_MESSAGE_MAX).refused, 0);
	call_refused(s, "Unwrap", 0, 0, 0, "serial");
	begin(s);
	call(s, "Unwrap", 7, 0, 0, 8);
	call(s, "Unwrap", 7, 0, 0, 8);
	expect_refused(s, "serial");
	free(s);
}

static void the_stream_itself(void **state)
{
	stream *s = malloc(sizeof(*s));
	static const char *const bad_auth[] = {
		"BEGIN\r\n",                                   /* sd-bus: ERROR, and the exchange goes on */
		"AUTH EXTERNAL 3130303x\r\nBEGIN\r\n",        /* not hex */
		"AUTH EXTERNAL 3635353335\r\nBEGIN\r\n",      /* uid 65535: parse_uid refuses it */
		"AUTH EXTERNAL 2d31\r\nBEGIN\r\n",            /* "-1" */
		"AUTH EXTERNAL 31303030\r\nDATA\r\nBEGIN\r\n", /* DATA after a token */
		"AUTH DBUS_COOKIE_SHA1 31\r\nBEGIN\r\n",
		"NEGOTIATE_UNIX_FD\r\nAUTH EXTERNAL\r\nBEGIN\r\n",
		"AUTH EXTERNAL\r\nCANCEL\r\nBEGIN\r\n",
	};
	static const char *const good_auth[] = {
		"AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n", /* sd-bus's */
		"AUTH EXTERNAL 30\r\nBEGIN\r\n",
		"AUTH ANONYMOUS 616e6f6e796d6f7573\r\nBEGIN\r\n",
		"AUTH EXTERNAL\r\nBEGIN\r\n",
	};

	for (size_t i = 0; i < sizeof(bad_auth) / sizeof(bad_auth[0]); i++) {
		s->n = 0;
		put(s, "", 1);
		put(s, bad_auth[i], strlen(bad_auth[i]));
		call(s, "Unwrap", 1, 0, 0, 8);
		expect_refused(s, "authentication exchange");
	}
	for (size_t i = 0; i < sizeof(good_auth) / sizeof(good_auth[0]); i++) {
		outcome o;

		s->n = 0;
		put(s, "", 1);
		put(s, good_auth[i], strlen(good_auth[i]));
		call(s, "Unwrap", 1, 0, 0, 8);
		o = feed(s, 1, TS_DIRECT_MESSAGE_MAX);
		assert_int_equal(o.refused, 0);
		assert_int_equal(o.headers, 1);
	}

	/* No NUL first. */
	s->n = 0;
	put(s, auth, strlen(auth));
	expect_refused(s, "NUL");
	/* An authentication line that never ends. */
	s->n = 0;
	put(s, "", 1);
	put(s, "AUTH EXTERNAL ", 14);
	for (int i = 0; i < 300; i++)
		put(s, "3130303031303030", 16);
	expect_refused(s, "too long");
	/* Not a message after BEGIN. */
	begin(s);
	put(s, "GET / HTTP/1.1\r\n\r\n", 18);
	expect_refused(s, "byte order");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(messages_pass_whole_and_byte_by_byte),
		cmocka_unit_test(header_fields_sd_bus_would_skip_are_refused),
		cmocka_unit_test(sizes_are_bounded_at_the_header),
		cmocka_unit_test(descriptors_and_serials),
		cmocka_unit_test(the_stream_itself),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
