/* escrow-ldap.h — escrow records in an LDAP directory (cmd-escrow-ldap.c): connect, fetch, publish. */
#ifndef TS_CLI_ESCROW_LDAP_H
#define TS_CLI_ESCROW_LDAP_H

#include <stddef.h>

#include <ldap.h>

#include "core/buf.h"

/* Where the records are and how to bind: SASL EXTERNAL unless bind_dn and password_file are both given. */
struct cli_ldap_opts {
	const char *uri;             /* ldapi://, ldaps:// or ldap:// */
	const char *base;            /* the DN the records are under */
	const char *bind_dn;
	const char *password_file;   /* its first line is the password; never an argument */
	const char *ca_file;         /* TLS: the CAs the server's certificate must verify against (else the system's) */
	const char *cert_file;       /* TLS client certificate and key, for SASL EXTERNAL over TLS */
	const char *key_file;
};

/* This machine's id for the records: given (checked) or /etc/machine-id. 0 or an exit code, printed. */
int cli_ldap_machine_id(const char *given, char out[65]);

/*
 * Connect and bind: 10 s bounds, no referrals, no libldap configuration
 * file or variable (LDAPNOINIT), TLS certificates verified (ldaps://, and
 * ldap:// only with StartTLS). 0 with *ret, or an exit code with the error
 * printed.
 */
int cli_ldap_open(const struct cli_ldap_opts *o, LDAP **ret);
void cli_ldap_close(LDAP *ld);

/* What an officer is shown of a record before anything is written (all escaped for a terminal). */
struct cli_ldap_record {
	char dn[1024];
	char modified[64];           /* the entry's modifyTimestamp, as a date */
	char modifier[512];          /* its modifiersName: the identity that last wrote it */
};

/*
 * The vault file of the record cn=MACHINE.VAULT-ID,BASE, read alone (base
 * scope; its tokensealVaultId and tokensealMachineId must agree with the
 * name), appended to file. The bytes are the directory's, to be parsed as
 * hostile. 0 or an exit code, printed.
 */
int cli_ldap_fetch(LDAP *ld, const char *base, const char *vault_id_hex, const char *machine, ts_buf *file,
                   struct cli_ldap_record *rec);


/* tokenseal escrow publish */
int escrow_publish_main(int argc, char **argv);

#endif
