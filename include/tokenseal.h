/* tokenseal.h — public client API of libtokenseal: wrap and unwrap data keys through tokensealed. */
#ifndef TOKENSEAL_H
#define TOKENSEAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_PUBLIC __attribute__((visibility("default")))

/*
 * Error codes. Every function of tokenseal (client library, daemon, core)
 * returns 0 on success or the negative of one of these codes. The table that
 * maps them to D-Bus error names (org.tokenseal1.Error.<Name>) and to default
 * messages is in one place (daemon/core/error.c) and shared by both ends.
 */
enum ts_error {
	TS_OK = 0,
	TS_E_FAILED = 1,           /* internal error                         Failed */
	TS_E_NOMEM,                /* out of (secure) memory                 NoMemory */
	TS_E_INVALID_ARGS,         /* malformed argument                     InvalidArgs */
	TS_E_LOCKED,               /* vault is locked                        Locked */
	TS_E_BAD_BLOB,             /* blob malformed / not authentic         BadBlob */
	TS_E_CONTEXT_MISMATCH,     /* blob authentic only with other context ContextMismatch */
	TS_E_WRONG_VAULT,          /* blob belongs to another vault          WrongVault */
	TS_E_KEY_RETIRED,          /* blob's root-key version was retired    KeyRetired */
	TS_E_ACCESS_DENIED,        /* caller may not do this                 AccessDenied */
	TS_E_NO_SUCH_VAULT,        /*                                        NoSuchVault */
	TS_E_VAULT_EXISTS,         /*                                        VaultExists */
	TS_E_NO_SUCH_PROTECTOR,    /*                                        NoSuchProtector */
	TS_E_LAST_PROTECTOR,       /* refusing to remove the last protector  LastProtector */
	TS_E_POLICY_VIOLATION,     /*                                        PolicyViolation */
	TS_E_TOKEN_ABSENT,         /* token not present                      TokenAbsent */
	TS_E_TOKEN_NOT_ENROLLED,   /* token present but not this vault's     TokenNotEnrolled */
	TS_E_PIN_INVALID,          /*                                        PinInvalid */
	TS_E_PIN_BLOCKED,          /*                                        PinBlocked */
	TS_E_PIN_REQUIRED,         /*                                        PinRequired */
	TS_E_TIMEOUT,              /* e.g. no touch in time                  Timeout */
	TS_E_TOUCH_DENIED,         /* user declined presence                 TouchDenied */
	TS_E_PCR_MISMATCH,         /* TPM PCR policy no longer matches       PcrMismatch */
	TS_E_NOT_SUPPORTED,        /* mechanism/option unsupported           NotSupported */
	TS_E_KEY_NOT_FOUND,        /* key object missing on token            KeyNotFound */
	TS_E_AUTH_FAILED,          /* secret did not open the vault          AuthenticationFailed */
	TS_E_BAD_RECOVERY_KEY,     /* recovery key mistyped (checksum)       BadRecoveryKey */
	TS_E_CORRUPT,              /* vault file corrupt or tampered with    VaultCorrupt */
	TS_E_UNSUPPORTED_VERSION,  /* unknown format version                 UnsupportedVersion */
	TS_E_IO,                   /* storage I/O error                      IOError */
	TS_E_LIMIT,                /* a size or count limit was exceeded     LimitExceeded */
	TS_E_BUSY,                 /* another operation is in progress       Busy */
	TS_E_NO_DAEMON,            /* client side: daemon not reachable      ServiceUnknown */
	TS_E_AMBIGUOUS,            /* several tokens could take this secret  AmbiguousProtector */
	TS_E_ROLLBACK,             /* vault file older than the last written Rollback */
	_TS_E_MAX
};

/* Short human message for a code (positive or negative). Never NULL. */
TS_PUBLIC const char *ts_strerror(int code);

/* "org.tokenseal1.Error.Locked" etc. for a code; "org.tokenseal1.Error.Failed" if unknown. */
TS_PUBLIC const char *ts_error_dbus_name(int code);

/* Inverse of ts_error_dbus_name(): positive code, or TS_E_FAILED if unknown. */
TS_PUBLIC int ts_error_from_dbus_name(const char *name);

/* Limits shared by client and daemon. */
#define TS_VAULT_NAME_MAX 64          /* [A-Za-z0-9._-]{1,64}, not starting with '.' */
#define TS_PLAINTEXT_MAX 65536        /* largest data key / secret that may be wrapped */
#define TS_CONTEXT_MAX_ENTRIES 64
#define TS_CONTEXT_KEY_MAX 256
#define TS_CONTEXT_VALUE_MAX 4096
#define TS_BATCH_MAX 100000           /* items per UnwrapBatch / RewrapBatch */

