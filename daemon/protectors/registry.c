/* registry.c — the table of protector backends, and helpers shared by them. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/context.h"
#include "protectors/protector.h"

static const ts_protector_ops *const none[] = { NULL };
static const ts_protector_ops *const *table = none;

void ts_protectors_use(const ts_protector_ops *const *backends)
{
	table = backends ? backends : none;
}

const ts_protector_ops *const *ts_protector_all(void)
{
	return table;
}

const ts_protector_ops *ts_protector_lookup(const char *type)
{
	const ts_protector_ops *const *p;

	if (!type)
		return NULL;
	for (p = ts_protector_all(); *p; p++)
		if (strcmp((*p)->type, type) == 0)
			return *p;
	return NULL;
}

void ts_protector_request_init(ts_protector_request *req, const ts_config *config, const char *vault_name,
                               const uint8_t *vault_id, char *err, size_t err_len)
{
	*req = (ts_protector_request){
		.config = config,
		.vault_name = vault_name,
		.vault_id = vault_id,
		.err = err,
		.err_len = err_len,
	};
	if (err && err_len)
		err[0] = '\0';
}

const char *ts_protector_option(const ts_protector_request *req, const char *key)
{
	return ts_kv_find(req->options, req->n_options, key);
}

size_t ts_protector_split_list(const char *s, char *buf, size_t buflen, char **out, size_t max)
{
	size_t n = 0;
	char *save = NULL, *w;

	if (!s || strlen(s) >= buflen)
		return 0;
	memcpy(buf, s, strlen(s) + 1);
	for (w = strtok_r(buf, " ,", &save); w; w = strtok_r(NULL, " ,", &save)) {
		if (n == max)
			return max + 1;
		out[n++] = w;
	}
	return n;
}

/*
 * What each type's enroll reads (the backends' ts_protector_option calls).
 * A pkcs11: URI may say module-name= or module-path=, but those only choose
 * among the modules already loaded (p11-kit's registered ones or
 * --pkcs11-module); public-key= is PEM text, not a file name.
 */
static const struct {
	const char *type;
	const char *options[4];
} known_options[] = {
	{ "recovery", { NULL } },
	{ "fido2", { "pin", "up", NULL } },
	{ "tpm2", { "pin", "pcrs", NULL } },
	{ "pkcs11", { "uri", "public-key", "oaep-hash", NULL } },
	{ "tang", { "url", "thp", "trust-first-use", NULL } },
};

/* Options that would let a caller point the root helper at a device, file or module: each names the daemon's own. */
static const struct {
	const char *key, *daemon_option;
} admin_options[] = {
	{ "device", "tokensealed --fido2-device" },
	{ "fido2-device", "tokensealed --fido2-device" },
	{ "tcti", "tokensealed --tpm2-tcti" },
	{ "tpm2-tcti", "tokensealed --tpm2-tcti" },
	{ "module", "tokensealed --pkcs11-module" },
	{ "pkcs11-module", "tokensealed --pkcs11-module" },
};

int ts_protector_check_options(const char *type, const ts_kv *options, size_t n_options, char *err, size_t err_len)
{
	size_t t, i, j, k;

	for (t = 0; t < sizeof(known_options) / sizeof(known_options[0]); t++)
		if (type && strcmp(known_options[t].type, type) == 0)
			break;
	for (i = 0; i < n_options; i++) {
		const char *key = options[i].key;
		int ok = strcmp(key, "replace") == 0;

		/*
		 * Each key once: the daemon's checks and a backend's ts_protector_option must
		 * read the same value (a second url= after an allowed one would reach the helper).
		 */
		for (j = 0; j < i; j++)
			if (strcmp(options[j].key, key) == 0) {
				snprintf(err, err_len, "option %.64s= given twice", key);
				return -TS_E_INVALID_ARGS;
			}

		for (k = 0; k < sizeof(admin_options) / sizeof(admin_options[0]); k++)
			if (strcmp(key, admin_options[k].key) == 0) {
				snprintf(err, err_len,
				         "option %s= is not accepted: which devices the token helper opens is set by the "
				         "administrator (%s), never by a caller%s", key, admin_options[k].daemon_option,
				         strcmp(admin_options[k].key, "device") == 0
				                 ? "; with several security keys plugged in, enrolling asks for a touch "
				                   "on the one to enroll"
				                 : "");
				return -TS_E_INVALID_ARGS;
			}
		if (t < sizeof(known_options) / sizeof(known_options[0]))
			for (j = 0; !ok && known_options[t].options[j]; j++)
				ok = strcmp(key, known_options[t].options[j]) == 0;
		if (!ok) {
			size_t len = 0;

			if (t == sizeof(known_options) / sizeof(known_options[0])) {
				snprintf(err, err_len, "unknown option '%.64s' for protector type '%.32s'", key, type ? type : "?");
				return -TS_E_INVALID_ARGS;
			}
			len = (size_t)snprintf(err, err_len, "unknown option '%.64s' for %s protectors (known:", key, type);
			for (j = 0; known_options[t].options[j] && len < err_len; j++)
				len += (size_t)snprintf(err + len, err_len - len, " %s,", known_options[t].options[j]);
			if (len < err_len)
				snprintf(err + len, err_len - len, " replace)");
			return -TS_E_INVALID_ARGS;
		}
	}
	return 0;
}

int ts_protector_fail(const ts_protector_request *req, int code, const char *fmt, ...)
{
	va_list ap;

	if (req->err && req->err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(req->err, req->err_len, fmt, ap);
		va_end(ap);
	}
	return code < 0 ? code : -TS_E_FAILED;
}
