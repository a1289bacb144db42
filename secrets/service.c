/* service.c — org.freedesktop.Secret.Service at /org/freedesktop/secrets, and the collections' life with the vault. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "core/clock.h"
#include "secrets.h"

ss_collection *ss_service_collection(ss_service *s, const char *id)
{
	size_t i;

	for (i = 0; i < s->n_colls; i++)
		if (strcmp(s->colls[i]->id, id) == 0)
			return s->colls[i];
	return NULL;
}

ss_collection *ss_service_alias(ss_service *s, const char *alias)
{
	size_t i, j;

	for (i = 0; i < s->n_colls; i++)
		for (j = 0; j < s->colls[i]->n_aliases; j++)
			if (strcmp(s->colls[i]->aliases[j], alias) == 0)
				return s->colls[i];
	return NULL;
}

int ss_service_add_collection(ss_service *s, ss_collection *c)
{
	ss_collection **n;

	if (s->n_colls >= SS_COLLECTIONS_MAX)
		return -E2BIG;
	if ((n = reallocarray(s->colls, s->n_colls + 1, sizeof(*n))) == NULL)
		return -ENOMEM;
	s->colls = n;
	s->colls[s->n_colls++] = c;
	return 0;
}

int ss_service_resolve(ss_service *s, const char *path, ss_collection **ret_c, ss_item **ret_it)
{
	const char *rest, *slash;
	char *first;
	ss_collection *c;
	int alias;

	*ret_c = NULL;
	*ret_it = NULL;
	if (strncmp(path, SS_COLLECTION_PREFIX "/", sizeof(SS_COLLECTION_PREFIX)) == 0) {
		rest = path + sizeof(SS_COLLECTION_PREFIX);
		alias = 0;
	} else if (strncmp(path, SS_ALIAS_PREFIX "/", sizeof(SS_ALIAS_PREFIX)) == 0) {
		rest = path + sizeof(SS_ALIAS_PREFIX);
		alias = 1;
	} else
		return 0;
	slash = strchr(rest, '/');
	if (alias) {
		/* An alias is named as the client wrote it (".../aliases/default"). */
		if ((first = strndup(rest, slash ? (size_t)(slash - rest) : strlen(rest))) == NULL)
			return -ENOMEM;
	} else {
		/* A collection's path is sd_bus_path_encode's (an id with '_' or a leading digit is escaped). */
		char *head = strndup(path, (size_t)((slash ? slash : rest + strlen(rest)) - path));
		int r;

		if (!head)
			return -ENOMEM;
		r = sd_bus_path_decode(head, SS_COLLECTION_PREFIX, &first);
		free(head);
		if (r <= 0 || !first)
			return r < 0 && r != -EINVAL ? r : 0;
	}
	c = alias ? ss_service_alias(s, first) : ss_service_collection(s, first);
	free(first);
	if (!c)
		return 0;
	if (slash) {
		char *end;
		unsigned long id;

		if (slash[1] < '1' || slash[1] > '9')
			return 0;
		errno = 0;
		id = strtoul(slash + 1, &end, 10);
		if (errno || *end || id > UINT32_MAX || (*ret_it = ss_collection_item(c, (uint32_t)id)) == NULL)
			return 0;
	}
	*ret_c = c;
	return 1;
}

void ss_service_emit_locked(ss_service *s, ss_collection *c)
{
	size_t i;

	(void)sd_bus_emit_properties_changed(s->bus, c->path, SS_COLLECTION_IFACE, "Locked", NULL);
	for (i = 0; i < c->n_items; i++) {
		char *p = ss_item_path(c, c->items[i]);

		if (p)
			/* Label and attributes are sealed: they read differently once locked or unlocked. */
			(void)sd_bus_emit_properties_changed(s->bus, p, SS_ITEM_IFACE, "Locked", "Label", "Attributes", NULL);
		free(p);
	}
	ss_service_emit_collection_changed(s, c);
}

