/* softfido.h — internal contract between the modules of softfido, the software CTAP2.1 authenticator used by the tests. */
#ifndef SOFTFIDO_H
#define SOFTFIDO_H

#include <stddef.h>
#include <stdint.h>

#include <cbor.h>
#include <openssl/evp.h>

/*
 * Layout (README.md has the user's view):
 *   main.c   options, sockets, the poll loop, the control channel
 *   hid.c    CTAPHID framing and channels, the wait for user presence
 *   ctap.c   CTAP2 commands: getInfo, makeCredential, getAssertion, reset, selection
 *   pin.c    PIN/UV auth protocols 1 and 2, clientPIN, the pinUvAuthToken
 *   cbor.c   a strict reader over libcbor and a canonical CTAP2 writer
 *   crypto.c the few OpenSSL 3 primitives everything above needs
 *   state.c  the persistent state file
 * CTAP status codes travel as positive ints (0 = success), as on the wire.
 */

/* ---- CTAP status codes (CTAP 2.1 §8.2) ---------------------------------- */
enum {
	CTAP2_OK = 0x00,
	CTAP1_ERR_INVALID_COMMAND = 0x01,
	CTAP1_ERR_INVALID_PARAMETER = 0x02,
	CTAP1_ERR_INVALID_LENGTH = 0x03,
	CTAP2_ERR_CBOR_UNEXPECTED_TYPE = 0x11,
	CTAP2_ERR_INVALID_CBOR = 0x12,
	CTAP2_ERR_MISSING_PARAMETER = 0x14,
	CTAP2_ERR_LIMIT_EXCEEDED = 0x15,
	CTAP2_ERR_CREDENTIAL_EXCLUDED = 0x19,
	CTAP2_ERR_UNSUPPORTED_ALGORITHM = 0x26,
	CTAP2_ERR_OPERATION_DENIED = 0x27,
	CTAP2_ERR_UNSUPPORTED_OPTION = 0x2B,
	CTAP2_ERR_INVALID_OPTION = 0x2C,
	CTAP2_ERR_KEEPALIVE_CANCEL = 0x2D,
	CTAP2_ERR_NO_CREDENTIALS = 0x2E,
	CTAP2_ERR_USER_ACTION_TIMEOUT = 0x2F,
	CTAP2_ERR_NOT_ALLOWED = 0x30,
	CTAP2_ERR_PIN_INVALID = 0x31,
	CTAP2_ERR_PIN_BLOCKED = 0x32,
	CTAP2_ERR_PIN_AUTH_INVALID = 0x33,
	CTAP2_ERR_PIN_AUTH_BLOCKED = 0x34,
	CTAP2_ERR_PIN_NOT_SET = 0x35,
	CTAP2_ERR_PUAT_REQUIRED = 0x36,
	CTAP2_ERR_PIN_POLICY_VIOLATION = 0x37,
	CTAP2_ERR_REQUEST_TOO_LARGE = 0x39,
	CTAP2_ERR_INVALID_SUBCOMMAND = 0x3E,
	CTAP2_ERR_UNAUTHORIZED_PERMISSION = 0x40,
	CTAP1_ERR_OTHER = 0x7F,
	/* Not a wire code: the transaction was abandoned (client gone, INIT on its
	 * channel, shutdown); nothing is sent back. */
	SF_ABORTED = 0x100,
};

/* ---- limits -------------------------------------------------------------- */
#define SF_REPORT_LEN 64
#define SF_MAX_MSG 7609 /* 57 + 128 * 59: the most a CTAPHID message can carry */
#define SF_MAX_CRED_ID_LEN 128
#define SF_MAX_CREDS_IN_LIST 16
#define SF_PIN_RETRIES_MAX 8
#define SF_PIN_AUTH_FAILURES_MAX 3 /* consecutive, per power cycle */
#define SF_UP_TIMEOUT_MS 30000
#define SF_KEEPALIVE_MS 100
#define SF_RESET_WINDOW_MS 10000

/* Permissions of a pinUvAuthToken (CTAP 2.1 §6.5.5.7). */
#define SF_PERM_MC 0x01
#define SF_PERM_GA 0x02

/* ---- persistent state (state.c) ----------------------------------------- */
typedef struct sf_state {
	uint8_t master[32];    /* wraps credential ids, derives CredRandom */
	uint8_t aaguid[16];
	int pin_set;
	uint8_t pin_hash[16];  /* LEFT(SHA-256(PIN), 16) */
	unsigned pin_retries;
	uint32_t sign_count;   /* one global counter */
} sf_state;

