/* vault_object.c — org.tokenseal1.Vault: one object per vault under /org/tokenseal1/vault/. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bus/vault_object.h"
#include "bus/audit.h"
#include "bus/autolock.h"
#include "bus/daemon.h"
#include "bus/escrow_methods.h"
#include "bus/handout.h"
#include "bus/limits.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/polkit.h"
#include "bus/rollback.h"
#include "bus/secretfd.h"
#include "bus/signals.h"
#include "bus/state.h"
#include "core/blob.h"
#include "core/recovery.h"
#include "core/text.h"
#include "protectors/remote.h"

int ts_vault_unknown(sd_bus_message *m, sd_bus_error *error)
{
	/* Word for word what sd-bus answers for a path with no object. */
	sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "Unknown object '%s'.", sd_bus_message_get_path(m));
	return -ENXIO;
}

/*
 * Who is calling, and may they use this vault? 0: yes. <0: no, error set.
 * 1: polkit is being asked about a caller who is neither the owner nor
 * root; the handler returns 1 without replying and runs again with the
 * answer (polkit.c). Callers test "!= 0". Someone else's vault that polkit
 * does not open to the caller looks exactly like no vault (UnknownObject),
 * and so does no vault at all in someone else's namespace: it is the ghost
 * (vault_find), for which polkit is asked too, so that not even the time
 * the answer takes tells the two apart.
 */
static int vault_authorize(sd_bus_message *m, ts_vault_entry *e, const char *what, ts_caller *caller,
                           sd_bus_error *error)
{
	/* Data keys are the owner's; managing the vault is an administrator's job too. */
	int data = strcmp(what, "wrap") == 0 || strcmp(what, "unwrap") == 0 || strcmp(what, "rewrap") == 0 ||
	           strcmp(what, "generate") == 0 || strncmp(what, "unwrap-", 7) == 0 || strncmp(what, "rewrap-", 7) == 0;
	int r;

	if ((r = ts_caller_get(m, caller)) < 0)
		return ts_bus_error(error, r, NULL);
	if (e != e->d->ghost && ts_caller_may_use(caller, e->vault))
		return 0;
	r = ts_polkit_check(e->d, m, data ? TS_POLKIT_ACTION_USE_OTHER : TS_POLKIT_ACTION_MANAGE_OTHER, e->vault, error);
	if (r == 0)
		return 1;
	if (r > 0 && e != e->d->ghost) {
		(void)ts_audit(data ? "polkit-use-other" : "polkit-manage-other", e->vault->name, e->vault->owner_uid, caller, NULL, 0);
		return 0;
	}
	/* Busy (too many questions in flight) and the like: the same for a vault and for the ghost. */
	if (r < 0 && !sd_bus_error_has_name(error, ts_error_dbus_name(-TS_E_ACCESS_DENIED)))
		return r;
	(void)ts_audit(what, e->vault->name, e->vault->owner_uid, caller, NULL, -TS_E_ACCESS_DENIED);
	if (r < 0) {
		/* polkit's reason goes to the log, never to the caller. */
		ts_log(TS_LOG_INFO, "vault=%s uid=%ld: %s", e->vault->name, (long)caller->uid, error->message);
		sd_bus_error_free(error);
	}
	return ts_vault_unknown(m, error);
}

static int vault_unlocked(ts_vault_entry *e, sd_bus_error *error)
{
	if (ts_vault_is_locked(e->vault)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "vault '%s' is locked (%s)", e->vault->name,
		         e->lock_reason[0] ? e->lock_reason : "locked");
		return ts_bus_error(error, -TS_E_LOCKED, msg);
	}
	return 0;
}

static uint32_t shares_needed(const ts_vault *v)
{
	if (!ts_vault_is_locked(v))
		return 0;
	return v->threshold > v->n_pending ? v->threshold - (uint32_t)v->n_pending : 1;
}

/* The body of PropertiesChanged: the values that change, and Protectors as invalidated only. */
static int build_properties_changed(sd_bus_message *sig, void *userdata)
{
	ts_vault_entry *e = userdata;
	int locked = ts_vault_is_locked(e->vault), r;

	if ((r = sd_bus_message_append(sig, "s", TS_VAULT_IFACE)) < 0 ||
	    (r = sd_bus_message_append(sig, "a{sv}", 6, "Locked", "b", locked, "LockReason", "s",
	                               locked ? e->lock_reason : "", "LockChanged", "t", e->lock_changed, "KeyVersion",
	                               "u", e->vault->key_version, "MinKeyVersion", "u", e->vault->min_key_version,
	                               "SharesNeeded", "u", shares_needed(e->vault))) < 0)
		return r;
	return sd_bus_message_append(sig, "as", 1, "Protectors");
}

void ts_vault_object_emit_changed(ts_vault_entry *e)
{
	if (!e->d->bus || e == e->d->placeholder || e == e->d->ghost)
		return;
	(void)ts_signals_emit(e->d, e->vault->owner_uid, e->path, "org.freedesktop.DBus.Properties",
	                      "PropertiesChanged", build_properties_changed, e);
}

/* ---- Unlock / Lock ------------------------------------------------------------ */

static int protector_needs_secret(const ts_protector_ops *ops, const ts_protector_record *p)
{
	return ops->needs_secret ? ops->needs_secret(p->params, p->params_len) : 0;
}

