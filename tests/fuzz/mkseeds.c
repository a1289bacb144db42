/* mkseeds.c — writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from the real core. */
/*
 * Usage: mkseeds DIR   (normally `make fuzz-seeds`, DIR = tests/fuzz/corpus)
 *
 * Seeds named ok-* must be accepted all the way by their harness (the
 * hardening test replays them with TS_FUZZ_EXPECT_VALID=1); bad-* seeds are
 * near misses that start the fuzzer next to an error path. Blobs use a fixed
 * key and nonce; vaults and recovery keys are random by construction (fresh
 * VS, root keys and ids), so regenerating changes those files.
 */
#include <errno.h>
#include <sodium.h>
#include <sys/stat.h>

#include "core/blob.h"
#include "core/buf.h"
#include "core/context.h"
#include "core/escrow.h"
#include "core/params.h"
#include "core/recovery.h"
#include "core/vault.h"
#include "fuzz.h"

#define NOW TS_FUZZ_NOW

static const char *outdir;

static __attribute__((noreturn)) void die(const char *what, int r)
{
	fprintf(stderr, "mkseeds: %s: %s (%d)\n", what, ts_strerror(r), r);
	exit(1);
}

static void put(const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path, -TS_E_IO);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		die(path, -TS_E_IO);
}

static void put_str(const char *target, const char *name, const char *s)
{
	put(target, name, s, strlen(s));
}

/* A fixed, recognisable plaintext of n bytes. */
static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + 3);
}

static void blob_seeds(void)
{
	static const uint8_t vault_id[TS_VAULT_ID_BYTES] = "fuzz-vault-id-01";
	static const ts_kv other_ctx[] = { { "app", "org.example.Other" } };
	static const struct { const char *name; size_t len; uint32_t version; } ok[] = {
		{ "ok-pt1", 1, 1 }, { "ok-pt32", 32, 1 }, { "ok-pt100-v7", 100, 7 },
	};
	uint8_t pt[100];
	ts_buf b = { 0 }, t = { 0 };
	char *text = NULL, *ws;
	size_t i;
	int r;

	fill(pt, sizeof(pt));
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if ((r = ts_blob_seal(ts_fuzz_blob_key, vault_id, ok[i].version, ts_fuzz_ctx,
		                      TS_FUZZ_N_CTX, pt, ok[i].len, &b)) < 0)
			die("ts_blob_seal", r);
		put("blob", ok[i].name, b.data, b.len);
		if ((r = ts_blob_to_text(b.data, b.len, &text)) < 0)
			die("ts_blob_to_text", r);
		put_str("blob_text", ok[i].name, text);
		free(text);
		ts_buf_free(&b);
	}

	/* Authentic, but under another context: ts_blob_open says ContextMismatch. */
	if ((r = ts_blob_seal(ts_fuzz_blob_key, vault_id, 1, other_ctx, 1, pt, 16, &b)) < 0)
		die("ts_blob_seal", r);
	put("blob", "bad-context", b.data, b.len);
	if ((r = ts_blob_to_text(b.data, b.len, &text)) < 0)
		die("ts_blob_to_text", r);

	/* Text with the whitespace a config file adds around it. */
	if ((ws = malloc(strlen(text) + 8)) == NULL)
		die("malloc", -TS_E_NOMEM);
	sprintf(ws, " \t%s\r\n", text);
	if ((r = ts_blob_from_text(ws, strlen(ws), &t)) < 0)
		die("ts_blob_from_text", r);
	put_str("blob_text", "ok-whitespace", ws);
	/* A future text version: UnsupportedVersion, not BadBlob. */
	memcpy(ws + 2 + strlen("tokenseal:v"), "2", 1);
	put_str("blob_text", "bad-v2", ws);
	put_str("blob_text", "bad-alphabet", "tokenseal:v1:AAAA+/==");
	free(ws);
	free(text);

	/* A future binary version, and a truncated header. */
	b.data[4] = 2;
	put("blob", "bad-version", b.data, b.len);
	put("blob", "bad-truncated", b.data, TS_BLOB_HEADER_BYTES - 1);
	ts_buf_free(&b);
	ts_buf_free(&t);
}

