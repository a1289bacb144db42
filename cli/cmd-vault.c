/* cmd-vault.c — tokenseal create, unlock, lock, rotate, enroll and revoke: managing a vault and its protectors. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "core/buf.h"
#include "lib/client-internal.h"

enum { OPT_PIN_FD = CLI_OPT_FIRST, OPT_KEEP, OPT_TOUCH, OPT_PROTECTOR, OPT_OWNER, OPT_RETIRE, OPT_NO_PIN,
       OPT_NO_TOUCH, OPT_PIN, OPT_PCRS, OPT_URI, OPT_PUBLIC_KEY, OPT_OAEP_HASH, OPT_REPLACE, OPT_THRESHOLD,
       OPT_URL, OPT_THP, OPT_TOFU };

/* A PEM certificate with a long chain of extensions fits; anything bigger is not a key file. */
#define CLI_PUBKEY_MAX 32768

static const char vault_help[] = "      --vault [OWNER:]NAME  vault to use (default: your user name; OWNER:NAME is\n"
                                 "                       another user's vault, for root and callers polkit allows)\n"
                                 "  -h, --help           this text\n";

static const char *vault_name(const ts_client *c)
{
	return cli.vault ? cli.vault : c->default_vault ? c->default_vault : "?";
}

/*
 * Show a fresh recovery key once. On a terminal, with the warning around
 * it; otherwise the key alone on stdout (for the caller's own safe
 * keeping) and the warning on stderr.
 */
static void show_recovery_key(const char *key, const char *what)
{
	static const char warning[] =
		"Write it down now and keep it somewhere safe, away from this computer.\n"
		"It is shown only this once; it opens the vault without any token, and\n"
		"tokenseal keeps no other copy of it.\n";

	if (isatty(STDOUT_FILENO)) {
		printf("%s\n\n    %s\n\n%s", what, key, warning);
	} else {
		fprintf(stderr, "%s (written to standard output).\n%s", what, warning);
		printf("%s\n", key);
	}
	fflush(stdout);
}

/* Parse only --vault and --help; for commands without other options. */
static int simple_opts(int argc, char **argv, const char *help, const char *cmd)
{
	static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if ((rc = cli_common_opt(ch, cmd, help, vault_help)) != 0)
			return rc;
	return 0;
}

/* ---- create -------------------------------------------------------------------------------- */

static const char create_help[] =
	"Usage: tokenseal create [NAME] [--owner UID] [--threshold K]\n"
	"Create a vault (default name: your user name). It starts unlocked, with one protector:\n"
	"a new recovery key, printed here once. Enroll a token next ('tokenseal enroll').\n"
	"Vault names are per user: your NAME never clashes with another user's.\n\n"
	"      --owner UID      (root only) create the vault for another user\n"
	"      --threshold K    a k-of-n vault: unlocking takes K of its protectors (default:\n"
	"                       the policy's [protectors] threshold); enroll K before locking it\n";

