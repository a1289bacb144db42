/* objects.c — org.freedesktop.Secret.Collection and .Item, under /collection/ID and /aliases/ALIAS. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/clock.h"
#include "secrets.h"


/* The object a method or property is on; errors as the spec names them. */
static int lookup(ss_service *s, sd_bus_message *m, const char *path, ss_collection **c, ss_item **it, sd_bus_error *e)
{
	int r = ss_service_resolve(s, path ? path : sd_bus_message_get_path(m), c, it);

	if (r < 0)
		return r;
	if (r == 0)
		return sd_bus_error_set(e, SS_ERR_NO_SUCH_OBJECT, "no such object");
	return 1;
}

/* lookup, and the collection must be open (else IsLocked): what a change or a secret needs. */
static int lookup_open(ss_service *s, sd_bus_message *m, const char *path, ss_collection **c, ss_item **it,
                       sd_bus_error *e)
{
	int r = lookup(s, m, path, c, it, e);

	if (r <= 0)
		return r;
	if (!(*c)->key)
		return sd_bus_error_set(e, SS_ERR_IS_LOCKED, "the collection is locked");
	return 1;
}

static void item_changed(ss_service *s, ss_collection *c, ss_item *it, const char *signal)
{
	char *p = ss_item_path(c, it);

	if (p)
		(void)sd_bus_emit_signal(s->bus, c->path, SS_COLLECTION_IFACE, signal, "o", p);
	free(p);
}

/*
 * After a change that could not be sealed or saved, memory must equal disk again: the collection is read
 * back from its file (the key kept, its items opened again); if even that fails it is locked, and its next
 * Unlock starts from the file.
 */
void ss_collection_reload(ss_service *s, ss_collection *c)
{
	ss_collection *f = NULL;
	ss_item **items;
	size_t n;
	int r;

	if ((r = ss_store_load_one(s, c->id, &f)) < 0) {
		ss_log("collection %s: the file cannot be read back (%s); locked", c->id, strerror(-r));
		ss_collection_lock(c);
		c->locked_by_client = 1;
		return;
	}
	/* Take the file's state (label, aliases, items, times), keep the key and the object path. */
	{
		char *label = c->label, **aliases = c->aliases;
		size_t n_aliases = c->n_aliases;

		c->label = f->label;
		c->aliases = f->aliases;
		c->n_aliases = f->n_aliases;
		f->label = label;
		f->aliases = aliases;
		f->n_aliases = n_aliases;
	}
	items = c->items;
	n = c->n_items;
	c->items = f->items;
	c->n_items = f->n_items;
	/* The items that did not open are the file's too: they go with the old state and are read again. */
	{
		ss_item **bad = c->bad;
		size_t n_bad = c->n_bad;

		c->bad = f->bad;
		c->n_bad = f->n_bad;
		f->bad = bad;
		f->n_bad = n_bad;
	}
	c->next_id = f->next_id;
	f->items = items;
	f->n_items = n;
	c->created = f->created;
	c->modified = f->modified;
	if (c->key && ss_collection_open_items(c) < 0)
		ss_collection_lock(c);
	ss_collection_free(f);
}

/* Seal it with secret and save c; on failure the collection is as its file says. Returns 0 or a negative errno. */
static int seal_and_save(ss_service *s, ss_collection *c, ss_item *it, const uint8_t *secret, size_t len)
{
	int r;

	if ((r = ss_item_seal(c, it, secret, len)) < 0 || (r = ss_store_save(s, c)) < 0) {
		ss_log("collection %s: change not saved (%s); the saved state is served", c->id, strerror(-r));
		ss_collection_reload(s, c);
	}
	return r;
}

/* ---- Collection ---- */

static int method_coll_delete(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	size_t i;
	int r;

	/* Without the PIN, no app can destroy a locked collection. */
	if ((r = lookup_open(s, m, NULL, &c, &it, e)) <= 0)
		return r;
	if ((r = ss_store_remove(s, c)) < 0)
		return sd_bus_error_set_errnof(e, -r, "cannot remove the collection's file: %m");
	for (i = 0; i < s->n_colls && s->colls[i] != c; i++)
		;
	memmove(&s->colls[i], &s->colls[i + 1], (s->n_colls - i - 1) * sizeof(*s->colls));
	s->n_colls--;
	(void)sd_bus_emit_signal(s->bus, SS_PATH, SS_SERVICE_IFACE, "CollectionDeleted", "o", c->path);
	(void)sd_bus_emit_properties_changed(s->bus, SS_PATH, SS_SERVICE_IFACE, "Collections", NULL);
	ss_collection_free(c);
	return sd_bus_reply_method_return(m, "o", "/");
}

