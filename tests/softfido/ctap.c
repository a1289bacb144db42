/* ctap.c — the CTAP2 commands of softfido: getInfo, makeCredential, getAssertion (hmac-secret), reset, selection. */
#include <stdlib.h>
#include <string.h>

#include "softfido.h"

enum {
	CMD_MAKE_CREDENTIAL = 0x01,
	CMD_GET_ASSERTION = 0x02,
	CMD_GET_INFO = 0x04,
	CMD_CLIENT_PIN = 0x06,
	CMD_RESET = 0x07,
	CMD_GET_NEXT_ASSERTION = 0x08,
	CMD_SELECTION = 0x0B,
};

#define ALG_ES256 (-7)
#define FLAG_UP 0x01
#define FLAG_UV 0x04
#define FLAG_AT 0x40
#define FLAG_ED 0x80
#define FIRMWARE_VERSION 0x010000

/*
 * Credentials are not stored: the id is the credential, sealed to this
 * authenticator with AES-256-GCM under a key derived from the master key,
 * the RP ID hash as associated data (so an id only opens for its RP):
 *   id = 0x01 | iv (12) | ct (32-byte P-256 scalar | flags (1)) | tag (16)
 * flags bit 0: the credential was made with hmac-secret.
 */
#define CRED_VERSION 0x01
#define CRED_PLAIN_LEN 33
#define CRED_ID_LEN (1 + 12 + CRED_PLAIN_LEN + 16)
#define CRED_HMAC_SECRET 0x01

typedef struct cred {
	uint8_t id[CRED_ID_LEN];
	EVP_PKEY *key;
	int hmac_secret;
} cred;

static void cred_clear(cred *c) {
	EVP_PKEY_free(c->key);
	c->key = NULL;
}

static int derive(uint8_t out[32], const char *label) {
	return sf_hmac_sha256(out, sf.st.master, sizeof(sf.st.master), label, strlen(label));
}

/* Makes a new key pair and its sealed id into *c. Returns a CTAP status. */
static int cred_new(cred *c, const uint8_t rp_hash[32], int hmac_secret) {
	uint8_t k[32], plain[CRED_PLAIN_LEN];
	int r = CTAP1_ERR_OTHER;

	memset(c, 0, sizeof(*c));
	if (!(c->key = sf_p256_generate()) || sf_p256_private(c->key, plain) < 0)
		goto out;
	plain[32] = hmac_secret ? CRED_HMAC_SECRET : 0;
	c->hmac_secret = hmac_secret;
	c->id[0] = CRED_VERSION;
	if (derive(k, "softfido credential id key v1") < 0 || sf_random(c->id + 1, 12) < 0 ||
	    sf_aes256_gcm_seal(k, c->id + 1, rp_hash, 32, plain, sizeof(plain), c->id + 13,
	                       c->id + 13 + CRED_PLAIN_LEN) < 0)
		goto out;
	r = CTAP2_OK;
out:
	sf_wipe(k, sizeof(k));
	sf_wipe(plain, sizeof(plain));
	if (r != CTAP2_OK)
		cred_clear(c);
	return r;
}

/* Opens an id of this authenticator for this RP; 0 if it is one, else -1. */
static int cred_open(cred *c, const uint8_t rp_hash[32], const uint8_t *id, size_t n) {
	uint8_t k[32], plain[CRED_PLAIN_LEN];
	int r = -1;

	memset(c, 0, sizeof(*c));
	if (n != CRED_ID_LEN || id[0] != CRED_VERSION)
		return -1;
	if (derive(k, "softfido credential id key v1") < 0 ||
	    sf_aes256_gcm_open(k, id + 1, rp_hash, 32, id + 13, CRED_PLAIN_LEN, id + 13 + CRED_PLAIN_LEN, plain) < 0)
		goto out;
	if (!(c->key = sf_p256_from_private(plain)))
		goto out;
	memcpy(c->id, id, CRED_ID_LEN);
	c->hmac_secret = (plain[32] & CRED_HMAC_SECRET) != 0;
	r = 0;
out:
	sf_wipe(k, sizeof(k));
	sf_wipe(plain, sizeof(plain));
	return r;
}