void ss_service_emit_collection_changed(ss_service *s, ss_collection *c)
{
	(void)sd_bus_emit_signal(s->bus, SS_PATH, SS_SERVICE_IFACE, "CollectionChanged", "o", c->path);
}

void ss_service_lock_all(ss_service *s)
{
	size_t i;

	for (i = 0; i < s->n_colls; i++)
		if (s->colls[i]->key) {
			ss_collection_lock(s->colls[i]);
			ss_service_emit_locked(s, s->colls[i]);
		}
}

void ss_service_open_all(ss_service *s)
{
	size_t i;

	/* The vault was just unlocked, so somebody gave the PIN: collections locked by a client open too. */
	for (i = 0; i < s->n_colls && !s->vault_locked; i++) {
		s->colls[i]->locked_by_client = 0;
		(void)ss_open_async(s, s->colls[i], NULL, NULL);
	}
}

/* ---- the methods ---- */

static int read_attrs(sd_bus_message *m, ss_attr **ret, size_t *ret_n, sd_bus_error *e)
{
	ss_attr *a = NULL;
	size_t n = 0, i;
	const char *k, *v;
	int r;

	*ret = NULL;
	*ret_n = 0;
	if ((r = sd_bus_message_enter_container(m, 'a', "{ss}")) < 0)
		return r;
	while ((r = sd_bus_message_read(m, "{ss}", &k, &v)) > 0) {
		ss_attr *na;

		if (n >= SS_ATTRS_MAX || !ss_valid_text(k) || !ss_valid_text(v)) {
			r = sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "too many or too long attributes");
			goto fail;
		}
		if ((na = reallocarray(a, n + 1, sizeof(*a))) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
		a = na;
		a[n].name = strdup(k);
		a[n].value = strdup(v);
		n++;
		if (!a[n - 1].name || !a[n - 1].value) {
			r = -ENOMEM;
			goto fail;
		}
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		goto fail;
	*ret = a;
	*ret_n = n;
	return 0;
fail:
	for (i = 0; i < n; i++) {
		free(a[i].name);
		free(a[i].value);
	}
	free(a);
	return r;
}

void ss_attrs_free(ss_attr *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(a[i].name);
		free(a[i].value);
	}
	free(a);
}

int ss_read_attrs(sd_bus_message *m, ss_attr **ret, size_t *ret_n, sd_bus_error *e)
{
	return read_attrs(m, ret, ret_n, e);
}

static int method_open_session(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	return ss_session_open(userdata, m, e);
}

static int method_search(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	_ss_cleanup_msg_ sd_bus_message *reply = NULL;
	ss_service *s = userdata;
	ss_attr *q;
	size_t n_q, i, j;
	int r, pass;

	if ((r = read_attrs(m, &q, &n_q, e)) < 0)
		return r;
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0)
		goto out;
	/* Two lists: unlocked items, then locked ones (found by the clear hashes). */
	for (pass = 0; pass < 2; pass++) {
		if ((r = sd_bus_message_open_container(reply, 'a', "o")) < 0)
			goto out;
		for (i = 0; i < s->n_colls; i++) {
			ss_collection *c = s->colls[i];
			uint8_t (*qh)[SS_HASH_BYTES];

			if (!!c->key != !pass)
				continue;
			/* Each collection has its own salt: the query is hashed once per collection, not per item. */
			if ((r = ss_query_hash(c, q, n_q, &qh)) < 0)
				goto out;
			for (j = 0; j < c->n_items; j++) {
				char *p;

				if (!ss_item_matches(c->items[j], q, qh, n_q))
					continue;
				if ((p = ss_item_path(c, c->items[j])) == NULL)
					r = -ENOMEM;
				else
					r = sd_bus_message_append(reply, "o", p);
				free(p);
				if (r < 0)
					break;
			}
			free(qh);
			if (r < 0)
				goto out;
		}
		if ((r = sd_bus_message_close_container(reply)) < 0)
			goto out;
	}
	r = sd_bus_send(NULL, reply, NULL);
