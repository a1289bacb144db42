/* authorize.c — who may call a Vault method or read its properties, decided in one place. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus/escrow_publish.h"
#include "bus/authorize.h"
#include "bus/audit.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/polkit.h"
#include "bus/state.h"

int ts_vault_unknown(sd_bus_message *m, sd_bus_error *error)
{
	/* Word for word what sd-bus answers for a path with no object. */
	sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "Unknown object '%s'.", sd_bus_message_get_path(m));
	return -ENXIO;
}

/*
 * The authorization table: every method of org.tokenseal1.Vault, and the
 * property reads, with who may call it and what must hold first. A caller
 * who is the vault's owner or root passes; anyone else is asked of polkit
 * with the row's action, or, where it has none, refused (escrow and
 * re-keying change who can open the vault: the owner's or root's decision
 * only). ts_vault_objects_init refuses to serve a vtable with a method
 * that has no row here, so a new method cannot be left out.
 */
static const ts_auth_action manage_other = { TS_POLKIT_ACTION_MANAGE_OTHER, "polkit-manage-other" };
static const ts_auth_action use_other = { TS_POLKIT_ACTION_USE_OTHER, "polkit-use-other" };
#define MANAGE (&manage_other)
#define USE (&use_other)
static const ts_vault_rule rules[] = {
	/* member              event            polkit action  flags */
	{ "Unlock",            "unlock",          MANAGE, 0 },
	{ "Lock",              "lock",            MANAGE, 0 },
	{ "ProbeProtectors",   "probe",           MANAGE, 0 },
	/* Data keys are the owner's; polkit may open them to others only with the "use" action. */
	/* New blobs only once the officers can open them too, when the policy says so ([escrow] publish = required). */
	{ "Wrap",              "wrap",            USE,    TS_AUTH_UNLOCKED | TS_AUTH_DATA_USE | TS_AUTH_ESCROW_STORED },
	{ "Unwrap",            "unwrap",          USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE },
	{ "Rewrap",            "rewrap",          USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE |
	                                                  TS_AUTH_ESCROW_STORED },
	{ "GenerateDataKey",   "generate",        USE,    TS_AUTH_UNLOCKED | TS_AUTH_DATA_USE | TS_AUTH_ESCROW_STORED },
	{ "UnwrapBatch",       "unwrap-batch",    USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE },
	{ "RewrapBatch",       "rewrap-batch",    USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE |
	                                                  TS_AUTH_ESCROW_STORED },
	/* The same batches with their items packed in one "ay": the same events (data-use records name the method). */
	{ "UnwrapBatchPacked", "unwrap-batch",    USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE },
	{ "RewrapBatchPacked", "rewrap-batch",    USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE |
	                                                  TS_AUTH_ESCROW_STORED },
	/*
	 * age: the recipient is public but derived from the root key; an unwrap gives out a file key, as Unwrap a
	 * data key. Files encrypted to the recipient are new data: held back like Wrap's until the record is stored.
	 */
	{ "AgeRecipient",      "age-recipient",   USE,    TS_AUTH_UNLOCKED | TS_AUTH_ESCROW_STORED },
	{ "AgeUnwrap",         "age-unwrap",      USE,    TS_AUTH_UNLOCKED | TS_AUTH_UNWRAP_RULES | TS_AUTH_DATA_USE },
	{ "RotateKey",         "rotate",          MANAGE, TS_AUTH_UNLOCKED },
	{ "AddProtector",      "enroll",          MANAGE, TS_AUTH_UNLOCKED },
	{ "RevokeProtector",   "revoke",          MANAGE, TS_AUTH_UNLOCKED },
	{ "RevokeAndRekey",    "revoke",          NULL,   TS_AUTH_UNLOCKED },
	{ "RotateRecoveryKey", "rotate-recovery", NULL,   TS_AUTH_UNLOCKED },
	{ "SetEscrow",         "escrow",          NULL,   TS_AUTH_UNLOCKED },
	/* Property reads (Get, GetAll, GetManagedObjects): the owner's and root's only; a refusal is not an audit event. */
	{ TS_VAULT_PROPERTIES, NULL,              NULL,   TS_AUTH_QUIET },
};
#undef MANAGE
#undef USE

/*
 * org.tokenseal1.Manager's methods: any local user may call them, for
 * themselves. What a row's flag adds is enforced by the handler through
 * the function named: ListVaults and GetVault show only vaults
 * ts_caller_may_use admits (another user's looks like none); CreateVault
 * makes a vault for another owner only for root (ts_manager_may_create_for).
 */
