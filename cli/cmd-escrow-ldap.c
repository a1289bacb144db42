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
#include "store.h"

#define LDAP_TIMEOUT_S 10
#define MACHINE_ID_MAX 64
#define PASSWORD_MAX 1024
#define PUBLISH_MAX 4096      /* vaults in one run */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"   /* Debian's ca-certificates bundle */
#define LDAP_MAX_INCOMING (TS_VAULT_FILE_MAX + 64 * 1024)   /* one PDU: an entry with a vault file, and its names */

/* A machine id goes into a DN and a filter unescaped: letters, digits, '-' and '_' only. */
static int machine_id_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= MACHINE_ID_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}

int cli_ldap_machine_id(const char *given, char out[65])
{
	char buf[128] = "";
	FILE *f;

	if (given) {
		if (!machine_id_valid(given))
			return cli_usage_error("escrow ", "--machine-id: letters, digits, '-' and '_' only (at most %d)",
			                       MACHINE_ID_MAX);
		snprintf(out, MACHINE_ID_MAX + 1, "%s", given);
		return 0;
	}
	if ((f = fopen("/etc/machine-id", "re")) == NULL || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		cli_err("cannot read /etc/machine-id; give --machine-id");
		return EXIT_FAIL;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	if (!machine_id_valid(buf)) {
		cli_err("/etc/machine-id is not a machine id; give --machine-id");
		return EXIT_FAIL;
	}
	snprintf(out, MACHINE_ID_MAX + 1, "%s", buf);
	return 0;
}

/* A base DN: printable, no NUL, not empty; libldap checks its syntax, the server its existence. */
static int base_valid(const char *s)
{
	size_t n = strlen(s);
	LDAPDN dn = NULL;
	int ok = n > 0 && n < 512 && ldap_str2dn(s, &dn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS;

	ldap_dnfree(dn);
	return ok;
}

void cli_ldap_close(LDAP *ld)
{
	if (ld)
		ldap_unbind_ext_s(ld, NULL, NULL);
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

int cli_ldap_open(const struct cli_ldap_opts *o, LDAP **ret)
{
	struct timeval tv = { LDAP_TIMEOUT_S, 0 };
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, server = 0, r, fd, rc, ldapi, plain;
	ber_len_t max_in = LDAP_MAX_INCOMING;
	Sockbuf *sb = NULL;
	uint8_t *pw = NULL;
	size_t pw_len = 0;
	LDAP *ld = NULL;

	*ret = NULL;
	/*
	 * No configuration but ours: libldap would otherwise read ldap.conf,
	 * ~/.ldaprc, ./ldaprc and LDAP* variables (e.g. TLS_REQCERT never),
	 * even for root. Set before libldap initialises its defaults (at its
	 * first call, ldap_initialize below).
	 */
	if (setenv("LDAPNOINIT", "1", 1) < 0) {
		cli_err("cannot set LDAPNOINIT: %s", strerror(errno));
		return EXIT_FAIL;
	}
	ldapi = o->uri && strncmp(o->uri, "ldapi://", 8) == 0;
	plain = o->uri && strncmp(o->uri, "ldap://", 7) == 0;
	if (!o->uri || (!ldapi && !plain && strncmp(o->uri, "ldaps://", 8) != 0))
		return cli_usage_error("escrow ", "the directory is an ldapi://, ldaps:// or ldap:// (with StartTLS) URI");
	if (!o->base || !base_valid(o->base))
		return cli_usage_error("escrow ", "--base needs the DN under which the records are kept");
	if (!o->bind_dn != !o->password_file)
		return cli_usage_error("escrow ", "--bind-dn and --password-file go together (simple bind); without "
		                       "them the bind is SASL EXTERNAL (ldapi://, or a TLS client certificate)");
	if (!o->cert_file != !o->key_file)
		return cli_usage_error("escrow ", "--cert-file and --key-file go together (a TLS client certificate)");
	if (ldapi && (o->ca_file || o->cert_file))
		return cli_usage_error("escrow ", "--ca-file, --cert-file and --key-file are for ldaps:// and ldap://");
	if ((rc = file_option("--ca-file", o->ca_file)) != 0 || (rc = file_option("--cert-file", o->cert_file)) != 0 ||
	    (rc = file_option("--key-file", o->key_file)) != 0)
		return rc;
	if ((r = ldap_initialize(&ld, o->uri)) != LDAP_SUCCESS) {
		cli_err("%s: %s", o->uri, ldap_err2string(r));
		return EXIT_USAGE;
	}
	/*
	 * Bounded waits, no referral chasing (it would bind elsewhere with our
	 * credentials), no PDU larger than a record can be (a hostile server's
	 * huge answer is refused as it arrives, not buffered).
	 */
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS || !sb ||
	    ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max_in) != 1) {
		cli_err("%s: cannot set the connection's options", o->uri);
		cli_ldap_close(ld);
		return EXIT_FAIL;
	}
	/*
	 * TLS: the server's certificate must verify against --ca-file, else the
	 * system's bundle (libldap with GnuTLS loads no CA by itself; Debian's
	 * ldap.conf, not read any more, named this file); a new context with
	 * these settings.
	 */
	if (!ldapi && (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	               ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, o->ca_file ? o->ca_file : SYSTEM_CA_FILE) !=
	                       LDAP_OPT_SUCCESS ||
	               (o->cert_file && ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE, o->cert_file) != LDAP_OPT_SUCCESS) ||
	               (o->key_file && ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE, o->key_file) != LDAP_OPT_SUCCESS) ||
	               ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &server) != LDAP_OPT_SUCCESS)) {
		cli_err("%s: cannot set up TLS (check --ca-file, --cert-file and --key-file)", o->uri);
		cli_ldap_close(ld);
		return EXIT_FAIL;
	}
	/* ldap://: StartTLS or nothing; the bind and the records never cross the network in the clear. */
	if (plain && (r = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		char *diag = NULL, shown[256] = "";

		if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS && diag)
			cli_ldap_printable(diag, strlen(diag), shown, sizeof(shown));
		ldap_memfree(diag);
		cli_err("%s: StartTLS failed (%s%s%s); refusing to bind or send records in the clear (use ldaps://, "
		        "or a server that offers StartTLS with a certificate that verifies)", o->uri, ldap_err2string(r),
		        shown[0] ? ": " : "", shown);
		cli_ldap_close(ld);
		return r == LDAP_SERVER_DOWN || r == LDAP_TIMEOUT ? EXIT_NO_DAEMON : EXIT_DENIED;
	}
	if (o->bind_dn) {
		struct berval cred;

		if ((fd = open(o->password_file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
			cli_err("cannot open %s: %s", o->password_file, strerror(errno));
			cli_ldap_close(ld);
			return EXIT_FAIL;
		}
		rc = cli_read_fd(fd, PASSWORD_MAX, &pw, &pw_len, "the password file");
		close(fd);
		if (rc != 0) {
			cli_ldap_close(ld);
			return rc;
		}
		/* The file's first line is the password (what follows, a comment say, is not sent). */
		{
			char *nl = memchr(pw, '\n', pw_len);

			if (nl)
				pw_len = (size_t)(nl - (char *)pw);
			if (pw_len > 0 && pw[pw_len - 1] == '\r')
				pw_len--;
			pw[pw_len] = '\0';
		}
		cred.bv_val = (char *)pw;
		cred.bv_len = pw_len;
		r = ldap_sasl_bind_s(ld, o->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		ts_secret_free(pw, PASSWORD_MAX + 1);
	} else {
		/* Empty credentials: "the identity the transport proves" (the peer's uid over ldapi://). */
		struct berval none = { 0, (char *)"" };

		r = ldap_sasl_bind_s(ld, NULL, "EXTERNAL", &none, NULL, NULL, NULL);
	}
	if (r != LDAP_SUCCESS) {
		cli_err("%s: cannot bind%s%s: %s", o->uri, o->bind_dn ? " as " : " (SASL EXTERNAL)",
		        o->bind_dn ? o->bind_dn : "", ldap_err2string(r));
		cli_ldap_close(ld);
		return r == LDAP_SERVER_DOWN || r == LDAP_TIMEOUT ? EXIT_NO_DAEMON : EXIT_DENIED;
	}
	*ret = ld;
	return 0;
}

/* The one value of attr in entry e as bytes (copied into *out); 0, or -1 when absent or several. */
static int one_value(LDAP *ld, LDAPMessage *e, const char *attr, ts_buf *out)
{
	struct berval **v = ldap_get_values_len(ld, e, attr);
	int r = -1;

	if (v && v[0] && !v[1])
		r = ts_buf_append(out, v[0]->bv_val, v[0]->bv_len) < 0 ? -1 : 0;
	ldap_value_free_len(v);
	return r;
}

void cli_ldap_printable(const char *in, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (cap == 0)
		return;
	for (size_t i = 0; i < len && in[i] && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

/* The one value of attr in entry e as a string (escaped for a terminal) into out; "" when absent or several. */
static void one_text(LDAP *ld, LDAPMessage *e, const char *attr, char *out, size_t cap)
{
	_ts_cleanup_buf_ ts_buf v = { 0 };

	out[0] = '\0';
	if (one_value(ld, e, attr, &v) == 0)
		cli_ldap_printable((const char *)v.data, v.len, out, cap);
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
	if (!machine_id_valid(machine) || (size_t)snprintf(rec->dn, sizeof(rec->dn), "cn=%s.%s,%s", machine, vault_id_hex,
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
	r = one_value(ld, e, "tokensealVaultFile", file);
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

/* The entry's current vault file equals data? 1 yes, 0 no (or no entry), -1 the search failed. */
static int stored_equals(LDAP *ld, const char *dn, const uint8_t *data, size_t len)
{
	char *attrs[] = { "tokensealVaultFile", NULL };
	struct timeval tv = { LDAP_TIMEOUT_S, 0 };
	_ts_cleanup_buf_ ts_buf got = { 0 };
	LDAPMessage *res = NULL, *e;
	int r;

	r = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=tokensealEscrowRecord)", attrs, 0, NULL, NULL, &tv,
	                      1, &res);
	if (r == LDAP_NO_SUCH_OBJECT) {
		ldap_msgfree(res);
		return 0;
	}
	if (r != LDAP_SUCCESS || !(e = ldap_first_entry(ld, res)) || one_value(ld, e, "tokensealVaultFile", &got) < 0) {
		ldap_msgfree(res);
		return r == LDAP_SUCCESS ? 0 : -1;
	}
	ldap_msgfree(res);
	return got.len == len && memcmp(got.data, data, len) == 0;
}

static int publish_one(struct run *run, const char *dir, const char *name)
{
	_ts_cleanup_buf_ ts_buf file = { 0 };
	char hex[2 * TS_VAULT_ID_BYTES + 1], dn[1024], cn[128], uid[16], gen[24], thr[8];
	char rcpt[TS_VAULT_MAX_ESCROW][TS_VAULT_ESCROW_LABEL_MAX + 8];
	char *v_oc[] = { "tokensealEscrowRecord", NULL }, *v_cn[2], *v_id[] = { hex, NULL };
	char *v_machine[] = { (char *)run->machine, NULL }, *v_uid[] = { uid, NULL }, *v_gen[] = { gen, NULL };
	char *v_thr[] = { thr, NULL }, *v_name[2], *v_rcpt[TS_VAULT_MAX_ESCROW + 1];
	struct berval bv, *v_file[] = { &bv, NULL };
	LDAPMod m[10], *mods[11];
	ts_vault *v = NULL;
	size_t k = 0;
	int r, eq;

	/* Not a secret (it is what gets published): read as the daemon reads it, bounded, into plain memory. */
	if ((r = ts_store_load(dir, name, &file)) < 0 || (r = ts_vault_parse(file.data, file.len, &v)) < 0) {
		cli_err("%s/%s.vault: %s; not published", dir, name, ts_strerror(r));
		run->failed++;
		return 0;
	}
	sodium_bin2hex(hex, sizeof(hex), v->id, TS_VAULT_ID_BYTES);
	if (run->seen->n < PUBLISH_MAX)
		memcpy(run->seen->ids[run->seen->n++], hex, sizeof(hex));
	if (v->n_escrow == 0) {
		printf("skipped %s (uid %u): no escrow recipients\n", v->name, v->owner_uid);
		run->skipped++;
		ts_vault_free(v);
		return 0;
	}
	/*
	 * A vault that tang protectors open by themselves ([tang] alone = yes)
	 * opens with its file and the network: a copy in the directory would
	 * open for anyone who can read the entry and reach a Tang server.
	 */
	{
		size_t n_tang = 0;

		for (size_t i = 0; i < v->n_protectors; i++)
			n_tang += strcmp(v->protectors[i].type, "tang") == 0;
		if (n_tang && n_tang >= (v->threshold ? v->threshold : 1)) {
			cli_err("%s (uid %u): not published: its tang protectors open it without any other protector (%zu "
			        "tang, it opens with %u), so its file in the directory would open for anyone who can read "
			        "it and reach a Tang server; make tang one share of a k-of-n vault", v->name, v->owner_uid,
			        n_tang, v->threshold ? v->threshold : 1);
			run->failed++;
			ts_vault_free(v);
			return 0;
		}
	}
	if ((size_t)snprintf(dn, sizeof(dn), "cn=%s.%s,%s", run->machine, hex, run->base) >= sizeof(dn)) {
		cli_err("--base is too long");
		run->failed++;
		ts_vault_free(v);
		return -1;
	}
	if ((eq = stored_equals(run->ld, dn, file.data, file.len)) == 1) {
		printf("unchanged %s (uid %u, generation %llu): %s\n", v->name, v->owner_uid,
		       (unsigned long long)v->generation, dn);
		run->unchanged++;
		ts_vault_free(v);
		return 0;
	}
	snprintf(uid, sizeof(uid), "%u", v->owner_uid);
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)v->generation);
	snprintf(thr, sizeof(thr), "%u", v->escrow_threshold);
	snprintf(cn, sizeof(cn), "%s.%s", run->machine, hex);
	v_cn[0] = cn;
	v_cn[1] = NULL;
	v_name[0] = v->name;
	v_name[1] = NULL;
	for (size_t i = 0; i < v->n_escrow && i < TS_VAULT_MAX_ESCROW; i++) {
		snprintf(rcpt[i], sizeof(rcpt[i]), "%s", v->escrow[i].label[0] ? v->escrow[i].label : "(no label)");
		v_rcpt[i] = rcpt[i];
		v_rcpt[i + 1] = NULL;
	}
	bv.bv_val = (char *)file.data;
	bv.bv_len = file.len;
	/* Replace (or add) every attribute but cn, which names the entry. */
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "objectClass", .mod_values = v_oc };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealVaultId", .mod_values = v_id };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealMachineId", .mod_values = v_machine };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealVaultName", .mod_values = v_name };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealOwnerUid", .mod_values = v_uid };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealGeneration", .mod_values = v_gen };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealEscrowThreshold", .mod_values = v_thr };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealEscrowRecipient", .mod_values = v_rcpt };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES, .mod_type = "tokensealVaultFile",
	                    .mod_vals.modv_bvals = v_file };
	for (size_t i = 0; i < k; i++)
		mods[i] = &m[i];
	mods[k] = NULL;
	if (eq < 0) {
		cli_err("%s (uid %u): cannot read %s; the directory stopped answering", v->name, v->owner_uid, dn);
		run->failed++;
		ts_vault_free(v);
		return -1;
	}
	r = ldap_modify_ext_s(run->ld, dn, mods, NULL, NULL);
	if (r == LDAP_NO_SUCH_OBJECT) {
		for (size_t i = 0; i < k; i++)
			m[i].mod_op = (m[i].mod_op & LDAP_MOD_BVALUES) | LDAP_MOD_ADD;
		m[k] = (LDAPMod){ .mod_op = LDAP_MOD_ADD, .mod_type = "cn", .mod_values = v_cn };
		mods[k] = &m[k];
		mods[k + 1] = NULL;
		r = ldap_add_ext_s(run->ld, dn, mods, NULL, NULL);
	}
	/* Written is not stored: read it back and compare, byte for byte. */
	if (r == LDAP_SUCCESS && stored_equals(run->ld, dn, file.data, file.len) != 1)
		r = LDAP_OTHER;
	if (r != LDAP_SUCCESS) {
		cli_err("%s (uid %u): %s: %s", v->name, v->owner_uid, dn,
		        r == LDAP_OTHER ? "the record read back differs from the vault file" : ldap_err2string(r));
		run->failed++;
		ts_vault_free(v);
		return r == LDAP_SERVER_DOWN || r == LDAP_TIMEOUT ? -1 : 0;
	}
	printf("published %s (uid %u, generation %llu, %zu officer(s), %u needed): %s, read back and verified\n",
	       v->name, v->owner_uid, (unsigned long long)v->generation, v->n_escrow, v->escrow_threshold, dn);
	run->written++;
	ts_vault_free(v);
	return 0;
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
		cli_ldap_printable(dn, strlen(dn), shown, sizeof(shown));
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
	"--ca-file, default " SYSTEM_CA_FILE "); no ldap.conf, ldaprc\n"
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
