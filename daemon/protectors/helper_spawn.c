/*
 * helper_spawn.c — starting tokenseal-helper as its own unprivileged user.
 *
 * The helper parses what tokens send and loads vendors' PKCS#11 modules, so
 * it runs as a system user of its own (TS_HELPER_USER) that owns nothing of
 * the daemon's: not the state directory, not the daemon's process, not a
 * vault's owner on the bus. Its groups give it the token devices (tss for
 * /dev/tpmrm0; hidraw and PC/SC through the shipped udev rule and pcscd's
 * polkit rule, docs/ARCHITECTURE.md). The daemon forks, changes user in the
 * child and execs; posix_spawn cannot change user. Between fork and exec the
 * child calls only async-signal-safe functions.
 *
 * Where the service manager can start the helper instead (socket
 * activation: tokensealed --helper-socket), the daemon only connects, checks
 * who answered, and needs no capability at all (ts_helper_connect).
 *
 * Two kinds of helper run apart (helper_spawn.h): token helpers as
 * TS_HELPER_USER, network helpers (tang, the directory) as
 * TS_NET_HELPER_USER, which has no token access; each kind has its own
 * user, groups, argv and socket here.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tokenseal.h"
#include "protectors/helper_spawn.h"
#include "protectors/helper_wire.h"


#define MAX_GROUPS 64
#define MAX_ENV 16

/* Who one kind of helper runs as, and how the daemon reaches it (enum ts_helper_kind). */
typedef struct helper_identity {
	int configured;            /* ts_helper_spawn_init or ts_helper_connect_init ran for this kind */
	int switch_user;           /* 1: change to uid/gid/groups in the child */
	int readable;              /* a child found it could read the helper's program (ts_helper_binary_readable) */
	int unusable;              /* 1: init failed; no helper is started */
	char why[256];
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int n_groups;
	char *argv[4];
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];   /* socket mode: "" when not */
} helper_identity;

static struct {
	helper_identity id[TS_HELPER_KINDS];
	int env_built;
	char *env[MAX_ENV + 1];
} hs = {
	.id = {
		[TS_HELPER_TOKEN] = { .argv = { (char *)"tokenseal-helper", NULL } },
		/* The flag makes a helper refuse every token request: a mix-up of sockets or users fails closed. */
		[TS_HELPER_NET] = { .argv = { (char *)"tokenseal-helper", (char *)"--network", NULL } },
	},
};

const char *ts_helper_kind_name(ts_helper_kind kind)
{
	return kind == TS_HELPER_NET ? "network helper" : "token helper";
}

/*
 * The identity of kind. Network helpers nobody configured (token helpers on
 * a socket, no network socket) are unusable and say why: they never fall
 * back to anything. Token helpers nobody configured run as the caller's uid,
 * as before there were two kinds.
 */
static helper_identity *ident(ts_helper_kind kind)
{
	helper_identity *id = &hs.id[kind == TS_HELPER_NET ? TS_HELPER_NET : TS_HELPER_TOKEN];

	if (kind == TS_HELPER_NET && !id->configured && !id->unusable) {
		id->unusable = 1;
		snprintf(id->why, sizeof(id->why), "no %s is configured (tokensealed(8): --net-helper-socket next to "
		         "--helper-socket)", ts_helper_kind_name(kind));
	}
	return id;
}

static void env_build(void)
{
	static const char *const pass[] = TS_HELPER_ENV_PASS;
	static char tss2_log[] = "TSS2_LOG=all+NONE";
	size_t n = 0;

	if (hs.env_built)
		return;
	hs.env_built = 1;

	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]) && n < MAX_ENV - 1; i++) {
		const char *v = getenv(pass[i]);
		char *kv;
		if (!v || asprintf(&kv, "%s=%s", pass[i], v) < 0)
			continue;
		hs.env[n++] = kv;   /* kept for the daemon's lifetime */
	}
	if (!getenv("TSS2_LOG"))
		hs.env[n++] = tss2_log;
	hs.env[n] = NULL;
}

