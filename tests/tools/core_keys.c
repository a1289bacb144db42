/* core_keys.c — test tool: open a vault file offline with a recovery key and print its secrets (hex) for memory scans. */
/*
 *   core_keys VAULT_FILE RECOVERY_KEY_FILE
 *
 * Prints "vs HEX", one "rk VERSION HEX" per live root key and one
 * "ctxkey VERSION HEX" per live root key's context-check key (KDF(RK,
 * "tsctxchk"), derived here apart; the daemon keeps it beside the root key
 * while unlocked): exactly the bytes that must be in the daemon's memory
 * while the vault is unlocked and nowhere in it after Lock. The recovery key comes from a file (never argv);
 * it opens the first recovery protector it fits. Test use only: printing
 * secrets is the whole point of this tool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/recovery.h"
#include "core/vault.h"

static int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;

	if (!f)
		return -1;
	if ((b = malloc(max + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(b, 1, max + 1, f);
	fclose(f);
	if (n > max) {
		free(b);
		return -1;
	}
	*ret = b;
	*ret_len = n;
	return 0;
}

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
	char hex[2 * TS_KEY_BYTES + 1];

	sodium_bin2hex(hex, sizeof(hex), p, n);
	printf("%s %s\n", label, hex);
}

int main(int argc, char **argv)
{
	_ts_cleanup_secure_ uint8_t *rk = NULL;
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	uint8_t *file = NULL, *text = NULL, ctx_key[32];
	size_t file_len, text_len;
	ts_vault *v = NULL;
	int r, ret = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: core_keys VAULT_FILE RECOVERY_KEY_FILE\n");
		return 2;
	}
	if (sodium_init() < 0 || (rk = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL ||
	    (kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL)
		return 1;
	if (read_file(argv[1], TS_VAULT_FILE_MAX, &file, &file_len) < 0 || read_file(argv[2], 1024, &text, &text_len) < 0) {
		fprintf(stderr, "core_keys: cannot read the inputs: %s\n", strerror(errno));
		goto out;
	}
	while (text_len > 0 && (text[text_len - 1] == '\n' || text[text_len - 1] == '\r'))
		text_len--;
	if ((r = ts_recovery_parse((const char *)text, text_len, rk)) < 0) {
		fprintf(stderr, "core_keys: recovery key: %s\n", ts_strerror(r));
		goto out;
	}
	if ((r = ts_vault_parse(file, file_len, &v)) < 0) {
		fprintf(stderr, "core_keys: vault file: %s\n", ts_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < v->n_protectors && ts_vault_is_locked(v); i++) {
		const ts_protector_record *p = &v->protectors[i];
		ts_recovery_params params;

		if (strcmp(p->type, "recovery") != 0 ||
		    ts_recovery_params_decode(p->params, p->params_len, &params) < 0 ||
		    ts_recovery_derive_kek(rk, &params, v->id, kek) < 0)
			continue;
		if ((r = ts_vault_unlock(v, p->id, kek)) < 0 && r != -TS_E_AUTH_FAILED) {
			fprintf(stderr, "core_keys: protector %s: %s\n", p->id, ts_strerror(r));
			goto out;
		}
	}
	if (ts_vault_is_locked(v)) {
		fprintf(stderr, "core_keys: the recovery key opens no protector of this vault\n");
		goto out;
	}
	print_hex("vs", v->vs, TS_KEY_BYTES);
	for (uint32_t ver = ts_keyring_min_version(v->keyring); ver <= ts_keyring_current(v->keyring); ver++) {
		const uint8_t *key;
		char label[32];

		if (ts_keyring_key(v->keyring, ver, &key) < 0)
			continue;
		snprintf(label, sizeof(label), "rk %u", ver);
		print_hex(label, key, TS_KEY_BYTES);
		if (crypto_kdf_derive_from_key(ctx_key, sizeof(ctx_key), 1, "tsctxchk", key) != 0)
			goto out;
		snprintf(label, sizeof(label), "ctxkey %u", ver);
		print_hex(label, ctx_key, sizeof(ctx_key));
		sodium_memzero(ctx_key, sizeof(ctx_key));
	}
	ret = 0;
out:
	ts_vault_free(v);
	if (text)
		sodium_memzero(text, text_len);
	free(text);
	free(file);
	return ret;
}
