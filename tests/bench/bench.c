/* bench.c — tokensealed benchmark client: latency vs Ping, batch throughput vs in-process, concurrency, daemon RSS. */
/*
 * Talks to the daemon with sd-bus directly, the way an application would
 * (one connection per thread, synchronous calls, messages built per call).
 *
 *   bench run ADDRESS DAEMON_PID JSON_OUT [--quick] [--vaults-json FILE] [--unlock-json F --unlock-table F]
 *             [--peers-dir DIR]
 *       create vault "bench" and measure (a)-(d); table on stdout, JSON to JSON_OUT, with the
 *       results of `bench vaults`, `bench unlock` (e) and the peers (f, tests/bench/peers.c:
 *       DIR/NAME.json and DIR/NAME.txt, or DIR/NAME.skip with the reason it was left out) included
 *   bench mkvaults DIR N KEY_OUT
 *       write N vault files bench-NNNN (one recovery protector each, cheapest legal
 *       Argon2id cost, one shared recovery key written to KEY_OUT) for the 1,000-vault test
 *   bench vaults ADDRESS DAEMON_PID N KEY_FILE JSON_OUT
 *       RSS of a daemon holding N locked vaults, then N unlocked ones (JSON fragment)
 *   bench loop ADDRESS ping|unwrap|wrap|rewrap|generate|batch N [VAULT]
 *       N calls of one kind (batch: UnwrapBatch of 1,000) on a fresh vault (named "loop", or VAULT),
 *       for profiling the daemon; ADDRESS "direct:PATH" is the daemon's private socket at PATH
 *   bench unlock ADDRESS PLAN N JSON_OUT TABLE_OUT
 *       per protector of PLAN: N Unlock calls through the bus (Lock in between, untimed) against
 *       N unlocks by the same backend in-process (tests/tools/TYPE_check bench-unlock); the
 *       difference is the daemon's overhead. Table section and JSON fragment for `bench run`.
 *
 * The vault files of mkvaults are made with the core API only, like the
 * daemon would write them, so the numbers are those of real vaults.
 */
#define _GNU_SOURCE 1   /* pipe2, environ */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "core/blob.h"
#include "core/packed.h"
#include "core/recovery.h"
#include "core/vault.h"
#include "client-internal.h"   /* ts_client_unlock / ts_client_lock: what the CLI calls */

#define BUS_NAME "org.tokenseal1"
#define MANAGER_PATH "/org/tokenseal1"
#define MANAGER_IFACE "org.tokenseal1.Manager"
#define VAULT_IFACE "org.tokenseal1.Vault"
#define KEY_LEN 32
#define CALL_TIMEOUT_USEC (60ull * 1000000)

static int quick;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A direct connection to tokensealed's private socket (no bus daemon), made as libtokenseal makes it. */
static sd_bus *direct_connect(const char *path)
{
	sd_bus *bus = NULL;
	int r;

	if ((r = ts_client_open_direct(&bus, path)) < 0)
		die("cannot connect to %s: %s", path, strerror(-r));
	return bus;
}

static sd_bus *bus_connect(const char *address)
{
	sd_bus *bus = NULL;
	int r;

	if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, address)) < 0 ||
	    (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0)
		die("cannot connect to %s: %s", address, strerror(-r));
	return bus;
}

/* ---- one call of each kind; every answer is checked, a wrong one stops the run ---- */

static const char *const CTX[] = { "app", "bench", "purpose", "latency" };

static int append_ctx(sd_bus_message *m)
{
	return sd_bus_message_append(m, "a{ss}", 2, CTX[0], CTX[1], CTX[2], CTX[3]);
}

static void check_call(int r, sd_bus_error *err, const char *what)
{
	if (r < 0)
		die("%s: %s", what, err->message ? err->message : strerror(-r));
}

static void call_ping(sd_bus *bus)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", &err, &reply, "");
	check_call(r, &err, "Ping");
	sd_bus_message_unref(reply);
}

/* METHOD(ay, a{ss}) -> ay: Wrap, Unwrap, Rewrap. Returns the reply bytes (malloc()ed). */
static uint8_t *call_bytes(sd_bus *bus, const char *path, const char *method, const uint8_t *in, size_t in_len,
                           size_t *ret_len)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	const void *p;
	uint8_t *out;
	size_t n;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, VAULT_IFACE, method)) < 0 ||
	    (r = sd_bus_message_append_array(m, 'y', in, in_len)) < 0 || (r = append_ctx(m)) < 0)
		die("%s: building the message: %s", method, strerror(-r));
	r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &err, &reply);
	check_call(r, &err, method);
	if ((r = sd_bus_message_read_array(reply, 'y', &p, &n)) < 0)
		die("%s: bad reply: %s", method, strerror(-r));
	if ((out = malloc(n ? n : 1)) == NULL)
		die("out of memory");
	memcpy(out, p, n);
	/* The reply may hold a data key: wipe the library's copy too. */
	sodium_memzero((void *)p, n);
	*ret_len = n;
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
	return out;
}

static void call_generate(sd_bus *bus, const char *path)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	const void *pt, *blob;
	size_t pt_len, blob_len;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, VAULT_IFACE, "GenerateDataKey")) < 0 ||
	    (r = sd_bus_message_append(m, "u", (uint32_t)KEY_LEN)) < 0 || (r = append_ctx(m)) < 0)
		die("GenerateDataKey: building the message: %s", strerror(-r));
	r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &err, &reply);
	check_call(r, &err, "GenerateDataKey");
	if (sd_bus_message_read_array(reply, 'y', &pt, &pt_len) < 0 ||
	    sd_bus_message_read_array(reply, 'y', &blob, &blob_len) < 0 || pt_len != KEY_LEN ||
	    blob_len != KEY_LEN + TS_BLOB_OVERHEAD)
		die("GenerateDataKey: wrong reply");
	sodium_memzero((void *)pt, pt_len);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
}

/*
 * UnwrapBatch / RewrapBatch of n blobs (blobs[i] of blob_len bytes). Checks
 * the count and, for unwrap, that every plaintext is expect (KEY_LEN bytes).
 * If ret is given, the reply items are copied there (n * item_len bytes).
 */
static void call_batch(sd_bus *bus, const char *path, int rewrap, uint8_t *const *blobs, size_t blob_len, size_t n,
                       const uint8_t *expect, uint8_t *ret)
{
	const char *method = rewrap ? "RewrapBatch" : "UnwrapBatch";
	size_t want = rewrap ? blob_len : KEY_LEN;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	const void *p;
	size_t len, i;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, VAULT_IFACE, method)) < 0 ||
	    (r = sd_bus_message_open_container(m, 'a', "ay")) < 0)
		die("%s: building the message: %s", method, strerror(-r));
	for (i = 0; i < n; i++)
		if ((r = sd_bus_message_append_array(m, 'y', blobs[i], blob_len)) < 0)
			die("%s: building the message: %s", method, strerror(-r));
	if ((r = sd_bus_message_close_container(m)) < 0 || (r = append_ctx(m)) < 0)
		die("%s: building the message: %s", method, strerror(-r));
	r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &err, &reply);
	check_call(r, &err, method);
	if ((r = sd_bus_message_enter_container(reply, 'a', "ay")) < 0)
		die("%s: bad reply", method);
	for (i = 0; (r = sd_bus_message_read_array(reply, 'y', &p, &len)) > 0; i++) {
		if (i >= n || len != want)
			die("%s: item %zu: wrong length %zu", method, i, len);
		if (!rewrap && sodium_memcmp(p, expect, KEY_LEN) != 0)
			die("%s: item %zu: wrong plaintext", method, i);
		if (ret)
			memcpy(ret + i * want, p, want);
		if (!rewrap)
			sodium_memzero((void *)p, len);
	}
	if (r < 0 || i != n)
		die("%s: %zu items back for %zu sent", method, i, n);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
}

/*
 * UnwrapBatchPacked / RewrapBatchPacked of n blobs: the items in one array
 * (4-byte little-endian length, bytes) each way, as libtokenseal sends them.
 * Checks the answer's framing, each item's length and, for unwrap, every
 * plaintext (expect, KEY_LEN bytes).
 */
static void call_batch_packed(sd_bus *bus, const char *path, int rewrap, uint8_t *const *blobs, size_t blob_len,
                              size_t n, const uint8_t *expect)
{
	const char *method = rewrap ? "RewrapBatchPacked" : "UnwrapBatchPacked";
	size_t want = rewrap ? blob_len : KEY_LEN;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	ts_batch_item *items;
	ts_packed_status st;
	const void *p;
	size_t len, got, off = 0;
	void *space;
	int r;

	if ((items = malloc(n * sizeof(*items))) == NULL)
		die("out of memory");
	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, VAULT_IFACE, method)) < 0 ||
	    (r = sd_bus_message_append_array_space(m, 'y', ts_packed_size(n, n * blob_len), &space)) < 0)
		die("%s: building the message: %s", method, strerror(-r));
	for (size_t i = 0; i < n; i++)
		off += ts_packed_put((uint8_t *)space + off, blobs[i], blob_len);
	if ((r = append_ctx(m)) < 0)
		die("%s: building the message: %s", method, strerror(-r));
	r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &err, &reply);
	check_call(r, &err, method);
	if (sd_bus_message_read_array(reply, 'y', &p, &len) < 0 ||
	    ts_packed_parse(p, len, TS_BATCH_MAX, rewrap ? TS_BLOB_MAX : TS_PLAINTEXT_MAX, n, items, &got, &st) < 0 ||
	    got != n)
		die("%s: bad reply", method);
	for (size_t i = 0; i < n; i++) {
		if (items[i].len != want)
			die("%s: item %zu: wrong length %zu", method, i, items[i].len);
		if (rewrap)
			continue;
		if (sodium_memcmp(items[i].blob, expect, KEY_LEN) != 0)
			die("%s: item %zu: wrong plaintext", method, i);
		sodium_memzero((void *)(uintptr_t)items[i].blob, KEY_LEN);
	}
	free(items);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
}

/* CreateVault(name, {}, fd): the recovery key goes to a pipe that we drain and wipe. Returns the path. */
static char *create_vault(sd_bus *bus, const char *name)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *path;
	char key[128], *ret;
	int pfd[2], r;

	if (pipe(pfd) < 0)
		die("pipe: %s", strerror(errno));
	r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "CreateVault", &err, &reply, "sa{ss}h",
	                       name, 0, pfd[1]);
	close(pfd[1]);
	check_call(r, &err, "CreateVault");
	/* The benchmark vault stays unlocked; its key is read only to show it arrived. */
	if (read(pfd[0], key, sizeof(key)) < TS_RECOVERY_TEXT_BYTES - 1)
		die("CreateVault: no recovery key on the pipe");
	sodium_memzero(key, sizeof(key));
	close(pfd[0]);
	if (sd_bus_message_read(reply, "o", &path) < 0 || (ret = strdup(path)) == NULL)
		die("CreateVault: bad reply");
	sd_bus_message_unref(reply);
	return ret;
}

