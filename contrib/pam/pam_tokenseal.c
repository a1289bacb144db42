/* pam_tokenseal.c — PAM module: unlock the user's tokenseal vault at login, lock it when the last session ends. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "client-internal.h"   /* cli/lib: the client library's internal API */
#include "core/recovery.h"     /* ts_recovery_looks_like (in the client library) */

#define PAM_TS_DEFAULT_TIMEOUT 10      /* seconds, each daemon call */
#define PAM_TS_TOUCH_TIMEOUT 30        /* seconds more for an unlock that waits for a touch */
#define PAM_TS_TIMEOUT_MAX 600

#define LOGIND_NAME "org.freedesktop.login1"
#define LOGIND_PATH "/org/freedesktop/login1"

typedef struct pam_ts_opts {
	const char *vault;             /* NULL: the user's name; always a vault of the user (or of shared_owner) */
	const char *shared_owner;      /* NULL: the vault must be the user's own; else the one owner allowed */
	const char *bus;               /* NULL: $TOKENSEAL_BUS or the system bus */
	const char *protector;         /* NULL: choose from the vault's protectors */
	unsigned timeout;              /* seconds */
	int use_first_pass, try_first_pass, nullok_novault, debug;
	int foreign_any;               /* foreign=any: another user or a remote login may use every protector */
} pam_ts_opts;

static void client_freep(ts_client **c) { ts_client_free(*c); }
static void info_freep(ts_vault_info **v) { ts_vault_info_free(*v); }
/* The module's copy of a secret (sodium_malloc); sodium_free wipes it. */
static void secret_freep(char **s) { if (*s) sodium_free(*s); *s = NULL; }
/* A conversation answer (malloc()ed by the application): wiped, then freed. */
static void answer_freep(char **s) { if (*s) { sodium_memzero(*s, strlen(*s)); free(*s); } *s = NULL; }
#define _cleanup_client_ __attribute__((cleanup(client_freep)))
#define _cleanup_secret_ __attribute__((cleanup(secret_freep)))
#define _cleanup_answer_ __attribute__((cleanup(answer_freep)))
#define _cleanup_info_ __attribute__((cleanup(info_freep)))

/* Unknown options are logged, not fatal: a typo must not lock everybody out. */
static int parse_opts(pam_handle_t *pamh, int argc, const char **argv, pam_ts_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout = PAM_TS_DEFAULT_TIMEOUT;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		char *end;
		unsigned long v;

		if (strncmp(a, "vault=", 6) == 0 && a[6])
			o->vault = a + 6;
		else if (strncmp(a, "shared_owner=", 13) == 0 && a[13])
			o->shared_owner = a + 13;
		else if (strncmp(a, "bus=", 4) == 0 && a[4])
			o->bus = a + 4;
		else if (strncmp(a, "protector=", 10) == 0 && a[10])
			o->protector = a + 10;
		else if (strncmp(a, "timeout=", 8) == 0) {
			errno = 0;
			v = strtoul(a + 8, &end, 10);
			if (!a[8] || *end || errno || v == 0 || v > PAM_TS_TIMEOUT_MAX) {
				pam_syslog(pamh, LOG_ERR, "bad option %s (1..%d seconds); using %u", a, PAM_TS_TIMEOUT_MAX,
				           o->timeout);
				continue;
			}
			o->timeout = (unsigned)v;
		} else if (strcmp(a, "use_first_pass") == 0)
			o->use_first_pass = 1;
		else if (strcmp(a, "try_first_pass") == 0)
			o->try_first_pass = 1;
		else if (strcmp(a, "nullok_novault") == 0)
			o->nullok_novault = 1;
		else if (strcmp(a, "debug") == 0)
			o->debug = 1;
		else if (strcmp(a, "foreign=any") == 0)
			o->foreign_any = 1;
		else if (strcmp(a, "foreign=recovery") == 0)
			o->foreign_any = 0;
		else
			pam_syslog(pamh, LOG_ERR, "unknown option: %s", a);
	}
	return 0;
}

