/*
 * stanza.h — the stanzas of the age plugin protocol (C2SP age-plugin.md):
 * "-> TYPE ARG...", then the body in unpadded standard base64, 64 columns a
 * line, ended by a shorter (maybe empty) line. Read line by line from a
 * hostile peer with every size bounded; bodies (a file key, a PIN) live in
 * secure memory.
 */
#ifndef TS_AGE_STANZA_H
#define TS_AGE_STANZA_H

#include <stddef.h>
#include <stdint.h>

#define TS_STANZA_LINE_MAX 4096    /* a header or body line, without its '\n' */
#define TS_STANZA_ARGS_MAX 32
#define TS_STANZA_BODY_MAX 16384   /* bytes, decoded */

typedef struct ts_stanza {
	char header[TS_STANZA_LINE_MAX + 1];   /* the header line, cut into type and args with NULs */
	const char *type;
	const char *args[TS_STANZA_ARGS_MAX];
	size_t n_args;
	uint8_t *body;                         /* secure memory, TS_STANZA_BODY_MAX bytes */
	size_t body_len;
	int in_body;                           /* the header was read, the body is not complete */
} ts_stanza;

/* 0, or -TS_E_NOMEM. */
int ts_stanza_init(ts_stanza *s);
/* Wipe and free the body; accepts a stanza never initialised (zeroed). */
void ts_stanza_free(ts_stanza *s);

/*
 * Feed one line (len bytes, without its '\n'; no NUL needed). 1: a stanza
 * is complete (its fields are valid until the next feed, which starts a new
 * one), 0: more lines needed, -TS_E_INVALID_ARGS: malformed (the stanza is
 * dropped and the next feed starts afresh), -TS_E_LIMIT: over a bound.
 */
int ts_stanza_feed(ts_stanza *s, const char *line, size_t len);

/*
 * Write a stanza to fd: type, n args (each 1.. printable ASCII bytes, no
 * space), body (len bytes; may be secret: the encoding is wiped). 0, or
 * -TS_E_INVALID_ARGS, -TS_E_IO.
 */
int ts_stanza_write(int fd, const char *type, const char *const *args, size_t n, const uint8_t *body, size_t len);

/*
 * Read one line from fd into line (cap bytes, NUL-terminated, '\n' dropped;
 * secure memory is the caller's choice). 1 and *ret_len, 0 at end of input
 * (before any byte), or -TS_E_LIMIT (longer than cap - 1), -TS_E_IO.
 */
int ts_stanza_read_line(int fd, char *line, size_t cap, size_t *ret_len);

#endif
