/* unlock.c — Vault.Unlock and Lock: the Unlock job, which tries protectors one after another from the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/recovery.h"
#include "protectors/remote.h"

#include "bus/unlock.h"
#include "bus/unlock_backoff.h"
#include "bus/audit.h"
#include "bus/authorize.h"
#include "bus/autolock.h"
#include "bus/daemon.h"
#include "bus/limits.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/properties.h"
#include "bus/protector_info.h"
#include "bus/secretfd.h"
#include "bus/state.h"

/* Errors that only say "not this one": keep looking, and prefer any other error for the reply. */
static int error_is_weak(int r)
{
	return r == -TS_E_TOKEN_ABSENT || r == -TS_E_TOKEN_NOT_ENROLLED || r == -TS_E_NOT_SUPPORTED;
}

/*
 * An Unlock in progress. Protectors are tried one after another; the ones
 * whose backend runs in tokenseal-helper are awaited from the event loop, so
 * a touch wait or a slow token stalls only this caller: the reply is sent
 * when the job ends. The candidates are taken by id when the call arrives
 * and looked up again at each step, so a protector revoked meanwhile is
 * skipped, never read from freed memory.
 *
 * A secret reaches at most one token that counts wrong PINs (docs/DBUS-API.md,
 * Unlock): input shaped like a recovery key goes to recovery protectors
 * only; a PIN goes to the one token it can be for. When several could take
 * it, the job first asks each whether its token is there (the probe spends
 * no retry and asks for no touch) and goes on only if exactly one is;
 * otherwise the caller gets AmbiguousProtector (or TokenAbsent) and nothing
 * was tried.
 */
typedef struct ts_unlock_job {
	struct ts_unlock_job *next;      /* in d->unlock_jobs */
	ts_vault_entry *e;
	sd_bus_message *m;
	ts_caller caller;
	char source[TS_BACKOFF_SOURCE_MAX];  /* whose wrong secrets these are (backoff.h) */
	int need_user;                   /* option need_user: only protectors that show somebody is there */
	uint8_t *secret;                 /* secure memory, NULL when none was given */
	size_t secret_len;
	char which[TS_PROTECTOR_ID_MAX + 16];
	char ids[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX];
	size_t n_ids, next_id;
	size_t n_probe;                  /* > 0: ids are tokens still to be asked whether they are there */
	char present[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_ID_MAX];
	char present_token[TS_VAULT_MAX_PROTECTORS][TS_PROTECTOR_DESC_MAX];   /* which token answered ("" unknown) */
	size_t n_present;
	size_t tried, matched;
	int best;
	char best_err[512];
	char current[TS_PROTECTOR_ID_MAX];   /* the protector the helper is working on */
	ts_remote_job *remote;
	ts_secretfd_op *fd_op;           /* the secret being read from the caller's fd */
	ts_limit_job *lim;               /* limits.h: this vault's one Unlock, one of the uid's jobs */
	int reserved;                    /* a wrong secret was counted at the start (before: the counter until then) */
	int wrong_seen;                  /* a protector found the secret wrong (whatever error the reply names) */
	ts_backoff_source before;
} ts_unlock_job;

static void unlock_job_free(ts_unlock_job *j)
{
	ts_unlock_job **pp;

	if (!j)
		return;
	for (pp = &j->e->d->unlock_jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	ts_remote_job_cancel(j->remote);
	ts_secretfd_cancel(j->fd_op);
	ts_limits_end(j->lim);
	ts_secure_free(j->secret);
	sd_bus_message_unref(j->m);
	free(j);
}

/* Reply to the Unlock call (the protector that was taken and the shares still needed) and end the job. */
static void unlock_reply(ts_unlock_job *j, int r, const char *msg, const char *id, unsigned needed)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;

	if (r >= 0) {
		if (sd_bus_reply_method_return(j->m, "su", id, (uint32_t)needed) < 0)
			(void)sd_bus_reply_method_errorf(j->m, ts_error_dbus_name(-TS_E_FAILED), "cannot build the reply");
	} else {
		(void)ts_bus_error(&error, r, msg);
		(void)sd_bus_reply_method_error(j->m, &error);
		sd_bus_error_free(&error);
	}
	unlock_job_free(j);
}

