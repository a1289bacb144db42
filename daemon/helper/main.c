/*
 * tokenseal-helper — runs one token operation for tokensealed and exits.
 *
 * The daemon starts this program with a socketpair on fd 3, writes one
 * request (daemon/protectors/helper_wire.h), and reads one reply; or, with
 * tokensealed --helper-socket, the service manager starts it for each
 * connection of the daemon's (contrib/tokenseal-helper.socket), the
 * connection on fd 3, and it says hello first (TS_WIRE_HELLO). Only this
 * process loads libfido2, tpm2-tss, p11-kit and libcrypto and talks to the
 * tokens, so the daemon's address space (where the root keys live) never
 * holds their code or parses what a token sends, and a touch wait or a slow
 * token module never runs inside the daemon. See docs/ARCHITECTURE.md.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fido.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/p11-kit.h>
#include <sodium.h>

#include "core/blob.h"
#include "core/vault.h"
#include "helper/publish.h"
#include "helper/sandbox.h"
#include "protectors/escrow_rsa.h"
#include "protectors/helper_wire.h"
#include "protectors/protector.h"
#include "protectors/tpm2_nv.h"

#define HELPER_FD 3

/*
 * Started by the service manager for one connection (socket activation,
 * Accept=yes): LISTEN_FDS=1 and LISTEN_PID ours, the connection on fd 3.
 * The variables are dropped either way: nothing started later reads them.
 */
static int socket_activated(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char *end = NULL;
	long p = 0;
	int yes;

	if (pid) {
		errno = 0;
		p = strtol(pid, &end, 10);
	}
	yes = pid && fds && strcmp(fds, "1") == 0 && errno == 0 && end != pid && *end == '\0' && p == (long)getpid();
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return yes;
}

/* PKCS#11 modules mapped ahead of the request (see main). */
static CK_FUNCTION_LIST **preloaded;
static CK_FUNCTION_LIST *preloaded_one[2];

#ifdef TS_HELPER_COMPROMISED
/* Test build only (tests/helper/compromised.c): what a compromised helper would try. */
void ts_helper_compromised(uint8_t op, const char *type, const char *vault_name);
#endif

/* The reply, collected as fields; facts are copied here (public). */
typedef struct reply {
	ts_wire_field f[8 + TS_WIRE_MAX_FACTS];
	size_t n;
	char facts[TS_WIRE_MAX_FACTS][256];
	size_t n_facts;
	int overflow;
} reply;

static void add(reply *p, uint8_t tag, const void *data, size_t len)
{
	p->f[p->n++] = (ts_wire_field){ .tag = tag, .data = data, .len = len };
}

static int add_fact(void *ud, const char *key, const char *value)
{
	reply *p = ud;
	size_t kl = strlen(key), vl = strlen(value);
	char *slot;

	if (p->n_facts >= TS_WIRE_MAX_FACTS || kl + 1 + vl >= sizeof(p->facts[0]) || kl == 0) {
		p->overflow = 1;
		return 0;
	}
	slot = p->facts[p->n_facts++];
	memcpy(slot, key, kl + 1);
	memcpy(slot + kl + 1, value, vl);
	add(p, TS_WIRE_FACT, slot, kl + 1 + vl);
	return 0;
}

static int send_reply(reply *p)
{
	_ts_cleanup_secure_ uint8_t *frame = NULL;
	size_t len;
	int r;

	if ((r = ts_wire_encode(p->f, p->n, &frame, &len)) < 0)
		return r;
	return ts_wire_write(HELPER_FD, frame, len);
}