/* ---- statistics ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v. Percentile q in [0,1], in µs. */
static double pct_us(uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		die("cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	if (kib < 0)
		die("no VmRSS in %s", path);
	return kib;
}

/* ---- (a) latency ---- */

enum { OP_PING, OP_UNWRAP, OP_WRAP, OP_REWRAP, OP_GENERATE, N_OPS };
static const char *const op_names[N_OPS] = { "Ping", "Unwrap", "Wrap", "Rewrap", "GenerateDataKey" };
/* On the private socket (with $BENCH_PRIVATE_SOCKET), and the floor: the same sizes over a bare socketpair. */
enum { DOP_PING, DOP_UNWRAP, DOP_FLOOR, N_DOPS };
static const char *const dop_names[N_DOPS] = { "Ping (direct)", "Unwrap (direct)", "bare socket" };
/*
 * The same Unwrap through libtokenseal: ts_unwrap (a fresh locked buffer per
 * plaintext, freed by ts_secret_free) and ts_unwrap_into (one locked buffer
 * of the caller's, reused); on the bus, and on the private socket when it is
 * measured.
 */
enum { LOP_UNWRAP, LOP_INTO, LOP_D_UNWRAP, LOP_D_INTO, N_LOPS };
static const char *const lop_names[N_LOPS] = { "ts_unwrap", "ts_unwrap_into", "ts_unwrap (direct)",
	                                       "ts_unwrap_into (direct)" };
static const ts_kv lib_ctx[] = { { "app", "bench" }, { "purpose", "latency" } };

/*
 * The same calls on the private socket and of the floor with the threads
 * placed: the bench's calling thread on one CPU, and the daemon's loop
 * thread and the floor's answering thread on the same CPU (one CPU) or on
 * another (two CPUs). Unplaced, the floor and the call each land as the
 * scheduler puts them, and a hand-over to another CPU costs this machine
 * several times one on the same CPU.
 */
enum { PLACE_ONE, PLACE_TWO, N_PLACES };
static const char *const place_names[N_PLACES] = { "one CPU", "two CPUs" };
static const char *const place_keys[N_PLACES] = { "one_cpu", "two_cpus" };

struct latency {
	double median_us[N_OPS], p99_us[N_OPS];
	size_t calls;
	int direct;                         /* the private socket was measured */
	double d_median_us[N_DOPS], d_p99_us[N_DOPS];
	double l_median_us[N_LOPS], l_p99_us[N_LOPS];
	int n_places;                       /* placements measured (0: see place_skip) */
	const char *place_skip;
	size_t place_calls;
	int place_cpu[2];                   /* the caller's CPU, the other one */
	double p_median_us[N_PLACES][N_DOPS];
	double p_unwrap_to_floor[N_PLACES];
};

/*
 * The physical floor of a call on this machine: a request and a reply of
 * an Unwrap's sizes (its D-Bus messages, as sent) over a Unix socketpair,
 * answered by a thread that only reads the request and writes the reply.
 */
#define FLOOR_REQ 256
#define FLOOR_REPLY 128
static int floor_fd[2] = { -1, -1 };

static void *floor_echo(void *p)
{
	uint8_t buf[FLOOR_REQ], out[FLOOR_REPLY] = { 0 };

	(void)p;
	for (;;) {
		size_t got = 0;
		while (got < FLOOR_REQ) {
			ssize_t n = read(floor_fd[1], buf + got, FLOOR_REQ - got);
			if (n <= 0)
				return NULL;
			got += (size_t)n;
		}
		if (write(floor_fd[1], out, FLOOR_REPLY) != FLOOR_REPLY)
			return NULL;
	}
}

static void floor_call(void)
{
	static uint8_t req[FLOOR_REQ];
	uint8_t reply[FLOOR_REPLY];
	size_t got = 0;

	if (write(floor_fd[0], req, FLOOR_REQ) != FLOOR_REQ)
		die("floor: write");
	while (got < FLOOR_REPLY) {
		ssize_t n = read(floor_fd[0], reply + got, FLOOR_REPLY - got);
		if (n <= 0)
			die("floor: read");
		got += (size_t)n;
	}
}

static void one_op(sd_bus *bus, const char *path, int op, const uint8_t *blob, size_t blob_len, const uint8_t *key)
{
	uint8_t *out;
	size_t n;

	switch (op) {
	case OP_PING: call_ping(bus); return;
	case OP_GENERATE: call_generate(bus, path); return;
	case OP_UNWRAP:
		out = call_bytes(bus, path, "Unwrap", blob, blob_len, &n);
		if (n != KEY_LEN || sodium_memcmp(out, key, KEY_LEN) != 0)
			die("Unwrap: wrong plaintext");
		sodium_memzero(out, n);
		break;
	case OP_WRAP:
		out = call_bytes(bus, path, "Wrap", key, KEY_LEN, &n);
		if (n != blob_len)
			die("Wrap: blob of %zu bytes", n);
		break;
	case OP_REWRAP:
	default:
		out = call_bytes(bus, path, "Rewrap", blob, blob_len, &n);
		if (n != blob_len)
			die("Rewrap: blob of %zu bytes", n);
		break;
	}
	free(out);
}

/*
 * The operations are interleaved in rounds (Ping, Unwrap, Wrap, ... then
 * again), so a slow phase of the machine hits all of them alike and the
 * ratio to Ping stays honest.
 */
/* One call on the private socket (dbus), or of the floor. */
static void one_dop(sd_bus *dbus, const char *path, int op, const uint8_t *blob, size_t blob_len, const uint8_t *key)
{
	if (op == DOP_FLOOR)
		floor_call();
	else
		one_op(dbus, path, op == DOP_PING ? OP_PING : OP_UNWRAP, blob, blob_len, key);
}

/* chunk timed calls of each of the direct connection's calls and the floor, into t[o][from...]. */
static void time_dops(sd_bus *dbus, const char *path, const uint8_t *blob, size_t blob_len, const uint8_t *key,
                      uint64_t *const *t, size_t from, size_t chunk)
{
	for (int o = 0; o < N_DOPS; o++)
		for (size_t i = 0; i < chunk; i++) {
			uint64_t t0 = now_ns();
			one_dop(dbus, path, o, blob, blob_len, key);
			t[o][from + i] = now_ns() - t0;
		}
}

/* One Unwrap through the library (lc[0]: a ts_client on the bus, lc[1] on the socket; buf: TS_PLAINTEXT_MAX locked bytes). */
static void one_lop(ts_client *const *lcs, int op, const uint8_t *blob, size_t blob_len, const uint8_t *key,
                    uint8_t *buf)
{
	ts_client *lc = lcs[op >= LOP_D_UNWRAP];
	uint8_t *pt = NULL;
	size_t n = 0;
	int r;

	op = op >= LOP_D_UNWRAP ? op - LOP_D_UNWRAP : op;
	if (op == LOP_INTO)
		r = ts_unwrap_into(lc, "bench", lib_ctx, 2, blob, blob_len, buf, TS_PLAINTEXT_MAX, &n);
	else
		r = ts_unwrap(lc, "bench", lib_ctx, 2, blob, blob_len, &pt, &n);
	if (r < 0)
		die("%s: %s", lop_names[op], ts_client_last_error(lc));
	if (n != KEY_LEN || sodium_memcmp(op == LOP_INTO ? buf : pt, key, KEY_LEN) != 0)
		die("%s: wrong plaintext", lop_names[op]);
	if (op == LOP_INTO)
		sodium_memzero(buf, n);
	else
		ts_secret_free(pt, n);
}

static int pin(pid_t tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(tid, sizeof(set), &set);
}

/*
 * The placed rounds (struct latency's comment): the daemon's loop thread is
 * its main thread (tid = pid). Every thread gets its mask back after.
 */
static void bench_placed(sd_bus *dbus, pid_t daemon_pid, pthread_t echo, const char *path, const uint8_t *blob,
                         size_t blob_len, const uint8_t *key, struct latency *res)
{
	const size_t per_op = quick ? 1000 : 5000, rounds = 10, chunk = per_op / rounds;
	cpu_set_t mine, daemon_mask, echo_mask, one;
	uint64_t *t[N_PLACES][N_DOPS];
	int cpus[2], n_cpus = 0, n_places;
	size_t i, k;

	res->n_places = 0;
	if (sched_getaffinity(0, sizeof(mine), &mine) < 0 || sched_getaffinity(daemon_pid, sizeof(daemon_mask),
	                                                                     &daemon_mask) < 0 ||
	    pthread_getaffinity_np(echo, sizeof(echo_mask), &echo_mask) != 0) {
		res->place_skip = "cannot read the threads' CPU masks";
		return;
	}
	for (int c = 0; c < CPU_SETSIZE && n_cpus < 2; c++)
		if (CPU_ISSET(c, &mine) && CPU_ISSET(c, &daemon_mask))
			cpus[n_cpus++] = c;
	if (n_cpus == 0) {
		res->place_skip = "no CPU the bench and the daemon may both run on";
		return;
	}
	n_places = n_cpus < 2 ? 1 : N_PLACES;
	if (pin(0, cpus[0]) < 0 || pin(daemon_pid, cpus[0]) < 0) {
		res->place_skip = "cannot place the daemon's thread (sched_setaffinity)";
		(void)sched_setaffinity(0, sizeof(mine), &mine);
		return;
	}
	for (int p = 0; p < n_places; p++)
		for (int o = 0; o < N_DOPS; o++)
			if ((t[p][o] = calloc(per_op, sizeof(uint64_t))) == NULL)
				die("out of memory");
	for (k = 0; k < rounds; k++)
		for (int p = 0; p < n_places; p++) {
			int other = cpus[p == PLACE_ONE ? 0 : 1];

			CPU_ZERO(&one);
			CPU_SET(other, &one);
			if (pin(daemon_pid, other) < 0 || pthread_setaffinity_np(echo, sizeof(one), &one) != 0)
				die("cannot place the daemon's or the floor's thread on CPU %d", other);
			for (i = 0; i < 50; i++)   /* settle: each thread runs once where it now is */
				for (int o = 0; o < N_DOPS; o++)
					one_dop(dbus, path, o, blob, blob_len, key);
			time_dops(dbus, path, blob, blob_len, key, t[p], k * chunk, chunk);
		}
	if (sched_setaffinity(daemon_pid, sizeof(daemon_mask), &daemon_mask) < 0 ||
	    pthread_setaffinity_np(echo, sizeof(echo_mask), &echo_mask) != 0 ||
	    sched_setaffinity(0, sizeof(mine), &mine) < 0)
		die("cannot give the threads their CPU masks back");
	for (int p = 0; p < n_places; p++)
		for (int o = 0; o < N_DOPS; o++) {
			res->p_median_us[p][o] = pct_us(t[p][o], per_op, 0.5);
			free(t[p][o]);
		}
	for (int p = 0; p < n_places; p++)
		res->p_unwrap_to_floor[p] = res->p_median_us[p][DOP_UNWRAP] / res->p_median_us[p][DOP_FLOOR];
	res->n_places = n_places;
	res->place_calls = per_op;
	res->place_cpu[0] = cpus[0];
	res->place_cpu[1] = n_cpus > 1 ? cpus[1] : -1;
}

static void bench_latency(sd_bus *bus, sd_bus *dbus, ts_client *const *lcs, const char *path, const uint8_t *blob,
                          size_t blob_len, const uint8_t *key, pid_t daemon_pid, struct latency *res)
{
	const size_t per_op = quick ? 2000 : 20000, rounds = 20, chunk = per_op / rounds;
	uint64_t *t[N_OPS], *dt[N_DOPS] = { 0 }, *lt[N_LOPS];
	uint8_t *buf = sodium_malloc(TS_PLAINTEXT_MAX);
	pthread_t echo;
	size_t i, k, o;

	for (o = 0; o < N_OPS; o++)
		if ((t[o] = calloc(per_op, sizeof(uint64_t))) == NULL)
			die("out of memory");
	for (o = 0; o < N_LOPS; o++)
		if ((lt[o] = calloc(per_op, sizeof(uint64_t))) == NULL)
			die("out of memory");
	if (!buf)
		die("out of memory");
	if (dbus) {
		for (o = 0; o < N_DOPS; o++)
			if ((dt[o] = calloc(per_op, sizeof(uint64_t))) == NULL)
				die("out of memory");
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, floor_fd) < 0 ||
		    pthread_create(&echo, NULL, floor_echo, NULL) != 0)
			die("floor: cannot start");
	}
	for (i = 0; i < 500; i++) {   /* warm up: caches, the caller cache, allocator */
		for (o = 0; o < N_OPS; o++)
			one_op(bus, path, (int)o, blob, blob_len, key);
		for (o = 0; dbus && o < N_DOPS; o++)
			one_dop(dbus, path, (int)o, blob, blob_len, key);
		for (o = 0; o < (lcs[1] ? N_LOPS : LOP_D_UNWRAP); o++)
			one_lop(lcs, (int)o, blob, blob_len, key, buf);
	}
	/* Interleaved with the bus's calls, so a slow phase of the machine hits both alike. */
	for (k = 0; k < rounds; k++) {
		for (o = 0; o < N_OPS; o++)
			for (i = 0; i < chunk; i++) {
				uint64_t t0 = now_ns();
				one_op(bus, path, (int)o, blob, blob_len, key);
				t[o][k * chunk + i] = now_ns() - t0;
			}
		if (dbus)
			time_dops(dbus, path, blob, blob_len, key, dt, k * chunk, chunk);
		for (o = 0; o < (lcs[1] ? N_LOPS : LOP_D_UNWRAP); o++)
			for (i = 0; i < chunk; i++) {
				uint64_t t0 = now_ns();
				one_lop(lcs, (int)o, blob, blob_len, key, buf);
				lt[o][k * chunk + i] = now_ns() - t0;
			}
	}
	for (o = 0; o < N_LOPS; o++) {
		res->l_median_us[o] = pct_us(lt[o], per_op, 0.5);
		res->l_p99_us[o] = pct_us(lt[o], per_op, 0.99);
		free(lt[o]);
	}
	sodium_free(buf);
	for (o = 0; o < N_OPS; o++) {
		res->median_us[o] = pct_us(t[o], per_op, 0.5);
		res->p99_us[o] = pct_us(t[o], per_op, 0.99);
		free(t[o]);
	}
	if (dbus) {
		res->direct = 1;
		for (o = 0; o < N_DOPS; o++) {
			res->d_median_us[o] = pct_us(dt[o], per_op, 0.5);
			res->d_p99_us[o] = pct_us(dt[o], per_op, 0.99);
			free(dt[o]);
		}
		bench_placed(dbus, daemon_pid, echo, path, blob, blob_len, key, res);
		close(floor_fd[0]);
		pthread_join(echo, NULL);
		close(floor_fd[1]);
	}
	res->calls = per_op;
}

