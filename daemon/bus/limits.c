/* limits.c — the accounting behind limits.h: Unlocks in flight per vault, jobs per uid, vaults per owner. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus/limits.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/state.h"

struct ts_limit_job {
	struct ts_limit_job *next, *prev;
	ts_vault_entry *e;              /* compared, never followed */
	uid_t uid;
	int unlock;                     /* an Unlock (the one of its vault) */
};

static ts_limit_job *jobs;

static int busy_unlock(const ts_vault_entry *e)
{
	for (const ts_limit_job *j = jobs; j; j = j->next)
		if (j->unlock && j->e == e)
			return 1;
	return 0;
}

static unsigned jobs_of(uid_t uid)
{
	unsigned n = 0;

	for (const ts_limit_job *j = jobs; j; j = j->next)
		n += j->uid == uid;
	return n;
}

static int begin_msg(ts_vault_entry *e, const ts_caller *caller, int unlock, ts_limit_job **ret, char *msg,
                     size_t msglen)
{
	unsigned cap = ts_policy_limit_jobs(ts_enforce_policy());
	ts_limit_job *j;

	if (unlock && busy_unlock(e)) {
		snprintf(msg, msglen, "an Unlock of vault '%s' is in progress; try again when it has answered",
		         e->vault->name);
		return -TS_E_BUSY;
	}
	if (caller->uid != 0 && jobs_of(caller->uid) >= cap) {
		snprintf(msg, msglen, "uid %lu has %u calls waiting for the token helper (Unlock, AddProtector, "
		         "RevokeAndRekey, RotateRecoveryKey, ProbeProtectors), the most [limits] jobs-per-uid allows",
		         (unsigned long)caller->uid, cap);
		return -TS_E_LIMIT;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(msg, msglen, "out of memory");
		return -TS_E_NOMEM;
	}
	j->e = e;
	j->uid = caller->uid;
	j->unlock = unlock;
	j->next = jobs;
	if (jobs)
		jobs->prev = j;
	jobs = j;
	*ret = j;
	return 0;
}

static int begin(ts_vault_entry *e, const ts_caller *caller, int unlock, ts_limit_job **ret, sd_bus_error *error)
{
	char msg[256];
	int r;

	if ((r = begin_msg(e, caller, unlock, ret, msg, sizeof(msg))) < 0)
		return ts_bus_error(error, r, msg);
	return 0;
}

int ts_limits_job_try(ts_vault_entry *e, const ts_caller *caller, ts_limit_job **ret, char *msg, size_t msglen)
{
	return begin_msg(e, caller, 0, ret, msg, msglen);
}

int ts_limits_unlock_begin(ts_vault_entry *e, const ts_caller *caller, ts_limit_job **ret, sd_bus_error *error)
{
	return begin(e, caller, 1, ret, error);
}

int ts_limits_job_begin(ts_vault_entry *e, const ts_caller *caller, ts_limit_job **ret, sd_bus_error *error)
{
	return begin(e, caller, 0, ret, error);
}

void ts_limits_end(ts_limit_job *j)
{
	if (!j)
		return;
	if (j->prev)
		j->prev->next = j->next;
	else
		jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	free(j);
}

int ts_limits_vault_create(ts_daemon *d, uint32_t owner, char *msg, size_t msglen)
{
	unsigned cap = ts_policy_limit_vaults(ts_enforce_policy()), n = 0;

	for (const ts_vault_entry *e = d->vaults; e; e = e->next)
		n += e->vault->owner_uid == owner;
	if (n < cap)
		return 0;
	snprintf(msg, msglen, "uid %lu has %u vaults, the most [limits] vaults-per-uid allows",
	         (unsigned long)owner, n);
	return -TS_E_LIMIT;
}
