/* audit.c — the audit trail: every security event to the journal (structured) and to an optional JSON-lines file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "bus/policy_enforce.h"

static const char *audit_file;

void ts_audit_set_file(const char *path)
{
	audit_file = path;
}

static const char *result_name(int r)
{
	const char *name;

	if (r >= 0)
		return "ok";
	name = ts_error_dbus_name(r);
	return strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
}

/*
 * s as the inside of a JSON string (cut to fit cap): quote, backslash and
 * every byte outside printable ASCII escaped, so the line stays one valid
 * JSON object whatever a caller passes (the fields are words already).
 */
static const char *json_str(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)*p;
		} else if (*p == '"' || *p == '\\') {
			if (o + 2 >= cap)
				break;
			out[o++] = '\\';
			out[o++] = (char)*p;
		} else {
			if (o + 6 >= cap)
				break;
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[*p >> 4];
			out[o + 5] = hex[*p & 0xf];
			o += 6;
		}
	}
	out[o] = '\0';
	return out;
}

/* One JSON object, one write(2) on an O_APPEND fd: concurrent writers never interleave a line. */
static int audit_file_write(const char *event, const char *vault, const ts_caller *caller,
                            const char *protector, const char *result)
{
	char line[1024], ev[96], va[96], pr[96], re[96];
	int fd, n, saved;

	if (!audit_file)
		return 0;
	n = snprintf(line, sizeof(line),
	             "{\"time\":%llu,\"event\":\"%s\",\"vault\":\"%s\",\"uid\":%ld,\"pid\":%ld,"
	             "\"protector\":\"%s\",\"result\":\"%s\"}\n",
	             (unsigned long long)ts_now(), json_str(event, ev, sizeof(ev)), json_str(vault, va, sizeof(va)),
	             caller ? (long)caller->uid : -1L, caller ? (long)caller->pid : 0L,
	             json_str(protector, pr, sizeof(pr)), json_str(result, re, sizeof(re)));
	if (n < 0 || (size_t)n >= sizeof(line))
		return -TS_E_IO;
	if ((fd = open(audit_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		return -TS_E_IO;
	if (write(fd, line, (size_t)n) != n || fdatasync(fd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -TS_E_IO;
	}
	if (close(fd) < 0)
		return -TS_E_IO;
	return 0;
}

int ts_audit_sinks(const char *event, const char *vault, const ts_caller *caller, const char *protector, int r)
{
	char vbuf[TS_VAULT_NAME_MAX + 1], pbuf[TS_PROTECTOR_ID_MAX + TS_PROTECTOR_TYPE_MAX], ebuf[32];
	const char *ev = ts_log_word(event, ebuf, sizeof(ebuf));
	const char *va = ts_log_word(vault, vbuf, sizeof(vbuf));
	const char *pr = ts_log_word(protector, pbuf, sizeof(pbuf));
	const char *res = result_name(r);

	/* Structured fields for journalctl TOKENSEAL_EVENT=unlock; only when journald listens. */
	if (access("/run/systemd/journal/socket", W_OK) == 0)
		(void)sd_journal_send("MESSAGE=tokenseal %s vault=%s result=%s", ev, va, res,
		                      "PRIORITY=%d", r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE,
		                      "TOKENSEAL_EVENT=%s", ev, "TOKENSEAL_VAULT=%s", va,
		                      "TOKENSEAL_UID=%ld", caller ? (long)caller->uid : -1L,
		                      "TOKENSEAL_PID=%ld", caller ? (long)caller->pid : 0L,
		                      "TOKENSEAL_PROTECTOR=%s", pr, "TOKENSEAL_RESULT=%s", res, NULL);
	if (audit_file_write(ev, va, caller, pr, res) < 0) {
		ts_log(TS_LOG_ERR, "cannot append to the audit log: %s", strerror(errno));
		return -TS_E_IO;
	}
	return 0;
}

int ts_audit(const char *event, const char *vault, const ts_caller *caller, const char *protector, int r)
{
	return ts_log_event_r(event, vault, caller, protector, r);
}

int ts_audit_gate(const char *event, const char *vault, const ts_caller *caller, const char *protector,
                  sd_bus_error *error)
{
	const ts_policy *p = ts_enforce_policy();
	char what[48];
	int r;

	snprintf(what, sizeof(what), "%s-attempt", event);
	r = ts_audit(what, vault, caller, protector, 0);
	if (r < 0 && (!p || ts_policy_audit_fail_closed(p))) {
		ts_log(TS_LOG_ERR, "event=%s vault=%s refused: [audit] fail-closed and the audit log cannot be written",
		       event, vault ? vault : "-");
		return ts_bus_error(error, -TS_E_IO,
		                    "refused: the audit record cannot be written and the policy says [audit] fail-closed = yes");
	}
	return 0;
}