static const ts_vault_rule manager_rules[] = {
	/* member              event            polkit action  flags */
	{ "CreateVault",       "create",          NULL,   TS_AUTH_OWN_NAMESPACE },
	{ "ListVaults",        NULL,              NULL,   TS_AUTH_OWN_VAULTS | TS_AUTH_QUIET },
	{ "GetVault",          NULL,              NULL,   TS_AUTH_OWN_VAULTS | TS_AUTH_QUIET },
	{ "Subscribe",         NULL,              NULL,   TS_AUTH_OWN_VAULTS | TS_AUTH_QUIET },
	{ "Unsubscribe",       NULL,              NULL,   TS_AUTH_QUIET },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const ts_vault_rule *table_of(const char *iface, size_t *n)
{
	if (strcmp(iface, TS_VAULT_IFACE) == 0) {
		*n = N_OF(rules);
		return rules;
	}
	if (strcmp(iface, TS_MANAGER_IFACE) == 0) {
		*n = N_OF(manager_rules);
		return manager_rules;
	}
	*n = 0;
	return NULL;
}

static const ts_vault_rule *rule_find(const char *iface, const char *member)
{
	size_t n;
	const ts_vault_rule *t = table_of(iface, &n);

	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].member, member) == 0)
			return &t[i];
	return NULL;
}

const ts_vault_rule *ts_vault_rule_find(const char *member)
{
	return rule_find(TS_VAULT_IFACE, member);
}

int ts_authorize_table_complete(const char *iface, const sd_bus_vtable *vtable)
{
	const ts_vault_rule *t;
	size_t n;
	int found, r = 0;

	if ((t = table_of(iface, &n)) == NULL) {
		ts_log(TS_LOG_ERR, "%s has no authorization table (authorize.c)", iface);
		return -EINVAL;
	}
	for (const sd_bus_vtable *v = vtable; v->type != _SD_BUS_VTABLE_END; v++)
		if (v->type == _SD_BUS_VTABLE_METHOD && !rule_find(iface, v->x.method.member)) {
			ts_log(TS_LOG_ERR, "%s.%s has no row in the authorization table (authorize.c)", iface,
			       v->x.method.member);
			r = -EINVAL;
		}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i].member, TS_VAULT_PROPERTIES) == 0)
			continue;
		found = 0;
		for (const sd_bus_vtable *v = vtable; v->type != _SD_BUS_VTABLE_END; v++)
			if (v->type == _SD_BUS_VTABLE_METHOD && strcmp(v->x.method.member, t[i].member) == 0)
				found = 1;
		if (!found) {
			ts_log(TS_LOG_ERR, "the authorization table names %s.%s, which its vtable lacks", iface,
			       t[i].member);
			r = -EINVAL;
		}
	}
	return r;
}

int ts_manager_authorize(sd_bus_message *m, ts_caller *caller, sd_bus_error *error)
{
	const char *member = sd_bus_message_get_member(m);
	int r;

	if (!member || sd_bus_message_is_method_call(m, TS_MANAGER_IFACE, NULL) <= 0 ||
	    !rule_find(TS_MANAGER_IFACE, member)) {
		/* Cannot happen for a vtable that ts_manager_register accepted; refuse rather than guess. */
		ts_log(TS_LOG_ERR, "no authorization rule for Manager.%s: refused", member ? member : "-");
		return ts_bus_error(error, -TS_E_ACCESS_DENIED, NULL);
	}
	if ((r = ts_caller_get(m, caller)) < 0)
		return ts_bus_error(error, r, NULL);
	return 0;
}

int ts_manager_may_create_for(const ts_caller *caller, uint32_t owner)
{
	return caller->uid == 0 || (uint32_t)caller->uid == owner;
}

/*
 * The row for m: its Vault method's; any other call reaches a vault only to
 * read its properties (Properties.Get and GetAll, the object manager's
 * GetManagedObjects at /org/tokenseal1), which is the property reads' row.
 */
static const ts_vault_rule *rule_of(sd_bus_message *m)
{
	const char *member = sd_bus_message_get_member(m);

	if (sd_bus_message_is_method_call(m, TS_VAULT_IFACE, NULL) > 0)
		return member ? ts_vault_rule_find(member) : NULL;
	return ts_vault_rule_find(TS_VAULT_PROPERTIES);
}

