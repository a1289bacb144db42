/* session.c — Secret Service sessions: "plain", and "dh-ietf1024-sha256-aes128-cbc-pkcs7" through OpenSSL libcrypto. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "secrets.h"

#define ALG_PLAIN "plain"
#define ALG_DH "dh-ietf1024-sha256-aes128-cbc-pkcs7"
#define DH_BYTES 128
#define AES_BYTES 16

/* A DH key of RFC 2409's 1024-bit MODP group (group 2, generator 2): parameters only, or with pub (peer). */
static EVP_PKEY *dh_key(const uint8_t *pub, size_t pub_len)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *p = BN_get_rfc2409_prime_1024(NULL), *g = BN_new(), *y = NULL, *pm1 = NULL;

	if (!bld || !p || !g || !BN_set_word(g, 2))
		goto out;
	if (pub) {
		/* 1 < y < p-1: rejects the small-subgroup values 0, 1 and p-1. */
		if ((y = BN_bin2bn(pub, (int)pub_len, NULL)) == NULL || (pm1 = BN_dup(p)) == NULL || !BN_sub_word(pm1, 1) ||
		    BN_cmp(y, BN_value_one()) <= 0 || BN_cmp(y, pm1) >= 0)
			goto out;
	}
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_P, p) || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_FFC_G, g) ||
	    (y && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, y)) || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL)) == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &k, y ? EVP_PKEY_PUBLIC_KEY : EVP_PKEY_KEY_PARAMETERS, params) <= 0)
		k = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(p);
	BN_free(g);
	BN_free(y);
	BN_free(pm1);
	return k;
}

/*
 * Our half of the exchange and the AES key: shared secret (padded to 128 bytes) →
 * HKDF-SHA256 (no salt, no info) → 16 bytes. *ret_key is sodium_malloc()ed.
 */
