/* autolock.h — locking when the user or the token goes away (logind, token removal). */
#ifndef TS_BUS_AUTOLOCK_H
#define TS_BUS_AUTOLOCK_H

#include "bus/state.h"

/*
 * Lock vaults when the user or the token goes away: logind's PrepareForSleep
 * (reason "suspend") and Session.Lock ("screen-lock"), trusted only from the
 * owner of org.freedesktop.login1; FIDO2 token removal ("token-removed"):
 * hidraw removal seen through sd-device events and inotify on /dev, and for unix: test devices a
 * once-a-second connect probe. Call after the bus is attached to d->event.
 */
int ts_autolock_start(ts_daemon *d);
/* A listener of the unlocked event (ts_daemon_listen_unlocked): remember p's type and watch its token. */
void ts_autolock_unlocked(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p);
/* A share of a k-of-n vault was given with a protector of this type: watch its token, forget shares when it goes. */
void ts_autolock_share(ts_vault_entry *e, const char *protector_type);
void ts_autolock_stop(ts_daemon *d);

#endif