int create_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "owner", required_argument, NULL, OPT_OWNER }, { "threshold", required_argument, NULL, OPT_THRESHOLD },
		CLI_COMMON_OPTIONS, { 0 }
	};
	struct cli_kvlist o = { 0 };
	ts_client *c = NULL;
	char *key = NULL, msg[160];
	size_t key_len = 0;
	int ch, r, rc = 0;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_OWNER:
			if ((rc = cli_kv_set(&o, "owner", optarg)) != 0)
				goto out;
			break;
		case OPT_THRESHOLD:
			if ((rc = cli_kv_set(&o, "threshold", optarg)) != 0)
				goto out;
			break;
		default:
			if ((rc = cli_common_opt(ch, "create ", create_help, vault_help)) != 0)
				goto out;
		}
	}
	if (optind < argc)
		cli.vault = argv[optind++];
	if (optind != argc) {
		rc = cli_usage_error("create ", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if ((rc = cli_connect(&c)) != 0)
		goto out;
	if ((r = ts_client_create_vault(c, cli.vault, o.kv, o.n, &key, &key_len)) < 0) {
		rc = cli_report(c, r);
		goto out;
	}
	snprintf(msg, sizeof(msg), "Vault '%s' created. Its recovery key is", vault_name(c));
	show_recovery_key(key, msg);
	ts_secret_free(key, key_len + 1);
out:
	cli_kv_free(&o);
	ts_client_free(c);
	return rc < 0 ? EXIT_OK : rc;
}

/* ---- unlock -------------------------------------------------------------------------------- */

static const char unlock_help[] =
	"Usage: tokenseal unlock [--protector ID|TYPE] [--pin-fd N]\n"
	"       tokenseal unlock --rotate-recovery-key [--keep ID=FILE]... [--touch ID]... [...]\n"
	"Unlock a vault. Protectors that need no PIN (a token without PIN) are tried first;\n"
	"then the PIN or recovery key is asked for on the terminal, without echo. A PIN goes to\n"
	"one token only: when several present tokens could take it, you are asked which. A k-of-n\n"
	"vault asks for the next protector until it is unlocked.\n\n"
	"      --protector P    use only protector P: an id (p1) or a type (recovery, fido2, ...)\n"
	"      --pin-fd N       read the PIN or recovery key from file descriptor N instead of\n"
	"                       the terminal (one line, one protector); never give a secret as\n"
	"                       an argument\n"
	"      --rotate-recovery-key  after unlocking with a recovery key, replace it: the new\n"
	"                       key is printed once, the used one stops working, and the vault\n"
	"                       secret and root key are replaced too (as revoke does); each\n"
	"                       other protector is kept only if its key can be re-derived now:\n"
	"      --keep ID=FILE   with --rotate-recovery-key: its secret (recovery key, PIN) is in FILE\n"
	"      --touch ID       with --rotate-recovery-key: a FIDO2 key, touch it when it blinks\n"
	"                       (a TPM protector without PIN is kept on its own; the others are\n"
	"                       dropped and listed)\n";

static int tty_ask_secret(void *ud, const char *what, char **ret, size_t *ret_len)
{
	char *buf = NULL, prompt[200];
	size_t len = 0;

	*ret = NULL;
	snprintf(prompt, sizeof(prompt), "%s for vault '%s': ", what, (const char *)ud);
	if (cli_get_secret(-1, prompt, &buf, &len) != 0)
		return -TS_E_INVALID_ARGS;
	/* Exactly len + 1 bytes, as the unlock loop frees it. */
	if ((*ret = sodium_malloc(len + 1)) == NULL) {
		ts_secret_free(buf, CLI_SECRET_ALLOC);
		return -TS_E_NOMEM;
	}
	memcpy(*ret, buf, len + 1);
	*ret_len = len;
	ts_secret_free(buf, CLI_SECRET_ALLOC);
	return 0;
}

static int tty_choose(void *ud, const char *question, const ts_protector_info *const *p, size_t n)
{
	char line[32], *end;
	unsigned long pick;

	fprintf(stderr, "%s\n", question);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "  %zu) %s  %s%s%s\n", i + 1, p[i]->id, p[i]->description,
		        p[i]->presence ? "  " : "", p[i]->presence ? p[i]->presence : "");
	if (cli_ask_line("Number (empty: none): ", line, sizeof(line)) < 0) {
		cli_err("no terminal to ask which token; name it with --protector ID");
		return -1;
	}
	pick = strtoul(line, &end, 10);
	if (!line[0] || *end || pick < 1 || pick > n)
		return -1;
	return (int)pick - 1;
}

