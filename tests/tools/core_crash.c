/* core_crash.c — test tool: SIGKILL tokensealed at random moments of CreateVault/AddProtector/RotateKey/RevokeProtector and check nothing acknowledged is lost. */
/*
 *   core_crash ADDRESS TOKENSEALED STATE_DIR ITERATIONS SEED
 *
 * Runs the daemon itself (fork+exec, stopped by PID, PR_SET_PDEATHSIG as a
 * safety net) so that it can be killed and restarted hundreds of times
 * quickly. Keeps a model of what the daemon acknowledged:
 *   - a vault whose CreateVault reply arrived exists, and its key opens it;
 *   - a protector whose AddProtector reply arrived exists and opens the
 *     vault with the recovery key we received; an acknowledged revocation
 *     is gone; a protector we never received a key for exists only as
 *     the one of an unacknowledged call killed between its save and the
 *     key's write (the daemon saves first, then hands the key out), and a
 *     vault we never received a key for likewise;
 *   - KeyVersion never goes below an acknowledged RotateKey's version;
 *   - every blob wrapped (and acknowledged) before still unwraps.
 * After each restart every vault file must parse (ts_vault_parse) and no
 * temporary file may be left behind. At the end every protector of every
 * vault is opened with its key. A failure prints the seed and exits 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "core/vault.h"
#include "store.h"

#define BUS_NAME "org.tokenseal1"
#define MANAGER_PATH "/org/tokenseal1"
#define MANAGER_IFACE "org.tokenseal1.Manager"
#define VAULT_IFACE "org.tokenseal1.Vault"
#define MAX_VAULTS 6
#define MAX_PROT 12
#define MAX_BLOBS 8
#define KEY_TEXT 64

enum { OP_CREATE, OP_ADD, OP_ROTATE, OP_REVOKE, N_OPS };

/* The read end of a pipe already closed for writing: an empty secret (the daemon takes pipes and sockets only). */
static int empty_pipe(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	close(p[1]);
	return p[0];
}

static const char *const op_names[N_OPS] = { "CreateVault", "AddProtector", "RotateKey", "RevokeProtector" };

typedef struct prot {
	char id[TS_PROTECTOR_ID_MAX];
	char key[KEY_TEXT];         /* recovery key text as received */
} prot;

typedef struct blob {
	uint8_t data[128], pt[32];
	size_t len;
	char ctxval[33];
} blob;

typedef struct vault {
	char name[32], path[128];
	prot prot[MAX_PROT];
	size_t n_prot;
	char orphans[MAX_PROT][TS_PROTECTOR_ID_MAX];   /* saved, but killed before its key reached us */
	size_t n_orphans;
	uint32_t version;           /* lowest KeyVersion allowed */
	blob blobs[MAX_BLOBS];
	size_t n_blobs;
	int unlocked;               /* in the current daemon instance */
} vault;

static vault vaults[MAX_VAULTS];
static size_t n_vaults;
static const char *address, *daemon_bin, *state_dir;
static pid_t daemon_pid;
static sd_bus *bus;
static uint64_t seed, rng;
static int iteration;
static unsigned long stats_acked[N_OPS], stats_lost[N_OPS];
static unsigned long stats_orphans;   /* vaults and protectors saved, then killed before their key went out */
static double op_ms[N_OPS] = { 150, 150, 20, 20 };   /* refined by measurement */

static void stop_daemon(void);

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "FAIL (iteration %d, seed %llu): ", iteration, (unsigned long long)seed);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	stop_daemon();
	exit(1);
}

/* splitmix64: reproducible from the printed seed. */
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static unsigned rnd_below(unsigned n) { return (unsigned)(rnd() % n); }

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the daemon ---- */

