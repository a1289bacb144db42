/* admin.c — libtokenseal's internal half: vault administration calls used by the tokenseal CLI. */
#define _GNU_SOURCE 1  /* pipe2, secure_getenv */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "client-internal.h"

static void freep(void *p) { free(*(void **)p); }
static void closep(int *fd) { if (*fd >= 0) close(*fd); }
#define _cleanup_free_ __attribute__((cleanup(freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

#define NOMEM(c) ts_client_fail((c), -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM))

int ts_client_secret_pipe(ts_client *c, const uint8_t *secret, size_t len)
{
	int p[2];
	ssize_t n;
	size_t done = 0;

	if (len > TS_CLIENT_SECRET_MAX)
		return ts_client_fail(c, -TS_E_LIMIT, "secret longer than %d bytes", TS_CLIENT_SECRET_MAX);
	if (pipe2(p, O_CLOEXEC) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "pipe: %s", strerror(errno));
	/* A pipe buffer holds far more than TS_CLIENT_SECRET_MAX: this write never blocks. */
	while (done < len) {
		n = write(p[1], secret + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(p[0]);
			close(p[1]);
			return ts_client_fail(c, -TS_E_FAILED, "pipe write: %s", strerror(errno));
		}
		done += (size_t)n;
	}
	close(p[1]);
	return p[0];
}

/*
 * Read what the daemon wrote to our pipe before it replied. The daemon may
 * still hold its copy of the write end, so read without blocking instead
 * of waiting for EOF. The secret is returned NUL-terminated in secure
 * memory, a trailing newline stripped; empty means none.
 */
static int read_secret_pipe(ts_client *c, int fd, char **ret, size_t *ret_len)
{
	char *buf;
	size_t len = 0;
	ssize_t n;

	*ret = NULL;
	*ret_len = 0;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "fcntl: %s", strerror(errno));
	if ((buf = sodium_malloc(TS_CLIENT_SECRET_MAX + 1)) == NULL)
		return NOMEM(c);
	for (;;) {
		n = read(fd, buf + len, TS_CLIENT_SECRET_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == TS_CLIENT_SECRET_MAX)
			break;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		ts_secret_free(buf, TS_CLIENT_SECRET_MAX + 1);
		return 0;
	}
	/* Keep the full allocation size known to the caller's ts_secret_free. */
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* Move a secret out of a TS_CLIENT_SECRET_MAX+1 buffer into one of exactly len+1 bytes. */
static int shrink_secret(ts_client *c, char **s, size_t len)
{
	char *n;

	if (!*s)
		return 0;
	if ((n = sodium_malloc(len + 1)) == NULL) {
		ts_secret_free(*s, TS_CLIENT_SECRET_MAX + 1);
		*s = NULL;
		return NOMEM(c);
	}
	memcpy(n, *s, len + 1);
	ts_secret_free(*s, TS_CLIENT_SECRET_MAX + 1);
	*s = n;
	return 0;
}

static int call(ts_client *c, sd_bus_message *m, uint64_t usec, sd_bus_message **reply)
{
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if ((r = sd_bus_call(c->bus, m, usec, &error, reply)) < 0)
		return ts_client_error(c, r, &error);
	c->last_code = 0;
	return 0;
}

/* ---- properties ------------------------------------------------------------------------------ */

void ts_vault_info_free(ts_vault_info *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_protectors; i++) {
		ts_protector_info *p = &v->protectors[i];
		for (size_t j = 0; j < p->n_facts; j++) {
			free((char *)p->facts[j].key);
			free((char *)p->facts[j].value);
		}
		free(p->facts);
		free(p->id);
		free(p->type);
		free(p->description);
		free(p->presence);
	}
	free(v->protectors);
	free(v->name);
	free(v->id);
	free(v->lock_reason);
	free(v);
}

const char *ts_protector_info_fact(const ts_protector_info *p, const char *key)
{
	for (size_t i = 0; i < p->n_facts; i++)
		if (strcmp(p->facts[i].key, key) == 0)
			return p->facts[i].value;
	return NULL;
}

