/* recovery_shape.c — the shape of a typed recovery key, nothing decoded: the daemon's and the client library's (pam_tokenseal) one test of it. */
#include "core/recovery.h"

/* A recovery key's Crockford base32 characters: TS_RECOVERY_KEY_BYTES + TS_RECOVERY_CHECK_BYTES bytes, 5 bits each. */
#define RK_CHARS ((TS_RECOVERY_KEY_BYTES + TS_RECOVERY_CHECK_BYTES) * 8 / 5)

/*
 * The ASCII dash, dot, underscore and white space, and every byte of a
 * non-ASCII character (typographic dashes, soft hyphens, thin or no-break
 * spaces, fullwidth forms...): the key's alphabet is ASCII, and the checksum
 * catches a character lost among them.
 */
int ts_recovery_separator(unsigned char c)
{
	return c == '-' || c == '.' || c == '_' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c >= 0x80;
}

int ts_recovery_looks_like(const char *text, size_t len)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t d = 0;

	for (size_t i = 0; i < len; i++) {
		if (ts_recovery_separator(t[i]))
			continue;
		/* Letters and digits (U and the look-alikes too: a mistyped key is still no PIN); nothing else. */
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z')))
			return 0;
		d++;
	}
	return d >= RK_CHARS - 4 && d <= RK_CHARS + 4;
}
