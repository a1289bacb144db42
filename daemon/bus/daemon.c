/* daemon.c — tokensealed's vault table: loading, persisting with rollback, locking, idle timers, callers, errors. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bus/escrow_publish.h"
#include "bus/daemon.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/nvcounter.h"
#include "bus/policy_enforce.h"
#include "bus/properties.h"
#include "bus/rollback.h"
#include "bus/state.h"
#include "anchor.h"
#include "protectors/remote.h"
#include "store.h"


/* ---- the vault table ----------------------------------------------------- */

ts_vault_entry *ts_daemon_find(ts_daemon *d, uint32_t owner, const char *name)
{
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if (e->vault->owner_uid == owner && strcmp(e->vault->name, name) == 0)
			return e;
	return NULL;
}

ts_vault_entry *ts_daemon_find_path(ts_daemon *d, const char *path)
{
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if (strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

int ts_vault_object_path(uint32_t owner, const char *name, char **ret)
{
	char prefix[sizeof(TS_USER_PATH_PREFIX) + 32];

	snprintf(prefix, sizeof(prefix), TS_USER_PATH_PREFIX "/%" PRIu32 "/vault", owner);
	return sd_bus_path_encode(prefix, name, ret) < 0 ? -TS_E_NOMEM : 0;
}

static void entry_free(ts_vault_entry *e)
{
	if (!e)
		return;
	sd_event_source_disable_unref(e->idle_timer);
	sd_event_source_disable_unref(e->share_timer);
	ts_vault_free(e->vault);
	ts_buf_free(&e->disk);
	free(e->backoff);
	free(e->path);
	free(e->dir);
	free(e);
}

/* The back-off counters a restart must not reset (a missing file: none yet). -TS_E_NOMEM when they cannot be kept. */
static int load_backoff(ts_vault_entry *e)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_backoff b;
	int r;

	if ((r = ts_store_load_side(e->dir, e->vault->name, "backoff", &file)) == -TS_E_NO_SUCH_VAULT)
		return 0;
	if (r < 0 || ts_backoff_parse(file.data, file.len, &b) < 0) {
		ts_log(TS_LOG_WARNING, "vault=%s: unreadable back-off counters in %s/%s.backoff (%s); starting afresh",
		       e->vault->name, e->dir, e->vault->name, r < 0 ? ts_strerror(r) : "not a back-off file");
		return 0;
	}
	if (b.n == 0)
		return 0;
	if ((e->backoff = malloc(sizeof(*e->backoff))) == NULL)
		return -TS_E_NOMEM;
	*e->backoff = b;
	return 0;
}

const ts_backoff *ts_daemon_backoff(const ts_vault_entry *e)
{
	static const ts_backoff none;

	return e->backoff ? e->backoff : &none;
}

ts_backoff *ts_daemon_backoff_mut(ts_vault_entry *e)
{
	/* Most vaults never see a wrong secret: their table (2 KiB) is made at the first. */
	if (!e->backoff)
		e->backoff = calloc(1, sizeof(*e->backoff));
	return e->backoff;
}

int ts_daemon_save_backoff(ts_vault_entry *e)
{
	_ts_cleanup_buf_ ts_buf out = { 0 };
	int r;

	if ((r = ts_backoff_format(ts_daemon_backoff(e), &out)) < 0 ||
	    (r = ts_store_save_side(e->dir, e->vault->name, "backoff", out.data, out.len)) < 0)
		ts_log(TS_LOG_WARNING, "vault=%s: cannot save the back-off counters: %s (they hold until a restart)",
		       e->vault->name, ts_strerror(r));
	return r < 0 ? r : 0;
}

int ts_daemon_add(ts_daemon *d, ts_vault *v, ts_buf *disk, const char *dir, const char *lock_reason,
                  ts_vault_entry **ret)
{
	ts_vault_entry *e, **tail;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -TS_E_NOMEM;
	e->vault = v;
	/* Not added when its back-off counters cannot be kept: it would forget wrong guesses. */
	if (ts_vault_object_path(v->owner_uid, v->name, &e->path) < 0 || (e->dir = strdup(dir)) == NULL ||
	    load_backoff(e) < 0) {
		free(e->path);
		free(e->dir);
		free(e);
		return -TS_E_NOMEM;
	}
	e->d = d;
	e->disk = *disk;
	memset(disk, 0, sizeof(*disk));
	snprintf(e->lock_reason, sizeof(e->lock_reason), "%s", lock_reason);
	/* A vault is locked from the moment it is loaded or created. */
	e->lock_changed = ts_now_usec();
	/* Keep the order of creation/loading stable for ListVaults. */
	for (tail = &d->vaults; *tail; tail = &(*tail)->next)
		;
	*tail = e;
	d->n_vaults++;
	if (ret)
		*ret = e;
	return 0;
}

void ts_daemon_free(ts_daemon *d)
{
	ts_vault_entry *e, *next;

	for (e = d->vaults; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	d->vaults = NULL;
	d->n_vaults = 0;
	entry_free(d->placeholder);
	d->placeholder = NULL;
	entry_free(d->ghost);
	d->ghost = NULL;
	d->trim_timer = sd_event_source_disable_unref(d->trim_timer);
}

struct load_ctx {
	ts_daemon *d;
	uint32_t owner;                 /* the directory being listed: an owner's, or the flat layout's */
	int flat;
	char dir[PATH_MAX];
	size_t loaded, skipped;
};

static void load_skip(struct load_ctx *lc, const char *name, int r, const char *why)
{
	/* Never rewritten, never deleted: an administrator decides. */
	ts_log(TS_LOG_ERR, "event=load vault=%s result=%s: %s (in %s); skipped", name,
	       strrchr(ts_error_dbus_name(r), '.') + 1, why ? why : ts_strerror(r), lc->dir);
	lc->skipped++;
}

static int load_one(void *ud, const char *name)
{
	struct load_ctx *lc = ud;
	_ts_cleanup_buf_ ts_buf file = { 0 };
	const char *dir = lc->dir;
	char odir[PATH_MAX], why[160], rwhy[320];
	ts_vault_entry *other;
	ts_vault *v = NULL;
	int r;

	if ((r = ts_store_load(lc->dir, name, &file)) < 0 || (r = ts_vault_parse(file.data, file.len, &v)) < 0) {
		load_skip(lc, name, r, NULL);
		return 0;
	}
	/* A file renamed or moved by hand would shadow another vault: name and owner must be the file's. */
	if (strcmp(v->name, name) != 0 || (!lc->flat && v->owner_uid != lc->owner)) {
		snprintf(why, sizeof(why), "the file holds vault '%.64s' of uid %" PRIu32, v->name, v->owner_uid);
		load_skip(lc, name, -TS_E_CORRUPT, why);
		ts_vault_free(v);
		return 0;
	}
	if ((other = ts_daemon_find(lc->d, v->owner_uid, name)) != NULL) {
		/* The flat file of a move a crash interrupted: the owner's copy is the one (ts_store_adopt). */
		if (lc->flat && (r = ts_store_adopt(lc->d->state_dir, name, v->owner_uid)) < 0) {
			snprintf(why, sizeof(why), "uid %" PRIu32 " already has a vault '%s' in %s", v->owner_uid, name,
			         other->dir);
			load_skip(lc, name, r == -TS_E_VAULT_EXISTS ? r : -TS_E_IO, why);
		}
		ts_vault_free(v);
		return 0;
	}
	/* Older than the last file written: not served, unless root accepted that very generation. */
	if ((r = ts_rollback_check(lc->d, v, rwhy, sizeof(rwhy))) < 0) {
		load_skip(lc, name, r, rwhy);
		ts_vault_free(v);
		return 0;
	}
	if (lc->flat) {
		/* Into the owner's namespace, file and all; if the move fails it is used where it is. */
		if ((r = ts_store_adopt(lc->d->state_dir, name, v->owner_uid)) == 0 &&
		    (r = ts_store_owner_dir(lc->d->state_dir, v->owner_uid, odir, sizeof(odir))) == 0) {
			ts_log(TS_LOG_NOTICE, "event=load vault=%s: moved into %s (uid %" PRIu32 ")", name, odir,
			       v->owner_uid);
			dir = odir;
		} else
			ts_log(TS_LOG_WARNING, "event=load vault=%s: cannot move into uid %" PRIu32 "'s directory (%s); "
			       "used from %s", name, v->owner_uid, ts_strerror(r), lc->dir);
	}
	if ((r = ts_daemon_add(lc->d, v, &file, dir, "startup", NULL)) < 0) {
		ts_vault_free(v);
		return r;
	}
	lc->loaded++;
	return 0;
}

static int load_owner(void *ud, uint32_t owner)
{
	struct load_ctx *lc = ud;
	int r;

	lc->owner = owner;
	if ((r = ts_store_owner_dir(lc->d->state_dir, owner, lc->dir, sizeof(lc->dir))) < 0)
		return r;
	return ts_store_list(lc->dir, load_one, lc);
}

int ts_daemon_load_vaults(ts_daemon *d)
{
	struct load_ctx lc = { .d = d };
	int r;

	if ((r = ts_store_init(d->state_dir)) < 0)
		return r;
	ts_anchor_sweep(d->state_dir);
	if ((r = ts_store_list_owners(d->state_dir, load_owner, &lc)) < 0)
		return r;
	lc.flat = 1;
	snprintf(lc.dir, sizeof(lc.dir), "%s", d->state_dir);
	if ((r = ts_store_list(d->state_dir, load_one, &lc)) < 0)
		return r;
	ts_log(TS_LOG_INFO, "loaded %zu vault(s) from %s, %zu skipped", lc.loaded, d->state_dir, lc.skipped);
	d->load_skipped = lc.skipped;
	return 0;
}

/* ---- protector descriptions ------------------------------------------------ */

void ts_daemon_describe_ahead(const ts_vault *v)
{
	for (size_t i = 0; i < v->n_protectors; i++) {
		const ts_protector_record *p = &v->protectors[i];
		const ts_protector_ops *ops = ts_protector_lookup(p->type);

		if (ops)
			ts_remote_describe_prefetch(ops, p->params, p->params_len);
	}
}

static void held_records(void *ctx, ts_remote_record_fn fn, void *ud)
{
	const ts_daemon *d = ctx;

	for (const ts_vault_entry *e = d->vaults; e; e = e->next)
		for (size_t i = 0; i < e->vault->n_protectors; i++)
			fn(e->vault->protectors[i].type, e->vault->protectors[i].params, e->vault->protectors[i].params_len,
			   ud);
}

int ts_daemon_describe_loaded(ts_daemon *d, uint64_t timeout_usec)
{
	ts_remote_describe_set_records(held_records, d);
	for (const ts_vault_entry *e = d->vaults; e; e = e->next)
		ts_daemon_describe_ahead(e->vault);
	return ts_remote_describe_wait(timeout_usec);
}

/* ---- persisting ------------------------------------------------------------ */

int ts_daemon_revert(ts_vault_entry *e)
{
	ts_vault *nv = NULL;
	int r;

	if ((r = ts_vault_parse(e->disk.data, e->disk.len, &nv)) < 0) {
		/* Memory is not the file and cannot become it: never let it be opened. */
		ts_log(TS_LOG_ERR, "vault=%s: cannot read back its file after a failed change (%s); locked until "
		       "it can", e->vault->name, ts_strerror(r));
		ts_daemon_lock_vault(e, "error", NULL);
		e->stale = 1;
		return r;
	}
	/* Still unlocked only if the secret we hold is the file's: a change that replaced VS leaves it locked. */
	if (e->vault->vs && (r = ts_vault_unlock_vs(nv, e->vault->vs)) < 0) {
		if (r == -TS_E_CORRUPT)
			ts_log(TS_LOG_WARNING, "vault=%s: the undone change had replaced the vault secret; locked "
			       "(the file's protectors open it)", e->vault->name);
		else
			ts_log(TS_LOG_WARNING, "vault=%s: cannot re-open the file with the keys in memory (%s); locked",
			       e->vault->name, ts_strerror(r));
		ts_daemon_lock_vault(e, "save-failed", NULL);
	}
	ts_vault_free(e->vault);
	e->vault = nv;
	e->stale = 0;
	/* The file's records were held before the change; if one was swept from the cache meanwhile, ask again. */
	ts_daemon_describe_ahead(e->vault);
	ts_properties_emit_changed(e);
	return 0;
}

int ts_daemon_persist(ts_vault_entry *e)
{
	ts_buf out = { 0 };
	int r;

	ts_nvcounter_saving(e);
	if ((r = ts_vault_serialize(e->vault, &out)) < 0 ||
	    (r = ts_store_save(e->dir, e->vault->name, out.data, out.len)) < 0) {
		ts_buf_free(&out);
		ts_log(TS_LOG_WARNING, "vault=%s: cannot save (%s); the change is undone, the vault is its file again",
		       e->vault->name, ts_strerror(r));
		(void)ts_daemon_revert(e);
		return r;
	}
	ts_buf_free(&e->disk);
	e->disk = out;
	/* On disk: the anchor follows (after the file, so a crash in between leaves the file ahead, never behind). */
	ts_rollback_saved(e);
	/* ... and the directory's record, when what the officers need changed ([escrow] publish). */
	ts_publish_changed(e);
	return 0;
}

/* ---- the unlocked event --------------------------------------------------- */

int ts_daemon_listen_unlocked(ts_daemon *d, ts_unlocked_fn fn)
{
	for (size_t i = 0; i < d->n_unlocked_listeners; i++)
		if (d->unlocked_listeners[i] == fn)
			return 0;
	if (d->n_unlocked_listeners >= TS_UNLOCKED_LISTENERS_MAX)
		return -TS_E_LIMIT;
	d->unlocked_listeners[d->n_unlocked_listeners++] = fn;
	return 0;
}

void ts_daemon_unlocked(ts_vault_entry *e, const char *protector_id)
{
	const ts_protector_record *p = ts_vault_find_protector(e->vault, protector_id);

	for (size_t i = 0; i < e->d->n_unlocked_listeners; i++)
		e->d->unlocked_listeners[i](e, protector_id, p);
}

/* ---- locking --------------------------------------------------------------- */

void ts_daemon_lock_vault(ts_vault_entry *e, const char *reason, const ts_caller *caller)
{
	int was_locked = ts_vault_is_locked(e->vault), had_shares = e->vault->n_pending > 0;

	char event[8 + TS_LOCK_REASON_MAX];

	ts_vault_lock(e->vault);   /* shares given so far go too */
	e->unlocked_by[0] = '\0';
	if (e->idle_timer)
		sd_event_source_set_enabled(e->idle_timer, SD_EVENT_OFF);
	if (e->share_timer)
		sd_event_source_set_enabled(e->share_timer, SD_EVENT_OFF);
	if (was_locked) {
		if (had_shares)
			ts_properties_emit_changed(e);
		return;
	}
	snprintf(e->lock_reason, sizeof(e->lock_reason), "%s", reason);
	e->lock_changed = ts_now_usec();
	/* "lock" when asked to; otherwise the reason is in the event name (lock-idle, lock-suspend, ...). */
	snprintf(event, sizeof(event), "lock%s%s", strcmp(reason, "request") == 0 ? "" : "-",
	         strcmp(reason, "request") == 0 ? "" : reason);
	(void)ts_audit(event, e->vault->name, e->vault->owner_uid, caller, NULL, 0);
	ts_properties_emit_changed(e);
}

void ts_daemon_lock_all(ts_daemon *d, const char *reason)
{
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		ts_daemon_lock_vault(e, reason, NULL);
}

static int on_idle(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_daemon_lock_vault(userdata, "idle", NULL);
	return 0;
}

void ts_daemon_forget_shares(ts_vault_entry *e, const char *why)
{
	int had = e->vault->n_pending > 0;

	ts_vault_forget_shares(e->vault);
	if (e->share_timer)
		sd_event_source_set_enabled(e->share_timer, SD_EVENT_OFF);
	if (!had)
		return;
	ts_log(TS_LOG_INFO, "vault=%s: shares given so far forgotten (%s)", e->vault->name, why);
	ts_properties_emit_changed(e);
}

static int on_share_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_daemon_forget_shares(userdata, "share-timeout");
	return 0;
}

void ts_daemon_shares_pending(ts_vault_entry *e)
{
	uint64_t secs = ts_policy_share_timeout(ts_enforce_policy());
	int enabled = SD_EVENT_OFF, r;

	if (secs == 0 || !e->d->event)
		return;
	/* From the first share on: giving more does not extend it. */
	if (e->share_timer && sd_event_source_get_enabled(e->share_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
		return;
	if (!e->share_timer)
		r = sd_event_add_time_relative(e->d->event, &e->share_timer, CLOCK_MONOTONIC, secs * 1000000, 0,
		                               on_share_timeout, e);
	else if ((r = sd_event_source_set_time_relative(e->share_timer, secs * 1000000)) >= 0)
		r = sd_event_source_set_enabled(e->share_timer, SD_EVENT_ONESHOT);
	if (r < 0) {
		/* Without a clock the shares cannot expire: do not keep them. */
		ts_log(TS_LOG_WARNING, "vault=%s: cannot arm the share timeout (%s)", e->vault->name, strerror(-r));
		ts_daemon_forget_shares(e, "no timer");
	}
}

/*
 * glibc keeps what it has freed: a batch of 10,000 keys grows the heap by
 * its messages, and after a few the daemon held 2-4 MiB more, for good.
 * Mapping large blocks on their own (M_MMAP_THRESHOLD) gives them back at
 * once but costs a batch on the private socket half its speed (page faults
 * on every batch); one trim after a burst costs a batch nothing.
 */
static int on_trim(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	(void)userdata;
	(void)malloc_trim(0);
	return 0;
}

void ts_daemon_trim_later(ts_daemon *d)
{
	int r;

	if (!d->event)
		return;
	if (!d->trim_timer)
		r = sd_event_add_time_relative(d->event, &d->trim_timer, CLOCK_MONOTONIC, TS_TRIM_USEC, 0, on_trim, d);
	else if ((r = sd_event_source_set_time_relative(d->trim_timer, TS_TRIM_USEC)) >= 0)
		r = sd_event_source_set_enabled(d->trim_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		ts_log(TS_LOG_DEBUG, "cannot arm the heap trim: %s", strerror(-r));
}

void ts_daemon_touch(ts_vault_entry *e)
{
	ts_daemon *d = e->d;
	int r;

	if (d->idle_lock_usec == 0 || !d->event || ts_vault_is_locked(e->vault))
		return;
	if (!e->idle_timer) {
		r = sd_event_add_time_relative(d->event, &e->idle_timer, CLOCK_MONOTONIC, d->idle_lock_usec,
		                               0, on_idle, e);
		if (r < 0)
			ts_log(TS_LOG_WARNING, "vault=%s: cannot arm the idle timer: %s", e->vault->name,
			       strerror(-r));
		return;
	}
	/*
	 * Unwrap calls this on every request: skip the re-arm (two sd-event
	 * calls and a timer-queue update) while the deadline is still within
	 * 1/16 of the timeout of where a re-arm would put it.
	 */
	{
		uint64_t now, deadline;
		int enabled;

		if (sd_event_source_get_enabled(e->idle_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF &&
		    sd_event_now(d->event, CLOCK_MONOTONIC, &now) >= 0 &&
		    sd_event_source_get_time(e->idle_timer, &deadline) >= 0 &&
		    deadline >= now + d->idle_lock_usec - d->idle_lock_usec / 16)
			return;
	}
	if ((r = sd_event_source_set_time_relative(e->idle_timer, d->idle_lock_usec)) >= 0)
		r = sd_event_source_set_enabled(e->idle_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		ts_log(TS_LOG_WARNING, "vault=%s: cannot re-arm the idle timer: %s", e->vault->name,
		       strerror(-r));
}