/* Protector id opened the vault (opened) or gave a share: the attempt's back-off count settled (unlock_backoff.c). */
static int unlock_source_ok(ts_unlock_job *j, const char *id, int opened)
{
	const ts_protector_record *p = ts_vault_find_protector(j->e->vault, id);

	if (!j->reserved)
		return 0;
	return ts_unlock_backoff_settle(j->e, j->source, &j->before, opened && p && strcmp(p->type, "recovery") == 0);
}

/* The vault is open (or, already open, confirmed) with protector id: record it and answer. */
static void unlock_succeeded(ts_unlock_job *j, const char *id)
{
	ts_vault_entry *e = j->e;
	int save;

	snprintf(e->unlocked_with, sizeof(e->unlocked_with), "%s", id);
	ts_daemon_unlocked(e, id);
	if (e->share_timer)
		sd_event_source_set_enabled(e->share_timer, SD_EVENT_OFF);
	save = unlock_source_ok(j, id, 1);
	e->lock_reason[0] = '\0';
	e->lock_changed = ts_now_usec();
	(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &j->caller, id, 0);
	ts_daemon_touch(e);
	ts_properties_emit_changed(e);
	unlock_reply(j, 0, NULL, id, 0);
	if (save)
		(void)ts_daemon_save_backoff(e);
}

/* Every candidate failed: the most telling error, and the back-off for wrong software secrets. */
static void unlock_failed(ts_unlock_job *j)
{
	ts_vault_entry *e = j->e;
	const ts_policy *pol = ts_enforce_policy();

	if (!j->matched) {
		j->best = -TS_E_NO_SUCH_PROTECTOR;
		snprintf(j->best_err, sizeof(j->best_err), "no protector matches '%s'", j->which);
	} else if (!j->tried && !j->best) {
		j->best = j->secret ? -TS_E_NO_SUCH_PROTECTOR : -TS_E_PIN_REQUIRED;
		snprintf(j->best_err, sizeof(j->best_err), j->secret ? "no protector of this vault takes this secret" :
		         "every protector of this vault that is left needs a secret");
	}
	/*
	 * Back off on wrong software secrets (recovery keys), whose guessing
	 * nothing else limits, per source (backoff.h). Token PINs are counted by
	 * the token itself; adding our own delay there would only make a user wait.
	 */
	if (j->wrong_seen) {
		if (!j->reserved) {
			ts_backoff *b = ts_daemon_backoff_mut(e);

			if (b)
				ts_backoff_failed(b, j->source, ts_now_usec(), ts_policy_recovery_attempts(pol),
				                  ts_policy_recovery_max_backoff(pol));
			else
				ts_log(TS_LOG_ERR, "vault=%s: out of memory: a wrong secret from %s is not counted",
				       e->vault->name, j->source);
			(void)ts_daemon_save_backoff(e);
		}
	} else if (j->reserved) {
		/* Counted at the start, but no secret was found wrong (no token, an error): given back. */
		ts_backoff_restore(e->backoff, &j->before);
		(void)ts_daemon_save_backoff(e);
	}
	if (!j->tried)
		(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &j->caller, j->which, j->best);
	unlock_reply(j, j->best, j->best_err, NULL, 0);
}

/*
 * One protector's answer (r, and kek when r >= 0). Returns 1 when the job
 * has ended (replied and freed), 0 to go on with the next candidate.
 */
