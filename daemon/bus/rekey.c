/* rekey.c — Vault.RevokeAndRekey and RotateRecoveryKey: true revocation by re-keying the vault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bus/rekey.h"
#include "bus/audit.h"
#include "bus/authorize.h"
#include "bus/daemon.h"
#include "bus/escrow_methods.h"
#include "bus/handout.h"
#include "bus/limits.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/properties.h"
#include "bus/rollback.h"
#include "bus/secretfd.h"
#include "bus/state.h"
#include "bus/redispatch.h"
#include "core/escrow.h"
#include "protectors/escrow_stock.h"
#include "protectors/remote.h"

/* "ID SECRET" lines, or "ID" alone (a protector that needs no secret but a touch). */
struct given {
	char id[TS_PROTECTOR_ID_MAX];
	const uint8_t *secret;
	size_t len;
};

static size_t parse_given(uint8_t *buf, size_t len, struct given *g, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		size_t start = i, end, idlen;
		while (i < len && buf[i] != '\n')
			i++;
		end = i++;
		for (idlen = 0; start + idlen < end && buf[start + idlen] != ' '; idlen++)
			;
		if (idlen == 0 || idlen >= TS_PROTECTOR_ID_MAX)
			continue;
		memcpy(g[n].id, buf + start, idlen);
		g[n].id[idlen] = '\0';
		g[n].secret = start + idlen < end ? buf + start + idlen + 1 : NULL;
		g[n].len = start + idlen < end ? end - start - idlen - 1 : 0;
		n++;
	}
	return n;
}

/* Is p one whose KEK RevokeAndRekey tries to obtain (given its secret g, or NULL)? */
static int rekey_tries(const ts_protector_record *p, const ts_protector_ops *ops, const struct given *g)
{
	/* Presence cannot be assumed: a FIDO2 key is only asked when the caller says its user is there. */
	return ops && (g || (strcmp(p->type, "fido2") != 0 && !(ops->needs_secret && ops->needs_secret(p->params, p->params_len))));
}

static const struct given *given_for(const struct given *given, size_t n_given, const char *id)
{
	const struct given *g = NULL;

	for (size_t j = 0; j < n_given; j++)
		if (strcmp(given[j].id, id) == 0)
			g = &given[j];
	return g;
}

/*
 * RevokeAndRekey's KEKs from tokenseal-helper (FIDO2, TPM 2.0, PKCS#11,
 * recovery keys), asked one protector after the other from the event loop;
 * the call is dispatched again once all have answered, and finds them here.
 * Protectors are held by id; each KEK is still checked against the vault
 * file before it is used.
 */
typedef struct rekey_job {
	struct rekey_job *next;
	ts_vault_entry *e;
	sd_bus_message *m;
	char drop[TS_PROTECTOR_ID_MAX];  /* the protector that goes, as chosen at the first dispatch */
	uint8_t *secrets;                /* secure memory; given[] points into it */
	size_t secrets_len;
	struct given given[TS_VAULT_MAX_PROTECTORS];
	size_t n_given;
	char ids[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX];
	int ok[TS_VAULT_MAX_PROTECTORS];
	uint8_t *keks;                   /* secure memory, TS_VAULT_MAX_PROTECTORS * TS_KEY_BYTES */
	size_t n, next_i;
	int done;
	int failed;                      /* a helper could not be started (Busy, ...): the call changes nothing */
	int escrow_failed;               /* ... or no box key could be wrapped for an RSA escrow recipient */
	char why[256];
	int root;                        /* the caller is root: may use the helpers [limits] keeps back */
	ts_remote_job *remote;
	ts_limit_job *lim;               /* one of the caller uid's jobs (limits.h) */
	int keks_done;                   /* every KEK asked for has been answered */
	ts_escrow_stock_hold *escrow;    /* box keys for the vault's RSA escrow recipients (escrow_stock.h) */
	int escrow_waiting;
} rekey_job;