/* Errors that only say "not this one": keep looking, and prefer any other error for the reply. */
static int error_is_weak(int r)
{
	return r == -TS_E_TOKEN_ABSENT || r == -TS_E_TOKEN_NOT_ENROLLED || r == -TS_E_NOT_SUPPORTED;
}

/* A token counts wrong PINs itself (FIDO2 retries, TPM dictionary-attack lockout, PKCS#11 PIN counters). */
static int is_token(const ts_protector_ops *ops)
{
	return ops && ts_protector_is_remote(ops);
}

struct fact_ctx {
	const char *key;
	char *out;
	size_t size;
};

static int fact_cb(void *ud, const char *key, const char *value)
{
	struct fact_ctx *fc = ud;

	if (strcmp(key, fc->key) == 0)
		snprintf(fc->out, fc->size, "%s", value);
	return 0;
}

/* A fact of a protector's record ("touch", "pin", ...) into out ("" when unknown). */
static const char *protector_fact(const ts_protector_ops *ops, const ts_protector_record *p, const char *key,
                                  char *out, size_t size)
{
	struct fact_ctx fc = { key, out, size };

	out[0] = '\0';
	if (ops && ops->describe)
		(void)ops->describe(p->params, p->params_len, fact_cb, &fc);
	return out;
}

/*
 * Does unlocking with p show that somebody is there: it takes a secret, or
 * it is a security key that wants a touch? A TPM without PIN opens for
 * anyone at the machine (and a protector whose record cannot be read shows
 * nothing).
 */
static int proves_user(const ts_protector_ops *ops, const ts_protector_record *p)
{
	char touch[8];

	if (!ops)
		return 0;
	if (protector_needs_secret(ops, p))
		return 1;
	return strcmp(p->type, "fido2") == 0 && strcmp(protector_fact(ops, p, "touch", touch, sizeof(touch)), "yes") == 0;
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

	if (r >= 0)
		(void)sd_bus_reply_method_return(j->m, "su", id, (uint32_t)needed);
	else {
		(void)ts_bus_error(&error, r, msg);
		(void)sd_bus_reply_method_error(j->m, &error);
		sd_bus_error_free(&error);
	}
	unlock_job_free(j);
}

/* The right secret from this source: its back-off count starts again. */
static void unlock_source_ok(ts_unlock_job *j)
{
	if (ts_backoff_succeeded(&j->e->backoff, j->source))
		ts_daemon_save_backoff(j->e);
}

