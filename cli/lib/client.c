/* client.c — libtokenseal: connect to tokensealed and wrap/unwrap data keys (the API of tokenseal.h). */
#define _GNU_SOURCE 1  /* pipe2, secure_getenv, memfd_create */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "client-internal.h"

#define DBUS_ERROR_PREFIX "org.freedesktop.DBus.Error."
#define TS_ERROR_PREFIX "org.tokenseal1.Error."


int ts_client_fail(ts_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (code >= 0)
		code = -TS_E_FAILED;   /* a caller's bug: never a success */
	if (c) {
		c->last_code = code;
		va_start(ap, fmt);
		vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
		va_end(ap);
	}
	return code;
}

int ts_client_last_code(const ts_client *c)
{
	return c ? c->last_code : -TS_E_FAILED;
}

const char *ts_client_last_error(const ts_client *c)
{
	if (!c)
		return "no client";
	return c->last_error;
}

/* Errors of the bus itself (not of tokensealed) that have a meaning for our callers. */
static int bus_error_code(const char *name)
{
	static const struct {
		const char *name;
		int code;
	} map[] = {
		{ DBUS_ERROR_PREFIX "ServiceUnknown", TS_E_NO_DAEMON },
		{ DBUS_ERROR_PREFIX "NameHasNoOwner", TS_E_NO_DAEMON },
		{ DBUS_ERROR_PREFIX "NoServer", TS_E_NO_DAEMON },
		{ DBUS_ERROR_PREFIX "Disconnected", TS_E_NO_DAEMON },
		{ DBUS_ERROR_PREFIX "NoReply", TS_E_NO_DAEMON },
		{ DBUS_ERROR_PREFIX "Timeout", TS_E_NO_DAEMON },
		{ DBUS_ERROR_PREFIX "AccessDenied", TS_E_ACCESS_DENIED },
		/* A vault's object exists only while the vault does (fallback vtable). */
		{ DBUS_ERROR_PREFIX "UnknownObject", TS_E_NO_SUCH_VAULT },
		{ DBUS_ERROR_PREFIX "InvalidArgs", TS_E_INVALID_ARGS },
		{ DBUS_ERROR_PREFIX "LimitsExceeded", TS_E_LIMIT },
		{ DBUS_ERROR_PREFIX "NoMemory", TS_E_NOMEM },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(name, map[i].name) == 0)
			return map[i].code;
	return 0;
}