static rekey_job *rekey_jobs;

static void rekey_job_free(rekey_job *j)
{
	for (rekey_job **pp = &rekey_jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	ts_remote_job_cancel(j->remote);
	ts_escrow_stock_release(j->escrow);
	ts_limits_end(j->lim);
	ts_secure_free(j->secrets);
	ts_secure_free(j->keks);
	sd_bus_message_unref(j->m);
	free(j);
}

void ts_rekey_stop(void)
{
	while (rekey_jobs)
		rekey_job_free(rekey_jobs);
}

static void rekey_job_step(rekey_job *j);

/* Dispatch the call again once the KEKs and the escrow box keys are all in. */
static void rekey_job_resume(rekey_job *j)
{
	if (!j->keks_done || j->escrow_waiting)
		return;
	j->done = 1;
	if (ts_bus_dispatch_again(j->m, "its KEKs") < 0)
		rekey_job_free(j);
}

/* The box keys are held, or cannot be: then the re-key fails and changes nothing, without more KEKs asked. */
static void on_rekey_escrow(void *userdata, int rc, const char *err)
{
	rekey_job *j = userdata;

	j->escrow_waiting = 0;
	if (rc < 0) {
		if (!j->failed) {
			j->failed = rc;
			j->escrow_failed = 1;
			snprintf(j->why, sizeof(j->why), "%s", err);
		}
		ts_remote_job_cancel(j->remote);
		j->remote = NULL;
		j->next_i = j->n;
		j->keks_done = 1;
	}
	rekey_job_resume(j);
}

static void on_rekey_unlock(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	rekey_job *j = userdata;
	size_t i = j->next_i - 1;

	j->remote = NULL;
	if (r >= 0 && reply->kek) {
		memcpy(j->keks + i * TS_KEY_BYTES, reply->kek, TS_KEY_BYTES);
		j->ok[i] = 1;
	} else
		ts_log(TS_LOG_INFO, "vault=%s: protector %s gives no KEK for the re-key: %s", j->e->vault->name, j->ids[i],
		       err && *err ? err : ts_strerror(r));
	rekey_job_step(j);
}

/* Ask the helper for the next KEK, or dispatch the call again when all have answered. */
static void rekey_job_step(rekey_job *j)
{
	ts_vault_entry *e = j->e;
	int r;

	while (j->next_i < j->n) {
		const char *id = j->ids[j->next_i++];
		const ts_protector_record *p = ts_vault_find_protector(e->vault, id);
		const ts_protector_ops *ops = p ? ts_protector_lookup(p->type) : NULL;
		const struct given *g = given_for(j->given, j->n_given, id);
		ts_protector_request req = { 0 };
		char errbuf[256] = "";

		if (!ops)
			continue;
		ts_protector_request_init(&req, &e->d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
		req.pin = g ? g->secret : NULL;
		req.pin_len = g ? g->len : 0;
		req.reserved_ok = j->root;
		/* A tang record's servers must be on [tang] servers; one that is not gives no KEK (as if it were down). */
		if (strcmp(p->type, "tang") == 0 && (r = ts_enforce_tang_record(p, errbuf, sizeof(errbuf))) < 0) {
			ts_log(TS_LOG_INFO, "vault=%s: protector %s gives no KEK for the re-key: %s", e->vault->name, id, errbuf);
			continue;
		}
		if ((r = ts_remote_unlock_start(e->d->event, ops, &req, p->params, p->params_len, on_rekey_unlock, j,
		                                &j->remote)) >= 0)
			return;
		/*
		 * No helper now (the helpers are busy, or a token protector's cannot
		 * start): a protector is never dropped for that, the whole call fails
		 * and nothing changes. Only a recovery key, when no helper can run at
		 * all, is checked by the daemon's own backend (the break-glass key
		 * never depends on the helper).
		 */
		if (r == -TS_E_BUSY || ts_protector_is_remote(ops)) {
			j->failed = r;
			snprintf(j->why, sizeof(j->why), "protector %s: %s", id, errbuf[0] ? errbuf : ts_strerror(r));
			break;
		}
		if (ops->unlock(&req, p->params, p->params_len, j->keks + (j->next_i - 1) * TS_KEY_BYTES) >= 0)
			j->ok[j->next_i - 1] = 1;
	}
	j->keks_done = 1;
	rekey_job_resume(j);
}

/*
 * Start asking the helper for the KEKs of the protectors it runs, and have
 * box keys wrapped for the vault's RSA escrow recipients (the re-key seals
 * to them anew): 1 when a job was started (*secrets moved into it), 0 when
 * there is nothing to ask.
 */
static int rekey_job_start(ts_vault_entry *e, sd_bus_message *m, const ts_caller *caller, const char *revoked,
                           uint8_t **secrets, size_t secrets_len, const struct given *given, size_t n_given,
                           char *msg, size_t msglen)
{
	const uint8_t *spkis[TS_VAULT_MAX_ESCROW];
	size_t lens[TS_VAULT_MAX_ESCROW], nr = 0;
	char err[256] = "";
	rekey_job *j;
	int r;

	for (size_t i = 0; i < e->vault->n_escrow && nr < TS_VAULT_MAX_ESCROW; i++)
		if (e->vault->escrow[i].type == TS_ESCROW_TYPE_RSA) {
			spkis[nr] = e->vault->escrow[i].pubkey;
			lens[nr++] = e->vault->escrow[i].pubkey_len;
		}

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -TS_E_NOMEM;
	for (size_t i = 0; i < e->vault->n_protectors; i++) {
		const ts_protector_record *p = &e->vault->protectors[i];
		const ts_protector_ops *ops = ts_protector_lookup(p->type);

		if (strcmp(p->id, revoked) != 0 && ops && ts_protector_unlocks_in_helper(ops) &&
		    rekey_tries(p, ops, given_for(given, n_given, p->id)))
			snprintf(j->ids[j->n++], sizeof(j->ids[0]), "%s", p->id);
	}
	if (j->n == 0 && nr == 0) {
		free(j);
		return 0;
	}
	/* Counted against the caller's uid like an Unlock: one uid's loop cannot hold every helper. */
	if ((r = ts_limits_job_try(e, caller, &j->lim, msg, msglen)) < 0) {
		free(j);
		return r;
	}
	j->root = caller->uid == 0;
	if ((j->keks = ts_secure_alloc((size_t)TS_VAULT_MAX_PROTECTORS * TS_KEY_BYTES)) == NULL) {
		ts_limits_end(j->lim);
		free(j);
		return -TS_E_NOMEM;
	}
	/* Helper runs for the box keys are the caller's, as its KEKs are. */
	if (nr > 0 && (r = ts_escrow_stock_prepare(e->d->event, spkis, lens, nr, caller->uid, on_rekey_escrow, j, &j->escrow,
	                                           err, sizeof(err))) < 0) {
		snprintf(msg, msglen, "escrow to an RSA recipient: %.200s; nothing changed", err);
		ts_secure_free(j->keks);
		ts_limits_end(j->lim);
		free(j);
		return r;
	}
	j->escrow_waiting = nr > 0 && r == 0;
	/* The given secrets stay where they are: given[] keeps pointing into them. */
	j->secrets = *secrets;
	j->secrets_len = secrets_len;
	*secrets = NULL;
	memcpy(j->given, given, n_given * sizeof(given[0]));
	j->n_given = n_given;
	snprintf(j->drop, sizeof(j->drop), "%s", revoked);
	j->e = e;
	j->m = sd_bus_message_ref(m);
	j->next = rekey_jobs;
	rekey_jobs = j;
	rekey_job_step(j);
	return 1;
}

static int reply_list(sd_bus_message *reply, char ids[][TS_PROTECTOR_ID_MAX], size_t n)
{
	int r;

	if ((r = sd_bus_message_open_container(reply, 'a', "s")) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = sd_bus_message_append(reply, "s", ids[i])) < 0)
			return r;
	return sd_bus_message_close_container(reply);
}

/*
 * What one re-key was asked for: RevokeAndRekey names the protector to
 * revoke; RotateRecoveryKey names the used recovery key and wants a new one.
 */
struct rekey_req {
	const char *event;                 /* the method's audit event: "revoke" or "rotate-recovery" */
	char drop[TS_PROTECTOR_ID_MAX];    /* the protector that goes */
	int fd;                            /* secrets of the protectors to keep */
	int fd_out;                        /* RotateRecoveryKey: the new recovery key goes here; else -1 */
};

static rekey_job *rekey_job_of(sd_bus_message *m)
{
	rekey_job *job;

	for (job = rekey_jobs; job && job->m != m; job = job->next)
		;
	return job;
}

/*
 * The re-key behind RevokeAndRekey and RotateRecoveryKey, for a caller
 * owner_may has let through. A fresh vault secret and root key replace the
 * old ones (ts_vault_rekey); protector q->drop is gone, and every other
 * protector stays only if the daemon can obtain its KEK now: from the secret
 * given for it in the secrets fd ("ID SECRET" per line: a recovery key, a
 * PIN), by touch when listed as "ID" alone (FIDO2), or on its own when it
 * needs nothing (a TPM without PIN). Each KEK is checked against the vault
 * file before anything changes. The rest are dropped, and named in the
 * reply; the result must still satisfy the policy and the threshold, else
 * nothing changes.
 *
 * Nothing here waits in the loop: the first dispatch starts reading the
 * secrets, the second starts the helper on the KEKs and on box keys for the
 * RSA escrow recipients (rekey_job), the third finds them and re-keys.
 *
 * With q->fd_out >= 0 a new recovery protector is enrolled: saved beside
 * the others first and its key written to fd_out (ts_handout_secret), so
 * the key goes out only for a file that accepts it; then the re-key drops
 * q->drop and re-wraps the new protector with the rest. If that last save
 * fails, the file keeps both recovery keys and the old vault secret, and
 * the caller is told so. Replies (as kept, as dropped), with the new
 * protector's id first (s) when there is one.
 */
static int rekey(sd_bus_message *m, ts_vault_entry *e, const ts_caller *caller, struct rekey_req *q,
                 sd_bus_error *error)
{
	ts_daemon *d = e->d;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	_ts_cleanup_secure_ uint8_t *secrets = NULL;
	_ts_cleanup_secure_ uint8_t *keks = NULL;
	_ts_cleanup_secure_ char *rkey = NULL;
	_ts_cleanup_buf_ ts_buf rparams = { 0 };
	struct given given[TS_VAULT_MAX_PROTECTORS];
	char kept[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX], dropped[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX];
	char msg[TS_POLICY_MSG_MAX] = "", errbuf[256], new_id[TS_PROTECTOR_ID_MAX] = "", rdesc[TS_PROTECTOR_DESC_MAX] = "";
	ts_vault_keep keep[TS_VAULT_MAX_PROTECTORS + 1];
	ts_vault *check = NULL;
	rekey_job *job = rekey_job_of(m);
	size_t secrets_len = 0, n_given, n_kept = 0, n_keep, n_dropped = 0, rkey_len = 0;
	uint32_t version = 0;
	int r;

	if (job) {
		if (!job->done)
			return 1;
		/* The protector chosen at the first dispatch (RotateRecoveryKey's "" may name another by now). */
		snprintf(q->drop, sizeof(q->drop), "%s", job->drop);
	} else if ((r = ts_secretfd_take(d, m, q->fd, "secrets", &secrets, &secrets_len, error)) <= 0 ||
	           (r = ts_audit_gate(q->event, e->vault->name, e->vault->owner_uid, caller, NULL, error)) < 0)
		return r == 0 ? 1 : r;
	if (!ts_vault_find_protector(e->vault, q->drop)) {
		r = -TS_E_NO_SUCH_PROTECTOR;
		goto out;
	}
	if (job && job->failed < 0) {
		r = job->failed;
		if (job->escrow_failed)
			snprintf(msg, sizeof(msg), "escrow to an RSA recipient: no box key could be wrapped (%.200s); "
			         "nothing changed", job->why);
		else
			snprintf(msg, sizeof(msg), "the token helper could not be asked (%.200s): nothing changed; try again",
			         job->why);
		goto out;
	}
	if (job) {
		memcpy(given, job->given, sizeof(given));
		n_given = job->n_given;
	} else {
		n_given = secrets ? parse_given(secrets, secrets_len, given, TS_VAULT_MAX_PROTECTORS) : 0;
		if ((r = rekey_job_start(e, m, caller, q->drop, &secrets, secrets_len, given, n_given, msg, sizeof(msg))) != 0) {
			if (r > 0)
				return 1;   /* answered from the third dispatch */
			goto out;
		}
	}
	/* One more KEK than protectors kept: a new recovery key's. */
	if ((keks = ts_secure_alloc((size_t)(TS_VAULT_MAX_PROTECTORS + 1) * TS_KEY_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	/* A KEK proves itself against the vault as stored, never against memory we are about to change. */
	if ((r = ts_vault_parse(e->disk.data, e->disk.len, &check)) < 0)
		goto out;
	for (size_t i = 0; i < e->vault->n_protectors; i++) {
		const ts_protector_record *p = &e->vault->protectors[i];
		const ts_protector_ops *ops = ts_protector_lookup(p->type);
		const struct given *g = given_for(given, n_given, p->id);
		ts_protector_request req = { 0 };
		uint8_t *kek = keks + n_kept * TS_KEY_BYTES;
		int needed = 0, got = -1;

		if (strcmp(p->id, q->drop) == 0)
			continue;
		if (!rekey_tries(p, ops, g)) {
			snprintf(dropped[n_dropped++], TS_PROTECTOR_ID_MAX, "%s", p->id);
			continue;
		}
		if (ts_protector_unlocks_in_helper(ops)) {
			/* Asked by rekey_job; one added since was not asked, and is dropped. */
			for (size_t k = 0; job && k < job->n; k++)
				if (strcmp(job->ids[k], p->id) == 0 && job->ok[k]) {
					memcpy(kek, job->keks + k * TS_KEY_BYTES, TS_KEY_BYTES);
					got = 0;
				}
		} else {
			ts_protector_request_init(&req, &d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
			req.pin = g ? g->secret : NULL;
			req.pin_len = g ? g->len : 0;
			got = ops->unlock(&req, p->params, p->params_len, kek);
		}
		if (got < 0 || ts_vault_unlock_share(check, p->id, kek, &needed) < 0) {
			sodium_memzero(kek, TS_KEY_BYTES);
			snprintf(dropped[n_dropped++], TS_PROTECTOR_ID_MAX, "%s", p->id);
			continue;
		}
		/* k-of-n: a check copy that just opened must not keep the shares around. */
		ts_vault_lock(check);
		snprintf(kept[n_kept], TS_PROTECTOR_ID_MAX, "%s", p->id);
		keep[n_kept].id = kept[n_kept];
		keep[n_kept].kek = kek;
		keep[n_kept].params = NULL;
		keep[n_kept].params_len = 0;
		n_kept++;
	}
	n_keep = n_kept + (q->fd_out >= 0);
	if (n_keep == 0 || n_keep < e->vault->threshold) {
		r = -TS_E_LAST_PROTECTOR;
		snprintf(msg, sizeof(msg), "only %zu protector(s) could be re-wrapped (threshold %u): give the secrets "
		         "of the protectors to keep", n_kept, e->vault->threshold ? e->vault->threshold : 1);
		goto out;
	}
	/* The vault after the change (the new recovery key counted as one more), judged before anything is written. */
	{
		ts_vault shadow = *e->vault;
		ts_protector_record sp[TS_VAULT_MAX_PROTECTORS + 1];
		size_t ns = 0;

		for (size_t i = 0; i < e->vault->n_protectors; i++)
			for (size_t j = 0; j < n_kept; j++)
				if (strcmp(e->vault->protectors[i].id, kept[j]) == 0)
					sp[ns++] = e->vault->protectors[i];
		if (q->fd_out >= 0)
			sp[ns++] = (ts_protector_record){ .type = "recovery" };
		shadow.protectors = sp;
		shadow.n_protectors = ns;
		if ((r = ts_enforce_protectors(&shadow, NULL, 1, msg, sizeof(msg))) < 0) {
			(void)ts_audit("policy-denied", e->vault->name, e->vault->owner_uid, caller, q->drop, r);
			goto out;
		}
	}
	if (q->fd_out >= 0) {
		/* The new recovery key: saved beside the others under the current secret, then delivered. */
		uint8_t *kek = keks + n_kept * TS_KEY_BYTES;
		ts_protector_request req = { 0 };
		const char *nid = NULL;

		if ((rkey = ts_secure_alloc(TS_SECRET_IN_MAX)) == NULL) {
			r = -TS_E_NOMEM;
			goto out;
		}
		ts_protector_request_init(&req, &d->config, e->vault->name, e->vault->id, msg, sizeof(msg));
		if ((r = ts_protector_recovery.enroll(&req, kek, &rparams, rdesc, rkey, TS_SECRET_IN_MAX - 1, &rkey_len)) < 0)
			goto out;
		if ((r = ts_vault_add_protector(e->vault, "recovery", rdesc, kek, rparams.data, rparams.len, ts_now(),
		                                &nid)) < 0) {
			(void)ts_daemon_revert(e);
			goto out;
		}
		snprintf(new_id, sizeof(new_id), "%s", nid);
		rkey[rkey_len++] = '\n';
		if ((r = ts_handout_secret(e, new_id, NULL, q->fd_out, rkey, rkey_len, msg, sizeof(msg))) < 0)
			goto out;
		(void)ts_audit("enroll", e->vault->name, e->vault->owner_uid, caller, new_id, 0);
		keep[n_kept].id = new_id;
		keep[n_kept].kek = kek;
		keep[n_kept].params = NULL;
		keep[n_kept].params_len = 0;
	}
	/* The box keys held for this call go back to the stock, where this seal takes them. */
	if (job) {
		ts_escrow_stock_release(job->escrow);
		job->escrow = NULL;
	}
	if ((r = ts_vault_rekey(e->vault, ts_now(), keep, n_keep, &version)) < 0) {
		(void)ts_daemon_revert(e);
		goto saved_new;
	}
	if ((r = ts_daemon_persist(e)) < 0)
		goto saved_new;
	/* The previous generation opens with the protector that went: not left on disk. */
	ts_rollback_drop_backup(e, new_id[0] ? "recovery-key rotation" : "revocation");
	ts_vault_free(check);
	check = NULL;
	(void)ts_audit(q->event, e->vault->name, e->vault->owner_uid, caller, q->drop, 0);
	(void)ts_audit("rekey", e->vault->name, e->vault->owner_uid, caller, NULL, 0);
	for (size_t i = 0; i < n_dropped; i++) {
		ts_log(TS_LOG_WARNING, "vault=%s: protector %s dropped by the re-key (its KEK was not available)",
		       e->vault->name, dropped[i]);
		(void)ts_audit("revoke", e->vault->name, e->vault->owner_uid, caller, dropped[i], 0);
	}
	if (e->vault->n_escrow)
		(void)ts_escrow_emit_changed(e);
	ts_daemon_touch(e);
	ts_properties_emit_changed(e);
	if (job)
		rekey_job_free(job);
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 ||
	    (new_id[0] && (r = sd_bus_message_append(reply, "s", new_id)) < 0) ||
	    (r = reply_list(reply, kept, n_kept)) < 0 || (r = reply_list(reply, dropped, n_dropped)) < 0)
		return ts_bus_errno(error, r);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
saved_new:
	/* The new recovery key went out with a saved file that accepts it; the used one still opens that file too. */
	if (new_id[0])
		snprintf(msg, sizeof(msg), "the new recovery key (protector %s) was saved and written, but the re-key "
		         "could not be saved (%s): the used key %s still opens the vault too; run this again once the "
		         "state directory is writable", new_id, ts_strerror(r), q->drop);
out:
	if (job)
		rekey_job_free(job);
	ts_vault_free(check);
	(void)ts_audit(q->event, e->vault->name, e->vault->owner_uid, caller, q->drop, r);
	return ts_bus_error(error, r, msg);
}

/* A call ts_vault_authorize turned away after its first dispatch: its job, if any, goes. */
static int rekey_refused(sd_bus_message *m, int r)
{
	rekey_job *job = rekey_job_of(m);

	if (job)
		rekey_job_free(job);
	return r;
}

/* RevokeAndRekey(s id, h secrets) -> (as kept, as dropped): true revocation of protector id (rekey above). */
int ts_rekey_method_revoke_and_rekey(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	struct rekey_req q = { .event = "revoke", .fd_out = -1 };
	const char *id;
	ts_caller caller;
	int r;

	if ((r = sd_bus_message_read(m, "sh", &id, &q.fd)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r < 0 ? rekey_refused(m, r) : r;
	snprintf(q.drop, sizeof(q.drop), "%s", id);
	return rekey(m, e, &caller, &q, error);
}

/*
 * RotateRecoveryKey(s protector, h secrets, h out) -> (s id, as kept, as
 * dropped): a recovery key that has been used (typed in, read out loud,
 * photographed) is replaced, as BitLocker does with a used recovery
 * password, and the vault is re-keyed, so the used key plus an old copy of
 * the vault file opens nothing written after it. The new recovery protector
 * is saved and its key written to out before the used one goes (rekey
 * above); if the key cannot be delivered nothing changes and the old key
 * keeps working. The other protectors stay as with RevokeAndRekey
 * (secrets). protector "" means the protector that last unlocked the vault
 * (it must be a recovery key).
 */
int ts_rekey_method_rotate_recovery_key(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	struct rekey_req q = { .event = "rotate-recovery" };
	char errbuf[TS_POLICY_MSG_MAX] = "";
	const ts_protector_record *p;
	const char *which;
	ts_caller caller;
	int r;

	if ((r = sd_bus_message_read(m, "shh", &which, &q.fd, &q.fd_out)) < 0)
		return ts_bus_bad_args(error, r);
	if (ts_secretfd_check(q.fd_out) < 0)
		return rekey_refused(m, ts_bus_error(error, -TS_E_INVALID_ARGS, "out: not a pipe or socket (files, "
		                                     "devices and directories are refused)"));
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r < 0 ? rekey_refused(m, r) : r;
	if (!*which)
		which = e->last_unlock;
	if (!rekey_job_of(m) &&
	    ((p = ts_vault_find_protector(e->vault, which)) == NULL || strcmp(p->type, "recovery") != 0)) {
		r = -TS_E_NO_SUCH_PROTECTOR;
		snprintf(errbuf, sizeof(errbuf), "no recovery protector '%.40s' in this vault", which);
		(void)ts_audit("rotate-recovery", e->vault->name, e->vault->owner_uid, &caller, which, r);
		return ts_bus_error(error, r, errbuf);
	}
	snprintf(q.drop, sizeof(q.drop), "%s", which);
	return rekey(m, e, &caller, &q, error);
}
