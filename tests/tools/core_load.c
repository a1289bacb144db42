/* core_load.c — test tool: many checked clients, a hostile client and a flooding client against tokensealed at once. */
/*
 *   core_load clients ADDRESS VAULT_PATH SECONDS N_CLIENTS BOUND_MS
 *       N_CLIENTS threads (one connection each) Wrap/Unwrap/Rewrap with random
 *       contexts and plaintexts and check every answer; one more thread sends
 *       hostile calls (huge messages up to the bus limit, malformed arguments)
 *       and checks each gets the right named error. Exit 1 on any wrong or
 *       failed answer, any hostile call that succeeds, or a good call slower
 *       than BOUND_MS.
 *   core_load flood ADDRESS VAULT_PATH [noreply]
 *       sends Unwrap calls as fast as the socket takes them and never reads a
 *       reply; runs until killed. With "noreply" the calls are flagged
 *       NO_REPLY_EXPECTED (not limited by the bus's pending-reply quota).
 *   core_load hang ADDRESS VAULT_PATH
 *       one Unlock whose secret pipe is never closed (the daemon must give up).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#define BUS_NAME "org.tokenseal1"
#define VAULT_IFACE "org.tokenseal1.Vault"
#define ERR(x) "org.tokenseal1.Error." x
#define TIMEOUT_USEC (120ull * 1000000)
#define MAX_CTX 4

static const char *address, *vault_path;
static uint64_t deadline_ns, bound_ns;
static atomic_ulong n_ok, n_bad, n_hostile, n_hostile_bad;
static atomic_ullong max_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void report(atomic_ulong *counter, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(atomic_ulong *counter, const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(counter, 1);
	va_start(ap, fmt);
	fputs("core_load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static sd_bus *connect_bus(void)
{
	sd_bus *bus = NULL;
	int r;

	if ((r = sd_bus_new(&bus)) < 0 || (r = sd_bus_set_address(bus, address)) < 0 ||
	    (r = sd_bus_set_bus_client(bus, 1)) < 0 || (r = sd_bus_start(bus)) < 0) {
		fprintf(stderr, "core_load: cannot connect: %s\n", strerror(-r));
		exit(1);
	}
	return bus;
}

/* ---- well-behaved clients ---- */

typedef struct ctx {
	char key[MAX_CTX][16], val[MAX_CTX][65];
	unsigned n;
} ctx;

static void random_ctx(ctx *c)
{
	uint8_t raw[32];

	c->n = 1 + randombytes_uniform(MAX_CTX);
	for (unsigned i = 0; i < c->n; i++) {
		size_t vlen = randombytes_uniform(32);
		snprintf(c->key[i], sizeof(c->key[i]), "k%u", i * 1000 + randombytes_uniform(1000));
		randombytes_buf(raw, vlen);
		sodium_bin2hex(c->val[i], sizeof(c->val[i]), raw, vlen);
	}
}

/* Append the context with its entries in a random order: the daemon must not care. */
static int append_ctx(sd_bus_message *m, const ctx *c)
{
	unsigned start = randombytes_uniform(c->n);
	int r;

	if ((r = sd_bus_message_open_container(m, 'a', "{ss}")) < 0)
		return r;
	for (unsigned k = 0; k < c->n; k++) {
		unsigned i = (start + k) % c->n;
		if ((r = sd_bus_message_append(m, "{ss}", c->key[i], c->val[i])) < 0)
			return r;
	}
	return sd_bus_message_close_container(m);
}

/* METHOD(ay, a{ss}). Returns 0 and the reply, or -1 with the error name in ret_err. */
static int call_ay(sd_bus *bus, const char *method, const void *p, size_t n, const ctx *c, sd_bus_message **reply,
                   char *ret_err, size_t errlen)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	uint64_t t0, dt, old;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, vault_path, VAULT_IFACE, method)) < 0 ||
	    (r = sd_bus_message_append_array(m, 'y', p, n)) < 0 || (r = append_ctx(m, c)) < 0) {
		snprintf(ret_err, errlen, "building: %s", strerror(-r));
		sd_bus_message_unref(m);
		return -1;
	}
	t0 = now_ns();
	r = sd_bus_call(bus, m, TIMEOUT_USEC, &e, reply);
	dt = now_ns() - t0;
	old = atomic_load(&max_ns);
	while (dt > old && !atomic_compare_exchange_weak(&max_ns, &old, dt))
		;
	sd_bus_message_unref(m);
	if (r < 0)
		snprintf(ret_err, errlen, "%s", e.name ? e.name : strerror(-r));
	sd_bus_error_free(&e);
	return r < 0 ? -1 : 0;
}