int ts_client_error(ts_client *c, int r, const sd_bus_error *error)
{
	int code;

	if (error && sd_bus_error_is_set(error)) {
		if (strncmp(error->name, TS_ERROR_PREFIX, sizeof(TS_ERROR_PREFIX) - 1) == 0)
			code = ts_error_from_dbus_name(error->name);
		else if ((code = bus_error_code(error->name)) == 0)
			code = TS_E_FAILED;
		if (code == TS_E_NO_DAEMON)
			return ts_client_fail(c, -code, "tokensealed is not reachable (%s)",
			                      error->message ? error->message : error->name);
		if (code == TS_E_NO_SUCH_VAULT && strncmp(error->name, DBUS_ERROR_PREFIX, sizeof(DBUS_ERROR_PREFIX) - 1) == 0)
			return ts_client_fail(c, -code, "no vault named '%s'", c->vault);
		return ts_client_fail(c, -code, "%s", error->message && *error->message ? error->message
		                                                                       : ts_strerror(code));
	}
	if (r == -ECONNRESET || r == -ENOTCONN || r == -ECONNREFUSED || r == -ENOENT || r == -ETIMEDOUT)
		return ts_client_fail(c, -TS_E_NO_DAEMON, "tokensealed is not reachable: %s", strerror(-r));
	if (r == -ENOMEM)
		return ts_client_fail(c, -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM));
	return ts_client_fail(c, -TS_E_FAILED, "D-Bus: %s", strerror(r < 0 ? -r : EIO));
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int open_address(sd_bus **ret, const char *address)
{
	sd_bus *bus = NULL;
	int r;

	if ((r = sd_bus_new(&bus)) < 0)
		return r;
	if ((r = sd_bus_set_address(bus, address)) < 0 || (r = sd_bus_set_bus_client(bus, 1)) < 0 ||
	    (r = sd_bus_start(bus)) < 0) {
		sd_bus_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

/*
 * Wait until bus has done its handshake (on a bus: and its Hello), by
 * deadline (CLOCK_MONOTONIC µs). sd-bus's own limits are 90 s for the
 * handshake and 25 s for Hello, and a call made before waits them out:
 * sd_bus_call's timeout starts only once the connection is up.
 */
static int wait_ready(sd_bus *bus, uint64_t deadline)
{
	int r;

	while ((r = sd_bus_is_ready(bus)) == 0) {
		uint64_t now = now_usec();

		if (now >= deadline)
			return -ETIMEDOUT;
		if ((r = sd_bus_process(bus, NULL)) < 0)
			return r;
		if (r == 0 && (r = sd_bus_wait(bus, deadline - now)) < 0)
			return r;
	}
	return r < 0 ? r : 0;
}

/*
 * connect() to a Unix socket whose listener does not accept (a stopped
 * daemon) succeeds until the listen backlog is full, and then waits for a
 * free place as long as the socket's send timeout allows: without one, for
 * ever. With one, it fails with EAGAIN at the deadline.
 */
static int connect_by(int fd, const struct sockaddr_un *sa, uint64_t deadline)
{
	uint64_t now = now_usec(), left;
	struct timeval tv;

	if (now >= deadline)
		return -ETIMEDOUT;
	left = deadline - now;   /* > 0: a zero timeout would mean none */
	tv.tv_sec = (time_t)(left / 1000000);
	tv.tv_usec = (suseconds_t)(left % 1000000);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	return 0;
}

/*
 * A direct connection to tokensealed's private socket at path: the same
 * D-Bus protocol with no bus daemon in between. The peer must be root or
 * this user (anyone else serving the socket could read what we send). The
 * connect and the handshake are done by deadline, or given up: nothing but
 * the handshake is sent before the daemon has answered it.
 */
static int open_direct(sd_bus **ret, const char *path, uint64_t deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred uc;
	socklen_t len = sizeof(uc);
	sd_bus *bus = NULL;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	/* The send timeout stays set, to no effect: sd-bus makes the socket non-blocking. */
	if ((r = connect_by(fd, &sa, deadline)) < 0) {
		close(fd);
		return r;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || len != sizeof(uc) ||
	    (uc.uid != 0 && uc.uid != geteuid())) {
		close(fd);
		return -EPERM;
	}
	if ((r = sd_bus_new(&bus)) < 0) {
		close(fd);
		return r;
	}
	if ((r = sd_bus_set_fd(bus, fd, fd)) < 0) {
		close(fd);
		sd_bus_unref(bus);
		return r;
	}
	if ((r = sd_bus_negotiate_fds(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0 ||
	    (r = wait_ready(bus, deadline)) < 0) {
		/* Not flushed: a flush waits for the handshake, up to sd-bus's 90 s, on a daemon that is not answering. */
		sd_bus_close_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

int ts_client_open_direct(sd_bus **ret, const char *path)
{
	return open_direct(ret, path, now_usec() + TS_CLIENT_DIRECT_USEC);
}

/*
 * The connection ts_client_open describes into *ret. With a deadline (not
 * 0) everything is done by then, falling back to the system bus included,
 * and a bus connection is waited for; without one the private socket gets
 * TS_CLIENT_DIRECT_USEC, and a bus sd-bus's own limits.
 */
static int open_connection(sd_bus **ret, const char *bus, uint64_t deadline)
{
	uint64_t direct_by;
	const char *path;
	int r;

	if (!bus || !*bus)
		bus = secure_getenv("TOKENSEAL_BUS");
	if (!bus || !*bus) {
		/*
		 * No bus asked for: the private socket first, then the system bus.
		 * $TOKENSEAL_PRIVATE_SOCKET names another socket, and then only it,
		 * for the whole time given. The default one gets a second at most,
		 * so that a daemon that refuses the connection (too many), or is slow
		 * to take it, leaves time to reach it over the bus.
		 */
		direct_by = now_usec() + TS_CLIENT_DIRECT_USEC;
		path = secure_getenv("TOKENSEAL_PRIVATE_SOCKET");
		if (path && *path)
			return open_direct(ret, path, deadline ? deadline : direct_by);
		if ((r = open_direct(ret, TS_PRIVATE_SOCKET, deadline && deadline < direct_by ? deadline : direct_by)) >= 0)
			return r;
		/* Only in the time left: a fall-back never doubles the wait. */
		if (deadline && now_usec() >= deadline)
			return -ETIMEDOUT;
		bus = "system";
	}
	if (strcmp(bus, "system") == 0)
		r = sd_bus_open_system(ret);
	else if (strcmp(bus, "session") == 0)
		r = sd_bus_open_user(ret);
	else
		r = open_address(ret, bus);
	if (r < 0 || !deadline)
		return r;
	if ((r = wait_ready(*ret, deadline)) < 0)
		*ret = sd_bus_close_unref(*ret);
	return r;
}

int ts_client_open_timeout(ts_client **ret, const char *bus, uint64_t timeout_usec)
{
	uint64_t deadline = timeout_usec ? now_usec() + timeout_usec : 0, now;
	ts_client *c;
	struct passwd *pw;
	int r;

	if (!ret)
		return -TS_E_INVALID_ARGS;
	*ret = NULL;
	/* Plaintext lands in sodium_malloc() memory: the library must be ready. */
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -TS_E_NOMEM;
	if ((r = open_connection(&c->bus, bus, deadline)) < 0) {
		ts_client_free(c);
		return -TS_E_NO_DAEMON;
	}
	/* Calls without a timeout of their own get what connecting left (never 0: that is sd-bus's 25 s). */
	if (deadline) {
		now = now_usec();
		if ((r = sd_bus_set_method_call_timeout(c->bus, deadline > now ? deadline - now : 1)) < 0) {
			ts_client_free(c);
			return -TS_E_FAILED;
		}
	}
	/* The default vault is named after the user; errno is how getpwuid says "no entry". */
	errno = 0;
	if ((pw = getpwuid(geteuid())) != NULL && pw->pw_name && (c->default_vault = strdup(pw->pw_name)) == NULL) {
		ts_client_free(c);
		return -TS_E_NOMEM;
	}
	*ret = c;
	return 0;
}

int ts_client_open(ts_client **ret, const char *bus)
{
	return ts_client_open_timeout(ret, bus, 0);
}

void ts_client_free(ts_client *c)
{
	if (!c)
		return;
	sd_bus_flush_close_unref(c->bus);
	free(c->default_vault);
	free(c);
}

/*
 * "NAME" or "OWNER:NAME" (OWNER a uid or a user name) into the owner's uid
 * and a pointer to NAME. 0 or a failure recorded on c.
 */
int ts_client_vault_ref(ts_client *c, const char *vault, uint32_t *ret_owner, const char **ret_name)
{
	const char *colon;
	char owner[256];
	struct passwd pw, *res = NULL;
	char buf[4096];
	size_t len;
	char *end;
	unsigned long long v;

	if (!vault || !*vault)
		vault = c->default_vault;
	if (!vault)
		return ts_client_fail(c, -TS_E_NO_SUCH_VAULT, "no vault given and no user name for uid %u",
		                      (unsigned)geteuid());
	if ((colon = strchr(vault, ':')) == NULL) {
		*ret_owner = (uint32_t)geteuid();
		*ret_name = vault;
		return 0;
	}
	if ((len = (size_t)(colon - vault)) == 0 || len >= sizeof(owner))
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "'%s': expected OWNER:NAME (a user name or uid before the ':')",
		                      vault);
	memcpy(owner, vault, len);
	owner[len] = '\0';
	*ret_name = colon + 1;
	errno = 0;
	v = strtoull(owner, &end, 10);
	if (owner[0] >= '0' && owner[0] <= '9' && !*end && !errno && v < UINT32_MAX) {
		*ret_owner = (uint32_t)v;
		return 0;
	}
	if (getpwnam_r(owner, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return ts_client_fail(c, -TS_E_NO_SUCH_VAULT, "no user '%s' (in '%s')", owner, vault);
	*ret_owner = (uint32_t)res->pw_uid;
	return 0;
}

int ts_client_vault_path(ts_client *c, const char *vault, char **ret)
{
	char prefix[sizeof(TS_USER_PATH_PREFIX) + 32];
	const char *name;
	uint32_t owner;
	int r;

	if ((r = ts_client_vault_ref(c, vault, &owner, &name)) < 0)
		return r;
	if (strlen(name) > TS_VAULT_NAME_MAX)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "vault name longer than %d characters", TS_VAULT_NAME_MAX);
	/* Messages name the vault as the caller wrote it. */
	snprintf(c->vault, sizeof(c->vault), "%s", vault && *vault ? vault : name);
	snprintf(prefix, sizeof(prefix), TS_USER_PATH_PREFIX "/%" PRIu32 "/vault", owner);
	if (sd_bus_path_encode(prefix, name, ret) < 0)
		return ts_client_fail(c, -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM));
	return 0;
}

int ts_client_append_kv(sd_bus_message *m, const ts_kv *kv, size_t n)
{
	int r;

	if ((r = sd_bus_message_open_container(m, 'a', "{ss}")) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = sd_bus_message_append(m, "{ss}", kv[i].key, kv[i].value)) < 0)
			return r;
	return sd_bus_message_close_container(m);
}

static int check_ctx(ts_client *c, const ts_kv *ctx, size_t n_ctx)
{
	if (n_ctx && !ctx)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "context is NULL but has %zu entries", n_ctx);
	if (n_ctx > TS_CONTEXT_MAX_ENTRIES)
		return ts_client_fail(c, -TS_E_LIMIT, "context has more than %d entries", TS_CONTEXT_MAX_ENTRIES);
	for (size_t i = 0; i < n_ctx; i++)
		if (!ctx[i].key || !ctx[i].value)
			return ts_client_fail(c, -TS_E_INVALID_ARGS, "context entry %zu has a NULL key or value", i);
	return 0;
}

/*
 * Append a data key as "ay" without leaving a copy in freed heap. sd-bus
 * copies an array into the message's body buffer and grows that buffer with
 * realloc as later arguments are appended, freeing the old one unwiped;
 * sd_bus_message_sensitive() wipes only the last one. A sealed memfd part is
 * mapped by sd-bus for the send and unmapped with the message: the key never
 * sits in the heap, and the message is not marked sensitive (nothing in it
 * to wipe; and sd-bus 252 would try to wipe the read-only padding part that
 * follows an array of a length not a multiple of 4, and crash). Without
 * memfd (old kernel, fd limit) the key goes into the body, and the message
 * is marked sensitive so that at least its final buffer is wiped.
 */
static int append_secret_array(sd_bus_message *m, const uint8_t *p, size_t len)
{
	size_t done = 0;
	ssize_t n;
	int fd, r;

	if (len == 0 || (fd = memfd_create("tokenseal-data-key", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0) {
		if ((r = sd_bus_message_sensitive(m)) < 0)
			return r;
		return sd_bus_message_append_array(m, 'y', p, len);
	}
	while (done < len) {
		n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return n < 0 ? -errno : -EIO;
		}
		done += (size_t)n;
	}
	r = sd_bus_message_append_array_memfd(m, 'y', fd, 0, len);
	close(fd);
	return r;
}

/*
 * Build a call to a vault method whose arguments are "ay a{ss}" (or
 * "u a{ss}" when data is NULL) and return the reply. secret: data is a
 * plaintext (Wrap), kept out of the heap (append_secret_array). The reply
 * is marked sensitive: the methods that return a plaintext wipe their copy
 * of it, and sd-bus wipes the whole received body on free.
 */
static int vault_call(ts_client *c, const char *vault, const char *method, const uint8_t *data, size_t len,
                      int secret, uint32_t u, const ts_kv *ctx, size_t n_ctx, sd_bus_message **ret_reply)
{
	_cleanup_msg_ sd_bus_message *m = NULL;
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	char *path = NULL;
	int r;

	if ((r = check_ctx(c, ctx, n_ctx)) < 0)
		return r;
	if ((r = ts_client_vault_path(c, vault, &path)) < 0)
		return r;
	r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, path, TS_VAULT_IFACE, method);
	free(path);
	if (r < 0)
		return ts_client_error(c, r, NULL);
	if (data && secret)
		r = append_secret_array(m, data, len);
	else if (data)
		r = sd_bus_message_append_array(m, 'y', data, len);
	else
		r = sd_bus_message_append(m, "u", u);
	if (r < 0 || (r = ts_client_append_kv(m, ctx, n_ctx)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = sd_bus_call(c->bus, m, 0, &error, ret_reply)) < 0)
		return ts_client_error(c, r, &error);
	(void)sd_bus_message_sensitive(*ret_reply);
	return 0;
}

/* Copy an "ay" of the reply to malloc()ed memory (blobs: not secret). */
static int read_blob(ts_client *c, sd_bus_message *reply, uint8_t **ret, size_t *ret_len)
{
	const void *p;
	size_t n;
	int r;

	if ((r = sd_bus_message_read_array(reply, 'y', &p, &n)) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	/* malloc(0) may return NULL: keep one byte so "empty" is not "failed". */
	if ((*ret = malloc(n ? n : 1)) == NULL)
		return ts_client_fail(c, -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM));
	memcpy(*ret, p, n);
	*ret_len = n;
	return 0;
}

/*
 * Copy an "ay" of the reply into secure memory and wipe the message's copy.
 * read_array hands out a pointer into the message body, which sd-bus
 * allocated for us and frees with the message: writing to it is safe, and
 * the only way to keep the plaintext from lingering in freed heap.
 */
static int read_secret(ts_client *c, sd_bus_message *reply, uint8_t **ret, size_t *ret_len)
{
	const void *p;
	size_t n;
	int r;

	if ((r = sd_bus_message_read_array(reply, 'y', &p, &n)) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	/* A data key from the kept pool (secret.c), not a sodium_malloc of its own. */
	if ((*ret = ts_client_secret_alloc(n)) == NULL) {
		sodium_memzero((void *)(uintptr_t)p, n);
		return ts_client_fail(c, -TS_E_NOMEM, "%s", ts_strerror(TS_E_NOMEM));
	}
	memcpy(*ret, p, n);
	sodium_memzero((void *)(uintptr_t)p, n);
	*ret_len = n;
	return 0;
}

int ts_wrap(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
            const uint8_t *pt, size_t pt_len, uint8_t **ret_blob, size_t *ret_blob_len)
{
	_cleanup_msg_ sd_bus_message *reply = NULL;
	int r;

	if (!c || !ret_blob || !ret_blob_len || (!pt && pt_len))
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
	if (pt_len > TS_PLAINTEXT_MAX)
		return ts_client_fail(c, -TS_E_LIMIT, "plaintext longer than %d bytes", TS_PLAINTEXT_MAX);
	if ((r = vault_call(c, vault, "Wrap", pt ? pt : (const uint8_t *)"", pt_len, 1, 0, ctx, n_ctx, &reply)) < 0)
		return r;
	if ((r = read_blob(c, reply, ret_blob, ret_blob_len)) < 0)
		return r;
	c->last_code = 0;
	return 0;
}

int ts_unwrap(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
              const uint8_t *blob, size_t blob_len, uint8_t **ret_pt, size_t *ret_pt_len)
{
	_cleanup_msg_ sd_bus_message *reply = NULL;
	int r;

	if (!c || !blob || !ret_pt || !ret_pt_len)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
	if ((r = vault_call(c, vault, "Unwrap", blob, blob_len, 0, 0, ctx, n_ctx, &reply)) < 0)
		return r;
	if ((r = read_secret(c, reply, ret_pt, ret_pt_len)) < 0)
		return r;
	c->last_code = 0;
	return 0;
}

int ts_unwrap_into(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx, const uint8_t *blob,
                   size_t blob_len, uint8_t *pt, size_t pt_size, size_t *ret_pt_len)
{
	_cleanup_msg_ sd_bus_message *reply = NULL;
	const void *p;
	size_t n;
	int r;

	if (ret_pt_len)
		*ret_pt_len = 0;
	if (!c || !blob || !ret_pt_len || (!pt && pt_size)) {
		r = ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
		goto fail;
	}
	if ((r = vault_call(c, vault, "Unwrap", blob, blob_len, 0, 0, ctx, n_ctx, &reply)) < 0)
		goto fail;
	if (sd_bus_message_read_array(reply, 'y', &p, &n) < 0) {
		r = ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
		goto fail;
	}
	if (n > pt_size) {
		sodium_memzero((void *)(uintptr_t)p, n);
		*ret_pt_len = n;
		r = ts_client_fail(c, -TS_E_LIMIT, "the plaintext is %zu bytes, the buffer %zu", n, pt_size);
		goto fail;
	}
	if (n) {
		memcpy(pt, p, n);
		sodium_memzero((void *)(uintptr_t)p, n);
	}
	*ret_pt_len = n;
	c->last_code = 0;
	return 0;
fail:
	if (pt && pt_size)
		sodium_memzero(pt, pt_size);
	return r;
}

int ts_rewrap(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
              const uint8_t *blob, size_t blob_len, uint8_t **ret_blob, size_t *ret_blob_len)
{
	_cleanup_msg_ sd_bus_message *reply = NULL;
	int r;

	if (!c || !blob || !ret_blob || !ret_blob_len)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
	if ((r = vault_call(c, vault, "Rewrap", blob, blob_len, 0, 0, ctx, n_ctx, &reply)) < 0)
		return r;
	if ((r = read_blob(c, reply, ret_blob, ret_blob_len)) < 0)
		return r;
	c->last_code = 0;
	return 0;
}

int ts_generate_data_key(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                         size_t size, uint8_t **ret_pt, uint8_t **ret_blob, size_t *ret_blob_len)
{
	_cleanup_msg_ sd_bus_message *reply = NULL;
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	int r;

	if (!c || !ret_pt || !ret_blob || !ret_blob_len)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
	if (size == 0 || size > TS_PLAINTEXT_MAX)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "size must be 1..%d bytes", TS_PLAINTEXT_MAX);
	if ((r = vault_call(c, vault, "GenerateDataKey", NULL, 0, 0, (uint32_t)size, ctx, n_ctx, &reply)) < 0)
		return r;
	if ((r = read_secret(c, reply, &pt, &pt_len)) < 0)
		return r;
	/* The caller knows the size only from its request: hold the daemon to it. */
	if (pt_len != size) {
		ts_secret_free(pt, pt_len);
		return ts_client_fail(c, -TS_E_FAILED, "tokensealed returned a %zu-byte key, not %zu", pt_len, size);
	}
	if ((r = read_blob(c, reply, ret_blob, ret_blob_len)) < 0) {
		ts_secret_free(pt, pt_len);
		return r;
	}
	*ret_pt = pt;
	c->last_code = 0;
	return 0;
}

int ts_client_new_vault_call(ts_client *c, const char *vault, const char *method, sd_bus_message **ret)
{
	char *path = NULL;
	int r;

	if ((r = ts_client_vault_path(c, vault, &path)) < 0)
		return r;
	r = sd_bus_message_new_method_call(c->bus, ret, TS_BUS_NAME, path, TS_VAULT_IFACE, method);
	free(path);
	return r < 0 ? ts_client_error(c, r, NULL) : 0;
}