/* CredRandomWithUV / CredRandomWithoutUV: two unrelated secrets per credential. */
static int cred_random(const cred *c, int uv, uint8_t out[32]) {
	uint8_t k[32];
	int r;

	r = derive(k, uv ? "softfido CredRandomWithUV v1" : "softfido CredRandomWithoutUV v1");
	if (r == 0)
		r = sf_hmac_sha256(out, k, sizeof(k), c->id, sizeof(c->id));
	sf_wipe(k, sizeof(k));
	return r;
}

static void put_be32(uint8_t *p, uint32_t v) {
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int next_counter(uint32_t *ret) {
	int r;

	sf.st.sign_count++;
	if ((r = sf_persist()) != CTAP2_OK)
		return r;
	*ret = sf.st.sign_count;
	return CTAP2_OK;
}

/* ---- shared parameter checks -------------------------------------------- */

/* A PublicKeyCredentialDescriptor: a map with "type" (text) and "id" (bytes). */
static int descriptor(const cbor_item_t *d, const uint8_t **id, size_t *id_len, int *is_public_key) {
	const char *t;
	size_t tn;
	int r;

	if (!cbor_isa_map(d))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!sf_cbor_get_text_key(d, "type") || !sf_cbor_get_text_key(d, "id"))
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_text(sf_cbor_get_text_key(d, "type"), &t, &tn)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(sf_cbor_get_text_key(d, "id"), id, id_len)) != CTAP2_OK)
		return r;
	*is_public_key = sf_cbor_is_text(sf_cbor_get_text_key(d, "type"), "public-key");
	return CTAP2_OK;
}

static int descriptor_list(const cbor_item_t *l) {
	const uint8_t *id;
	size_t n, i, id_len;
	int pk, r;

	if (!cbor_isa_array(l))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	n = cbor_array_size(l);
	for (i = 0; i < n; i++)
		if ((r = descriptor(cbor_array_handle(l)[i], &id, &id_len, &pk)) != CTAP2_OK)
			return r;
	return CTAP2_OK;
}

/* Options map: every known key must carry a bool; unknown keys are ignored. */
static int options(const cbor_item_t *m, int *rk, int *up, int *uv) {
	cbor_item_t *v;
	int r;

	if (!m)
		return CTAP2_OK;
	if (!cbor_isa_map(m))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	for (size_t i = 0; i < cbor_map_size(m); i++)
		if (!cbor_isa_string(cbor_map_handle(m)[i].key))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if ((v = sf_cbor_get_text_key(m, "rk")) && (r = sf_cbor_bool(v, rk)) != CTAP2_OK)
		return r;
	if ((v = sf_cbor_get_text_key(m, "up")) && (r = sf_cbor_bool(v, up)) != CTAP2_OK)
		return r;
	if ((v = sf_cbor_get_text_key(m, "uv")) && (r = sf_cbor_bool(v, uv)) != CTAP2_OK)
		return r;
	return CTAP2_OK;
}

/*
 * pinUvAuthParam/pinUvAuthProtocol, steps 1-2 of both ceremonies: a zero-length
 * param is a platform asking which authenticator the user means (touch, then
 * PIN_NOT_SET or PIN_INVALID). Returns CTAP2_OK to continue, with *param set
 * when one is present.
 */
