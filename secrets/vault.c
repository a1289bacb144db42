/* vault.c — following the tokenseal vault: its lock signals, its state at start, and Unlock with a PIN. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client-internal.h"
#include "secrets.h"

void ss_vault_set_locked(ss_service *s, int locked)
{
	if (locked) {
		s->vault_locked = 1;
		ss_service_lock_all(s);
	} else if (s->vault_locked) {
		/*
		 * Only the vault's unlocking opens collections. tokensealed sends Locked=false
		 * with every change of its properties (rotate, enroll, ...): a collection a
		 * client locked stays locked through those.
		 */
		s->vault_locked = 0;
		ss_service_open_all(s);
	}
}

/* PropertiesChanged of our vault (tokensealed sends it to subscribers only). */
/*
 * Is m tokensealed's own? Anyone on the system bus may send a signal with
 * the vault's path: only its owner's count. On a direct connection (the
 * private socket) the only peer is tokensealed.
 */
static int from_daemon(ss_service *s, sd_bus_message *m)
{
	const char *sender = sd_bus_message_get_sender(m);

	if (sd_bus_is_bus_client(s->ts->bus) <= 0)
		return 1;
	return sender && s->daemon_name && strcmp(sender, s->daemon_name) == 0;
}

/* Who owns tokensealed's name now (NULL: nobody). */
static void set_daemon_name(ss_service *s, const char *unique)
{
	free(s->daemon_name);
	s->daemon_name = unique && *unique ? strdup(unique) : NULL;
}

static void look_up_daemon_name(ss_service *s)
{
	sd_bus_message *reply = NULL;
	const char *owner;

	if (sd_bus_is_bus_client(s->ts->bus) > 0 &&
	    sd_bus_call_method(s->ts->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
	                       "GetNameOwner", NULL, &reply, "s", TS_BUS_NAME) >= 0 &&
	    sd_bus_message_read(reply, "s", &owner) >= 0)
		set_daemon_name(s, owner);
	sd_bus_message_unref(reply);
}

static int on_properties(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const char *iface, *name;
	int r, locked = -1;

	if (!from_daemon(s, m))
		return 0;
	if (sd_bus_message_read(m, "s", &iface) < 0 || strcmp(iface, TS_VAULT_IFACE) != 0)
		return 0;
	if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
		return 0;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if (sd_bus_message_read(m, "s", &name) < 0)
			return 0;
		if (strcmp(name, "Locked") == 0) {
			int b;

			if (sd_bus_message_read(m, "v", "b", &b) < 0)
				return 0;
			locked = !!b;
		} else if (sd_bus_message_skip(m, "v") < 0)
			return 0;
		if (sd_bus_message_exit_container(m) < 0)
			return 0;
	}
	if (locked >= 0)
		ss_vault_set_locked(s, locked);
	return 0;
}

static int read_state(ss_service *s)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int locked = 1, r;

	r = sd_bus_get_property_trivial(s->ts->bus, TS_BUS_NAME, s->vault_path, TS_VAULT_IFACE, "Locked", &e, 'b', &locked);
	if (r < 0 && sd_bus_error_has_name(&e, "org.freedesktop.DBus.Error.UnknownObject"))
		ss_log("vault %s: no such vault of yours; create it with `tokenseal create` (collections stay locked until then)",
		       s->vault ? s->vault : "(yours)");
	else if (r < 0)
		ss_log("vault %s: %s", s->vault ? s->vault : "(yours)", e.message ? e.message : strerror(-r));
	sd_bus_error_free(&e);
	return r < 0 ? 1 : !!locked;
}

static int subscribe(ss_service *s)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_call_method(s->ts->bus, TS_BUS_NAME, TS_MANAGER_PATH, TS_MANAGER_IFACE, "Subscribe", &e, NULL, NULL);
	if (r < 0)
		ss_log("cannot subscribe to the vault's signals: %s", e.message ? e.message : strerror(-r));
	sd_bus_error_free(&e);
	return r;
}

static int on_state(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	int locked = 1;

	if (!sd_bus_message_is_method_error(m, NULL) && sd_bus_message_read(m, "v", "b", &locked) >= 0)
		ss_vault_set_locked(userdata, !!locked);
	return 0;
}

static int on_subscribed(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const sd_bus_error *err = sd_bus_message_get_error(m);

	if (err) {
		ss_log("cannot subscribe to the vault's signals: %s", err->message ? err->message : err->name);
		return 0;
	}
	/* Subscribed first, then the state: no change falls between the two. */
	if (sd_bus_call_method_async(s->ts->bus, NULL, TS_BUS_NAME, s->vault_path, "org.freedesktop.DBus.Properties", "Get",
	                             on_state, s, "ss", TS_VAULT_IFACE, "Locked") < 0)
		ss_log("cannot ask for the vault's state");
	return 0;
}

