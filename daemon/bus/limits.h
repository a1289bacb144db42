/* limits.h — how much the daemon does at once for one vault and one uid: the [limits] of the policy. */
#ifndef TS_LIMITS_H
#define TS_LIMITS_H

#include <stdint.h>

#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"

/*
 * A job in flight (an Unlock; an AddProtector, RevokeAndRekey,
 * RotateRecoveryKey or ProbeProtectors round waiting for the token helper),
 * counted against its vault and its caller's uid until
 * ts_limits_end. Opaque.
 */
typedef struct ts_limit_job ts_limit_job;

/*
 * An Unlock of e by caller starts. One Unlock per vault at a time, whoever
 * calls (root too): another gets Busy at once, not a place in a queue. And
 * at most [limits] jobs-per-uid jobs of one caller uid (root: no cap, a PAM
 * module at a login prompt asks for every user): LimitExceeded. 0 and *ret
 * (free with ts_limits_end), or a negative errno with error set.
 */
int ts_limits_unlock_begin(ts_vault_entry *e, const ts_caller *caller, ts_limit_job **ret, sd_bus_error *error);

/*
 * Another call of caller waits for the helper (AddProtector, a ProbeProtectors
 * round): the uid cap only. As ts_limits_unlock_begin.
 */
int ts_limits_job_begin(ts_vault_entry *e, const ts_caller *caller, ts_limit_job **ret, sd_bus_error *error);

/* The same for a caller that sets its own error (RevokeAndRekey, RotateRecoveryKey): 0, or a TS_E_* and msg. */
int ts_limits_job_try(ts_vault_entry *e, const ts_caller *caller, ts_limit_job **ret, char *msg, size_t msglen);

/* The job has ended (replied or dropped). NULL is a no-op. */
void ts_limits_end(ts_limit_job *j);

/*
 * May owner have one more vault? 0, or -TS_E_LIMIT with msg set when it has
 * [limits] vaults-per-uid already (files that could not be loaded do not
 * count: they are not in memory).
 */
int ts_limits_vault_create(ts_daemon *d, uint32_t owner, char *msg, size_t msglen);

#endif
