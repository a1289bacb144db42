/* pin.c — PIN/UV auth protocols 1 and 2, authenticatorClientPIN, and the pinUvAuthToken (CTAP 2.1 §6.5). */
#include <string.h>

#include "softfido.h"

enum {
	SUB_GET_PIN_RETRIES = 0x01,
	SUB_GET_KEY_AGREEMENT = 0x02,
	SUB_SET_PIN = 0x03,
	SUB_CHANGE_PIN = 0x04,
	SUB_GET_PIN_TOKEN = 0x05,
	SUB_GET_TOKEN_WITH_PERMISSIONS = 0x09,
};

/* Request parameters of authenticatorClientPIN. */
enum {
	ARG_PROTOCOL = 0x01,
	ARG_SUBCOMMAND = 0x02,
	ARG_KEY_AGREEMENT = 0x03,
	ARG_PIN_UV_AUTH_PARAM = 0x04,
	ARG_NEW_PIN_ENC = 0x05,
	ARG_PIN_HASH_ENC = 0x06,
	ARG_PERMISSIONS = 0x09,
	ARG_RP_ID = 0x0A,
};

#define PIN_PADDED_LEN 64
#define PIN_MIN_CODE_POINTS 4

int sf_pin_proto_ok(uint64_t proto) {
	return (proto == 1 && sf.proto_v1) || (proto == 2 && sf.proto_v2);
}

/* ---- the two protocols (§6.5.6, §6.5.7) ---------------------------------- */

int sf_pin_decapsulate(int proto, const cbor_item_t *cose, sf_shared *ss) {
	uint8_t x[32], y[32], z[32];
	int r;

	if ((r = sf_cbor_cose_p256(cose, x, y)) != CTAP2_OK)
		return r;
	if (!sf.key_agreement || sf_p256_ecdh(sf.key_agreement, x, y, z) < 0)
		return CTAP1_ERR_INVALID_PARAMETER;
	ss->proto = proto;
	r = CTAP2_OK;
	if (proto == 1) {
		sf_sha256(ss->key, z, sizeof(z));
	} else if (sf_hkdf_sha256(ss->key, z, sizeof(z), "CTAP2 HMAC key") < 0 ||
	           sf_hkdf_sha256(ss->key + 32, z, sizeof(z), "CTAP2 AES key") < 0) {
		r = CTAP1_ERR_OTHER;
	}
	sf_wipe(z, sizeof(z));
	return r;
}

int sf_pin_decrypt(const sf_shared *ss, const uint8_t *in, size_t n, uint8_t *out, size_t *ret_n) {
	static const uint8_t zero_iv[16];

	if (ss->proto == 1) {
		if (n == 0 || n % 16)
			return -1;
		*ret_n = n;
		return sf_aes256_cbc(0, ss->key, zero_iv, in, n, out);
	}
	if (n < 32 || n % 16) /* IV plus at least one block */
		return -1;
	*ret_n = n - 16;
	return sf_aes256_cbc(0, ss->key + 32, in, in + 16, n - 16, out);
}

int sf_pin_encrypt(const sf_shared *ss, const uint8_t *in, size_t n, uint8_t *out, size_t *ret_n) {
	static const uint8_t zero_iv[16];

	if (ss->proto == 1) {
		*ret_n = n;
		return sf_aes256_cbc(1, ss->key, zero_iv, in, n, out);
	}
	if (sf_random(out, 16) < 0)
		return -1;
	*ret_n = n + 16;
	return sf_aes256_cbc(1, ss->key + 32, out, in, n, out + 16);
}

/* authenticate(key, msg) compared with sig: v1 keeps the first 16 bytes of the HMAC. */
static int verify_mac(int proto, const uint8_t *key, size_t key_len, const uint8_t *msg, size_t n,
                      const uint8_t *sig, size_t sig_len) {
	uint8_t mac[32];
	int ok;

	if (sig_len != (proto == 1 ? 16u : 32u))
		return 0;
	if (sf_hmac_sha256(mac, key, key_len, msg, n) < 0)
		return 0;
	ok = sf_ct_equal(mac, sig, sig_len);
	sf_wipe(mac, sizeof(mac));
	return ok;
}

int sf_pin_verify_shared(const sf_shared *ss, const uint8_t *msg, size_t n, const uint8_t *sig, size_t sig_len) {
	return verify_mac(ss->proto, ss->key, 32, msg, n, sig, sig_len);
}