static int read_string(sd_bus_message *m, char **ret)
{
	const char *s;
	int r;

	if ((r = sd_bus_message_read(m, "s", &s)) < 0)
		return r;
	free(*ret);
	return (*ret = strdup(s)) ? 0 : -ENOMEM;
}

static int read_protectors(sd_bus_message *m, ts_vault_info *v)
{
	const char *id, *type, *desc, *k, *val;
	uint64_t created;
	int r;

	if ((r = sd_bus_message_enter_container(m, 'a', "(sssta{ss})")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'r', "sssta{ss}")) > 0) {
		ts_protector_info *np, *p;

		if ((r = sd_bus_message_read(m, "ssst", &id, &type, &desc, &created)) < 0)
			return r;
		if ((np = realloc(v->protectors, (v->n_protectors + 1) * sizeof(*np))) == NULL)
			return -ENOMEM;
		v->protectors = np;
		p = &v->protectors[v->n_protectors++];
		memset(p, 0, sizeof(*p));
		p->created = created;
		if (!(p->id = strdup(id)) || !(p->type = strdup(type)) || !(p->description = strdup(desc)))
			return -ENOMEM;
		if ((r = sd_bus_message_enter_container(m, 'a', "{ss}")) < 0)
			return r;
		while ((r = sd_bus_message_read(m, "{ss}", &k, &val)) > 0) {
			ts_kv *nf;

			if ((nf = realloc(p->facts, (p->n_facts + 1) * sizeof(*nf))) == NULL)
				return -ENOMEM;
			p->facts = nf;
			nf[p->n_facts].key = strdup(k);
			nf[p->n_facts].value = strdup(val);
			p->n_facts++;
			if (!nf[p->n_facts - 1].key || !nf[p->n_facts - 1].value)
				return -ENOMEM;
		}
		if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0 || (r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

/* Parse a GetAll reply (a{sv}); unknown properties are skipped, so the daemon may add some. */
static int parse_properties(sd_bus_message *m, ts_vault_info *v)
{
	const char *name;
	int r;

	if ((r = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return r;
	while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		if ((r = sd_bus_message_read(m, "s", &name)) < 0)
			return r;
#define VARIANT(sig, body)                                                                 \
	do {                                                                               \
		if ((r = sd_bus_message_enter_container(m, 'v', sig)) < 0 || (r = (body)) < 0 || \
		    (r = sd_bus_message_exit_container(m)) < 0)                               \
			return r;                                                          \
	} while (0)
		if (strcmp(name, "Name") == 0)
			VARIANT("s", read_string(m, &v->name));
		else if (strcmp(name, "Id") == 0)
			VARIANT("s", read_string(m, &v->id));
		else if (strcmp(name, "LockReason") == 0)
			VARIANT("s", read_string(m, &v->lock_reason));
		else if (strcmp(name, "Owner") == 0)
			VARIANT("u", sd_bus_message_read(m, "u", &v->owner));
		else if (strcmp(name, "KeyVersion") == 0)
			VARIANT("u", sd_bus_message_read(m, "u", &v->key_version));
		else if (strcmp(name, "MinKeyVersion") == 0)
			VARIANT("u", sd_bus_message_read(m, "u", &v->min_key_version));
		else if (strcmp(name, "LockChanged") == 0)
			VARIANT("t", sd_bus_message_read(m, "t", &v->lock_changed));
		else if (strcmp(name, "Locked") == 0)
			VARIANT("b", sd_bus_message_read(m, "b", &v->locked));
		else if (strcmp(name, "Protectors") == 0)
			VARIANT("a(sssta{ss})", read_protectors(m, v));
		else if (strcmp(name, "SharesNeeded") == 0)
			VARIANT("u", sd_bus_message_read(m, "u", &v->shares_needed));
		else if ((r = sd_bus_message_skip(m, "v")) < 0)
			return r;
#undef VARIANT
		if ((r = sd_bus_message_exit_container(m)) < 0)
			return r;
	}
	if (r < 0)
		return r;
	return sd_bus_message_exit_container(m);
}

int ts_client_vault_info(ts_client *c, const char *vault, ts_vault_info **ret)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_free_ char *path = NULL;
	ts_vault_info *v;
	int r;

	*ret = NULL;
	if ((r = ts_client_vault_path(c, vault, &path)) < 0)
		return r;
	if ((r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, path, "org.freedesktop.DBus.Properties",
	                                        "GetAll")) < 0 ||
	    (r = sd_bus_message_append(m, "s", TS_VAULT_IFACE)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = call(c, m, 0, &reply)) < 0)
		return r;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return NOMEM(c);
	if ((r = parse_properties(reply, v)) < 0 || !v->name || !v->id) {
		ts_vault_info_free(v);
		return r == -ENOMEM ? NOMEM(c) : ts_client_fail(c, -TS_E_FAILED, "unexpected properties from tokensealed");
	}
	if (!v->lock_reason && (v->lock_reason = strdup("")) == NULL) {
		ts_vault_info_free(v);
		return NOMEM(c);
	}
	*ret = v;
	return 0;
}

void ts_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int ts_client_list_vaults(ts_client *c, char ***ret, size_t *ret_n)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	char **v = NULL, **nv;
	const char *name, *path;
	size_t n = 0;
	int r;

	*ret = NULL;
	*ret_n = 0;
	if ((r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, TS_MANAGER_PATH, TS_MANAGER_IFACE,
	                                        "ListVaults")) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = call(c, m, 0, &reply)) < 0)
		return r;
	if ((r = sd_bus_message_enter_container(reply, 'a', "(so)")) < 0)
		goto bad;
	while ((r = sd_bus_message_read(reply, "(so)", &name, &path)) > 0) {
		if ((nv = realloc(v, (n + 2) * sizeof(*v))) == NULL)
			goto nomem;
		v = nv;
		if ((v[n] = strdup(name)) == NULL)
			goto nomem;
		v[++n] = NULL;
	}
	if (r < 0)
		goto bad;
	if (!v && (v = calloc(1, sizeof(*v))) == NULL)
		goto nomem;
	*ret = v;
	*ret_n = n;
	return 0;