static int unlock_result(ts_unlock_job *j, const char *id, int r, uint8_t *kek, const char *err)
{
	ts_vault_entry *e = j->e;
	char errbuf[256];
	int needed = 0;

	snprintf(errbuf, sizeof(errbuf), "%s", err ? err : "");
	/* A failed save left memory that is not the file: only the file, read back, may be opened. */
	if (r >= 0 && e->stale && ts_daemon_revert(e) < 0) {
		sodium_memzero(kek, TS_KEY_BYTES);
		r = -TS_E_IO;
		snprintf(errbuf, sizeof(errbuf), "the vault cannot be read back from its file after a failed save");
	}
	if (r >= 0) {
		r = ts_vault_unlock_share(e->vault, id, kek, &needed);
		sodium_memzero(kek, TS_KEY_BYTES);
		if (r >= 0 && needed > 0) {
			const ts_protector_record *p = ts_vault_find_protector(e->vault, id);
			int save;

			/* k-of-n: the share is kept, and the caller told how many more it takes. */
			(void)ts_audit("unlock-share", e->vault->name, e->vault->owner_uid, &j->caller, id, 0);
			save = unlock_source_ok(j, id, 0);
			ts_daemon_shares_pending(e);
			if (p)
				ts_autolock_share(e, p->type);
			ts_properties_emit_changed(e);
			unlock_reply(j, 0, NULL, id, (unsigned)needed);
			if (save)
				(void)ts_daemon_save_backoff(e);
			return 1;
		}
		if (r >= 0) {
			unlock_succeeded(j, id);
			return 1;
		}
		if (r == -TS_E_AUTH_FAILED)
			snprintf(errbuf, sizeof(errbuf), "protector %s: the secret does not open this vault", id);
		else if (r == -TS_E_CORRUPT)
			snprintf(errbuf, sizeof(errbuf), "vault file failed authentication (tampered with?)");
	}
	(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &j->caller, id, r);
	/* Counted whatever error is answered: a later protector's strong error must not give a wrong secret back. */
	if (r == -TS_E_AUTH_FAILED || r == -TS_E_BAD_RECOVERY_KEY)
		j->wrong_seen = 1;
	if (!j->best || (error_is_weak(j->best) && !error_is_weak(r))) {
		j->best = r;
		snprintf(j->best_err, sizeof(j->best_err), "%s", errbuf);
	}
	/* A wrong or blocked PIN ends the job: the same secret never goes on to another token. */
	if (r == -TS_E_PIN_INVALID || r == -TS_E_PIN_BLOCKED) {
		j->next_id = j->n_ids;
		unlock_failed(j);
		return 1;
	}
	return 0;
}

static void unlock_step(ts_unlock_job *j);

/*
 * A protector that also works in-process (the recovery key) is tried here
 * when the helper could not run or answer: the break-glass key must not
 * depend on the helper. 1 when it was (r, kek and err set), else 0.
 */
static int unlock_in_process(ts_unlock_job *j, const char *id, int *r, uint8_t *kek, char *err, size_t errlen)
{
	const ts_protector_record *p = ts_vault_find_protector(j->e->vault, id);
	const ts_protector_ops *ops = p ? ts_protector_lookup(p->type) : NULL;
	ts_protector_request req = { 0 };

	if (!ops || ts_protector_is_remote(ops))
		return 0;
	ts_log(TS_LOG_WARNING, "vault=%s protector=%s: %s; checking it in the daemon", j->e->vault->name, id,
	       err[0] ? err : "the token helper did not run");
	ts_protector_request_init(&req, &j->e->d->config, j->e->vault->name, j->e->vault->id, err, errlen);
	req.pin = j->secret;
	req.pin_len = j->secret_len;
	*r = ops->unlock(&req, p->params, p->params_len, kek);
	return 1;
}

static void on_remote_unlock(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	ts_unlock_job *j = userdata;
	_ts_cleanup_secure_ uint8_t *copy = ts_secure_alloc(TS_KEY_BYTES);
	char errbuf[256];

	j->remote = NULL;
	snprintf(errbuf, sizeof(errbuf), "%s", err ? err : "");
	if (!copy)
		r = -TS_E_NOMEM;
	else if (r >= 0)
		memcpy(copy, reply->kek, TS_KEY_BYTES);
	else if (r == -TS_E_FAILED || r == -TS_E_TIMEOUT)
		(void)unlock_in_process(j, j->current, &r, copy, errbuf, sizeof(errbuf));
	if (unlock_result(j, j->current, r, copy, errbuf) == 0)
		unlock_step(j);
}

/*
 * Tell the caller, and only the caller, that the key it is unlocking with
 * now waits for a touch: a client shows "Touch your security key" exactly
 * then, not for a TPM or a recovery key.
 */
