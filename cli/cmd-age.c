/* cmd-age.c — tokenseal age-recipient and age-identity: the strings age-plugin-tokenseal reads. */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "lib/client-internal.h"
#include "core/age.h"

static const char common_help[] =
	"      --vault [OWNER:]NAME  the vault (or give it as VAULT; default: your user name)\n"
	"  -h, --help           this text\n";

static const char recipient_help[] =
	"Usage: tokenseal age-recipient [VAULT]\n"
	"Print the vault's age recipient (age1tokenseal1...) for 'age -r'. Anyone with it can\n"
	"encrypt to the vault, locked or not, on any machine; only the vault opens the files.\n"
	"The recipient is derived from the current root key, so the vault must be unlocked\n"
	"to print it; after 'tokenseal rotate' print it again (files made for an older key\n"
	"version open until that version is retired, never after).\n\n";

static const char identity_help[] =
	"Usage: tokenseal age-identity [VAULT]\n"
	"Print an age identity file for the vault, for 'age -d -i FILE'. It holds no secret,\n"
	"only which vault to ask: decrypting needs the vault unlocked by someone who may use it\n"
	"(age-plugin-tokenseal asks for the PIN through age when it is locked).\n\n";

/* --vault, --help and one optional VAULT argument. 0, -1 after --help, or an exit code. */
static int age_opts(int argc, char **argv, const char *help, const char *cmd)
{
	static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		if ((rc = cli_common_opt(ch, cmd, help, common_help)) != 0)
			return rc;
	if (optind < argc)
		cli.vault = argv[optind++];
	if (optind != argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

int age_recipient_main(int argc, char **argv)
{
	ts_client *c = NULL;
	ts_age_recipient rec;
	uint8_t id[TS_VAULT_ID_BYTES];
	char s[TS_AGE_STRING_MAX];
	int r, rc;

	if ((rc = age_opts(argc, argv, recipient_help, "age-recipient ")) != 0)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(&c)) != 0)
		return rc;
	r = ts_client_age_recipient(c, cli.vault, id, &rec.key_version, rec.public_key);
	if (r == -TS_E_LOCKED) {
		cli_err("%s: the recipient comes from the vault's root key; unlock it once "
		        "('tokenseal unlock'), then it can be used while locked", ts_client_last_error(c));
		rc = cli_exit_code(r);
	} else if (r < 0) {
		rc = cli_report(c, r);
	} else {
		memcpy(rec.vault_tag, id, TS_AGE_VAULT_TAG_BYTES);
		if (ts_age_recipient_encode(&rec, s) < 0) {
			cli_err("cannot encode the recipient of key version %u", rec.key_version);
			rc = EXIT_FAIL;
		} else {
			printf("%s\n", s);
		}
	}
	ts_client_free(c);
	return rc;
}

int age_identity_main(int argc, char **argv)
{
	ts_client *c = NULL;
	ts_vault_info *v = NULL;
	uint8_t id[TS_VAULT_ID_BYTES];
	char s[TS_AGE_STRING_MAX];
	size_t n = 0;
	int r, rc;

	if ((rc = age_opts(argc, argv, identity_help, "age-identity ")) != 0)
		return rc < 0 ? EXIT_OK : rc;
	if ((rc = cli_connect(&c)) != 0)
		return rc;
	if ((r = ts_client_vault_info(c, cli.vault, &v)) < 0) {
		rc = cli_report(c, r);
		goto out;
	}
	if (!v->id || sodium_hex2bin(id, sizeof(id), v->id, strlen(v->id), NULL, &n, NULL) != 0 || n != sizeof(id) ||
	    ts_age_identity_encode(id, s) < 0) {
		cli_err("tokensealed gave no usable vault id");
		rc = EXIT_FAIL;
		goto out;
	}
	printf("# age identity of tokenseal vault '%s' (owner uid %u, id %s).\n"
	       "# It holds no secret: it only names the vault. age-plugin-tokenseal asks tokensealed\n"
	       "# to open each file, which works only while the vault is unlocked and only for\n"
	       "# users who may use the vault.\n"
	       "%s\n",
	       v->name, v->owner, v->id, s);
out:
	ts_vault_info_free(v);
	ts_client_free(c);
	return rc;
}
