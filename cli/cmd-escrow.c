/* cmd-escrow.c — tokenseal escrow keygen|show-key|set|recover: officer keys, escrow recipients, offline recovery. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <limits.h>
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
#include "escrow-ldap.h"
#include "core/vault.h"
#include "lib/policy-client.h"
#include "protectors/escrow_rsa.h"
#include "store.h"

#define ESCROW_MAX_SECRETS TS_VAULT_MAX_ESCROW
#define ESCROW_KEY_FILE_MAX (64 * 1024)   /* a PEM or DER public key or certificate */

static void escrow_help(FILE *f)
{
	fprintf(f,
	        "Usage: tokenseal escrow keygen --out-secret FILE\n"
	        "       tokenseal escrow show-key (FILE | --pkcs11 URI) [--pkcs11-module PATH]\n"
	        "       tokenseal [--vault NAME] escrow set [--threshold M] [--pkcs11 [LABEL=]URI]... [LABEL=]KEY...\n"
	        "       tokenseal escrow recover (--vault-file FILE | --from-ldap URI --base DN --vault-id ID\n"
	        "                 --machine-id M [--bind-dn DN --password-file FILE] [--ca-file FILE]\n"
	        "                 [--cert-file FILE --key-file FILE] [--yes]) --state-dir DIR\n"
	        "                 [--secret FILE]... [--officer-pkcs11 URI]... [--pin-fd N] [--pkcs11-module PATH]\n"
	        "       tokenseal escrow publish --to-ldap URI --base DN [--state-dir DIR] [--machine-id ID]\n"
	        "                 [--bind-dn DN --password-file FILE] [--ca-file FILE]\n"
	        "                 [--cert-file FILE --key-file FILE]\n\n"
	        "keygen    make an X25519 escrow officer's key pair: the public key is printed, the\n"
	        "          secret key is written (mode 0600) to FILE ('-': stdout)\n"
	        "show-key  print the text form (tokenseal-escrow-rsa:v1:...) of an officer's RSA\n"
	        "          key (2048..4096 bits) for a policy's [recipient NAME] key; its type\n"
	        "          and fingerprint go to stderr\n"
	        "set       escrow the vault to these officers; any M of them recover it\n"
	        "          (default 1: each alone); no key: remove escrow. KEY is a public key\n"
	        "          text (tokenseal-escrow-pub:v1:... or tokenseal-escrow-rsa:v1:...) or a\n"
	        "          file holding an RSA public key or certificate (PEM, or DER); a file\n"
	        "          name containing '=' needs a LABEL= in front. --pkcs11 reads the\n"
	        "          public key of an HSM's RSA key (no PIN needed)\n"
	        "recover   offline: open the vault file with enough officers -- X25519\n"
	        "          secret key files (--secret) and RSA keys on PKCS#11 tokens\n"
	        "          (--officer-pkcs11; the token's PIN from --pin-fd N when there is one\n"
	        "          token, else asked on the terminal) -- enroll a new recovery key for\n"
	        "          the user (printed once) and write the vault back to DIR/NAME.vault.\n"
	        "          Refused while tokensealed runs on DIR (it holds DIR/" TS_STORE_LOCK_FILE ").\n"
	        "          --from-ldap: the vault file from the record cn=M.ID under DN, as\n"
	        "          'escrow publish' on machine M wrote it (ID: 32 hex digits, 'tokenseal\n"
	        "          status' shows it); its vault, owner, generation and when and by whom\n"
	        "          it was written are shown, and used only once confirmed (typed 'yes',\n"
	        "          or --yes). A record is only as trustworthy as the directory's write\n"
	        "          access: whoever can write it can put there a vault they can open.\n"
	        "          The directory: as for publish (ldap:// only with StartTLS, the\n"
	        "          server's certificate verified, no ldap.conf or ldaprc read)\n"
	        "publish   put each escrowed vault of this machine into an LDAP directory\n"
	        "          ('tokenseal escrow publish --help'; schema in contrib/ldap/)\n");
}

