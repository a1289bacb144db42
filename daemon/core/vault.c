/* vault.c — a vault: protectors wrapping VS, the MACed header, the keyring, and the CBOR vault file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/escrow.h"
#include "core/internal.h"
#include "core/keyring.h"
#include "core/shamir.h"
#include "core/vault.h"

#define VS_AAD_LABEL "tokenseal-protector-v1"
#define SHARE_AAD_LABEL "tokenseal-protector-share-v1"
/* KDF context of the k-of-n polynomial's coefficients (docs/FORMAT.md). */
#define KDF_CTX_SHAREPOLY "tsshpoly"
#define MAC_LABEL "tokenseal-vault-v1"
#define MAC_BYTES 32
#define NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
/* nonce || VS || tag */
#define WRAPPED_VS_BYTES (NPUB + TS_KEY_BYTES + ABYTES)
/* x || nonce || y || tag, in a k-of-n vault */
#define WRAPPED_SHARE_BYTES (1 + NPUB + TS_KEY_BYTES + ABYTES)
#define SHARE_BYTES TS_SHAMIR_SHARE_BYTES(TS_KEY_BYTES)

_Static_assert(sizeof(((ts_vault *)0)->mac) == MAC_BYTES, "header MAC size");

/* Keys of the three CBOR maps, each list in deterministic (RFC 8949 §4.2.1) order. */
enum { F_MAC, F_FORMAT, F_HEADER, F_KEYRING, F_N };
static const char *const file_keys[F_N] = { "mac", "format", "header", "keyring" };

/*
 * Header keys: the required ones first, then the optional ones (present only
 * when not at their default: a format-1 vault without k-of-n or escrow is
 * byte for byte what it was before they existed). header_encode writes them
 * all in deterministic order.
 */
enum { H_ID, H_NAME, H_OWNER, H_CREATED, H_GENERATION, H_PROTECTORS, H_KEY_VERSION,
       H_NEXT_PROTECTOR, H_MIN_KEY_VERSION, H_REQUIRED,
       H_ESCROW = H_REQUIRED, H_THRESHOLD, H_NV_COUNTER, H_ESCROW_THRESHOLD, H_N };
static const char *const header_keys[H_N] = {
	"id", "name", "owner", "created", "generation", "protectors", "key_version",
	"next_protector", "min_key_version",
	"escrow", "threshold", "nv_counter", "escrow_threshold",
};

/* The optional nv_counter map: all three keys, written in deterministic order. */
enum { N_AUTH, N_VALUE, N_HANDLE, N_N };
static const char *const nv_keys[N_N] = { "auth", "value", "handle" };

/* Escrow map: the required keys, then `type` (absent for X25519, so older files parse unchanged). */
enum { E_X, E_LABEL, E_PUBKEY, E_SEALED, E_REQUIRED, E_TYPE = E_REQUIRED, E_N };
static const char *const escrow_keys[E_N] = { "x", "label", "pubkey", "sealed", "type" };
#define ESCROW_TYPE_RSA_NAME "rsa"

enum { P_ID, P_TYPE, P_PARAMS, P_CREATED, P_WRAPPED_VS, P_DESCRIPTION, P_N };
static const char *const protector_keys[P_N] = {
	"id", "type", "params", "created", "wrapped_vs", "description",
};

/* ---- names and small validators ------------------------------------------ */

static int is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int ts_vault_name_valid(const char *name)
{
	size_t i;

	if (!name || name[0] == '\0' || name[0] == '.' || name[0] == '-')
		return 0;
	for (i = 0; name[i]; i++)
		if (i >= TS_VAULT_NAME_MAX || !is_name_char(name[i]))
			return 0;
	return 1;
}

/* Protector ids and types: [A-Za-z0-9._-]{1,max-1}. */
static int token_valid(const char *s, size_t len, size_t max)
{
	size_t i;

	if (len == 0 || len >= max)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_name_char(s[i]))
			return 0;
	return 1;
}

/*
 * Descriptions are shown by `tokenseal status`: UTF-8 without C0/C1 control
 * characters, so a crafted vault file cannot drive the user's terminal.
 */
