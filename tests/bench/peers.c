/* peers.c — `make bench`, the peers: gnome-keyring's GetSecret vs Ping; Clevis TPM2 decrypt vs tokenseal unlock + N Unwraps. */
/*
 * Run by tests/bench/run.sh (tests/bench/peers.sh sets the peers up); each
 * mode writes a table section and a JSON fragment that `bench run
 * --peers-dir` puts next to tokenseal's own figures of the same run.
 *
 *   peers keyring ADDRESS SECRET_FILE N JSON_OUT TABLE_OUT
 *       on the bus at ADDRESS (gnome-keyring-daemon owns org.freedesktop.secrets there, an
 *       unlocked collection holds an item with the attribute tokenseal=bench whose secret is
 *       SECRET_FILE; tokensealed owns org.tokenseal1 there too): OpenSession("plain"), then
 *       N x Item.GetSecret(session) and N x org.freedesktop.DBus.Peer.Ping to the keyring's
 *       unique name, and N x Ping and N x Unwrap (a new vault "bench-keyring") to tokensealed's,
 *       all interleaved in rounds
 *   peers clevis ADDRESS VAULT PROTECTOR KEY_DIR M ROUNDS JSON_OUT TABLE_OUT
 *       KEY_DIR holds k1..kK (32-byte keys, K >= 1) and k1.jwe..kK.jwe (`clevis encrypt tpm2` of
 *       each, on the swtpm the daemon's tpm2 VAULT is sealed to). ROUNDS rounds, each: for N = 1,
 *       10, 100 (in an order that turns each round), the vault locked (untimed), then one
 *       `tokenseal unlock --protector PROTECTOR` process and a client that connects and makes N
 *       Unwrap calls, timed as one; then
 *       M / ROUNDS `clevis decrypt` processes of the keys in turn (one TPM unseal each, checked).
 *
 * Every answer is checked; a wrong one stops the run.
 */
#define _GNU_SOURCE 1   /* environ */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "client-internal.h"   /* ts_client_lock */

#define CALL_TIMEOUT_USEC (60ull * 1000000)
#define KEY_LEN 32

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("peers: ", stderr);
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v. Percentile q in [0,1], in µs. */
static double pct_us(uint64_t *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[(size_t)(q * (double)(n - 1) + 0.5)] / 1000.0;
}

/* A small file's bytes (at most cap). */
static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		die("cannot open %s: %s", path, strerror(errno));
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	close(fd);
	return len;
}

static FILE *open_out(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	return f;
}

/* ---- gnome-keyring: Item.GetSecret vs Peer.Ping on its bus ---- */

#define SS_NAME "org.freedesktop.secrets"
#define SS_PATH "/org/freedesktop/secrets"
#define SS_SERVICE "org.freedesktop.Secret.Service"

static void check_call(int r, sd_bus_error *err, const char *what)
{
	if (r < 0)
		die("%s: %s", what, err->message ? err->message : strerror(-r));
}

static void ping(sd_bus *bus, const char *dest, const char *path)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int r;

	r = sd_bus_call_method(bus, dest, path, "org.freedesktop.DBus.Peer", "Ping", &err, &reply, "");
	check_call(r, &err, "Ping");
	sd_bus_message_unref(reply);
}

/* Item.GetSecret(session) -> (oayays); the value must be expect. */
static void get_secret(sd_bus *bus, const char *dest, const char *item, const char *session, const uint8_t *expect,
                       size_t expect_len)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *s;
	const void *params, *value;
	size_t params_len, value_len;
	int r;

	r = sd_bus_call_method(bus, dest, item, "org.freedesktop.Secret.Item", "GetSecret", &err, &reply, "o", session);
	check_call(r, &err, "GetSecret");
	if (sd_bus_message_enter_container(reply, 'r', "oayays") <= 0 || sd_bus_message_read(reply, "o", &s) < 0 ||
	    sd_bus_message_read_array(reply, 'y', &params, &params_len) < 0 ||
	    sd_bus_message_read_array(reply, 'y', &value, &value_len) < 0)
		die("GetSecret: bad reply");
	if (value_len != expect_len || sodium_memcmp(value, expect, expect_len) != 0)
		die("GetSecret: wrong secret");
	sodium_memzero((void *)value, value_len);
	sd_bus_message_unref(reply);
}