static int method_coll_search(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	_ss_cleanup_msg_ sd_bus_message *reply = NULL;
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	ss_attr *q;
	uint8_t (*qh)[SS_HASH_BYTES] = NULL;
	size_t n_q, i;
	int r;

	if ((r = lookup(s, m, NULL, &c, &it, e)) <= 0)
		return r;
	if ((r = ss_read_attrs(m, &q, &n_q, e)) < 0)
		return r;
	if ((r = ss_query_hash(c, q, n_q, &qh)) >= 0 && (r = sd_bus_message_new_method_return(m, &reply)) >= 0 &&
	    (r = sd_bus_message_open_container(reply, 'a', "o")) >= 0)
		for (i = 0; i < c->n_items && r >= 0; i++) {
			char *p;

			if (!ss_item_matches(c->items[i], q, qh, n_q))
				continue;
			if ((p = ss_item_path(c, c->items[i])) == NULL)
				r = -ENOMEM;
			else
				r = sd_bus_message_append(reply, "o", p);
			free(p);
		}
	ss_attrs_free(q, n_q);
	free(qh);
	if (r < 0 || (r = sd_bus_message_close_container(reply)) < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

/* Do two attribute sets say the same? */
static int same_attrs(const ss_item *it, const ss_attr *a, size_t n)
{
	size_t i, j;

	if (it->n_attrs != n)
		return 0;
	for (i = 0; i < n; i++) {
		for (j = 0; j < it->n_attrs; j++)
			if (strcmp(it->attrs[j].name, a[i].name) == 0 && strcmp(it->attrs[j].value, a[i].value) == 0)
				break;
		if (j == it->n_attrs)
			return 0;
	}
	return 1;
}

static int method_create_item(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it = NULL, *old = NULL;
	ss_attr *attrs = NULL;
	size_t n_attrs = 0, i;
	const char *name, *label = NULL;
	char *ct = NULL, *path = NULL;
	uint8_t *secret = NULL;
	size_t secret_len = 0;
	int r, replace, have_attrs = 0;

	/* The secret is in m (in the clear in a plain session): wiped with m, whatever fails first. */
	(void)sd_bus_message_sensitive(m);
	if ((r = lookup(s, m, NULL, &c, &it, e)) <= 0)
		return r;
	it = NULL;
	if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if ((r = sd_bus_message_read(m, "s", &name)) < 0)
			goto out;
		if (strcmp(name, SS_ITEM_IFACE ".Label") == 0) {
			if ((r = sd_bus_message_read(m, "v", "s", &label)) < 0)
				goto out;
		} else if (strcmp(name, SS_ITEM_IFACE ".Attributes") == 0 && !have_attrs) {
			if ((r = sd_bus_message_enter_container(m, 'v', "a{ss}")) < 0 || (r = ss_read_attrs(m, &attrs, &n_attrs, e)) < 0 ||
			    (r = sd_bus_message_exit_container(m)) < 0)
				goto out;
			have_attrs = 1;
		} else if ((r = sd_bus_message_skip(m, "v")) < 0)
			goto out;
		if ((r = sd_bus_message_exit_container(m)) < 0)
			goto out;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		goto out;
	if ((r = ss_session_read_secret(s, m, &secret, &secret_len, &ct, e)) < 0 || (r = sd_bus_message_read(m, "b", &replace)) < 0)
		goto out;
	if (label && !ss_valid_text(label)) {
		r = sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "label too long");
		goto out;
	}
	if (!c->key) {
		r = sd_bus_error_set(e, SS_ERR_IS_LOCKED, "the collection is locked");
		goto out;
	}
	if (replace)
		for (i = 0; i < c->n_items && !old; i++)
			if (same_attrs(c->items[i], attrs, n_attrs))
				old = c->items[i];
	if (!old && c->n_items >= SS_ITEMS_MAX) {
		r = sd_bus_error_set(e, "org.freedesktop.DBus.Error.LimitsExceeded", "too many items");
		goto out;
	}
	if (!old && c->next_id == UINT32_MAX) {
		r = sd_bus_error_set(e, SS_ERR_FAILED, "no item ids left");
		goto out;
	}
	it = old ? old : calloc(1, sizeof(*it));
	if (!it) {
		r = -ENOMEM;
		goto out;
	}
	if (!old) {
		ss_item **ni = reallocarray(c->items, c->n_items + 1, sizeof(*ni));

		if (!ni) {
			free(it);
			r = -ENOMEM;
			goto out;
		}
		c->items = ni;
		it->id = c->next_id++;
		it->created = ts_now();
		c->items[c->n_items++] = it;
		it->attrs = attrs;
		it->n_attrs = n_attrs;
		attrs = NULL;
		n_attrs = 0;
	}
	it->modified = ts_now();
	if (label || !old) {
		free(it->label);
		it->label = strdup(label ? label : "");
	}
	free(it->content_type);
	it->content_type = ct;
	ct = NULL;
	c->modified = it->modified;
	if (!it->label || (path = ss_item_path(c, it)) == NULL) {
		/* Out of memory half-way: the item as the file has it (or none). */
		ss_collection_reload(s, c);
		r = -ENOMEM;
		goto out;
	}
	if ((r = seal_and_save(s, c, it, secret, secret_len)) < 0) {
		r = sd_bus_error_set_errnof(e, -r, "cannot store the item: %m");
		goto out;
	}
	item_changed(s, c, it, old ? "ItemChanged" : "ItemCreated");
	(void)sd_bus_emit_properties_changed(s->bus, c->path, SS_COLLECTION_IFACE, "Items", NULL);
	r = sd_bus_reply_method_return(m, "oo", path, "/");
out:
	if (secret)
		ts_secret_free(secret, secret_len);
	ss_attrs_free(attrs, n_attrs);
	free(ct);
	free(path);
	return r;
}

static int prop_coll(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                     void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	size_t i;
	int r;

	if ((r = lookup(s, NULL, path, &c, &it, e)) <= 0)
		return r < 0 ? r : -ENOENT;
	if (strcmp(prop, "Label") == 0)
		return sd_bus_message_append(reply, "s", c->label);
	if (strcmp(prop, "Locked") == 0)
		return sd_bus_message_append(reply, "b", !c->key);
	if (strcmp(prop, "Created") == 0)
		return sd_bus_message_append(reply, "t", c->created);
	if (strcmp(prop, "Modified") == 0)
		return sd_bus_message_append(reply, "t", c->modified);
	if ((r = sd_bus_message_open_container(reply, 'a', "o")) < 0)
		return r;
	for (i = 0; i < c->n_items; i++) {
		char *p = ss_item_path(c, c->items[i]);

		r = p ? sd_bus_message_append(reply, "o", p) : -ENOMEM;
		free(p);
		if (r < 0)
			return r;
	}
	return sd_bus_message_close_container(reply);
}

static int set_coll_label(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *value,
                          void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	const char *label;
	char *copy;
	int r;

	if ((r = lookup(s, NULL, path, &c, &it, e)) <= 0)
		return r < 0 ? r : -ENOENT;
	if ((r = sd_bus_message_read(value, "s", &label)) < 0)
		return r;
	if (!ss_valid_text(label))
		return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "label too long");
	if ((copy = strdup(label)) == NULL)
		return -ENOMEM;
	free(c->label);
	c->label = copy;
	c->modified = ts_now();
	if ((r = ss_store_save(s, c)) < 0) {
		ss_collection_reload(s, c);
		return sd_bus_error_set_errnof(e, -r, "cannot save the label: %m");
	}
	return 1;
}