static int description_valid(const char *s, size_t len)
{
	size_t i;

	if (len >= TS_PROTECTOR_DESC_MAX || !ts_utf8_valid((const uint8_t *)s, len))
		return 0;
	for (i = 0; i < len; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == 0xc2 && i + 1 < len && (uint8_t)s[i + 1] >= 0x80 && (uint8_t)s[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

void ts_vault_id_hex(const ts_vault *v, char out[2 * TS_VAULT_ID_BYTES + 1])
{
	sodium_bin2hex(out, 2 * TS_VAULT_ID_BYTES + 1, v->id, TS_VAULT_ID_BYTES);
}

/* ---- life cycle ----------------------------------------------------------- */

static void protector_clear(ts_protector_record *p)
{
	free(p->params);
	free(p->wrapped_vs);
	sodium_memzero(p, sizeof(*p));
}

static void escrow_clear(ts_escrow_record *e)
{
	free(e->pubkey);
	free(e->sealed);
	sodium_memzero(e, sizeof(*e));
}

static void escrow_free_all(ts_escrow_record *e, size_t n)
{
	size_t i;

	for (i = 0; e && i < n; i++)
		escrow_clear(&e[i]);
	free(e);
}

void ts_vault_forget_shares(ts_vault *v)
{
	if (!v)
		return;
	ts_secure_free(v->pending);
	v->pending = NULL;
	v->n_pending = 0;
	sodium_memzero(v->pending_ids, sizeof(v->pending_ids));
}

void ts_vault_lock(ts_vault *v)
{
	if (!v)
		return;
	ts_vault_forget_shares(v);
	ts_secure_free(v->vs);
	v->vs = NULL;
	ts_keyring_free(v->keyring);
	v->keyring = NULL;
}

void ts_vault_free(ts_vault *v)
{
	size_t i;

	if (!v)
		return;
	ts_vault_lock(v);
	for (i = 0; i < v->n_protectors; i++)
		protector_clear(&v->protectors[i]);
	free(v->protectors);
	escrow_free_all(v->escrow, v->n_escrow);
	free(v->keyring_sealed);
	sodium_memzero(v, sizeof(*v));
	free(v);
}

int ts_vault_create(ts_vault **ret, const char *name, uint32_t owner_uid, uint64_t now)
{
	ts_vault *v;
	int r;

	if (!ret || !ts_vault_name_valid(name))
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -TS_E_NOMEM;
	memcpy(v->name, name, strlen(name) + 1);
	v->owner_uid = owner_uid;
	randombytes_buf(v->id, sizeof(v->id));
	v->created = now;
	v->generation = 0;
	v->next_protector = 1;
	v->threshold = 1;
	if ((v->vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	randombytes_buf(v->vs, TS_KEY_BYTES);
	if ((r = ts_keyring_new(&v->keyring, now)) < 0)
		goto fail;
	v->key_version = ts_keyring_current(v->keyring);
	v->min_key_version = ts_keyring_min_version(v->keyring);
	*ret = v;
	return 0;
fail:
	ts_vault_free(v);
	return r;
}

/* ---- protectors ----------------------------------------------------------- */

const ts_protector_record *ts_vault_find_protector(const ts_vault *v, const char *id)
{
	size_t i;

	if (!v || !id)
		return NULL;
	for (i = 0; i < v->n_protectors; i++)
		if (strcmp(v->protectors[i].id, id) == 0)
			return &v->protectors[i];
	return NULL;
}

/* label || vault id || u8 len || id || u8 len || type: the part both AADs below share. */
static size_t protector_aad(uint8_t *aad, const char *label, const uint8_t vault_id[TS_VAULT_ID_BYTES],
                            const char *id, const char *type)
{
	size_t n = strlen(label), l;

	memcpy(aad, label, n);
	memcpy(aad + n, vault_id, TS_VAULT_ID_BYTES);
	n += TS_VAULT_ID_BYTES;
	l = strlen(id);
	aad[n++] = (uint8_t)l;
	memcpy(aad + n, id, l);
	n += l;
	l = strlen(type);
	aad[n++] = (uint8_t)l;
	memcpy(aad + n, type, l);
	return n + l;
}

/*
 * AAD of a wrapped VS: "tokenseal-protector-v1" || vault id || u8 len || id
 * || u8 len || type. The lengths keep ("p1", "0x") and ("p10", "x") apart.
 */
static size_t vs_aad(uint8_t *aad, const uint8_t vault_id[TS_VAULT_ID_BYTES], const char *id,
                     const char *type)
{
	return protector_aad(aad, VS_AAD_LABEL, vault_id, id, type);
}
#define VS_AAD_MAX (sizeof(SHARE_AAD_LABEL) - 1 + TS_VAULT_ID_BYTES + 1 + TS_PROTECTOR_ID_MAX + 1 + \
                    TS_PROTECTOR_TYPE_MAX + 2)

/*
 * AAD of a wrapped share: "tokenseal-protector-share-v1" || vault id || u8
 * len || id || u8 len || type || u8 k || u8 x. k is bound so that a share
 * cannot be replayed into a header whose threshold was edited.
 */
static size_t share_aad(uint8_t *aad, const ts_vault *v, const char *id, const char *type, uint8_t x)
{
	size_t n = protector_aad(aad, SHARE_AAD_LABEL, v->id, id, type);

	aad[n++] = v->threshold;
	aad[n++] = x;
	return n;
}

/*
 * The coefficients of the k-of-n polynomial: a_m = KDF(VS, "tsshpoly",
 * subkey id k * 256 + m) for m = 1..k-1. Derived rather than stored, so a
 * protector added later gets a share of the same polynomial without the
 * others being present, and a new VS (rekey) gives a new polynomial.
 */
static int share_poly(const ts_vault *v, const uint8_t vs[TS_KEY_BYTES], uint8_t **ret)
{
	uint8_t *c;
	unsigned m;

	if ((c = ts_secure_alloc((size_t)(v->threshold - 1) * TS_KEY_BYTES)) == NULL)
		return -TS_E_NOMEM;
	for (m = 1; m < v->threshold; m++)
		if (crypto_kdf_derive_from_key(c + (m - 1) * TS_KEY_BYTES, TS_KEY_BYTES,
		                               (uint64_t)v->threshold * 256 + m, KDF_CTX_SHAREPOLY, vs) != 0) {
			ts_secure_free(c);
			return -TS_E_FAILED;
		}
	*ret = c;
	return 0;
}

/* x of a protector's share: the first byte of its wrapped value (public). */
static uint8_t protector_x(const ts_protector_record *p)
{
	return p->wrapped_vs_len == WRAPPED_SHARE_BYTES ? p->wrapped_vs[0] : 0;
}

/* Smallest x in 1..255 that no protector of v holds (there are at most 32). */
static uint8_t free_x(const ts_vault *v)
{
	unsigned x;
	size_t i;

	for (x = 1; x < 256; x++) {
		for (i = 0; i < v->n_protectors; i++)
			if (protector_x(&v->protectors[i]) == x)
				break;
		if (i == v->n_protectors)
			return (uint8_t)x;
	}
	return 0;
}

/*
 * Fill rec->wrapped_vs (malloc()ed here) for vault secret vs under kek: VS
 * itself, or in a k-of-n vault the share at x (x != 0).
 */
static int protector_wrap(const ts_vault *v, ts_protector_record *rec, const uint8_t vs[TS_KEY_BYTES],
                          const uint8_t kek[TS_KEY_BYTES], uint8_t x)
{
	uint8_t aad[VS_AAD_MAX], *coeffs = NULL, *share = NULL, *w;
	size_t aad_len;
	int r;

	if (v->threshold <= 1) {
		if ((w = malloc(WRAPPED_VS_BYTES)) == NULL)
			return -TS_E_NOMEM;
		aad_len = vs_aad(aad, v->id, rec->id, rec->type);
		randombytes_buf(w, NPUB);
		if (crypto_aead_xchacha20poly1305_ietf_encrypt(w + NPUB, NULL, vs, TS_KEY_BYTES, aad, aad_len,
		                                               NULL, w, kek) != 0) {
			free(w);
			return -TS_E_FAILED;
		}
		rec->wrapped_vs = w;
		rec->wrapped_vs_len = WRAPPED_VS_BYTES;
		return 0;
	}
	if (x == 0)
		return -TS_E_LIMIT;
	if ((w = malloc(WRAPPED_SHARE_BYTES)) == NULL)
		return -TS_E_NOMEM;
	if ((share = ts_secure_alloc(SHARE_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if ((r = share_poly(v, vs, &coeffs)) < 0 ||
	    (r = ts_shamir_share_at(vs, TS_KEY_BYTES, v->threshold, coeffs, x, share)) < 0)
		goto out;
	w[0] = x;
	aad_len = share_aad(aad, v, rec->id, rec->type, x);
	randombytes_buf(w + 1, NPUB);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(w + 1 + NPUB, NULL, share + 1, TS_KEY_BYTES, aad, aad_len,
	                                               NULL, w + 1, kek) != 0) {
		r = -TS_E_FAILED;
		goto out;
	}
	rec->wrapped_vs = w;
	rec->wrapped_vs_len = WRAPPED_SHARE_BYTES;
	w = NULL;
	r = 0;
out:
	free(w);
	ts_secure_free(share);
	ts_secure_free(coeffs);
	return r;
}

/*
 * Open a protector's wrapped value with kek into out (secure, SHARE_BYTES):
 * VS (32 bytes) in a 1-of-n vault, x || y in a k-of-n vault.
 */
static int protector_unwrap(const ts_vault *v, const ts_protector_record *p, const uint8_t kek[TS_KEY_BYTES],
                            uint8_t *out)
{
	uint8_t aad[VS_AAD_MAX];
	size_t aad_len;

	if (v->threshold <= 1) {
		if (p->wrapped_vs_len != WRAPPED_VS_BYTES)
			return -TS_E_CORRUPT;
		aad_len = vs_aad(aad, v->id, p->id, p->type);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, p->wrapped_vs + NPUB,
		                                               p->wrapped_vs_len - NPUB, aad, aad_len,
		                                               p->wrapped_vs, kek) != 0)
			return -TS_E_AUTH_FAILED;
		return 0;
	}
	if (p->wrapped_vs_len != WRAPPED_SHARE_BYTES || p->wrapped_vs[0] == 0)
		return -TS_E_CORRUPT;
	out[0] = p->wrapped_vs[0];
	aad_len = share_aad(aad, v, p->id, p->type, out[0]);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out + 1, NULL, NULL, p->wrapped_vs + 1 + NPUB,
	                                               p->wrapped_vs_len - 1 - NPUB, aad, aad_len,
	                                               p->wrapped_vs + 1, kek) != 0) {
		sodium_memzero(out, SHARE_BYTES);
		return -TS_E_AUTH_FAILED;
	}
	return 0;
}

int ts_vault_add_protector(ts_vault *v, const char *type, const char *description,
                           const uint8_t kek[TS_KEY_BYTES], const uint8_t *params,
                           size_t params_len, uint64_t now, const char **ret_id)
{
	ts_protector_record rec, *np;
	int r;

	if (!v || !type || !kek || (params_len && !params))
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if (!description)
		description = "";
	if (!token_valid(type, strlen(type), TS_PROTECTOR_TYPE_MAX) ||
	    !description_valid(description, strlen(description)))
		return -TS_E_INVALID_ARGS;
	if (v->n_protectors >= TS_VAULT_MAX_PROTECTORS || v->next_protector == UINT32_MAX ||
	    params_len > TS_VAULT_FILE_MAX)
		return -TS_E_LIMIT;

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.id, sizeof(rec.id), "p%u", v->next_protector);
	memcpy(rec.type, type, strlen(type) + 1);
	memcpy(rec.description, description, strlen(description) + 1);
	rec.created = now;
	if ((rec.params = malloc(params_len ? params_len : 1)) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	if (params_len)
		memcpy(rec.params, params, params_len);
	rec.params_len = params_len;
	if ((r = protector_wrap(v, &rec, v->vs, kek, free_x(v))) < 0)
		goto fail;
	if ((np = realloc(v->protectors, (v->n_protectors + 1) * sizeof(*np))) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	v->protectors = np;
	v->protectors[v->n_protectors] = rec;
	v->n_protectors++;
	v->next_protector++;
	if (ret_id)
		*ret_id = v->protectors[v->n_protectors - 1].id;
	return 0;
fail:
	protector_clear(&rec);
	return r;
}

int ts_vault_remove_protector(ts_vault *v, const char *id)
{
	const ts_protector_record *p;
	size_t i;

	if (!v || !id)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if ((p = ts_vault_find_protector(v, id)) == NULL)
		return -TS_E_NO_SUCH_PROTECTOR;
	/* Fewer than k protectors could never open the vault again. */
	if (v->n_protectors == 1 || v->n_protectors - 1 < v->threshold)
		return -TS_E_LAST_PROTECTOR;
	i = (size_t)(p - v->protectors);
	protector_clear(&v->protectors[i]);
	memmove(&v->protectors[i], &v->protectors[i + 1], (v->n_protectors - i - 1) * sizeof(v->protectors[0]));
	v->n_protectors--;
	return 0;
}

/* ---- the header: CBOR encoding and MAC ------------------------------------ */

static cbor_item_t *protector_item(const ts_protector_record *p)
{
	cbor_item_t *m;

	if ((m = cbor_new_definite_map(P_N)) == NULL)
		return NULL;
	if (ts_cbor_map_put(m, protector_keys[P_ID], cbor_build_string(p->id)) < 0 ||
	    ts_cbor_map_put(m, protector_keys[P_TYPE], cbor_build_string(p->type)) < 0 ||
	    ts_cbor_map_put(m, protector_keys[P_PARAMS], cbor_build_bytestring(p->params, p->params_len)) < 0 ||
	    ts_cbor_map_put(m, protector_keys[P_CREATED], ts_cbor_build_uint(p->created)) < 0 ||
	    ts_cbor_map_put(m, protector_keys[P_WRAPPED_VS],
	                    cbor_build_bytestring(p->wrapped_vs, p->wrapped_vs_len)) < 0 ||
	    ts_cbor_map_put(m, protector_keys[P_DESCRIPTION], cbor_build_string(p->description)) < 0) {
		cbor_decref(&m);
		return NULL;
	}
	return m;
}

static cbor_item_t *escrow_item(const ts_escrow_record *e)
{
	cbor_item_t *m;

	int typed = e->type != TS_ESCROW_TYPE_X25519;

	if ((m = cbor_new_definite_map(E_REQUIRED + typed)) == NULL)
		return NULL;
	/* Deterministic order: x, type, label, pubkey, sealed. */
	if (ts_cbor_map_put(m, escrow_keys[E_X], ts_cbor_build_uint(e->x)) < 0 ||
	    (typed && ts_cbor_map_put(m, escrow_keys[E_TYPE], cbor_build_string(ESCROW_TYPE_RSA_NAME)) < 0) ||
	    ts_cbor_map_put(m, escrow_keys[E_LABEL], cbor_build_string(e->label)) < 0 ||
	    ts_cbor_map_put(m, escrow_keys[E_PUBKEY], cbor_build_bytestring(e->pubkey, e->pubkey_len)) < 0 ||
	    ts_cbor_map_put(m, escrow_keys[E_SEALED], cbor_build_bytestring(e->sealed, e->sealed_len)) < 0) {
		cbor_decref(&m);
		return NULL;
	}
	return m;
}

/* Push a new item (NULL = failed build) onto a definite array; the reference is consumed. */
static int array_push(cbor_item_t *arr, cbor_item_t *it)
{
	int ok;

	if (!it)
		return -TS_E_NOMEM;
	ok = cbor_array_push(arr, it);
	cbor_decref(&it);
	return ok ? 0 : -TS_E_NOMEM;
}

/*
 * The header map, always written the same way for the same fields: parse
 * insists on it. Keys in deterministic order (shorter first, then bytewise);
 * the optional ones only when they differ from their default.
 */
static int header_encode(const ts_vault *v, ts_buf *out)
{
	_ts_cleanup_cbor_ cbor_item_t *m = NULL;
	_ts_cleanup_cbor_ cbor_item_t *arr = NULL;
	_ts_cleanup_cbor_ cbor_item_t *esc = NULL;
	_ts_cleanup_cbor_ cbor_item_t *nv = NULL;
	int has_threshold = v->threshold > 1, has_escrow = v->n_escrow > 0, has_nv = v->nv_handle != 0;
	size_t i;
	int r;

	if (has_nv &&
	    ((nv = cbor_new_definite_map(N_N)) == NULL ||
	     (r = ts_cbor_map_put(nv, nv_keys[N_AUTH], cbor_build_bytestring(v->nv_auth, TS_VAULT_NV_AUTH_BYTES))) < 0 ||
	     (r = ts_cbor_map_put(nv, nv_keys[N_VALUE], ts_cbor_build_uint(v->nv_value))) < 0 ||
	     (r = ts_cbor_map_put(nv, nv_keys[N_HANDLE], ts_cbor_build_uint(v->nv_handle))) < 0))
		return nv ? r : -TS_E_NOMEM;
	if ((m = cbor_new_definite_map(H_REQUIRED + has_threshold + 2 * has_escrow + has_nv)) == NULL ||
	    (arr = cbor_new_definite_array(v->n_protectors)) == NULL ||
	    (esc = cbor_new_definite_array(v->n_escrow)) == NULL)
		return -TS_E_NOMEM;
	for (i = 0; i < v->n_protectors; i++)
		if ((r = array_push(arr, protector_item(&v->protectors[i]))) < 0)
			return r;
	for (i = 0; i < v->n_escrow; i++)
		if ((r = array_push(esc, escrow_item(&v->escrow[i]))) < 0)
			return r;
	if ((r = ts_cbor_map_put(m, header_keys[H_ID], cbor_build_bytestring(v->id, TS_VAULT_ID_BYTES))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_NAME], cbor_build_string(v->name))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_OWNER], ts_cbor_build_uint(v->owner_uid))) < 0 ||
	    /* The map takes its own reference; ours goes with the cleanup. */
	    (has_escrow && (r = ts_cbor_map_put(m, header_keys[H_ESCROW], cbor_incref(esc))) < 0) ||
	    (r = ts_cbor_map_put(m, header_keys[H_CREATED], ts_cbor_build_uint(v->created))) < 0 ||
	    (has_threshold && (r = ts_cbor_map_put(m, header_keys[H_THRESHOLD], ts_cbor_build_uint(v->threshold))) < 0) ||
	    (r = ts_cbor_map_put(m, header_keys[H_GENERATION], ts_cbor_build_uint(v->generation))) < 0 ||
	    (has_nv && (r = ts_cbor_map_put(m, header_keys[H_NV_COUNTER], cbor_incref(nv))) < 0) ||
	    (r = ts_cbor_map_put(m, header_keys[H_PROTECTORS], cbor_incref(arr))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_KEY_VERSION], ts_cbor_build_uint(v->key_version))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_NEXT_PROTECTOR], ts_cbor_build_uint(v->next_protector))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_MIN_KEY_VERSION], ts_cbor_build_uint(v->min_key_version))) < 0 ||
	    (has_escrow && (r = ts_cbor_map_put(m, header_keys[H_ESCROW_THRESHOLD],
	                                        ts_cbor_build_uint(v->escrow_threshold))) < 0))
		return r;
	return ts_cbor_serialize(m, out);
}

