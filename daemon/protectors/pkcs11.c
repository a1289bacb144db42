/* pkcs11.c — the pkcs11 protector: a KEK sealed to a token's RSA key (OAEP) or derived by ECDH with its P-256 key, through p11-kit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>
#include <sodium.h>

#include "core/params.h"
#include "core/vault.h"
#include "protectors/pkcs11_mech.h"
#include "protectors/protector.h"

/*
 * Params record (ts_params, all public):
 *   v        uint  1
 *   uri      text  the pkcs11: URI, without any PIN, completed with token= and id=
 *   token    text  token label (for messages and status)
 *   id       bytes CKA_ID of the key pair (may be empty when selected by label)
 *   alg      text  "rsa-oaep" | "ec-p256-ecdh"
 *   rsa:  bits uint, hash text "sha1"|"sha256", ct bytes (OAEP ciphertext of the KEK)
 *   ec:   epk bytes (ephemeral public point, 65), tpk bytes (token public point, 65)
 */
#define P11_VERSION 1
#define P11_POINT_BYTES 65          /* uncompressed P-256 point: 04 || X || Y */
#define P11_SHARED_BYTES 32
#define P11_RSA_MIN_BITS 2048
#define P11_RSA_MAX_BITS 16384
#define P11_ATTR_MAX 65536          /* a certificate is the largest attribute we read */
#define P11_PEM_MAX 65536
#define P11_SLOTS_MAX 256
#define P11_KDF_LABEL "tokenseal-pkcs11-ecdh-v1"

/* DER of the prime256v1 OID, as CKA_EC_PARAMS holds it. */
static const uint8_t p11_p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };

enum { P11_ALG_RSA = 1, P11_ALG_EC = 2 };
enum { P11_SHA1 = 1, P11_SHA256 = 2 };

/* The modules we loaded and, once chosen, one token and its session. */
typedef struct p11_ctx {
	CK_FUNCTION_LIST **modules;     /* from p11-kit's registry, NULL-terminated */
	CK_FUNCTION_LIST *single[2];    /* config->pkcs11_module, NULL-terminated */
	CK_FUNCTION_LIST *fn;           /* the module of the chosen token */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	int open, logged_in;
	char label[33];                 /* token label, trailing blanks removed */
	CK_UTF8CHAR serial[16];         /* token serial number, as the token gives it (blank-padded) */
} p11_ctx;

/* A public key as read from the token, a certificate or PEM text. */
typedef struct p11_pub {
	EVP_PKEY *pkey;
	int alg;
	unsigned bits;
	uint8_t point[P11_POINT_BYTES]; /* EC only */
	uint8_t *id;                    /* CKA_ID of the object found, malloc()ed; NULL if none */
	size_t id_len;
} p11_pub;

/* A decoded params record; pointers into the ts_params it came from. */
typedef struct p11_rec {
	const char *uri, *token;
	const uint8_t *id, *ct, *epk, *tpk;
	size_t id_len, ct_len;
	int alg, hash;
	unsigned bits;
} p11_rec;

static const char *p11_hash_name(int hash)
{
	return hash == P11_SHA256 ? "sha256" : "sha1";
}

static void p11_trim_label(char out[33], const CK_UTF8CHAR in[32])
{
	size_t n = p11_kit_space_strlen(in, 32);

	memcpy(out, in, n);
	out[n] = '\0';
	/* Labels come from the token: keep them printable for messages. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
}

/* ---- modules, tokens, sessions ------------------------------------------ */

static void p11_close(p11_ctx *c)
{
	if (c->fn && c->logged_in)
		c->fn->C_Logout(c->session);
	if (c->fn && c->open)
		c->fn->C_CloseSession(c->session);
	if (c->modules)
		p11_kit_modules_finalize_and_release(c->modules);
	if (c->single[0]) {
		p11_kit_module_finalize(c->single[0]);
		p11_kit_module_release(c->single[0]);
	}
	memset(c, 0, sizeof(*c));
}

static CK_FUNCTION_LIST **p11_list(p11_ctx *c)
{
	return c->modules ? c->modules : c->single;
}

/* Load the configured module, or every module registered with p11-kit. */
static int p11_load(ts_protector_request *req, p11_ctx *c)
{
	const char *path = req->config ? req->config->pkcs11_module : NULL;
	CK_RV rv;

	if (path) {
		if ((c->single[0] = p11_kit_module_load(path, 0)) == NULL)
			return ts_protector_fail(req, -TS_E_FAILED, "cannot load PKCS#11 module '%s': %s", path,
			                         p11_kit_message() ? p11_kit_message() : "unknown error");
		if ((rv = p11_kit_module_initialize(c->single[0])) != CKR_OK) {
			p11_kit_module_release(c->single[0]);
			c->single[0] = NULL;
			return ts_protector_fail(req, -TS_E_FAILED, "cannot initialize PKCS#11 module '%s': %s", path,
			                         p11_kit_strerror(rv));
		}
		return 0;
	}
	if ((c->modules = p11_kit_modules_load_and_initialize(0)) == NULL)
		return ts_protector_fail(req, -TS_E_FAILED, "cannot load the PKCS#11 modules registered with p11-kit: %s",
		                         p11_kit_message() ? p11_kit_message() : "unknown error");
	return 0;
}

static int p11_module_matches(CK_FUNCTION_LIST *m, P11KitUri *uri)
{
	const char *want;
	char *have;
	CK_INFO info;
	int ok = 1;

	if ((want = p11_kit_uri_get_module_name(uri)) != NULL) {
		have = p11_kit_module_get_name(m);
		ok = have && strcmp(have, want) == 0;
		free(have);
	}
	if (ok && (want = p11_kit_uri_get_module_path(uri)) != NULL) {
		have = p11_kit_module_get_filename(m);
		ok = have && strcmp(have, want) == 0;
		free(have);
	}
	if (ok && m->C_GetInfo(&info) == CKR_OK)
		ok = p11_kit_uri_match_module_info(uri, &info);
	return ok;
}

/* The label the URI asks for, for "token 'x' not found" messages. */
static void p11_uri_label(P11KitUri *uri, char out[33])
{
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);

	CK_UTF8CHAR raw[32];
	char serial[33];

	if (ti && ti->label[0]) {
		p11_trim_label(out, ti->label);
	} else if (ti && ti->serialNumber[0]) {
		memset(raw, ' ', sizeof(raw));
		memcpy(raw, ti->serialNumber, sizeof(ti->serialNumber));
		p11_trim_label(serial, raw);
		snprintf(out, 33, "serial %.16s", serial);
	} else {
		snprintf(out, 33, "%s", "(any)");
	}
}

/*
 * Select the token: the first initialized token in the modules' slots that
 * matches the URI's module, slot and token attributes, and open a session on
 * it. When has_obj is set, only a token that holds such an object counts
 * (enrollment, where several tokens may match a loose URI).
 * TS_E_TOKEN_ABSENT when none matches. With ret_tokens, only count instead:
 * the tokens the URI matches and (has_obj) those of them that show such an
 * object; no session is kept, and the result is 0.
 */