/*
 * The vault to use, as "UID:NAME": NAME is vault= or the user's name, UID the
 * uid of the account being authenticated (from the user database, never
 * from the vault), or of shared_owner= when the administrator named one.
 * Vault names are per owner, so no other user's vault can answer for this
 * account. *ret_owner is the only owner a vault may have to be used.
 */
static int get_vault(pam_handle_t *pamh, const pam_ts_opts *o, const char **ret_user, uint32_t *ret_owner,
                     char *ret_ref, size_t ref_size)
{
	const char *user = NULL, *owner_name;
	const struct passwd *pw;
	int pr;

	if ((pr = pam_get_user(pamh, &user, NULL)) != PAM_SUCCESS || !user || !*user)
		return pr == PAM_SUCCESS ? PAM_USER_UNKNOWN : pr;
	*ret_user = user;
	if (o->vault && strchr(o->vault, ':')) {
		pam_syslog(pamh, LOG_ERR, "vault=%s: a vault of another owner needs shared_owner=, not OWNER: in vault=; "
		           "refused", o->vault);
		return PAM_AUTH_ERR;
	}
	owner_name = o->shared_owner ? o->shared_owner : user;
	if ((pw = pam_modutil_getpwnam(pamh, owner_name)) == NULL) {
		if (o->shared_owner) {
			pam_syslog(pamh, LOG_ERR, "shared_owner=%s: no such user; refused", o->shared_owner);
			return PAM_AUTH_ERR;
		}
		return PAM_USER_UNKNOWN;
	}
	*ret_owner = (uint32_t)pw->pw_uid;
	if ((size_t)snprintf(ret_ref, ref_size, "%" PRIu32 ":%s", *ret_owner, o->vault ? o->vault : user) >= ref_size)
		return PAM_USER_UNKNOWN;
	return PAM_SUCCESS;
}

/*
 * May the person at this prompt be someone other than the one who holds the
 * account's tokens? A program another user ran (su, sudo -u, pkexec: the
 * process's real uid, or PAM_RUSER, is neither root nor the account's), or
 * a remote login (PAM_RHOST). Then a security key's touch would be anyone's
 * who is near the key, and every wrong PIN typed here would count against
 * the account's token (a TPM's dictionary-attack lockout holds every user's
 * TPM PIN; a security key's spent retries leave it to be reset). Only what
 * the application sets shows it: a root program that authenticates another
 * person without PAM_RUSER or PAM_RHOST looks like the account's own login.
 * by (for the back-off's source): "uid:N" (the requesting uid), "other"
 * (a requester the user database does not know) or "remote"; "" when it
 * is the account's own attempt (return 0).
 */
static int foreign_attempt(pam_handle_t *pamh, const char *user, char *by, size_t by_size)
{
	const void *rhost = NULL, *ruser = NULL;
	const struct passwd *pw;
	uid_t account, ruid = getuid();

	by[0] = '\0';
	if ((pw = pam_modutil_getpwnam(pamh, user)) == NULL) {
		snprintf(by, by_size, "other");
		return 1;
	}
	account = pw->pw_uid;
	if (ruid != 0 && ruid != account) {
		snprintf(by, by_size, "uid:%lu", (unsigned long)ruid);
		return 1;
	}
	if (pam_get_item(pamh, PAM_RUSER, &ruser) == PAM_SUCCESS && ruser && *(const char *)ruser) {
		if ((pw = pam_modutil_getpwnam(pamh, ruser)) == NULL) {
			snprintf(by, by_size, "other");
			return 1;
		}
		if (pw->pw_uid != 0 && pw->pw_uid != account) {
			snprintf(by, by_size, "uid:%lu", (unsigned long)pw->pw_uid);
			return 1;
		}
	}
	if (pam_get_item(pamh, PAM_RHOST, &rhost) == PAM_SUCCESS && rhost && *(const char *)rhost) {
		snprintf(by, by_size, "remote");
		return 1;
	}
	return 0;
}