static void *client_main(void *arg)
{
	sd_bus *bus = connect_bus();
	uint8_t pt[512], blob[1024], blob2[1024];
	char err[256];
	unsigned long i = 0;

	while (now_ns() < deadline_ns) {
		sd_bus_message *reply = NULL;
		const void *d;
		size_t pt_len = 1 + randombytes_uniform(sizeof(pt)), blob_len, n;
		ctx c, other;

		random_ctx(&c);
		randombytes_buf(pt, pt_len);
		if (call_ay(bus, "Wrap", pt, pt_len, &c, &reply, err, sizeof(err)) < 0) {
			report(&n_bad, "Wrap failed: %s", err);
			continue;
		}
		if (sd_bus_message_read_array(reply, 'y', &d, &blob_len) < 0 || blob_len != pt_len + 70) {
			report(&n_bad, "Wrap: blob of %zu bytes for %zu", blob_len, pt_len);
			sd_bus_message_unref(reply);
			continue;
		}
		memcpy(blob, d, blob_len);
		reply = sd_bus_message_unref(reply);
		if (call_ay(bus, "Unwrap", blob, blob_len, &c, &reply, err, sizeof(err)) < 0)
			report(&n_bad, "Unwrap failed: %s", err);
		else if (sd_bus_message_read_array(reply, 'y', &d, &n) < 0 || n != pt_len || memcmp(d, pt, n) != 0)
			report(&n_bad, "Unwrap: WRONG plaintext");
		else
			atomic_fetch_add(&n_ok, 1);
		reply = sd_bus_message_unref(reply);
		if (i % 8 == 0) {
			/* Another context must not open it, with the right error. */
			random_ctx(&other);
			snprintf(other.val[0], sizeof(other.val[0]), "%.60s-x", c.val[0]);
			memcpy(other.key[0], c.key[0], sizeof(other.key[0]));
			if (call_ay(bus, "Unwrap", blob, blob_len, &other, &reply, err, sizeof(err)) == 0)
				report(&n_bad, "Unwrap with another context SUCCEEDED");
			else if (strcmp(err, ERR("ContextMismatch")) != 0)
				report(&n_bad, "Unwrap with another context: %s, expected ContextMismatch", err);
			reply = sd_bus_message_unref(reply);
		}
		if (i % 4 == 1) {
			if (call_ay(bus, "Rewrap", blob, blob_len, &c, &reply, err, sizeof(err)) < 0 ||
			    sd_bus_message_read_array(reply, 'y', &d, &n) < 0 || n != blob_len) {
				report(&n_bad, "Rewrap failed: %s", err);
			} else {
				memcpy(blob2, d, n);
				reply = sd_bus_message_unref(reply);
				if (call_ay(bus, "Unwrap", blob2, n, &c, &reply, err, sizeof(err)) < 0 ||
				    sd_bus_message_read_array(reply, 'y', &d, &n) < 0 || n != pt_len || memcmp(d, pt, n) != 0)
					report(&n_bad, "Unwrap of a rewrapped blob failed or WRONG: %s", err);
			}
			reply = sd_bus_message_unref(reply);
		}
		i++;
	}
	sd_bus_flush_close_unref(bus);
	return NULL;
}

/* ---- the hostile client ---- */