/* What the lookup of the helper's user found (a child's answer, read whole through a pipe). */
struct user_lookup {
	int ok;
	char why[256];
	uid_t uid;
	gid_t gid;
	int n_groups;
	gid_t groups[MAX_GROUPS];
};

static void lookup_user(const char *what, const char *user, struct user_lookup *lk)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = MAX_GROUPS, r;

	memset(lk, 0, sizeof(*lk));
	if ((r = getpwnam_r(user, &pw, buf, sizeof(buf), &res)) != 0 || !res) {
		snprintf(lk->why, sizeof(lk->why), "the %s's user %.64s %s%s", what, user,
		         r ? "cannot be looked up: " : "does not exist (systemd-sysusers creates it from tokenseal.conf)",
		         r ? strerror(r) : "");
		return;
	}
	if (pw.pw_uid == 0 || pw.pw_gid == 0) {
		snprintf(lk->why, sizeof(lk->why), "the %s's user %.64s is root's uid or group: refused", what, user);
		return;
	}
	if (getgrouplist(user, pw.pw_gid, lk->groups, &n) < 0) {
		snprintf(lk->why, sizeof(lk->why), "the %s's user %.64s is in more than %d groups", what, user,
		         MAX_GROUPS);
		return;
	}
	for (int i = 0; i < n; i++)
		if (lk->groups[i] == 0) {
			snprintf(lk->why, sizeof(lk->why), "the %s's user %.64s is in root's group: refused", what, user);
			return;
		}
	lk->uid = pw.pw_uid;
	lk->gid = pw.pw_gid;
	lk->n_groups = n;
	lk->ok = 1;
}

/*
 * The user database is asked in a child: NSS modules (libnss_systemd and
 * what it pulls in, ~0.6 MiB resident) are never mapped into the daemon.
 * If no child can be started, the daemon asks itself.
 */