static void emit_touch_requested(ts_unlock_job *j, const ts_protector_ops *ops, const ts_protector_record *p)
{
	_ts_cleanup_reply_ sd_bus_message *sig = NULL;
	sd_bus *bus = sd_bus_message_get_bus(j->m);
	/* A sender field means something on the bus only; a direct client writes its own. */
	const char *sender = bus == j->e->d->bus ? sd_bus_message_get_sender(j->m) : NULL;
	char touch[8];

	/* On the bus, to the caller's name alone; on a direct connection (no sender), to that connection. */
	if (strcmp(p->type, "fido2") != 0 || strcmp(ts_protector_info_fact(ops, p, "touch", touch, sizeof(touch)), "no") == 0 ||
	    !bus || (!sender && bus == j->e->d->bus))
		return;
	if (sd_bus_message_new_signal(bus, &sig, j->e->path, TS_VAULT_IFACE, "TouchRequested") >= 0 &&
	    (!sender || sd_bus_message_set_destination(sig, sender) >= 0) && sd_bus_message_append(sig, "s", p->id) >= 0)
		(void)sd_bus_send(NULL, sig, NULL);
}

/* Try the next candidates until one needs the helper (returns; on_remote_unlock resumes) or the job ends. */
static void unlock_step(ts_unlock_job *j)
{
	ts_vault_entry *e = j->e;
	_ts_cleanup_secure_ uint8_t *kek = ts_secure_alloc(TS_KEY_BYTES);
	char errbuf[256];

	if (!kek) {
		unlock_reply(j, -TS_E_NOMEM, NULL, NULL, 0);
		return;
	}
	while (j->next_id < j->n_ids) {
		const char *id = j->ids[j->next_id++];
		const ts_protector_record *p = ts_vault_find_protector(e->vault, id);
		const ts_protector_ops *ops;
		ts_protector_request req = { 0 };
		int r;

		if (!p)
			continue;   /* revoked while we were busy */
		if ((ops = ts_protector_lookup(p->type)) == NULL) {
			if (!j->best) {
				j->best = -TS_E_NOT_SUPPORTED;
				snprintf(j->best_err, sizeof(j->best_err), "protector type '%s' is not built in", p->type);
			}
			continue;
		}
		j->tried++;
		ts_protector_request_init(&req, &e->d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
		req.pin = j->secret;
		req.pin_len = j->secret_len;
		req.reserved_ok = j->caller.uid == 0;
		/* A tang record's servers are checked against [tang] servers again: the file is not the policy. */
		if (strcmp(p->type, "tang") == 0 && (r = ts_enforce_tang_record(p, errbuf, sizeof(errbuf))) < 0) {
			if (unlock_result(j, id, r, kek, errbuf))
				return;
			continue;
		}
		if (ts_protector_unlocks_in_helper(ops)) {
			snprintf(j->current, sizeof(j->current), "%s", id);
			r = ts_remote_unlock_start(e->d->event, ops, &req, p->params, p->params_len, on_remote_unlock, j,
			                           &j->remote);
			if (r >= 0) {
				emit_touch_requested(j, ops, p);
				return;
			}
			if (r == -TS_E_FAILED)
				(void)unlock_in_process(j, id, &r, kek, errbuf, sizeof(errbuf));
		} else
			r = ops->unlock(&req, p->params, p->params_len, kek);
		if (unlock_result(j, id, r, kek, errbuf))
			return;
	}
	unlock_failed(j);
}

/* "p2 (FIDO2 ..., present), p4 (...)" for a message: the tokens a PIN could be for. */
static void list_tokens(ts_unlock_job *j, char ids[][TS_PROTECTOR_ID_MAX], size_t n, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && len + 1 < size; i++) {
		const ts_protector_record *p = ts_vault_find_protector(j->e->vault, ids[i]);
		int w = snprintf(out + len, size - len, "%s%s (%.60s)", i ? ", " : "", ids[i], p ? p->description : "?");

		if (w < 0)
			break;
		len += (size_t)w < size - len ? (size_t)w : size - len - 1;
	}
}

