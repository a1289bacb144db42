/* authorize.c — who may call a Vault method or read its properties, decided in one place. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/blob.h"
#include "core/recovery.h"
#include "core/text.h"
#include "protectors/remote.h"

#include "bus/authorize.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/polkit.h"
#include "bus/state.h"

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
int ts_vault_authorize(sd_bus_message *m, ts_vault_entry *e, const char *what, ts_caller *caller,
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

int ts_vault_require_unlocked(ts_vault_entry *e, sd_bus_error *error)
{
	if (ts_vault_is_locked(e->vault)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "vault '%s' is locked (%s)", e->vault->name,
		         e->lock_reason[0] ? e->lock_reason : "locked");
		return ts_bus_error(error, -TS_E_LOCKED, msg);
	}
	return 0;
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

/* Escrow and re-keying change who can open the vault: the owner's or root's decision only, never polkit's. */
/* The owner (or root), the vault unlocked: 0, or an error set. No audit record of the attempt yet. */
int ts_vault_authorize_owner(sd_bus_message *m, ts_vault_entry *e, const char *what, ts_caller *caller, sd_bus_error *error)
{
	int r;

	if ((r = ts_caller_get(m, caller)) < 0)
		return ts_bus_error(error, r, NULL);
	if (e == e->d->ghost || !ts_caller_may_use(caller, e->vault)) {
		(void)ts_audit(what, e->vault->name, e->vault->owner_uid, caller, NULL, -TS_E_ACCESS_DENIED);
		return ts_vault_unknown(m, error);
	}
	if (ts_vault_is_locked(e->vault))
		return ts_bus_error(error, -TS_E_LOCKED, "unlock the vault first");
	return 0;
}
