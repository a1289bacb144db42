/* policy_enforce.c — tokensealed's side of the system policy: load once, judge vault operations and callers. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/params.h"

#include "bus/direct_conn.h"
#include "bus/policy_enforce.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/state.h"

/* The daemon's one policy; an empty (all defaults) one until ts_enforce_load. */
static ts_policy *policy;

int ts_enforce_load(const char *dir, char *err, size_t errlen)
{
	ts_policy *p = NULL;
	int r;

	if ((r = ts_policy_load_dir(dir, &p, err, errlen)) < 0)
		return r;
	ts_policy_free(policy);
	policy = p;
	return 0;
}

const ts_policy *ts_enforce_policy(void)
{
	char err[64];

	/* Never judge with "no policy" by accident: the empty policy is every default. */
	if (!policy && ts_policy_parse("(built-in defaults)", "", 0, &policy, err, sizeof(err)) < 0)
		return NULL;
	return policy;
}

void ts_enforce_free(void)
{
	ts_policy_free(policy);
	policy = NULL;
}

struct props_ctx {
	unsigned props;
};

static int add_prop(void *ud, const char *key, const char *value)
{
	struct props_ctx *pc = ud;

	if (strcmp(key, "pin") == 0 && strcmp(value, "yes") == 0)
		pc->props |= TS_POLICY_PIN;
	else if (strcmp(key, "touch") == 0 && strcmp(value, "yes") == 0)
		pc->props |= TS_POLICY_TOUCH;
	else if (strcmp(key, "uv") == 0 && strcmp(value, "yes") == 0)
		pc->props |= TS_POLICY_UV;
	else if (strcmp(key, "pcrs") == 0 && *value && strcmp(value, "none") != 0)
		pc->props |= TS_POLICY_PCR;
	return 0;
}

unsigned ts_enforce_protector_props(const ts_protector_record *p)
{
	const ts_protector_ops *ops = ts_protector_lookup(p->type);
	struct props_ctx pc = { 0 };

	/* A PKCS#11 key is always behind the token's user PIN (the backend logs in with it). */
	if (strcmp(p->type, "pkcs11") == 0)
		pc.props |= TS_POLICY_PIN;
	/* What the backend cannot describe is taken to offer nothing: never credit a property unseen. */
	if (ops && ops->describe && ops->describe(p->params, p->params_len, add_prop, &pc) < 0)
		return 0;
	return pc.props;
}

int ts_enforce_protectors(const ts_vault *v, const char *skip, int complete, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	ts_policy_protector prot[TS_VAULT_MAX_PROTECTORS];
	size_t n = 0;

	if (!p)
		return -TS_E_NOMEM;
	for (size_t i = 0; i < v->n_protectors && n < TS_VAULT_MAX_PROTECTORS; i++) {
		if (skip && strcmp(v->protectors[i].id, skip) == 0)
			continue;
		prot[n].type = v->protectors[i].type;
		prot[n].props = ts_enforce_protector_props(&v->protectors[i]);
		n++;
	}
	return ts_policy_check_protectors(p, prot, n, v->threshold ? v->threshold : 1, complete, msg, msglen);
}

int ts_enforce_tang_option(const char *urls, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	char *list[TS_TANG_MAX_SERVERS + 1];
	char buf[TS_TANG_URLS_TEXT_MAX];
	size_t n;

	if (!p)
		return -TS_E_NOMEM;
	/* Split as the helper will (none, too many, too long: checked as none; the helper refuses those). */
	n = ts_protector_split_list(urls, buf, sizeof(buf), list, TS_TANG_MAX_SERVERS);
	if (n > TS_TANG_MAX_SERVERS)
		n = 0;
	return ts_policy_check_tang_urls(p, (const char *const *)list, n, msg, msglen);
}