static int dh_agree(const uint8_t *peer, size_t peer_len, uint8_t ours[DH_BYTES], uint8_t **ret_key)
{
	EVP_PKEY *params = NULL, *mine = NULL, *theirs = NULL;
	EVP_PKEY_CTX *gctx = NULL, *dctx = NULL;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	BIGNUM *pub = NULL;
	uint8_t *shared = NULL, *key = NULL;
	size_t slen = DH_BYTES;
	OSSL_PARAM kp[3];
	int r = -EINVAL;

	if (peer_len == 0 || peer_len > DH_BYTES || (theirs = dh_key(peer, peer_len)) == NULL)
		goto out;
	r = -EIO;
	if ((params = dh_key(NULL, 0)) == NULL || (gctx = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL)) == NULL ||
	    EVP_PKEY_keygen_init(gctx) <= 0 || EVP_PKEY_generate(gctx, &mine) <= 0)
		goto out;
	if (!EVP_PKEY_get_bn_param(mine, OSSL_PKEY_PARAM_PUB_KEY, &pub) || BN_bn2binpad(pub, ours, DH_BYTES) != DH_BYTES)
		goto out;
	if ((shared = sodium_malloc(DH_BYTES)) == NULL || (key = sodium_malloc(AES_BYTES)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if ((dctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL)) == NULL || EVP_PKEY_derive_init(dctx) <= 0 ||
	    EVP_PKEY_CTX_set_dh_pad(dctx, 1) <= 0 || EVP_PKEY_derive_set_peer_ex(dctx, theirs, 0) <= 0 ||
	    EVP_PKEY_derive(dctx, shared, &slen) <= 0 || slen != DH_BYTES)
		goto out;
	kp[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	kp[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared, DH_BYTES);
	kp[2] = OSSL_PARAM_construct_end();
	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL || (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
	    EVP_KDF_derive(kctx, key, AES_BYTES, kp) <= 0)
		goto out;
	*ret_key = key;
	key = NULL;
	r = 0;
out:
	if (shared)
		sodium_free(shared);
	if (key)
		sodium_free(key);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_CTX_free(gctx);
	EVP_PKEY_free(params);
	EVP_PKEY_free(mine);
	EVP_PKEY_free(theirs);
	BN_free(pub);
	return r;
}

void ss_session_free(ss_session *se)
{
	if (!se)
		return;
	if (se->aes_key)
		sodium_free(se->aes_key);
	free(se->path);
	free(se->owner);
	free(se);
}

static void session_remove(ss_service *s, size_t i)
{
	ss_session_free(s->sessions[i]);
	memmove(&s->sessions[i], &s->sessions[i + 1], (s->n_sessions - i - 1) * sizeof(*s->sessions));
	s->n_sessions--;
}

void ss_sessions_drop_owner(ss_service *s, const char *owner)
{
	size_t i;

	for (i = 0; i < s->n_sessions;)
		if (strcmp(s->sessions[i]->owner, owner) == 0)
			session_remove(s, i);
		else
			i++;
}

ss_session *ss_session_find(ss_service *s, const char *path, const char *sender)
{
	size_t i;

	/* A session is its opener's alone: another client cannot read secrets through it. */
	for (i = 0; i < s->n_sessions; i++)
		if (strcmp(s->sessions[i]->path, path) == 0 && sender && strcmp(s->sessions[i]->owner, sender) == 0)
			return s->sessions[i];
	return NULL;
}

static size_t count_owner(ss_service *s, const char *owner)
{
	size_t i, n = 0;

	for (i = 0; i < s->n_sessions; i++)
		n += strcmp(s->sessions[i]->owner, owner) == 0;
	return n;
}

int ss_session_open(ss_service *s, sd_bus_message *m, sd_bus_error *e)
{
	_ss_cleanup_msg_ sd_bus_message *reply = NULL;
	const char *alg, *contents = NULL, *sender = sd_bus_message_get_sender(m);
	uint8_t ours[DH_BYTES];
	ss_session *se;
	char type;
	int r;

	if ((r = sd_bus_message_read(m, "s", &alg)) < 0 || (r = sd_bus_message_peek_type(m, &type, &contents)) < 0)
		return r;
	if (!sender)
		return sd_bus_error_set(e, SS_ERR_FAILED, "no sender");
	if (s->n_sessions >= SS_SESSIONS_MAX || count_owner(s, sender) >= SS_SESSIONS_PER_CLIENT)
		return sd_bus_error_set(e, "org.freedesktop.DBus.Error.LimitsExceeded", "too many sessions open");
	if ((se = calloc(1, sizeof(*se))) == NULL || (se->owner = strdup(sender)) == NULL) {
		ss_session_free(se);
		return -ENOMEM;
	}
	se->n = ++s->next_session;
	if (asprintf(&se->path, SS_SESSION_PREFIX "/s%llu", (unsigned long long)se->n) < 0) {
		se->path = NULL;
		ss_session_free(se);
		return -ENOMEM;
	}
	if (strcmp(alg, ALG_PLAIN) == 0) {
		r = sd_bus_message_skip(m, "v");
	} else if (strcmp(alg, ALG_DH) == 0) {
		const void *peer;
		size_t peer_len;

		if (!contents || strcmp(contents, "ay") != 0) {
			ss_session_free(se);
			return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "the DH input is the client's public key (ay)");
		}
		if ((r = sd_bus_message_enter_container(m, 'v', "ay")) < 0 ||
		    (r = sd_bus_message_read_array(m, 'y', &peer, &peer_len)) < 0 || (r = sd_bus_message_exit_container(m)) < 0) {
			ss_session_free(se);
			return r;
		}
		if ((r = dh_agree(peer, peer_len, ours, &se->aes_key)) < 0) {
			ss_session_free(se);
			return r == -EINVAL ? sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "invalid DH public key")
			                    : sd_bus_error_set(e, SS_ERR_FAILED, "key agreement failed");
		}
	} else {
		ss_session_free(se);
		return sd_bus_error_setf(e, SS_ERR_NOT_SUPPORTED, "algorithm '%s' is not supported (plain, " ALG_DH ")",
		                         alg);
	}
	if (r < 0 || (r = sd_bus_message_new_method_return(m, &reply)) < 0)
		goto fail;
	if (se->aes_key) {
		/* The output is our public key. */
		if ((r = sd_bus_message_open_container(reply, 'v', "ay")) < 0 ||
		    (r = sd_bus_message_append_array(reply, 'y', ours, DH_BYTES)) < 0 ||
		    (r = sd_bus_message_close_container(reply)) < 0)
			goto fail;
	} else if ((r = sd_bus_message_append(reply, "v", "s", "")) < 0)
		goto fail;
	if ((r = sd_bus_message_append(reply, "o", se->path)) < 0)
		goto fail;
	s->sessions = reallocarray(s->sessions, s->n_sessions + 1, sizeof(*s->sessions));
	if (!s->sessions) {
		r = -ENOMEM;
		goto fail;
	}
	s->sessions[s->n_sessions++] = se;
	return sd_bus_send(NULL, reply, NULL);
fail:
	ss_session_free(se);
	return r;
}