static int p11_scan_tokens(ts_protector_request *req, p11_ctx *c, P11KitUri *uri,
                           int (*has_obj)(p11_ctx *, P11KitUri *), int *ret_tokens, int *ret_with_obj)
{
	CK_FUNCTION_LIST **m;
	CK_SLOT_ID want_slot = p11_kit_uri_get_slot_id(uri);
	char want[33], seen[33] = "";
	int matched = 0;

	if (ret_tokens)
		*ret_tokens = *ret_with_obj = 0;

	for (m = p11_list(c); m && *m; m++) {
		CK_SLOT_ID slots[P11_SLOTS_MAX];
		CK_ULONG n = P11_SLOTS_MAX;

		if (!p11_module_matches(*m, uri))
			continue;
		if ((*m)->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
			continue;   /* too many slots or a broken module: skip it, not the others */
		for (CK_ULONG i = 0; i < n && i < P11_SLOTS_MAX; i++) {
			CK_SLOT_INFO si;
			CK_TOKEN_INFO ti;

			if (want_slot != (CK_SLOT_ID)-1 && slots[i] != want_slot)
				continue;
			if ((*m)->C_GetSlotInfo(slots[i], &si) != CKR_OK || !p11_kit_uri_match_slot_info(uri, &si))
				continue;
			if ((*m)->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED) ||
			    !p11_kit_uri_match_token_info(uri, &ti))
				continue;
			if ((*m)->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &c->session) != CKR_OK)
				continue;
			c->fn = *m;
			c->slot = slots[i];
			c->open = 1;
			p11_trim_label(c->label, ti.label);
			memcpy(c->serial, ti.serialNumber, sizeof(c->serial));
			if (ret_tokens) {
				++*ret_tokens;
				*ret_with_obj += has_obj && has_obj(c, uri);
			} else if (!has_obj || has_obj(c, uri))
				return 0;
			snprintf(seen, sizeof(seen), "%s", c->label);
			matched = 1;
			c->fn->C_CloseSession(c->session);
			c->fn = NULL;
			c->open = 0;
		}
	}
	if (ret_tokens)
		return 0;
	if (matched)
		return ts_protector_fail(req, -TS_E_KEY_NOT_FOUND,
		                         "no public key or certificate matching the URI on '%s'", seen);
	p11_uri_label(uri, want);
	return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "PKCS#11 token '%s' not found; insert it", want);
}

/* An empty PIN is no PIN: a prompt answered with Enter must not cost a retry. */
static int p11_have_pin(const ts_protector_request *req)
{
	return req->pin && req->pin_len > 0;
}

/* Log in as the user. The PIN stays in the caller's secure memory. */
static int p11_login(ts_protector_request *req, p11_ctx *c)
{
	CK_TOKEN_INFO ti;
	CK_RV rv;

	if (c->fn->C_GetTokenInfo(c->slot, &ti) != CKR_OK)
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "PKCS#11 token '%s' went away", c->label);
	if (ti.flags & CKF_USER_PIN_LOCKED)
		return ts_protector_fail(req, -TS_E_PIN_BLOCKED, "PIN blocked on '%s'; unblock it with the SO PIN",
		                         c->label);
	if (!p11_have_pin(req)) {
		/* A PIN pad reads the PIN itself; anything else needs one from the user. */
		if (!(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH))
			return ts_protector_fail(req, -TS_E_PIN_REQUIRED, "PIN required for '%s'", c->label);
		rv = c->fn->C_Login(c->session, CKU_USER, NULL, 0);
	} else {
		rv = c->fn->C_Login(c->session, CKU_USER, (CK_UTF8CHAR_PTR)(uintptr_t)req->pin, req->pin_len);
	}
	switch (rv) {
	case CKR_OK:
		c->logged_in = 1;
		return 0;
	case CKR_USER_ALREADY_LOGGED_IN:
		/*
		 * Not by us (c->logged_in is set only above, and this context is
		 * the job's own): a module that shares its login state between
		 * processes (a proxy, some middleware) would take any PIN then.
		 * Its PIN cannot be checked, so the token is not used.
		 */
		return ts_protector_fail(req, -TS_E_FAILED,
		                         "'%s' is already logged in by another application: its PIN cannot be checked; "
		                         "log it out first", c->label);
	case CKR_PIN_INCORRECT:
	case CKR_PIN_LEN_RANGE:
		if (c->fn->C_GetTokenInfo(c->slot, &ti) == CKR_OK) {
			if (ti.flags & CKF_USER_PIN_LOCKED)
				return ts_protector_fail(req, -TS_E_PIN_BLOCKED, "PIN incorrect; now blocked on '%s'",
				                         c->label);
			if (ti.flags & CKF_USER_PIN_FINAL_TRY)
				return ts_protector_fail(req, -TS_E_PIN_INVALID,
				                         "PIN incorrect, 1 try left on '%s' before it blocks", c->label);
			if (ti.flags & CKF_USER_PIN_COUNT_LOW)
				return ts_protector_fail(req, -TS_E_PIN_INVALID, "PIN incorrect, few tries left on '%s'",
				                         c->label);
		}
		return ts_protector_fail(req, -TS_E_PIN_INVALID, "PIN incorrect for '%s'", c->label);
	case CKR_PIN_LOCKED:
		return ts_protector_fail(req, -TS_E_PIN_BLOCKED, "PIN blocked on '%s'; unblock it with the SO PIN",
		                         c->label);
	case CKR_PIN_EXPIRED:
		return ts_protector_fail(req, -TS_E_PIN_INVALID, "PIN expired on '%s'; change it first", c->label);
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_HANDLE_INVALID:
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "PKCS#11 token '%s' was removed", c->label);
	case CKR_FUNCTION_CANCELED:
		return ts_protector_fail(req, -TS_E_TIMEOUT, "PIN entry canceled on '%s'", c->label);
	default:
		return ts_protector_fail(req, -TS_E_FAILED, "login to '%s' failed: %s", c->label, p11_kit_strerror(rv));
	}
}