static void tty_info(void *ud, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

int unlock_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "protector", required_argument, NULL, OPT_PROTECTOR }, { "pin-fd", required_argument, NULL, OPT_PIN_FD },
		{ "rotate-recovery-key", no_argument, NULL, 'R' }, { "keep", required_argument, NULL, OPT_KEEP },
		{ "touch", required_argument, NULL, OPT_TOUCH }, CLI_COMMON_OPTIONS, { 0 }
	};
	_ts_cleanup_secure_ uint8_t *keep = NULL;
	size_t keep_len = 0;
	ts_unlock_ui ui = { .ask_secret = tty_ask_secret, .choose = tty_choose, .info = tty_info };
	int rotate = 0;   /* replace a used recovery key (cmd-escrow.c) */
	const char *which = "";
	ts_client *c = NULL;
	char *secret = NULL;
	size_t secret_len = 0;
	unsigned needed = 0;
	int ch, r = 0, rc = 0, pin_fd = -1;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_PROTECTOR:
			which = optarg;
			break;
		case OPT_PIN_FD:
			if ((pin_fd = cli_parse_fd(optarg)) < 0)
				return cli_usage_error("unlock ", "--pin-fd needs a file descriptor number");
			break;
		case 'R':
			rotate = 1;
			break;
		case OPT_KEEP:
		case OPT_TOUCH:
			if (!keep && (keep = ts_secure_alloc(TS_CLIENT_SECRET_MAX)) == NULL) {
				cli_err("out of secure memory");
				return EXIT_FAIL;
			}
			rc = ch == OPT_KEEP ? cli_keep_secret(keep, &keep_len, TS_CLIENT_SECRET_MAX, optarg, "unlock ")
			                    : cli_keep_touch(keep, &keep_len, TS_CLIENT_SECRET_MAX, optarg, "unlock ");
			if (rc != 0)
				return rc;
			break;
		default:
			if ((rc = cli_common_opt(ch, "unlock ", unlock_help, vault_help)) != 0)
				return rc < 0 ? EXIT_OK : rc;
		}
	}
	if (optind != argc)
		return cli_usage_error("unlock ", "unexpected argument '%s'", argv[optind]);
	if (keep && !rotate)
		return cli_usage_error("unlock ", "--keep and --touch go with --rotate-recovery-key");
	if ((rc = cli_connect(&c)) != 0)
		return rc;
	ui.ud = (void *)vault_name(c);
	if (pin_fd >= 0) {
		/* The caller gave the secret: one protector, and nobody to ask which token or for another share. */
		if ((rc = cli_get_secret(pin_fd, NULL, &secret, &secret_len)) != 0)
			goto out;
		ui.secret = (const uint8_t *)secret;
		ui.secret_len = secret_len;
		ui.once = 1;
		ui.choose = NULL;
	}
	r = ts_client_unlock_interactive(c, cli.vault, which, &ui, &needed);
	if (r < 0)
		rc = cli_report(c, r);
	else if (needed > 0) {
		/* A share is not an unlocked vault: say so, and exit as for a locked vault. */
		printf("Share accepted; vault '%s' needs %u more to unlock.\n", vault_name(c), needed);
		rc = cli_exit_code(-TS_E_LOCKED);
	} else {
		printf("Vault '%s' unlocked.\n", vault_name(c));
		if (rotate)
			rc = cli_rotate_used_recovery_key(c, keep, keep_len);
	}
out:
	if (secret)
		ts_secret_free(secret, CLI_SECRET_ALLOC);
	ts_client_free(c);
	return rc;
}

/* ---- lock ---------------------------------------------------------------------------------- */

static const char lock_help[] =
	"Usage: tokenseal lock\n"
	"Lock a vault: the daemon wipes its keys from memory; unwrap fails until 'unlock'.\n\n";