static int pin_uv_param(cbor_item_t **args, int a_param, int a_proto, const uint8_t **param, size_t *param_len,
                        int *proto) {
	uint64_t p;
	int r;

	*param = NULL;
	*param_len = 0;
	if (!args[a_param])
		return CTAP2_OK;
	if ((r = sf_cbor_bytes(args[a_param], param, param_len)) != CTAP2_OK)
		return r;
	if (args[a_proto] && (r = sf_cbor_uint(args[a_proto], &p)) != CTAP2_OK)
		return r;
	if (*param_len == 0) {
		if ((r = sf_up_wait()) != CTAP2_OK)
			return r == CTAP2_ERR_USER_ACTION_TIMEOUT ? CTAP2_ERR_OPERATION_DENIED : r;
		return sf.st.pin_set ? CTAP2_ERR_PIN_INVALID : CTAP2_ERR_PIN_NOT_SET;
	}
	if (!args[a_proto])
		return CTAP2_ERR_MISSING_PARAMETER;
	if (!sf_pin_proto_ok(p))
		return CTAP1_ERR_INVALID_PARAMETER;
	*proto = (int)p;
	return CTAP2_OK;
}

/* Checks pinUvAuthParam against the token for this RP and permission (§6.1.2 step 11, §6.2.2 step 6). */
static int check_token(int proto, const uint8_t *cdh, size_t cdh_len, const uint8_t *param, size_t param_len,
                       uint8_t perm, const uint8_t rp_hash[32]) {
	if (!sf.st.pin_set)
		return CTAP2_ERR_PIN_NOT_SET;
	if (sf.token.in_use && sf_now_ms() - sf.token.started_ms > 600000) /* maxUsageTimePeriod */
		sf_pin_reset_token();
	if (!sf_pin_verify_token(proto, cdh, cdh_len, param, param_len))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if (!(sf.token.permissions & perm))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if (sf.token.has_rp && !sf_ct_equal(sf.token.rp_id_hash, rp_hash, 32))
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if (!sf.token.user_verified)
		return CTAP2_ERR_PIN_AUTH_INVALID;
	if (!sf.token.has_rp) {
		memcpy(sf.token.rp_id_hash, rp_hash, 32);
		sf.token.has_rp = 1;
	}
	return CTAP2_OK;
}

/* After a ceremony collected user presence the token's cached state is spent. */
static void token_consumed(void) {
	if (sf.token.in_use) {
		sf.token.user_verified = 0;
		sf.token.permissions = 0;
	}
}

/* ---- authenticatorGetInfo ------------------------------------------------ */

static int get_info(sf_out *o) {
	sf_cw_map(o, 12);
	sf_cw_uint(o, 0x01);
	sf_cw_array(o, 2);
	sf_cw_text(o, "FIDO_2_0");
	sf_cw_text(o, "FIDO_2_1");
	sf_cw_uint(o, 0x02);
	sf_cw_array(o, 1);
	sf_cw_text(o, "hmac-secret");
	sf_cw_uint(o, 0x03);
	sf_cw_bytes(o, sf.st.aaguid, 16);
	sf_cw_uint(o, 0x04);
	sf_cw_map(o, 5); /* canonical: shorter keys first */
	sf_cw_text(o, "rk");
	sf_cw_bool(o, 0);
	sf_cw_text(o, "up");
	sf_cw_bool(o, 1);
	sf_cw_text(o, "clientPin");
	sf_cw_bool(o, sf.st.pin_set);
	sf_cw_text(o, "pinUvAuthToken");
	sf_cw_bool(o, 1);
	sf_cw_text(o, "makeCredUvNotRqd");
	sf_cw_bool(o, 1);
	sf_cw_uint(o, 0x05);
	sf_cw_uint(o, SF_MAX_MSG);
	sf_cw_uint(o, 0x06);
	sf_cw_array(o, (size_t)(sf.proto_v1 + sf.proto_v2));
	if (sf.proto_v2)
		sf_cw_uint(o, 2);
	if (sf.proto_v1)
		sf_cw_uint(o, 1);
	sf_cw_uint(o, 0x07);
	sf_cw_uint(o, SF_MAX_CREDS_IN_LIST);
	sf_cw_uint(o, 0x08);
	sf_cw_uint(o, SF_MAX_CRED_ID_LEN);
	sf_cw_uint(o, 0x09);
	sf_cw_array(o, 1);
	sf_cw_text(o, "usb");
	sf_cw_uint(o, 0x0A);
	sf_cw_array(o, 1);
	sf_cw_map(o, 2);
	sf_cw_text(o, "alg");
	sf_cw_int(o, ALG_ES256);
	sf_cw_text(o, "type");
	sf_cw_text(o, "public-key");
	sf_cw_uint(o, 0x0D);
	sf_cw_uint(o, 4);
	sf_cw_uint(o, 0x0E);
	sf_cw_uint(o, FIRMWARE_VERSION);
	return CTAP2_OK;
}

