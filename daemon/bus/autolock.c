/* autolock.c — lock vaults when the user or the token goes away: suspend, screen lock, FIDO2 or PKCS#11 token removal. */
/* Each trigger can be turned off by the policy's [lock] on-suspend, on-screen-lock, on-token-removal. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-device.h>

#include "bus/autolock.h"
#include "bus/daemon.h"
#include "bus/log.h"
#include "bus/policy_enforce.h"
#include "bus/state.h"
#include "protectors/remote.h"

#define LOGIND_NAME "org.freedesktop.login1"
#define LOGIND_PATH "/org/freedesktop/login1"
#define LOGIND_MANAGER LOGIND_NAME ".Manager"
#define LOGIND_SESSION LOGIND_NAME ".Session"

/* unix: test authenticators are probed this often while a vault they unlocked is open. */
#define PROBE_INTERVAL_USEC (1000ull * 1000)
/* PKCS#11 has no removal event we can rely on across modules: ask the backend this often. */
#define P11_PROBE_INTERVAL_USEC (2000ull * 1000)
#define MAX_PROBED 8
#define MAX_HIDRAW 16

typedef struct probed_dev {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;                     /* the socket file present at unlock: a new one is another device */
} probed_dev;

typedef struct ts_autolock {
	char *logind_owner;            /* unique name owning org.freedesktop.login1, NULL if none */
	sd_bus_slot *owner_slot, *owner_query, *sleep_slot, *lock_slot;
	sd_device_monitor *monitor;
	sd_event_source *dev_watch;    /* inotify on /dev: works where udev's netlink does not reach */
	char hidraw[MAX_HIDRAW][32];   /* FIDO hidraw nodes present at the last fido2 unlock */
	size_t n_hidraw;
	sd_event_source *probe_timer;
	sd_event_source *p11_timer;    /* while a vault unlocked by a pkcs11 protector is open */
	probed_dev probed[MAX_PROBED];
	size_t n_probed;
} ts_autolock;

/*
 * Does the policy let this trigger lock (flag a TS_POLICY_LOCK_* bit, key its
 * [lock] key)? When it does not, n_open vaults stay open: said at info level,
 * naming the rule and where it was set, so "why did my vault not lock" has
 * an answer in the log.
 */
static int policy_allows(unsigned flag, const char *key, const char *reason, const char *vault, size_t n_open)
{
	const ts_policy *p = ts_enforce_policy();
	const ts_policy_setting *s;

	/* No policy object (out of memory) is not a reason to stay open. */
	if (!p || (ts_policy_lock_flags(p) & flag))
		return 1;
	s = ts_enforce_setting("lock", key);
	if (vault)
		ts_log(TS_LOG_INFO, "autolock: %s: vault=%s kept open by the policy: [lock] %s = %s (%s:%u)", reason, vault,
		       key, s ? s->value : "no", s && s->file ? s->file : "?", s ? s->line : 0);
	else
		ts_log(TS_LOG_INFO, "autolock: %s: %zu vault(s) kept open by the policy: [lock] %s = %s (%s:%u)", reason,
		       n_open, key, s ? s->value : "no", s && s->file ? s->file : "?", s ? s->line : 0);
	return 0;
}

static void lock_where(ts_daemon *d, const char *reason, unsigned flag, const char *key,
                       int (*match)(ts_vault_entry *e, const void *arg), const void *arg)
{
	size_t n = 0;

	/*
	 * Shares of a k-of-n vault given so far are forgotten on every trigger,
	 * whatever the policy keeps open: the person who gave them went away.
	 * Token removal cannot tell whose they were: all of them go.
	 */
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if (e->vault->n_pending > 0 && (flag == TS_POLICY_LOCK_TOKEN_REMOVAL || match(e, arg)))
			ts_daemon_forget_shares(e, reason);

	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if (!ts_vault_is_locked(e->vault) && match(e, arg))
			n++;
	if (!policy_allows(flag, key, reason, NULL, n))
		return;
	n = 0;
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if (!ts_vault_is_locked(e->vault) && match(e, arg)) {
			ts_daemon_lock_vault(e, reason, NULL);
			e->unlocked_by[0] = '\0';
			n++;
		}
	ts_log(TS_LOG_INFO, "autolock: %s: %zu vault(s) locked", reason, n);
}

