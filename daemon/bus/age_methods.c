/* age_methods.c — AgeRecipient and AgeUnwrap: a vault's age keys, derived and used inside the daemon only. */
#include <string.h>

#include <sodium.h>

#include "core/age.h"
#include "core/keyring.h"

#include "bus/age_methods.h"
#include "bus/authorize.h"
#include "bus/daemon.h"
#include "bus/message.h"
#include "bus/state.h"

/*
 * The X25519 secret and the file key, in one secure scratch buffer allocated
 * once (as data_methods.c's plaintexts: a sodium_malloc per call costs as
 * much as the call), wiped before each handler returns.
 */
struct age_scratch {
	uint8_t sk[TS_AGE_KEY_BYTES];
	uint8_t file_key[TS_AGE_FILE_KEY_BYTES];
};

static struct age_scratch *scratch(void)
{
	static struct age_scratch *s;

	if (!s)
		s = ts_secure_alloc(sizeof(*s));
	return s;
}

/* The X25519 secret of version of e's vault into sk: -TS_E_KEY_RETIRED, -TS_E_BAD_BLOB (no such version). */
static int derive(ts_vault_entry *e, uint32_t version, uint8_t sk[TS_AGE_KEY_BYTES])
{
	const uint8_t *rk;
	int r;

	if (version < 1 || version > TS_AGE_VERSION_MAX)
		return -TS_E_BAD_BLOB;
	if ((r = ts_keyring_key(e->vault->keyring, version, &rk)) < 0)
		return r;
	return ts_age_derive_secret(rk, e->vault->id, version, sk);
}

int ts_age_method_recipient(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	struct age_scratch *s;
	uint8_t pk[TS_AGE_KEY_BYTES];
	uint32_t version;
	ts_caller caller;
	int r;

	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	if ((s = scratch()) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	version = ts_keyring_current(e->vault->keyring);
	if (version > TS_AGE_VERSION_MAX)
		return ts_bus_error(error, -TS_E_NOT_SUPPORTED, "root key versions above 65535 have no age recipient");
	r = derive(e, version, s->sk);
	if (r == 0)
		r = ts_age_public_key(s->sk, pk);
	sodium_memzero(s->sk, sizeof(s->sk));
	if (r < 0)
		return ts_bus_error(error, r, NULL);
	if ((r = sd_bus_message_new_method_return(m, &reply)) < 0 ||
	    (r = sd_bus_message_append_array(reply, 'y', e->vault->id, TS_VAULT_ID_BYTES)) < 0 ||
	    (r = sd_bus_message_append(reply, "u", version)) < 0 ||
	    (r = sd_bus_message_append_array(reply, 'y', pk, sizeof(pk))) < 0)
		return ts_bus_errno(error, r);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
}

int ts_age_method_unwrap(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	_ts_cleanup_reply_ sd_bus_message *reply = NULL;
	struct age_scratch *s;
	const void *share, *body;
	size_t share_len, body_len;
	uint32_t version;
	ts_age_stanza st;
	ts_caller caller;
	int r;

	if (sd_bus_message_read(m, "u", &version) < 0 || sd_bus_message_read_array(m, 'y', &share, &share_len) < 0 ||
	    sd_bus_message_read_array(m, 'y', &body, &body_len) < 0)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, NULL);
	/* Authorized first: a stranger gets UnknownObject whatever the arguments, as for no vault. */
	if ((r = ts_vault_authorize(m, e, &caller, error)) != 0)
		return r;
	if (share_len != TS_AGE_KEY_BYTES || body_len != TS_AGE_BODY_BYTES)
		return ts_bus_error(error, -TS_E_INVALID_ARGS, "share and body must be 32 bytes each");
	if ((s = scratch()) == NULL)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	/* The stanza as this vault would have written it: a tag of another vault fails the AEAD. */
	memcpy(st.vault_tag, e->vault->id, TS_AGE_VAULT_TAG_BYTES);
	st.key_version = version;
	memcpy(st.share, share, TS_AGE_KEY_BYTES);
	memcpy(st.body, body, TS_AGE_BODY_BYTES);
	if ((r = derive(e, version, s->sk)) == 0)
		r = ts_age_unwrap(s->sk, &st, s->file_key);
	sodium_memzero(s->sk, sizeof(s->sk));
	if (r < 0) {
		if (r == -TS_E_BAD_BLOB)
			return ts_bus_error(error, r, "the stanza does not open with this vault's age key "
			                              "(made for another vault or key version, or altered)");
		if (r == -TS_E_KEY_RETIRED)
			return ts_bus_error(error, r, "the stanza's root key version was retired: the file can no longer be opened");
		return ts_bus_error(error, r, NULL);
	}
	ts_daemon_touch(e);
	/* The file key is the one secret on the wire: sensitive, so sd-bus wipes the body when it frees it. */
	if ((r = sd_bus_message_new_method_return(m, &reply)) >= 0 && (r = sd_bus_message_sensitive(reply)) >= 0)
		r = sd_bus_message_append_array(reply, 'y', s->file_key, TS_AGE_FILE_KEY_BYTES);
	sodium_memzero(s->file_key, sizeof(s->file_key));
	if (r < 0)
		return ts_bus_errno(error, r);
	return ts_bus_errno(error, sd_bus_send(NULL, reply, NULL));
}