/* ---- authenticatorMakeCredential (§6.1.2) -------------------------------- */

static int make_credential(cbor_item_t **args, sf_out *o) {
	const uint8_t *cdh, *param, *uid;
	const char *rp_id, *name;
	size_t cdh_len, param_len, rp_len, uid_len, i, n;
	uint8_t rp_hash[32], x[32], y[32], sig[80], auth[512];
	size_t sig_len = 0, alen = 0;
	int rk = 0, up = 1, uv = 0, proto = 0, want_hmac = 0, es256 = 0, flags, r;
	uint32_t counter;
	cred c = { 0 }, ex;
	sf_out *ad = NULL;
	cbor_item_t *v;

	if (!args[1] || !args[2] || !args[3] || !args[4])
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_bytes(args[1], &cdh, &cdh_len)) != CTAP2_OK)
		return r;
	if (!cbor_isa_map(args[2]) || !cbor_isa_map(args[3]) || !cbor_isa_array(args[4]))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!(v = sf_cbor_get_text_key(args[2], "id")))
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_text(v, &rp_id, &rp_len)) != CTAP2_OK)
		return r;
	if ((v = sf_cbor_get_text_key(args[2], "name")) && (r = sf_cbor_text(v, &name, &n)) != CTAP2_OK)
		return r;
	if (!(v = sf_cbor_get_text_key(args[3], "id")))
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_bytes(v, &uid, &uid_len)) != CTAP2_OK)
		return r;
	if (uid_len > 64)
		return CTAP1_ERR_INVALID_LENGTH;
	if (args[5] && (r = descriptor_list(args[5])) != CTAP2_OK)
		return r;
	if (args[6]) {
		if (!cbor_isa_map(args[6]))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if ((v = sf_cbor_get_text_key(args[6], "hmac-secret")) && (r = sf_cbor_bool(v, &want_hmac)) != CTAP2_OK)
			return r;
	}
	if ((r = options(args[7], &rk, &up, &uv)) != CTAP2_OK)
		return r;
	if (cdh_len != 32)
		return CTAP1_ERR_INVALID_LENGTH;

	/* Steps 1-2: pinUvAuthParam. */
	if ((r = pin_uv_param(args, 8, 9, &param, &param_len, &proto)) != CTAP2_OK)
		return r;
	/* Step 3: the first supported algorithm; entries must be well-formed. */
	n = cbor_array_size(args[4]);
	for (i = 0; i < n; i++) {
		cbor_item_t *p = cbor_array_handle(args[4])[i], *alg, *type;
		int64_t a;
		const char *t;
		size_t tn;

		if (!cbor_isa_map(p))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if (!(alg = sf_cbor_get_text_key(p, "alg")) || !(type = sf_cbor_get_text_key(p, "type")))
			return CTAP2_ERR_MISSING_PARAMETER;
		if ((r = sf_cbor_int(alg, &a)) != CTAP2_OK || (r = sf_cbor_text(type, &t, &tn)) != CTAP2_OK)
			return r;
		if (a == ALG_ES256 && sf_cbor_is_text(type, "public-key"))
			es256 = 1;
	}
	if (!es256)
		return CTAP2_ERR_UNSUPPORTED_ALGORITHM;
	/* Step 5: options. No discoverable credentials; no built-in UV; up cannot be false here. */
	if (rk)
		return CTAP2_ERR_UNSUPPORTED_OPTION;
	if (param)
		uv = 0;
	if (uv)
		return CTAP2_ERR_INVALID_OPTION;
	if (!up)
		return CTAP2_ERR_INVALID_OPTION;
	/* Step 7 (makeCredUvNotRqd): a non-discoverable credential needs no UV even with a PIN set. */
	sf_sha256(rp_hash, rp_id, rp_len);
	/* Step 11: user verification through the pinUvAuthToken. */
	if (param && (r = check_token(proto, cdh, cdh_len, param, param_len, SF_PERM_MC, rp_hash)) != CTAP2_OK)
		return r;
	/* Step 12: excludeList. The user confirms before learning the credential exists. */
	if (args[5]) {
		n = cbor_array_size(args[5]);
		for (i = 0; i < n; i++) {
			const uint8_t *id;
			size_t id_len;
			int pk;

			if (descriptor(cbor_array_handle(args[5])[i], &id, &id_len, &pk) != CTAP2_OK || !pk)
				continue;
			if (cred_open(&ex, rp_hash, id, id_len) == 0) {
				cred_clear(&ex);
				if ((r = sf_up_wait()) != CTAP2_OK)
					return r;
				return CTAP2_ERR_CREDENTIAL_EXCLUDED;
			}
		}
	}
	/* Step 14: user presence, always, since a PIN-made token never carries it. */
	if ((r = sf_up_wait()) != CTAP2_OK)
		return r;
	token_consumed();

	if ((r = cred_new(&c, rp_hash, want_hmac)) != CTAP2_OK)
		goto out;
	if (sf_p256_public(c.key, x, y) < 0) {
		r = CTAP1_ERR_OTHER;
		goto out;
	}
	if ((r = next_counter(&counter)) != CTAP2_OK)
		goto out;
	flags = FLAG_UP | FLAG_AT | (param ? FLAG_UV : 0) | (want_hmac ? FLAG_ED : 0);
	/* authData = rpIdHash | flags | signCount | aaguid | L | credentialId | COSE key | extensions */
	if (!(ad = calloc(1, sizeof(*ad)))) {
		r = CTAP1_ERR_OTHER;
		goto out;
	}
	sf_cw_raw(ad, rp_hash, 32);
	sf_cw_raw(ad, &(uint8_t){ (uint8_t)flags }, 1);
	put_be32(auth, counter);
	sf_cw_raw(ad, auth, 4);
	sf_cw_raw(ad, sf.st.aaguid, 16);
	sf_cw_raw(ad, (uint8_t[]){ 0, CRED_ID_LEN }, 2);
	sf_cw_raw(ad, c.id, CRED_ID_LEN);
	sf_cw_cose_p256(ad, ALG_ES256, x, y);
	if (want_hmac) {
		sf_cw_map(ad, 1);
		sf_cw_text(ad, "hmac-secret");
		sf_cw_bool(ad, 1);
	}
	if (ad->overflow || ad->len > sizeof(auth)) {
		r = CTAP1_ERR_OTHER;
		goto out;
	}
	alen = ad->len;
	memcpy(auth, ad->buf, alen);
	/* "packed" self attestation: signed by the credential key itself. */
	if (sf_p256_sign(c.key, auth, alen, cdh, cdh_len, sig, &sig_len) < 0) {
		r = CTAP1_ERR_OTHER;
		goto out;
	}
	sf_cw_map(o, 3);
	sf_cw_uint(o, 0x01);
	sf_cw_text(o, "packed");
	sf_cw_uint(o, 0x02);
	sf_cw_bytes(o, auth, alen);
	sf_cw_uint(o, 0x03);
	sf_cw_map(o, 2);
	sf_cw_text(o, "alg");
	sf_cw_int(o, ALG_ES256);
	sf_cw_text(o, "sig");
	sf_cw_bytes(o, sig, sig_len);
	r = CTAP2_OK;