static uint64_t timeout_usec(const pam_ts_opts *o)
{
	return (uint64_t)o->timeout * 1000000;
}

/*
 * Connecting (to the private socket, or to the bus, falling back in the time
 * left) and the first call share timeout=: a daemon or bus that does not
 * answer holds the login that long at most, whichever the transport.
 */
static int open_client(pam_handle_t *pamh, const pam_ts_opts *o, ts_client **ret)
{
	int r;

	if ((r = ts_client_open_timeout(ret, o->bus, timeout_usec(o))) < 0)
		pam_syslog(pamh, LOG_WARNING, "cannot reach tokensealed: %s", ts_strerror(r));
	return r;
}

/* Once the daemon has answered, every call without an explicit timeout gets all of timeout= again. */
static void full_timeout(ts_client *c, const pam_ts_opts *o)
{
	(void)sd_bus_set_method_call_timeout(c->bus, timeout_usec(o));
}

/* What the unlock loop needs from the login conversation. */
struct conv {
	pam_handle_t *pamh;
	const pam_ts_opts *o;
	int flags;
	int pam_rc;                    /* a failed conversation's own PAM code, or PAM_SUCCESS */
	int recovery_only;             /* another user at the prompt: what is not shaped like a recovery key is not sent */
};

/*
 * A secret through the conversation, without echo, as a copy in secure
 * memory. What the conversation returned is wiped and freed here on every
 * path, also when the conversation failed yet answered.
 */
static int conv_ask_secret(void *ud, const char *what, char **ret, size_t *ret_len)
{
	struct conv *cv = ud;
	_cleanup_answer_ char *typed = NULL;
	size_t len;
	int pr;

	*ret = NULL;
	*ret_len = 0;
	/* On failure pam_prompt still hands over an answer the conversation gave: typed owns it. */
	if ((pr = pam_prompt(cv->pamh, PAM_PROMPT_ECHO_OFF, &typed, "%s: ", what)) != PAM_SUCCESS || !typed) {
		cv->pam_rc = pr == PAM_SUCCESS ? PAM_CONV_ERR : pr == PAM_CONV_AGAIN ? PAM_INCOMPLETE : pr;
		return -TS_E_INVALID_ARGS;
	}
	/* Too long to be a secret: a wrong one (PAM_AUTH_ERR), not "this module cannot decide". */
	if ((len = strlen(typed)) > TS_CLIENT_SECRET_MAX) {
		if (!(cv->flags & PAM_SILENT))
			pam_error(cv->pamh, "Too long to be a PIN or a recovery key.");
		return -TS_E_INVALID_ARGS;
	}
	/* Not even shaped like one: no guess, so not sent to be counted as one (a password typed by habit). */
	if (cv->recovery_only && len && !ts_recovery_looks_like(typed, len)) {
		if (!(cv->flags & PAM_SILENT))
			pam_error(cv->pamh, "That is not a recovery key.");
		return -TS_E_BAD_RECOVERY_KEY;
	}
	if ((*ret = sodium_malloc(len + 1)) == NULL)
		return -TS_E_NOMEM;
	memcpy(*ret, typed, len + 1);
	*ret_len = len;
	return 0;
}

static int conv_choose(void *ud, const char *question, const ts_protector_info *const *p, size_t n)
{
	struct conv *cv = ud;
	char *answer = NULL, *end;
	unsigned long pick;
	int pr;

	/* use_first_pass never prompts, not even for which token the secret is for. */
	if ((cv->flags & PAM_SILENT) || cv->o->use_first_pass)
		return -1;
	pam_info(cv->pamh, "%s", question);
	for (size_t i = 0; i < n; i++)
		pam_info(cv->pamh, "%zu) %s", i + 1, p[i]->description);
	pr = pam_prompt(cv->pamh, PAM_PROMPT_ECHO_ON, &answer, "Token number: ");
	if (pr != PAM_SUCCESS || !answer) {
		free(answer);
		return -1;
	}
	pick = strtoul(answer, &end, 10);
	pick = answer[0] && !*end && pick >= 1 && pick <= n ? pick : 0;
	free(answer);
	return (int)pick - 1;
}

