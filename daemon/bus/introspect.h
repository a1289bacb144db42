/* introspect.h — the XML of the Manager and Vault interfaces as served (--print-introspection). */
#ifndef TS_BUS_INTROSPECT_H
#define TS_BUS_INTROSPECT_H

#include "bus/state.h"

/* XML of the Manager and Vault interfaces as served, for --print-introspection. malloc()ed. */
int ts_daemon_introspection(ts_daemon *d, char **ret);

#endif
