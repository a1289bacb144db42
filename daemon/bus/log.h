/* log.h — the daemon's log lines, and ts_audit: the one entry point for every security event. */
#ifndef TS_BUS_LOG_H
#define TS_BUS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "bus/message.h"

enum { TS_LOG_ERR = 3, TS_LOG_WARNING = 4, TS_LOG_NOTICE = 5, TS_LOG_INFO = 6, TS_LOG_DEBUG = 7 };

/* Parse "err|warning|notice|info|debug" (or 3..7). -1 if unknown. */
int ts_log_parse_level(const char *s);
void ts_log_set_level(int level);
/*
 * One line on stderr, "<N>" prefixed so the journal keeps the priority, made
 * safe with ts_log_clean (so no argument can start a line of its own). Never
 * pass secret bytes.
 */
void ts_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * s as one printable line in out (cap bytes, NUL-terminated, cut to fit):
 * ASCII control characters and DEL, bytes that are not UTF-8, C1 controls,
 * U+2028/U+2029 and the bidirectional overrides each become "\xNN" per byte;
 * a backslash becomes "\\", so every escape in the output was made here.
 * Returns out.
 */
const char *ts_log_clean(const char *s, char *out, size_t cap);
/*
 * A caller-supplied word made safe for a log or audit line: [A-Za-z0-9._-]
 * kept, anything else '?', cut to size - 1; "-" for NULL or "". Returns buf
 * or the constant "-".
 */
const char *ts_log_word(const char *s, char *buf, size_t size);
/*
 * A security event, the one entry point for every event (log.c): one
 * stderr/journal line with fixed fields
 *   event=unlock vault=NAME owner=UID uid=U pid=P protector=ID result=ok|ERRORNAME
 * then the same event to the audit sinks (journal fields TOKENSEAL_EVENT=...
 * when journald is there, the --audit-log line: audit.c). vault and
 * protector may be NULL ("-"), owner TS_NO_OWNER ("-"); r is 0 or a
 * negative TS_E_*. owner is the vault's owner (names are per owner), uid the
 * caller's. Returns 0, or -TS_E_IO when the audit file could not be written
 * (callers that must not go on without their record check it).
 */
#define TS_NO_OWNER UINT32_MAX
int ts_audit(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector,
             int r);
/* owner as a log word: decimal, or "-" for TS_NO_OWNER. Returns buf or "-". */
const char *ts_log_owner(uint32_t owner, char buf[16]);

/*
 * Where ts_audit hands each event after its log line: the audit sinks
 * (journal fields, --audit-log; audit.c), set once at start. Events before
 * that, or with none set, go to the log only. The sink returns 0 or
 * -TS_E_IO, which ts_audit returns.
 */
typedef int (*ts_audit_sink_fn)(const char *event, const char *vault, uint32_t owner, const ts_caller *caller,
                                const char *protector, int r);
void ts_log_set_audit_sink(ts_audit_sink_fn sink);

#endif