int ss_session_append_secret(ss_session *se, sd_bus_message *reply, const uint8_t *secret, size_t len,
                             const char *content_type)
{
	uint8_t iv[AES_BYTES], *out = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int r, n1 = 0, n2 = 0;

	/* sd-bus wipes a sensitive message's memory when it frees it: the secret does not linger in the heap. */
	(void)sd_bus_message_sensitive(reply);
	if ((r = sd_bus_message_open_container(reply, 'r', "oayays")) < 0 || (r = sd_bus_message_append(reply, "o", se->path)) < 0)
		return r;
	if (!se->aes_key) {
		if ((r = sd_bus_message_append_array(reply, 'y', NULL, 0)) < 0 ||
		    (r = sd_bus_message_append_array(reply, 'y', secret, len)) < 0)
			return r;
	} else {
		if (RAND_bytes(iv, sizeof(iv)) != 1)
			return -EIO;
		if ((out = malloc(len + AES_BYTES)) == NULL)
			return -ENOMEM;
		r = -EIO;
		if ((ctx = EVP_CIPHER_CTX_new()) != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, se->aes_key, iv) == 1 &&
		    EVP_EncryptUpdate(ctx, out, &n1, secret, (int)len) == 1 && EVP_EncryptFinal_ex(ctx, out + n1, &n2) == 1)
			r = 0;
		EVP_CIPHER_CTX_free(ctx);
		if (r == 0 && ((r = sd_bus_message_append_array(reply, 'y', iv, sizeof(iv))) >= 0))
			r = sd_bus_message_append_array(reply, 'y', out, (size_t)(n1 + n2));
		free(out);
		if (r < 0)
			return r;
	}
	if ((r = sd_bus_message_append(reply, "s", content_type ? content_type : "text/plain")) < 0)
		return r;
	return sd_bus_message_close_container(reply);
}

int ss_session_read_secret(ss_service *s, sd_bus_message *m, uint8_t **ret, size_t *ret_len, char **ret_ct,
                           sd_bus_error *e)
{
	const char *path, *ct;
	const void *params, *value;
	size_t plen, vlen;
	ss_session *se;
	uint8_t *pt;
	int r, n1 = 0, n2 = 0;

	(void)sd_bus_message_sensitive(m); /* the secret sent in (in the clear in a plain session) is wiped with m */
	if ((r = sd_bus_message_enter_container(m, 'r', "oayays")) < 0 || (r = sd_bus_message_read(m, "o", &path)) < 0 ||
	    (r = sd_bus_message_read_array(m, 'y', &params, &plen)) < 0 ||
	    (r = sd_bus_message_read_array(m, 'y', &value, &vlen)) < 0 || (r = sd_bus_message_read(m, "s", &ct)) < 0 ||
	    (r = sd_bus_message_exit_container(m)) < 0)
		return r;
	if ((se = ss_session_find(s, path, sd_bus_message_get_sender(m))) == NULL)
		return sd_bus_error_set(e, SS_ERR_NO_SESSION, "no such session (open one with OpenSession)");
	if (vlen > SS_SECRET_MAX + AES_BYTES)
		return sd_bus_error_setf(e, SS_ERR_INVALID_ARGS, "secret too large (at most %u bytes)", SS_SECRET_MAX);
	if (!ss_valid_text(ct))
		return sd_bus_error_setf(e, SS_ERR_INVALID_ARGS, "content type too long (at most %d bytes)", SS_TEXT_MAX);
	if ((pt = sodium_malloc(vlen + AES_BYTES)) == NULL)
		return -ENOMEM;
	if (!se->aes_key) {
		if (vlen)
			memcpy(pt, value, vlen);
		n1 = (int)vlen;
	} else {
		EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

		r = -1;
		if (ctx && plen == AES_BYTES && vlen % AES_BYTES == 0 && vlen > 0 &&
		    EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, se->aes_key, params) == 1 &&
		    EVP_DecryptUpdate(ctx, pt, &n1, value, (int)vlen) == 1 && EVP_DecryptFinal_ex(ctx, pt + n1, &n2) == 1)
			r = 0;
		EVP_CIPHER_CTX_free(ctx);
		if (r < 0) {
			sodium_free(pt);
			return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "the secret does not decrypt with the session key");
		}
	}
	if ((size_t)(n1 + n2) > SS_SECRET_MAX) {
		sodium_free(pt);
		return sd_bus_error_set(e, SS_ERR_INVALID_ARGS, "secret too large (at most 1 MiB)");
	}
	if (ret_ct && (*ret_ct = strdup(ct)) == NULL) {
		sodium_free(pt);
		return -ENOMEM;
	}
	*ret = pt;
	*ret_len = (size_t)(n1 + n2);
	return 1;
}

static int method_close(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
	ss_service *s = userdata;
	const char *path = sd_bus_message_get_path(m), *sender = sd_bus_message_get_sender(m);
	size_t i;

	for (i = 0; i < s->n_sessions; i++)
		if (strcmp(s->sessions[i]->path, path) == 0 && sender && strcmp(s->sessions[i]->owner, sender) == 0) {
			session_remove(s, i);
			return sd_bus_reply_method_return(m, NULL);
		}
	return sd_bus_error_set(e, SS_ERR_NO_SESSION, "no such session");
}

static const sd_bus_vtable session_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Close", "", "", method_close, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END,
};

static int session_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **found, sd_bus_error *e)
{
	ss_service *s = userdata;
	size_t i;

	for (i = 0; i < s->n_sessions; i++)
		if (strcmp(s->sessions[i]->path, path) == 0) {
			*found = s;
			return 1;
		}
	return 0;
}

int ss_session_register(ss_service *s)
{
	return sd_bus_add_fallback_vtable(s->bus, NULL, SS_SESSION_PREFIX, SS_SESSION_IFACE, session_vtable, session_find, s);
}
