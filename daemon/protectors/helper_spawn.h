/* helper_spawn.h — how tokensealed starts tokenseal-helper: as its own unprivileged user, with a minimal environment. */
#ifndef TS_HELPER_SPAWN_H
#define TS_HELPER_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* The helpers' system users (contrib/sysusers.d/tokenseal.conf): tokens, and network requests. */
#define TS_HELPER_USER "tokenseal-helper"
#define TS_NET_HELPER_USER "tokenseal-net"

/*
 * Two kinds of helper, the same program: a token helper (FIDO2, TPM,
 * PKCS#11: its user is in tss and owns the hidraw nodes, its unit has no
 * network) and a network helper (tang enrollment and unlock, [escrow]
 * publish: a user with no token access, a unit with no device and only the
 * servers' addresses; started with --network, it refuses token requests,
 * and the token helper refuses network ones). Each kind has its own user
 * and its own socket or forked children; the calls below take the kind.
 */
typedef enum ts_helper_kind {
	TS_HELPER_TOKEN = 0,
	TS_HELPER_NET = 1,
	TS_HELPER_KINDS
} ts_helper_kind;

/* "token helper" or "network helper", for messages. */
const char *ts_helper_kind_name(ts_helper_kind kind);

/*
 * Environment variables the helper inherits from the daemon; every other one
 * is dropped. SOFTHSM2_CONF and PCSCLITE_CSOCK_NAME tell a token library
 * where its token is; the *SAN_OPTIONS only matter to a sanitizer build.
 * TSS2_LOG is always set (the daemon's, else all+NONE: tpm2-tss logs every
 * TPM error otherwise).
 */
#define TS_HELPER_ENV_PASS { "SOFTHSM2_CONF", "PCSCLITE_CSOCK_NAME", "TSS2_LOG", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" }

/*
 * Decide who the helper runs as, once, at start-up (before ts_helper_caps_restrict).
 * Run as root, the daemon starts every helper as user (its uid, its primary
 * group and its supplementary groups, e.g. tss); run as another uid, the
 * helper simply runs as that uid. pkcs11_module (or NULL) is passed to the
 * helper, which then maps only that PKCS#11 module. Returns 0, or
 * -TS_E_FAILED with err set when user does not exist or its groups cannot
 * be read; the daemon then starts no helper at all (ts_helper_spawn fails
 * with that message), never one as root.
 */
int ts_helper_spawn_init(ts_helper_kind kind, const char *user, const char *pkcs11_module, char *err, size_t errlen);

/*
 * Socket mode (tokensealed --helper-socket), instead of
 * ts_helper_spawn_init: every helper is a connection to the socket at path,
 * for which the service manager starts one tokenseal-helper as user
 * (contrib/tokenseal-helper.socket, Accept=yes). The daemon then starts no
 * process, so it keeps no capability at all (ts_helper_caps_restrict) and
 * kills no helper: it closes its end, and the helper unit's RuntimeMaxSec=
 * ends a helper that overruns. user is looked up whoever the daemon runs as:
 * its uid and group are what a helper must prove (ts_helper_connect).
 * Returns 0, or -TS_E_FAILED with err set as ts_helper_spawn_init; the
 * daemon then connects to nobody.
 */
int ts_helper_connect_init(ts_helper_kind kind, const char *path, const char *user, char *err, size_t errlen);

/*
 * After both inits: where both kinds have a known user (the daemon changes
 * user, or connects to sockets), they must differ in uid and primary group,
 * and, when the daemon changes user, share no group at all (tss...), else the
 * network helper is made unusable (its requests fail, nothing is sent) and
 * -TS_E_FAILED with err set. A kind never configured is unusable too: its
 * requests fail with a message naming the option. 0 otherwise.
 */
int ts_helper_identities_apart(char *err, size_t errlen);

/* The socket of ts_helper_connect_init for kind, or NULL when its helpers are the daemon's children. */
const char *ts_helper_socket(ts_helper_kind kind);

