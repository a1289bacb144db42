/* escrow_publish.c — [escrow] publish: the daemon keeps each vault's escrow record in the directory (escrow_publish.h). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bus/escrow_publish.h"
#include "bus/log.h"
#include "bus/policy_enforce.h"
#include "core/buf.h"
#include "core/clock.h"
#include "protectors/helper_wire.h"
#include "protectors/ldap_record.h"
#include "protectors/remote.h"
#include "store.h"

#define STATE_FILE "escrow-records"
#define STATE_FILE_MAX (1u << 20)
#define DIGEST_BYTES 32
#define BACKOFF_MAX_S 300
/* Every stored record is read back again this often (and at start): one deleted or replaced is written again. */
#define RECHECK_USEC (24ull * 3600 * 1000000)
/* A request is one wire frame: the vault file with room for the rest. */
#define PUBLISH_FILE_MAX (TS_WIRE_FRAME_MAX - 16 * 1024)

typedef struct rec {
	struct rec *next;
	uint8_t id[TS_VAULT_ID_BYTES];
	uint8_t have[DIGEST_BYTES];     /* what the directory was verified to hold (the state file) */
	int have_set;
	int present;                    /* a loaded vault has this id */
	unsigned backoff_s;
	uint64_t next_try;              /* CLOCK_MONOTONIC µs; 0 = now */
	char err[384];                  /* the last failure; "" none */
	uint8_t tried[DIGEST_BYTES];    /* the digest of the last write started: a save that changes it starts afresh */
	int tried_set;
	int recheck;                    /* read the stored record back again (start, then every RECHECK_USEC) */
} rec;

static struct {
	ts_daemon *d;
	/* Where the records go, digested into every digest: a record verified elsewhere is not this one. */
	uint8_t target[DIGEST_BYTES];
	char machine[TS_LDAP_MACHINE_ID_MAX + 1];
	char machine_err[128];          /* why there is no machine id ("" when there is) */
	rec *recs;
	int started, removals_ok;
	ts_remote_job *job;
	rec *job_rec;
	int job_remove;
	uint8_t job_digest[DIGEST_BYTES];
	sd_event_source *timer, *recheck;
} P;

static void id_hex(const uint8_t id[TS_VAULT_ID_BYTES], char out[2 * TS_VAULT_ID_BYTES + 1])
{
	sodium_bin2hex(out, 2 * TS_VAULT_ID_BYTES + 1, id, TS_VAULT_ID_BYTES);
}

static int publishing(void)
{
	ts_policy_directory_conf c;

	ts_policy_directory(ts_enforce_policy(), &c);
	return c.publish != TS_POLICY_PUBLISH_OFF;
}

/*
 * What the officers need of the vault, digested: where its record goes
 * (directory, base, machine id: P.target), its id, the current root key's
 * version and the escrow boxes (sealed to the officers: a new vault secret
 * or new recipients seal new ones). A record holding the file as it was for
 * the same digest, in the same place, recovers the same keys.
 */
static void digest_of(const ts_vault *v, uint8_t out[DIGEST_BYTES])
{
	crypto_generichash_state st;
	uint8_t hdr[4 + 1 + 1];

	ts_put_be32(hdr, v->key_version);
	hdr[4] = v->escrow_threshold;
	hdr[5] = (uint8_t)v->n_escrow;
	crypto_generichash_init(&st, (const uint8_t *)"tokenseal escrow record", 23, DIGEST_BYTES);
	crypto_generichash_update(&st, P.target, sizeof(P.target));
	crypto_generichash_update(&st, v->id, TS_VAULT_ID_BYTES);
	crypto_generichash_update(&st, hdr, sizeof(hdr));
	for (size_t i = 0; i < v->n_escrow; i++) {
		uint8_t len[4];

		ts_put_be32(len, (uint32_t)v->escrow[i].sealed_len);
		crypto_generichash_update(&st, len, sizeof(len));
		crypto_generichash_update(&st, v->escrow[i].sealed, v->escrow[i].sealed_len);
	}
	crypto_generichash_final(&st, out, DIGEST_BYTES);
}

static rec *rec_find(const uint8_t id[TS_VAULT_ID_BYTES])
{
	for (rec *r = P.recs; r; r = r->next)
		if (memcmp(r->id, id, TS_VAULT_ID_BYTES) == 0)
			return r;
	return NULL;
}

