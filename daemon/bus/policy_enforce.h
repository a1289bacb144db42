/* policy_enforce.h — tokensealed's use of the system policy (docs/POLICY.md): what each rule allows, as bus errors. */
#ifndef TS_POLICY_ENFORCE_H
#define TS_POLICY_ENFORCE_H

#include <stddef.h>

#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"
#include "../../policy/policy.h"

/*
 * Load the policy directory once at start. A broken policy is an error
 * ("FILE:LINE: ..." in err): the daemon then refuses to start, so it never
 * runs with less policy than the administrator wrote.
 */
int ts_enforce_load(const char *dir, char *err, size_t errlen);
/* The loaded policy (an empty one before ts_enforce_load). */
const ts_policy *ts_enforce_policy(void);
void ts_enforce_free(void);

/* [protectors] threshold: the k-of-n a new vault gets unless CreateVault asks for more. */
unsigned ts_enforce_policy_threshold(void);

/* What a stored protector offers (TS_POLICY_* bits), from its backend's description. */
unsigned ts_enforce_protector_props(const ts_protector_record *p);

/*
 * The vault's protectors as they are now, without the one named skip (may be
 * NULL), checked with ts_policy_check_protectors. msg gets the violation.
 */
int ts_enforce_protectors(const ts_vault *v, const char *skip, int complete, char *msg, size_t msglen);

/*
 * Unwrap by the sender of m from vault: the caller's uid, groups, systemd
 * unit and executable come from the bus (and /proc through sd-bus), never
 * from arguments. The full credentials are only asked for when the uid
 * alone does not satisfy the policy, so a vault without rules costs nothing.
 * The executable counts only for a caller in a system service's cgroup
 * without a login uid (an exec keeps the pid the bus recorded); for any other
 * caller it is unknown, msg says why and the reason is logged once per
 * connection.
 */
int ts_enforce_unwrap(sd_bus_message *m, const ts_caller *caller, const char *vault, char *msg, size_t msglen);

/*
 * The same two as bus errors (PolicyViolation naming rule and file), with a policy-denied audit event
 * that names the call refused (event: its row's, e.g. "unwrap", "age-unwrap").
 */
int ts_enforce_unwrap_bus(sd_bus_message *m, ts_vault_entry *e, const ts_caller *caller, const char *event,
                          sd_bus_error *error);
int ts_enforce_protectors_bus(ts_vault_entry *e, const char *skip, int complete, const ts_caller *caller,
                              const char *what, sd_bus_error *error);

/*
 * [tang] servers, before a helper is asked to reach anything: every server of
 * an enrollment's url= option (space- or comma-separated), or of a stored
 * tang record (url0, url1, ...), must be on the policy's list. A record that
 * cannot be read is refused too. 0, or -TS_E_POLICY_VIOLATION (-TS_E_CORRUPT)
 * with msg set.
 */
int ts_enforce_tang_option(const char *urls, char *msg, size_t msglen);
int ts_enforce_tang_record(const ts_protector_record *p, char *msg, size_t msglen);

/*
 * AddProtector, before the token is touched: may a protector of this type be
 * added at all? skip (or NULL): the protector it will replace, not counted.
 */
int ts_enforce_type_allowed(ts_vault_entry *e, const char *type, const char *skip, const ts_caller *caller,
                            sd_bus_error *error);

/*
 * (compliant, what to do) for the PolicyStatus property: returns 1
 * (compliant, msg ""), 0 (msg "out of policy: RULE (FILE:LINE): what; what
 * to do") or a negative TS_E_*. Protectors first, then escrow, then [keys]
 * max-age; a due rotation seen here while the vault is unlocked is reported
 * as by ts_enforce_unlocked.
 */
int ts_enforce_vault_status(ts_vault_entry *e, char *msg, size_t msglen);

/* The setting of [section] key as ts_policy_setting_at lists it (file NULL: built-in default), or NULL. */
const ts_policy_setting *ts_enforce_setting(const char *section, const char *key);

/*
 * [keys] max-age: 1 when the vault's current root key is older than the
 * policy allows (msg gets "[keys] max-age (FILE:LINE): root key version N is
 * AGE old, the policy allows MAX"), else 0. The key's creation time is in the
 * keyring, which only an unlocked vault has: a locked vault is judged by what
 * was seen at its last unlock (version 1 by the vault's creation time, which
 * is when RK_1 was made), and is not due when neither is known.
 */
int ts_enforce_rotation_due(ts_vault_entry *e, char *msg, size_t msglen);

/*
 * A listener of the unlocked event (ts_daemon_listen_unlocked): remember the
 * root key's age, and when rotation is due log it and record one
 * `rotation-due` audit event (once per unlock and key version; never a
 * refusal). Nothing when p is NULL.
 */
void ts_enforce_unlocked(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p);

/* CreateVault: escrow to the policy's required recipients (vault unlocked, before serializing). */
int ts_enforce_create_escrow(ts_vault *v, char *msg, size_t msglen);

#endif
