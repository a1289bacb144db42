/* pkcs11_mech.h — does a PKCS#11 token offer a mechanism? Shared by the pkcs11 backend and `tokenseal pkcs11 list`. */
#ifndef TS_PKCS11_MECH_H
#define TS_PKCS11_MECH_H

#include <p11-kit/pkcs11.h>

/* A longer mechanism list is a broken module. */
#define TS_P11_MECHS_MAX 4096

/*
 * Is mech offered with flag by the token in slot? 1 yes, 0 no, -1 cannot
 * tell. The mechanism list decides: SoftHSM2 answers C_GetMechanismInfo
 * even for a mechanism its configuration took off the list.
 */
int ts_p11_mech_offered(CK_FUNCTION_LIST *fn, CK_SLOT_ID slot, CK_MECHANISM_TYPE mech, CK_FLAGS flag);

#endif