/* ---- (b) batch throughput, bus vs in-process ---- */

#define N_SIZES 5
static const size_t batch_sizes[N_SIZES] = { 1, 10, 100, 1000, 10000 };

/* Each figure of (b) is the median of BATCH_ROUNDS rounds, taken in turns (a slow phase hits every figure alike). */
#define BATCH_ROUNDS 3
enum { SP_BUS, SP_DIRECT, SP_PBUS, SP_PDIRECT, SP_LOCAL, SP_BARE, N_SPREAD };
static const char *const spread_names[N_SPREAD] = { "UnwrapBatch bus", "UnwrapBatch direct", "UnwrapBatchPacked bus",
	                                            "UnwrapBatchPacked direct", "in-process", "bare AEAD" };

struct batch_res {
	double bus_kps[2][N_SIZES];      /* [unwrap, rewrap] keys per second */
	double local_kps[2];             /* in-process, same AEAD work per key */
	double direct_kps;               /* UnwrapBatch of the largest size on the private socket; 0: not measured */
	double packed_bus_kps;           /* UnwrapBatchPacked of the largest size through the bus */
	double packed_direct_kps;        /* ... on the private socket; 0: not measured */
	double packed_rw_bus_kps;        /* RewrapBatchPacked of the largest size through the bus */
	double packed_rw_direct_kps;     /* ... on the private socket; 0: not measured */
	double bare_kps;                 /* in-process, XChaCha20-Poly1305 decryption of a 32-byte key alone */
	double bare_aad_kps;             /* ... with an AAD as long as a blob's (the format's own floor) */
	double min[N_SPREAD], max[N_SPREAD]; /* unwrap of the largest size: the rounds' extremes */
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of the rounds' values v[0..BATCH_ROUNDS), and their min and max. */
static double rounds_median(double *v, double *min, double *max)
{
	qsort(v, BATCH_ROUNDS, sizeof(*v), cmp_double);
	if (min)
		*min = v[0];
	if (max)
		*max = v[BATCH_ROUNDS - 1];
	return v[BATCH_ROUNDS / 2];
}

/* Run fn repeatedly for at least min_ns; keys per second. */
static double rate(uint64_t min_ns, size_t keys_per_call, void (*fn)(void *), void *arg)
{
	uint64_t t0 = now_ns(), t;
	size_t calls = 0;

	do {
		fn(arg);
		calls++;
	} while ((t = now_ns() - t0) < min_ns);
	return (double)(calls * keys_per_call) * 1e9 / (double)t;
}

struct batch_arg {
	sd_bus *bus;
	const char *path;
	int rewrap, packed;
	uint8_t **blobs;
	size_t blob_len, n;
	const uint8_t *key;
	/* in-process */
	const ts_vault *v;
	uint8_t *pt;
	ts_buf out;
};

static void batch_fn(void *p)
{
	struct batch_arg *a = p;

	if (a->packed)
		call_batch_packed(a->bus, a->path, a->rewrap, a->blobs, a->blob_len, a->n, a->key);
	else
		call_batch(a->bus, a->path, a->rewrap, a->blobs, a->blob_len, a->n, a->key, NULL);
}

/*
 * The floors of in-process unwrap: the bare AEAD of the same key size and
 * number of keys, with no AAD, and with an AAD as long as a blob's (its
 * 54-byte header and the canonical encoding of (b)'s 2-entry context), which
 * the format has every unwrap authenticate.
 */
#define BLOB_AAD_LEN (TS_BLOB_HEADER_BYTES + 4 + (4 + 3 + 4 + 5) + (4 + 7 + 4 + 7))
struct bare_arg {
	size_t n, aad_len;
	uint8_t aad[BLOB_AAD_LEN];
	const uint8_t *ct, *nonce;   /* BARE_DISTINCT ciphertexts (32 + 16 bytes) and nonces */
	uint8_t *key, *pt;           /* secure memory */
};

#define BARE_DISTINCT 1000

static void bare_fn(void *p)
{
	struct bare_arg *a = p;
	const size_t clen = KEY_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES;

	for (size_t i = 0; i < a->n; i++) {
		size_t k = i % BARE_DISTINCT;

		if (crypto_aead_xchacha20poly1305_ietf_decrypt(a->pt, NULL, NULL, a->ct + k * clen, clen,
		                                               a->aad_len ? a->aad : NULL, a->aad_len,
		                                               a->nonce + k * crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		                                               a->key) != 0)
			die("bare AEAD failed");
		sodium_memzero(a->pt, KEY_LEN);
	}
}

static double bare_rate(uint64_t min_ns, size_t n, int with_aad)
{
	const size_t clen = KEY_LEN + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	const size_t nlen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	struct bare_arg a = { .n = n, .aad_len = with_aad ? BLOB_AAD_LEN : 0 };
	uint8_t *ct, *nonce;
	double kps;

	if ((ct = malloc(BARE_DISTINCT * clen)) == NULL || (nonce = malloc(BARE_DISTINCT * nlen)) == NULL ||
	    (a.key = ts_secure_alloc(KEY_LEN)) == NULL || (a.pt = ts_secure_alloc(KEY_LEN)) == NULL)
		die("out of memory");
	randombytes_buf(a.key, KEY_LEN);
	randombytes_buf(nonce, BARE_DISTINCT * nlen);
	randombytes_buf(a.aad, sizeof(a.aad));
	for (size_t i = 0; i < BARE_DISTINCT; i++) {
		randombytes_buf(a.pt, KEY_LEN);
		crypto_aead_xchacha20poly1305_ietf_encrypt(ct + i * clen, NULL, a.pt, KEY_LEN, a.aad_len ? a.aad : NULL,
		                                           a.aad_len, NULL,
		                                           nonce + i * nlen, a.key);
	}
	a.ct = ct;
	a.nonce = nonce;
	kps = rate(min_ns, n, bare_fn, &a);
	ts_secure_free(a.key);
	ts_secure_free(a.pt);
	free(ct);
	free(nonce);
	return kps;
}

/* What the daemon does per item: parse, unwrap; for rewrap also wrap again. */
static void local_fn(void *p)
{
	static const ts_kv ctx[2] = { { "app", "bench" }, { "purpose", "latency" } };
	struct batch_arg *a = p;
	ts_blob_view bv;

	for (size_t i = 0; i < a->n; i++) {
		if (ts_blob_parse(a->blobs[i], a->blob_len, &bv) < 0 || ts_vault_unwrap(a->v, &bv, ctx, 2, a->pt) < 0)
			die("in-process unwrap failed");
		if (a->rewrap) {
			a->out.len = 0;
			if (ts_vault_wrap(a->v, ctx, 2, a->pt, bv.plaintext_len, &a->out) < 0)
				die("in-process wrap failed");
		}
		sodium_memzero(a->pt, bv.plaintext_len);
	}
}

static void bench_batch(sd_bus *bus, sd_bus *dbus, const char *path, const uint8_t *blob, size_t blob_len,
                        const uint8_t *key, struct batch_res *res)
{
	static const ts_kv ctx[2] = { { "app", "bench" }, { "purpose", "latency" } };
	const size_t nmax = batch_sizes[N_SIZES - 1];
	const uint64_t min_ns = quick ? 100000000ull : 300000000ull;
	struct batch_arg a = { .bus = bus, .path = path, .blob_len = blob_len, .key = key };
	uint8_t **blobs, **lblobs, *fresh, *local;
	_ts_cleanup_buf_ ts_buf lb = { 0 };
	ts_vault *v = NULL;
	size_t i, s;
	double bus_r[2][N_SIZES][BATCH_ROUNDS], local_r[2][BATCH_ROUNDS], direct_r[BATCH_ROUNDS], bare_r[BATCH_ROUNDS];
	double pbus_r[BATCH_ROUNDS], pdirect_r[BATCH_ROUNDS], prbus_r[BATCH_ROUNDS], prdirect_r[BATCH_ROUNDS];
	double bare_aad_r[BATCH_ROUNDS];

	/* Distinct blobs (distinct nonces) of the same key: one RewrapBatch of copies makes them. */
	if ((blobs = calloc(nmax, sizeof(*blobs))) == NULL || (lblobs = calloc(nmax, sizeof(*lblobs))) == NULL ||
	    (fresh = malloc(nmax * blob_len)) == NULL || (local = malloc(nmax * blob_len)) == NULL)
		die("out of memory");
	for (i = 0; i < nmax; i++)
		blobs[i] = (uint8_t *)blob;
	call_batch(bus, path, 1, blobs, blob_len, nmax, key, fresh);
	for (i = 0; i < nmax; i++)
		blobs[i] = fresh + i * blob_len;

	/* In-process: a vault made by the core, the same blob size, context and work per key. */
	if (ts_vault_create(&v, "bench-local", 0, (uint64_t)time(NULL)) < 0)
		die("ts_vault_create failed");
	for (i = 0; i < nmax; i++) {
		lb.len = 0;
		if (ts_vault_wrap(v, ctx, 2, key, KEY_LEN, &lb) < 0 || lb.len != blob_len)
			die("in-process wrap failed");
		memcpy(local + i * blob_len, lb.data, blob_len);
		lblobs[i] = local + i * blob_len;
	}
	if ((a.pt = ts_secure_alloc(TS_PLAINTEXT_MAX)) == NULL)
		die("out of secure memory");
	a.v = v;
	for (int k = 0; k < BATCH_ROUNDS; k++) {
		a.blobs = blobs;
		for (int rw = 0; rw < 2; rw++)
			for (s = 0; s < N_SIZES; s++) {
				a.rewrap = rw;
				a.n = batch_sizes[s];
				bus_r[rw][s][k] = rate(min_ns, a.n, batch_fn, &a);
			}
		/* The packed forms of the largest unwrap and rewrap, beside them: through the bus, then on the socket. */
		a.n = nmax;
		a.packed = 1;
		a.rewrap = 0;
		pbus_r[k] = rate(min_ns, a.n, batch_fn, &a);
		a.rewrap = 1;
		prbus_r[k] = rate(min_ns, a.n, batch_fn, &a);
		a.packed = 0;
		if (dbus) {
			a.bus = dbus;
			a.rewrap = 0;
			direct_r[k] = rate(min_ns, a.n, batch_fn, &a);
			a.packed = 1;
			pdirect_r[k] = rate(min_ns, a.n, batch_fn, &a);
			a.rewrap = 1;
			prdirect_r[k] = rate(min_ns, a.n, batch_fn, &a);
			a.packed = 0;
			a.bus = bus;
		}
		a.blobs = lblobs;
		a.n = nmax;
		for (int rw = 0; rw < 2; rw++) {
			a.rewrap = rw;
			local_r[rw][k] = rate(min_ns, a.n, local_fn, &a);
		}
		bare_r[k] = bare_rate(min_ns, nmax, 0);
		bare_aad_r[k] = bare_rate(min_ns, nmax, 1);
	}
	for (int rw = 0; rw < 2; rw++) {
		for (s = 0; s < N_SIZES; s++)
			res->bus_kps[rw][s] = rounds_median(bus_r[rw][s], rw == 0 && s == N_SIZES - 1 ? &res->min[SP_BUS] : NULL,
			                                    rw == 0 && s == N_SIZES - 1 ? &res->max[SP_BUS] : NULL);
		res->local_kps[rw] = rounds_median(local_r[rw], rw == 0 ? &res->min[SP_LOCAL] : NULL,
		                                   rw == 0 ? &res->max[SP_LOCAL] : NULL);
	}
	res->packed_bus_kps = rounds_median(pbus_r, &res->min[SP_PBUS], &res->max[SP_PBUS]);
	res->packed_rw_bus_kps = rounds_median(prbus_r, NULL, NULL);
	if (dbus) {
		res->direct_kps = rounds_median(direct_r, &res->min[SP_DIRECT], &res->max[SP_DIRECT]);
		res->packed_direct_kps = rounds_median(pdirect_r, &res->min[SP_PDIRECT], &res->max[SP_PDIRECT]);
		res->packed_rw_direct_kps = rounds_median(prdirect_r, NULL, NULL);
	}
	res->bare_kps = rounds_median(bare_r, &res->min[SP_BARE], &res->max[SP_BARE]);
	res->bare_aad_kps = rounds_median(bare_aad_r, NULL, NULL);
	free(lblobs);
	ts_buf_free(&a.out);
	ts_secure_free(a.pt);
	ts_vault_free(v);
	free(blobs);
	free(fresh);
	free(local);
}

/* ---- (c) concurrent clients ---- */

#define N_CONC 4
static const int conc_clients[N_CONC] = { 1, 2, 8, 32 };

struct conc_thread {
	pthread_t tid;
	const char *address, *path;
	const uint8_t *blob, *key;
	size_t blob_len;
	pthread_barrier_t *start;
	uint64_t run_ns;
	uint64_t *lat;
	size_t n, cap;
};

static void *conc_main(void *p)
{
	struct conc_thread *t = p;
	sd_bus *bus = bus_connect(t->address);
	uint64_t t0, t1, end;

	one_op(bus, t->path, OP_UNWRAP, t->blob, t->blob_len, t->key);   /* connection set up outside the clock */
	pthread_barrier_wait(t->start);
	end = now_ns() + t->run_ns;
	do {
		t0 = now_ns();
		one_op(bus, t->path, OP_UNWRAP, t->blob, t->blob_len, t->key);
		t1 = now_ns();
		if (t->n < t->cap)
			t->lat[t->n++] = t1 - t0;
	} while (t1 < end);
	sd_bus_flush_close_unref(bus);
	return NULL;
}

struct conc_res {
	double ops[N_CONC], p50_us[N_CONC], p99_us[N_CONC];
};

static void bench_concurrency(const char *address, const char *path, const uint8_t *blob, size_t blob_len,
                              const uint8_t *key, struct conc_res *res)
{
	const uint64_t run_ns = quick ? 300000000ull : 1500000000ull;

	for (int c = 0; c < N_CONC; c++) {
		int n = conc_clients[c];
		struct conc_thread *t = calloc((size_t)n, sizeof(*t));
		pthread_barrier_t start;
		uint64_t *all, t0;
		size_t total = 0, k = 0;

		if (!t || pthread_barrier_init(&start, NULL, (unsigned)n + 1) != 0)
			die("out of memory");
		for (int i = 0; i < n; i++) {
			t[i] = (struct conc_thread){ .address = address, .path = path, .blob = blob, .key = key,
			                             .blob_len = blob_len, .start = &start, .run_ns = run_ns,
			                             .cap = 400000 };
			if ((t[i].lat = malloc(t[i].cap * sizeof(uint64_t))) == NULL ||
			    pthread_create(&t[i].tid, NULL, conc_main, &t[i]) != 0)
				die("cannot start client thread");
		}
		pthread_barrier_wait(&start);
		t0 = now_ns();
		for (int i = 0; i < n; i++) {
			pthread_join(t[i].tid, NULL);
			total += t[i].n;
		}
		res->ops[c] = (double)total * 1e9 / (double)(now_ns() - t0);
		if ((all = malloc((total ? total : 1) * sizeof(uint64_t))) == NULL)
			die("out of memory");
		for (int i = 0; i < n; i++) {
			memcpy(all + k, t[i].lat, t[i].n * sizeof(uint64_t));
			k += t[i].n;
			free(t[i].lat);
		}
		res->p50_us[c] = pct_us(all, total, 0.5);
		res->p99_us[c] = pct_us(all, total, 0.99);
		free(all);
		free(t);
		pthread_barrier_destroy(&start);
	}
}

/* ---- (d) memory over a million requests ---- */

#define MEM_ROUNDS 10

struct mem_res {
	long idle_kib, one_vault_kib, after_kib[MEM_ROUNDS];
	uint64_t requests[MEM_ROUNDS];
};

/*
 * Each round: 2,000 single calls (Unwrap/Wrap/Rewrap/GenerateDataKey) and
 * 98 UnwrapBatch/RewrapBatch calls of 1,000 items = 100,000 key requests.
 */
static void bench_memory(sd_bus *bus, const char *path, pid_t pid, const uint8_t *blob, size_t blob_len,
                         const uint8_t *key, struct mem_res *res)
{
	uint8_t **blobs = calloc(1000, sizeof(*blobs));
	uint64_t count = 0;

	if (!blobs)
		die("out of memory");
	for (int i = 0; i < 1000; i++)
		blobs[i] = (uint8_t *)blob;
	for (int k = 0; k < MEM_ROUNDS; k++) {
		for (int i = 0; i < 2000; i++)
			one_op(bus, path, OP_UNWRAP + i % 4, blob, blob_len, key);
		for (int i = 0; i < 98; i++)
			call_batch(bus, path, i & 1, blobs, blob_len, 1000, key, NULL);
		count += 2000 + 98 * 1000;
		res->requests[k] = count;
		res->after_kib[k] = rss_kib(pid);
	}
	free(blobs);
}

/* ---- output ---- */

/* The peers of (f): NAME.json + NAME.txt from tests/bench/peers.c, or NAME.skip (why it was left out). */
struct peer {
	const char *name, *json_key;
	char *json, *table, *skip;
};

static char *slurp(const char *path);

static char *peer_file(const char *dir, const char *name, const char *ext)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
	return access(path, R_OK) == 0 ? slurp(path) : NULL;
}

