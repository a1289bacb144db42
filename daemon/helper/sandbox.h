/* sandbox.h — the token helper's seccomp filter: only the system calls its token backends use. */
#ifndef TS_HELPER_SANDBOX_H
#define TS_HELPER_SANDBOX_H

#include <stddef.h>

/*
 * Install the filter on every thread of the process (before the request is
 * read). Any other system call is refused: the call returns EPERM and one
 * line "tokenseal-helper: seccomp: refused system call N" goes to stderr
 * (the daemon's log); clone3 answers ENOSYS so that glibc falls back to clone,
 * which is refused. Sockets: AF_UNIX only (pcscd, the TPM simulator of the
 * tests); ioctl: hidraw requests and TCGETS only. 0, or -1 with err set.
 */
int ts_helper_sandbox(char *err, size_t errlen);

#endif