int ts_enforce_tang_record(const ts_protector_record *rec, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	const char *list[TS_TANG_MAX_SERVERS];
	ts_params *pp = NULL;
	uint64_t n = 0;
	char key[24];
	int r;

	if (!p)
		return -TS_E_NOMEM;
	if (ts_params_decode(rec->params, rec->params_len, &pp) < 0 || ts_params_get_uint(pp, "n", &n) < 0 || n == 0 ||
	    n > TS_TANG_MAX_SERVERS) {
		ts_params_free(pp);
		snprintf(msg, msglen, "the tang protector record is damaged");
		return -TS_E_CORRUPT;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "url%zu", i);
		if (ts_params_get_str(pp, key, &list[i]) < 0) {
			ts_params_free(pp);
			snprintf(msg, msglen, "the tang protector record is damaged");
			return -TS_E_CORRUPT;
		}
	}
	r = ts_policy_check_tang_urls(p, list, (size_t)n, msg, msglen);
	ts_params_free(pp);
	return r;
}

/* 1: pid has no audit login uid (as every process a system service starts), 0: it has one or it cannot be told. */
static int no_login_uid(pid_t pid)
{
	char buf[16];

	if (ts_proc_read(pid, "loginuid", buf, sizeof(buf)) <= 0)
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	return strcmp(buf, "4294967295") == 0;
}

/*
 * May the executable the bus reported be believed? It is /proc/PID/exe of the
 * pid the bus recorded when the caller connected, and a process can connect,
 * fork, exec an allowed program and let its child send the call: same pid,
 * another program. What an exec does not change is the process's cgroup (an
 * ordinary user cannot move a process into a system service's cgroup, while
 * inside user.slice they move their own processes between their own units)
 * and its audit login uid (set by pam_loginuid for logins, cron and at jobs;
 * never cleared without CAP_AUDIT_CONTROL). So the executable counts only for
 * a caller that runs in a system service and has no login uid. 1: believe it;
 * 0: do not, why says why.
 */
static int exe_believed(sd_bus_creds *c, pid_t pid, const ts_direct_conn *direct, char *why, size_t whylen)
{
	const char *unit = NULL, *slice = NULL, *user_unit = NULL;
	size_t n;
	int login;

	if (sd_bus_creds_get_unit(c, &unit) < 0 || !unit) {
		snprintf(why, whylen, "its systemd unit is unknown");
		return 0;
	}
	if (sd_bus_creds_get_slice(c, &slice) < 0)
		slice = NULL;
	if (sd_bus_creds_get_user_unit(c, &user_unit) < 0)
		user_unit = NULL;
	n = strlen(unit);
	/* A user's own units (user.slice, user@UID.service and what it runs) are the user's to fill. */
	if (user_unit || !slice || strcmp(slice, "user.slice") == 0 || strncmp(slice, "user-", 5) == 0 ||
	    strncmp(unit, "user@", 5) == 0 || n <= 8 || strcmp(unit + n - 8, ".service") != 0) {
		snprintf(why, whylen, "it runs in %s%s%s, not in a system service", user_unit ? user_unit : unit,
		         slice ? " of " : "", slice ? slice : "");
		return 0;
	}
	login = !no_login_uid(pid);
	/* A direct caller's login uid was read from its pid after its creds: was that pid still its process? */
	if (direct && !ts_direct_peer_alive(direct)) {
		snprintf(why, whylen, "the process that connected is gone");
		return 0;
	}
	if (login) {
		snprintf(why, whylen, "it has a login uid (a login session, a cron or at job), unlike a system service");
		return 0;
	}
	return 1;
}

/*
 * Say once per caller (bus connection, or private-socket connection) why its
 * executable did not count: unique names and "direct:ID" are never reused.
 */
static void exe_not_believed_log(sd_bus_message *m, const ts_direct_conn *direct, const ts_caller *caller,
                                 const char *vault, const char *why)
{
	static char seen[32][48];
	static size_t next;
	const char *sender = sd_bus_message_get_sender(m);
	char vbuf[TS_VAULT_NAME_MAX + 1], dbuf[24];

	if (direct) {
		snprintf(dbuf, sizeof(dbuf), "direct:%u", direct->id);
		sender = dbuf;
	}
	if (!sender || strlen(sender) >= sizeof(seen[0]))
		sender = "";
	for (size_t i = 0; *sender && i < sizeof(seen) / sizeof(seen[0]); i++)
		if (strcmp(seen[i], sender) == 0)
			return;
	if (*sender) {
		snprintf(seen[next], sizeof(seen[next]), "%s", sender);
		next = (next + 1) % (sizeof(seen) / sizeof(seen[0]));
	}
	ts_log(TS_LOG_INFO, "unwrap: vault=%s uid=%ld pid=%ld: [unwrap] executables entries do not match this caller: %s",
	       ts_log_word(vault, vbuf, sizeof(vbuf)), (long)caller->uid, (long)caller->pid, why);
}

