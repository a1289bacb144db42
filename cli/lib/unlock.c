/* unlock.c — libtokenseal's interactive unlock, shared by the tokenseal CLI and the PAM module. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client-internal.h"

#define MAX_USED 32

int ts_protector_info_needs_secret(const ts_protector_info *p)
{
	const char *pin = ts_protector_info_fact(p, "pin");

	if (strcmp(p->type, "recovery") == 0 || strcmp(p->type, "pkcs11") == 0)
		return 1;
	/* A Tang server is asked, nobody types anything (and so it never proves a user). */
	if (strcmp(p->type, "tang") == 0)
		return 0;
	return !pin || strcmp(pin, "no") != 0;
}

struct loop {
	ts_client *c;
	const char *vault, *which;
	const ts_unlock_ui *ui;
	ts_vault_info *info;
	char used[MAX_USED][32];        /* protectors whose share this loop gave */
	size_t n_used;
};

static int is_used(const struct loop *l, const char *id)
{
	for (size_t i = 0; i < l->n_used; i++)
		if (strcmp(l->used[i], id) == 0)
			return 1;
	return 0;
}

/* "Not here, not this way": after a try without a secret, go on and ask for one. */
static int moves_on(int r)
{
	return r == -TS_E_TOKEN_ABSENT || r == -TS_E_TOKEN_NOT_ENROLLED || r == -TS_E_NO_SUCH_PROTECTOR ||
	       r == -TS_E_PIN_REQUIRED || r == -TS_E_TIMEOUT || r == -TS_E_NOT_SUPPORTED;
}

/*
 * Does unlocking with p show that somebody is there: a secret typed, or a
 * security key touched? A TPM without PIN opens for anyone at the machine.
 */
static int proves_user(const ts_protector_info *p)
{
	const char *touch = ts_protector_info_fact(p, "touch");

	return ts_protector_info_needs_secret(p) || (strcmp(p->type, "fido2") == 0 && (!touch || strcmp(touch, "no") != 0));
}

/* A protector this loop may still use: matches which, its share not given yet, and proves a user if it must. */
static int eligible(const struct loop *l, const ts_protector_info *p)
{
	if (l->which && *l->which && strcmp(l->which, p->id) != 0 && strcmp(l->which, p->type) != 0)
		return 0;
	if (l->ui->need_user && !proves_user(p))
		return 0;
	return !is_used(l, p->id);
}

static void on_touch(void *ud, const char *protector)
{
	const struct loop *l = ud;
	char msg[96];

	snprintf(msg, sizeof(msg), "Touch your security key (protector %s)", protector);
	if (l->ui->info)
		l->ui->info(l->ui->ud, msg);
}

static int unlock_once(struct loop *l, const char *which, const char *secret, size_t len, char **ret_id,
                       unsigned *ret_needed)
{
	ts_unlock_opts o = l->ui->opts;

	/* The daemon enforces it too: the client's own filter is only for prompts. */
	o.need_user = l->ui->need_user;
	o.on_touch = on_touch;
	o.ud = l;
	return ts_client_unlock(l->c, l->vault, which, (const uint8_t *)secret, len, &o, ret_id, ret_needed);
}

/*
 * The protectors that need no secret. Without need_user the daemon tries
 * them itself (protector which or ""); with it, each one that proves a
 * user is named, so that a TPM without PIN is never what answers.
 */
static int unlock_without_secret(struct loop *l, char **ret_id, unsigned *ret_needed)
{
	int r = -TS_E_NO_SUCH_PROTECTOR;

	if (!l->ui->need_user)
		return unlock_once(l, l->which, NULL, 0, ret_id, ret_needed);
	for (size_t i = 0; i < l->info->n_protectors; i++) {
		const ts_protector_info *p = &l->info->protectors[i];

		if (!eligible(l, p) || ts_protector_info_needs_secret(p))
			continue;
		if ((r = unlock_once(l, p->id, NULL, 0, ret_id, ret_needed)) >= 0 || !moves_on(r))
			return r;
	}
	return r;
}

/*
 * The daemon would not guess which token a PIN is for: ask which of the
 * tokens that are there (or cannot tell) it is, and give the same secret to
 * that one alone.
 */
static int choose_token(struct loop *l, const char *secret, size_t len, char **ret_id, unsigned *ret_needed)
{
	const ts_protector_info *cand[MAX_USED];
	size_t n = 0;
	int r, pick;

	if (!l->ui->choose)
		return -TS_E_AMBIGUOUS;
	if ((r = ts_client_probe_protectors(l->c, l->vault, l->info)) < 0)
		return r;
	for (size_t i = 0; i < l->info->n_protectors && n < MAX_USED; i++) {
		const ts_protector_info *p = &l->info->protectors[i];

		if (!eligible(l, p) || strcmp(p->type, "recovery") == 0 || !ts_protector_info_needs_secret(p) ||
		    (p->presence && strcmp(p->presence, "absent") == 0))
			continue;
		cand[n++] = p;
	}
	if (n == 0)
		return ts_client_fail(l->c, -TS_E_TOKEN_ABSENT, "none of the tokens this PIN could be for is present");
	if ((pick = l->ui->choose(l->ui->ud, "Several tokens could take this PIN. Which one is it for?", cand, n)) < 0 ||
	    (size_t)pick >= n)
		return ts_client_fail(l->c, -TS_E_AMBIGUOUS, "no token chosen; nothing was tried");
	return unlock_once(l, cand[pick]->id, secret, len, ret_id, ret_needed);
}

