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
/* Largest binary blob, and so the largest text form we accept. */
#define TS_BLOB_MAX (TS_PLAINTEXT_MAX + TS_BLOB_OVERHEAD)
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

/*
 * A context encoded once for many blobs (UnwrapBatch, RewrapBatch). A blob's
 * AAD is its header || the canonical encoding of the context, so the items
 * of a batch differ only in the header: ts_blob_ctx_init checks and encodes
 * the context once, and the _ctx forms below write each blob's header in
 * front of that encoding. The encoding's error (-TS_E_INVALID_ARGS for a
 * malformed context, -TS_E_NOMEM when a large one finds no memory) is kept
 * in r, not returned: each open or seal with it fails with that error at
 * the point where the per-call form would have (after that call's own
 * checks), so a batch fails at the same item, with the same error, as item
 * by item. The context check a seal needs is computed once per ctx_key and
 * kept (by address: the keys must stay where they are, unchanged, while the
 * ts_blob_ctx lives, as a keyring's do during one call).
 *
 * Not secret and no key: the context goes into every blob in the clear, and
 * so does its check. Not for two threads at once (each blob's header is
 * written into aad): give each its own with ts_blob_ctx_copy. Points into
 * itself: copy it only with ts_blob_ctx_copy, free it with ts_blob_ctx_free.
 */
#define TS_BLOB_AAD_STACK 1024

typedef struct ts_blob_ctx {
	int r;                  /* 0, or the error every open and seal with it gives */
	uint8_t *aad;           /* TS_BLOB_HEADER_BYTES of room || encoding; stack or heap.data */
	size_t aad_len;
	ts_buf heap;            /* only for an encoding too large for stack */
	const uint8_t *check_key;                 /* the ctx_key check was computed with, or NULL */
	uint8_t check[TS_BLOB_CTXCHECK_BYTES];
	const uint8_t *nonces;  /* the next seals' nonces (ts_blob_ctx_use_nonces), n_nonces of them */
	size_t n_nonces;
	uint8_t stack[TS_BLOB_AAD_STACK];
} ts_blob_ctx;

/* Encode ctx into c (no error returned: see r above); no nonces given. */
void ts_blob_ctx_init(ts_blob_ctx *c, const ts_kv *ctx, size_t n_ctx);
/*
 * dst = a copy of src, for another thread (dst->r = -TS_E_NOMEM when a
 * large encoding finds no memory). src's nonces are not copied: two
 * threads must never seal with the same one. Give dst its own.
 */
void ts_blob_ctx_copy(ts_blob_ctx *dst, const ts_blob_ctx *src);
/* Free what init or copy allocated and drop the nonces given; accepts NULL. */
void ts_blob_ctx_free(ts_blob_ctx *c);

/*
 * Nonces in bulk, for the new blobs of a batch (RewrapBatch). A
 * randombytes_buf per blob is one getrandom system call per blob: with
 * many blobs, most of the kernel's time. ts_blob_nonces_draw fills
 * out[0 .. n x TS_BLOB_NONCE_BYTES) with one system call whatever n: a
 * 32-byte seed from randombytes_buf, expanded by
 * randombytes_buf_deterministic (the ChaCha20 keystream under the seed,
 * as the kernel's own generator expands its key) and wiped at once. Every
 * call draws a seed of its own, so the nonces of two calls are as
 * unrelated as those of two randombytes_buf; within a call each nonce is
 * its own stretch of one keystream. Nonces are not secret (each goes into
 * its blob in the clear), but each must be used once only:
 * ts_blob_ctx_use_nonces hands them to the seals under one ts_blob_ctx,
 * which take them in order and move past each.
 */
void ts_blob_nonces_draw(uint8_t *out, size_t n);
/*
 * The next n seals under c take their nonces from nonces (n x
 * TS_BLOB_NONCE_BYTES, kept alive and unchanged by the caller meanwhile),
 * one each, in order, never one twice; once they are used up a seal draws
 * its own with randombytes_buf, as without. (NULL, 0) takes back what is
 * left. The blobs are otherwise byte for byte what the seal makes.
 */
void ts_blob_ctx_use_nonces(ts_blob_ctx *c, const uint8_t *nonces, size_t n);
/*
 * 0 when c holds the encoding of ctx made afresh now, else -TS_E_FAILED (or
 * c's own error): blobs sealed under c are then sealed under the context
 * the caller meant. What a wrap's verification (ts_vault_wrap) needs, once
 * per batch window rather than once per item.
 */
int ts_blob_ctx_verify(const ts_blob_ctx *c, const ts_kv *ctx, size_t n_ctx);

/* ts_blob_seal_with and ts_blob_open_with under a context encoded once: byte for byte the same results. */
int ts_blob_seal_ctx(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                     const uint8_t vault_id[TS_VAULT_ID_BYTES], uint32_t key_version, ts_blob_ctx *c,
                     const uint8_t *pt, size_t pt_len, ts_buf *out);
int ts_blob_open_ctx(const uint8_t key[TS_KEY_BYTES], const uint8_t ctx_key[TS_BLOB_CTXKEY_BYTES],
                     const ts_blob_view *v, ts_blob_ctx *c, uint8_t *pt_out);

/* Text form: "tokenseal:v1:" + base64url (no padding). ret is malloc()ed, NUL-terminated. */
int ts_blob_to_text(const uint8_t *blob, size_t len, char **ret);

/*
 * Parse the text form (surrounding ASCII whitespace ignored) and append the
 * binary blob to out. The result still has to pass ts_blob_parse.
 * Returns 0, -TS_E_BAD_BLOB or -TS_E_UNSUPPORTED_VERSION (other "tokenseal:vN:").
 */
int ts_blob_from_text(const char *text, size_t len, ts_buf *out);

#endif