/*
 * Do all these protectors take the PIN on one and the same token? Then it is
 * no question which. probed (may be NULL): which token answered each one's
 * presence probe; where both have that, it decides, else the records do.
 */
static int one_token(ts_vault_entry *e, char ids[][TS_PROTECTOR_ID_MAX], char probed[][TS_PROTECTOR_DESC_MAX], size_t n)
{
	ts_token_id first, other;

	ts_protector_info_token(e, ids[0], &first);
	for (size_t i = 1; i < n; i++) {
		if (probed && probed[0][0] && probed[i][0]) {
			if (strcmp(probed[0], probed[i]) != 0)
				return 0;
			continue;
		}
		ts_protector_info_token(e, ids[i], &other);
		if (!ts_protector_info_same_token(&first, &other))
			return 0;
	}
	return 1;
}

/* All tokens have said whether they are there: unlock with the one, or tell the caller. */
static void probe_done(ts_unlock_job *j)
{
	char list[400];

	j->n_probe = 0;
	if (j->n_present >= 1 && one_token(j->e, j->present, j->present_token, j->n_present)) {
		/* One token (perhaps several keys on it): tried in turn, the first wrong PIN ends it. */
		for (size_t i = 0; i < j->n_present; i++)
			memcpy(j->ids[i], j->present[i], sizeof(j->ids[0]));
		j->n_ids = j->n_present;
		j->next_id = 0;
		unlock_step(j);
		return;
	}
	if (j->n_present == 0) {
		list_tokens(j, j->ids, j->n_ids, list, sizeof(list));
		snprintf(j->best_err, sizeof(j->best_err), "none of the tokens this PIN could be for is present: %s",
		         list);
		j->best = -TS_E_TOKEN_ABSENT;
	} else {
		list_tokens(j, j->present, j->n_present, list, sizeof(list));
		snprintf(j->best_err, sizeof(j->best_err), "several tokens could take this PIN: %s; name the protector, "
		         "nothing was tried", list);
		j->best = -TS_E_AMBIGUOUS;
	}
	(void)ts_audit("unlock", j->e->vault->name, j->e->vault->owner_uid, &j->caller, j->which, j->best);
	unlock_reply(j, j->best, j->best_err, NULL, 0);
}

static void probe_next(ts_unlock_job *j);

static void on_remote_present(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	ts_unlock_job *j = userdata;
	const char *id = j->ids[j->next_id - 1];

	j->remote = NULL;
	/* "Cannot tell" counts as there: a PIN must not go to another token because one module stumbled. */
	if (r < 0 || reply->present) {
		if (r < 0)
			ts_log(TS_LOG_INFO, "vault=%s protector=%s: presence unknown: %s", j->e->vault->name, id,
			       err && *err ? err : ts_strerror(r));
		/* A name cut to fit could make two tokens one: such a name is no name. */
		snprintf(j->present_token[j->n_present], sizeof(j->present_token[0]), "%s",
		         r >= 0 && reply->desc && strlen(reply->desc) < sizeof(j->present_token[0]) - 1 ? reply->desc : "");
		memcpy(j->present[j->n_present++], id, sizeof(j->present[0]));
	}
	probe_next(j);
}