/* A public key or certificate file (hostile bytes) -> the text form of its RSA key. Exit code or 0. */
static int rsa_file_to_text(const char *path, char text[TS_ESCROW_KEY_TEXT_MAX], unsigned *ret_bits)
{
	_ts_cleanup_buf_ ts_buf spki = { 0 };
	uint8_t *data = NULL;
	size_t len = 0, mod = 0;
	char err[256] = "";
	int fd, rc, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("%s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	rc = cli_read_fd(fd, ESCROW_KEY_FILE_MAX, &data, &len, path);
	close(fd);
	if (rc != 0)
		return rc;
	r = ts_escrow_rsa_spki_from_bytes(data, len, &spki, err, sizeof(err));
	ts_secret_free(data, ESCROW_KEY_FILE_MAX + 1);
	if (r < 0 || ts_escrow_key_to_text(TS_ESCROW_TYPE_RSA, spki.data, spki.len, text) < 0 ||
	    ts_escrow_rsa_spki_check(spki.data, spki.len, &mod) < 0) {
		cli_err("%s: %s", path, err[0] ? err : "not an RSA public key");
		return EXIT_USAGE;
	}
	if (ret_bits)
		*ret_bits = (unsigned)(mod * 8);
	return 0;
}

/* The RSA key a pkcs11: URI names -> its text form. Exit code or 0. */
static int rsa_token_to_text(const char *uri, const char *module, char text[TS_ESCROW_KEY_TEXT_MAX], unsigned *ret_bits)
{
	_ts_cleanup_buf_ ts_buf spki = { 0 };
	cli_p11_key *k = NULL;
	size_t mod = 0;
	int rc;

	if ((rc = cli_p11_key_open(uri, module, &k)) != 0)
		return rc;
	rc = cli_p11_key_spki(k, &spki);
	cli_p11_key_close(k);
	if (rc != 0)
		return rc;
	if (ts_escrow_key_to_text(TS_ESCROW_TYPE_RSA, spki.data, spki.len, text) < 0 ||
	    ts_escrow_rsa_spki_check(spki.data, spki.len, &mod) < 0) {
		cli_err("%s: not an RSA key of 2048..4096 bits", uri);
		return EXIT_USAGE;
	}
	if (ret_bits)
		*ret_bits = (unsigned)(mod * 8);
	return 0;
}

static int show_key(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pkcs11", required_argument, NULL, 'p' },
		{ "pkcs11-module", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char text[TS_ESCROW_KEY_TEXT_MAX], fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
	uint8_t key[TS_ESCROW_KEY_MAX];
	const char *uri = NULL, *module = NULL;
	unsigned bits = 0, type;
	size_t len;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': uri = optarg; break;
		case 'm': module = optarg; break;
		case 'h': escrow_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if ((uri != NULL) == (optind < argc) || argc - optind > 1)
		return cli_usage_error("escrow show-key ", "give one FILE or --pkcs11 URI");
	rc = uri ? rsa_token_to_text(uri, module, text, &bits) : rsa_file_to_text(argv[optind], text, &bits);
	if (rc != 0)
		return rc;
	if (ts_escrow_key_from_text(text, strlen(text), &type, key, &len) < 0) {
		cli_err("internal error: the key's text form does not parse");
		return EXIT_FAIL;
	}
	ts_escrow_key_fingerprint_text(key, len, fp);
	printf("%s\n", text);
	fprintf(stderr, "rsa-%u, fingerprint %s\n", bits, fp);
	return EXIT_OK;
}

/* A whole small file into secure memory (NUL-terminated); exit code or 0. */
static int read_secret_file(const char *path, uint8_t **ret, size_t *ret_len)
{
	return cli_read_path(path, 1024, ret, ret_len, path);
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
		{ "pkcs11", required_argument, NULL, 'p' },
		{ "pkcs11-module", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *rec[TS_VAULT_MAX_ESCROW] = { 0 };
	const char *uris[TS_VAULT_MAX_ESCROW], *module = NULL;
	char text[TS_ESCROW_KEY_TEXT_MAX];
	ts_client *cl = NULL;
	unsigned long m = 1;
	size_t n = 0, n_uris = 0;
	char *end;
	int c, r, rc = EXIT_OK;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			m = strtoul(optarg, &end, 10);
			if (!*optarg || *end || m < 1 || m > TS_VAULT_MAX_ESCROW)
				return cli_usage_error("escrow set ", "--threshold: 1..%d", TS_VAULT_MAX_ESCROW);
			break;
		case 'p':
			if (n_uris == TS_VAULT_MAX_ESCROW)
				return cli_usage_error("escrow set ", "at most %d recipients", TS_VAULT_MAX_ESCROW);
			uris[n_uris++] = optarg;
			break;
		case 'm': module = optarg; break;
		case 'h': escrow_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (argc - optind + n_uris > TS_VAULT_MAX_ESCROW)
		return cli_usage_error("escrow set ", "at most %d recipients", TS_VAULT_MAX_ESCROW);
	/* Each recipient becomes the daemon's "[LABEL ]KEY-TEXT". */
	for (size_t i = 0; i < (size_t)(argc - optind) + n_uris; i++) {
		int from_token = i >= (size_t)(argc - optind);
		const char *arg = from_token ? uris[i - (argc - optind)] : argv[optind + i];
		const char *val = arg, *eq = strchr(arg, '=');
		size_t label_len = 0;

		/* "LABEL=..." unless the argument is itself a key text or a URI (both may hold '='). */
		if (eq && strncmp(arg, "tokenseal-escrow-", 17) != 0 && strncmp(arg, "pkcs11:", 7) != 0) {
			label_len = (size_t)(eq - arg);
			val = eq + 1;
		}
		if (memchr(arg, ' ', label_len)) {
			rc = cli_usage_error("escrow set ", "a label may not contain spaces: %.*s", (int)label_len, arg);
			goto out;
		}
		if (from_token)
			rc = rsa_token_to_text(val, module, text, NULL);
		else if (strncmp(val, "tokenseal-escrow-", 17) == 0)
			rc = snprintf(text, sizeof(text), "%s", val) >= (int)sizeof(text) ? EXIT_USAGE : 0;
		else
			rc = rsa_file_to_text(val, text, NULL);
		if (rc != 0)
			goto out;
		if (asprintf(&rec[n], "%.*s%s%s", (int)label_len, arg, label_len ? " " : "", text) < 0) {
			rec[n] = NULL;
			cli_err("out of memory");
			rc = EXIT_FAIL;
			goto out;
		}
		n++;
	}
	if ((rc = cli_connect(&cl)) != 0)
		goto out;
	if ((r = ts_client_set_escrow(cl, cli.vault, (const char *const *)rec, n, n ? (uint32_t)m : 0)) < 0)
		rc = cli_report(cl, r);
	else if (n)
		printf("Vault escrowed to %zu recipient(s); any %lu of them can recover it.\n", n, m);
	else
		printf("Escrow removed.\n");
	ts_client_free(cl);
out:
	for (size_t i = 0; i < n; i++)
		free(rec[i]);
	return rc;
}

/* The escrow record whose key is (type, key, len); n_escrow if none. */
static size_t find_recipient(const ts_vault *v, unsigned type, const uint8_t *key, size_t len)
{
	size_t j;

	for (j = 0; j < v->n_escrow; j++)
		if (v->escrow[j].type == type && v->escrow[j].pubkey_len == len &&
		    sodium_memcmp(v->escrow[j].pubkey, key, len) == 0)
			break;
	return j;
}

/* An X25519 officer's secret key file opens its box into out. Exit code or 0. */
static int open_with_secret(const ts_vault *v, const char *path, uint8_t *sec, uint8_t *out)
{
	uint8_t pub[TS_ESCROW_PUBLIC_BYTES], *st = NULL;
	size_t st_len = 0, j;
	int rc, r;

	if ((rc = read_secret_file(path, &st, &st_len)) != 0)
		return rc;
	while (st_len > 0 && (st[st_len - 1] == '\n' || st[st_len - 1] == '\r'))
		st_len--;
	r = ts_escrow_sec_from_text((const char *)st, st_len, sec);
	ts_secret_free(st, 1024 + 1);
	if (r < 0 || ts_escrow_sec_to_pub(sec, pub) < 0) {
		cli_err("%s: not a tokenseal escrow secret key", path);
		return EXIT_USAGE;
	}
	if ((j = find_recipient(v, TS_ESCROW_TYPE_X25519, pub, sizeof(pub))) == v->n_escrow) {
		char fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
		ts_escrow_key_fingerprint_text(pub, TS_ESCROW_PUBLIC_BYTES, fp);
		cli_err("%s: key %s is not an escrow recipient of vault '%s'", path, fp, v->name);
		return EXIT_AUTH;
	}
	if ((r = ts_escrow_open(pub, sec, v->escrow[j].sealed, v->escrow[j].sealed_len, out)) < 0) {
		cli_err("%s: the escrow box does not open: %s", path, ts_strerror(r));
		return cli_exit_code(r);
	}
	return 0;
}

/*
 * An officer's RSA key on a PKCS#11 token opens its box into out: the
 * token's public key names the recipient, the token decrypts the box's key,
 * the core opens the rest. Exit code or 0.
 */
static int open_with_token(const ts_vault *v, const char *uri, const char *module, int pin_fd, uint8_t *out)
{
	_ts_cleanup_buf_ ts_buf spki = { 0 };
	_ts_cleanup_secure_ uint8_t *key = NULL;
	char fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES], prompt[160];
	const ts_escrow_record *e;
	cli_p11_key *k = NULL;
	char *pin = NULL;
	size_t pin_len = 0, mod = 0, j;
	int rc, r;

	if ((rc = cli_p11_key_open(uri, module, &k)) != 0)
		return rc;
	if ((rc = cli_p11_key_spki(k, &spki)) != 0)
		goto out;
	if ((j = find_recipient(v, TS_ESCROW_TYPE_RSA, spki.data, spki.len)) == v->n_escrow) {
		ts_escrow_key_fingerprint_text(spki.data, spki.len, fp);
		cli_err("%s: key %s is not an escrow recipient of vault '%s'", uri, fp, v->name);
		rc = EXIT_AUTH;
		goto out;
	}
	e = &v->escrow[j];
	if (ts_escrow_rsa_spki_check(e->pubkey, e->pubkey_len, &mod) < 0 || e->sealed_len <= mod) {
		cli_err("%s: the escrow box is damaged", uri);
		rc = EXIT_FAIL;
		goto out;
	}
	snprintf(prompt, sizeof(prompt), "PIN for the escrow key on '%s': ", uri);
	if ((rc = cli_get_secret(pin_fd, prompt, &pin, &pin_len)) != 0)
		goto out;
	rc = cli_p11_key_login(k, pin, pin_len);
	ts_secret_free(pin, CLI_SECRET_ALLOC);
	if (rc != 0)
		goto out;
	if ((key = ts_secure_alloc(TS_ESCROW_RSA_KEY_BYTES)) == NULL) {
		cli_err("out of secure memory");
		rc = EXIT_FAIL;
		goto out;
	}
	if ((rc = cli_p11_key_unwrap(k, e->pubkey, e->pubkey_len, e->sealed, mod, key)) != 0)
		goto out;
	if ((r = ts_escrow_rsa_open(e->pubkey, e->pubkey_len, key, e->sealed, e->sealed_len, out)) < 0) {
		cli_err("%s: the escrow box does not open: %s", uri, ts_strerror(r));
		rc = cli_exit_code(r);
		goto out;
	}
	rc = 0;
out:
	cli_p11_key_close(k);
	return rc;
}

/*
 * Where the daemon keeps vault v: its owner's directory STATE/UID, unless
 * the vault is still a file of the flat layout of earlier versions
 * (STATE/NAME.vault holding this very vault), which the daemon moves into
 * the owner's directory when it next starts.
 */
static int recovered_vault_dir(const char *state_dir, const ts_vault *v, char *dir, size_t size)
{
	ts_buf file = { 0 };
	ts_vault *flat = NULL;
	int r, same = 0;

	if ((r = ts_store_owner_dir(state_dir, v->owner_uid, dir, size)) < 0)
		return r;
	if (ts_store_load(dir, v->name, &file) == 0) {
		ts_buf_free(&file);
		return 0;
	}
	ts_buf_free(&file);
	if (ts_store_load(state_dir, v->name, &file) == 0 && ts_vault_parse(file.data, file.len, &flat) == 0)
		same = flat->owner_uid == v->owner_uid && memcmp(flat->id, v->id, TS_VAULT_ID_BYTES) == 0;
	ts_vault_free(flat);
	ts_buf_free(&file);
	if (same)
		snprintf(dir, size, "%s", state_dir);
	return 0;
}

/*
 * A record from a directory is used only when the officer says so: --yes,
 * or "yes" typed on the terminal. Anything else (no terminal, EOF, another
 * answer) writes nothing. 0 or an exit code, printed.
 */
static int confirm_record(int yes)
{
	char line[16];

	if (yes)
		return 0;
	if (cli_ask_line("Recover this vault from this record? Type 'yes': ", line, sizeof(line)) < 0) {
		cli_err("not confirmed: check the record above (vault, owner, generation, when and by whom it was "
		        "written) and run again with --yes; nothing written");
		return EXIT_USAGE;
	}
	if (strcmp(line, "yes") != 0) {
		cli_err("not confirmed; nothing written");
		return EXIT_USAGE;
	}
	return 0;
}

static int recover(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vault-file", required_argument, NULL, 'f' },
		{ "secret", required_argument, NULL, 's' },
		{ "officer-pkcs11", required_argument, NULL, 'p' },
		{ "pin-fd", required_argument, NULL, 'P' },
		{ "pkcs11-module", required_argument, NULL, 'm' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "from-ldap", required_argument, NULL, 'L' },
		{ "base", required_argument, NULL, 'b' },
		{ "vault-id", required_argument, NULL, 'i' },
		{ "machine-id", required_argument, NULL, 'M' },
		{ "bind-dn", required_argument, NULL, 'D' },
		{ "password-file", required_argument, NULL, 'y' },
		{ "yes", no_argument, NULL, 'Y' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "cert-file", required_argument, NULL, 'c' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *secrets[ESCROW_MAX_SECRETS], *uris[ESCROW_MAX_SECRETS], *vault_file = NULL, *state_dir = NULL;
	const char *vault_id = NULL, *machine_opt = NULL;
	struct cli_ldap_opts lo = { 0 };
	const char *module = NULL;
	_ts_cleanup_secure_ uint8_t *opened = NULL;
	_ts_cleanup_secure_ uint8_t *sec = NULL;
	_ts_cleanup_secure_ uint8_t *rkey = NULL;
	_ts_cleanup_secure_ uint8_t *kek = NULL;
	_ts_cleanup_secure_ char *rtext = NULL;
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf params = { 0 };
	_ts_cleanup_buf_ ts_buf out = { 0 };
	ts_recovery_params rp;
	char dir[PATH_MAX] = "", from[1024] = "", machine[65] = "";
	size_t n_secrets = 0, n_uris = 0, n_opened = 0;
	const char *new_id = NULL;
	ts_vault *v = NULL;
	uint8_t *text = NULL;
	size_t text_len = 0;
	int c, r, rc = EXIT_FAIL, fd, pin_fd = -1, lock_fd = -1, yes = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': vault_file = optarg; break;
		case 'Y': yes = 1; break;
		case 'C': lo.ca_file = optarg; break;
		case 'c': lo.cert_file = optarg; break;
		case 'k': lo.key_file = optarg; break;
		case 'd': state_dir = optarg; break;
		case 's':
			if (n_secrets + n_uris == ESCROW_MAX_SECRETS)
				return cli_usage_error("escrow recover ", "at most %d officers", ESCROW_MAX_SECRETS);
			secrets[n_secrets++] = optarg;
			break;
		case 'p':
			if (n_secrets + n_uris == ESCROW_MAX_SECRETS)
				return cli_usage_error("escrow recover ", "at most %d officers", ESCROW_MAX_SECRETS);
			uris[n_uris++] = optarg;
			break;
		case 'P':
			if ((pin_fd = cli_parse_fd(optarg)) < 0)
				return cli_usage_error("escrow recover ", "--pin-fd needs a file descriptor number");
			break;
		case 'm': module = optarg; break;
		case 'L': lo.uri = optarg; break;
		case 'b': lo.base = optarg; break;
		case 'i': vault_id = optarg; break;
		case 'M': machine_opt = optarg; break;
		case 'D': lo.bind_dn = optarg; break;
		case 'y': lo.password_file = optarg; break;
		case 'h': escrow_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (!vault_file == !lo.uri || !state_dir || n_secrets + n_uris == 0 || optind != argc)
		return cli_usage_error("escrow recover ", "--vault-file or --from-ldap, --state-dir and at least one "
		                       "--secret or --officer-pkcs11 are required");
	if (lo.uri && (!vault_id || strlen(vault_id) != 2 * TS_VAULT_ID_BYTES ||
	               strspn(vault_id, "0123456789abcdef") != 2 * TS_VAULT_ID_BYTES))
		return cli_usage_error("escrow recover ", "--from-ldap needs --vault-id: the vault's id, 32 lowercase "
		                       "hexadecimal digits");
	if (lo.uri && !machine_opt)
		return cli_usage_error("escrow recover ", "--from-ldap needs --machine-id: the machine whose record "
		                       "(cn=MACHINE.VAULT-ID under --base) is read");
	if (!lo.uri && (vault_id || machine_opt || lo.base || lo.bind_dn || lo.password_file || yes || lo.ca_file ||
	                lo.cert_file || lo.key_file))
		return cli_usage_error("escrow recover ", "--vault-id, --machine-id, --base, --bind-dn, "
		                       "--password-file, --ca-file, --cert-file, --key-file and --yes go with --from-ldap");
	if (machine_opt && (rc = cli_ldap_machine_id(machine_opt, machine)) != 0)
		return rc;
	if (pin_fd >= 0 && n_uris != 1)
		return cli_usage_error("escrow recover ", "--pin-fd goes with exactly one --officer-pkcs11");
	/*
	 * The daemon holds the state directory's lock while it runs: taking it
	 * here (for the whole rewrite) means no daemon can overwrite what we
	 * write, nor we what it writes.
	 */
	if ((r = ts_store_lock(state_dir, &lock_fd)) < 0) {
		if (r == -TS_E_BUSY)
			cli_err("tokensealed is running on %s; stop it first", state_dir);
		else
			cli_err("cannot lock %s/%s: %s", state_dir, TS_STORE_LOCK_FILE, ts_strerror(r));
		return r == -TS_E_BUSY ? EXIT_FAIL : cli_exit_code(r);
	}
	if (lo.uri) {
		/* The directory's bytes are parsed as hostile, and must be the vault asked for. */
		_ts_cleanup_buf_ ts_buf fetched = { 0 };
		char hex[2 * TS_VAULT_ID_BYTES + 1];
		struct cli_ldap_record rec;
		LDAP *ld = NULL;

		if ((rc = cli_ldap_open(&lo, &ld)) != 0)
			goto out;
		rc = cli_ldap_fetch(ld, lo.base, vault_id, machine, &fetched, &rec);
		cli_ldap_close(ld);
		snprintf(from, sizeof(from), "%s", rec.dn);
		if (rc != 0)
			goto out;
		rc = EXIT_FAIL;
		if ((r = ts_vault_parse(fetched.data, fetched.len, &v)) < 0) {
			cli_err("the escrow record %s: %s; refused", from, ts_strerror(r));
			rc = cli_exit_code(r);
			goto out;
		}
		sodium_bin2hex(hex, sizeof(hex), v->id, TS_VAULT_ID_BYTES);
		if (strcmp(hex, vault_id) != 0) {
			cli_err("the escrow record %s holds vault %s, not %s; refused", from, hex, vault_id);
			rc = cli_exit_code(-TS_E_WRONG_VAULT);
			goto out;
		}
		/*
		 * Nothing here proves who made this file: whoever may write the entry
		 * could have put there a vault with this id whose root key they know.
		 * The officer checks what it is, and when and by whom it was written,
		 * before it is opened and written anywhere.
		 */
		printf("Escrow record %s\n  vault:     '%s' (id %s)\n  owner:     uid %u\n  generation: %llu\n"
		       "  written:   %s, by %s\n", from, v->name, hex, v->owner_uid, (unsigned long long)v->generation,
		       rec.modified, rec.modifier);
		if ((rc = confirm_record(yes)) != 0)
			goto out;
		rc = EXIT_FAIL;
	} else {
		if ((fd = open(vault_file, O_RDONLY | O_CLOEXEC)) < 0) {
			cli_err("%s: %s", vault_file, strerror(errno));
			goto out;
		}
		r = cli_read_fd(fd, TS_VAULT_FILE_MAX, &text, &text_len, vault_file);
		close(fd);
		if (r != 0) {
			rc = r;
			goto out;
		}
		r = ts_vault_parse(text, text_len, &v);
		ts_secret_free(text, TS_VAULT_FILE_MAX + 1);
		if (r < 0) {
			cli_err("%s: %s", vault_file, ts_strerror(r));
			rc = cli_exit_code(r);
			goto out;
		}
	}
	if (v->n_escrow == 0) {
		cli_err("vault '%s' has no escrow recipients", v->name);
		goto out;
	}
	if ((opened = ts_secure_alloc((n_secrets + n_uris) * TS_VAULT_ESCROW_PLAIN_BYTES)) == NULL ||
	    (sec = ts_secure_alloc(TS_ESCROW_SECRET_BYTES)) == NULL || (rkey = ts_secure_alloc(TS_RECOVERY_KEY_BYTES)) == NULL ||
	    (kek = ts_secure_alloc(TS_KEY_BYTES)) == NULL || (rtext = ts_secure_alloc(TS_RECOVERY_TEXT_BYTES + 1)) == NULL) {
		cli_err("out of secure memory");
		goto out;
	}
	/* Each officer opens the box sealed to it; a key the vault does not name is an error, not ignored. */
	for (size_t i = 0; i < n_secrets; i++, n_opened++)
		if ((rc = open_with_secret(v, secrets[i], sec, opened + n_opened * TS_VAULT_ESCROW_PLAIN_BYTES)) != 0)
			goto out;
	for (size_t i = 0; i < n_uris; i++, n_opened++)
		if ((rc = open_with_token(v, uris[i], module, pin_fd, opened + n_opened * TS_VAULT_ESCROW_PLAIN_BYTES)) != 0)
			goto out;
	rc = EXIT_FAIL;
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
	if ((r = ts_recovery_generate(rkey, rtext)) < 0 || (r = ts_recovery_derive_kek(rkey, &rp, v->id, kek)) < 0 ||
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
	if ((r = recovered_vault_dir(state_dir, v, dir, sizeof(dir))) < 0 || (r = ts_store_init(dir)) < 0 ||
	    (r = ts_store_save(dir, v->name, out.data, out.len)) < 0) {
		cli_err("cannot write %s/%s.vault: %s (the key above is NOT enrolled)", dir, v->name, ts_strerror(r));
		rc = cli_exit_code(r);
		goto out;
	}
	printf("Vault '%s' written to %s/%s.vault; restart tokensealed, then unlock with the new key.\n", v->name,
	       dir, v->name);
	rc = EXIT_OK;
out:
	ts_vault_free(v);
	ts_store_unlock(lock_fd);
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
	if (strcmp(argv[1], "show-key") == 0)
		return show_key(argc - 1, argv + 1);
	if (strcmp(argv[1], "recover") == 0)
		return recover(argc - 1, argv + 1);
	if (strcmp(argv[1], "publish") == 0)
		return escrow_publish_main(argc - 1, argv + 1);
	return cli_usage_error("escrow ", "unknown command '%s' (keygen, show-key, set, recover, publish)", argv[1]);
}

int cli_rotate_used_recovery_key(ts_client *c, const uint8_t *keep, size_t keep_len)
{
	char *key = NULL, *id = NULL, **kept = NULL, **dropped = NULL;
	size_t len = 0;
	int r;

	if ((r = ts_client_rotate_recovery(c, cli.vault, "", keep, keep_len, &key, &len, &id, &kept, &dropped)) < 0) {
		if (r == -TS_E_NO_SUCH_PROTECTOR)
			printf("Not unlocked with a recovery key: nothing to rotate.\n");
		else
			return cli_report(c, r);
		return EXIT_OK;
	}
	/* The old key is already gone: this is the only place the new one ever appears. */
	printf("The recovery key you used has been replaced and the vault re-keyed. New recovery key\n"
	       "(protector %s) — write it down now, it is shown once:\n\n    %s\n\n", id, key);
	for (size_t i = 0; kept[i]; i++)
		printf("  kept:    %s\n", kept[i]);
	for (size_t i = 0; dropped[i]; i++)
		printf("  dropped: %s (its key was not available; enroll it again)\n", dropped[i]);
	ts_secure_free(key);
	free(id);
	ts_strv_free(kept);
	ts_strv_free(dropped);
	return EXIT_OK;
}
