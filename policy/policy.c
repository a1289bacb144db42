/* policy.c — policy files: a strict INI reader on top of libinih, the merged policy, and its evaluators. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "tokenseal.h"
#include "core/escrow.h"
#include "core/internal.h"
#include "core/text.h"
#include "core/vault.h"
#include "policy.h"

#define NAME_MAX_LEN 32            /* [recipient NAME], [unwrap NAME] */
#define MAX_RECIPIENTS TS_VAULT_MAX_ESCROW
#define MAX_RULES 64
#define MAX_LIST 64                /* entries in one list value */
#define MAX_FILES 256
#define DURATION_MAX (100ull * 365 * 86400)

/* ---- the fixed keys --------------------------------------------------------- */

enum {
	K_ALLOWED, K_MIN, K_THRESHOLD,
	K_FIDO2_PIN, K_FIDO2_TOUCH, K_FIDO2_UV,
	K_TPM2_PIN, K_TPM2_PCR,
	K_PKCS11_PIN,
	K_ESCROW_THRESHOLD,
	K_LOCK_IDLE, K_LOCK_SUSPEND, K_LOCK_SCREEN, K_LOCK_TOKEN, K_LOCK_SHARES,
	K_KEYS_MAX_AGE,
	K_AUDIT_FAIL_CLOSED, K_AUDIT_DATA_INTERVAL,
	K_RECOVERY_ATTEMPTS, K_RECOVERY_BACKOFF,
	K_LIMIT_HELPERS, K_LIMIT_JOBS, K_LIMIT_VAULTS,
	K_TANG_ALONE, K_TANG_SERVERS,
	K_PUBLISH, K_LDAP_URI, K_LDAP_BASE, K_LDAP_BIND_DN, K_LDAP_PASSWORD_FILE, K_LDAP_CA_FILE, K_LDAP_CERT_FILE,
	K_LDAP_KEY_FILE, K_MACHINE_ID,
	K_N
};

enum kind { V_TYPES, V_COUNT, V_REQ, V_BOOL, V_DURATION, V_LIMIT, V_ORIGINS, V_PUBLISH, V_URI, V_DN, V_PATH, V_MACHINE };

#define LIMIT_MAX 4096   /* the largest [limits] value: a cap, not a way to turn one off */

static const struct keydef {
	const char *section, *key, *def;
	enum kind kind;
} keys[K_N] = {
	[K_ALLOWED]          = { "protectors", "allowed", "fido2, tpm2, pkcs11, recovery, tang", V_TYPES },
	[K_MIN]              = { "protectors", "min", "1", V_COUNT },
	[K_THRESHOLD]        = { "protectors", "threshold", "1", V_COUNT },
	[K_FIDO2_PIN]        = { "fido2", "pin", "optional", V_REQ },
	[K_FIDO2_TOUCH]      = { "fido2", "touch", "optional", V_REQ },
	[K_FIDO2_UV]         = { "fido2", "uv", "optional", V_REQ },
	[K_TPM2_PIN]         = { "tpm2", "pin", "optional", V_REQ },
	[K_TPM2_PCR]         = { "tpm2", "pcr", "optional", V_REQ },
	[K_PKCS11_PIN]       = { "pkcs11", "pin", "optional", V_REQ },
	[K_ESCROW_THRESHOLD] = { "escrow", "threshold", "1", V_COUNT },
	[K_LOCK_IDLE]        = { "lock", "idle", "off", V_DURATION },
	[K_LOCK_SUSPEND]     = { "lock", "on-suspend", "yes", V_BOOL },
	[K_LOCK_SCREEN]      = { "lock", "on-screen-lock", "yes", V_BOOL },
	[K_LOCK_TOKEN]       = { "lock", "on-token-removal", "yes", V_BOOL },
	[K_LOCK_SHARES]      = { "lock", "share-timeout", "300s", V_DURATION },
	[K_KEYS_MAX_AGE]     = { "keys", "max-age", "off", V_DURATION },
	[K_AUDIT_FAIL_CLOSED] = { "audit", "fail-closed", "no", V_BOOL },
	[K_AUDIT_DATA_INTERVAL] = { "audit", "data-interval", "60s", V_DURATION },
	[K_RECOVERY_ATTEMPTS] = { "recovery", "attempts", "5", V_COUNT },
	[K_RECOVERY_BACKOFF] = { "recovery", "max-backoff", "300s", V_DURATION },
	[K_LIMIT_HELPERS]    = { "limits", "helpers", "8", V_LIMIT },
	[K_LIMIT_JOBS]       = { "limits", "jobs-per-uid", "4", V_LIMIT },
	[K_LIMIT_VAULTS]     = { "limits", "vaults-per-uid", "32", V_LIMIT },
	[K_TANG_ALONE]       = { "tang", "alone", "no", V_BOOL },
	[K_TANG_SERVERS]     = { "tang", "servers", "none", V_ORIGINS },
	[K_PUBLISH]          = { "escrow", "publish", "off", V_PUBLISH },
	[K_LDAP_URI]         = { "escrow", "ldap-uri", "none", V_URI },
	[K_LDAP_BASE]        = { "escrow", "ldap-base", "none", V_DN },
	[K_LDAP_BIND_DN]     = { "escrow", "ldap-bind-dn", "none", V_DN },
	[K_LDAP_PASSWORD_FILE] = { "escrow", "ldap-password-file", "none", V_PATH },
	[K_LDAP_CA_FILE]     = { "escrow", "ldap-ca-file", "none", V_PATH },
	[K_LDAP_CERT_FILE]   = { "escrow", "ldap-cert-file", "none", V_PATH },
	[K_LDAP_KEY_FILE]    = { "escrow", "ldap-key-file", "none", V_PATH },
	[K_MACHINE_ID]       = { "escrow", "machine-id", "/etc/machine-id", V_MACHINE },
};

/* Protector types, indexed like the bits of ts_policy.allowed. */
enum { T_FIDO2, T_TPM2, T_PKCS11, T_RECOVERY, T_TANG, T_N };
static const char *const type_names[T_N] = { "fido2", "tpm2", "pkcs11", "recovery", "tang" };

/* Keys of [unwrap] / [unwrap NAME] sections. */
enum { R_VAULTS, R_USERS, R_GROUPS, R_UNITS, R_EXES, R_N };
static const char *const rule_keys[R_N] = { "vaults", "users", "groups", "units", "executables" };

/* ---- the policy ------------------------------------------------------------- */

struct origin {
	const char *file;           /* points into ts_policy.files; NULL = built-in default */
	unsigned line;
};

struct list {
	char **items;
	size_t n;
};

struct recipient {
	char *name;
	char *text;                 /* the key as written (canonical) */
	uint8_t *pub;               /* malloc()ed key: X25519 (32 bytes) or RSA SPKI DER */
	size_t pub_len;
	unsigned type;              /* TS_ESCROW_TYPE_* */
	struct origin section, key;
};

struct rule {
	char *name;                 /* "" for a plain [unwrap] */
	char *section;              /* "unwrap" or "unwrap NAME" */
	struct origin at;           /* first key seen: where the rule is named in messages */
	struct origin o[R_N];
	char *text[R_N];
	struct list vaults, units, exes;
	uint32_t *uids, *gids;
	size_t n_uids, n_gids;
};

struct ts_policy {
	char **files;
	size_t n_files;

	struct origin o[K_N];
	char *text[K_N];            /* as written (trimmed); NULL = default */