static void start_daemon(void)
{
	char log[4096];
	int i;

	snprintf(log, sizeof(log), "%s/../daemon.log", state_dir);
	if ((daemon_pid = fork()) < 0)
		fail("fork: %s", strerror(errno));
	if (daemon_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		/* Never outlive this tool, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(daemon_bin, daemon_bin, "--bus", address, "--state-dir", state_dir, "--idle-lock", "0",
		      "--log-level", "warning", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 400; i++) {
		sd_bus_error err = SD_BUS_ERROR_NULL;
		int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
		                           "GetNameOwner", &err, NULL, "s", BUS_NAME);
		sd_bus_error_free(&err);
		if (r >= 0)
			break;
		if (waitpid(daemon_pid, NULL, WNOHANG) == daemon_pid) {
			daemon_pid = 0;
			fail("tokensealed exited at start (see daemon.log)");
		}
		usleep(5000);
	}
	if (i == 400)
		fail("tokensealed did not take its bus name");
	for (size_t v = 0; v < n_vaults; v++)
		vaults[v].unlocked = 0;
}

static void stop_daemon(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
	}
	daemon_pid = 0;
}

/* ---- calls ---- */

/* Synchronous call; 0, or -1 with the error name in errname (may be NULL). */
static int call(sd_bus_message **ret, char *errname, size_t errlen, const char *path, const char *iface,
                const char *method, const char *types, ...)
{
	sd_bus_error err = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	va_list ap;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, iface, method)) < 0)
		fail("%s: %s", method, strerror(-r));
	va_start(ap, types);
	r = types ? sd_bus_message_appendv(m, types, ap) : 0;
	va_end(ap);
	if (r < 0)
		fail("%s: append: %s", method, strerror(-r));
	r = sd_bus_call(bus, m, 30 * 1000000ull, &err, ret);
	sd_bus_message_unref(m);
	if (r < 0 && errname)
		snprintf(errname, errlen, "%s: %s", err.name ? err.name : "?", err.message ? err.message : strerror(-r));
	sd_bus_error_free(&err);
	return r < 0 ? -1 : 0;
}

/* Unlock(protector, fd of a pipe holding key). */
static int unlock_with(vault *v, const char *protector, const char *key, char *errname, size_t errlen)
{
	int p[2], r;

	if (pipe(p) < 0)
		fail("pipe");
	if (write(p[1], key, strlen(key)) != (ssize_t)strlen(key))
		fail("pipe write");
	close(p[1]);
	r = call(NULL, errname, errlen, v->path, VAULT_IFACE, "Unlock", "sha{ss}", protector, p[0], 0);
	close(p[0]);
	if (r == 0)
		v->unlocked = 1;
	return r;
}

static void ensure_unlocked(vault *v)
{
	char err[512];
	prot *p;

	if (v->unlocked)
		return;
	p = &v->prot[rnd_below((unsigned)v->n_prot)];
	if (unlock_with(v, p->id, p->key, err, sizeof(err)) < 0)
		fail("vault %s does not unlock with acknowledged protector %s: %s", v->name, p->id, err);
}

static void wrap_blob(vault *v)
{
	sd_bus_message *reply = NULL;
	const void *d;
	blob *b;
	size_t n;

	if (v->n_blobs == MAX_BLOBS)
		return;
	b = &v->blobs[v->n_blobs];
	randombytes_buf(b->pt, sizeof(b->pt));
	randombytes_buf(b->data, 16);
	sodium_bin2hex(b->ctxval, sizeof(b->ctxval), b->data, 16);
	{
		sd_bus_error e = SD_BUS_ERROR_NULL;
		sd_bus_message *m = NULL;
		int r;

		if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, v->path, VAULT_IFACE, "Wrap")) < 0 ||
		    (r = sd_bus_message_append_array(m, 'y', b->pt, sizeof(b->pt))) < 0 ||
		    (r = sd_bus_message_append(m, "a{ss}", 1, "crash", b->ctxval)) < 0)
			fail("Wrap: append");
		r = sd_bus_call(bus, m, 30 * 1000000ull, &e, &reply);
		sd_bus_message_unref(m);
		if (r < 0)
			fail("Wrap on %s: %s", v->name, e.message ? e.message : strerror(-r));
		sd_bus_error_free(&e);
	}
	if (sd_bus_message_read_array(reply, 'y', &d, &n) < 0 || n > sizeof(b->data))
		fail("Wrap: bad reply");
	memcpy(b->data, d, n);
	b->len = n;
	v->n_blobs++;
	sd_bus_message_unref(reply);
}

