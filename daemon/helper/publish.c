/* publish.c — the helper's TS_WIRE_OP_LDAP: a vault's escrow record written to, or removed from, a directory. */
#include <stdio.h>
#include <string.h>

#include "helper/publish.h"
#include "protectors/ldap_record.h"

/* The value of option key, or NULL (each at most once: a second one is an error). */
static int option(const ts_wire_request *q, const char *key, const char **ret)
{
	*ret = NULL;
	for (size_t i = 0; i < q->n_options; i++)
		if (strcmp(q->options[i].key, key) == 0) {
			if (*ret)
				return -1;
			*ret = q->options[i].value;
		}
	return 0;
}

int ts_helper_ldap(const ts_wire_request *q, int32_t *value, char *err, size_t errlen)
{
	static const char *const known[] = { "action", "uri", "base", "machine", "bind-dn", "ca-file", "cert-file",
	                                     "key-file" };
	const char *action, *machine;
	ts_ldap_conf c = { .password = q->pin, .password_len = q->pin_len };
	ts_ldap_put_info info;
	char id[2 * TS_VAULT_ID_BYTES + 1];
	LDAP *ld = NULL;
	int r;

	for (size_t i = 0; i < q->n_options; i++) {
		size_t k = 0;

		while (k < sizeof(known) / sizeof(known[0]) && strcmp(q->options[i].key, known[k]) != 0)
			k++;
		if (k == sizeof(known) / sizeof(known[0])) {
			snprintf(err, errlen, "unknown directory option '%s'", q->options[i].key);
			return -TS_E_INVALID_ARGS;
		}
	}
	if (strcmp(q->type, "ldap") != 0 || option(q, "action", &action) < 0 || option(q, "uri", &c.uri) < 0 ||
	    option(q, "base", &c.base) < 0 || option(q, "machine", &machine) < 0 ||
	    option(q, "bind-dn", &c.bind_dn) < 0 || option(q, "ca-file", &c.ca_file) < 0 ||
	    option(q, "cert-file", &c.cert_file) < 0 || option(q, "key-file", &c.key_file) < 0 || !action || !machine ||
	    (strcmp(action, "put") != 0 && strcmp(action, "remove") != 0) || (!c.bind_dn && q->pin)) {
		snprintf(err, errlen, "a malformed directory request");
		return -TS_E_INVALID_ARGS;
	}
	if (!c.bind_dn)
		c.password = NULL;
	if ((r = ts_ldap_open(&c, &ld, err, errlen)) < 0)
		return r;
	if (strcmp(action, "put") == 0) {
		r = ts_ldap_put(ld, c.base, machine, q->params, q->params_len, 0, &info, err, errlen);
	} else if (q->params_len != sizeof(id) - 1) {
		snprintf(err, errlen, "a malformed vault id");
		r = -TS_E_INVALID_ARGS;
	} else {
		memcpy(id, q->params, sizeof(id) - 1);
		id[sizeof(id) - 1] = '\0';
		r = ts_ldap_remove(ld, c.base, machine, id, err, errlen);
	}
	ts_ldap_close(ld);
	if (r < 0)
		return r;
	*value = r;
	return 0;
}