/* The vault is open (or, already open, confirmed) with protector id: record it and answer. */
static void unlock_succeeded(ts_unlock_job *j, const char *id)
{
	ts_vault_entry *e = j->e;

	snprintf(e->unlocked_with, sizeof(e->unlocked_with), "%s", id);
	ts_daemon_unlocked(e, id);
	if (e->share_timer)
		sd_event_source_set_enabled(e->share_timer, SD_EVENT_OFF);
	unlock_source_ok(j);
	e->lock_reason[0] = '\0';
	e->lock_changed = ts_now_usec();
	(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &j->caller, id, 0);
	ts_daemon_touch(e);
	ts_vault_object_emit_changed(e);
	unlock_reply(j, 0, NULL, id, 0);
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
	if (j->best == -TS_E_AUTH_FAILED || j->best == -TS_E_BAD_RECOVERY_KEY) {
		if (!j->reserved) {
			ts_backoff_failed(&e->backoff, j->source, ts_now_usec(), ts_policy_recovery_attempts(pol),
			                  ts_policy_recovery_max_backoff(pol));
			ts_daemon_save_backoff(e);
		}
	} else if (j->reserved) {
		/* Counted at the start, but no secret was found wrong (no token, an error): given back. */
		ts_backoff_restore(&e->backoff, j->source, &j->before);
		ts_daemon_save_backoff(e);
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

			/* k-of-n: the share is kept, and the caller told how many more it takes. */
			(void)ts_audit("unlock-share", e->vault->name, e->vault->owner_uid, &j->caller, id, 0);
			unlock_source_ok(j);
			ts_daemon_shares_pending(e);
			if (p)
				ts_autolock_share(e, p->type);
			ts_vault_object_emit_changed(e);
			unlock_reply(j, 0, NULL, id, (unsigned)needed);
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
	const char *sender = sd_bus_message_get_sender(j->m);
	char touch[8];

	if (strcmp(p->type, "fido2") != 0 || strcmp(protector_fact(ops, p, "touch", touch, sizeof(touch)), "no") == 0 ||
	    !sender || !j->e->d->bus)
		return;
	if (sd_bus_message_new_signal(j->e->d->bus, &sig, j->e->path, TS_VAULT_IFACE, "TouchRequested") >= 0 &&
	    sd_bus_message_set_destination(sig, sender) >= 0 && sd_bus_message_append(sig, "s", p->id) >= 0)
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
 * Which physical token a protector's PIN goes to, as far as the record
 * tells: every TPM protector to the one TPM of --tpm2-tcti, a PKCS#11 one to
 * the token its URI names (label, and serial when the URI has one: a key
 * enrolled offline may have none), a FIDO2 key only to itself (two
 * credentials cannot be told to be on one key).
 */
typedef struct token_id {
	char kind[16], label[96], serial[96];
} token_id;

static void token_identity(ts_vault_entry *e, const char *id, token_id *t)
{
	const ts_protector_record *p = ts_vault_find_protector(e->vault, id);
	const ts_protector_ops *ops = p ? ts_protector_lookup(p->type) : NULL;
	char uri[512];
	const char *serial;

	memset(t, 0, sizeof(*t));
	snprintf(t->kind, sizeof(t->kind), "%s", p ? p->type : "?");
	if (p && strcmp(p->type, "tpm2") == 0)
		return;
	if (p && strcmp(p->type, "pkcs11") == 0 && *protector_fact(ops, p, "token", t->label, sizeof(t->label))) {
		if ((serial = strstr(protector_fact(ops, p, "uri", uri, sizeof(uri)), "serial=")) != NULL)
			snprintf(t->serial, sizeof(t->serial), "%.*s", (int)strcspn(serial + 7, ";?"), serial + 7);
		return;
	}
	snprintf(t->label, sizeof(t->label), "%s", id);
}

/*
 * One token for sure, from the records alone: the TPM (there is one), or two
 * PKCS#11 records naming the same label and the same serial. Without a
 * serial a URI may mean any card of its label (the backend picks the one
 * that shows the key), so it is never taken for the same card as another.
 */
static int same_token(const token_id *a, const token_id *b)
{
	if (strcmp(a->kind, b->kind) != 0)
		return 0;
	if (strcmp(a->kind, "tpm2") == 0)
		return 1;
	return strcmp(a->kind, "pkcs11") == 0 && a->serial[0] && strcmp(a->label, b->label) == 0 &&
	       strcmp(a->serial, b->serial) == 0;
}

/*
 * Do all these protectors take the PIN on one and the same token? Then it is
 * no question which. probed (may be NULL): which token answered each one's
 * presence probe; where both have that, it decides, else the records do.
 */
static int one_token(ts_vault_entry *e, char ids[][TS_PROTECTOR_ID_MAX], char probed[][TS_PROTECTOR_DESC_MAX], size_t n)
{
	token_id first, other;

	token_identity(e, ids[0], &first);
	for (size_t i = 1; i < n; i++) {
		if (probed && probed[0][0] && probed[i][0]) {
			if (strcmp(probed[0], probed[i]) != 0)
				return 0;
			continue;
		}
		token_identity(e, ids[i], &other);
		if (!same_token(&first, &other))
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
			if (j->need_user && !proves_user(ops, p))
				continue;
			if (!by_id) {
				if (!j->secret) {
					/* Without a secret, a share already given is not asked for again (a touch). */
					for (size_t k = 0; k < v->n_pending; k++)
						given |= strcmp(v->pending_ids[k], p->id) == 0;
					if (given || (ops && protector_needs_secret(ops, p)))
						continue;
				} else if (*j->which) {
					/* A type named with a secret: each of that type (still one token at most, below). */
				} else if (recovery_form || pass == 1) {
					if (!recovery)
						continue;
				} else if (!is_token(ops) || !protector_needs_secret(ops, p))
					continue;
			}
			tokens += j->secret && is_token(ops);
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
 * A software secret (a recovery key) counts against the back-off when its
 * check starts, not when it ends: parallel guesses cannot all pass
 * ts_backoff_check before the first is counted, and a daemon killed
 * meanwhile has counted it already (the side file is written first).
 * unlock_failed gives it back when no secret was found wrong; success
 * resets the source (unlock_source_ok).
 */
static void unlock_reserve_attempt(ts_unlock_job *j)
{
	const ts_policy *pol = ts_enforce_policy();
	int software = 0;

	for (size_t i = 0; i < j->n_ids && !software; i++) {
		const ts_protector_record *p = ts_vault_find_protector(j->e->vault, j->ids[i]);

		software = p && strcmp(p->type, "recovery") == 0;
	}
	if (!j->secret || !software)
		return;
	ts_backoff_get(&j->e->backoff, j->source, &j->before);
	ts_backoff_failed(&j->e->backoff, j->source, ts_now_usec(), ts_policy_recovery_attempts(pol),
	                  ts_policy_recovery_max_backoff(pol));
	ts_daemon_save_backoff(j->e);
	j->reserved = 1;
}

/* The secret fd was read (or failed): pick the candidates and start trying them. */
static void on_unlock_secret(void *userdata, int r, uint8_t *secret, size_t len)
{
	ts_unlock_job *j = userdata;
	ts_vault_entry *e = j->e;

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

			if (!p || !proves_user(ts_protector_lookup(p->type), p)) {
				ts_daemon_forget_shares(e, "a share that proves nobody, before a need_user unlock");
				break;
			}
		}
	unlock_candidates(j);
	unlock_reserve_attempt(j);
	if (j->n_probe > 0)
		probe_next(j);
	else
		unlock_step(j);
}

static int method_unlock(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_daemon *d = e->d;
	ts_unlock_job *j;
	char errbuf[256] = "", source[TS_BACKOFF_SOURCE_MAX];
	const char *which, *hint = NULL;
	ts_kv *opts = NULL;
	size_t n_opts = 0;
	uint64_t wait;
	int fd, r, need_user = 0;
	ts_caller caller;
	ts_limit_job *lim = NULL;

	if ((r = sd_bus_message_read(m, "sh", &which, &fd)) < 0)
		return r;
	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 16)) < 0)
		return ts_bus_error(error, r, NULL);
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "source") == 0 && strlen(opts[i].value) < TS_BACKOFF_SOURCE_MAX)
			hint = opts[i].value;
		else if (strcmp(opts[i].key, "need_user") == 0 && strcmp(opts[i].value, "yes") == 0)
			need_user = 1;
		else {
			free(opts);
			return ts_bus_error(error, -TS_E_INVALID_ARGS,
			                    "unknown or malformed option (known: source=NAME, need_user=yes)");
		}
	}
	if ((r = vault_authorize(m, e, "unlock", &caller, error)) != 0) {
		free(opts);
		return r;
	}
	/* A source named by anyone but root would be a fresh back-off counter per guess: it is root's only. */
	ts_backoff_source_of(caller.uid, hint, source);
	free(opts);
	if ((r = ts_audit_gate("unlock", e->vault->name, e->vault->owner_uid, &caller, which, error)) < 0)
		return r;
	if (ts_backoff_check(&e->backoff, source, ts_now_usec(), ts_policy_recovery_max_backoff(ts_enforce_policy()),
	                     &wait) < 0) {
		snprintf(errbuf, sizeof(errbuf), "too many failed unlocks from here; retry in %llu s",
		         (unsigned long long)wait);
		(void)ts_audit("unlock", e->vault->name, e->vault->owner_uid, &caller, which, -TS_E_BUSY);
		return ts_bus_error(error, -TS_E_BUSY, errbuf);
	}
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

