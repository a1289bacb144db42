/* policy-client.h — client calls for escrow, true revocation, k-of-n and policy status for the tokenseal CLI. */
#ifndef TS_POLICY_CLIENT_H
#define TS_POLICY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "client-internal.h"

/* Issue-6 properties of a vault. Strings are malloc()ed; free with ts_vault_policy_info_free. */
typedef struct ts_vault_policy_info {
	uint32_t shares_needed;     /* k-of-n: protectors still to give while locked */
	int compliant;              /* PolicyStatus */
	char *policy_message;
	char **escrow_fp;           /* EscrowRecipients: fingerprint and label */
	char **escrow_label;
	size_t n_escrow;
} ts_vault_policy_info;

void ts_vault_policy_info_free(ts_vault_policy_info *p);
int ts_client_vault_policy_info(ts_client *c, const char *vault, ts_vault_policy_info **ret);

/* SetEscrow: each recipient "[LABEL ]tokenseal-escrow-pub:v1:..."; n == 0 removes escrow. */
int ts_client_set_escrow(ts_client *c, const char *vault, const char *const *recipients, size_t n,
                         uint32_t threshold);

/*
 * RevokeAndRekey: secrets holds "ID SECRET" lines for the protectors to keep
 * (sent through a pipe, never on the bus as a string). *kept / *dropped are
 * NULL-terminated (free with ts_strv_free).
 */
int ts_client_revoke_rekey(ts_client *c, const char *vault, const char *id, const uint8_t *secrets,
                           size_t secrets_len, char ***kept, char ***dropped);

/*
 * RotateRecoveryKey: replace recovery protector (""): the one that last
 * unlocked the vault) with a new one and re-key the vault; secrets as for
 * RevokeAndRekey (the other protectors to keep). *ret_key is the new key
 * (secure memory, ts_secure_free), *ret_id the new protector id (free()),
 * *kept / *dropped NULL-terminated (ts_strv_free).
 */
int ts_client_rotate_recovery(ts_client *c, const char *vault, const char *protector, const uint8_t *secrets,
                              size_t secrets_len, char **ret_key, size_t *ret_len, char **ret_id, char ***kept,
                              char ***dropped);

#endif
