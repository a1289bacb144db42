/* fuzz_dbus_args.c — libFuzzer harness: hostile method calls dispatched through the daemon's real vtables on an in-process bus pair. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/audit.h"
#include "bus/daemon.h"
#include "bus/direct_conn.h"
#include "bus/log.h"
#include "bus/manager.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/serve.h"
#include "bus/state.h"
#include "bus/vault_object.h"
#include "protectors/protector.h"
#include "store.h"
#include "fuzz.h"

/*
 * The daemon as tokensealed runs it, minus the system bus: its Manager and
 * Vault vtables (ts_serve: what tokensealed serves on each connection) served by
 * sd-bus in server mode on one end of a socketpair, a client connection on
 * the other, both on one sd-event loop in this process. The caller is this
 * process (its uid, from the socket's peer credentials, as on a direct
 * connection). At start the harness creates, through the real CreateVault,
 * a vault "fuzz" it owns; it is unlocked, with a recovery protector (the
 * only backend here: no token helper is ever started).
 *
 * Each input is one method call, its method picked by the first byte, its
 * arguments built from the rest (sd-bus refuses any other signature before
 * a handler runs, so the harness builds the method's own). It goes through
 * sd-bus's real dispatch: the filter, the vtable, the authorization table,
 * the handler, the reply. Invariants:
 *   - every error the daemon answers is named: org.tokenseal1.Error.*, or
 *     UnknownObject (a vault the caller may not see): never a bare errno
 *     (System.Error.*) nor sd-bus's generic Failed;
 *   - Wrap and GenerateDataKey that succeed give a blob that Unwrap, with
 *     the same context, turns back into the same plaintext;
 *   - an ok-* seed (TS_FUZZ_EXPECT_VALID) is not refused for its arguments'
 *     shape (InvalidArgs), and a call that needs nothing but its arguments
 *     (Wrap, GenerateDataKey, RotateKey, GetVault, CreateVault) succeeds
 *     (CreateVault: or finds the vault it made when libFuzzer ran it before).
 *
 * Input after the method byte, consumed as needed (missing bytes read as 0):
 *   ay     2-byte big-endian length, bytes
 *   s      1-byte length, bytes (an input that is not valid UTF-8 is dropped)
 *   a{ss}  1-byte count, then s, s per entry
 *   aay    2-byte count, then ay per item
 *   as     1-byte count, then s per item
 *   u      4 bytes big-endian
 *   h      none: an fd the daemon reads gets an empty pipe, one it writes a pipe whose other end is held open
 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum method {
	M_WRAP, M_UNWRAP, M_REWRAP, M_GENERATE, M_UNWRAP_BATCH, M_REWRAP_BATCH, M_ROTATE_KEY,
	M_ADD_PROTECTOR, M_CREATE_VAULT, M_UNLOCK, M_GET_VAULT, M_SET_ESCROW, M_AGE_UNWRAP, M_UNWRAP_BATCH_PACKED,
	M_REWRAP_BATCH_PACKED, M_COUNT
};

static const char *const method_names[M_COUNT] = {
	"Wrap", "Unwrap", "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch", "RotateKey",
	"AddProtector", "CreateVault", "Unlock", "GetVault", "SetEscrow", "AgeUnwrap", "UnwrapBatchPacked",
	"RewrapBatchPacked",
};

#define MAX_ITEMS 300
/* Loop turns a reply may take: the call, its dispatch, the reply, with room for a secret read from the loop. */
#define TURNS_MAX 64

static ts_daemon d = { .config = { .fido2_timeout_ms = 1000 } };
static sd_bus *client;
static char *vault_path;
static char state_dir[PATH_MAX];

typedef struct input {
	const uint8_t *p;
	size_t n;
} input;

static size_t take(input *in, void *out, size_t n)
{
	size_t k = n < in->n ? n : in->n;

	memset(out, 0, n);
	memcpy(out, in->p, k);
	in->p += k;
	in->n -= k;
	return k;
}