int lock_main(int argc, char **argv)
{
	ts_client *c = NULL;
	int r, rc;

	if ((rc = simple_opts(argc, argv, lock_help, "lock ")) != 0)
		return rc < 0 ? EXIT_OK : rc;
	if (optind != argc)
		return cli_usage_error("lock ", "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_connect(&c)) != 0)
		return rc;
	if ((r = ts_client_lock(c, cli.vault)) < 0)
		rc = cli_report(c, r);
	else
		printf("Vault '%s' locked.\n", vault_name(c));
	ts_client_free(c);
	return rc;
}

/* ---- rotate -------------------------------------------------------------------------------- */

static const char rotate_help[] =
	"Usage: tokenseal rotate [--retire-below N]\n"
	"Add a new root key version; new blobs use it, older blobs still unwrap (rewrap them\n"
	"with 'tokenseal rewrap'). The vault must be unlocked; no token is needed.\n\n"
	"      --retire-below N  refuse blobs of root key versions below N from now on\n";

int rotate_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "retire-below", required_argument, NULL, OPT_RETIRE }, CLI_COMMON_OPTIONS, { 0 }
	};
	struct cli_kvlist o = { 0 };
	ts_client *c = NULL;
	uint32_t version = 0;
	int ch, r, rc = 0;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_RETIRE:
			if (!*optarg || strspn(optarg, "0123456789") != strlen(optarg) || strlen(optarg) > 10) {
				rc = cli_usage_error("rotate ", "--retire-below needs a version number");
				goto out;
			}
			if ((rc = cli_kv_set(&o, "retire_below", optarg)) != 0)
				goto out;
			break;
		default:
			if ((rc = cli_common_opt(ch, "rotate ", rotate_help, vault_help)) != 0)
				goto out;
		}
	}
	if (optind != argc) {
		rc = cli_usage_error("rotate ", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if ((rc = cli_connect(&c)) != 0)
		goto out;
	if ((r = ts_client_rotate(c, cli.vault, o.kv, o.n, &version)) < 0)
		rc = cli_report(c, r);
	else {
		printf("Vault '%s': root key version %u is now current.\n", vault_name(c), version);
		if (o.n)
			fprintf(stderr, "Blobs and age files of the retired versions no longer open. age recipients of those "
			        "versions still encrypt, to files nobody can open: replace them with 'tokenseal "
			        "age-recipient'.\n");
	}
out:
	cli_kv_free(&o);
	ts_client_free(c);
	return rc < 0 ? EXIT_OK : rc;
}

/* ---- enroll -------------------------------------------------------------------------------- */

static const char enroll_help[] =
	"Usage: tokenseal enroll TYPE [--pin-fd N] [--option KEY=VALUE]...\n"
	"       tokenseal enroll recovery\n"
	"       tokenseal enroll fido2 [--no-pin] [--no-touch]\n"
	"       tokenseal enroll tpm2 [--pin] [--pcrs BANK:LIST] [--replace ID]\n"
	"       tokenseal enroll pkcs11 --uri URI [--public-key FILE] [--oaep-hash sha256|sha1]\n"
	"       tokenseal enroll tang --url URL [--url URL]... (--thp THP|--trust-first-use) [--replace ID]\n"
	"Add a protector to an unlocked vault. 'recovery' prints a new recovery key once.\n"
	"A PIN (the token's, or the new TPM PIN) is asked for on the terminal without echo.\n\n"
	"      --pin-fd N         read the PIN from file descriptor N (one line) instead\n"
	"  -o, --option K=V       backend option, passed as is (repeatable)\n"
	"  fido2:  --no-pin       do not require the PIN to unlock (option pin=no)\n"
	"          --no-touch     do not require a touch to unlock (option up=no)\n"
	"          With several security keys plugged in, touch the one to enroll when asked.\n"
	"  tpm2:   --pin          protect with a new PIN, asked twice (option pin=yes)\n"
	"          --pcrs SPEC    bind to PCR values, e.g. sha256:7 (option pcrs=SPEC)\n"
	"          --replace ID   re-seal: the new protector replaces tpm2 protector ID in one\n"
	"                         saved change (option replace=ID); --pcrs and --pin default\n"
	"                         to ID's, e.g. after a firmware update changed the PCRs\n"
	"  pkcs11: --uri URI      RFC 7512 pkcs11: URI of the key (option uri=URI)\n"
	"          --public-key FILE  enroll offline from the key's PEM public key or\n"
	"                         certificate (option public-key); the URI must name the token\n"
	"                         and the key; no PIN is asked unless --pin-fd is given; the\n"
	"                         token must be present to show it can use the key\n"
	"          --oaep-hash H  RSA-OAEP hash, sha256 or sha1 (option oaep-hash=H)\n"
	"  tang:   --url URL      a Tang server, http:// or https:// (repeatable: any one of\n"
	"                         them opens the protector; option url=\"URL URL...\")\n"
	"          --thp THP      the SHA-256 thumbprint of the server's signing key, as\n"
	"                         tang-show-keys prints it on the server: once for all servers\n"
	"                         or once per --url, in order (option thp=)\n"
	"          --trust-first-use  trust the keys the servers advertise now instead (shown by\n"
	"                         'tokenseal status'; option trust-first-use=yes)\n"
	"          --replace ID   rebind: the new protector replaces tang protector ID (e.g. after\n"
	"                         the server's keys were rotated); --url defaults to ID's\n"
	"          A tang protector is refused unless the vault needs another protector too\n"
	"          (tokenseal create --threshold 2; policy [tang] alone, tokenseal-policy(5)),\n"
	"          and unless each URL's server is on the policy's [tang] servers (none by\n"
	"          default).\n";

/* Is key among the options already? */
static int kv_has(const struct cli_kvlist *o, const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->kv[i].key, key) == 0)
			return 1;
	return 0;
}

/*
 * --replace ID: the protector must exist and be of the type enrolled (tpm2 or
 * tang); a TPM one's PCR selection and PIN setting carry over unless given
 * anew, so a re-seal after a PCR change is "the same protector, sealed to
 * today's values"; a Tang one's servers, so a rebind after a key rotation
 * needs only the new thumbprint.
 */
