/* fido2.c — the fido2 protector: a vault secret sealed with a security key's hmac-secret, through libfido2. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <fido.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/params.h"
#include "core/vault.h"
#include "protectors/fido2.h"
#include "protectors/protector.h"

/*
 * Design (docs/FIDO2.md):
 * - enroll makes a non-resident ES256 credential for rp id "tokenseal:<vault id hex>"
 *   with the hmac-secret extension, then one assertion with a fresh random
 *   32-byte salt; KEK = BLAKE2b-256(key = hmac-secret output,
 *   "tokenseal-fido2-kek-v1" || vault id). The params record keeps rp id,
 *   credential id, salt, and whether a PIN (UV) and a touch (UP) are required.
 * - The authenticator returns a different hmac-secret with and without user
 *   verification, so unlock uses exactly the enrolled mode.
 * - The hmac-secret output does not depend on user presence: the touch is
 *   asked for (up=true) and its UP flag checked here, in software. A PIN
 *   protector's output is the with-UV one; its UV flag is checked too, so a
 *   key that answers without them is refused.
 * - Device: the daemon's --fido2-device list (comma-separated), else every
 *   key that fido_dev_info_manifest finds; never a path from a caller. With
 *   several candidates, unlock finds the one holding the credential with a
 *   silent assertion (up=false) before any touch is asked for; enroll asks
 *   the user to touch the key to enroll.
 * - Paths "unix:PATH" reach a CTAP-HID device over a SOCK_SEQPACKET socket,
 *   one 64-byte report per message (the test authenticator, tests/softfido),
 *   only when config->test_devices is set (tokensealed --test-devices).
 *   Only the transport differs: libfido2's own CTAP2 client code runs above it.
 */

#define FIDO2_SALT_BYTES 32
#define FIDO2_MAX_CANDIDATES 16
#define FIDO2_RPID_PREFIX "tokenseal:"
#define FIDO2_REPORT_LEN 64
#define FIDO2_PROBE_TIMEOUT_MS 2000
#define FIDO2_TOUCH_POLL_MS 50
/* Authenticator data flags (WebAuthn §6.1). */
#define FIDO2_FLAG_UP 0x01
#define FIDO2_FLAG_UV 0x04

static void fido2_init_once(void)
{
	static int done;

	if (!done) {
		fido_init(0);
		done = 1;
	}
}


/* ---- a CTAP-HID transport over a Unix SOCK_SEQPACKET socket -------------- */

typedef struct unix_hid {
	int fd;
} unix_hid;

static void *unix_hid_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unix_hid *h;
	const char *p = path;

	if (strncmp(p, "unix:", 5) == 0)
		p += 5;
	if (strlen(p) >= sizeof(sa.sun_path))
		return NULL;
	memcpy(sa.sun_path, p, strlen(p) + 1);
	if (!(h = calloc(1, sizeof(*h))))
		return NULL;
	h->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (h->fd >= 0)
			close(h->fd);
		free(h);
		return NULL;
	}
	return h;
}

static void unix_hid_close(void *handle)
{
	unix_hid *h = handle;

	if (!h)
		return;
	close(h->fd);
	free(h);
}

static int unix_hid_read(void *handle, unsigned char *buf, size_t len, int ms)
{
	unix_hid *h = handle;
	struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, ms < 0 ? -1 : ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	n = recv(h->fd, buf, len, 0);
	if (n <= 0)
		return -1;
	return (int)n;
}

/* libfido2 hands us report id + 64 bytes; the socket carries the 64 bytes. */
static int unix_hid_write(void *handle, const unsigned char *buf, size_t len)
{
	unix_hid *h = handle;
	ssize_t n;

	if (len != FIDO2_REPORT_LEN + 1 || buf[0] != 0)
		return -1;
	n = send(h->fd, buf + 1, FIDO2_REPORT_LEN, MSG_NOSIGNAL);
	if (n != FIDO2_REPORT_LEN)
		return -1;
	return (int)len;
}

static const fido_dev_io_t unix_hid_io = {
	.open = unix_hid_open,
	.close = unix_hid_close,
	.read = unix_hid_read,
	.write = unix_hid_write,
};

