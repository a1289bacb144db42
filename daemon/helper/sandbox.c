/*
 * sandbox.c — the token helper's seccomp filter.
 *
 * The list is what the fido2, tpm2 and pkcs11 backends (libfido2, tpm2-tss,
 * p11-kit with SoftHSM2 and OpenSC, OpenSSL) were seen to call after the
 * request is read, measured with strace -f over the tpm2, fido2 and pkcs11
 * test groups and policy-escrow-hsm, plus the calls glibc makes on paths
 * those runs did not take (thread exit, signal return, sleeping, abort).
 * Everything before the request (exec, dynamic loading, the libraries'
 * set-up, threads they start) is done by then. Not in the list, among
 * others: execve, ptrace, process_vm_readv/writev, clone, fork, kill of
 * another process, bind/listen/accept, any socket but AF_UNIX, mount,
 * namespace, bpf, keyctl, setuid and friends.
 *
 * The tang backend (libcurl, getaddrinfo in the helper's own thread) and
 * the directory requests (libldap) need AF_INET and AF_INET6 sockets and a
 * few socket calls; they are in this
 * first filter, and ts_helper_sandbox_narrow stacks a second one that takes
 * the network away again for a request of any other type.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <linux/hidraw.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "helper/sandbox.h"

static const char *const allowed[] = {
	/* memory */
	"brk", "mmap", "munmap", "mprotect", "madvise", "mremap", "mlock", "munlock",
	/* files: token directories (SoftHSM2), /dev/hidraw*, /dev/tpmrm0, configuration, /sys */
	"openat", "read", "pread64", "write", "close", "lseek", "fcntl", "newfstatat", "fstat",
	"statfs", "getdents64", "readlink", "access", "ftruncate", "fsync", "fdatasync",
	/* sockets: pcscd, the TPM simulator of the tests; Tang servers and DNS (tang requests only, see below) */
	"connect", "sendto", "recvfrom", "poll", "ppoll", "sendmsg", "recvmsg", "sendmmsg", "getsockopt", "setsockopt",
	"getsockname", "getpeername", "shutdown", "uname",
	/* the second filter of ts_helper_sandbox_narrow */
	"seccomp",
	/* threads and signals */
	"futex", "rseq", "set_robust_list", "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "restart_syscall",
	"exit", "exit_group",
	/* identity, time, randomness */
	"getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getrandom",
	"clock_gettime", "gettimeofday", "nanosleep", "clock_nanosleep", "sched_yield",
	/* libraries name their threads (PR_SET_NAME) */
	"prctl",
#if defined(__SANITIZE_ADDRESS__)
	/*
	 * A sanitizer build only (tests): LeakSanitizer stops the process's
	 * threads with ptrace from a clone at exit, listing them with the raw
	 * open and getdents calls (its tracer blocks every signal, so a refused
	 * call there kills it silently and the exit spins). Never in the
	 * product build.
	 */
	"clone", "ptrace", "wait4", "sigaltstack", "prlimit64", "getrlimit", "sched_getaffinity", "pipe2",
	"kill", "tgkill", "unlink", "open", "getdents",
#endif
};

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
	char line[80] = "tokenseal-helper: seccomp: refused system call ";
	char num[16];
	size_t n = strlen(line), k = 0;
	unsigned v = (unsigned)si->si_syscall;
	ucontext_t *uc = uc_;

	do
		num[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < sizeof(num));
	while (k > 0 && n < sizeof(line) - 2)
		line[n++] = num[--k];
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
	/* The refused call returns -EPERM to its caller. */
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
	(void)uc;
	_exit(127);
#endif
}

int ts_helper_sandbox(char *err, size_t errlen)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	scmp_filter_ctx ctx;
	const char *what = "init";
	int r = 0;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		snprintf(err, errlen, "seccomp: cannot catch SIGSYS: %s", strerror(errno));
		return -1;
	}
	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL) {
		snprintf(err, errlen, "seccomp: cannot create the filter");
		return -1;
	}
	/* Every thread a library started before the request gets the filter too. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		what = "tsync";
		goto out;
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;   /* not on this architecture (e.g. getrlimit) */
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) < 0) {
			what = allowed[i];
			goto out;
		}
	}
	what = "socket/ioctl/clone3";
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX))) < 0 ||
	    /* libcurl's wake-up pair */
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6))) < 0 ||
	    /* hidraw: HIDIOCGRDESCSIZE, HIDIOCGRDESC, HIDIOCGRAWINFO, ... (type 'H') */
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
	                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, (unsigned)'H' << 8))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD))) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
		goto out;
	what = "load";
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	if (r < 0) {
		snprintf(err, errlen, "seccomp: %s: %s", what, strerror(-r));
		return -1;
	}
	return 0;
}

int ts_helper_sandbox_narrow(const char *type, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int r;

	if (type && (strcmp(type, "tang") == 0 || strcmp(type, "ldap") == 0))
		return 0;
	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		snprintf(err, errlen, "seccomp: cannot create the second filter");
		return -1;
	}
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0 ||
	    (r = seccomp_rule_add(ctx, SCMP_ACT_TRAP, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) < 0 ||
	    (r = seccomp_load(ctx)) < 0) {
		seccomp_release(ctx);
		snprintf(err, errlen, "seccomp: the second filter: %s", strerror(-r));
		return -1;
	}
	seccomp_release(ctx);
	return 0;
}