/*
 * A caller who is neither the owner nor root, for a row with a polkit
 * action. Someone else's vault that polkit does not open to the caller
 * looks exactly like no vault (UnknownObject), and so does no vault at all
 * in someone else's namespace: it is the ghost (vault_find), for which
 * polkit is asked too, so that not even the time the answer takes tells the
 * two apart. 0 (granted), 1 (asked), or <0 with error set.
 */
static int polkit_gate(sd_bus_message *m, ts_vault_entry *e, const ts_vault_rule *rule, const ts_caller *caller,
                       sd_bus_error *error)
{
	int r = ts_polkit_check(e->d, m, rule->action->id, e->vault, error);

	if (r == 0)
		return 1;
	if (r > 0 && e != e->d->ghost) {
		/* The grant is recorded under the action it was for. */
		(void)ts_audit(rule->action->grant_event, e->vault->name, e->vault->owner_uid, caller, NULL, 0);
		return 0;
	}
	/* Busy (too many questions in flight) and the like: the same for a vault and for the ghost. */
	if (r < 0 && !sd_bus_error_has_name(error, ts_error_dbus_name(-TS_E_ACCESS_DENIED)))
		return r;
	(void)ts_audit(rule->event, e->vault->name, e->vault->owner_uid, caller, NULL, -TS_E_ACCESS_DENIED);
	if (r < 0) {
		/* polkit's reason goes to the log, never to the caller. */
		ts_log(TS_LOG_INFO, "vault=%s uid=%ld: %s", e->vault->name, (long)caller->uid, error->message);
		sd_bus_error_free(error);
	}
	return ts_vault_unknown(m, error);
}

int ts_vault_authorize(sd_bus_message *m, ts_vault_entry *e, ts_caller *caller, sd_bus_error *error)
{
	const ts_vault_rule *rule;
	int r;

	/* No call being answered: a value sd-bus builds for a signal, which has no caller and is not secret. */
	if (!m || sd_bus_message_is_method_call(m, NULL, NULL) <= 0)
		return 0;
	if ((rule = rule_of(m)) == NULL) {
		/* Cannot happen for a vtable that ts_vault_objects_init accepted; refuse rather than guess. */
		const char *iface = sd_bus_message_get_interface(m), *member = sd_bus_message_get_member(m);

		ts_log(TS_LOG_ERR, "no authorization rule for %s.%s: refused", iface ? iface : "-", member ? member : "-");
		return ts_bus_error(error, -TS_E_ACCESS_DENIED, NULL);
	}
	if ((r = ts_caller_get(m, caller)) < 0)
		return ts_bus_error(error, r, NULL);
	if (e == e->d->ghost || !ts_caller_may_use(caller, e->vault)) {
		if (rule->action)
			r = polkit_gate(m, e, rule, caller, error);
		else {
			if (!(rule->flags & TS_AUTH_QUIET))
				(void)ts_audit(rule->event, e->vault->name, e->vault->owner_uid, caller, NULL, -TS_E_ACCESS_DENIED);
			r = ts_vault_unknown(m, error);
		}
		if (r != 0)
			return r;
	}
	if (rule->flags & TS_AUTH_UNLOCKED) {
		/* The owner-only rows say it as they always have. */
		if (!rule->action && ts_vault_is_locked(e->vault))
			return ts_bus_error(error, -TS_E_LOCKED, "unlock the vault first");
		if ((r = ts_vault_require_unlocked(e, error)) < 0)
			return r;
	}
	if ((rule->flags & TS_AUTH_UNWRAP_RULES) && (r = ts_enforce_unwrap_bus(m, e, caller, rule->event, error)) < 0)
		return r;
	if (rule->flags & TS_AUTH_ESCROW_STORED) {
		char msg[TS_POLICY_MSG_MAX + 256];

		if ((r = ts_publish_gate(e, msg, sizeof(msg))) < 0) {
			(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, caller, rule->event, r);
			return ts_bus_error(error, r, msg);
		}
	}
	if (rule->flags & TS_AUTH_DATA_USE)
		return ts_audit_data_use(e, caller, rule->member, error);
	return 0;
}

int ts_vault_require_unlocked(ts_vault_entry *e, sd_bus_error *error)
{
	if (ts_vault_is_locked(e->vault)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "vault '%s' is locked (%s)", e->vault->name,
		         e->lock_reason[0] ? e->lock_reason : "locked");
		return ts_bus_error(error, -TS_E_LOCKED, msg);
	}
	return 0;
}