out:
	free(ad);
	cred_clear(&c);
	return r;
}

/* ---- authenticatorGetAssertion (§6.2.2) ---------------------------------- */

/* The hmac-secret extension input {1: keyAgreement, 2: saltEnc, 3: saltAuth, 4: protocol} (§12.5). */
typedef struct hmac_input {
	const cbor_item_t *key_agreement;
	const uint8_t *salt_enc, *salt_auth;
	size_t salt_enc_len, salt_auth_len;
	int proto;
} hmac_input;

static int hmac_secret_parse(const cbor_item_t *m, hmac_input *in) {
	cbor_item_t *v;
	uint64_t p = 1; /* absent means protocol 1 */
	int r;

	if (!cbor_isa_map(m))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if (!(in->key_agreement = sf_cbor_get_int_key(m, 1)) || !sf_cbor_get_int_key(m, 2) ||
	    !sf_cbor_get_int_key(m, 3))
		return CTAP2_ERR_MISSING_PARAMETER;
	if (!cbor_isa_map(in->key_agreement))
		return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
	if ((r = sf_cbor_bytes(sf_cbor_get_int_key(m, 2), &in->salt_enc, &in->salt_enc_len)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(sf_cbor_get_int_key(m, 3), &in->salt_auth, &in->salt_auth_len)) != CTAP2_OK)
		return r;
	if ((v = sf_cbor_get_int_key(m, 4)) && (r = sf_cbor_uint(v, &p)) != CTAP2_OK)
		return r;
	if (!sf_pin_proto_ok(p))
		return CTAP1_ERR_INVALID_PARAMETER;
	in->proto = (int)p;
	return CTAP2_OK;
}

