/*
 * tang.c — the tang protector: a KEK bound to one or more Tang servers by the
 * McCallum-Relyea exchange (the protocol of Tang and Clevis), run in the token
 * helper. libjose does the JWK, JWS and ECMR work, libcurl the HTTP(S).
 *
 * Enroll, per server: GET URL/adv (a JWS over the server's JWK set); the
 * signature must verify with the signing key whose SHA-256 JWK thumbprint
 * (RFC 7638) the administrator gave (thp=), or, with trust-first-use=yes,
 * with every signing key it lists (the thumbprint seen is recorded and
 * shown). Its exchange key S (alg ECMR) is kept; a fresh client key c gives
 * K = c·S, and only C = c·G is kept (c is forgotten). One random KEK is
 * sealed (XChaCha20-Poly1305) under a key derived from K for each server, so
 * any one server that answers opens it.
 *
 * Unlock, per server until one answers: a fresh e; X = C + e·G is sent to
 * POST URL/rec/KID (KID: S's thumbprint); the server answers Y = s·X, and
 * K = Y − e·S. The server learns nothing of K (X is blinded by e), and an
 * eavesdropper learns nothing either; a wrong answer opens no box. The
 * server's key rotation (tangd-rotate-keys) hides the old key from the
 * advertisement but still answers for it, so the protector keeps working
 * until the old key is deleted; `tokenseal enroll tang --replace ID` rebinds.
 *
 * The record (ts_params): v, n, and per server i (0-based): url<i>, thp<i>
 * (the signing key's thumbprint), srv<i> and clt<i> (the public JWKs S and
 * C, JSON text), box<i> (nonce ‖ sealed KEK). Nothing in it is secret: the
 * vault file alone, with the network, opens the KEK, which is why the policy
 * refuses a tang protector that can open a vault on its own ([tang] alone).
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <resolv.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>
#include <jose/b64.h>
#include <jose/jwk.h>
#include <jose/jws.h>
#include <sodium.h>

#include "core/params.h"
#include "core/vault.h"
#include "protectors/protector.h"

#define TANG_PARAMS_VERSION 1
#define TANG_MAX_SERVERS TS_TANG_MAX_SERVERS
#define TANG_URL_MAX TS_TANG_URL_MAX
#define TANG_REPLY_MAX (64 * 1024)        /* an advertisement or a recovery answer */
#define TANG_CONNECT_TIMEOUT_MS 3000L
#define TANG_TIMEOUT_MS 8000L              /* per server, at most */
/*
 * One enrollment's or one unlock's whole time, name resolution included,
 * whatever the number of servers: well under the daemon's wait for a helper
 * (the FIDO2 touch timeout + 60 s). Servers not reached by then are not asked.
 */
#define TANG_SHARE_DEADLINE_MS 12000L
#define TANG_LEFT_MIN_MS 200L              /* less than this left: the next server is not asked */
#define TANG_THP_LEN 43                    /* base64url SHA-256 */
#define TANG_BOX_BYTES (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + TS_KEY_BYTES + \
                        crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define TANG_KDF_LABEL "tokenseal-tang-kek-v1"

/* jansson's own cleanup (json_auto_t), named as this project names cleanups. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

/* ---- HTTP ---------------------------------------------------------------------------------- */

struct body {
	char *data;
	size_t len;
	int overflow;
};

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct body *b = ud;
	size_t n = size * nmemb;
	char *nd;

	if (nmemb && n / nmemb != size)
		return 0;
	if (b->len + n > TANG_REPLY_MAX) {
		b->overflow = 1;
		return 0;
	}
	if ((nd = realloc(b->data, b->len + n + 1)) == NULL)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/*
 * jansson (and so libjose, which keeps every JWK in it) frees through this:
 * each block is wiped first, since the private half of the exchange (e's
 * "d") and the point K pass through JSON strings. Blocks come from plain
 * malloc, so one allocated before the switch (libjose's own, at load) is
 * freed the same way.
 */
