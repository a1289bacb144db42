/*
 * fuzz_age_stanza.c — libFuzzer harness: what age-plugin-tokenseal reads from age (the input is
 * its stdin: lines of stanzas), through the plugin's own stanza parser (cli/age-plugin/stanza.c)
 * and the core's parsers of what the stanzas carry: tokenseal stanzas, recipients, identities.
 */
#define _GNU_SOURCE 1
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "core/age.h"
#include "fuzz.h"
#include "stanza.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ts_stanza st, again;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (sodium_init() < 0 || ts_stanza_init(&st) < 0 || ts_stanza_init(&again) < 0)
		abort();
	return 0;
}

/* Writing a stanza and reading it back gives the same type, arguments and body. */
static void check_round_trip(const ts_stanza *s)
{
	int fd = memfd_create("stanza", 0), r = 0;
	char line[TS_STANZA_LINE_MAX + 1];
	size_t len;

	TS_FUZZ_CHECK(fd >= 0);
	TS_FUZZ_CHECK(ts_stanza_write(fd, s->type, s->args, s->n_args, s->body, s->body_len) == 0);
	TS_FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	while (r == 0 && ts_stanza_read_line(fd, line, sizeof(line), &len) == 1)
		r = ts_stanza_feed(&again, line, len);
	close(fd);
	TS_FUZZ_CHECK(r == 1);
	TS_FUZZ_CHECK(strcmp(again.type, s->type) == 0 && again.n_args == s->n_args);
	for (size_t i = 0; i < s->n_args; i++)
		TS_FUZZ_CHECK(strcmp(again.args[i], s->args[i]) == 0);
	TS_FUZZ_CHECK(again.body_len == s->body_len && memcmp(again.body, s->body, s->body_len) == 0);
	/* The next feed starts afresh. */
	again.in_body = 0;
}

/* What a stanza carries, through the core's parsers; 1 when it was one of ours and valid. */
static int check_payload(const ts_stanza *s)
{
	if (strcmp(s->type, "recipient-stanza") == 0 && s->n_args >= 2 && strcmp(s->args[1], TS_AGE_STANZA_TYPE) == 0) {
		ts_age_stanza a;
		char tag[12], ver[6], share[44];

		if (ts_age_stanza_parse(s->args + 2, s->n_args - 2, s->body, s->body_len, &a) < 0)
			return 0;
		/* One spelling: the arguments accepted are exactly what the formatter writes. */
		TS_FUZZ_CHECK(ts_age_stanza_format(&a, tag, ver, share) == 0);
		TS_FUZZ_CHECK(strcmp(tag, s->args[2]) == 0 && strcmp(ver, s->args[3]) == 0 && strcmp(share, s->args[4]) == 0);
		return 1;
	}
	if (strcmp(s->type, "add-recipient") == 0 && s->n_args == 1) {
		ts_age_recipient rec;
		char back[TS_AGE_STRING_MAX];

		if (ts_age_recipient_decode(s->args[0], strlen(s->args[0]), &rec) < 0)
			return 0;
		TS_FUZZ_CHECK(ts_age_recipient_encode(&rec, back) == 0 && strcmp(back, s->args[0]) == 0);
		return 1;
	}
	if (strcmp(s->type, "add-identity") == 0 && s->n_args == 1) {
		uint8_t id[TS_VAULT_ID_BYTES];
		char back[TS_AGE_STRING_MAX];

		if (ts_age_identity_decode(s->args[0], strlen(s->args[0]), id) < 0)
			return 0;
		TS_FUZZ_CHECK(ts_age_identity_encode(id, back) == 0 && strcasecmp(back, s->args[0]) == 0);
		return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0, complete = 0, ours = 0;
	int bad = 0;

	st.in_body = 0;
	for (size_t i = 0; i <= size; i++) {
		char *line;
		int r;

		if (i < size && data[i] != '\n')
			continue;
		if (i == size && start == size)
			break;
		/* An exactly sized copy: an over-read shows. */
		if ((line = malloc(i - start + 1)) == NULL)
			abort();
		memcpy(line, data + start, i - start);
		{
			int header = !st.in_body, nul = memchr(line, '\0', i - start) != NULL;

			r = ts_stanza_feed(&st, line, i - start);
			/* A header line with a NUL in it is refused, never read as its words up to the NUL. */
			if (header && nul)
				TS_FUZZ_CHECK(r < 0);
		}
		free(line);
		start = i + 1;
		if (r < 0) {
			bad = 1;
			continue;
		}
		if (r == 1) {
			complete++;
			TS_FUZZ_CHECK(st.body_len <= TS_STANZA_BODY_MAX && st.n_args <= TS_STANZA_ARGS_MAX);
			check_round_trip(&st);
			ours += (size_t)check_payload(&st);
		}
	}
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(!bad && complete > 0 && ours > 0 && !st.in_body);
	return 0;
}