static unsigned take_u8(input *in)
{
	uint8_t b;

	take(in, &b, 1);
	return b;
}

static unsigned take_u16(input *in)
{
	uint8_t b[2];

	take(in, b, 2);
	return (unsigned)b[0] << 8 | b[1];
}

static uint32_t take_u32(input *in)
{
	return (uint32_t)take_u16(in) << 16 | take_u16(in);
}

static const uint8_t *take_bytes(input *in, size_t *n)
{
	const uint8_t *p = in->p;

	if (*n > in->n)
		*n = in->n;
	in->p += *n;
	in->n -= *n;
	return p;
}

/* A NUL-terminated copy of a length-prefixed string (NUL inside is kept: append stops there). */
static char *take_str(input *in)
{
	size_t n = take_u8(in);
	const uint8_t *p = take_bytes(in, &n);
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static int append_str(sd_bus_message *m, input *in)
{
	char *s = take_str(in);
	int r = sd_bus_message_append(m, "s", s);

	free(s);
	return r;
}

static int append_kv(sd_bus_message *m, input *in)
{
	size_t n = take_u8(in);
	int r;

	if ((r = sd_bus_message_open_container(m, 'a', "{ss}")) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		char *k = take_str(in), *v = take_str(in);

		r = sd_bus_message_append(m, "{ss}", k, v);
		free(k);
		free(v);
		if (r < 0)
			return r;
	}
	return sd_bus_message_close_container(m);
}

static int append_ay(sd_bus_message *m, input *in)
{
	size_t n = take_u16(in);
	const uint8_t *p = take_bytes(in, &n);

	return sd_bus_message_append_array(m, 'y', p, n);
}

/*
 * The fds of one call: each pipe's end the daemon gets is appended (sd-bus
 * duplicates it); the end kept here is closed after the reply. For an fd
 * the daemon reads, the kept (write) end is closed at once: it reads EOF.
 */
typedef struct fds {
	int keep[4];
	size_t n;
} fds;

static int append_fd(sd_bus_message *m, fds *f, int daemon_writes)
{
	int p[2], r;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		abort();
	r = sd_bus_message_append(m, "h", p[daemon_writes ? 1 : 0]);
	close(p[daemon_writes ? 1 : 0]);
	if (daemon_writes)
		f->keep[f->n++] = p[0];
	else
		close(p[1]);
	return r;
}

static void fds_close(fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		close(f->keep[i]);
	f->n = 0;
}

/* Appends the in-signature of method. */
static int build(sd_bus_message *m, enum method method, input *in, fds *f)
{
	size_t count;
	int r;

	switch (method) {
	case M_WRAP:
	case M_UNWRAP:
	case M_REWRAP:
	case M_UNWRAP_BATCH_PACKED:   /* the packed array as it comes: the daemon's reader (core/packed.c) meets it raw */
	case M_REWRAP_BATCH_PACKED:
		if ((r = append_ay(m, in)) < 0)
			return r;
		return append_kv(m, in);
	case M_GENERATE:
		if ((r = sd_bus_message_append(m, "u", take_u32(in))) < 0)
			return r;
		return append_kv(m, in);
	case M_UNWRAP_BATCH:
	case M_REWRAP_BATCH:
		count = take_u16(in) % MAX_ITEMS;
		if ((r = sd_bus_message_open_container(m, 'a', "ay")) < 0)
			return r;
		for (size_t i = 0; i < count; i++)
			if ((r = append_ay(m, in)) < 0)
				return r;
		if ((r = sd_bus_message_close_container(m)) < 0)
			return r;
		return append_kv(m, in);
	case M_ROTATE_KEY:
		return append_kv(m, in);
	case M_ADD_PROTECTOR:
		if ((r = append_str(m, in)) < 0 || (r = append_kv(m, in)) < 0 || (r = append_fd(m, f, 0)) < 0)
			return r;
		return append_fd(m, f, 1);
	case M_CREATE_VAULT:
		if ((r = append_str(m, in)) < 0 || (r = append_kv(m, in)) < 0)
			return r;
		return append_fd(m, f, 1);
	case M_UNLOCK:
		if ((r = append_str(m, in)) < 0 || (r = append_fd(m, f, 0)) < 0)
			return r;
		return append_kv(m, in);
	case M_GET_VAULT:
		return append_str(m, in);
	case M_SET_ESCROW:
		count = take_u8(in);
		if ((r = sd_bus_message_open_container(m, 'a', "s")) < 0)
			return r;
		for (size_t i = 0; i < count; i++)
			if ((r = append_str(m, in)) < 0)
				return r;
		if ((r = sd_bus_message_close_container(m)) < 0)
			return r;
		return sd_bus_message_append(m, "u", take_u32(in));
	case M_AGE_UNWRAP:
		if ((r = sd_bus_message_append(m, "u", take_u32(in))) < 0 || (r = append_ay(m, in)) < 0)
			return r;
		return append_ay(m, in);
	default:
		abort();
	}
}

typedef struct pending {
	int done;
	sd_bus_message *reply;
} pending;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	pending *p = userdata;

	p->done = 1;
	p->reply = sd_bus_message_ref(m);
	return 0;
}