static void check_blobs(vault *v)
{
	for (size_t i = 0; i < v->n_blobs; i++) {
		blob *b = &v->blobs[i];
		sd_bus_error e = SD_BUS_ERROR_NULL;
		sd_bus_message *m = NULL, *reply = NULL;
		const void *d;
		size_t n;
		int r;

		if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, v->path, VAULT_IFACE, "Unwrap")) < 0 ||
		    (r = sd_bus_message_append_array(m, 'y', b->data, b->len)) < 0 ||
		    (r = sd_bus_message_append(m, "a{ss}", 1, "crash", b->ctxval)) < 0)
			fail("Unwrap: append");
		r = sd_bus_call(bus, m, 30 * 1000000ull, &e, &reply);
		sd_bus_message_unref(m);
		if (r < 0)
			fail("vault %s: blob %zu (acknowledged earlier) no longer unwraps: %s", v->name, i,
			     e.message ? e.message : strerror(-r));
		if (sd_bus_message_read_array(reply, 'y', &d, &n) < 0 || n != sizeof(b->pt) || memcmp(d, b->pt, n) != 0)
			fail("vault %s: blob %zu unwraps to the wrong plaintext", v->name, i);
		sd_bus_message_unref(reply);
	}
}

static uint32_t key_version(vault *v)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	uint32_t ver;
	int r;

	if ((r = sd_bus_get_property_trivial(bus, BUS_NAME, v->path, VAULT_IFACE, "KeyVersion", &e, 'u', &ver)) < 0)
		fail("KeyVersion of %s: %s", v->name, e.message ? e.message : strerror(-r));
	return ver;
}

/* The protector ids the daemon lists for v. */
static size_t protector_ids(vault *v, char ids[][TS_PROTECTOR_ID_MAX], size_t max)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *id, *type, *desc;
	uint64_t created;
	size_t n = 0;
	int r;

	if ((r = sd_bus_get_property(bus, BUS_NAME, v->path, VAULT_IFACE, "Protectors", &e, &reply,
	                             "a(sssta{ss})")) < 0)
		fail("Protectors of %s: %s", v->name, e.message ? e.message : strerror(-r));
	if (sd_bus_message_enter_container(reply, 'a', "(sssta{ss})") < 0)
		fail("Protectors: bad reply");
	while ((r = sd_bus_message_enter_container(reply, 'r', "sssta{ss}")) > 0) {
		if (sd_bus_message_read(reply, "ssst", &id, &type, &desc, &created) < 0 ||
		    sd_bus_message_skip(reply, "a{ss}") < 0 || sd_bus_message_exit_container(reply) < 0)
			fail("Protectors: bad entry");
		if (n == max)
			fail("vault %s lists more than %zu protectors", v->name, max);
		if (strcmp(type, "recovery") != 0)
			fail("vault %s lists a protector of type %s nobody added", v->name, type);
		snprintf(ids[n++], TS_PROTECTOR_ID_MAX, "%s", id);
	}
	sd_bus_message_unref(reply);
	return n;
}

static int get_vault_path(const char *name, char *path, size_t len)
{
	sd_bus_message *reply = NULL;
	const char *p;

	if (call(&reply, NULL, 0, MANAGER_PATH, MANAGER_IFACE, "GetVault", "s", name) < 0)
		return -1;
	if (sd_bus_message_read(reply, "o", &p) < 0)
		fail("GetVault: bad reply");
	snprintf(path, len, "%s", p);
	sd_bus_message_unref(reply);
	return 0;
}