nomem:
	ts_strv_free(v);
	return NOMEM(c);
bad:
	ts_strv_free(v);
	return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
}

/* ---- methods ------------------------------------------------------------------------------- */

int ts_client_create_vault(ts_client *c, const char *name, const ts_kv *opts, size_t n_opts,
                           char **ret_key, size_t *ret_key_len)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_close_ int rfd = -1, wfd = -1;
	int p[2], r;

	*ret_key = NULL;
	*ret_key_len = 0;
	if (!name || !*name)
		name = c->default_vault;
	if (!name)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "no vault name given");
	if (pipe2(p, O_CLOEXEC) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "pipe: %s", strerror(errno));
	rfd = p[0];
	wfd = p[1];
	if ((r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, TS_MANAGER_PATH, TS_MANAGER_IFACE,
	                                        "CreateVault")) < 0 ||
	    (r = sd_bus_message_append(m, "s", name)) < 0 || (r = ts_client_append_kv(m, opts, n_opts)) < 0 ||
	    (r = sd_bus_message_append(m, "h", wfd)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = call(c, m, TS_CLIENT_SLOW_TIMEOUT_USEC, &reply)) < 0)
		return r;
	if ((r = read_secret_pipe(c, rfd, ret_key, ret_key_len)) < 0)
		return r;
	if (!*ret_key)
		return ts_client_fail(c, -TS_E_FAILED, "vault created, but tokensealed sent no recovery key");
	return shrink_secret(c, ret_key, *ret_key_len);
}

struct unlock_wait {
	ts_client *c;
	const char *daemon;              /* the unique name of tokensealed: only its signals are believed */
	void (*on_touch)(void *ud, const char *protector);
	void *ud;
	sd_bus_message *reply;
	int done;
};