static int replace_inherit(ts_client *c, struct cli_kvlist *o, const char *type, const char *id, ts_vault_info **ret_v)
{
	const ts_protector_info *p = NULL;
	const char *pcrs, *pin;
	int r;

	if ((r = ts_client_vault_info(c, cli.vault, ret_v)) < 0)
		return cli_report(c, r);
	for (size_t i = 0; i < (*ret_v)->n_protectors; i++)
		if (strcmp((*ret_v)->protectors[i].id, id) == 0)
			p = &(*ret_v)->protectors[i];
	if (!p)
		return cli_report(c, ts_client_fail(c, -TS_E_NO_SUCH_PROTECTOR, "vault '%s' has no protector '%s'",
		                                    vault_name(c), id));
	if (strcmp(p->type, type) != 0)
		return cli_usage_error("enroll ", "--replace %s: that protector is of type %s, not %s", id, p->type, type);
	if (strcmp(type, "tang") == 0 && !kv_has(o, "url")) {
		/* The option list keeps a pointer to its value: this outlives the call (the CLI enrolls once). */
		static char urls[8 * 260];
		char key[16];
		size_t len = 0;
		const char *u;

		for (int i = 1; i <= 8 && len < sizeof(urls); i++) {
			snprintf(key, sizeof(key), "url%d", i);
			if ((u = ts_protector_info_fact(p, key)) != NULL)
				len += (size_t)snprintf(urls + len, sizeof(urls) - len, "%s%s", len ? " " : "", u);
		}
		if (len && len < sizeof(urls) && (r = cli_kv_set(o, "url", urls)) != 0)
			return r;
	}
	pcrs = ts_protector_info_fact(p, "pcrs");
	pin = ts_protector_info_fact(p, "pin");
	if (pcrs && strcmp(pcrs, "none") != 0 && !kv_has(o, "pcrs") && (r = cli_kv_set(o, "pcrs", pcrs)) != 0)
		return r;
	if (pin && strcmp(pin, "yes") == 0 && !kv_has(o, "pin") && (r = cli_kv_set(o, "pin", "yes")) != 0)
		return r;
	return cli_kv_set(o, "replace", id);
}

/* The PEM text of --public-key, checked to be text: it travels as a D-Bus string. */
static int read_public_key(const char *path, uint8_t **ret, size_t *ret_len)
{
	int rc;

	if ((rc = cli_read_path(path, CLI_PUBKEY_MAX, ret, ret_len, "the --public-key file")) != 0)
		return rc;
	for (size_t i = 0; i < *ret_len; i++)
		if ((*ret)[i] == 0 || (*ret)[i] > 0x7e || ((*ret)[i] < 0x20 && !strchr("\r\n\t", (*ret)[i]))) {
			cli_err("%s is not a PEM file (public key or certificate)", path);
			ts_secret_free(*ret, CLI_PUBKEY_MAX + 1);
			*ret = NULL;
			return EXIT_USAGE;
		}
	return 0;
}