int sf_pin_verify_token(int proto, const uint8_t *msg, size_t n, const uint8_t *sig, size_t sig_len) {
	if (!sf.token.in_use)
		return 0;
	return verify_mac(proto, sf.token.key, sizeof(sf.token.key), msg, n, sig, sig_len);
}

/* ---- token and key agreement key ---------------------------------------- */

void sf_pin_reset_token(void) {
	sf_wipe(&sf.token, sizeof(sf.token));
	if (sf_random(sf.token.key, sizeof(sf.token.key)) < 0)
		sf_log("RAND_bytes failed");
}

void sf_pin_regenerate(void) {
	EVP_PKEY_free(sf.key_agreement);
	if (!(sf.key_agreement = sf_p256_generate()))
		sf_log("P-256 key generation failed");
}

/* ---- PIN checks ---------------------------------------------------------- */

/*
 * The common part of changePIN and the getPinToken variants (§6.5.5.5-7):
 * the retries counter goes down before the comparison, so pulling the plug
 * mid-check cannot save a guess; a mismatch also renews the ECDH key so the
 * platform has to start over.
 */
static int check_pin_hash(const sf_shared *ss, const uint8_t *enc, size_t enc_len) {
	uint8_t hash[32];
	size_t n = 0;
	int r;

	if (sf.st.pin_retries == 0)
		return CTAP2_ERR_PIN_BLOCKED;
	if (enc_len != (ss->proto == 1 ? 16u : 32u))
		return CTAP1_ERR_INVALID_PARAMETER;
	sf.st.pin_retries--;
	if ((r = sf_persist()) != CTAP2_OK)
		return r;
	if (sf_pin_decrypt(ss, enc, enc_len, hash, &n) < 0 || n != 16) {
		r = CTAP2_ERR_PIN_AUTH_INVALID;
		goto out;
	}
	if (!sf_ct_equal(hash, sf.st.pin_hash, 16)) {
		sf_pin_regenerate();
		sf.pin_failures++;
		if (sf.st.pin_retries == 0)
			r = CTAP2_ERR_PIN_BLOCKED;
		else if (sf.pin_failures >= SF_PIN_AUTH_FAILURES_MAX)
			r = CTAP2_ERR_PIN_AUTH_BLOCKED;
		else
			r = CTAP2_ERR_PIN_INVALID;
		goto out;
	}
	sf.st.pin_retries = SF_PIN_RETRIES_MAX;
	sf.pin_failures = 0;
	r = sf_persist();
out:
	sf_wipe(hash, sizeof(hash));
	return r;
}

/* Decrypts newPinEnc, checks the policy, stores LEFT(SHA-256(PIN), 16). */
static int store_new_pin(const sf_shared *ss, const uint8_t *enc, size_t enc_len) {
	uint8_t padded[PIN_PADDED_LEN + 16], hash[32];
	size_t n = 0, len, cps = 0, i;
	int r = CTAP2_OK;

	if (enc_len != (ss->proto == 1 ? 64u : 80u))
		return CTAP1_ERR_INVALID_PARAMETER;
	if (sf_pin_decrypt(ss, enc, enc_len, padded, &n) < 0 || n != PIN_PADDED_LEN) {
		r = CTAP2_ERR_PIN_AUTH_INVALID;
		goto out;
	}
	/* The PIN ends at the first zero byte; 64 non-zero bytes means > 63. */
	for (len = 0; len < PIN_PADDED_LEN && padded[len]; len++)
		;
	for (i = 0; i < len; i++)
		if ((padded[i] & 0xc0) != 0x80) /* count UTF-8 code points, not bytes */
			cps++;
	if (len == PIN_PADDED_LEN || cps < PIN_MIN_CODE_POINTS) {
		r = CTAP2_ERR_PIN_POLICY_VIOLATION;
		goto out;
	}
	sf_sha256(hash, padded, len);
	memcpy(sf.st.pin_hash, hash, 16);
	sf.st.pin_set = 1;
	sf.st.pin_retries = SF_PIN_RETRIES_MAX;
	sf.pin_failures = 0;
	r = sf_persist();
out:
	sf_wipe(padded, sizeof(padded));
	sf_wipe(hash, sizeof(hash));
	return r;
}

