/* authorize.h — who may call a Vault method or read its properties, decided in one place. */
#ifndef TS_BUS_AUTHORIZE_H
#define TS_BUS_AUTHORIZE_H

#include <stddef.h>

#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"

/*
 * The error for a vault the caller may not see: UnknownObject, word for word
 * what sd-bus says for a path with no object, so a vault that exists and one
 * that does not look the same to other users. Returns a negative errno.
 */
int ts_vault_unknown(sd_bus_message *m, sd_bus_error *error);

/* What a row of the authorization table asks for besides the caller (authorize.c). */
#define TS_AUTH_UNLOCKED 0x1      /* the vault is unlocked (else Locked) */
#define TS_AUTH_UNWRAP_RULES 0x2  /* the policy's [unwrap] rules admit the caller (else PolicyViolation) */
#define TS_AUTH_DATA_USE 0x4      /* recorded as data use (ts_audit_data_use; fail-closed may refuse) */
#define TS_AUTH_QUIET 0x8         /* a refusal is not an audit event */
#define TS_AUTH_OWN_VAULTS 0x10   /* Manager: answers about the vaults ts_caller_may_use admits only */
#define TS_AUTH_OWN_NAMESPACE 0x20 /* Manager: acts for the caller; for another owner, root only */
#define TS_AUTH_ESCROW_STORED 0x40 /* [escrow] publish = required: the vault's record is stored (else PolicyViolation) */

/* The table's key for property reads (Properties.Get and GetAll, ObjectManager.GetManagedObjects). */
#define TS_VAULT_PROPERTIES "(properties)"

/* A polkit action a row may ask for, and the audit event of its grant. */
typedef struct ts_auth_action {
	const char *id;            /* the polkit action id (TS_POLKIT_ACTION_*) */
	const char *grant_event;   /* audited when polkit grants it to someone not the owner nor root */
} ts_auth_action;

typedef struct ts_vault_rule {
	const char *member;   /* a Vault method, or TS_VAULT_PROPERTIES */
	const char *event;    /* the audit event of a refusal, and of the data use */
	const ts_auth_action *action; /* for a caller neither owner nor root; NULL: owner or root only */
	unsigned flags;       /* TS_AUTH_* */
} ts_vault_rule;

/* The row of a Vault method (or TS_VAULT_PROPERTIES), or NULL. */
const ts_vault_rule *ts_vault_rule_find(const char *member);

/*
 * Does iface's table (Vault or Manager) have a row for every method of
 * vtable, and vtable a method for every row? 0, or -EINVAL with each
 * difference logged: ts_vault_objects_init and ts_manager_register
 * refuse to serve a vtable that fails it, so the daemon does not start.
 */
int ts_authorize_table_complete(const char *iface, const sd_bus_vtable *vtable);

/*
 * The authorization of a Manager call: its row (none: AccessDenied) and who
 * is calling, into *caller. 0 or <0 with error set. What the row's flags
 * add is the handler's: TS_AUTH_OWN_VAULTS through ts_caller_may_use,
 * TS_AUTH_OWN_NAMESPACE through ts_manager_may_create_for.
 */
int ts_manager_authorize(sd_bus_message *m, ts_caller *caller, sd_bus_error *error);
/* May caller create a vault owned by owner? Its own, or root for anyone. */
int ts_manager_may_create_for(const ts_caller *caller, uint32_t owner);

/*
 * The one authorization of a call on vault e: m's row of the table (by
 * its member; any call of another interface is a property read) decides. Who is
 * calling goes into *caller. The owner and root pass; anyone else goes to
 * polkit with the row's action (none: refused). Then, as the row asks: the
 * vault unlocked, the [unwrap] rules, the data-use record.
 *   0: go on.
 *   1: polkit is being asked; the handler returns 1 without replying, and
 *      m is dispatched again with the answer (polkit.c): everything the
 *      handler did before this call runs again.
 *   <0: refused, error set. Someone else's vault that polkit does not open
 *      looks exactly like no vault (UnknownObject, polkit's reason only in
 *      the log), and so does the ghost; a refusal is audited under the
 *      row's event unless TS_AUTH_QUIET.
 * Callers test "!= 0". Without a method call (a value built for a signal)
 * there is nothing to decide: 0.
 */
int ts_vault_authorize(sd_bus_message *m, ts_vault_entry *e, ts_caller *caller, sd_bus_error *error);
/* 0 when e is unlocked, else -EIO with Locked set ("vault 'NAME' is locked (REASON)"). */
int ts_vault_require_unlocked(ts_vault_entry *e, sd_bus_error *error);

#endif