/* The unique name owning a well-known name: calls go there, so Ping and the method reach the same peer. */
static char *name_owner(sd_bus *bus, const char *name)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *owner;
	char *ret;
	int r;

	r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
	                       "GetNameOwner", &err, &reply, "s", name);
	check_call(r, &err, "GetNameOwner");
	if (sd_bus_message_read(reply, "s", &owner) < 0 || (ret = strdup(owner)) == NULL)
		die("GetNameOwner: bad reply");
	sd_bus_message_unref(reply);
	return ret;
}

/* tokensealed on the same bus: a vault, a wrapped 32-byte key, Unwrap as (a) of `bench run` calls it. */
#define TS_NAME "org.tokenseal1"
#define TS_MANAGER "/org/tokenseal1"
#define TS_VAULT_IFACE "org.tokenseal1.Vault"

static sd_bus_message *ts_bytes_call(sd_bus *bus, const char *dest, const char *path, const char *method,
                                     const uint8_t *in, size_t in_len)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, dest, path, TS_VAULT_IFACE, method)) < 0 ||
	    (r = sd_bus_message_append_array(m, 'y', in, in_len)) < 0 ||
	    (r = sd_bus_message_append(m, "a{ss}", 2, "app", "bench", "purpose", "latency")) < 0)
		die("%s: building the message: %s", method, strerror(-r));
	r = sd_bus_call(bus, m, CALL_TIMEOUT_USEC, &err, &reply);
	check_call(r, &err, method);
	sd_bus_message_unref(m);
	return reply;
}

static void ts_unwrap_call(sd_bus *bus, const char *dest, const char *path, const uint8_t *blob, size_t blob_len,
                           const uint8_t *key)
{
	sd_bus_message *reply = ts_bytes_call(bus, dest, path, "Unwrap", blob, blob_len);
	const void *p;
	size_t n;

	if (sd_bus_message_read_array(reply, 'y', &p, &n) < 0 || n != KEY_LEN || sodium_memcmp(p, key, KEY_LEN) != 0)
		die("Unwrap: wrong reply");
	sodium_memzero((void *)p, n);
	sd_bus_message_unref(reply);
}

/* CreateVault(name, {}, fd): the recovery key goes to a pipe, drained and wiped. Returns the path. */
static char *ts_create_vault(sd_bus *bus, const char *dest, const char *name)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *path;
	char key[128], *ret;
	int pfd[2], r;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	r = sd_bus_call_method(bus, dest, TS_MANAGER, "org.tokenseal1.Manager", "CreateVault", &err, &reply, "sa{ss}h",
	                       name, 0, pfd[1]);
	close(pfd[1]);
	check_call(r, &err, "CreateVault");
	if (read(pfd[0], key, sizeof(key)) <= 0)
		die("CreateVault: no recovery key on the pipe");
	sodium_memzero(key, sizeof(key));
	close(pfd[0]);
	if (sd_bus_message_read(reply, "o", &path) < 0 || (ret = strdup(path)) == NULL)
		die("CreateVault: bad reply");
	sd_bus_message_unref(reply);
	return ret;
}

enum { K_PING, K_GET, K_TS_PING, K_TS_UNWRAP, N_K };
static const char *const k_names[N_K] = { "Ping", "GetSecret", "Ping", "Unwrap" };