static void peer_load(const char *dir, struct peer *p)
{
	if ((p->json = peer_file(dir, p->name, "json")) != NULL) {
		if ((p->table = peer_file(dir, p->name, "txt")) == NULL)
			die("%s/%s.json without %s.txt", dir, p->name, p->name);
		return;
	}
	if ((p->skip = peer_file(dir, p->name, "skip")) == NULL && (p->skip = strdup("not measured")) == NULL)
		die("out of memory");
	/* The reason goes into the JSON as a string: keep it plain. */
	for (char *c = p->skip; *c; c++)
		if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
			*c = ' ';
}

/* A whole (small) file as a NUL-terminated malloc()ed string, without trailing newlines. */
static char *slurp(const char *path)
{
	char *s = NULL;
	size_t cap = 0, len;
	FILE *f = fopen(path, "r");

	if (!f || (len = getdelim(&s, &cap, '\0', f)) == (size_t)-1 || len == 0)
		die("cannot read %s", path);
	fclose(f);
	while (len && s[len - 1] == '\n')
		s[--len] = 0;
	return s;
}

static void run(const char *address, pid_t pid, const char *json_path, const char *vaults_json,
                const char *unlock_json, const char *unlock_table, const char *peers_dir)
{
	struct peer peers[2] = { { .name = "keyring", .json_key = "gnome_keyring" },
		                 { .name = "clevis", .json_key = "clevis_tpm2" } };
	struct latency lat = { 0 };
	struct batch_res br = { 0 };
	struct conc_res cr = { 0 };
	struct mem_res mr = { 0 };
	uint8_t key[KEY_LEN], *blob, *pt;
	size_t blob_len, n;
	char *path, *vjson = NULL, *ujson = NULL, *utable = NULL;
	sd_bus *bus, *dbus = NULL;
	ts_client *lcs[2] = { NULL, NULL };
	const char *private_socket = getenv("BENCH_PRIVATE_SOCKET");
	int r;
	FILE *f;
	uint64_t t0 = now_ns();

	mr.idle_kib = rss_kib(pid);
	bus = bus_connect(address);
	if (private_socket && *private_socket)
		dbus = direct_connect(private_socket);
	path = create_vault(bus, "bench");
	mr.one_vault_kib = rss_kib(pid);

	randombytes_buf(key, sizeof(key));
	blob = call_bytes(bus, path, "Wrap", key, KEY_LEN, &blob_len);
	pt = call_bytes(bus, path, "Unwrap", blob, blob_len, &n);
	if (n != KEY_LEN || sodium_memcmp(pt, key, KEY_LEN) != 0)
		die("the first Unwrap gave a wrong key");
	free(pt);

	fprintf(stderr, "bench: latency...\n");
	if ((r = ts_client_open(&lcs[0], address)) < 0)
		die("libtokenseal cannot connect to %s: %s", address, ts_strerror(r));
	if (dbus) {
		/* The library's own way to the socket: no bus named, $TOKENSEAL_PRIVATE_SOCKET. */
		char *saved = getenv("TOKENSEAL_BUS") ? strdup(getenv("TOKENSEAL_BUS")) : NULL;

		unsetenv("TOKENSEAL_BUS");
		setenv("TOKENSEAL_PRIVATE_SOCKET", private_socket, 1);
		if ((r = ts_client_open(&lcs[1], NULL)) < 0)
			die("libtokenseal cannot connect to %s: %s", private_socket, ts_strerror(r));
		if (saved)
			setenv("TOKENSEAL_BUS", saved, 1);
		free(saved);
	}
	bench_latency(bus, dbus, lcs, path, blob, blob_len, key, pid, &lat);
	ts_client_free(lcs[0]);
	ts_client_free(lcs[1]);
	fprintf(stderr, "bench: batches...\n");
	bench_batch(bus, dbus, path, blob, blob_len, key, &br);
	fprintf(stderr, "bench: concurrent clients...\n");
	bench_concurrency(address, path, blob, blob_len, key, &cr);
	fprintf(stderr, "bench: a million requests...\n");
	bench_memory(bus, path, pid, blob, blob_len, key, &mr);

	vjson = vaults_json ? slurp(vaults_json) : strdup("null");
	ujson = unlock_json ? slurp(unlock_json) : strdup("null");
	utable = unlock_table ? slurp(unlock_table) : NULL;
	if (!vjson || !ujson)
		die("out of memory");
	for (size_t i = 0; peers_dir && i < 2; i++)
		peer_load(peers_dir, &peers[i]);

	/* Table. */
	printf("\n(a) round trip, %zu calls each, 32-byte key, 2-entry context\n", lat.calls);
	printf("  %-16s %10s %10s %10s %s\n", "call", "median µs", "p99 µs", "× Ping", "(target ≤ 1.10)");
	for (int o = 0; o < N_OPS; o++) {
		double ratio = lat.median_us[o] / lat.median_us[OP_PING];
		printf("  %-16s %10.1f %10.1f %10.2f %s\n", op_names[o], lat.median_us[o], lat.p99_us[o], ratio,
		       o == OP_PING ? "" : ratio <= 1.10 ? "ok" : "MISSED");
	}
	if (lat.direct) {
		double ping = lat.median_us[OP_PING], u = lat.d_median_us[DOP_UNWRAP], fl = lat.d_median_us[DOP_FLOOR];

		printf("  on the private socket (no bus daemon), and the floor (%d-byte request, %d-byte reply, bare socketpair):\n",
		       FLOOR_REQ, FLOOR_REPLY);
		for (int o = 0; o < N_DOPS; o++)
			printf("  %-16s %10.1f %10.1f %10.2f\n", dop_names[o], lat.d_median_us[o], lat.d_p99_us[o],
			       lat.d_median_us[o] / ping);
		printf("  Unwrap (direct) %.2f × Ping through the bus (target ≤ 0.60: %s), %.2f × the floor (target ≤ 1.30: %s)\n",
		       u / ping, u / ping <= 0.60 ? "ok" : "MISSED", u / fl, u / fl <= 1.30 ? "ok" : "MISSED");
		if (lat.n_places == 0) {
			printf("  placed: not measured (%s)\n", lat.place_skip ? lat.place_skip : "?");
		} else {
			printf("  placed (%zu calls each: this client on CPU %d; the daemon's loop thread and the floor's\n"
			       "  answering thread on the same CPU", lat.place_calls, lat.place_cpu[0]);
			if (lat.n_places > 1)
				printf(", or on CPU %d", lat.place_cpu[1]);
			printf("), median µs:\n");
			printf("  %-16s %14s %16s %12s %16s\n", "placement", dop_names[DOP_PING], dop_names[DOP_UNWRAP],
			       dop_names[DOP_FLOOR], "Unwrap / floor");
			for (int p = 0; p < lat.n_places; p++)
				printf("  %-16s %14.1f %16.1f %12.1f %11.2f %s\n", place_names[p], lat.p_median_us[p][DOP_PING],
				       lat.p_median_us[p][DOP_UNWRAP], lat.p_median_us[p][DOP_FLOOR], lat.p_unwrap_to_floor[p],
				       lat.p_unwrap_to_floor[p] <= 1.30 ? "ok" : "MISSED");
		}
	}
	printf("  Unwrap through libtokenseal (× the same call made with sd-bus above, on the same transport):\n");
	for (int o = 0; o < (lat.direct ? N_LOPS : LOP_D_UNWRAP); o++)
		printf("  %-23s %10.1f %10.1f %10.2f\n", lop_names[o], lat.l_median_us[o], lat.l_p99_us[o],
		       lat.l_median_us[o] / (o >= LOP_D_UNWRAP ? lat.d_median_us[DOP_UNWRAP] : lat.median_us[OP_UNWRAP]));
	printf("\n(b) batches, keys/s through the bus (in-process: unwrap %.0f/s, rewrap %.0f/s;\n"
	       "    bare XChaCha20-Poly1305 of a 32-byte key %.0f/s: unwrap = %.2f × bare;\n"
	       "    the same with a blob's %d-byte AAD, the format's floor, %.0f/s: unwrap = %.2f × it)\n",
	       br.local_kps[0], br.local_kps[1], br.bare_kps, br.local_kps[0] / br.bare_kps, BLOB_AAD_LEN,
	       br.bare_aad_kps, br.local_kps[0] / br.bare_aad_kps);
	printf("  in-process unwrap %.0f keys/s on one core: ≥ 1,500,000 %s\n", br.local_kps[0],
	       br.local_kps[0] >= 1.5e6 ? "ok" : "MISSED");
	printf("  %-8s %14s %8s %14s %8s\n", "batch", "UnwrapBatch", "% local", "RewrapBatch", "% local");
	for (int s = 0; s < N_SIZES; s++)
		printf("  %-8zu %14.0f %7.0f%% %14.0f %7.0f%%\n", batch_sizes[s], br.bus_kps[0][s],
		       100 * br.bus_kps[0][s] / br.local_kps[0], br.bus_kps[1][s],
		       100 * br.bus_kps[1][s] / br.local_kps[1]);
	printf("  best UnwrapBatch %.0f keys/s: ≥ 1,000,000 %s, ≥ 50%% of in-process %s\n", br.bus_kps[0][N_SIZES - 1],
	       br.bus_kps[0][N_SIZES - 1] >= 1e6 ? "ok" : "MISSED",
	       br.bus_kps[0][N_SIZES - 1] >= 0.5 * br.local_kps[0] ? "ok" : "MISSED");
	if (br.direct_kps > 0)
		printf("  UnwrapBatch of %zu on the private socket: %.0f keys/s = %.0f%% of in-process (targets ≥ 1,000,000: %s, ≥ 60%%: %s)\n",
		       batch_sizes[N_SIZES - 1], br.direct_kps, 100 * br.direct_kps / br.local_kps[0],
		       br.direct_kps >= 1e6 ? "ok" : "MISSED", br.direct_kps >= 0.6 * br.local_kps[0] ? "ok" : "MISSED");
	printf("  UnwrapBatchPacked of %zu through the bus: %.0f keys/s = %.0f%% of in-process, %.2f × UnwrapBatch\n",
	       batch_sizes[N_SIZES - 1], br.packed_bus_kps, 100 * br.packed_bus_kps / br.local_kps[0],
	       br.packed_bus_kps / br.bus_kps[0][N_SIZES - 1]);
	if (br.packed_direct_kps > 0)
		printf("  UnwrapBatchPacked of %zu on the private socket: %.0f keys/s = %.0f%% of in-process, %.2f × UnwrapBatch "
		       "(targets ≥ 1,000,000: %s, ≥ 60%%: %s)\n",
		       batch_sizes[N_SIZES - 1], br.packed_direct_kps, 100 * br.packed_direct_kps / br.local_kps[0],
		       br.packed_direct_kps / br.direct_kps, br.packed_direct_kps >= 1e6 ? "ok" : "MISSED",
		       br.packed_direct_kps >= 0.6 * br.local_kps[0] ? "ok" : "MISSED");
	printf("  RewrapBatchPacked of %zu through the bus: %.0f keys/s = %.0f%% of in-process rewrap, %.2f × RewrapBatch\n",
	       batch_sizes[N_SIZES - 1], br.packed_rw_bus_kps, 100 * br.packed_rw_bus_kps / br.local_kps[1],
	       br.packed_rw_bus_kps / br.bus_kps[1][N_SIZES - 1]);
	if (br.packed_rw_direct_kps > 0)
		printf("  RewrapBatchPacked of %zu on the private socket: %.0f keys/s = %.0f%% of in-process rewrap\n",
		       batch_sizes[N_SIZES - 1], br.packed_rw_direct_kps, 100 * br.packed_rw_direct_kps / br.local_kps[1]);
	printf("  each figure: the median of %d rounds taken in turns; keys/s of %zu-key unwraps, min / median / max:\n",
	       BATCH_ROUNDS, batch_sizes[N_SIZES - 1]);
	for (int k = 0; k < N_SPREAD; k++) {
		double med = k == SP_BUS ? br.bus_kps[0][N_SIZES - 1] : k == SP_DIRECT ? br.direct_kps :
		             k == SP_PBUS ? br.packed_bus_kps : k == SP_PDIRECT ? br.packed_direct_kps :
		             k == SP_LOCAL ? br.local_kps[0] : br.bare_kps;
		if ((k == SP_DIRECT || k == SP_PDIRECT) && br.direct_kps <= 0)
			continue;
		printf("  %-25s %10.0f %10.0f %10.0f  (max/min %.2f)\n", spread_names[k], br.min[k], med, br.max[k],
		       br.min[k] > 0 ? br.max[k] / br.min[k] : 0);
	}
	printf("\n(c) concurrent clients (Unwrap, own connection each)\n");
	printf("  %-8s %12s %10s %10s\n", "clients", "ops/s", "p50 µs", "p99 µs");
	for (int c = 0; c < N_CONC; c++)
		printf("  %-8d %12.0f %10.1f %10.1f\n", conc_clients[c], cr.ops[c], cr.p50_us[c], cr.p99_us[c]);
	printf("\n(d) daemon VmRSS (KiB): idle %ld, one vault %ld; after N requests:\n", mr.idle_kib, mr.one_vault_kib);
	for (int k = 0; k < MEM_ROUNDS; k++)
		printf("  %8" PRIu64 " requests: %ld KiB\n", mr.requests[k], mr.after_kib[k]);
	printf("  growth from 100k to 1M requests: %ld KiB (%.4f bytes/request)\n",
	       mr.after_kib[MEM_ROUNDS - 1] - mr.after_kib[0],
	       (double)(mr.after_kib[MEM_ROUNDS - 1] - mr.after_kib[0]) * 1024.0 /
	           (double)(mr.requests[MEM_ROUNDS - 1] - mr.requests[0]));
	printf("  idle ≤ 4 MiB: %s\n", mr.idle_kib <= 4096 ? "ok" : "MISSED");
	if (vaults_json)
		printf("  1,000 vaults: %s\n", vjson);
	if (utable)
		printf("\n%s\n", utable);
	if (peers_dir) {
		printf("\n(f) peers, measured in this run (where installed)\n");
		printf("  one secret out per call through a bus daemon; call median µs, p99 µs, × Ping to the same peer:\n");
		if (peers[0].json)
			printf("%s\n", peers[0].table);
		else
			printf("  gnome-keyring: left out (%s)\n", peers[0].skip);
		printf("  tokenseal in (a) above, system-type dbus-daemon (the test config):\n");
		printf("  %-16s %10.1f %10.1f %10.2f\n", "Ping", lat.median_us[OP_PING], lat.p99_us[OP_PING], 1.0);
		printf("  %-16s %10.1f %10.1f %10.2f\n", "Unwrap", lat.median_us[OP_UNWRAP], lat.p99_us[OP_UNWRAP],
		       lat.median_us[OP_UNWRAP] / lat.median_us[OP_PING]);
		if (peers[1].json)
			printf("\n%s\n", peers[1].table);
		else
			printf("\n  Clevis TPM2: left out (%s)\n", peers[1].skip);
	}
	printf("\ntotal bench time %.1f s\n", (double)(now_ns() - t0) / 1e9);

	/* JSON. */
	if ((f = fopen(json_path, "w")) == NULL)
		die("cannot write %s: %s", json_path, strerror(errno));
	fprintf(f, "{\n  \"calls_per_op\": %zu,\n  \"latency\": {\n", lat.calls);
	for (int o = 0; o < N_OPS; o++)
		fprintf(f, "    \"%s\": {\"median_us\": %.2f, \"p99_us\": %.2f, \"ratio_to_ping\": %.3f}%s\n",
		        op_names[o], lat.median_us[o], lat.p99_us[o], lat.median_us[o] / lat.median_us[OP_PING],
		        o + 1 < N_OPS ? "," : "");
	fprintf(f, "  },\n  \"library\": {\n");
	for (int o = 0, n = lat.direct ? N_LOPS : LOP_D_UNWRAP; o < n; o++)
		fprintf(f, "    \"%s\": {\"median_us\": %.2f, \"p99_us\": %.2f, \"ratio_to_sd_bus_unwrap\": %.3f}%s\n",
		        lop_names[o], lat.l_median_us[o], lat.l_p99_us[o],
		        lat.l_median_us[o] / (o >= LOP_D_UNWRAP ? lat.d_median_us[DOP_UNWRAP] : lat.median_us[OP_UNWRAP]),
		        o + 1 < n ? "," : "");
	if (lat.direct) {
		fprintf(f, "  },\n  \"direct\": {\n");
		for (int o = 0; o < N_DOPS; o++)
			fprintf(f, "    \"%s\": {\"median_us\": %.2f, \"p99_us\": %.2f, \"ratio_to_bus_ping\": %.3f},\n",
			        dop_names[o], lat.d_median_us[o], lat.d_p99_us[o], lat.d_median_us[o] / lat.median_us[OP_PING]);
		fprintf(f, "    \"placed\": {");
		for (int p = 0; p < lat.n_places; p++)
			fprintf(f, "%s\"%s\": {\"ping_median_us\": %.2f, \"unwrap_median_us\": %.2f, \"floor_median_us\": %.2f, "
			        "\"unwrap_to_floor\": %.3f}", p ? ", " : "", place_keys[p], lat.p_median_us[p][DOP_PING],
			        lat.p_median_us[p][DOP_UNWRAP], lat.p_median_us[p][DOP_FLOOR], lat.p_unwrap_to_floor[p]);
		fprintf(f, "},\n");
		fprintf(f, "    \"unwrap_to_floor\": %.3f,\n    \"unwrap_batch_keys_per_s\": %.0f,\n"
		        "    \"unwrap_batch_ratio_to_in_process\": %.3f,\n    \"unwrap_batch_packed_keys_per_s\": %.0f,\n"
		        "    \"unwrap_batch_packed_ratio_to_in_process\": %.3f,\n"
		        "    \"unwrap_batch_packed_ratio_to_unwrap_batch\": %.3f,\n"
		        "    \"rewrap_batch_packed_keys_per_s\": %.0f,\n"
		        "    \"rewrap_batch_packed_ratio_to_in_process\": %.3f\n",
		        lat.d_median_us[DOP_UNWRAP] / lat.d_median_us[DOP_FLOOR], br.direct_kps, br.direct_kps / br.local_kps[0],
		        br.packed_direct_kps, br.packed_direct_kps / br.local_kps[0], br.packed_direct_kps / br.direct_kps,
		        br.packed_rw_direct_kps, br.packed_rw_direct_kps / br.local_kps[1]);
	}
	fprintf(f, "  },\n  \"batch\": {\n    \"in_process_keys_per_s\": {\"unwrap\": %.0f, \"rewrap\": %.0f, "
	        "\"bare_aead\": %.0f, \"unwrap_ratio_to_bare_aead\": %.3f, \"bare_aead_blob_aad\": %.0f, "
	        "\"unwrap_ratio_to_bare_aead_blob_aad\": %.3f, \"unwrap_target_met\": %s},\n",
	        br.local_kps[0], br.local_kps[1], br.bare_kps, br.local_kps[0] / br.bare_kps, br.bare_aad_kps,
	        br.local_kps[0] / br.bare_aad_kps, br.local_kps[0] >= 1.5e6 ? "true" : "false");
	fprintf(f, "    \"rounds\": %d,\n    \"spread_keys_per_s\": {", BATCH_ROUNDS);
	for (int k = 0, first = 1; k < N_SPREAD; k++) {
		if ((k == SP_DIRECT || k == SP_PDIRECT) && br.direct_kps <= 0)
			continue;
		fprintf(f, "%s\"%s\": {\"min\": %.0f, \"max\": %.0f}", first ? "" : ", ", spread_names[k], br.min[k], br.max[k]);
		first = 0;
	}
	fprintf(f, "},\n");
	fprintf(f, "    \"UnwrapBatchPacked\": {\"size\": %zu, \"keys_per_s\": %.0f, \"ratio_to_in_process\": %.3f, "
	        "\"ratio_to_unwrap_batch\": %.3f},\n", batch_sizes[N_SIZES - 1], br.packed_bus_kps,
	        br.packed_bus_kps / br.local_kps[0], br.packed_bus_kps / br.bus_kps[0][N_SIZES - 1]);
	fprintf(f, "    \"RewrapBatchPacked\": {\"size\": %zu, \"keys_per_s\": %.0f, \"ratio_to_in_process\": %.3f, "
	        "\"ratio_to_rewrap_batch\": %.3f},\n", batch_sizes[N_SIZES - 1], br.packed_rw_bus_kps,
	        br.packed_rw_bus_kps / br.local_kps[1], br.packed_rw_bus_kps / br.bus_kps[1][N_SIZES - 1]);
	for (int rw = 0; rw < 2; rw++) {
		fprintf(f, "    \"%s\": [", rw ? "RewrapBatch" : "UnwrapBatch");
		for (int s = 0; s < N_SIZES; s++)
			fprintf(f, "%s{\"size\": %zu, \"keys_per_s\": %.0f, \"ratio_to_in_process\": %.3f}", s ? ", " : "",
			        batch_sizes[s], br.bus_kps[rw][s], br.bus_kps[rw][s] / br.local_kps[rw]);
		fprintf(f, "]%s\n", rw ? "" : ",");
	}
	fprintf(f, "  },\n  \"concurrency\": [");
	for (int c = 0; c < N_CONC; c++)
		fprintf(f, "%s{\"clients\": %d, \"ops_per_s\": %.0f, \"p50_us\": %.2f, \"p99_us\": %.2f}", c ? ", " : "",
		        conc_clients[c], cr.ops[c], cr.p50_us[c], cr.p99_us[c]);
	fprintf(f, "],\n  \"memory_kib\": {\"idle\": %ld, \"one_vault\": %ld, \"after_requests\": [", mr.idle_kib,
	        mr.one_vault_kib);
	for (int k = 0; k < MEM_ROUNDS; k++)
		fprintf(f, "%s{\"requests\": %" PRIu64 ", \"rss\": %ld}", k ? ", " : "", mr.requests[k], mr.after_kib[k]);
	fprintf(f, "]},\n  \"vaults_1000\": %s,\n  \"unlock\": %s", vjson, ujson);
	if (peers_dir) {
		fprintf(f, ",\n  \"peers\": {\n    \"tokenseal_unwrap_to_ping\": %.3f",
		        lat.median_us[OP_UNWRAP] / lat.median_us[OP_PING]);
		for (size_t i = 0; i < 2; i++) {
			if (peers[i].json)
				fprintf(f, ",\n    \"%s\": %s", peers[i].json_key, peers[i].json);
			else
				fprintf(f, ",\n    \"%s\": {\"skipped\": \"%s\"}", peers[i].json_key, peers[i].skip);
		}
		fprintf(f, "\n  }");
	}
	fprintf(f, "\n}\n");
	fclose(f);
	free(vjson);
	free(ujson);
	free(utable);
	for (size_t i = 0; i < 2; i++) {
		free(peers[i].json);
		free(peers[i].table);
		free(peers[i].skip);
	}
	free(blob);
	free(path);
	sd_bus_flush_close_unref(bus);
}