/* output_i = HMAC-SHA-256(CredRandom, salt_i), encrypted back under the shared secret. */
static int hmac_secret_output(const hmac_input *in, const cred *c, int uv, uint8_t *out, size_t *ret_len) {
	sf_shared ss;
	uint8_t salts[64 + 16], outputs[64], cr[32];
	size_t n = 0, i;
	int r;

	memset(&ss, 0, sizeof(ss));
	if ((r = sf_pin_decapsulate(in->proto, in->key_agreement, &ss)) != CTAP2_OK)
		goto out;
	if (!sf_pin_verify_shared(&ss, in->salt_enc, in->salt_enc_len, in->salt_auth, in->salt_auth_len)) {
		r = CTAP2_ERR_PIN_AUTH_INVALID;
		goto out;
	}
	if (in->salt_enc_len > sizeof(salts) || sf_pin_decrypt(&ss, in->salt_enc, in->salt_enc_len, salts, &n) < 0 ||
	    (n != 32 && n != 64)) {
		r = CTAP1_ERR_INVALID_LENGTH;
		goto out;
	}
	if (cred_random(c, uv, cr) < 0) {
		r = CTAP1_ERR_OTHER;
		goto out;
	}
	for (i = 0; i < n; i += 32)
		if (sf_hmac_sha256(outputs + i, cr, sizeof(cr), salts + i, 32) < 0) {
			r = CTAP1_ERR_OTHER;
			goto out;
		}
	r = sf_pin_encrypt(&ss, outputs, n, out, ret_len) < 0 ? CTAP1_ERR_OTHER : CTAP2_OK;
out:
	sf_wipe(&ss, sizeof(ss));
	sf_wipe(salts, sizeof(salts));
	sf_wipe(outputs, sizeof(outputs));
	sf_wipe(cr, sizeof(cr));
	return r;
}

