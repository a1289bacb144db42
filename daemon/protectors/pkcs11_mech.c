/* pkcs11_mech.c — see pkcs11_mech.h. */
#include <stdlib.h>

#include "protectors/pkcs11_mech.h"

int ts_p11_mech_offered(CK_FUNCTION_LIST *fn, CK_SLOT_ID slot, CK_MECHANISM_TYPE mech, CK_FLAGS flag)
{
	CK_MECHANISM_TYPE *list;
	CK_MECHANISM_INFO mi;
	CK_ULONG n = 0, i;
	CK_RV rv;

	if (fn->C_GetMechanismList(slot, NULL, &n) != CKR_OK || n > TS_P11_MECHS_MAX ||
	    (list = calloc(n ? n : 1, sizeof(*list))) == NULL)
		return -1;
	rv = fn->C_GetMechanismList(slot, list, &n);
	for (i = 0; rv == CKR_OK && i < n && i < TS_P11_MECHS_MAX && list[i] != mech; i++)
		;
	free(list);
	if (rv != CKR_OK)
		return -1;
	if (i >= n || i >= TS_P11_MECHS_MAX)
		return 0;
	rv = fn->C_GetMechanismInfo(slot, mech, &mi);
	if (rv == CKR_MECHANISM_INVALID)
		return 0;
	if (rv != CKR_OK)
		return -1;
	return (mi.flags & flag) ? 1 : 0;
}
