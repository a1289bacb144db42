/* main.c — tokenseal-secrets: options, the storage directory, the session bus name, the loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "client-internal.h"
#include "secrets.h"


void ss_log(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* Names from files and messages from tokensealed never start a log line of their own. */
	fputs("tokenseal-secrets: ", stderr);
	for (i = 0; buf[i]; i++) {
		unsigned char ch = (unsigned char)buf[i];

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			fprintf(stderr, "\\x%02x", ch);
		else
			fputc(ch, stderr);
	}
	fputc('\n', stderr);
}

void ss_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void usage(FILE *f)
{
	fputs("Usage: tokenseal-secrets [OPTIONS]\n"
	      "A Secret Service provider (org.freedesktop.secrets on the session bus) whose secrets are sealed by\n"
	      "your tokenseal vault: it locks when the vault locks, and unlocks with the token's PIN (pinentry).\n\n"
	      "  --vault [OWNER:]NAME   the vault that seals the collections (default: yours, named after you)\n"
	      "  --data-dir DIR         where the collections are kept (default: $XDG_DATA_HOME/tokenseal/secrets)\n"
	      "  --pinentry PROGRAM     the pinentry program that asks for the PIN (default: pinentry)\n"
	      "  --bus ADDRESS          the session bus to serve (default: $DBUS_SESSION_BUS_ADDRESS)\n"
	      "  --tokenseal-bus BUS    where tokensealed is: system (default, or $TOKENSEAL_BUS), session, ADDRESS\n"
	      "  -h, --help             this text\n",
	      f);
}

/* mkdir -p, each new level 0700; the last one must be ours and closed to others. */
static int make_dir(const char *dir)
{
	char *p = strdup(dir), *q;
	struct stat st;

	if (!p)
		return -ENOMEM;
	for (q = p + 1; *q; q++)
		if (*q == '/') {
			*q = 0;
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				free(p);
				return -errno;
			}
			*q = '/';
		}
	free(p);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -EPERM;
	if ((st.st_mode & 077) && chmod(dir, 0700) < 0)
		return -errno;
	return 0;
}

static char *default_dir(void)
{
	const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char *d = NULL;

	if (x && *x == '/')
		return asprintf(&d, "%s/tokenseal/secrets", x) < 0 ? NULL : d;
	if (home && *home == '/')
		return asprintf(&d, "%s/.local/share/tokenseal/secrets", home) < 0 ? NULL : d;
	return NULL;
}

static int on_name_owner(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	const char *name, *old, *new;

	/* A client left: its sessions go with it. */
	if (sd_bus_message_read(m, "sss", &name, &old, &new) >= 0 && name[0] == ':' && !*new) {
		ss_sessions_drop_owner(userdata, name);
		ss_prompts_drop_owner(userdata, name);
	}
	return 0;
}

/* Who holds the name now, for the message when we cannot have it. */
static void say_owner(sd_bus *bus)
{
	sd_bus_creds *creds = NULL;
	const char *unique = NULL, *comm = NULL;
	pid_t pid = 0;

	if (sd_bus_get_name_creds(bus, SS_BUS_NAME, SD_BUS_CREDS_UNIQUE_NAME | SD_BUS_CREDS_PID | SD_BUS_CREDS_COMM, &creds) >= 0) {
		(void)sd_bus_creds_get_unique_name(creds, &unique);
		(void)sd_bus_creds_get_pid(creds, &pid);
		(void)sd_bus_creds_get_comm(creds, &comm);
	}
	ss_log("another Secret Service provider already owns %s (%s%s%s, pid %d): stop it first "
	       "(e.g. gnome-keyring-daemon's secrets component), then start tokenseal-secrets again",
	       SS_BUS_NAME, unique ? unique : "?", comm ? ", " : "", comm ? comm : "", (int)pid);
	sd_bus_creds_unref(creds);
}