/* ---- subcommands ---------------------------------------------------------- */

static int get_pin_retries(sf_out *o) {
	sf_cw_map(o, 2);
	sf_cw_uint(o, 0x03);
	sf_cw_uint(o, sf.st.pin_retries);
	sf_cw_uint(o, 0x04); /* powerCycleState */
	sf_cw_bool(o, sf.pin_failures >= SF_PIN_AUTH_FAILURES_MAX);
	return CTAP2_OK;
}

static int get_key_agreement(sf_out *o) {
	uint8_t x[32], y[32];

	if (!sf.key_agreement || sf_p256_public(sf.key_agreement, x, y) < 0)
		return CTAP1_ERR_OTHER;
	sf_cw_map(o, 1);
	sf_cw_uint(o, 0x01);
	sf_cw_cose_p256(o, -25, x, y); /* "ECDH-ES + HKDF-256", as the spec asks */
	return CTAP2_OK;
}

static int set_pin(cbor_item_t **args, sf_shared *ss) {
	const uint8_t *param, *enc;
	size_t param_len, enc_len;
	int r;

	if (!args[ARG_KEY_AGREEMENT] || !args[ARG_PIN_UV_AUTH_PARAM] || !args[ARG_NEW_PIN_ENC])
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_bytes(args[ARG_PIN_UV_AUTH_PARAM], &param, &param_len)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(args[ARG_NEW_PIN_ENC], &enc, &enc_len)) != CTAP2_OK)
		return r;
	if (sf.st.pin_set)
		return CTAP2_ERR_NOT_ALLOWED;
	if ((r = sf_pin_decapsulate(ss->proto, args[ARG_KEY_AGREEMENT], ss)) != CTAP2_OK)
		return r;
	if (!sf_pin_verify_shared(ss, enc, enc_len, param, param_len))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	return store_new_pin(ss, enc, enc_len);
}

static int change_pin(cbor_item_t **args, sf_shared *ss) {
	const uint8_t *param, *enc, *hash_enc;
	size_t param_len, enc_len, hash_enc_len;
	uint8_t msg[80 + 32];
	int r;

	if (!args[ARG_KEY_AGREEMENT] || !args[ARG_PIN_UV_AUTH_PARAM] || !args[ARG_NEW_PIN_ENC] ||
	    !args[ARG_PIN_HASH_ENC])
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_bytes(args[ARG_PIN_UV_AUTH_PARAM], &param, &param_len)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(args[ARG_NEW_PIN_ENC], &enc, &enc_len)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(args[ARG_PIN_HASH_ENC], &hash_enc, &hash_enc_len)) != CTAP2_OK)
		return r;
	if (!sf.st.pin_set)
		return CTAP2_ERR_PIN_NOT_SET;
	if (sf.st.pin_retries == 0)
		return CTAP2_ERR_PIN_BLOCKED;
	if (sf.pin_failures >= SF_PIN_AUTH_FAILURES_MAX)
		return CTAP2_ERR_PIN_AUTH_BLOCKED;
	if (enc_len > 80 || hash_enc_len > 32)
		return CTAP1_ERR_INVALID_PARAMETER;
	if ((r = sf_pin_decapsulate(ss->proto, args[ARG_KEY_AGREEMENT], ss)) != CTAP2_OK)
		return r;
	memcpy(msg, enc, enc_len);
	memcpy(msg + enc_len, hash_enc, hash_enc_len);
	if (!sf_pin_verify_shared(ss, msg, enc_len + hash_enc_len, param, param_len))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if ((r = check_pin_hash(ss, hash_enc, hash_enc_len)) != CTAP2_OK)
		return r;
	if ((r = store_new_pin(ss, enc, enc_len)) != CTAP2_OK)
		return r;
	sf_pin_reset_token(); /* tokens issued under the old PIN end here */
	return CTAP2_OK;
}