static int match_all(ts_vault_entry *e, const void *arg) { return 1; }
static int match_uid(ts_vault_entry *e, const void *arg) { return e->vault->owner_uid == *(const uint32_t *)arg; }
static int match_type(ts_vault_entry *e, const void *arg) { return strcmp(e->unlocked_by, arg) == 0; }

/* ---- who is logind ---------------------------------------------------------------------- */

/*
 * Anyone on the bus can emit a signal that looks like logind's; only the
 * owner of org.freedesktop.login1 is believed. The bus driver's
 * NameOwnerChanged (which nobody else can send) keeps the owner current.
 */
static void set_owner(ts_autolock *a, const char *owner)
{
	free(a->logind_owner);
	a->logind_owner = owner && *owner ? strdup(owner) : NULL;
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	ts_autolock *a = userdata;
	const char *name, *old, *new;

	if (sd_bus_message_read(m, "sss", &name, &old, &new) < 0 || strcmp(name, LOGIND_NAME) != 0)
		return 0;
	set_owner(a, new);
	return 0;
}

static int on_owner_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	ts_autolock *a = userdata;
	const char *owner;

	a->owner_query = sd_bus_slot_unref(a->owner_query);
	/* NameHasNoOwner: no logind (yet); NameOwnerChanged tells us when it comes. */
	if (!sd_bus_message_is_method_error(m, NULL) && sd_bus_message_read(m, "s", &owner) >= 0 &&
	    !a->logind_owner)
		set_owner(a, owner);
	return 0;
}

static int from_logind(ts_autolock *a, sd_bus_message *m)
{
	const char *sender = sd_bus_message_get_sender(m);

	if (a->logind_owner && sender && strcmp(sender, a->logind_owner) == 0)
		return 1;
	ts_log(TS_LOG_WARNING, "autolock: ignoring %s.%s from %s: not the owner of %s", sd_bus_message_get_interface(m),
	       sd_bus_message_get_member(m), sender ? sender : "?", LOGIND_NAME);
	return 0;
}

/* ---- suspend, screen lock ------------------------------------------------------------------ */

static int on_prepare_for_sleep(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	ts_daemon *d = userdata;
	int start;

	if (!from_logind(d->autolock, m) || sd_bus_message_read(m, "b", &start) < 0)
		return 0;
	/* Lock before the machine sleeps; resuming unlocks nothing. */
	if (start)
		lock_where(d, "suspend", TS_POLICY_LOCK_SUSPEND, "on-suspend", match_all, NULL);
	return 0;
}

static int on_session_user(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	ts_daemon *d = userdata;
	const char *path;
	uint32_t uid;

	if (sd_bus_message_is_method_error(m, NULL)) {
		ts_log(TS_LOG_WARNING, "autolock: screen lock: cannot ask logind for the session's user: %s",
		       sd_bus_message_get_error(m)->message);
		return 0;
	}
	if (sd_bus_message_enter_container(m, 'v', "(uo)") < 0 || sd_bus_message_read(m, "(uo)", &uid, &path) < 0) {
		ts_log(TS_LOG_WARNING, "autolock: screen lock: unexpected User property from logind");
		return 0;
	}
	lock_where(d, "screen-lock", TS_POLICY_LOCK_SCREEN, "on-screen-lock", match_uid, &uid);
	return 0;
}

static int on_session_lock(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	ts_daemon *d = userdata;
	ts_autolock *a = d->autolock;
	int r;

	if (!from_logind(a, m))
		return 0;
	/*
	 * The signal names the session only by its object path; whose vaults to
	 * lock is the session's User property. Asked of the same owner, without
	 * waiting for the answer here.
	 */
	r = sd_bus_call_method_async(d->bus, NULL, a->logind_owner, sd_bus_message_get_path(m),
	                             "org.freedesktop.DBus.Properties", "Get", on_session_user, d, "ss",
	                             LOGIND_SESSION, "User");
	if (r < 0)
		ts_log(TS_LOG_WARNING, "autolock: screen lock: cannot ask logind: %s", strerror(-r));
	return 0;
}

/* ---- token removal --------------------------------------------------------------------------- */

/*
 * Real keys: the kernel removes their hidraw node; udev marks FIDO devices
 * ID_FIDO_TOKEN=1 (60-fido-id.rules), so unplugging a keyboard locks nothing.
 * Which key unlocked a vault is the backend's business, so any FIDO token
 * going away locks every vault a FIDO2 protector opened: the safe side.
 */