/* ---- 1,000 vaults ---- */

static void mkvaults(const char *dir, int n, const char *key_out)
{
	_ts_cleanup_secure_ uint8_t *rk = ts_secure_alloc(TS_RECOVERY_KEY_BYTES);
	_ts_cleanup_secure_ char *text = ts_secure_alloc(TS_RECOVERY_TEXT_BYTES);
	_ts_cleanup_secure_ uint8_t *kek = ts_secure_alloc(TS_KEY_BYTES);
	char name[32], file[4096];
	FILE *f;
	int fd;

	if (!rk || !text || !kek || ts_recovery_generate(rk, text) < 0)
		die("cannot make a recovery key");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		die("mkdir %s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		_ts_cleanup_buf_ ts_buf params = { 0 };
		_ts_cleanup_buf_ ts_buf out = { 0 };
		ts_recovery_params p;
		ts_vault *v = NULL;

		snprintf(name, sizeof(name), "bench-%04d", i);
		/* What CreateVault makes today: a BLAKE2b KEK, no stretching (this measures memory). */
		ts_recovery_params_default(&p);
		if (ts_vault_create(&v, name, 0, (uint64_t)time(NULL)) < 0 || ts_recovery_derive_kek(rk, &p, v->id, kek) < 0 ||
		    ts_recovery_params_encode(&p, &params) < 0 ||
		    ts_vault_add_protector(v, "recovery", "Recovery key", kek, params.data, params.len,
		                           (uint64_t)time(NULL), NULL) < 0 ||
		    ts_vault_serialize(v, &out) < 0)
			die("cannot build vault %s", name);
		snprintf(file, sizeof(file), "%s/%s.vault", dir, name);
		if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
		    write(fd, out.data, out.len) != (ssize_t)out.len || close(fd) < 0)
			die("cannot write %s: %s", file, strerror(errno));
		ts_vault_free(v);
	}
	if ((f = fopen(key_out, "w")) == NULL)
		die("cannot write %s", key_out);
	fprintf(f, "%s\n", text);
	fclose(f);
}