/* Find one object of class cls matching the URI's object attributes (other than its class). */
static CK_OBJECT_HANDLE p11_find(p11_ctx *c, P11KitUri *uri, CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE tmpl[8], *a;
	CK_ULONG n = 0, na = 0, found = 0;
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;

	tmpl[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	a = p11_kit_uri_get_attributes(uri, &na);
	for (CK_ULONG i = 0; a && i < na && n < 8; i++)
		if (a[i].type == CKA_ID || a[i].type == CKA_LABEL)
			tmpl[n++] = a[i];
	if (c->fn->C_FindObjectsInit(c->session, tmpl, n) != CKR_OK)
		return CK_INVALID_HANDLE;
	if (c->fn->C_FindObjects(c->session, &obj, 1, &found) != CKR_OK || found != 1)
		obj = CK_INVALID_HANDLE;
	c->fn->C_FindObjectsFinal(c->session);
	return obj;
}

/* Read a (public) attribute into malloc()ed memory. */
static int p11_get_attr(p11_ctx *c, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, uint8_t **ret, size_t *ret_len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	uint8_t *p;

	if (c->fn->C_GetAttributeValue(c->session, obj, &a, 1) != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > P11_ATTR_MAX)
		return -TS_E_NOT_SUPPORTED;
	if ((p = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return -TS_E_NOMEM;
	a.pValue = p;
	if (c->fn->C_GetAttributeValue(c->session, obj, &a, 1) != CKR_OK) {
		free(p);
		return -TS_E_NOT_SUPPORTED;
	}
	*ret = p;
	*ret_len = a.ulValueLen;
	return 0;
}

static int p11_has_pub(p11_ctx *c, P11KitUri *uri)
{
	return p11_find(c, uri, CKO_PUBLIC_KEY) != CK_INVALID_HANDLE ||
	       p11_find(c, uri, CKO_CERTIFICATE) != CK_INVALID_HANDLE;
}

/* ---- public keys ---------------------------------------------------------- */

static void p11_pub_clear(p11_pub *pub)
{
	EVP_PKEY_free(pub->pkey);
	free(pub->id);
	memset(pub, 0, sizeof(*pub));
}

/* Check the key is one we support and fill in alg, bits and point. */
static int p11_pub_facts(ts_protector_request *req, p11_pub *pub)
{
	char group[64];
	size_t len = 0;

	switch (EVP_PKEY_get_base_id(pub->pkey)) {
	case EVP_PKEY_RSA:
		pub->alg = P11_ALG_RSA;
		pub->bits = (unsigned)EVP_PKEY_get_bits(pub->pkey);
		if (pub->bits < P11_RSA_MIN_BITS || pub->bits > P11_RSA_MAX_BITS || pub->bits % 8)
			return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "RSA key of %u bits: need %d to %d bits",
			                         pub->bits, P11_RSA_MIN_BITS, P11_RSA_MAX_BITS);
		return 0;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(pub->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
		    strcmp(group, "prime256v1") != 0)
			return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "EC key not on P-256: only P-256 is supported");
		/* Certificates may carry a compressed point; the KDF input is always the uncompressed one. */
		EVP_PKEY_set_utf8_string_param(pub->pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed");
		if (!EVP_PKEY_get_octet_string_param(pub->pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub->point,
		                                     sizeof(pub->point), &len) ||
		    len != P11_POINT_BYTES || pub->point[0] != 0x04)
			return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "cannot read the P-256 public point");
		pub->alg = P11_ALG_EC;
		pub->bits = 256;
		return 0;
	default:
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "key type not supported: need RSA or EC P-256");
	}
}

/* Build an EVP_PKEY from OpenSSL parameters (name "RSA" or "EC"). */
static EVP_PKEY *p11_pkey_fromdata(const char *name, OSSL_PARAM *params)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
	EVP_PKEY *pkey = NULL;

	if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static EVP_PKEY *p11_rsa_pkey(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	BIGNUM *bn = BN_bin2bn(n, (int)n_len, NULL), *be = BN_bin2bn(e, (int)e_len, NULL);
	EVP_PKEY *pkey = NULL;

	if (bld && bn && be && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
		pkey = p11_pkey_fromdata("RSA", params);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return pkey;
}

static EVP_PKEY *p11_ec_pkey(const uint8_t *point, size_t len)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)(uintptr_t)"prime256v1", 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)point, len),
		OSSL_PARAM_construct_end(),
	};
	return p11_pkey_fromdata("EC", params);
}

/*
 * CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 2.40), but
 * some modules return the raw point. Accept exactly those two shapes.
 */
static int p11_ec_point(const uint8_t *b, size_t len, const uint8_t **ret, size_t *ret_len)
{
	if (len == P11_POINT_BYTES && b[0] == 0x04) {
		*ret = b;
		*ret_len = len;
		return 0;
	}
	if (len == P11_POINT_BYTES + 2 && b[0] == 0x04 && b[1] == P11_POINT_BYTES && b[2] == 0x04) {
		*ret = b + 2;
		*ret_len = P11_POINT_BYTES;
		return 0;
	}
	return -TS_E_NOT_SUPPORTED;
}

static EVP_PKEY *p11_cert_pkey(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	EVP_PKEY *pkey = NULL;

	if (x && p == der + len)
		pkey = X509_get_pubkey(x);
	X509_free(x);
	return pkey;
}

/* Public key from a CKO_PUBLIC_KEY object, else from a certificate, matching the URI. */
static int p11_pub_from_token(ts_protector_request *req, p11_ctx *c, P11KitUri *uri, p11_pub *pub)
{
	CK_OBJECT_HANDLE obj;
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	uint8_t *v1 = NULL, *v2 = NULL;
	size_t l1 = 0, l2 = 0;
	const uint8_t *pt;
	size_t pt_len;
	int r;

	if ((obj = p11_find(c, uri, CKO_PUBLIC_KEY)) != CK_INVALID_HANDLE) {
		if (c->fn->C_GetAttributeValue(c->session, obj, &a, 1) != CKR_OK) {
			r = ts_protector_fail(req, -TS_E_FAILED, "cannot read the key type on '%s'", c->label);
			goto out;
		}
		if (kt == CKK_RSA) {
			if (p11_get_attr(c, obj, CKA_MODULUS, &v1, &l1) == 0 &&
			    p11_get_attr(c, obj, CKA_PUBLIC_EXPONENT, &v2, &l2) == 0)
				pub->pkey = p11_rsa_pkey(v1, l1, v2, l2);
		} else if (kt == CKK_EC) {
			if (p11_get_attr(c, obj, CKA_EC_PARAMS, &v1, &l1) == 0 &&
			    (l1 != sizeof(p11_p256_oid) || memcmp(v1, p11_p256_oid, l1) != 0)) {
				r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "EC key on '%s' is not on P-256", c->label);
				goto out;
			}
			if (v1 && p11_get_attr(c, obj, CKA_EC_POINT, &v2, &l2) == 0 &&
			    p11_ec_point(v2, l2, &pt, &pt_len) == 0)
				pub->pkey = p11_ec_pkey(pt, pt_len);
		} else {
			r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "key type %lu on '%s' not supported: need RSA or EC",
			                      (unsigned long)kt, c->label);
			goto out;
		}
	} else if ((obj = p11_find(c, uri, CKO_CERTIFICATE)) != CK_INVALID_HANDLE) {
		if (p11_get_attr(c, obj, CKA_VALUE, &v1, &l1) == 0)
			pub->pkey = p11_cert_pkey(v1, l1);
	} else {
		r = ts_protector_fail(req, -TS_E_KEY_NOT_FOUND, "no public key or certificate matching the URI on '%s'",
		                      c->label);
		goto out;
	}
	if (!pub->pkey) {
		r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "cannot read the public key on '%s'", c->label);
		goto out;
	}
	if (p11_get_attr(c, obj, CKA_ID, &pub->id, &pub->id_len) < 0) {
		pub->id = NULL;
		pub->id_len = 0;
	}
	r = p11_pub_facts(req, pub);
