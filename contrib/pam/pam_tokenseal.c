/* pam_tokenseal.c — PAM module: unlock the user's tokenseal vault at login, lock it when the last session ends. */
#define _GNU_SOURCE 1
#include <errno.h>
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

#define PAM_TS_DEFAULT_TIMEOUT 10      /* seconds, each daemon call */
#define PAM_TS_TOUCH_TIMEOUT 30        /* seconds more for an unlock that waits for a touch */
#define PAM_TS_TIMEOUT_MAX 600

#define LOGIND_NAME "org.freedesktop.login1"
#define LOGIND_PATH "/org/freedesktop/login1"

typedef struct pam_ts_opts {
	const char *vault;             /* NULL: the user's name */
	const char *bus;               /* NULL: $TOKENSEAL_BUS or the system bus */
	const char *protector;         /* NULL: choose from the vault's protectors */
	unsigned timeout;              /* seconds */
	int use_first_pass, try_first_pass, nullok_novault, debug;
} pam_ts_opts;

static void client_freep(ts_client **c) { ts_client_free(*c); }
static void info_freep(ts_vault_info **v) { ts_vault_info_free(*v); }
static void msg_unrefp(sd_bus_message **m) { sd_bus_message_unref(*m); }
static void bus_error_freep(sd_bus_error *e) { sd_bus_error_free(e); }
static void closep(int *fd) { if (*fd >= 0) close(*fd); }
/* The module's copy of a secret (sodium_malloc); sodium_free wipes it. */
static void secret_freep(char **s) { if (*s) sodium_free(*s); *s = NULL; }
/* A conversation answer (malloc()ed by the application): wiped, then freed. */
static void answer_freep(char **s) { if (*s) { sodium_memzero(*s, strlen(*s)); free(*s); } *s = NULL; }
#define _cleanup_client_ __attribute__((cleanup(client_freep)))
#define _cleanup_secret_ __attribute__((cleanup(secret_freep)))
#define _cleanup_answer_ __attribute__((cleanup(answer_freep)))
#define _cleanup_info_ __attribute__((cleanup(info_freep)))
#define _cleanup_msg_ __attribute__((cleanup(msg_unrefp)))
#define _cleanup_bus_error_ __attribute__((cleanup(bus_error_freep)))
#define _cleanup_close_ __attribute__((cleanup(closep)))

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
		else
			pam_syslog(pamh, LOG_ERR, "unknown option: %s", a);
	}
	return 0;
}

/* The vault name: vault= or the user's name. NULL (and PAM_USER_UNKNOWN-ish) if none. */
static int get_vault(pam_handle_t *pamh, const pam_ts_opts *o, const char **ret_user, const char **ret_vault)
{
	const char *user = NULL;
	int pr;

	if ((pr = pam_get_user(pamh, &user, NULL)) != PAM_SUCCESS || !user || !*user)
		return pr == PAM_SUCCESS ? PAM_USER_UNKNOWN : pr;
	*ret_user = user;
	*ret_vault = o->vault ? o->vault : user;
	return PAM_SUCCESS;
}

static int open_client(pam_handle_t *pamh, const pam_ts_opts *o, ts_client **ret)
{
	int r;

	if ((r = ts_client_open(ret, o->bus)) < 0) {
		pam_syslog(pamh, LOG_WARNING, "cannot reach the bus: %s", ts_strerror(r));
		return r;
	}
	/* Every call below without an explicit timeout gets this one: the login never waits longer. */
	if ((r = sd_bus_set_method_call_timeout((*ret)->bus, (uint64_t)o->timeout * 1000000)) < 0) {
		ts_client_free(*ret);
		*ret = NULL;
		return -TS_E_FAILED;
	}
	return 0;
}

/* The protector to unlock with, in the order a person at a login prompt would want them. */
static const ts_protector_info *choose_protector(const ts_vault_info *v, const char *want)
{
	static const char *const order[] = { "fido2", "pkcs11", "tpm2", "recovery" };

	for (size_t i = 0; want && i < v->n_protectors; i++)
		if (strcmp(v->protectors[i].id, want) == 0 || strcmp(v->protectors[i].type, want) == 0)
			return &v->protectors[i];
	if (want)
		return NULL;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (size_t i = 0; i < v->n_protectors; i++)
			if (strcmp(v->protectors[i].type, order[k]) == 0)
				return &v->protectors[i];
	return v->n_protectors ? &v->protectors[0] : NULL;
}

static int fact_is(const ts_protector_info *p, const char *key, const char *value)
{
	const char *v = ts_protector_info_fact(p, key);
	return v && strcmp(v, value) == 0;
}

/* The prompt for p, or NULL when p needs no secret (a FIDO2 key without PIN, a TPM without PIN). */
static const char *prompt_for(const ts_protector_info *p)
{
	if (strcmp(p->type, "recovery") == 0)
		return "Recovery key: ";
	if (strcmp(p->type, "fido2") == 0)
		return fact_is(p, "pin", "no") ? NULL : "Security key PIN: ";
	if (strcmp(p->type, "tpm2") == 0)
		return fact_is(p, "pin", "yes") ? "TPM PIN: " : NULL;
	return "Token PIN: ";
}