/* tokensealed came or went: either way the vault starts locked; subscribe again (without waiting) if it is back. */
static int on_owner(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const char *name, *old, *new;

	if (sd_bus_message_read(m, "sss", &name, &old, &new) < 0 || strcmp(name, TS_BUS_NAME) != 0)
		return 0;
	set_daemon_name(s, new);
	ss_vault_set_locked(s, 1);
	if (*new && sd_bus_call_method_async(s->ts->bus, NULL, TS_BUS_NAME, TS_MANAGER_PATH, TS_MANAGER_IFACE, "Subscribe",
	                                     on_subscribed, s, NULL) < 0)
		ss_log("cannot subscribe to the vault's signals");
	return 0;
}

static int on_touch(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	if (!from_daemon(userdata, m))
		return 0;
	ss_prompts_touch(userdata);
	return 0;
}

/*
 * The connection to tokensealed is gone (the bus restarted, or we were cut
 * off): no lock signal can reach us any more, so nothing stays open. Every
 * collection locks and the provider exits with a failure; its unit (or the
 * next client, through activation) starts it again.
 */
static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;

	ss_log("lost the connection to tokensealed: every collection locked; exiting");
	ss_vault_set_locked(s, 1);
	return sd_event_exit(s->event, 1);
}

int ss_vault_start(ss_service *s)
{
	int r;

	if ((r = ts_client_vault_path(s->ts, s->vault, &s->vault_path)) < 0) {
		ss_log("vault %s: %s", s->vault ? s->vault : "(yours)", ts_client_last_error(s->ts));
		return r;
	}
	/*
	 * Opening a collection asks tokensealed for its key synchronously (one quick round trip, tokensealed
	 * never holds a data call up); a tokensealed that hangs must not hold our clients for sd-bus's 25 s.
	 * Unlock, which may wait for a person, is asynchronous with its own time limit.
	 */
	if ((r = sd_bus_set_method_call_timeout(s->ts->bus, SS_VAULT_CALL_TIMEOUT_USEC)) < 0 ||
	    (r = sd_bus_attach_event(s->ts->bus, s->event, 0)) < 0)
		return r;
	if ((r = sd_bus_match_signal(s->ts->bus, NULL, NULL, s->vault_path, "org.freedesktop.DBus.Properties",
	                             "PropertiesChanged", on_properties, s)) < 0 ||
	    (r = sd_bus_match_signal(s->ts->bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
	                             "Disconnected", on_disconnected, s)) < 0)
		return r;
	if ((r = sd_bus_match_signal(s->ts->bus, NULL, NULL, s->vault_path, TS_VAULT_IFACE, "TouchRequested", on_touch, s)) < 0)
		return r;
	if ((r = sd_bus_match_signal(s->ts->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
	                             "org.freedesktop.DBus", "NameOwnerChanged", on_owner, s)) < 0)
		return r;
	/* At start (before serving anyone) once, synchronously: who tokensealed is, subscribed, then the state. */
	look_up_daemon_name(s);
	(void)subscribe(s);
	s->vault_locked = read_state(s);
	if (!s->vault_locked)
		ss_service_open_all(s);
	return 0;
}

struct unlock_call {
	ss_service *s;
	ss_vault_unlock_cb cb;
	void *ud;
};

static int on_unlock_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct unlock_call *u = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	const char *id = NULL;
	uint32_t needed = 0;
	int r = 0;

	if (e)
		r = -ts_error_from_dbus_name(e->name);
	else if (sd_bus_message_read(m, "su", &id, &needed) < 0)
		r = -TS_E_FAILED;
	u->cb(u->s, r, needed, e ? e->message : NULL, u->ud);
	return 0;
}

int ss_vault_unlock_async(ss_service *s, const uint8_t *pin, size_t pin_len, ss_vault_unlock_cb cb, void *ud,
                          sd_bus_slot **ret_slot)
{
	_ss_cleanup_msg_ sd_bus_message *m = NULL;
	struct unlock_call *u;
	sd_bus_slot *slot = NULL;
	int fd, r;

	/* The PIN goes as a pipe, as the CLI sends it, never in a message. */
	if ((fd = ts_client_secret_pipe(s->ts, pin, pin_len)) < 0)
		return fd;
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		close(fd);
		return -ENOMEM;
	}
	u->s = s;
	u->cb = cb;
	u->ud = ud;
	if ((r = sd_bus_message_new_method_call(s->ts->bus, &m, TS_BUS_NAME, s->vault_path, TS_VAULT_IFACE, "Unlock")) < 0 ||
	    (r = sd_bus_message_append(m, "sh", "", fd)) < 0 || (r = sd_bus_message_append(m, "a{ss}", 1, "need_user", "yes")) < 0 ||
	    (r = sd_bus_call_async(s->ts->bus, &slot, m, on_unlock_reply, u, TS_CLIENT_SLOW_TIMEOUT_USEC)) < 0) {
		close(fd);
		free(u);
		return r;
	}
	close(fd);
	/* u goes with the slot: after the reply, or when the caller drops the slot (a dismissed prompt). */
	sd_bus_slot_set_destroy_callback(slot, free);
	*ret_slot = slot;
	return 0;
}