out:
	free(v1);
	free(v2);
	return r;
}

static int p11_pub_from_pem(ts_protector_request *req, const char *pem, p11_pub *pub)
{
	size_t len = strnlen(pem, P11_PEM_MAX + 1);
	BIO *bio;
	X509 *x;

	if (len > P11_PEM_MAX)
		return ts_protector_fail(req, -TS_E_LIMIT, "public-key PEM text too long");
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return -TS_E_NOMEM;
	pub->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (!pub->pkey && BIO_reset(bio) == 1 && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		pub->pkey = X509_get_pubkey(x);
		X509_free(x);
	}
	BIO_free(bio);
	if (!pub->pkey)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS,
		                         "public-key: not a PEM public key (BEGIN PUBLIC KEY) or certificate");
	return p11_pub_facts(req, pub);
}

/* ---- RSA-OAEP ------------------------------------------------------------- */

/* Encrypt the KEK to the public key, in software. ct gets bits/8 bytes. */
static int p11_rsa_seal(const p11_pub *pub, int hash, const uint8_t *kek, ts_buf *ct)
{
	const EVP_MD *md = hash == P11_SHA256 ? EVP_sha256() : EVP_sha1();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub->pkey, NULL);
	size_t len = pub->bits / 8;
	uint8_t *p;
	int r = -TS_E_FAILED;

	if (!ctx || EVP_PKEY_encrypt_init(ctx) != 1 || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1)
		goto out;
	if ((p = ts_buf_reserve(ct, len)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if (EVP_PKEY_encrypt(ctx, p, &len, kek, TS_KEY_BYTES) != 1 || len != pub->bits / 8)
		goto out;
	r = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* Is mech offered with flag by this context's token? (pkcs11_mech.h) */
static int p11_mech_offered(p11_ctx *c, CK_MECHANISM_TYPE mech, CK_FLAGS flag)
{
	return ts_p11_mech_offered(c->fn, c->slot, mech, flag);
}

/*
 * Can a key of this algorithm on the chosen token ever open what is sealed
 * to it? EC needs CKM_ECDH1_DERIVE with CKF_DERIVE, RSA CKM_RSA_PKCS_OAEP
 * with CKF_DECRYPT; asked with C_GetMechanismInfo, no login. Enrollment
 * refuses a key that cannot (tpm2-pkcs11 1.9 offers no ECDH at all): it
 * would be stored and never unlock. 0, -TS_E_NOT_SUPPORTED, or -TS_E_FAILED
 * when the token does not say.
 */
static int p11_mech_usable(ts_protector_request *req, p11_ctx *c, int alg)
{
	CK_MECHANISM_TYPE mech = alg == P11_ALG_EC ? CKM_ECDH1_DERIVE : CKM_RSA_PKCS_OAEP;
	const char *name = alg == P11_ALG_EC ? "CKM_ECDH1_DERIVE" : "CKM_RSA_PKCS_OAEP";
	int r = p11_mech_offered(c, mech, alg == P11_ALG_EC ? CKF_DERIVE : CKF_DECRYPT);

	if (r == 0)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' does not offer %s: an %s key there could "
		                         "never unlock the vault; use %s key", c->label, name, alg == P11_ALG_EC ? "EC" : "RSA",
		                         alg == P11_ALG_EC ? "an RSA" : "an EC");
	if (r < 0)
		return ts_protector_fail(req, -TS_E_FAILED, "token '%s' does not say whether it offers %s", c->label, name);
	return 0;
}

/*
 * Decrypt the KEK on the token. *param_rejected is set when the token turned
 * down the OAEP hash (SoftHSM2 2.6 takes SHA-1 only), so enroll can retry.
 */
static int p11_rsa_unseal(ts_protector_request *req, p11_ctx *c, CK_OBJECT_HANDLE key, const p11_rec *rec,
                          uint8_t *kek, int *param_rejected)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep = {
		.hashAlg = rec->hash == P11_SHA256 ? CKM_SHA256 : CKM_SHA_1,
		.mgf = rec->hash == P11_SHA256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1,
		.source = CKZ_DATA_SPECIFIED,
	};
	CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	CK_ULONG out_len = rec->ct_len;
	uint8_t *out = NULL;
	CK_RV rv;
	int r;

	if (param_rejected)
		*param_rejected = 0;
	if (p11_mech_offered(c, CKM_RSA_PKCS_OAEP, CKF_DECRYPT) == 0)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' does not offer CKM_RSA_PKCS_OAEP decryption",
		                         c->label);
	rv = c->fn->C_DecryptInit(c->session, &mech, key);
	if (rv == CKR_MECHANISM_PARAM_INVALID || rv == CKR_ARGUMENTS_BAD) {
		if (param_rejected)
			*param_rejected = 1;
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' refuses CKM_RSA_PKCS_OAEP with %s",
		                         c->label, rec->hash == P11_SHA256 ? "SHA-256" : "SHA-1");
	}
	if (rv == CKR_MECHANISM_INVALID)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' does not offer CKM_RSA_PKCS_OAEP", c->label);
	if (rv == CKR_KEY_TYPE_INCONSISTENT)
		return ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED, "the key on '%s' is not an RSA key: not the enrolled key",
		                         c->label);
	if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "key on '%s' may not decrypt with CKM_RSA_PKCS_OAEP: %s",
		                         c->label, p11_kit_strerror(rv));
	if (rv != CKR_OK)
		return ts_protector_fail(req, -TS_E_FAILED, "C_DecryptInit on '%s': %s", c->label, p11_kit_strerror(rv));
	/* Room for a whole modulus: some modules insist on it even for a short plaintext. */
	if ((out = ts_secure_alloc(rec->ct_len)) == NULL) {
		/* End the operation that DecryptInit started. */
		c->fn->C_Decrypt(c->session, (CK_BYTE_PTR)(uintptr_t)rec->ct, rec->ct_len, NULL, &out_len);
		return -TS_E_NOMEM;
	}
	rv = c->fn->C_Decrypt(c->session, (CK_BYTE_PTR)(uintptr_t)rec->ct, rec->ct_len, out, &out_len);
	if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE || rv == CKR_DATA_INVALID ||
	    (rv == CKR_OK && out_len != TS_KEY_BYTES)) {
		r = ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
		                      "the key on '%s' cannot decrypt this protector: not the enrolled key", c->label);
		goto out;
	}
	if (rv != CKR_OK) {
		r = ts_protector_fail(req, -TS_E_FAILED, "C_Decrypt on '%s': %s", c->label, p11_kit_strerror(rv));
		goto out;
	}
	memcpy(kek, out, TS_KEY_BYTES);
	r = 0;
