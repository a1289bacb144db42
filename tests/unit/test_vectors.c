/* test_vectors.c — recomputes the test vectors of docs/FORMAT.md and fails when the document and the code disagree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/blob.h"
#include "core/context.h"
#include "core/recovery.h"

#define BEGIN_MARK "<!-- test-vectors:begin -->"
#define END_MARK "<!-- test-vectors:end -->"

/* The fixed inputs; docs/FORMAT.md lists them too (the "in" lines), so they are checked as well. */
static const ts_kv vec_ctx[] = { { "purpose", "db-key" }, { "app", "org.example.Mail" } };
static const char vec_pt[] = "tokenseal test vector data key!!";

static void seq(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(start + i);
}

/*
 * The vectors' generator: every request is the document's nonce pattern
 * (0xc0, 0xc1, ...), so ts_blob_seal's random nonce is that nonce here. The
 * product has no fixed-nonce entry; libsodium lets a test swap the
 * generator instead (randombytes_set_implementation, before sodium_init).
 */
static const char *vec_rng_name(void)
{
	return "tokenseal-test-vectors";
}

static void vec_rng_buf(void *buf, size_t n)
{
	seq(buf, n, 0xc0);
}

static uint32_t vec_rng_random(void)
{
	uint32_t v;

	vec_rng_buf(&v, sizeof(v));
	return v;
}

static randombytes_implementation vec_rng = {
	.implementation_name = vec_rng_name,
	.random = vec_rng_random,
	.buf = vec_rng_buf,
};

static void line(ts_buf *out, const char *name, const char *value)
{
	char l[1024];
	int n = snprintf(l, sizeof(l), "%-22s %s\n", name, value);

	assert_true(n > 0 && (size_t)n < sizeof(l));
	assert_int_equal(ts_buf_append(out, l, (size_t)n), 0);
}

static void line_hex(ts_buf *out, const char *name, const uint8_t *p, size_t n)
{
	char hex[1024];

	assert_true(2 * n + 1 <= sizeof(hex));
	sodium_bin2hex(hex, sizeof(hex), p, n);
	line(out, name, hex);
}

/* Every vector, as the lines the document must contain, computed through the real code. */
static void compute(ts_buf *out)
{
	uint8_t key[32], vid[16], nonce[24], sub[32], h[32], rk[20], vs[32];
	_ts_cleanup_buf_ ts_buf enc = { 0 };
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	_ts_cleanup_buf_ ts_buf rp = { 0 };
	char *text = NULL, rtext[TS_RECOVERY_TEXT_BYTES], num[32];
	ts_recovery_params params;

	seq(key, sizeof(key), 0x00);
	seq(vid, sizeof(vid), 0xa0);
	seq(nonce, sizeof(nonce), 0xc0);
	seq(vs, sizeof(vs), 0x40);
	seq(rk, sizeof(rk), 0x00);

	/* (b) context encoding */
	line(out, "in  context", "app=org.example.Mail purpose=db-key");
	assert_int_equal(ts_context_encode(vec_ctx, 2, &enc), 0);
	line_hex(out, "out context_encoding", enc.data, enc.len);

	/* (a) a blob */
	line_hex(out, "in  root_key", key, sizeof(key));
	line_hex(out, "in  vault_id", vid, sizeof(vid));
	line(out, "in  key_version", "7");
	line_hex(out, "in  nonce", nonce, sizeof(nonce));
	line(out, "in  plaintext", vec_pt);
	assert_int_equal(crypto_kdf_derive_from_key(sub, 32, 1, "tsctxchk", key), 0);
	line_hex(out, "out ctxchk_key", sub, sizeof(sub));
	assert_int_equal(crypto_generichash(h, 32, enc.data, enc.len, sub, 32), 0);
	line_hex(out, "out ctx_check", h, TS_BLOB_CTXCHECK_BYTES);
	assert_int_equal(ts_blob_seal(key, vid, 7, vec_ctx, 2, (const uint8_t *)vec_pt, strlen(vec_pt), &blob), 0);
	/* The document's claim about the layout, checked here too. */
	assert_memory_equal(blob.data + 26, h, 4);
	assert_memory_equal(blob.data + 30, nonce, 24);
	line_hex(out, "out blob_header", blob.data, TS_BLOB_HEADER_BYTES);
	line_hex(out, "out blob_ciphertext", blob.data + TS_BLOB_HEADER_BYTES, blob.len - TS_BLOB_HEADER_BYTES);
	line_hex(out, "out blob", blob.data, blob.len);
	assert_int_equal(ts_blob_to_text(blob.data, blob.len, &text), 0);
	line(out, "out blob_text", text);
	free(text);

	/* Subkeys of a vault secret */
	line_hex(out, "in  vault_secret", vs, sizeof(vs));
	assert_int_equal(crypto_kdf_derive_from_key(sub, 32, 1, "tskeyrng", vs), 0);
	line_hex(out, "out keyring_key", sub, sizeof(sub));
	assert_int_equal(crypto_kdf_derive_from_key(sub, 32, 1, "tshdrmac", vs), 0);
	line_hex(out, "out header_mac_key", sub, sizeof(sub));

	/* (c) a recovery key: the parser must give the bytes back from the printed form */
	line_hex(out, "in  recovery_key", rk, sizeof(rk));
	assert_int_equal(crypto_generichash(h, 32, rk, 20, (const uint8_t *)"tokenseal-recovery-v1", 21), 0);
	line_hex(out, "out recovery_checksum", h, TS_RECOVERY_CHECK_BYTES);
	{
		/* Base32 of key || checksum, grouped, through the parser's inverse. */
		static const char a[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
		uint8_t raw[25], back[20];
		size_t o = 0;

		memcpy(raw, rk, 20);
		memcpy(raw + 20, h, 5);
		for (size_t d = 0; d < 40; d++) {
			unsigned v = 0;

			for (size_t b = 0; b < 5; b++)
				v = v << 1 | ((raw[(d * 5 + b) / 8] >> (7 - (d * 5 + b) % 8)) & 1);
			if (d && d % 5 == 0)
				rtext[o++] = '-';
			rtext[o++] = a[v];
		}
		rtext[o] = '\0';
		assert_int_equal(ts_recovery_parse(rtext, strlen(rtext), back), 0);
		assert_memory_equal(back, rk, 20);
	}
	line(out, "out recovery_text", rtext);

	/* Recovery protector params record, Argon2id (records written before; still read) */
	params.kdf = TS_RECOVERY_KDF_ARGON2ID;
	seq(params.salt, sizeof(params.salt), 0x30);
	params.opslimit = 2;
	params.memlimit = 67108864;
	line_hex(out, "in  argon2_salt", params.salt, sizeof(params.salt));
	snprintf(num, sizeof(num), "%llu", (unsigned long long)params.opslimit);
	line(out, "in  argon2_ops", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)params.memlimit);
	line(out, "in  argon2_mem", num);
	assert_int_equal(ts_recovery_params_encode(&params, &rp), 0);
	line_hex(out, "out recovery_params", rp.data, rp.len);
	assert_int_equal(ts_recovery_derive_kek(rk, &params, vid, sub), 0);
	line_hex(out, "out recovery_kek", sub, sizeof(sub));

	/* ... and BLAKE2b (new protectors): the same key, vault id and salt */
	ts_buf_free(&rp);
	memset(&params, 0, sizeof(params));
	params.kdf = TS_RECOVERY_KDF_BLAKE2B;
	seq(params.salt, sizeof(params.salt), 0x30);
	line_hex(out, "in  blake2b_salt", params.salt, sizeof(params.salt));
	assert_int_equal(ts_recovery_params_encode(&params, &rp), 0);
	line_hex(out, "out recovery_params2", rp.data, rp.len);
	assert_int_equal(ts_recovery_derive_kek(rk, &params, vid, sub), 0);
	line_hex(out, "out recovery_kek2", sub, sizeof(sub));
}

