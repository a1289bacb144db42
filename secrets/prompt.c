/* prompt.c — org.freedesktop.Secret.Prompt: unlock the vault with a PIN asked by pinentry, then open collections. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets.h"

#define TRIES 3

struct ss_prompt {
	ss_service *s;
	uint64_t n;
	char *path;
	char *owner;                       /* unique name of the client whose Unlock made it */
	char **ids;                        /* the collections to open, by id (one may go meanwhile) */
	size_t n_ids;
	char **objects;                    /* the objects Unlock was asked for whose collection was locked */
	size_t n_objects;
	ss_pinentry *pe;
	ss_pinentry *touch;                /* "touch your key", shown while Unlock waits for it */
	sd_bus_slot *call;                 /* Unlock in flight at tokensealed */
	int tries, started;
	int completing;                    /* the vault is open: the collections' keys are on their way */
	unsigned opening;
};


static void prompt_free(ss_prompt *p)
{
	size_t i;

	if (!p)
		return;
	ss_pinentry_cancel(p->pe);
	ss_pinentry_cancel(p->touch);
	sd_bus_slot_unref(p->call);
	for (i = 0; i < p->n_ids; i++) {
		ss_collection *c = ss_service_collection(p->s, p->ids[i]);

		if (c)
			ss_open_cancel(c, p);
	}
	for (i = 0; i < p->n_ids; i++)
		free(p->ids[i]);
	free(p->ids);
	ss_strv_free(p->objects, p->n_objects);
	free(p->owner);
	free(p->path);
	free(p);
}

static void prompt_remove(ss_prompt *p)
{
	ss_service *s = p->s;
	size_t i;

	for (i = 0; i < s->n_prompts; i++)
		if (s->prompts[i] == p) {
			memmove(&s->prompts[i], &s->prompts[i + 1], (s->n_prompts - i - 1) * sizeof(*s->prompts));
			s->n_prompts--;
			break;
		}
	prompt_free(p);
}

void ss_prompts_free(ss_service *s)
{
	while (s->n_prompts)
		prompt_remove(s->prompts[0]);
	free(s->prompts);
	s->prompts = NULL;
}

/* Completed(dismissed, ao of what is unlocked now), and the prompt is gone. */
static void finish(ss_prompt *p, int dismissed)
{
	_ss_cleanup_msg_ sd_bus_message *sig = NULL;
	ss_service *s = p->s;
	size_t i;
	int r;

	if ((r = sd_bus_message_new_signal(s->bus, &sig, p->path, SS_PROMPT_IFACE, "Completed")) < 0 ||
	    (r = sd_bus_message_append(sig, "b", dismissed)) < 0 || (r = sd_bus_message_open_container(sig, 'v', "ao")) < 0 ||
	    (r = sd_bus_message_open_container(sig, 'a', "o")) < 0)
		goto out;
	/* The result is what was asked for (libsecret reads it so), each only if it is open now. */
	for (i = 0; !dismissed && i < p->n_objects; i++) {
		ss_collection *c;
		ss_item *it;

		if (ss_service_resolve(s, p->objects[i], &c, &it) <= 0 || !c->key)
			continue;
		if ((r = sd_bus_message_append(sig, "o", p->objects[i])) < 0)
			goto out;
	}
	if ((r = sd_bus_message_close_container(sig)) < 0 || (r = sd_bus_message_close_container(sig)) < 0)
		goto out;
	r = sd_bus_send(s->bus, sig, NULL);
out:
	if (r < 0)
		ss_log("prompt %s: cannot send Completed: %s", p->path, strerror(-r));
	prompt_remove(p);
}

static void on_opened(ss_service *s, ss_collection *c, int r, void *ud)
{
	ss_prompt *p = ud;

	if (--p->opening == 0)
		finish(p, 0);
}

/* Dismissed: Completed at once. Else the vault is open: open the collections, then Completed. */
static void complete(ss_prompt *p, int dismissed)
{
	size_t i;

	if (dismissed || p->completing) {
		if (dismissed)
			finish(p, 1);
		return;
	}
	p->completing = 1;
	for (i = 0; i < p->n_ids; i++) {
		ss_collection *c = ss_service_collection(p->s, p->ids[i]);

		if (!c)
			continue;
		c->locked_by_client = 0;
		if (ss_open_async(p->s, c, on_opened, p) == 1)
			p->opening++;
	}
	if (p->opening == 0)
		finish(p, 0);
}