static int method_lock(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_caller caller;
	int r;

	if ((r = vault_authorize(m, e, "lock", &caller, error)) != 0)
		return r;
	ts_daemon_lock_vault(e, "request", &caller);
	return sd_bus_reply_method_return(m, "");
}

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
			j->state[i] = protector_needs_secret(ops, p) ? "needs-secret" : "unknown";
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

static int method_probe_protectors(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_caller caller;
	probe_job *j;
	int r;

	if ((r = vault_authorize(m, e, "probe", &caller, error)) != 0)
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

/* ---- blobs -------------------------------------------------------------------------- */

/* Read "ay a{ss}" (the blob or plaintext, then the context). */
static int read_bytes_ctx(sd_bus_message *m, const void **p, size_t *n, ts_kv **ctx, size_t *n_ctx)
{
	int r;

	if ((r = sd_bus_message_read_array(m, 'y', p, n)) < 0)
		return -TS_E_INVALID_ARGS;
	return ts_bus_read_kv(m, ctx, n_ctx, TS_CONTEXT_MAX_ENTRIES);
}

/* Unwrap one binary blob into pt (secure, TS_PLAINTEXT_MAX bytes). */
static int unwrap_one(const ts_vault *v, const void *blob, size_t len, const ts_kv *ctx, size_t n_ctx,
                      uint8_t *pt, size_t *pt_len)
{
	ts_blob_view bv;
	int r;

	if ((r = ts_blob_parse(blob, len, &bv)) < 0)
		return r;
	if (bv.plaintext_len > TS_PLAINTEXT_MAX)
		return -TS_E_LIMIT;
	if ((r = ts_vault_unwrap(v, &bv, ctx, n_ctx, pt)) < 0)
		return r;
	*pt_len = bv.plaintext_len;
	return 0;
}

/*
 * One secure scratch buffer for plaintexts, allocated once. A fresh
 * sodium_malloc of 64 KiB per call (guard pages, mlock, fill) cost about as
 * much as the whole bus round trip (docs/PERFORMANCE.md). The daemon runs
 * one handler at a time; each handler wipes what it wrote before it returns.
 */
static uint8_t *plaintext_scratch(void)
{
	static uint8_t *buf;

	if (!buf)
		buf = ts_secure_alloc(TS_PLAINTEXT_MAX);
	return buf;
}

/*
 * The common start of the data methods: the caller may use the vault
 * (owner, root or polkit), the vault is unlocked, and for the methods that
 * open blobs (unwrap_rule) the policy's [unwrap] rules admit the caller.
 * 0: go on. Otherwise return it from the handler (error set, or 1 while
 * polkit is asked).
 */
static int data_call_allowed(sd_bus_message *m, ts_vault_entry *e, const char *what, int unwrap_rule,
                             sd_bus_error *error)
{
	ts_caller caller;
	int r;

	if ((r = vault_authorize(m, e, what, &caller, error)) != 0 || (r = vault_unlocked(e, error)) < 0)
		return r;
	if (unwrap_rule && (r = ts_enforce_unwrap_bus(m, e, &caller, error)) < 0)
		return r;
	return ts_audit_data_use(e, &caller, what, error);
}

/* A reply holding one non-secret "ay". */
static int reply_bytes(sd_bus_message *m, const void *p, size_t n)
{
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	int r;

	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 ||
	    (r = sd_bus_message_append_array(reply, 'y', p, n)) < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_wrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	const void *pt;
	ts_kv *ctx = NULL;
	size_t pt_len, n_ctx;
	int r;

	/* The request carries the plaintext: sd-bus wipes the received body when it frees the message. */
	(void)sd_bus_message_sensitive(m);
	if ((r = read_bytes_ctx(m, &pt, &pt_len, &ctx, &n_ctx)) < 0)
		goto fail;
	if (pt_len > TS_PLAINTEXT_MAX) {
		r = -TS_E_LIMIT;
		goto fail;
	}
	if ((r = data_call_allowed(m, e, "wrap", 0, error)) != 0) {
		free(ctx);
		return r;
	}
	if ((r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, pt_len, &blob)) < 0)
		goto fail;
	free(ctx);
	ts_daemon_touch(e);
	return reply_bytes(m, blob.data, blob.len);
fail:
	free(ctx);
	return ts_bus_error(error, r, NULL);
}