/*
 * Connect to the helper socket and wait at most timeout_ms for the helper's
 * hello (TS_WIRE_HELLO, helper_wire.h): the kernel's credentials of that
 * write must be the helper's user and group, else nothing is sent, the
 * connection is closed and err says who served the socket. The listener's
 * own SO_PEERCRED is no proof: it names the service manager. Returns 0 with
 * *ret_fd (close-on-exec, the caller's to close) and *ret_pid (the helper's,
 * for the log only: it is no child of the daemon's), or -TS_E_FAILED with
 * err set and nothing left open.
 */
int ts_helper_connect(ts_helper_kind kind, int timeout_ms, int *ret_fd, pid_t *ret_pid, char *err, size_t errlen);

/*
 * The same without waiting, for the event loop: ts_helper_connect_start
 * connects non-blocking, 0 with *ret_fd (close-on-exec, non-blocking, the
 * caller's to close) and *ret_connecting 1 when the connection is still
 * being made (wait for EPOLLOUT, then ts_helper_connect_done: 0 or
 * -TS_E_FAILED with err set); or -TS_E_BUSY (the socket's backlog is full)
 * or -TS_E_FAILED with err set and nothing open. Then, once the fd is
 * readable, ts_helper_hello takes the hello and checks who sent it exactly
 * as ts_helper_connect does: 0 with *ret_pid, 1 when nothing came yet, or
 * -TS_E_FAILED with err set (send nothing then). How long to wait for the
 * hello is the caller's (its own timer).
 */
int ts_helper_connect_start(ts_helper_kind kind, int *ret_fd, int *ret_connecting, char *err, size_t errlen);
int ts_helper_connect_done(ts_helper_kind kind, int fd, char *err, size_t errlen);
int ts_helper_hello(ts_helper_kind kind, int fd, pid_t *ret_pid, char *err, size_t errlen);

/*
 * Keep no capability but CAP_SETUID, CAP_SETGID and CAP_KILL, and only in
 * the permitted set: the first two are raised in the forked child, just
 * before it changes to the helper's user; CAP_KILL only around the kill of a
 * helper that overran its time (ts_helper_kill), which is another uid. When the helper needs no change of user (the
 * daemon is not root, or ts_helper_spawn_init failed) they go too. With
 * keep_ptrace, CAP_SYS_PTRACE stays (effective) if the daemon has it: a
 * policy's [unwrap] executables needs it to read /proc/PID/exe of a caller
 * (tokenseal-policy(5)). In socket mode (ts_helper_connect_init) not even
 * those three: nothing, bar that CAP_SYS_PTRACE. The bounding set is
 * narrowed too where the daemon may (CAP_SETPCAP). 0, or -TS_E_FAILED with
 * err set.
 */
int ts_helper_caps_restrict(int keep_ptrace, char *err, size_t errlen);

/*
 * 1 when the helper's user may read the program at path. Then a helper is
 * dumpable from its exec until it makes itself non-dumpable, and another
 * helper (the same uid) can open its /proc/PID/mem meanwhile; installed
 * execute-only (0711, root's: make install), exec makes it non-dumpable
 * from its first instruction. 0 when it cannot, or no change of user.
 * Before the first helper, from the mode bits; once a helper was started,
 * also from what that child found as the helper's user (ACLs included).
 */
int ts_helper_binary_readable(ts_helper_kind kind, const char *path);

/*
 * SIGKILL a helper (raising CAP_KILL for that call when the helper is
 * another uid). kill(2)'s result; -1 with EPERM in socket mode, where a
 * helper's pid is no child's and may be reused by anyone's process.
 */
int ts_helper_kill(ts_helper_kind kind, pid_t pid);

/*
 * Start path as the helper: fd 3 is child_fd (which the caller still owns
 * and closes), 0 and 1 are /dev/null, 2 is err_fd (the caller's pipe, whose
 * lines the daemon logs escaped as the helper's; -1: /dev/null), never the
 * daemon's own stderr, no other fd, the
 * helper's user and groups, the environment above, no_new_privs set, every
 * signal default and unblocked. Returns once the helper has exec'd: 0 and
 * *ret_pid, or -TS_E_FAILED with err set (nothing left running).
 */
int ts_helper_spawn(ts_helper_kind kind, const char *path, int child_fd, int err_fd, pid_t *ret_pid, char *err, size_t errlen);

#endif