static void ask(ss_prompt *p, const char *error);

static void on_unlocked(ss_service *s, int r, unsigned needed, const char *msg, void *ud)
{
	ss_prompt *p = ud;

	p->call = sd_bus_slot_unref(p->call);
	ss_pinentry_cancel(p->touch);
	p->touch = NULL;
	if (r == 0 && needed == 0) {
		/* The vault is open now, whether or not its PropertiesChanged has come yet. */
		ss_vault_set_locked(s, 0);
		complete(p, 0);
		return;
	}
	if (r == 0) {
		char text[128];

		snprintf(text, sizeof(text), "Accepted; %u more protector%s needed", needed, needed == 1 ? "" : "s");
		ask(p, text);
		return;
	}
	ss_log("prompt %s: the vault did not unlock: %s", p->path, msg ? msg : ts_strerror(-r));
	if ((r == -TS_E_PIN_INVALID || r == -TS_E_AUTH_FAILED || r == -TS_E_BAD_RECOVERY_KEY) && ++p->tries < TRIES) {
		ask(p, msg ? msg : ts_strerror(-r));
		return;
	}
	complete(p, 1);
}

static void on_pin(void *ud, int r, const char *pin, size_t len)
{
	ss_prompt *p = ud;

	p->pe = NULL;
	if (r < 0 || len == 0) {
		/* Cancelled, closed, timed out, or nothing typed (never sent as an empty secret). */
		complete(p, 1);
		return;
	}
	if ((r = ss_vault_unlock_async(p->s, (const uint8_t *)pin, len, on_unlocked, p, &p->call)) < 0) {
		ss_log("prompt %s: cannot reach tokensealed: %s", p->path, strerror(r < 0 && r > -200 ? -r : EIO));
		complete(p, 1);
	}
}

static void ask(ss_prompt *p, const char *error)
{
	int r;

	r = ss_pinentry_start(p->s->event, p->s->pinentry, "tokenseal",
	                      "An application wants the secrets of your keyring; they are sealed by your tokenseal "
	                      "vault. Enter the PIN of your security key (or your recovery key) to unlock it.",
	                      error, on_pin, p, &p->pe);
	if (r < 0) {
		ss_log("prompt %s: cannot run %s: %s", p->path, p->s->pinentry, strerror(-r));
		complete(p, 1);
	}
}

static ss_prompt *prompt_of(ss_service *s, const char *path)
{
	size_t i;

	for (i = 0; i < s->n_prompts; i++)
		if (strcmp(s->prompts[i]->path, path) == 0)
			return s->prompts[i];
	return NULL;
}

static int by_client(ss_prompt *p)
{
	size_t i;

	for (i = 0; i < p->n_ids; i++) {
		ss_collection *c = ss_service_collection(p->s, p->ids[i]);

		if (c && c->locked_by_client)
			return 1;
	}
	return 0;
}

/*
 * The prompt of path, if it is the caller's: a prompt goes with the client
 * whose Unlock made it, and no other client may show or dismiss it (to
 * others it is no prompt at all).
 */
static ss_prompt *callers_prompt(ss_service *s, sd_bus_message *m)
{
	ss_prompt *p = prompt_of(s, sd_bus_message_get_path(m));
	const char *sender = sd_bus_message_get_sender(m);

	return p && sender && strcmp(p->owner, sender) == 0 ? p : NULL;
}

static int method_prompt(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_prompt *p = callers_prompt(s, m);
	const char *window;
	int r;

	if ((r = sd_bus_message_read(m, "s", &window)) < 0)
		return r;
	if (!p)
		return sd_bus_error_set(e, SS_ERR_NO_SUCH_OBJECT, "no such prompt");
	if (p->started)
		return sd_bus_error_set(e, SS_ERR_FAILED, "this prompt is already shown");
	p->started = 1;
	if ((r = sd_bus_reply_method_return(m, NULL)) < 0)
		return r;
	/*
	 * Unlocked meanwhile (by pam_tokenseal, by another prompt): nothing to ask, unless a client locked one
	 * of the collections; then the PIN is asked all the same, and tokensealed checks it although the vault
	 * is open (Vault.Unlock always checks the secret it is given).
	 */
	if (!s->vault_locked && !by_client(p))
		complete(p, 0);
	else
		ask(p, NULL);
	return 1;
}