static void wiping_free(void *p)
{
	if (!p)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

/* Once, before the first exchange (blocks stay malloc's, so values made earlier are freed alike). */
static void json_init_once(void)
{
	static int done;

	if (!done) {
		json_set_alloc_funcs(malloc, wiping_free);
		done = 1;
	}
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before deadline (a CLOCK_MONOTONIC time in ms), 0 when past. */
static long left_ms(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left > 0 ? (long)left : 0;
}

/*
 * The DNS part of getaddrinfo, bounded: one try of 1 s per name server (at
 * most 3, resolv.conf's limit) and the name as written, no search domains
 * (each would be another round). resolv.conf is read again each time; the
 * bounds are set on top. What nsswitch answers first (/etc/hosts) is not
 * affected.
 */
static void bound_resolver(void)
{
	if (res_init() != 0)
		return;
	_res.retrans = 1;
	_res.retry = 1;
	_res.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
}

/*
 * A name (not an address) is resolved here, with getaddrinfo in this thread,
 * and handed to curl as CURLOPT_RESOLVE: curl's own resolver starts a thread,
 * which the helper's sandbox does not allow. The resolver's bounds
 * (bound_resolver) keep it inside the share's deadline, checked after.
 */
static int resolve_for_curl(const char *url, int64_t deadline, struct curl_slist **ret, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, entry[TANG_URL_MAX + 400];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	unsigned char tmp[16];
	size_t len;
	int r = -TS_E_FAILED, gr;

	*ret = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		snprintf(err, errlen, "not a valid URL");
		r = -TS_E_INVALID_ARGS;
		goto out;
	}
	if (host[0] == '[' || inet_pton(AF_INET, host, tmp) == 1) {
		r = 0;   /* an address: curl does not resolve it */
		goto out;
	}
	bound_resolver();
	if ((gr = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gr));
		r = -TS_E_TOKEN_ABSENT;
		goto out;
	}
	if (left_ms(deadline) < TANG_LEFT_MIN_MS) {
		snprintf(err, errlen, "resolving %s took the rest of the %ld s", host, TANG_SHARE_DEADLINE_MS / 1000);
		r = -TS_E_TIMEOUT;
		goto out;
	}
	len = (size_t)snprintf(entry, sizeof(entry), "%s:%s:", host, port);
	for (ai = res; ai && len < sizeof(entry) - 64; ai = ai->ai_next) {
		char a[INET6_ADDRSTRLEN];
		const void *src = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
		                  : ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
		                                              : NULL;
		if (!src || !inet_ntop(ai->ai_family, src, a, sizeof(a)))
			continue;
		len += (size_t)snprintf(entry + len, sizeof(entry) - len, ai->ai_family == AF_INET6 ? "%s[%s]" : "%s%s",
		                        entry[len - 1] == ':' ? "" : ",", a);
	}
	if (entry[len - 1] == ':') {
		snprintf(err, errlen, "cannot resolve %s: no address", host);
		r = -TS_E_TOKEN_ABSENT;
		goto out;
	}
	r = (*ret = curl_slist_append(NULL, entry)) ? 0 : -TS_E_NOMEM;
out:
	if (res)
		freeaddrinfo(res);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

/*
 * GET (post NULL) or POST (post: JSON text) base + path, done by deadline
 * (resolution, connection and answer). On success *ret is the parsed JSON
 * answer (status 200 only). err names the server's failure.
 */
static int http_json(const char *base, const char *path, const char *post, int64_t deadline, json_t **ret, char *err,
                     size_t errlen)
{
	long left = left_ms(deadline);

	struct body b = { 0 };
	struct curl_slist *hdrs = NULL, *resolve = NULL;
	char url[TANG_URL_MAX + 128], cerr[CURL_ERROR_SIZE] = "";
	CURL *h = NULL;
	CURLcode cc;
	long status = 0;
	json_error_t je;
	int r;

	*ret = NULL;
	/* libcurl is initialized by the helper's main, before its sandbox (curl_global_init). */
	if (left < TANG_LEFT_MIN_MS)
		return snprintf(err, errlen, "not asked: the %ld s for all servers were used up",
		                TANG_SHARE_DEADLINE_MS / 1000), -TS_E_TIMEOUT;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", base, path) >= sizeof(url))
		return snprintf(err, errlen, "URL too long"), -TS_E_INVALID_ARGS;
	if ((r = resolve_for_curl(url, deadline, &resolve, err, errlen)) < 0)
		return r;
	left = left_ms(deadline);
	if ((h = curl_easy_init()) == NULL) {
		r = -TS_E_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (post && ((hdrs = curl_slist_append(NULL, "Content-Type: application/jwk+json")) == NULL ||
	             (hdrs = curl_slist_append(hdrs, "Accept: application/jwk+json")) == NULL)) {
		r = -TS_E_NOMEM;
		goto out;
	}
	/* Only what was asked: no redirect, no proxy, no other protocol, bounded in time and size. */
	if (curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, left < TANG_CONNECT_TIMEOUT_MS ? left : TANG_CONNECT_TIMEOUT_MS) !=
	            CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left < TANG_TIMEOUT_MS ? left : TANG_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b) != CURLE_OK ||
	    (resolve && curl_easy_setopt(h, CURLOPT_RESOLVE, resolve) != CURLE_OK) ||
	    (post && (curl_easy_setopt(h, CURLOPT_POSTFIELDS, post) != CURLE_OK ||
	              curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK))) {
		r = -TS_E_FAILED;
		snprintf(err, errlen, "cannot set up the HTTP request");
		goto out;
	}
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		r = cc == CURLE_OPERATION_TIMEDOUT ? -TS_E_TIMEOUT : -TS_E_TOKEN_ABSENT;
		/* curl's short text: the URL is named by the caller; TLS failures keep curl's detail. */
		snprintf(err, errlen, "%s%s%s", b.overflow ? "answer too long" : curl_easy_strerror(cc),
		         cerr[0] && !b.overflow && (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR)
		                 ? ": " : "",
		         cerr[0] && !b.overflow && (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR)
		                 ? cerr : "");
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		r = -TS_E_TOKEN_NOT_ENROLLED;
		snprintf(err, errlen, "HTTP status %ld for %s", status, path);
		goto out;
	}
	if (!b.data || (*ret = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		r = -TS_E_FAILED;
		snprintf(err, errlen, "the answer to %s is not JSON", path);
		goto out;
	}
	r = 0;
out:
	curl_slist_free_all(hdrs);
	curl_slist_free_all(resolve);
	curl_easy_cleanup(h);
	free(b.data);
	return r;
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* A public EC key we accept from a server or a record: ECMR-capable curve, x and y, no private part. */
static int ec_public_ok(const json_t *k)
{
	const char *kty = NULL, *crv = NULL;

	if (!json_is_object(k) || json_unpack((json_t *)k, "{s:s,s:s}", "kty", &kty, "crv", &crv) < 0)
		return 0;
	return strcmp(kty, "EC") == 0 &&
	       (strcmp(crv, "P-256") == 0 || strcmp(crv, "P-384") == 0 || strcmp(crv, "P-521") == 0) &&
	       json_is_string(json_object_get(k, "x")) && json_is_string(json_object_get(k, "y")) &&
	       !json_object_get(k, "d");
}

static int thp_of(const json_t *jwk, char out[TANG_THP_LEN + 1])
{
	_cleanup_json_ json_t *t = jose_jwk_thp(NULL, jwk, "S256");

	if (!t || !json_is_string(t) || json_string_length(t) != TANG_THP_LEN)
		return -TS_E_FAILED;
	memcpy(out, json_string_value(t), TANG_THP_LEN + 1);
	return 0;
}

/* The advertisement checked: its payload's signing keys verify it, one of them is thp (or any, on first use). */
static int adv_check(const json_t *adv, const char *thp, char thp_seen[TANG_THP_LEN + 1], json_t **ret_exc,
                     char *err, size_t errlen)
{
	_cleanup_json_ json_t *payload = NULL, *ver = json_array();
	json_t *keys, *k, *exc = NULL;
	size_t i;
	int pinned = 0;

	*ret_exc = NULL;
	if (!ver)
		return -TS_E_NOMEM;
	if (!json_is_object(adv) || !(payload = jose_b64_dec_load(json_object_get(adv, "payload"))) ||
	    !json_is_object(payload) || !json_is_array(keys = json_object_get(payload, "keys")) ||
	    json_array_size(keys) > 64)
		return snprintf(err, errlen, "the advertisement is not a JWS over a JWK set"), -TS_E_FAILED;
	thp_seen[0] = '\0';
	json_array_foreach(keys, i, k) {
		char t[TANG_THP_LEN + 1];

		if (jose_jwk_prm(NULL, k, true, "verify")) {
			if (!ec_public_ok(k) || json_array_append(ver, k) < 0)
				return snprintf(err, errlen, "the advertisement has a malformed signing key"), -TS_E_FAILED;
			if (thp_of(k, t) < 0)
				return snprintf(err, errlen, "cannot compute a key thumbprint"), -TS_E_FAILED;
			/* Recorded: the pinned key's thumbprint, or on first use the first signing key's. */
			if (thp && strlen(thp) == TANG_THP_LEN && sodium_memcmp(t, thp, TANG_THP_LEN) == 0) {
				pinned = 1;
				memcpy(thp_seen, t, sizeof(t));
			} else if (!thp && !thp_seen[0])
				memcpy(thp_seen, t, sizeof(t));
		} else if (jose_jwk_prm(NULL, k, true, "deriveKey") && json_is_string(json_object_get(k, "alg")) &&
		           strcmp(json_string_value(json_object_get(k, "alg")), "ECMR") == 0 && !exc && ec_public_ok(k))
			exc = k;
	}
	if (json_array_size(ver) == 0)
		return snprintf(err, errlen, "the advertisement lists no signing key"), -TS_E_FAILED;
	if (thp && !pinned)
		return snprintf(err, errlen, "no signing key of the advertisement has thumbprint %.64s "
		                "(see tang-show-keys on the server)", thp), -TS_E_TOKEN_NOT_ENROLLED;
	/* Every signing key it lists must have signed it (as clevis checks). */
	if (!jose_jws_ver(NULL, adv, NULL, ver, true))
		return snprintf(err, errlen, "the advertisement's signature does not verify"), -TS_E_TOKEN_NOT_ENROLLED;
	if (!exc)
		return snprintf(err, errlen, "the advertisement offers no ECMR exchange key"), -TS_E_NOT_SUPPORTED;
	*ret_exc = json_deep_copy(exc);
	return *ret_exc ? 0 : -TS_E_NOMEM;
}

/* The key that seals the KEK for one server: BLAKE2b over the label, the vault id, the URL and K's point. */
static int box_key(const json_t *K, const uint8_t *vault_id, const char *url, uint8_t out[TS_KEY_BYTES])
{
	crypto_generichash_state st;
	uint8_t xy[2 * 66];
	size_t xl, yl;

	if (!json_is_object(K) ||
	    (xl = jose_b64_dec(json_object_get(K, "x"), NULL, 0)) == SIZE_MAX || xl == 0 || xl > 66 ||
	    (yl = jose_b64_dec(json_object_get(K, "y"), NULL, 0)) == SIZE_MAX || yl == 0 || yl > 66 ||
	    jose_b64_dec(json_object_get(K, "x"), xy, xl) != xl || jose_b64_dec(json_object_get(K, "y"), xy + xl, yl) != yl)
		return -TS_E_FAILED;
	crypto_generichash_init(&st, NULL, 0, TS_KEY_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)TANG_KDF_LABEL, sizeof(TANG_KDF_LABEL));
	crypto_generichash_update(&st, vault_id, TS_VAULT_ID_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)url, strlen(url) + 1);
	crypto_generichash_update(&st, xy, xl + yl);
	crypto_generichash_final(&st, out, TS_KEY_BYTES);
	sodium_memzero(xy, sizeof(xy));
	sodium_memzero(&st, sizeof(st));
	return 0;
}