int ts_enforce_unwrap(sd_bus_message *m, const ts_caller *caller, const char *vault, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	ts_policy_caller pc = { .uid = (uint32_t)caller->uid };
	const ts_direct_conn *direct = NULL;
	sd_bus_creds *c = NULL;
	const gid_t *sup = NULL;
	uint32_t *gids = NULL;
	const char *exe = NULL;        /* the executable read but not believed */
	char why[160] = "";
	gid_t gid;
	int n_sup = 0, r;

	if (!p)
		return -TS_E_NOMEM;
	/* The cheap question first: most vaults have no rule, or the uid alone is enough. */
	if (ts_policy_check_unwrap(p, vault, &pc, NULL, 0) == 0)
		return 0;
	/*
	 * A direct caller's gid and groups are the socket's at accept, the rest
	 * read from /proc as sd-bus does for a bus caller (ts_direct_creds):
	 * sd-bus's own peer on a direct connection is the daemon.
	 */
	if (sd_bus_is_bus_client(sd_bus_message_get_bus(m)) <= 0) {
		if ((direct = ts_direct_of(sd_bus_message_get_bus(m))) == NULL)
			return -TS_E_ACCESS_DENIED;
		r = ts_direct_creds(direct, SD_BUS_CREDS_UNIT | SD_BUS_CREDS_USER_UNIT | SD_BUS_CREDS_SLICE |
		                            SD_BUS_CREDS_EXE, &c);
	} else
		r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID |
		                                 SD_BUS_CREDS_SUPPLEMENTARY_GIDS | SD_BUS_CREDS_UNIT |
		                                 SD_BUS_CREDS_USER_UNIT | SD_BUS_CREDS_SLICE | SD_BUS_CREDS_EXE |
		                                 SD_BUS_CREDS_AUGMENT, &c);
	if (r >= 0) {
		if (direct) {
			sup = direct->groups;
			n_sup = (int)direct->n_groups;
		} else if ((n_sup = sd_bus_creds_get_supplementary_gids(c, &sup)) < 0)
			n_sup = 0;
		if ((gids = calloc((size_t)n_sup + 1, sizeof(*gids))) == NULL) {
			sd_bus_creds_unref(c);
			return -TS_E_NOMEM;
		}
		if (direct)
			gids[pc.n_gids++] = direct->gid;
		else if (sd_bus_creds_get_egid(c, &gid) >= 0)
			gids[pc.n_gids++] = gid;
		for (int i = 0; i < n_sup; i++)
			gids[pc.n_gids++] = sup[i];
		pc.gids = gids;
		if (sd_bus_creds_get_exe(c, &pc.exe) < 0)
			pc.exe = NULL;
		/* Before pc.unit is chosen below: the executable is judged by the system unit only. */
		if (pc.exe && !exe_believed(c, caller->pid, direct, why, sizeof(why))) {
			exe = pc.exe;
			pc.exe = NULL;
		}
		/* A system unit first; a user's own unit (user@.service children) otherwise. */
		if (sd_bus_creds_get_unit(c, &pc.unit) < 0 || (pc.unit && strcmp(pc.unit, "user@0.service") == 0))
			pc.unit = NULL;
		if (!pc.unit && sd_bus_creds_get_user_unit(c, &pc.unit) < 0)
			pc.unit = NULL;
	}
	r = ts_policy_check_unwrap(p, vault, &pc, msg, msglen);
	/* Say why only when the executable it was not given would have admitted it. */
	if (r < 0 && exe) {
		pc.exe = exe;
		if (ts_policy_check_unwrap(p, vault, &pc, NULL, 0) == 0) {
			exe_not_believed_log(m, direct, caller, vault, why);
			if (msg && strlen(msg) + 1 < msglen)
				snprintf(msg + strlen(msg), msglen - strlen(msg),
				         " (its executable does not count: %s; tokenseal-policy(5))", why);
		}
	}
	free(gids);
	sd_bus_creds_unref(c);
	return r;
}