/* Send m and turn the loop until its reply comes: the reply, or NULL (a job still waiting). */
static sd_bus_message *call(sd_bus_message *m)
{
	sd_bus_slot *slot = NULL;
	pending p = { 0 };

	int r;

	if ((r = sd_bus_call_async(client, &slot, m, on_reply, &p, 0)) < 0) {
		fprintf(stderr, "fuzz_dbus_args: cannot send %s: %s\n", sd_bus_message_get_member(m), strerror(-r));
		abort();
	}
	for (int i = 0; i < TURNS_MAX && !p.done; i++)
		if (sd_event_run(d.event, i < TURNS_MAX / 2 ? 0 : 1000) < 0)
			abort();
	sd_bus_slot_unref(slot);
	return p.reply;
}

static sd_bus_message *new_call(const char *path, const char *iface, const char *member)
{
	sd_bus_message *m = NULL;

	if (sd_bus_message_new_method_call(client, &m, NULL, path, iface, member) < 0)
		abort();
	return m;
}

/* Every error is one the daemon names. */
static void check_named(sd_bus_message *reply)
{
	const sd_bus_error *e;

	if (!reply || !sd_bus_message_is_method_error(reply, NULL))
		return;
	e = sd_bus_message_get_error(reply);
	TS_FUZZ_CHECK(e && e->name);
	if (strncmp(e->name, "org.tokenseal1.Error.", strlen("org.tokenseal1.Error.")) == 0 &&
	    strcmp(e->name, "org.tokenseal1.Error.Failed") != 0)
		return;
	/* Failed only with the daemon's own words for it, never an empty or errno-only message. */
	if (strcmp(e->name, "org.tokenseal1.Error.Failed") == 0 && e->message && e->message[0])
		return;
	TS_FUZZ_CHECK(strcmp(e->name, SD_BUS_ERROR_UNKNOWN_OBJECT) == 0);
}

/* A blob the daemon just made opens, under the same context, to the same plaintext. */
static void check_round_trip(const void *pt, size_t pt_len, const void *blob, size_t blob_len, const input *args)
{
	sd_bus_message *m = new_call(vault_path, TS_VAULT_IFACE, "Unwrap"), *reply;
	input in = *args;
	const void *got;
	size_t got_len;

	TS_FUZZ_CHECK(sd_bus_message_append_array(m, 'y', blob, blob_len) >= 0);
	TS_FUZZ_CHECK(append_kv(m, &in) >= 0);
	reply = call(m);
	sd_bus_message_unref(m);
	TS_FUZZ_CHECK(reply && !sd_bus_message_is_method_error(reply, NULL));
	TS_FUZZ_CHECK(sd_bus_message_read_array(reply, 'y', &got, &got_len) > 0);
	TS_FUZZ_CHECK(got_len == pt_len && memcmp(got, pt, pt_len) == 0);
	sd_bus_message_unref(reply);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	(void)remove(path);
	return 0;
}

