/* ldap_record.c — a vault's escrow record in an LDAP directory (ldap_record.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ldap.h>
#include <sodium.h>

#include "protectors/ldap_record.h"
#include "core/buf.h"
#include "core/vault.h"

#define LDAP_TIMEOUT_S 10
#define LDAP_MAX_INCOMING (TS_VAULT_FILE_MAX + 64 * 1024)   /* one PDU: an entry with a vault file, and its names */

int ts_ldap_base_valid(const char *s)
{
	size_t n = strlen(s);
	LDAPDN dn = NULL;
	int ok = n > 0 && n < 512 && ldap_str2dn(s, &dn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS;

	ldap_dnfree(dn);
	return ok;
}

int ts_ldap_error(int ldap_rc)
{
	switch (ldap_rc) {
	case LDAP_SUCCESS: return 0;
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE: return -TS_E_NO_DAEMON;
	case LDAP_INSUFFICIENT_ACCESS:
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_STRONG_AUTH_REQUIRED:
	case LDAP_CONFIDENTIALITY_REQUIRED: return -TS_E_ACCESS_DENIED;
	case LDAP_NO_MEMORY: return -TS_E_NOMEM;
	default: return -TS_E_FAILED;
	}
}

static void fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int ts_ldap_conf_check(const ts_ldap_conf *c, char *err, size_t errlen)
{
	int ldapi = c->uri && strncmp(c->uri, "ldapi://", 8) == 0;
	int plain = c->uri && strncmp(c->uri, "ldap://", 7) == 0;

	if (!c->uri || (!ldapi && !plain && strncmp(c->uri, "ldaps://", 8) != 0))
		fail(err, errlen, "the directory is an ldapi://, ldaps:// or ldap:// (with StartTLS) URI");
	else if (!c->base || !ts_ldap_base_valid(c->base))
		fail(err, errlen, "--base needs the DN under which the records are kept");
	else if (!c->bind_dn != !c->password)
		fail(err, errlen, "--bind-dn and --password-file go together (simple bind); without them the bind is "
		     "SASL EXTERNAL (ldapi://, or a TLS client certificate)");
	else if (c->uri[strcspn(c->uri, " \t,")])
		fail(err, errlen, "one directory URI only (no list: a second one would be used without the first one's "
		     "TLS)");
	else if (!c->cert_file != !c->key_file)
		fail(err, errlen, "--cert-file and --key-file go together (a TLS client certificate)");
	else if (ldapi && (c->ca_file || c->cert_file))
		fail(err, errlen, "--ca-file, --cert-file and --key-file are for ldaps:// and ldap://");
	else
		return 0;
	return -TS_E_INVALID_ARGS;
}

void ts_ldap_close(LDAP *ld)
{
	if (ld)
		ldap_unbind_ext_s(ld, NULL, NULL);
}

int ts_ldap_open(const ts_ldap_conf *c, LDAP **ret, char *err, size_t errlen)
{
	struct timeval tv = { LDAP_TIMEOUT_S, 0 };
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, server = 0, r, ldapi;
	ber_len_t max_in = LDAP_MAX_INCOMING;
	Sockbuf *sb = NULL;
	LDAP *ld = NULL;

	*ret = NULL;
	if ((r = ts_ldap_conf_check(c, err, errlen)) < 0)
		return r;
	ldapi = strncmp(c->uri, "ldapi://", 8) == 0;
	/*
	 * No configuration but ours: libldap would otherwise read ldap.conf,
	 * ~/.ldaprc, ./ldaprc and LDAP* variables (e.g. TLS_REQCERT never),
	 * even for root. Set before libldap initialises its defaults (at its
	 * first call, ldap_initialize below).
	 */
	if (setenv("LDAPNOINIT", "1", 1) < 0) {
		fail(err, errlen, "cannot set LDAPNOINIT: %s", strerror(errno));
		return -TS_E_FAILED;
	}
	if ((r = ldap_initialize(&ld, c->uri)) != LDAP_SUCCESS) {
		fail(err, errlen, "%s: %s", c->uri, ldap_err2string(r));
		return -TS_E_INVALID_ARGS;
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
		fail(err, errlen, "%s: cannot set the connection's options", c->uri);
		ts_ldap_close(ld);
		return -TS_E_FAILED;
	}
	/*
	 * TLS: the server's certificate must verify against ca_file, else the
	 * system's bundle (libldap with GnuTLS loads no CA by itself; Debian's
	 * ldap.conf, not read any more, named this file); a new context with
	 * these settings.
	 */
	if (!ldapi && (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	               ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, c->ca_file ? c->ca_file : TS_LDAP_SYSTEM_CA_FILE) !=
	                       LDAP_OPT_SUCCESS ||
	               (c->cert_file && ldap_set_option(ld, LDAP_OPT_X_TLS_CERTFILE, c->cert_file) != LDAP_OPT_SUCCESS) ||
	               (c->key_file && ldap_set_option(ld, LDAP_OPT_X_TLS_KEYFILE, c->key_file) != LDAP_OPT_SUCCESS) ||
	               ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &server) != LDAP_OPT_SUCCESS)) {
		fail(err, errlen, "%s: cannot set up TLS (check --ca-file, --cert-file and --key-file)", c->uri);
		ts_ldap_close(ld);
		return -TS_E_FAILED;
	}
	/* ldap://: StartTLS or nothing; the bind and the records never cross the network in the clear. */
	if (strncmp(c->uri, "ldap://", 7) == 0 && (r = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		char *diag = NULL, shown[256] = "";

		if (ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS && diag)
			ts_ldap_printable(diag, strlen(diag), shown, sizeof(shown));
		ldap_memfree(diag);
		fail(err, errlen, "%s: StartTLS failed (%s%s%s); refusing to bind or send records in the clear (use "
		     "ldaps://, or a server that offers StartTLS with a certificate that verifies)", c->uri,
		     ldap_err2string(r), shown[0] ? ": " : "", shown);
		ts_ldap_close(ld);
		return r == LDAP_SERVER_DOWN || r == LDAP_TIMEOUT ? -TS_E_NO_DAEMON : -TS_E_ACCESS_DENIED;
	}
	if (c->bind_dn && c->password_len == 0) {
		/* RFC 4513: a simple bind with a name and no password is an unauthenticated bind, which may "succeed". */
		fail(err, errlen, "the password file is empty; refusing an unauthenticated bind as %s", c->bind_dn);
		ts_ldap_close(ld);
		return -TS_E_INVALID_ARGS;
	}
	if (c->bind_dn) {
		/* The password goes as it is (a berval needs no NUL); libldap's encoding of the request is its own copy. */
		struct berval cred = { (ber_len_t)c->password_len, (char *)c->password };

		r = ldap_sasl_bind_s(ld, c->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	} else {
		/* Empty credentials: "the identity the transport proves" (the peer's uid over ldapi://). */
		struct berval none = { 0, (char *)"" };

		r = ldap_sasl_bind_s(ld, NULL, "EXTERNAL", &none, NULL, NULL, NULL);
	}
	if (r != LDAP_SUCCESS) {
		fail(err, errlen, "%s: cannot bind%s%s: %s", c->uri, c->bind_dn ? " as " : " (SASL EXTERNAL)",
		     c->bind_dn ? c->bind_dn : "", ldap_err2string(r));
		ts_ldap_close(ld);
		return r == LDAP_SERVER_DOWN || r == LDAP_TIMEOUT ? -TS_E_NO_DAEMON : -TS_E_ACCESS_DENIED;
	}
	*ret = ld;
	return 0;
}

int ts_ldap_one_value(LDAP *ld, LDAPMessage *e, const char *attr, ts_buf *out)
{
	struct berval **v = ldap_get_values_len(ld, e, attr);
	int r = -1;

	if (v && v[0] && !v[1])
		r = ts_buf_append(out, v[0]->bv_val, v[0]->bv_len) < 0 ? -1 : 0;
	ldap_value_free_len(v);
	return r;
}

void ts_ldap_printable(const char *in, size_t len, char *out, size_t cap)
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

/*
 * The entry's vault file into got: 1 (one value), 0 no entry, 2 an entry
 * without a single value, -1 the search failed (*rc says why).
 */
static int stored_read(LDAP *ld, const char *dn, ts_buf *got, int *rc)
{
	char *attrs[] = { "tokensealVaultFile", NULL };
	struct timeval tv = { LDAP_TIMEOUT_S, 0 };
	LDAPMessage *res = NULL, *e;
	int r;

	*rc = r = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=tokensealEscrowRecord)", attrs, 0, NULL,
	                            NULL, &tv, 1, &res);
	if (r == LDAP_NO_SUCH_OBJECT) {
		ldap_msgfree(res);
		return 0;
	}
	if (r != LDAP_SUCCESS || !(e = ldap_first_entry(ld, res))) {
		ldap_msgfree(res);
		return r == LDAP_SUCCESS ? 0 : -1;
	}
	r = ts_ldap_one_value(ld, e, "tokensealVaultFile", got) < 0 ? 2 : 1;
	ldap_msgfree(res);
	return r;
}

