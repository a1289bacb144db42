/* escrow_methods.c — Vault.SetEscrow and the EscrowChanged signal: escrow of the vault secret to officers' keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/escrow_methods.h"
#include "bus/audit.h"
#include "bus/authorize.h"
#include "bus/daemon.h"
#include "bus/escrow_ready.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/signals.h"
#include "bus/state.h"
#include "core/escrow.h"

static int build_escrow_changed(sd_bus_message *sig, void *userdata)
{
	ts_vault_entry *e = userdata;
	char fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
	int r;

	if ((r = sd_bus_message_open_container(sig, 'a', "s")) < 0)
		return r;
	for (size_t i = 0; i < e->vault->n_escrow; i++) {
		ts_escrow_key_fingerprint_text(e->vault->escrow[i].pubkey, e->vault->escrow[i].pubkey_len, fp);
		if ((r = sd_bus_message_append(sig, "s", fp)) < 0)
			return r;
	}
	return sd_bus_message_close_container(sig);
}

int ts_escrow_emit_changed(ts_vault_entry *e)
{
	return ts_signals_emit(e->d, e->vault->owner_uid, e->path, TS_VAULT_IFACE, "EscrowChanged",
	                       build_escrow_changed, e);
}

/* The recipients' key bytes of one SetEscrow call, freed on every return. */
static void free_keys(uint8_t **keys)
{
	free(*keys);
}

/*
 * SetEscrow(as recipients, u threshold). Each entry is "[LABEL ]PUBLIC-KEY-TEXT":
 * an X25519 officer key (tokenseal-escrow-pub:v1:) or an HSM's RSA key
 * (tokenseal-escrow-rsa:v1:); an empty list removes escrow. The policy's
 * required recipients, when it names any, are the only acceptable set.
 * An RSA recipient's box key is wrapped by a helper: when none is ready the
 * call is dispatched again once it is (escrow_ready.h).
 */
int ts_escrow_method_set_escrow(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	ts_escrow_recipient rec[TS_VAULT_MAX_ESCROW];
	__attribute__((cleanup(free_keys))) uint8_t *keys = NULL;
	char labels[TS_VAULT_MAX_ESCROW][TS_VAULT_ESCROW_LABEL_MAX];
	char msg[TS_POLICY_MSG_MAX] = "";
	const char *s;
	size_t n = 0;
	uint32_t k;
	ts_caller caller;
	int r, resumed = ts_escrow_ready_resumed(m);

	if ((keys = malloc(TS_VAULT_MAX_ESCROW * TS_ESCROW_KEY_MAX)) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	if ((r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
		return ts_bus_bad_args(error, r);
	while ((r = sd_bus_message_read(m, "s", &s)) > 0) {
		const char *sp = strchr(s, ' ');
		const char *key = sp ? sp + 1 : s;
		size_t label_len = sp ? (size_t)(sp - s) : 0;

		if (n >= TS_VAULT_MAX_ESCROW)
			return ts_bus_error(error, -TS_E_LIMIT, "at most 16 escrow recipients");
		if (label_len >= TS_VAULT_ESCROW_LABEL_MAX)
			return ts_bus_error(error, -TS_E_INVALID_ARGS, "escrow label longer than 63 bytes");
		memcpy(labels[n], s, label_len);
		labels[n][label_len] = '\0';
		if (ts_escrow_key_from_text(key, strlen(key), &rec[n].type, keys + n * TS_ESCROW_KEY_MAX,
		                            &rec[n].pubkey_len) < 0) {
			snprintf(msg, sizeof(msg), "recipient %zu: not a tokenseal-escrow-pub:v1: key nor a "
			         "tokenseal-escrow-rsa:v1: RSA key of 2048..4096 bits", n + 1);
			return ts_bus_error(error, -TS_E_INVALID_ARGS, msg);
		}
		rec[n].label = labels[n];
		rec[n].pubkey = keys + n * TS_ESCROW_KEY_MAX;
		n++;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_read(m, "u", &k)) < 0)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, NULL);
	/* Dispatched again for its box keys: the attempt is on record already. */
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0 ||
	    (!resumed && (r = ts_audit_gate("escrow", e->vault->name, e->vault->owner_uid, &caller, NULL, error)) < 0))
		return r;
	if (n > 0 && (k < 1 || k > n)) {
		r = -TS_E_INVALID_ARGS;
		snprintf(msg, sizeof(msg), "threshold must be 1..%zu", n);
		goto out;
	}
	if ((r = ts_escrow_ready(e->d, m, &caller, rec, n, msg, sizeof(msg))) <= 0) {
		if (r == 0)
			return 1;   /* answered from the next dispatch */
		goto out;
	}
	if ((r = ts_vault_set_escrow(e->vault, rec, n, n ? k : 0)) < 0) {
		snprintf(msg, sizeof(msg), r == -TS_E_NOT_SUPPORTED ? "this daemon cannot seal to RSA recipients" :
		         r == -TS_E_BUSY ? "no RSA-wrapped box key was ready for an escrow recipient; try again" :
		         "escrow refused (duplicate or unusable public key?)");
		(void)ts_daemon_revert(e);
		goto out;
	}
	if ((r = ts_policy_check_escrow(ts_enforce_policy(), e->vault, msg, sizeof(msg))) < 0) {
		(void)ts_daemon_revert(e);
		goto out;
	}
	if ((r = ts_daemon_persist(e)) < 0) {
		msg[0] = '\0';
		goto out;
	}
	(void)ts_audit("escrow", e->vault->name, e->vault->owner_uid, &caller, NULL, 0);
	(void)ts_escrow_emit_changed(e);
	ts_daemon_touch(e);
	return ts_bus_errno(error, sd_bus_reply_method_return(m, ""));
out:
	(void)ts_audit(r == -TS_E_POLICY_VIOLATION ? "policy-denied" : "escrow", e->vault->name, e->vault->owner_uid, &caller, NULL, r);
	return ts_bus_error(error, r, msg);
}

/* Which protector last unlocked this vault, so RotateRecoveryKey("") names "the recovery key just used". */
void ts_escrow_note_unlock(ts_vault_entry *e, const char *protector_id, const ts_protector_record *p)
{
	snprintf(e->last_unlock, sizeof(e->last_unlock), "%s", protector_id);
}