	unsigned allowed;           /* bit per T_* */
	unsigned min, threshold, escrow_m;
	unsigned require[T_N];      /* TS_POLICY_* bits that protectors of a type must have */
	uint64_t idle, max_age;
	unsigned lock;
	int fail_closed;
	int tang_alone;             /* [tang] alone: tang protectors may open a vault without another protector */
	int publish;                /* [escrow] publish: TS_POLICY_PUBLISH_* */
	struct list tang_servers;   /* [tang] servers: "scheme://host:port" each (ts_policy_url_origin); none = no tang */
	uint64_t data_interval;     /* seconds; 0 = a data-use record per call */
	unsigned recovery_attempts;  /* wrong recovery keys before the back-off starts */
	uint64_t recovery_backoff;   /* longest back-off, seconds; 0 = none */
	uint64_t share_timeout;      /* k-of-n shares given to Unlock are forgotten after this, seconds */
	unsigned limit_helpers;      /* token helpers alive at once */
	unsigned limit_jobs;         /* Unlock/AddProtector calls in flight per uid */
	unsigned limit_vaults;       /* vaults per owner */

	struct recipient rcp[MAX_RECIPIENTS];
	size_t n_rcp;
	struct rule *rules;
	size_t n_rules;

	ts_policy_setting *settings;
	size_t n_settings;
	char **strings;             /* owned strings of settings */
	size_t n_strings;
};

/* ---- small helpers ---------------------------------------------------------- */

static void set_msg(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!msg || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static void rule_free(struct rule *r)
{
	free(r->name);
	free(r->section);
	for (int k = 0; k < R_N; k++)
		free(r->text[k]);
	list_free(&r->vaults);
	list_free(&r->units);
	list_free(&r->exes);
	free(r->uids);
	free(r->gids);
}

void ts_policy_free(ts_policy *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n_files; i++)
		free(p->files[i]);
	free(p->files);
	for (i = 0; i < K_N; i++)
		free(p->text[i]);
	for (i = 0; i < p->n_rcp; i++) {
		free(p->rcp[i].name);
		free(p->rcp[i].text);
		free(p->rcp[i].pub);
	}
	for (i = 0; i < p->n_rules; i++)
		rule_free(&p->rules[i]);
	free(p->rules);
	list_free(&p->tang_servers);
	for (i = 0; i < p->n_strings; i++)
		free(p->strings[i]);
	free(p->strings);
	free(p->settings);
	free(p);
}

static ts_policy *policy_new(void)
{
	ts_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->allowed = (1u << T_N) - 1;
	p->min = 1;
	p->threshold = 1;
	p->escrow_m = 1;
	p->recovery_attempts = 5;
	p->recovery_backoff = 300;
	p->share_timeout = 300;
	p->limit_helpers = 8;
	p->limit_jobs = 4;
	p->limit_vaults = 32;
	p->data_interval = 60;
	p->lock = TS_POLICY_LOCK_SUSPEND | TS_POLICY_LOCK_SCREEN | TS_POLICY_LOCK_TOKEN_REMOVAL;
	return p;
}

static int name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int name_valid(const char *s, size_t len)
{
	if (len == 0 || len > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i]))
			return 0;
	return 1;
}

/* ---- parse state -------------------------------------------------------------- */

struct pstate {
	ts_policy *p;
	const char *file;
	const char *buf;
	size_t len, pos;
	unsigned line;              /* of the line inih is working on */
	unsigned err_line;          /* 0: no error yet */
	int rc;
	char *err;
	size_t errlen;
};

static int fail(struct pstate *st, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct pstate *st, int rc, const char *fmt, ...)
{
	char what[TS_POLICY_MSG_MAX];
	va_list ap;

	if (st->err_line)
		return 0;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	st->err_line = st->line ? st->line : 1;
	st->rc = rc;
	set_msg(st->err, st->errlen, "%s:%u: %s", st->file, st->err_line, what);
	return 0;  /* what an inih handler returns for an error */
}

/*
 * A section header is valid when it is one of the fixed sections,
 * "recipient NAME", "unwrap" or "unwrap NAME". Checked here, on every header
 * line, because inih only reports a section with its first key: an empty
 * misspelled section would otherwise go unnoticed.
 */
static int section_valid(const char *s, size_t len)
{
	static const char *const fixed[] = { "protectors", "fido2", "tpm2", "pkcs11", "escrow", "lock",
	                                     "keys", "audit", "unwrap", "recovery", "limits", "tang" };

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (len == strlen(fixed[i]) && memcmp(s, fixed[i], len) == 0)
			return 1;
	if (len > 10 && memcmp(s, "recipient ", 10) == 0)
		return name_valid(s + 10, len - 10);
	if (len > 7 && memcmp(s, "unwrap ", 7) == 0)
		return name_valid(s + 7, len - 7);
	return 0;
}

/*
 * inih's line source. It hands inih one line at a time, so it knows the line
 * number (inih's handler does not get it in Debian's build), and it refuses
 * what inih would silently accept: NUL bytes, control characters, invalid
 * UTF-8, lines longer than inih's buffer (inih would split them in two).
 */
static char *reader(char *str, int num, void *stream)
{
	struct pstate *st = stream;
	const char *l, *nl, *t;
	size_t n, i;

	if (st->err_line || st->pos >= st->len || num < 3)
		return NULL;
	l = st->buf + st->pos;
	nl = memchr(l, '\n', st->len - st->pos);
	n = nl ? (size_t)(nl - l) : st->len - st->pos;
	st->line++;
	st->pos += n + (nl ? 1 : 0);
	if (n > (size_t)num - 3) {
		fail(st, -TS_E_INVALID_ARGS, "line too long (at most %d characters)", num - 3);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)l[i];

		if ((c < 0x20 && c != '\t' && !(c == '\r' && i == n - 1)) || c == 0x7f) {
			fail(st, -TS_E_INVALID_ARGS, "control character 0x%02x", c);
			return NULL;
		}
	}
	if (n && !ts_utf8_valid((const uint8_t *)l, n - (l[n - 1] == '\r'))) {
		fail(st, -TS_E_INVALID_ARGS, "not valid UTF-8");
		return NULL;
	}
	for (t = l; t < l + n && (*t == ' ' || *t == '\t'); t++)
		;
	if (t < l + n && *t == '[') {
		const char *end = memchr(t, ']', (size_t)(l + n - t));

		if (!end) {
			fail(st, -TS_E_INVALID_ARGS, "section header without ']'");
			return NULL;
		}
		if (!section_valid(t + 1, (size_t)(end - t - 1))) {
			fail(st, -TS_E_INVALID_ARGS, "unknown section [%.*s]", (int)(end - t - 1), t + 1);
			return NULL;
		}
	}
	memcpy(str, l, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	return str;
}

/* ---- values ------------------------------------------------------------------ */



/* "off", "0", or N followed by s, m, h, d or w. */
static int parse_duration(const char *s, uint64_t *ret)
{
	static const struct { char unit; uint64_t secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 },
	};
	char num[24];
	size_t len = strlen(s);
	uint64_t v;

	if (strcmp(s, "off") == 0 || strcmp(s, "never") == 0 || strcmp(s, "0") == 0) {
		*ret = 0;
		return 0;
	}
	if (len < 2 || len > sizeof(num))
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (s[len - 1] != units[i].unit)
			continue;
		memcpy(num, s, len - 1);
		num[len - 1] = '\0';
		if (ts_parse_uint(num, strlen(num), DURATION_MAX, &v) < 0 || v == 0 || v > DURATION_MAX / units[i].secs)
			return -1;
		*ret = v * units[i].secs;
		return 0;
	}
	return -1;
}

static int parse_bool(const char *s, int *ret)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "on")) {
		*ret = 1;
		return 0;
	}
	if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "off")) {
		*ret = 0;
		return 0;
	}
	return -1;
}

/*
 * Split a comma-separated value into trimmed, non-empty, distinct items.
 * Returns 0, or fails st with the reason.
 */
static int split_list_items(struct pstate *st, const char *section, const char *key, const char *value,
                            struct list *out)
{
	const char *s = value, *e, *a, *b;
	char *item;

