/* vault.c — a vault: protectors wrapping VS, the MACed header, the keyring, and the CBOR vault file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/internal.h"
#include "core/keyring.h"
#include "core/vault.h"

#define VS_AAD_LABEL "tokenseal-protector-v1"
#define MAC_LABEL "tokenseal-vault-v1"
#define MAC_BYTES 32
#define NPUB crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define ABYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
/* nonce || VS || tag */
#define WRAPPED_VS_BYTES (NPUB + TS_KEY_BYTES + ABYTES)

_Static_assert(sizeof(((ts_vault *)0)->mac) == MAC_BYTES, "header MAC size");

/* Keys of the three CBOR maps, each list in deterministic (RFC 8949 §4.2.1) order. */
enum { F_MAC, F_FORMAT, F_HEADER, F_KEYRING, F_N };
static const char *const file_keys[F_N] = { "mac", "format", "header", "keyring" };

enum { H_ID, H_NAME, H_OWNER, H_CREATED, H_GENERATION, H_PROTECTORS, H_KEY_VERSION,
       H_NEXT_PROTECTOR, H_MIN_KEY_VERSION, H_N };
static const char *const header_keys[H_N] = {
	"id", "name", "owner", "created", "generation", "protectors", "key_version",
	"next_protector", "min_key_version",
};

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

void ts_vault_lock(ts_vault *v)
{
	if (!v)
		return;
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

/*
 * AAD of a wrapped VS: "tokenseal-protector-v1" || vault id || u8 len || id
 * || u8 len || type. The lengths keep ("p1", "0x") and ("p10", "x") apart.
 */
static size_t vs_aad(uint8_t *aad, const uint8_t vault_id[TS_VAULT_ID_BYTES], const char *id,
                     const char *type)
{
	size_t n = 0, l;

	memcpy(aad, VS_AAD_LABEL, sizeof(VS_AAD_LABEL) - 1);
	n += sizeof(VS_AAD_LABEL) - 1;
	memcpy(aad + n, vault_id, TS_VAULT_ID_BYTES);
	n += TS_VAULT_ID_BYTES;
	l = strlen(id);
	aad[n++] = (uint8_t)l;
	memcpy(aad + n, id, l);
	n += l;
	l = strlen(type);
	aad[n++] = (uint8_t)l;
	memcpy(aad + n, type, l);
	n += l;
	return n;
}
#define VS_AAD_MAX (sizeof(VS_AAD_LABEL) - 1 + TS_VAULT_ID_BYTES + 1 + TS_PROTECTOR_ID_MAX + 1 + TS_PROTECTOR_TYPE_MAX)

int ts_vault_add_protector(ts_vault *v, const char *type, const char *description,
                           const uint8_t kek[TS_KEY_BYTES], const uint8_t *params,
                           size_t params_len, uint64_t now, const char **ret_id)
{
	uint8_t aad[VS_AAD_MAX];
	ts_protector_record rec, *np;
	size_t aad_len;
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
	if ((rec.params = malloc(params_len ? params_len : 1)) == NULL ||
	    (rec.wrapped_vs = malloc(WRAPPED_VS_BYTES)) == NULL) {
		r = -TS_E_NOMEM;
		goto fail;
	}
	if (params_len)
		memcpy(rec.params, params, params_len);
	rec.params_len = params_len;
	aad_len = vs_aad(aad, v->id, rec.id, rec.type);
	randombytes_buf(rec.wrapped_vs, NPUB);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(rec.wrapped_vs + NPUB, NULL, v->vs, TS_KEY_BYTES,
	                                               aad, aad_len, NULL, rec.wrapped_vs, kek) != 0) {
		r = -TS_E_FAILED;
		goto fail;
	}
	rec.wrapped_vs_len = WRAPPED_VS_BYTES;
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
	if (v->n_protectors == 1)
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

/* The header map, always written the same way for the same fields: parse insists on it. */
static int header_encode(const ts_vault *v, ts_buf *out)
{
	_ts_cleanup_cbor_ cbor_item_t *m = NULL;
	_ts_cleanup_cbor_ cbor_item_t *arr = NULL;
	cbor_item_t *p;
	size_t i;
	int r;

	if ((m = cbor_new_definite_map(H_N)) == NULL || (arr = cbor_new_definite_array(v->n_protectors)) == NULL)
		return -TS_E_NOMEM;
	for (i = 0; i < v->n_protectors; i++) {
		if ((p = protector_item(&v->protectors[i])) == NULL)
			return -TS_E_NOMEM;
		if (!cbor_array_push(arr, p)) {
			cbor_decref(&p);
			return -TS_E_NOMEM;
		}
		cbor_decref(&p);
	}
	if ((r = ts_cbor_map_put(m, header_keys[H_ID], cbor_build_bytestring(v->id, TS_VAULT_ID_BYTES))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_NAME], cbor_build_string(v->name))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_OWNER], ts_cbor_build_uint(v->owner_uid))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_CREATED], ts_cbor_build_uint(v->created))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_GENERATION], ts_cbor_build_uint(v->generation))) < 0 ||
	    /* The map takes its own reference; ours goes with the cleanup. */
	    (r = ts_cbor_map_put(m, header_keys[H_PROTECTORS], cbor_incref(arr))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_KEY_VERSION], ts_cbor_build_uint(v->key_version))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_NEXT_PROTECTOR], ts_cbor_build_uint(v->next_protector))) < 0 ||
	    (r = ts_cbor_map_put(m, header_keys[H_MIN_KEY_VERSION], ts_cbor_build_uint(v->min_key_version))) < 0)
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
	for (int i = 0; i < 8; i++)
		l[i] = (uint8_t)((uint64_t)hdr_len >> (56 - 8 * i));
	if (crypto_generichash_update(&st, l, 8) != 0 || crypto_generichash_update(&st, hdr, hdr_len) != 0)
		goto out;
	for (int i = 0; i < 8; i++)
		l[i] = (uint8_t)((uint64_t)kr_len >> (56 - 8 * i));
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