static void params_seeds(void)
{
	static const uint8_t cred[48] = { 0xc0, 0xff, 0xee };
	ts_params *p = NULL;
	ts_buf b = { 0 };
	int r;

	if ((r = ts_params_new(&p)) < 0 || (r = ts_params_encode(p, &b)) < 0)
		die("ts_params empty", r);
	put("params", "ok-empty", b.data, b.len);
	ts_buf_free(&b);

	if ((r = ts_params_set_bytes(p, "cred_id", cred, sizeof(cred))) < 0 ||
	    (r = ts_params_set_bytes(p, "salt", cred, 32)) < 0 ||
	    (r = ts_params_set_str(p, "rp_id", "tokenseal:0123456789abcdef")) < 0 ||
	    (r = ts_params_set_str(p, "aaguid", "\xc3\xa9t\xc3\xa9")) < 0 ||
	    (r = ts_params_set_uint(p, "pin", 1)) < 0 ||
	    (r = ts_params_set_uint(p, "big", UINT64_MAX)) < 0 ||
	    (r = ts_params_set_uint(p, "zero", 0)) < 0 ||
	    (r = ts_params_encode(p, &b)) < 0)
		die("ts_params mixed", r);
	put("params", "ok-mixed", b.data, b.len);
	/* The same record cut short: a CBOR reader must not run off the end. */
	put("params", "bad-truncated", b.data, b.len - 3);
	ts_buf_free(&b);
	ts_params_free(p);
}