static void lookup_user_apart(const char *what, const char *user, struct user_lookup *lk)
{
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		goto here;
	if ((pid = fork()) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		goto here;
	}
	if (pid == 0) {
		struct user_lookup mine;
		const char *p = (const char *)&mine;
		size_t off = 0;

		close(pfd[0]);
		lookup_user(what, user, &mine);
		while (off < sizeof(mine)) {
			ssize_t w = write(pfd[1], p + off, sizeof(mine) - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
		}
		_exit(0);
	}
	close(pfd[1]);
	while (got < sizeof(*lk)) {
		ssize_t n = read(pfd[0], (char *)lk + got, sizeof(*lk) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got == sizeof(*lk) && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		lk->why[sizeof(lk->why) - 1] = '\0';
		if (lk->n_groups < 0 || lk->n_groups > MAX_GROUPS)
			lk->ok = 0;
		return;
	}
here:
	lookup_user(what, user, lk);
}

int ts_helper_binary_readable(ts_helper_kind kind, const char *path)
{
	helper_identity *id = ident(kind);
	struct stat st;
	int in_group = 0;

	if (!id->switch_user || id->unusable)
		return 0;
	if (id->readable)
		return 1;
	if (stat(path, &st) < 0)
		return 0;
	if (st.st_uid == id->uid)
		return (st.st_mode & S_IRUSR) != 0;
	for (int i = 0; i < id->n_groups; i++)
		in_group |= id->groups[i] == st.st_gid;
	if (in_group || st.st_gid == id->gid)
		return (st.st_mode & S_IRGRP) != 0;
	return (st.st_mode & S_IROTH) != 0;
}

/* Look up the helper's user into lk and id's uid/gid: 0, or -TS_E_FAILED with err set (no helper will start). */
static int helper_user(helper_identity *id, const char *what, const char *user, struct user_lookup *lk, char *err,
                       size_t errlen)
{
	lookup_user_apart(what, user, lk);
	if (!lk->ok) {
		snprintf(id->why, sizeof(id->why), "%s", lk->why[0] ? lk->why : "the helper's user cannot be looked up");
		id->unusable = 1;
		snprintf(err, errlen, "%s", id->why);
		return -TS_E_FAILED;
	}
	id->uid = lk->uid;
	id->gid = lk->gid;
	return 0;
}

int ts_helper_spawn_init(ts_helper_kind kind, const char *user, const char *pkcs11_module, char *err, size_t errlen)
{
	helper_identity *id = &hs.id[kind];
	struct user_lookup lk;

	env_build();
	id->configured = 1;
	if (pkcs11_module && kind == TS_HELPER_TOKEN) {
		id->argv[1] = (char *)"--pkcs11-module";
		id->argv[2] = strdup(pkcs11_module);
		if (!id->argv[2])
			id->argv[1] = NULL;
	}
	if (geteuid() != 0)
		return 0;   /* not root: the helper is the daemon's own uid, nothing to change */
	id->switch_user = 1;
	if (helper_user(id, ts_helper_kind_name(kind), user, &lk, err, errlen) < 0)
		return -TS_E_FAILED;
	id->n_groups = lk.n_groups;
	memcpy(id->groups, lk.groups, sizeof(id->groups));
	return 0;
}

int ts_helper_connect_init(ts_helper_kind kind, const char *path, const char *user, char *err, size_t errlen)
{
	helper_identity *id = &hs.id[kind];
	struct user_lookup lk;

	id->configured = 1;
	if (path[0] != '/' || strlen(path) >= sizeof(id->socket_path)) {
		snprintf(id->why, sizeof(id->why), "the %s socket %.100s: not an absolute path of at most %zu bytes",
		         ts_helper_kind_name(kind), path, sizeof(id->socket_path) - 1);
		id->unusable = 1;
		snprintf(err, errlen, "%s", id->why);
		return -TS_E_FAILED;
	}
	memcpy(id->socket_path, path, strlen(path) + 1);
	/* Nothing to change in a child, whoever the daemon runs as: only who a helper must be. */
	return helper_user(id, ts_helper_kind_name(kind), user, &lk, err, errlen);
}

int ts_helper_identities_apart(char *err, size_t errlen)
{
	helper_identity *t = &hs.id[TS_HELPER_TOKEN], *n = &hs.id[TS_HELPER_NET];
	int t_known = t->configured && !t->unusable && (t->switch_user || t->socket_path[0]);
	int n_known = n->configured && !n->unusable && (n->switch_user || n->socket_path[0]);
	int shares = t_known && n_known && (t->uid == n->uid || t->gid == n->gid);

	(void)ident(TS_HELPER_NET);   /* not configured: unusable from here, with its reason */
	/* Forked: both group lists are known; no group of the token helper's (tss, the hidraw nodes') may be its. */
	for (int i = 0; t_known && n_known && i < n->n_groups; i++) {
		shares |= n->groups[i] == t->gid;
		for (int j = 0; j < t->n_groups; j++)
			shares |= n->groups[i] == t->groups[j];
	}
	if (!shares)
		return 0;
	snprintf(n->why, sizeof(n->why), "the network helper's user (uid %ld gid %ld) is the token helper's, or shares "
	         "a group with it: it must be a user of its own (" TS_NET_HELPER_USER ", not in tss)", (long)n->uid,
	         (long)n->gid);
	n->unusable = 1;
	snprintf(err, errlen, "%s", n->why);
	return -TS_E_FAILED;
}

const char *ts_helper_socket(ts_helper_kind kind)
{
	helper_identity *id = &hs.id[kind];

	return id->socket_path[0] ? id->socket_path : NULL;
}

/*
 * Take the hello (one byte) with the sender's credentials, without waiting,
 * and check who sent it. 0 and *ret_pid; 1 when nothing has come yet; or
 * -TS_E_FAILED with err set (no hello, no credentials, or not the helper's
 * user: then nothing may be sent).
 */
int ts_helper_hello(ts_helper_kind kind, int fd, pid_t *ret_pid, char *err, size_t errlen)
{
	helper_identity *id = ident(kind);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} control;
	struct ucred cred = { 0 };
	uint8_t b = 0;
	struct iovec iov = { .iov_base = &b, .iov_len = 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
	                    .msg_controllen = sizeof(control.buf) };
	struct cmsghdr *c;
	ssize_t n;

	while ((n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 1;
	if (n <= 0) {
		snprintf(err, errlen, "the %s socket %.200s closed the connection before a helper answered%s%s",
		         ts_helper_kind_name(kind), id->socket_path, n < 0 ? ": " : " (no helper could start, or too many run)",
		         n < 0 ? strerror(errno) : "");
		return -TS_E_FAILED;
	}
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len == CMSG_LEN(sizeof(cred))) {
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			break;
		}
	if (!c || (m.msg_flags & MSG_CTRUNC)) {
		snprintf(err, errlen, "the %s socket %.200s: the first byte came without its sender's credentials",
		         ts_helper_kind_name(kind), id->socket_path);
		return -TS_E_FAILED;
	}
	if (b != TS_WIRE_HELLO) {
		snprintf(err, errlen, "the %s socket %.200s: pid %ld (uid %ld) did not greet as a helper",
		         ts_helper_kind_name(kind), id->socket_path, (long)cred.pid, (long)cred.uid);
		return -TS_E_FAILED;
	}
	/* The PIN goes to the helper's user only: not root's listener, not another user's. */
	if (cred.uid != id->uid || cred.gid != id->gid || cred.pid <= 0) {
		snprintf(err, errlen, "the %s socket %.200s is served by pid %ld, uid %ld gid %ld, not by the helper's "
		         "user (uid %ld gid %ld): refused, nothing sent", ts_helper_kind_name(kind), id->socket_path, (long)cred.pid, (long)cred.uid,
		         (long)cred.gid, (long)id->uid, (long)id->gid);
		return -TS_E_FAILED;
	}
	*ret_pid = cred.pid;
	return 0;
}

int ts_helper_connect_start(ts_helper_kind kind, int *ret_fd, int *ret_connecting, char *err, size_t errlen)
{
	helper_identity *id = ident(kind);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, on = 1;

	*ret_connecting = 0;
	if (id->unusable) {
		snprintf(err, errlen, "%s", id->why);
		return -TS_E_FAILED;
	}
	memcpy(sa.sun_path, id->socket_path, strlen(id->socket_path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errlen, "%s: socket: %s", ts_helper_kind_name(kind), strerror(errno));
		return -TS_E_FAILED;
	}
	/* Before connect: every byte the other end writes then carries its writer's credentials. */
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		snprintf(err, errlen, "%s: SO_PASSCRED: %s", ts_helper_kind_name(kind), strerror(errno));
		close(fd);
		return -TS_E_FAILED;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINPROGRESS) {
			*ret_connecting = 1;
			*ret_fd = fd;
			return 0;
		}
		/* A local socket does not wait: a full backlog is EAGAIN at once. */
		snprintf(err, errlen, "cannot connect to the %s socket %.200s: %s", ts_helper_kind_name(kind), id->socket_path,
		         errno == EAGAIN ? "too many connections wait to be accepted; try again" : strerror(errno));
		close(fd);
		return errno == EAGAIN ? -TS_E_BUSY : -TS_E_FAILED;
	}
	*ret_fd = fd;
	return 0;
}

