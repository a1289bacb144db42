/* nvcounter.c — a vault's TPM NV counter: defined with its first tpm2 protector, incremented after each save, read at start. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bus/nvcounter.h"
#include "bus/audit.h"
#include "bus/log.h"
#include "bus/state.h"
#include "protectors/remote.h"
#include "protectors/tpm2_nv.h"

_Static_assert(TS_NV_AUTH_BYTES == TS_VAULT_NV_AUTH_BYTES, "NV auth size");
_Static_assert(TS_NV_HANDLE_FIRST == TS_VAULT_NV_HANDLE_FIRST && TS_NV_HANDLE_LAST == TS_VAULT_NV_HANDLE_LAST,
               "NV handle range");

/* What the daemon knows of one vault's counter, by vault id (entries come and go; this outlives a revert). */
typedef struct slot {
	uint8_t id[TS_VAULT_ID_BYTES];
	int known_ok;                 /* known is the counter's value as last read or incremented */
	uint64_t known;
	int busy;                     /* a define or increment is running */
	int want_define;              /* saving: a tpm2 protector and no counter */
	int redefine;                 /* the file's counter is gone (accepted at load): a new one at the next save */
	int have_new;                 /* defined, not yet in the header */
	uint32_t new_handle;
	uint8_t new_auth[TS_NV_AUTH_BYTES];
	int suspect;                  /* read after start and found not to match: left for the next start to refuse */
	int drop_pending;             /* saving dropped the counter: undefine it once saved */
	uint32_t drop_handle;
	struct slot *next;
} slot;

/* One helper run, until it answers. */
typedef struct nvjob {
	ts_daemon *d;
	uint8_t id[TS_VAULT_ID_BYTES];
	char name[TS_VAULT_NAME_MAX + 1];
	uint8_t action;
	uint32_t handle;
	uint64_t expect;
	uint8_t auth[TS_NV_AUTH_BYTES];
	ts_remote_job *job;
	struct nvjob *next;
} nvjob;

static slot *slots;
static nvjob *jobs;
static int (*persist_fn)(ts_vault_entry *e);

void ts_nvcounter_set_persist(int (*persist)(ts_vault_entry *e))
{
	persist_fn = persist;
}