static char *read_doc(size_t *len)
{
	const char *src = getenv("TS_SRC");
	char path[4096];
	FILE *f;
	char *s;
	long n;

	snprintf(path, sizeof(path), "%s/docs/FORMAT.md", src && *src ? src : ".");
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (run from the repo root or set TS_SRC)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return s;
}

static void document_vectors_match_the_code(void **state)
{
	_ts_cleanup_buf_ ts_buf want = { 0 };
	_ts_cleanup_buf_ ts_buf got = { 0 };
	char *doc, *b, *e, *l, *nl;
	size_t len;

	compute(&want);
	doc = read_doc(&len);
	b = strstr(doc, BEGIN_MARK);
	e = b ? strstr(b, END_MARK) : NULL;
	assert_non_null(b);
	assert_non_null(e);
	/* Every "in"/"out" line of the block, in order; fences and blank lines are presentation. */
	for (l = b + strlen(BEGIN_MARK); l < e; l = nl + 1) {
		nl = strchr(l, '\n');
		if (!nl || nl > e)
			break;
		if (strncmp(l, "in  ", 4) == 0 || strncmp(l, "out ", 4) == 0)
			assert_int_equal(ts_buf_append(&got, l, (size_t)(nl - l + 1)), 0);
	}
	assert_int_equal(ts_buf_append_u8(&want, 0), 0);
	assert_int_equal(ts_buf_append_u8(&got, 0), 0);
	/* On a mismatch the diff shows which vector moved. */
	assert_string_equal((char *)got.data, (char *)want.data);
	free(doc);
}

static void blob_vector_opens_with_its_inputs(void **state)
{
	uint8_t key[32], vid[16], nonce[24], pt[64];
	_ts_cleanup_buf_ ts_buf blob = { 0 };
	ts_blob_view v;

	seq(key, 32, 0x00);
	seq(vid, 16, 0xa0);
	seq(nonce, 24, 0xc0);
	assert_int_equal(ts_blob_seal(key, vid, 7, vec_ctx, 2, (const uint8_t *)vec_pt, strlen(vec_pt), &blob), 0);
	assert_memory_equal(blob.data + 30, nonce, 24);
	assert_int_equal(ts_blob_parse(blob.data, blob.len, &v), 0);
	assert_int_equal(ts_blob_open(key, &v, vec_ctx, 2, pt), 0);
	assert_memory_equal(pt, vec_pt, strlen(vec_pt));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(document_vectors_match_the_code),
		cmocka_unit_test(blob_vector_opens_with_its_inputs),
	};

	if (randombytes_set_implementation(&vec_rng) != 0 || sodium_init() < 0)
		return 1;

	/* `test_vectors --print` writes the block to paste into docs/FORMAT.md. */
	if (argc > 1 && strcmp(argv[1], "--print") == 0) {
		ts_buf out = { 0 };

		compute(&out);
		fwrite(out.data, 1, out.len, stdout);
		ts_buf_free(&out);
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
