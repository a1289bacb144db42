/* serve.c — what one connection serves: the Manager, every vault, the object manager, the unanswered-call and large-call filters. */
#include "bus/serve.h"
#include "bus/manager.h"
#include "bus/message.h"
#include "bus/vault_object.h"

int ts_serve(ts_daemon *d, sd_bus *bus)
{
	int r;

	if ((r = sd_bus_add_filter(bus, NULL, ts_bus_drop_unanswered, d)) < 0 ||
	    (r = sd_bus_add_filter(bus, NULL, ts_bus_refuse_large, d)) < 0 || (r = ts_manager_register(d, bus)) < 0 ||
	    (r = ts_vault_objects_serve(d, bus)) < 0 || (r = sd_bus_add_object_manager(bus, NULL, TS_MANAGER_PATH)) < 0)
		return r;
	return 0;
}