/* Loads PATH into *st; if PATH does not exist, fills *st with a fresh master
 * key (and a random AAGUID unless aaguid is given) and writes it. Returns 0 or -1. */
int sf_state_load(sf_state *st, const char *path, const uint8_t *aaguid);
/* Writes *st to PATH atomically (temp file, fsync, rename), mode 0600. Returns 0 or -1. */
int sf_state_save(const sf_state *st, const char *path);

/* ---- the authenticator (one per process) -------------------------------- */
typedef enum sf_up_mode { SF_UP_APPROVE, SF_UP_DENY, SF_UP_TIMEOUT } sf_up_mode;

typedef struct sf_token {
	uint8_t key[32];
	int in_use;
	uint8_t permissions;
	int has_rp;
	uint8_t rp_id_hash[32];
	int user_verified;
	uint64_t started_ms;
} sf_token;

typedef struct sf_authenticator {
	const char *state_path;
	sf_state st;
	int proto_v1, proto_v2;      /* PIN/UV auth protocols offered */
	sf_up_mode up_mode;
	int up_once;                 /* 0, or SF_UP_APPROVE+1 / SF_UP_DENY+1 for the next request only */
	unsigned lie_flags;          /* a broken key: getAssertion leaves these flags out (0x01 UP, 0x04 UV) */
	unsigned long serial;
	int verbose;                 /* log every HID packet header */
	/* Per power cycle, lost on power-cycle: */
	unsigned pin_failures;       /* consecutive wrong PINs */
	EVP_PKEY *key_agreement;     /* the authenticator's ECDH key */
	sf_token token;
	uint64_t boot_ms;
	volatile int terminating;
} sf_authenticator;

extern sf_authenticator sf;

uint64_t sf_now_ms(void);
/* Saves sf.st; on failure logs and returns CTAP1_ERR_OTHER. */
int sf_persist(void);
/* Simulates unplugging and replugging: per-boot counters, ECDH key, token. */
void sf_power_cycle(void);
void sf_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- canonical CBOR writer + strict reader (cbor.c) ---------------------- */
typedef struct sf_out {
	uint8_t buf[SF_MAX_MSG];
	size_t len;
	int overflow;
} sf_out;

void sf_cw_raw(sf_out *o, const void *p, size_t n);
void sf_cw_uint(sf_out *o, uint64_t v);
void sf_cw_int(sf_out *o, int64_t v);
void sf_cw_bytes(sf_out *o, const void *p, size_t n);
void sf_cw_text(sf_out *o, const char *s);
void sf_cw_array(sf_out *o, size_t n);
void sf_cw_map(sf_out *o, size_t n);
void sf_cw_bool(sf_out *o, int v);
/* COSE_Key of a P-256 public key (x, y 32 bytes each) with the given alg. */
void sf_cw_cose_p256(sf_out *o, int64_t alg, const uint8_t x[32], const uint8_t y[32]);

#define SF_MAX_ARGS 16
/* Parses a CTAP2 request parameter map (p, n) into args[key] (keys >= SF_MAX_ARGS
 * are ignored, as unknown parameters must be). *root owns the items; free it
 * with cbor_decref. n == 0 gives an empty set. Returns a CTAP status. */
int sf_cbor_args(const uint8_t *p, size_t n, cbor_item_t **root, cbor_item_t *args[SF_MAX_ARGS]);
int sf_cbor_bytes(const cbor_item_t *it, const uint8_t **ret_p, size_t *ret_n);
int sf_cbor_text(const cbor_item_t *it, const char **ret_p, size_t *ret_n);
int sf_cbor_uint(const cbor_item_t *it, uint64_t *ret);
int sf_cbor_int(const cbor_item_t *it, int64_t *ret);
int sf_cbor_bool(const cbor_item_t *it, int *ret);
int sf_cbor_is_text(const cbor_item_t *it, const char *s);
/* Map (definite or not) value by text key, or by integer key; NULL if absent. */
cbor_item_t *sf_cbor_get_text_key(const cbor_item_t *map, const char *key);
cbor_item_t *sf_cbor_get_int_key(const cbor_item_t *map, int64_t key);
/* Parses a COSE P-256 key agreement key into x, y. Returns a CTAP status. */
int sf_cbor_cose_p256(const cbor_item_t *it, uint8_t x[32], uint8_t y[32]);

