/* message.h — a method call's sender (ts_caller), its a{ss} arguments, and the named errors it is answered with. */
#ifndef TS_BUS_MESSAGE_H
#define TS_BUS_MESSAGE_H

#include <stddef.h>
#include <stdlib.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "core/context.h"
#include "core/vault.h"

/* The caller of the message being handled, from the bus (never from arguments). */
typedef struct ts_caller {
	uid_t uid;
	pid_t pid;                      /* 0 when unknown */
} ts_caller;

static inline void ts_bus_message_unrefp(sd_bus_message **m) { sd_bus_message_unref(*m); }
#define _ts_cleanup_reply_ __attribute__((cleanup(ts_bus_message_unrefp)))

/* Identify the sender of m (from the bus, cached per unique name). 0 or negative TS_E_*. */
int ts_caller_get(sd_bus_message *m, ts_caller *ret);
/* Owner or root. */
int ts_caller_may_use(const ts_caller *c, const ts_vault *v);

/*
 * Set a named D-Bus error for r (negative TS_E_*; anything else is Failed);
 * msg NULL or "" gives the default text. Returns a negative errno for
 * sd-bus (the named error set here is what the caller sees).
 */
int ts_bus_error(sd_bus_error *error, int r, const char *msg);

/*
 * What a handler returns for r from sd-bus once its arguments are read
 * (building or sending its reply): r itself when r >= 0 or a named error is
 * set in error already; otherwise the named error for the errno (-ENOMEM:
 * NoMemory; anything else: Failed, "cannot answer: STRERROR"), so that no
 * bare sd-bus errno reaches the caller. r is 0, 1 or a negative errno here,
 * never a TS_E_* (that is ts_bus_error's).
 */
int ts_bus_errno(sd_bus_error *error, int r);

/*
 * What a handler returns when sd-bus cannot read an argument it asked for
 * (r < 0 from sd_bus_message_read and the like: a missing fd, a message
 * whose body ends early): InvalidArgs, "malformed arguments: STRERROR",
 * never the bare errno (sd-bus would answer System.Error.E*).
 */
int ts_bus_bad_args(sd_bus_error *error, int r);


/* Read an a{ss} into a ts_kv array (strings alias m). Limits TS_CONTEXT_*. */
int ts_bus_read_kv(sd_bus_message *m, ts_kv **ret, size_t *ret_n, size_t max);
/* An a{ss} that ts_bus_read_kv read is one malloc()ed block: for __attribute__((cleanup)). */
static inline void ts_kv_freep(ts_kv **p)
{
	free(*p);
}
#define _ts_cleanup_kv_ __attribute__((cleanup(ts_kv_freep)))

/*
 * A filter on the bus, as the private socket's scanner does it there: a
 * call to any method of the daemon's but the data methods is at most
 * TS_FRAME_SMALL_MAX bytes of arguments (what a method that waits for
 * polkit, a secret or a token helper holds meanwhile); a larger one is
 * answered LimitExceeded before any method sees it.
 */
int ts_bus_refuse_large(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* sd_bus filter: drop NO_REPLY_EXPECTED calls to methods whose only effect is their reply (1: dropped). */
int ts_bus_drop_unanswered(sd_bus_message *m, void *userdata, sd_bus_error *error);

#endif