out:
	ts_secure_free(out);
	return r;
}

/* ---- ECDH P-256 ----------------------------------------------------------- */

/* KEK = BLAKE2b-256 keyed with the label, over shared secret ‖ ephemeral point ‖ token point. */
static void p11_ecdh_kdf(const uint8_t *shared, const uint8_t *epk, const uint8_t *tpk, uint8_t *kek)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, (const uint8_t *)P11_KDF_LABEL, strlen(P11_KDF_LABEL), TS_KEY_BYTES);
	crypto_generichash_update(&st, shared, P11_SHARED_BYTES);
	crypto_generichash_update(&st, epk, P11_POINT_BYTES);
	crypto_generichash_update(&st, tpk, P11_POINT_BYTES);
	crypto_generichash_final(&st, kek, TS_KEY_BYTES);
	sodium_memzero(&st, sizeof(st));
}

/*
 * Software side of enrollment: a fresh ephemeral P-256 pair, ECDH with the
 * token's public key, KDF. Only the ephemeral public point survives (OpenSSL
 * clears the private scalar when the key is freed).
 */
static int p11_ecdh_seal(const p11_pub *pub, uint8_t *epk, uint8_t *kek)
{
	EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY_CTX *ctx = NULL;
	uint8_t *shared = ts_secure_alloc(P11_SHARED_BYTES);
	size_t len = 0;
	int r = -TS_E_FAILED;

	if (!shared) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if (!eph || !EVP_PKEY_set_utf8_string_param(eph, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed") ||
	    !EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, epk, P11_POINT_BYTES, &len) ||
	    len != P11_POINT_BYTES)
		goto out;
	len = P11_SHARED_BYTES;
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL)) == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, pub->pkey) != 1 || EVP_PKEY_derive(ctx, shared, &len) != 1 ||
	    len != P11_SHARED_BYTES)
		goto out;
	p11_ecdh_kdf(shared, epk, pub->point, kek);
	r = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(eph);
	ts_secure_free(shared);
	return r;
}

/* Does the token's public key for the URI have point tpk? 1 yes, 0 no, -1 no public key object to tell. */
static int p11_ec_same_key(p11_ctx *c, P11KitUri *uri, const uint8_t *tpk)
{
	CK_OBJECT_HANDLE obj = p11_find(c, uri, CKO_PUBLIC_KEY);
	uint8_t *v = NULL;
	size_t len = 0, pt_len;
	const uint8_t *pt;
	int r = -1;

	if (obj == CK_INVALID_HANDLE || p11_get_attr(c, obj, CKA_EC_POINT, &v, &len) < 0)
		return -1;
	if (p11_ec_point(v, len, &pt, &pt_len) == 0)
		r = pt_len == P11_POINT_BYTES && memcmp(pt, tpk, P11_POINT_BYTES) == 0;
	free(v);
	return r;
}

/* Token side: C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL) into a session object, read it, destroy it. */
static int p11_ecdh_unseal(ts_protector_request *req, p11_ctx *c, P11KitUri *uri, CK_OBJECT_HANDLE key,
                           const p11_rec *rec, uint8_t *kek)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ULONG vlen = P11_SHARED_BYTES;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },         { CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &no, sizeof(no) },           { CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },   { CKA_VALUE_LEN, &vlen, sizeof(vlen) },
	};
	/* PKCS#11 2.40 allows the raw point or its DER OCTET STRING; raw first, as the spec prefers. */
	uint8_t der[P11_POINT_BYTES + 2] = { 0x04, P11_POINT_BYTES };
	CK_ECDH1_DERIVE_PARAMS ecdh = { CKD_NULL, 0, NULL, P11_POINT_BYTES, (CK_BYTE_PTR)(uintptr_t)rec->epk };
	CK_MECHANISM mech = { CKM_ECDH1_DERIVE, &ecdh, sizeof(ecdh) };
	CK_OBJECT_HANDLE secret = CK_INVALID_HANDLE;
	uint8_t *shared = NULL;
	CK_ATTRIBUTE val = { CKA_VALUE, NULL, P11_SHARED_BYTES };
	CK_RV rv;
	int r;

	if (p11_mech_offered(c, CKM_ECDH1_DERIVE, CKF_DERIVE) == 0)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' does not offer CKM_ECDH1_DERIVE", c->label);
	/*
	 * A wrong key would only show later as a KEK that opens nothing; when the
	 * token shows the public half, say so now.
	 */
	if ((r = p11_ec_same_key(c, uri, rec->tpk)) == 0)
		return ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
		                         "the EC key on '%s' is not the enrolled one", c->label);
	rv = c->fn->C_DeriveKey(c->session, &mech, key, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &secret);
	if (rv == CKR_MECHANISM_PARAM_INVALID || rv == CKR_ARGUMENTS_BAD || rv == CKR_DOMAIN_PARAMS_INVALID) {
		memcpy(der + 2, rec->epk, P11_POINT_BYTES);
		ecdh.ulPublicDataLen = sizeof(der);
		ecdh.pPublicData = der;
		rv = c->fn->C_DeriveKey(c->session, &mech, key, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &secret);
	}
	if (rv == CKR_MECHANISM_INVALID)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' does not offer CKM_ECDH1_DERIVE", c->label);
	if (rv == CKR_KEY_TYPE_INCONSISTENT)
		return ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED, "the key on '%s' is not an EC key: not the enrolled key",
		                         c->label);
	if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "key on '%s' may not derive with CKM_ECDH1_DERIVE: %s",
		                         c->label, p11_kit_strerror(rv));
	if (rv != CKR_OK)
		return ts_protector_fail(req, -TS_E_FAILED, "C_DeriveKey(CKM_ECDH1_DERIVE) on '%s': %s", c->label,
		                         p11_kit_strerror(rv));
	if ((shared = ts_secure_alloc(P11_SHARED_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	val.pValue = shared;
	rv = c->fn->C_GetAttributeValue(c->session, secret, &val, 1);
	if (rv != CKR_OK || val.ulValueLen != P11_SHARED_BYTES) {
		r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "token '%s' does not release the ECDH secret: %s", c->label,
		                      rv != CKR_OK ? p11_kit_strerror(rv) : "wrong length");
		goto out;
	}
	p11_ecdh_kdf(shared, rec->epk, rec->tpk, kek);
	r = 0;
out:
	if (secret != CK_INVALID_HANDLE)
		c->fn->C_DestroyObject(c->session, secret);
	sodium_memzero(der, sizeof(der));
	ts_secure_free(shared);
	return r;
}

/* ---- URI and params ------------------------------------------------------- */

/*
 * Parse the user's URI. A PIN in it (pin-value) is refused rather than
 * silently dropped, since it would already have travelled in a D-Bus string;
 * pin-source is dropped (the PIN comes from the caller's fd).
 */
static int p11_uri_parse(ts_protector_request *req, const char *text, P11KitUri **ret)
{
	P11KitUri *uri;
	int pr;

	if (!text)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "option 'uri' (a pkcs11: URI) is required");
	if ((uri = p11_kit_uri_new()) == NULL)
		return -TS_E_NOMEM;
	if ((pr = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri)) != P11_KIT_URI_OK) {
		p11_kit_uri_free(uri);
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "bad pkcs11: URI: %s", p11_kit_uri_message(pr));
	}
	if (p11_kit_uri_get_pin_value(uri)) {
		p11_kit_uri_free(uri);
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "the pkcs11: URI must not contain a PIN (pin-value)");
	}
	if (p11_kit_uri_any_unrecognized(uri)) {
		p11_kit_uri_free(uri);
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "the pkcs11: URI has attributes this daemon cannot honour");
	}
	p11_kit_uri_set_pin_source(uri, NULL);
	*ret = uri;
	return 0;
}