/* Send m; it must fail with one of the names (NULL-terminated). Consumes m. */
static void expect_error(sd_bus **bus, sd_bus_message *m, const char *what, ...)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *name;
	va_list ap;
	int r, matched = 0;

	r = sd_bus_call(*bus, m, TIMEOUT_USEC, &e, &reply);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
	atomic_fetch_add(&n_hostile, 1);
	if (r >= 0) {
		report(&n_hostile_bad, "hostile %s: SUCCEEDED", what);
		return;
	}
	if (!e.name) {
		/* The bus may drop a connection that went over its limits: that is its right; reconnect. */
		if (r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE) {
			sd_bus_flush_close_unref(*bus);
			*bus = connect_bus();
			return;
		}
		report(&n_hostile_bad, "hostile %s: local error %s", what, strerror(-r));
		return;
	}
	va_start(ap, what);
	while ((name = va_arg(ap, const char *)) != NULL)
		matched |= strcmp(name, e.name) == 0;
	va_end(ap);
	if (!matched)
		report(&n_hostile_bad, "hostile %s: unexpected error %s (%s)", what, e.name, e.message);
	sd_bus_error_free(&e);
}

static sd_bus_message *new_call(sd_bus *bus, const char *path, const char *method)
{
	sd_bus_message *m = NULL;

	if (sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, VAULT_IFACE, method) < 0) {
		fprintf(stderr, "core_load: cannot build %s\n", method);
		exit(1);
	}
	return m;
}

