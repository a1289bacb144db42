/* redispatch.c — see redispatch.h. */
#include <string.h>

#include "bus/direct_conn.h"
#include "bus/log.h"
#include "bus/message.h"
#include "bus/redispatch.h"

int ts_bus_dispatch_again(sd_bus_message *m, const char *what)
{
	int r;

	if ((r = sd_bus_message_rewind(m, 1)) >= 0 && (r = ts_direct_again(m)) >= 0 &&
	    (r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(m), m)) >= 0)
		return 0;
	(void)ts_direct_take_again(m);
	/* The caller would wait for nothing: tell it now. */
	ts_log(TS_LOG_ERR, "cannot resume a request after %s: %s", what, strerror(-r));
	(void)sd_bus_reply_method_errorf(m, ts_error_dbus_name(-TS_E_FAILED), "internal error");
	return r;
}
