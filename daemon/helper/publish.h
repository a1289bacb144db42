/* publish.h — the helper's directory operation (TS_WIRE_OP_LDAP, helper_wire.h) for the daemon's [escrow] publish. */
#ifndef TS_HELPER_PUBLISH_H
#define TS_HELPER_PUBLISH_H

#include <stdint.h>

#include "protectors/helper_wire.h"

/*
 * Put (write, read back, compare) or remove a vault's record as q says:
 * 0 and *value (TS_LDAP_PUT_* for put; 0 removed, 1 none there for
 * remove), or negative TS_E_* with err.
 */
int ts_helper_ldap(const ts_wire_request *q, int32_t *value, char *err, size_t errlen);

#endif