static void conv_info(void *ud, const char *msg)
{
	struct conv *cv = ud;

	if (!(cv->flags & PAM_SILENT))
		pam_info(cv->pamh, "%s", msg);
}

/* PAM's answer for a failed lookup or unlock. */
static int pam_code(int r)
{
	switch (-r) {
	case TS_E_AUTH_FAILED:
	case TS_E_PIN_INVALID:
	case TS_E_BAD_RECOVERY_KEY:
	case TS_E_PIN_REQUIRED:
	case TS_E_TOUCH_DENIED:
	case TS_E_AMBIGUOUS:
	case TS_E_LOCKED:
	case TS_E_INVALID_ARGS:
		return PAM_AUTH_ERR;
	case TS_E_PIN_BLOCKED:
	case TS_E_BUSY:
		return PAM_MAXTRIES;
	case TS_E_NOMEM:
		return PAM_BUF_ERR;
	default:
		/* No daemon, no token, a timeout: this module cannot decide, others may. */
		return PAM_AUTHINFO_UNAVAIL;
	}
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	_cleanup_client_ ts_client *c = NULL;
	_cleanup_info_ ts_vault_info *info = NULL;
	_cleanup_secret_ char *first = NULL;
	const char *user = NULL, *service = NULL;
	const void *item = NULL;
	char vault[32 + TS_VAULT_NAME_MAX], source[64], by[32];
	struct conv cv = { .pamh = pamh, .flags = flags, .pam_rc = PAM_SUCCESS };
	/* A login is a person: a TPM without PIN, which opens for anyone at the machine, never counts. */
	ts_unlock_ui ui = { .ud = &cv, .ask_secret = conv_ask_secret, .choose = conv_choose, .info = conv_info,
	                    .need_user = 1 };
	unsigned needed = 0;
	uint32_t owner = 0;
	pam_ts_opts o;
	const char *which;
	int r, pr, foreign;

	parse_opts(pamh, argc, argv, &o);
	which = o.protector;
	cv.o = &o;
	if ((pr = get_vault(pamh, &o, &user, &owner, vault, sizeof(vault))) != PAM_SUCCESS)
		return pr;
	if (sodium_init() < 0)
		return PAM_SYSTEM_ERR;
	if (open_client(pamh, &o, &c) < 0)
		return PAM_AUTHINFO_UNAVAIL;
	if ((r = ts_client_vault_info(c, vault, &info)) < 0) {
		if (r == -TS_E_NO_SUCH_VAULT) {
			if (o.debug)
				pam_syslog(pamh, LOG_DEBUG, "user %s has no vault '%s'", user, vault);
			return o.nullok_novault ? PAM_IGNORE : PAM_USER_UNKNOWN;
		}
		pam_syslog(pamh, LOG_WARNING, "vault '%s' of user %s: %s", vault, user, ts_client_last_error(c));
		return pam_code(r);
	}
	full_timeout(c, &o);
	/* Names are per owner, so this holds by construction; checked anyway, where it matters. */
	if (info->owner != owner) {
		pam_syslog(pamh, LOG_ERR, "vault '%s' belongs to uid %" PRIu32 ", not to %s (uid %" PRIu32 "); refused",
		           vault, info->owner, user, owner);
		return PAM_AUTH_ERR;
	}
	/*
	 * Wrong secrets at this service's prompt are counted apart from the
	 * user's own session (root only), and another user's apart from the rest.
	 */
	if (pam_get_item(pamh, PAM_SERVICE, (const void **)&service) != PAM_SUCCESS || !service)
		service = "?";
	foreign = foreign_attempt(pamh, user, by, sizeof(by));
	if (foreign && !o.foreign_any) {
		/* Another user, or a remote login: the recovery key only, which the daemon backs off. */
		which = "recovery";
		cv.recovery_only = 1;
		if (o.debug)
			pam_syslog(pamh, LOG_DEBUG, "user %s: asked by %s: recovery key only", user, by);
	}
	/*
	 * The requester first, so that a cut falls in the service's name: the
	 * daemon puts "uid:0:" before it and keeps 47 bytes (with a longer
	 * hint, none), so at most 41 here.
	 */
	if (foreign)
		snprintf(source, sizeof(source), "pam:%s:%.22s", by, service);
	else
		snprintf(source, sizeof(source), "pam:%.37s", service);
	ui.opts.source = source;
	if (o.use_first_pass || o.try_first_pass) {
		pr = pam_get_item(pamh, PAM_AUTHTOK, &item);
		/* Another user at the prompt: a first pass that is no recovery key is not sent (see recovery_only). */
		if (pr == PAM_SUCCESS && item && cv.recovery_only && !ts_recovery_looks_like(item, strlen(item)))
			item = NULL;
		if ((pr != PAM_SUCCESS || !item) && o.use_first_pass)
			return PAM_AUTH_ERR;
		if (item) {
			size_t len = strlen(item);
			if (len > TS_CLIENT_SECRET_MAX || (first = sodium_malloc(len + 1)) == NULL)
				return len > TS_CLIENT_SECRET_MAX ? PAM_AUTH_ERR : PAM_BUF_ERR;
			memcpy(first, item, len + 1);
			ui.secret = (const uint8_t *)first;
			ui.secret_len = len;
			/* use_first_pass never prompts: one protector, the one that secret is for. */
			ui.once = o.use_first_pass;
		}
	}
	/* The daemon may wait for a touch: a bounded while longer than any other call. */
	ui.opts.timeout_usec = ((uint64_t)o.timeout + PAM_TS_TOUCH_TIMEOUT) * 1000000;
	r = ts_client_unlock_interactive(c, vault, which, &ui, &needed);
	secret_freep(&first);   /* now, not at return: the daemon has it or never will */
	if (r < 0 && cv.pam_rc != PAM_SUCCESS)
		return cv.pam_rc;   /* the conversation failed: say so, as PAM's own code */
	if (r < 0) {
		pr = pam_code(r);
		/* The daemon's message names the token and the tries left, never the secret. */
		pam_syslog(pamh, LOG_NOTICE, "vault '%s' of user %s not unlocked: %s", vault, user,
		           ts_client_last_error(c));
		if (!(flags & PAM_SILENT) && pr != PAM_AUTHINFO_UNAVAIL && *ts_client_last_error(c))
			pam_error(pamh, "%s", ts_client_last_error(c));
		return pr;
	}
	/* A share of a k-of-n vault is not a login: only the whole vault is. */
	if (needed > 0) {
		pam_syslog(pamh, LOG_NOTICE, "vault '%s' of user %s: %u more share(s) needed; not authenticated", vault,
		           user, needed);
		return PAM_AUTH_ERR;
	}
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "vault '%s' of user %s unlocked", vault, user);
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return PAM_SUCCESS;
}