/* ---- crypto (crypto.c); all return 0 or -1 -------------------------------- */
int sf_random(void *p, size_t n);
void sf_sha256(uint8_t out[32], const void *p, size_t n);
int sf_hmac_sha256(uint8_t out[32], const void *key, size_t key_len, const void *p, size_t n);
int sf_hkdf_sha256(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const char *info);
int sf_aes256_cbc(int enc, const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n, uint8_t *out);
/* AES-256-GCM with a 12-byte IV and 16-byte tag; decrypt returns -1 on a bad tag. */
int sf_aes256_gcm_seal(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[16]);
int sf_aes256_gcm_open(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t n, const uint8_t tag[16], uint8_t *out);
EVP_PKEY *sf_p256_generate(void);
/* The private scalar / the affine public coordinates of a P-256 key. */
int sf_p256_private(EVP_PKEY *k, uint8_t d[32]);
int sf_p256_public(EVP_PKEY *k, uint8_t x[32], uint8_t y[32]);
/* Rebuilds a key pair from its scalar (which must be in [1, n-1]). */
EVP_PKEY *sf_p256_from_private(const uint8_t d[32]);
/* ECDH with the peer point (x, y), which must be on the curve: z = x-coordinate. */
int sf_p256_ecdh(EVP_PKEY *k, const uint8_t x[32], const uint8_t y[32], uint8_t z[32]);
/* ECDSA-SHA-256 over (a || b), DER signature into sig (72 bytes max). */
int sf_p256_sign(EVP_PKEY *k, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                 uint8_t sig[80], size_t *ret_sig_len);
void sf_wipe(void *p, size_t n);
int sf_ct_equal(const void *a, const void *b, size_t n);

/* ---- PIN/UV auth protocols (pin.c) -------------------------------------- */
typedef struct sf_shared {
	int proto;
	uint8_t key[64]; /* v1: 32-byte key; v2: HMAC key || AES key */
} sf_shared;

/* Is proto (1 or 2) offered? */
int sf_pin_proto_ok(uint64_t proto);
/* decapsulate(): ECDH of the authenticator's key with the platform's COSE key. */
int sf_pin_decapsulate(int proto, const cbor_item_t *cose, sf_shared *ss);
int sf_pin_decrypt(const sf_shared *ss, const uint8_t *in, size_t n, uint8_t *out, size_t *ret_n);
/* encrypt(); out must hold n + 16. */
int sf_pin_encrypt(const sf_shared *ss, const uint8_t *in, size_t n, uint8_t *out, size_t *ret_n);
/* verify(key, message, signature) with a shared secret or with the pinUvAuthToken. */
int sf_pin_verify_shared(const sf_shared *ss, const uint8_t *msg, size_t n, const uint8_t *sig, size_t sig_len);
int sf_pin_verify_token(int proto, const uint8_t *msg, size_t n, const uint8_t *sig, size_t sig_len);
/* Drops the token and the ECDH key, makes new ones (power-up, reset, PIN change). */
void sf_pin_reset_token(void);
void sf_pin_regenerate(void);
int sf_client_pin(cbor_item_t **args, sf_out *o);

/* ---- CTAP2 (ctap.c) and CTAPHID (hid.c) ---------------------------------- */
/* Runs one CTAP2 request (command byte + CBOR); writes status byte + CBOR to o. */
void sf_ctap_dispatch(const uint8_t *req, size_t n, sf_out *o);

typedef struct sf_conn sf_conn;
void sf_hid_packet(sf_conn *c, const uint8_t *pkt, size_t n);
void sf_hid_conn_closed(sf_conn *c);
/* Milliseconds until the pending message times out, or -1. */
int sf_hid_timeout_ms(void);
void sf_hid_tick(void);
/* Asks the user for a touch while the current CBOR transaction waits:
 * 0 when given, else CTAP2_ERR_OPERATION_DENIED, _USER_ACTION_TIMEOUT,
 * _KEEPALIVE_CANCEL, or SF_ABORTED. Runs the poll loop meanwhile. */
int sf_up_wait(void);

/* main.c: one packet to a client connection (0 or -1), and one loop turn. */
int sf_conn_send(sf_conn *c, const uint8_t pkt[SF_REPORT_LEN]);
int sf_conn_alive(const sf_conn *c, unsigned gen);
unsigned sf_conn_gen(const sf_conn *c);
void sf_loop_once(int timeout_ms);

#endif