int ts_helper_connect_done(ts_helper_kind kind, int fd, char *err, size_t errlen)
{
	helper_identity *id = ident(kind);
	int e = 0;
	socklen_t l = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		e = errno;
	if (e != 0) {
		snprintf(err, errlen, "cannot connect to the %s socket %.200s: %s", ts_helper_kind_name(kind), id->socket_path, strerror(e));
		return -TS_E_FAILED;
	}
	return 0;
}

int ts_helper_connect(ts_helper_kind kind, int timeout_ms, int *ret_fd, pid_t *ret_pid, char *err, size_t errlen)
{
	helper_identity *id = ident(kind);
	uint64_t until;
	struct timespec now;
	int fd, connecting, r;

	if ((r = ts_helper_connect_start(kind, &fd, &connecting, err, errlen)) < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &now);
	until = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000 + (uint64_t)timeout_ms;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = connecting ? POLLOUT : POLLIN };
		uint64_t ms;
		int n;

		if (connecting)
			r = 1;
		else if ((r = ts_helper_hello(kind, fd, ret_pid, err, errlen)) <= 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
		if (ms >= until) {
			snprintf(err, errlen, "no %s answered on %.200s within %d ms", ts_helper_kind_name(kind), id->socket_path, timeout_ms);
			r = -TS_E_FAILED;
			break;
		}
		while ((n = poll(&p, 1, (int)(until - ms))) < 0 && errno == EINTR)
			;
		if (connecting && n > 0) {
			if ((r = ts_helper_connect_done(kind, fd, err, errlen)) < 0)
				break;
			connecting = 0;
		}
	}
	if (r < 0) {
		close(fd);
		return -TS_E_FAILED;
	}
	/* The synchronous caller writes and reads with waits of its own. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		snprintf(err, errlen, "%s: fcntl: %s", ts_helper_kind_name(kind), strerror(errno));
		close(fd);
		return -TS_E_FAILED;
	}
	*ret_fd = fd;
	return 0;
}

static int caps_set(uint64_t permitted, uint64_t effective)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2] = {
		{ .effective = (uint32_t)effective, .permitted = (uint32_t)permitted, .inheritable = 0 },
		{ .effective = (uint32_t)(effective >> 32), .permitted = (uint32_t)(permitted >> 32), .inheritable = 0 },
	};

	return (int)syscall(SYS_capset, &h, d);
}

#define CAP_BIT(c) (1ull << (c))

/* What ts_helper_caps_restrict kept (permitted) and left raised (effective); 0 before it ran. */
static uint64_t kept_permitted, kept_effective;
static int caps_restricted;

