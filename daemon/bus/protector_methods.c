/* protector_methods.c — Vault.AddProtector, RevokeProtector and ProbeProtectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protectors/remote.h"

#include "bus/protector_methods.h"
#include "core/context.h"
#include "bus/audit.h"
#include "bus/authorize.h"
#include "bus/daemon.h"
#include "bus/handout.h"
#include "bus/limits.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/properties.h"
#include "bus/protector_info.h"
#include "bus/rollback.h"
#include "bus/secretfd.h"
#include "bus/state.h"

/* ---- ProbeProtectors ------------------------------------------------------------------ */

/*
 * A ProbeProtectors call in progress: the tokens are asked one after the
 * other, each in tokenseal-helper, from the event loop; the reply goes out
 * when the last has answered. Protectors are held by id and looked up again
 * at each step (one revoked meanwhile answers "unknown").
 */
#define PROBE_WAITERS_MAX 16
typedef struct probe_job {
	struct probe_job *next;
	ts_vault_entry *e;
	sd_bus_message *m[PROBE_WAITERS_MAX];   /* the calls this round answers: one round per vault at a time */
	size_t n_m;
	char ids[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX];
	const char *state[TS_VAULT_MAX_PROTECTORS];   /* "present", "absent", "needs-secret" or "unknown" */
	size_t n, next_i;
	int root;                                 /* started by root: may use the helpers [limits] keeps back */
	ts_remote_job *remote;
	ts_limit_job *lim;                        /* one of the starting caller uid's jobs (limits.h) */
} probe_job;

static probe_job *probe_jobs;

