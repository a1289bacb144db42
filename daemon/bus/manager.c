/* manager.c — org.tokenseal1.Manager at /org/tokenseal1: create, list and look up vaults. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bus/escrow_publish.h"
#include "bus/manager.h"
#include "bus/audit.h"
#include "bus/authorize.h"
#include "bus/daemon.h"
#include "bus/escrow_ready.h"
#include "bus/limits.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/rollback.h"
#include "bus/secretfd.h"
#include "bus/signals.h"
#include "bus/state.h"
#include "store.h"
#include "core/text.h"

/* A decimal uid (ts_parse_uint): (uid_t)-1 is "no uid", never one. */
static int parse_uid(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r;

	if ((r = ts_parse_uint(s, strlen(s), UINT32_MAX - 1, &v)) < 0)
		return r;
	*ret = (uint32_t)v;
	return 0;
}

static int build_vault_added(sd_bus_message *sig, void *userdata)
{
	ts_vault_entry *e = userdata;

	return sd_bus_message_append(sig, "so", e->vault->name, e->path);
}

int ts_manager_emit_vault_added(ts_daemon *d, ts_vault_entry *e)
{
	return ts_signals_emit(d, e->vault->owner_uid, TS_MANAGER_PATH, TS_MANAGER_IFACE, "VaultAdded",
	                       build_vault_added, e);
}

