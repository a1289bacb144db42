/* opener.c — a collection's key from the vault (Unwrap, or GenerateDataKey the first time) without blocking the loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "client-internal.h"
#include "secrets.h"

struct ss_waiter {
	ss_open_cb cb;
	void *ud;
};

struct call {
	ss_service *s;
	ss_collection *c;
};

/* The key of collection c comes from the vault with this context, so that no other blob stands in for it. */
static void key_context(const ss_collection *c, ts_kv ctx[2])
{
	ctx[0] = (ts_kv){"app", "tokenseal-secrets"};
	ctx[1] = (ts_kv){"collection", c->id};
}

/* Everyone waiting for c hears r; the list is taken first, so a callback may wait again or cancel. */
static void notify(ss_service *s, ss_collection *c, int r)
{
	struct ss_waiter *w = c->waiters;
	size_t n = c->n_waiters, i;

	c->waiters = NULL;
	c->n_waiters = 0;
	for (i = 0; i < n; i++)
		w[i].cb(s, c, r, w[i].ud);
	free(w);
}

/* Read the key (and, when made now, its blob) from tokensealed's answer; *ret_key is sodium_malloc()ed. */
static int read_key(sd_bus_message *m, int fresh, uint8_t **ret_key, uint8_t **ret_blob, size_t *ret_blob_len)
{
	const void *p, *b;
	size_t n, bn;
	uint8_t *key;

	(void)sd_bus_message_sensitive(m); /* sd-bus wipes the body when it frees it */
	if (sd_bus_message_read_array(m, 'y', &p, &n) < 0 || n != SS_KEY_BYTES)
		return -EBADMSG;
	if ((key = sodium_malloc(SS_KEY_BYTES)) == NULL)
		return -ENOMEM;
	memcpy(key, p, SS_KEY_BYTES);
	sodium_memzero((void *)(uintptr_t)p, n);
	if (fresh) {
		if (sd_bus_message_read_array(m, 'y', &b, &bn) < 0 || bn == 0 || bn > 4 * TS_PLAINTEXT_MAX ||
		    (*ret_blob = malloc(bn)) == NULL) {
			sodium_free(key);
			return -EBADMSG;
		}
		memcpy(*ret_blob, b, bn);
		*ret_blob_len = bn;
	}
	*ret_key = key;
	return 0;
}

static int on_key(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct call *k = userdata;
	ss_service *s = k->s;
	ss_collection *c = k->c;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	uint8_t *key = NULL, *blob = NULL;
	size_t blob_len = 0;
	int fresh = !c->wrapped, r;

	/* k goes with the slot. */
	c->opening = sd_bus_slot_unref(c->opening);
	if (e) {
		r = -ts_error_from_dbus_name(e->name);
		ss_log("collection %s: the vault does not give its key: %s", c->id, e->message ? e->message : e->name);
		if (r == -TS_E_LOCKED)
			s->vault_locked = 1;
	} else
		r = read_key(m, fresh, &key, &blob, &blob_len);
	/* Locked meanwhile (the vault, or a client's Lock): the key is not kept. */
	if (r == 0 && (s->vault_locked || c->locked_by_client || c->key)) {
		sodium_free(key);
		free(blob);
		r = c->key ? 0 : -EPERM;
		notify(s, c, r);
		return 0;
	}
	if (r == 0) {
		c->key = key;
		if (fresh) {
			c->wrapped = blob;
			c->wrapped_len = blob_len;
		}
		if ((r = ss_collection_open_items(c)) < 0 || (fresh && (r = ss_store_save(s, c)) < 0)) {
			/* Not usable or not written: forget the key (and a new blob), as a restart would. */
			ss_collection_lock(c);
			if (fresh) {
				free(c->wrapped);
				c->wrapped = NULL;
				c->wrapped_len = 0;
			}
		} else {
			r = 0;
			ss_service_emit_locked(s, c);
		}
	}
	notify(s, c, r);
	return 0;
}

int ss_open_async(ss_service *s, ss_collection *c, ss_open_cb cb, void *ud)
{
	_ss_cleanup_msg_ sd_bus_message *m = NULL;
	struct ss_waiter *w;
	struct call *k;
	ts_kv ctx[2];
	int r;

	if (c->key)
		return 0;
	if (s->vault_locked)
		return -EPERM;
	if (cb) {
		if ((w = reallocarray(c->waiters, c->n_waiters + 1, sizeof(*w))) == NULL)
			return -ENOMEM;
		c->waiters = w;
		c->waiters[c->n_waiters++] = (struct ss_waiter){cb, ud};
	}
	if (c->opening)
		return 1;
	key_context(c, ctx);
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	k->s = s;
	k->c = c;
	if ((r = sd_bus_message_new_method_call(s->ts->bus, &m, TS_BUS_NAME, s->vault_path, TS_VAULT_IFACE,
	                                        c->wrapped ? "Unwrap" : "GenerateDataKey")) < 0 ||
	    (r = c->wrapped ? sd_bus_message_append_array(m, 'y', c->wrapped, c->wrapped_len)
	                    : sd_bus_message_append(m, "u", (uint32_t)SS_KEY_BYTES)) < 0 ||
	    (r = ts_client_append_kv(m, ctx, 2)) < 0 ||
	    (r = sd_bus_call_async(s->ts->bus, &c->opening, m, on_key, k, SS_VAULT_CALL_TIMEOUT_USEC)) < 0) {
		free(k);
		goto fail;
	}
	sd_bus_slot_set_destroy_callback(c->opening, free);
	return 1;
fail:
	if (cb)
		c->n_waiters--;
	return r;
}

void ss_open_cancel(ss_collection *c, void *ud)
{
	size_t i;

	for (i = 0; i < c->n_waiters;)
		if (c->waiters[i].ud == ud) {
			memmove(&c->waiters[i], &c->waiters[i + 1], (c->n_waiters - i - 1) * sizeof(*c->waiters));
			c->n_waiters--;
		} else
			i++;
}

void ss_open_abandon(ss_service *s, ss_collection *c)
{
	c->opening = sd_bus_slot_unref(c->opening);
	notify(s, c, -ECANCELED);
}