	while (1) {
		e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		for (a = s; a < e && (*a == ' ' || *a == '\t'); a++)
			;
		for (b = e; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
			;
		if (a == b)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: empty list entry", section, key), -1;
		if (out->n >= MAX_LIST)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: more than %d entries", section, key, MAX_LIST), -1;
		if ((item = strndup(a, (size_t)(b - a))) == NULL)
			return fail(st, -TS_E_NOMEM, "out of memory"), -1;
		for (size_t i = 0; i < out->n; i++)
			if (strcmp(out->items[i], item) == 0) {
				fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' listed twice", section, key, item);
				free(item);
				return -1;
			}
		{
			char **ni = realloc(out->items, (out->n + 1) * sizeof(*ni));

			if (!ni) {
				free(item);
				return fail(st, -TS_E_NOMEM, "out of memory"), -1;
			}
			out->items = ni;
			out->items[out->n++] = item;
		}
		if (!*e)
			return 0;
		s = e + 1;
	}
}

/* split_list_items, and on failure nothing is left allocated in out. */
static int split_list(struct pstate *st, const char *section, const char *key, const char *value, struct list *out)
{
	if (split_list_items(st, section, key, value, out) < 0) {
		list_free(out);
		return -1;
	}
	return 0;
}

/*
 * The origin of an http(s) URL as "scheme://host:port": host lowercased,
 * the port explicit (80, 443 by default). The host is a name (letters,
 * digits, '-', '.'), an IPv4 address, or an IPv6 one in brackets; nothing
 * else (no user part, no percent-encoding, no control or space anywhere).
 * With path_ok = 0 only an empty path or "/" may follow. 0, or -1.
 */
int ts_policy_url_origin(const char *url, int path_ok, char *out, size_t cap)
{
	const char *h, *e, *port_s = NULL;
	char host[256];
	size_t hl, sl;
	unsigned long port;
	int https;

	if (!url || !out || cap == 0)
		return -1;
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '\\')
			return -1;
	if (strncmp(url, "http://", 7) == 0)
		https = 0, h = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		https = 1, h = url + 8;
	else
		return -1;
	e = h + strcspn(h, "/?#");
	if (*e == '?' || *e == '#' || (*e == '/' && !path_ok && e[1]))
		return -1;
	if (memchr(h, '@', (size_t)(e - h)) || memchr(h, '%', (size_t)(e - h)))
		return -1;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(e - h));

		if (!rb || rb == h + 1 || strspn(h + 1, "0123456789abcdefABCDEF:.") != (size_t)(rb - h - 1))
			return -1;
		hl = (size_t)(rb - h + 1);
		if (rb + 1 < e) {
			if (rb[1] != ':')
				return -1;
			port_s = rb + 2;
		}
	} else {
		const char *colon = memchr(h, ':', (size_t)(e - h));

		hl = (size_t)((colon ? colon : e) - h);
		if (hl == 0 || strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") < hl)
			return -1;
		if (colon)
			port_s = colon + 1;
	}
	if (hl >= sizeof(host))
		return -1;
	if (port_s) {
		char *end;

		sl = (size_t)(e - port_s);
		if (sl == 0 || sl > 5 || strspn(port_s, "0123456789") < sl)
			return -1;
		port = strtoul(port_s, &end, 10);
		if (port == 0 || port > 65535)
			return -1;
	} else
		port = https ? 443 : 80;
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] - 'A' + 'a' : h[i]);
	host[hl] = '\0';
	return (size_t)snprintf(out, cap, "%s://%s:%lu", https ? "https" : "http", host, port) < cap ? 0 : -1;
}

/* "file:line" or "built-in default" into buf. */
static const char *where(const struct origin *o, char *buf, size_t len)
{
	if (!o->file)
		return "built-in default";
	snprintf(buf, len, "%s:%u", o->file, o->line);
	return buf;
}

/* ---- the handler: one key = value ------------------------------------------- */

static int set_fixed(struct pstate *st, int k, const char *value)
{
	ts_policy *p = st->p;
	const struct keydef *d = &keys[k];
	char at[PATH_MAX + 16];
	struct list l = { 0 };
	uint64_t u;
	int b;

	if (p->o[k].line)
		return fail(st, -TS_E_INVALID_ARGS, "[%s] %s already set at %s", d->section, d->key,
		            where(&p->o[k], at, sizeof(at)));
	switch (d->kind) {
	case V_TYPES:
		if (split_list(st, d->section, d->key, value, &l) < 0)
			return 0;
		p->allowed = 0;
		for (size_t i = 0; i < l.n; i++) {
			int t;

			for (t = 0; t < T_N; t++)
				if (strcmp(l.items[i], type_names[t]) == 0)
					break;
			if (t == T_N) {
				fail(st, -TS_E_INVALID_ARGS, "[%s] %s: unknown protector type '%s' (known: fido2, tpm2, pkcs11, recovery, tang)",
				     d->section, d->key, l.items[i]);
				list_free(&l);
				return 0;
			}
			p->allowed |= 1u << t;
		}
		list_free(&l);
		break;
	case V_COUNT:
		if (ts_parse_uint(value, strlen(value), TS_VAULT_MAX_PROTECTORS, &u) < 0 || u == 0)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not a number from 1 to %d",
			            d->section, d->key, value, TS_VAULT_MAX_PROTECTORS);
		if (k == K_MIN)
			p->min = (unsigned)u;
		else if (k == K_THRESHOLD)
			p->threshold = (unsigned)u;
		else if (k == K_RECOVERY_ATTEMPTS)
			p->recovery_attempts = (unsigned)u;
		else
			p->escrow_m = (unsigned)u;
		break;
	case V_LIMIT:
		if (ts_parse_uint(value, strlen(value), LIMIT_MAX, &u) < 0 || u == 0)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not a number from 1 to %d",
			            d->section, d->key, value, LIMIT_MAX);
		if (k == K_LIMIT_HELPERS)
			p->limit_helpers = (unsigned)u;
		else if (k == K_LIMIT_JOBS)
			p->limit_jobs = (unsigned)u;
		else
			p->limit_vaults = (unsigned)u;
		break;
	case V_REQ: {
		static const struct { int k, type; unsigned bit; } map[] = {
			{ K_FIDO2_PIN, T_FIDO2, TS_POLICY_PIN }, { K_FIDO2_TOUCH, T_FIDO2, TS_POLICY_TOUCH },
			{ K_FIDO2_UV, T_FIDO2, TS_POLICY_UV }, { K_TPM2_PIN, T_TPM2, TS_POLICY_PIN },
			{ K_TPM2_PCR, T_TPM2, TS_POLICY_PCR }, { K_PKCS11_PIN, T_PKCS11, TS_POLICY_PIN },
		};
		int req;

		if (strcmp(value, "required") == 0)
			req = 1;
		else if (strcmp(value, "optional") == 0)
			req = 0;
		else
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is neither 'required' nor 'optional'",
			            d->section, d->key, value);
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (map[i].k == k && req)
				p->require[map[i].type] |= map[i].bit;
		break;
	}
	case V_BOOL:
		if (parse_bool(value, &b) < 0)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not yes or no", d->section, d->key, value);
		if (k == K_AUDIT_FAIL_CLOSED) {
			p->fail_closed = b;
		} else if (k == K_TANG_ALONE) {
			p->tang_alone = b;
		} else {
			unsigned bit = k == K_LOCK_SUSPEND ? TS_POLICY_LOCK_SUSPEND :
			               k == K_LOCK_SCREEN ? TS_POLICY_LOCK_SCREEN : TS_POLICY_LOCK_TOKEN_REMOVAL;

			p->lock = b ? p->lock | bit : p->lock & ~bit;
		}
		break;
	case V_ORIGINS:
		if (split_list(st, d->section, d->key, value, &l) < 0)
			return 0;
		for (size_t i = 0; i < l.n; i++) {
			char origin[300];

			if (ts_policy_url_origin(l.items[i], 0, origin, sizeof(origin)) < 0) {
				fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not http://HOST[:PORT] or https://HOST[:PORT] "
				     "(a name, an IPv4 address or [IPv6]; no path, user or query)", d->section, d->key, l.items[i]);
				list_free(&l);
				return 0;
			}
			free(l.items[i]);
			if ((l.items[i] = strdup(origin)) == NULL) {
				l.n = i;
				list_free(&l);
				return fail(st, -TS_E_NOMEM, "out of memory");
			}
		}
		p->tang_servers = l;
		break;
	case V_PUBLISH:
		if (strcmp(value, "off") == 0)
			p->publish = TS_POLICY_PUBLISH_OFF;
		else if (strcmp(value, "optional") == 0)
			p->publish = TS_POLICY_PUBLISH_OPTIONAL;
		else if (strcmp(value, "required") == 0)
			p->publish = TS_POLICY_PUBLISH_REQUIRED;
		else
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not off, optional or required", d->section,
			            d->key, value);
		break;
	case V_URI:
		if (strcmp(value, "none") == 0)
			break;
		if (strncmp(value, "ldapi://", 8) != 0 && strncmp(value, "ldaps://", 8) != 0 &&
		    strncmp(value, "ldap://", 7) != 0)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not an ldapi://, ldaps:// or ldap:// URI",
			            d->section, d->key, value);
		/* libldap takes a list and falls back along it, each with its own scheme: one URI, one TLS decision. */
		if (value[strcspn(value, " \t,")])
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: one URI only, not a list", d->section, d->key);
		/* and bounded: */
		__attribute__((fallthrough));
	case V_DN:
		/* (control characters are refused in every value) */
		if (strlen(value) >= 512)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: longer than 511 bytes", d->section, d->key);
		break;
	case V_PATH:
		if (strcmp(value, "none") != 0 && (value[0] != '/' || strlen(value) >= 1000))
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not an absolute path", d->section, d->key,
			            value);
		break;
	case V_MACHINE:
		if (strcmp(value, keys[K_MACHINE_ID].def) != 0 && !ts_machine_id_valid(value))
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not [A-Za-z0-9_-]{1,%d}", d->section, d->key,
			            value, TS_MACHINE_ID_MAX);
		break;
	case V_DURATION:
		if (parse_duration(value, &u) < 0)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not a duration (e.g. 900s, 15m, 8h, 90d, 2w, off)",
			            d->section, d->key, value);
		if (k == K_LOCK_IDLE)
			p->idle = u;
		else if (k == K_RECOVERY_BACKOFF)
			p->recovery_backoff = u;
		else if (k == K_LOCK_SHARES)
			p->share_timeout = u;
		else if (k == K_AUDIT_DATA_INTERVAL && u > 3600)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is longer than 1h", d->section, d->key, value);
		else if (k == K_AUDIT_DATA_INTERVAL)
			p->data_interval = u;
		else
			p->max_age = u;
		break;
	}
	if ((p->text[k] = strdup(value)) == NULL)
		return fail(st, -TS_E_NOMEM, "out of memory");
	p->o[k].file = st->file;
	p->o[k].line = st->line;
	return 1;
}

