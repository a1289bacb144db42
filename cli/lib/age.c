/* age.c — libtokenseal's calls for age-plugin-tokenseal: a vault's age recipient, and the unwrap of a stanza. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client-internal.h"


/* Read an "ay" of exactly n bytes into out. */
static int read_exact(ts_client *c, sd_bus_message *reply, uint8_t *out, size_t n)
{
	const void *p;
	size_t len;

	if (sd_bus_message_read_array(reply, 'y', &p, &len) < 0 || len != n)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	memcpy(out, p, n);
	return 0;
}

int ts_client_age_recipient(ts_client *c, const char *vault, uint8_t ret_vault_id[16], uint32_t *ret_version,
                            uint8_t ret_public_key[32])
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if (!c || !ret_vault_id || !ret_version || !ret_public_key)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
	if ((r = ts_client_new_vault_call(c, vault, "AgeRecipient", &m)) < 0)
		return r;
	if ((r = sd_bus_call(c->bus, m, 0, &error, &reply)) < 0)
		return ts_client_error(c, r, &error);
	if ((r = read_exact(c, reply, ret_vault_id, 16)) < 0)
		return r;
	if (sd_bus_message_read(reply, "u", ret_version) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	if ((r = read_exact(c, reply, ret_public_key, 32)) < 0)
		return r;
	c->last_code = 0;
	return 0;
}

int ts_client_age_unwrap(ts_client *c, const char *vault, uint32_t version, const uint8_t share[32],
                         const uint8_t body[32], uint8_t file_key[16])
{
	_cleanup_msg_ sd_bus_message *m = NULL, *reply = NULL;
	_cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
	const void *p = NULL;
	size_t len = 0;
	int r;

	if (!c || !share || !body || !file_key)
		return ts_client_fail(c, -TS_E_INVALID_ARGS, "%s", ts_strerror(TS_E_INVALID_ARGS));
	if ((r = ts_client_new_vault_call(c, vault, "AgeUnwrap", &m)) < 0)
		return r;
	if ((r = sd_bus_message_append(m, "u", version)) < 0 || (r = sd_bus_message_append_array(m, 'y', share, 32)) < 0 ||
	    (r = sd_bus_message_append_array(m, 'y', body, 32)) < 0)
		return ts_client_error(c, r, NULL);
	if ((r = sd_bus_call(c->bus, m, 0, &error, &reply)) < 0)
		return ts_client_error(c, r, &error);
	/* The reply carries the file key: wiped in the body as soon as it is copied, and when freed. */
	(void)sd_bus_message_sensitive(reply);
	if (sd_bus_message_read_array(reply, 'y', &p, &len) < 0 || len != 16) {
		if (p && len)
			sodium_memzero((void *)(uintptr_t)p, len);
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from tokensealed");
	}
	memcpy(file_key, p, 16);
	sodium_memzero((void *)(uintptr_t)p, len);
	c->last_code = 0;
	return 0;
}
