/* log.c — tokensealed's log lines: one line per event on stderr, priority-prefixed for the journal. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/daemon.h"
#include "bus/policy_enforce.h"

static int log_level = TS_LOG_INFO;

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

void ts_log(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* "<N>" is how journald's stdout/stderr stream learns the priority (sd-daemon(3)). */
	fprintf(stderr, "<%d>tokensealed: %s\n", level, line);
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

void ts_log_event(const char *event, const char *vault, const ts_caller *caller,
                  const char *protector, int r)
{
	(void)ts_log_event_r(event, vault, caller, protector, r);
}

int ts_log_event_r(const char *event, const char *vault, const ts_caller *caller,
                   const char *protector, int r)
{
	char vbuf[TS_VAULT_NAME_MAX + 1], pbuf[TS_PROTECTOR_ID_MAX + TS_PROTECTOR_TYPE_MAX];
	const char *result = "ok";
	const char *name;

	if (r < 0) {
		/* The short D-Bus error name: stable and greppable. */
		name = ts_error_dbus_name(r);
		result = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
	}
	ts_log(r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE,
	       "event=%s vault=%s uid=%ld pid=%ld protector=%s result=%s", event,
	       ts_log_word(vault, vbuf, sizeof(vbuf)), caller ? (long)caller->uid : -1L,
	       caller ? (long)caller->pid : 0L, ts_log_word(protector, pbuf, sizeof(pbuf)), result);
	/* The same event to the audit sinks (journal fields, --audit-log): audit.c. */
	return ts_audit_sinks(event, vault, caller, protector, r);
}