static int set_recipient(struct pstate *st, const char *name, const char *key, const char *value)
{
	ts_policy *p = st->p;
	struct recipient *r = NULL;
	char at[PATH_MAX + 16];
	uint8_t *key_buf;
	size_t i, key_len = 0;
	unsigned type = 0;

	if (strcmp(key, "key") != 0)
		return fail(st, -TS_E_INVALID_ARGS, "[recipient %s]: unknown key '%s' (known: key)", name, key);
	for (i = 0; i < p->n_rcp; i++)
		if (strcmp(p->rcp[i].name, name) == 0)
			return fail(st, -TS_E_INVALID_ARGS, "[recipient %s] key already set at %s", name,
			            where(&p->rcp[i].key, at, sizeof(at)));
	if (p->n_rcp >= MAX_RECIPIENTS)
		return fail(st, -TS_E_INVALID_ARGS, "more than %d escrow recipients", MAX_RECIPIENTS);
	r = &p->rcp[p->n_rcp];
	if ((key_buf = malloc(TS_ESCROW_KEY_MAX)) == NULL)
		return fail(st, -TS_E_NOMEM, "out of memory");
	if (ts_escrow_key_from_text(value, strlen(value), &type, key_buf, &key_len) < 0) {
		free(key_buf);
		return fail(st, -TS_E_INVALID_ARGS, "[recipient %s] key: not an escrow public key "
		            "(tokenseal-escrow-pub:v1:... from `tokenseal escrow keygen`, or tokenseal-escrow-rsa:v1:... "
		            "from `tokenseal escrow show-key`)", name);
	}
	for (i = 0; i < p->n_rcp; i++)
		if (p->rcp[i].type == type && p->rcp[i].pub_len == key_len && memcmp(p->rcp[i].pub, key_buf, key_len) == 0) {
			free(key_buf);
			return fail(st, -TS_E_INVALID_ARGS, "[recipient %s] key: same key as [recipient %s] (%s)", name,
			            p->rcp[i].name, where(&p->rcp[i].key, at, sizeof(at)));
		}
	if ((r->name = strdup(name)) == NULL || (r->text = strdup(value)) == NULL) {
		free(r->name);
		r->name = NULL;
		free(key_buf);
		return fail(st, -TS_E_NOMEM, "out of memory");
	}
	r->pub = key_buf;
	r->pub_len = key_len;
	r->type = type;
	r->key.file = st->file;
	r->key.line = st->line;
	r->section = r->key;
	p->n_rcp++;
	return 1;
}

/* A user or group entry: a decimal id, or a name that must exist now. */
static int resolve_id(struct pstate *st, const char *section, const char *key, const char *item, int group,
                      uint32_t *ret)
{
	char buf[4096];
	uint64_t u;
	int e;

	if (item[0] >= '0' && item[0] <= '9') {
		if (ts_parse_uint(item, strlen(item), UINT32_MAX - 1, &u) < 0)
			return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not a valid id", section, key, item), -1;
		*ret = (uint32_t)u;
		return 0;
	}
	if (group) {
		struct group g, *gp = NULL;

		e = getgrnam_r(item, &g, buf, sizeof(buf), &gp);
		if (e == 0 && gp) {
			*ret = gp->gr_gid;
			return 0;
		}
	} else {
		struct passwd pw, *pp = NULL;

		e = getpwnam_r(item, &pw, buf, sizeof(buf), &pp);
		if (e == 0 && pp) {
			*ret = pp->pw_uid;
			return 0;
		}
	}
	/* Unknown now: refusing is the only safe reading (a name cannot be matched later). */
	return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: no such %s '%s'", section, key, group ? "group" : "user", item), -1;
}

static int vault_pattern_valid(const char *s)
{
	for (; *s; s++)
		if (!name_char(*s) && !strchr("*?[]!", *s))
			return 0;
	return 1;
}

static int unit_valid(const char *s)
{
	if (!strchr(s, '.') || strlen(s) > 255)
		return 0;
	for (; *s; s++)
		if (!name_char(*s) && *s != '@' && *s != ':' && *s != '\\')
			return 0;
	return 1;
}