/* The generation of the vault file held (bytes from the directory: parsed as hostile), if it is vault id's. */
static int stored_generation(const ts_buf *got, const uint8_t id[TS_VAULT_ID_BYTES], uint64_t *gen)
{
	ts_vault *v = NULL;
	int same;

	if (ts_vault_parse(got->data, got->len, &v) < 0)
		return 0;
	same = memcmp(v->id, id, TS_VAULT_ID_BYTES) == 0;
	*gen = v->generation;
	ts_vault_free(v);
	return same;
}

/* The vault's tang protectors open it by themselves? (its file would then open with the network alone) */
static int tang_alone(const ts_vault *v, size_t *n_tang)
{
	*n_tang = 0;
	for (size_t i = 0; i < v->n_protectors; i++)
		*n_tang += strcmp(v->protectors[i].type, "tang") == 0;
	return *n_tang && *n_tang >= (v->threshold ? v->threshold : 1);
}

static int put_vault(LDAP *ld, const char *base, const char *machine, const ts_vault *v, const uint8_t *file,
                     size_t len, int keep_newer, ts_ldap_put_info *info, char *err, size_t errlen)
{
	_ts_cleanup_buf_ ts_buf got = { 0 }, back = { 0 };
	struct berval old, *v_old[] = { &old, NULL };
	uint64_t held_gen = 0;
	char cn[128], uid[16], gen[24], thr[8];
	char rcpt[TS_VAULT_MAX_ESCROW][TS_VAULT_ESCROW_LABEL_MAX + 8];
	char *v_oc[] = { "tokensealEscrowRecord", NULL }, *v_cn[] = { cn, NULL }, *v_id[] = { info->id_hex, NULL };
	char *v_machine[] = { (char *)machine, NULL }, *v_uid[] = { uid, NULL }, *v_gen[] = { gen, NULL };
	char *v_thr[] = { thr, NULL }, *v_name[] = { (char *)v->name, NULL }, *v_rcpt[TS_VAULT_MAX_ESCROW + 1];
	struct berval bv = { (ber_len_t)len, (char *)file }, *v_file[] = { &bv, NULL };
	LDAPMod m[11], *mods[12];
	size_t k = 0, n_tang;
	int r, held;

	if (v->n_escrow == 0)
		return TS_LDAP_PUT_NO_ESCROW;
	if (tang_alone(v, &n_tang)) {
		fail(err, errlen, "not published: its tang protectors open it without any other protector (%zu tang, it "
		     "opens with %u), so its file in the directory would open for anyone who can read it and reach a "
		     "Tang server; make tang one share of a k-of-n vault", n_tang, v->threshold ? v->threshold : 1);
		return -TS_E_POLICY_VIOLATION;
	}
	if ((size_t)snprintf(info->dn, sizeof(info->dn), "cn=%s.%s,%s", machine, info->id_hex, base) >= sizeof(info->dn)) {
		fail(err, errlen, "the base DN is too long");
		return -TS_E_INVALID_ARGS;
	}
	if ((held = stored_read(ld, info->dn, &got, &r)) < 0) {
		fail(err, errlen, "cannot read %s (%s); the directory stopped answering", info->dn, ldap_err2string(r));
		return ts_ldap_error(r);
	}
	if (held == 1 && got.len == len && memcmp(got.data, file, len) == 0)
		return TS_LDAP_PUT_UNCHANGED;
	/* A later generation of this vault, written meanwhile by the daemon: an older file must not replace it. */
	if (held == 1 && keep_newer && stored_generation(&got, v->id, &held_gen) && held_gen > v->generation) {
		info->generation = held_gen;
		return TS_LDAP_PUT_NEWER;
	}
	snprintf(uid, sizeof(uid), "%u", v->owner_uid);
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)v->generation);
	snprintf(thr, sizeof(thr), "%u", v->escrow_threshold);
	snprintf(cn, sizeof(cn), "%s.%s", machine, info->id_hex);
	for (size_t i = 0; i < v->n_escrow && i < TS_VAULT_MAX_ESCROW; i++) {
		snprintf(rcpt[i], sizeof(rcpt[i]), "%s", v->escrow[i].label[0] ? v->escrow[i].label : "(no label)");
		v_rcpt[i] = rcpt[i];
		v_rcpt[i + 1] = NULL;
	}
	/* Replace (or add) every attribute but cn, which names the entry. */
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "objectClass", .mod_values = v_oc };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealVaultId", .mod_values = v_id };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealMachineId", .mod_values = v_machine };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealVaultName", .mod_values = v_name };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealOwnerUid", .mod_values = v_uid };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealGeneration", .mod_values = v_gen };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealEscrowThreshold", .mod_values = v_thr };
	m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE, .mod_type = "tokensealEscrowRecipient", .mod_values = v_rcpt };
	/*
	 * The file swapped only if it is still the one read above (the old value
	 * deleted and the new one added in one modify, which the directory
	 * applies whole or not at all): a record another writer changed
	 * meanwhile is never overwritten unseen.
	 */
	if (held == 1) {
		old = (struct berval){ (ber_len_t)got.len, (char *)got.data };
		m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_DELETE | LDAP_MOD_BVALUES, .mod_type = "tokensealVaultFile",
		                    .mod_vals.modv_bvals = v_old };
		m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_ADD | LDAP_MOD_BVALUES, .mod_type = "tokensealVaultFile",
		                    .mod_vals.modv_bvals = v_file };
	} else
		m[k++] = (LDAPMod){ .mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES, .mod_type = "tokensealVaultFile",
		                    .mod_vals.modv_bvals = v_file };
	for (size_t i = 0; i < k; i++)
		mods[i] = &m[i];
	mods[k] = NULL;
	if (held) {
		r = ldap_modify_ext_s(ld, info->dn, mods, NULL, NULL);
	} else {
		for (size_t i = 0; i < k; i++)
			m[i].mod_op = (m[i].mod_op & LDAP_MOD_BVALUES) | LDAP_MOD_ADD;
		m[k] = (LDAPMod){ .mod_op = LDAP_MOD_ADD, .mod_type = "cn", .mod_values = v_cn };
		mods[k] = &m[k];
		mods[k + 1] = NULL;
		r = ldap_add_ext_s(ld, info->dn, mods, NULL, NULL);
	}
	if (r == LDAP_NO_SUCH_ATTRIBUTE || r == LDAP_ALREADY_EXISTS || r == LDAP_NO_SUCH_OBJECT) {
		fail(err, errlen, "%s changed while it was being written (another writer); not overwritten, try again",
		     info->dn);
		return -TS_E_BUSY;
	}
	if (r != LDAP_SUCCESS) {
		fail(err, errlen, "%s: %s", info->dn, ldap_err2string(r));
		return ts_ldap_error(r);
	}
	/* Written is not stored: read it back and compare, byte for byte. */
	if ((held = stored_read(ld, info->dn, &back, &r)) != 1 || back.len != len || memcmp(back.data, file, len) != 0) {
		fail(err, errlen, "%s: %s", info->dn, held < 0 ? ldap_err2string(r) :
		     "the record read back differs from the vault file");
		return held < 0 ? ts_ldap_error(r) : -TS_E_FAILED;
	}
	return TS_LDAP_PUT_WRITTEN;
}

