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

#endif