static int set_rule(struct pstate *st, const char *section, const char *name, const char *key, const char *value)
{
	ts_policy *p = st->p;
	struct rule *r = NULL;
	struct list l = { 0 };
	char at[PATH_MAX + 16];
	size_t i;
	int k;

	for (k = 0; k < R_N; k++)
		if (strcmp(key, rule_keys[k]) == 0)
			break;
	if (k == R_N)
		return fail(st, -TS_E_INVALID_ARGS, "[%s]: unknown key '%s' (known: vaults, users, groups, units, executables)",
		            section, key);
	for (i = 0; i < p->n_rules; i++)
		if (strcmp(p->rules[i].name, name) == 0)
			r = &p->rules[i];
	if (!r) {
		struct rule *nr;

		if (p->n_rules >= MAX_RULES)
			return fail(st, -TS_E_INVALID_ARGS, "more than %d [unwrap] sections", MAX_RULES);
		if ((nr = realloc(p->rules, (p->n_rules + 1) * sizeof(*nr))) == NULL)
			return fail(st, -TS_E_NOMEM, "out of memory");
		p->rules = nr;
		r = &p->rules[p->n_rules];
		memset(r, 0, sizeof(*r));
		if ((r->name = strdup(name)) == NULL || (r->section = strdup(section)) == NULL) {
			rule_free(r);
			return fail(st, -TS_E_NOMEM, "out of memory");
		}
		r->at.file = st->file;
		r->at.line = st->line;
		p->n_rules++;
	}
	if (r->o[k].line)
		return fail(st, -TS_E_INVALID_ARGS, "[%s] %s already set at %s", section, key,
		            where(&r->o[k], at, sizeof(at)));
	if (split_list(st, section, key, value, &l) < 0)
		return 0;
	switch (k) {
	case R_VAULTS:
		for (i = 0; i < l.n; i++)
			if (!vault_pattern_valid(l.items[i]))
				goto bad;
		r->vaults = l;
		break;
	case R_UNITS:
		for (i = 0; i < l.n; i++)
			if (!unit_valid(l.items[i]))
				goto bad;
		r->units = l;
		break;
	case R_EXES:
		for (i = 0; i < l.n; i++)
			if (l.items[i][0] != '/' || strstr(l.items[i], "/../") || strstr(l.items[i], "/./") ||
			    strstr(l.items[i], "//") || l.items[i][strlen(l.items[i]) - 1] == '/')
				goto bad;
		r->exes = l;
		break;
	case R_USERS:
	case R_GROUPS: {
		uint32_t *ids = calloc(l.n, sizeof(*ids));

		if (!ids) {
			list_free(&l);
			return fail(st, -TS_E_NOMEM, "out of memory");
		}
		for (i = 0; i < l.n; i++)
			if (resolve_id(st, section, key, l.items[i], k == R_GROUPS, &ids[i]) < 0) {
				free(ids);
				list_free(&l);
				return 0;
			}
		if (k == R_USERS) {
			r->uids = ids;
			r->n_uids = l.n;
		} else {
			r->gids = ids;
			r->n_gids = l.n;
		}
		list_free(&l);
		break;
	}
	}
	if ((r->text[k] = strdup(value)) == NULL)
		return fail(st, -TS_E_NOMEM, "out of memory");
	r->o[k].file = st->file;
	r->o[k].line = st->line;
	return 1;
bad:
	fail(st, -TS_E_INVALID_ARGS, "[%s] %s: '%s' is not a valid %s", section, key, l.items[i],
	     k == R_VAULTS ? "vault name pattern" : k == R_UNITS ? "systemd unit name" : "absolute executable path");
	list_free(&l);
	return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct pstate *st = user;

	if (st->err_line)
		return 0;
	if (!name || !value)
		return fail(st, -TS_E_INVALID_ARGS, "expected 'key = value'");
	if (!*section)
		return fail(st, -TS_E_INVALID_ARGS, "'%s' outside of any [section]", name);
	if (!*name)
		return fail(st, -TS_E_INVALID_ARGS, "[%s]: missing key before '='", section);
	if (!*value)
		return fail(st, -TS_E_INVALID_ARGS, "[%s] %s: empty value", section, name);
	if (strncmp(section, "recipient ", 10) == 0)
		return set_recipient(st, section + 10, name, value);
	if (strcmp(section, "unwrap") == 0)
		return set_rule(st, section, "", name, value);
	if (strncmp(section, "unwrap ", 7) == 0)
		return set_rule(st, section, section + 7, name, value);
	for (int k = 0; k < K_N; k++)
		if (strcmp(section, keys[k].section) == 0 && strcmp(name, keys[k].key) == 0)
			return set_fixed(st, k, value);
	return fail(st, -TS_E_INVALID_ARGS, "[%s]: unknown key '%s'", section, name);
}

#define POLICY_LINE_MAX 4093

/* libinih's knobs are process globals; set them once to the strict reading documented in POLICY.md. */
static void inih_configure(void)
{
	static char inline_prefixes[] = ";#";

	ini_allow_multiline = false;       /* an indented line is an error, not a silent continuation */
	ini_allow_no_value = false;
	ini_allow_inline_comments = true;
	ini_inline_comment_prefixes = inline_prefixes;
	ini_stop_on_first_error = true;
	/* Lines up to 4093 characters, in a heap buffer: an RSA escrow recipient's key text is up to 2755. */
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_max_line = POLICY_LINE_MAX + 3;
	ini_initial_alloc = POLICY_LINE_MAX + 3;
}

/* Parse one file's bytes into p. name must stay valid as long as p (it is one of p->files). */
static int parse_into(ts_policy *p, const char *name, const char *text, size_t len, char *err, size_t errlen)
{
	struct pstate st = { .p = p, .file = name, .buf = text, .len = len, .err = err, .errlen = errlen };
	int r;

	inih_configure();
	r = ini_parse_stream(reader, &st, handler, &st);
	/* Our own first error wins unless inih saw a syntax error on an earlier line. */
	if (r > 0 && (!st.err_line || (unsigned)r < st.err_line)) {
		st.err_line = 0;
		st.line = (unsigned)r;
		fail(&st, -TS_E_INVALID_ARGS, "syntax error: expected '[section]' or 'key = value'");
	} else if (r < 0 && !st.err_line) {
		st.line = 0;
		fail(&st, -TS_E_NOMEM, "out of memory");
	}
	return st.err_line ? st.rc : 0;
}

static char *add_file(ts_policy *p, const char *name)
{
	char **nf;

	if (p->n_files >= MAX_FILES || (nf = realloc(p->files, (p->n_files + 1) * sizeof(*nf))) == NULL)
		return NULL;
	p->files = nf;
	if ((p->files[p->n_files] = strdup(name)) == NULL)
		return NULL;
	return p->files[p->n_files++];
}

/* ---- after the last file: contradictions, and the table for `policy show` ---- */