int ts_ldap_put(LDAP *ld, const char *base, const char *machine, const uint8_t *file, size_t len, int keep_newer,
                ts_ldap_put_info *info, char *err, size_t errlen)
{
	ts_vault *v = NULL;
	int r;

	memset(info, 0, sizeof(*info));
	if (!ts_machine_id_valid(machine)) {
		fail(err, errlen, "the machine id is not [A-Za-z0-9_-]{1,%d}", TS_LDAP_MACHINE_ID_MAX);
		return -TS_E_INVALID_ARGS;
	}
	if ((r = ts_vault_parse(file, len, &v)) < 0) {
		fail(err, errlen, "%s", ts_strerror(r));
		return r;
	}
	sodium_bin2hex(info->id_hex, sizeof(info->id_hex), v->id, TS_VAULT_ID_BYTES);
	snprintf(info->name, sizeof(info->name), "%s", v->name);
	info->owner = v->owner_uid;
	info->generation = v->generation;
	info->n_escrow = v->n_escrow;
	info->escrow_threshold = v->escrow_threshold;
	r = put_vault(ld, base, machine, v, file, len, keep_newer, info, err, errlen);
	ts_vault_free(v);
	return r;
}

int ts_ldap_remove(LDAP *ld, const char *base, const char *machine, const char *id_hex, char *err, size_t errlen)
{
	char dn[TS_LDAP_DN_MAX];
	int r;

	if (!ts_machine_id_valid(machine) || strlen(id_hex) != 2 * TS_VAULT_ID_BYTES ||
	    strspn(id_hex, "0123456789abcdef") != 2 * TS_VAULT_ID_BYTES) {
		fail(err, errlen, "not a machine id and a vault id");
		return -TS_E_INVALID_ARGS;
	}
	if ((size_t)snprintf(dn, sizeof(dn), "cn=%s.%s,%s", machine, id_hex, base) >= sizeof(dn)) {
		fail(err, errlen, "the base DN is too long");
		return -TS_E_INVALID_ARGS;
	}
	if ((r = ldap_delete_ext_s(ld, dn, NULL, NULL)) == LDAP_NO_SUCH_OBJECT)
		return 1;
	if (r != LDAP_SUCCESS) {
		fail(err, errlen, "cannot remove %s: %s", dn, ldap_err2string(r));
		return ts_ldap_error(r);
	}
	return 0;
}