static int on_device(sd_device_monitor *mon, sd_device *dev, void *userdata)
{
	ts_daemon *d = userdata;
	sd_device_action_t action;
	const char *fido = NULL;

	if (sd_device_get_action(dev, &action) < 0 || action != SD_DEVICE_REMOVE)
		return 0;
	if (sd_device_get_property_value(dev, "ID_FIDO_TOKEN", &fido) < 0 || strcmp(fido, "1") != 0)
		return 0;
	lock_where(d, "token-removed", TS_POLICY_LOCK_TOKEN_REMOVAL, "on-token-removal", match_type, "fido2");
	return 0;
}

/*
 * With PrivateNetwork=yes (the shipped unit) udev's netlink messages do not
 * reach us, but the kernel still deletes /dev/hidrawN when the key goes:
 * inotify on /dev sees that. Which nodes are FIDO tokens is read from udev's
 * database (ID_FIDO_TOKEN) at unlock time, while the node still exists.
 */
static void hidraw_remember(ts_autolock *a)
{
	sd_device_enumerator *en = NULL;
	const char *node;

	a->n_hidraw = 0;
	if (sd_device_enumerator_new(&en) < 0)
		return;
	if (sd_device_enumerator_add_match_subsystem(en, "hidraw", 1) >= 0 &&
	    sd_device_enumerator_add_match_property(en, "ID_FIDO_TOKEN", "1") >= 0)
		for (sd_device *dev = sd_device_enumerator_get_device_first(en); dev && a->n_hidraw < MAX_HIDRAW;
		     dev = sd_device_enumerator_get_device_next(en))
			if (sd_device_get_devname(dev, &node) >= 0 && strncmp(node, "/dev/", 5) == 0 &&
			    strlen(node + 5) < sizeof(a->hidraw[0]))
				snprintf(a->hidraw[a->n_hidraw++], sizeof(a->hidraw[0]), "%s", node + 5);
	sd_device_enumerator_unref(en);
}

static int on_dev_delete(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	ts_daemon *d = userdata;
	ts_autolock *a = d->autolock;

	if (!(ev->mask & IN_DELETE) || ev->len == 0)
		return 0;
	for (size_t i = 0; i < a->n_hidraw; i++)
		if (strcmp(a->hidraw[i], ev->name) == 0) {
			ts_log(TS_LOG_NOTICE, "autolock: FIDO2 device /dev/%s went away", ev->name);
			a->hidraw[i][0] = '\0';
			lock_where(d, "token-removed", TS_POLICY_LOCK_TOKEN_REMOVAL, "on-token-removal", match_type,
			           "fido2");
			break;
		}
	return 0;
}

/*
 * The software authenticator (a unix: device) has no udev: the transport is
 * the token. It counts as removed when its socket file is gone or replaced,
 * or nothing listens on it any more (a connect is refused).
 */