static int get_assertion(cbor_item_t **args, sf_out *o) {
	const uint8_t *cdh, *param;
	const char *rp_id;
	size_t cdh_len, param_len, rp_len, i, n, hs_len = 0, alen = 0, sig_len = 0;
	uint8_t rp_hash[32], sig[80], hs[64 + 16], auth[256];
	int rk = 0, up = 1, uv = 0, proto = 0, found = 0, flags, r;
	uint32_t counter;
	hmac_input hin;
	cred c = { 0 };

	memset(&hin, 0, sizeof(hin));
	if (!args[1] || !args[2])
		return CTAP2_ERR_MISSING_PARAMETER;
	if ((r = sf_cbor_text(args[1], &rp_id, &rp_len)) != CTAP2_OK ||
	    (r = sf_cbor_bytes(args[2], &cdh, &cdh_len)) != CTAP2_OK)
		return r;
	if (args[3] && (r = descriptor_list(args[3])) != CTAP2_OK)
		return r;
	if (args[4]) {
		cbor_item_t *v;

		if (!cbor_isa_map(args[4]))
			return CTAP2_ERR_CBOR_UNEXPECTED_TYPE;
		if ((v = sf_cbor_get_text_key(args[4], "hmac-secret")) && (r = hmac_secret_parse(v, &hin)) != CTAP2_OK)
			return r;
	}
	if ((r = options(args[5], &rk, &up, &uv)) != CTAP2_OK)
		return r;
	if (cdh_len != 32)
		return CTAP1_ERR_INVALID_LENGTH;
	/* Steps 1-2. */
	if ((r = pin_uv_param(args, 6, 7, &param, &param_len, &proto)) != CTAP2_OK)
		return r;
	/* Step 5: options. */
	if (args[5] && sf_cbor_get_text_key(args[5], "rk"))
		return CTAP2_ERR_UNSUPPORTED_OPTION;
	if (param)
		uv = 0;
	if (uv)
		return CTAP2_ERR_INVALID_OPTION;
	sf_sha256(rp_hash, rp_id, rp_len);
	/* Step 6: user verification through the pinUvAuthToken. Without it the
	 * assertion still works, unverified (and with the other CredRandom). */
	if (param && (r = check_token(proto, cdh, cdh_len, param, param_len, SF_PERM_GA, rp_hash)) != CTAP2_OK)
		return r;
	/* Step 7: only ids from the allowList can name a credential here. */
	n = args[3] ? cbor_array_size(args[3]) : 0;
	if (n > SF_MAX_CREDS_IN_LIST)
		return CTAP2_ERR_LIMIT_EXCEEDED;
	for (i = 0; i < n && !found; i++) {
		const uint8_t *id;
		size_t id_len;
		int pk;

		if (descriptor(cbor_array_handle(args[3])[i], &id, &id_len, &pk) == CTAP2_OK && pk &&
		    cred_open(&c, rp_hash, id, id_len) == 0)
			found = 1;
	}
	if (!found)
		return CTAP2_ERR_NO_CREDENTIALS;
	/* The extension is checked before the touch, so a bad request fails without one. */
	if (hin.key_agreement && c.hmac_secret &&
	    (r = hmac_secret_output(&hin, &c, param != NULL, hs, &hs_len)) != CTAP2_OK)
		goto out;
	/* Step 9: user presence unless up is false (a silent probe for the right key).
	 * A key told to lie about UP ("flags no-up") skips the touch and says so in its flags. */
	if (up && !(sf.lie_flags & FLAG_UP)) {
		if ((r = sf_up_wait()) != CTAP2_OK)
			goto out;
		token_consumed();
	}
	if ((r = next_counter(&counter)) != CTAP2_OK)
		goto out;
	flags = ((up ? FLAG_UP : 0) | (param ? FLAG_UV : 0) | (hs_len ? FLAG_ED : 0)) & ~(int)sf.lie_flags;
	memcpy(auth, rp_hash, 32);
	auth[32] = (uint8_t)flags;
	put_be32(auth + 33, counter);
	alen = 37;
	if (hs_len) {
		sf_out *ed = calloc(1, sizeof(*ed));

		if (!ed) {
			r = CTAP1_ERR_OTHER;
			goto out;
		}
		sf_cw_map(ed, 1);
		sf_cw_text(ed, "hmac-secret");
		sf_cw_bytes(ed, hs, hs_len);
		if (ed->overflow || alen + ed->len > sizeof(auth)) {
			free(ed);
			r = CTAP1_ERR_OTHER;
			goto out;
		}
		memcpy(auth + alen, ed->buf, ed->len);
		alen += ed->len;
		free(ed);
	}
	if (sf_p256_sign(c.key, auth, alen, cdh, cdh_len, sig, &sig_len) < 0) {
		r = CTAP1_ERR_OTHER;
		goto out;
	}
	sf_cw_map(o, 3);
	sf_cw_uint(o, 0x01);
	sf_cw_map(o, 2);
	sf_cw_text(o, "id");
	sf_cw_bytes(o, c.id, CRED_ID_LEN);
	sf_cw_text(o, "type");
	sf_cw_text(o, "public-key");
	sf_cw_uint(o, 0x02);
	sf_cw_bytes(o, auth, alen);
	sf_cw_uint(o, 0x03);
	sf_cw_bytes(o, sig, sig_len);
	r = CTAP2_OK;
out:
	sf_wipe(hs, sizeof(hs));
	cred_clear(&c);
	return r;
}