/* ---- helpers ------------------------------------------------------------- */

typedef struct fido2_params {
	const char *rp_id;
	const uint8_t *cred_id;
	size_t cred_id_len;
	const uint8_t *salt;
	size_t salt_len;
	uint64_t pin;
	uint64_t up;
} fido2_params;

static int yes_no(const char *v, int dflt, int *ret)
{
	if (!v) {
		*ret = dflt;
		return 0;
	}
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1")) {
		*ret = 1;
		return 0;
	}
	if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0")) {
		*ret = 0;
		return 0;
	}
	return -TS_E_INVALID_ARGS;
}

/* The PIN as a NUL-terminated string in secure memory (libfido2 takes a C string). */
static char *pin_cstr(const ts_protector_request *req)
{
	char *s;

	if (!req->pin || req->pin_len == 0)
		return NULL;
	if (memchr(req->pin, '\0', req->pin_len))
		return NULL;
	if (!(s = ts_secure_alloc(req->pin_len + 1)))
		return NULL;
	memcpy(s, req->pin, req->pin_len);
	s[req->pin_len] = '\0';
	return s;
}

static int is_test_device(const char *path)
{
	return strncmp(path, "unix:", 5) == 0;
}

int ts_fido2_dev_open(fido_dev_t *dev, const char *path, const ts_config *config)
{
	int r;

	fido2_init_once();
	if (is_test_device(path)) {
		/* The socket transport is test plumbing: only where the daemon was started for tests. */
		if (!config || !config->test_devices)
			return FIDO_ERR_INVALID_ARGUMENT;
		if ((r = fido_dev_set_io_functions(dev, &unix_hid_io)) != FIDO_OK)
			return r;
	}
	return fido_dev_open(dev, path);
}

static fido_dev_t *dev_open(const ts_protector_request *req, const char *path, int timeout_ms, int *ret_fido_err)
{
	fido_dev_t *dev;
	int r;

	if (!(dev = fido_dev_new())) {
		*ret_fido_err = FIDO_ERR_INTERNAL;
		return NULL;
	}
	if ((r = ts_fido2_dev_open(dev, path, req->config)) != FIDO_OK)
		goto fail;
	if (timeout_ms > 0)
		fido_dev_set_timeout(dev, timeout_ms);
	return dev;
fail:
	fido_dev_free(&dev);
	*ret_fido_err = r;
	return NULL;
}

static void dev_close(fido_dev_t **dev)
{
	if (*dev) {
		fido_dev_close(*dev);
		fido_dev_free(dev);
	}
}

/* Candidate device paths: the daemon's list, or enumeration (unix: ones only for tests). Returns count. */
static size_t candidates(const ts_protector_request *req, char paths[FIDO2_MAX_CANDIDATES][256])
{
	size_t n = 0;
	const char *list = req->config ? req->config->fido2_device : NULL;
	int test = req->config && req->config->test_devices;

	if (list && *list) {
		const char *p = list;
		while (*p && n < FIDO2_MAX_CANDIDATES) {
			size_t l = strcspn(p, ",");
			if (l > 0 && l < 256 && (test || !is_test_device(p))) {
				memcpy(paths[n], p, l);
				paths[n][l] = '\0';
				n++;
			}
			p += l;
			if (*p == ',')
				p++;
		}
		return n;
	}

	fido_dev_info_t *devlist = fido_dev_info_new(FIDO2_MAX_CANDIDATES);
	size_t found = 0;
	if (devlist && fido_dev_info_manifest(devlist, FIDO2_MAX_CANDIDATES, &found) == FIDO_OK) {
		for (size_t i = 0; i < found && n < FIDO2_MAX_CANDIDATES; i++) {
			const fido_dev_info_t *di = fido_dev_info_ptr(devlist, i);
			const char *path = fido_dev_info_path(di);
			if (path && strlen(path) < 256)
				snprintf(paths[n++], 256, "%s", path);
		}
	}
	fido_dev_info_free(&devlist, FIDO2_MAX_CANDIDATES);
	return n;
}

