/* cmd-escrow.c — tokenseal escrow keygen|set|recover: officer key pairs, escrow recipients, offline recovery. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "core/escrow.h"
#include "core/recovery.h"
#include "core/vault.h"
#include "lib/policy-client.h"
#include "store.h"

#define ESCROW_MAX_SECRETS TS_VAULT_MAX_ESCROW

static void escrow_help(FILE *f)
{
	fprintf(f,
	        "Usage: tokenseal escrow keygen --out-secret FILE\n"
	        "       tokenseal [--vault NAME] escrow set [--threshold M] [LABEL=]PUBLIC-KEY...\n"
	        "       tokenseal escrow recover --vault-file FILE --secret FILE [--secret FILE...] --state-dir DIR\n\n"
	        "keygen   make an escrow officer's key pair: the public key is printed, the\n"
	        "         secret key is written (mode 0600) to FILE ('-': stdout)\n"
	        "set      escrow the vault to these officers; any M of them recover it\n"
	        "         (default 1: each alone); no key: remove escrow\n"
	        "recover  offline, with the daemon stopped: open the vault file with enough\n"
	        "         officers' secret keys, enroll a new recovery key for the user\n"
	        "         (printed once) and write the vault back to DIR/NAME.vault\n");
}

/* A whole small file into secure memory (NUL-terminated); exit code or 0. */
static int read_secret_file(const char *path, uint8_t **ret, size_t *ret_len)
{
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("%s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	rc = cli_read_fd(fd, 1024, ret, ret_len, path);
	close(fd);
	return rc;
}

static int keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out-secret", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t pub[TS_ESCROW_PUBLIC_BYTES];
	char pubtext[TS_ESCROW_PUB_TEXT_BYTES];
	_ts_cleanup_secure_ uint8_t *sec = NULL;
	_ts_cleanup_secure_ char *sectext = NULL;
	struct cli_out out = { .fd = -1 };
	const char *path = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': path = optarg; break;
		case 'h': escrow_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (!path)
		return cli_usage_error("escrow keygen ", "--out-secret FILE is required (the secret key never goes to stdout unless FILE is '-')");
	if (optind != argc)
		return cli_usage_error("escrow keygen ", "unexpected argument");
	if ((sec = ts_secure_alloc(TS_ESCROW_SECRET_BYTES)) == NULL ||
	    (sectext = ts_secure_alloc(TS_ESCROW_SEC_TEXT_BYTES + 1)) == NULL || ts_escrow_keygen(pub, sec) < 0) {
		cli_err("cannot make a key pair");
		return EXIT_FAIL;
	}
	ts_escrow_sec_to_text(sec, sectext);
	ts_escrow_pub_to_text(pub, pubtext);
	if ((rc = cli_out_open(&out, path, 0600)) != 0)
		return rc;
	sectext[strlen(sectext)] = '\n';
	if (cli_write_all(out.fd, sectext, strlen(sectext)) < 0) {
		cli_err("%s: %s", path, strerror(errno));
		return cli_out_commit(&out, 0) ? EXIT_FAIL : EXIT_FAIL;
	}
	if ((rc = cli_out_commit(&out, 1)) != 0)
		return rc;
	printf("%s\n", pubtext);
	return EXIT_OK;
}

static int set(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threshold", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *rec[TS_VAULT_MAX_ESCROW] = { 0 };
	ts_client *cl = NULL;
	unsigned long m = 1;
	size_t n = 0;
	char *end;
	int c, r, rc = EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			m = strtoul(optarg, &end, 10);
			if (!*optarg || *end || m < 1 || m > TS_VAULT_MAX_ESCROW)
				return cli_usage_error("escrow set ", "--threshold: 1..%d", TS_VAULT_MAX_ESCROW);
			break;
		case 'h': escrow_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (argc - optind > TS_VAULT_MAX_ESCROW)
		return cli_usage_error("escrow set ", "at most %d recipients", TS_VAULT_MAX_ESCROW);
	for (int i = optind; i < argc; i++) {
		/* "LABEL=KEY" becomes the daemon's "LABEL KEY". */
		char *eq = strchr(argv[i], '=');
		if (eq && strncmp(argv[i], TS_ESCROW_PUB_PREFIX, sizeof(TS_ESCROW_PUB_PREFIX) - 1) != 0)
			*eq = ' ';
		rec[n++] = argv[i];
	}
	if ((rc = cli_connect(&cl)) != 0)
		return rc;
	if ((r = ts_client_set_escrow(cl, cli.vault, (const char *const *)rec, n, n ? (uint32_t)m : 0)) < 0)
		rc = cli_report(cl, r);
	else if (n)
		printf("Vault escrowed to %zu recipient(s); any %lu of them can recover it.\n", n, m);
	else
		printf("Escrow removed.\n");
	ts_client_free(cl);
	return rc;
}