static void *hostile_main(void *arg)
{
	const size_t huge = (size_t)atol(arg);
	sd_bus *bus = connect_bus();
	uint8_t *big = calloc(1, huge), junk[200];
	char longkey[300];
	unsigned round = 0;

	if (!big) {
		fprintf(stderr, "core_load: out of memory\n");
		exit(1);
	}
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	while (now_ns() < deadline_ns) {
		sd_bus_message *m;
		ctx c = { .n = 1 };

		snprintf(c.key[0], sizeof(c.key[0]), "h");
		randombytes_buf(junk, sizeof(junk));

		/* Huge: a Wrap of a plaintext as large as the bus allows; the daemon refuses past 64 KiB. */
		if (round % 4 == 0) {
			m = new_call(bus, vault_path, "Wrap");
			sd_bus_message_append_array(m, 'y', big, huge);
			append_ctx(m, &c);
			expect_error(&bus, m, "huge Wrap", ERR("LimitExceeded"), NULL);
			/* Huge batch of junk: refused at its first item. */
			m = new_call(bus, vault_path, "UnwrapBatch");
			sd_bus_message_open_container(m, 'a', "ay");
			for (size_t off = 0; off + 4096 <= huge; off += 4096)
				sd_bus_message_append_array(m, 'y', big + off, 4096);
			sd_bus_message_close_container(m);
			append_ctx(m, &c);
			expect_error(&bus, m, "huge UnwrapBatch", ERR("BadBlob"), NULL);
		}
		m = new_call(bus, vault_path, "Wrap");
		sd_bus_message_append_array(m, 'y', big, 65537);
		append_ctx(m, &c);
		expect_error(&bus, m, "Wrap of 65537 bytes", ERR("LimitExceeded"), NULL);

		m = new_call(bus, vault_path, "Unwrap");
		sd_bus_message_append_array(m, 'y', junk, 1 + randombytes_uniform(sizeof(junk)));
		append_ctx(m, &c);
		expect_error(&bus, m, "Unwrap of junk", ERR("BadBlob"), ERR("UnsupportedVersion"), NULL);

		m = new_call(bus, vault_path, "Unwrap");
		sd_bus_message_append_array(m, 'y', junk, 0);
		append_ctx(m, &c);
		expect_error(&bus, m, "Unwrap of nothing", ERR("BadBlob"), NULL);

		/* Wrong signature: a string where bytes belong. */
		m = new_call(bus, vault_path, "Unwrap");
		sd_bus_message_append(m, "sa{ss}", "not a blob", 0);
		expect_error(&bus, m, "Unwrap(s)", "org.freedesktop.DBus.Error.InvalidArgs", ERR("InvalidArgs"), NULL);

		/* Missing context argument. */
		m = new_call(bus, vault_path, "Wrap");
		sd_bus_message_append_array(m, 'y', junk, 32);
		expect_error(&bus, m, "Wrap without context", "org.freedesktop.DBus.Error.InvalidArgs", ERR("InvalidArgs"),
		             NULL);

		/* 65 context entries; an over-long key; an empty key. */
		m = new_call(bus, vault_path, "Wrap");
		sd_bus_message_append_array(m, 'y', junk, 32);
		sd_bus_message_open_container(m, 'a', "{ss}");
		for (int i = 0; i < 65; i++) {
			char k[16];
			snprintf(k, sizeof(k), "k%d", i);
			sd_bus_message_append(m, "{ss}", k, "v");
		}
		sd_bus_message_close_container(m);
		expect_error(&bus, m, "65 context entries", ERR("LimitExceeded"), ERR("InvalidArgs"), NULL);
		m = new_call(bus, vault_path, "Wrap");
		sd_bus_message_append_array(m, 'y', junk, 32);
		sd_bus_message_append(m, "a{ss}", 1, longkey, "v");
		expect_error(&bus, m, "context key of 299 bytes", ERR("InvalidArgs"), ERR("LimitExceeded"), NULL);
		m = new_call(bus, vault_path, "Wrap");
		sd_bus_message_append_array(m, 'y', junk, 32);
		sd_bus_message_append(m, "a{ss}", 1, "", "v");
		expect_error(&bus, m, "empty context key", ERR("InvalidArgs"), NULL);

		/* Sizes. */
		m = new_call(bus, vault_path, "GenerateDataKey");
		sd_bus_message_append(m, "ua{ss}", 0, 0);
		expect_error(&bus, m, "GenerateDataKey(0)", ERR("InvalidArgs"), NULL);
		m = new_call(bus, vault_path, "GenerateDataKey");
		sd_bus_message_append(m, "ua{ss}", 0xffffffffu, 0);
		expect_error(&bus, m, "GenerateDataKey(4G)", ERR("LimitExceeded"), NULL);

		/* Batches: too many items; one bad item. */
		if (round % 8 == 0) {
			m = new_call(bus, vault_path, "UnwrapBatch");
			sd_bus_message_open_container(m, 'a', "ay");
			for (int i = 0; i <= 100000; i++)
				sd_bus_message_append_array(m, 'y', junk, 0);
			sd_bus_message_close_container(m);
			sd_bus_message_append(m, "a{ss}", 0);
			expect_error(&bus, m, "UnwrapBatch of 100,001 items", ERR("LimitExceeded"), ERR("BadBlob"), NULL);
		}
		m = new_call(bus, vault_path, "RewrapBatch");
		sd_bus_message_append(m, "aaya{ss}", 0, 0);
		{
			/* An empty batch is legal; it must succeed with nothing. */
			sd_bus_error e = SD_BUS_ERROR_NULL;
			sd_bus_message *reply = NULL;
			if (sd_bus_call(bus, m, TIMEOUT_USEC, &e, &reply) < 0)
				report(&n_hostile_bad, "empty RewrapBatch failed: %s", e.name);
			sd_bus_error_free(&e);
			sd_bus_message_unref(reply);
			sd_bus_message_unref(m);
		}

		/* Objects and methods that do not exist. */
		m = new_call(bus, "/org/tokenseal1/user/0/vault/nonexistent_5f", "Unwrap");
		sd_bus_message_append_array(m, 'y', junk, 10);
		sd_bus_message_append(m, "a{ss}", 0);
		expect_error(&bus, m, "Unwrap on no vault", "org.freedesktop.DBus.Error.UnknownObject",
		             "org.freedesktop.DBus.Error.UnknownMethod", ERR("NoSuchVault"), NULL);
		m = new_call(bus, vault_path, "Explode");
		expect_error(&bus, m, "unknown method", "org.freedesktop.DBus.Error.UnknownMethod", NULL);
		round++;
	}
	free(big);
	sd_bus_flush_close_unref(bus);
	return NULL;
}