static int probe_present(const probed_dev *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (stat(p->path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_dev != p->dev || st.st_ino != p->ino)
		return 0;
	memcpy(sa.sun_path, p->path, strlen(p->path));
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return 1;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	/* EAGAIN: a full backlog is a busy authenticator, still there. */
	return r == 0 || (errno != ECONNREFUSED && errno != ENOENT);
}

/* A share of a k-of-n vault was given with a protector of this type (and not forgotten since). */
static int shares_by(const ts_vault_entry *e, const char *type)
{
	if (e->vault->n_pending == 0)
		return 0;
	for (size_t i = 0; i < e->vault->n_pending; i++) {
		const ts_protector_record *p = ts_vault_find_protector(e->vault, e->vault->pending_ids[i]);

		if (p && strcmp(p->type, type) == 0)
			return 1;
	}
	return 0;
}

/* Is a token of this type to be watched: it unlocked a vault that is open, or gave a share still kept? */
static int any_unlocked_by(ts_daemon *d, const char *type)
{
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		if ((!ts_vault_is_locked(e->vault) && strcmp(e->unlocked_by, type) == 0) || shares_by(e, type))
			return 1;
	return 0;
}

/* Forget the shares every vault holds: a token went away, and whose shares they were is not known. */
static void forget_all_shares(ts_daemon *d)
{
	for (ts_vault_entry *e = d->vaults; e; e = e->next)
		ts_daemon_forget_shares(e, "token-removed");
}

static int on_probe(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_daemon *d = userdata;
	ts_autolock *a = d->autolock;
	size_t i = 0;
	int gone = 0, r;

	while (i < a->n_probed) {
		if (probe_present(&a->probed[i])) {
			i++;
			continue;
		}
		ts_log(TS_LOG_NOTICE, "autolock: FIDO2 device unix:%s went away", a->probed[i].path);
		a->probed[i] = a->probed[--a->n_probed];
		gone = 1;
	}
	if (gone)
		lock_where(d, "token-removed", TS_POLICY_LOCK_TOKEN_REMOVAL, "on-token-removal", match_type, "fido2");
	if (a->n_probed == 0 || !any_unlocked_by(d, "fido2")) {
		a->n_probed = 0;
		return sd_event_source_set_enabled(s, SD_EVENT_OFF);
	}
	if ((r = sd_event_source_set_time_relative(s, PROBE_INTERVAL_USEC)) < 0)
		return r;
	return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

/* Remember the unix: devices of --fido2-device that are there now (only in a daemon started for tests). */
static void probe_arm(ts_daemon *d)
{
	ts_autolock *a = d->autolock;
	const char *p = d->config.fido2_device, *end;
	int r;

	if (!d->config.test_devices)
		return;

	for (; p && *p; p = *end ? end + 1 : end) {
		probed_dev pd = { 0 };
		struct stat st;
		size_t len, i;

		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		len = (size_t)(end - p);
		if (len <= 5 || strncmp(p, "unix:", 5) != 0 || len - 5 >= sizeof(pd.path))
			continue;
		memcpy(pd.path, p + 5, len - 5);
		if (stat(pd.path, &st) < 0 || !S_ISSOCK(st.st_mode))
			continue;
		pd.dev = st.st_dev;
		pd.ino = st.st_ino;
		for (i = 0; i < a->n_probed; i++)
			if (strcmp(a->probed[i].path, pd.path) == 0)
				break;
		if (i < a->n_probed)
			a->probed[i] = pd;
		else if (a->n_probed < MAX_PROBED && probe_present(&pd))
			a->probed[a->n_probed++] = pd;
	}
	if (a->n_probed == 0)
		return;
	if (!a->probe_timer)
		r = sd_event_add_time_relative(d->event, &a->probe_timer, CLOCK_MONOTONIC, PROBE_INTERVAL_USEC, 0,
		                               on_probe, d);
	else if ((r = sd_event_source_set_time_relative(a->probe_timer, PROBE_INTERVAL_USEC)) >= 0)
		r = sd_event_source_set_enabled(a->probe_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		ts_log(TS_LOG_WARNING, "autolock: cannot watch the FIDO2 test devices: %s", strerror(-r));
}

/* ---- PKCS#11 token removal ------------------------------------------------------------------ */

/*
 * One round of PKCS#11 presence questions: for each vault, the cards that
 * gave a share still kept and the card that unlocked it, asked one after
 * the other in tokenseal-helper from the event loop (never waited for in
 * it). Only "the backend says, for sure, the token is gone" acts; "cannot
 * tell" (a module that fails to load) is logged, and the next round asks
 * again. The next round is armed when this one ends.
 */
#define P11_ROUND_MAX 256
typedef struct p11_round {
	ts_daemon *d;
	struct {
		ts_vault_entry *e;
		char id[TS_PROTECTOR_ID_MAX];
		int share;               /* 1: it gave a share; 0: it unlocked the vault */
	} q[P11_ROUND_MAX];
	size_t n, next;
	ts_remote_job *remote;
} p11_round;

static p11_round *round_now;

static void p11_round_step(p11_round *w);

/* The card of question i is gone: forget the shares, lock the vault it unlocked (if it still is so). */
static void p11_gone(p11_round *w, size_t i)
{
	ts_vault_entry *e = w->q[i].e;
	const char *id = w->q[i].id;

	if (w->q[i].share) {
		for (size_t k = 0; k < e->vault->n_pending; k++)
			if (strcmp(e->vault->pending_ids[k], id) == 0) {
				ts_log(TS_LOG_NOTICE, "autolock: vault=%s: the PKCS#11 token of protector %s, which gave a "
				       "share, went away", e->vault->name, id);
				forget_all_shares(w->d);
				break;
			}
		return;
	}
	/* Asked while the vault was open: it may have been locked, or unlocked with another, meanwhile. */
	if (ts_vault_is_locked(e->vault) || strcmp(e->unlocked_by, "pkcs11") != 0 || strcmp(e->unlocked_with, id) != 0)
		return;
	ts_log(TS_LOG_NOTICE, "autolock: vault=%s: the PKCS#11 token of protector %s went away", e->vault->name, id);
	forget_all_shares(w->d);
	if (policy_allows(TS_POLICY_LOCK_TOKEN_REMOVAL, "on-token-removal", "token-removed", e->vault->name, 1))
		ts_daemon_lock_vault(e, "token-removed", NULL);
	/* Kept open: the token is gone, stop asking about it (and saying so every round). */
	e->unlocked_by[0] = '\0';
}

static void on_p11_present(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	p11_round *w = userdata;
	size_t i = w->next - 1;

	w->remote = NULL;
	if (r < 0)
		ts_log(TS_LOG_WARNING, "autolock: vault=%s protector=%s: cannot tell whether the token is there: %s",
		       w->q[i].e->vault->name, w->q[i].id, err && *err ? err : ts_strerror(r));
	else if (!reply->present)
		p11_gone(w, i);
	p11_round_step(w);
}

static void p11_round_step(p11_round *w)
{
	const ts_protector_ops *ops = ts_protector_lookup("pkcs11");
	ts_daemon *d = w->d;
	int r;

	while (ops && ops->present && w->next < w->n) {
		ts_vault_entry *e = w->q[w->next].e;
		const ts_protector_record *p = ts_vault_find_protector(e->vault, w->q[w->next].id);
		ts_protector_request req = { 0 };
		char errbuf[256] = "";

		w->next++;
		if (!p || strcmp(p->type, "pkcs11") != 0)
			continue;   /* revoked since: nothing left to watch */
		ts_protector_request_init(&req, &d->config, e->vault->name, e->vault->id, errbuf, sizeof(errbuf));
		req.reserved_ok = 1;   /* the daemon's own watch: never turned away by a user's loop */
		if ((r = ts_remote_present_start(d->event, ops, &req, p->params, p->params_len, on_p11_present, w,
		                                 &w->remote)) >= 0)
			return;
		ts_log(TS_LOG_WARNING, "autolock: vault=%s protector=%s: cannot tell whether the token is there: %s",
		       e->vault->name, p->id, errbuf[0] ? errbuf : ts_strerror(r));
	}
	round_now = NULL;
	free(w);
	if (d->autolock && d->autolock->p11_timer) {
		if (!any_unlocked_by(d, "pkcs11"))
			(void)sd_event_source_set_enabled(d->autolock->p11_timer, SD_EVENT_OFF);
		else if (sd_event_source_set_time_relative(d->autolock->p11_timer, P11_PROBE_INTERVAL_USEC) >= 0)
			(void)sd_event_source_set_enabled(d->autolock->p11_timer, SD_EVENT_ONESHOT);
	}
}

static int on_p11_probe(sd_event_source *s, uint64_t usec, void *userdata)
{
	ts_daemon *d = userdata;
	p11_round *w;

	if (round_now)
		return 0;   /* the round in flight arms the next one */
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		if (sd_event_source_set_time_relative(s, P11_PROBE_INTERVAL_USEC) < 0)
			return 0;
		return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	w->d = d;
	for (ts_vault_entry *e = d->vaults; e; e = e->next) {
		/* Shares given with a card that is gone: nobody is there to finish the unlock with it. */
		for (size_t i = 0; shares_by(e, "pkcs11") && i < e->vault->n_pending && w->n < P11_ROUND_MAX; i++) {
			w->q[w->n].e = e;
			w->q[w->n].share = 1;
			snprintf(w->q[w->n++].id, sizeof(w->q[0].id), "%s", e->vault->pending_ids[i]);
		}
		if (!ts_vault_is_locked(e->vault) && strcmp(e->unlocked_by, "pkcs11") == 0 && w->n < P11_ROUND_MAX) {
			w->q[w->n].e = e;
			w->q[w->n].share = 0;
			snprintf(w->q[w->n++].id, sizeof(w->q[0].id), "%s", e->unlocked_with);
		}
	}
	round_now = w;
	p11_round_step(w);
	return 0;
}

static void p11_arm(ts_daemon *d)
{
	ts_autolock *a = d->autolock;
	int r;

	if (!a->p11_timer)
		r = sd_event_add_time_relative(d->event, &a->p11_timer, CLOCK_MONOTONIC, P11_PROBE_INTERVAL_USEC, 0,
		                               on_p11_probe, d);
	else if ((r = sd_event_source_set_time_relative(a->p11_timer, P11_PROBE_INTERVAL_USEC)) >= 0)
		r = sd_event_source_set_enabled(a->p11_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		ts_log(TS_LOG_WARNING, "autolock: cannot watch PKCS#11 tokens: %s", strerror(-r));
}

void ts_autolock_share(ts_vault_entry *e, const char *protector_type)
{
	/* Removal is watched as for an unlock (any_unlocked_by counts kept shares), and forgets every share. */
	if (e->d->autolock && strcmp(protector_type, "fido2") == 0) {
		probe_arm(e->d);
		hidraw_remember(e->d->autolock);
	}
	if (e->d->autolock && strcmp(protector_type, "pkcs11") == 0)
		p11_arm(e->d);
}

void ts_autolock_unlocked(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p)
{
	const char *protector_type;

	if (!p)
		return;
	protector_type = p->type;
	snprintf(e->unlocked_by, sizeof(e->unlocked_by), "%s", protector_type);
	if (e->d->autolock && strcmp(protector_type, "fido2") == 0) {
		probe_arm(e->d);
		hidraw_remember(e->d->autolock);
	}
	if (e->d->autolock && strcmp(protector_type, "pkcs11") == 0)
		p11_arm(e->d);
}

/* ---- setup --------------------------------------------------------------------------------- */

int ts_autolock_start(ts_daemon *d)
{
	ts_autolock *a;
	int r;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	d->autolock = a;
	if ((r = sd_bus_match_signal(d->bus, &a->owner_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	                             "org.freedesktop.DBus", "NameOwnerChanged", on_owner_changed, a)) < 0 ||
	    (r = sd_bus_call_method_async(d->bus, &a->owner_query, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	                                  "org.freedesktop.DBus", "GetNameOwner", on_owner_reply, a, "s",
	                                  LOGIND_NAME)) < 0 ||
	    /* The sender match lets the bus drop most impostors; from_logind() checks every one. */
	    (r = sd_bus_match_signal(d->bus, &a->sleep_slot, LOGIND_NAME, LOGIND_PATH, LOGIND_MANAGER,
	                             "PrepareForSleep", on_prepare_for_sleep, d)) < 0 ||
	    (r = sd_bus_match_signal(d->bus, &a->lock_slot, LOGIND_NAME, NULL, LOGIND_SESSION, "Lock",
	                             on_session_lock, d)) < 0)
		return r;
	/* Without udev (containers, tests) there are no hidraw events to wait for: not an error. */
	if ((r = sd_device_monitor_new(&a->monitor)) < 0 ||
	    (r = sd_device_monitor_filter_add_match_subsystem_devtype(a->monitor, "hidraw", NULL)) < 0 ||
	    (r = sd_device_monitor_attach_event(a->monitor, d->event)) < 0 ||
	    (r = sd_device_monitor_start(a->monitor, on_device, d)) < 0) {
		ts_log(TS_LOG_INFO, "autolock: no device monitor (%s): FIDO2 keys unplugged will not lock vaults",
		       strerror(-r));
		a->monitor = sd_device_monitor_unref(a->monitor);
	}
	if ((r = sd_event_add_inotify(d->event, &a->dev_watch, "/dev", IN_DELETE | IN_ONLYDIR, on_dev_delete, d)) < 0)
		ts_log(TS_LOG_INFO, "autolock: cannot watch /dev (%s)", strerror(-r));
	return 0;
}

void ts_autolock_stop(ts_daemon *d)
{
	ts_autolock *a = d->autolock;

	if (!a)
		return;
	sd_bus_slot_unref(a->owner_slot);
	sd_bus_slot_unref(a->owner_query);
	sd_bus_slot_unref(a->sleep_slot);
	sd_bus_slot_unref(a->lock_slot);
	sd_device_monitor_unref(a->monitor);
	sd_event_source_disable_unref(a->dev_watch);
	sd_event_source_disable_unref(a->probe_timer);
	sd_event_source_disable_unref(a->p11_timer);
	if (round_now) {
		ts_remote_job_cancel(round_now->remote);
		free(round_now);
		round_now = NULL;
	}
	free(a->logind_owner);
	free(a);
	d->autolock = NULL;
}
