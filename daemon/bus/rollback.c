/* rollback.c — no silent rollback: each vault file is checked against its generation anchor at load, and accepted only by root. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anchor.h"
#include "store.h"
#include "bus/rollback.h"
#include "bus/audit.h"
#include "bus/log.h"
#include "bus/nvcounter.h"
#include "bus/state.h"
#include "core/text.h"

#define ACCEPT_MAX 16
#define REFUSED_MAX 256

/* --accept-rollback OWNER:NAME:GENERATION, as given at start. */
static struct {
	uint32_t owner;
	char name[TS_VAULT_NAME_MAX + 1];
	uint64_t generation;
} accepted[ACCEPT_MAX];
static size_t n_accepted;

/* Vaults refused at load, so their owner's GetVault can say why instead of NoSuchVault. */
static struct {
	uint32_t owner;
	char name[TS_VAULT_NAME_MAX + 1];
	uint64_t file_gen, anchor_gen;
	int by_counter;             /* refused by its TPM counter, not by the anchor */
} refused[REFUSED_MAX];
static size_t n_refused;

int ts_rollback_accept(const char *spec)
{
	const char *c1, *c2;
	uint64_t owner, gen;
	size_t nl;

	if (!spec || (c1 = strchr(spec, ':')) == NULL || (c2 = strrchr(spec, ':')) == c1)
		return -TS_E_INVALID_ARGS;
	nl = (size_t)(c2 - c1 - 1);
	if (ts_parse_uint(spec, (size_t)(c1 - spec), UINT32_MAX - 1, &owner) < 0 ||
	    ts_parse_uint(c2 + 1, strlen(c2 + 1), UINT64_MAX, &gen) < 0 || gen == 0 || nl == 0 || nl > TS_VAULT_NAME_MAX)
		return -TS_E_INVALID_ARGS;
	if (n_accepted == ACCEPT_MAX)
		return -TS_E_LIMIT;
	memcpy(accepted[n_accepted].name, c1 + 1, nl);
	accepted[n_accepted].name[nl] = '\0';
	if (!ts_vault_name_valid(accepted[n_accepted].name))
		return -TS_E_INVALID_ARGS;
	accepted[n_accepted].owner = (uint32_t)owner;
	accepted[n_accepted].generation = gen;
	n_accepted++;
	return 0;
}

static int is_accepted(const ts_vault *v)
{
	for (size_t i = 0; i < n_accepted; i++)
		if (accepted[i].owner == v->owner_uid && accepted[i].generation == v->generation &&
		    strcmp(accepted[i].name, v->name) == 0)
			return 1;
	return 0;
}

static void remember_refused(const ts_vault *v, uint64_t anchor, int by_counter)
{
	if (n_refused == REFUSED_MAX)
		return;
	refused[n_refused].owner = v->owner_uid;
	snprintf(refused[n_refused].name, sizeof(refused[0].name), "%s", v->name);
	refused[n_refused].file_gen = v->generation;
	refused[n_refused].anchor_gen = anchor;
	refused[n_refused].by_counter = by_counter;
	n_refused++;
}

int ts_rollback_refused(uint32_t owner, const char *name, char *msg, size_t cap)
{
	for (size_t i = 0; i < n_refused; i++)
		if (refused[i].owner == owner && strcmp(refused[i].name, name) == 0) {
			if (refused[i].by_counter) {
				snprintf(msg, cap, "vault '%s': its file (generation %" PRIu64 ") does not match its TPM "
				         "counter: put back from an older copy, so it is not served; an administrator may "
				         "accept it (tokensealed --accept-rollback)", name, refused[i].file_gen);
				return 1;
			}
			snprintf(msg, cap, "vault '%s': its file is generation %" PRIu64 ", older than the last one "
			         "written (%" PRIu64 "): put back from an older copy, so it is not served; an "
			         "administrator may accept it (tokensealed --accept-rollback)", name, refused[i].file_gen,
			         refused[i].anchor_gen);
			return 1;
		}
	return 0;
}

