/* ldap_record.h — a vault's escrow record in an LDAP directory (libldap): connect, write and verify, remove. */
#ifndef TS_LDAP_RECORD_H
#define TS_LDAP_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ldap.h>

#include "core/buf.h"
#include "core/text.h"
#include "core/vault.h"

/*
 * One entry per (machine, vault): cn=MACHINE.VAULT-ID under a base DN
 * (schema: contrib/ldap/tokenseal.ldif), holding the vault file, whose
 * escrow boxes are sealed to the officers. Used by `tokenseal escrow
 * publish` / `recover --from-ldap` and, for the daemon's own publishing
 * ([escrow] publish), by tokenseal-helper: the daemon reaches no network.
 * Errors are negative TS_E_* with a sentence in err.
 */

#define TS_LDAP_MACHINE_ID_MAX TS_MACHINE_ID_MAX   /* ts_machine_id_valid (core/text.h) */
#define TS_LDAP_PASSWORD_MAX 1024
#define TS_LDAP_DN_MAX 1024
#define TS_LDAP_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"   /* Debian's ca-certificates bundle */

/* Where the records are and how to bind: SASL EXTERNAL unless bind_dn (with a password) is given. */
typedef struct ts_ldap_conf {
	const char *uri;             /* ldapi://, ldaps:// or ldap:// (StartTLS) */
	const char *base;            /* the DN the records are under */
	const char *bind_dn;         /* simple bind as this DN, with password */
	const uint8_t *password;     /* secret, password_len bytes (no NUL needed) */
	size_t password_len;
	const char *ca_file;         /* TLS: CAs the server's certificate must verify against (else the system's) */
	const char *cert_file;       /* TLS client certificate and key, for SASL EXTERNAL over TLS */
	const char *key_file;
} ts_ldap_conf;


/* The password file's first line (what follows, a comment say, is not sent; a CR before the LF goes too): its length. */
static inline size_t ts_ldap_first_line(const uint8_t *pw, size_t len)
{
	const uint8_t *nl = memchr(pw, '\n', len);

	if (nl)
		len = (size_t)(nl - pw);
	if (len > 0 && pw[len - 1] == '\r')
		len--;
	return len;
}

/* A base DN libldap can parse (printable, not empty, under 512 bytes). */
int ts_ldap_base_valid(const char *s);

/*
 * The configuration's own consistency (scheme, base, bind_dn with a
 * password, cert with key, no TLS files for ldapi://): 0, or
 * -TS_E_INVALID_ARGS with err naming what is wrong (in the CLI's option
 * names: --base, --bind-dn, ...).
 */
int ts_ldap_conf_check(const ts_ldap_conf *c, char *err, size_t errlen);

/*
 * Connect and bind: 10 s bounds, no referrals, no libldap configuration
 * file or variable (LDAPNOINIT), TLS certificates verified (ldaps://, and
 * ldap:// only with StartTLS), incoming messages capped at what a record
 * can be. 0 and *ret, or -TS_E_INVALID_ARGS (configuration),
 * -TS_E_NO_DAEMON (the directory does not answer), -TS_E_ACCESS_DENIED
 * (StartTLS or the bind refused), -TS_E_FAILED.
 */
int ts_ldap_open(const ts_ldap_conf *c, LDAP **ret, char *err, size_t errlen);
void ts_ldap_close(LDAP *ld);

/* A libldap result as a TS_E_*: the directory not answering is -TS_E_NO_DAEMON. */
int ts_ldap_error(int ldap_rc);

/* The one value of attr in entry e, appended to out: 0, or -1 when absent, several or out of memory. */
int ts_ldap_one_value(LDAP *ld, LDAPMessage *e, const char *attr, ts_buf *out);

/* A server-given string for a terminal or a log: bytes outside printable ASCII (and '\\') as \xHH. */
void ts_ldap_printable(const char *in, size_t len, char *out, size_t cap);

/* What ts_ldap_put wrote (or found), for the caller's report. */
typedef struct ts_ldap_put_info {
	char dn[TS_LDAP_DN_MAX];
	char name[TS_VAULT_NAME_MAX + 1];
	char id_hex[2 * TS_VAULT_ID_BYTES + 1];
	uint32_t owner;
	uint64_t generation;
	size_t n_escrow;
	unsigned escrow_threshold;
} ts_ldap_put_info;

#define TS_LDAP_PUT_WRITTEN 0     /* written, read back and equal */
#define TS_LDAP_PUT_UNCHANGED 1   /* the entry already held these bytes */
#define TS_LDAP_PUT_NO_ESCROW 2   /* the vault escrows to nobody: nothing to publish, nothing written */
#define TS_LDAP_PUT_NEWER 3       /* keep_newer: the entry holds a later generation of the vault (info->generation) */

/*
 * Publish one vault file (len bytes, parsed here as hostile) as
 * cn=MACHINE.VAULT-ID,BASE: written unless the entry holds the same bytes,
 * then read back and compared byte for byte. The file is swapped only if
 * the entry still holds what was read first (one modify deletes that value
 * and adds the new one): a record another writer changed meanwhile gets
 * -TS_E_BUSY, never overwritten. keep_newer (the CLI, which runs beside the
 * daemon): an entry holding a later generation of the same vault is left
 * alone (TS_LDAP_PUT_NEWER). info is filled as far as the file was read. A vault its tang protectors open without any other
 * protector is refused (-TS_E_POLICY_VIOLATION): its file would open for
 * whoever reads the entry and reaches a Tang server. TS_LDAP_PUT_*, or
 * negative TS_E_* with err (-TS_E_NO_DAEMON: the directory stopped
 * answering).
 */
int ts_ldap_put(LDAP *ld, const char *base, const char *machine, const uint8_t *file, size_t len, int keep_newer,
                ts_ldap_put_info *info, char *err, size_t errlen);

/* Remove cn=MACHINE.VAULT-ID,BASE: 0 removed, 1 there was none, or negative TS_E_* with err. */
int ts_ldap_remove(LDAP *ld, const char *base, const char *machine, const char *id_hex, char *err, size_t errlen);

#endif