static int p11_uri_names_key(P11KitUri *uri)
{
	return p11_kit_uri_get_attribute(uri, CKA_ID) || p11_kit_uri_get_attribute(uri, CKA_LABEL);
}

/*
 * Pin the URI to what enrollment found: the token's label and serial number
 * and the key's CKA_ID. The serial matters: OpenSC gives every PIV card the
 * same label, and the PIN must never be tried on another card (it would
 * spend that card's retries). serial is NULL for an offline enrollment.
 */
static int p11_uri_complete(P11KitUri *uri, const char *label, const CK_UTF8CHAR *serial, const uint8_t *id,
                            size_t id_len)
{
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
	CK_ATTRIBUTE a = { CKA_ID, (void *)(uintptr_t)id, id_len };

	if (ti && !ti->label[0] && label[0]) {
		memset(ti->label, ' ', sizeof(ti->label));
		memcpy(ti->label, label, strnlen(label, sizeof(ti->label)));
	}
	if (ti && !ti->serialNumber[0] && serial && p11_kit_space_strlen(serial, sizeof(ti->serialNumber)) > 0)
		memcpy(ti->serialNumber, serial, sizeof(ti->serialNumber));
	if (id && id_len && !p11_kit_uri_get_attribute(uri, CKA_ID))
		return p11_kit_uri_set_attribute(uri, &a) == P11_KIT_URI_OK ? 0 : -TS_E_NOMEM;
	return 0;
}

/* Decode and check hostile params bytes. rec points into *ret_p. */
static int p11_rec_decode(const uint8_t *b, size_t len, ts_params **ret_p, p11_rec *rec)
{
	ts_params *p = NULL;
	const char *alg, *hash;
	uint64_t v, bits;
	size_t n;
	int r;

	memset(rec, 0, sizeof(*rec));
	if ((r = ts_params_decode(b, len, &p)) < 0)
		return r;
	r = -TS_E_CORRUPT;
	if (ts_params_get_uint(p, "v", &v) < 0 || v != P11_VERSION)
		goto out;
	if (ts_params_get_str(p, "uri", &rec->uri) < 0 || ts_params_get_str(p, "token", &rec->token) < 0 ||
	    ts_params_get_bytes(p, "id", &rec->id, &rec->id_len) < 0 || ts_params_get_str(p, "alg", &alg) < 0)
		goto out;
	if (strcmp(alg, "rsa-oaep") == 0) {
		rec->alg = P11_ALG_RSA;
		if (ts_params_get_uint(p, "bits", &bits) < 0 || bits < P11_RSA_MIN_BITS || bits > P11_RSA_MAX_BITS ||
		    bits % 8 || ts_params_get_str(p, "hash", &hash) < 0 ||
		    ts_params_get_bytes(p, "ct", &rec->ct, &rec->ct_len) < 0 || rec->ct_len != bits / 8)
			goto out;
		rec->bits = (unsigned)bits;
		if (strcmp(hash, "sha1") == 0)
			rec->hash = P11_SHA1;
		else if (strcmp(hash, "sha256") == 0)
			rec->hash = P11_SHA256;
		else
			goto out;
	} else if (strcmp(alg, "ec-p256-ecdh") == 0) {
		rec->alg = P11_ALG_EC;
		rec->bits = 256;
		if (ts_params_get_bytes(p, "epk", &rec->epk, &n) < 0 || n != P11_POINT_BYTES || rec->epk[0] != 0x04 ||
		    ts_params_get_bytes(p, "tpk", &rec->tpk, &n) < 0 || n != P11_POINT_BYTES || rec->tpk[0] != 0x04)
			goto out;
	} else
		goto out;
	*ret_p = p;
	p = NULL;
	r = 0;
out:
	ts_params_free(p);
	return r;
}

/*
 * The unlock path proper, on a session already logged in: find the private
 * key the URI names and recover the KEK with it.
 */
static int p11_unseal(ts_protector_request *req, p11_ctx *c, P11KitUri *uri, const p11_rec *rec, uint8_t *kek,
                      int *param_rejected)
{
	CK_OBJECT_HANDLE key = p11_find(c, uri, CKO_PRIVATE_KEY);

	CK_KEY_TYPE kt, want = rec->alg == P11_ALG_RSA ? CKK_RSA : CKK_EC;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };

	if (key == CK_INVALID_HANDLE)
		return ts_protector_fail(req, -TS_E_KEY_NOT_FOUND, "no private key matching the URI on '%s'", c->label);
	/* A key of the other type is a different key, not a missing mechanism. */
	if (c->fn->C_GetAttributeValue(c->session, key, &a, 1) == CKR_OK && kt != want)
		return ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED, "the key on '%s' is not an %s key: not the enrolled key",
		                         c->label, want == CKK_RSA ? "RSA" : "EC");
	if (rec->alg == P11_ALG_RSA)
		return p11_rsa_unseal(req, c, key, rec, kek, param_rejected);
	return p11_ecdh_unseal(req, c, uri, key, rec, kek);
}

/* ---- ops ------------------------------------------------------------------ */

static int p11_hex(char *out, size_t cap, const uint8_t *b, size_t len)
{
	if (cap < 2 * len + 1)
		return -TS_E_LIMIT;
	sodium_bin2hex(out, cap, b, len);
	return 0;
}

