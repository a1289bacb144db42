/* recovery.c — recovery keys: random bytes + checksum in Crockford base32, and their KEK (BLAKE2b, or Argon2id for old records). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/params.h"
#include "core/recovery.h"

#define RK_PERSONAL "tokenseal-recovery-v1"   /* BLAKE2b key of the checksum */
#define RK_RAW_BYTES (TS_RECOVERY_KEY_BYTES + TS_RECOVERY_CHECK_BYTES)   /* 25 */
#define RK_CHARS (RK_RAW_BYTES * 8 / 5)                                    /* 40 */
#define RK_GROUP 5

_Static_assert(RK_RAW_BYTES * 8 % 5 == 0, "recovery key is a whole number of base32 digits");
_Static_assert(RK_CHARS + RK_CHARS / RK_GROUP - 1 + 1 == TS_RECOVERY_TEXT_BYTES, "printed form size");

/* Argon2id cost bounds accepted from a (hostile) vault file. */
#define RK_OPS_MIN 1
#define RK_OPS_MAX 16
#define RK_MEM_MIN ((uint64_t)8 << 10)
#define RK_MEM_MAX ((uint64_t)1 << 30)
#define RK_ALG "argon2id13"
#define RK_ALG_BLAKE2B "blake2b-kek1"
#define RK_KEK_LABEL "tokenseal-recovery-kek-v2"   /* the BLAKE2b KDF's message starts with it */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int rk_checksum(const uint8_t key[TS_RECOVERY_KEY_BYTES], uint8_t check[TS_RECOVERY_CHECK_BYTES])
{
	uint8_t h[32];

	if (crypto_generichash(h, sizeof(h), key, TS_RECOVERY_KEY_BYTES,
	                       (const uint8_t *)RK_PERSONAL, sizeof(RK_PERSONAL) - 1) != 0)
		return -TS_E_FAILED;
	memcpy(check, h, TS_RECOVERY_CHECK_BYTES);
	sodium_memzero(h, sizeof(h));
	return 0;
}


/* Value of a typed character that is not a separator (ts_recovery_separator), or -1 for an invalid one. */
static int rk_char_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		c = (unsigned char)(c - 'a' + 'A');
	/* Crockford's substitutions for look-alikes; U is excluded on purpose. */
	if (c == 'O')
		return 0;
	if (c == 'I' || c == 'L')
		return 1;
	if (c >= 'A' && c <= 'Z') {
		const char *p = memchr(crockford + 10, c, 22);

		return p ? (int)(p - crockford) : -1;
	}
	return -1;
}

static void rk_format(const uint8_t raw[RK_RAW_BYTES], char text[TS_RECOVERY_TEXT_BYTES])
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, o = 0, d = 0;

	for (i = 0; i < RK_RAW_BYTES; i++) {
		acc = acc << 8 | raw[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			if (d > 0 && d % RK_GROUP == 0)
				text[o++] = '-';
			text[o++] = crockford[(acc >> bits) & 31];
			d++;
		}
	}
	text[o] = '\0';
	sodium_memzero(&acc, sizeof(acc));
}

int ts_recovery_generate(uint8_t key[TS_RECOVERY_KEY_BYTES], char text[TS_RECOVERY_TEXT_BYTES])
{
	uint8_t raw[RK_RAW_BYTES];
	int r;

	if (!key || !text)
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	randombytes_buf(raw, TS_RECOVERY_KEY_BYTES);
	if ((r = rk_checksum(raw, raw + TS_RECOVERY_KEY_BYTES)) < 0)
		goto out;
	rk_format(raw, text);
	memcpy(key, raw, TS_RECOVERY_KEY_BYTES);
	r = 0;
out:
	sodium_memzero(raw, sizeof(raw));
	return r;
}