/* mac = BLAKE2b-256_{KDF(VS,"tshdrmac")}("tokenseal-vault-v1" || u64 len || header || u64 len || keyring). */
static int header_mac(const uint8_t vs[TS_KEY_BYTES], const uint8_t *hdr, size_t hdr_len,
                      const uint8_t *kr, size_t kr_len, uint8_t mac[MAC_BYTES])
{
	crypto_generichash_state st;
	uint8_t key[TS_KEY_BYTES], l[8];
	int r;

	if ((r = ts_kdf_derive(key, TS_KDF_CTX_HDRMAC, vs)) < 0)
		goto out;
	r = -TS_E_FAILED;
	if (crypto_generichash_init(&st, key, sizeof(key), MAC_BYTES) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)MAC_LABEL, sizeof(MAC_LABEL) - 1) != 0)
		goto out;
	ts_put_be64(l, hdr_len);
	if (crypto_generichash_update(&st, l, 8) != 0 || crypto_generichash_update(&st, hdr, hdr_len) != 0)
		goto out;
	ts_put_be64(l, kr_len);
	if (crypto_generichash_update(&st, l, 8) != 0 || crypto_generichash_update(&st, kr, kr_len) != 0 ||
	    crypto_generichash_final(&st, mac, MAC_BYTES) != 0)
		goto out;
	r = 0;
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(&st, sizeof(st));
	return r;
}