static const char *dev_label(fido_dev_t *dev, char *buf, size_t len)
{
	fido_cbor_info_t *ci = fido_cbor_info_new();
	const unsigned char *aaguid;

	snprintf(buf, len, "security key");
	if (ci && fido_dev_get_cbor_info(dev, ci) == FIDO_OK &&
	    (aaguid = fido_cbor_info_aaguid_ptr(ci)) && fido_cbor_info_aaguid_len(ci) == 16) {
		char hex[33];
		sodium_bin2hex(hex, sizeof(hex), aaguid, 16);
		snprintf(buf, len, "security key (AAGUID %s)", hex);
	}
	fido_cbor_info_free(&ci);
	return buf;
}

/* Map a libfido2 error to a TS error and a message a user understands. */
static int map_fido_err(ts_protector_request *req, fido_dev_t *dev, int fr, const char *what,
                        uint64_t started_ms)
{
	char label[96];
	int retries = -1;
	unsigned timeout = req->config && req->config->fido2_timeout_ms ? req->config->fido2_timeout_ms : 30000;

	if (dev)
		dev_label(dev, label, sizeof(label));
	else
		snprintf(label, sizeof(label), "security key");

	switch (fr) {
	case FIDO_ERR_PIN_INVALID:
		if (dev)
			fido_dev_get_retry_count(dev, &retries);
		if (retries >= 0)
			return ts_protector_fail(req, -TS_E_PIN_INVALID, "PIN incorrect, %d %s left on %s",
			                         retries, retries == 1 ? "try" : "tries", label);
		return ts_protector_fail(req, -TS_E_PIN_INVALID, "PIN incorrect on %s", label);
	case FIDO_ERR_PIN_AUTH_BLOCKED:
		return ts_protector_fail(req, -TS_E_PIN_BLOCKED,
		                         "too many wrong PINs in a row on %s: remove and re-insert it, then try again", label);
	case FIDO_ERR_PIN_BLOCKED:
	case FIDO_ERR_UV_BLOCKED:
		return ts_protector_fail(req, -TS_E_PIN_BLOCKED,
		                         "the PIN of %s is blocked; unlock with another protector (backup key or recovery key)", label);
	case FIDO_ERR_PIN_REQUIRED:
	case FIDO_ERR_PIN_NOT_SET:
	case FIDO_ERR_UNAUTHORIZED_PERM:
		return ts_protector_fail(req, -TS_E_PIN_REQUIRED, "%s needs its PIN for this (%s)", label, what);
	case FIDO_ERR_OPERATION_DENIED:
		return ts_protector_fail(req, -TS_E_TOUCH_DENIED, "touch was declined on %s", label);
	case FIDO_ERR_USER_ACTION_TIMEOUT:
	case FIDO_ERR_ACTION_TIMEOUT:
	case FIDO_ERR_KEEPALIVE_CANCEL:
		return ts_protector_fail(req, -TS_E_TIMEOUT, "no touch on %s in time", label);
	case FIDO_ERR_NO_CREDENTIALS:
	case FIDO_ERR_INVALID_CREDENTIAL:
		return ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
		                         "%s is not enrolled in vault '%s'", label, req->vault_name ? req->vault_name : "?");
	case FIDO_ERR_UNSUPPORTED_EXTENSION:
	case FIDO_ERR_UNSUPPORTED_ALGORITHM:
	case FIDO_ERR_UNSUPPORTED_OPTION:
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "%s does not support what %s needs (hmac-secret, ES256)", label, what);
	case FIDO_ERR_RX:
	case FIDO_ERR_TX:
		if (started_ms && ts_mono_ms() - started_ms + 250 >= timeout)
			return ts_protector_fail(req, -TS_E_TIMEOUT, "no touch on %s within %u s", label, timeout / 1000);
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "lost contact with %s during %s", label, what);
	default:
		return ts_protector_fail(req, -TS_E_FAILED, "%s failed on %s: %s", what, label, fido_strerr(fr));
	}
}

static void kek_from_hmac(const uint8_t *hmac, size_t hmac_len, const uint8_t *vault_id, uint8_t *kek)
{
	crypto_generichash_state st;
	static const char label[] = "tokenseal-fido2-kek-v1";

	crypto_generichash_init(&st, hmac, hmac_len, TS_KEY_BYTES);
	crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label) - 1);
	crypto_generichash_update(&st, vault_id, TS_VAULT_ID_BYTES);
	crypto_generichash_final(&st, kek, TS_KEY_BYTES);
	sodium_memzero(&st, sizeof(st));
}

