/* log.c — tokensealed's log lines: one line per event on stderr, priority-prefixed for the journal. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/log.h"
#include "bus/message.h"
#include "core/vault.h"

static int log_level = TS_LOG_INFO;
static ts_audit_sink_fn audit_sink;

int ts_log_parse_level(const char *s)
{
	static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
	char *end;
	long l;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	if (strcmp(s, "error") == 0)
		return TS_LOG_ERR;
	l = strtol(s, &end, 10);
	if (*s && !*end && l >= 0 && l <= 7)
		return (int)l;
	return -1;
}

void ts_log_set_level(int level)
{
	log_level = level;
}

/*
 * Length of the well-formed UTF-8 sequence at s (2..4) that is safe to show
 * as it is, or 0: bytes that are not UTF-8, C1 controls (U+0080..U+009F, NEL
 * among them), the line and paragraph separators U+2028/U+2029 (line breaks
 * to some readers) and the bidirectional overrides U+202A..U+202E,
 * U+2066..U+2069 (which reorder what a reader sees).
 */
static size_t utf8_safe_len(const unsigned char *s)
{
	uint32_t cp;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07u;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp <= 0x9f || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
	    (cp >= 0x2066 && cp <= 0x2069))
		return 0;
	return n;
}

const char *ts_log_clean(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, n;

	if (cap == 0)
		return out;
	while (*p) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)*p++;
		} else if (*p == '\\') {
			if (o + 2 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = '\\';
			p++;
		} else if (*p >= 0x80 && (n = utf8_safe_len(p)) > 0) {
			if (o + n >= cap)
				break;
			memcpy(out + o, p, n);
			o += n;
			p += n;
		} else {
			if (o + 4 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0xf];
			p++;
		}
	}
	out[o] = '\0';
	return out;
}

void ts_log(int level, const char *fmt, ...)
{
	char line[1024], clean[4 * sizeof(line)];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/*
	 * One event, one line: whatever the arguments carry (a token helper's
	 * message, a name from another process) cannot start a line of its own.
	 * "<N>" is how journald's stdout/stderr stream learns the priority (sd-daemon(3)).
	 */
	fprintf(stderr, "<%d>tokensealed: %s\n", level, ts_log_clean(line, clean, sizeof(clean)));
}

/* Caller-supplied words (a protector argument) must not forge fields or lines. */
const char *ts_log_word(const char *s, char *buf, size_t size)
{
	size_t i;

	if (!s || !*s)
		return "-";
	for (i = 0; s[i] && i + 1 < size; i++) {
		char c = s[i];
		buf[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		         c == '.' || c == '_' || c == '-' ? c : '?';
	}
	buf[i] = '\0';
	return buf;
}

const char *ts_log_owner(uint32_t owner, char buf[16])
{
	if (owner == TS_NO_OWNER)
		return "-";
	snprintf(buf, 16, "%" PRIu32, owner);
	return buf;
}

void ts_log_set_audit_sink(ts_audit_sink_fn sink)
{
	audit_sink = sink;
}

int ts_audit(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector,
             int r)
{
	char vbuf[TS_VAULT_NAME_MAX + 1], pbuf[TS_PROTECTOR_ID_MAX + TS_PROTECTOR_TYPE_MAX], obuf[16];
	const char *result = "ok";
	const char *name;

	if (r < 0) {
		/* The short D-Bus error name: stable and greppable. */
		name = ts_error_dbus_name(r);
		result = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
	}
	/* Vault names are per owner: the owner's uid says whose "mail" it is. */
	ts_log(r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE,
	       "event=%s vault=%s owner=%s uid=%ld pid=%ld protector=%s result=%s", event,
	       ts_log_word(vault, vbuf, sizeof(vbuf)), ts_log_owner(owner, obuf), caller ? (long)caller->uid : -1L,
	       caller ? (long)caller->pid : 0L, ts_log_word(protector, pbuf, sizeof(pbuf)), result);
	/* The same event to the audit sinks (journal fields, --audit-log): audit.c, set at start. */
	return audit_sink ? audit_sink(event, vault, owner, caller, protector, r) : 0;
}