/* ---- unlock --------------------------------------------------------------- */

/*
 * A candidate VS (secure memory; ownership passes here) came out of a
 * protector, a set of shares or escrow: keep it only if the whole file is
 * what a holder of exactly this VS wrote.
 */
static int unlock_with_vs(ts_vault *v, uint8_t *vs)
{
	_ts_cleanup_buf_ ts_buf hdr = { 0 };
	uint8_t mac[MAC_BYTES];
	ts_keyring *kr = NULL;
	int r;

	if (!v->keyring_sealed) {
		r = -TS_E_CORRUPT;
		goto out;
	}
	/*
	 * VS is in hand; now everything else in the file must be exactly what a
	 * holder of VS wrote. The MAC is over the header as this struct holds it
	 * (ts_vault_parse made sure that is byte for byte what the file held).
	 */
	if ((r = header_encode(v, &hdr)) < 0)
		goto out;
	if ((r = header_mac(vs, hdr.data, hdr.len, v->keyring_sealed, v->keyring_sealed_len, mac)) < 0)
		goto out;
	if (sodium_memcmp(mac, v->mac, MAC_BYTES) != 0) {
		r = -TS_E_CORRUPT;
		goto out;
	}
	if ((r = ts_keyring_open(vs, v->id, v->keyring_sealed, v->keyring_sealed_len, &kr)) < 0) {
		r = r == -TS_E_NOMEM ? r : -TS_E_CORRUPT;
		goto out;
	}
	if (ts_keyring_current(kr) != v->key_version || ts_keyring_min_version(kr) != v->min_key_version) {
		r = -TS_E_CORRUPT;
		goto out;
	}
	/* Only now replace whatever state there was. */
	ts_vault_lock(v);
	v->vs = vs;
	v->keyring = kr;
	vs = NULL;
	kr = NULL;
	r = 0;
out:
	ts_secure_free(vs);
	ts_keyring_free(kr);
	return r;
}