int ts_vault_unlock(ts_vault *v, const char *protector_id, const uint8_t kek[TS_KEY_BYTES])
{
	_ts_cleanup_buf_ ts_buf hdr = { 0 };
	uint8_t aad[VS_AAD_MAX], mac[MAC_BYTES];
	const ts_protector_record *p;
	ts_keyring *kr = NULL;
	uint8_t *vs = NULL;
	size_t aad_len;
	int r;

	if (!v || !protector_id || !kek)
		return -TS_E_INVALID_ARGS;
	if ((p = ts_vault_find_protector(v, protector_id)) == NULL)
		return -TS_E_NO_SUCH_PROTECTOR;
	if (p->wrapped_vs_len != WRAPPED_VS_BYTES || !v->keyring_sealed)
		return -TS_E_CORRUPT;
	if ((vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL)
		return -TS_E_NOMEM;

	aad_len = vs_aad(aad, v->id, p->id, p->type);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(vs, NULL, NULL, p->wrapped_vs + NPUB,
	                                               p->wrapped_vs_len - NPUB, aad, aad_len,
	                                               p->wrapped_vs, kek) != 0) {
		r = -TS_E_AUTH_FAILED;
		goto out;
	}
	/*
	 * VS is right; now everything else in the file must be exactly what a
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

int ts_vault_unwrap(const ts_vault *v, const ts_blob_view *blob, const ts_kv *ctx, size_t n_ctx,
                    uint8_t *pt_out)
{
	const uint8_t *key;
	int r;

	if (!v || !blob)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	/* Not a secret: plain memcmp is fine, and the error tells the caller where to go. */
	if (memcmp(blob->vault_id, v->id, TS_VAULT_ID_BYTES) != 0)
		return -TS_E_WRONG_VAULT;
	if ((r = ts_keyring_key(v->keyring, blob->key_version, &key)) < 0)
		return r;
	return ts_blob_open(key, blob, ctx, n_ctx, pt_out);
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

int ts_vault_wrap(const ts_vault *v, const ts_kv *ctx, size_t n_ctx,
                  const uint8_t *pt, size_t pt_len, ts_buf *out)
{
	const uint8_t *key;
	ts_blob_view bv;
	uint8_t *check;
	size_t orig_len;
	uint32_t cur;
	int r;

	if (!v || !out)
		return -TS_E_INVALID_ARGS;
	if (ts_vault_is_locked(v))
		return -TS_E_LOCKED;
	if (pt_len > TS_PLAINTEXT_MAX)
		return -TS_E_LIMIT;
	if ((check = wrap_scratch()) == NULL)
		return -TS_E_NOMEM;
	orig_len = out->len;
	cur = ts_keyring_current(v->keyring);
	if ((r = ts_keyring_key(v->keyring, cur, &key)) < 0)
		return r;
	if ((r = ts_blob_seal(key, v->id, cur, ctx, n_ctx, pt, pt_len, NULL, out)) < 0)
		return r;
	/*
	 * A fresh wrap is opened again before anyone relies on it (as AWS XKS
	 * does): a fault between plaintext and ciphertext must not turn a data
	 * key into an unrecoverable blob.
	 */
	if ((r = ts_blob_parse(out->data + orig_len, out->len - orig_len, &bv)) < 0 ||
	    (r = ts_vault_unwrap(v, &bv, ctx, n_ctx, check)) < 0 ||
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

/* Match a map's keys against a fixed list: every key present exactly once, nothing else. */
static int map_fields(const cbor_item_t *map, const char *const *names, size_t n, const cbor_item_t **vals)
{
	struct cbor_pair *pairs;
	const cbor_item_t *k;
	size_t i, j, klen;

	if (!cbor_isa_map(map) || !cbor_map_is_definite(map) || cbor_map_size(map) != n)
		return -TS_E_CORRUPT;
	for (j = 0; j < n; j++)
		vals[j] = NULL;
	pairs = cbor_map_handle(map);
	for (i = 0; i < n; i++) {
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

static int parse_protector(const cbor_item_t *it, ts_protector_record *p)
{
	const cbor_item_t *f[P_N];
	const uint8_t *b;
	size_t len;
	int r;

	if ((r = map_fields(it, protector_keys, P_N, f)) < 0)
		return r;
	if (get_text(f[P_ID], p->id, sizeof(p->id)) < 0 ||
	    !token_valid(p->id, strlen(p->id), sizeof(p->id)) ||
	    get_text(f[P_TYPE], p->type, sizeof(p->type)) < 0 ||
	    !token_valid(p->type, strlen(p->type), sizeof(p->type)) ||
	    get_text(f[P_DESCRIPTION], p->description, sizeof(p->description)) < 0 ||
	    !description_valid(p->description, strlen(p->description)) ||
	    get_uint(f[P_CREATED], UINT64_MAX, &p->created) < 0)
		return -TS_E_CORRUPT;
	if (get_bytes(f[P_WRAPPED_VS], &b, &len) < 0 || len != WRAPPED_VS_BYTES)
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
	if ((r = map_fields(h, header_keys, H_N, f)) < 0)
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
		if ((r = parse_protector(items[i], &v->protectors[i])) < 0)
			return r;
		for (j = 0; j < i; j++)
			if (strcmp(v->protectors[j].id, v->protectors[i].id) == 0)
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
	if (map_fields(top, file_keys, F_N, f) < 0 ||
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
