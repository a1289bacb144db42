/* text.h — the text primitives the parsers share: one unsigned-number reader, one whitespace trim. */
#ifndef TS_TEXT_H
#define TS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/*
 * The len bytes at s (no NUL needed) as a decimal number of at most max:
 * digits only, no sign, no space, no leading zero (one spelling per
 * number). 0 and *ret, or -TS_E_INVALID_ARGS.
 */
int ts_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *ret);

/* Drop the ASCII whitespace (space, \t, \n, \r, \v, \f) around a text form: *text and *len are moved in. */
void ts_text_trim(const char **text, size_t *len);

/*
 * A machine's name in escrow records: [A-Za-z0-9_-]{1,TS_MACHINE_ID_MAX}, so
 * it goes into an LDAP DN and filter unescaped. ts_machine_id_read: the
 * first line of path (/etc/machine-id) into out: 0, -TS_E_IO (unreadable)
 * or -TS_E_INVALID_ARGS (not such a name).
 */
#define TS_MACHINE_ID_MAX 64
int ts_machine_id_valid(const char *s);
int ts_machine_id_read(const char *path, char out[TS_MACHINE_ID_MAX + 1]);

#endif