/* One entry of a caller's encryption context (bound to the blob as AAD). */
typedef struct ts_kv {
	const char *key;
	const char *value;
} ts_kv;

/*
 * Client handle. One per thread (sd-bus connections are not thread-safe).
 */
typedef struct ts_client ts_client;

/* tokensealed's private socket: the same D-Bus API on a direct connection, no bus daemon in between. */
#define TS_PRIVATE_SOCKET "/run/tokenseal/private"

/*
 * Connect to tokensealed. bus is NULL (use $TOKENSEAL_BUS if set; else the
 * private socket TS_PRIVATE_SOCKET, or the one $TOKENSEAL_PRIVATE_SOCKET
 * names (then only it); else the system bus), "system", "session", or a
 * D-Bus address ("unix:path=..."). A private socket is used only when
 * served by root or this user and when it takes the connection and
 * completes the handshake within a second (a stopped daemon whose listen
 * backlog is full is given up on then too). Returns 0 and sets *ret, or a
 * negative TS_E_* code.
 */
TS_PUBLIC int ts_client_open(ts_client **ret, const char *bus);

/* Close and free; accepts NULL. */
TS_PUBLIC void ts_client_free(ts_client *c);

/* Message of the last failed call on this handle (the daemon's text when it sent one). */
TS_PUBLIC const char *ts_client_last_error(const ts_client *c);

/*
 * Plaintext returned by the library lives in locked memory that is wiped on
 * free. Free it with ts_secret_free() (from any thread; never with
 * sodium_free(): a data key may sit in a slot of a pool the library keeps,
 * and the plaintexts of one batch share one allocation, each freed on its
 * own); accepts NULL.
 */
TS_PUBLIC void ts_secret_free(void *p, size_t len);

/*
 * Wrap plaintext under the current root key of vault (NULL: the caller's own
 * vault, named after the user). On success *ret_blob is malloc()ed binary
 * blob; free() it.
 */
TS_PUBLIC int ts_wrap(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
            const uint8_t *pt, size_t pt_len, uint8_t **ret_blob, size_t *ret_blob_len);

/* Unwrap a blob; *ret_pt must be released with ts_secret_free(*ret_pt, *ret_pt_len). */
TS_PUBLIC int ts_unwrap(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
              const uint8_t *blob, size_t blob_len, uint8_t **ret_pt, size_t *ret_pt_len);

/*
 * Unwrap a blob into the caller's buffer pt of pt_size bytes: no allocation
 * and no copy kept by the library (ts_unwrap hands out a plaintext of up to
 * 64 bytes in a slot of a locked pool it keeps, a longer one in a locked
 * allocation of its own, about ten system calls).
 * pt should be memory the caller keeps locked and wipes, e.g. one
 * sodium_malloc() buffer of TS_PLAINTEXT_MAX bytes reused for every key.
 * On success *ret_pt_len is the plaintext's length (<= pt_size), and the
 * bytes of pt past it are left as they were (a reused buffer may still hold
 * the tail of a longer key there: wipe it, or use only *ret_pt_len bytes). A
 * plaintext longer than pt_size gives -TS_E_LIMIT with *ret_pt_len set to
 * its length (the library's copy of the reply is wiped; call again with a
 * larger buffer, which unwraps, and is audited, once more: size the buffer
 * TS_PLAINTEXT_MAX rather than asking). On every failure all pt_size bytes
 * of pt are wiped: nothing of a plaintext, nor what the buffer held before,
 * is left in it.
 */
TS_PUBLIC int ts_unwrap_into(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                   const uint8_t *blob, size_t blob_len, uint8_t *pt, size_t pt_size, size_t *ret_pt_len);

/* Re-encrypt a blob under the current root key without returning plaintext. */
TS_PUBLIC int ts_rewrap(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
              const uint8_t *blob, size_t blob_len, uint8_t **ret_blob, size_t *ret_blob_len);

/* Generate a random data key of size bytes; returns it and its blob. */
TS_PUBLIC int ts_generate_data_key(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx,
                         size_t size, uint8_t **ret_pt, uint8_t **ret_blob, size_t *ret_blob_len);

/* Text form of a blob ("tokenseal:v1:" + base64url). *ret is malloc()ed, NUL-terminated. */
TS_PUBLIC int ts_blob_encode_text(const uint8_t *blob, size_t len, char **ret);

/* Parse the text form back to binary. *ret is malloc()ed. */
TS_PUBLIC int ts_blob_decode_text(const char *text, uint8_t **ret, size_t *ret_len);

#ifdef __cplusplus
}
#endif
#endif
