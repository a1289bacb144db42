/* cmd-policy.c — tokenseal policy show|check, and tokenseal rekey (revocation that re-keys the vault). */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "lib/policy-client.h"
#include "../policy/policy.h"

static void policy_help(FILE *f)
{
	fprintf(f,
	        "Usage: tokenseal policy show [--policy-dir DIR]\n"
	        "       tokenseal policy check FILE\n\n"
	        "show   the effective policy: every key, its value and the FILE:LINE that set it\n"
	        "       (\"default\" for a built-in value); default DIR " TS_POLICY_DIR "\n"
	        "check  validate one policy file; errors are FILE:LINE: what\n");
}

static int show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = TS_POLICY_DIR;
	char err[TS_POLICY_MSG_MAX];
	const ts_policy_setting *s;
	ts_policy *p = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'h': policy_help(stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage_error("policy show ", "unexpected argument");
	if ((r = ts_policy_load_dir(dir, &p, err, sizeof(err))) < 0) {
		cli_err("%s", err[0] ? err : ts_strerror(r));
		return r == -TS_E_INVALID_ARGS ? EXIT_POLICY : cli_exit_code(r);
	}
	for (size_t i = 0; (s = ts_policy_setting_at(p, i)) != NULL; i++) {
		if (s->file)
			printf("[%s] %s = %s    # %s:%u\n", s->section, s->key, s->value, s->file, s->line);
		else
			printf("[%s] %s = %s    # default\n", s->section, s->key, s->value);
	}
	ts_policy_free(p);
	return EXIT_OK;
}

static int check(int argc, char **argv)
{
	char err[TS_POLICY_MSG_MAX];
	ts_policy *p = NULL;
	int r;

	if (argc != 2)
		return cli_usage_error("policy check ", "which FILE?");
	if ((r = ts_policy_load_file(argv[1], &p, err, sizeof(err))) < 0) {
		cli_err("%s", err[0] ? err : ts_strerror(r));
		return r == -TS_E_INVALID_ARGS ? EXIT_POLICY : cli_exit_code(r);
	}
	ts_policy_free(p);
	printf("%s: ok\n", argv[1]);
	return EXIT_OK;
}

int policy_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		policy_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	optind = 0;   /* glibc: re-initialise getopt for the sub-subcommand */
	if (strcmp(argv[1], "show") == 0)
		return show(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return check(argc - 1, argv + 1);
	return cli_usage_error("policy ", "unknown command '%s' (show, check)", argv[1]);
}

/* ---- tokenseal rekey ---------------------------------------------------------------------------- */

static void revoke_help(FILE *f, const char *name)
{
	fprintf(f,
	        "Usage: tokenseal %s ID [--keep ID=FILE]... [--touch ID]...\n"
	        "       tokenseal %s ID --record-only\n\n"
	        "Revoke protector ID for real: the vault secret and root key are replaced, so\n"
	        "an old copy of the vault file plus the revoked token opens nothing new.\n"
	        "Every other protector is kept only if its key can be re-derived now:\n"
	        "  --keep ID=FILE   its secret (recovery key, PIN) is in FILE\n"
	        "  --touch ID       a FIDO2 key: touch it when it blinks\n"
	        "A TPM protector without PIN is kept on its own. The others are dropped\n"
	        "(listed). Old blobs keep working until you run rotate --retire-below.\n"
	        "  --record-only    only delete ID's record, keeping the vault's keys: for a\n"
	        "                   token retired in good order, never for a lost or stolen\n"
	        "                   one (a copy of the old vault file still opens with it)\n"
	        "      --vault [OWNER:]NAME vault to use (default: your user name)\n"
	        "  -h, --help       this text\n"
	        "%s",
	        name, name,
	        strcmp(name, "rekey") == 0 ? "'tokenseal rekey' is the same command as 'tokenseal revoke'.\n" : "");
}