/* ---- files ---- */

/*
 * Every vault file parses; no temporary file is left over (the daemon cleans
 * them at start). Vault files are in the owners' directories STATE/UID
 * (store.h); side files (NAME.backoff) are not vaults.
 */
static void check_anchors(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		fail("cannot list %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strlen(de->d_name) != 32 || strspn(de->d_name, "0123456789abcdef") != 32)
			fail("leftover file among the generation anchors in %s: %s", dir, de->d_name);
	}
	closedir(d);
}

static void check_dir(const char *dir, int top)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		fail("cannot list %s", dir);
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		uint8_t *b;
		ts_vault *v = NULL;
		size_t len = strlen(de->d_name);
		struct stat st;
		FILE *f;
		long n;
		int r;

		if (de->d_name[0] == '.' && (len == 1 || (len == 2 && de->d_name[1] == '.')))
			continue;
		if (de->d_name[0] == '.')
			fail("leftover temporary file in %s: %s", dir, de->d_name);
		/* The daemon's lock file (store.h) is the one file that is not a vault. */
		if (top && strcmp(de->d_name, TS_STORE_LOCK_FILE) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (top && lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && strspn(de->d_name, "0123456789") == len) {
			check_dir(path, 0);
			continue;
		}
		/* The generation anchors (anchor.h): one file per vault id, never a temp file left. */
		if (top && strcmp(de->d_name, "generations") == 0) {
			check_anchors(path);
			continue;
		}
		if (len > 8 && strcmp(de->d_name + len - 8, ".backoff") == 0)
			continue;
		if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) < 0 || (b = malloc((size_t)n + 1)) == NULL || fread(b, 1, (size_t)n, f) != (size_t)n)
			fail("cannot read %s", path);
		fclose(f);
		if ((r = ts_vault_parse(b, (size_t)n, &v)) < 0)
			fail("%s does not parse: %s", path, ts_strerror(r));
		ts_vault_free(v);
		free(b);
	}
	closedir(d);
}

static void check_files(void)
{
	check_dir(state_dir, 1);
}

/* ---- one operation, killed at a random moment ---- */

typedef struct pending {
	int done, ok;
	char err[256];
	sd_bus_message *reply;
} pending;

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	pending *p = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	p->done = 1;
	p->ok = !e;
	if (e)
		snprintf(p->err, sizeof(p->err), "%s", e->name);
	else
		p->reply = sd_bus_message_ref(m);
	return 1;
}

/* Whatever the daemon wrote to the secret pipe before it died (non-blocking: the writer is gone or done). */
static void drain_key(int fd, char *key, size_t len)
{
	ssize_t n;

	key[0] = '\0';
	n = read(fd, key, len - 1);
	if (n <= 0)
		return;
	key[n] = '\0';
	key[strcspn(key, "\n")] = '\0';
}