/*
 * Sessions of uid that are still alive, other than the one closing, per
 * logind. Returns the count, or a negative errno: -ENOENT when logind does
 * not know the user (no session left), -EHOSTDOWN when logind is absent.
 */
static int logind_other_sessions(sd_bus *bus, uid_t uid, const char *closing)
{
	_cleanup_msg_ sd_bus_message *reply = NULL, *sessions = NULL;
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	const char *user_path, *id, *spath;
	int r, n = 0;

	r = sd_bus_call_method(bus, LOGIND_NAME, LOGIND_PATH, LOGIND_NAME ".Manager", "GetUser", &error, &reply,
	                       "u", (uint32_t)uid);
	if (r < 0) {
		if (sd_bus_error_has_name(&error, "org.freedesktop.login1.NoSuchUser"))
			return -ENOENT;
		if (sd_bus_error_has_names(&error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
			return -EHOSTDOWN;
		return r;
	}
	if ((r = sd_bus_message_read(reply, "o", &user_path)) < 0)
		return r;
	if ((r = sd_bus_get_property(bus, LOGIND_NAME, user_path, LOGIND_NAME ".User", "Sessions", &error,
	                             &sessions, "a(so)")) < 0)
		return r;
	if ((r = sd_bus_message_enter_container(sessions, 'a', "(so)")) < 0)
		return r;
	while ((r = sd_bus_message_read(sessions, "(so)", &id, &spath)) > 0) {
		_cleanup_bus_error_ sd_bus_error e2 = SD_BUS_ERROR_NULL;
		char *state = NULL;

		if (closing && strcmp(id, closing) == 0)
			continue;
		/* A session whose processes are still going away is "closing": it does not keep the vault open. */
		if (sd_bus_get_property_string(bus, LOGIND_NAME, spath, LOGIND_NAME ".Session", "State", &e2,
		                               &state) >= 0) {
			int closing_state = strcmp(state, "closing") == 0;
			free(state);
			if (closing_state)
				continue;
		}
		n++;
	}
	return r < 0 ? r : n;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	_cleanup_client_ ts_client *c = NULL;
	const char *user = NULL, *closing;
	char vault[32 + TS_VAULT_NAME_MAX];
	struct passwd *pw;
	uint32_t owner;
	pam_ts_opts o;
	int r, pr;

	parse_opts(pamh, argc, argv, &o);
	if ((pr = get_vault(pamh, &o, &user, &owner, vault, sizeof(vault))) != PAM_SUCCESS)
		return pr;
	if (sodium_init() < 0)
		return PAM_SYSTEM_ERR;
	if (open_client(pamh, &o, &c) < 0)
		return PAM_IGNORE;
	if ((pw = pam_modutil_getpwnam(pamh, user)) != NULL) {
		_cleanup_client_ ts_client *system = NULL;
		sd_bus *logind = c->bus;

		/*
		 * On the private socket there is no logind behind the connection (only
		 * tokensealed): logind is asked on the system bus, reached and asked
		 * within the same timeout (a hung bus costs no more). Not reachable
		 * there: no session we can know of.
		 */
		if (sd_bus_is_bus_client(c->bus) <= 0)
			logind = ts_client_open_timeout(&system, "system", timeout_usec(&o)) >= 0 ? system->bus : NULL;
		/* pam_systemd puts the id of the session being closed into the PAM environment. */
		closing = pam_getenv(pamh, "XDG_SESSION_ID");
		r = logind ? logind_other_sessions(logind, pw->pw_uid, closing) : -EHOSTDOWN;
		if (r > 0) {
			if (o.debug)
				pam_syslog(pamh, LOG_DEBUG, "user %s has %d other session(s); vault '%s' stays open", user,
				           r, vault);
			return PAM_SUCCESS;
		}
		/* No logind (or it cannot tell): this was the last session we can know of. */
		if (r < 0 && r != -ENOENT && r != -EHOSTDOWN)
			pam_syslog(pamh, LOG_NOTICE, "cannot ask logind about user %s's sessions (%s); locking",
			           user, strerror(-r));
	}
	if ((r = ts_client_lock(c, vault)) < 0) {
		if (r == -TS_E_NO_SUCH_VAULT)
			return PAM_IGNORE;
		pam_syslog(pamh, LOG_WARNING, "cannot lock vault '%s' of user %s: %s", vault, user,
		           ts_client_last_error(c));
		return PAM_SESSION_ERR;
	}
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "vault '%s' of user %s locked: last session closed", vault, user);
	return PAM_SUCCESS;
}