static int on_touch_requested(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct unlock_wait *w = userdata;
	const char *sender = sd_bus_message_get_sender(m), *id;

	/* On the bus, from the daemon's name; on a direct connection (no bus names) the peer is the daemon. */
	if (w->on_touch && w->daemon && ((sender && strcmp(sender, w->daemon) == 0) || (!sender && !*w->daemon)) &&
	    sd_bus_message_read(m, "s", &id) >= 0)
		w->on_touch(w->ud, id);
	return 0;
}

static int on_unlock_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct unlock_wait *w = userdata;

	w->reply = sd_bus_message_ref(m);
	w->done = 1;
	return 0;
}

int ts_client_unlock(ts_client *c, const char *vault, const char *protector, const uint8_t *secret,
                     size_t secret_len, const ts_unlock_opts *o, char **ret_id, unsigned *ret_needed)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *owner = NULL;
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *path = NULL;
	sd_bus_slot *match = NULL, *call_slot = NULL;
	struct unlock_wait w = { .c = c };
	const char *id;
	uint32_t needed;
	int r;

	if (ret_id)
		*ret_id = NULL;
	if (ret_needed)
		*ret_needed = 0;
	if ((r = ts_client_vault_path(c, vault, &path)) < 0)
		return r;
	if ((r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, path, TS_VAULT_IFACE, "Unlock")) < 0)
		return ts_client_error(c, r, NULL);
	if ((fd = ts_client_secret_pipe(c, secret, secret ? secret_len : 0)) < 0)
		return fd;
	if ((r = sd_bus_message_append(m, "sh", protector ? protector : "", fd)) < 0 ||
	    (r = sd_bus_message_open_container(m, 'a', "{ss}")) < 0 ||
	    (o && o->source && (r = sd_bus_message_append(m, "{ss}", "source", o->source)) < 0) ||
	    (o && o->need_user && (r = sd_bus_message_append(m, "{ss}", "need_user", "yes")) < 0) ||
	    (r = sd_bus_message_close_container(m)) < 0)
		return ts_client_error(c, r, NULL);
	/* The daemon says when the key waits for a touch; believed only from the daemon itself. */
	if (o && o->on_touch) {
		w.on_touch = o->on_touch;
		w.ud = o->ud;
		if (sd_bus_is_bus_client(c->bus) <= 0)
			w.daemon = "";
		else if (sd_bus_call_method(c->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
		                            "GetNameOwner", NULL, &owner, "s", TS_BUS_NAME) < 0 ||
		         sd_bus_message_read(owner, "s", &w.daemon) < 0)
			w.daemon = NULL;
		if (w.daemon)
			(void)sd_bus_match_signal(c->bus, &match, NULL, path, TS_VAULT_IFACE, "TouchRequested",
			                          on_touch_requested, &w);
	}
	r = sd_bus_call_async(c->bus, &call_slot, m, on_unlock_reply, &w,
	                      o && o->timeout_usec ? o->timeout_usec : TS_CLIENT_SLOW_TIMEOUT_USEC);
	while (r >= 0 && !w.done) {
		if ((r = sd_bus_process(c->bus, NULL)) > 0)
			continue;
		if (r >= 0)
			r = sd_bus_wait(c->bus, UINT64_MAX);
	}
	sd_bus_slot_unref(call_slot);
	sd_bus_slot_unref(match);
	if (r < 0) {
		sd_bus_message_unref(w.reply);
		return ts_client_error(c, r, NULL);
	}
	if (sd_bus_message_is_method_error(w.reply, NULL)) {
		r = ts_client_error(c, -EIO, sd_bus_message_get_error(w.reply));
		sd_bus_message_unref(w.reply);
		return r;
	}
	r = sd_bus_message_read(w.reply, "su", &id, &needed);
	if (r >= 0 && ret_id && (*ret_id = strdup(id)) == NULL)
		r = -ENOMEM;
	sd_bus_message_unref(w.reply);
	if (r < 0)
		return r == -ENOMEM ? NOMEM(c) : ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	if (ret_needed)
		*ret_needed = needed;
	c->last_code = 0;
	return 0;
}