/*
 * One getAssertion. With want_hmac, derive the KEK; else it is a silent probe
 * (up=false, no PIN) that only tells whether dev holds the credential.
 *
 * The hmac-secret output does not depend on the touch, and an authenticator
 * that skips it returns the same output: so with want_hmac, the answer's
 * authenticator-data flags must show what the record asks for, UP (touch)
 * and, for a PIN protector, UV (the PIN was verified), or it is refused.
 */
static int assert_once(ts_protector_request *req, fido_dev_t *dev, const fido2_params *p,
                       const char *pin, int want_hmac, uint8_t *kek)
{
	fido_assert_t *a = NULL;
	uint8_t cdh[32];
	uint64_t t0 = ts_mono_ms();
	int fr, r;

	randombytes_buf(cdh, sizeof(cdh));
	if (!(a = fido_assert_new()))
		return ts_protector_fail(req, -TS_E_NOMEM, "out of memory");
	if ((fr = fido_assert_set_rp(a, p->rp_id)) != FIDO_OK ||
	    (fr = fido_assert_set_clientdata_hash(a, cdh, sizeof(cdh))) != FIDO_OK ||
	    (fr = fido_assert_allow_cred(a, p->cred_id, p->cred_id_len)) != FIDO_OK ||
	    (fr = fido_assert_set_up(a, want_hmac && p->up ? FIDO_OPT_TRUE : FIDO_OPT_FALSE)) != FIDO_OK) {
		r = ts_protector_fail(req, -TS_E_FAILED, "preparing the assertion failed: %s", fido_strerr(fr));
		goto out;
	}
	if (want_hmac &&
	    ((fr = fido_assert_set_extensions(a, FIDO_EXT_HMAC_SECRET)) != FIDO_OK ||
	     (fr = fido_assert_set_hmac_salt(a, p->salt, p->salt_len)) != FIDO_OK)) {
		r = ts_protector_fail(req, -TS_E_FAILED, "preparing hmac-secret failed: %s", fido_strerr(fr));
		goto out;
	}
	fr = fido_dev_get_assert(dev, a, want_hmac && p->pin ? pin : NULL);
	if (fr != FIDO_OK) {
		r = map_fido_err(req, dev, fr, want_hmac ? "unlock" : "probe", want_hmac ? t0 : 0);
		goto out;
	}
	if (want_hmac) {
		const unsigned char *h = fido_assert_hmac_secret_ptr(a, 0);
		size_t hl = fido_assert_hmac_secret_len(a, 0);
		uint8_t flags = fido_assert_flags(a, 0);
		char label[96];
		if ((p->up && !(flags & FIDO2_FLAG_UP)) || (p->pin && !(flags & FIDO2_FLAG_UV))) {
			r = ts_protector_fail(req, -TS_E_AUTH_FAILED,
			                      "%s answered without %s (no %s flag in its assertion): a broken or "
			                      "malicious key; its answer is refused", dev_label(dev, label, sizeof(label)),
			                      p->up && !(flags & FIDO2_FLAG_UP) ? "a touch" : "verifying the PIN",
			                      p->up && !(flags & FIDO2_FLAG_UP) ? "UP" : "UV");
			goto out;
		}
		if (!h || hl != 32) {
			r = ts_protector_fail(req, -TS_E_FAILED, "security key returned no hmac-secret");
			goto out;
		}
		kek_from_hmac(h, hl, req->vault_id, kek);
	}
	r = 0;
out:
	fido_assert_free(&a); /* libfido2 wipes the hmac-secret output it holds */
	sodium_memzero(cdh, sizeof(cdh));
	return r;
}

/*
 * The key to enroll: the only one present, or with several the one the user
 * touches (as a browser asks): fido_dev_get_touch_begin sends each key a
 * request that only waits for a touch; the others are cancelled. The
 * caller never names a device. *ret_dev is open on success.
 */
