/* protector.h — the seam between the vault and token backends: enroll gives a KEK and a params record; unlock gives the KEK back. */
#ifndef TS_PROTECTOR_H
#define TS_PROTECTOR_H

#include <stdint.h>
#include "tokenseal.h"
#include "core/blob.h"
#include "core/buf.h"

/* Daemon-wide settings a backend may need (set from command-line options). */
typedef struct ts_config {
	const char *tpm2_tcti;          /* default "device:/dev/tpmrm0" */
	const char *fido2_device;       /* NULL: enumerate with fido_dev_info_manifest */
	const char *pkcs11_module;      /* NULL: modules registered with p11-kit */
	unsigned fido2_timeout_ms;      /* wait for touch; default 30000 */
	int test_devices;               /* tokensealed --test-devices: "unix:" FIDO2 devices (tests/softfido) allowed */
} ts_config;

/*
 * One enroll or unlock call. Everything here is borrowed for the call only.
 * pin is NULL when the caller gave none; it is in secure memory and must not
 * be copied out of it, logged, or kept.
 */
typedef struct ts_protector_request {
	const ts_config *config;
	const char *vault_name;
	const uint8_t *vault_id;            /* TS_VAULT_ID_BYTES */
	const ts_kv *options;               /* type-specific, e.g. {"pin","yes"}, {"uri","pkcs11:..."} */
	size_t n_options;
	const uint8_t *pin;                 /* PIN / recovery key as typed, not NUL-terminated */
	size_t pin_len;
	char *err;                          /* message for the user, set on failure */
	size_t err_len;                     /* ... e.g. "PIN incorrect, 5 tries left on 'SoftFIDO'" */
	/*
	 * present: which physical token answered, in a form that is the same for
	 * two records on one token (a device path, a token serial); "" when the
	 * backend cannot tell. NULL when nobody asks.
	 */
	char *token_id;
	size_t token_id_len;
	/*
	 * For root's calls and the daemon's own work: may start a token helper
	 * in the share of [limits] helpers kept back from other callers
	 * (protectors/remote.c), so a login is not turned away by a user's loop.
	 */
	int reserved_ok;
} ts_protector_request;

/*
 * A request for one vault with nothing else set (no options, no PIN, no
 * token_id asked for); err gets the backend's message and starts empty.
 */
void ts_protector_request_init(ts_protector_request *req, const ts_config *config, const char *vault_name,
                               const uint8_t *vault_id, char *err, size_t err_len);

/* Look up an option; NULL if absent. */
const char *ts_protector_option(const ts_protector_request *req, const char *key);

/* The servers one tang protector may name (and its record holds). */
#define TS_TANG_MAX_SERVERS 8
/* One server's URL, and the url= option's text at most (all servers, separators). */
#define TS_TANG_URL_MAX 256
#define TS_TANG_URLS_TEXT_MAX (TS_TANG_MAX_SERVERS * (TS_TANG_URL_MAX + 1) + 1)
/*
 * Split a list option ("a b", "a,b") into at most max words, copied into
 * buf (buflen): the number of words, max + 1 when there are more, 0 for
 * none or a text that does not fit. The one reading of url= and thp= for
 * the daemon's policy check and the helper's backend alike.
 */
size_t ts_protector_split_list(const char *s, char *buf, size_t buflen, char **out, size_t max);

/*
 * Are these the options a caller may give when enrolling a protector of
 * type (AddProtector)? Each type accepts its own short list (fido2: pin, up;
 * tpm2: pin, pcrs; pkcs11: uri, public-key, oaep-hash; tang: url, thp,
 * trust-first-use; recovery: none) and
 * every type replace=. Nothing a caller gives may name a device, a file, a
 * module or a TCTI: those are the administrator's (tokensealed's command
 * line), since the token helper reaches every token its user's groups do.
 * (tang's url= names a Tang server the helper connects to: docs/TANG.md.)
 * 0, or -TS_E_INVALID_ARGS with a message for the caller in err.
 */
int ts_protector_check_options(const char *type, const ts_kv *options, size_t n_options, char *err, size_t err_len);

/*
 * printf into req->err (no secret may ever be formatted here). code is a
 * negative TS_E_*, returned for chaining; anything else is a caller's bug
 * and comes back as -TS_E_FAILED, never as success.
 */
int ts_protector_fail(const ts_protector_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

typedef struct ts_protector_ops {
	const char *type;   /* "recovery", "fido2", "tpm2", "pkcs11", "tang" */

	/*
	 * Enroll a new protector. On success: kek (TS_KEY_BYTES, caller's secure
	 * memory) holds the new KEK; *ret_params holds the encoded public record
	 * to store (appended to an empty ts_buf); ret_desc (TS_PROTECTOR_DESC_MAX)
	 * a short human description ("SoftFIDO 2.0 (AAGUID ...)").
	 * secret_out: for types that mint a secret to show the user once (the
	 * recovery key), its text is written here (secure memory,
	 * *secret_out_len set); others leave *secret_out_len 0.
	 * Returns 0 or negative TS_E_* with req->err set.
	 */
	int (*enroll)(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc,
	              char *secret_out, size_t secret_out_cap, size_t *secret_out_len);

	/* Recompute the KEK from the stored params. 0 or negative TS_E_* with req->err set. */
	int (*unlock)(ts_protector_request *req, const uint8_t *params, size_t params_len, uint8_t *kek);

	/*
	 * Public facts for `status` (decoded from params): appends key/value
	 * string pairs through add(). Optional (NULL).
	 */
	int (*describe)(const uint8_t *params, size_t params_len,
	                int (*add)(void *ud, const char *key, const char *value), void *ud);

	/* Non-zero when unlock needs a PIN/secret from the caller (for prompts). Optional. */
	int (*needs_secret)(const uint8_t *params, size_t params_len);

	/*
	 * Is the token this record needs reachable right now? Must never ask
	 * for a touch or try a PIN, and must be quick (status and autolock poll
	 * it). 1 present, 0 absent, negative TS_E_* when it cannot tell; when
	 * present, req->token_id (if not NULL) names the token that would take
	 * the PIN. Optional (NULL: unknown). req->pin is always NULL here.
	 */
	int (*present)(ts_protector_request *req, const uint8_t *params, size_t params_len);
} ts_protector_ops;

/*
 * The registry: the backends this program has, which its main() names once
 * with ts_protectors_use (a NULL-terminated list that lives as long as the
 * program: the daemon and the helper name all four, a test tool the one it
 * tests). Before that call there is none.
 */
void ts_protectors_use(const ts_protector_ops *const *backends);
/* The backend of type, or NULL if this program has none. */
const ts_protector_ops *ts_protector_lookup(const char *type);
/* The NULL-terminated list, for --help and status. */
const ts_protector_ops *const *ts_protector_all(void);

/* The backends (each in its own file). */
extern const ts_protector_ops ts_protector_recovery;
extern const ts_protector_ops ts_protector_fido2;
extern const ts_protector_ops ts_protector_tpm2;
extern const ts_protector_ops ts_protector_pkcs11;
extern const ts_protector_ops ts_protector_tang;

/*
 * In tokensealed the fido2, tpm2, pkcs11 and tang entries above are the remote
 * ones (remote.c): each call runs the real backend in a new tokenseal-helper
 * process. The helper program's path (default TS_HELPER_PATH, set at build
 * time; tokensealed --helper overrides it).
 */
void ts_protector_remote_set_helper(const char *path);
const char *ts_protector_remote_helper(void);

#endif
