/* protector_info.h — what a stored protector's record says, as Unlock and the protector methods ask it. */
#ifndef TS_BUS_PROTECTOR_INFO_H
#define TS_BUS_PROTECTOR_INFO_H

#include <stddef.h>

#include "bus/state.h"

/* 1 when unlocking with p takes a secret (a PIN, a recovery key), else 0. */
int ts_protector_info_needs_secret(const ts_protector_ops *ops, const ts_protector_record *p);
/* 1 for a token that counts wrong PINs itself (its backend runs in tokenseal-helper); ops may be NULL. */
int ts_protector_info_is_token(const ts_protector_ops *ops);
/* A fact of p's record ("touch", "pin", "token", "uri", ...) into out (size bytes; "" when unknown). Returns out. */
const char *ts_protector_info_fact(const ts_protector_ops *ops, const ts_protector_record *p, const char *key,
                                   char *out, size_t size);
/* 1 when unlocking with p shows somebody is there: it takes a secret, or it is a FIDO2 key that wants a touch. */
int ts_protector_info_proves_user(const ts_protector_ops *ops, const ts_protector_record *p);

/* Which physical token a protector's PIN goes to, as far as its record tells. */
typedef struct ts_token_id {
	char kind[16], label[96], serial[96];
} ts_token_id;
/* Protector id of vault e as a ts_token_id (kind "?" when e has no such protector). */
void ts_protector_info_token(ts_vault_entry *e, const char *id, ts_token_id *t);
/* 1 when a and b are one token for sure from the records alone (the TPM; PKCS#11 of one label and serial). */
int ts_protector_info_same_token(const ts_token_id *a, const ts_token_id *b);

#endif