/* Seal a fresh KEK to pub and write the params record (everything but the check). */
static int p11_seal(const p11_pub *pub, int hash, const char *uri_text, const char *token, uint8_t *kek,
                    ts_buf *out)
{
	ts_params *p = NULL;
	ts_buf ct = { 0 };
	uint8_t epk[P11_POINT_BYTES];
	int r;

	if ((r = ts_params_new(&p)) < 0)
		return r;
	if ((r = ts_params_set_uint(p, "v", P11_VERSION)) < 0 || (r = ts_params_set_str(p, "uri", uri_text)) < 0 ||
	    (r = ts_params_set_str(p, "token", token)) < 0 ||
	    (r = ts_params_set_bytes(p, "id", pub->id ? pub->id : (const uint8_t *)"", pub->id_len)) < 0)
		goto out;
	if (pub->alg == P11_ALG_RSA) {
		randombytes_buf(kek, TS_KEY_BYTES);
		if ((r = p11_rsa_seal(pub, hash, kek, &ct)) < 0 || (r = ts_params_set_str(p, "alg", "rsa-oaep")) < 0 ||
		    (r = ts_params_set_uint(p, "bits", pub->bits)) < 0 ||
		    (r = ts_params_set_str(p, "hash", p11_hash_name(hash))) < 0 ||
		    (r = ts_params_set_bytes(p, "ct", ct.data, ct.len)) < 0)
			goto out;
	} else {
		if ((r = p11_ecdh_seal(pub, epk, kek)) < 0 || (r = ts_params_set_str(p, "alg", "ec-p256-ecdh")) < 0 ||
		    (r = ts_params_set_bytes(p, "epk", epk, sizeof(epk))) < 0 ||
		    (r = ts_params_set_bytes(p, "tpk", pub->point, sizeof(pub->point))) < 0)
			goto out;
	}
	out->len = 0;
	r = ts_params_encode(p, out);
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	ts_params_free(p);
	ts_buf_free(&ct);
	return r;
}

/*
 * Prove the protector opens before it is stored: decode the record just
 * written, recover the KEK on the token, compare. *param_rejected as for
 * p11_rsa_unseal.
 */
static int p11_check(ts_protector_request *req, p11_ctx *c, P11KitUri *uri, const ts_buf *params, const uint8_t *kek,
                     int *param_rejected)
{
	ts_params *p = NULL;
	p11_rec rec;
	uint8_t *again = ts_secure_alloc(TS_KEY_BYTES);
	int r;

	if (!again)
		return -TS_E_NOMEM;
	if ((r = p11_rec_decode(params->data, params->len, &p, &rec)) < 0)
		goto out;
	if ((r = p11_unseal(req, c, uri, &rec, again, param_rejected)) < 0)
		goto out;
	if (sodium_memcmp(again, kek, TS_KEY_BYTES) != 0)
		r = ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
		                      "the private key on '%s' does not match its public key: refusing to enroll", c->label);
out:
	ts_params_free(p);
	ts_secure_free(again);
	return r;
}

/*
 * The one token a PIN for this URI may go to. A URI without a serial may
 * match several tokens of one label (PIV cards of one make, two SoftHSM
 * tokens): then only a token that shows the key (its public key or
 * certificate, before any login) counts, and if that is not exactly one,
 * no token gets the PIN: a wrong one would cost a retry of a card that was
 * never meant.
 */
static int p11_open_for_login(ts_protector_request *req, p11_ctx *c, P11KitUri *uri, int need_key)
{
	char want[33];
	int tokens, with_key;

	(void)p11_scan_tokens(req, c, uri, p11_has_pub, &tokens, &with_key);
	/* need_key: the key must show before login (enrollment reads it), so a token without it never gets the PIN. */
	if (tokens <= 1 || with_key == 1 || (need_key && with_key == 0))
		return p11_scan_tokens(req, c, uri, need_key || with_key == 1 ? p11_has_pub : NULL, NULL, NULL);
	p11_uri_label(uri, want);
	return ts_protector_fail(req, -TS_E_AMBIGUOUS, "%d tokens named '%s' could be this protector's and %s: "
	                         "no PIN was tried; enroll it again naming the token's serial (pkcs11: URI serial=)",
	                         tokens, want, with_key ? "more than one shows its key" : "none shows its key before login");
}

static int p11_enroll(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc, char *secret_out,
                      size_t secret_out_cap, size_t *secret_out_len)
{
	const char *pem = ts_protector_option(req, "public-key");
	const char *hash_opt = ts_protector_option(req, "oaep-hash");
	P11KitUri *uri = NULL;
	p11_ctx c = { 0 };
	p11_pub pub = { 0 };
	char *uri_text = NULL, label[33] = "", idhex[2 * 64 + 1] = "";
	ts_buf params = { 0 };
	int r, hash = P11_SHA256, rejected = 0, token = 0;
	CK_ATTRIBUTE *ida;

	if (secret_out_len)
		*secret_out_len = 0;
	if (hash_opt) {
		if (strcmp(hash_opt, "sha256") == 0)
			hash = P11_SHA256;
		else if (strcmp(hash_opt, "sha1") == 0)
			hash = P11_SHA1;
		else
			return ts_protector_fail(req, -TS_E_INVALID_ARGS, "oaep-hash must be sha256 or sha1");
	}
	if ((r = p11_uri_parse(req, ts_protector_option(req, "uri"), &uri)) < 0)
		return r;
	if (!p11_uri_names_key(uri)) {
		r = ts_protector_fail(req, -TS_E_INVALID_ARGS, "the pkcs11: URI must name the key (id= or object=)");
		goto out;
	}

	/*
	 * With the token: read its public key, log in, and prove the unlock path.
	 * Offline (public-key PEM, no PIN): trust the PEM; the token is never
	 * logged in to, but it must be there to show it offers the mechanism the
	 * key's unlock needs (a key it cannot use is refused, not stored).
	 */
	if (pem) {
		if ((r = p11_pub_from_pem(req, pem, &pub)) < 0)
			goto out;
		if ((ida = p11_kit_uri_get_attribute(uri, CKA_ID)) != NULL && ida->ulValueLen > 0) {
			if ((pub.id = malloc(ida->ulValueLen)) == NULL) {
				r = -TS_E_NOMEM;
				goto out;
			}
			memcpy(pub.id, ida->pValue, ida->ulValueLen);
			pub.id_len = ida->ulValueLen;
		}
		/* Else unlock would offer the PIN to whichever token came first. */
		if (!p11_kit_uri_get_token_info(uri)->label[0] && !p11_kit_uri_get_token_info(uri)->serialNumber[0]) {
			r = ts_protector_fail(req, -TS_E_INVALID_ARGS,
			                      "enrolling from a public key: the pkcs11: URI must name the token (token= or serial=)");
			goto out;
		}
		p11_uri_label(uri, label);
		if (!p11_kit_uri_get_token_info(uri)->label[0])
			label[0] = '\0';
		token = p11_have_pin(req);
	} else {
		if (!p11_have_pin(req)) {
			r = ts_protector_fail(req, -TS_E_PIN_REQUIRED,
			                      "PIN required to enroll a PKCS#11 token (its unlock is tested once)");
			goto out;
		}
		token = 1;
	}
	if (token) {
		if ((r = p11_load(req, &c)) < 0 || (r = p11_open_for_login(req, &c, uri, !pem)) < 0 ||
		    (r = p11_login(req, &c)) < 0)
			goto out;
		if (!pem && (r = p11_pub_from_token(req, &c, uri, &pub)) < 0)
			goto out;
		snprintf(label, sizeof(label), "%s", c.label);
	} else if ((r = p11_load(req, &c)) < 0 || (r = p11_open_for_login(req, &c, uri, 0)) < 0) {
		char want[33];

		p11_uri_label(uri, want);
		if (r == -TS_E_TOKEN_ABSENT)
			r = ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "enrolling from a public key checks that the token can "
			                      "use the key: insert token '%s' (no PIN is needed)", want);
		goto out;
	}
	if ((r = p11_mech_usable(req, &c, pub.alg)) < 0)
		goto out;
	if ((r = p11_uri_complete(uri, label, token ? c.serial : NULL, pub.id, pub.id_len)) < 0)
		goto out;
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_ANY, &uri_text) != P11_KIT_URI_OK) {
		r = ts_protector_fail(req, -TS_E_FAILED, "cannot format the pkcs11: URI");
		goto out;
	}
	if ((r = p11_seal(&pub, hash, uri_text, label, kek, &params)) < 0) {
		r = ts_protector_fail(req, r, "cannot seal the KEK to the public key");
		goto out;
	}
	if (token) {
		r = p11_check(req, &c, uri, &params, kek, &rejected);
		if (r < 0 && rejected && pub.alg == P11_ALG_RSA && !hash_opt) {
			/* The token takes OAEP with SHA-1 only (as SoftHSM2 2.6 does): seal again with it. */
			hash = P11_SHA1;
			if ((r = p11_seal(&pub, hash, uri_text, label, kek, &params)) < 0)
				goto out;
			r = p11_check(req, &c, uri, &params, kek, &rejected);
		}
		if (r < 0)
			goto out;
	}
	if ((r = ts_buf_append(ret_params, params.data, params.len)) < 0)
		goto out;
	if (pub.id_len && p11_hex(idhex, sizeof(idhex), pub.id, pub.id_len) < 0)
		snprintf(idhex, sizeof(idhex), "(long)");
	if (pub.alg == P11_ALG_RSA)
		snprintf(ret_desc, TS_PROTECTOR_DESC_MAX, "PKCS#11 RSA-%u key %s on '%s'%s", pub.bits,
		         idhex[0] ? idhex : "(no id)", label[0] ? label : "(any token)", token ? "" : " (enrolled offline)");
	else
		snprintf(ret_desc, TS_PROTECTOR_DESC_MAX, "PKCS#11 EC P-256 key %s on '%s'%s",
		         idhex[0] ? idhex : "(no id)", label[0] ? label : "(any token)", token ? "" : " (enrolled offline)");
	r = 0;
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	p11_close(&c);
	p11_pub_clear(&pub);
	free(uri_text);
	p11_kit_uri_free(uri);
	ts_buf_free(&params);
	return r;
}