static int method_dismiss(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_prompt *p = callers_prompt(s, m);
	int r;

	if (!p)
		return sd_bus_error_set(e, SS_ERR_NO_SUCH_OBJECT, "no such prompt");
	if ((r = sd_bus_reply_method_return(m, NULL)) < 0)
		return r;
	complete(p, 1);
	return 1;
}

static const sd_bus_vtable prompt_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Prompt", "s", "", method_prompt, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Dismiss", "", "", method_dismiss, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_SIGNAL("Completed", "bv", 0),
	SD_BUS_VTABLE_END,
};

static int prompt_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **found, sd_bus_error *e)
{
	ss_service *s = userdata;

	if (!prompt_of(s, path))
		return 0;
	*found = s;
	return 1;
}

int ss_prompt_register(ss_service *s)
{
	return sd_bus_add_fallback_vtable(s->bus, NULL, SS_PROMPT_PREFIX, SS_PROMPT_IFACE, prompt_vtable, prompt_find, s);
}


static void on_touch_closed(void *ud, int r, const char *pin, size_t len)
{
	ss_prompt *p = ud;

	p->touch = NULL; /* closed by the user: the key still waits for its touch */
}

void ss_prompts_touch(ss_service *s)
{
	size_t i;

	/* TouchRequested comes only to the caller of Unlock: to us, for a prompt's call in flight. */
	for (i = 0; i < s->n_prompts; i++) {
		ss_prompt *p = s->prompts[i];

		if (p->call && !p->touch &&
		    ss_pinentry_message(s->event, s->pinentry, "tokenseal", "Touch your security key to unlock the vault.",
		                        on_touch_closed, p, &p->touch) < 0)
			ss_log("prompt %s: cannot show the touch notice", p->path);
	}
}

void ss_prompts_drop_owner(ss_service *s, const char *owner)
{
	size_t i;

	for (i = 0; i < s->n_prompts;)
		if (strcmp(s->prompts[i]->owner, owner) == 0)
			complete(s->prompts[i], 1);
		else
			i++;
}

int ss_prompt_new(ss_service *s, const char *owner, ss_collection **colls, size_t n, char **objects,
                  size_t n_objects, const char **ret_path)
{
	ss_prompt *p, **np;
	size_t i, mine = 0;

	for (i = 0; i < s->n_prompts; i++)
		mine += strcmp(s->prompts[i]->owner, owner) == 0;
	/* Prompts that nobody shows would pile up: bounded per client, and dropped when it leaves. */
	if (s->n_prompts >= SS_PROMPTS_MAX || mine >= SS_PROMPTS_PER_CLIENT) {
		ss_strv_free(objects, n_objects);
		return -EBUSY;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		ss_strv_free(objects, n_objects);
		return -ENOMEM;
	}
	p->objects = objects;
	p->n_objects = n_objects;
	p->s = s;
	p->n = ++s->next_prompt;
	if (asprintf(&p->path, SS_PROMPT_PREFIX "/p%llu", (unsigned long long)p->n) < 0)
		p->path = NULL;
	if (!p->path || (p->owner = strdup(owner)) == NULL || (n && (p->ids = calloc(n, sizeof(char *))) == NULL)) {
		prompt_free(p);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if ((p->ids[i] = strdup(colls[i]->id)) == NULL) {
			prompt_free(p);
			return -ENOMEM;
		}
		p->n_ids++;
	}
	if ((np = reallocarray(s->prompts, s->n_prompts + 1, sizeof(*np))) == NULL) {
		prompt_free(p);
		return -ENOMEM;
	}
	s->prompts = np;
	s->prompts[s->n_prompts++] = p;
	*ret_path = p->path;
	return 0;
}