static int get_token(cbor_item_t **args, int sub, sf_shared *ss, sf_out *o) {
	const uint8_t *hash_enc;
	const char *rp = NULL;
	size_t hash_enc_len, rp_len = 0, n = 0;
	uint64_t perms = SF_PERM_MC | SF_PERM_GA;
	uint8_t enc[48];
	int r;

	if (!args[ARG_KEY_AGREEMENT] || !args[ARG_PIN_HASH_ENC])
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_bytes(args[ARG_PIN_HASH_ENC], &hash_enc, &hash_enc_len)) != CTAP2_OK)
		return r;
	if (sub == SUB_GET_PIN_TOKEN) {
		/* The legacy command takes no permissions; its token gets mc and ga (§6.5.5.7.1). */
		if (args[ARG_PERMISSIONS] || args[ARG_RP_ID])
			return CTAP1_ERR_INVALID_PARAMETER;
	} else {
		if (!args[ARG_PERMISSIONS])
			return CTAP2_ERR_MISSING_PARAMETER;
		if ((r = sf_cbor_uint(args[ARG_PERMISSIONS], &perms)) != CTAP2_OK)
			return r;
		if (args[ARG_RP_ID] && (r = sf_cbor_text(args[ARG_RP_ID], &rp, &rp_len)) != CTAP2_OK)
			return r;
		if (perms == 0)
			return CTAP1_ERR_INVALID_PARAMETER;
		/* Credential management, bio enrollment, large blobs, config: not implemented. */
		if (perms & ~(uint64_t)(SF_PERM_MC | SF_PERM_GA))
			return CTAP2_ERR_UNAUTHORIZED_PERMISSION;
	}
	if (!sf.st.pin_set)
		return CTAP2_ERR_PIN_NOT_SET;
	if (sf.st.pin_retries == 0)
		return CTAP2_ERR_PIN_BLOCKED;
	if (sf.pin_failures >= SF_PIN_AUTH_FAILURES_MAX)
		return CTAP2_ERR_PIN_AUTH_BLOCKED;
	if ((r = sf_pin_decapsulate(ss->proto, args[ARG_KEY_AGREEMENT], ss)) != CTAP2_OK)
		return r;
	if ((r = check_pin_hash(ss, hash_enc, hash_enc_len)) != CTAP2_OK)
		return r;
	/* A new token each time: whatever the previous one allowed is gone. */
	sf_pin_reset_token();
	sf.token.in_use = 1;
	sf.token.permissions = (uint8_t)perms;
	sf.token.user_verified = 1;
	sf.token.started_ms = sf_now_ms();
	if (rp) {
		sf_sha256(sf.token.rp_id_hash, rp, rp_len);
		sf.token.has_rp = 1;
	}
	if (sf_pin_encrypt(ss, sf.token.key, sizeof(sf.token.key), enc, &n) < 0)
		return CTAP1_ERR_OTHER;
	sf_cw_map(o, 1);
	sf_cw_uint(o, 0x02);
	sf_cw_bytes(o, enc, n);
	return CTAP2_OK;
}

int sf_client_pin(cbor_item_t **args, sf_out *o) {
	sf_shared ss;
	uint64_t sub, proto = 0;
	int r;

	memset(&ss, 0, sizeof(ss));
	if (!args[ARG_SUBCOMMAND])
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_uint(args[ARG_SUBCOMMAND], &sub)) != CTAP2_OK)
		return r;
	if (args[ARG_PROTOCOL] && (r = sf_cbor_uint(args[ARG_PROTOCOL], &proto)) != CTAP2_OK)
		return r;
	/* getPINRetries is the one subcommand that needs no protocol. */
	if (sub != SUB_GET_PIN_RETRIES) {
		if (!args[ARG_PROTOCOL])
			return CTAP2_ERR_MISSING_PARAMETER;
		if (!sf_pin_proto_ok(proto))
			return CTAP1_ERR_INVALID_PARAMETER;
	}
	ss.proto = (int)proto;
	switch (sub) {
	case SUB_GET_PIN_RETRIES:
		r = get_pin_retries(o);
		break;
	case SUB_GET_KEY_AGREEMENT:
		r = get_key_agreement(o);
		break;
	case SUB_SET_PIN:
		r = set_pin(args, &ss);
		break;
	case SUB_CHANGE_PIN:
		r = change_pin(args, &ss);
		break;
	case SUB_GET_PIN_TOKEN:
	case SUB_GET_TOKEN_WITH_PERMISSIONS:
		r = get_token(args, (int)sub, &ss, o);
		break;
	default:
		r = CTAP2_ERR_INVALID_SUBCOMMAND;
		break;
	}
	sf_wipe(&ss, sizeof(ss));
	return r;
}
