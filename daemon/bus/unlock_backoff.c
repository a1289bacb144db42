/* unlock_backoff.c — Unlock's recovery-key back-off: an attempt counted (and saved) before its check, settled after. */
#include <stdio.h>
#include <string.h>

#include "bus/unlock_backoff.h"
#include "bus/daemon.h"
#include "bus/policy_enforce.h"
#include "core/clock.h"

/*
 * A software secret (a recovery key) counts against the back-off when its
 * check starts, not when it ends: parallel guesses cannot all pass
 * ts_backoff_check before the first is counted, and a daemon killed
 * meanwhile has counted it already (the side file is written first). The
 * source's wait is checked here, so it holds back recovery keys only: a
 * token counts its own PIN.
 *
 * When the count cannot be written (a full or read-only disk), a restart
 * would forget it. A source with wrong secrets already counted is then
 * refused with nothing tried; one with a clean record still gets its try
 * (the owner on a full disk), so a restart gives back at most one guess per
 * source. Clean is judged where ts_backoff_check looks (before->failures:
 * the shared counter for a source without its own).
 */
int ts_unlock_backoff_reserve(ts_vault_entry *e, const char *source, ts_backoff_source *before, char *why,
                              size_t why_len)
{
	const ts_policy *pol = ts_enforce_policy();
	uint64_t now = ts_now_usec(), wait;
	ts_backoff *b;
	int r;

	if (ts_backoff_check(ts_daemon_backoff(e), source, now, ts_policy_recovery_max_backoff(pol), &wait) < 0) {
		snprintf(why, why_len, "too many failed unlocks from here; retry in %llu s", (unsigned long long)wait);
		return -TS_E_BUSY;
	}
	/* Not counted, not tried. */
	if ((b = ts_daemon_backoff_mut(e)) == NULL) {
		snprintf(why, why_len, "out of memory for the back-off count: no secret was tried");
		return -TS_E_NOMEM;
	}
	ts_backoff_reserve(b, source, now, ts_policy_recovery_attempts(pol), ts_policy_recovery_max_backoff(pol), before);
	if ((r = ts_daemon_save_backoff(e)) < 0 && before->failures > 0) {
		ts_backoff_restore(b, before);
		snprintf(why, why_len, "the back-off cannot write this attempt down (%s: is the disk full or read-only?) "
		         "and wrong keys from here are on record: no secret was tried", ts_strerror(r));
		return r;
	}
	return 0;
}

/*
 * Only a recovery key that opens the vault starts its source's count again:
 * a share, a security key's PIN or a TPM proves nothing about the key being
 * guessed (on a 2-of-2 vault, the holder of one share could otherwise wipe
 * the count between guesses at the other). Otherwise the attempt is given
 * back, on the counter it went to (a source counted on the shared counter
 * never resets it: others' guesses are there too). Done in memory at once;
 * the save after the reply (a write, two fsyncs) only follows: a crash that
 * loses it leaves the owner counted attempts, and gives nobody a guess.
 */
int ts_unlock_backoff_settle(ts_vault_entry *e, const char *source, const ts_backoff_source *before, int reset)
{
	if (reset && strcmp(before->source, source) == 0)
		return ts_backoff_succeeded(e->backoff, source);
	ts_backoff_restore(e->backoff, before);
	return 1;
}