static int method_create_vault(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_daemon *d = userdata;
	char desc[TS_PROTECTOR_DESC_MAX] = "";
	char errbuf[TS_POLICY_MSG_MAX] = "";
	const ts_protector_ops *ops = &ts_protector_recovery;
	_ts_cleanup_buf_ ts_buf params = { 0 };
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	_ts_cleanup_secure_ char *secret = NULL;
	ts_protector_request req = { 0 };
	ts_vault_entry *e = NULL;
	ts_vault *v = NULL;
	const char *name, *pid_id = NULL;
	_ts_cleanup_kv_ ts_kv *opts = NULL;
	size_t n_opts = 0, secret_len = 0;
	uint32_t owner = TS_NO_OWNER, threshold = 0;
	ts_caller caller = { .uid = (uid_t)-1 };
	ts_policy_protector first = { .type = "recovery", .props = 0 };
	char pmsg[TS_POLICY_MSG_MAX] = "";
	char dir[PATH_MAX];
	int fd, r, r2, taken = 0;

	/* read */
	if ((r = sd_bus_message_read(m, "s", &name)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 16)) < 0)
		goto out;
	if ((r = sd_bus_message_read(m, "h", &fd)) < 0)
		return ts_bus_bad_args(error, r);
	/* validate */
	/* Room for a recovery key and its newline, checked before any work is done for it. */
	if ((r = ts_secretfd_check_out(fd, 64)) < 0) {
		snprintf(errbuf, sizeof(errbuf), "%s", r == -TS_E_IO ? "recovery_key_out: the pipe is full; nothing created" :
		         "recovery_key_out: not a pipe or socket (files, devices and directories are refused)");
		goto out;
	}
	if (!ts_vault_name_valid(name)) {
		r = ts_protector_fail(&(ts_protector_request){ .err = errbuf, .err_len = sizeof(errbuf) },
		                      -TS_E_INVALID_ARGS,
		                      "vault name must be 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'");
		goto out;
	}
	/* authorize */
	if ((r = ts_manager_authorize(m, &caller, error)) < 0)
		return r;
	owner = (uint32_t)caller.uid;
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "owner") == 0) {
			uint32_t o;
			if ((r = parse_uid(opts[i].value, &o)) < 0) {
				snprintf(errbuf, sizeof(errbuf), "option owner: not a uid");
				goto out;
			}
			/* Giving a vault to someone else is root's business only. */
			if (!ts_manager_may_create_for(&caller, o)) {
				r = -TS_E_ACCESS_DENIED;
				snprintf(errbuf, sizeof(errbuf), "only root may create a vault for another user");
				(void)ts_audit("create", name, o, &caller, NULL, r);
				goto out;
			}
			owner = o;
		} else if (strcmp(opts[i].key, "threshold") == 0) {
			uint64_t k;
			if (ts_parse_uint(opts[i].value, strlen(opts[i].value), TS_VAULT_MAX_PROTECTORS, &k) < 0 || k < 1) {
				r = -TS_E_INVALID_ARGS;
				snprintf(errbuf, sizeof(errbuf), "option threshold: 1..%d", TS_VAULT_MAX_PROTECTORS);
				goto out;
			}
			threshold = (uint32_t)k;
		} else {
			r = -TS_E_INVALID_ARGS;
			snprintf(errbuf, sizeof(errbuf), "unknown option (known: owner, threshold)");
			goto out;
		}
	}
	/*
	 * Names are per owner. A file we could not load (corrupt, unknown
	 * version) still holds its name: never overwrite it. That includes a
	 * file of the flat layout that could not be moved: its owner is unknown.
	 */
	if ((r = ts_store_owner_dir(d->state_dir, owner, dir, sizeof(dir))) < 0)
		goto out;
	if (ts_daemon_find(d, owner, name) || (taken = ts_store_name_taken(dir, name, 0)) > 0 ||
	    (taken == 0 && (taken = ts_store_name_taken(d->state_dir, name, 0)) > 0)) {
		r = -TS_E_VAULT_EXISTS;
		snprintf(errbuf, sizeof(errbuf), "vault '%s' already exists", name);
		goto out;
	}
	/* The backup of a vault of this name whose file was deleted: the next save would replace it. */
	if (taken == 0 && (taken = ts_store_name_taken(dir, name, 1)) > 0) {
		r = -TS_E_VAULT_EXISTS;
		snprintf(errbuf, sizeof(errbuf), "an earlier vault '%s' left its backup %s.vault.bak: an administrator "
		         "restores it (as %s.vault) or removes it first", name, name, name);
		goto out;
	}
	/* Neither "exists" nor a new vault over one it could not see (out of descriptors, say). */
	if (taken < 0) {
		r = -TS_E_IO;
		snprintf(errbuf, sizeof(errbuf), "cannot tell whether vault '%s' exists: its directory cannot be read now",
		         name);
		goto out;
	}
	if ((r = ts_limits_vault_create(d, owner, errbuf, sizeof(errbuf))) < 0)
		goto out;
	/* The policy's k-of-n unless the caller asked for more; a lower one is refused below. */
	if (threshold == 0)
		threshold = ts_enforce_policy_threshold();
	/* Dispatched again for escrow box keys (below): the attempt is on record already. */
	if (!ts_escrow_ready_resumed(m) && (r = ts_audit_gate("create", name, owner, &caller, NULL, error)) < 0)
		return r;
	if ((r = ts_policy_check_create(ts_enforce_policy(), name, &first, 1, threshold, pmsg, sizeof(pmsg))) < 0) {
		snprintf(errbuf, sizeof(errbuf), "%s", pmsg);
		(void)ts_audit("policy-denied", name, owner, &caller, "create", r);
		goto out;
	}
	/* The policy's RSA escrow recipients need box keys a helper wraps: the call comes back once they are. */
	{
		ts_escrow_recipient rec[TS_VAULT_MAX_ESCROW];
		unsigned em = 0;
		size_t en = ts_policy_escrow_required(ts_enforce_policy(), rec, TS_VAULT_MAX_ESCROW, &em);

		if ((r = ts_escrow_ready(d, m, &caller, rec, en, errbuf, sizeof(errbuf))) == 0)
			return 1;
		if (r < 0)
			goto out;
	}

	/* act: the vault, then its first protector, a recovery key */
	if ((r = ts_vault_create(&v, name, owner, ts_now())) < 0)
		goto out;
	if (threshold > 1 && (r = ts_vault_set_threshold(v, threshold)) < 0)
		goto out;
	/* Escrow the policy requires is sealed in before the first write: never a window without it. */
	if ((r = ts_enforce_create_escrow(v, errbuf, sizeof(errbuf))) < 0)
		goto out;
	if ((kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL || (secret = ts_secure_alloc(TS_SECRET_IN_MAX)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	ts_protector_request_init(&req, &d->config, v->name, v->id, errbuf, sizeof(errbuf));
	if ((r = ops->enroll(&req, kek, &params, desc, secret, TS_SECRET_IN_MAX - 1, &secret_len)) < 0)
		goto out;
	if ((r = ts_vault_add_protector(v, ops->type, desc, kek, params.data, params.len, ts_now(), &pid_id)) < 0)
		goto out;
	if ((r = ts_vault_serialize(v, &file)) < 0)
		goto out;
	/* persist */
	if ((r = ts_store_init(dir)) < 0 || (r = ts_store_save(dir, name, file.data, file.len)) < 0) {
		snprintf(errbuf, sizeof(errbuf), "cannot save the new vault; nothing created, no key written");
		goto out;
	}
	/*
	 * The key goes out once the file that accepts it is on disk; if the
	 * caller cannot receive it, the file goes again (a key nobody saw must
	 * never be the only way into a vault).
	 */
	secret[secret_len++] = '\n';
	if ((r = ts_secretfd_write(fd, secret, secret_len)) < 0) {
		if ((r2 = ts_store_remove(dir, name)) == 0) {
			snprintf(errbuf, sizeof(errbuf),
			         "cannot write the recovery key to recovery_key_out (%s); nothing created",
			         r == -TS_E_IO ? "a full or closed pipe" : "not a writable pipe or socket");
			goto out;
		}
		/* The file stays: the daemon serves it as a restart would, locked (nobody holds its key). */
		ts_log(TS_LOG_ERR, "vault=%s: its recovery key was not delivered and its file cannot be removed (%s)",
		       name, ts_strerror(r2));
		snprintf(errbuf, sizeof(errbuf), "cannot write the recovery key to recovery_key_out, and the new vault's "
		         "file cannot be removed: it exists, locked, and nobody holds its key");
		ts_vault_lock(v);
		if (ts_daemon_add(d, v, &file, dir, "error", &e) == 0) {
			v = NULL;
			(void)ts_manager_emit_vault_added(d, e);
		}
		goto out;
	}
	if ((r = ts_daemon_add(d, v, &file, dir, "", &e)) < 0)
		goto out;
	v = NULL;
	ts_daemon_touch(e);
	/* A vault with escrow gets its record in the directory ([escrow] publish = required: used once it is). */
	ts_publish_changed(e);
	(void)ts_audit("create", name, owner, &caller, NULL, 0);
	(void)ts_audit("enroll", name, owner, &caller, pid_id, 0);
	/* emit, reply */
	(void)ts_manager_emit_vault_added(d, e);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, "o", e->path));
out:
	if (caller.uid != (uid_t)-1 && r != -TS_E_ACCESS_DENIED)
		(void)ts_audit("create", ts_vault_name_valid(name) ? name : NULL, owner, &caller, NULL, r);
	ts_vault_free(v);
	return ts_bus_error(error, r, errbuf);
}