static int run(ts_wire_request *q)
{
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	_ts_cleanup_secure_ char *secret = NULL;
	_ts_cleanup_buf_ ts_buf params = { 0 };
	const ts_protector_ops *ops = ts_protector_lookup(q->type);
	ts_config config = {
		.tpm2_tcti = q->tcti[0] ? q->tcti : NULL,
		.fido2_device = q->fido2_device[0] ? q->fido2_device : NULL,
		.pkcs11_module = q->pkcs11_module[0] ? q->pkcs11_module : NULL,
		.fido2_timeout_ms = q->fido2_timeout_ms ? q->fido2_timeout_ms : 30000,
		.test_devices = q->test_devices,
	};
	char err[512] = "", desc[TS_PROTECTOR_DESC_MAX] = "";
	ts_protector_request req = {
		.config = &config,
		.vault_name = q->vault_name,
		.vault_id = q->vault_id,
		.options = q->options,
		.n_options = q->n_options,
		.pin = q->pin,
		.pin_len = q->pin_len,
		.err = err,
		.err_len = sizeof(err),
	};
	size_t secret_len = 0;
	uint8_t rcb[4], valb[4];
	reply p = { .n = 0 };
	int32_t rc = 0, value = 0;

	if (q->op == TS_WIRE_OP_ESCROW_WRAP_KEY) {
		/*
		 * Escrow to an HSM officer's RSA key: OpenSSL lives here, not in the
		 * daemon. Only the box's key comes here; the daemon seals the vault
		 * secret under it itself.
		 */
		if (strcmp(q->type, "rsa") != 0) {
			rc = -TS_E_INVALID_ARGS;
			snprintf(err, sizeof(err), "escrow key wrapping needs type rsa");
		} else if ((rc = ts_escrow_rsa_wrap_key(q->params, q->params_len, q->box_key, &params, err,
		                                        sizeof(err))) >= 0)
			add(&p, TS_WIRE_PARAMS, params.data, params.len);
	} else if (q->op == TS_WIRE_OP_NV) {
		/* A vault's rollback counter: the auth in the request is the index's, nothing else is secret. */
		static uint8_t nv_out[TS_NV_REPLY_BYTES];
		if (strcmp(q->type, "tpm2") != 0) {
			rc = -TS_E_INVALID_ARGS;
			snprintf(err, sizeof(err), "NV counters need type tpm2");
		} else if ((rc = ts_tpm2_nv_run(&req, q->params, q->params_len, nv_out)) >= 0)
			add(&p, TS_WIRE_PARAMS, nv_out, sizeof(nv_out));
	} else if (q->op == TS_WIRE_OP_LDAP) {
		/* The daemon's [escrow] publish: a record to a directory, which the daemon itself cannot reach. */
		rc = ts_helper_ldap(q, &value, err, sizeof(err));
	} else if (!ops) {
		rc = -TS_E_NOT_SUPPORTED;
		snprintf(err, sizeof(err), "protector type '%s' is not built into the token helper", q->type);
	} else {
		switch (q->op) {
		case TS_WIRE_OP_ENROLL:
			if ((kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL ||
			    (secret = ts_secure_alloc(TS_WIRE_STR_MAX + 1)) == NULL) {
				rc = -TS_E_NOMEM;
				break;
			}
			rc = ops->enroll(&req, kek, &params, desc, secret, TS_WIRE_STR_MAX, &secret_len);
			if (rc >= 0) {
				add(&p, TS_WIRE_KEK, kek, TS_KEY_BYTES);
				add(&p, TS_WIRE_PARAMS, params.data, params.len);
				add(&p, TS_WIRE_DESC, desc, strnlen(desc, sizeof(desc) - 1));
				if (secret_len)
					add(&p, TS_WIRE_SECRET, secret, secret_len);
				/*
				 * The new record's facts and needs_secret, as DESCRIBE would
				 * answer them: the daemon keeps them from here, so nothing
				 * has to describe this record later while a caller waits.
				 */
				size_t n_fields = p.n;
				if (ops->describe && (ops->describe(params.data, params.len, add_fact, &p) < 0 || p.overflow))
					p.n = n_fields;   /* none rather than some: a fact unseen is never credited */
				value = ops->needs_secret ? ops->needs_secret(params.data, params.len) : 0;
			}
			break;
		case TS_WIRE_OP_UNLOCK:
			if ((kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL) {
				rc = -TS_E_NOMEM;
				break;
			}
			rc = ops->unlock(&req, q->params, q->params_len, kek);
			if (rc >= 0)
				add(&p, TS_WIRE_KEK, kek, TS_KEY_BYTES);
			break;
		case TS_WIRE_OP_DESCRIBE:
			if (ops->describe)
				rc = ops->describe(q->params, q->params_len, add_fact, &p);
			value = ops->needs_secret ? ops->needs_secret(q->params, q->params_len) : 0;
			if (p.overflow && rc >= 0)
				rc = -TS_E_LIMIT;
			break;
		case TS_WIRE_OP_PRESENT:
			/* desc carries which token answered: the daemon tells one token from two by it. */
			req.token_id = desc;
			req.token_id_len = sizeof(desc);
			if (!ops->present)
				rc = -TS_E_NOT_SUPPORTED;
			else if ((rc = ops->present(&req, q->params, q->params_len)) >= 0) {
				value = rc;
				rc = 0;
				if (value > 0 && desc[0])
					add(&p, TS_WIRE_DESC, desc, strnlen(desc, sizeof(desc) - 1));
			}
			break;
		}
	}
	if (rc > 0)
		rc = 0;
	ts_put_be32(rcb, (uint32_t)rc);
	ts_put_be32(valb, (uint32_t)value);
	add(&p, TS_WIRE_RC, rcb, 4);
	add(&p, TS_WIRE_VALUE, valb, 4);
	if (rc < 0 && err[0])
		add(&p, TS_WIRE_ERR, err, strnlen(err, sizeof(err) - 1));
	return send_reply(&p);
}

/* What needs a server: what only a network helper runs, and all that it runs (tokensealed's request_kind). */
static int is_network_request(const ts_wire_request *q)
{
	return q->op == TS_WIRE_OP_LDAP ||
	       ((q->op == TS_WIRE_OP_ENROLL || q->op == TS_WIRE_OP_UNLOCK) && strcmp(q->type, "tang") == 0);
}

/* Answer a request of the other kind of helper without running it: NotSupported and why. */
static int refuse(const char *why)
{
	uint8_t rcb[4], valb[4];
	reply p = { .n = 0 };

	fprintf(stderr, "tokenseal-helper: %s\n", why);
	ts_put_be32(rcb, (uint32_t)-TS_E_NOT_SUPPORTED);
	ts_put_be32(valb, 0);
	add(&p, TS_WIRE_RC, rcb, 4);
	add(&p, TS_WIRE_VALUE, valb, 4);
	add(&p, TS_WIRE_ERR, why, strlen(why));
	return send_reply(&p);
}

/* The protector backends of this program (ts_protectors_use): the real backends. */
static const ts_protector_ops *const backends[] = { &ts_protector_recovery, &ts_protector_fido2, &ts_protector_tpm2, &ts_protector_pkcs11,
							     &ts_protector_tang, NULL };

int main(int argc, char **argv)
{
	ts_protectors_use(backends);
	_ts_cleanup_secure_ uint8_t *body = NULL;
	_ts_cleanup_secure_ ts_wire_request *q = NULL;
	struct rlimit no_core = { 0, 0 };
	const char *pkcs11_module = NULL;
	char err[256];
	size_t len;
	int r, activated, network = 0;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: tokenseal-helper [--pkcs11-module PATH | --network]\n"
		       "Runs one token operation for tokensealed, which starts it with a socket on fd %d\n"
		       "(or the service manager does, for a connection of tokensealed --helper-socket).\n"
		       "--pkcs11-module: map only this PKCS#11 module ahead of the request.\n"
		       "--network: be a network helper (tokensealed --net-helper-socket): run only a\n"
		       "tang enrollment or unlock and a directory request, refuse every token request;\n"
		       "without it those network requests are refused.\n"
		       "Not meant to be run by hand.\n", HELPER_FD);
		return EXIT_SUCCESS;
	}
	if (argc == 3 && strcmp(argv[1], "--pkcs11-module") == 0 && argv[2][0] == '/')
		pkcs11_module = argv[2];
	else if (argc == 2 && strcmp(argv[1], "--network") == 0)
		network = 1;
	else if (argc != 1) {
		fprintf(stderr, "tokenseal-helper: unexpected arguments\n");
		return EXIT_FAILURE;
	}
	activated = socket_activated();
	/* PINs and KEKs pass through here too. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || setrlimit(RLIMIT_CORE, &no_core) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		fprintf(stderr, "tokenseal-helper: cannot harden the process: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	/*
	 * Started by the daemon: it died before PDEATHSIG was armed. Started by
	 * the service manager, the daemon is not the parent: its death is the
	 * end of the connection (EOF on the request, EPIPE on the reply), and
	 * RuntimeMaxSec= ends a helper that never gets that far.
	 */
	if (!activated && getppid() == 1)
		return EXIT_FAILURE;
	signal(SIGPIPE, SIG_IGN);
	/* Who serves the socket, for the daemon to check before it sends a PIN (helper_wire.h). */
	if (activated) {
		static const uint8_t hello = TS_WIRE_HELLO;
		ssize_t w;
		while ((w = send(HELPER_FD, &hello, 1, MSG_NOSIGNAL)) < 0 && errno == EINTR)
			;
		if (w != 1) {
			fprintf(stderr, "tokenseal-helper: cannot greet the daemon on fd %d: %s\n", HELPER_FD,
			        w < 0 ? strerror(errno) : "short write");
			return EXIT_FAILURE;
		}
	}
	setenv("TSS2_LOG", "all+NONE", 0);
	if (sodium_init() < 0) {
		fprintf(stderr, "tokenseal-helper: libsodium failed to initialise\n");
		return EXIT_FAILURE;
	}
	if ((q = ts_secure_alloc(sizeof(*q))) == NULL)
		return EXIT_FAILURE;
	/*
	 * A spare helper waits here for its request: do the libraries' one-time
	 * set-up (OpenSSL's configuration and random generator, libfido2) now,
	 * not while a caller waits for its unlock.
	 */
	{
		unsigned char b;
		(void)OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL);
		(void)RAND_bytes(&b, 1);
		/* libcurl's (the tang backend's) global set-up, TLS included. */
		(void)curl_global_init(CURL_GLOBAL_DEFAULT);
		/*
		 * Map the configured PKCS#11 module, or else the registered ones,
		 * and their libraries (not initialized: no token is opened). They
		 * stay mapped until exit, so the pkcs11 backend's own load finds
		 * them in place.
		 */
		if (!network) {
			fido_init(0);
			if (pkcs11_module) {
				if ((preloaded_one[0] = p11_kit_module_load(pkcs11_module, 0)) != NULL)
					preloaded = preloaded_one;
			} else
				preloaded = p11_kit_modules_load(NULL, 0);
		}
	}
	/* From here on only the system calls the token backends use (sandbox.h). */
	if (ts_helper_sandbox(err, sizeof(err)) < 0) {
		fprintf(stderr, "tokenseal-helper: %s\n", err);
		return EXIT_FAILURE;
	}
	/*
	 * A spare the daemon let go without a request: it closed its end, and
	 * nothing went wrong (no failed unit in the journal for each one).
	 */
	if (activated) {
		uint8_t b;
		ssize_t n;
		while ((n = recv(HELPER_FD, &b, 1, MSG_PEEK)) < 0 && errno == EINTR)
			;
		if (n == 0)
			return EXIT_SUCCESS;
	}
	if ((r = ts_wire_read(HELPER_FD, -1, &body, &len)) < 0) {
		fprintf(stderr, "tokenseal-helper: no request on fd %d: %s\n", HELPER_FD, ts_strerror(r));
		return EXIT_FAILURE;
	}
	if ((r = ts_wire_parse_request(body, len, q)) < 0) {
		fprintf(stderr, "tokenseal-helper: malformed request: %s\n", ts_strerror(r));
		return EXIT_FAILURE;
	}
	/*
	 * A network helper runs network requests only, a token helper none of
	 * them (helper_spawn.h): a socket or user mixed up fails closed, and a
	 * flaw a server's answer reaches never runs as a user with token access.
	 */
	if (network != is_network_request(q)) {
		r = refuse(network ? "this network helper runs no token request (tokensealed --net-helper-socket "
		                     "names the token helpers' socket?)" :
		                     "this token helper runs no network request (tang enrollment or unlock, a "
		                     "directory request): the daemon sends those to its network helper");
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	/*
	 * Only a tang enrollment or unlock, and a directory request, keep the
	 * network (sandbox.h); describing a record needs none.
	 */
	if (ts_helper_sandbox_narrow(q->op == TS_WIRE_OP_ENROLL || q->op == TS_WIRE_OP_UNLOCK || q->op == TS_WIRE_OP_LDAP ?
	                             q->type : "", err, sizeof(err)) < 0) {
		fprintf(stderr, "tokenseal-helper: %s\n", err);
		return EXIT_FAILURE;
	}
#ifdef TS_HELPER_COMPROMISED
	ts_helper_compromised(q->op, q->type, q->vault_name);
#endif
	r = run(q);
	if (preloaded == preloaded_one)
		p11_kit_module_release(preloaded_one[0]);
	else if (preloaded)
		p11_kit_modules_release(preloaded);
	if (r < 0) {
		fprintf(stderr, "tokenseal-helper: cannot send the reply: %s\n", ts_strerror(r));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
