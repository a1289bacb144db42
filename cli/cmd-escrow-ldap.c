/* cmd-escrow-ldap.c — tokenseal escrow publish, and recover --from-ldap: escrow records in an LDAP directory (libldap). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldap.h>
#include <sodium.h>

#include "cli.h"
#include "escrow-ldap.h"
#include "core/buf.h"
#include "core/vault.h"
#include "protectors/ldap_record.h"
#include "store.h"

#define LDAP_TIMEOUT_S 10
#define MACHINE_ID_MAX TS_LDAP_MACHINE_ID_MAX
#define PUBLISH_MAX 4096      /* vaults in one run */

int cli_ldap_machine_id(const char *given, char out[65])
{
	int r;

	if (given) {
		if (!ts_machine_id_valid(given))
			return cli_usage_error("escrow ", "--machine-id: letters, digits, '-' and '_' only (at most %d)",
			                       MACHINE_ID_MAX);
		snprintf(out, MACHINE_ID_MAX + 1, "%s", given);
		return 0;
	}
	if ((r = ts_machine_id_read("/etc/machine-id", out)) < 0) {
		cli_err(r == -TS_E_IO ? "cannot read /etc/machine-id; give --machine-id" :
		        "/etc/machine-id is not a machine id; give --machine-id");
		return EXIT_FAIL;
	}
	return 0;
}

void cli_ldap_close(LDAP *ld)
{
	ts_ldap_close(ld);
}