static slot *slot_get(const uint8_t id[TS_VAULT_ID_BYTES], int create)
{
	slot *s;

	for (s = slots; s; s = s->next)
		if (memcmp(s->id, id, TS_VAULT_ID_BYTES) == 0)
			return s;
	if (!create || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	memcpy(s->id, id, TS_VAULT_ID_BYTES);
	s->next = slots;
	slots = s;
	return s;
}

static ts_vault_entry *entry_by_id(ts_daemon *d, const uint8_t id[TS_VAULT_ID_BYTES])
{
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if (memcmp(e->vault->id, id, TS_VAULT_ID_BYTES) == 0)
			return e;
	return NULL;
}

static int has_tpm2(const ts_vault *v)
{
	for (size_t i = 0; i < v->n_protectors; i++)
		if (strcmp(v->protectors[i].type, "tpm2") == 0)
			return 1;
	return 0;
}

static void job_unlink(nvjob *j)
{
	for (nvjob **p = &jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	sodium_memzero(j->auth, sizeof(j->auth));
	free(j);
}

static void on_job(void *userdata, int rc, const ts_remote_reply *reply, const char *err);

static int job_start(ts_daemon *d, const uint8_t id[TS_VAULT_ID_BYTES], const char *name, uint8_t action,
                     uint32_t handle, const uint8_t *auth, uint64_t expect)
{
	char err[512] = "";
	nvjob *j;
	int r;

	if (!d->event)
		return -TS_E_FAILED;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -TS_E_NOMEM;
	j->d = d;
	memcpy(j->id, id, TS_VAULT_ID_BYTES);
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->action = action;
	j->handle = handle;
	j->expect = expect;
	if (auth)
		memcpy(j->auth, auth, TS_NV_AUTH_BYTES);
	if ((r = ts_remote_nv_start(d->event, &d->config, action, handle, auth ? j->auth : NULL, on_job, j, &j->job,
	                            err, sizeof(err))) < 0) {
		ts_log(TS_LOG_WARNING, "vault=%s: cannot start a token helper for its TPM counter: %s", name,
		       err[0] ? err : ts_strerror(r));
		sodium_memzero(j->auth, sizeof(j->auth));
		free(j);
		return r;
	}
	j->next = jobs;
	jobs = j;
	return 0;
}

/*
 * The counter read after start (the TPM could not be read then, or an
 * increment failed): the file's value should be the counter's or one more.
 * Anything else is a file put back while the counter could not be checked:
 * on record now, and the next start refuses it.
 */
static void read_back(slot *s, ts_vault_entry *e, uint64_t counter)
{
	static const char *const names[] = { "file_counter", "tpm_counter" };
	const ts_vault *v = e->vault;
	uint64_t values[2] = { v->nv_value, counter };

	if (v->nv_value == counter || (counter < UINT64_MAX && v->nv_value == counter + 1)) {
		s->known = counter;
		s->known_ok = 1;
		if (v->nv_value > counter &&
		    job_start(e->d, v->id, v->name, TS_NV_INCREMENT, v->nv_handle, v->nv_auth, v->nv_value) == 0)
			s->busy = 1;
		return;
	}
	s->suspect = 1;
	(void)ts_audit_numbers("rollback", v->name, v->owner_uid, -TS_E_ROLLBACK, names, values, 2);
	ts_log(TS_LOG_ERR, "vault=%s: its file expects TPM counter value %" PRIu64 " but the counter is at %" PRIu64
	       ": it was put back from another copy while the counter could not be read; served until the next start, "
	       "which refuses it", v->name, v->nv_value, counter);
}

static void on_job(void *userdata, int rc, const ts_remote_reply *reply, const char *err)
{
	nvjob *j = userdata;
	slot *s = slot_get(j->id, 0);
	uint32_t handle = 0;
	uint64_t value = 0;
	ts_vault_entry *e;

	if (rc >= 0 && ts_nv_reply_decode(reply->params, reply->params_len, &handle, &value) < 0) {
		rc = -TS_E_FAILED;
		err = "the token helper sent a malformed NV counter answer";
	}
	if (!err || !err[0])
		err = rc < 0 ? ts_strerror(rc) : "";
	switch (j->action) {
	case TS_NV_INCREMENT:
		if (s)
			s->busy = 0;
		if (rc < 0) {
			/* Perhaps it was incremented all the same (a timeout): read it again before the next one. */
			if (s)
				s->known_ok = 0;
			ts_log(TS_LOG_WARNING, "vault=%s: saved, but its TPM counter 0x%08" PRIx32 " was not incremented (%s): "
			       "the file is one ahead of it until the next save (which reads it again) or start makes "
			       "that up", j->name, j->handle, err);
			break;
		}
		if (s) {
			s->known = value;
			s->known_ok = 1;
		}
		if (value != j->expect)
			ts_log(TS_LOG_WARNING, "vault=%s: its TPM counter 0x%08" PRIx32 " is now %" PRIu64 ", the file "
			       "expects %" PRIu64 ": something else increments it", j->name, j->handle, value, j->expect);
		break;
	case TS_NV_READ:
		if (s)
			s->busy = 0;
		if (rc < 0) {
			ts_log(TS_LOG_WARNING, "vault=%s: cannot read its TPM counter 0x%08" PRIx32 " (%s); tried again at "
			       "the next save", j->name, j->handle, err);
			break;
		}
		if ((e = entry_by_id(j->d, j->id)) == NULL || !s || e->vault->nv_handle != j->handle)
			break;
		read_back(s, e, value);
		break;
	case TS_NV_DEFINE:
		if (s)
			s->busy = 0;
		if (rc < 0) {
			ts_log(TS_LOG_WARNING, "vault=%s: cannot create its TPM rollback counter (%s); only the generation "
			       "anchor applies until a later save succeeds", j->name, err);
			break;
		}
		if ((e = entry_by_id(j->d, j->id)) == NULL || (s = slot_get(j->id, 1)) == NULL) {
			/* The vault went away meanwhile: nothing will name this index. */
			ts_log(TS_LOG_NOTICE, "vault=%s: gone before its TPM counter 0x%08" PRIx32 " was recorded; "
			       "undefining it", j->name, handle);
			(void)job_start(j->d, j->id, j->name, TS_NV_UNDEFINE, handle, NULL, 0);
			break;
		}
		s->have_new = 1;
		s->new_handle = handle;
		memcpy(s->new_auth, j->auth, TS_NV_AUTH_BYTES);
		s->known = value;
		s->known_ok = 1;
		ts_log(TS_LOG_NOTICE, "vault=%s: TPM rollback counter 0x%08" PRIx32 " created (value %" PRIu64 ")",
		       j->name, handle, value);
		/* Into the header now if the vault is open; else at its next save. */
		if (!ts_vault_is_locked(e->vault) && persist_fn)
			(void)persist_fn(e);
		break;
	case TS_NV_UNDEFINE:
		if (rc < 0)
			ts_log(TS_LOG_WARNING, "vault=%s: cannot undefine its former TPM counter 0x%08" PRIx32 " (%s); "
			       "remove it by hand (tpm2_nvundefine 0x%08" PRIx32 ")", j->name, j->handle, err, j->handle);
		else
			ts_log(TS_LOG_NOTICE, "vault=%s: TPM counter 0x%08" PRIx32 " undefined", j->name, j->handle);
		break;
	}
	job_unlink(j);
}

void ts_nvcounter_saving(ts_vault_entry *e)
{
	ts_vault *v = e->vault;
	slot *s = slot_get(v->id, 1);
	int tpm2 = has_tpm2(v);

	if (!s)
		return;
	s->drop_pending = 0;
	s->want_define = 0;
	if (v->nv_handle && (!tpm2 || s->redefine)) {
		/* The last tpm2 protector went (or the counter is gone): the file stops naming it. */
		s->drop_pending = 1;
		s->drop_handle = v->nv_handle;
		v->nv_handle = 0;
		v->nv_value = 0;
		sodium_memzero(v->nv_auth, sizeof(v->nv_auth));
	}
	if (!tpm2)
		return;
	if (!v->nv_handle && s->have_new) {
		v->nv_handle = s->new_handle;
		memcpy(v->nv_auth, s->new_auth, TS_NV_AUTH_BYTES);
	}
	if (!v->nv_handle) {
		s->want_define = !s->busy;
		return;
	}
	/* One ahead of the counter as known; unknown (no TPM at start): the file keeps its value. */
	if (s->known_ok)
		v->nv_value = s->known + 1;
}

void ts_nvcounter_saved(ts_vault_entry *e)
{
	ts_vault *v = e->vault;
	slot *s = slot_get(v->id, 0);
	uint8_t auth[TS_NV_AUTH_BYTES];

	if (!s)
		return;
	if (s->have_new && v->nv_handle == s->new_handle) {
		/* The new counter is in the file now. */
		sodium_memzero(s->new_auth, sizeof(s->new_auth));
		s->have_new = 0;
	}
	if (s->drop_pending) {
		/* Named by no file any more (a counter found gone at load is not undefined again). */
		s->drop_pending = 0;
		s->known_ok = 0;
		if (!s->redefine)
			(void)job_start(e->d, v->id, v->name, TS_NV_UNDEFINE, s->drop_handle, NULL, 0);
		s->redefine = 0;
	}
	if (s->want_define) {
		s->want_define = 0;
		randombytes_buf(auth, sizeof(auth));
		if (job_start(e->d, v->id, v->name, TS_NV_DEFINE, 0, auth, 0) == 0)
			s->busy = 1;
		sodium_memzero(auth, sizeof(auth));
	} else if (v->nv_handle && s->known_ok && v->nv_value > s->known && !s->busy) {
		if (job_start(e->d, v->id, v->name, TS_NV_INCREMENT, v->nv_handle, v->nv_auth, v->nv_value) == 0)
			s->busy = 1;
	} else if (v->nv_handle && !s->known_ok && !s->busy && !s->suspect) {
		/* Not known since start (no TPM then) or since a failed increment: read it, then follow. */
		if (job_start(e->d, v->id, v->name, TS_NV_READ, v->nv_handle, v->nv_auth, 0) == 0)
			s->busy = 1;
	}
}

void ts_nvcounter_shutdown(void)
{
	slot *s;

	while (jobs) {
		nvjob *j = jobs;
		ts_remote_job_cancel(j->job);
		job_unlink(j);
	}
	while ((s = slots) != NULL) {
		slots = s->next;
		sodium_memzero(s, sizeof(*s));
		free(s);
	}
}

int ts_nvcounter_check(ts_daemon *d, const ts_vault *v, int accepted, char *why, size_t cap)
{
	static const char *const names[] = { "file_counter", "tpm_counter" };
	char err[512] = "";
	uint64_t values[2], counter = 0, after = 0;
	uint32_t handle = 0;
	slot *s;
	int r;

	if (!v->nv_handle)
		return 0;
	if ((s = slot_get(v->id, 1)) == NULL)
		return -TS_E_NOMEM;
	s->known_ok = 0;
	values[0] = v->nv_value;
	values[1] = 0;
	r = ts_remote_nv(&d->config, TS_NV_READ, v->nv_handle, v->nv_auth, &handle, &counter, err, sizeof(err));
	if (r == -TS_E_KEY_NOT_FOUND) {
		/* Undefined or replaced (root with the owner hierarchy's auth, or a cleared TPM). */
		if (accepted) {
			(void)ts_audit_numbers("rollback-accept", v->name, v->owner_uid, 0, names, values, 1);
			ts_log(TS_LOG_WARNING, "event=load vault=%s: its TPM counter 0x%08" PRIx32 " is gone (%s); accepted "
			       "by --accept-rollback, a new counter is made at its next save", v->name, v->nv_handle, err);
			s->redefine = 1;
			return 0;
		}
		(void)ts_audit_numbers("rollback", v->name, v->owner_uid, -TS_E_ROLLBACK, names, values, 1);
		ts_log(TS_LOG_WARNING, "event=load vault=%s: TPM counter 0x%08" PRIx32 ": %s", v->name, v->nv_handle, err);
		snprintf(why, cap, "its TPM counter 0x%08" PRIx32 " is gone or replaced, so the file cannot be shown "
		         "to be the last one written. To serve it anyway: tokensealed --accept-rollback "
		         "%" PRIu32 ":%s:%" PRIu64, v->nv_handle, v->owner_uid, v->name, v->generation);
		return -TS_E_ROLLBACK;
	}
	if (r < 0) {
		/* No TPM now: the anchor still applies; say so loudly. */
		(void)ts_audit_numbers("rollback-unchecked", v->name, v->owner_uid, r, names, values, 1);
		ts_log(TS_LOG_ERR, "event=load vault=%s: cannot read its TPM counter 0x%08" PRIx32 " (%s); served, "
		       "checked against the generation anchor only", v->name, v->nv_handle, err);
		return 0;
	}
	values[1] = counter;
	if (v->nv_value == counter) {
		s->known = counter;
		s->known_ok = 1;
		return 0;
	}
	if (counter < UINT64_MAX && v->nv_value == counter + 1) {
		/* Saved, then stopped before the increment: make it up now. */
		r = ts_remote_nv(&d->config, TS_NV_INCREMENT, v->nv_handle, v->nv_auth, &handle, &after, err, sizeof(err));
		if (r < 0) {
			ts_log(TS_LOG_WARNING, "event=load vault=%s: its file is one ahead of its TPM counter and the "
			       "increment failed (%s); served, made up at the next save", v->name, err);
			after = counter;
		} else
			ts_log(TS_LOG_NOTICE, "event=load vault=%s: its file was one ahead of its TPM counter (a save "
			       "not followed by its increment); the counter is now %" PRIu64, v->name, after);
		s->known = after;
		s->known_ok = 1;
		return 0;
	}
	if (accepted) {
		/* Root said so: the next save writes counter + 1, and the decision is on record. */
		(void)ts_audit_numbers("rollback-accept", v->name, v->owner_uid, 0, names, values, 2);
		ts_log(TS_LOG_WARNING, "event=load vault=%s: file counter %" PRIu64 ", TPM counter %" PRIu64 "; accepted "
		       "by --accept-rollback, re-based at its next save", v->name, v->nv_value, counter);
		s->known = counter;
		s->known_ok = 1;
		return 0;
	}
	(void)ts_audit_numbers("rollback", v->name, v->owner_uid, -TS_E_ROLLBACK, names, values, 2);
	if (v->nv_value < counter)
		snprintf(why, cap, "its file expects TPM counter value %" PRIu64 " but the counter is at %" PRIu64 " (a "
		         "later file was written). To serve it anyway: tokensealed --accept-rollback %" PRIu32 ":%s:%" PRIu64,
		         v->nv_value, counter, v->owner_uid, v->name, v->generation);
	else
		snprintf(why, cap, "its file expects TPM counter value %" PRIu64 " but the counter is only at %" PRIu64
		         " (not this counter's file: another TPM, or an edited header). To serve it anyway: tokensealed "
		         "--accept-rollback %" PRIu32 ":%s:%" PRIu64, v->nv_value, counter, v->owner_uid, v->name,
		         v->generation);
	return -TS_E_ROLLBACK;
}