int ts_vault_unlock(ts_vault *v, const char *protector_id, const uint8_t kek[TS_KEY_BYTES])
{
	const ts_protector_record *p;
	uint8_t *vs;
	int r, needed = 0;

	if (!v || !protector_id || !kek)
		return -TS_E_INVALID_ARGS;
	if (v->threshold > 1) {
		if ((r = ts_vault_unlock_share(v, protector_id, kek, &needed)) < 0)
			return r;
		return needed > 0 ? -TS_E_LOCKED : 0;
	}
	if ((p = ts_vault_find_protector(v, protector_id)) == NULL)
		return -TS_E_NO_SUCH_PROTECTOR;
	if (p->wrapped_vs_len != WRAPPED_VS_BYTES || !v->keyring_sealed)
		return -TS_E_CORRUPT;
	if ((vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL)
		return -TS_E_NOMEM;
	if ((r = protector_unwrap(v, p, kek, vs)) < 0) {
		ts_secure_free(vs);
		return r;
	}
	return unlock_with_vs(v, vs);
}

int ts_vault_unlock_vs(ts_vault *v, const uint8_t vs[TS_KEY_BYTES])
{
	uint8_t *copy;

	if (!v || !vs)
		return -TS_E_INVALID_ARGS;
	if ((copy = ts_secure_alloc(TS_KEY_BYTES)) == NULL)
		return -TS_E_NOMEM;
	memcpy(copy, vs, TS_KEY_BYTES);
	return unlock_with_vs(v, copy);
}

int ts_vault_unlock_share(ts_vault *v, const char *protector_id, const uint8_t kek[TS_KEY_BYTES],
                          int *ret_needed)
{
	const ts_protector_record *p;
	uint8_t *share = NULL, *vs = NULL;
	size_t i;
	int r;

	if (!v || !protector_id || !kek)
		return -TS_E_INVALID_ARGS;
	if (v->threshold <= 1) {
		if ((r = ts_vault_unlock(v, protector_id, kek)) == 0 && ret_needed)
			*ret_needed = 0;
		return r;
	}
	if ((p = ts_vault_find_protector(v, protector_id)) == NULL)
		return -TS_E_NO_SUCH_PROTECTOR;
	if (!v->keyring_sealed)
		return -TS_E_CORRUPT;
	if ((share = ts_secure_alloc(SHARE_BYTES)) == NULL)
		return -TS_E_NOMEM;
	/* The KEK is checked even for a protector given before: a wrong one is always an error. */
	if ((r = protector_unwrap(v, p, kek, share)) < 0)
		goto out;
	if (!v->pending && (v->pending = ts_secure_alloc((size_t)v->threshold * SHARE_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	for (i = 0; i < v->n_pending; i++)
		if (strcmp(v->pending_ids[i], p->id) == 0)
			break;
	if (i == v->n_pending) {
		memcpy(v->pending + v->n_pending * SHARE_BYTES, share, SHARE_BYTES);
		memcpy(v->pending_ids[v->n_pending], p->id, sizeof(p->id));
		v->n_pending++;
	}
	if (v->n_pending < v->threshold) {
		if (ret_needed)
			*ret_needed = (int)(v->threshold - v->n_pending);
		r = 0;
		goto out;
	}
	if ((vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	/* Distinct x per protector is a parse-time invariant; combine checks it again. */
	r = ts_shamir_combine(v->pending, v->n_pending, TS_KEY_BYTES, vs);
	ts_vault_forget_shares(v);
	if (r < 0) {
		ts_secure_free(vs);
		r = -TS_E_CORRUPT;
		goto out;
	}
	if ((r = unlock_with_vs(v, vs)) == 0 && ret_needed)
		*ret_needed = 0;
out:
	ts_secure_free(share);
	return r;
}

int ts_vault_unlock_escrow(ts_vault *v, const uint8_t *opened, size_t count)
{
	uint8_t *vs = NULL, *shares = NULL;
	const uint8_t *o;
	size_t i, n = 0;
	int r;

	if (!v || !opened || count == 0 || count > TS_SHAMIR_MAX_SHARES)
		return -TS_E_INVALID_ARGS;
	if (v->n_escrow == 0)
		return -TS_E_INVALID_ARGS;
	for (i = 0; i < count; i++)
		if (memcmp(opened + i * TS_VAULT_ESCROW_PLAIN_BYTES, v->id, TS_VAULT_ID_BYTES) != 0)
			return -TS_E_WRONG_VAULT;
	if ((vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL ||
	    (shares = ts_secure_alloc(count * SHARE_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto out;
	}
	r = -TS_E_INVALID_ARGS;
	for (i = 0; i < count; i++) {
		o = opened + i * TS_VAULT_ESCROW_PLAIN_BYTES + TS_VAULT_ID_BYTES;
		if ((o[0] == 0) != (v->escrow_threshold == 1))
			goto out;
		memcpy(shares + n * SHARE_BYTES, o, SHARE_BYTES);
		n++;
	}
	if (v->escrow_threshold == 1) {
		memcpy(vs, shares + 1, TS_KEY_BYTES);
	} else {
		if (n < v->escrow_threshold)
			goto out;
		if ((r = ts_shamir_combine(shares, n, TS_KEY_BYTES, vs)) < 0)
			goto out;
	}
	/* Anyone can seal a box to an officer: a result that does not verify is a failed attempt. */
	r = unlock_with_vs(v, vs);
	vs = NULL;
	if (r == -TS_E_CORRUPT)
		r = -TS_E_AUTH_FAILED;
out:
	ts_secure_free(vs);
	ts_secure_free(shares);
	return r;
}

/* ---- k-of-n, escrow, revocation ------------------------------------------ */

static uint8_t *dup_bytes(const uint8_t *p, size_t len);

int ts_vault_set_threshold(ts_vault *v, unsigned k)
{
	if (!v || k < 1 || k > TS_VAULT_MAX_PROTECTORS)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if (k == v->threshold)
		return 0;
	/* The existing protectors wrap VS (or shares of another degree): changing k needs all their KEKs. */
	if (v->n_protectors > 0)
		return -TS_E_BUSY;
	ts_vault_forget_shares(v);
	v->threshold = (uint8_t)k;
	return 0;
}

static size_t recipient_key_len(const ts_escrow_recipient *r)
{
	return r->type == TS_ESCROW_TYPE_X25519 && r->pubkey_len == 0 ? TS_ESCROW_PUBLIC_BYTES : r->pubkey_len;
}

/* Same type and same key bytes. */
static int same_key(unsigned ta, const uint8_t *a, size_t alen, unsigned tb, const uint8_t *b, size_t blen)
{
	return ta == tb && alen == blen && memcmp(a, b, alen) == 0;
}

/*
 * Seal vs (whole when m == 1, else one share of a fresh random m-of-n split
 * each) to every recipient. *ret is a new malloc()ed array of n records.
 */
static int escrow_seal_all(const ts_vault *v, const uint8_t vs[TS_KEY_BYTES], const ts_escrow_recipient *rcp,
                           size_t n, unsigned m, ts_escrow_record **ret)
{
	uint8_t *shares = NULL, *plain = NULL;
	ts_escrow_record *recs;
	size_t i;
	int r;

	if ((recs = calloc(n, sizeof(*recs))) == NULL)
		return -TS_E_NOMEM;
	if ((plain = ts_secure_alloc(TS_VAULT_ESCROW_PLAIN_BYTES)) == NULL ||
	    (m > 1 && (shares = ts_secure_alloc(n * SHARE_BYTES)) == NULL)) {
		r = -TS_E_NOMEM;
		goto out;
	}
	if (m > 1 && (r = ts_shamir_split(vs, TS_KEY_BYTES, (uint8_t)m, (uint8_t)n, shares)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		ts_buf b = { 0 };

		memcpy(recs[i].label, rcp[i].label, strlen(rcp[i].label) + 1);
		recs[i].type = (uint8_t)rcp[i].type;
		recs[i].pubkey_len = recipient_key_len(&rcp[i]);
		if ((recs[i].pubkey = dup_bytes(rcp[i].pubkey, recs[i].pubkey_len)) == NULL) {
			r = -TS_E_NOMEM;
			goto out;
		}
		/* The box names its vault, so an officer's tool can tell whose share it opened. */
		memcpy(plain, v->id, TS_VAULT_ID_BYTES);
		if (m > 1) {
			memcpy(plain + TS_VAULT_ID_BYTES, shares + i * SHARE_BYTES, SHARE_BYTES);
			recs[i].x = shares[i * SHARE_BYTES];
		} else {
			plain[TS_VAULT_ID_BYTES] = 0;
			memcpy(plain + TS_VAULT_ID_BYTES + 1, vs, TS_KEY_BYTES);
			recs[i].x = 0;
		}
		if ((r = ts_escrow_seal_to(recs[i].type, recs[i].pubkey, recs[i].pubkey_len, plain,
		                           TS_VAULT_ESCROW_PLAIN_BYTES, &b)) < 0) {
			ts_buf_free(&b);
			goto out;
		}
		recs[i].sealed = b.data;
		recs[i].sealed_len = b.len;
	}
	*ret = recs;
	recs = NULL;
	r = 0;
out:
	escrow_free_all(recs, n);
	ts_secure_free(plain);
	ts_secure_free(shares);
	return r;
}

int ts_vault_set_escrow(ts_vault *v, const ts_escrow_recipient *r, size_t n, unsigned m)
{
	ts_escrow_record *recs = NULL;
	size_t i, j;
	int rc;

	if (!v || (n && !r))
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if (n > TS_VAULT_MAX_ESCROW)
		return -TS_E_LIMIT;
	if (n > 0 && (m < 1 || m > n))
		return -TS_E_INVALID_ARGS;
	for (i = 0; i < n; i++) {
		if (!r[i].label || !r[i].pubkey || strlen(r[i].label) >= TS_VAULT_ESCROW_LABEL_MAX ||
		    !description_valid(r[i].label, strlen(r[i].label)) ||
		    ts_escrow_key_check(r[i].type, r[i].pubkey, recipient_key_len(&r[i])) < 0)
			return -TS_E_INVALID_ARGS;
		for (j = 0; j < i; j++)
			if (same_key(r[i].type, r[i].pubkey, recipient_key_len(&r[i]), r[j].type, r[j].pubkey,
			             recipient_key_len(&r[j])))
				return -TS_E_INVALID_ARGS;
	}
	if (n > 0 && (rc = escrow_seal_all(v, v->vs, r, n, m, &recs)) < 0)
		return rc;
	escrow_free_all(v->escrow, v->n_escrow);
	v->escrow = recs;
	v->n_escrow = n;
	v->escrow_threshold = n ? (uint8_t)m : 0;
	return 0;
}

int ts_vault_rekey(ts_vault *v, uint64_t now, const ts_vault_keep *keep, size_t n_keep,
                   uint32_t *ret_version)
{
	ts_escrow_recipient rcp[TS_VAULT_MAX_ESCROW];
	ts_protector_record *np = NULL;
	ts_escrow_record *ne = NULL;
	const ts_vault_keep *k;
	uint8_t *vs = NULL;
	size_t i, j, nn = 0;
	uint32_t version;
	int r;

	if (!v || (n_keep && !keep))
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	for (i = 0; i < n_keep; i++) {
		if (!keep[i].id || !keep[i].kek || (keep[i].params_len && !keep[i].params))
			return -TS_E_INVALID_ARGS;
		if (keep[i].params_len > TS_VAULT_FILE_MAX)
			return -TS_E_LIMIT;
		if (!ts_vault_find_protector(v, keep[i].id))
			return -TS_E_NO_SUCH_PROTECTOR;
		for (j = 0; j < i; j++)
			if (strcmp(keep[i].id, keep[j].id) == 0)
				return -TS_E_INVALID_ARGS;
	}
	if (n_keep == 0 || n_keep < v->threshold)
		return -TS_E_LAST_PROTECTOR;

	if ((vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL ||
	    (np = calloc(n_keep, sizeof(*np))) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	randombytes_buf(vs, TS_KEY_BYTES);
	/* Survivors keep their order, id, x and metadata; only what they wrap is new. */
	for (i = 0; i < v->n_protectors; i++) {
		const ts_protector_record *old = &v->protectors[i];
		ts_protector_record *rec;
		const uint8_t *params;
		size_t params_len;

		for (k = NULL, j = 0; j < n_keep; j++)
			if (strcmp(keep[j].id, old->id) == 0)
				k = &keep[j];
		if (!k)
			continue;
		rec = &np[nn++];
		memcpy(rec->id, old->id, sizeof(rec->id));
		memcpy(rec->type, old->type, sizeof(rec->type));
		memcpy(rec->description, old->description, sizeof(rec->description));
		rec->created = old->created;
		params = k->params ? k->params : old->params;
		params_len = k->params ? k->params_len : old->params_len;
		if ((rec->params = dup_bytes(params, params_len)) == NULL) {
			r = -TS_E_NOMEM;
			goto fail;
		}
		rec->params_len = params_len;
		if ((r = protector_wrap(v, rec, vs, k->kek, protector_x(old))) < 0)
			goto fail;
	}
	if (v->n_escrow > 0) {
		for (i = 0; i < v->n_escrow; i++) {
			rcp[i].label = v->escrow[i].label;
			rcp[i].pubkey = v->escrow[i].pubkey;
			rcp[i].type = v->escrow[i].type;
			rcp[i].pubkey_len = v->escrow[i].pubkey_len;
		}
		if ((r = escrow_seal_all(v, vs, rcp, v->n_escrow, v->escrow_threshold, &ne)) < 0)
			goto fail;
	}
	/* The last step that can fail; after it nothing can. */
	if ((r = ts_keyring_rotate(v->keyring, now, &version)) < 0)
		goto fail;

	for (i = 0; i < v->n_protectors; i++)
		protector_clear(&v->protectors[i]);
	free(v->protectors);
	v->protectors = np;
	v->n_protectors = nn;
	if (ne) {
		escrow_free_all(v->escrow, v->n_escrow);
		v->escrow = ne;
	}
	ts_vault_forget_shares(v);
	ts_secure_free(v->vs);
	v->vs = vs;
	v->key_version = ts_keyring_current(v->keyring);
	if (ret_version)
		*ret_version = version;
	return 0;
fail:
	for (i = 0; np && i < nn; i++)
		protector_clear(&np[i]);
	free(np);
	escrow_free_all(ne, v->n_escrow);
	ts_secure_free(vs);
	return r;
}

/* ---- keys and blobs ------------------------------------------------------- */

int ts_vault_rotate(ts_vault *v, uint64_t now, uint32_t *ret_version)
{
	int r;

	if (!v)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if ((r = ts_keyring_rotate(v->keyring, now, ret_version)) < 0)
		return r;
	v->key_version = ts_keyring_current(v->keyring);
	return 0;
}

int ts_vault_retire_below(ts_vault *v, uint32_t min_version)
{
	int r;

	if (!v)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if ((r = ts_keyring_retire_below(v->keyring, min_version)) < 0)
		return r;
	v->min_key_version = ts_keyring_min_version(v->keyring);
	return 0;
}

int ts_vault_unwrap_ctx(const ts_vault *v, const ts_blob_view *blob, ts_blob_ctx *c, uint8_t *pt_out)
{
	const uint8_t *key, *ctx_key;
	int r;

	if (!v || !blob)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	/* Not a secret: plain memcmp is fine, and the error tells the caller where to go. */
	if (memcmp(blob->vault_id, v->id, TS_VAULT_ID_BYTES) != 0)
		return -TS_E_WRONG_VAULT;
	/* The context-check key was derived when the version entered the keyring, not per blob. */
	if ((r = ts_keyring_keys(v->keyring, blob->key_version, &key, &ctx_key)) < 0)
		return r;
	return ts_blob_open_ctx(key, ctx_key, blob, c, pt_out);
}

int ts_vault_unwrap(const ts_vault *v, const ts_blob_view *blob, const ts_kv *ctx, size_t n_ctx,
                    uint8_t *pt_out)
{
	ts_blob_ctx c;
	int r;

	/* The context's error comes after the vault's own checks, as it did when encoded in the open. */
	ts_blob_ctx_init(&c, ctx, n_ctx);
	r = ts_vault_unwrap_ctx(v, blob, &c, pt_out);
	ts_blob_ctx_free(&c);
	return r;
}

/*
 * Secure scratch for the verification of fresh wraps, one per thread and
 * kept: sodium_malloc costs several system calls, far more than the AEAD of
 * a data key, and wrap is on the hot path of batch rewrap. It is wiped after
 * every use, so it holds no plaintext between calls.
 */
static __thread uint8_t *ts_wrap_scratch;

static uint8_t *wrap_scratch(void)
{
	if (!ts_wrap_scratch)
		ts_wrap_scratch = ts_secure_alloc(TS_PLAINTEXT_MAX);
	return ts_wrap_scratch;
}

int ts_vault_wrap_ctx(const ts_vault *v, ts_blob_ctx *c, const uint8_t *pt, size_t pt_len, ts_buf *out)
{
	const uint8_t *key, *ctx_key;
	ts_blob_view bv;
	uint8_t *check;
	size_t orig_len;
	uint32_t cur;
	int r;

	if (!v || !c || !out)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if (pt_len > TS_PLAINTEXT_MAX)
		return -TS_E_LIMIT;
	if ((check = wrap_scratch()) == NULL)
		return -TS_E_NOMEM;
	orig_len = out->len;
	cur = ts_keyring_current(v->keyring);
	if ((r = ts_keyring_keys(v->keyring, cur, &key, &ctx_key)) < 0)
		return r;
	if ((r = ts_blob_seal_ctx(key, ctx_key, v->id, cur, c, pt, pt_len, out)) < 0)
		return r;
	/*
	 * A fresh wrap is opened again before anyone relies on it (as AWS XKS
	 * does): a fault between plaintext and ciphertext must not turn a data
	 * key into an unrecoverable blob.
	 */
	if ((r = ts_blob_parse(out->data + orig_len, out->len - orig_len, &bv)) < 0 ||
	    (r = ts_vault_unwrap_ctx(v, &bv, c, check)) < 0 ||
	    (pt_len && sodium_memcmp(check, pt, pt_len) != 0)) {
		r = -TS_E_FAILED;
		goto out;
	}
	r = 0;
out:
	sodium_memzero(check, pt_len);
	if (r < 0)
		out->len = orig_len;
	return r;
}

int ts_vault_wrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx,
                  const uint8_t *pt, size_t pt_len, ts_buf *out)
{
	ts_blob_ctx c;
	size_t orig_len = out ? out->len : 0;
	int r;

	ts_blob_ctx_init(&c, ctx, n_ctx);
	r = ts_vault_wrap_ctx(v, &c, pt, pt_len, out);
	/*
	 * The new blob was opened again under the encoding it was sealed
	 * with; that this encoding is the context's is checked here, against
	 * a fresh one, so the check still covers the encoding (it encoded
	 * the context twice before).
	 */
	if (r == 0 && ts_blob_ctx_verify(&c, ctx, n_ctx) < 0) {
		sodium_memzero(out->data + orig_len, out->len - orig_len);
		out->len = orig_len;
		r = -TS_E_FAILED;
	}
	ts_blob_ctx_free(&c);
	return r;
}

/* ---- the vault file ------------------------------------------------------- */

int ts_vault_serialize(ts_vault *v, ts_buf *out)
{
	_ts_cleanup_cbor_ cbor_item_t *file = NULL;
	_ts_cleanup_buf_ ts_buf kr = { 0 };
	_ts_cleanup_buf_ ts_buf hdr = { 0 };
	uint8_t mac[MAC_BYTES];
	uint64_t old_generation;
	size_t orig_len;
	int r;

	if (!v || !out)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if (v->generation == UINT64_MAX)
		return -TS_E_LIMIT;
	orig_len = out->len;
	old_generation = v->generation;
	v->generation++;
	v->key_version = ts_keyring_current(v->keyring);
	v->min_key_version = ts_keyring_min_version(v->keyring);

	/* A fresh nonce every time: the keyring is never sealed twice under one. */
	if ((r = ts_keyring_seal(v->keyring, v->vs, v->id, &kr)) < 0)
		goto out;
	if ((r = header_encode(v, &hdr)) < 0)
		goto out;
	if ((r = header_mac(v->vs, hdr.data, hdr.len, kr.data, kr.len, mac)) < 0)
		goto out;
	r = -TS_E_NOMEM;
	if ((file = cbor_new_definite_map(F_N)) == NULL)
		goto out;
	if ((r = ts_cbor_map_put(file, file_keys[F_MAC], cbor_build_bytestring(mac, MAC_BYTES))) < 0 ||
	    (r = ts_cbor_map_put(file, file_keys[F_FORMAT], ts_cbor_build_uint(TS_VAULT_FORMAT_VERSION))) < 0 ||
	    (r = ts_cbor_map_put(file, file_keys[F_HEADER], cbor_build_bytestring(hdr.data, hdr.len))) < 0 ||
	    (r = ts_cbor_map_put(file, file_keys[F_KEYRING], cbor_build_bytestring(kr.data, kr.len))) < 0)
		goto out;
	if ((r = ts_cbor_serialize(file, out)) < 0)
		goto out;
	if (out->len - orig_len > TS_VAULT_FILE_MAX) {
		r = -TS_E_LIMIT;
		goto out;
	}
	/* The struct now describes the bytes just written. */
	free(v->keyring_sealed);
	v->keyring_sealed = kr.data;
	v->keyring_sealed_len = kr.len;
	kr.data = NULL;
	kr.len = kr.cap = 0;
	memcpy(v->mac, mac, MAC_BYTES);
	r = 0;
out:
	if (r < 0) {
		v->generation = old_generation;
		out->len = orig_len;
	}
	return r;
}

/*
 * Match a map's keys against a fixed list: names[0..n_req) present exactly
 * once, names[n_req..n) at most once (absent ones leave vals[j] NULL),
 * nothing else.
 */
static int map_fields(const cbor_item_t *map, const char *const *names, size_t n_req, size_t n,
                      const cbor_item_t **vals)
{
	struct cbor_pair *pairs;
	const cbor_item_t *k;
	size_t i, j, klen, size;

	if (!cbor_isa_map(map) || !cbor_map_is_definite(map))
		return -TS_E_CORRUPT;
	size = cbor_map_size(map);
	if (size < n_req || size > n)
		return -TS_E_CORRUPT;
	for (j = 0; j < n; j++)
		vals[j] = NULL;
	pairs = cbor_map_handle(map);
	for (i = 0; i < size; i++) {
		k = pairs[i].key;
		if (!k || !pairs[i].value || !cbor_isa_string(k) || !cbor_string_is_definite(k))
			return -TS_E_CORRUPT;
		klen = cbor_string_length(k);
		for (j = 0; j < n; j++)
			if (strlen(names[j]) == klen && memcmp(names[j], cbor_string_handle(k), klen) == 0)
				break;
		if (j == n || vals[j])
			return -TS_E_CORRUPT;
		vals[j] = pairs[i].value;
	}
	for (j = 0; j < n_req; j++)
		if (!vals[j])
			return -TS_E_CORRUPT;
	return 0;
}

static int get_uint(const cbor_item_t *it, uint64_t max, uint64_t *ret)
{
	uint64_t u;

	if (!cbor_isa_uint(it))
		return -TS_E_CORRUPT;
	u = cbor_get_int(it);
	if (u > max)
		return -TS_E_CORRUPT;
	*ret = u;
	return 0;
}

static int get_bytes(const cbor_item_t *it, const uint8_t **ret, size_t *ret_len)
{
	if (!cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
		return -TS_E_CORRUPT;
	*ret = cbor_bytestring_handle(it);
	*ret_len = cbor_bytestring_length(it);
	return 0;
}

/* Copy a text string into dst (size bytes incl. NUL); UTF-8 without NUL, shorter than size. */
static int get_text(const cbor_item_t *it, char *dst, size_t size)
{
	size_t len;

	if (!cbor_isa_string(it) || !cbor_string_is_definite(it))
		return -TS_E_CORRUPT;
	len = cbor_string_length(it);
	if (len >= size || !ts_utf8_valid(cbor_string_handle(it), len))
		return -TS_E_CORRUPT;
	if (len)
		memcpy(dst, cbor_string_handle(it), len);
	dst[len] = '\0';
	return 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);

	if (d && len)
		memcpy(d, p, len);
	return d;
}

static int parse_protector(const cbor_item_t *it, ts_protector_record *p, size_t wrapped_len)
{
	const cbor_item_t *f[P_N];
	const uint8_t *b;
	size_t len;
	int r;

	if ((r = map_fields(it, protector_keys, P_N, P_N, f)) < 0)
		return r;
	if (get_text(f[P_ID], p->id, sizeof(p->id)) < 0 ||
	    !token_valid(p->id, strlen(p->id), sizeof(p->id)) ||
	    get_text(f[P_TYPE], p->type, sizeof(p->type)) < 0 ||
	    !token_valid(p->type, strlen(p->type), sizeof(p->type)) ||
	    get_text(f[P_DESCRIPTION], p->description, sizeof(p->description)) < 0 ||
	    !description_valid(p->description, strlen(p->description)) ||
	    get_uint(f[P_CREATED], UINT64_MAX, &p->created) < 0)
		return -TS_E_CORRUPT;
	if (get_bytes(f[P_WRAPPED_VS], &b, &len) < 0 || len != wrapped_len)
		return -TS_E_CORRUPT;
	if (len == WRAPPED_SHARE_BYTES && b[0] == 0)
		return -TS_E_CORRUPT;
	if ((p->wrapped_vs = dup_bytes(b, len)) == NULL)
		return -TS_E_NOMEM;
	p->wrapped_vs_len = len;
	if (get_bytes(f[P_PARAMS], &b, &len) < 0)
		return -TS_E_CORRUPT;
	if ((p->params = dup_bytes(b, len)) == NULL)
		return -TS_E_NOMEM;
	p->params_len = len;
	return 0;
}

static int parse_escrow(const cbor_item_t *it, ts_escrow_record *e, unsigned m)
{
	const cbor_item_t *f[E_N];
	const uint8_t *b;
	uint64_t u;
	size_t len;
	int r;

	if ((r = map_fields(it, escrow_keys, E_REQUIRED, E_N, f)) < 0)
		return r;
	if (get_uint(f[E_X], 255, &u) < 0 || (m == 1) != (u == 0))
		return -TS_E_CORRUPT;
	e->x = (uint8_t)u;
	e->type = TS_ESCROW_TYPE_X25519;
	if (f[E_TYPE]) {
		/* Only a type other than the default is written: an explicit "x25519" is not the deterministic encoding. */
		if (!cbor_isa_string(f[E_TYPE]) || !cbor_string_is_definite(f[E_TYPE]) ||
		    cbor_string_length(f[E_TYPE]) != sizeof(ESCROW_TYPE_RSA_NAME) - 1 ||
		    memcmp(cbor_string_handle(f[E_TYPE]), ESCROW_TYPE_RSA_NAME, sizeof(ESCROW_TYPE_RSA_NAME) - 1) != 0)
			return -TS_E_CORRUPT;
		e->type = TS_ESCROW_TYPE_RSA;
	}
	if (get_text(f[E_LABEL], e->label, sizeof(e->label)) < 0 || !description_valid(e->label, strlen(e->label)))
		return -TS_E_CORRUPT;
	if (get_bytes(f[E_PUBKEY], &b, &len) < 0 || len > TS_ESCROW_KEY_MAX || ts_escrow_key_check(e->type, b, len) < 0)
		return -TS_E_CORRUPT;
	if ((e->pubkey = dup_bytes(b, len)) == NULL)
		return -TS_E_NOMEM;
	e->pubkey_len = len;
	if (get_bytes(f[E_SEALED], &b, &len) < 0 ||
	    len != ts_escrow_sealed_len(e->type, e->pubkey, e->pubkey_len, TS_VAULT_ESCROW_PLAIN_BYTES))
		return -TS_E_CORRUPT;
	if ((e->sealed = dup_bytes(b, len)) == NULL)
		return -TS_E_NOMEM;
	e->sealed_len = len;
	return 0;
}

/* The optional escrow list and its threshold: both or neither. */
static int parse_escrow_list(ts_vault *v, const cbor_item_t *list, const cbor_item_t *thr)
{
	cbor_item_t **items;
	uint64_t m;
	size_t i, j, n;
	int r;

	if (!list && !thr)
		return 0;
	if (!list || !thr || !cbor_isa_array(list) || !cbor_array_is_definite(list))
		return -TS_E_CORRUPT;
	n = cbor_array_size(list);
	if (n == 0 || n > TS_VAULT_MAX_ESCROW || get_uint(thr, n, &m) < 0 || m == 0)
		return -TS_E_CORRUPT;
	v->escrow_threshold = (uint8_t)m;
	if ((v->escrow = calloc(n, sizeof(*v->escrow))) == NULL)
		return -TS_E_NOMEM;
	items = cbor_array_handle(list);
	for (i = 0; i < n; i++) {
		v->n_escrow = i + 1;
		if ((r = parse_escrow(items[i], &v->escrow[i], (unsigned)m)) < 0)
			return r;
		for (j = 0; j < i; j++)
			if (same_key(v->escrow[j].type, v->escrow[j].pubkey, v->escrow[j].pubkey_len, v->escrow[i].type,
			             v->escrow[i].pubkey, v->escrow[i].pubkey_len) ||
			    (m > 1 && v->escrow[j].x == v->escrow[i].x))
				return -TS_E_CORRUPT;
	}
	return 0;
}

/* The optional TPM NV counter: a handle in the owner range, a value >= 1, a 32-byte auth. */
static int parse_nv_counter(ts_vault *v, const cbor_item_t *it)
{
	const cbor_item_t *f[N_N];
	const uint8_t *b;
	size_t len;
	uint64_t u;
	int r;

	if ((r = map_fields(it, nv_keys, N_N, N_N, f)) < 0)
		return r;
	if (get_uint(f[N_HANDLE], TS_VAULT_NV_HANDLE_LAST, &u) < 0 || u < TS_VAULT_NV_HANDLE_FIRST)
		return -TS_E_CORRUPT;
	v->nv_handle = (uint32_t)u;
	if (get_uint(f[N_VALUE], UINT64_MAX, &v->nv_value) < 0 || v->nv_value == 0)
		return -TS_E_CORRUPT;
	if (get_bytes(f[N_AUTH], &b, &len) < 0 || len != TS_VAULT_NV_AUTH_BYTES)
		return -TS_E_CORRUPT;
	memcpy(v->nv_auth, b, len);
	return 0;
}

static int parse_header(ts_vault *v, const uint8_t *b, size_t len)
{
	_ts_cleanup_cbor_ cbor_item_t *h = NULL;
	const cbor_item_t *f[H_N];
	cbor_item_t **items;
	const uint8_t *id;
	uint64_t u;
	size_t i, j, n, id_len;
	int r;

	/* header map -> protectors array -> protector maps: three levels. */
	if ((h = ts_cbor_load(b, len, 3)) == NULL)
		return -TS_E_CORRUPT;
	if ((r = map_fields(h, header_keys, H_REQUIRED, H_N, f)) < 0)
		return r;
	if (get_text(f[H_NAME], v->name, sizeof(v->name)) < 0 || !ts_vault_name_valid(v->name))
		return -TS_E_CORRUPT;
	if (get_bytes(f[H_ID], &id, &id_len) < 0 || id_len != TS_VAULT_ID_BYTES)
		return -TS_E_CORRUPT;
	memcpy(v->id, id, TS_VAULT_ID_BYTES);
	if (get_uint(f[H_OWNER], UINT32_MAX, &u) < 0)
		return -TS_E_CORRUPT;
	v->owner_uid = (uint32_t)u;
	if (get_uint(f[H_CREATED], UINT64_MAX, &v->created) < 0 ||
	    get_uint(f[H_GENERATION], UINT64_MAX, &v->generation) < 0)
		return -TS_E_CORRUPT;
	if (get_uint(f[H_NEXT_PROTECTOR], UINT32_MAX, &u) < 0 || u == 0)
		return -TS_E_CORRUPT;
	v->next_protector = (uint32_t)u;
	if (get_uint(f[H_KEY_VERSION], TS_KEYRING_MAX_VERSIONS, &u) < 0 || u == 0)
		return -TS_E_CORRUPT;
	v->key_version = (uint32_t)u;
	if (get_uint(f[H_MIN_KEY_VERSION], v->key_version, &u) < 0 || u == 0)
		return -TS_E_CORRUPT;
	v->min_key_version = (uint32_t)u;
	v->threshold = 1;
	if (f[H_THRESHOLD]) {
		if (get_uint(f[H_THRESHOLD], TS_VAULT_MAX_PROTECTORS, &u) < 0 || u < 2)
			return -TS_E_CORRUPT;
		v->threshold = (uint8_t)u;
	}
	if ((r = parse_escrow_list(v, f[H_ESCROW], f[H_ESCROW_THRESHOLD])) < 0)
		return r;
	if (f[H_NV_COUNTER] && (r = parse_nv_counter(v, f[H_NV_COUNTER])) < 0)
		return r;

	if (!cbor_isa_array(f[H_PROTECTORS]) || !cbor_array_is_definite(f[H_PROTECTORS]))
		return -TS_E_CORRUPT;
	n = cbor_array_size(f[H_PROTECTORS]);
	if (n > TS_VAULT_MAX_PROTECTORS)
		return -TS_E_CORRUPT;
	if (n == 0)
		return 0;
	if ((v->protectors = calloc(n, sizeof(*v->protectors))) == NULL)
		return -TS_E_NOMEM;
	items = cbor_array_handle(f[H_PROTECTORS]);
	for (i = 0; i < n; i++) {
		/* Counted before filling, so ts_vault_free releases a half-parsed record too. */
		v->n_protectors = i + 1;
		if ((r = parse_protector(items[i], &v->protectors[i],
		                         v->threshold > 1 ? WRAPPED_SHARE_BYTES : WRAPPED_VS_BYTES)) < 0)
			return r;
		/* Ids are unique, and so are the share x coordinates (0 for all in a 1-of-n vault). */
		for (j = 0; j < i; j++)
			if (strcmp(v->protectors[j].id, v->protectors[i].id) == 0 ||
			    (v->threshold > 1 && protector_x(&v->protectors[j]) == protector_x(&v->protectors[i])))
				return -TS_E_CORRUPT;
	}
	return 0;
}

int ts_vault_parse(const uint8_t *b, size_t len, ts_vault **ret)
{
	_ts_cleanup_cbor_ cbor_item_t *top = NULL;
	_ts_cleanup_buf_ ts_buf again = { 0 };
	const cbor_item_t *f[F_N];
	struct cbor_pair *pairs;
	const uint8_t *hb, *kb, *mb;
	size_t i, hl, kl, ml;
	ts_vault *v = NULL;
	uint64_t format;
	int r;

	if (!ret)
		return -TS_E_INVALID_ARGS;
	*ret = NULL;
	if (!b || len > TS_VAULT_FILE_MAX)
		return -TS_E_CORRUPT;
	if ((top = ts_cbor_load(b, len, 1)) == NULL || !cbor_isa_map(top) || !cbor_map_is_definite(top))
		return -TS_E_CORRUPT;
	/* The version is looked at first: a later format may have other keys. */
	pairs = cbor_map_handle(top);
	for (i = 0; i < cbor_map_size(top); i++) {
		const cbor_item_t *k = pairs[i].key;

		if (k && cbor_isa_string(k) && cbor_string_is_definite(k) && cbor_string_length(k) == 6 &&
		    memcmp(cbor_string_handle(k), "format", 6) == 0) {
			if (!pairs[i].value || !cbor_isa_uint(pairs[i].value))
				return -TS_E_CORRUPT;
			if (cbor_get_int(pairs[i].value) != TS_VAULT_FORMAT_VERSION)
				return -TS_E_UNSUPPORTED_VERSION;
		}
	}
	if (map_fields(top, file_keys, F_N, F_N, f) < 0 ||
	    get_uint(f[F_FORMAT], UINT64_MAX, &format) < 0 || format != TS_VAULT_FORMAT_VERSION ||
	    get_bytes(f[F_HEADER], &hb, &hl) < 0 || hl == 0 ||
	    get_bytes(f[F_KEYRING], &kb, &kl) < 0 || kl == 0 ||
	    get_bytes(f[F_MAC], &mb, &ml) < 0 || ml != MAC_BYTES)
		return -TS_E_CORRUPT;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -TS_E_NOMEM;
	if ((r = parse_header(v, hb, hl)) < 0)
		goto fail;
	/*
	 * The MAC will be checked over the header as re-encoded from this struct,
	 * so the stored bytes must be exactly that encoding: then "what was
	 * authenticated" and "what we hold" cannot differ.
	 */
	if ((r = header_encode(v, &again)) < 0)
		goto fail;
	if (again.len != hl || memcmp(again.data, hb, hl) != 0) {
		r = -TS_E_CORRUPT;
		goto fail;
	}
	if ((v->keyring_sealed = dup_bytes(kb, kl)) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	v->keyring_sealed_len = kl;
	memcpy(v->mac, mb, MAC_BYTES);
	*ret = v;
	return 0;
fail:
	ts_vault_free(v);
	return r == -TS_E_NOMEM ? r : -TS_E_CORRUPT;
}