static int clients(int seconds, int n, long bound_ms, const char *huge)
{
	pthread_t *t = calloc((size_t)n + 1, sizeof(*t));
	double max_ms;

	deadline_ns = now_ns() + (uint64_t)seconds * 1000000000ull;
	bound_ns = (uint64_t)bound_ms * 1000000ull;
	for (int i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, client_main, NULL) != 0)
			return 1;
	if (pthread_create(&t[n], NULL, hostile_main, (void *)huge) != 0)
		return 1;
	for (int i = 0; i <= n; i++)
		pthread_join(t[i], NULL);
	free(t);
	max_ms = (double)atomic_load(&max_ns) / 1e6;
	printf("%d clients, %d s: %lu checked round trips ok, %lu wrong/failed; slowest good call %.0f ms (bound %ld); "
	       "%lu hostile calls, %lu not refused as expected\n",
	       n, seconds, atomic_load(&n_ok), atomic_load(&n_bad), max_ms, bound_ms, atomic_load(&n_hostile),
	       atomic_load(&n_hostile_bad));
	if (atomic_load(&n_ok) == 0 || atomic_load(&n_hostile) == 0)
		return 1;
	return atomic_load(&n_bad) || atomic_load(&n_hostile_bad) || atomic_load(&max_ns) > bound_ns ? 1 : 0;
}

/* ---- flood: never read a reply ---- */

static int flood(int noreply)
{
	sd_bus *bus = connect_bus();
	uint8_t junk[100];
	unsigned long sent = 0;

	randombytes_buf(junk, sizeof(junk));
	for (;;) {
		for (int i = 0; i < 256; i++) {
			sd_bus_message *m = new_call(bus, vault_path, "Unwrap");
			uint64_t cookie;
			sd_bus_message_append_array(m, 'y', junk, sizeof(junk));
			sd_bus_message_append(m, "a{ss}", 1, "flood", "yes");
			/*
			 * Default: ordinary calls that expect a reply (async, never
			 * collected). "noreply": NO_REPLY_EXPECTED calls, which the
			 * bus does not count against max_replies_per_connection.
			 */
			if (sd_bus_send(bus, m, noreply ? NULL : &cookie) < 0) {
				sd_bus_message_unref(m);
				break;
			}
			sd_bus_message_unref(m);
			sent++;
		}
		/* Push the queue out (this may block forever once the bus stops reading us: fine, we get killed). */
		if (sd_bus_flush(bus) < 0) {
			sd_bus_flush_close_unref(bus);
			bus = connect_bus();
		}
	}
	return 0;
}

/* ---- hang: a secret fd that never reaches EOF ---- */

static int hang(void)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus *bus = connect_bus();
	uint64_t t0 = now_ns();
	int p[2], r;

	if (pipe(p) < 0)
		return 1;
	/* We keep p[1] open: the daemon sees no EOF and must give up on its own. */
	r = sd_bus_call_method(bus, BUS_NAME, vault_path, VAULT_IFACE, "Unlock", &e, NULL, "sha{ss}", "recovery", p[0], 0);
	int ok = r < 0 && e.name && strcmp(e.name, "org.tokenseal1.Error.Timeout") == 0;

	printf("hanging Unlock answered after %.1f s: %s\n", (double)(now_ns() - t0) / 1e9,
	       r < 0 ? (e.name ? e.name : strerror(-r)) : "success?!");
	sd_bus_error_free(&e);
	sd_bus_flush_close_unref(bus);
	close(p[1]);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	if (argc >= 4) {
		address = argv[2];
		vault_path = argv[3];
	}
	if (argc >= 7 && argc <= 8 && strcmp(argv[1], "clients") == 0)
		return clients(atoi(argv[4]), atoi(argv[5]), atol(argv[6]), argc == 8 ? argv[7] : "1048576");
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "flood") == 0)
		return flood(argc == 5 && strcmp(argv[4], "noreply") == 0);
	if (argc == 4 && strcmp(argv[1], "hang") == 0)
		return hang();
	fprintf(stderr, "usage: core_load clients ADDRESS VAULT_PATH SECONDS N_CLIENTS BOUND_MS [HUGE_BYTES]\n"
	                "       core_load flood ADDRESS VAULT_PATH [noreply]\n"
	                "       core_load hang ADDRESS VAULT_PATH\n");
	return 2;
}