static void keyring(const char *address, const char *secret_file, long n, const char *json_out, const char *table_out)
{
	const size_t rounds = 20, chunk = (size_t)n / rounds, total = chunk * rounds;
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	sd_bus *bus = NULL;
	uint8_t secret[256], key[KEY_LEN], *blob;
	size_t secret_len, blob_len;
	const char *s;
	const void *p;
	char *dest, *session, *item, *ts_dest, *vault;
	uint64_t *t[N_K];
	double med[N_K], p99[N_K];
	FILE *f;
	int r;

	if (chunk == 0)
		die("keyring: N must be at least %zu", rounds);
	secret_len = read_file(secret_file, secret, sizeof(secret));
	if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, address)) < 0 ||
	    (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0)
		die("cannot connect to %s: %s", address, strerror(-r));
	dest = name_owner(bus, SS_NAME);
	ts_dest = name_owner(bus, TS_NAME);

	/* OpenSession("plain", ""): the secret travels as it is, as it does with tokenseal's Unwrap. */
	r = sd_bus_call_method(bus, dest, SS_PATH, SS_SERVICE, "OpenSession", &err, &reply, "sv", "plain", "s", "");
	check_call(r, &err, "OpenSession");
	if (sd_bus_message_skip(reply, "v") < 0 || sd_bus_message_read(reply, "o", &s) < 0 ||
	    (session = strdup(s)) == NULL)
		die("OpenSession: bad reply");
	reply = sd_bus_message_unref(reply);

	r = sd_bus_call_method(bus, dest, SS_PATH, SS_SERVICE, "SearchItems", &err, &reply, "a{ss}", 1, "tokenseal",
	                       "bench");
	check_call(r, &err, "SearchItems");
	if (sd_bus_message_enter_container(reply, 'a', "o") <= 0 || sd_bus_message_read(reply, "o", &s) <= 0 ||
	    (item = strdup(s)) == NULL)
		die("SearchItems: no unlocked item tokenseal=bench");
	reply = sd_bus_message_unref(reply);

	/* tokenseal's side: a vault and one wrapped 32-byte key, the Unwrap of (a). */
	vault = ts_create_vault(bus, ts_dest, "bench-keyring");
	randombytes_buf(key, sizeof(key));
	reply = ts_bytes_call(bus, ts_dest, vault, "Wrap", key, KEY_LEN);
	if (sd_bus_message_read_array(reply, 'y', &p, &blob_len) < 0 || (blob = malloc(blob_len)) == NULL)
		die("Wrap: bad reply");
	memcpy(blob, p, blob_len);
	reply = sd_bus_message_unref(reply);

	for (int o = 0; o < N_K; o++)
		if ((t[o] = calloc(total, sizeof(uint64_t))) == NULL)
			die("out of memory");
	for (int i = 0; i < 200; i++) {   /* warm up */
		ping(bus, dest, SS_PATH);
		get_secret(bus, dest, item, session, secret, secret_len);
		ping(bus, ts_dest, TS_MANAGER);
		ts_unwrap_call(bus, ts_dest, vault, blob, blob_len, key);
	}
	/* Interleaved in rounds, as (a) of `bench run`: a slow phase of the machine hits all alike. */
	for (size_t k = 0; k < rounds; k++)
		for (int o = 0; o < N_K; o++)
			for (size_t i = 0; i < chunk; i++) {
				uint64_t t0 = now_ns();
				switch (o) {
				case K_PING: ping(bus, dest, SS_PATH); break;
				case K_GET: get_secret(bus, dest, item, session, secret, secret_len); break;
				case K_TS_PING: ping(bus, ts_dest, TS_MANAGER); break;
				default: ts_unwrap_call(bus, ts_dest, vault, blob, blob_len, key); break;
				}
				t[o][k * chunk + i] = now_ns() - t0;
			}
	for (int o = 0; o < N_K; o++) {
		med[o] = pct_us(t[o], total, 0.5);
		p99[o] = pct_us(t[o], total, 0.99);
		free(t[o]);
	}
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(key, sizeof(key));

	f = open_out(table_out);
	fprintf(f, "  on one session-type dbus-daemon, %zu calls each, interleaved (a %zu-byte secret; a 32-byte key):\n",
	        total, secret_len);
	fprintf(f, "  gnome-keyring\n");
	fprintf(f, "  %-16s %10.1f %10.1f %10.2f\n", k_names[K_PING], med[K_PING], p99[K_PING], 1.0);
	fprintf(f, "  %-16s %10.1f %10.1f %10.2f\n", k_names[K_GET], med[K_GET], p99[K_GET], med[K_GET] / med[K_PING]);
	fprintf(f, "  tokenseal\n");
	fprintf(f, "  %-16s %10.1f %10.1f %10.2f\n", k_names[K_TS_PING], med[K_TS_PING], p99[K_TS_PING], 1.0);
	fprintf(f, "  %-16s %10.1f %10.1f %10.2f\n", k_names[K_TS_UNWRAP], med[K_TS_UNWRAP], p99[K_TS_UNWRAP],
	        med[K_TS_UNWRAP] / med[K_TS_PING]);
	fclose(f);
	f = open_out(json_out);
	fprintf(f, "{\"bus\": \"session-type dbus-daemon\", \"calls\": %zu, \"secret_bytes\": %zu, "
	           "\"Ping\": {\"median_us\": %.2f, \"p99_us\": %.2f}, "
	           "\"GetSecret\": {\"median_us\": %.2f, \"p99_us\": %.2f}, \"getsecret_to_ping\": %.3f, "
	           "\"tokenseal_same_bus\": {\"Ping\": {\"median_us\": %.2f, \"p99_us\": %.2f}, "
	           "\"Unwrap\": {\"median_us\": %.2f, \"p99_us\": %.2f}, \"unwrap_to_ping\": %.3f}}",
	        total, secret_len, med[K_PING], p99[K_PING], med[K_GET], p99[K_GET], med[K_GET] / med[K_PING],
	        med[K_TS_PING], p99[K_TS_PING], med[K_TS_UNWRAP], p99[K_TS_UNWRAP], med[K_TS_UNWRAP] / med[K_TS_PING]);
	fclose(f);
	printf("gnome-keyring: GetSecret %.1f µs, Ping %.1f µs (medians), ratio %.2f; tokenseal on the same bus: "
	       "Unwrap %.1f µs, Ping %.1f µs, ratio %.2f\n", med[K_GET], med[K_PING], med[K_GET] / med[K_PING],
	       med[K_TS_UNWRAP], med[K_TS_PING], med[K_TS_UNWRAP] / med[K_TS_PING]);
	free(blob);
	free(vault);
	free(ts_dest);
	free(dest);
	free(session);
	free(item);
	sd_bus_flush_close_unref(bus);
}

