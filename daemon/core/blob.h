/* blob.h — the wrapped data-key format (binary and text forms). Pure: no I/O. */
#ifndef TS_BLOB_H
#define TS_BLOB_H

#include "tokenseal.h"
#include "buf.h"

#define TS_VAULT_ID_BYTES 16
#define TS_KEY_BYTES 32          /* root keys, vault secret, KEKs */
#define TS_BLOB_NONCE_BYTES 24   /* XChaCha20-Poly1305 */
#define TS_BLOB_TAG_BYTES 16
#define TS_BLOB_CTXCHECK_BYTES 4
#define TS_BLOB_HEADER_BYTES 54  /* magic 4 | version 1 | alg 1 | vault id 16 | key version 4 | ctx check 4 | nonce 24 */
#define TS_BLOB_OVERHEAD (TS_BLOB_HEADER_BYTES + TS_BLOB_TAG_BYTES)
#define TS_BLOB_TEXT_PREFIX "tokenseal:v1:"

/* A parsed blob; pointers alias the input buffer. */
typedef struct ts_blob_view {
	const uint8_t *header;           /* TS_BLOB_HEADER_BYTES, authenticated as AAD */
	uint8_t vault_id[TS_VAULT_ID_BYTES];
	uint32_t key_version;
	const uint8_t *ctx_check;        /* TS_BLOB_CTXCHECK_BYTES: keyed hash of the context */
	const uint8_t *nonce;            /* TS_BLOB_NONCE_BYTES */
	const uint8_t *ciphertext;       /* ciphertext || tag */
	size_t ciphertext_len;           /* >= TS_BLOB_TAG_BYTES */
	size_t plaintext_len;            /* ciphertext_len - TS_BLOB_TAG_BYTES */
} ts_blob_view;

/*
 * Parse (not decrypt) a binary blob. Checks magic, version, algorithm and
 * lengths. Returns 0, -TS_E_BAD_BLOB, or -TS_E_UNSUPPORTED_VERSION.
 */
int ts_blob_parse(const uint8_t *blob, size_t len, ts_blob_view *ret);

/*
 * Encrypt pt under key (root key version key_version of vault vault_id) and
 * append the binary blob to out. The nonce is random (libsodium's
 * randombytes; a test that needs fixed bytes installs its own generator
 * with randombytes_set_implementation, as tests/unit/test_vectors.c does).
 * ctx is bound as AAD. pt_len <= TS_PLAINTEXT_MAX. Returns 0 or negative
 * TS_E_*.
 */
int ts_blob_seal(const uint8_t key[TS_KEY_BYTES], const uint8_t vault_id[TS_VAULT_ID_BYTES],
                 uint32_t key_version, const ts_kv *ctx, size_t n_ctx,
                 const uint8_t *pt, size_t pt_len, ts_buf *out);

/*
 * Decrypt a parsed blob with key into pt_out (caller-provided, at least
 * v->plaintext_len bytes, normally secure memory). When the AEAD fails, the
 * ctx check (first 4 bytes of BLAKE2b keyed with a subkey of the root key
 * over the canonical context) tells why: a wrong context gives
 * -TS_E_CONTEXT_MISMATCH and any other failure -TS_E_BAD_BLOB;
 * -TS_E_INVALID_ARGS for a malformed context. On failure pt_out is wiped.
 */
int ts_blob_open(const uint8_t key[TS_KEY_BYTES], const ts_blob_view *v,
                 const ts_kv *ctx, size_t n_ctx, uint8_t *pt_out);

/*
 * The key of the context check, KDF(key, "tsctxchk") (docs/FORMAT.md): key
 * material, so the caller keeps it in secure memory and wipes it as it
 * does the root key. ts_blob_seal and ts_blob_open derive it on each call;
 * a keyring derives it once per root key (keyring.h) and passes it to the
 * _with variants, which give byte-identical results. 0 or -TS_E_FAILED.
 */
#define TS_BLOB_CTXKEY_BYTES 32
int ts_blob_ctx_key(const uint8_t key[TS_KEY_BYTES], uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES]);

/* ts_blob_seal and ts_blob_open with ctx_key = ts_blob_ctx_key(key) given. */
int ts_blob_seal_with(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                      const uint8_t vault_id[TS_VAULT_ID_BYTES], uint32_t key_version,
                      const ts_kv *ctx, size_t n_ctx, const uint8_t *pt, size_t pt_len, ts_buf *out);
int ts_blob_open_with(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                      const ts_blob_view *v, const ts_kv *ctx, size_t n_ctx, uint8_t *pt_out);

/* Text form: "tokenseal:v1:" + base64url (no padding). ret is malloc()ed, NUL-terminated. */
int ts_blob_to_text(const uint8_t *blob, size_t len, char **ret);

/*
 * Parse the text form (surrounding ASCII whitespace ignored) and append the
 * binary blob to out. The result still has to pass ts_blob_parse.
 * Returns 0, -TS_E_BAD_BLOB or -TS_E_UNSUPPORTED_VERSION (other "tokenseal:vN:").
 */
int ts_blob_from_text(const char *text, size_t len, ts_buf *out);

#endif