int cli_keep_secret(uint8_t *buf, size_t *len, size_t cap, char *arg, const char *cmd)
{
	char *eq = strchr(arg, '=');
	uint8_t *s = NULL;
	size_t slen = 0;
	int fd, rc;

	if (!eq || eq == arg)
		return cli_usage_error(cmd, "--keep ID=FILE");
	*eq = '\0';
	if ((fd = open(eq + 1, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("%s: %s", eq + 1, strerror(errno));
		return EXIT_FAIL;
	}
	rc = cli_read_fd(fd, 1024, &s, &slen, eq + 1);
	close(fd);
	if (rc != 0)
		return rc;
	while (slen > 0 && (s[slen - 1] == '\n' || s[slen - 1] == '\r'))
		slen--;
	if (memchr(s, '\n', slen) || *len + strlen(arg) + slen + 2 > cap) {
		ts_secret_free(s, 1024 + 1);
		return cli_usage_error(cmd, "secret of %s: one line, and all of them at most %zu bytes", arg, cap);
	}
	*len += (size_t)sprintf((char *)buf + *len, "%s ", arg);
	memcpy(buf + *len, s, slen);
	*len += slen;
	buf[(*len)++] = '\n';
	ts_secret_free(s, 1024 + 1);
	return 0;
}

int cli_keep_touch(uint8_t *buf, size_t *len, size_t cap, const char *arg, const char *cmd)
{
	if (*len + strlen(arg) + 1 > cap)
		return cli_usage_error(cmd, "too many protectors");
	*len += (size_t)sprintf((char *)buf + *len, "%s\n", arg);
	return 0;
}

/* tokenseal revoke (and its older name rekey): RevokeAndRekey, or RevokeProtector with --record-only. */
static int revoke_command(int argc, char **argv, const char *name)
{
	static const struct option opts[] = {
		{ "keep", required_argument, NULL, 'k' },
		{ "touch", required_argument, NULL, 't' },
		{ "record-only", no_argument, NULL, 'R' },
		{ "vault", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	_ts_cleanup_secure_ uint8_t *buf = NULL;
	char **kept = NULL, **dropped = NULL, cmd[16];
	size_t len = 0, cap = TS_CLIENT_SECRET_MAX;
	ts_client *cl = NULL;
	int c, r, rc = EXIT_OK, record_only = 0, n_keep = 0;

	snprintf(cmd, sizeof(cmd), "%s ", name);
	if ((buf = ts_secure_alloc(cap)) == NULL) {
		cli_err("out of secure memory");
		return EXIT_FAIL;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if ((rc = cli_keep_secret(buf, &len, cap, optarg, cmd)) != 0)
				return rc;
			n_keep++;
			break;
		case 't':
			if ((rc = cli_keep_touch(buf, &len, cap, optarg, cmd)) != 0)
				return rc;
			n_keep++;
			break;
		case 'R': record_only = 1; break;
		case 'v': cli.vault = optarg; break;
		case 'h': revoke_help(stdout, name); return EXIT_OK;
		default: return cli_usage_error(cmd, "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(cmd, "%s", optind == argc ? "which protector ID?" : "unexpected argument");
	if (record_only && n_keep)
		return cli_usage_error(cmd, "--record-only keeps every other protector as it is: no --keep or --touch");
	if ((rc = cli_connect(&cl)) != 0)
		return rc;
	if (record_only) {
		if ((r = ts_client_revoke(cl, cli.vault, argv[optind])) < 0)
			rc = cli_report(cl, r);
		else
			printf("Protector %s removed; the vault's keys are unchanged (--record-only).\n", argv[optind]);
	} else if ((r = ts_client_revoke_rekey(cl, cli.vault, argv[optind], buf, len, &kept, &dropped)) < 0) {
		rc = cli_report(cl, r);
	} else {
		printf("Protector %s revoked; the vault secret and root key were replaced.\n", argv[optind]);
		for (size_t i = 0; kept[i]; i++)
			printf("  kept:    %s\n", kept[i]);
		for (size_t i = 0; dropped[i]; i++)
			printf("  dropped: %s (its key was not available; enroll it again)\n", dropped[i]);
	}
	ts_strv_free(kept);
	ts_strv_free(dropped);
	ts_client_free(cl);
	return rc;
}

int revoke_main(int argc, char **argv)
{
	return revoke_command(argc, argv, "revoke");
}

int rekey_main(int argc, char **argv)
{
	return revoke_command(argc, argv, "rekey");
}

/* ---- tokenseal status: the issue-6 lines ------------------------------------------------------ */

void cli_status_policy(ts_client *c, const char *vault, int locked)
{
	ts_vault_policy_info *p = NULL;

	/* An older daemon without these properties: say nothing rather than fail the whole status. */
	if (ts_client_vault_policy_info(c, vault, &p) < 0)
		return;
	if (locked)
		printf("  to unlock:    %u more protector(s)%s\n", p->shares_needed,
		       p->shares_needed > 1 ? " (k-of-n: give them one after another)" : "");
	if (p->compliant)
		printf("  policy:       compliant\n");
	else {
		/* The daemon's message starts "out of policy: " itself; say it once. */
		const char *msg = p->policy_message;
		if (strncmp(msg, "out of policy: ", 15) == 0)
			msg += 15;
		printf("  policy:       OUT OF POLICY: %s\n", msg);
	}
	if (p->n_escrow == 0) {
		printf("  escrow:       none (only the protectors above can open this vault)\n");
	} else {
		printf("  escrow:       %zu officer(s) can also open this vault:\n", p->n_escrow);
		for (size_t i = 0; i < p->n_escrow; i++)
			printf("    %s  %s\n", p->escrow_fp[i], p->escrow_label[i][0] ? p->escrow_label[i] : "(no label)");
	}
	ts_vault_policy_info_free(p);
}