static rec *rec_get(const uint8_t id[TS_VAULT_ID_BYTES])
{
	rec *r = rec_find(id);

	rec **pp;

	if (r || (r = calloc(1, sizeof(*r))) == NULL)
		return r;
	memcpy(r->id, id, TS_VAULT_ID_BYTES);
	/* At the end: a new vault waits its turn behind those already queued. */
	for (pp = &P.recs; *pp; pp = &(*pp)->next)
		;
	*pp = r;
	return r;
}

static void rec_drop(rec *x)
{
	for (rec **pp = &P.recs; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			free(x);
			return;
		}
}

static ts_vault_entry *entry_of(const uint8_t id[TS_VAULT_ID_BYTES])
{
	for (ts_vault_entry *e = P.d->vaults; e; e = e->next)
		if (memcmp(e->vault->id, id, TS_VAULT_ID_BYTES) == 0)
			return e;
	return NULL;
}

/* The owner of x's vault; (uint32_t)-1 for a vault gone (its record's removal). */
static uint32_t owner_of(const rec *x)
{
	ts_vault_entry *e = entry_of(x->id);

	return e ? e->vault->owner_uid : (uint32_t)-1;
}

/*
 * Every record of owner to the end of the queue, in order: the next scan
 * starts with the other owners', so one owner's many vaults or churn take
 * one turn in each round, never the whole queue.
 */
static void owner_to_tail(uint32_t owner)
{
	rec *moved = NULL, **mt = &moved, **pp = &P.recs;

	while (*pp) {
		rec *x = *pp;

		if (owner_of(x) == owner) {
			*pp = x->next;
			x->next = NULL;
			*mt = x;
			mt = &x->next;
		} else
			pp = &x->next;
	}
	*pp = moved;
}

/* ---- the state file --------------------------------------------------------------------- */