/* A file option given as a path that can be read now (libldap would only say "connect error" later). */
static int file_option(const char *opt, const char *path)
{
	if (path && access(path, R_OK) < 0) {
		cli_err("%s %s: %s", opt, path, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

/* The password file's first line (what follows, a comment say, is not sent), into secure memory. */
static int read_password(const char *path, uint8_t **pw, size_t *pw_len)
{
	int rc;

	if ((rc = cli_read_path(path, TS_LDAP_PASSWORD_MAX, pw, pw_len, "the password file")) != 0)
		return rc;
	*pw_len = ts_ldap_first_line(*pw, *pw_len);
	return 0;
}

int cli_ldap_open(const struct cli_ldap_opts *o, LDAP **ret)
{
	ts_ldap_conf c = { .uri = o->uri, .base = o->base, .bind_dn = o->bind_dn, .ca_file = o->ca_file,
	                   .cert_file = o->cert_file, .key_file = o->key_file };
	uint8_t *pw = NULL;
	size_t pw_len = 0;
	char err[768];
	int rc, r;

	*ret = NULL;
	/* The configuration first (a password file named is not read for a command that cannot run). */
	c.password = o->password_file ? (const uint8_t *)"" : NULL;
	if (ts_ldap_conf_check(&c, err, sizeof(err)) < 0)
		return cli_usage_error("escrow ", "%s", err);
	if ((rc = file_option("--ca-file", o->ca_file)) != 0 || (rc = file_option("--cert-file", o->cert_file)) != 0 ||
	    (rc = file_option("--key-file", o->key_file)) != 0)
		return rc;
	if (o->password_file) {
		if ((rc = read_password(o->password_file, &pw, &pw_len)) != 0)
			return rc;
		c.password = pw;
		c.password_len = pw_len;
	}
	r = ts_ldap_open(&c, ret, err, sizeof(err));
	ts_secret_free(pw, TS_LDAP_PASSWORD_MAX + 1);
	if (r < 0) {
		cli_err("%s", err);
		return r == -TS_E_NO_DAEMON ? EXIT_NO_DAEMON : r == -TS_E_ACCESS_DENIED ? EXIT_DENIED :
		       r == -TS_E_INVALID_ARGS ? EXIT_USAGE : EXIT_FAIL;
	}
	return 0;
}

/* The one value of attr in entry e as a string (escaped for a terminal) into out; "" when absent or several. */
static void one_text(LDAP *ld, LDAPMessage *e, const char *attr, char *out, size_t cap)
{
	_ts_cleanup_buf_ ts_buf v = { 0 };

	out[0] = '\0';
	if (ts_ldap_one_value(ld, e, attr, &v) == 0)
		ts_ldap_printable((const char *)v.data, v.len, out, cap);
}

/* A GeneralizedTime (YYYYMMDDHHMMSS[.f]Z) as "YYYY-MM-DD HH:MM:SS UTC"; anything else shown escaped, as is. */
static void show_time(const char *t, char *out, size_t cap)
{
	if (strlen(t) >= 15 && strspn(t, "0123456789") == 14 && t[strlen(t) - 1] == 'Z')
		snprintf(out, cap, "%.4s-%.2s-%.2s %.2s:%.2s:%.2s UTC", t, t + 4, t + 6, t + 8, t + 10, t + 12);
	else
		snprintf(out, cap, "%s", t[0] ? t : "(the directory does not say)");
}

int cli_ldap_fetch(LDAP *ld, const char *base, const char *vault_id_hex, const char *machine, ts_buf *file,
                   struct cli_ldap_record *rec)
{
	char *attrs[] = { "tokensealVaultFile", "tokensealVaultId", "tokensealMachineId", "modifyTimestamp",
	                  "modifiersName", NULL };
	char id[2 * TS_VAULT_ID_BYTES + 8], mid[MACHINE_ID_MAX + 8], when[64];
	LDAPMessage *res = NULL, *e;
	struct timeval tv = { LDAP_TIMEOUT_S, 0 };
	int r, n;

	memset(rec, 0, sizeof(*rec));
	if (!ts_machine_id_valid(machine) || (size_t)snprintf(rec->dn, sizeof(rec->dn), "cn=%s.%s,%s", machine, vault_id_hex,
	                                                   base) >= sizeof(rec->dn)) {
		cli_err("--base is too long");
		return EXIT_USAGE;
	}
	/*
	 * Exactly the entry this machine's publish writes (its name is what the
	 * directory's access control protects), read alone: never a search that
	 * another machine's entry could answer.
	 */
	r = ldap_search_ext_s(ld, rec->dn, LDAP_SCOPE_BASE, "(objectClass=tokensealEscrowRecord)", attrs, 0, NULL, NULL,
	                      &tv, 2, &res);
	if (r == LDAP_NO_SUCH_OBJECT) {
		cli_err("no escrow record of vault %s of machine %s: %s does not exist", vault_id_hex, machine, rec->dn);
		ldap_msgfree(res);
		return EXIT_NO_VAULT;
	}
	if (r != LDAP_SUCCESS) {
		cli_err("read %s: %s", rec->dn, ldap_err2string(r));
		ldap_msgfree(res);
		return r == LDAP_SERVER_DOWN || r == LDAP_TIMEOUT ? EXIT_NO_DAEMON : EXIT_FAIL;
	}
	if ((n = ldap_count_entries(ld, res)) != 1 || (e = ldap_first_entry(ld, res)) == NULL) {
		cli_err("%s is not an escrow record", rec->dn);
		ldap_msgfree(res);
		return EXIT_NO_VAULT;
	}
	one_text(ld, e, "tokensealVaultId", id, sizeof(id));
	one_text(ld, e, "tokensealMachineId", mid, sizeof(mid));
	if (strcasecmp(id, vault_id_hex) != 0 || strcmp(mid, machine) != 0) {
		cli_err("the escrow record %s names vault '%s' of machine '%s'; refused", rec->dn, id, mid);
		ldap_msgfree(res);
		return EXIT_FAIL;
	}
	one_text(ld, e, "modifyTimestamp", when, sizeof(when));
	show_time(when, rec->modified, sizeof(rec->modified));
	one_text(ld, e, "modifiersName", rec->modifier, sizeof(rec->modifier));
	if (!rec->modifier[0])
		snprintf(rec->modifier, sizeof(rec->modifier), "(the directory does not say)");
	r = ts_ldap_one_value(ld, e, "tokensealVaultFile", file);
	ldap_msgfree(res);
	if (r < 0 || file->len == 0 || file->len > TS_VAULT_FILE_MAX) {
		cli_err("the escrow record %s has no single vault file", rec->dn);
		return EXIT_FAIL;
	}
	return 0;
}

/* ---- publish ------------------------------------------------------------------------------- */

struct published {
	char ids[PUBLISH_MAX][2 * TS_VAULT_ID_BYTES + 1];
	size_t n;
};

struct run {
	LDAP *ld;
	const char *base, *machine, *state_dir;
	struct published *seen;
	unsigned written, unchanged, skipped, failed;
	uint32_t owner;
};

static int publish_one(struct run *run, const char *dir, const char *name)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	ts_ldap_put_info info;
	char err[1024];
	int r;

	/* Not a secret (it is what gets published): read as the daemon reads it, bounded, into plain memory. */
	if ((r = ts_store_load(dir, name, &file)) < 0) {
		cli_err("%s/%s.vault: %s; not published", dir, name, ts_strerror(r));
		run->failed++;
		return 0;
	}
	r = ts_ldap_put(run->ld, run->base, run->machine, file.data, file.len, 1, &info, err, sizeof(err));
	if (info.id_hex[0] && run->seen->n < PUBLISH_MAX)
		memcpy(run->seen->ids[run->seen->n++], info.id_hex, sizeof(info.id_hex));
	switch (r) {
	case TS_LDAP_PUT_WRITTEN:
		printf("published %s (uid %u, generation %llu, %zu officer(s), %u needed): %s, read back and verified\n",
		       info.name, info.owner, (unsigned long long)info.generation, info.n_escrow, info.escrow_threshold,
		       info.dn);
		run->written++;
		return 0;
	case TS_LDAP_PUT_UNCHANGED:
		printf("unchanged %s (uid %u, generation %llu): %s\n", info.name, info.owner,
		       (unsigned long long)info.generation, info.dn);
		run->unchanged++;
		return 0;
	case TS_LDAP_PUT_NEWER:
		/* The daemon ([escrow] publish) wrote a later save while this run read the file: its record stands. */
		printf("unchanged %s (uid %u): %s holds generation %llu, later than this file's; left alone\n", info.name,
		       info.owner, info.dn, (unsigned long long)info.generation);
		run->unchanged++;
		return 0;
	case TS_LDAP_PUT_NO_ESCROW:
		printf("skipped %s (uid %u): no escrow recipients\n", info.name, info.owner);
		run->skipped++;
		return 0;
	}
	if (info.id_hex[0])
		cli_err("%s (uid %u): %s", info.name, info.owner, err);
	else
		cli_err("%s/%s.vault: %s; not published", dir, name, err);
	run->failed++;
	/* The directory gone: the rest would fail the same way. */
	return r == -TS_E_NO_DAEMON ? -1 : 0;
}

/* Each STATE/UID/NAME.vault (read only: a running daemon's temp files are left alone). */
static int each_owner(void *ud, uint32_t owner)
{
	struct run *run = ud;
	char dir[4096];
	struct dirent *de;
	DIR *d;
	int r = 0;

	/* An owner's directory unread is a failure: its vaults would otherwise look gone, and be pruned. */
	errno = 0;
	if (ts_store_owner_dir(run->state_dir, owner, dir, sizeof(dir)) < 0 || (d = opendir(dir)) == NULL) {
		cli_err("%s/%u: %s; that owner's vaults not published, nothing removed", run->state_dir, owner,
		        strerror(errno ? errno : EINVAL));
		run->failed++;
		return 0;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (n <= 6 || strcmp(de->d_name + n - 6, ".vault") != 0 || de->d_name[0] == '.')
			continue;
		de->d_name[n - 6] = '\0';
		r = ts_vault_name_valid(de->d_name) ? publish_one(run, dir, de->d_name) : 0;
	}
	closedir(d);
	return r;
}

/*
 * The vault id of an entry named cn=MACHINE.VAULT-ID (its first RDN) into id,
 * or -1 when the entry is not named so: entries are this machine's by their
 * name, which the directory's access control protects, not by what they say.
 */
static int record_id_of(const char *dn, const char *machine, char id[2 * TS_VAULT_ID_BYTES + 1])
{
	LDAPDN parsed = NULL;
	LDAPAVA *ava;
	size_t ml = strlen(machine);
	int r = -1;

	if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !parsed || !parsed[0] ||
	    !parsed[0][0] || parsed[0][1])
		goto out;
	ava = parsed[0][0];
	if (ava->la_attr.bv_len != 2 || strncasecmp(ava->la_attr.bv_val, "cn", 2) != 0 ||
	    ava->la_value.bv_len != ml + 1 + 2 * TS_VAULT_ID_BYTES || memcmp(ava->la_value.bv_val, machine, ml) != 0 ||
	    ava->la_value.bv_val[ml] != '.')
		goto out;
	memcpy(id, ava->la_value.bv_val + ml + 1, 2 * TS_VAULT_ID_BYTES);
	id[2 * TS_VAULT_ID_BYTES] = '\0';
	if (strspn(id, "0123456789abcdefABCDEF") == 2 * TS_VAULT_ID_BYTES)
		r = 0;
out:
	ldap_dnfree(parsed);
	return r;
}

/* Entries of this machine (named cn=MACHINE.*) whose vault is gone (deleted, or moved away): removed. */
static void prune(struct run *run)
{
	char filter[160], *attrs[] = { "cn", NULL };
	struct timeval tv = { LDAP_TIMEOUT_S, 0 };
	LDAPMessage *res = NULL, *e;
	int r;

	snprintf(filter, sizeof(filter), "(&(objectClass=tokensealEscrowRecord)(cn=%s.*))", run->machine);
	if ((r = ldap_search_ext_s(run->ld, run->base, LDAP_SCOPE_ONELEVEL, filter, attrs, 0, NULL, NULL, &tv, 0, &res)) !=
	    LDAP_SUCCESS) {
		cli_err("search under %s: %s; nothing removed", run->base, ldap_err2string(r));
		run->failed++;
		ldap_msgfree(res);
		return;
	}
	for (e = ldap_first_entry(run->ld, res); e; e = ldap_next_entry(run->ld, e)) {
		char *dn = ldap_get_dn(run->ld, e), id[2 * TS_VAULT_ID_BYTES + 1], shown[1024];
		int keep = 0;

		if (!dn)
			continue;
		ts_ldap_printable(dn, strlen(dn), shown, sizeof(shown));
		if (record_id_of(dn, run->machine, id) < 0) {
			ldap_memfree(dn);
			continue;   /* cn=MACHINE.something-else: not a record this command writes */
		}
		for (size_t i = 0; i < run->seen->n && !keep; i++)
			keep = strcasecmp(run->seen->ids[i], id) == 0;
		if (!keep) {
			if ((r = ldap_delete_ext_s(run->ld, dn, NULL, NULL)) == LDAP_SUCCESS)
				printf("removed %s (its vault is gone from this machine)\n", shown);
			else {
				cli_err("cannot remove %s: %s", shown, ldap_err2string(r));
				run->failed++;
			}
		}
		ldap_memfree(dn);
	}
	ldap_msgfree(res);
}

static const char publish_help[] =
	"Usage: tokenseal escrow publish --to-ldap URI --base DN [--state-dir DIR] [--machine-id ID]\n"
	"                 [--bind-dn DN --password-file FILE] [--ca-file FILE]\n"
	"                 [--cert-file FILE --key-file FILE]\n"
	"Publish each escrowed vault of this machine (every owner's, from DIR, default\n"
	"/var/lib/tokenseal; root only) to the directory: one entry cn=MACHINE.VAULT-ID under\n"
	"DN (schema: contrib/ldap/), holding the vault file, whose escrow boxes are sealed to\n"
	"the officers. Each entry written is read back and compared; one that already holds\n"
	"the same file is left alone; an entry named cn=MACHINE.* whose vault is gone is\n"
	"removed (not when an owner's directory could not be read). A vault that its tang\n"
	"protectors open without any other protector is not published (an error).\n"
	"Safe while tokensealed runs (it reads the files only).\n"
	"ldap:// is used only with StartTLS; the server's certificate must verify (against\n"
	"--ca-file, default " TS_LDAP_SYSTEM_CA_FILE "); no ldap.conf, ldaprc\n"
	"or LDAP* variable is read. Without --bind-dn the bind is SASL EXTERNAL (ldapi://,\n"
	"or TLS with --cert-file and --key-file).\n\n"
	"      --to-ldap URI      ldapi://, ldaps:// or ldap:// URI of the directory\n"
	"      --base DN          where the records are kept\n"
	"      --state-dir DIR    the daemon's state directory\n"
	"      --machine-id ID    this machine's name in the records (default /etc/machine-id)\n"
	"      --bind-dn DN       simple bind as DN, with the password read from\n"
	"      --password-file FILE  (first line), never from the command line\n"
	"      --ca-file FILE     CA certificates (PEM) the server's certificate must verify against\n"
	"      --cert-file FILE   TLS client certificate (PEM), with its private key in\n"
	"      --key-file FILE\n"
	"  -h, --help           this text\n";

int escrow_publish_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to-ldap", required_argument, NULL, 'u' }, { "base", required_argument, NULL, 'b' },
		{ "state-dir", required_argument, NULL, 'd' }, { "machine-id", required_argument, NULL, 'M' },
		{ "bind-dn", required_argument, NULL, 'D' }, { "password-file", required_argument, NULL, 'y' },
		{ "ca-file", required_argument, NULL, 'C' }, { "cert-file", required_argument, NULL, 'c' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct cli_ldap_opts o = { 0 };
	const char *state_dir = "/var/lib/tokenseal", *machine_opt = NULL;
	char machine[MACHINE_ID_MAX + 1];
	struct published *seen = NULL;
	struct run run = { 0 };
	int c, rc, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': o.uri = optarg; break;
		case 'b': o.base = optarg; break;
		case 'd': state_dir = optarg; break;
		case 'M': machine_opt = optarg; break;
		case 'D': o.bind_dn = optarg; break;
		case 'y': o.password_file = optarg; break;
		case 'C': o.ca_file = optarg; break;
		case 'c': o.cert_file = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'h': fputs(publish_help, stdout); return EXIT_OK;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc || !o.uri)
		return cli_usage_error("escrow publish ", "--to-ldap URI and --base DN are required");
	if ((rc = cli_ldap_machine_id(machine_opt, machine)) != 0)
		return rc;
	if ((seen = calloc(1, sizeof(*seen))) == NULL) {
		cli_err("out of memory");
		return EXIT_FAIL;
	}
	if ((rc = cli_ldap_open(&o, &run.ld)) != 0) {
		free(seen);
		return rc;
	}
	run.base = o.base;
	run.machine = machine;
	run.state_dir = state_dir;
	run.seen = seen;
	if ((r = ts_store_list_owners(state_dir, each_owner, &run)) < 0) {
		cli_err("%s: cannot list its owners' directories (%s); nothing removed from %s", state_dir,
		        ts_strerror(r), o.uri);
		run.failed++;
	} else if (access(state_dir, R_OK | X_OK) < 0) {
		cli_err("%s: %s", state_dir, strerror(errno));
		run.failed++;
	} else if (seen->n >= PUBLISH_MAX) {
		printf("more than %d vaults here: no entry removed from %s (the run cannot tell which are gone)\n",
		       PUBLISH_MAX, o.uri);
	} else if (run.failed == 0)
		prune(&run);
	printf("%u published, %u unchanged, %u without escrow, %u failed\n", run.written, run.unchanged, run.skipped,
	       run.failed);
	cli_ldap_close(run.ld);
	free(seen);
	return run.failed ? EXIT_FAIL : EXIT_OK;
}