out:
	ss_attrs_free(q, n_q);
	return r;
}

/*
 * An Unlock whose collections are being opened (the vault is unlocked, their keys are on their way): its
 * reply waits for them, then lists what is open. The prompt, if some collections need the PIN, is made
 * at once and named in the reply.
 */
struct unlock_req {
	ss_service *s;
	sd_bus_message *m;
	char **paths;
	size_t n_paths;
	const char *prompt;
	unsigned waiting;
	char *prompt_copy;
};


#define OBJECTS_MAX 4096   /* objects one Unlock or Lock names */

/* -E2BIG past OBJECTS_MAX, -ENOMEM. */
static int strv_push(char ***v, size_t *n, const char *str)
{
	char **nv;

	if (*n >= OBJECTS_MAX)
		return -E2BIG;
	if ((nv = reallocarray(*v, *n + 1, sizeof(char *))) == NULL)
		return -ENOMEM;
	*v = nv;
	if ((nv[*n] = strdup(str)) == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Reply to Unlock/Lock: the objects of paths whose collection is open (Unlock) or locked (Lock), and the prompt. */
static int reply_objects(ss_service *s, sd_bus_message *m, char **paths, size_t n, int lock, const char *prompt)
{
	_ss_cleanup_msg_ sd_bus_message *reply = NULL;
	size_t i;
	int r;

	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 || (r = sd_bus_message_open_container(reply, 'a', "o")) < 0)
		return r;
	for (i = 0; i < n; i++) {
		ss_collection *c;
		ss_item *it;

		if (ss_service_resolve(s, paths[i], &c, &it) <= 0 || !c->key == !lock)
			continue;
		if ((r = sd_bus_message_append(reply, "o", paths[i])) < 0)
			return r;
	}
	if ((r = sd_bus_message_close_container(reply)) < 0 || (r = sd_bus_message_append(reply, "o", prompt)) < 0)
		return r;
	return sd_bus_send(NULL, reply, NULL);
}

static void unlock_req_free(struct unlock_req *q)
{
	sd_bus_message_unref(q->m);
	ss_strv_free(q->paths, q->n_paths);
	free(q->prompt_copy);
	free(q);
}

static void on_opened(ss_service *s, ss_collection *c, int r, void *ud)
{
	struct unlock_req *q = ud;

	if (--q->waiting > 0)
		return;
	if ((r = reply_objects(s, q->m, q->paths, q->n_paths, 0, q->prompt)) < 0)
		ss_log("cannot answer Unlock: %s", strerror(-r));
	unlock_req_free(q);
}

/* Unlock(ao) and Lock(ao): the collections behind the objects named. */
static int method_unlock_lock(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	int lock = strcmp(sd_bus_message_get_member(m), "Lock") == 0;
	ss_collection *pending[SS_COLLECTIONS_MAX], *opening[SS_COLLECTIONS_MAX];
	char **paths = NULL, **objects = NULL;
	size_t n_paths = 0, n_pending = 0, n_opening = 0, n_objects = 0, i;
	const char *path, *prompt = "/";
	struct unlock_req *q = NULL;
	int r;

	if ((r = sd_bus_message_enter_container(m, 'a', "o")) < 0)
		return r;
	while ((r = sd_bus_message_read(m, "o", &path)) > 0) {
		ss_collection *c, **list = NULL;
		size_t *n_list = NULL;
		ss_item *it;

		if (ss_service_resolve(s, path, &c, &it) <= 0)
			continue;
		if ((r = strv_push(&paths, &n_paths, path)) < 0) {
			if (r == -E2BIG)
				r = sd_bus_error_setf(e, "org.freedesktop.DBus.Error.LimitsExceeded",
				                      "more than %d objects in one call", OBJECTS_MAX);
			goto out;
		}
		if (lock) {
			c->locked_by_client = 1;
			if (c->key) {
				ss_collection_lock(c);
				ss_service_emit_locked(s, c);
			}
			continue;
		}
		if (c->key)
			continue;
		if (s->vault_locked || c->locked_by_client) {
			/* The PIN is needed: a prompt, whose result will name this object. */
			if ((r = strv_push(&objects, &n_objects, path)) < 0)
				goto out;
			list = pending;
			n_list = &n_pending;
		} else {
			list = opening;
			n_list = &n_opening;
		}
		for (i = 0; i < *n_list && list[i] != c; i++)
			;
		if (i == *n_list && *n_list < SS_COLLECTIONS_MAX)
			list[(*n_list)++] = c;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
		goto out;
	if (n_pending) {
		const char *sender = sd_bus_message_get_sender(m);

		r = ss_prompt_new(s, sender ? sender : "", pending, n_pending, objects, n_objects, &prompt);
		objects = NULL;
		n_objects = 0;
		if (r < 0) {
			if (r == -EBUSY)
				r = sd_bus_error_set(e, "org.freedesktop.DBus.Error.LimitsExceeded", "too many prompts");
			goto out;
		}
	}
	/* The vault is open: these collections' keys are asked for, and the reply waits for them. */
	if (n_opening) {
		if ((q = calloc(1, sizeof(*q))) == NULL || (q->prompt_copy = strdup(prompt)) == NULL) {
			free(q);
			q = NULL;
			r = -ENOMEM;
			goto out;
		}
		q->s = s;
		q->m = sd_bus_message_ref(m);
		q->paths = paths;
		q->n_paths = n_paths;
		q->prompt = q->prompt_copy;
		paths = NULL;
		n_paths = 0;
		for (i = 0; i < n_opening; i++)
			if (ss_open_async(s, opening[i], on_opened, q) == 1)
				q->waiting++;
		if (q->waiting > 0)
			return 1;
		r = reply_objects(s, q->m, q->paths, q->n_paths, 0, q->prompt);
		unlock_req_free(q);
		goto out;
	}
	r = reply_objects(s, m, paths, n_paths, lock, prompt);
out:
	ss_strv_free(paths, n_paths);
	ss_strv_free(objects, n_objects);
	return r;
}

static int method_get_secrets(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	_ss_cleanup_msg_ sd_bus_message *reply = NULL;
	ss_service *s = userdata;
	const char *session, *path;
	char **paths = NULL;
	ss_session *se;
	size_t i;
	int r;

	if ((r = sd_bus_message_read_strv(m, &paths)) < 0 || (r = sd_bus_message_read(m, "o", &session)) < 0)
		goto out;
	if ((se = ss_session_find(s, session, sd_bus_message_get_sender(m))) == NULL) {
		r = sd_bus_error_set(e, SS_ERR_NO_SESSION, "no such session");
		goto out;
	}
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 || (r = sd_bus_message_open_container(reply, 'a', "{o(oayays)}")) < 0)
		goto out;
	for (i = 0; paths && (path = paths[i]) != NULL; i++) {
		ss_collection *c;
		ss_item *it;
		uint8_t *sec;
		size_t len;

		/* Locked or unknown items are left out, as the spec says. */
		if (ss_service_resolve(s, path, &c, &it) <= 0 || !it || !c->key || ss_item_unseal_secret(c, it, &sec, &len) < 0)
			continue;
		r = sd_bus_message_open_container(reply, 'e', "o(oayays)");
		if (r >= 0)
			r = sd_bus_message_append(reply, "o", path);
		if (r >= 0)
			r = ss_session_append_secret(se, reply, sec, len, it->content_type);
		ts_secret_free(sec, len);
		if (r < 0 || (r = sd_bus_message_close_container(reply)) < 0)
			goto out;
	}
	if ((r = sd_bus_message_close_container(reply)) < 0)
		goto out;
	r = sd_bus_send(NULL, reply, NULL);
out:
	for (i = 0; paths && paths[i]; i++)
		free(paths[i]);
	free(paths);
	return r;
}

/* A collection id from a label: [A-Za-z0-9_] of it, made unique. */
static char *new_id(ss_service *s, const char *label)
{
	char base[SS_ID_MAX - 8], *id = NULL;
	size_t i, n = 0;
	unsigned k;

	for (i = 0; label[i] && n < sizeof(base) - 1; i++) {
		char ch = label[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')
			base[n++] = ch;
		else if (ch >= 'A' && ch <= 'Z')
			base[n++] = (char)(ch - 'A' + 'a');
	}
	if (n == 0)
		memcpy(base, "collection", (n = 10));
	base[n] = 0;
	for (k = 0; k < 1000; k++) {
		free(id);
		if ((k ? asprintf(&id, "%s%u", base, k) : asprintf(&id, "%s", base)) < 0)
			return NULL;
		if (!ss_service_collection(s, id))
			return id;
	}
	free(id);
	return NULL;
}

int ss_service_create_collection(ss_service *s, const char *label, const char *alias, ss_collection **ret)
{
	ss_collection *c;
	char *id;
	int r;

	if (s->n_colls >= SS_COLLECTIONS_MAX)
		return -E2BIG;
	if ((id = new_id(s, label)) == NULL)
		return -ENOMEM;
	c = ss_collection_new(id, label);
	free(id);
	if (!c)
		return -ENOMEM;
	c->created = c->modified = ts_now();
	randombytes_buf(c->salt, sizeof(c->salt));
	if (alias && *alias) {
		if ((c->aliases = calloc(1, sizeof(char *))) == NULL || (c->aliases[0] = strdup(alias)) == NULL) {
			ss_collection_free(c);
			return -ENOMEM;
		}
		c->n_aliases = 1;
	}
	if ((r = ss_store_save(s, c)) < 0 || (r = ss_service_add_collection(s, c)) < 0) {
		ss_collection_free(c);
		return r;
	}
	(void)sd_bus_emit_signal(s->bus, SS_PATH, SS_SERVICE_IFACE, "CollectionCreated", "o", c->path);
	(void)sd_bus_emit_properties_changed(s->bus, SS_PATH, SS_SERVICE_IFACE, "Collections", NULL);
	*ret = c;
	return 0;
}

/* CreateCollection answers once the new collection's key is made (the vault open) or could not be. */
static void on_created(ss_service *s, ss_collection *c, int r, void *ud)
{
	sd_bus_message *m = ud;

	if ((r = sd_bus_reply_method_return(m, "oo", c->path, "/")) < 0)
		ss_log("cannot answer CreateCollection: %s", strerror(-r));
	sd_bus_message_unref(m);
}

static int method_create_collection(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const char *name, *label = "", *alias;
	ss_collection *c;
	int r;

	if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if ((r = sd_bus_message_read(m, "s", &name)) < 0)
			return r;
		if (strcmp(name, SS_COLLECTION_IFACE ".Label") == 0) {
			if ((r = sd_bus_message_read(m, "v", "s", &label)) < 0)
				return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "Label must be a string");
		} else if ((r = sd_bus_message_skip(m, "v")) < 0)
			return r;
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_read(m, "s", &alias)) < 0)
		return r;
	if (!ss_valid_text(label) || (*alias && !ss_valid_id(alias)))
		return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "invalid label or alias ([A-Za-z0-9_]{1,64})");
	/* An alias that already names a collection answers with that collection (as gnome-keyring does). */
	if (*alias && (c = ss_service_alias(s, alias)) != NULL)
		return sd_bus_reply_method_return(m, "oo", c->path, "/");
	if ((r = ss_service_create_collection(s, label, alias, &c)) < 0)
		return r == -E2BIG ? sd_bus_error_set(e, "org.freedesktop.DBus.Error.LimitsExceeded", "too many collections")
		                   : sd_bus_error_set_errnof(e, -r, "cannot create the collection: %m");
	/* With the vault open the client gets an open collection (it will store into it next). */
	if (ss_open_async(s, c, on_created, sd_bus_message_ref(m)) == 1)
		return 1;
	sd_bus_message_unref(m);
	return sd_bus_reply_method_return(m, "oo", c->path, "/");
}