static void run_op(int op, vault *v, const char *new_name, pending *p, char *key_out, size_t key_len,
                   const char *revoke_id, double delay_ms)
{
	sd_bus_message *m = NULL;
	int pipefd[2] = { -1, -1 }, r;

	if (op == OP_CREATE || op == OP_ADD) {
		if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
			fail("pipe");
	}
	switch (op) {
	case OP_CREATE:
		r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "CreateVault");
		if (r >= 0)
			r = sd_bus_message_append(m, "sa{ss}h", new_name, 0, pipefd[1]);
		break;
	case OP_ADD: {
		int null = empty_pipe();
		r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, v->path, VAULT_IFACE, "AddProtector");
		if (r >= 0)
			r = sd_bus_message_append(m, "sa{ss}hh", "recovery", 0, null, pipefd[1]);
		close(null);
		break;
	}
	case OP_ROTATE:
		r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, v->path, VAULT_IFACE, "RotateKey");
		if (r >= 0)
			r = sd_bus_message_append(m, "a{ss}", 0);
		break;
	default:
		r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, v->path, VAULT_IFACE, "RevokeProtector");
		if (r >= 0)
			r = sd_bus_message_append(m, "s", revoke_id);
		break;
	}
	if (r < 0)
		fail("%s: building the call: %s", op_names[op], strerror(-r));
	memset(p, 0, sizeof(*p));
	if ((r = sd_bus_call_async(bus, NULL, m, on_reply, p, 30 * 1000000ull)) < 0 || (r = sd_bus_flush(bus)) < 0)
		fail("%s: send: %s", op_names[op], strerror(-r));
	sd_bus_message_unref(m);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	/* The kill: some time into the call, without looking at the reply first. */
	usleep((useconds_t)(delay_ms * 1000));
	stop_daemon();
	while (!p->done) {
		if ((r = sd_bus_process(bus, NULL)) < 0)
			fail("bus: %s", strerror(-r));
		if (r == 0 && sd_bus_wait(bus, 5 * 1000000ull) < 0)
			fail("bus wait");
	}
	if (pipefd[0] >= 0) {
		drain_key(pipefd[0], key_out, key_len);
		close(pipefd[0]);
	}
}

/* Calibrate: the op once, not killed, to learn how long it takes. */
static double timed_op_ms(int op, sd_bus_message **reply, const char *path, const char *arg, int *fd_out)
{
	double t0 = now_ms();
	char err[512];
	int p[2], null, r;

	switch (op) {
	case OP_ADD:
		if (pipe2(p, O_CLOEXEC) < 0 || (null = empty_pipe()) < 0)
			fail("pipe");
		r = call(reply, err, sizeof(err), path, VAULT_IFACE, "AddProtector", "sa{ss}hh", "recovery", 0, null, p[1]);
		close(null);
		close(p[1]);
		*fd_out = p[0];
		break;
	case OP_ROTATE:
		r = call(reply, err, sizeof(err), path, VAULT_IFACE, "RotateKey", "a{ss}", 0);
		break;
	default:
		r = call(reply, err, sizeof(err), path, VAULT_IFACE, "RevokeProtector", "s", arg);
		break;
	}
	if (r < 0)
		fail("calibration %s: %s", op_names[op], err);
	return now_ms() - t0;
}

/* ---- checking after a restart ---- */

static int model_has(vault *v, const char *id)
{
	for (size_t i = 0; i < v->n_prot; i++)
		if (strcmp(v->prot[i].id, id) == 0)
			return 1;
	return 0;
}

static int is_orphan(vault *v, const char *id)
{
	for (size_t i = 0; i < v->n_orphans; i++)
		if (strcmp(v->orphans[i], id) == 0)
			return 1;
	return 0;
}

/*
 * Reconcile the model with what the restarted daemon shows, failing on
 * anything acknowledged that is missing or anything present that nobody
 * could have a key for.
 */
