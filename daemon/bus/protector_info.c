/* protector_info.c — what a stored protector's record says: needs a secret, is a token, proves a user is there. */
#include <stdio.h>
#include <string.h>

#include "protectors/remote.h"

#include "bus/protector_info.h"
#include "bus/state.h"

int ts_protector_info_needs_secret(const ts_protector_ops *ops, const ts_protector_record *p)
{
	return ops->needs_secret ? ops->needs_secret(p->params, p->params_len) : 0;
}

/* A token counts wrong PINs itself (FIDO2 retries, TPM dictionary-attack lockout, PKCS#11 PIN counters). */
int ts_protector_info_is_token(const ts_protector_ops *ops)
{
	return ops && ts_protector_is_remote(ops);
}

struct fact_ctx {
	const char *key;
	char *out;
	size_t size;
};

static int fact_cb(void *ud, const char *key, const char *value)
{
	struct fact_ctx *fc = ud;

	if (strcmp(key, fc->key) == 0)
		snprintf(fc->out, fc->size, "%s", value);
	return 0;
}

/* A fact of a protector's record ("touch", "pin", ...) into out ("" when unknown). */
const char *ts_protector_info_fact(const ts_protector_ops *ops, const ts_protector_record *p, const char *key,
                                  char *out, size_t size)
{
	struct fact_ctx fc = { key, out, size };

	out[0] = '\0';
	if (ops && ops->describe)
		(void)ops->describe(p->params, p->params_len, fact_cb, &fc);
	return out;
}

/*
 * Does unlocking with p show that somebody is there: it takes a secret, or
 * it is a security key that wants a touch? A TPM without PIN opens for
 * anyone at the machine (and a protector whose record cannot be read shows
 * nothing).
 */
int ts_protector_info_proves_user(const ts_protector_ops *ops, const ts_protector_record *p)
{
	char touch[8];

	if (!ops)
		return 0;
	if (ts_protector_info_needs_secret(ops, p))
		return 1;
	return strcmp(p->type, "fido2") == 0 && strcmp(ts_protector_info_fact(ops, p, "touch", touch, sizeof(touch)), "yes") == 0;
}

/*
 * Which physical token a protector's PIN goes to, as far as the record
 * tells: every TPM protector to the one TPM of --tpm2-tcti, a PKCS#11 one to
 * the token its URI names (label, and serial when the URI has one: a key
 * enrolled offline may have none), a FIDO2 key only to itself (two
 * credentials cannot be told to be on one key).
 */
void ts_protector_info_token(ts_vault_entry *e, const char *id, ts_token_id *t)
{
	const ts_protector_record *p = ts_vault_find_protector(e->vault, id);
	const ts_protector_ops *ops = p ? ts_protector_lookup(p->type) : NULL;
	char uri[512];
	const char *serial;

	memset(t, 0, sizeof(*t));
	snprintf(t->kind, sizeof(t->kind), "%s", p ? p->type : "?");
	if (p && strcmp(p->type, "tpm2") == 0)
		return;
	if (p && strcmp(p->type, "pkcs11") == 0 && *ts_protector_info_fact(ops, p, "token", t->label, sizeof(t->label))) {
		if ((serial = strstr(ts_protector_info_fact(ops, p, "uri", uri, sizeof(uri)), "serial=")) != NULL)
			snprintf(t->serial, sizeof(t->serial), "%.*s", (int)strcspn(serial + 7, ";?"), serial + 7);
		return;
	}
	snprintf(t->label, sizeof(t->label), "%s", id);
}

/*
 * One token for sure, from the records alone: the TPM (there is one), or two
 * PKCS#11 records naming the same label and the same serial. Without a
 * serial a URI may mean any card of its label (the backend picks the one
 * that shows the key), so it is never taken for the same card as another.
 */
int ts_protector_info_same_token(const ts_token_id *a, const ts_token_id *b)
{
	if (strcmp(a->kind, b->kind) != 0)
		return 0;
	if (strcmp(a->kind, "tpm2") == 0)
		return 1;
	return strcmp(a->kind, "pkcs11") == 0 && a->serial[0] && strcmp(a->label, b->label) == 0 &&
	       strcmp(a->serial, b->serial) == 0;
}