int ts_recovery_parse(const char *text, size_t len, uint8_t key[TS_RECOVERY_KEY_BYTES])
{
	uint8_t raw[RK_RAW_BYTES], check[TS_RECOVERY_CHECK_BYTES];
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, d = 0, o = 0;
	int v, r = -TS_E_BAD_RECOVERY_KEY;

	if (!key || (len && !text))
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	for (i = 0; i < len; i++) {
		if (ts_recovery_separator((unsigned char)text[i]))
			continue;
		v = rk_char_value((unsigned char)text[i]);
		if (v < 0 || d == RK_CHARS)
			goto out;
		d++;
		acc = acc << 5 | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			raw[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (d != RK_CHARS || o != RK_RAW_BYTES)
		goto out;
	if ((r = rk_checksum(raw, check)) < 0)
		goto out;
	if (sodium_memcmp(check, raw + TS_RECOVERY_KEY_BYTES, TS_RECOVERY_CHECK_BYTES) != 0) {
		r = -TS_E_BAD_RECOVERY_KEY;
		goto out;
	}
	memcpy(key, raw, TS_RECOVERY_KEY_BYTES);
	r = 0;
out:
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(check, sizeof(check));
	sodium_memzero(&acc, sizeof(acc));
	return r;
}

static void rk_params_fresh(ts_recovery_params *p, unsigned kdf)
{
	if (!p)
		return;
	if (sodium_init() < 0)
		abort();
	memset(p, 0, sizeof(*p));
	p->kdf = kdf;
	randombytes_buf(p->salt, sizeof(p->salt));
	if (kdf == TS_RECOVERY_KDF_ARGON2ID) {
		p->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		p->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
	}
}

void ts_recovery_params_default(ts_recovery_params *p)
{
	rk_params_fresh(p, TS_RECOVERY_KDF_BLAKE2B);
}

void ts_recovery_params_argon2id(ts_recovery_params *p)
{
	rk_params_fresh(p, TS_RECOVERY_KDF_ARGON2ID);
}

static int rk_cost_ok(uint64_t ops, uint64_t mem)
{
	return ops >= RK_OPS_MIN && ops <= RK_OPS_MAX && mem >= RK_MEM_MIN && mem <= RK_MEM_MAX;
}

/* The params are one of the two kinds, each with only its own fields set. */
static int rk_params_ok(const ts_recovery_params *p)
{
	if (p->kdf == TS_RECOVERY_KDF_BLAKE2B)
		return p->opslimit == 0 && p->memlimit == 0;
	return p->kdf == TS_RECOVERY_KDF_ARGON2ID && rk_cost_ok(p->opslimit, p->memlimit);
}

static int rk_derive_blake2b(const uint8_t key[TS_RECOVERY_KEY_BYTES], const ts_recovery_params *p,
                             const uint8_t vault_id[TS_VAULT_ID_BYTES], uint8_t kek[TS_KEY_BYTES])
{
	crypto_generichash_state st;
	int r = 0;

	_Static_assert(TS_RECOVERY_KEY_BYTES >= crypto_generichash_KEYBYTES_MIN, "BLAKE2b key size");
	if (crypto_generichash_init(&st, key, TS_RECOVERY_KEY_BYTES, TS_KEY_BYTES) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)RK_KEK_LABEL, sizeof(RK_KEK_LABEL) - 1) != 0 ||
	    crypto_generichash_update(&st, vault_id, TS_VAULT_ID_BYTES) != 0 ||
	    crypto_generichash_update(&st, p->salt, sizeof(p->salt)) != 0 ||
	    crypto_generichash_final(&st, kek, TS_KEY_BYTES) != 0) {
		sodium_memzero(kek, TS_KEY_BYTES);
		r = -TS_E_FAILED;
	}
	sodium_memzero(&st, sizeof(st));
	return r;
}