static int method_unwrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	uint8_t *pt;
	const void *blob;
	ts_kv *ctx = NULL;
	size_t blob_len, n_ctx, pt_len = 0;
	int r;

	if ((r = read_bytes_ctx(m, &blob, &blob_len, &ctx, &n_ctx)) < 0)
		goto fail;
	if ((r = data_call_allowed(m, e, "unwrap", 1, error)) != 0) {
		free(ctx);
		return r;
	}
	if ((pt = plaintext_scratch()) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	if ((r = unwrap_one(e->vault, blob, blob_len, ctx, n_ctx, pt, &pt_len)) < 0)
		goto fail;
	free(ctx);
	ctx = NULL;
	ts_daemon_touch(e);
	/*
	 * The plaintext the caller asked for is the one secret that goes on the
	 * wire: sensitive, so that sd-bus wipes the reply's body when it frees it.
	 */
	if ((r = sd_bus_message_new_method_return(m, &reply)) >= 0 && (r = sd_bus_message_sensitive(reply)) >= 0)
		r = sd_bus_message_append_array(reply, 'y', pt, pt_len);
	sodium_memzero(pt, pt_len);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
fail:
	free(ctx);
	return ts_bus_error(error, r, NULL);
}

static int method_rewrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_buf_ ts_buf out = { 0 };
	uint8_t *pt;
	const void *blob;
	ts_kv *ctx = NULL;
	size_t blob_len, n_ctx, pt_len = 0;
	int r;

	if ((r = read_bytes_ctx(m, &blob, &blob_len, &ctx, &n_ctx)) < 0)
		goto fail;
	/* Rewrap opens the blob as Unwrap does: the same [unwrap] rules apply (as for RewrapBatch). */
	if ((r = data_call_allowed(m, e, "rewrap", 1, error)) != 0) {
		free(ctx);
		return r;
	}
	if ((pt = plaintext_scratch()) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	if ((r = unwrap_one(e->vault, blob, blob_len, ctx, n_ctx, pt, &pt_len)) == 0)
		r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, pt_len, &out);
	sodium_memzero(pt, pt_len);
	if (r < 0)
		goto fail;
	free(ctx);
	ts_daemon_touch(e);
	return reply_bytes(m, out.data, out.len);
fail:
	free(ctx);
	return ts_bus_error(error, r, NULL);
}

static int method_generate_data_key(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	uint8_t *pt;
	ts_kv *ctx = NULL;
	size_t n_ctx;
	uint32_t size;
	int r;

	if ((r = sd_bus_message_read(m, "u", &size)) < 0)
		return r;
	if ((r = ts_bus_read_kv(m, &ctx, &n_ctx, TS_CONTEXT_MAX_ENTRIES)) < 0)
		goto fail;
	if (size == 0 || size > TS_PLAINTEXT_MAX) {
		free(ctx);
		return ts_bus_error(error, size ? -TS_E_LIMIT : -TS_E_INVALID_ARGS, "size must be 1..65536 bytes");
	}
	if ((r = data_call_allowed(m, e, "generate", 0, error)) != 0) {
		free(ctx);
		return r;
	}
	if ((pt = plaintext_scratch()) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	randombytes_buf(pt, size);
	if ((r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, size, &blob)) < 0) {
		sodium_memzero(pt, size);
		goto fail;
	}
	free(ctx);
	ts_daemon_touch(e);
	if ((r = sd_bus_message_new_method_return(m, &reply)) >= 0 && (r = sd_bus_message_sensitive(reply)) >= 0 &&
	    (r = sd_bus_message_append_array(reply, 'y', pt, size)) >= 0)
		r = sd_bus_message_append_array(reply, 'y', blob.data, blob.len);
	sodium_memzero(pt, size);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
fail:
	free(ctx);
	return ts_bus_error(error, r, NULL);
}

/*
 * UnwrapBatch and RewrapBatch: the reply is built as we go and dropped
 * whole (and wiped) if one item fails, so the caller gets all items or an
 * error that names the first failing index.
 */