static void box_ad(const uint8_t *vault_id, const char *url, uint8_t *ad, size_t *adlen)
{
	size_t ul = strlen(url);

	memcpy(ad, vault_id, TS_VAULT_ID_BYTES);
	memcpy(ad + TS_VAULT_ID_BYTES, url, ul);
	*adlen = TS_VAULT_ID_BYTES + ul;
}

/* ---- options and the record ---------------------------------------------------------------- */

/* A URL a caller may give: http(s)://, printable, no spaces, no user part, no query; no trailing slash kept. */
static int url_valid(const char *u)
{
	size_t n = strlen(u);
	const char *rest;

	if (n == 0 || n > TANG_URL_MAX)
		return 0;
	if (strncmp(u, "http://", 7) == 0)
		rest = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		rest = u + 8;
	else
		return 0;
	if (!*rest || *rest == '/')
		return 0;
	for (const char *p = u; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '@' || *p == '?' || *p == '#' || *p == '\\')
			return 0;
	return 1;
}

typedef struct tang_server {
	const char *url, *thp, *srv, *clt;
	const uint8_t *box;
	size_t box_len;
} tang_server;

static int decode(const uint8_t *b, size_t len, ts_params **ret_pp, tang_server *s, size_t *ret_n)
{
	ts_params *pp = NULL;
	uint64_t v, n;
	char key[32];
	int r;

	if ((r = ts_params_decode(b, len, &pp)) < 0)
		return r;
	if (ts_params_get_uint(pp, "v", &v) < 0 || v != TANG_PARAMS_VERSION || ts_params_get_uint(pp, "n", &n) < 0 ||
	    n == 0 || n > TANG_MAX_SERVERS)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "url%zu", i);
		if (ts_params_get_str(pp, key, &s[i].url) < 0 || !url_valid(s[i].url))
			goto bad;
		snprintf(key, sizeof(key), "thp%zu", i);
		if (ts_params_get_str(pp, key, &s[i].thp) < 0 || strlen(s[i].thp) != TANG_THP_LEN)
			goto bad;
		snprintf(key, sizeof(key), "srv%zu", i);
		if (ts_params_get_str(pp, key, &s[i].srv) < 0)
			goto bad;
		snprintf(key, sizeof(key), "clt%zu", i);
		if (ts_params_get_str(pp, key, &s[i].clt) < 0)
			goto bad;
		snprintf(key, sizeof(key), "box%zu", i);
		if (ts_params_get_bytes(pp, key, &s[i].box, &s[i].box_len) < 0 || s[i].box_len != TANG_BOX_BYTES)
			goto bad;
	}
	*ret_pp = pp;
	*ret_n = (size_t)n;
	return 0;