/* The state directory goes with the process (libFuzzer ends by exit()). */
static void remove_state_dir(void)
{
	if (state_dir[0])
		(void)nftw(state_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const ts_protector_ops *const backends[] = { &ts_protector_recovery, NULL };
	static const char *const tmp_parents[] = { "/dev/shm", "/tmp" };
	char policy_dir[PATH_MAX + 16], err[256];
	sd_bus_message *m, *reply;
	sd_bus *server = NULL;
	const char *path;
	fds f = { 0 };
	int sv[2];

	(void)argc, (void)argv;
	if (sodium_init() < 0)
		abort();
	ts_log_set_level(TS_LOG_ERR - 1);
	ts_log_set_audit_sink(ts_audit_sinks);
	ts_protectors_use(backends);
	/* An empty state directory and policy directory, on tmpfs where there is one (each save fsyncs). */
	for (size_t i = 0; i < sizeof(tmp_parents) / sizeof(tmp_parents[0]) && !state_dir[0]; i++) {
		snprintf(state_dir, sizeof(state_dir), "%s/tokenseal-fuzz.XXXXXX", tmp_parents[i]);
		if (!mkdtemp(state_dir))
			state_dir[0] = '\0';
	}
	if (!state_dir[0])
		abort();
	atexit(remove_state_dir);
	snprintf(policy_dir, sizeof(policy_dir), "%s/policy", state_dir);
	if (mkdir(policy_dir, 0700) < 0 || ts_enforce_load(policy_dir, err, sizeof(err)) < 0)
		abort();
	d.state_dir = state_dir;
	if (ts_store_init(d.state_dir) < 0 || ts_daemon_load_vaults(&d) < 0 || sd_event_new(&d.event) < 0)
		abort();

	/* The daemon's end: a server on a direct connection, as tokensealed's vtables on the bus. */
	sd_id128_t server_id;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0 ||
	    sd_id128_randomize(&server_id) < 0 || sd_bus_new(&server) < 0 || sd_bus_set_fd(server, sv[0], sv[0]) < 0 ||
	    sd_bus_set_server(server, 1, server_id) < 0 || sd_bus_negotiate_fds(server, 1) < 0 ||
	    sd_bus_attach_event(server, d.event, SD_EVENT_PRIORITY_NORMAL) < 0)
		abort();
	d.bus = server;
	/* Its caller is this process, known as the private socket knows a client (SO_PEERCRED at accept). */
	static ts_direct_conn self;
	self.d = &d;
	self.bus = server;
	self.uid = getuid();
	self.gid = getgid();
	self.pid = getpid();
	ts_direct_peer_open(&self, sv[1]);
	d.direct = &self;
	ts_direct_serving(&d);
	if (ts_vault_objects_init(&d) < 0 || ts_serve(&d, d.bus) < 0 ||
	    sd_bus_start(server) < 0)
		abort();
	/* The caller's end. */
	if (sd_bus_new(&client) < 0 || sd_bus_set_fd(client, sv[1], sv[1]) < 0 || sd_bus_negotiate_fds(client, 1) < 0 ||
	    sd_bus_attach_event(client, d.event, SD_EVENT_PRIORITY_NORMAL) < 0 || sd_bus_start(client) < 0)
		abort();

	/* The handshake (EXTERNAL auth, fd passing) before the first call. */
	for (int i = 0; i < TURNS_MAX && (sd_bus_is_ready(server) <= 0 || sd_bus_is_ready(client) <= 0); i++)
		if (sd_event_run(d.event, 1000) < 0)
			abort();
	if (sd_bus_is_ready(server) <= 0 || sd_bus_is_ready(client) <= 0)
		abort();

	/* The vault every Vault call goes to, made as a client makes one. */
	m = new_call(TS_MANAGER_PATH, TS_MANAGER_IFACE, "CreateVault");
	if (sd_bus_message_append(m, "s", "fuzz") < 0 || sd_bus_message_append(m, "a{ss}", 0) < 0 ||
	    append_fd(m, &f, 1) < 0)
		abort();
	reply = call(m);
	sd_bus_message_unref(m);
	if (!reply || sd_bus_message_is_method_error(reply, NULL) || sd_bus_message_read(reply, "o", &path) < 0 ||
	    (vault_path = strdup(path)) == NULL) {
		fprintf(stderr, "fuzz_dbus_args: CreateVault failed: %s\n",
		        reply && sd_bus_message_get_error(reply) ? sd_bus_message_get_error(reply)->message : "no reply");
		abort();
	}
	sd_bus_message_unref(reply);
	fds_close(&f);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sd_bus_message *m, *reply;
	input in = { data, size }, args;
	enum method method;
	fds f = { 0 };
	int r;

	if (size < 1)
		return 0;
	method = (enum method)(take_u8(&in) % M_COUNT);
	args = in;
	m = method == M_CREATE_VAULT || method == M_GET_VAULT ?
	        new_call(TS_MANAGER_PATH, TS_MANAGER_IFACE, method_names[method]) :
	        new_call(vault_path, TS_VAULT_IFACE, method_names[method]);
	if ((r = build(m, method, &in, &f)) < 0) {
		/* sd-bus refused to build it (invalid UTF-8 in a string, say): no client can send that either. */
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		goto out;
	}
	reply = call(m);
	check_named(reply);
	if (reply && !sd_bus_message_is_method_error(reply, NULL)) {
		const void *a, *b;
		size_t a_len, b_len;
		input ctx = args;

		if (method == M_WRAP) {
			size_t n = take_u16(&ctx);

			a = take_bytes(&ctx, &n);
			TS_FUZZ_CHECK(sd_bus_message_read_array(reply, 'y', &b, &b_len) > 0);
			check_round_trip(a, n, b, b_len, &ctx);
		} else if (method == M_GENERATE) {
			(void)take_u32(&ctx);
			TS_FUZZ_CHECK(sd_bus_message_read_array(reply, 'y', &a, &a_len) > 0 &&
			              sd_bus_message_read_array(reply, 'y', &b, &b_len) > 0);
			check_round_trip(a, a_len, b, b_len, &ctx);
		}
	}
	if (ts_fuzz_expect_valid()) {
		const sd_bus_error *e = reply ? sd_bus_message_get_error(reply) : NULL;

		TS_FUZZ_CHECK(reply != NULL);
		TS_FUZZ_CHECK(!e || (strcmp(e->name, "org.tokenseal1.Error.InvalidArgs") != 0 &&
		                     strcmp(e->name, SD_BUS_ERROR_INVALID_ARGS) != 0));
		/* libFuzzer runs an input twice when it looks for a leak: the vault made the first time is there. */
		if (method == M_CREATE_VAULT && e && strcmp(e->name, "org.tokenseal1.Error.VaultExists") == 0)
			e = NULL;
		if (method == M_WRAP || method == M_GENERATE || method == M_ROTATE_KEY || method == M_GET_VAULT ||
		    method == M_CREATE_VAULT) {
			if (e)
				fprintf(stderr, "fuzz_dbus_args: %s: %s: %s\n", method_names[method], e->name, e->message);
			TS_FUZZ_CHECK(!e);
		}
	}
	sd_bus_message_unref(reply);
out:
	sd_bus_message_unref(m);
	fds_close(&f);
	return 0;
}