static const sd_bus_vtable collection_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Delete", "", "o", method_coll_delete, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SearchItems", "a{ss}", "ao", method_coll_search, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("CreateItem", "a{sv}(oayays)b", "oo", method_create_item, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Items", "ao", prop_coll, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_WRITABLE_PROPERTY("Label", "s", prop_coll, set_coll_label, 0, SD_BUS_VTABLE_UNPRIVILEGED |
	                         SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Locked", "b", prop_coll, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Created", "t", prop_coll, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Modified", "t", prop_coll, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_SIGNAL("ItemCreated", "o", 0),
	SD_BUS_SIGNAL("ItemDeleted", "o", 0),
	SD_BUS_SIGNAL("ItemChanged", "o", 0),
	SD_BUS_VTABLE_END,
};

/* ---- Item ---- */

static int method_item_delete(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	char *path;
	size_t i;
	int r;

	if ((r = lookup_open(s, m, NULL, &c, &it, e)) <= 0)
		return r;
	if ((path = ss_item_path(c, it)) == NULL)
		return -ENOMEM;
	for (i = 0; i < c->n_items && c->items[i] != it; i++)
		;
	memmove(&c->items[i], &c->items[i + 1], (c->n_items - i - 1) * sizeof(*c->items));
	c->n_items--;
	c->modified = ts_now();
	if ((r = ss_store_save(s, c)) < 0) {
		/* Not removed on disk: the collection as its file says (the item back where it was). */
		ss_item_free(it);
		ss_collection_reload(s, c);
		free(path);
		return sd_bus_error_set_errnof(e, -r, "cannot delete the item: %m");
	}
	ss_item_free(it);
	(void)sd_bus_emit_signal(s->bus, c->path, SS_COLLECTION_IFACE, "ItemDeleted", "o", path);
	(void)sd_bus_emit_properties_changed(s->bus, c->path, SS_COLLECTION_IFACE, "Items", NULL);
	free(path);
	return sd_bus_reply_method_return(m, "o", "/");
}

