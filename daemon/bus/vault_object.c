/* vault_object.c — org.tokenseal1.Vault: its vtable, the object tree under /org/tokenseal1/user/, registration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/vault_object.h"
#include "bus/age_methods.h"
#include "bus/authorize.h"
#include "bus/autolock.h"
#include "bus/daemon.h"
#include "bus/data_methods.h"
#include "bus/escrow_methods.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/properties.h"
#include "bus/protector_methods.h"
#include "bus/rekey.h"
#include "bus/state.h"
#include "bus/unlock.h"

static const sd_bus_vtable vault_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Name", "s", ts_prop_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Id", "s", ts_prop_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Owner", "u", ts_prop_owner, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Locked", "b", ts_prop_locked, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("KeyVersion", "u", ts_prop_key_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("MinKeyVersion", "u", ts_prop_min_key_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	/* Invalidation only: the protector list is not broadcast to every listener. */
	SD_BUS_PROPERTY("Protectors", "a(sssta{ss})", ts_prop_protectors, 0,
	                SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_PROPERTY("LockReason", "s", ts_prop_lock_reason, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	/* Wall-clock µs since the epoch of the last lock or unlock (or of loading). */
	SD_BUS_PROPERTY("LockChanged", "t", ts_prop_lock_changed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_METHOD_WITH_ARGS("Unlock", SD_BUS_ARGS("s", protector, "h", secret, "a{ss}", options),
	                        SD_BUS_RESULT("s", protector_used, "u", shares_needed), ts_unlock_method_unlock,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Lock", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, ts_unlock_method_lock, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ProbeProtectors", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ss)", presence),
	                        ts_protector_method_probe, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Wrap", SD_BUS_ARGS("ay", plaintext, "a{ss}", context), SD_BUS_RESULT("ay", blob),
	                        ts_data_method_wrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Unwrap", SD_BUS_ARGS("ay", blob, "a{ss}", context),
	                        SD_BUS_RESULT("ay", plaintext), ts_data_method_unwrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Rewrap", SD_BUS_ARGS("ay", blob, "a{ss}", context), SD_BUS_RESULT("ay", blob),
	                        ts_data_method_rewrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("GenerateDataKey", SD_BUS_ARGS("u", size, "a{ss}", context),
	                        SD_BUS_RESULT("ay", plaintext, "ay", blob), ts_data_method_generate_data_key,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("UnwrapBatch", SD_BUS_ARGS("aay", blobs, "a{ss}", context),
	                        SD_BUS_RESULT("aay", plaintexts), ts_data_method_unwrap_batch, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RewrapBatch", SD_BUS_ARGS("aay", blobs, "a{ss}", context),
	                        SD_BUS_RESULT("aay", blobs), ts_data_method_rewrap_batch, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("UnwrapBatchPacked", SD_BUS_ARGS("ay", blobs, "a{ss}", context),
	                        SD_BUS_RESULT("ay", plaintexts), ts_data_method_unwrap_batch_packed,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RewrapBatchPacked", SD_BUS_ARGS("ay", blobs, "a{ss}", context),
	                        SD_BUS_RESULT("ay", blobs), ts_data_method_rewrap_batch_packed, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RotateKey", SD_BUS_ARGS("a{ss}", options), SD_BUS_RESULT("u", version),
	                        ts_data_method_rotate_key, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("AddProtector",
	                        SD_BUS_ARGS("s", type, "a{ss}", options, "h", secret_in, "h", secret_out),
	                        SD_BUS_RESULT("s", id), ts_protector_method_add, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RevokeProtector", SD_BUS_ARGS("s", id), SD_BUS_NO_RESULT,
	                        ts_protector_method_revoke, SD_BUS_VTABLE_UNPRIVILEGED),
	/* escrow_methods.c, rekey.c: escrow, true revocation, k-of-n and policy status. */
	SD_BUS_METHOD_WITH_ARGS("RevokeAndRekey", SD_BUS_ARGS("s", id, "h", secrets),
	                        SD_BUS_RESULT("as", kept, "as", dropped), ts_rekey_method_revoke_and_rekey,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RotateRecoveryKey", SD_BUS_ARGS("s", protector, "h", secrets, "h", recovery_key_out),
	                        SD_BUS_RESULT("s", id, "as", kept, "as", dropped), ts_rekey_method_rotate_recovery_key,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("SetEscrow", SD_BUS_ARGS("as", recipients, "u", threshold), SD_BUS_NO_RESULT,
	                        ts_escrow_method_set_escrow, SD_BUS_VTABLE_UNPRIVILEGED),
	/* age_methods.c: age-plugin-tokenseal's recipient and stanza unwrap (docs/FORMAT.md, "age recipients"). */
	SD_BUS_METHOD_WITH_ARGS("AgeRecipient", SD_BUS_NO_ARGS,
	                        SD_BUS_RESULT("ay", vault_id, "u", key_version, "ay", public_key),
	                        ts_age_method_recipient, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("AgeUnwrap", SD_BUS_ARGS("u", key_version, "ay", share, "ay", body),
	                        SD_BUS_RESULT("ay", file_key), ts_age_method_unwrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("EscrowRecipients", "a(ss)", ts_prop_escrow_recipients, 0,
	                SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_PROPERTY("SharesNeeded", "u", ts_prop_shares_needed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("PolicyStatus", "(bs)", ts_prop_policy_status, 0,
	                SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_SIGNAL_WITH_ARGS("EscrowChanged", SD_BUS_ARGS("as", fingerprints), 0),
	/* Sent to the caller of Unlock alone, when a security key it is being unlocked with waits for a touch. */
	SD_BUS_SIGNAL_WITH_ARGS("TouchRequested", SD_BUS_ARGS("s", protector), 0),
	SD_BUS_VTABLE_END
};

/* ---- the object tree ------------------------------------------------------------------------ */

/*
 * "/org/tokenseal1/user/UID/vault/NAME" into uid and name (TS_VAULT_NAME_MAX
 * + 1). 0, or -1 when path is not a vault's path.
 */
static int parse_vault_path(const char *path, uint32_t *ret_uid, char *ret_name)
{
	static const char prefix[] = TS_USER_PATH_PREFIX "/";
	char vprefix[sizeof(prefix) + 32], *name = NULL;
	unsigned long long uid = 0;
	const char *p;
	int r = -1;

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	p = path + sizeof(prefix) - 1;
	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((uid = uid * 10 + (unsigned long long)(*p - '0')) >= UINT32_MAX)
			return -1;
	snprintf(vprefix, sizeof(vprefix), TS_USER_PATH_PREFIX "/%llu/vault", uid);
	if (sd_bus_path_decode(path, vprefix, &name) > 0 && ts_vault_name_valid(name)) {
		*ret_uid = (uint32_t)uid;
		snprintf(ret_name, TS_VAULT_NAME_MAX + 1, "%s", name);
		r = 0;
	}
	free(name);
	return r;
}

/*
 * The object at path, as the caller of the message being dispatched may see
 * it. The owner and root see the vault as it is. Anyone else reaches only
 * the Vault interface's methods (where polkit may let them in) and finds
 * nothing else: no properties, no introspection. A vault path in someone
 * else's namespace with no vault behind it gets the ghost for those method
 * calls, so it answers exactly like a vault polkit keeps closed.
 */
static int vault_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                      sd_bus_error *error)
{
	ts_daemon *d = userdata;
	sd_bus_message *m = sd_bus_get_current_message(bus);
	char name[TS_VAULT_NAME_MAX + 1];
	ts_caller caller;
	ts_vault_entry *e;
	uint32_t owner;
	int vault_call;

	if (d->introspect_only && d->placeholder) {
		*found = d->placeholder;
		return 1;
	}
	e = ts_daemon_find_path(d, path);
	/* Without a message (a signal sd-bus builds itself): the object as it is. */
	if (!m) {
		*found = e;
		return e != NULL;
	}
	/* A Vault method: its handler decides who may call it (the hot path: no look-up of the caller here). */
	vault_call = sd_bus_message_is_method_call(m, TS_VAULT_IFACE, NULL) > 0;
	if (e && vault_call) {
		*found = e;
		return 1;
	}
	if (ts_caller_get(m, &caller) < 0)
		return 0;
	if (e && ts_caller_may_use(&caller, e->vault)) {
		*found = e;
		return 1;
	}
	if (!vault_call || caller.uid == 0)
		return 0;
	if (!d->ghost || parse_vault_path(path, &owner, name) < 0 || owner == (uint32_t)caller.uid)
		return 0;
	free(d->ghost->path);
	if ((d->ghost->path = strdup(path)) == NULL)
		return -ENOMEM;
	snprintf(d->ghost->vault->name, sizeof(d->ghost->vault->name), "%s", name);
	d->ghost->vault->owner_uid = owner;
	*found = d->ghost;
	return 1;
}

static int vault_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error)
{
	ts_daemon *d = userdata;
	sd_bus_message *m = sd_bus_get_current_message(bus);
	ts_caller caller = { .uid = (uid_t)-1 };
	char **l;
	size_t n = 0;

	if (d->introspect_only) {
		*nodes = NULL;
		return 0;
	}
	/* Introspection lists only the caller's own vaults, like ListVaults. */
	if (m && ts_caller_get(m, &caller) < 0)
		caller.uid = (uid_t)-1;
	if ((l = calloc(d->n_vaults + 1, sizeof(*l))) == NULL)
		return -ENOMEM;
	for (ts_vault_entry *e = d->vaults; e; e = e->next) {
		if (!ts_caller_may_use(&caller, e->vault))
			continue;
		if ((l[n] = strdup(e->path)) == NULL) {
			for (size_t i = 0; i < n; i++)
				free(l[i]);
			free(l);
			return -ENOMEM;
		}
		n++;
	}
	*nodes = l;
	return 0;
}

void ts_vault_object_cancel_jobs(ts_daemon *d)
{
	ts_unlock_cancel_jobs(d);
	ts_protector_methods_cancel_jobs(d);
}

int ts_vault_objects_init(ts_daemon *d)
{
	int r;

	if ((r = ts_authorize_table_complete(TS_VAULT_IFACE, vault_vtable)) < 0)
		return r;

	/* Who hears of an unlock, in this order (the order of the calls they replace). */
	if ((r = ts_daemon_listen_unlocked(d, ts_autolock_unlocked)) < 0 ||
	    (r = ts_daemon_listen_unlocked(d, ts_enforce_unlocked)) < 0 ||
	    (r = ts_daemon_listen_unlocked(d, ts_escrow_note_unlock)) < 0)
		return r;

	/* A locked vault with no protectors and no file: all the ghost ever does is be refused. */
	if (!d->ghost) {
		if ((d->ghost = calloc(1, sizeof(*d->ghost))) == NULL ||
		    (d->ghost->vault = calloc(1, sizeof(*d->ghost->vault))) == NULL)
			return -ENOMEM;
		d->ghost->d = d;
	}
	return 0;
}

int ts_vault_objects_serve(ts_daemon *d, sd_bus *bus)
{
	int r;

	if ((r = sd_bus_add_fallback_vtable(bus, NULL, TS_USER_PATH_PREFIX, TS_VAULT_IFACE, vault_vtable, vault_find,
	                                    d)) < 0)
		return r;
	return sd_bus_add_node_enumerator(bus, NULL, TS_USER_PATH_PREFIX, vault_enumerate, d);
}