static int recover(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vault-file", required_argument, NULL, 'f' },
		{ "secret", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *secrets[ESCROW_MAX_SECRETS], *vault_file = NULL, *state_dir = NULL;
	_ts_cleanup_secure_ uint8_t *opened = NULL;
	_ts_cleanup_secure_ uint8_t *sec = NULL;
	_ts_cleanup_secure_ uint8_t *rkey = NULL;
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	_ts_cleanup_secure_ char *rtext = NULL;
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf params = { 0 };
	_ts_cleanup_buf_ ts_buf out = { 0 };
	ts_recovery_params rp;
	size_t n_secrets = 0, n_opened = 0;
	const char *new_id = NULL;
	ts_vault *v = NULL;
	uint8_t *text = NULL;
	size_t text_len = 0;
	int c, r, rc = EXIT_FAIL, fd;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': vault_file = optarg; break;
		case 'd': state_dir = optarg; break;
		case 's':
			if (n_secrets == ESCROW_MAX_SECRETS)
				return cli_usage_error("escrow recover ", "at most %d --secret", ESCROW_MAX_SECRETS);
			secrets[n_secrets++] = optarg;
			break;
		case 'h': escrow_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (!vault_file || !state_dir || n_secrets == 0 || optind != argc)
		return cli_usage_error("escrow recover ", "--vault-file, --state-dir and at least one --secret are required");
	if ((fd = open(vault_file, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("%s: %s", vault_file, strerror(errno));
		return EXIT_FAIL;
	}
	r = cli_read_fd(fd, TS_VAULT_FILE_MAX, &text, &text_len, vault_file);
	close(fd);
	if (r != 0)
		return r;
	r = ts_vault_parse(text, text_len, &v);
	ts_secret_free(text, TS_VAULT_FILE_MAX + 1);
	if (r < 0) {
		cli_err("%s: %s", vault_file, ts_strerror(r));
		return cli_exit_code(r);
	}
	if (v->n_escrow == 0) {
		cli_err("vault '%s' has no escrow recipients", v->name);
		goto out;
	}
	if ((opened = ts_secure_alloc(n_secrets * TS_VAULT_ESCROW_PLAIN_BYTES)) == NULL ||
	    (sec = ts_secure_alloc(TS_ESCROW_SECRET_BYTES)) == NULL || (rkey = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL ||
	    (kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL || (rtext = ts_secure_alloc(TS_RECOVERY_TEXT_BYTES + 1)) == NULL) {
		cli_err("out of secure memory");
		goto out;
	}
	/* Each officer's key opens the box sealed to it; a key the vault does not name is an error, not ignored. */
	for (size_t i = 0; i < n_secrets; i++) {
		uint8_t pub[TS_ESCROW_PUBLIC_BYTES], *st = NULL;
		size_t st_len = 0, j;

		if ((rc = read_secret_file(secrets[i], &st, &st_len)) != 0)
			goto out;
		while (st_len > 0 && (st[st_len - 1] == '\n' || st[st_len - 1] == '\r'))
			st_len--;
		r = ts_escrow_sec_from_text((const char *)st, st_len, sec);
		ts_secret_free(st, 1024 + 1);
		if (r < 0 || ts_escrow_sec_to_pub(sec, pub) < 0) {
			cli_err("%s: not a tokenseal escrow secret key", secrets[i]);
			rc = EXIT_USAGE;
			goto out;
		}
		for (j = 0; j < v->n_escrow; j++)
			if (sodium_memcmp(v->escrow[j].pubkey, pub, sizeof(pub)) == 0)
				break;
		if (j == v->n_escrow) {
			char fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
			ts_escrow_fingerprint_text(pub, fp);
			cli_err("%s: key %s is not an escrow recipient of vault '%s'", secrets[i], fp, v->name);
			rc = EXIT_AUTH;
			goto out;
		}
		if ((r = ts_escrow_open(pub, sec, v->escrow[j].sealed, v->escrow[j].sealed_len,
		                        opened + n_opened * TS_VAULT_ESCROW_PLAIN_BYTES)) < 0) {
			cli_err("%s: the escrow box does not open: %s", secrets[i], ts_strerror(r));
			rc = cli_exit_code(r);
			goto out;
		}
		n_opened++;
	}
	if ((r = ts_vault_unlock_escrow(v, opened, n_opened)) < 0) {
		if (r == -TS_E_INVALID_ARGS)
			cli_err("%zu officer key(s) given; vault '%s' needs %u of its %zu escrow recipients", n_opened,
			        v->name, v->escrow_threshold, v->n_escrow);
		else
			cli_err("escrow recovery failed: %s", ts_strerror(r));
		rc = r == -TS_E_INVALID_ARGS ? EXIT_AUTH : cli_exit_code(r);
		goto out;
	}
	/* A new recovery key for the user, as the daemon's recovery backend would make it. */
	ts_recovery_params_default(&rp);
	if ((r = ts_recovery_generate(rkey, rtext)) < 0 || (r = ts_recovery_derive_kek(rkey, &rp, kek)) < 0 ||
	    (r = ts_recovery_params_encode(&rp, &params)) < 0 ||
	    (r = ts_vault_add_protector(v, "recovery", "Recovery key (escrow recovery)", kek, params.data, params.len,
	                                (uint64_t)time(NULL), &new_id)) < 0 ||
	    (r = ts_vault_serialize(v, &out)) < 0) {
		cli_err("cannot enroll the new recovery key: %s", ts_strerror(r));
		rc = cli_exit_code(r);
		goto out;
	}
	/* Shown before the file is written: a key nobody saw must never be the only new way in. */
	printf("New recovery key (protector %s) for vault '%s' — write it down now, it is shown once:\n\n    %s\n\n",
	       new_id, v->name, rtext);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_err("cannot print the new recovery key; vault file not changed");
		goto out;
	}
	if ((r = ts_store_save(state_dir, v->name, out.data, out.len)) < 0) {
		cli_err("cannot write %s/%s.vault: %s (the key above is NOT enrolled)", state_dir, v->name, ts_strerror(r));
		rc = cli_exit_code(r);
		goto out;
	}
	printf("Vault '%s' written to %s/%s.vault; restart tokensealed, then unlock with the new key.\n", v->name,
	       state_dir, v->name);
	rc = EXIT_OK;
out:
	ts_vault_free(v);
	return rc;
}

int escrow_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		escrow_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	optind = 0;   /* glibc: re-initialise getopt for the sub-subcommand */
	if (strcmp(argv[1], "keygen") == 0)
		return keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "set") == 0)
		return set(argc - 1, argv + 1);
	if (strcmp(argv[1], "recover") == 0)
		return recover(argc - 1, argv + 1);
	return cli_usage_error("escrow ", "unknown command '%s' (keygen, set, recover)", argv[1]);
}

int cli_rotate_used_recovery_key(ts_client *c)
{
	char *key = NULL, *id = NULL;
	size_t len = 0;
	int r;

	if ((r = ts_client_rotate_recovery(c, cli.vault, "", &key, &len, &id)) < 0) {
		if (r == -TS_E_NO_SUCH_PROTECTOR)
			printf("Not unlocked with a recovery key: nothing to rotate.\n");
		else
			return cli_report(c, r);
		return EXIT_OK;
	}
	/* The old key is already gone: this is the only place the new one ever appears. */
	printf("The recovery key you used has been replaced. New recovery key (protector %s) —\n"
	       "write it down now, it is shown once:\n\n    %s\n\n", id, key);
	ts_secure_free(key);
	free(id);
	return EXIT_OK;
}