static int p11_unlock(ts_protector_request *req, const uint8_t *params, size_t params_len, uint8_t *kek)
{
	ts_params *p = NULL;
	p11_rec rec;
	P11KitUri *uri = NULL;
	p11_ctx c = { 0 };
	int r;

	if ((r = p11_rec_decode(params, params_len, &p, &rec)) < 0)
		return ts_protector_fail(req, r, "pkcs11 protector parameters are corrupt");
	if ((r = p11_uri_parse(req, rec.uri, &uri)) < 0) {
		r = ts_protector_fail(req, -TS_E_CORRUPT, "pkcs11 protector parameters are corrupt (URI)");
		goto out;
	}
	if ((r = p11_load(req, &c)) < 0 || (r = p11_open_for_login(req, &c, uri, 0)) < 0 ||
	    (r = p11_login(req, &c)) < 0 || (r = p11_unseal(req, &c, uri, &rec, kek, NULL)) < 0)
		goto out;
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	p11_close(&c);
	p11_kit_uri_free(uri);
	ts_params_free(p);
	return r;
}

static int p11_describe(const uint8_t *params, size_t params_len, int (*add)(void *ud, const char *key, const char *value),
                        void *ud)
{
	ts_params *p = NULL;
	p11_rec rec;
	char idhex[2 * 128 + 1] = "", alg[48];
	int r;

	if ((r = p11_rec_decode(params, params_len, &p, &rec)) < 0)
		return r;
	if (rec.id_len && p11_hex(idhex, sizeof(idhex), rec.id, rec.id_len) < 0)
		snprintf(idhex, sizeof(idhex), "(long)");
	if (rec.alg == P11_ALG_RSA)
		snprintf(alg, sizeof(alg), "rsa%u-oaep-%s", rec.bits, p11_hash_name(rec.hash));
	else
		snprintf(alg, sizeof(alg), "ec-p256-ecdh");
	if ((r = add(ud, "token", rec.token)) < 0 || (r = add(ud, "key-id", idhex)) < 0 ||
	    (r = add(ud, "algorithm", alg)) < 0 || (r = add(ud, "uri", rec.uri)) < 0)
		goto out;
out:
	ts_params_free(p);
	return r;
}

static int p11_needs_secret(const uint8_t *params, size_t params_len)
{
	return 1;
}

/*
 * Is a token matching the stored URI there? Loads the modules afresh each
 * time (SoftHSM2 and many smartcard modules only rescan at C_Initialize),
 * opens no login and asks for no PIN: autolock polls this.
 */
static int p11_present(ts_protector_request *req, const uint8_t *params, size_t params_len)
{
	ts_params *p = NULL;
	p11_rec rec;
	P11KitUri *uri = NULL;
	p11_ctx c = { 0 };
	int r;

	if ((r = p11_rec_decode(params, params_len, &p, &rec)) < 0)
		return ts_protector_fail(req, r, "pkcs11 protector parameters are corrupt");
	if ((r = p11_uri_parse(req, rec.uri, &uri)) < 0) {
		r = ts_protector_fail(req, -TS_E_CORRUPT, "pkcs11 protector parameters are corrupt (URI)");
		goto out;
	}
	if ((r = p11_load(req, &c)) < 0)
		goto out;
	/* The token a PIN would go to (p11_open_for_login): several it cannot tell apart is "cannot tell". */
	r = p11_open_for_login(req, &c, uri, 0);
	r = r == -TS_E_TOKEN_ABSENT ? 0 : r < 0 ? r : 1;
	if (r == 1 && req->token_id) {
		char serial[2 * sizeof(c.serial) + 1];

		p11_hex(serial, sizeof(serial), c.serial, sizeof(c.serial));
		snprintf(req->token_id, req->token_id_len, "pkcs11 %s %s", c.label, serial);
	}
out:
	p11_close(&c);
	p11_kit_uri_free(uri);
	ts_params_free(p);
	return r;
}

const ts_protector_ops ts_protector_pkcs11 = {
	.type = "pkcs11",
	.enroll = p11_enroll,
	.unlock = p11_unlock,
	.describe = p11_describe,
	.needs_secret = p11_needs_secret,
	.present = p11_present,
};