int ts_recovery_derive_kek(const uint8_t key[TS_RECOVERY_KEY_BYTES], const ts_recovery_params *p,
                           const uint8_t vault_id[TS_VAULT_ID_BYTES], uint8_t kek[TS_KEY_BYTES])
{
	_Static_assert(sizeof(p->salt) == crypto_pwhash_SALTBYTES, "Argon2id salt size");

	if (!key || !p || !kek || !rk_params_ok(p))
		return -TS_E_INVALID_ARGS;
	if (sodium_init() < 0)
		return -TS_E_FAILED;
	if (p->kdf == TS_RECOVERY_KDF_BLAKE2B)
		return vault_id ? rk_derive_blake2b(key, p, vault_id, kek) : -TS_E_INVALID_ARGS;
	if (crypto_pwhash(kek, TS_KEY_BYTES, (const char *)key, TS_RECOVERY_KEY_BYTES, p->salt,
	                  p->opslimit, (size_t)p->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		sodium_memzero(kek, TS_KEY_BYTES);
		/* Argon2 fails only when it cannot get its memory. */
		return -TS_E_NOMEM;
	}
	return 0;
}

int ts_recovery_params_encode(const ts_recovery_params *p, ts_buf *out)
{
	ts_params *rec = NULL;
	int r;

	if (!p || !out)
		return -TS_E_INVALID_ARGS;
	if (!rk_params_ok(p))
		return -TS_E_INVALID_ARGS;
	if ((r = ts_params_new(&rec)) < 0)
		return r;
	if (p->kdf == TS_RECOVERY_KDF_BLAKE2B) {
		if ((r = ts_params_set_str(rec, "alg", RK_ALG_BLAKE2B)) < 0 ||
		    (r = ts_params_set_bytes(rec, "salt", p->salt, sizeof(p->salt))) < 0)
			goto out;
	} else if ((r = ts_params_set_str(rec, "alg", RK_ALG)) < 0 ||
	           (r = ts_params_set_bytes(rec, "salt", p->salt, sizeof(p->salt))) < 0 ||
	           (r = ts_params_set_uint(rec, "ops", p->opslimit)) < 0 ||
	           (r = ts_params_set_uint(rec, "mem", p->memlimit)) < 0)
		goto out;
	r = ts_params_encode(rec, out);
out:
	ts_params_free(rec);
	return r;
}

int ts_recovery_params_decode(const uint8_t *b, size_t len, ts_recovery_params *ret)
{
	ts_recovery_params p;
	ts_params *rec = NULL;
	const uint8_t *salt;
	const char *alg;
	size_t salt_len;
	int r;

	if (!ret)
		return -TS_E_INVALID_ARGS;
	if ((r = ts_params_decode(b, len, &rec)) < 0)
		return r;
	memset(&p, 0, sizeof(p));
	if (ts_params_get_str(rec, "alg", &alg) < 0 ||
	    ts_params_get_bytes(rec, "salt", &salt, &salt_len) < 0 || salt_len != sizeof(p.salt)) {
		r = -TS_E_CORRUPT;
		goto out;
	}
	/*
	 * Exactly the fields of the alg: an unknown one may be a parameter we
	 * would silently ignore.
	 */
	if (strcmp(alg, RK_ALG_BLAKE2B) == 0) {
		p.kdf = TS_RECOVERY_KDF_BLAKE2B;
		if (ts_params_count(rec) != 2) {
			r = -TS_E_CORRUPT;
			goto out;
		}
	} else if (strcmp(alg, RK_ALG) == 0) {
		p.kdf = TS_RECOVERY_KDF_ARGON2ID;
		if (ts_params_count(rec) != 4 || ts_params_get_uint(rec, "ops", &p.opslimit) < 0 ||
		    ts_params_get_uint(rec, "mem", &p.memlimit) < 0) {
			r = -TS_E_CORRUPT;
			goto out;
		}
		/* A hostile file could ask for terabytes or hours: refuse before Argon2id runs. */
		if (!rk_cost_ok(p.opslimit, p.memlimit)) {
			r = -TS_E_CORRUPT;
			goto out;
		}
	} else {
		r = -TS_E_NOT_SUPPORTED;
		goto out;
	}
	memcpy(p.salt, salt, sizeof(p.salt));
	*ret = p;
	r = 0;
out:
	ts_params_free(rec);
	return r;
}