static int choose_device(ts_protector_request *req, char paths[FIDO2_MAX_CANDIDATES][256], size_t n,
                         fido_dev_t **ret_dev)
{
	fido_dev_t *devs[FIDO2_MAX_CANDIDATES];
	int waiting[FIDO2_MAX_CANDIDATES];
	int timeout = (int)(req->config && req->config->fido2_timeout_ms ? req->config->fido2_timeout_ms : 30000);
	int fr = FIDO_OK, last = FIDO_OK, open_err = FIDO_OK, r;
	size_t m = 0, left = 0, i, chosen = FIDO2_MAX_CANDIDATES;
	uint64_t t0;

	for (i = 0; i < n && m < FIDO2_MAX_CANDIDATES; i++)
		if ((devs[m] = dev_open(req, paths[i], timeout, &fr)) != NULL)
			m++;
		else
			open_err = fr;
	if (m == 0) {
		if (n == 1)
			return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "cannot open security key %s: %s", paths[0],
			                         fido_strerr(open_err));
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "no FIDO2 security key found; plug one in");
	}
	if (m == 1) {
		*ret_dev = devs[0];
		return 0;
	}
	for (i = 0; i < m; i++) {
		waiting[i] = fido_dev_get_touch_begin(devs[i]) == FIDO_OK;
		left += (size_t)waiting[i];
	}
	t0 = ts_mono_ms();
	while (left > 0 && chosen == FIDO2_MAX_CANDIDATES && ts_mono_ms() - t0 < (uint64_t)timeout)
		for (i = 0; i < m && chosen == FIDO2_MAX_CANDIDATES; i++) {
			int touched = 0;
			if (!waiting[i])
				continue;
			if ((fr = fido_dev_get_touch_status(devs[i], &touched, FIDO2_TOUCH_POLL_MS)) != FIDO_OK) {
				waiting[i] = 0;   /* declined, or gone: not this one */
				left--;
				last = fr;
			} else if (touched)
				chosen = i;
		}
	for (i = 0; i < m; i++) {
		if (i == chosen)
			continue;
		if (waiting[i])
			(void)fido_dev_cancel(devs[i]);
		dev_close(&devs[i]);
	}
	if (chosen < m) {
		*ret_dev = devs[chosen];
		return 0;
	}
	if (left > 0 || last == FIDO_OK)
		r = ts_protector_fail(req, -TS_E_TIMEOUT, "no touch on any of the %zu security keys present within %d s: "
		                      "touch the one to enroll", m, timeout / 1000);
	else
		r = map_fido_err(req, NULL, last, "choosing the key to enroll", 0);
	return r;
}

/* ---- the protector ------------------------------------------------------- */