static void unlock_vault(sd_bus *bus, const char *name, const char *key_file)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *path;
	char key[128];
	ssize_t n;
	int fd, pfd[2], r;

	r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetVault", &err, &reply, "s", name);
	check_call(r, &err, "GetVault");
	if (sd_bus_message_read(reply, "o", &path) < 0)
		die("GetVault: bad reply");
	/* The key goes in through a pipe (the daemon takes no other kind of secret fd), closed once written. */
	if ((fd = open(key_file, O_RDONLY | O_CLOEXEC)) < 0)
		die("cannot open %s", key_file);
	if ((n = read(fd, key, sizeof(key))) <= 0)
		die("cannot read %s", key_file);
	close(fd);
	if (pipe(pfd) < 0 || write(pfd[1], key, (size_t)n) != n)
		die("pipe: %s", strerror(errno));
	sodium_memzero(key, sizeof(key));
	close(pfd[1]);
	r = sd_bus_call_method(bus, BUS_NAME, path, VAULT_IFACE, "Unlock", &err, NULL, "sha{ss}", "recovery", pfd[0], 0);
	close(pfd[0]);
	check_call(r, &err, "Unlock");
	sd_bus_message_unref(reply);
}

static void vaults(const char *address, pid_t pid, int n, const char *key_file, const char *json_out)
{
	sd_bus *bus = bus_connect(address);
	long locked, unlocked;
	char name[32];
	FILE *f;

	locked = rss_kib(pid);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "bench-%04d", i);
		unlock_vault(bus, name, key_file);
	}
	unlocked = rss_kib(pid);
	if ((f = fopen(json_out, "w")) == NULL)
		die("cannot write %s", json_out);
	fprintf(f, "{\"vaults\": %d, \"rss_locked_kib\": %ld, \"rss_unlocked_kib\": %ld}", n, locked, unlocked);
	fclose(f);
	printf("%d vaults: VmRSS %ld KiB locked, %ld KiB unlocked\n", n, locked, unlocked);
	sd_bus_flush_close_unref(bus);
}