static int state_save(void)
{
	_ts_cleanup_buf_ ts_buf out = { 0 };
	_cleanup_fd_ int dfd = -1;
	char line[2 * TS_VAULT_ID_BYTES + 1 + 2 * DIGEST_BYTES + 2];
	int r;

	for (rec *x = P.recs; x; x = x->next) {
		if (!x->have_set)
			continue;
		id_hex(x->id, line);
		line[2 * TS_VAULT_ID_BYTES] = ' ';
		sodium_bin2hex(line + 2 * TS_VAULT_ID_BYTES + 1, 2 * DIGEST_BYTES + 1, x->have, DIGEST_BYTES);
		line[sizeof(line) - 2] = '\n';
		if ((r = ts_buf_append(&out, line, sizeof(line) - 1)) < 0)
			return r;
	}
	if ((dfd = open(P.d->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -TS_E_IO;
	/* A temp file named like a vault's (".escrow-records.vault.tmp.XXXXXX"): a crash's leftover is swept at start. */
	return ts_store_replace_at(dfd, STATE_FILE, STATE_FILE, ".vault.tmp.", out.data ? out.data : (const uint8_t *)"",
	                           out.len);
}

static void state_load(void)
{
	_cleanup_fd_ int fd = -1;
	_ts_cleanup_buf_ ts_buf in = { 0 };
	char buf[4096], path[PATH_MAX];
	ssize_t n;
	size_t bad = 0;

	snprintf(path, sizeof(path), "%s/%s", P.d->state_dir, STATE_FILE);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0) {
		if (errno != ENOENT)
			ts_log(TS_LOG_WARNING, "escrow publish: cannot read %s/%s: %s; every record is written again",
			       P.d->state_dir, STATE_FILE, strerror(errno));
		return;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && (in.len + (size_t)n > STATE_FILE_MAX || ts_buf_append(&in, buf, (size_t)n) < 0)) {
			ts_log(TS_LOG_WARNING, "escrow publish: %s is larger than %u bytes; every record is written again",
			       path, STATE_FILE_MAX);
			return;
		}
	for (size_t off = 0; off < in.len;) {
		const char *l = (const char *)in.data + off, *nl = memchr(l, '\n', in.len - off);
		uint8_t id[TS_VAULT_ID_BYTES], dg[DIGEST_BYTES];
		size_t len = nl ? (size_t)(nl - l) : in.len - off, got1 = 0, got2 = 0;
		rec *x;

		off += len + 1;
		if (len != 2 * TS_VAULT_ID_BYTES + 1 + 2 * DIGEST_BYTES || l[2 * TS_VAULT_ID_BYTES] != ' ' ||
		    sodium_hex2bin(id, sizeof(id), l, 2 * TS_VAULT_ID_BYTES, NULL, &got1, NULL) < 0 ||
		    sodium_hex2bin(dg, sizeof(dg), l + 2 * TS_VAULT_ID_BYTES + 1, 2 * DIGEST_BYTES, NULL, &got2, NULL) < 0 ||
		    got1 != sizeof(id) || got2 != sizeof(dg) || (x = rec_get(id)) == NULL) {
			bad++;
			continue;
		}
		memcpy(x->have, dg, DIGEST_BYTES);
		x->have_set = 1;
	}
	if (bad)
		ts_log(TS_LOG_WARNING, "escrow publish: %zu malformed line(s) in %s/%s ignored (those records are written "
		       "again)", bad, P.d->state_dir, STATE_FILE);
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void schedule(void);

/* What x needs now: 1 a write (its vault's record is not the one stored), 2 a removal, 0 nothing. */
static int need(rec *x, ts_vault_entry **ret, uint8_t digest[DIGEST_BYTES])
{
	ts_vault_entry *e = entry_of(x->id);

	*ret = e;
	if (!e)
		return x->have_set && !x->present && P.removals_ok ? 2 : 0;
	if (e->vault->n_escrow == 0 || e->stale)
		return 0;
	digest_of(e->vault, digest);
	/* A recheck is a write like any other: the helper finds the record unchanged, or writes it again. */
	return !x->have_set || x->recheck || memcmp(x->have, digest, DIGEST_BYTES) != 0;
}

static void failed(rec *x, int rc, const char *err)
{
	char hex[2 * TS_VAULT_ID_BYTES + 1];
	int first = !x->err[0];

	x->backoff_s = x->backoff_s ? x->backoff_s * 2 : 1;
	if (x->backoff_s > BACKOFF_MAX_S)
		x->backoff_s = BACKOFF_MAX_S;
	x->next_try = ts_mono_usec() + (uint64_t)x->backoff_s * 1000000u;
	snprintf(x->err, sizeof(x->err), "%s", err && err[0] ? err : ts_strerror(rc));
	/* The helper's words go into callers' error messages: no control character reaches a terminal. */
	for (char *c = x->err; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	id_hex(x->id, hex);
	ts_log(first ? TS_LOG_WARNING : TS_LOG_INFO, "escrow publish: vault %s: %s; next try in %u s", hex, x->err,
	       x->backoff_s);
}

static void on_done(void *userdata, int rc, const ts_remote_reply *reply, const char *err)
{
	rec *x = P.job_rec;
	char hex[2 * TS_VAULT_ID_BYTES + 1];
	int removed = P.job_remove;

	P.job = NULL;
	P.job_rec = NULL;
	if (!x) {
		schedule();
		return;
	}
	id_hex(x->id, hex);
	owner_to_tail(owner_of(x));
	/* Stored means written or found equal, read back: any other answer is a failure, whatever its sign. */
	if (rc >= 0 && !removed && reply->value != TS_LDAP_PUT_WRITTEN && reply->value != TS_LDAP_PUT_UNCHANGED) {
		rc = -TS_E_FAILED;
		err = "the network helper did not say the record was stored";
	}
	if (rc < 0) {
		failed(x, rc, err);
	} else if (removed) {
		ts_log(TS_LOG_NOTICE, "escrow publish: vault %s is gone from this machine: its record %s", hex,
		       reply->value == 0 ? "removed" : "was not in the directory");
		rec_drop(x);
		if ((rc = state_save()) < 0)
			ts_log(TS_LOG_WARNING, "escrow publish: cannot write %s/%s (%s)", P.d->state_dir, STATE_FILE,
			       ts_strerror(rc));
	} else {
		ts_vault_entry *e = entry_of(x->id);

		memcpy(x->have, P.job_digest, DIGEST_BYTES);
		x->have_set = 1;
		x->recheck = 0;
		x->err[0] = '\0';
		x->backoff_s = 0;
		x->next_try = 0;
		ts_log(TS_LOG_NOTICE, "event=escrow-published vault=%s uid=%u id=%s: record %s, read back and verified",
		       e ? e->vault->name : "-", e ? e->vault->owner_uid : 0, hex,
		       reply->value == TS_LDAP_PUT_UNCHANGED ? "already stored" : "written");
		if ((rc = state_save()) < 0)
			ts_log(TS_LOG_WARNING, "escrow publish: cannot write %s/%s (%s); the record is stored, and will be "
			       "verified again after a restart", P.d->state_dir, STATE_FILE, ts_strerror(rc));
	}
	schedule();
}

/* The password file's first line into secure memory (*pw, TS_LDAP_PASSWORD_MAX + 1 bytes). */
static int read_password(const char *path, uint8_t **pw, size_t *len, char *err, size_t errlen)
{
	/* Not blocking the loop: a FIFO or a device there is refused, not waited on. */
	_cleanup_fd_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot read [escrow] ldap-password-file %s: %s", path,
		         fd < 0 ? strerror(errno) : "not a regular file");
		return -TS_E_IO;
	}
	if ((*pw = ts_secure_alloc(TS_LDAP_PASSWORD_MAX + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -TS_E_NOMEM;
	}
	*len = 0;
	while ((n = read(fd, *pw + *len, TS_LDAP_PASSWORD_MAX + 1 - *len)) > 0 && *len + (size_t)n <= TS_LDAP_PASSWORD_MAX)
		*len += (size_t)n;
	if (n != 0) {
		snprintf(err, errlen, "cannot read [escrow] ldap-password-file %s: %s", path,
		         n < 0 ? strerror(errno) : "longer than 1024 bytes");
		ts_secure_free(*pw);
		*pw = NULL;
		return -TS_E_IO;
	}
	if ((*len = ts_ldap_first_line(*pw, *len)) == 0) {
		/* An empty password makes a simple bind unauthenticated (RFC 4513), which a directory may accept. */
		snprintf(err, errlen, "[escrow] ldap-password-file %s: its first line is empty", path);
		ts_secure_free(*pw);
		*pw = NULL;
		return -TS_E_INVALID_ARGS;
	}
	return 0;
}

/* This machine's name in the records: [escrow] machine-id, else /etc/machine-id. */
static int machine_id(const ts_policy_directory_conf *c, char out[TS_LDAP_MACHINE_ID_MAX + 1], char *err, size_t errlen)
{
	int r;

	if (c->machine_id) {
		snprintf(out, TS_LDAP_MACHINE_ID_MAX + 1, "%s", c->machine_id);
		return 0;
	}
	if ((r = ts_machine_id_read("/etc/machine-id", out)) < 0)
		snprintf(err, errlen, r == -TS_E_IO ? "cannot read /etc/machine-id: set [escrow] machine-id" :
		         "/etc/machine-id is not a machine id: set [escrow] machine-id");
	return r;
}

static void start_one(rec *x, ts_vault_entry *e, int what, const uint8_t digest[DIGEST_BYTES])
{
	ts_policy_directory_conf c;
	char hex[2 * TS_VAULT_ID_BYTES + 1], err[384] = "";
	_ts_cleanup_secure_ uint8_t *pw = NULL;
	size_t pw_len = 0;
	ts_remote_ldap l;
	int r;

	ts_policy_directory(ts_enforce_policy(), &c);
	id_hex(x->id, hex);
	if (digest) {
		memcpy(x->tried, digest, DIGEST_BYTES);
		x->tried_set = 1;
	}
	l = (ts_remote_ldap){ .action = what == 2 ? "remove" : "put", .uri = c.uri, .base = c.base, .bind_dn = c.bind_dn,
	                      .ca_file = c.ca_file, .cert_file = c.cert_file, .key_file = c.key_file };
	if (P.machine_err[0]) {
		failed(x, -TS_E_INVALID_ARGS, P.machine_err);
		return;
	}
	if (c.password_file && (r = read_password(c.password_file, &pw, &pw_len, err, sizeof(err))) < 0) {
		failed(x, r, err);
		return;
	}
	l.machine = P.machine;
	l.password = pw;
	l.password_len = pw_len;
	if (what == 2) {
		l.data = (const uint8_t *)hex;
		l.len = strlen(hex);
	} else if (e->disk.len > PUBLISH_FILE_MAX) {
		snprintf(err, sizeof(err), "its file (%zu bytes) is larger than the daemon publishes (%u bytes): revoke "
		         "protectors or retire old root keys (tokenseal rotate --retire-below) to shrink it",
		         e->disk.len, (unsigned)PUBLISH_FILE_MAX);
		failed(x, -TS_E_LIMIT, err);
		return;
	} else {
		l.data = e->disk.data;
		l.len = e->disk.len;
	}
	if ((r = ts_remote_ldap_start(P.d->event, &l, on_done, NULL, &P.job, err, sizeof(err))) < 0) {
		failed(x, r, err);
		return;
	}
	P.job_rec = x;
	P.job_remove = what == 2;
	if (digest)
		memcpy(P.job_digest, digest, DIGEST_BYTES);
}

/* Start the next request that is due, or arm the timer for the earliest one. */
static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	uint64_t now = ts_mono_usec(), next = 0;

	if (P.job || !publishing())
		return 0;
	for (rec *x = P.recs; x; x = x->next) {
		uint8_t digest[DIGEST_BYTES];
		ts_vault_entry *e;
		int what = need(x, &e, digest);

		if (!what)
			continue;
		if (x->next_try <= now) {
			start_one(x, e, what, what == 1 ? digest : NULL);
			if (P.job)
				return 0;
		}
		if (!next || x->next_try < next)
			next = x->next_try;
	}
	if (next)
		(void)sd_event_source_set_time(P.timer, next), (void)sd_event_source_set_enabled(P.timer, SD_EVENT_ONESHOT);
	return 0;
}

static void schedule(void)
{
	if (!P.started || !P.timer)
		return;
	(void)sd_event_source_set_time(P.timer, 0);
	(void)sd_event_source_set_enabled(P.timer, SD_EVENT_ONESHOT);
}

void ts_publish_changed(ts_vault_entry *e)
{
	rec *x;

	if (!P.started || !publishing() || e->vault->n_escrow == 0)
		return;
	uint8_t digest[DIGEST_BYTES];

	if ((x = rec_get(e->vault->id)) == NULL)
		return;
	x->present = 1;
	digest_of(e->vault, digest);
	/*
	 * A change of what the officers need is news: tried now, whatever the
	 * back-off of the last attempt. Any other save (a protector, a lock)
	 * waits for its turn: saves cannot hurry a failing directory.
	 */
	if (!x->tried_set || memcmp(x->tried, digest, DIGEST_BYTES) != 0) {
		x->next_try = 0;
		x->backoff_s = 0;
	}
	schedule();
}

/* Names ending in ".vault" (any kind of entry) in dir; -1 when it cannot be read. */
static long vault_names_in(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	long n = 0;

	if (!dp)
		return -1;
	while ((de = readdir(dp)) != NULL) {
		size_t l = strlen(de->d_name);

		n += l > 6 && strcmp(de->d_name + l - 6, ".vault") == 0;
	}
	closedir(dp);
	return n;
}

static int count_owner(void *ud, uint32_t owner)
{
	long *n = ud, k;
	char dir[PATH_MAX];

	if (*n < 0 || ts_store_owner_dir(P.d->state_dir, owner, dir, sizeof(dir)) < 0 || (k = vault_names_in(dir)) < 0)
		*n = -1;
	else
		*n += k;
	return 0;
}

/*
 * May a record be removed because its vault is gone? Only when every file
 * named like a vault in the state directory was loaded: one that was not
 * (unreadable, a symlink, a disk error) has an unknown id, and the record
 * might be its own, the officers' last copy.
 */
static int every_vault_loaded(ts_daemon *d)
{
	long n = vault_names_in(d->state_dir);

	if (d->load_skipped || n < 0 || ts_store_list_owners(d->state_dir, count_owner, &n) < 0 || n < 0)
		return 0;
	return (size_t)n == d->n_vaults;
}

static int on_recheck(sd_event_source *s, uint64_t usec, void *userdata)
{
	for (rec *x = P.recs; x; x = x->next)
		x->recheck = x->have_set;
	(void)sd_event_source_set_time_relative(s, RECHECK_USEC);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	schedule();
	return 0;
}

int ts_publish_start(ts_daemon *d)
{
	int r;

	ts_policy_directory_conf c;
	crypto_generichash_state st;

	P.d = d;
	P.removals_ok = every_vault_loaded(d);
	ts_policy_directory(ts_enforce_policy(), &c);
	if (machine_id(&c, P.machine, P.machine_err, sizeof(P.machine_err)) < 0)
		P.machine[0] = '\0';
	crypto_generichash_init(&st, (const uint8_t *)"tokenseal escrow target", 23, DIGEST_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)(c.uri ? c.uri : ""), c.uri ? strlen(c.uri) + 1 : 1);
	crypto_generichash_update(&st, (const uint8_t *)(c.base ? c.base : ""), c.base ? strlen(c.base) + 1 : 1);
	crypto_generichash_update(&st, (const uint8_t *)P.machine, strlen(P.machine) + 1);
	crypto_generichash_final(&st, P.target, sizeof(P.target));
	state_load();
	for (ts_vault_entry *e = d->vaults; e; e = e->next) {
		rec *x;

		if (e->vault->n_escrow == 0 && !rec_find(e->vault->id))
			continue;
		if ((x = rec_get(e->vault->id)) == NULL)
			return -TS_E_NOMEM;
		x->present = 1;
	}
	/* What the state file says was stored is read back once at start (and daily): the directory may have lost it. */
	for (rec *x = P.recs; x; x = x->next)
		x->recheck = x->have_set;
	if (!P.removals_ok && publishing())
		ts_log(TS_LOG_WARNING, "escrow publish: not every vault file in %s was loaded: no record is removed from "
		       "the directory until they all load", d->state_dir);
	if ((r = sd_event_add_time(d->event, &P.timer, CLOCK_MONOTONIC, 0, 0, on_timer, NULL)) < 0 ||
	    (r = sd_event_add_time_relative(d->event, &P.recheck, CLOCK_MONOTONIC, RECHECK_USEC, 0, on_recheck,
	                                    NULL)) < 0)
		return -TS_E_FAILED;
	(void)sd_event_source_set_enabled(P.recheck, SD_EVENT_ONESHOT);
	(void)sd_event_source_set_enabled(P.timer, SD_EVENT_OFF);
	P.started = 1;
	schedule();
	return 0;
}

void ts_publish_stop(void)
{
	if (P.job)
		ts_remote_job_cancel(P.job);
	P.job = NULL;
	P.timer = sd_event_source_disable_unref(P.timer);
	P.recheck = sd_event_source_disable_unref(P.recheck);
	while (P.recs)
		rec_drop(P.recs);
	P.started = 0;
}

int ts_publish_gate(const ts_vault_entry *e, char *msg, size_t msglen)
{
	ts_policy_directory_conf c;
	uint8_t digest[DIGEST_BYTES];
	char why[600], esc[TS_POLICY_MSG_MAX];
	rec *x;

	ts_policy_directory(ts_enforce_policy(), &c);
	if (c.publish != TS_POLICY_PUBLISH_REQUIRED)
		return 0;
	/* Nothing the officers could recover from the record: not escrowed to the policy's recipients. */
	if (ts_policy_check_escrow(ts_enforce_policy(), e->vault, esc, sizeof(esc)) < 0) {
		snprintf(why, sizeof(why), "vault '%s' does not escrow to the policy's recipients (%.400s); new blobs "
		         "wait for SetEscrow", e->vault->name, esc);
		return ts_policy_publish_violation(ts_enforce_policy(), why, msg, msglen);
	}
	if (e->vault->n_escrow == 0)
		return 0;
	x = rec_find(e->vault->id);
	digest_of(e->vault, digest);
	if (x && x->have_set && memcmp(x->have, digest, DIGEST_BYTES) == 0)
		return 0;
	if (x && x->err[0]) {
		uint64_t now = ts_mono_usec();

		snprintf(why, sizeof(why), "the escrow record of vault '%s' is not stored in %s yet (%s); queued, next try "
		         "in %llu s", e->vault->name, c.uri, x->err,
		         (unsigned long long)(x->next_try > now ? (x->next_try - now + 999999) / 1000000 : 0));
	} else
		snprintf(why, sizeof(why), "the escrow record of vault '%s' is not stored in %s yet (being written)",
		         e->vault->name, c.uri);
	return ts_policy_publish_violation(ts_enforce_policy(), why, msg, msglen);
}