static int batch(sd_bus_message *m, ts_vault_entry *e, int rewrap, sd_bus_error *error)
{
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	_ts_cleanup_buf_ ts_buf out = { 0 };
	uint8_t *pt;
	ts_kv *ctx = NULL;
	char msg[160];
	size_t n_ctx, idx = 0, count = 0, pt_len = 0, blob_len;
	const void *blob;
	ts_caller caller;
	int r;

	if ((r = vault_authorize(m, e, rewrap ? "rewrap-batch" : "unwrap-batch", &caller, error)) != 0 ||
	    (r = vault_unlocked(e, error)) < 0 || (r = ts_enforce_unwrap_bus(m, e, &caller, error)) < 0 ||
	    (r = ts_audit_data_use(e, &caller, rewrap ? "rewrap-batch" : "unwrap-batch", error)) < 0)
		return r;
	if ((pt = plaintext_scratch()) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	/*
	 * The context comes after the array in the message: walk the array once
	 * (reading item by item; sd_bus_message_skip steps through it byte by
	 * byte and cost 80% of a batch), counting items, read the context, then
	 * rewind and walk the array again for real.
	 */
	if ((r = sd_bus_message_enter_container(m, 'a', "ay")) < 0)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, NULL);
	while ((r = sd_bus_message_read_array(m, 'y', &blob, &blob_len)) > 0)
		if (++count > TS_BATCH_MAX) {
			snprintf(msg, sizeof(msg), "more than %d items in one batch", TS_BATCH_MAX);
			return ts_bus_error(error, -TS_E_LIMIT, msg);
		}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 ||
	    (r = ts_bus_read_kv(m, &ctx, &n_ctx, TS_CONTEXT_MAX_ENTRIES)) < 0 ||
	    (r = sd_bus_message_rewind(m, 1)) < 0 || (r = sd_bus_message_enter_container(m, 'a', "ay")) < 0) {
		free(ctx);
		return ts_bus_error(error, r == -TS_E_LIMIT ? r : -TS_E_INVALID_ARGS, NULL);
	}
	/* Sensitive: a reply dropped half-built on a failing item is wiped as well as a sent one. */
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 || (r = sd_bus_message_sensitive(reply)) < 0 ||
	    (r = sd_bus_message_open_container(reply, 'a', "ay")) < 0)
		goto out;
	for (;;) {
		r = sd_bus_message_read_array(m, 'y', &blob, &blob_len);
		if (r == 0)
			break;
		if (r < 0) {
			r = -TS_E_INVALID_ARGS;
			goto fail_item;
		}
		if (idx >= TS_BATCH_MAX) {
			r = -TS_E_LIMIT;
			goto fail_item;
		}
		if ((r = unwrap_one(e->vault, blob, blob_len, ctx, n_ctx, pt, &pt_len)) < 0)
			goto fail_item;
		if (rewrap) {
			out.len = 0;
			r = ts_vault_wrap(e->vault, ctx, n_ctx, pt, pt_len, &out);
			sodium_memzero(pt, pt_len);
			if (r < 0)
				goto fail_item;
			r = sd_bus_message_append_array(reply, 'y', out.data, out.len);
		} else {
			r = sd_bus_message_append_array(reply, 'y', pt, pt_len);
			sodium_memzero(pt, pt_len);
		}
		if (r < 0)
			goto out;
		idx++;
	}
	if ((r = sd_bus_message_close_container(reply)) < 0)
		goto out;
	free(ctx);
	ts_daemon_touch(e);
	return sd_bus_send(NULL, reply, NULL);
fail_item:
	free(ctx);
	if (r == -TS_E_LIMIT)
		snprintf(msg, sizeof(msg), "more than %d items in one batch", TS_BATCH_MAX);
	else
		snprintf(msg, sizeof(msg), "item %zu: %s", idx, ts_strerror(r));
	return ts_bus_error(error, r, msg);
out:
	free(ctx);
	return r;
}

static int method_unwrap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return batch(m, userdata, 0, error);
}

static int method_rewrap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	return batch(m, userdata, 1, error);
}

/* ---- key and protector management ----------------------------------------------------- */

static int method_rotate_key(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	char errbuf[160] = "";
	ts_kv *opts = NULL;
	size_t n_opts;
	uint32_t version = 0, retire = 0;
	uint64_t v;
	int have_retire = 0;
	ts_caller caller;
	int r;

	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 16)) < 0)
		return ts_bus_error(error, r, NULL);
	for (size_t i = 0; i < n_opts; i++) {
		if (strcmp(opts[i].key, "retire_below") == 0 &&
		    ts_parse_uint(opts[i].value, strlen(opts[i].value), UINT32_MAX, &v) == 0) {
			retire = (uint32_t)v;
			have_retire = 1;
			continue;
		}
		free(opts);
		return ts_bus_error(error, -TS_E_INVALID_ARGS,
		                    "unknown or malformed option (known: retire_below=<decimal version>)");
	}
	free(opts);
	if ((r = vault_authorize(m, e, "rotate", &caller, error)) != 0 || (r = vault_unlocked(e, error)) < 0 ||
	    (r = ts_audit_gate("rotate", e->vault->name, e->vault->owner_uid, &caller, NULL, error)) < 0)
		return r;
	if (have_retire && (retire < 1 || retire > e->vault->key_version + 1)) {
		snprintf(errbuf, sizeof(errbuf), "retire_below must be 1..%u (the new version)",
		         e->vault->key_version + 1);
		return ts_bus_error(error, -TS_E_INVALID_ARGS, errbuf);
	}
	if ((r = ts_vault_rotate(e->vault, ts_now(), &version)) < 0)
		goto fail;
	if (have_retire && retire > e->vault->min_key_version &&
	    (r = ts_vault_retire_below(e->vault, retire)) < 0) {
		(void)ts_daemon_revert(e);
		goto fail;
	}
	if ((r = ts_daemon_persist(e)) < 0)
		goto fail;
	if (have_retire)
		ts_rollback_drop_backup(e, "retire");
	(void)ts_audit("rotate", e->vault->name, e->vault->owner_uid, &caller, NULL, 0);
	ts_daemon_touch(e);
	ts_vault_object_emit_changed(e);
	return sd_bus_reply_method_return(m, "u", version);