static void recovery_seeds(void)
{
	ts_recovery_params rp;
	uint8_t *key;
	char *text, spaced[2 * TS_RECOVERY_TEXT_BYTES];
	ts_buf b = { 0 };
	size_t i, j;
	int r;

	if ((key = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL ||
	    (text = ts_secure_alloc(TS_RECOVERY_TEXT_BYTES)) == NULL)
		die("ts_secure_alloc", -TS_E_NOMEM);
	if ((r = ts_recovery_generate(key, text)) < 0)
		die("ts_recovery_generate", r);
	put_str("recovery", "ok-printed", text);
	/* Typed sloppily: lower case, spaces instead of dashes. */
	for (i = j = 0; text[i] != '\0'; i++)
		spaced[j++] = text[i] == '-' ? ' ' : (char)(text[i] | 0x20);
	spaced[j] = '\0';
	put_str("recovery", "ok-typed", spaced);
	/* One character changed: the checksum has to catch it. */
	text[0] = text[0] == 'A' ? 'B' : 'A';
	put_str("recovery", "bad-typo", text);
	put_str("recovery", "bad-short", "7K3QF-0ZJ9M");
	ts_secure_free(text);
	ts_secure_free(key);

	ts_recovery_params_default(&rp);
	if ((r = ts_recovery_params_encode(&rp, &b)) < 0)
		die("ts_recovery_params_encode", r);
	put("recovery_params", "ok-default", b.data, b.len);
	ts_buf_free(&b);
	/* Records written before: Argon2id. */
	ts_recovery_params_argon2id(&rp);
	if ((r = ts_recovery_params_encode(&rp, &b)) < 0)
		die("ts_recovery_params_encode", r);
	put("recovery_params", "ok-argon2id", b.data, b.len);
	ts_buf_free(&b);
	rp.opslimit = 1;
	rp.memlimit = 8192;
	if ((r = ts_recovery_params_encode(&rp, &b)) < 0)
		die("ts_recovery_params_encode", r);
	put("recovery_params", "ok-cheap", b.data, b.len);
	ts_buf_free(&b);
}

static void context_seeds(void)
{
	/* Key, value, key, value... separated by NUL (the harness's input format). */
	static const char two[] = "app\0org.example.Mail\0purpose\0fuzz-seed";
	static const char utf8[] = "user\0J\xc3\xbcrgen\0\xe2\x82\xac\0\xf0\x9f\x94\x91\0empty\0";
	static const char dup[] = "app\0a\0b\0c\0app\0d";
	static const char empty_key[] = "\0value";
	static const char overlong[] = "k\0\xc0\xaf";

	put("context", "ok-two", two, sizeof(two) - 1);
	put("context", "ok-utf8", utf8, sizeof(utf8) - 1);
	put("context", "bad-duplicate", dup, sizeof(dup) - 1);
	put("context", "bad-empty-key", empty_key, sizeof(empty_key) - 1);
	put("context", "bad-overlong-utf8", overlong, sizeof(overlong) - 1);
}

/* An escrow officer's RSA-2048 public key (SPKI DER), for a vault escrowed to an HSM. */
static const uint8_t officer_spki[] = {
	0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
	0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0f, 0x00,
	0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xc4, 0x5b, 0xd8,
	0x73, 0xf6, 0x8d, 0x0b, 0x36, 0x43, 0x60, 0x94, 0x19, 0xe6, 0xed, 0x27,
	0x57, 0x28, 0x80, 0xf8, 0x39, 0xe8, 0x95, 0x6b, 0xf4, 0xf5, 0x25, 0xc4,
	0xaa, 0xba, 0x61, 0x11, 0x00, 0xde, 0x7c, 0x39, 0x55, 0xc5, 0xfb, 0x70,
	0x17, 0x61, 0x7e, 0x43, 0x26, 0xb5, 0x26, 0xcd, 0x82, 0x76, 0x90, 0xca,
	0x08, 0xd4, 0xb1, 0x98, 0x6d, 0x09, 0xe1, 0x6f, 0x2e, 0xcc, 0xd4, 0x8c,
	0xda, 0xf0, 0x58, 0x21, 0x37, 0x34, 0xfc, 0x08, 0xfd, 0x26, 0xa0, 0xdb,
	0x9d, 0xaa, 0xc0, 0x5f, 0xa0, 0xd1, 0x8d, 0xc5, 0x05, 0xe0, 0x76, 0x7f,
	0x2b, 0xe5, 0xf5, 0x70, 0x3d, 0xea, 0xf7, 0x49, 0x43, 0x82, 0x8b, 0xcb,
	0x95, 0x84, 0xf6, 0x7e, 0xc5, 0xb0, 0x5f, 0x47, 0xf6, 0xa8, 0x66, 0xe3,
	0xcc, 0x09, 0xaa, 0xd0, 0xd4, 0x77, 0x59, 0x53, 0x93, 0xf2, 0xd4, 0x0f,
	0x17, 0xe4, 0x5b, 0x9d, 0x39, 0x10, 0x33, 0xa1, 0x4e, 0x51, 0x65, 0x10,
	0xfa, 0x59, 0x9d, 0xec, 0x22, 0x0f, 0x3c, 0xf2, 0x4e, 0x59, 0x1b, 0x32,
	0xc1, 0x9d, 0x7a, 0x16, 0x3b, 0x38, 0x1b, 0x3b, 0xe7, 0xd0, 0xfc, 0xee,
	0xcf, 0x93, 0x95, 0x81, 0x63, 0x35, 0x12, 0x0e, 0x25, 0xbf, 0x74, 0x3a,
	0x05, 0x9b, 0x0c, 0x95, 0xef, 0xa0, 0x21, 0x2b, 0x57, 0x61, 0x05, 0x7f,
	0x74, 0xc3, 0x44, 0x98, 0x62, 0x4e, 0x39, 0xab, 0x11, 0xe7, 0x21, 0x9f,
	0x34, 0x15, 0xef, 0x9b, 0x68, 0xd1, 0x78, 0x17, 0x66, 0x8e, 0x35, 0x02,
	0xbf, 0xfd, 0xd4, 0x19, 0x37, 0x7c, 0x12, 0x84, 0x06, 0x7f, 0xdd, 0xee,
	0xae, 0x59, 0x60, 0xb0, 0x21, 0xc5, 0x98, 0xdb, 0xb5, 0x9d, 0x58, 0xe4,
	0x41, 0xa2, 0xdd, 0x6d, 0xe1, 0x47, 0x8c, 0xe0, 0x0d, 0xad, 0x6e, 0x96,
	0xc3, 0xac, 0x03, 0xc0, 0xfb, 0x89, 0xf3, 0x22, 0x61, 0x36, 0x73, 0x33,
	0xfd, 0x02, 0x03, 0x01, 0x00, 0x01,
};

/*
 * The seeds need boxes of the right shape, not ones a token could open:
 * random bytes stand in for the RSA-OAEP part (mkseeds links no RSA code).
 */
static int fake_rsa_wrap_key(const uint8_t *spki, size_t spki_len, const uint8_t *k, ts_buf *out, char *err,
                             size_t errlen)
{
	uint8_t *dst;
	size_t mod = 0;

	if (ts_escrow_rsa_spki_check(spki, spki_len, &mod) < 0)
		return -TS_E_INVALID_ARGS;
	if ((dst = ts_buf_reserve(out, mod)) == NULL)
		return -TS_E_NOMEM;
	randombytes_buf(dst, mod);
	return 0;
}

static void vault_seeds(void)
{
	uint8_t other_kek[TS_KEY_BYTES];
	ts_recovery_params rp;
	ts_params *fp = NULL;
	ts_buf rpb = { 0 }, fpb = { 0 }, file = { 0 };
	ts_vault *v = NULL;
	int r;

	/* p1: the fixed KEK the harness tries; p2: a KEK nobody knows. */
	ts_recovery_params_default(&rp);
	if ((r = ts_recovery_params_encode(&rp, &rpb)) < 0)
		die("ts_recovery_params_encode", r);
	randombytes_buf(other_kek, sizeof(other_kek));
	if ((r = ts_params_new(&fp)) < 0 ||
	    (r = ts_params_set_bytes(fp, "cred_id", other_kek, 16)) < 0 ||
	    (r = ts_params_set_bytes(fp, "salt", other_kek, 32)) < 0 ||
	    (r = ts_params_set_uint(fp, "pin", 1)) < 0 ||
	    (r = ts_params_encode(fp, &fpb)) < 0)
		die("ts_params", r);

	if ((r = ts_vault_create(&v, TS_FUZZ_VAULT_NAME, TS_FUZZ_VAULT_OWNER, NOW)) < 0 ||
	    (r = ts_vault_add_protector(v, "recovery", TS_FUZZ_P1_DESC, ts_fuzz_kek,
	                                rpb.data, rpb.len, NOW, NULL)) < 0 ||
	    (r = ts_vault_add_protector(v, "fido2", TS_FUZZ_P2_DESC, other_kek,
	                                fpb.data, fpb.len, NOW + 1, NULL)) < 0 ||
	    (r = ts_vault_serialize(v, &file)) < 0)
		die("vault fixture", r);
	put("vault", "ok-fixture", file.data, file.len);
	put("vault", "bad-truncated", file.data, file.len / 2);
	/* One bit flipped near the end (keyring or MAC): parses, must not unlock. */
	file.data[file.len - 5] ^= 0x01;
	put("vault", "bad-bitflip", file.data, file.len);
	ts_buf_free(&file);

	/* Rotated twice, RK_1 retired: a keyring with several versions. */
	if ((r = ts_vault_rotate(v, NOW + 10, NULL)) < 0 ||
	    (r = ts_vault_rotate(v, NOW + 20, NULL)) < 0 ||
	    (r = ts_vault_retire_below(v, 2)) < 0 ||
	    (r = ts_vault_serialize(v, &file)) < 0)
		die("vault rotated", r);
	put("vault", "ok-rotated", file.data, file.len);

	/* Escrowed 2-of-2 to an X25519 officer and an RSA (HSM) officer: the header's typed escrow entries. */
	{
		uint8_t xpub[TS_ESCROW_PUBLIC_BYTES], *xsec = ts_secure_alloc(TS_ESCROW_SECRET_BYTES);
		ts_escrow_recipient rcp[2] = {
			{ .label = "officer", .pubkey = xpub },
			{ .label = "hsm", .pubkey = officer_spki, .type = TS_ESCROW_TYPE_RSA, .pubkey_len = sizeof(officer_spki) },
		};

		ts_escrow_set_rsa_key_wrapper(fake_rsa_wrap_key);
		ts_buf_free(&file);
		if (!xsec || (r = ts_escrow_keygen(xpub, xsec)) < 0 || (r = ts_vault_set_escrow(v, rcp, 2, 2)) < 0 ||
		    (r = ts_vault_serialize(v, &file)) < 0)
			die("vault escrowed", xsec ? r : -TS_E_NOMEM);
		put("vault", "ok-escrow-rsa", file.data, file.len);
		ts_secure_free(xsec);
	}

	/* Bound to a TPM NV counter: the optional nv_counter map (docs/FORMAT.md, "TPM NV counter"). */
	v->nv_handle = 0x01234567u;
	v->nv_value = 42;
	fill(v->nv_auth, sizeof(v->nv_auth));
	ts_buf_free(&file);
	if ((r = ts_vault_serialize(v, &file)) < 0)
		die("vault nv counter", r);
	put("vault", "ok-nv-counter", file.data, file.len);

	sodium_memzero(other_kek, sizeof(other_kek));
	ts_buf_free(&file);
	ts_buf_free(&fpb);
	ts_buf_free(&rpb);
	ts_params_free(fp);
	ts_vault_free(v);
}

/*
 * The keyring's plaintext layout (docs/FORMAT.md): u32 count | u32 current |
 * u32 min_version | count x (u32 version | u64 created | key[32]), big-endian.
 * The core keeps it opaque, so it is written out by hand here.
 */
static void keyring_plain(ts_buf *b, uint32_t n, uint32_t min)
{
	uint8_t key[TS_KEY_BYTES];
	uint32_t v;

	if (ts_buf_append_be32(b, n) < 0 || ts_buf_append_be32(b, n) < 0 ||
	    ts_buf_append_be32(b, min) < 0)
		die("ts_buf", -TS_E_NOMEM);
	for (v = 1; v <= n; v++) {
		if (v < min) {
			memset(key, 0, sizeof(key));   /* retired: wiped */
		} else {
			fill(key, sizeof(key));
			key[0] = (uint8_t)v;
		}
		if (ts_buf_append_be32(b, v) < 0 || ts_buf_append_be64(b, NOW + v) < 0 ||
		    ts_buf_append(b, key, sizeof(key)) < 0)
			die("ts_buf", -TS_E_NOMEM);
	}
}

static void keyring_seeds(void)
{
	ts_buf b = { 0 };

	keyring_plain(&b, 1, 1);
	put("keyring", "ok-one", b.data, b.len);
	ts_buf_free(&b);
	keyring_plain(&b, 3, 2);
	put("keyring", "ok-three-retired", b.data, b.len);
	/* A count that promises more entries than there are. */
	b.data[3] = 4;
	put("keyring", "bad-count", b.data, b.len);
	ts_buf_free(&b);
	/* A live slot holding the all-zero key. */
	keyring_plain(&b, 2, 2);
	b.data[11] = 1;
	put("keyring", "bad-zero-live-key", b.data, b.len);
	ts_buf_free(&b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 2;
	}
	if (sodium_init() < 0)
		die("sodium_init", -TS_E_FAILED);
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		die(outdir, -TS_E_IO);
	blob_seeds();
	params_seeds();
	recovery_seeds();
	context_seeds();
	vault_seeds();
	keyring_seeds();
	return 0;
}