const ts_policy_setting *ts_enforce_setting(const char *section, const char *key)
{
	const ts_policy *p = ts_enforce_policy();
	const ts_policy_setting *s;

	for (size_t i = 0; p && (s = ts_policy_setting_at(p, i)) != NULL; i++)
		if (strcmp(s->section, section) == 0 && strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

/*
 * The current root key's version and creation time: 1 when known, 0 when
 * not (locked, never seen unlocked). An unlocked vault's answer is kept in
 * e->key_age for while it is locked again.
 */
static int key_age_get(ts_vault_entry *e, uint32_t *ret_version, uint64_t *ret_created)
{
	const ts_vault *v = e->vault;

	if (!ts_vault_is_locked(v) && v->keyring) {
		*ret_version = ts_keyring_current(v->keyring);
		*ret_created = ts_keyring_current_created(v->keyring);
		/* A new key (RotateKey, RevokeAndRekey) is a new question: report again when it is due. */
		if (!e->key_age.known || e->key_age.version != *ret_version || e->key_age.created != *ret_created)
			e->key_age.reported = 0;
		e->key_age.known = 1;
		e->key_age.version = *ret_version;
		e->key_age.created = *ret_created;
		return 1;
	}
	if (e->key_age.known && e->key_age.version == v->key_version) {
		*ret_version = e->key_age.version;
		*ret_created = e->key_age.created;
		return 1;
	}
	if (v->key_version == 1) {
		/* RK_1 is made with the vault (ts_vault_create). */
		*ret_version = 1;
		*ret_created = v->created;
		return 1;
	}
	return 0;
}

/* "5 seconds", "3 minutes", "49 hours", "91 days": whole units, rounded down. */
static void format_age(uint64_t secs, char *buf, size_t cap)
{
	static const struct { uint64_t secs, max; const char *unit; } units[] = {
		{ 1, 120, "second" }, { 60, 7200, "minute" }, { 3600, 172800, "hour" }, { 86400, UINT64_MAX, "day" },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (secs < units[i].max) {
			uint64_t n = secs / units[i].secs;

			snprintf(buf, cap, "%llu %s%s", (unsigned long long)n, units[i].unit, n == 1 ? "" : "s");
			return;
		}
}

static int rotation_due(ts_vault_entry *e, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	const ts_policy_setting *s;
	uint64_t created, now = ts_now();
	uint32_t version;
	char age[48];

	if (msg && msglen)
		msg[0] = '\0';
	if (!p || !key_age_get(e, &version, &created) || !ts_policy_rotation_due(p, created, now))
		return 0;
	s = ts_enforce_setting("keys", "max-age");
	format_age(now - created, age, sizeof(age));
	if (msg)
		snprintf(msg, msglen, "[keys] max-age (%s:%u): root key version %u is %s old, the policy allows %s",
		         s && s->file ? s->file : "?", s ? s->line : 0, version, age, s ? s->value : "?");
	return 1;
}

int ts_enforce_rotation_due(ts_vault_entry *e, char *msg, size_t msglen)
{
	return rotation_due(e, msg, msglen);
}

/* Record the rotation-due event once per unlock and key version, only while the vault is unlocked. */
static void rotation_report(ts_vault_entry *e)
{
	char why[TS_POLICY_MSG_MAX];

	if (ts_vault_is_locked(e->vault) || !rotation_due(e, why, sizeof(why)) || e->key_age.reported)
		return;
	e->key_age.reported = 1;
	ts_log(TS_LOG_NOTICE, "vault=%s: rotation due: %s; run `tokenseal rotate --vault %s`", e->vault->name, why,
	       e->vault->name);
	(void)ts_audit("rotation-due", e->vault->name, e->vault->owner_uid, NULL, NULL, 0);
}

void ts_enforce_unlocked(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p)
{
	if (!p)
		return;
	e->key_age.reported = 0;
	rotation_report(e);
}

int ts_enforce_vault_status(ts_vault_entry *e, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	const ts_vault *v = e->vault;
	char why[TS_POLICY_MSG_MAX];

	snprintf(msg, msglen, "%s", "");
	if (!p)
		return -TS_E_NOMEM;
	if (ts_enforce_protectors(v, NULL, 1, why, sizeof(why)) < 0) {
		snprintf(msg, msglen, "out of policy: %s; add or revoke protectors to comply", why);
		return 0;
	}
	if (ts_policy_check_escrow(p, v, why, sizeof(why)) < 0) {
		snprintf(msg, msglen, "out of policy: %s; unlock and call SetEscrow with the policy's recipients", why);
		return 0;
	}
	if (rotation_due(e, why, sizeof(why))) {
		rotation_report(e);
		snprintf(msg, msglen, "out of policy: %s; run `tokenseal rotate --vault %s`%s", why, v->name,
		         ts_vault_is_locked(v) ? " once it is unlocked" : "");
		return 0;
	}
	return 1;
}

int ts_enforce_create_escrow(ts_vault *v, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	ts_escrow_recipient rec[TS_VAULT_MAX_ESCROW];
	unsigned m = 0;
	size_t n;
	int r;

	if (!p)
		return -TS_E_NOMEM;
	if ((n = ts_policy_escrow_required(p, rec, TS_VAULT_MAX_ESCROW, &m)) == 0)
		return 0;
	if ((r = ts_vault_set_escrow(v, rec, n, m)) < 0) {
		snprintf(msg, msglen, "cannot escrow to the policy's %zu recipient(s)", n);
		return r;
	}
	return 0;
}

int ts_enforce_unwrap_bus(sd_bus_message *m, ts_vault_entry *e, const ts_caller *caller, const char *event,
                          sd_bus_error *error)
{
	char msg[TS_POLICY_MSG_MAX];
	int r;

	if ((r = ts_enforce_unwrap(m, caller, e->vault->name, msg, sizeof(msg))) == 0)
		return 0;
	(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, caller, event, r);
	return ts_bus_error(error, r, msg);
}

int ts_enforce_protectors_bus(ts_vault_entry *e, const char *skip, int complete, const ts_caller *caller,
                              const char *what, sd_bus_error *error)
{
	char msg[TS_POLICY_MSG_MAX];
	int r;

	if ((r = ts_enforce_protectors(e->vault, skip, complete, msg, sizeof(msg))) == 0)
		return 0;
	(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, caller, what, r);
	return ts_bus_error(error, r, msg);
}

unsigned ts_enforce_policy_threshold(void)
{
	const ts_policy *p = ts_enforce_policy();
	const ts_policy_setting *s;

	for (size_t i = 0; p && (s = ts_policy_setting_at(p, i)) != NULL; i++)
		if (strcmp(s->section, "protectors") == 0 && strcmp(s->key, "threshold") == 0)
			return (unsigned)strtoul(s->value, NULL, 10) ?: 1;
	return 1;
}

int ts_enforce_type_allowed(ts_vault_entry *e, const char *type, const char *skip, const ts_caller *caller,
                            sd_bus_error *error)
{
	const ts_policy *p = ts_enforce_policy();
	ts_policy_protector prot[TS_VAULT_MAX_PROTECTORS + 1];
	char msg[TS_POLICY_MSG_MAX];
	size_t n = 0;
	int r;

	if (!p)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	for (size_t i = 0; i < e->vault->n_protectors && n < TS_VAULT_MAX_PROTECTORS; i++) {
		if (skip && strcmp(e->vault->protectors[i].id, skip) == 0)
			continue;
		prot[n].type = e->vault->protectors[i].type;
		prot[n].props = ts_enforce_protector_props(&e->vault->protectors[i]);
		n++;
	}
	/* Every property granted for now: only the type is judged before the token is touched. */
	prot[n].type = type;
	prot[n].props = TS_POLICY_PIN | TS_POLICY_TOUCH | TS_POLICY_UV | TS_POLICY_PCR;
	n++;
	if ((r = ts_policy_check_protectors(p, prot, n, e->vault->threshold ? e->vault->threshold : 1, 0, msg,
	                                    sizeof(msg))) == 0)
		return 0;
	(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, caller, type, r);
	return ts_bus_error(error, r, msg);
}
