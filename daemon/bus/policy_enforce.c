/* policy_enforce.c — tokensealed's side of the system policy: load once, judge vault operations and callers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/policy_enforce.h"

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

int ts_enforce_unwrap(sd_bus_message *m, const ts_caller *caller, const char *vault, char *msg, size_t msglen)
{
	const ts_policy *p = ts_enforce_policy();
	ts_policy_caller pc = { .uid = (uint32_t)caller->uid };
	sd_bus_creds *c = NULL;
	const gid_t *sup = NULL;
	uint32_t *gids = NULL;
	gid_t gid;
	int n_sup = 0, r;

	if (!p)
		return -TS_E_NOMEM;
	/* The cheap question first: most vaults have no rule, or the uid alone is enough. */
	if (ts_policy_check_unwrap(p, vault, &pc, NULL, 0) == 0)
		return 0;
	r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS |
	                                 SD_BUS_CREDS_UNIT | SD_BUS_CREDS_USER_UNIT | SD_BUS_CREDS_EXE |
	                                 SD_BUS_CREDS_AUGMENT, &c);
	if (r >= 0) {
		if ((n_sup = sd_bus_creds_get_supplementary_gids(c, &sup)) < 0)
			n_sup = 0;
		if ((gids = calloc((size_t)n_sup + 1, sizeof(*gids))) == NULL) {
			sd_bus_creds_unref(c);
			return -TS_E_NOMEM;
		}
		if (sd_bus_creds_get_egid(c, &gid) >= 0)
			gids[pc.n_gids++] = gid;
		for (int i = 0; i < n_sup; i++)
			gids[pc.n_gids++] = sup[i];
		pc.gids = gids;
		/* A system unit first; a user's own unit (user@.service children) otherwise. */
		if (sd_bus_creds_get_unit(c, &pc.unit) < 0 || (pc.unit && strcmp(pc.unit, "user@0.service") == 0))
			pc.unit = NULL;
		if (!pc.unit && sd_bus_creds_get_user_unit(c, &pc.unit) < 0)
			pc.unit = NULL;
		if (sd_bus_creds_get_exe(c, &pc.exe) < 0)
			pc.exe = NULL;
	}
	r = ts_policy_check_unwrap(p, vault, &pc, msg, msglen);
	free(gids);
	sd_bus_creds_unref(c);
	return r;
}

int ts_enforce_vault_status(const ts_vault_entry *e, char *msg, size_t msglen)
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

int ts_enforce_unwrap_bus(sd_bus_message *m, ts_vault_entry *e, const ts_caller *caller, sd_bus_error *error)
{
	char msg[TS_POLICY_MSG_MAX];
	int r;

	if ((r = ts_enforce_unwrap(m, caller, e->vault->name, msg, sizeof(msg))) == 0)
		return 0;
	(void)ts_audit("policy-denied", e->vault->name, caller, "unwrap", r);
	return ts_bus_error(error, r, msg);
}

int ts_enforce_protectors_bus(ts_vault_entry *e, const char *skip, int complete, const ts_caller *caller,
                              const char *what, sd_bus_error *error)
{
	char msg[TS_POLICY_MSG_MAX];
	int r;

	if ((r = ts_enforce_protectors(e->vault, skip, complete, msg, sizeof(msg))) == 0)
		return 0;
	(void)ts_audit("policy-denied", e->vault->name, caller, what, r);
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

int ts_enforce_type_allowed(ts_vault_entry *e, const char *type, const ts_caller *caller, sd_bus_error *error)
{
	const ts_policy *p = ts_enforce_policy();
	ts_policy_protector prot[TS_VAULT_MAX_PROTECTORS + 1];
	char msg[TS_POLICY_MSG_MAX];
	size_t n = 0;
	int r;

	if (!p)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	for (size_t i = 0; i < e->vault->n_protectors && n < TS_VAULT_MAX_PROTECTORS; i++) {
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
	(void)ts_audit("policy-denied", e->vault->name, caller, type, r);
	return ts_bus_error(error, r, msg);
}