/* For profiles: N calls of one kind (ping|unwrap|wrap|rewrap|generate) on a fresh vault. */
static void loop(const char *address, const char *what, long n, const char *name)
{
	sd_bus *bus = strncmp(address, "direct:", 7) == 0 ? direct_connect(address + 7) : bus_connect(address);
	uint8_t key[KEY_LEN], *blob;
	size_t blob_len;
	char *path = create_vault(bus, name);
	int op = -1;

	if (strcmp(what, "batch") == 0) {   /* UnwrapBatch of 1,000 copies of one blob */
		uint8_t **blobs = calloc(1000, sizeof(*blobs));
		randombytes_buf(key, sizeof(key));
		blob = call_bytes(bus, path, "Wrap", key, KEY_LEN, &blob_len);
		for (int i = 0; blobs && i < 1000; i++)
			blobs[i] = blob;
		for (long i = 0; blobs && i < n; i++)
			call_batch(bus, path, 0, blobs, blob_len, 1000, key, NULL);
		free(blobs);
		free(blob);
		free(path);
		sd_bus_flush_close_unref(bus);
		return;
	}
	for (int o = 0; o < N_OPS; o++)
		if (strcasecmp(what, op_names[o]) == 0 || (o == OP_GENERATE && strcmp(what, "generate") == 0))
			op = o;
	if (op < 0)
		die("unknown call %s", what);
	randombytes_buf(key, sizeof(key));
	blob = call_bytes(bus, path, "Wrap", key, KEY_LEN, &blob_len);
	for (long i = 0; i < n; i++)
		one_op(bus, path, op, blob, blob_len, key);
	free(blob);
	free(path);
	sd_bus_flush_close_unref(bus);
}

/* ---- (e) unlock overhead per protector ---- */

/*
 * One line of the plan run.sh writes, tab-separated:
 *   TYPE VAULT PROTECTOR SECRET_FILE|- TOOL ARG...
 * VAULT names the row (one vault per case: recovery, fido2-pin, ...).
 * TOOL ARG... is the in-process baseline (TYPE_check bench-unlock ...);
 * "--count N --step" is appended to it.
 */
#define PLAN_MAX_ARGS 32
#define UNLOCK_TARGET_US 5000.0