static int contradiction(const struct origin *o, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int contradiction(const struct origin *o, char *err, size_t errlen, const char *fmt, ...)
{
	char what[TS_POLICY_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	set_msg(err, errlen, "%s:%u: %s", o->file ? o->file : "(policy)", o->line, what);
	return -TS_E_INVALID_ARGS;
}

static int add_setting(ts_policy *p, const char *section, const char *key, const char *value,
                       const struct origin *o, int own_section)
{
	ts_policy_setting *ns;
	char **nstr;

	if ((ns = realloc(p->settings, (p->n_settings + 1) * sizeof(*ns))) == NULL)
		return -TS_E_NOMEM;
	p->settings = ns;
	if (own_section) {
		char *dup = strdup(section);

		if (!dup || (nstr = realloc(p->strings, (p->n_strings + 1) * sizeof(*nstr))) == NULL) {
			free(dup);
			return -TS_E_NOMEM;
		}
		p->strings = nstr;
		p->strings[p->n_strings++] = dup;
		section = dup;
	}
	p->settings[p->n_settings++] = (ts_policy_setting){
		.section = section, .key = key, .value = value, .file = o->file, .line = o->line,
	};
	return 0;
}

/* A directory key's value: NULL when not set, or set to what its default says (none, /etc/machine-id). */
static const char *dir_value(const ts_policy *p, int k)
{
	return p->text[k] && strcmp(p->text[k], keys[k].def) != 0 ? p->text[k] : NULL;
}

static int finalize(ts_policy *p, char *err, size_t errlen)
{
	char at[PATH_MAX + 16], sect[16 + NAME_MAX_LEN];
	size_t i;
	int r, k;

	/* threshold > min >= 1 means threshold was set: report it there and name min's place. */
	if (p->threshold > p->min)
		return contradiction(&p->o[K_THRESHOLD], err, errlen, "[protectors] threshold = %u is more than "
		                     "min = %u (%s): a vault with the minimum of protectors could not be opened",
		                     p->threshold, p->min, where(&p->o[K_MIN], at, sizeof(at)));
	if (p->o[K_ESCROW_THRESHOLD].file && p->n_rcp == 0)
		return contradiction(&p->o[K_ESCROW_THRESHOLD], err, errlen,
		                     "[escrow] threshold is set but no [recipient NAME] section gives a key");
	if (p->escrow_m > p->n_rcp && p->n_rcp > 0)
		return contradiction(&p->o[K_ESCROW_THRESHOLD], err, errlen,
		                     "[escrow] threshold = %u but there are only %zu recipients", p->escrow_m, p->n_rcp);
	if (p->publish != TS_POLICY_PUBLISH_OFF && (!dir_value(p, K_LDAP_URI) || !dir_value(p, K_LDAP_BASE)))
		return contradiction(&p->o[K_PUBLISH], err, errlen, "[escrow] publish = %s needs ldap-uri and ldap-base "
		                     "(where the records go)", p->text[K_PUBLISH]);
	if (!dir_value(p, K_LDAP_BIND_DN) != !dir_value(p, K_LDAP_PASSWORD_FILE))
		return contradiction(dir_value(p, K_LDAP_BIND_DN) ? &p->o[K_LDAP_BIND_DN] : &p->o[K_LDAP_PASSWORD_FILE], err,
		                     errlen, "[escrow] ldap-bind-dn and ldap-password-file go together (a simple bind); "
		                     "without them the bind is SASL EXTERNAL");
	if (!dir_value(p, K_LDAP_CERT_FILE) != !dir_value(p, K_LDAP_KEY_FILE))
		return contradiction(dir_value(p, K_LDAP_CERT_FILE) ? &p->o[K_LDAP_CERT_FILE] : &p->o[K_LDAP_KEY_FILE], err,
		                     errlen, "[escrow] ldap-cert-file and ldap-key-file go together (a TLS client certificate)");
	if (dir_value(p, K_LDAP_URI) && strncmp(dir_value(p, K_LDAP_URI), "ldapi://", 8) == 0 &&
	    (dir_value(p, K_LDAP_CA_FILE) || dir_value(p, K_LDAP_CERT_FILE)))
		return contradiction(&p->o[K_LDAP_URI], err, errlen, "[escrow] ldap-ca-file, ldap-cert-file and "
		                     "ldap-key-file are for ldaps:// and ldap://, not ldapi://");
	for (i = 0; i < p->n_rules; i++) {
		struct rule *rl = &p->rules[i];

		if (!rl->o[R_USERS].line && !rl->o[R_GROUPS].line && !rl->o[R_UNITS].line && !rl->o[R_EXES].line)
			return contradiction(&rl->at, err, errlen, "[%s] names no callers: give users, groups, units "
			                     "or executables (a rule that allows everyone restricts nothing)", rl->section);
	}

	for (k = 0; k < K_N; k++)
		if ((r = add_setting(p, keys[k].section, keys[k].key, p->text[k] ? p->text[k] : keys[k].def,
		                     &p->o[k], 0)) < 0)
			return r;
	for (i = 0; i < p->n_rcp; i++) {
		snprintf(sect, sizeof(sect), "recipient %s", p->rcp[i].name);
		if ((r = add_setting(p, sect, "key", p->rcp[i].text, &p->rcp[i].key, 1)) < 0)
			return r;
	}
	for (i = 0; i < p->n_rules; i++)
		for (k = 0; k < R_N; k++) {
			if (p->rules[i].text[k]) {
				r = add_setting(p, p->rules[i].section, rule_keys[k], p->rules[i].text[k], &p->rules[i].o[k], 0);
			} else if (k == R_VAULTS) {
				r = add_setting(p, p->rules[i].section, rule_keys[k], "*", &(struct origin){ 0 }, 0);
			} else {
				continue;
			}
			if (r < 0)
				return r;
		}
	return 0;
}

/* ---- loading ------------------------------------------------------------------ */

int ts_policy_parse(const char *name, const char *text, size_t len, ts_policy **ret, char *err, size_t errlen)
{
	ts_policy *p;
	const char *fname;
	int r;

	set_msg(err, errlen, "%s", "");
	if (!ret || !name || (len && !text))
		return -TS_E_INVALID_ARGS;
	*ret = NULL;
	if (len > TS_POLICY_FILE_MAX) {
		set_msg(err, errlen, "%s: larger than %u bytes", name, TS_POLICY_FILE_MAX);
		return -TS_E_LIMIT;
	}
	if ((p = policy_new()) == NULL || (fname = add_file(p, name)) == NULL) {
		ts_policy_free(p);
		return -TS_E_NOMEM;
	}
	if ((r = parse_into(p, fname, text ? text : "", len, err, errlen)) < 0 ||
	    (r = finalize(p, err, errlen)) < 0) {
		ts_policy_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

/* Read a whole policy file, refusing anything an unprivileged user could have written. */
static int read_file(int dirfd, const char *path, const char *shown, char **ret, size_t *ret_len,
                     char *err, size_t errlen)
{
	struct stat sb;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, r;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		set_msg(err, errlen, "%s: cannot open: %s", shown, strerror(errno));
		return -TS_E_IO;
	}
	r = -TS_E_IO;
	if (fstat(fd, &sb) < 0) {
		set_msg(err, errlen, "%s: cannot stat: %s", shown, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		set_msg(err, errlen, "%s: not a regular file", shown);
		goto out;
	}
	if ((sb.st_uid != 0 && sb.st_uid != geteuid()) || (sb.st_mode & (S_IWGRP | S_IWOTH))) {
		set_msg(err, errlen, "%s: refusing a policy file that others than root can write "
		        "(owner uid %u, mode %04o)", shown, (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	if (sb.st_size > (off_t)TS_POLICY_FILE_MAX) {
		set_msg(err, errlen, "%s: larger than %u bytes", shown, TS_POLICY_FILE_MAX);
		r = -TS_E_LIMIT;
		goto out;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	/* One byte more than the size: a file that grows while read is refused. */
	while ((n = read(fd, buf + got, (size_t)sb.st_size + 1 - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			set_msg(err, errlen, "%s: read error: %s", shown, strerror(errno));
			goto out;
		}
		got += (size_t)n;
		if (got > (size_t)sb.st_size) {
			set_msg(err, errlen, "%s: changed while being read", shown);
			goto out;
		}
	}
	*ret = buf;
	*ret_len = got;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int ts_policy_load_file(const char *path, ts_policy **ret, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	set_msg(err, errlen, "%s", "");
	if (!path || !ret)
		return -TS_E_INVALID_ARGS;
	*ret = NULL;
	if ((r = read_file(AT_FDCWD, path, path, &text, &len, err, errlen)) < 0)
		return r;
	r = ts_policy_parse(path, text, len, ret, err, errlen);
	free(text);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int ts_policy_load_dir(const char *dir, ts_policy **ret, char *err, size_t errlen)
{
	char **names = NULL, path[PATH_MAX], *text = NULL;
	size_t n = 0, i, len, nl;
	struct dirent *de;
	ts_policy *p = NULL;
	const char *fname;
	DIR *d = NULL;
	int r;

	set_msg(err, errlen, "%s", "");
	if (!dir || !ret)
		return -TS_E_INVALID_ARGS;
	*ret = NULL;
	if ((p = policy_new()) == NULL)
		return -TS_E_NOMEM;
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			goto done;   /* no policy directory: no policy, every default */
		set_msg(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
		r = -TS_E_IO;
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		char **nn;

		nl = strlen(de->d_name);
		if (de->d_name[0] == '.' || nl <= 5 || strcmp(de->d_name + nl - 5, ".conf") != 0)
			continue;
		if (n >= MAX_FILES) {
			set_msg(err, errlen, "%s: more than %d policy files", dir, MAX_FILES);
			r = -TS_E_LIMIT;
			goto out;
		}
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL || (nn[n] = strdup(de->d_name)) == NULL) {
			if (nn)
				names = nn;
			r = -TS_E_NOMEM;
			goto out;
		}
		names = nn;
		n++;
	}
	if (errno) {
		set_msg(err, errlen, "%s: cannot read directory: %s", dir, strerror(errno));
		r = -TS_E_IO;
		goto out;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path)) {
			set_msg(err, errlen, "%s/%s: path too long", dir, names[i]);
			r = -TS_E_LIMIT;
			goto out;
		}
		if ((fname = add_file(p, path)) == NULL) {
			r = -TS_E_NOMEM;
			goto out;
		}
		if ((r = read_file(dirfd(d), names[i], path, &text, &len, err, errlen)) < 0)
			goto out;
		r = parse_into(p, fname, text, len, err, errlen);
		free(text);
		text = NULL;
		if (r < 0)
			goto out;
	}
done:
	if ((r = finalize(p, err, errlen)) < 0)
		goto out;
	*ret = p;
	p = NULL;
	r = 0;
out:
	if (d)
		closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	ts_policy_free(p);
	return r;
}

/* ---- show ----------------------------------------------------------------------- */

size_t ts_policy_n_settings(const ts_policy *p)
{
	return p ? p->n_settings : 0;
}

const ts_policy_setting *ts_policy_setting_at(const ts_policy *p, size_t i)
{
	return p && i < p->n_settings ? &p->settings[i] : NULL;
}

/* ---- evaluators ----------------------------------------------------------------- */

static int violation(char *msg, size_t len, int k, const ts_policy *p, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int violation(char *msg, size_t len, int k, const ts_policy *p, const char *fmt, ...)
{
	char what[TS_POLICY_MSG_MAX], at[PATH_MAX + 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	set_msg(msg, len, "[%s] %s (%s): %s", keys[k].section, keys[k].key, where(&p->o[k], at, sizeof(at)), what);
	return -TS_E_POLICY_VIOLATION;
}

static int type_index(const char *type)
{
	for (int t = 0; t < T_N; t++)
		if (type && strcmp(type, type_names[t]) == 0)
			return t;
	return -1;
}

int ts_policy_check_protectors(const ts_policy *p, const ts_policy_protector *prot, size_t n,
                               unsigned threshold, int complete, char *msg, size_t msglen)
{
	static const struct { int type; unsigned bit; int k; const char *what; } reqs[] = {
		{ T_FIDO2, TS_POLICY_PIN, K_FIDO2_PIN, "a PIN" },
		{ T_FIDO2, TS_POLICY_TOUCH, K_FIDO2_TOUCH, "touch (user presence)" },
		{ T_FIDO2, TS_POLICY_UV, K_FIDO2_UV, "user verification (the key's PIN)" },
		{ T_TPM2, TS_POLICY_PIN, K_TPM2_PIN, "a PIN" },
		{ T_TPM2, TS_POLICY_PCR, K_TPM2_PCR, "a PCR binding" },
		{ T_PKCS11, TS_POLICY_PIN, K_PKCS11_PIN, "a PIN" },
	};
	size_t i, j, n_tang = 0;
	int t;

	set_msg(msg, msglen, "%s", "");
	if (!p || (n && !prot))
		return -TS_E_INVALID_ARGS;
	for (i = 0; i < n; i++) {
		t = type_index(prot[i].type);
		n_tang += t == T_TANG;
		if (t < 0 || !(p->allowed & (1u << t)))
			return violation(msg, msglen, K_ALLOWED, p, "protector type '%s' is not allowed (allowed: %s)",
			                 prot[i].type ? prot[i].type : "?",
			                 p->text[K_ALLOWED] ? p->text[K_ALLOWED] : keys[K_ALLOWED].def);
		for (j = 0; j < sizeof(reqs) / sizeof(reqs[0]); j++)
			if (reqs[j].type == t && (p->require[t] & reqs[j].bit) && !(prot[i].props & reqs[j].bit))
				return violation(msg, msglen, reqs[j].k, p, "every %s protector must use %s",
				                 type_names[t], reqs[j].what);
	}
	/*
	 * A tang protector opens for anyone who has the vault file and reaches
	 * the server: unless allowed, every set of protectors that opens the
	 * vault must hold one that is not tang (this machine's TPM, a token).
	 */
	if (n_tang && !p->tang_alone && n_tang >= (threshold ? threshold : 1))
		return violation(msg, msglen, K_TANG_ALONE, p, "tang protectors would open the vault without any other "
		                 "protector (%zu tang, the vault opens with %u): use tang as one share of a k-of-n "
		                 "vault, e.g. 'tokenseal create --threshold 2' with a tpm2 protector", n_tang,
		                 threshold ? threshold : 1);
	if (threshold < p->threshold)
		return violation(msg, msglen, K_THRESHOLD, p, "the vault opens with %u protector%s, the policy requires "
		                 "%u together", threshold, threshold == 1 ? "" : "s", p->threshold);
	if (complete && n < p->min)
		return violation(msg, msglen, K_MIN, p, "the vault has %zu protector%s, the policy requires at least %u",
		                 n, n == 1 ? "" : "s", p->min);
	if (complete && n < threshold)
		return violation(msg, msglen, K_THRESHOLD, p, "the vault has %zu protector%s but needs %u to open",
		                 n, n == 1 ? "" : "s", threshold);
	return 0;
}

static int in_list(const struct list *l, const char *s);

int ts_policy_check_tang_urls(const ts_policy *p, const char *const *urls, size_t n, char *msg, size_t msglen)
{
	char origin[300];

	set_msg(msg, msglen, "%s", "");
	if (!p || (n && !urls))
		return -TS_E_INVALID_ARGS;
	if (p->tang_servers.n == 0)
		return violation(msg, msglen, K_TANG_SERVERS, p, "no Tang server is allowed: the administrator lists "
		                 "them (http(s)://HOST[:PORT]) in [tang] servers, tokenseal-policy(5)");
	/* One answer for every URL not on the list (not valid, unknown host, other port): nothing to probe with. */
	for (size_t i = 0; i < n; i++) {
		int found = 0;

		if (ts_policy_url_origin(urls[i], 1, origin, sizeof(origin)) == 0)
			found = in_list(&p->tang_servers, origin);
		if (!found)
			return violation(msg, msglen, K_TANG_SERVERS, p, "a Tang server of this protector is not one the "
			                 "policy allows");
	}
	return 0;
}

int ts_policy_check_create(const ts_policy *p, const char *vault, const ts_policy_protector *prot,
                           size_t n, unsigned threshold, char *msg, size_t msglen)
{
	if (!vault || !ts_vault_name_valid(vault))
		return -TS_E_INVALID_ARGS;
	return ts_policy_check_protectors(p, prot, n, threshold, 0, msg, msglen);
}

/* The policy's recipient is this escrow record: same type, same key bytes. */
static int rcp_is(const struct recipient *r, const ts_escrow_record *e)
{
	return r->type == e->type && r->pub_len == e->pubkey_len && memcmp(r->pub, e->pubkey, r->pub_len) == 0;
}

int ts_policy_check_escrow(const ts_policy *p, const ts_vault *v, char *msg, size_t msglen)
{
	char fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
	size_t i, j;

	set_msg(msg, msglen, "%s", "");
	if (!p || !v)
		return -TS_E_INVALID_ARGS;
	if (p->n_rcp == 0)
		return 0;
	for (i = 0; i < p->n_rcp; i++) {
		for (j = 0; j < v->n_escrow; j++)
			if (rcp_is(&p->rcp[i], &v->escrow[j]))
				break;
		if (j == v->n_escrow) {
			char at[PATH_MAX + 16];

			ts_escrow_key_fingerprint_text(p->rcp[i].pub, p->rcp[i].pub_len, fp);
			set_msg(msg, msglen, "[recipient %s] key (%s): the vault is not escrowed to %s (fingerprint %s)",
			        p->rcp[i].name, where(&p->rcp[i].key, at, sizeof(at)), p->rcp[i].name, fp);
			return -TS_E_POLICY_VIOLATION;
		}
	}
	if (v->n_escrow != p->n_rcp) {
		/* Someone the policy does not name could open the vault: escrow is never silent. */
		for (j = 0; j < v->n_escrow; j++) {
			for (i = 0; i < p->n_rcp; i++)
				if (rcp_is(&p->rcp[i], &v->escrow[j]))
					break;
			if (i == p->n_rcp)
				break;
		}
		j = j < v->n_escrow ? j : 0;
		ts_escrow_key_fingerprint_text(v->escrow[j].pubkey, v->escrow[j].pubkey_len, fp);
		return violation(msg, msglen, K_ESCROW_THRESHOLD, p,
		                 "the vault is also escrowed to '%s' (fingerprint %s), which the policy does not name",
		                 v->escrow[j].label, fp);
	}
	if (v->escrow_threshold != p->escrow_m)
		return violation(msg, msglen, K_ESCROW_THRESHOLD, p, "the vault's escrow opens with %u of %zu "
		                 "recipients, the policy requires %u of %zu", v->escrow_threshold, v->n_escrow,
		                 p->escrow_m, p->n_rcp);
	return 0;
}

size_t ts_policy_escrow_required(const ts_policy *p, ts_escrow_recipient *out, size_t max, unsigned *ret_m)
{
	size_t i;

	if (!p)
		return 0;
	for (i = 0; out && i < p->n_rcp && i < max; i++) {
		out[i].label = p->rcp[i].name;
		out[i].pubkey = p->rcp[i].pub;
		out[i].type = p->rcp[i].type;
		out[i].pubkey_len = p->rcp[i].pub_len;
	}
	if (ret_m)
		*ret_m = p->n_rcp ? p->escrow_m : 0;
	return p->n_rcp;
}

static int in_list(const struct list *l, const char *s)
{
	for (size_t i = 0; s && i < l->n; i++)
		if (strcmp(l->items[i], s) == 0)
			return 1;
	return 0;
}

static int rule_applies(const struct rule *r, const char *vault)
{
	if (r->vaults.n == 0)
		return 1;
	for (size_t i = 0; i < r->vaults.n; i++)
		if (fnmatch(r->vaults.items[i], vault, 0) == 0)
			return 1;
	return 0;
}

/* Every criterion the rule lists must hold; within a list any entry will do. */
static int rule_admits(const struct rule *r, const ts_policy_caller *c)
{
	size_t i, j;
	int ok;

	if (r->n_uids) {
		for (ok = 0, i = 0; i < r->n_uids; i++)
			ok |= r->uids[i] == c->uid;
		if (!ok)
			return 0;
	}
	if (r->n_gids) {
		for (ok = 0, i = 0; i < r->n_gids; i++)
			for (j = 0; j < c->n_gids; j++)
				ok |= r->gids[i] == c->gids[j];
		if (!ok)
			return 0;
	}
	if (r->units.n && !in_list(&r->units, c->unit))
		return 0;
	if (r->exes.n && !in_list(&r->exes, c->exe))
		return 0;
	return 1;
}

int ts_policy_check_unwrap(const ts_policy *p, const char *vault, const ts_policy_caller *c,
                           char *msg, size_t msglen)
{
	const struct rule *first = NULL;
	char at[PATH_MAX + 16];
	size_t i;

	set_msg(msg, msglen, "%s", "");
	if (!p || !vault || !c || (c->n_gids && !c->gids))
		return -TS_E_INVALID_ARGS;
	for (i = 0; i < p->n_rules; i++) {
		if (!rule_applies(&p->rules[i], vault))
			continue;
		if (rule_admits(&p->rules[i], c))
			return 0;
		if (!first)
			first = &p->rules[i];
	}
	if (!first)
		return 0;
	set_msg(msg, msglen, "[%s] (%s): uid %u (unit %s, executable %s) may not unwrap from vault '%s'",
	        first->section, where(&first->at, at, sizeof(at)), (unsigned)c->uid,
	        c->unit ? c->unit : "none", c->exe ? c->exe : "unknown", vault);
	return -TS_E_POLICY_VIOLATION;
}

uint64_t ts_policy_idle_timeout(const ts_policy *p)
{
	return p ? p->idle : 0;
}

unsigned ts_policy_lock_flags(const ts_policy *p)
{
	return p ? p->lock : TS_POLICY_LOCK_SUSPEND | TS_POLICY_LOCK_SCREEN | TS_POLICY_LOCK_TOKEN_REMOVAL;
}

int ts_policy_rotation_due(const ts_policy *p, uint64_t key_created, uint64_t now)
{
	if (!p || p->max_age == 0)
		return 0;
	/* A creation time in the future (clock set back) is not a reason to wait forever. */
	if (key_created > now)
		return 0;
	return now - key_created >= p->max_age;
}

int ts_policy_audit_fail_closed(const ts_policy *p)
{
	return p ? p->fail_closed : 0;
}

uint64_t ts_policy_audit_data_interval(const ts_policy *p)
{
	return p ? p->data_interval : 60;
}

unsigned ts_policy_recovery_attempts(const ts_policy *p)
{
	return p ? p->recovery_attempts : 5;
}

uint64_t ts_policy_recovery_max_backoff(const ts_policy *p)
{
	return p ? p->recovery_backoff : 300;
}

uint64_t ts_policy_share_timeout(const ts_policy *p)
{
	return p ? p->share_timeout : 300;
}

unsigned ts_policy_limit_helpers(const ts_policy *p)
{
	return p ? p->limit_helpers : 8;
}

unsigned ts_policy_limit_jobs(const ts_policy *p)
{
	return p ? p->limit_jobs : 4;
}

unsigned ts_policy_limit_vaults(const ts_policy *p)
{
	return p ? p->limit_vaults : 32;
}

void ts_policy_directory(const ts_policy *p, ts_policy_directory_conf *out)
{
	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	out->publish = p->publish;
	out->uri = dir_value(p, K_LDAP_URI);
	out->base = dir_value(p, K_LDAP_BASE);
	out->bind_dn = dir_value(p, K_LDAP_BIND_DN);
	out->password_file = dir_value(p, K_LDAP_PASSWORD_FILE);
	out->ca_file = dir_value(p, K_LDAP_CA_FILE);
	out->cert_file = dir_value(p, K_LDAP_CERT_FILE);
	out->key_file = dir_value(p, K_LDAP_KEY_FILE);
	out->machine_id = dir_value(p, K_MACHINE_ID);
}

int ts_policy_publish_violation(const ts_policy *p, const char *why, char *msg, size_t msglen)
{
	return violation(msg, msglen, K_PUBLISH, p, "%s", why);
}