bad:
	ts_params_free(pp);
	return -TS_E_CORRUPT;
}

/* ---- enroll -------------------------------------------------------------------------------- */

static int tang_enroll(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc,
                       char *secret_out, size_t secret_out_cap, size_t *secret_out_len)
{
	const char *url_opt = ts_protector_option(req, "url"), *thp_opt = ts_protector_option(req, "thp");
	const char *tofu = ts_protector_option(req, "trust-first-use");
	char ubuf[TS_TANG_URLS_TEXT_MAX], tbuf[TANG_MAX_SERVERS * (TANG_THP_LEN + 1) + 1];
	char *urls[TANG_MAX_SERVERS], *thps[TANG_MAX_SERVERS], err[384] = "", key[16];
	_ts_cleanup_secure_ uint8_t *wk = ts_secure_alloc(TS_KEY_BYTES);
	uint8_t box[TANG_BOX_BYTES], ad[TS_VAULT_ID_BYTES + TANG_URL_MAX];
	ts_params *pp = NULL;
	size_t nu, nt, adlen, dl = 0;
	int r, trust_first = tofu && strcmp(tofu, "yes") == 0;
	int64_t deadline = now_ms() + TANG_SHARE_DEADLINE_MS;

	*secret_out_len = 0;
	(void)secret_out;
	(void)secret_out_cap;
	json_init_once();
	if (!wk)
		return ts_protector_fail(req, -TS_E_NOMEM, "out of secure memory");
	if (tofu && strcmp(tofu, "yes") != 0 && strcmp(tofu, "no") != 0)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "trust-first-use is yes or no");
	nu = ts_protector_split_list(url_opt, ubuf, sizeof(ubuf), urls, TANG_MAX_SERVERS);
	if (nu == 0 || nu > TANG_MAX_SERVERS)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "a tang protector needs url=URL (1 to %d servers, "
		                         "separated by spaces)", TANG_MAX_SERVERS);
	for (size_t i = 0; i < nu; i++)
		if (!url_valid(urls[i]))
			return ts_protector_fail(req, -TS_E_INVALID_ARGS, "'%.300s' is not an http:// or https:// URL of a "
			                         "Tang server (no user, query or fragment)", urls[i]);
	nt = ts_protector_split_list(thp_opt, tbuf, sizeof(tbuf), thps, TANG_MAX_SERVERS);
	if (thp_opt && trust_first)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "give thp= or trust-first-use=yes, not both");
	if (!thp_opt && !trust_first)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "a tang protector needs the thumbprint of each server's "
		                         "signing key (thp=, from tang-show-keys on the server), or trust-first-use=yes "
		                         "to trust what the servers advertise now");
	if (thp_opt && nt != 1 && nt != nu)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "thp= gives one thumbprint for all servers or one per "
		                         "server (%zu servers, %zu thumbprints)", nu, nt);
	for (size_t i = 0; thp_opt && i < nt; i++)
		if (strlen(thps[i]) != TANG_THP_LEN || strspn(thps[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                                                          "0123456789-_") != TANG_THP_LEN)
			return ts_protector_fail(req, -TS_E_INVALID_ARGS, "'%.64s' is not a SHA-256 JWK thumbprint "
			                         "(43 base64url characters, as tang-show-keys prints)", thps[i]);

	randombytes_buf(kek, TS_KEY_BYTES);
	if ((r = ts_params_new(&pp)) < 0 || (r = ts_params_set_uint(pp, "v", TANG_PARAMS_VERSION)) < 0 ||
	    (r = ts_params_set_uint(pp, "n", nu)) < 0)
		goto out;
	for (size_t i = 0; i < nu; i++) {
		/* A trailing slash would double in URL/adv and change the box's binding; drop it. */
		size_t ul = strlen(urls[i]);
		_cleanup_json_ json_t *adv = NULL, *S = NULL, *c = NULL, *K = NULL, *tmpl = NULL;
		char thp_seen[TANG_THP_LEN + 1] = "", *stext = NULL, *ctext = NULL;

		while (ul > 0 && urls[i][ul - 1] == '/')
			urls[i][--ul] = '\0';
		if ((r = http_json(urls[i], "/adv", NULL, deadline, &adv, err, sizeof(err))) < 0) {
			r = ts_protector_fail(req, r, "Tang server %s: %s", urls[i], err);
			goto out;
		}
		if ((r = adv_check(adv, thp_opt ? thps[nt == 1 ? 0 : i] : NULL, thp_seen, &S, err, sizeof(err))) < 0) {
			r = ts_protector_fail(req, r, "Tang server %s: %s; nothing enrolled", urls[i], err);
			goto out;
		}
		/* K = c·S; only C = c·G is kept. */
		if (!(tmpl = json_pack("{s:s,s:O}", "alg", "ECMR", "crv", json_object_get(S, "crv"))) ||
		    !(c = json_deep_copy(tmpl)) || !jose_jwk_gen(NULL, c) || !(K = jose_jwk_exc(NULL, c, S)) ||
		    !jose_jwk_pub(NULL, c) || !ec_public_ok(c) || box_key(K, req->vault_id, urls[i], wk) < 0) {
			r = ts_protector_fail(req, -TS_E_FAILED, "Tang server %s: the key exchange failed", urls[i]);
			goto out;
		}
		randombytes_buf(box, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
		box_ad(req->vault_id, urls[i], ad, &adlen);
		crypto_aead_xchacha20poly1305_ietf_encrypt(box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, NULL, kek,
		                                           TS_KEY_BYTES, ad, adlen, NULL, box, wk);
		stext = json_dumps(S, JSON_COMPACT | JSON_SORT_KEYS);
		ctext = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
		r = -TS_E_NOMEM;
		if (stext && ctext) {
			r = 0;
			snprintf(key, sizeof(key), "url%zu", i);
			if (r == 0) r = ts_params_set_str(pp, key, urls[i]);
			snprintf(key, sizeof(key), "thp%zu", i);
			if (r == 0) r = ts_params_set_str(pp, key, thp_seen);
			snprintf(key, sizeof(key), "srv%zu", i);
			if (r == 0) r = ts_params_set_str(pp, key, stext);
			snprintf(key, sizeof(key), "clt%zu", i);
			if (r == 0) r = ts_params_set_str(pp, key, ctext);
			snprintf(key, sizeof(key), "box%zu", i);
			if (r == 0) r = ts_params_set_bytes(pp, key, box, sizeof(box));
		}
		free(stext);
		free(ctext);
		if (r < 0)
			goto out;
		if (dl < TS_PROTECTOR_DESC_MAX)
			dl += (size_t)snprintf(ret_desc + dl, TS_PROTECTOR_DESC_MAX - dl, "%s%s (%s%.12s...)", i ? ", " : "Tang ",
			                       urls[i], trust_first ? "trusted on first use, key " : "key ", thp_seen);
	}
	r = ts_params_encode(pp, ret_params);
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	ts_params_free(pp);
	return r;
}

/* ---- unlock -------------------------------------------------------------------------------- */

/* One server's answer to the exchange; 0 with wk set, or negative with err set. */
static int recover_one(const ts_protector_request *req, const tang_server *s, int64_t deadline, uint8_t *wk, char *err,
                       size_t errlen)
{
	_cleanup_json_ json_t *S = NULL, *C = NULL, *e = NULL, *X = NULL, *Y = NULL, *Z = NULL, *K = NULL, *tmpl = NULL;
	json_error_t je;
	char kid[TANG_THP_LEN + 1], path[16 + TANG_THP_LEN], *body = NULL;
	int r;

	if (!(S = json_loads(s->srv, JSON_REJECT_DUPLICATES, &je)) || !ec_public_ok(S) ||
	    !(C = json_loads(s->clt, JSON_REJECT_DUPLICATES, &je)) || !ec_public_ok(C) ||
	    !json_equal(json_object_get(S, "crv"), json_object_get(C, "crv")) || thp_of(S, kid) < 0)
		return snprintf(err, errlen, "the record's keys are damaged"), -TS_E_CORRUPT;
	/* X = C + e·G: lcl without a private key and rem with one is ECMR's addition. */
	if (!(tmpl = json_pack("{s:s,s:O}", "alg", "ECMR", "crv", json_object_get(S, "crv"))) ||
	    !(e = json_deep_copy(tmpl)) || !jose_jwk_gen(NULL, e) || !json_object_get(e, "d") ||
	    !(X = jose_jwk_exc(NULL, C, e)))
		return snprintf(err, errlen, "the key exchange failed"), -TS_E_FAILED;
	/* Only the public point leaves this process. */
	json_object_del(X, "d");
	if (!ec_public_ok(X) || json_object_set_new(X, "alg", json_string("ECMR")) < 0 ||
	    json_object_set_new(X, "key_ops", json_pack("[s]", "deriveKey")) < 0 ||
	    !(body = json_dumps(X, JSON_COMPACT | JSON_SORT_KEYS)))
		return snprintf(err, errlen, "the key exchange failed"), -TS_E_FAILED;
	snprintf(path, sizeof(path), "/rec/%s", kid);
	r = http_json(s->url, path, body, deadline, &Y, err, errlen);
	free(body);
	if (r == -TS_E_TOKEN_NOT_ENROLLED)
		snprintf(err + strlen(err), errlen - strlen(err), " (the server no longer has the key this protector "
		         "was bound to: rebind with 'tokenseal enroll tang --replace')");
	if (r < 0)
		return r;
	/*
	 * Y = s·X, a public point on S's curve. A private part in it would turn
	 * the subtraction below into another operation: refused, not stripped.
	 */
	if (!ec_public_ok(Y) || !json_equal(json_object_get(Y, "crv"), json_object_get(S, "crv")))
		return snprintf(err, errlen, "the server's answer is not a public key on the curve"), -TS_E_FAILED;
	/* K = Y − e·S */
	if (!(Z = jose_jwk_exc(NULL, e, S)) || (json_object_del(Z, "d"), !ec_public_ok(Z)) ||
	    !(K = jose_jwk_exc(NULL, Y, Z)) || box_key(K, req->vault_id, s->url, wk) < 0)
		return snprintf(err, errlen, "the server's answer does not complete the exchange"), -TS_E_FAILED;
	return 0;
}

static int tang_unlock(ts_protector_request *req, const uint8_t *params, size_t params_len, uint8_t *kek)
{
	tang_server s[TANG_MAX_SERVERS];
	_ts_cleanup_secure_ uint8_t *wk = ts_secure_alloc(TS_KEY_BYTES);
	ts_params *pp = NULL;
	uint8_t ad[TS_VAULT_ID_BYTES + TANG_URL_MAX];
	char err[384], all[1024] = "";
	size_t n = 0, adlen, al = 0;
	int r, first = 0;
	int64_t deadline = now_ms() + TANG_SHARE_DEADLINE_MS;

	json_init_once();
	if (!wk)
		return ts_protector_fail(req, -TS_E_NOMEM, "out of secure memory");
	if ((r = decode(params, params_len, &pp, s, &n)) < 0)
		return ts_protector_fail(req, r, "the tang protector record is damaged");
	for (size_t i = 0; i < n; i++) {
		err[0] = '\0';
		if ((r = recover_one(req, &s[i], deadline, wk, err, sizeof(err))) == 0) {
			box_ad(req->vault_id, s[i].url, ad, &adlen);
			if (crypto_aead_xchacha20poly1305_ietf_decrypt(kek, NULL, NULL,
			                                               s[i].box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
			                                               s[i].box_len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
			                                               ad, adlen, s[i].box, wk) == 0)
				goto out;
			r = -TS_E_AUTH_FAILED;
			snprintf(err, sizeof(err), "it answered, but its answer does not open this protector (another key "
			         "under the same id, or someone in between)");
		}
		if (!first)
			first = r;
		if (al < sizeof(all))
			al += (size_t)snprintf(all + al, sizeof(all) - al, "%sTang server %s: %s", i ? "; " : "", s[i].url, err);
	}
	r = ts_protector_fail(req, n == 1 ? first : -TS_E_TOKEN_ABSENT, "%s%s", n > 1 ? "no Tang server answered: " : "",
	                      all);
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	ts_params_free(pp);
	return r;
}

/* ---- describe ------------------------------------------------------------------------------ */

static int tang_describe(const uint8_t *params, size_t len,
                         int (*add)(void *ud, const char *key, const char *value), void *ud)
{
	tang_server s[TANG_MAX_SERVERS];
	ts_params *pp = NULL;
	char key[32], val[TANG_URL_MAX + TANG_THP_LEN + 8];
	size_t n = 0;
	int r;

	if ((r = decode(params, len, &pp, s, &n)) < 0)
		return r;
	snprintf(val, sizeof(val), "%zu", n);
	r = add(ud, "servers", val);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		snprintf(key, sizeof(key), "url%zu", i + 1);
		snprintf(val, sizeof(val), "%s", s[i].url);
		if ((r = add(ud, key, val)) < 0)
			break;
		snprintf(key, sizeof(key), "thp%zu", i + 1);
		r = add(ud, key, s[i].thp);
	}
	ts_params_free(pp);
	return r;
}

static int tang_needs_secret(const uint8_t *params, size_t len)
{
	(void)params;
	(void)len;
	return 0;
}

const ts_protector_ops ts_protector_tang = {
	.type = "tang",
	.enroll = tang_enroll,
	.unlock = tang_unlock,
	.describe = tang_describe,
	.needs_secret = tang_needs_secret,
};