static void probe_job_free(probe_job *j)
{
	for (probe_job **pp = &probe_jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	ts_remote_job_cancel(j->remote);
	ts_limits_end(j->lim);
	for (size_t i = 0; i < j->n_m; i++)
		sd_bus_message_unref(j->m[i]);
	free(j);
}

static const char *probe_state(const ts_vault_entry *e, const char *id, int r, int present, const char *errbuf)
{
	if (r < 0)
		ts_log(TS_LOG_DEBUG, "vault=%s protector=%s: presence unknown: %s", e->vault->name, id,
		       errbuf && errbuf[0] ? errbuf : ts_strerror(r));
	return r < 0 ? "unknown" : present ? "present" : "absent";
}

static void probe_job_step(probe_job *j);

static void on_probe_present(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	probe_job *j = userdata;

	j->remote = NULL;
	j->state[j->next_i - 1] = probe_state(j->e, j->ids[j->next_i - 1], r, r >= 0 && reply->present, err);
	probe_job_step(j);
}

/* Ask the next protector, or answer the call when all have answered. */
static void probe_job_step(probe_job *j)
{
	ts_vault_entry *e = j->e;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	int r;

	while (j->next_i < j->n) {
		size_t i = j->next_i++;
		const ts_protector_record *p = ts_vault_find_protector(e->vault, j->ids[i]);
		const ts_protector_ops *ops = p ? ts_protector_lookup(p->type) : NULL;
		ts_protector_request req = { 0 };
		char errbuf[256] = "";

		j->state[i] = "unknown";
		if (!ops)
			continue;
		if (!ops->present) {
			j->state[i] = ts_protector_info_needs_secret(ops, p) ? "needs-secret" : "unknown";
			continue;
		}
		ts_protector_request_init(&req, &e->d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
		req.reserved_ok = j->root;
		if (!ts_protector_is_remote(ops)) {
			/* A backend of the daemon itself answers at once. */
			r = ops->present(&req, p->params, p->params_len);
			j->state[i] = probe_state(e, p->id, r, r > 0, errbuf);
			continue;
		}
		if ((r = ts_remote_present_start(e->d->event, ops, &req, p->params, p->params_len, on_probe_present, j,
		                                 &j->remote)) >= 0)
			return;
		j->state[i] = probe_state(e, p->id, r, 0, errbuf);
	}
	for (size_t k = 0; k < j->n_m; k++) {
		reply = sd_bus_message_unref(reply);
		if ((r = sd_bus_message_new_method_return(j->m[k], &reply)) >= 0 &&
		    (r = sd_bus_message_open_container(reply, 'a', "(ss)")) >= 0) {
			for (size_t i = 0; i < j->n && r >= 0; i++)
				r = sd_bus_message_append(reply, "(ss)", j->ids[i], j->state[i]);
			if (r >= 0 && (r = sd_bus_message_close_container(reply)) >= 0)
				r = sd_bus_send(NULL, reply, NULL);
		}
		if (r < 0)
			(void)sd_bus_reply_method_errorf(j->m[k], ts_error_dbus_name(-TS_E_FAILED), "cannot build the reply");
	}
	probe_job_free(j);
}

int ts_protector_method_probe(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_caller caller;
	probe_job *j;
	int r;

	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	/* A round already asking this vault's tokens answers this call too: a loop of calls runs one helper at a time. */
	for (j = probe_jobs; j; j = j->next)
		if (j->e == e) {
			if (j->n_m == PROBE_WAITERS_MAX)
				return ts_bus_error(error, -TS_E_BUSY, "too many ProbeProtectors calls waiting for this vault");
			j->m[j->n_m++] = sd_bus_message_ref(m);
			return 1;
		}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	/* A round is one of its starter's jobs: one uid cannot keep a round going on each of its vaults. */
	if ((r = ts_limits_job_begin(e, &caller, &j->lim, error)) < 0) {
		free(j);
		return r;
	}
	j->root = caller.uid == 0;
	j->e = e;
	j->m[j->n_m++] = sd_bus_message_ref(m);
	for (size_t i = 0; i < e->vault->n_protectors && j->n < TS_VAULT_MAX_PROTECTORS; i++)
		snprintf(j->ids[j->n++], sizeof(j->ids[0]), "%s", e->vault->protectors[i].id);
	j->next = probe_jobs;
	probe_jobs = j;
	/* The reply comes from probe_job_step once every token has answered; the loop goes on meanwhile. */
	probe_job_step(j);
	return 1;
}

/*
 * An AddProtector waiting for tokenseal-helper (a FIDO2 enrollment waits for
 * a touch): as with Unlock, the daemon goes on serving others meanwhile.
 */
typedef struct ts_enroll_job {
	struct ts_enroll_job *next;      /* in d->enroll_jobs */
	ts_vault_entry *e;
	sd_bus_message *m;               /* also keeps fd_out open */
	ts_caller caller;
	char type[32];
	char replace[TS_PROTECTOR_ID_MAX + 8];
	int fd_out;
	ts_remote_job *remote;
	ts_limit_job *lim;               /* limits.h: one of the uid's jobs */
} ts_enroll_job;

static void enroll_job_free(ts_enroll_job *j)
{
	ts_enroll_job **pp;

	if (!j)
		return;
	for (pp = &j->e->d->enroll_jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	ts_remote_job_cancel(j->remote);
	ts_limits_end(j->lim);
	sd_bus_message_unref(j->m);
	free(j);
}

void ts_protector_methods_cancel_jobs(ts_daemon *d)
{
	while (d->enroll_jobs)
		enroll_job_free(d->enroll_jobs);
	while (probe_jobs)
		probe_job_free(probe_jobs);
}

/*
 * The second half of AddProtector, once the backend has enrolled (r >= 0:
 * kek, params, desc, and a minted secret when secret_len > 0) or failed (r,
 * err): add the protector, check the policy, hand out the secret, persist,
 * and reply to m.
 */
static void enroll_complete(ts_vault_entry *e, sd_bus_message *m, const ts_caller *caller, const char *type,
                            const char *replace, int fd_out, int r, const uint8_t *kek, const uint8_t *params,
                            size_t params_len, const char *desc, const char *secret, size_t secret_len,
                            const char *err)
{
	_ts_cleanup_secure_ char *secret_out = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	char errbuf[256], id[TS_PROTECTOR_ID_MAX] = "", d[TS_PROTECTOR_DESC_MAX];
	const char *new_id;

	snprintf(errbuf, sizeof(errbuf), "%s", err ? err : "");
	if (r < 0)
		goto out;
	/* The wait may have been long: the vault may have been locked meanwhile. */
	if ((r = ts_vault_require_unlocked(e, &error)) < 0) {
		snprintf(errbuf, sizeof(errbuf), "the vault was locked while the token was being enrolled; unlock it and enroll again");
		sd_bus_error_free(&error);
		goto out;
	}
	snprintf(d, sizeof(d), "%s", desc ? desc : "");
	if ((r = ts_vault_add_protector(e->vault, type, d, kek, params, params_len, ts_now(), &new_id)) < 0)
		goto out;
	snprintf(id, sizeof(id), "%s", new_id);
	if (replace && *replace && !ts_vault_find_protector(e->vault, replace)) {
		(void)ts_daemon_revert(e);
		r = -TS_E_NO_SUCH_PROTECTOR;
		snprintf(errbuf, sizeof(errbuf), "cannot remove protector %.40s; nothing changed", replace);
		goto out;
	}
	/* The vault as it would be, against the policy (a vault being built may still be below [protectors] min). */
	if ((r = ts_enforce_protectors(e->vault, replace && *replace ? replace : NULL, 0, errbuf, sizeof(errbuf))) < 0) {
		(void)ts_daemon_revert(e);
		(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, caller, type, r);
		goto out;
	}
	if (secret_len > 0) {
		/* A minted secret is written once the file accepts it; what it replaces goes after (handout.h). */
		if (secret_len >= TS_SECRET_IN_MAX || (secret_out = ts_secure_alloc(TS_SECRET_IN_MAX)) == NULL) {
			(void)ts_daemon_revert(e);
			r = secret_out ? -TS_E_LIMIT : -TS_E_NOMEM;
			goto out;
		}
		memcpy(secret_out, secret, secret_len);
		secret_out[secret_len++] = '\n';
		if ((r = ts_handout_secret(e, id, replace, fd_out, secret_out, secret_len, errbuf, sizeof(errbuf))) < 0)
			goto out;
	} else {
		/* Nothing to hand out: the new protector and the one it replaces change in one save. */
		if (replace && *replace && (r = ts_vault_remove_protector(e->vault, replace)) < 0) {
			(void)ts_daemon_revert(e);
			snprintf(errbuf, sizeof(errbuf), "cannot remove protector %.40s; nothing changed", replace);
			goto out;
		}
		if ((r = ts_daemon_persist(e)) < 0) {
			errbuf[0] = '\0';
			goto out;
		}
	}
	(void)ts_audit("enroll", e->vault->name, e->vault->owner_uid, caller, id, 0);
	/* Its facts (for Protectors, Unlock's choices) from a helper ahead of the first read, not in it. */
	if (ts_protector_lookup(type))
		ts_remote_describe_prefetch(ts_protector_lookup(type), params, params_len);
	if (replace && *replace) {
		(void)ts_audit("revoke", e->vault->name, e->vault->owner_uid, caller, replace, 0);
		/* The generation before holds the replaced protector: it must not stay on disk as NAME.vault.bak. */
		ts_rollback_drop_backup(e, "revocation");
	}
	ts_daemon_touch(e);
	ts_properties_emit_changed(e);
	if (sd_bus_reply_method_return(m, "s", id) < 0)
		(void)sd_bus_reply_method_errorf(m, ts_error_dbus_name(-TS_E_FAILED), "cannot build the reply");
	return;
out:
	(void)ts_audit("enroll", e->vault->name, e->vault->owner_uid, caller, type, r);
	(void)ts_bus_error(&error, r, errbuf);
	(void)sd_bus_reply_method_error(m, &error);
	sd_bus_error_free(&error);
}

static void on_remote_enroll(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	ts_enroll_job *j = userdata;

	j->remote = NULL;
	enroll_complete(j->e, j->m, &j->caller, j->type, j->replace, j->fd_out, r, reply ? reply->kek : NULL,
	                reply ? reply->params : NULL, reply ? reply->params_len : 0, reply ? reply->desc : NULL,
	                reply ? (const char *)reply->secret : NULL, reply ? reply->secret_len : 0, err);
	enroll_job_free(j);
}

int ts_protector_method_add(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_daemon *d = e->d;
	_ts_cleanup_secure_ uint8_t *secret_in = NULL;
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	_ts_cleanup_secure_ char *secret_out = NULL;
	_ts_cleanup_buf_ ts_buf params = { 0 };
	char desc[TS_PROTECTOR_DESC_MAX] = "", errbuf[256] = "";
	const ts_protector_ops *ops;
	ts_protector_request req = { 0 };
	const char *type, *replace = NULL;
	ts_enroll_job *j;
	_ts_cleanup_kv_ ts_kv *opts = NULL;
	size_t n_opts = 0, secret_in_len = 0, secret_out_len = 0;
	int fd_in, fd_out, r;
	ts_caller caller;

	if ((r = sd_bus_message_read(m, "s", &type)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 32)) < 0)
		return ts_bus_error(error, r, NULL);
	if ((r = sd_bus_message_read(m, "hh", &fd_in, &fd_out)) < 0)
		return ts_bus_bad_args(error, r);
	if (ts_secretfd_check(fd_out) < 0)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, "secret_out: not a pipe or socket (files, devices and "
		                    "directories are refused)");
	/* The secret is read from the loop: the first dispatch starts it, the second finds it (no audit record twice). */
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0 ||
	    (r = ts_secretfd_take(d, m, fd_in, "secret_in", &secret_in, &secret_in_len, error)) <= 0 ||
	    (r = ts_audit_gate("enroll", e->vault->name, e->vault->owner_uid, &caller, type, error)) < 0)
		return r == 0 ? 1 : r;
	if ((ops = ts_protector_lookup(type)) == NULL) {
		r = -TS_E_NOT_SUPPORTED;
		snprintf(errbuf, sizeof(errbuf), "unknown protector type (built in:");
		for (const ts_protector_ops *const *p = ts_protector_all(); *p; p++)
			snprintf(errbuf + strlen(errbuf), sizeof(errbuf) - strlen(errbuf), " %s", (*p)->type);
		snprintf(errbuf + strlen(errbuf), sizeof(errbuf) - strlen(errbuf), ")");
		goto out;
	}
	/* No device, file, module or TCTI from a caller reaches the (root) token helper. */
	if ((r = ts_protector_check_options(ops->type, opts, n_opts, errbuf, sizeof(errbuf))) < 0)
		goto out;
	/*
	 * replace=ID: the new protector takes the place of ID (same type), e.g. a
	 * TPM protector re-sealed to new PCR values. Checked before the token is
	 * touched; the old one goes in the same saved change as the new one comes.
	 */
	if ((replace = ts_kv_find(opts, n_opts, "replace")) != NULL) {
		const ts_protector_record *old = ts_vault_find_protector(e->vault, replace);

		if (!old) {
			r = -TS_E_NO_SUCH_PROTECTOR;
			snprintf(errbuf, sizeof(errbuf), "replace: no protector '%.40s' in this vault", replace);
			goto out;
		}
		if (strcmp(old->type, ops->type) != 0) {
			r = -TS_E_INVALID_ARGS;
			snprintf(errbuf, sizeof(errbuf), "replace: protector %s is of type %s, not %s", old->id,
			         old->type, ops->type);
			goto out;
		}
	}
	if ((r = ts_enforce_type_allowed(e, ops->type, replace, &caller, error)) < 0)
		return r;
	/* A tang protector's servers: only those the administrator listed, checked before any helper runs. */
	if (strcmp(ops->type, "tang") == 0) {
		const char *urls = ts_kv_find(opts, n_opts, "url");

		if ((r = ts_enforce_tang_option(urls, errbuf, sizeof(errbuf))) < 0) {
			(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, &caller, ops->type, r);
			return ts_bus_error(error, r, errbuf);
		}
	}
	ts_protector_request_init(&req, &d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
	req.options = opts;
	req.n_options = n_opts;
	req.reserved_ok = caller.uid == 0;
	req.pin = secret_in;
	req.pin_len = secret_in_len;

	if (ts_protector_is_remote(ops)) {
		/* The token's part runs in the helper; the reply comes from on_remote_enroll. */
		ts_limit_job *lim = NULL;

		if ((r = ts_limits_job_begin(e, &caller, &lim, error)) < 0)
			return r;
		if ((j = calloc(1, sizeof(*j))) == NULL) {
			ts_limits_end(lim);
			r = -TS_E_NOMEM;
			goto out;
		}
		j->lim = lim;
		j->e = e;
		j->m = sd_bus_message_ref(m);
		j->caller = caller;
		j->fd_out = fd_out;
		snprintf(j->type, sizeof(j->type), "%s", ops->type);
		snprintf(j->replace, sizeof(j->replace), "%s", replace ? replace : "");
		if ((r = ts_remote_enroll_start(d->event, ops, &req, on_remote_enroll, j, &j->remote)) < 0) {
			ts_limits_end(j->lim);
			sd_bus_message_unref(j->m);
			free(j);
			goto out;
		}
		j->next = d->enroll_jobs;
		d->enroll_jobs = j;
		return 1;
	}

	if ((kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL || (secret_out = ts_secure_alloc(TS_SECRET_IN_MAX)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	r = ops->enroll(&req, kek, &params, desc, secret_out, TS_SECRET_IN_MAX - 1, &secret_out_len);
	desc[TS_PROTECTOR_DESC_MAX - 1] = '\0';
	enroll_complete(e, m, &caller, ops->type, replace, fd_out, r, kek, params.data, params.len, desc, secret_out,
	                secret_out_len, errbuf);
	return 1;
out:
	(void)ts_audit("enroll", e->vault->name, e->vault->owner_uid, &caller, type, r);
	return ts_bus_error(error, r, errbuf);
}

int ts_protector_method_revoke(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	const char *id;
	ts_caller caller;
	int r;

	if ((r = sd_bus_message_read(m, "s", &id)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0 ||
	    (r = ts_audit_gate("revoke", e->vault->name, e->vault->owner_uid, &caller, id, error)) < 0)
		return r;
	/* Removal only (true revocation is RevokeAndRekey); what remains must satisfy the policy. */
	if (ts_vault_find_protector(e->vault, id) && e->vault->n_protectors > 1 &&
	    e->vault->n_protectors - 1 >= e->vault->threshold &&
	    (r = ts_enforce_protectors_bus(e, id, 1, &caller, id, error)) < 0)
		return r;
	if ((r = ts_vault_remove_protector(e->vault, id)) < 0 || (r = ts_daemon_persist(e)) < 0) {
		char msg[256] = "";

		if (r == -TS_E_LAST_PROTECTOR && e->vault->threshold > 1)
			snprintf(msg, sizeof(msg), "refusing: vault '%s' opens with %u of its protectors; without %.40s only "
			         "%zu would be left: add another one first", e->vault->name, e->vault->threshold, id,
			         e->vault->n_protectors - 1);
		else if (r == -TS_E_LAST_PROTECTOR)
			snprintf(msg, sizeof(msg), "refusing to remove the last protector: add another one first");
		(void)ts_audit("revoke", e->vault->name, e->vault->owner_uid, &caller, id, r);
		return ts_bus_error(error, r, msg);
	}
	ts_rollback_drop_backup(e, "revocation");
	(void)ts_audit("revoke", e->vault->name, e->vault->owner_uid, &caller, id, 0);
	ts_daemon_touch(e);
	ts_properties_emit_changed(e);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
}