fail:
	(void)ts_audit("rotate", e->vault->name, e->vault->owner_uid, &caller, NULL, r);
	return ts_bus_error(error, r, errbuf);
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

void ts_vault_object_cancel_jobs(ts_daemon *d)
{
	while (d->unlock_jobs)
		unlock_job_free(d->unlock_jobs);
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
	if ((r = vault_unlocked(e, &error)) < 0) {
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
	if (replace && *replace)
		(void)ts_audit("revoke", e->vault->name, e->vault->owner_uid, caller, replace, 0);
	ts_daemon_touch(e);
	ts_vault_object_emit_changed(e);
	(void)sd_bus_reply_method_return(m, "s", id);
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

static int method_add_protector(sd_bus_message *m, void *userdata, sd_bus_error *error)
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
	ts_kv *opts = NULL;
	size_t n_opts = 0, secret_in_len = 0, secret_out_len = 0;
	int fd_in, fd_out, r;
	ts_caller caller;

	if ((r = sd_bus_message_read(m, "s", &type)) < 0)
		return r;
	if ((r = ts_bus_read_kv(m, &opts, &n_opts, 32)) < 0)
		return ts_bus_error(error, r, NULL);
	if ((r = sd_bus_message_read(m, "hh", &fd_in, &fd_out)) < 0) {
		free(opts);
		return r;
	}
	if (ts_secretfd_check(fd_out) < 0) {
		free(opts);
		return ts_bus_error(error, -TS_E_INVALID_ARGS, "secret_out: not a pipe or socket (files, devices and "
		                    "directories are refused)");
	}
	/* The secret is read from the loop: the first dispatch starts it, the second finds it (no audit record twice). */
	if ((r = vault_authorize(m, e, "enroll", &caller, error)) != 0 || (r = vault_unlocked(e, error)) < 0 ||
	    (r = ts_secretfd_take(d, m, fd_in, "secret_in", &secret_in, &secret_in_len, error)) <= 0 ||
	    (r = ts_audit_gate("enroll", e->vault->name, e->vault->owner_uid, &caller, type, error)) < 0) {
		free(opts);
		return r == 0 ? 1 : r;
	}
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
	for (size_t i = 0; i < n_opts; i++)
		if (strcmp(opts[i].key, "replace") == 0)
			replace = opts[i].value;
	if (replace) {
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
	if ((r = ts_enforce_type_allowed(e, ops->type, &caller, error)) < 0) {
		free(opts);
		return r;
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

		if ((r = ts_limits_job_begin(e, &caller, &lim, error)) < 0) {
			free(opts);
			return r;
		}
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
		free(opts);
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
	free(opts);
	return 1;
out:
	free(opts);
	(void)ts_audit("enroll", e->vault->name, e->vault->owner_uid, &caller, type, r);
	return ts_bus_error(error, r, errbuf);
}

static int method_revoke_protector(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	const char *id;
	ts_caller caller;
	int r;

	if ((r = sd_bus_message_read(m, "s", &id)) < 0)
		return r;
	if ((r = vault_authorize(m, e, "revoke", &caller, error)) != 0 || (r = vault_unlocked(e, error)) < 0 ||
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
	ts_vault_object_emit_changed(e);
	return sd_bus_reply_method_return(m, "");
}

/* ---- properties -------------------------------------------------------------------------- */

/*
 * Properties of a vault are the owner's (and root's) business. A read that
 * comes from a method call is checked; the values sd-bus builds for
 * PropertiesChanged signals have no caller and are not secret.
 */
int ts_vault_property_authorize(sd_bus *bus, ts_vault_entry *e, sd_bus_error *error)
{
	sd_bus_message *m = sd_bus_get_current_message(bus);
	ts_caller caller;
	int r;

	if (!m || sd_bus_message_is_method_call(m, NULL, NULL) <= 0)
		return 0;
	if ((r = ts_caller_get(m, &caller)) < 0)
		return ts_bus_error(error, r, NULL);
	if (e == e->d->ghost || !ts_caller_may_use(&caller, e->vault))
		return ts_vault_unknown(m, error);
	return 0;
}

#define PROPERTY_PREAMBLE                                                 \
	ts_vault_entry *e = userdata;                                     \
	int r;                                                            \
	if ((r = ts_vault_property_authorize(bus, e, error)) < 0)                  \
		return r

static int prop_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "s", e->vault->name);
}

static int prop_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                   sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	char hex[2 * TS_VAULT_ID_BYTES + 1];
	PROPERTY_PREAMBLE;
	ts_vault_id_hex(e->vault, hex);
	return sd_bus_message_append(reply, "s", hex);
}

static int prop_owner(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "u", e->vault->owner_uid);
}

static int prop_locked(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "b", ts_vault_is_locked(e->vault));
}

static int prop_key_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "u", e->vault->key_version);
}

static int prop_min_key_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "u", e->vault->min_key_version);
}

static int prop_lock_reason(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "s", ts_vault_is_locked(e->vault) ? e->lock_reason : "");
}

static int prop_lock_changed(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	return sd_bus_message_append(reply, "t", e->lock_changed);
}

