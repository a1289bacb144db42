/* main.c — tokensealed: options, hardening, the sd-event loop, and the org.tokenseal1 bus name. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "bus/escrow_publish.h"
#include "bus/audit.h"
#include "bus/autolock.h"
#include "bus/daemon.h"
#include "bus/direct.h"
#include "bus/escrow_ready.h"
#include "bus/introspect.h"
#include "bus/log.h"
#include "bus/manager.h"
#include "bus/message.h"
#include "bus/nvcounter.h"
#include "bus/policy_enforce.h"
#include "bus/polkit.h"
#include "bus/rekey.h"
#include "bus/rollback.h"
#include "bus/secretfd.h"
#include "bus/serve.h"
#include "bus/signals.h"
#include "bus/state.h"
#include "bus/vault_object.h"
#include "core/escrow.h"
#include "protectors/escrow_stock.h"
#include "protectors/helper_spawn.h"
#include "protectors/remote.h"
#include "store.h"

#define TS_DAEMON_VERSION "0.1"
/* How long start-up waits for the token protectors of the vaults loaded to be described. */
#define DESCRIBE_WAIT_USEC (30ull * 1000 * 1000)

static void usage(FILE *f)
{
	const ts_protector_ops *const *p;

	fprintf(f,
	        "Usage: tokensealed [OPTIONS]\n"
	        "Keep vault root keys sealed to hardware tokens; serve org.tokenseal1 on D-Bus.\n\n"
	        "  --bus system|session|ADDRESS  bus to serve on (default: system)\n"
	        "  --state-dir DIR               vault files (default: /var/lib/tokenseal)\n"
	        "  --idle-lock SECONDS           lock a vault unused this long (default: 900, 0: never)\n"
	        "  --tpm2-tcti TCTI              TPM 2.0 TCTI (default: device:/dev/tpmrm0)\n"
	        "  --fido2-device PATH[,PATH..]  FIDO2 devices (default: enumerate hidraw keys)\n"
	        "  --fido2-timeout SECONDS       wait this long for a touch (default: 30)\n"
	        "  --pkcs11-module PATH          PKCS#11 module (default: p11-kit's registered modules)\n"
	        "  --policy-dir DIR              system policy (default: " TS_POLICY_DIR ")\n"
	        "  --audit-log FILE              also append audit events to FILE as JSON lines\n"
	        "  --accept-rollback UID:NAME:GENERATION\n"
	        "                                serve vault NAME of UID from its file of that\n"
	        "                                generation although a newer one was written\n"
	        "                                or its TPM counter disagrees (disaster recovery;\n"
	        "                                audited)\n"
	        "  --log-level LEVEL             err, warning, notice, info, debug (default: info)\n"
	        "  --helper PATH                 token helper program (default: %s)\n"
	        "  --helper-keep SECONDS         keep a spare helper started this long after a token\n"
	        "                                operation (default: 60, 0: never)\n"
	        "  --helper-user USER            run the token helper as USER (default: " TS_HELPER_USER ")\n"
	        "  --helper-socket PATH          connect to PATH for each token helper instead of\n"
	        "                                starting it (systemd: tokenseal-helper.socket);\n"
	        "                                a helper not of --helper-user is refused, and the\n"
	        "                                daemon keeps no capability\n"
	        "  --net-helper-user USER        run the network helper (tang, [escrow] publish) as\n"
	        "                                USER (default: " TS_NET_HELPER_USER ")\n"
	        "  --net-helper-socket PATH      connect to PATH for each network helper instead of\n"
	        "                                starting it (systemd: tokenseal-net-helper.socket);\n"
	        "                                a helper not of --net-helper-user is refused\n"
	        "  --private-socket PATH         also serve on the Unix socket PATH (mode 0666), one\n"
	        "                                direct D-Bus connection per client, no bus daemon in\n"
	        "                                between; same authorization (systemd: /run/tokenseal/private)\n"
	        "  --help, --version\n\n"
	        "Protector types built in:", ts_protector_remote_helper());
	for (p = ts_protector_all(); *p; p++)
		fprintf(f, " %s", (*p)->type);
	fprintf(f, "\n");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	ts_daemon *d = userdata;

	ts_log(TS_LOG_INFO, "signal %u: locking every vault and exiting", si->ssi_signo);
	ts_audit_data_stop();
	ts_daemon_lock_all(d, "shutdown");
	/*
	 * The private socket's connections go now: sd-bus flushes each bus it is
	 * attached to when the loop exits, and would wait there for a client that
	 * never finishes its handshake.
	 */
	ts_direct_stop(d);
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int open_bus(const char *spec, sd_bus **ret)
{
	sd_bus *bus = NULL;
	int r;

	if (strcmp(spec, "system") == 0)
		return sd_bus_open_system(ret);
	if (strcmp(spec, "session") == 0)
		return sd_bus_open_user(ret);
	if ((r = sd_bus_new(&bus)) < 0)
		return r;
	if ((r = sd_bus_set_address(bus, spec)) < 0 || (r = sd_bus_set_bus_client(bus, 1)) < 0 ||
	    (r = sd_bus_start(bus)) < 0) {
		sd_bus_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

static int parse_seconds(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *end || errno || s[0] == '-' || v > 365ull * 24 * 3600)
		return -1;
	*ret = v;
	return 0;
}

/*
 * "unix:PATH" reaches the software authenticator of the tests over a socket:
 * test plumbing, refused unless the daemon was started for tests.
 */
static int check_fido2_devices(const ts_config *config)
{
	const char *p = config->fido2_device;

	for (; p && *p; p += strcspn(p, ","), p += *p == ',') {
		if (strncmp(p, "unix:", 5) != 0 || config->test_devices)
			continue;
		fprintf(stderr, "tokensealed: --fido2-device %.*s: unix: devices are the test authenticator's transport, "
		        "accepted only with --test-devices (for tests, never in production)\n", (int)strcspn(p, ","), p);
		return -1;
	}
	return 0;
}

/* Does an [unwrap] rule name executables? Judging them reads callers' /proc/PID/exe. */
static int policy_names_executables(const ts_policy *p)
{
	const ts_policy_setting *s;

	for (size_t i = 0; (s = ts_policy_setting_at(p, i)) != NULL; i++)
		if (strncmp(s->section, "unwrap ", 7) == 0 && strcmp(s->key, "executables") == 0 && s->value[0])
			return 1;
	return 0;
}

/* A line a token helper wrote to its stderr: logged as the helper's, escaped by ts_log (one event, one line). */
static void log_helper_line(pid_t pid, const char *line)
{
	ts_log(TS_LOG_WARNING, "token helper %ld: %s", (long)pid, line);
}

/* What went wrong starting a helper (e.g. a socket served by the wrong user): the daemon's own words. */
static void log_helper_warning(const char *msg)
{
	ts_log(TS_LOG_WARNING, "%s", msg);
}

/* The protector backends of this program (ts_protectors_use): the four backends: recovery in-process, the token types through the helper (remote.c). */
static const ts_protector_ops *const backends[] = { &ts_protector_recovery, &ts_protector_fido2, &ts_protector_tpm2, &ts_protector_pkcs11,
							     &ts_protector_tang, NULL };

int main(int argc, char **argv)
{
	ts_protectors_use(backends);
	enum { OPT_BUS = 256, OPT_STATE, OPT_IDLE, OPT_TCTI, OPT_FIDO2, OPT_FIDO2_TIMEOUT, OPT_PKCS11, OPT_LOG, OPT_XML, OPT_POLICY, OPT_AUDIT, OPT_HELPER, OPT_HELPER_KEEP, OPT_HELPER_USER, OPT_HELPER_SOCKET, OPT_NET_HELPER_USER, OPT_NET_HELPER_SOCKET, OPT_PRIVATE_SOCKET, OPT_TEST_DEVICES, OPT_ACCEPT_ROLLBACK };
	static const struct option options[] = {
		{ "bus", required_argument, NULL, OPT_BUS },
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "idle-lock", required_argument, NULL, OPT_IDLE },
		{ "tpm2-tcti", required_argument, NULL, OPT_TCTI },
		{ "fido2-device", required_argument, NULL, OPT_FIDO2 },
		{ "fido2-timeout", required_argument, NULL, OPT_FIDO2_TIMEOUT },
		{ "pkcs11-module", required_argument, NULL, OPT_PKCS11 },
		{ "log-level", required_argument, NULL, OPT_LOG },
		{ "policy-dir", required_argument, NULL, OPT_POLICY },
		{ "audit-log", required_argument, NULL, OPT_AUDIT },
		{ "accept-rollback", required_argument, NULL, OPT_ACCEPT_ROLLBACK },
		{ "helper", required_argument, NULL, OPT_HELPER },
		{ "helper-keep", required_argument, NULL, OPT_HELPER_KEEP },
		{ "helper-user", required_argument, NULL, OPT_HELPER_USER },
		{ "helper-socket", required_argument, NULL, OPT_HELPER_SOCKET },
		{ "net-helper-user", required_argument, NULL, OPT_NET_HELPER_USER },
		{ "net-helper-socket", required_argument, NULL, OPT_NET_HELPER_SOCKET },
		{ "private-socket", required_argument, NULL, OPT_PRIVATE_SOCKET },
		{ "print-introspection", no_argument, NULL, OPT_XML },   /* hidden: for contrib/org.tokenseal1.xml */
		{ "test-devices", no_argument, NULL, OPT_TEST_DEVICES }, /* hidden: tests only (tokensealed(8)) */
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	ts_daemon d = {
		.state_dir = "/var/lib/tokenseal",
		.idle_lock_usec = 900ull * 1000000,
		.config = { .tpm2_tcti = "device:/dev/tpmrm0", .fido2_timeout_ms = 30000 },
	};
	const char *bus_spec = "system", *helper_user = TS_HELPER_USER, *helper_socket = NULL, *private_socket = NULL;
	const char *net_helper_user = TS_NET_HELPER_USER, *net_helper_socket = NULL;
	char helper_err[256];
	uint64_t helper_keep_usec = 60ull * 1000000;
	const char *policy_dir = TS_POLICY_DIR;
	char policy_err[TS_POLICY_MSG_MAX];
	struct rlimit no_core = { 0, 0 };
	sigset_t mask;
	uint64_t secs;
	int c, r, level, print_xml = 0, ret = EXIT_FAILURE, lock_fd = -1;

	/*
	 * Two modules the write path and the event log call back into, handed in
	 * here so neither names the other: every event logged goes on to the
	 * audit sinks; a TPM counter just defined is saved by the daemon's
	 * write path.
	 */
	ts_log_set_audit_sink(ts_audit_sinks);
	ts_nvcounter_set_persist(ts_daemon_persist);

	while ((c = getopt_long(argc, argv, "hV", options, NULL)) != -1) {
		switch (c) {
		case OPT_BUS: bus_spec = optarg; break;
		case OPT_STATE: d.state_dir = optarg; break;
		case OPT_IDLE:
			if (parse_seconds(optarg, &secs) < 0) {
				fprintf(stderr, "tokensealed: --idle-lock: not a number of seconds: %s\n", optarg);
				return EXIT_FAILURE;
			}
			d.idle_lock_usec = secs * 1000000;
			break;
		case OPT_TCTI: d.config.tpm2_tcti = optarg; break;
		case OPT_FIDO2: d.config.fido2_device = optarg; break;
		case OPT_FIDO2_TIMEOUT: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v == 0 || v > 600) {
				fprintf(stderr, "tokensealed: --fido2-timeout: 1..600 seconds: %s\n", optarg);
				return EXIT_FAILURE;
			}
			d.config.fido2_timeout_ms = (unsigned)v * 1000;
			break;
		}
		case OPT_PKCS11: d.config.pkcs11_module = optarg; break;
		case OPT_LOG:
			if ((level = ts_log_parse_level(optarg)) < 0) {
				fprintf(stderr, "tokensealed: --log-level: unknown level %s\n", optarg);
				return EXIT_FAILURE;
			}
			ts_log_set_level(level);
			break;
		case OPT_XML: print_xml = 1; break;
		case OPT_TEST_DEVICES: d.config.test_devices = 1; break;
		case OPT_POLICY: policy_dir = optarg; break;
		case OPT_AUDIT: ts_audit_set_file(optarg); break;
		case OPT_ACCEPT_ROLLBACK:
			if ((r = ts_rollback_accept(optarg)) < 0) {
				fprintf(stderr, "tokensealed: --accept-rollback: %s: %s\n", optarg,
				        r == -TS_E_LIMIT ? "at most 16" : "not UID:NAME:GENERATION");
				return EXIT_FAILURE;
			}
			break;
		case OPT_HELPER:
			if (optarg[0] != '/') {
				fprintf(stderr, "tokensealed: --helper: not an absolute path: %s\n", optarg);
				return EXIT_FAILURE;
			}
			ts_protector_remote_set_helper(optarg);
			break;
		case OPT_HELPER_KEEP:
			if (parse_seconds(optarg, &secs) < 0 || secs > 3600) {
				fprintf(stderr, "tokensealed: --helper-keep: 0..3600 seconds: %s\n", optarg);
				return EXIT_FAILURE;
			}
			helper_keep_usec = secs * 1000000;
			break;
		case OPT_HELPER_USER: helper_user = optarg; break;
		case OPT_HELPER_SOCKET:
			if (optarg[0] != '/') {
				fprintf(stderr, "tokensealed: --helper-socket: not an absolute path: %s\n", optarg);
				return EXIT_FAILURE;
			}
			helper_socket = optarg;
			break;
		case OPT_NET_HELPER_USER: net_helper_user = optarg; break;
		case OPT_NET_HELPER_SOCKET:
			if (optarg[0] != '/') {
				fprintf(stderr, "tokensealed: --net-helper-socket: not an absolute path: %s\n", optarg);
				return EXIT_FAILURE;
			}
			net_helper_socket = optarg;
			break;
		case OPT_PRIVATE_SOCKET:
			if (optarg[0] != '/') {
				fprintf(stderr, "tokensealed: --private-socket: not an absolute path: %s\n", optarg);
				return EXIT_FAILURE;
			}
			private_socket = optarg;
			break;
		case 'h': usage(stdout); return EXIT_SUCCESS;
		case 'V': printf("tokensealed %s\n", TS_DAEMON_VERSION); return EXIT_SUCCESS;
		default: usage(stderr); return EXIT_FAILURE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tokensealed: unexpected argument: %s\n", argv[optind]);
		return EXIT_FAILURE;
	}
	if (check_fido2_devices(&d.config) < 0)
		return EXIT_FAILURE;

	/* Root keys live here: no core dumps, no ptrace by same-uid processes. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || setrlimit(RLIMIT_CORE, &no_core) < 0) {
		fprintf(stderr, "tokensealed: cannot disable core dumps: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	umask(077);
	/*
	 * tpm2-tss logs every TPM error code (each wrong PIN among them) to
	 * stderr by default; our own log says what matters. An explicit
	 * TSS2_LOG from the administrator wins.
	 */
	setenv("TSS2_LOG", "all+NONE", 0);
	/* A client that closes its end of a secret pipe must give an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		fprintf(stderr, "tokensealed: libsodium failed to initialise\n");
		return EXIT_FAILURE;
	}
	/*
	 * The core seals escrow boxes to RSA (HSM) officers itself and needs RSA
	 * only to encrypt each box's fresh key: this pointer is the one place that
	 * decides where RSA runs (in tokenseal-helper, like every other use of
	 * OpenSSL), and the helper is given that key, never the vault secret.
	 * The keys are wrapped ahead, from the loop (escrow_stock.h): a seal only
	 * takes one, and never waits for a helper.
	 */
	ts_escrow_set_rsa_key_source(ts_escrow_stock_take);

	if (print_xml) {
		char *xml = NULL;
		if ((r = ts_daemon_introspection(&d, &xml)) < 0) {
			fprintf(stderr, "tokensealed: cannot build the introspection XML: %s\n", ts_strerror(r));
			ts_daemon_free(&d);
			return EXIT_FAILURE;
		}
		fputs(xml, stdout);
		free(xml);
		ts_daemon_free(&d);
		return EXIT_SUCCESS;
	}

	/*
	 * The helper runs as its own user; after this the daemon keeps no
	 * capability but the two that start it as that user (helper_spawn.h),
	 * or none at all where the service manager starts it (--helper-socket).
	 */
	if (helper_socket) {
		if (ts_helper_connect_init(TS_HELPER_TOKEN, helper_socket, helper_user, helper_err, sizeof(helper_err)) < 0)
			ts_log(TS_LOG_WARNING, "%s; fido2, tpm2 and pkcs11 protectors cannot be used", helper_err);
	} else {
		if (access(ts_protector_remote_helper(), X_OK) < 0)
			ts_log(TS_LOG_WARNING, "token helper %s: %s; fido2, tpm2 and pkcs11 protectors cannot be used",
			       ts_protector_remote_helper(), strerror(errno));
		if (ts_helper_spawn_init(TS_HELPER_TOKEN, helper_user, d.config.pkcs11_module, helper_err,
		                         sizeof(helper_err)) < 0)
			ts_log(TS_LOG_WARNING, "%s; fido2, tpm2 and pkcs11 protectors cannot be used", helper_err);
		else if (ts_helper_binary_readable(TS_HELPER_TOKEN, ts_protector_remote_helper()))
			ts_log(TS_LOG_WARNING, "token helper %s can be read by its user: each helper is open to the others "
			       "while it starts (its memory, the PIN it will get); install it execute-only, mode 0711",
			       ts_protector_remote_helper());
	}
	/*
	 * Network requests (tang enrollment and unlock, [escrow] publish) go to
	 * a helper of another user, with no token access: its own socket, or,
	 * where the daemon starts token helpers itself, children as that user.
	 * Token helpers on a socket and no network socket: network requests
	 * fail (the daemon keeps no capability to start a helper itself).
	 */
	if (net_helper_socket) {
		if (ts_helper_connect_init(TS_HELPER_NET, net_helper_socket, net_helper_user, helper_err,
		                           sizeof(helper_err)) < 0)
			ts_log(TS_LOG_WARNING, "%s; tang protectors and [escrow] publish cannot be used", helper_err);
	} else if (!helper_socket &&
	           ts_helper_spawn_init(TS_HELPER_NET, net_helper_user, NULL, helper_err, sizeof(helper_err)) < 0)
		ts_log(TS_LOG_WARNING, "%s; tang protectors and [escrow] publish cannot be used", helper_err);
	if (ts_helper_identities_apart(helper_err, sizeof(helper_err)) < 0)
		ts_log(TS_LOG_WARNING, "%s; tang protectors and [escrow] publish cannot be used", helper_err);

	/* No policy, no service: a broken policy must never mean a weaker one. */
	if ((r = ts_enforce_load(policy_dir, policy_err, sizeof(policy_err))) < 0) {
		ts_log(TS_LOG_ERR, "refusing to start: policy: %s", policy_err);
		goto out;
	}
	if (ts_helper_caps_restrict(policy_names_executables(ts_enforce_policy()), helper_err, sizeof(helper_err)) < 0) {
		ts_log(TS_LOG_ERR, "refusing to start: %s", helper_err);
		goto out;
	}
	if (ts_policy_idle_timeout(ts_enforce_policy()) > 0 &&
	    (d.idle_lock_usec == 0 || ts_policy_idle_timeout(ts_enforce_policy()) * 1000000 < d.idle_lock_usec))
		d.idle_lock_usec = ts_policy_idle_timeout(ts_enforce_policy()) * 1000000;
	/* One process writes a state directory: a second daemon, or an offline recovery, is refused. */
	if ((r = ts_store_init(d.state_dir)) < 0 || (r = ts_store_lock(d.state_dir, &lock_fd)) < 0) {
		if (r == -TS_E_BUSY)
			ts_log(TS_LOG_ERR, "tokensealed is running on %s; stop it first", d.state_dir);
		else
			ts_log(TS_LOG_ERR, "cannot lock the state directory %s: %s", d.state_dir, ts_strerror(r));
		goto out;
	}
	if ((r = ts_daemon_load_vaults(&d)) < 0) {
		ts_log(TS_LOG_ERR, "cannot read the state directory %s: %s", d.state_dir, ts_strerror(r));
		goto out;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/*
	 * A loop of our own, not sd_event_default(): sd-event checks the thread
	 * of a default loop with a gettid() system call on every turn (two a
	 * call served), and the daemon has no other user of a default loop.
	 */
	if ((r = sd_event_new(&d.event)) < 0 ||
	    (r = sd_event_add_signal(d.event, NULL, SIGTERM, on_signal, &d)) < 0 ||
	    (r = sd_event_add_signal(d.event, NULL, SIGINT, on_signal, &d)) < 0) {
		ts_log(TS_LOG_ERR, "cannot set up the event loop: %s", strerror(-r));
		goto out;
	}
	ts_protector_remote_set_event(d.event, helper_keep_usec);
	ts_protector_remote_set_logger(log_helper_line, log_helper_warning);
	ts_protector_remote_set_max_helpers(ts_policy_limit_helpers(ts_enforce_policy()));
	/* Each token protector's facts, from helpers, before anybody reads them. */
	if (ts_daemon_describe_loaded(&d, DESCRIBE_WAIT_USEC) < 0)
		ts_log(TS_LOG_WARNING, "not every token protector was described within %u s; the rest are described "
		       "from the loop, and read as unknown meanwhile", (unsigned)(DESCRIBE_WAIT_USEC / 1000000));
	if (sd_event_get_state(d.event) == SD_EVENT_FINISHED || sd_event_get_state(d.event) == SD_EVENT_EXITING) {
		ret = EXIT_SUCCESS;   /* SIGTERM while starting */
		goto out;
	}
	if ((r = open_bus(bus_spec, &d.bus)) < 0) {
		ts_log(TS_LOG_ERR, "cannot connect to the %s bus: %s", bus_spec, strerror(-r));
		goto out;
	}
	if ((r = sd_bus_attach_event(d.bus, d.event, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
	    (r = sd_bus_set_exit_on_disconnect(d.bus, 1)) < 0 ||
	    (r = ts_vault_objects_init(&d)) < 0 || (r = ts_serve(&d, d.bus)) < 0) {
		ts_log(TS_LOG_ERR, "cannot register the D-Bus objects: %s", strerror(-r));
		goto out;
	}
	if ((r = ts_signals_start(&d)) < 0) {
		ts_log(TS_LOG_ERR, "cannot follow the bus's connections: %s", strerror(-r));
		goto out;
	}
	if (private_socket && (r = ts_direct_listen(&d, private_socket)) < 0)
		goto out;
	if ((r = ts_publish_start(&d)) < 0) {
		ts_log(TS_LOG_ERR, "cannot start publishing escrow records: %s", ts_strerror(r));
		goto out;
	}
	if ((r = ts_autolock_start(&d)) < 0) {
		ts_log(TS_LOG_ERR, "cannot subscribe to logind's signals: %s", strerror(-r));
		goto out;
	}
	/* The name last: a client that sees it finds every object in place. */
	if ((r = sd_bus_request_name(d.bus, TS_BUS_NAME, 0)) < 0) {
		ts_log(TS_LOG_ERR, "cannot own the bus name %s: %s", TS_BUS_NAME,
		       r == -EEXIST ? "another tokensealed is running" : strerror(-r));
		goto out;
	}
	ts_log(TS_LOG_INFO, "serving %s on the %s bus, %zu vault(s), idle lock %llus", TS_BUS_NAME,
	       strchr(bus_spec, ':') ? "given" : bus_spec, d.n_vaults,
	       (unsigned long long)(d.idle_lock_usec / 1000000));
	(void)sd_notify(0, "READY=1");
	if ((r = sd_event_loop(d.event)) < 0) {
		ts_log(TS_LOG_ERR, "event loop failed: %s", strerror(-r));
		goto out;
	}
	ret = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
out:
	ts_audit_data_stop();
	ts_daemon_lock_all(&d, "shutdown");
	ts_autolock_stop(&d);
	ts_polkit_stop(&d);
	ts_secretfd_stop();
	ts_rekey_stop();
	ts_escrow_ready_stop();
	ts_escrow_stock_shutdown();
	ts_publish_stop();
	ts_signals_stop(&d);
	ts_direct_stop(&d);
	if (d.bus)
		sd_bus_flush_close_unref(d.bus);
	d.bus = NULL;
	ts_nvcounter_shutdown();
	ts_vault_object_cancel_jobs(&d);
	ts_daemon_free(&d);
	ts_protector_remote_shutdown();
	ts_enforce_free();
	sd_event_unref(d.event);
	ts_store_unlock(lock_fd);
	return ret;
}