static int method_list_vaults(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_daemon *d = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	ts_caller caller;
	int r;

	if ((r = ts_manager_authorize(m, &caller, error)) < 0)
		return r;
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 ||
	    (r = sd_bus_message_open_container(reply, 'a', "(so)")) < 0)
		return ts_bus_errno(error, r);
	for (ts_vault_entry *e = d->vaults; e; e = e->next) {
		char qualified[16 + TS_VAULT_NAME_MAX];

		if (!ts_caller_may_use(&caller, e->vault))
			continue;
		/* The caller's own vaults by name; another user's (root sees them) as UID:NAME, as GetVault takes it. */
		snprintf(qualified, sizeof(qualified), "%" PRIu32 ":%s", e->vault->owner_uid, e->vault->name);
		if ((r = sd_bus_message_append(reply, "(so)", e->vault->owner_uid == (uint32_t)caller.uid ?
		                               e->vault->name : qualified, e->path)) < 0)
			return ts_bus_errno(error, r);
	}
	if ((r = sd_bus_message_close_container(reply)) < 0)
		return ts_bus_errno(error, r);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
}

/*
 * "NAME" (the caller's own vault) or "UID:NAME" (the vault NAME of owner
 * UID). Into *ret_owner and ret_name (TS_VAULT_NAME_MAX + 1). 0 or
 * -TS_E_INVALID_ARGS.
 */