static int method_read_alias(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const char *alias;
	ss_collection *c;
	int r;

	if ((r = sd_bus_message_read(m, "s", &alias)) < 0)
		return r;
	c = ss_service_alias(s, alias);
	return sd_bus_reply_method_return(m, "o", c ? c->path : "/");
}

static int method_set_alias(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const char *alias, *path;
	ss_collection *c = NULL, *old;
	ss_item *it;
	size_t i;
	int r;

	if ((r = sd_bus_message_read(m, "so", &alias, &path)) < 0)
		return r;
	if (!ss_valid_id(alias))
		return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "invalid alias ([A-Za-z0-9_]{1,64})");
	if (strcmp(path, "/") != 0 && (ss_service_resolve(s, path, &c, &it) <= 0 || it))
		return sd_bus_error_set(e, SS_ERR_NO_SUCH_OBJECT, "no such collection");
	if ((old = ss_service_alias(s, alias)) == c)
		return sd_bus_reply_method_return(m, NULL);
	if (c && c->n_aliases >= SS_ALIASES_MAX)
		return sd_bus_error_set(e, "org.freedesktop.DBus.Error.LimitsExceeded", "too many aliases");
	if (old) {
		for (i = 0; i < old->n_aliases && strcmp(old->aliases[i], alias) != 0; i++)
			;
		free(old->aliases[i]);
		memmove(&old->aliases[i], &old->aliases[i + 1], (old->n_aliases - i - 1) * sizeof(char *));
		old->n_aliases--;
		if ((r = ss_store_save(s, old)) < 0) {
			ss_collection_reload(s, old);
			return sd_bus_error_set_errnof(e, -r, "cannot save the alias: %m");
		}
	}
	if (c) {
		char **na = reallocarray(c->aliases, c->n_aliases + 1, sizeof(char *));

		if (!na)
			return -ENOMEM;
		c->aliases = na;
		if ((c->aliases[c->n_aliases] = strdup(alias)) == NULL)
			return -ENOMEM;
		c->n_aliases++;
		if ((r = ss_store_save(s, c)) < 0) {
			/* The alias is gone from old (saved) and not on c: memory as the files say. */
			ss_collection_reload(s, c);
			return sd_bus_error_set_errnof(e, -r, "cannot save the alias: %m");
		}
	}
	return sd_bus_reply_method_return(m, NULL);
}

