/* handout.c — save first, then hand out a minted secret, then drop what it replaces (see handout.h). */
#include <stdio.h>
#include <string.h>

#include "bus/handout.h"
#include "bus/daemon.h"
#include "bus/log.h"
#include "bus/secretfd.h"
#include "bus/state.h"

int ts_handout_secret(ts_vault_entry *e, const char *new_id, const char *old_id, int fd, const char *secret,
                      size_t len, char *msg, size_t msglen)
{
	char nid[TS_PROTECTOR_ID_MAX], oid[TS_PROTECTOR_ID_MAX];
	int r, r2;

	/* Copies: a failed save reloads the vault, and ids pointing into its records would go with it. */
	snprintf(nid, sizeof(nid), "%s", new_id);
	snprintf(oid, sizeof(oid), "%s", old_id ? old_id : "");
	if ((r = ts_daemon_persist(e)) < 0) {
		snprintf(msg, msglen, "cannot save the vault: nothing changed, no secret was written");
		return r;
	}
	if ((r = ts_secretfd_write(fd, secret, len)) < 0) {
		if ((r2 = ts_vault_remove_protector(e->vault, nid)) < 0 || (r2 = ts_daemon_persist(e)) < 0) {
			/* Harmless but worth saying: a protector whose secret nobody holds opens nothing. */
			ts_log(TS_LOG_WARNING, "vault=%s: protector %s, whose secret was not delivered, stays in the "
			       "file (%s): revoke it", e->vault->name, nid, ts_strerror(r2));
			snprintf(msg, msglen, "cannot write the new secret to the fd; protector %s, whose secret was not "
			         "delivered, could not be taken out again: revoke it", nid);
		} else
			snprintf(msg, msglen, "cannot write the new secret to the fd; nothing changed");
		return r;
	}
	if (!oid[0])
		return 0;
	/* Both open the file now; a failed save here leaves both, never neither. */
	if ((r = ts_vault_remove_protector(e->vault, oid)) < 0 || (r = ts_daemon_persist(e)) < 0) {
		snprintf(msg, msglen, "protector %s is saved and its secret was written to the fd, but %s could not be "
		         "removed and still opens the vault: remove it once the state directory is writable", nid, oid);
		return r;
	}
	return 0;
}