/*
 * The secret as a copy in secure memory (NULL, 0 for none). What the
 * conversation returned is wiped and freed here on every path, also when the
 * conversation failed yet answered; PAM_AUTHTOK belongs to PAM.
 */
static int get_secret(pam_handle_t *pamh, const pam_ts_opts *o, const char *prompt, char **ret, size_t *ret_len)
{
	_cleanup_answer_ char *typed = NULL;
	const void *item = NULL;
	const char *s;
	size_t len;
	int pr;

	*ret = NULL;
	*ret_len = 0;
	if (o->use_first_pass || o->try_first_pass) {
		pr = pam_get_item(pamh, PAM_AUTHTOK, &item);
		if ((pr != PAM_SUCCESS || !item) && o->use_first_pass)
			return PAM_AUTH_ERR;
	}
	if (item)
		s = item;
	else {
		/* On failure pam_prompt still hands over an answer the conversation gave: typed owns it. */
		if ((pr = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &typed, "%s", prompt)) != PAM_SUCCESS)
			return pr == PAM_CONV_AGAIN ? PAM_INCOMPLETE : pr;
		if (!typed)
			return PAM_CONV_ERR;
		s = typed;
	}
	len = strlen(s);
	if (len > TS_CLIENT_SECRET_MAX)
		return PAM_AUTH_ERR;
	if ((*ret = sodium_malloc(len + 1)) == NULL)
		return PAM_BUF_ERR;
	memcpy(*ret, s, len + 1);
	*ret_len = len;
	return PAM_SUCCESS;
}

/*
 * Unlock through the client library's pipe helper, but with our own timeout:
 * the library's unlock waits up to two minutes for a person, a login must not.
 */
static int unlock(ts_client *c, const char *vault, const char *protector, const char *secret, size_t len,
                  uint64_t usec)
{
	_cleanup_msg_ sd_bus_message *m = NULL;
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	_cleanup_close_ int fd = -1;
	char *path = NULL;
	int r;

	if ((r = ts_client_vault_path(c, vault, &path)) < 0)
		return r;
	r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, path, TS_VAULT_IFACE, "Unlock");
	free(path);
	if (r < 0)
		return ts_client_error(c, r, NULL);
	if ((fd = ts_client_secret_pipe(c, (const uint8_t *)secret, secret ? len : 0)) < 0)
		return fd;
	if ((r = sd_bus_message_append(m, "sh", protector, fd)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = sd_bus_call(c->bus, m, usec, &error, NULL)) < 0)
		return ts_client_error(c, r, &error);
	return 0;
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
	const ts_protector_info *p;
	const char *user = NULL, *vault = NULL, *prompt;
	_cleanup_secret_ char *secret = NULL;
	size_t secret_len = 0;
	uint64_t usec;
	pam_ts_opts o;
	int r, pr;

	parse_opts(pamh, argc, argv, &o);
	if ((pr = get_vault(pamh, &o, &user, &vault)) != PAM_SUCCESS)
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
	if ((p = choose_protector(info, o.protector)) == NULL) {
		pam_syslog(pamh, LOG_ERR, "vault '%s' has no protector '%s'", vault, o.protector ? o.protector : "");
		return PAM_AUTHINFO_UNAVAIL;
	}
	if ((prompt = prompt_for(p)) != NULL && (pr = get_secret(pamh, &o, prompt, &secret, &secret_len)) != PAM_SUCCESS)
		return pr;
	usec = (uint64_t)o.timeout * 1000000;
	if (strcmp(p->type, "fido2") == 0 && !fact_is(p, "touch", "no")) {
		/* The daemon waits for the touch; so do we, a bounded while longer. */
		usec += (uint64_t)PAM_TS_TOUCH_TIMEOUT * 1000000;
		if (!(flags & PAM_SILENT))
			pam_info(pamh, "Touch your security key");
	}
	r = unlock(c, vault, p->id, secret, secret_len, usec);
	secret_freep(&secret);   /* now, not at return: the daemon has it or never will */
	if (r < 0) {
		pr = pam_code(r);
		/* The daemon's message names the token and the tries left, never the secret. */
		pam_syslog(pamh, LOG_NOTICE, "vault '%s' of user %s not unlocked (protector %s): %s", vault, user, p->id,
		           ts_client_last_error(c));
		if (!(flags & PAM_SILENT) && pr != PAM_AUTHINFO_UNAVAIL)
			pam_error(pamh, "%s", ts_client_last_error(c));
		return pr;
	}
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "vault '%s' of user %s unlocked with %s", vault, user, p->id);
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
	const char *user = NULL, *vault = NULL, *closing;
	struct passwd *pw;
	pam_ts_opts o;
	int r, pr;

	parse_opts(pamh, argc, argv, &o);
	if ((pr = get_vault(pamh, &o, &user, &vault)) != PAM_SUCCESS)
		return pr;
	if (sodium_init() < 0)
		return PAM_SYSTEM_ERR;
	if (open_client(pamh, &o, &c) < 0)
		return PAM_IGNORE;
	if ((pw = pam_modutil_getpwnam(pamh, user)) != NULL) {
		/* pam_systemd puts the id of the session being closed into the PAM environment. */
		closing = pam_getenv(pamh, "XDG_SESSION_ID");
		r = logind_other_sessions(c->bus, pw->pw_uid, closing);
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
