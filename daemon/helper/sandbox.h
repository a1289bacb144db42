/* sandbox.h — the token helper's seccomp filter: only the system calls its token backends use. */
#ifndef TS_HELPER_SANDBOX_H
#define TS_HELPER_SANDBOX_H

#include <stddef.h>

/*
 * Install the filter on every thread of the process (before the request is
 * read). Any other system call is refused: the call returns EPERM and one
 * line "tokenseal-helper: seccomp: refused system call N" goes to stderr
 * (the daemon's log); clone3 answers ENOSYS so that glibc falls back to clone,
 * which is refused. Sockets: AF_UNIX, and AF_INET/AF_INET6 until
 * ts_helper_sandbox_narrow takes those away; ioctl: hidraw requests, TCGETS
 * and FIONREAD only. 0, or -1 with err set.
 */
int ts_helper_sandbox(char *err, size_t errlen);

/*
 * Once the request is read: a request for any type but tang and ldap (the
 * ones that talk to servers: Tang's, and the directory of the daemon's
 * escrow records; the caller passes "" for a tang request that needs no
 * server, such as describe) gets a second filter on top that refuses every
 * socket but AF_UNIX, so no other backend, and no code that took one over,
 * reaches the network. Filters only add up: this cannot widen the first.
 * 0, or -1 with err set (the helper then answers nothing).
 */
int ts_helper_sandbox_narrow(const char *type, char *err, size_t errlen);

#endif