static int fido2_enroll(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc,
                        char *secret_out, size_t secret_out_cap, size_t *secret_out_len)
{
	char paths[FIDO2_MAX_CANDIDATES][256];
	char rp_id[sizeof(FIDO2_RPID_PREFIX) + 2 * TS_VAULT_ID_BYTES + 1];
	char label[96];
	uint8_t salt[FIDO2_SALT_BYTES], cdh[32];
	fido_dev_t *dev = NULL;
	fido_cred_t *cred = NULL;
	fido_cbor_info_t *ci = NULL;
	ts_params *params = NULL;
	char *pin = NULL;
	int want_pin, want_up, fr, r;
	uint64_t t0;
	size_t n;
	fido2_params p;

	*secret_out_len = 0;
	fido2_init_once();
	if (yes_no(ts_protector_option(req, "pin"), 1, &want_pin) < 0 ||
	    yes_no(ts_protector_option(req, "up"), 1, &want_up) < 0)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "fido2 options pin= and up= take yes or no");
	if (want_pin && !req->pin_len)
		return ts_protector_fail(req, -TS_E_PIN_REQUIRED, "enrolling a security key with PIN needs the key's PIN");
	if (req->pin_len && !(pin = pin_cstr(req)))
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "the PIN is not valid text");

	n = candidates(req, paths);
	if ((r = choose_device(req, paths, n, &dev)) < 0)
		goto out;
	dev_label(dev, label, sizeof(label));

	/* The key must do hmac-secret; a PIN-protected protector needs a key with a PIN. */
	if (!(ci = fido_cbor_info_new()) || (fr = fido_dev_get_cbor_info(dev, ci)) != FIDO_OK) {
		r = map_fido_err(req, dev, ci ? fr : FIDO_ERR_INTERNAL, "getInfo", 0);
		goto out;
	}
	{
		char **ext = fido_cbor_info_extensions_ptr(ci);
		size_t ne = fido_cbor_info_extensions_len(ci), i;
		for (i = 0; i < ne; i++)
			if (!strcmp(ext[i], "hmac-secret"))
				break;
		if (i == ne) {
			r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "%s does not support the hmac-secret extension", label);
			goto out;
		}
	}
	if (want_pin && !fido_dev_has_pin(dev)) {
		r = ts_protector_fail(req, -TS_E_PIN_REQUIRED,
		                      "%s has no PIN set; set one first (fido2-token -S) or enroll with --no-pin", label);
		goto out;
	}

	{
		char hex[2 * TS_VAULT_ID_BYTES + 1];
		sodium_bin2hex(hex, sizeof(hex), req->vault_id, TS_VAULT_ID_BYTES);
		snprintf(rp_id, sizeof(rp_id), FIDO2_RPID_PREFIX "%s", hex);
	}
	randombytes_buf(cdh, sizeof(cdh));
	randombytes_buf(salt, sizeof(salt));
	if (!(cred = fido_cred_new())) {
		r = ts_protector_fail(req, -TS_E_NOMEM, "out of memory");
		goto out;
	}
	if ((fr = fido_cred_set_type(cred, COSE_ES256)) != FIDO_OK ||
	    (fr = fido_cred_set_clientdata_hash(cred, cdh, sizeof(cdh))) != FIDO_OK ||
	    (fr = fido_cred_set_rp(cred, rp_id, "tokenseal")) != FIDO_OK ||
	    (fr = fido_cred_set_user(cred, req->vault_id, TS_VAULT_ID_BYTES,
	                             req->vault_name ? req->vault_name : "vault", NULL, NULL)) != FIDO_OK ||
	    (fr = fido_cred_set_extensions(cred, FIDO_EXT_HMAC_SECRET)) != FIDO_OK ||
	    (fr = fido_cred_set_rk(cred, FIDO_OPT_FALSE)) != FIDO_OK) {
		r = ts_protector_fail(req, -TS_E_FAILED, "preparing the credential failed: %s", fido_strerr(fr));
		goto out;
	}
	/* The start of the touch wait: a transport error after the whole timeout is "no touch", not a lost key. */
	t0 = ts_mono_ms();
	if ((fr = fido_dev_make_cred(dev, cred, want_pin ? pin : NULL)) != FIDO_OK) {
		r = map_fido_err(req, dev, fr, "enroll", t0);
		goto out;
	}
	if (!(fido_cred_flags(cred) & 0x80) || !fido_cred_id_ptr(cred) || fido_cred_id_len(cred) == 0) {
		r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED, "%s did not confirm hmac-secret for the credential", label);
		goto out;
	}

	p = (fido2_params){ .rp_id = rp_id, .cred_id = fido_cred_id_ptr(cred), .cred_id_len = fido_cred_id_len(cred),
	                    .salt = salt, .salt_len = sizeof(salt), .pin = (uint64_t)want_pin, .up = (uint64_t)want_up };
	/* The KEK comes from the first assertion: enrolling proves unlocking works. */
	if ((r = assert_once(req, dev, &p, pin, 1, kek)) < 0)
		goto out;

	if ((r = ts_params_new(&params)) < 0 ||
	    (r = ts_params_set_str(params, "rp", rp_id)) < 0 ||
	    (r = ts_params_set_bytes(params, "cred", p.cred_id, p.cred_id_len)) < 0 ||
	    (r = ts_params_set_bytes(params, "salt", salt, sizeof(salt))) < 0 ||
	    (r = ts_params_set_uint(params, "pin", p.pin)) < 0 ||
	    (r = ts_params_set_uint(params, "up", p.up)) < 0) {
		ts_protector_fail(req, r, "out of memory");
		goto out;
	}
	if (fido_cbor_info_aaguid_len(ci) == 16 &&
	    (r = ts_params_set_bytes(params, "aaguid", fido_cbor_info_aaguid_ptr(ci), 16)) < 0)
		goto out;
	if ((r = ts_params_encode(params, ret_params)) < 0) {
		ts_protector_fail(req, r, "encoding the protector failed");
		goto out;
	}
	snprintf(ret_desc, TS_PROTECTOR_DESC_MAX, "FIDO2 %s%s%s", label,
	         want_pin ? ", PIN" : "", want_up ? ", touch" : "");
	r = 0;
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	ts_params_free(params);
	fido_cred_free(&cred);
	fido_cbor_info_free(&ci);
	dev_close(&dev);
	ts_secure_free(pin);
	sodium_memzero(salt, sizeof(salt));
	(void)secret_out;
	(void)secret_out_cap;
	return r;
}

