/* audit.c — the audit trail: every security event to the journal (structured) and to an optional JSON-lines file. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "bus/audit.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/state.h"

static const char *audit_file;
/*
 * Did the last write to the audit file succeed? Set by every write (1 when
 * there is no file). The data methods read it instead of writing per call.
 */
static int audit_healthy = 1;

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

/*
 * One JSON object, one write(2) on an O_APPEND fd: concurrent writers never
 * interleave a line. extra: more members (",\"method\":...") or "".
 */
static int audit_file_write(const char *event, const char *vault, uint32_t owner, const ts_caller *caller,
                            const char *protector, const char *result, const char *extra)
{
	char line[1024], ev[96], va[96], pr[96], re[96], ow[16];
	int fd, n, saved;

	if (!audit_file)
		return 0;
	n = snprintf(line, sizeof(line),
	             "{\"time\":%llu,\"event\":\"%s\",\"vault\":\"%s\",\"owner\":%s,\"uid\":%ld,\"pid\":%ld,"
	             "\"protector\":\"%s\",\"result\":\"%s\"%s}\n",
	             (unsigned long long)ts_now(), json_str(event, ev, sizeof(ev)), json_str(vault, va, sizeof(va)),
	             owner == TS_NO_OWNER ? "null" : ts_log_owner(owner, ow),
	             caller ? (long)caller->uid : -1L, caller ? (long)caller->pid : 0L,
	             json_str(protector, pr, sizeof(pr)), json_str(result, re, sizeof(re)), extra);
	if (n < 0 || (size_t)n >= sizeof(line))
		goto fail;
	if ((fd = open(audit_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
		goto fail;
	if (write(fd, line, (size_t)n) != n || fdatasync(fd) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	if (close(fd) < 0)
		goto fail;
	audit_healthy = 1;
	return 0;
fail:
	audit_healthy = 0;
	return -TS_E_IO;
}

/* The journal entry of one record: TOKENSEAL_* fields, plus METHOD and CALLS for data-use records. */
static void journal_record(const char *ev, const char *va, uint32_t owner, const ts_caller *caller, const char *pr,
                           const char *res, int r, const char *method, unsigned long long calls)
{
	char f[11][TS_VAULT_NAME_MAX + TS_PROTECTOR_ID_MAX + TS_PROTECTOR_TYPE_MAX + 128], ow[16];
	struct iovec iov[11];
	size_t n = 0;

	snprintf(f[n++], sizeof(f[0]), "MESSAGE=tokenseal %s vault=%s result=%s", ev, va, res);
	snprintf(f[n++], sizeof(f[0]), "PRIORITY=%d", r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE);
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_EVENT=%s", ev);
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_VAULT=%s", va);
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_OWNER=%s", ts_log_owner(owner, ow));
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_UID=%ld", caller ? (long)caller->uid : -1L);
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_PID=%ld", caller ? (long)caller->pid : 0L);
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_PROTECTOR=%s", pr);
	snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_RESULT=%s", res);
	if (method)
		snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_METHOD=%s", method);
	if (method && calls)
		snprintf(f[n++], sizeof(f[0]), "TOKENSEAL_CALLS=%llu", calls);
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = f[i];
		iov[i].iov_len = strlen(f[i]);
	}
	(void)sd_journal_sendv(iov, (int)n);
}

int ts_audit_sinks(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector,
                   int r)
{
	char vbuf[TS_VAULT_NAME_MAX + 1], pbuf[TS_PROTECTOR_ID_MAX + TS_PROTECTOR_TYPE_MAX], ebuf[32];
	const char *ev = ts_log_word(event, ebuf, sizeof(ebuf));
	const char *va = ts_log_word(vault, vbuf, sizeof(vbuf));
	const char *pr = ts_log_word(protector, pbuf, sizeof(pbuf));
	const char *res = result_name(r);

	/* Structured fields for journalctl TOKENSEAL_EVENT=unlock; only when journald listens. */
	if (access("/run/systemd/journal/socket", W_OK) == 0)
		journal_record(ev, va, owner, caller, pr, res, r, NULL, 0);
	if (audit_file_write(ev, va, owner, caller, pr, res, "") < 0) {
		ts_log(TS_LOG_ERR, "cannot append to the audit log: %s", strerror(errno));
		return -TS_E_IO;
	}
	return 0;
}

int ts_audit_numbers(const char *event, const char *vault, uint32_t owner, int r, const char *const *names,
                     const uint64_t *values, size_t n)
{
	char vbuf[TS_VAULT_NAME_MAX + 1], ebuf[32], json[256] = "", line[256] = "", ow[16];
	char f[16][TS_VAULT_NAME_MAX + 64];
	const char *ev = ts_log_word(event, ebuf, sizeof(ebuf)), *va = ts_log_word(vault, vbuf, sizeof(vbuf));
	const char *res = result_name(r);
	struct iovec iov[16];
	size_t nf = 0, jl = 0, ll = 0;
	int w;

	if (n > 6)
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < n; i++) {
		w = snprintf(json + jl, sizeof(json) - jl, ",\"%s\":%" PRIu64, names[i], values[i]);
		jl += w > 0 && (size_t)w < sizeof(json) - jl ? (size_t)w : 0;
		w = snprintf(line + ll, sizeof(line) - ll, " %s=%" PRIu64, names[i], values[i]);
		ll += w > 0 && (size_t)w < sizeof(line) - ll ? (size_t)w : 0;
	}
	ts_log(r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE, "event=%s vault=%s owner=%s uid=-1 pid=0 protector=- result=%s%s",
	       ev, va, ts_log_owner(owner, ow), res, line);
	if (access("/run/systemd/journal/socket", W_OK) == 0) {
		snprintf(f[nf++], sizeof(f[0]), "MESSAGE=tokenseal %s vault=%s result=%s%s", ev, va, res, line);
		snprintf(f[nf++], sizeof(f[0]), "PRIORITY=%d", r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE);
		snprintf(f[nf++], sizeof(f[0]), "TOKENSEAL_EVENT=%s", ev);
		snprintf(f[nf++], sizeof(f[0]), "TOKENSEAL_VAULT=%s", va);
		snprintf(f[nf++], sizeof(f[0]), "TOKENSEAL_OWNER=%s", ts_log_owner(owner, ow));
		snprintf(f[nf++], sizeof(f[0]), "TOKENSEAL_UID=-1");
		snprintf(f[nf++], sizeof(f[0]), "TOKENSEAL_RESULT=%s", res);
		for (size_t i = 0; i < n; i++) {
			size_t k = (size_t)snprintf(f[nf], sizeof(f[0]), "TOKENSEAL_");
			for (const char *c = names[i]; *c && k + 1 < sizeof(f[0]); c++)
				f[nf][k++] = *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
			snprintf(f[nf] + k, sizeof(f[0]) - k, "=%" PRIu64, values[i]);
			nf++;
		}
		for (size_t i = 0; i < nf; i++) {
			iov[i].iov_base = f[i];
			iov[i].iov_len = strlen(f[i]);
		}
		(void)sd_journal_sendv(iov, (int)nf);
	}
	if (audit_file_write(ev, va, owner, NULL, "-", res, json) < 0) {
		ts_log(TS_LOG_ERR, "cannot append to the audit log: %s", strerror(errno));
		return -TS_E_IO;
	}
	return 0;
}

int ts_audit_gate(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector,
                  sd_bus_error *error)
{
	const ts_policy *p = ts_enforce_policy();
	char what[48];
	int r;

	snprintf(what, sizeof(what), "%s-attempt", event);
	r = ts_audit(what, vault, owner, caller, protector, 0);
	if (r < 0 && (!p || ts_policy_audit_fail_closed(p))) {
		char vbuf[TS_VAULT_NAME_MAX + 1], ow[16];

		ts_log(TS_LOG_ERR, "event=%s vault=%s owner=%s refused: [audit] fail-closed and the audit log cannot be written",
		       event, ts_log_word(vault, vbuf, sizeof(vbuf)), ts_log_owner(owner, ow));
		return ts_bus_error(error, -TS_E_IO,
		                    "refused: the audit record cannot be written and the policy says [audit] fail-closed = yes");
	}
	return 0;
}

/* ---- data-use records ------------------------------------------------------------ */

/*
 * The data methods (Wrap, Unwrap, ...) are too hot for a synchronous write
 * per call (Unwrap costs about one bus round trip). They are recorded per
 * interval instead ([audit] data-interval, default 60 s): one open interval
 * per (vault, caller uid, method), begun by a `data-use` record written
 * before its first call is answered and ended by a `data-use-end` record
 * with the number of calls it admitted. While an interval is open and the
 * last audit write succeeded, a call costs one table lookup and no system
 * call. data-interval = 0: a data-use record for every call, no table.
 */
#define DATA_USE_BUCKETS 64

/* The D-Bus methods recorded (the authorization table's rows with TS_AUTH_DATA_USE). */
static const char *const data_methods[] = {
	"Wrap", "Unwrap", "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch", "UnwrapBatchPacked",
	"RewrapBatchPacked", "AgeUnwrap",
};
#define N_DATA_METHODS (sizeof(data_methods) / sizeof(data_methods[0]))

typedef struct data_use {
	struct data_use *next;
	uint8_t vault_id[TS_VAULT_ID_BYTES];
	uid_t uid;
	unsigned method;                /* index into data_methods */
	uint64_t end;                   /* CLOCK_MONOTONIC µs: the interval is over */
	unsigned long long calls;       /* calls answered in the interval */
	char vault[TS_VAULT_NAME_MAX + 1];
	uint32_t owner;
} data_use;

static data_use *data_use_table[DATA_USE_BUCKETS];
static size_t n_data_use;
static sd_event_source *data_use_timer;

static int fail_closed(void)
{
	const ts_policy *p = ts_enforce_policy();

	return !p || ts_policy_audit_fail_closed(p);
}

static uint64_t interval_usec(void)
{
	return ts_policy_audit_data_interval(ts_enforce_policy()) * 1000000;
}

static unsigned data_use_bucket(const uint8_t *vault_id, uid_t uid, unsigned method)
{
	uint32_t h;

	/* The vault id is random: its first bytes spread well. */
	memcpy(&h, vault_id, sizeof(h));
	h ^= (uint32_t)uid * 0x9e3779b1u ^ method * 0x85ebca6bu;
	return (h ^ h >> 16) % DATA_USE_BUCKETS;
}

/* The event loop's time of this iteration: no system call. */
static uint64_t mono_now(sd_event *ev)
{
	uint64_t now;

	if (ev && sd_event_now(ev, CLOCK_MONOTONIC, &now) >= 0)
		return now;
	return ts_mono_usec();
}

/*
 * One data-use or data-use-end record: the --audit-log line first, then the
 * daemon's log line and the journal, whose result says IOError when the
 * line could not be written and the policy is fail-closed (the call that
 * needed it is refused). 0, or -TS_E_IO when the line could not be written.
 */
static int data_use_record(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, unsigned method,
                           unsigned long long calls)
{
	char vbuf[TS_VAULT_NAME_MAX + 1], extra[80], count[32] = "", ow[16];
	const char *va = ts_log_word(vault, vbuf, sizeof(vbuf)), *m = data_methods[method], *res;
	int r;

	if (calls)
		snprintf(count, sizeof(count), ",\"calls\":%llu", calls);
	snprintf(extra, sizeof(extra), ",\"method\":\"%s\"%s", m, count);
	if ((r = audit_file_write(event, va, owner, caller, "-", "ok", extra)) < 0)
		ts_log(TS_LOG_ERR, "cannot append to the audit log: %s", strerror(errno));
	res = r < 0 && fail_closed() ? result_name(-TS_E_IO) : "ok";
	if (calls)
		snprintf(count, sizeof(count), " calls=%llu", calls);
	ts_log(r < 0 ? TS_LOG_WARNING : TS_LOG_NOTICE,
	       "event=%s vault=%s owner=%s uid=%ld pid=%ld protector=- result=%s method=%s%s", event, va,
	       ts_log_owner(owner, ow), (long)caller->uid, (long)caller->pid, res, m, count);
	if (access("/run/systemd/journal/socket", W_OK) == 0)
		journal_record(event, va, owner, caller, "-", res, r < 0 ? -TS_E_IO : 0, m, calls);
	return r;
}

/* End an interval: its data-use-end record. 0, or -TS_E_IO when it could not be written. */
static int data_use_end(const data_use *u)
{
	ts_caller c = { .uid = u->uid, .pid = 0 };

	return data_use_record("data-use-end", u->vault, u->owner, &c, u->method, u->calls);
}

static void data_use_unlink(data_use *u)
{
	data_use **pp = &data_use_table[data_use_bucket(u->vault_id, u->uid, u->method)];

	for (; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			n_data_use--;
			free(u);
			return;
		}
}

static int on_data_use_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Have the timer fire at the earliest end of an open interval (or stop it when none is open). */
static void data_use_arm(sd_event *ev, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	int r;

	for (size_t b = 0; b < DATA_USE_BUCKETS; b++)
		for (data_use *u = data_use_table[b]; u; u = u->next)
			if (u->end < next)
				next = u->end;
	if (next == UINT64_MAX) {
		if (data_use_timer)
			(void)sd_event_source_set_enabled(data_use_timer, SD_EVENT_OFF);
		return;
	}
	/* An interval whose end could not be written is retried an interval later. */
	if (next <= now)
		next = now + (interval_usec() ? interval_usec() : 60 * 1000000ULL);
	if (!data_use_timer) {
		if (!ev)
			return;
		r = sd_event_add_time(ev, &data_use_timer, CLOCK_MONOTONIC, next, 1000000, on_data_use_timer, NULL);
		if (r < 0)
			ts_log(TS_LOG_WARNING, "cannot arm the data-use timer: %s", strerror(-r));
		return;
	}
	if (sd_event_source_set_time(data_use_timer, next) < 0 ||
	    sd_event_source_set_enabled(data_use_timer, SD_EVENT_ONESHOT) < 0)
		ts_log(TS_LOG_WARNING, "cannot re-arm the data-use timer");
}

/*
 * Intervals that are over get their data-use-end record. With fail-closed,
 * one whose record cannot be written stays (its calls still counted), and
 * the next call or the next tick writes it; without, it is dropped (its log
 * line says how many calls it had).
 */
static int on_data_use_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	uint64_t now = mono_now(sd_event_source_get_event(s));
	int closed = fail_closed();

	(void)usec;
	(void)userdata;
	for (size_t b = 0; b < DATA_USE_BUCKETS; b++)
		for (data_use *u = data_use_table[b], *next; u; u = next) {
			next = u->next;
			if (u->end > now)
				continue;
			if (data_use_end(u) == 0 || !closed)
				data_use_unlink(u);
		}
	data_use_arm(sd_event_source_get_event(s), now);
	return 0;
}

int ts_audit_data_use(ts_vault_entry *e, const ts_caller *caller, const char *method_name, sd_bus_error *error)
{
	const uint8_t *id = e->vault->id;
	uint64_t now, interval = interval_usec();
	int closed = fail_closed(), enabled;
	unsigned method;
	data_use *u;

	for (method = 0; method < N_DATA_METHODS; method++)
		if (strcmp(method_name, data_methods[method]) == 0)
			break;
	if (method == N_DATA_METHODS)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, "not a data method");
	if (interval == 0) {
		if (data_use_record("data-use", e->vault->name, e->vault->owner_uid, caller, method, 0) < 0 && closed)
			goto refuse;
		return 0;
	}
	now = mono_now(e->d->event);
	for (u = data_use_table[data_use_bucket(id, caller->uid, method)]; u; u = u->next)
		if (u->uid == caller->uid && u->method == method && memcmp(u->vault_id, id, TS_VAULT_ID_BYTES) == 0)
			break;
	/* The hot path: an open interval, and the last audit write went through (or fail-open). */
	if (u && now < u->end && (audit_healthy || !closed)) {
		u->calls++;
		return 0;
	}
	/*
	 * A new interval, because none is open, the open one is over, or an
	 * audit write failed since it began: then this call writes its records
	 * itself, and is refused if they cannot be written. The old interval
	 * ends first, with its count (kept when that record cannot be written).
	 */
	if (u && data_use_end(u) < 0 && closed)
		goto refuse;
	if (u)
		data_use_unlink(u);
	if (data_use_record("data-use", e->vault->name, e->vault->owner_uid, caller, method, 0) < 0 && closed)
		goto refuse;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return 0; /* recorded; the next call records again */
	memcpy(u->vault_id, id, TS_VAULT_ID_BYTES);
	u->uid = caller->uid;
	u->method = method;
	u->end = now + interval;
	u->calls = 1;
	snprintf(u->vault, sizeof(u->vault), "%s", e->vault->name);
	u->owner = e->vault->owner_uid;
	u->next = data_use_table[data_use_bucket(id, caller->uid, method)];
	data_use_table[data_use_bucket(id, caller->uid, method)] = u;
	n_data_use++;
	if (!data_use_timer || n_data_use == 1 ||
	    (sd_event_source_get_enabled(data_use_timer, &enabled) >= 0 && enabled == SD_EVENT_OFF))
		data_use_arm(e->d->event, now);
	return 0;
refuse:
	ts_log(TS_LOG_ERR,
	       "event=data-use vault=%s owner=%" PRIu32 " uid=%ld method=%s refused: [audit] fail-closed and the audit log "
	       "cannot be written", e->vault->name, e->vault->owner_uid, (long)caller->uid, data_methods[method]);
	return ts_bus_error(error, -TS_E_IO,
	                    "refused: the audit record cannot be written and the policy says [audit] fail-closed = yes");
}

void ts_audit_data_stop(void)
{
	for (size_t b = 0; b < DATA_USE_BUCKETS; b++)
		while (data_use_table[b]) {
			(void)data_use_end(data_use_table[b]);
			data_use_unlink(data_use_table[b]);
		}
	data_use_timer = sd_event_source_disable_unref(data_use_timer);
}