/* ---- authenticatorReset (§6.6), authenticatorSelection (§6.9) ------------- */

static int reset(void) {
	uint8_t aaguid[16];
	int r;

	/* Only shortly after power-up, so malware cannot wipe a key that sits plugged in. */
	if (sf_now_ms() - sf.boot_ms > SF_RESET_WINDOW_MS)
		return CTAP2_ERR_NOT_ALLOWED;
	if ((r = sf_up_wait()) != CTAP2_OK)
		return r;
	memcpy(aaguid, sf.st.aaguid, sizeof(aaguid));
	sf_wipe(&sf.st, sizeof(sf.st));
	memcpy(sf.st.aaguid, aaguid, sizeof(aaguid));
	if (sf_random(sf.st.master, sizeof(sf.st.master)) < 0)
		return CTAP1_ERR_OTHER;
	sf.st.pin_retries = SF_PIN_RETRIES_MAX;
	sf.pin_failures = 0;
	sf_pin_regenerate();
	sf_pin_reset_token();
	return sf_persist();
}

/* ---- dispatch ------------------------------------------------------------ */

void sf_ctap_dispatch(const uint8_t *req, size_t n, sf_out *o) {
	cbor_item_t *root = NULL, *args[SF_MAX_ARGS];
	uint8_t cmd;
	int r;

	o->len = 0;
	o->overflow = 0;
	sf_cw_raw(o, "", 1); /* the status byte, filled in below */
	if (n == 0) {
		r = CTAP1_ERR_INVALID_LENGTH;
		goto out;
	}
	cmd = req[0];
	switch (cmd) {
	case CMD_MAKE_CREDENTIAL:
	case CMD_GET_ASSERTION:
	case CMD_CLIENT_PIN:
		if ((r = sf_cbor_args(req + 1, n - 1, &root, args)) != CTAP2_OK)
			break;
		r = cmd == CMD_MAKE_CREDENTIAL ? make_credential(args, o)
		    : cmd == CMD_GET_ASSERTION ? get_assertion(args, o)
		                               : sf_client_pin(args, o);
		break;
	case CMD_GET_INFO:
	case CMD_RESET:
	case CMD_SELECTION:
	case CMD_GET_NEXT_ASSERTION:
		if (n != 1) { /* these take no parameters */
			r = CTAP1_ERR_INVALID_LENGTH;
			break;
		}
		r = cmd == CMD_GET_INFO ? get_info(o)
		    : cmd == CMD_RESET  ? reset()
		    : cmd == CMD_SELECTION ? sf_up_wait()
		                           : CTAP2_ERR_NOT_ALLOWED; /* never more than one assertion */
		break;
	default:
		r = CTAP1_ERR_INVALID_COMMAND;
		break;
	}
	sf_log("ctap2 command 0x%02x -> 0x%02x", cmd, r & 0xff);
out:
	if (root)
		cbor_decref(&root);
	if (r == CTAP2_OK && o->overflow)
		r = CTAP1_ERR_OTHER;
	if (r != CTAP2_OK) {
		o->len = 1;
		o->overflow = 0;
	}
	o->buf[0] = (uint8_t)(r == SF_ABORTED ? CTAP1_ERR_OTHER : r);
	if (r == SF_ABORTED)
		o->len = 0; /* tells hid.c not to answer */
}