/* ---- Clevis TPM2 decrypt vs one tokenseal unlock + N Unwraps, same swtpm ---- */

/* Run argv with stdin from in_path (or /dev/null) and stdout into out (at most cap bytes); exit status. */
static int run_proc(char *const argv[], const char *in_path, uint8_t *out, size_t cap, size_t *ret_len)
{
	posix_spawn_file_actions_t fa;
	int pfd[2], status;
	size_t len = 0;
	ssize_t n;
	uint8_t sink[512];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0 || posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, in_path ? in_path : "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO) != 0)
		die("cannot set up %s", argv[0]);
	if ((errno = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ)) != 0)
		die("cannot start %s: %s", argv[0], strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	for (;;) {
		uint8_t *dst = out && len < cap ? out + len : sink;
		size_t room = out && len < cap ? cap - len : sizeof(sink);
		if ((n = read(pfd[0], dst, room)) <= 0)
			break;
		if (dst != sink)
			len += (size_t)n;
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid: %s", strerror(errno));
	if (ret_len)
		*ret_len = len;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#define N_COUNTS 3
static const long counts[N_COUNTS] = { 1, 10, 100 };
static const ts_kv bench_ctx[1] = { { "app", "bench-clevis" } };

/*
 * Lock (untimed, then a pause as in (e)), then time: one `tokenseal unlock`
 * process, a client, N Unwraps. *ret_unlock: the part up to the unlock
 * process's exit (the rest is the client's connection and its Unwraps).
 */
static uint64_t tokenseal_round(const char *address, char *const unlock_argv[], const char *vault, long n,
                                const uint8_t *blob, size_t blob_len, const uint8_t *key, uint64_t *ret_unlock)
{
	struct timespec pause = { 0, 30 * 1000000 };
	ts_client *c = NULL;
	uint64_t t0, t;
	int r;

	if ((r = ts_client_open(&c, address)) < 0 || ts_client_lock(c, vault) < 0)
		die("%s: Lock: %s", vault, c ? ts_client_last_error(c) : ts_strerror(r));
	ts_client_free(c);
	c = NULL;
	nanosleep(&pause, NULL);
	t0 = now_ns();
	if ((r = run_proc(unlock_argv, NULL, NULL, 0, NULL)) != 0)
		die("tokenseal unlock exited with %d", r);
	if (ret_unlock)
		*ret_unlock = now_ns() - t0;
	if ((r = ts_client_open(&c, address)) < 0)
		die("cannot connect to %s: %s", address, ts_strerror(r));
	for (long i = 0; i < n; i++) {
		uint8_t *pt = NULL;
		size_t pt_len = 0;
		if ((r = ts_unwrap(c, vault, bench_ctx, 1, blob, blob_len, &pt, &pt_len)) < 0)
			die("Unwrap: %s", ts_client_last_error(c));
		if (pt_len != KEY_LEN || sodium_memcmp(pt, key, KEY_LEN) != 0)
			die("Unwrap: wrong key");
		ts_secret_free(pt, pt_len);
	}
	ts_client_free(c);
	t = now_ns() - t0;
	return t;
}

static void clevis(const char *address, const char *vault, const char *protector, const char *dir, long m,
                   long rounds, const char *json_out, const char *table_out)
{
	const char *tokenseal = getenv("TOKENSEAL");
	char *unlock_argv[] = { (char *)(tokenseal ? tokenseal : "tokenseal"), (char *)"--bus", (char *)address,
		                (char *)"--vault", (char *)vault, (char *)"unlock", (char *)"--protector",
		                (char *)protector, NULL };
	char *decrypt_argv[] = { (char *)"clevis", (char *)"decrypt", NULL };
	uint8_t key[KEY_LEN], (*keys)[KEY_LEN], out[256], *blob = NULL;
	uint64_t *t_clevis, *t_ts[N_COUNTS], *t_unlock, *t_unwraps;
	double clevis_med, clevis_p99, ts_med[N_COUNTS], ts_p99[N_COUNTS], unlock_med, unwrap_us = 0;
	size_t blob_len, len, per_round;
	char path[4096];
	ts_client *c = NULL;
	long done = 0, n_keys;
	FILE *f;
	int r;

	if (m < 1 || rounds < 1 || m % rounds)
		die("clevis: M must be a positive multiple of ROUNDS");
	per_round = (size_t)(m / rounds);
	if ((keys = calloc((size_t)m, KEY_LEN)) == NULL || (t_clevis = calloc((size_t)m, sizeof(uint64_t))) == NULL ||
	    (t_unlock = calloc((size_t)rounds * N_COUNTS, sizeof(uint64_t))) == NULL ||
	    (t_unwraps = calloc((size_t)rounds * N_COUNTS, sizeof(uint64_t))) == NULL)
		die("out of memory");
	for (int k = 0; k < N_COUNTS; k++)
		if ((t_ts[k] = calloc((size_t)rounds, sizeof(uint64_t))) == NULL)
			die("out of memory");
	for (n_keys = 0; n_keys < m; n_keys++) {
		snprintf(path, sizeof(path), "%s/k%ld", dir, n_keys + 1);
		if (access(path, F_OK) != 0)
			break;
		if (read_file(path, keys[n_keys], KEY_LEN) != KEY_LEN)
			die("%s: not a %d-byte key", path, KEY_LEN);
	}
	if (n_keys == 0)
		die("no key k1 in %s", dir);

	/* Untimed: the vault unlocked (a first unlock also starts the daemon's token helper). */
	tokenseal_round(address, unlock_argv, vault, 0, NULL, 0, NULL, NULL);
	/* The blob the Unwraps open: a 32-byte key wrapped by the vault. */
	randombytes_buf(key, sizeof(key));
	if ((r = ts_client_open(&c, address)) < 0 || (r = ts_wrap(c, vault, bench_ctx, 1, key, KEY_LEN, &blob, &blob_len)) < 0)
		die("Wrap: %s", c ? ts_client_last_error(c) : ts_strerror(r));
	ts_client_free(c);

	/* Untimed first run of each: page cache, the TPM's first primary key, the daemon's helper. */
	snprintf(path, sizeof(path), "%s/k1.jwe", dir);
	if (run_proc(decrypt_argv, path, out, sizeof(out), &len) != 0 || len != KEY_LEN ||
	    sodium_memcmp(out, keys[0], KEY_LEN) != 0)
		die("clevis decrypt of %s failed or gave a wrong key", path);
	tokenseal_round(address, unlock_argv, vault, 1, blob, blob_len, key, NULL);

	/*
	 * Taking turns round by round, so the load of the machine falls on both
	 * alike; the order of the N changes each round, so that none always
	 * comes first after the clevis processes.
	 */
	for (long k = 0; k < rounds; k++) {
		for (int i = 0; i < N_COUNTS; i++) {
			int j = (int)((i + k) % N_COUNTS);
			t_ts[j][k] = tokenseal_round(address, unlock_argv, vault, counts[j], blob, blob_len, key,
			                             &t_unlock[(size_t)k * N_COUNTS + (size_t)j]);
			t_unwraps[(size_t)k * N_COUNTS + (size_t)j] = t_ts[j][k] - t_unlock[(size_t)k * N_COUNTS + (size_t)j];
		}
		for (size_t i = 0; i < per_round; i++, done++) {
			uint64_t t0;
			snprintf(path, sizeof(path), "%s/k%ld.jwe", dir, done % n_keys + 1);
			t0 = now_ns();
			r = run_proc(decrypt_argv, path, out, sizeof(out), &len);
			t_clevis[done] = now_ns() - t0;
			if (r != 0 || len != KEY_LEN || sodium_memcmp(out, keys[done % n_keys], KEY_LEN) != 0)
				die("clevis decrypt of %s failed (%d) or gave a wrong key", path, r);
			sodium_memzero(out, sizeof(out));
		}
	}
	clevis_med = pct_us(t_clevis, (size_t)m, 0.5);
	clevis_p99 = pct_us(t_clevis, (size_t)m, 1.0);
	for (int j = 0; j < N_COUNTS; j++) {
		ts_med[j] = pct_us(t_ts[j], (size_t)rounds, 0.5);
		ts_p99[j] = pct_us(t_ts[j], (size_t)rounds, 1.0);
	}
	/* The unlock alone, over all rounds and N; one Unwrap: the rounds of N = 100 (connection included). */
	unlock_med = pct_us(t_unlock, (size_t)rounds * N_COUNTS, 0.5);
	for (long k = 0; k < rounds; k++)
		t_unwraps[k] = t_unwraps[(size_t)k * N_COUNTS + N_COUNTS - 1];
	unwrap_us = pct_us(t_unwraps, (size_t)rounds, 0.5) / (double)counts[N_COUNTS - 1];

	f = open_out(table_out);
	fprintf(f, "  Clevis TPM2 (`clevis decrypt`, one process and one TPM unseal per key) vs one `tokenseal unlock`\n"
	           "  of a tpm2 vault plus N Unwrap calls (one client), same swtpm; %ld clevis decrypts, %ld rounds\n"
	           "  of tokenseal per N; medians, ms. Clevis for N keys = N x its per-key median (keys share nothing).\n",
	        m, rounds);
	fprintf(f, "  %-6s %14s %14s %16s %16s %8s\n", "N keys", "clevis total", "tokenseal", "clevis per key",
	        "tokenseal/key", "ratio");
	for (int j = 0; j < N_COUNTS; j++) {
		double cl = clevis_med * (double)counts[j];
		fprintf(f, "  %-6ld %14.1f %14.1f %16.2f %16.3f %8.1f\n", counts[j], cl / 1000, ts_med[j] / 1000,
		        clevis_med / 1000, ts_med[j] / 1000 / (double)counts[j], cl / ts_med[j]);
	}
	fprintf(f, "  (ratio = clevis / tokenseal for the same N keys; slowest clevis decrypt %.1f ms)\n", clevis_p99 / 1000);
	fprintf(f, "  tokenseal's part: the unlock process %.1f ms (median of all rounds), then %.1f µs per Unwrap\n"
	           "  (N = 100: a client's connection and its 100 calls through the client library, / 100)\n",
	        unlock_med / 1000, unwrap_us);
	fclose(f);
	f = open_out(json_out);
	fprintf(f, "{\"clevis_decrypts\": %ld, \"rounds\": %ld, \"clevis_decrypt_median_us\": %.1f, "
	           "\"clevis_decrypt_max_us\": %.1f, \"tokenseal_unlock_median_us\": %.1f, "
	           "\"tokenseal_unwrap_us\": %.1f, \"per_n\": [", m, rounds, clevis_med, clevis_p99, unlock_med, unwrap_us);
	for (int j = 0; j < N_COUNTS; j++) {
		double cl = clevis_med * (double)counts[j];
		fprintf(f, "%s{\"n\": %ld, \"clevis_us\": %.1f, \"tokenseal_median_us\": %.1f, \"tokenseal_max_us\": %.1f, "
		           "\"clevis_per_key_us\": %.1f, \"tokenseal_per_key_us\": %.1f, \"clevis_to_tokenseal\": %.2f}",
		        j ? ", " : "", counts[j], cl, ts_med[j], ts_p99[j], clevis_med, ts_med[j] / (double)counts[j],
		        cl / ts_med[j]);
	}
	fprintf(f, "]}");
	fclose(f);
	printf("clevis: decrypt %.1f ms per key; tokenseal unlock + 1/10/100 Unwraps %.1f/%.1f/%.1f ms\n",
	       clevis_med / 1000, ts_med[0] / 1000, ts_med[1] / 1000, ts_med[2] / 1000);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(keys, (size_t)m * KEY_LEN);
	free(keys);
	free(blob);
	free(t_clevis);
	free(t_unlock);
	free(t_unwraps);
	for (int k = 0; k < N_COUNTS; k++)
		free(t_ts[k]);
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		die("libsodium failed to initialise");
	if (argc == 7 && strcmp(argv[1], "keyring") == 0) {
		keyring(argv[2], argv[3], atol(argv[4]), argv[5], argv[6]);
		return 0;
	}
	if (argc == 10 && strcmp(argv[1], "clevis") == 0) {
		clevis(argv[2], argv[3], argv[4], argv[5], atol(argv[6]), atol(argv[7]), argv[8], argv[9]);
		return 0;
	}
	fprintf(stderr, "usage: peers keyring ADDRESS SECRET_FILE N JSON_OUT TABLE_OUT\n"
	                "       peers clevis ADDRESS VAULT PROTECTOR KEY_DIR M ROUNDS JSON_OUT TABLE_OUT\n");
	return 2;
}