int enroll_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin-fd", required_argument, NULL, OPT_PIN_FD }, { "option", required_argument, NULL, 'o' },
		{ "no-pin", no_argument, NULL, OPT_NO_PIN },
		{ "no-touch", no_argument, NULL, OPT_NO_TOUCH }, { "pin", no_argument, NULL, OPT_PIN },
		{ "pcrs", required_argument, NULL, OPT_PCRS }, { "uri", required_argument, NULL, OPT_URI },
		{ "public-key", required_argument, NULL, OPT_PUBLIC_KEY },
		{ "oaep-hash", required_argument, NULL, OPT_OAEP_HASH }, { "replace", required_argument, NULL, OPT_REPLACE },
		{ "url", required_argument, NULL, OPT_URL }, { "thp", required_argument, NULL, OPT_THP },
		{ "trust-first-use", no_argument, NULL, OPT_TOFU },
		CLI_COMMON_OPTIONS, { 0 }
	};
	struct cli_kvlist o = { 0 };
	const char *type, *pcrs = NULL, *uri = NULL, *pin_opt, *pubkey_file = NULL;
	const char *oaep_hash = NULL, *replace = NULL;
	int no_pin = 0, no_touch = 0, tpm_pin = 0, tofu = 0, pin_fd = -1, ask = 0, ch, r, rc = 0;
	char urls[1024] = "", thps[512] = "";
	ts_client *c = NULL;
	ts_vault_info *v = NULL;
	uint8_t *pubkey = NULL;
	char *secret = NULL, *again = NULL, *id = NULL, *newkey = NULL, prompt[200], msg[200];
	size_t secret_len = 0, again_len = 0, newkey_len = 0, pubkey_len = 0;

	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_PIN_FD:
			if ((pin_fd = cli_parse_fd(optarg)) < 0) {
				rc = cli_usage_error("enroll ", "--pin-fd needs a file descriptor number");
				goto out;
			}
			break;
		case 'o':
			if ((rc = cli_kv_add(&o, optarg, "option")) != 0)
				goto out;
			break;
		case OPT_NO_PIN: no_pin = 1; break;
		case OPT_NO_TOUCH: no_touch = 1; break;
		case OPT_PIN: tpm_pin = 1; break;
		case OPT_PCRS: pcrs = optarg; break;
		case OPT_URI: uri = optarg; break;
		case OPT_PUBLIC_KEY: pubkey_file = optarg; break;
		case OPT_OAEP_HASH: oaep_hash = optarg; break;
		case OPT_REPLACE: replace = optarg; break;
		case OPT_URL:
		case OPT_THP: {
			char *l = ch == OPT_URL ? urls : thps;
			size_t cap = ch == OPT_URL ? sizeof(urls) : sizeof(thps), len = strlen(l);

			if (!*optarg || strchr(optarg, ' ') ||
			    (size_t)snprintf(l + len, cap - len, "%s%s", len ? " " : "", optarg) >= cap - len) {
				rc = cli_usage_error("enroll ", "--%s: empty, with a space, or too many", ch == OPT_URL ? "url" : "thp");
				goto out;
			}
			break;
		}
		case OPT_TOFU: tofu = 1; break;
		default:
			if ((rc = cli_common_opt(ch, "enroll ", enroll_help, vault_help)) != 0)
				goto out;
		}
	}
	if (optind + 1 != argc) {
		rc = cli_usage_error("enroll ", "%s", optind == argc ? "which TYPE of protector?" : "unexpected argument");
		goto out;
	}
	type = argv[optind];
	/* The sugar flags belong to one type each: a flag for another type is a mistake worth stopping. */
	if ((no_pin || no_touch) && strcmp(type, "fido2") != 0) {
		rc = cli_usage_error("enroll ", "--no-pin and --no-touch are for fido2");
		goto out;
	}
	if ((tpm_pin || pcrs) && strcmp(type, "tpm2") != 0) {
		rc = cli_usage_error("enroll ", "--pin and --pcrs are for tpm2");
		goto out;
	}
	if (replace && strcmp(type, "tpm2") != 0 && strcmp(type, "tang") != 0) {
		rc = cli_usage_error("enroll ", "--replace is for tpm2 and tang");
		goto out;
	}
	if ((urls[0] || thps[0] || tofu) && strcmp(type, "tang") != 0) {
		rc = cli_usage_error("enroll ", "--url, --thp and --trust-first-use are for tang");
		goto out;
	}
	if (strcmp(type, "tang") == 0 && thps[0] && tofu) {
		rc = cli_usage_error("enroll ", "tang takes --thp or --trust-first-use, not both");
		goto out;
	}
	if (strcmp(type, "tang") == 0 && !thps[0] && !tofu && !kv_has(&o, "thp") && !kv_has(&o, "trust-first-use")) {
		rc = cli_usage_error("enroll ", "tang needs --thp THP (tang-show-keys on the server) or, to trust what "
		                     "the server advertises now, --trust-first-use");
		goto out;
	}
	if ((uri || pubkey_file || oaep_hash) && strcmp(type, "pkcs11") != 0) {
		rc = cli_usage_error("enroll ", "--uri, --public-key and --oaep-hash are for pkcs11");
		goto out;
	}
	if (oaep_hash && strcmp(oaep_hash, "sha256") != 0 && strcmp(oaep_hash, "sha1") != 0) {
		rc = cli_usage_error("enroll ", "--oaep-hash is sha256 or sha1");
		goto out;
	}
	if (replace && !*replace) {
		rc = cli_usage_error("enroll ", "--replace needs a protector ID (see 'tokenseal status')");
		goto out;
	}
	if (pubkey_file && (rc = read_public_key(pubkey_file, &pubkey, &pubkey_len)) != 0)
		goto out;
	if ((no_pin && (rc = cli_kv_set(&o, "pin", "no"))) ||
	    (no_touch && (rc = cli_kv_set(&o, "up", "no"))) || (tpm_pin && (rc = cli_kv_set(&o, "pin", "yes"))) ||
	    (pcrs && (rc = cli_kv_set(&o, "pcrs", pcrs))) || (uri && (rc = cli_kv_set(&o, "uri", uri))) ||
	    (pubkey && (rc = cli_kv_set(&o, "public-key", (const char *)pubkey))) ||
	    (oaep_hash && (rc = cli_kv_set(&o, "oaep-hash", oaep_hash))) ||
	    (urls[0] && (rc = cli_kv_set(&o, "url", urls))) || (thps[0] && (rc = cli_kv_set(&o, "thp", thps))) ||
	    (tofu && (rc = cli_kv_set(&o, "trust-first-use", "yes"))))
		goto out;
	for (size_t i = 0; i < o.n; i++)
		for (size_t j = i + 1; j < o.n; j++)
			if (strcmp(o.kv[i].key, o.kv[j].key) == 0) {
				rc = cli_usage_error("enroll ", "option '%s' given twice", o.kv[i].key);
				goto out;
			}
	if (replace) {
		if ((rc = cli_connect(&c)) != 0 || (rc = replace_inherit(c, &o, type, replace, &v)) != 0)
			goto out;
	}

	/* Which secret goes in: the token's PIN (fido2 unless pin=no, pkcs11) or a new TPM PIN. */
	pin_opt = NULL;
	for (size_t i = 0; i < o.n; i++)
		if (strcmp(o.kv[i].key, "pin") == 0)
			pin_opt = o.kv[i].value;
	if (strcmp(type, "fido2") == 0) {
		ask = !pin_opt || strcmp(pin_opt, "no") != 0;
		snprintf(prompt, sizeof(prompt), "PIN of the security key: ");
	} else if (strcmp(type, "pkcs11") == 0) {
		/* An offline enrollment needs no token, so no PIN unless one is given. */
		ask = !kv_has(&o, "public-key");
		snprintf(prompt, sizeof(prompt), "PIN of the PKCS#11 token: ");
	} else if (strcmp(type, "tpm2") == 0) {
		ask = pin_opt && strcmp(pin_opt, "yes") == 0;
		snprintf(prompt, sizeof(prompt), "New TPM PIN for vault '%s': ", cli.vault ? cli.vault : "(yours)");
	}
	if (pin_fd >= 0 || ask) {
		if ((rc = cli_get_secret(pin_fd, prompt, &secret, &secret_len)) != 0)
			goto out;
		/* A new PIN typed blind is typed twice. */
		if (pin_fd < 0 && strcmp(type, "tpm2") == 0) {
			if ((rc = cli_get_secret(-1, "Repeat the new PIN: ", &again, &again_len)) != 0)
				goto out;
			if (again_len != secret_len || sodium_memcmp(again, secret, secret_len) != 0) {
				cli_err("the two PINs differ; nothing enrolled");
				rc = EXIT_USAGE;
				goto out;
			}
		}
	}
	if (!c && (rc = cli_connect(&c)) != 0)
		goto out;
	if (strcmp(type, "fido2") == 0)
		fprintf(stderr, "Touch your security key when it blinks (with several plugged in, the one to enroll)...\n");
	if ((r = ts_client_add_protector(c, cli.vault, type, o.kv, o.n, (const uint8_t *)secret, secret_len, &id,
	                                 &newkey, &newkey_len)) < 0) {
		rc = cli_report(c, r);
		goto out;
	}
	printf("Enrolled protector %s (%s) in vault '%s'.\n", id, type, vault_name(c));
	if (replace)
		printf("Protector %s replaced and removed.\n", replace);
	if (newkey) {
		snprintf(msg, sizeof(msg), "The new recovery key (%s) is", id);
		show_recovery_key(newkey, msg);
	}
out:
	if (secret)
		ts_secret_free(secret, CLI_SECRET_ALLOC);
	if (again)
		ts_secret_free(again, CLI_SECRET_ALLOC);
	if (newkey)
		ts_secret_free(newkey, newkey_len + 1);
	if (pubkey)
		ts_secret_free(pubkey, CLI_PUBKEY_MAX + 1);
	ts_vault_info_free(v);
	free(id);
	cli_kv_free(&o);
	ts_client_free(c);
	return rc < 0 ? EXIT_OK : rc;
}