static int add_fact(void *ud, const char *key, const char *value)
{
	return sd_bus_message_append(ud, "{ss}", key, value) < 0 ? -TS_E_NOMEM : 0;
}

static int prop_protectors(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	PROPERTY_PREAMBLE;
	if ((r = sd_bus_message_open_container(reply, 'a', "(sssta{ss})")) < 0)
		return r;
	for (size_t i = 0; i < e->vault->n_protectors; i++) {
		const ts_protector_record *p = &e->vault->protectors[i];
		const ts_protector_ops *ops = ts_protector_lookup(p->type);

		if ((r = sd_bus_message_open_container(reply, 'r', "sssta{ss}")) < 0 ||
		    (r = sd_bus_message_append(reply, "ssst", p->id, p->type, p->description, p->created)) < 0 ||
		    (r = sd_bus_message_open_container(reply, 'a', "{ss}")) < 0)
			return r;
		/* Facts are best effort: a backend that cannot decode its record shows none. */
		if (ops && ops->describe)
			(void)ops->describe(p->params, p->params_len, add_fact, reply);
		if ((r = sd_bus_message_close_container(reply)) < 0 || (r = sd_bus_message_close_container(reply)) < 0)
			return r;
	}
	return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable vault_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("Name", "s", prop_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Id", "s", prop_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Owner", "u", prop_owner, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Locked", "b", prop_locked, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("KeyVersion", "u", prop_key_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("MinKeyVersion", "u", prop_min_key_version, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	/* Invalidation only: the protector list is not broadcast to every listener. */
	SD_BUS_PROPERTY("Protectors", "a(sssta{ss})", prop_protectors, 0,
	                SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_PROPERTY("LockReason", "s", prop_lock_reason, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	/* Wall-clock µs since the epoch of the last lock or unlock (or of loading). */
	SD_BUS_PROPERTY("LockChanged", "t", prop_lock_changed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_METHOD_WITH_ARGS("Unlock", SD_BUS_ARGS("s", protector, "h", secret, "a{ss}", options),
	                        SD_BUS_RESULT("s", protector_used, "u", shares_needed), method_unlock,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Lock", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_lock, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("ProbeProtectors", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ss)", presence),
	                        method_probe_protectors, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Wrap", SD_BUS_ARGS("ay", plaintext, "a{ss}", context), SD_BUS_RESULT("ay", blob),
	                        method_wrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Unwrap", SD_BUS_ARGS("ay", blob, "a{ss}", context),
	                        SD_BUS_RESULT("ay", plaintext), method_unwrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("Rewrap", SD_BUS_ARGS("ay", blob, "a{ss}", context), SD_BUS_RESULT("ay", blob),
	                        method_rewrap, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("GenerateDataKey", SD_BUS_ARGS("u", size, "a{ss}", context),
	                        SD_BUS_RESULT("ay", plaintext, "ay", blob), method_generate_data_key,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("UnwrapBatch", SD_BUS_ARGS("aay", blobs, "a{ss}", context),
	                        SD_BUS_RESULT("aay", plaintexts), method_unwrap_batch, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RewrapBatch", SD_BUS_ARGS("aay", blobs, "a{ss}", context),
	                        SD_BUS_RESULT("aay", blobs), method_rewrap_batch, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RotateKey", SD_BUS_ARGS("a{ss}", options), SD_BUS_RESULT("u", version),
	                        method_rotate_key, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("AddProtector",
	                        SD_BUS_ARGS("s", type, "a{ss}", options, "h", secret_in, "h", secret_out),
	                        SD_BUS_RESULT("s", id), method_add_protector, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RevokeProtector", SD_BUS_ARGS("s", id), SD_BUS_NO_RESULT,
	                        method_revoke_protector, SD_BUS_VTABLE_UNPRIVILEGED),
	/* Issue 6 (escrow_methods.c): escrow, true revocation, k-of-n and policy status. */
	SD_BUS_METHOD_WITH_ARGS("RevokeAndRekey", SD_BUS_ARGS("s", id, "h", secrets),
	                        SD_BUS_RESULT("as", kept, "as", dropped), ts_escrow_method_revoke_and_rekey,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("RotateRecoveryKey", SD_BUS_ARGS("s", protector, "h", secrets, "h", recovery_key_out),
	                        SD_BUS_RESULT("s", id, "as", kept, "as", dropped), ts_escrow_method_rotate_recovery_key,
	                        SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD_WITH_ARGS("SetEscrow", SD_BUS_ARGS("as", recipients, "u", threshold), SD_BUS_NO_RESULT,
	                        ts_escrow_method_set_escrow, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("EscrowRecipients", "a(ss)", ts_escrow_prop_recipients, 0,
	                SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_PROPERTY("SharesNeeded", "u", ts_escrow_prop_shares_needed, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("PolicyStatus", "(bs)", ts_escrow_prop_policy_status, 0,
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

int ts_vault_objects_register(ts_daemon *d)
{
	int r;

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

	if ((r = sd_bus_add_fallback_vtable(d->bus, NULL, TS_USER_PATH_PREFIX, TS_VAULT_IFACE, vault_vtable,
	                                    vault_find, d)) < 0)
		return r;
	return sd_bus_add_node_enumerator(d->bus, NULL, TS_USER_PATH_PREFIX, vault_enumerate, d);
}