/* What to ask for, for the protectors left: "Security key PIN", "Recovery key", "PIN or recovery key"... */
static const char *prompt_for(const struct loop *l)
{
	const ts_protector_info *token = NULL;
	size_t n_tokens = 0, n_recovery = 0;

	for (size_t i = 0; i < l->info->n_protectors; i++) {
		const ts_protector_info *p = &l->info->protectors[i];

		if (!eligible(l, p) || !ts_protector_info_needs_secret(p))
			continue;
		if (strcmp(p->type, "recovery") == 0)
			n_recovery++;
		else
			token = p, n_tokens++;
	}
	if (!n_tokens)
		return "Recovery key";
	if (n_recovery)
		return "PIN or recovery key";
	if (n_tokens > 1)
		return "PIN";
	return strcmp(token->type, "fido2") == 0 ? "Security key PIN" : strcmp(token->type, "tpm2") == 0 ? "TPM PIN" :
	       "Token PIN";
}

int ts_client_unlock_interactive(ts_client *c, const char *vault, const char *which, const ts_unlock_ui *ui,
                                 unsigned *ret_needed)
{
	struct loop l = { .c = c, .vault = vault, .which = which, .ui = ui };
	const uint8_t *ahead = ui->secret;
	size_t ahead_len = ui->secret_len;
	unsigned needed = 0;
	int r = 0;

	*ret_needed = 0;
	if ((r = ts_client_vault_info(c, vault, &l.info)) < 0)
		return r;
	for (size_t round = 0; round <= l.info->n_protectors; round++) {
		size_t n_nosecret = 0, n_secret = 0;
		char *id = NULL, *secret = NULL, msg[160];
		size_t len = 0;

		for (size_t i = 0; i < l.info->n_protectors; i++)
			if (eligible(&l, &l.info->protectors[i]))
				ts_protector_info_needs_secret(&l.info->protectors[i]) ? n_secret++ : n_nosecret++;
		if (n_nosecret + n_secret == 0) {
			r = round ? ts_client_fail(c, -TS_E_LOCKED, "vault '%s' needs %u more share(s) and no protector is "
			                          "left to give one", l.info->name, needed) :
			            ts_client_fail(c, -TS_E_NO_SUCH_PROTECTOR, "vault '%s' has no protector matching '%s'",
			                           l.info->name, which ? which : "");
			break;
		}
		r = -TS_E_NO_SUCH_PROTECTOR;
		/* Protectors that need nothing (a TPM, a key without PIN): no prompt. */
		if (!ahead && n_nosecret) {
			r = unlock_without_secret(&l, &id, &needed);
			if (r < 0 && (!n_secret || !moves_on(r)))
				break;
		}
		if (r < 0) {
			if (ahead) {
				/* Copied: the loop frees what it uses. */
				if ((secret = sodium_malloc(ahead_len + 1)) == NULL) {
					r = ts_client_fail(c, -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM));
					break;
				}
				memcpy(secret, ahead, ahead_len);
				secret[ahead_len] = '\0';
				len = ahead_len;
				ahead = NULL;
			} else {
				if ((r = ui->ask_secret(ui->ud, prompt_for(&l), &secret, &len)) < 0)
					break;
			}
			/* Enter alone is no PIN: sent, it would read as "no secret" and open a PIN-less protector. */
			if (len == 0) {
				ts_secret_free(secret, 1);
				r = ts_client_fail(c, -TS_E_PIN_REQUIRED, "nothing was typed");
				break;
			}
			r = unlock_once(&l, which, secret, len, &id, &needed);
			if (r == -TS_E_AMBIGUOUS)
				r = choose_token(&l, secret, len, &id, &needed);
			ts_secret_free(secret, len + 1);
			if (r < 0)
				break;
		}
		if (l.n_used < MAX_USED)
			snprintf(l.used[l.n_used++], sizeof(l.used[0]), "%s", id);
		if (needed > 0 && ui->info) {
			snprintf(msg, sizeof(msg), "Share accepted (protector %s); %u more needed to unlock vault '%s'.",
			         id, needed, l.info->name);
			ui->info(ui->ud, msg);
		}
		free(id);
		*ret_needed = needed;
		if (needed == 0 || ui->once)
			break;
	}
	ts_vault_info_free(l.info);
	return r < 0 ? r : 0;
}
