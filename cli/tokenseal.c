/* tokenseal.c — the tokenseal command: global options and the table of subcommands. */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <sodium.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *description;
} subcommands[] = {
	{ "status", status_main, "Show vaults: lock state, key versions, protectors" },
	{ "create", create_main, "Create a vault and print its recovery key once" },
	{ "unlock", unlock_main, "Unlock a vault with a token, PIN or recovery key" },
	{ "lock", lock_main, "Lock a vault (wipes its keys from the daemon's memory)" },
	{ "wrap", wrap_main, "Encrypt a data key (stdin) into a blob" },
	{ "unwrap", unwrap_main, "Decrypt a blob (binary or text form) back to the data key" },
	{ "rewrap", rewrap_main, "Re-encrypt a blob under the current root key" },
	{ "gen-key", gen_key_main, "Generate a random data key and its blob" },
	{ "rotate", rotate_main, "Add a new root key version, optionally retire old ones" },
	{ "enroll", enroll_main, "Add a protector (recovery, fido2, tpm2, pkcs11)" },
	{ "revoke", revoke_main, "Revoke a protector: replace the vault secret and root key" },
	{ "rekey", rekey_main, "The same as revoke (its older name)" },
	{ "escrow", escrow_main, "Escrow officers: keygen, set recipients, offline recover" },
	{ "policy", policy_main, "Show the effective system policy or check a policy file" },
	{ "pkcs11", pkcs11_main, "List PKCS#11 tokens and keys with their URIs (offline)" },
	{ "age-recipient", age_recipient_main, "Print the vault's age recipient (age -r)" },
	{ "age-identity", age_identity_main, "Print an age identity file naming the vault (no secret)" },
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: tokenseal [--bus ADDRESS|system|session] [--vault [OWNER:]NAME] [--json] COMMAND [ARGS]\n"
	        "Wrap and unwrap data keys with a vault whose root key is sealed to a hardware token.\n\n"
	        "Commands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-13s  %s\n", subcommands[i].name, subcommands[i].description);
	fprintf(f,
	        "\nOptions:\n"
	        "  --bus BUS      D-Bus to reach tokensealed on: system, session, or an address such as\n"
	        "                 unix:path=/run/... (default: $TOKENSEAL_BUS; without it, the private\n"
	        "                 socket /run/tokenseal/private or $TOKENSEAL_PRIVATE_SOCKET, then the system bus)\n"
	        "  --vault [OWNER:]NAME  vault to use (default: your user name); also accepted after COMMAND.\n"
	        "                 Vault names are per user: OWNER:NAME (a user name or uid) is another\n"
	        "                 user's vault, for root and callers polkit allows\n"
	        "  --json         machine-readable output (status, pkcs11 list)\n"
	        "  --help, --version\n"
	        "\n'tokenseal COMMAND --help' describes each command.\n"
	        "\nExit status:\n"
	        "  0 success             1 failure              2 usage error\n"
	        "  3 vault locked        4 access denied        5 no such vault\n"
	        "  6 authentication failed (wrong PIN, recovery key or token)\n"
	        "  7 token absent or timed out                  8 bad blob or context mismatch\n"
	        "  9 tokensealed not reachable                  10 refused by policy\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "vault", required_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ 0 }
	};
	struct rlimit no_core = { 0, 0 };
	int c;

	setlocale(LC_ALL, "");
	/* Plaintext keys and PINs pass through this process: no core dumps, no ptrace by peers. */
	(void)setrlimit(RLIMIT_CORE, &no_core);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* A closed output pipe is an error to report, not a reason to die mid-write. */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		cli_err("libsodium failed to initialise");
		return EXIT_FAIL;
	}

	/* "+": stop at the subcommand; its options are its own. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			cli.bus = optarg;
			break;
		case 'V':
			cli.vault = optarg;
			break;
		case 'j':
			cli.json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'v':
			printf("tokenseal 0.1\n");
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (strcmp(argv[optind], subcommands[i].name) == 0) {
			argv += optind;
			argc -= optind;
			optind = 0;   /* glibc: 0 re-initialises getopt for the subcommand */
			return subcommands[i].fn(argc, argv);
		}
	}
	cli_err("unknown command '%s'", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}