static void verify_vault(vault *v, int op, const pending *p, const char *pending_key, const char *revoked_id)
{
	char ids[MAX_PROT + 4][TS_PROTECTOR_ID_MAX], err[512];
	size_t n_ids, i, j;
	uint32_t ver;

	/* Revocation: acknowledged -> gone; not -> either, the model follows the daemon. */
	if (op == OP_REVOKE) {
		for (i = 0; i < v->n_prot && strcmp(v->prot[i].id, revoked_id) != 0; i++)
			;
		if (i == v->n_prot)
			fail("model lost protector %s", revoked_id);
		if (p->ok) {
			v->prot[i] = v->prot[--v->n_prot];
		}
	}
	n_ids = protector_ids(v, ids, MAX_PROT + 4);
	if (op == OP_REVOKE && !p->ok) {
		int present = 0;
		for (j = 0; j < n_ids; j++)
			present |= strcmp(ids[j], revoked_id) == 0;
		if (!present) {
			for (i = 0; i < v->n_prot && strcmp(v->prot[i].id, revoked_id) != 0; i++)
				;
			v->prot[i] = v->prot[--v->n_prot];
		}
	}
	/* Every protector we hold a key for is listed (revoked ones were taken out above). */
	for (i = 0; i < v->n_prot; i++) {
		for (j = 0; j < n_ids && strcmp(ids[j], v->prot[i].id) != 0; j++)
			;
		if (j == n_ids)
			fail("vault %s: protector %s (acknowledged) is gone", v->name, v->prot[i].id);
	}
	/* Anything else is the protector of an unacknowledged AddProtector, and its key must have reached us. */
	for (j = 0; j < n_ids; j++) {
		if (model_has(v, ids[j]) || is_orphan(v, ids[j]))
			continue;
		if (op != OP_ADD || p->ok)
			fail("vault %s lists protector %s whose recovery key never reached the caller", v->name, ids[j]);
		if (!pending_key[0]) {
			/* Saved, then killed before the write: a protector nobody holds opens nothing. */
			if (v->n_orphans == MAX_PROT)
				fail("too many protectors");
			snprintf(v->orphans[v->n_orphans++], TS_PROTECTOR_ID_MAX, "%s", ids[j]);
			stats_orphans++;
			continue;
		}
		if (unlock_with(v, ids[j], pending_key, err, sizeof(err)) < 0)
			fail("vault %s: new protector %s does not open with the key we received: %s", v->name, ids[j], err);
		if (v->n_prot == MAX_PROT)
			fail("too many protectors");
		snprintf(v->prot[v->n_prot].id, TS_PROTECTOR_ID_MAX, "%s", ids[j]);
		snprintf(v->prot[v->n_prot].key, KEY_TEXT, "%s", pending_key);
		v->n_prot++;
		pending_key = "";
	}
	if (op == OP_ADD && p->ok && !model_has(v, v->prot[v->n_prot - 1].id))
		fail("unreachable");
	ensure_unlocked(v);
	ver = key_version(v);
	if (ver < v->version)
		fail("vault %s: KeyVersion %u < acknowledged %u (an acknowledged rotation was lost)", v->name, ver,
		     v->version);
	v->version = ver;
	check_blobs(v);
}

static void final_check(void)
{
	char err[512];

	for (size_t i = 0; i < n_vaults; i++) {
		vault *v = &vaults[i];
		char ids[MAX_PROT + 4][TS_PROTECTOR_ID_MAX];
		size_t n_ids = protector_ids(v, ids, MAX_PROT + 4);

		if (n_ids != v->n_prot + v->n_orphans)
			fail("vault %s lists %zu protectors, the model has %zu (and %zu never delivered)", v->name, n_ids, v->n_prot,
			     v->n_orphans);
		for (size_t k = 0; k < v->n_prot; k++)
			if (unlock_with(v, v->prot[k].id, v->prot[k].key, err, sizeof(err)) < 0)
				fail("final: vault %s protector %s does not open: %s", v->name, v->prot[k].id, err);
		if (key_version(v) < v->version)
			fail("final: vault %s lost a rotation", v->name);
		check_blobs(v);
	}
}