int ts_helper_caps_restrict(int keep_ptrace, char *err, size_t errlen)
{
	int forks = 0;
	uint64_t keep, effective = 0;

	for (int k = 0; k < TS_HELPER_KINDS; k++)
		forks |= hs.id[k].switch_user && !hs.id[k].unusable;
	keep = forks ? CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID) | CAP_BIT(CAP_KILL) : 0;
	if (keep_ptrace) {
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct d[2];
		if (syscall(SYS_capget, &h, d) == 0 && (d[0].permitted & CAP_BIT(CAP_SYS_PTRACE))) {
			keep |= CAP_BIT(CAP_SYS_PTRACE);
			effective |= CAP_BIT(CAP_SYS_PTRACE);
		}
	}

	/* The bounding set first: dropping from it needs CAP_SETPCAP, which goes next. */
	if (prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) == 1)
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			if (!(keep & CAP_BIT(c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL &&
			    errno != EPERM)
				break;
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	/* Kept in the permitted set only: raised by the child that changes user, nowhere else. */
	if (caps_set(keep, effective) < 0) {
		snprintf(err, errlen, "cannot drop capabilities: %s", strerror(errno));
		return -TS_E_FAILED;
	}
	kept_permitted = keep;
	kept_effective = effective;
	caps_restricted = 1;
	return 0;
}

int ts_helper_kill(ts_helper_kind kind, pid_t pid)
{
	int r, e;

	if (pid <= 0 || hs.id[kind].socket_path[0]) {
		errno = EPERM;
		return -1;
	}
	/* The helper is another uid: signalling it takes CAP_KILL, raised for this one call. */
	if (!caps_restricted || !(kept_permitted & CAP_BIT(CAP_KILL)))
		return kill(pid, SIGKILL);
	(void)caps_set(kept_permitted, kept_effective | CAP_BIT(CAP_KILL));
	r = kill(pid, SIGKILL);
	e = errno;
	(void)caps_set(kept_permitted, kept_effective);
	errno = e;
	return r;
}

/* Child side: report the failed step's errno on the status pipe and exit. */
static _Noreturn void child_fail(int status_fd, int step)
{
	int e[2] = { step, errno };

	(void)!write(status_fd, e, sizeof(e));
	_exit(127);
}

enum { STEP_SIGNALS = 1, STEP_FDS, STEP_CAPS, STEP_GROUPS, STEP_GID, STEP_UID, STEP_VERIFY, STEP_NNP, STEP_EXEC,
       NOTE_READABLE = 100 };

static const char *step_name(int step)
{
	switch (step) {
	case STEP_SIGNALS: return "reset signals";
	case STEP_FDS: return "set up file descriptors";
	case STEP_CAPS: return "raise CAP_SETUID/CAP_SETGID";
	case STEP_GROUPS: return "set its groups";
	case STEP_GID: return "set its group";
	case STEP_UID: return "set its user";
	case STEP_VERIFY: return "verify its user";
	case STEP_NNP: return "set no_new_privs";
	default: return "exec";
	}
}

int ts_helper_spawn(ts_helper_kind kind, const char *path, int child_fd, int err_fd, pid_t *ret_pid, char *err,
                    size_t errlen)
{
	helper_identity *id = ident(kind);
	int status_pipe[2], e[2], status;
	ssize_t n;
	pid_t pid;

	if (id->unusable) {
		snprintf(err, errlen, "%s", id->why);
		return -TS_E_FAILED;
	}
	if (pipe2(status_pipe, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: pipe: %s", ts_helper_kind_name(kind), strerror(errno));
		return -TS_E_FAILED;
	}
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "%s: fork: %s", ts_helper_kind_name(kind), strerror(errno));
		close(status_pipe[0]);
		close(status_pipe[1]);
		return -TS_E_FAILED;
	}
	if (pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigset_t none;
		int fd = status_pipe[1], devnull;

		sigemptyset(&none);
		for (int s = 1; s < NSIG; s++)
			(void)sigaction(s, &dfl, NULL);   /* EINVAL for SIGKILL, SIGSTOP and glibc's own */
		if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
			child_fail(fd, STEP_SIGNALS);
		/* The status pipe moves above fd 3 so that closing from 4 keeps it. */
		if (fd <= 3 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 4)) < 0)
			_exit(127);
		if (child_fd == 3 || child_fd == 2 || (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 ||
		    dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(err_fd >= 0 ? err_fd : devnull, 2) < 0 ||
		    dup2(child_fd, 3) < 0)
			child_fail(fd, STEP_FDS);
		for (int i = 4; i < fd; i++)
			close(i);
		if (syscall(SYS_close_range, fd + 1, ~0u, 0) < 0)
			child_fail(fd, STEP_FDS);
		if (id->switch_user) {
			/* Only these two, effective (a kept CAP_SYS_PTRACE goes here). */
			if (caps_set(CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID), CAP_BIT(CAP_SETUID) | CAP_BIT(CAP_SETGID)) < 0)
				child_fail(fd, STEP_CAPS);
			if (setgroups((size_t)id->n_groups, id->groups) < 0)
				child_fail(fd, STEP_GROUPS);
			if (setresgid(id->gid, id->gid, id->gid) < 0)
				child_fail(fd, STEP_GID);
			/* Leaving uid 0 clears every capability (no SECBIT_KEEP_CAPS). */
			if (setresuid(id->uid, id->uid, id->uid) < 0)
				child_fail(fd, STEP_UID);
			errno = EPERM;
			if (getuid() != id->uid || geteuid() != id->uid || getgid() != id->gid || setresuid(0, 0, 0) == 0)
				child_fail(fd, STEP_VERIFY);
		}
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			child_fail(fd, STEP_NNP);
		/* As the helper's user now: can it read its own program (mode bits, ACLs)? Then say so. */
		if (id->switch_user && access(path, R_OK) == 0) {
			int note[2] = { NOTE_READABLE, 0 };
			(void)!write(fd, note, sizeof(note));
		}
		execve(path, id->argv, hs.env);
		child_fail(fd, STEP_EXEC);
	}
	close(status_pipe[1]);
	for (;;) {
		do
			n = read(status_pipe[0], e, sizeof(e));
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(e) || e[0] != NOTE_READABLE)
			break;
		id->readable = 1;   /* a note, not a failure: the exec follows */
	}
	close(status_pipe[0]);
	if (n == 0) {
		*ret_pid = pid;
		return 0;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(e))
		snprintf(err, errlen, "cannot start the %s %.300s: %s: %s", ts_helper_kind_name(kind), path, step_name(e[0]), strerror(e[1]));
	else
		snprintf(err, errlen, "cannot start the %s %.300s", ts_helper_kind_name(kind), path);
	return -TS_E_FAILED;
}
