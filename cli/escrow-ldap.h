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
};

/* This machine's id for the records: given (checked) or /etc/machine-id. 0 or an exit code, printed. */
int cli_ldap_machine_id(const char *given, char out[65]);

/* Connect and bind (10 s bounds, no referrals). 0 with *ret, or an exit code with the error printed. */
int cli_ldap_open(const struct cli_ldap_opts *o, LDAP **ret);
void cli_ldap_close(LDAP *ld);

/*
 * The vault file of the one record of vault vault_id_hex (and of machine,
 * if not NULL) under base, appended to file; its DN into dn_out. The bytes
 * are the directory's, to be parsed as hostile. 0 or an exit code, printed.
 */
int cli_ldap_fetch(LDAP *ld, const char *base, const char *vault_id_hex, const char *machine, ts_buf *file,
                   char *dn_out, size_t dn_cap);

/* tokenseal escrow publish */
int escrow_publish_main(int argc, char **argv);

#endif