static int decode_params(const uint8_t *b, size_t len, ts_params **ret_pp, fido2_params *p)
{
	ts_params *pp = NULL;
	int r;

	if ((r = ts_params_decode(b, len, &pp)) < 0)
		return r;
	if ((r = ts_params_get_str(pp, "rp", &p->rp_id)) < 0 ||
	    (r = ts_params_get_bytes(pp, "cred", &p->cred_id, &p->cred_id_len)) < 0 ||
	    (r = ts_params_get_bytes(pp, "salt", &p->salt, &p->salt_len)) < 0 ||
	    (r = ts_params_get_uint(pp, "pin", &p->pin)) < 0 ||
	    (r = ts_params_get_uint(pp, "up", &p->up)) < 0 ||
	    p->salt_len != FIDO2_SALT_BYTES || p->cred_id_len == 0 || p->cred_id_len > 1024 ||
	    p->pin > 1 || p->up > 1 || strncmp(p->rp_id, FIDO2_RPID_PREFIX, strlen(FIDO2_RPID_PREFIX)) != 0) {
		ts_params_free(pp);
		return -TS_E_CORRUPT;
	}
	*ret_pp = pp;
	return 0;
}

static int fido2_unlock(ts_protector_request *req, const uint8_t *params, size_t params_len, uint8_t *kek)
{
	char paths[FIDO2_MAX_CANDIDATES][256];
	ts_params *pp = NULL;
	fido_dev_t *dev = NULL;
	char *pin = NULL;
	fido2_params p;
	size_t n, i;
	int fr, r, seen = 0, silent = 0;
	int timeout = (int)(req->config && req->config->fido2_timeout_ms ? req->config->fido2_timeout_ms : 30000);

	fido2_init_once();
	if ((r = decode_params(params, params_len, &pp, &p)) < 0)
		return ts_protector_fail(req, r, "the fido2 protector record is damaged");
	if (p.pin && !req->pin_len) {
		r = ts_protector_fail(req, -TS_E_PIN_REQUIRED, "this security key protector needs the key's PIN");
		goto out;
	}
	if (req->pin_len && !(pin = pin_cstr(req))) {
		r = ts_protector_fail(req, -TS_E_INVALID_ARGS, "the PIN is not valid text");
		goto out;
	}

	n = candidates(req, paths);
	r = ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "no FIDO2 security key found; plug in the enrolled key");
	for (i = 0; i < n; i++) {
		if (!(dev = dev_open(req, paths[i], timeout, &fr)))
			continue;
		seen++;
		/*
		 * With several keys, find the enrolled one silently before asking for
		 * a touch; and never give a PIN to a key before it has shown, silently,
		 * that it holds the credential: the key checks the PIN first and a
		 * wrong one spends a retry of a key that was never meant.
		 */
		if ((n > 1 || pin) && (r = assert_once(req, dev, &p, NULL, 0, NULL)) < 0) {
			dev_close(&dev);
			if (r == -TS_E_TOKEN_NOT_ENROLLED)
				continue;
			/* A key busy with another request (another vault's touch wait) does not answer: try the others. */
			if (r == -TS_E_TOKEN_ABSENT) {
				silent++;
				continue;
			}
			goto out;
		}
		r = assert_once(req, dev, &p, pin, 1, kek);
		goto out;
	}
	if (silent > 0)
		r = ts_protector_fail(req, -TS_E_TOKEN_ABSENT,
		                      "%d of the %d security keys present did not answer (busy with another request?) "
		                      "and none of the others is enrolled in vault '%s'", silent, seen,
		                      req->vault_name ? req->vault_name : "?");
	else if (seen > 0)
		r = ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
		                      "none of the %d security keys present is enrolled in vault '%s'", seen,
		                      req->vault_name ? req->vault_name : "?");
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	dev_close(&dev);
	ts_secure_free(pin);
	ts_params_free(pp);
	return r;
}

