/* helper_wire.h — the framing between tokensealed and tokenseal-helper: one request, one reply, over a socketpair or a connection. */
#ifndef TS_HELPER_WIRE_H
#define TS_HELPER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenseal.h"
#include "core/blob.h"

/*
 * The token backends (libfido2, tpm2-tss, p11-kit, libcrypto) run in
 * tokenseal-helper, a program the daemon starts for one operation and which
 * exits after it (docs/ARCHITECTURE.md, "The token helper"). A message is
 *
 *     u32 BE  length of the body (at most TS_WIRE_FRAME_MAX)
 *     body:   fields, each  u8 tag | u32 BE length | length bytes
 *
 * Both sides read the other's bytes as hostile: every length is checked
 * against what is left, unknown tags and repeated single fields are errors.
 * Frames that can carry a PIN or a key live in secure memory.
 */

/*
 * A helper the service manager started for a connection (tokensealed
 * --helper-socket; tokenseal-helper.socket, Accept=yes) first writes this one
 * byte, before it reads its request: the daemon reads the kernel's
 * SCM_CREDENTIALS of that write to learn who serves the socket (SO_PEERCRED
 * would name the service manager, which called listen()), and sends nothing
 * to anyone but the helper's user. A helper started by the daemon itself
 * (fork and exec, fd 3 a socketpair) writes no hello.
 */
#define TS_WIRE_HELLO 0x48

#define TS_WIRE_FRAME_MAX (256u * 1024)
#define TS_WIRE_STR_MAX 1024          /* any string field */
#define TS_WIRE_MAX_OPTIONS 32
#define TS_WIRE_MAX_FACTS 64
#define TS_WIRE_BOX_KEY_BYTES 32      /* TS_ESCROW_RSA_KEY_BYTES */

enum {
	/* ops */
	TS_WIRE_OP_ENROLL = 1,
	TS_WIRE_OP_UNLOCK = 2,
	TS_WIRE_OP_DESCRIBE = 3,   /* facts and needs_secret */
	TS_WIRE_OP_PRESENT = 4,
	TS_WIRE_OP_ESCROW_WRAP_KEY = 5, /* type "rsa": RSA-OAEP of BOX_KEY to PARAMS (an SPKI); reply PARAMS */
	TS_WIRE_OP_NV = 6,         /* type "tpm2": a vault's NV counter, PARAMS as in tpm2_nv.h; reply PARAMS */
	/*
	 * type "ldap": a vault's escrow record in a directory (ldap_record.h).
	 * OPTIONs: action (put, remove), uri, base, machine, and bind-dn,
	 * ca-file, cert-file, key-file when set; PIN: the simple bind's password.
	 * PARAMS: the vault file (put) or the vault id in hex (remove). Reply
	 * VALUE: TS_LDAP_PUT_* (put), 0 removed or 1 none there (remove).
	 */
	TS_WIRE_OP_LDAP = 7,
};

enum {
	/* request fields */
	TS_WIRE_OP = 1,            /* u8 */
	TS_WIRE_TYPE,              /* str: "fido2", "tpm2", "pkcs11" */
	TS_WIRE_TCTI,              /* str */
	TS_WIRE_FIDO2_DEVICE,      /* str */
	TS_WIRE_PKCS11_MODULE,     /* str */
	TS_WIRE_FIDO2_TIMEOUT,     /* u32 BE, milliseconds */
	TS_WIRE_VAULT_NAME,        /* str */
	TS_WIRE_VAULT_ID,          /* TS_VAULT_ID_BYTES */
	TS_WIRE_OPTION,            /* "key\0value", repeated */
	TS_WIRE_PIN,               /* secret bytes: the PIN */
	TS_WIRE_PARAMS,            /* the protector record (request: stored; reply: enrolled), or SPKI / RSA ciphertext */
	TS_WIRE_TEST_DEVICES,      /* u8, always 1: tokensealed --test-devices (FIDO2 "unix:" devices allowed) */
	TS_WIRE_BOX_KEY,           /* TS_WIRE_BOX_KEY_BYTES, secret: an escrow box's key (escrow op only) */
	TS_WIRE_REQUEST_TAG_MAX,   /* request tags are below this */
	/* reply fields */
	TS_WIRE_RC = 32,           /* i32 BE: 0 or -TS_E_* */
	TS_WIRE_ERR,               /* str: message for the user */
	TS_WIRE_KEK,               /* TS_KEY_BYTES, secret */
	TS_WIRE_DESC,              /* str */
	TS_WIRE_SECRET,            /* secret bytes (a minted secret to show once) */
	TS_WIRE_FACT,              /* "key\0value", repeated */
	TS_WIRE_VALUE,             /* i32 BE: needs_secret / present */
	TS_WIRE_TAG_MAX
};