static void ensure_default(ss_service *s)
{
	ss_collection *c;

	if (ss_service_alias(s, "default"))
		return;
	if (ss_service_create_collection(s, "Login", "default", &c) < 0)
		ss_log("cannot create the default collection");
	else
		(void)ss_open_async(s, c, NULL, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"vault", required_argument, NULL, 'v'},     {"data-dir", required_argument, NULL, 'd'},
		{"pinentry", required_argument, NULL, 'p'},  {"bus", required_argument, NULL, 'b'},
		{"tokenseal-bus", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	ss_service svc = {0}, *s = &svc;
	const char *bus_address = NULL, *ts_bus = NULL;
	sigset_t mask;
	size_t i;
	int c, r;

	s->pinentry = "pinentry";
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'v': s->vault = optarg; break;
		case 'd': s->dir = strdup(optarg); break;
		case 'p': s->pinentry = optarg; break;
		case 'b': bus_address = optarg; break;
		case 't': ts_bus = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* No core dumps or ptrace by other processes of the user: collection keys are in memory. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	if (sodium_init() < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	umask(077);
	if (!s->dir && (s->dir = default_dir()) == NULL) {
		ss_log("no data directory: set XDG_DATA_HOME or HOME, or pass --data-dir");
		return 1;
	}
	if ((r = make_dir(s->dir)) < 0) {
		ss_log("%s: %s (it must be a directory of yours)", s->dir, strerror(-r));
		return 1;
	}
	/* Not sd_event_default(): that one costs a gettid() system call per turn of the loop (daemon/main.c). */
	if ((r = sd_event_new(&s->event)) < 0 || (r = sd_event_add_signal(s->event, NULL, SIGTERM, NULL, NULL)) < 0 ||
	    (r = sd_event_add_signal(s->event, NULL, SIGINT, NULL, NULL)) < 0)
		goto fail;
	if (bus_address) {
		if ((r = sd_bus_new(&s->bus)) < 0 || (r = sd_bus_set_address(s->bus, bus_address)) < 0 ||
		    (r = sd_bus_set_bus_client(s->bus, 1)) < 0 || (r = sd_bus_start(s->bus)) < 0)
			goto bus_fail;
	} else if ((r = sd_bus_open_user(&s->bus)) < 0)
		goto bus_fail;
	if ((r = ts_client_open(&s->ts, ts_bus)) < 0) {
		ss_log("cannot reach tokensealed: %s", ts_strerror(-r));
		goto out;
	}
	if ((r = ss_store_load_all(s)) < 0) {
		ss_log("%s: %s", s->dir, strerror(-r));
		goto out;
	}
	if ((r = ss_service_register(s)) < 0 || (r = sd_bus_attach_event(s->bus, s->event, 0)) < 0 ||
	    (r = sd_bus_match_signal(s->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
	                             "NameOwnerChanged", on_name_owner, s)) < 0)
		goto fail;
	/* Never take the name from another provider: ask without replacing, and say who has it. */
	if ((r = sd_bus_request_name(s->bus, SS_BUS_NAME, 0)) < 0) {
		if (r == -EEXIST)
			say_owner(s->bus);
		else
			ss_log("cannot own %s: %s", SS_BUS_NAME, strerror(-r));
		r = 3;
		goto out_code;
	}
	if ((r = ss_vault_start(s)) < 0)
		goto out;
	ensure_default(s);
	ss_log("serving %s; collections in %s; the vault is %s", SS_BUS_NAME, s->dir, s->vault_locked ? "locked" : "unlocked");
	r = sd_event_loop(s->event);
	r = r != 0 ? 1 : 0;   /* < 0: the loop failed; > 0: we ended it (tokensealed's connection lost) */
	goto out_code;
bus_fail:
	ss_log("cannot connect to the session bus: %s", strerror(-r));
	r = 1;
	goto out_code;
fail:
	ss_log("%s", strerror(-r));
out:
	r = 1;
out_code:
	ss_prompts_free(s);
	for (i = 0; i < s->n_sessions; i++)
		ss_session_free(s->sessions[i]);
	free(s->sessions);
	for (i = 0; i < s->n_colls; i++)
		ss_open_abandon(s, s->colls[i]);
	for (i = 0; i < s->n_colls; i++)
		ss_collection_free(s->colls[i]);
	free(s->colls);
	sd_bus_flush_close_unref(s->bus);
	if (s->ts) {
		sd_bus_detach_event(s->ts->bus);
		ts_client_free(s->ts);
	}
	sd_event_unref(s->event);
	free(s->vault_path);
	free(s->daemon_name);
	free(s->dir);
	return r;
}