static int fido2_describe(const uint8_t *params, size_t len,
                          int (*add)(void *ud, const char *key, const char *value), void *ud)
{
	ts_params *pp = NULL;
	fido2_params p;
	const uint8_t *aaguid;
	size_t alen;
	char hex[33];
	int r;

	if ((r = decode_params(params, len, &pp, &p)) < 0)
		return r;
	/*
	 * uv: the key verifies the user, and says so (the UV flag, checked at
	 * unlock). tokenseal asks for user verification through the key's PIN
	 * (a pinUvAuthParam in the assertion), so it is there exactly when the
	 * PIN is; built-in UV (a fingerprint) is not used.
	 */
	if ((r = add(ud, "pin", p.pin ? "yes" : "no")) < 0 || (r = add(ud, "touch", p.up ? "yes" : "no")) < 0 ||
	    (r = add(ud, "uv", p.pin ? "yes" : "no")) < 0 || (r = add(ud, "rp", p.rp_id)) < 0)
		goto out;
	if (ts_params_get_bytes(pp, "aaguid", &aaguid, &alen) == 0 && alen == 16) {
		sodium_bin2hex(hex, sizeof(hex), aaguid, 16);
		r = add(ud, "aaguid", hex);
	}
out:
	ts_params_free(pp);
	return r;
}

static int fido2_needs_secret(const uint8_t *params, size_t len)
{
	ts_params *pp = NULL;
	fido2_params p;
	int need;

	if (decode_params(params, len, &pp, &p) < 0)
		return 1;
	need = p.pin != 0;
	ts_params_free(pp);
	return need;
}

/*
 * Present when some key answers the silent probe (up=false, no PIN) for this
 * credential: no touch is asked and no PIN retry is spent. A key that is
 * there but does not hold the credential counts as absent.
 */
static int fido2_present(ts_protector_request *req, const uint8_t *params, size_t params_len)
{
	char paths[FIDO2_MAX_CANDIDATES][256];
	ts_params *pp = NULL;
	fido_dev_t *dev = NULL;
	fido2_params p;
	size_t n, i;
	int fr, r, result = 0;

	fido2_init_once();
	if ((r = decode_params(params, params_len, &pp, &p)) < 0)
		return ts_protector_fail(req, r, "the fido2 protector record is damaged");
	n = candidates(req, paths);
	for (i = 0; i < n && result != 1; i++) {
		/* A silent assertion needs no user: a short timeout keeps status quick. */
		if (!(dev = dev_open(req, paths[i], FIDO2_PROBE_TIMEOUT_MS, &fr)))
			continue;
		r = assert_once(req, dev, &p, NULL, 0, NULL);
		dev_close(&dev);
		/* "Not this key" or "gone meanwhile" says absent; any other answer leaves it unknown unless another key has it. */
		if (r == 0) {
			result = 1;
			/* The key that holds the credential: two records on one key take the PIN on that one key. */
			if (req->token_id)
				snprintf(req->token_id, req->token_id_len, "fido2 %s", paths[i]);
		}
		else if (r != -TS_E_TOKEN_NOT_ENROLLED && r != -TS_E_TOKEN_ABSENT && result == 0)
			result = r;
	}
	ts_params_free(pp);
	return result;
}

const ts_protector_ops ts_protector_fido2 = {
	.type = "fido2",
	.enroll = fido2_enroll,
	.unlock = fido2_unlock,
	.describe = fido2_describe,
	.needs_secret = fido2_needs_secret,
	.present = fido2_present,
};