typedef struct ts_wire_field {
	uint8_t tag;
	const void *data;
	size_t len;
} ts_wire_field;

/*
 * Encode fields into one frame (length prefix included) in secure memory
 * (*ret; free with ts_secure_free). 0, -TS_E_LIMIT (larger than
 * TS_WIRE_FRAME_MAX) or -TS_E_NOMEM.
 */
int ts_wire_encode(const ts_wire_field *fields, size_t n, uint8_t **ret, size_t *ret_len);

/*
 * Iterate over a body: on each call returns 1 and the next field, 0 at the
 * end, -TS_E_INVALID_ARGS on a truncated field or an unknown tag.
 * *off starts at 0.
 */
int ts_wire_next(const uint8_t *body, size_t len, size_t *off, ts_wire_field *f);

/* Field readers: 0 or -TS_E_INVALID_ARGS. */
int ts_wire_get_i32(const ts_wire_field *f, int32_t *ret);
int ts_wire_get_u32(const ts_wire_field *f, uint32_t *ret);
/* A string without NUL bytes, at most TS_WIRE_STR_MAX; copied NUL-terminated into out (cap bytes). */
int ts_wire_get_str(const ts_wire_field *f, char *out, size_t cap);
/* "key\0value": split in place into out (key and value NUL-terminated, each non-empty key). */
int ts_wire_get_pair(const ts_wire_field *f, char *out, size_t cap, const char **key, const char **value);

/* A request as the helper reads it. Pointers point into the body it was parsed from. */
typedef struct ts_wire_request {
	uint8_t op;
	char type[32];
	char tcti[TS_WIRE_STR_MAX + 1];
	char fido2_device[TS_WIRE_STR_MAX + 1];
	char pkcs11_module[TS_WIRE_STR_MAX + 1];
	uint32_t fido2_timeout_ms;
	int test_devices;             /* TS_WIRE_TEST_DEVICES was given */
	char vault_name[TS_WIRE_STR_MAX + 1];
	uint8_t vault_id[TS_VAULT_ID_BYTES];
	char option_text[TS_WIRE_MAX_OPTIONS][TS_WIRE_STR_MAX + 1];
	ts_kv options[TS_WIRE_MAX_OPTIONS];
	size_t n_options;
	const uint8_t *pin;           /* into the (secure) request body */
	size_t pin_len;
	const uint8_t *params;        /* into the request body */
	size_t params_len;
	const uint8_t *box_key;       /* TS_WIRE_BOX_KEY_BYTES, into the (secure) request body */
	unsigned seen;                /* bit per single-valued tag */
} ts_wire_request;

/*
 * Parse a request body (q zero-initialised by the caller): every field
 * valid, single-valued fields at most once, a known op, a type, params for
 * every op but enroll, and a box key (and no PIN) for the escrow op and for
 * no other. 0, -TS_E_INVALID_ARGS or -TS_E_LIMIT.
 */
int ts_wire_parse_request(const uint8_t *body, size_t len, ts_wire_request *q);

/*
 * Blocking I/O on fd. write: the whole frame. read: one frame's body into
 * secure memory (*ret, *ret_len), waiting at most timeout_ms in total
 * (-1: forever). 0, -TS_E_IO (EOF, error), -TS_E_TIMEOUT, -TS_E_LIMIT,
 * -TS_E_NOMEM.
 */
int ts_wire_write(int fd, const uint8_t *frame, size_t len);
int ts_wire_read(int fd, int timeout_ms, uint8_t **ret, size_t *ret_len);

#endif