int main(int argc, char **argv)
{
	int iterations, created = 0;
	double t_start;

	if (argc != 6) {
		fprintf(stderr, "usage: core_crash ADDRESS TOKENSEALED STATE_DIR ITERATIONS SEED\n");
		return 2;
	}
	address = argv[1];
	daemon_bin = argv[2];
	state_dir = argv[3];
	iterations = atoi(argv[4]);
	seed = strtoull(argv[5], NULL, 10);
	rng = seed;
	if (sodium_init() < 0)
		return 1;
	if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, address) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
	    sd_bus_start(bus) < 0)
		fail("cannot connect to %s", address);
	t_start = now_ms();
	start_daemon();

	/* Calibration, not killed: how long each call takes here decides when to kill. */
	{
		sd_bus_message *reply = NULL;
		char key[KEY_TEXT];
		vault *v = &vaults[n_vaults++];
		double t0 = now_ms();
		int fd = -1;
		const char *id;

		char err[512];
		const char *path;
		int pp[2];

		snprintf(v->name, sizeof(v->name), "c%d", created++);
		if (pipe(pp) < 0)
			fail("pipe");
		if (call(&reply, err, sizeof(err), MANAGER_PATH, MANAGER_IFACE, "CreateVault", "sa{ss}h", v->name, 0,
		         pp[1]) < 0)
			fail("CreateVault: %s", err);
		close(pp[1]);
		drain_key(pp[0], key, sizeof(key));
		close(pp[0]);
		if (!key[0] || sd_bus_message_read(reply, "o", &path) < 0)
			fail("CreateVault: bad reply or no key");
		snprintf(v->path, sizeof(v->path), "%s", path);
		sd_bus_message_unref(reply);
		reply = NULL;
		op_ms[OP_CREATE] = now_ms() - t0;
		snprintf(v->prot[0].id, TS_PROTECTOR_ID_MAX, "p1");
		snprintf(v->prot[0].key, KEY_TEXT, "%s", key);
		v->n_prot = 1;
		ensure_unlocked(v);
		op_ms[OP_ADD] = timed_op_ms(OP_ADD, &reply, v->path, NULL, &fd);
		if (sd_bus_message_read(reply, "s", &id) < 0)
			fail("AddProtector: bad reply");
		snprintf(v->prot[1].id, TS_PROTECTOR_ID_MAX, "%s", id);
		drain_key(fd, v->prot[1].key, KEY_TEXT);
		close(fd);
		v->n_prot = 2;
		sd_bus_message_unref(reply);
		/* The quickest of five: a busy machine must not stretch the kill window past the call. */
		for (int k = 0; k < 5; k++) {
			double ms = timed_op_ms(OP_ROTATE, &reply, v->path, NULL, NULL);
			if (k == 0 || ms < op_ms[OP_ROTATE])
				op_ms[OP_ROTATE] = ms;
			if (sd_bus_message_read(reply, "u", &v->version) < 0)
				fail("RotateKey: bad reply");
			sd_bus_message_unref(reply);
		}
		wrap_blob(v);
		printf("calibration: CreateVault %.1f ms, AddProtector %.1f ms, RotateKey %.1f ms\n",
		       op_ms[OP_CREATE], op_ms[OP_ADD], op_ms[OP_ROTATE]);
		op_ms[OP_CREATE] = op_ms[OP_ADD];   /* the same Argon2id + one write */
		op_ms[OP_REVOKE] = op_ms[OP_ROTATE];
	}

	for (iteration = 1; iteration <= iterations; iteration++) {
		char key[KEY_TEXT] = "", revoke_id[TS_PROTECTOR_ID_MAX] = "", new_name[32] = "";
		vault *v = NULL;
		pending p;
		double delay;
		int op;

		/* Pick: mostly the vault touched last (already unlocked), sometimes another or a new one. */
		if (n_vaults < MAX_VAULTS && rnd_below(8) == 0)
			op = OP_CREATE;
		else {
			unsigned k;
			for (k = 0; k < n_vaults && !vaults[k].unlocked; k++)
				;
			v = &vaults[k < n_vaults && rnd_below(4) ? k : rnd_below((unsigned)n_vaults)];
			op = (int)(OP_ADD + rnd_below(3));
			/*
			 * The model holds MAX_PROT protectors and as many orphans (saved, key
			 * never received), and a slow machine makes more orphans (more kills
			 * land after the save): a vault that is full is revoked from or
			 * rotated, never added to.
			 */
			if (op == OP_ADD && v->n_prot + v->n_orphans >= MAX_PROT - 2)
				op = OP_REVOKE;
			if (op == OP_REVOKE && v->n_prot < 2)
				op = v->n_prot + v->n_orphans < MAX_PROT - 2 ? OP_ADD : OP_ROTATE;
		}
		/*
		 * Kill time: a quarter of the time anywhere in 0-50 ms; otherwise
		 * within twice the call's own measured duration, so that kills of
		 * a 1 ms RotateKey land inside its write and kills of a 90 ms
		 * AddProtector (Argon2id) also land after it, not only before.
		 */
		delay = (double)rnd_below(1000) / 1000.0 *
		        (rnd_below(4) == 0 ? 50 : op_ms[op] * 2 > 3 ? op_ms[op] * 2 : 3);
		if (op == OP_CREATE) {
			snprintf(new_name, sizeof(new_name), "c%d", created++);
			run_op(op, NULL, new_name, &p, key, sizeof(key), NULL, delay);
		} else {
			ensure_unlocked(v);
			if (op == OP_REVOKE)
				snprintf(revoke_id, sizeof(revoke_id), "%s", v->prot[rnd_below((unsigned)v->n_prot)].id);
			run_op(op, v, NULL, &p, key, sizeof(key), revoke_id, delay);
		}
		if (p.ok)
			stats_acked[op]++;
		else
			stats_lost[op]++;
		start_daemon();
		check_files();

		if (op == OP_CREATE) {
			char path[128];
			int exists = get_vault_path(new_name, path, sizeof(path)) == 0;

			if (p.ok && !exists)
				fail("CreateVault %s was acknowledged but the vault is gone", new_name);
			if (exists && !key[0] && p.ok)
				fail("vault %s was acknowledged but its recovery key never reached the caller", new_name);
			/* Saved, then killed before the key's write: a vault nobody can open, and nothing in it. */
			if (exists && !key[0])
				stats_orphans++;
			else if (exists) {
				v = &vaults[n_vaults++];
				memset(v, 0, sizeof(*v));
				snprintf(v->name, sizeof(v->name), "%s", new_name);
				snprintf(v->path, sizeof(v->path), "%s", path);
				snprintf(v->prot[0].id, TS_PROTECTOR_ID_MAX, "p1");
				snprintf(v->prot[0].key, KEY_TEXT, "%s", key);
				v->n_prot = 1;
				ensure_unlocked(v);
				check_blobs(v);
				wrap_blob(v);
			}
		} else {
			if (op == OP_ADD && p.ok) {
				const char *id;
				if (!key[0])
					fail("AddProtector acknowledged but no recovery key arrived");
				if (sd_bus_message_read(p.reply, "s", &id) < 0)
					fail("AddProtector: bad reply");
				snprintf(v->prot[v->n_prot].id, TS_PROTECTOR_ID_MAX, "%s", id);
				snprintf(v->prot[v->n_prot].key, KEY_TEXT, "%s", key);
				v->n_prot++;
				key[0] = '\0';
			}
			if (op == OP_ROTATE && p.ok) {
				uint32_t ver;
				if (sd_bus_message_read(p.reply, "u", &ver) < 0)
					fail("RotateKey: bad reply");
				if (ver > v->version)
					v->version = ver;
			}
			verify_vault(v, op, &p, key, revoke_id);
			if (op == OP_ROTATE && rnd_below(2) == 0)
				wrap_blob(v);
		}
		sd_bus_message_unref(p.reply);
		sodium_memzero(key, sizeof(key));
	}
	final_check();
	stop_daemon();
	printf("%d SIGKILLs in %.0f s over %zu vaults; acknowledged/killed before reply:", iterations,
	       (now_ms() - t_start) / 1000, n_vaults);
	for (int o = 0; o < N_OPS; o++)
		printf(" %s %lu/%lu", op_names[o], stats_acked[o], stats_lost[o]);
	printf("; saved but killed before the key went out: %lu\n", stats_orphans);
	sd_bus_flush_close_unref(bus);
	return 0;
}