static int method_get_secret(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	_ss_cleanup_msg_ sd_bus_message *reply = NULL;
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	ss_session *se;
	const char *session;
	uint8_t *sec;
	size_t len;
	int r;

	if ((r = lookup(s, m, NULL, &c, &it, e)) <= 0)
		return r;
	if ((r = sd_bus_message_read(m, "o", &session)) < 0)
		return r;
	if ((se = ss_session_find(s, session, sd_bus_message_get_sender(m))) == NULL)
		return sd_bus_error_set(e, SS_ERR_NO_SESSION, "no such session");
	if (!c->key)
		return sd_bus_error_set(e, SS_ERR_IS_LOCKED, "the collection is locked");
	if ((r = ss_item_unseal_secret(c, it, &sec, &len)) < 0)
		return sd_bus_error_set(e, SS_ERR_FAILED, "the item does not open");
	r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = ss_session_append_secret(se, reply, sec, len, it->content_type);
	ts_secret_free(sec, len);
	if (r < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static int method_set_secret(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	uint8_t *sec = NULL;
	size_t len = 0;
	char *ct = NULL;
	int r;

	(void)sd_bus_message_sensitive(m);   /* as CreateItem's */
	if ((r = lookup(s, m, NULL, &c, &it, e)) <= 0)
		return r;
	if ((r = ss_session_read_secret(s, m, &sec, &len, &ct, e)) < 0)
		return r;
	if (!c->key) {
		r = sd_bus_error_set(e, SS_ERR_IS_LOCKED, "the collection is locked");
		goto out;
	}
	free(it->content_type);
	it->content_type = ct;
	ct = NULL;
	it->modified = c->modified = ts_now();
	if ((r = seal_and_save(s, c, it, sec, len)) < 0) {
		r = sd_bus_error_set_errnof(e, -r, "cannot store the secret: %m");
		goto out;
	}
	item_changed(s, c, it, "ItemChanged");
	r = sd_bus_reply_method_return(m, NULL);
out:
	ts_secret_free(sec, len);
	free(ct);
	return r;
}

static int prop_item(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                     void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	size_t i;
	int r;

	if ((r = lookup(s, NULL, path, &c, &it, e)) <= 0 || !it)
		return r < 0 ? r : -ENOENT;
	if (strcmp(prop, "Locked") == 0)
		return sd_bus_message_append(reply, "b", !c->key);
	if (strcmp(prop, "Created") == 0)
		return sd_bus_message_append(reply, "t", it->created);
	if (strcmp(prop, "Modified") == 0)
		return sd_bus_message_append(reply, "t", it->modified);
	/* Label and attributes are sealed: while locked they read as empty. */
	if (strcmp(prop, "Label") == 0)
		return sd_bus_message_append(reply, "s", it->label ? it->label : "");
	if ((r = sd_bus_message_open_container(reply, 'a', "{ss}")) < 0)
		return r;
	for (i = 0; i < it->n_attrs; i++)
		if ((r = sd_bus_message_append(reply, "{ss}", it->attrs[i].name, it->attrs[i].value)) < 0)
			return r;
	return sd_bus_message_close_container(reply);
}

static int set_item_prop(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *value,
                         void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	ss_collection *c;
	ss_item *it;
	uint8_t *sec = NULL;
	size_t len = 0;
	int r;

	if ((r = lookup_open(s, NULL, path, &c, &it, e)) <= 0 || !it)
		return r < 0 ? r : -ENOENT;
	/* Label and attributes live in the sealed part with the secret: seal all again. */
	if ((r = ss_item_unseal_secret(c, it, &sec, &len)) < 0)
		return sd_bus_error_set(e, SS_ERR_FAILED, "the item does not open");
	if (strcmp(prop, "Label") == 0) {
		const char *label;
		char *copy = NULL;

		if ((r = sd_bus_message_read(value, "s", &label)) >= 0 && !ss_valid_text(label))
			r = sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "label too long");
		if (r >= 0 && (copy = strdup(label)) == NULL)
			r = -ENOMEM;
		if (r < 0)
			goto out;
		free(it->label);
		it->label = copy;
	} else {
		ss_attr *a;
		size_t n;

		if ((r = ss_read_attrs(value, &a, &n, e)) < 0)
			goto out;
		ss_attrs_free(it->attrs, it->n_attrs);
		it->attrs = a;
		it->n_attrs = n;
	}
	it->modified = c->modified = ts_now();
	if ((r = seal_and_save(s, c, it, sec, len)) < 0) {
		r = sd_bus_error_set_errnof(e, -r, "cannot save the item: %m");
		goto out;
	}
	item_changed(s, c, it, "ItemChanged");
	r = 1;
out:
	ts_secret_free(sec, len);
	return r;
}

static const sd_bus_vtable item_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Delete", "", "o", method_item_delete, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("GetSecret", "o", "(oayays)", method_get_secret, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SetSecret", "(oayays)", "", method_set_secret, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Locked", "b", prop_item, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_WRITABLE_PROPERTY("Attributes", "a{ss}", prop_item, set_item_prop, 0,
	                         SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_WRITABLE_PROPERTY("Label", "s", prop_item, set_item_prop, 0,
	                         SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_PROPERTY("Created", "t", prop_item, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Modified", "t", prop_item, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
	SD_BUS_VTABLE_END,
};

static int find_collection(sd_bus *bus, const char *path, const char *iface, void *userdata, void **found, sd_bus_error *e)
{
	ss_collection *c;
	ss_item *it;

	if (ss_service_resolve(userdata, path, &c, &it) <= 0 || it)
		return 0;
	*found = userdata;
	return 1;
}

static int find_item(sd_bus *bus, const char *path, const char *iface, void *userdata, void **found, sd_bus_error *e)
{
	ss_collection *c;
	ss_item *it;

	if (ss_service_resolve(userdata, path, &c, &it) <= 0 || !it)
		return 0;
	*found = userdata;
	return 1;
}

static int enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***ret, sd_bus_error *e)
{
	ss_service *s = userdata;
	size_t n = 0, i, j, k = 0;
	char **v;

	for (i = 0; i < s->n_colls; i++)
		n += 1 + s->colls[i]->n_items;
	if ((v = calloc(n + 1, sizeof(char *))) == NULL)
		return -ENOMEM;
	for (i = 0; i < s->n_colls; i++) {
		if ((v[k++] = strdup(s->colls[i]->path)) == NULL)
			goto nomem;
		for (j = 0; j < s->colls[i]->n_items; j++)
			if ((v[k++] = ss_item_path(s->colls[i], s->colls[i]->items[j])) == NULL)
				goto nomem;
	}
	*ret = v;
	return 0;
nomem:
	for (i = 0; i < k; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

int ss_objects_register(ss_service *s)
{
	static const char *const prefixes[] = {SS_COLLECTION_PREFIX, SS_ALIAS_PREFIX};
	size_t i;
	int r;

	for (i = 0; i < 2; i++)
		if ((r = sd_bus_add_fallback_vtable(s->bus, NULL, prefixes[i], SS_COLLECTION_IFACE, collection_vtable,
		                                    find_collection, s)) < 0 ||
		    (r = sd_bus_add_fallback_vtable(s->bus, NULL, prefixes[i], SS_ITEM_IFACE, item_vtable, find_item, s)) < 0)
			return r;
	return sd_bus_add_node_enumerator(s->bus, NULL, SS_COLLECTION_PREFIX, enumerate, s);
}