static int prop_collections(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
                            void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	size_t i;
	int r;

	if ((r = sd_bus_message_open_container(reply, 'a', "o")) < 0)
		return r;
	for (i = 0; i < s->n_colls; i++)
		if ((r = sd_bus_message_append(reply, "o", s->colls[i]->path)) < 0)
			return r;
	return sd_bus_message_close_container(reply);
}

static const sd_bus_vtable service_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("OpenSession", "sv", "vo", method_open_session, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("CreateCollection", "a{sv}s", "oo", method_create_collection, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SearchItems", "a{ss}", "aoao", method_search, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Unlock", "ao", "aoo", method_unlock_lock, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Lock", "ao", "aoo", method_unlock_lock, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("GetSecrets", "aoo", "a{o(oayays)}", method_get_secrets, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("ReadAlias", "s", "o", method_read_alias, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SetAlias", "so", "", method_set_alias, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Collections", "ao", prop_collections, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_SIGNAL("CollectionCreated", "o", 0),
	SD_BUS_SIGNAL("CollectionDeleted", "o", 0),
	SD_BUS_SIGNAL("CollectionChanged", "o", 0),
	SD_BUS_VTABLE_END,
};


int ss_service_register(ss_service *s)
{
	int r;

	if ((r = sd_bus_add_object_vtable(s->bus, NULL, SS_PATH, SS_SERVICE_IFACE, service_vtable, s)) < 0 ||
	    (r = ss_objects_register(s)) < 0 || (r = ss_session_register(s)) < 0 || (r = ss_prompt_register(s)) < 0)
		return r;
	return 0;
}