/* Ask the next token whether it is there (a silent probe), or finish the probing. */
static void probe_next(ts_unlock_job *j)
{
	ts_vault_entry *e = j->e;
	char errbuf[256] = "";

	while (j->next_id < j->n_ids) {
		const char *id = j->ids[j->next_id++];
		const ts_protector_record *p = ts_vault_find_protector(e->vault, id);
		const ts_protector_ops *ops = p ? ts_protector_lookup(p->type) : NULL;
		ts_protector_request req = { 0 };

		if (!p || !ops)
			continue;
		ts_protector_request_init(&req, &e->d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
		req.reserved_ok = j->caller.uid == 0;
		if (!ops->present || ts_remote_present_start(e->d->event, ops, &req, p->params, p->params_len,
		                                             on_remote_present, j, &j->remote) < 0) {
			j->present_token[j->n_present][0] = '\0';
			memcpy(j->present[j->n_present++], id, sizeof(j->present[0]));
			continue;
		}
		return;
	}
	probe_done(j);
}

/*
 * The candidates for which (an id, a type or "") and the secret given.
 * An id names exactly one protector. Otherwise: without a secret, the
 * protectors that need none; with "" and input shaped like a recovery key,
 * the recovery protectors; with "" and any other secret, the tokens that
 * take a PIN (and only when there are none, the recovery protectors, which
 * count no token retries); with a type and a secret, the protectors of that
 * type. Without a secret, shares already given to a k-of-n vault are
 * skipped. (Not with one: a PIN meant for a key whose share was given must
 * not be routed to the other key.) Sets j->n_probe when more than one token
 * could take the secret.
 */
static void unlock_candidates(ts_unlock_job *j)
{
	const ts_vault *v = j->e->vault;
	int recovery_form = j->secret && ts_recovery_looks_like((const char *)j->secret, j->secret_len);
	int by_id = ts_vault_find_protector(v, j->which) != NULL;
	size_t tokens = 0;

	for (int pass = 0; pass < 2 && j->n_ids == 0; pass++) {
		for (size_t i = 0; i < v->n_protectors && j->n_ids < TS_VAULT_MAX_PROTECTORS; i++) {
			const ts_protector_record *p = &v->protectors[i];
			const ts_protector_ops *ops = ts_protector_lookup(p->type);
			int recovery = strcmp(p->type, "recovery") == 0, given = 0;

			if (*j->which && strcmp(j->which, p->id) != 0 && strcmp(j->which, p->type) != 0)
				continue;
			if (pass == 0)
				j->matched++;
			/* need_user: a login, a screen locker; never a protector that opens for anyone, named or not. */
			if (j->need_user && !ts_protector_info_proves_user(ops, p))
				continue;
			if (!by_id) {
				if (!j->secret) {
					/* Without a secret, a share already given is not asked for again (a touch). */
					for (size_t k = 0; k < v->n_pending; k++)
						given |= strcmp(v->pending_ids[k], p->id) == 0;
					if (given || (ops && ts_protector_info_needs_secret(ops, p)))
						continue;
				} else if (*j->which) {
					/* A type named with a secret: each of that type (still one token at most, below). */
				} else if (recovery_form || pass == 1) {
					if (!recovery)
						continue;
				} else if (!ts_protector_info_is_token(ops) || !ts_protector_info_needs_secret(ops, p))
					continue;
			}
			tokens += j->secret && ts_protector_info_is_token(ops);
			snprintf(j->ids[j->n_ids++], sizeof(j->ids[0]), "%s", p->id);
		}
		/* Only "" with a secret has a second pass: a secret no token takes goes to recovery protectors. */
		if (*j->which || !j->secret || recovery_form)
			break;
	}
	/* Only a choice between tokens needs asking which are there. */
	if (!by_id && tokens > 1 && !one_token(j->e, j->ids, NULL, j->n_ids))
		j->n_probe = j->n_ids;
}

/*
 * A secret that may reach a recovery protector is counted before it is
 * tried (unlock_backoff.c); unlock_failed gives it back when no secret was
 * found wrong, unlock_source_ok settles it on success. Returns 0 to go on,
 * or the error (why set) with nothing counted and nothing tried.
 */
static int unlock_reserve_attempt(ts_unlock_job *j, char *why, size_t why_len)
{
	int software = 0, r;

	for (size_t i = 0; i < j->n_ids && !software; i++) {
		const ts_protector_record *p = ts_vault_find_protector(j->e->vault, j->ids[i]);

		software = p && strcmp(p->type, "recovery") == 0;
	}
	if (!j->secret || !software)
		return 0;
	if ((r = ts_unlock_backoff_reserve(j->e, j->source, &j->before, why, why_len)) < 0)
		return r;
	j->reserved = 1;
	return 0;
}

/* The secret fd was read (or failed): pick the candidates and start trying them. */
static void on_unlock_secret(void *userdata, int r, uint8_t *secret, size_t len)
{
	ts_unlock_job *j = userdata;
	ts_vault_entry *e = j->e;
	char why[256];

	j->fd_op = NULL;
	j->secret = secret;
	j->secret_len = len;
	if (r < 0) {
		(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &j->caller, j->which, r);
		unlock_reply(j, r, ts_secretfd_strerror(r), NULL, 0);
		return;
	}
	/*
	 * Always run the protector, even when the vault is already unlocked:
	 * Unlock then still answers "is this secret right?", which a login
	 * module relies on (and a k-of-n vault still wants k shares for it).
	 */
	/* A share kept from a protector that proves nobody must not help a need_user unlock to its end. */
	if (j->need_user)
		for (size_t i = 0; i < e->vault->n_pending; i++) {
			const ts_protector_record *p = ts_vault_find_protector(e->vault, e->vault->pending_ids[i]);

			if (!p || !ts_protector_info_proves_user(ts_protector_lookup(p->type), p)) {
				ts_daemon_forget_shares(e, "a share that proves nobody, before a need_user unlock");
				break;
			}
		}
	unlock_candidates(j);
	if ((r = unlock_reserve_attempt(j, why, sizeof(why))) < 0) {
		(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &j->caller, j->which, r);
		unlock_reply(j, r, why, NULL, 0);
		return;
	}
	if (j->n_probe > 0)
		probe_next(j);
	else
		unlock_step(j);
}

int ts_unlock_method_unlock(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_daemon *d = e->d;
	ts_unlock_job *j;
	char source[TS_BACKOFF_SOURCE_MAX];
	const char *which, *hint = NULL;
	_ts_cleanup_kv_ ts_kv *opts = NULL;
	size_t n_opts = 0;
	int fd, r, need_user = 0;
	ts_caller caller;
	ts_limit_job *lim = NULL;

	if ((r = sd_bus_message_read(m, "sh", &which, &fd)) < 0)
		return ts_bus_bad_args(error, r);
	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 16)) < 0)
		return ts_bus_error(error, r, NULL);
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "source") == 0 && strlen(opts[i].value) < TS_BACKOFF_SOURCE_MAX)
			hint = opts[i].value;
		else if (strcmp(opts[i].key, "need_user") == 0 && strcmp(opts[i].value, "yes") == 0)
			need_user = 1;
		else
			return ts_bus_error(error, -TS_E_INVALID_ARGS,
			                    "unknown or malformed option (known: source=NAME, need_user=yes)");
	}
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	/* A source named by anyone but root would be a fresh back-off counter per guess: it is root's only. */
	ts_backoff_source_of(caller.uid, hint, source);
	if ((r = ts_audit_gate("unlock", e->vault->name, e->vault->owner_uid, &caller, which, error)) < 0)
		return r;
	if (strlen(which) >= sizeof(j->which))
		return ts_bus_error(error, -TS_E_NO_SUCH_PROTECTOR, "no such protector");
	/* A file, device or directory is refused before it takes the vault's one Unlock slot. */
	if ((r = ts_secretfd_check(fd)) < 0)
		return ts_bus_error(error, r, ts_secretfd_strerror(r));
	if ((r = ts_limits_unlock_begin(e, &caller, &lim, error)) < 0)
		return r;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		ts_limits_end(lim);
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	}
	j->lim = lim;
	j->e = e;
	j->m = sd_bus_message_ref(m);
	j->caller = caller;
	memcpy(j->source, source, sizeof(j->source));
	j->need_user = need_user;
	snprintf(j->which, sizeof(j->which), "%s", which);
	j->next = d->unlock_jobs;
	d->unlock_jobs = j;
	if ((r = ts_secretfd_read_start(d->event, fd, on_unlock_secret, j, &j->fd_op)) < 0) {
		(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &caller, which, r);
		unlock_job_free(j);
		return ts_bus_error(error, r, ts_secretfd_strerror(r));
	}
	/* The reply comes from the job, once the secret is in (on_unlock_secret) and the protectors have answered. */
	return 1;
}

int ts_unlock_method_lock(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_caller caller;
	int r;

	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	ts_daemon_lock_vault(e, "request", &caller);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
}

void ts_unlock_cancel_jobs(ts_daemon *d)
{
	while (d->unlock_jobs)
		unlock_job_free(d->unlock_jobs);
}
