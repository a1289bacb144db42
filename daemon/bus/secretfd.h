/* secretfd.h — secrets read from and written to a caller's fd, never waiting in the loop. */
#ifndef TS_BUS_SECRETFD_H
#define TS_BUS_SECRETFD_H

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/state.h"

/*
 * A secret fd is a pipe or a socket, nothing else: a regular file on FUSE
 * or a hung NFS mount, a device or a directory could block read() for as
 * long as it likes. 0, or -TS_E_INVALID_ARGS for any other kind of file.
 */
int ts_secretfd_check(int fd);
/* The message for an error of the functions below (-TS_E_INVALID_ARGS, -TS_E_TIMEOUT, ...). */
const char *ts_secretfd_strerror(int r);

typedef struct ts_secretfd_op ts_secretfd_op;
/*
 * Called once from the loop: r 0 with secret (secure memory, now the
 * callee's to ts_secure_free; NULL when the secret is empty) and its length,
 * or a negative TS_E_* (-TS_E_TIMEOUT, -TS_E_LIMIT, -TS_E_INVALID_ARGS).
 * The op is freed already.
 */
typedef void (*ts_secretfd_read_fn)(void *userdata, int r, uint8_t *secret, size_t len);
/*
 * Read a secret from fd (checked with ts_secretfd_check; a copy of it is
 * made non-blocking, which the caller's copy shares) until EOF, without ever
 * waiting in the loop: at most TS_SECRET_IN_MAX bytes within
 * TS_SECRET_FD_TIMEOUT_MS in all, one trailing "\n" stripped. done runs from
 * event's loop, never before this returns. 0 and *ret (for
 * ts_secretfd_cancel), or negative TS_E_* (done will not run).
 */
int ts_secretfd_read_start(sd_event *event, int fd, ts_secretfd_read_fn done, void *userdata, ts_secretfd_op **ret);
/* Stop a read without calling done (NULL is fine). */
void ts_secretfd_cancel(ts_secretfd_op *op);

/*
 * The secret of method call m's fd, for a handler that keeps no job of its
 * own: the first call starts the read and returns 0 (the handler returns 1
 * without replying; m is dispatched again when the read has ended), the
 * call from that second dispatch returns 1 with *ret, *ret_len as
 * ts_secretfd_read_fn gets them (the handler's to ts_secure_free). Negative
 * with error set (named after what, e.g. "secret_in") on failure, or Busy
 * when too many reads of the caller's uid are in flight. Whatever the
 * handler does before this call runs twice: only checks belong there. A
 * secret read but not taken (the second dispatch failed before this call,
 * or waits for polkit) is wiped 150 s after the read ended.
 */
int ts_secretfd_take(ts_daemon *d, sd_bus_message *m, int fd, const char *what, uint8_t **ret, size_t *ret_len,
                     sd_bus_error *error);
/* Drop every read of ts_secretfd_take in flight (shutdown): no reply. */
void ts_secretfd_stop(void);

/*
 * An output fd that ts_secretfd_write may take len bytes through: a pipe or
 * a socket (else -TS_E_INVALID_ARGS), and a pipe with room for len bytes now
 * (else -TS_E_IO), so that a full pipe is refused before any work is done.
 */
int ts_secretfd_check_out(int fd, size_t len);

/*
 * Write all of p (at most 4096 bytes) to fd, a pipe or a socket, at once or
 * not at all: never a wait. A full or closed pipe is -TS_E_IO, any other
 * kind of file -TS_E_INVALID_ARGS, so the caller can roll back.
 */
int ts_secretfd_write(int fd, const void *p, size_t len);

#endif