static int parse_vault_ref(const char *ref, uid_t caller, uint32_t *ret_owner, char *ret_name)
{
	const char *colon = strchr(ref, ':');
	char uid[16];

	if (!colon) {
		*ret_owner = (uint32_t)caller;
		colon = ref - 1;
	} else {
		if ((size_t)(colon - ref) >= sizeof(uid))
			return -TS_E_INVALID_ARGS;
		memcpy(uid, ref, (size_t)(colon - ref));
		uid[colon - ref] = '\0';
		if (parse_uid(uid, ret_owner) < 0)
			return -TS_E_INVALID_ARGS;
	}
	if (!ts_vault_name_valid(colon + 1))
		return -TS_E_INVALID_ARGS;
	snprintf(ret_name, TS_VAULT_NAME_MAX + 1, "%s", colon + 1);
	return 0;
}

static int method_get_vault(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_daemon *d = userdata;
	char name[TS_VAULT_NAME_MAX + 1];
	ts_vault_entry *e;
	const char *ref;
	uint32_t owner;
	ts_caller caller;
	int r;

	if ((r = sd_bus_message_read(m, "s", &ref)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_manager_authorize(m, &caller, error)) < 0)
		return r;
	/*
	 * Someone else's vault looks exactly like no vault, whether it exists or
	 * not (a malformed name too). A caller polkit lets use another user's
	 * vault addresses its object path directly (ts_vault_object_path).
	 */
	if (parse_vault_ref(ref, caller.uid, &owner, name) < 0)
		return ts_bus_error(error, -TS_E_NO_SUCH_VAULT, NULL);
	if ((e = ts_daemon_find(d, owner, name)) == NULL) {
		char msg[512];

		/* A file refused at load as a rollback: its owner (and root) learn why; anyone else, nothing. */
		if ((caller.uid == 0 || caller.uid == (uid_t)owner) && ts_rollback_refused(owner, name, msg, sizeof(msg)))
			return ts_bus_error(error, -TS_E_ROLLBACK, msg);
		return ts_bus_error(error, -TS_E_NO_SUCH_VAULT, NULL);
	}
	if (!ts_caller_may_use(&caller, e->vault))
		return ts_bus_error(error, -TS_E_NO_SUCH_VAULT, NULL);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, "o", e->path));
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD_WITH_ARGS("CreateVault",
	                        SD_BUS_ARGS("s", name, "a{ss}", options, "h", recovery_key_out),
	                        SD_BUS_RESULT("o", vault), method_create_vault, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ListVaults", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(so)", vaults),
	                        method_list_vaults, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("GetVault", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", vault),
	                        method_get_vault, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Subscribe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, ts_signals_method_subscribe,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Unsubscribe", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, ts_signals_method_unsubscribe,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	/* Sent to subscribers (Subscribe) allowed to see the vault, each addressed alone; never broadcast. */
	SD_BUS_SIGNAL_WITH_ARGS("VaultAdded", SD_BUS_ARGS("s", name, "o", vault), 0),
	SD_BUS_SIGNAL_WITH_ARGS("VaultRemoved", SD_BUS_ARGS("s", name, "o", vault), 0),
	SD_BUS_VTABLE_END
};

int ts_manager_register(ts_daemon *d, sd_bus *bus)
{
	int r;

	if ((r = ts_authorize_table_complete(TS_MANAGER_IFACE, manager_vtable)) < 0)
		return r;
	return sd_bus_add_object_vtable(bus, NULL, TS_MANAGER_PATH, TS_MANAGER_IFACE, manager_vtable, d);
}