/* The anchor lets the file through: its TPM counter, if it has one, must too (root can restore the anchor). */
static int counter_check(ts_daemon *d, const ts_vault *v, char *why, size_t cap)
{
	int r;

	if ((r = ts_nvcounter_check(d, v, is_accepted(v), why, cap)) < 0)
		remember_refused(v, v->generation, 1);
	return r;
}

int ts_rollback_check(ts_daemon *d, const ts_vault *v, char *why, size_t cap)
{
	static const char *const names[] = { "file_generation", "anchor_generation" };
	uint64_t anchor = 0, values[2];
	int r;

	r = ts_anchor_load(d->state_dir, v->id, &anchor);
	if (r < 0 && r != -TS_E_NO_SUCH_VAULT && r != -TS_E_CORRUPT) {
		/*
		 * The anchor cannot tell: serve (a disk error must not lock
		 * everyone out), but say so. A TPM counter, if the vault has one,
		 * still must let the file through: an anchor made unreadable (a
		 * symlink, a file where its directory was) must not switch it off.
		 */
		ts_log(TS_LOG_ERR, "event=load vault=%s: cannot read its generation anchor (%s); served %s",
		       v->name, ts_strerror(r), v->nv_handle ? "if its TPM counter agrees" : "unchecked");
		return counter_check(d, v, why, cap);
	}
	if (r == -TS_E_CORRUPT)
		ts_log(TS_LOG_WARNING, "event=load vault=%s: its generation anchor is not one (corrupt); replaced by "
		       "the file's generation %" PRIu64, v->name, v->generation);
	if (r < 0 || v->generation >= anchor) {
		/*
		 * No anchor yet (a vault of an earlier version, or the daemon died
		 * between the vault write and the anchor write), or the file is
		 * ahead of it: the file is the newest we know, and the anchor
		 * catches up now, so the copy it replaced cannot come back.
		 */
		if ((r < 0 || v->generation > anchor) && (r = ts_anchor_save(d->state_dir, v, v->generation)) < 0)
			ts_log(TS_LOG_WARNING, "event=load vault=%s: cannot write its generation anchor: %s", v->name,
			       ts_strerror(r));
		return counter_check(d, v, why, cap);
	}
	values[0] = v->generation;
	values[1] = anchor;
	if (is_accepted(v)) {
		/* Root said so: the anchor comes down to this file, and the decision is on record. */
		(void)ts_audit_numbers("rollback-accept", v->name, v->owner_uid, 0, names, values, 2);
		if ((r = ts_anchor_save(d->state_dir, v, v->generation)) < 0)
			ts_log(TS_LOG_WARNING, "event=load vault=%s: accepted, but cannot lower its generation anchor (%s): "
			       "the next start refuses it again unless it is saved first", v->name, ts_strerror(r));
		return counter_check(d, v, why, cap);
	}
	(void)ts_audit_numbers("rollback", v->name, v->owner_uid, -TS_E_ROLLBACK, names, values, 2);
	remember_refused(v, anchor, 0);
	snprintf(why, cap, "file generation %" PRIu64 " is older than the last one written (%" PRIu64 "): put back "
	         "from an older copy? To serve it anyway: tokensealed --accept-rollback %" PRIu32 ":%s:%" PRIu64,
	         v->generation, anchor, v->owner_uid, v->name, v->generation);
	return -TS_E_ROLLBACK;
}

void ts_rollback_drop_backup(ts_vault_entry *e, const char *why)
{
	int r;

	if ((r = ts_store_remove_backup(e->dir, e->vault->name)) < 0)
		ts_log(TS_LOG_WARNING, "vault=%s: cannot remove %s/%s.vault.bak after the %s (%s): it holds the previous "
		       "generation; remove it by hand", e->vault->name, e->dir, e->vault->name, why, ts_strerror(r));
}

void ts_rollback_saved(ts_vault_entry *e)
{
	int r;

	ts_nvcounter_saved(e);
	if ((r = ts_anchor_save(e->d->state_dir, e->vault, e->vault->generation)) < 0)
		ts_log(TS_LOG_WARNING, "vault=%s: saved, but its generation anchor could not follow (%s); it catches up "
		       "at the next start", e->vault->name, ts_strerror(r));
}
