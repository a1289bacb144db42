/* registry.c — the table of protector backends, and helpers shared by them. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protectors/protector.h"

/*
 * Backends are referenced weakly so that a test program can link only the
 * backend it exercises; the daemon links them all.
 */
extern const ts_protector_ops ts_protector_recovery __attribute__((weak));
extern const ts_protector_ops ts_protector_fido2 __attribute__((weak));
extern const ts_protector_ops ts_protector_tpm2 __attribute__((weak));
extern const ts_protector_ops ts_protector_pkcs11 __attribute__((weak));

const ts_protector_ops *const *ts_protector_all(void) {
	static const ts_protector_ops *all[5];
	size_t n = 0;

	if (all[0])
		return all;
	if (&ts_protector_recovery)
		all[n++] = &ts_protector_recovery;
	if (&ts_protector_fido2)
		all[n++] = &ts_protector_fido2;
	if (&ts_protector_tpm2)
		all[n++] = &ts_protector_tpm2;
	if (&ts_protector_pkcs11)
		all[n++] = &ts_protector_pkcs11;
	all[n] = NULL;
	return all;
}

const ts_protector_ops *ts_protector_lookup(const char *type) {
	const ts_protector_ops *const *p;

	if (!type)
		return NULL;
	for (p = ts_protector_all(); *p; p++)
		if (strcmp((*p)->type, type) == 0)
			return *p;
	return NULL;
}

const char *ts_protector_option(const ts_protector_request *req, const char *key) {
	for (size_t i = 0; i < req->n_options; i++)
		if (strcmp(req->options[i].key, key) == 0)
			return req->options[i].value;
	return NULL;
}

int ts_protector_fail(const ts_protector_request *req, int code, const char *fmt, ...) {
	va_list ap;

	if (req->err && req->err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(req->err, req->err_len, fmt, ap);
		va_end(ap);
	}
	return code > 0 ? -code : code;
}
