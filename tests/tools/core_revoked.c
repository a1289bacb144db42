/* core_revoked.c — test tool: prove that a revoked recovery key plus the OLD vault file cannot open the NEW vault. */
/*
 *   core_revoked OLD_FILE NEW_FILE PROTECTOR_ID RECOVERY_KEY_FILE
 *
 * The attacker's position after RevokeAndRekey: a copy of the vault file
 * from before, and the revoked protector's secret (here a recovery key, read
 * from a file, never argv). The tool checks, offline, with the core alone:
 *   1. the key opens PROTECTOR_ID in OLD_FILE (the attacker really has it);
 *   2. NEW_FILE has no PROTECTOR_ID, and the KEK opens none of its protectors;
 *   3. the old vault secret does not open the new file's sealed keyring (so
 *      none of its root keys, old or new);
 *   4. grafting the old protector record (old VS wrapped under that KEK) into
 *      the new file's header does not open it either.
 * Prints one "ok: ..." line per check; exit 0 when every attack failed, 1 when
 * one succeeded (revocation broken), 2 on bad inputs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/recovery.h"
#include "core/keyring.h"
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

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

int main(int argc, char **argv)
{
	_ts_cleanup_secure_ uint8_t *rk = NULL;
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	_ts_cleanup_secure_ uint8_t *old_vs = NULL;
	uint8_t *old_file = NULL, *new_file = NULL, *text = NULL;
	size_t old_len, new_len, text_len = 0;
	ts_vault *ov = NULL, *nv = NULL;
	const ts_protector_record *op;
	ts_protector_record *grown;
	ts_recovery_params params;
	ts_keyring *kr = NULL;
	const char *id;
	int r, ret = 2;

	if (argc != 5) {
		fprintf(stderr, "usage: core_revoked OLD_FILE NEW_FILE PROTECTOR_ID RECOVERY_KEY_FILE\n");
		return 2;
	}
	id = argv[3];
	if (sodium_init() < 0 || (rk = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL ||
	    (kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL || (old_vs = ts_secure_alloc(TS_KEY_BYTES)) == NULL)
		return 2;
	if (read_file(argv[1], TS_VAULT_FILE_MAX, &old_file, &old_len) < 0 ||
	    read_file(argv[2], TS_VAULT_FILE_MAX, &new_file, &new_len) < 0 ||
	    read_file(argv[4], 1024, &text, &text_len) < 0) {
		fprintf(stderr, "core_revoked: cannot read the inputs: %s\n", strerror(errno));
		goto out;
	}
	while (text_len > 0 && (text[text_len - 1] == '\n' || text[text_len - 1] == '\r'))
		text_len--;
	if ((r = ts_recovery_parse((const char *)text, text_len, rk)) < 0 ||
	    (r = ts_vault_parse(old_file, old_len, &ov)) < 0 || (r = ts_vault_parse(new_file, new_len, &nv)) < 0) {
		fprintf(stderr, "core_revoked: inputs: %s\n", ts_strerror(r));
		goto out;
	}

	/* 1. The attacker's key is real: it opens the old file. */
	if ((op = ts_vault_find_protector(ov, id)) == NULL || strcmp(op->type, "recovery") != 0 ||
	    ts_recovery_params_decode(op->params, op->params_len, &params) < 0 ||
	    ts_recovery_derive_kek(rk, &params, ov->id, kek) < 0 || (r = ts_vault_unlock(ov, id, kek)) < 0) {
		fprintf(stderr, "core_revoked: the key does not open %s in the old file\n", id);
		goto out;
	}
	memcpy(old_vs, ov->vs, TS_KEY_BYTES);
	printf("ok: the revoked key opens %s in the old file\n", id);
	ret = 1;

	/* 2. Nothing in the new file takes that KEK. */
	if (ts_vault_find_protector(nv, id)) {
		printf("FAIL: the new file still has protector %s\n", id);
		goto out;
	}
	for (size_t i = 0; i < nv->n_protectors; i++)
		if (ts_vault_unlock(nv, nv->protectors[i].id, kek) == 0) {
			printf("FAIL: the revoked KEK opens %s of the new file\n", nv->protectors[i].id);
			goto out;
		}
	printf("ok: the new file has no %s and the revoked KEK opens none of its %zu protector(s)\n", id,
	       nv->n_protectors);

	/* 3. The old VS does not open the new keyring: the root keys are out of its reach. */
	if (ts_keyring_open(old_vs, nv->id, nv->keyring_sealed, nv->keyring_sealed_len, &kr) == 0) {
		printf("FAIL: the old vault secret opens the new keyring\n");
		ts_keyring_free(kr);
		goto out;
	}
	printf("ok: the old vault secret does not open the new keyring\n");

	/* 4. Graft the old record (old VS under the revoked KEK) into the new header. */
	if ((grown = realloc(nv->protectors, (nv->n_protectors + 1) * sizeof(*grown))) == NULL)
		goto out;
	nv->protectors = grown;
	grown = &nv->protectors[nv->n_protectors];
	*grown = *op;
	grown->params = dup_bytes(op->params, op->params_len);
	grown->wrapped_vs = dup_bytes(op->wrapped_vs, op->wrapped_vs_len);
	nv->n_protectors++;
	if (!grown->params || !grown->wrapped_vs)
		goto out;
	if ((r = ts_vault_unlock(nv, id, kek)) == 0) {
		printf("FAIL: the grafted old protector opens the new vault\n");
		goto out;
	}
	printf("ok: the grafted old protector is refused (%s)\n", ts_strerror(r));

	if (r != -TS_E_CORRUPT && r != -TS_E_AUTH_FAILED) {
		printf("FAIL: unexpected result %d\n", r);
		goto out;
	}
	ret = 0;
out:
	ts_vault_free(ov);
	ts_vault_free(nv);
	if (text)
		sodium_memzero(text, text_len);
	free(text);
	free(old_file);
	free(new_file);
	return ret;
}