int ts_client_lock(ts_client *c, const char *vault)
{
	_cleanup_msg_ sd_bus_message *m = NULL;
	int r;

	if ((r = ts_client_new_vault_call(c, vault, "Lock", &m)) < 0)
		return r;
	return call(c, m, 0, NULL);
}

int ts_client_probe_protectors(ts_client *c, const char *vault, ts_vault_info *v)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	const char *id, *presence;
	int r;

	if ((r = ts_client_new_vault_call(c, vault, "ProbeProtectors", &m)) < 0)
		return r;
	if ((r = call(c, m, 0, &reply)) < 0)
		return r;
	if (sd_bus_message_enter_container(reply, 'a', "(ss)") < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	while ((r = sd_bus_message_read(reply, "(ss)", &id, &presence)) > 0) {
		/* Match by id: the list may have changed between the two calls. */
		for (size_t i = 0; i < v->n_protectors; i++) {
			ts_protector_info *p = &v->protectors[i];

			if (strcmp(p->id, id) != 0)
				continue;
			free(p->presence);
			if ((p->presence = strdup(presence)) == NULL)
				return ts_client_fail(c, -TS_E_NOMEM, NULL);
		}
	}
	if (r < 0 || sd_bus_message_exit_container(reply) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	return 0;
}

int ts_client_rotate(ts_client *c, const char *vault, const ts_kv *opts, size_t n_opts, uint32_t *ret_version)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	int r;

	if ((r = ts_client_new_vault_call(c, vault, "RotateKey", &m)) < 0)
		return r;
	if ((r = ts_client_append_kv(m, opts, n_opts)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = call(c, m, TS_CLIENT_SLOW_TIMEOUT_USEC, &reply)) < 0)
		return r;
	if (sd_bus_message_read(reply, "u", ret_version) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	return 0;
}

int ts_client_add_protector(ts_client *c, const char *vault, const char *type, const ts_kv *opts, size_t n_opts,
                            const uint8_t *secret_in, size_t secret_in_len, char **ret_id,
                            char **ret_secret, size_t *ret_secret_len)
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_close_ int in_fd = -1, out_rfd = -1, out_wfd = -1;
	const char *id;
	int p[2], r;

	*ret_id = NULL;
	*ret_secret = NULL;
	*ret_secret_len = 0;
	if ((r = ts_client_new_vault_call(c, vault, "AddProtector", &m)) < 0)
		return r;
	if ((in_fd = ts_client_secret_pipe(c, secret_in, secret_in ? secret_in_len : 0)) < 0)
		return in_fd;
	if (pipe2(p, O_CLOEXEC) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "pipe: %s", strerror(errno));
	out_rfd = p[0];
	out_wfd = p[1];
	if ((r = sd_bus_message_append(m, "s", type)) < 0 || (r = ts_client_append_kv(m, opts, n_opts)) < 0 ||
	    (r = sd_bus_message_append(m, "hh", in_fd, out_wfd)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = call(c, m, TS_CLIENT_SLOW_TIMEOUT_USEC, &reply)) < 0)
		return r;
	if (sd_bus_message_read(reply, "s", &id) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	if ((*ret_id = strdup(id)) == NULL)
		return NOMEM(c);
	if ((r = read_secret_pipe(c, out_rfd, ret_secret, ret_secret_len)) < 0 ||
	    (r = shrink_secret(c, ret_secret, *ret_secret_len)) < 0) {
		free(*ret_id);
		*ret_id = NULL;
		return r;
	}
	return 0;
}

int ts_client_revoke(ts_client *c, const char *vault, const char *id)
{
	_cleanup_msg_ sd_bus_message *m = NULL;
	int r;

	if ((r = ts_client_new_vault_call(c, vault, "RevokeProtector", &m)) < 0)
		return r;
	if ((r = sd_bus_message_append(m, "s", id)) < 0)
		return ts_client_error(c, r, NULL);
	return call(c, m, TS_CLIENT_SLOW_TIMEOUT_USEC, NULL);
}