struct unlock_case {
	char *type, *vault, *protector, *secret_file;
	char *argv[PLAN_MAX_ARGS + 4];   /* + --count N --step NULL */
	double bus_median_us, bus_p99_us, local_median_us, local_p99_us;
	double paired_us;   /* median of (bus call − the in-process call next to it) */
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The secret as the CLI sends it for --pin-fd: one line, in secure memory. NULL for "-". */
static uint8_t *read_secret(const char *path, size_t *ret_len)
{
	uint8_t *s;
	size_t len = 0;
	ssize_t n;
	int fd;

	*ret_len = 0;
	if (strcmp(path, "-") == 0)
		return NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die("cannot open %s: %s", path, strerror(errno));
	if ((s = ts_secure_alloc(TS_CLIENT_SECRET_MAX + 1)) == NULL)
		die("out of secure memory");
	while (len < TS_CLIENT_SECRET_MAX && (n = read(fd, s + len, TS_CLIENT_SECRET_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = 0;
	*ret_len = len;
	return s;
}

/* The in-process baseline, started with --step: it answers one timed call per line we send. */
struct baseline {
	pid_t pid;
	FILE *to, *from;
	char *log;          /* everything it printed, shown if it fails */
	size_t log_len;
	FILE *logf;
};

static void baseline_start(struct unlock_case *uc, long count, struct baseline *b)
{
	char count_arg[32];
	size_t argc = 0;
	posix_spawn_file_actions_t fa;
	int in[2], out[2];

	while (uc->argv[argc])
		argc++;
	snprintf(count_arg, sizeof(count_arg), "%ld", count);
	uc->argv[argc] = (char *)"--count";
	uc->argv[argc + 1] = count_arg;
	uc->argv[argc + 2] = (char *)"--step";
	uc->argv[argc + 3] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO) != 0)
		die("cannot set up %s", uc->argv[0]);
	if ((errno = posix_spawn(&b->pid, uc->argv[0], &fa, NULL, uc->argv, environ)) != 0)
		die("cannot start %s: %s", uc->argv[0], strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	uc->argv[argc] = NULL;
	close(in[0]);
	close(out[1]);
	if ((b->to = fdopen(in[1], "w")) == NULL || (b->from = fdopen(out[0], "r")) == NULL ||
	    (b->logf = open_memstream(&b->log, &b->log_len)) == NULL)
		die("out of memory");
}

static void baseline_fail(struct unlock_case *uc, struct baseline *b, const char *what)
{
	char line[512];

	while (fgets(line, sizeof(line), b->from))
		fputs(line, b->logf);
	fclose(b->logf);
	die("%s: the in-process baseline %s:\n%s", uc->vault, what, b->log ? b->log : "");
}

/* Next line of the baseline starting with prefix; its number. */
static double baseline_expect(struct unlock_case *uc, struct baseline *b, const char *prefix)
{
	char line[512];
	double v = 0;

	if (!fgets(line, sizeof(line), b->from)) {
		fputs("(no more output)\n", b->logf);
		baseline_fail(uc, b, "stopped");
	}
	fputs(line, b->logf);
	if (strncmp(line, prefix, strlen(prefix)) != 0 || (line[strlen(prefix)] != '\n' &&
	                                                    sscanf(line + strlen(prefix), "%lf", &v) != 1))
		baseline_fail(uc, b, "failed");
	return v;
}

/* One timed call of the baseline (ns, as it measured it around ops->unlock). */
static uint64_t baseline_call(struct unlock_case *uc, struct baseline *b)
{
	if (fputs("go\n", b->to) < 0 || fflush(b->to) != 0)
		baseline_fail(uc, b, "is gone");
	return (uint64_t)(baseline_expect(uc, b, "sample_us ") * 1000.0);
}

static void baseline_finish(struct unlock_case *uc, struct baseline *b)
{
	int status;

	fclose(b->to);
	baseline_expect(uc, b, "median_us ");
	baseline_expect(uc, b, "p99_us ");
	fclose(b->from);
	fclose(b->logf);
	free(b->log);
	if (waitpid(b->pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s: the in-process baseline exited badly", uc->vault);
}

/*
 * Untimed pause before each timed Unlock (BENCH_UNLOCK_PAUSE_MS, default 30):
 * real unlocks are paced by people (a login, a screen unlock), never back
 * to back, and tokensealed starts its next token helper right after an
 * operation; 0 measures back-to-back unlocks, which also pay that start.
 */
static long unlock_pause_ms(void)
{
	static long ms = -1;

	if (ms < 0) {
		const char *e = getenv("BENCH_UNLOCK_PAUSE_MS");
		ms = e && *e ? strtol(e, NULL, 10) : 30;
		if (ms < 0 || ms > 10000)
			ms = 30;
	}
	return ms;
}

/* One timed Unlock through the bus (the vault is locked first, untimed), as `tokenseal unlock --pin-fd` does it. */
static uint64_t bus_unlock(ts_client *c, struct unlock_case *uc, const uint8_t *secret, size_t secret_len)
{
	struct timespec pause = { unlock_pause_ms() / 1000, (unlock_pause_ms() % 1000) * 1000000 };
	uint64_t t0;

	if (ts_client_lock(c, uc->vault) < 0)
		die("%s: Lock: %s", uc->vault, ts_client_last_error(c));
	nanosleep(&pause, NULL);
	t0 = now_ns();
	if (ts_client_unlock(c, uc->vault, uc->protector, secret, secret_len, NULL, NULL, NULL) < 0)
		die("%s: Unlock: %s", uc->vault, ts_client_last_error(c));
	return now_ns() - t0;
}

static void unlock_case_run(ts_client *c, struct unlock_case *uc, long n)
{
	uint64_t *bus_t = calloc((size_t)n, sizeof(uint64_t)), *loc_t = calloc((size_t)n, sizeof(uint64_t));
	int64_t *diff = calloc((size_t)n, sizeof(int64_t));
	size_t secret_len;
	uint8_t *secret = read_secret(uc->secret_file, &secret_len);
	struct baseline b = { 0 };

	if (!bus_t || !loc_t || !diff)
		die("out of memory");
	/* Untimed first round trip: the daemon loads what this token type needs, and it must work. */
	bus_unlock(c, uc, secret, secret_len);
	/* The baseline makes its untimed first call (and checks its KEK opens the vault) before "ready". */
	baseline_start(uc, n, &b);
	baseline_expect(uc, &b, "ready");
	/*
	 * The two take turns call by call, in alternating order, so that the
	 * load other processes put on the machine hits both alike.
	 */
	for (long i = 0; i < n; i++) {
		if (i & 1) {
			loc_t[i] = baseline_call(uc, &b);
			bus_t[i] = bus_unlock(c, uc, secret, secret_len);
		} else {
			bus_t[i] = bus_unlock(c, uc, secret, secret_len);
			loc_t[i] = baseline_call(uc, &b);
		}
	}
	baseline_finish(uc, &b);
	for (long i = 0; i < n; i++)
		diff[i] = (int64_t)bus_t[i] - (int64_t)loc_t[i];
	qsort(diff, (size_t)n, sizeof(*diff), cmp_i64);
	uc->paired_us = (double)diff[(size_t)(0.5 * (double)(n - 1) + 0.5)] / 1000.0;
	uc->bus_median_us = pct_us(bus_t, (size_t)n, 0.5);
	uc->bus_p99_us = pct_us(bus_t, (size_t)n, 0.99);
	uc->local_median_us = pct_us(loc_t, (size_t)n, 0.5);
	uc->local_p99_us = pct_us(loc_t, (size_t)n, 0.99);
	ts_secure_free(secret);
	free(bus_t);
	free(loc_t);
	free(diff);
}

static void unlock_bench(const char *address, const char *plan, long n, const char *json_out, const char *table_out)
{
	struct unlock_case cases[16];
	size_t ncases = 0, cap = 0;
	char *line = NULL;
	ts_client *c = NULL;
	FILE *f;
	int r;

	if (n < 1)
		die("unlock: N must be at least 1");
	if ((f = fopen(plan, "r")) == NULL)
		die("cannot read %s: %s", plan, strerror(errno));
	while (getline(&line, &cap, f) > 0) {
		struct unlock_case *uc = &cases[ncases];
		char *fields[PLAN_MAX_ARGS + 4], *save = NULL, *tok;
		size_t nf = 0;

		line[strcspn(line, "\n")] = 0;
		if (line[0] == 0 || line[0] == '#')
			continue;
		if (ncases == sizeof(cases) / sizeof(cases[0]))
			die("%s: too many protectors", plan);
		for (tok = strtok_r(line, "\t", &save); tok && nf < sizeof(fields) / sizeof(fields[0]);
		     tok = strtok_r(NULL, "\t", &save))
			if ((fields[nf++] = strdup(tok)) == NULL)
				die("out of memory");
		if (nf < 5 || tok)
			die("%s: a line needs TYPE VAULT PROTECTOR SECRET TOOL [ARG...]", plan);
		*uc = (struct unlock_case){ .type = fields[0], .vault = fields[1], .protector = fields[2],
		                            .secret_file = fields[3] };
		for (size_t i = 4; i < nf; i++)
			uc->argv[i - 4] = fields[i];
		ncases++;
	}
	free(line);
	fclose(f);

	if ((r = ts_client_open(&c, address)) < 0)
		die("cannot connect to %s: %s", address, ts_strerror(r));
	for (size_t i = 0; i < ncases; i++) {
		fprintf(stderr, "bench: unlock %s...\n", cases[i].vault);
		unlock_case_run(c, &cases[i], n);
	}
	ts_client_free(c);

	if ((f = fopen(table_out, "w")) == NULL)
		die("cannot write %s", table_out);
	fprintf(f, "(e) Unlock through the bus vs the same backend in-process, %ld calls each, ms\n", n);
	fprintf(f, "    each bus Unlock after an untimed %ld ms pause (BENCH_UNLOCK_PAUSE_MS; 0: back to back)\n",
	        unlock_pause_ms());
	fprintf(f, "    overhead = bus median − in-process median (target ≤ 5 ms);\n"
	           "    paired Δ = median of (bus call − in-process call next to it)\n");
	fprintf(f, "  %-14s %10s %8s %12s %10s %-7s %9s\n", "vault", "bus median", "bus p99", "in-process", "overhead",
	        "", "paired Δ");
	for (size_t i = 0; i < ncases; i++) {
		const struct unlock_case *uc = &cases[i];
		double over = uc->bus_median_us - uc->local_median_us;
		fprintf(f, "  %-14s %10.2f %8.2f %12.2f %10.2f %-7s %9.2f\n", uc->vault, uc->bus_median_us / 1000,
		        uc->bus_p99_us / 1000, uc->local_median_us / 1000, over / 1000,
		        over <= UNLOCK_TARGET_US ? "ok" : "MISSED", uc->paired_us / 1000);
	}
	fclose(f);

	if ((f = fopen(json_out, "w")) == NULL)
		die("cannot write %s", json_out);
	fprintf(f, "{\"calls\": %ld, \"pause_ms\": %ld, \"target_overhead_us\": %.0f, \"protectors\": [", n,
	        unlock_pause_ms(), UNLOCK_TARGET_US);
	for (size_t i = 0; i < ncases; i++) {
		const struct unlock_case *uc = &cases[i];
		double over = uc->bus_median_us - uc->local_median_us;
		fprintf(f,
		        "%s\n    {\"vault\": \"%s\", \"type\": \"%s\", \"bus_median_us\": %.1f, \"bus_p99_us\": %.1f, "
		        "\"in_process_median_us\": %.1f, \"in_process_p99_us\": %.1f, \"overhead_us\": %.1f, "
		        "\"overhead_paired_median_us\": %.1f, \"target_met\": %s}",
		        i ? "," : "", uc->vault, uc->type, uc->bus_median_us, uc->bus_p99_us, uc->local_median_us,
		        uc->local_p99_us, over, uc->paired_us, over <= UNLOCK_TARGET_US ? "true" : "false");
	}
	fprintf(f, "]}");
	fclose(f);
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	if (argc >= 5 && strcmp(argv[1], "run") == 0) {
		const char *vj = NULL, *uj = NULL, *ut = NULL, *pd = NULL;
		for (int i = 5; i < argc; i++) {
			if (strcmp(argv[i], "--quick") == 0)
				quick = 1;
			else if (strcmp(argv[i], "--vaults-json") == 0 && i + 1 < argc)
				vj = argv[++i];
			else if (strcmp(argv[i], "--unlock-json") == 0 && i + 1 < argc)
				uj = argv[++i];
			else if (strcmp(argv[i], "--unlock-table") == 0 && i + 1 < argc)
				ut = argv[++i];
			else if (strcmp(argv[i], "--peers-dir") == 0 && i + 1 < argc)
				pd = argv[++i];
			else
				die("unknown option %s", argv[i]);
		}
		run(argv[2], (pid_t)atoi(argv[3]), argv[4], vj, uj, ut, pd);
		return 0;
	}
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "loop") == 0) {
		loop(argv[2], argv[3], atol(argv[4]), argc == 6 ? argv[5] : "loop");
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "mkvaults") == 0) {
		mkvaults(argv[2], atoi(argv[3]), argv[4]);
		return 0;
	}
	if (argc == 7 && strcmp(argv[1], "unlock") == 0) {
		unlock_bench(argv[2], argv[3], atol(argv[4]), argv[5], argv[6]);
		return 0;
	}
	if (argc == 7 && strcmp(argv[1], "vaults") == 0) {
		vaults(argv[2], (pid_t)atoi(argv[3]), atoi(argv[4]), argv[5], argv[6]);
		return 0;
	}
	fprintf(stderr, "usage: bench run ADDRESS DAEMON_PID JSON_OUT [--quick] [--vaults-json FILE]\n"
	                "                 [--unlock-json FILE --unlock-table FILE] [--peers-dir DIR]\n"
	                "       bench mkvaults DIR N KEY_OUT\n"
	                "       bench vaults ADDRESS DAEMON_PID N KEY_FILE JSON_OUT\n"
	                "       bench loop ADDRESS ping|unwrap|wrap|rewrap|generate|batch N [VAULT] (ADDRESS direct:PATH: the private socket)\n"
	                "       bench unlock ADDRESS PLAN N JSON_OUT TABLE_OUT\n");
	return 2;
}
