/* recovery.c — the "recovery" protector: a printed random key, hashed with BLAKE2b into the KEK (Argon2id in old records). */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/recovery.h"
#include "core/vault.h"
#include "protectors/protector.h"

static int recovery_enroll(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc,
                           char *secret_out, size_t secret_out_cap, size_t *secret_out_len)
{
	_ts_cleanup_secure_ uint8_t *key = NULL;
	_ts_cleanup_secure_ char *text = NULL;
	ts_recovery_params p;
	size_t orig_len, n;
	int r;

	*secret_out_len = 0;
	/* The key is shown once; a caller with nowhere to put it must not get a protector. */
	if (!secret_out || secret_out_cap < TS_RECOVERY_TEXT_BYTES)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "no room for the recovery key");
	if ((key = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL ||
	    (text = ts_secure_alloc(TS_RECOVERY_TEXT_BYTES)) == NULL)
		return ts_protector_fail(req, -TS_E_NOMEM, "out of secure memory");
	if ((r = ts_recovery_generate(key, text)) < 0)
		return ts_protector_fail(req, r, "cannot generate a recovery key");
	/* Fresh salt per protector, and the vault id in the hash: two protectors never share a KEK. */
	ts_recovery_params_default(&p);
	if ((r = ts_recovery_derive_kek(key, &p, req->vault_id, kek)) < 0)
		return ts_protector_fail(req, r, "cannot derive the recovery key's KEK");
	orig_len = ret_params->len;
	if ((r = ts_recovery_params_encode(&p, ret_params)) < 0) {
		ret_params->len = orig_len;
		sodium_memzero(kek, TS_KEY_BYTES);
		return ts_protector_fail(req, r, "cannot encode the recovery parameters");
	}
	n = strnlen(text, TS_RECOVERY_TEXT_BYTES);
	memcpy(secret_out, text, n);
	if (n < secret_out_cap)
		secret_out[n] = '\0';
	*secret_out_len = n;
	/* The description never holds any part of the key, not even a prefix. */
	snprintf(ret_desc, TS_PROTECTOR_DESC_MAX, "Recovery key");
	return 0;
}

static int recovery_unlock(ts_protector_request *req, const uint8_t *params, size_t params_len, uint8_t *kek)
{
	_ts_cleanup_secure_ uint8_t *key = NULL;
	ts_recovery_params p;
	int r;

	if (!req->pin || req->pin_len == 0)
		return ts_protector_fail(req, -TS_E_PIN_REQUIRED, "the recovery key is needed to unlock");
	if ((r = ts_recovery_params_decode(params, params_len, &p)) < 0)
		return ts_protector_fail(req, -TS_E_CORRUPT, "recovery protector parameters are corrupt");
	if ((key = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL)
		return ts_protector_fail(req, -TS_E_NOMEM, "out of secure memory");
	if ((r = ts_recovery_parse((const char *)req->pin, req->pin_len, key)) < 0)
		return ts_protector_fail(req, r, "recovery key mistyped (checksum does not match)");
	if ((r = ts_recovery_derive_kek(key, &p, req->vault_id, kek)) < 0)
		return ts_protector_fail(req, r, "cannot derive the recovery key's KEK");
	return 0;
}

static int recovery_describe(const uint8_t *params, size_t params_len,
                             int (*add)(void *ud, const char *key, const char *value), void *ud)
{
	ts_recovery_params p;
	char buf[32];
	int r;

	if ((r = ts_recovery_params_decode(params, params_len, &p)) < 0)
		return r;
	if (p.kdf == TS_RECOVERY_KDF_BLAKE2B)
		return add(ud, "kdf", "blake2b");
	if ((r = add(ud, "kdf", "argon2id")) < 0)
		return r;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)p.opslimit);
	if ((r = add(ud, "opslimit", buf)) < 0)
		return r;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)p.memlimit);
	return add(ud, "memlimit", buf);
}

static int recovery_needs_secret(const uint8_t *params, size_t params_len)
{
	return 1;
}

const ts_protector_ops ts_protector_recovery = {
	.type = "recovery",
	.enroll = recovery_enroll,
	.unlock = recovery_unlock,
	.describe = recovery_describe,
	.needs_secret = recovery_needs_secret,
};
