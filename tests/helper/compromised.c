/*
 * compromised.c — the token helper turned hostile, for tests/integration/isolation-helper.sh and
 * isolation-escrow-stall.sh only.
 *
 * Linked into build/tests/tokenseal-helper-compromised (main.c built with
 * -DTS_HELPER_COMPROMISED), never into the installed helper. After reading
 * its request, inside its sandbox, it tries what code running in a
 * compromised helper would try, and writes one line per attempt to stderr
 * (the daemon's log):
 *
 *     compromised-helper: ATTEMPT: refused (why)    or    ...: SUCCEEDED (what)
 *
 * unwrap:  call Unwrap on a vault it does not own over the bus (the address
 *          is given, so a refusal is the bus's or daemon's answer to who it is);
 * open:    open a vault file in the state directory;
 * ptrace:  PTRACE_ATTACH to the daemon (its parent);
 * vmread:  process_vm_readv of the daemon's memory;
 * forge:   write a line to its stderr that would pass for the daemon's own
 *          audit event (the daemon logs helper output escaped, as the helper's);
 * spy:     (mode=spy, serving vault "trigger") open /proc/PID/mem of the
 *          next helper the daemon starts, while it starts (before its own
 *          PR_SET_DUMPABLE and seccomp), to read another user's PIN or to
 *          patch its filter away; the helper serving vault "victim" then
 *          reports its Seccomp status and whether fork() works;
 * stall:   (mode=stall, serving vault "trigger") send one byte of a reply,
 *          then nothing, and never exit;
 * stall-describe: (mode=stall-describe) answer no request to describe a
 *          record, and never exit;
 * escrow-stall: (mode=escrow-stall) the same as stall for every escrow RSA key wrap;
 * escrow-exit:  (mode=escrow-exit) exit at once, without a reply, instead.
 * net:     (mode=net, for tests/integration/tang-protector.sh) only this:
 *          open a TCP connection to 127.0.0.1:net= (a Tang server), reported
 *          with the request's type: only a tang request may reach the network.
 * What to attack is read from compromised.conf next to the executable
 * (bus=, path=, blob= hex, file=, addr= hex, mode=), written by the test.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "protectors/helper_wire.h"

void ts_helper_compromised(uint8_t op, const char *type, const char *vault_name);

static struct {
	char bus[512], path[256], file[PATH_MAX], mode[32];
	unsigned port;
	uint8_t blob[4096];
	size_t blob_len;
	unsigned long long addr;
} cf;

static void report(const char *attempt, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const char *attempt, int ok, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(2, "compromised-helper: %s: %s (%s)\n", attempt, ok ? "SUCCEEDED" : "refused", msg);
}

static int read_conf(void)
{
	char exe[PATH_MAX], name[PATH_MAX + 32], line[8192];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	FILE *f;

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(name, sizeof(name), "%s/compromised.conf", exe);
	if ((f = fopen(name, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, '=');
		if (!v)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\n")] = '\0';
		if (strcmp(line, "bus") == 0)
			snprintf(cf.bus, sizeof(cf.bus), "%s", v);
		else if (strcmp(line, "path") == 0)
			snprintf(cf.path, sizeof(cf.path), "%s", v);
		else if (strcmp(line, "file") == 0)
			snprintf(cf.file, sizeof(cf.file), "%s", v);
		else if (strcmp(line, "addr") == 0)
			cf.addr = strtoull(v, NULL, 16);
		else if (strcmp(line, "net") == 0)
			cf.port = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(line, "mode") == 0)
			snprintf(cf.mode, sizeof(cf.mode), "%s", v);
		else if (strcmp(line, "blob") == 0)
			for (cf.blob_len = 0; v[0] && v[1] && cf.blob_len < sizeof(cf.blob); v += 2) {
				char h[3] = { v[0], v[1], 0 };
				cf.blob[cf.blob_len++] = (uint8_t)strtoul(h, NULL, 16);
			}
	}
	fclose(f);
	return 0;
}

/* ---- a minimal D-Bus client (plain read/write on an AF_UNIX socket, little endian) ---- */

typedef struct msg { uint8_t b[8192]; size_t n; } msg;

static void pad(msg *m, size_t a) { while (m->n % a) m->b[m->n++] = 0; }
static void u32(msg *m, uint32_t v) { pad(m, 4); memcpy(m->b + m->n, &v, 4); m->n += 4; }
static void str(msg *m, const char *s) { size_t l = strlen(s); u32(m, (uint32_t)l); memcpy(m->b + m->n, s, l + 1); m->n += l + 1; }
static void sig(msg *m, const char *s) { size_t l = strlen(s); m->b[m->n++] = (uint8_t)l; memcpy(m->b + m->n, s, l + 1); m->n += l + 1; }
static void field(msg *m, uint8_t code, const char *type, const char *v)
{
	pad(m, 8);
	m->b[m->n++] = code;
	sig(m, type);
	if (type[0] == 'g')
		sig(m, v);
	else
		str(m, v);
}

/* A method call; body (already marshalled from offset 0, 8-aligned start) may be empty. */
static void call(msg *m, uint32_t serial, const char *dest, const char *path, const char *iface, const char *member,
                 const char *signature, const msg *body)
{
	size_t arr;

	m->n = 0;
	m->b[m->n++] = 'l', m->b[m->n++] = 1, m->b[m->n++] = 0, m->b[m->n++] = 1;
	u32(m, body ? (uint32_t)body->n : 0);
	u32(m, serial);
	u32(m, 0);   /* array length, set below */
	arr = m->n;
	field(m, 1, "o", path);
	field(m, 2, "s", iface);
	field(m, 3, "s", member);
	field(m, 6, "s", dest);
	if (signature)
		field(m, 8, "g", signature);
	{
		uint32_t l = (uint32_t)(m->n - arr);
		memcpy(m->b + 12, &l, 4);
	}
	pad(m, 8);
	if (body) {
		memcpy(m->b + m->n, body->b, body->n);
		m->n += body->n;
	}
}

static int read_full(int fd, void *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = read(fd, (uint8_t *)p + off, n - off);
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/* Read messages until the reply to serial: 0 method return, 1 error (name in err). -1 on I/O. */
static int reply(int fd, uint32_t serial, char *err, size_t errlen, size_t *body_len)
{
	for (;;) {
		uint8_t h[16], *rest;
		uint32_t blen, fl, rs = 0;
		size_t total, off;
		int type;

		if (read_full(fd, h, 16) < 0)
			return -1;
		memcpy(&blen, h + 4, 4);
		memcpy(&fl, h + 12, 4);
		total = ((16 + fl + 7) & ~(size_t)7) + blen;
		if (total > (1u << 20) || (rest = malloc(total)) == NULL)
			return -1;
		memcpy(rest, h, 16);
		if (read_full(fd, rest + 16, total - 16) < 0) {
			free(rest);
			return -1;
		}
		type = h[1];
		err[0] = '\0';
		for (off = 16; off < 16 + fl;) {
			uint8_t code = rest[off], sl = rest[off + 1];
			char t = (char)rest[off + 2];
			off += 2 + sl + 1;
			if (t == 'u') {
				off = (off + 3) & ~(size_t)3;
				if (code == 5)
					memcpy(&rs, rest + off, 4);
				off += 4;
			} else if (t == 's' || t == 'o') {
				uint32_t l;
				off = (off + 3) & ~(size_t)3;
				memcpy(&l, rest + off, 4);
				if (code == 4)
					snprintf(err, errlen, "%.*s", (int)l, (char *)rest + off + 4);
				off += 4 + l + 1;
			} else if (t == 'g') {
				off += 1 + rest[off] + 1;
			} else
				break;
			off = (off + 7) & ~(size_t)7;
		}
		free(rest);
		if ((type == 2 || type == 3) && rs == serial) {
			*body_len = blen;
			return type == 3;
		}
	}
}

static void try_unwrap(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *p = strstr(cf.bus, "path=");
	char auth[128], line[256], err[256] = "";
	msg m, body;
	size_t l, blen = 0;
	int fd, r;

	if (!p || !cf.path[0]) {
		report("unwrap", 0, "test set-up: no bus address or vault path given");
		return;
	}
	p += 5;
	l = strcspn(p, ",");
	if (l >= sizeof(sa.sun_path)) {
		report("unwrap", 0, "test set-up: bus path too long");
		return;
	}
	memcpy(sa.sun_path, p, l);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		report("unwrap", 0, "socket: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		report("unwrap", 0, "connect to the bus: %s", strerror(errno));
		close(fd);
		return;
	}
	{
		char uid[16];
		int k = snprintf(uid, sizeof(uid), "%u", (unsigned)getuid()), n = snprintf(auth, sizeof(auth), "%cAUTH EXTERNAL ", 0);
		for (int i = 0; i < k; i++)
			n += snprintf(auth + n, sizeof(auth) - (size_t)n, "%02x", (unsigned char)uid[i]);
		n += snprintf(auth + n, sizeof(auth) - (size_t)n, "\r\n");
		if (write(fd, auth, (size_t)n) != n || read(fd, line, sizeof(line) - 1) <= 0 || strncmp(line, "OK ", 3) != 0 ||
		    write(fd, "BEGIN\r\n", 7) != 7) {
			report("unwrap", 0, "bus authentication: %s", strerror(errno));
			close(fd);
			return;
		}
	}
	call(&m, 1, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", NULL, NULL);
	if (write(fd, m.b, m.n) != (ssize_t)m.n || (r = reply(fd, 1, err, sizeof(err), &blen)) != 0) {
		report("unwrap", 0, "Hello: %s", err[0] ? err : strerror(errno));
		close(fd);
		return;
	}
	/* body "aya{ss}": the blob, an empty context */
	body.n = 0;
	u32(&body, (uint32_t)cf.blob_len);
	memcpy(body.b + body.n, cf.blob, cf.blob_len);
	body.n += cf.blob_len;
	u32(&body, 0);
	pad(&body, 8);
	call(&m, 2, "org.tokenseal1", cf.path, "org.tokenseal1.Vault", "Unwrap", "aya{ss}", &body);
	if (write(fd, m.b, m.n) != (ssize_t)m.n || (r = reply(fd, 2, err, sizeof(err), &blen)) < 0)
		report("unwrap", 0, "I/O on the bus: %s", strerror(errno));
	else if (r == 1)
		report("unwrap", 0, "%s", err);
	else
		report("unwrap", 1, "a reply of %zu bytes: the plaintext key", blen);
	close(fd);
}

static void try_open(void)
{
	int fd = open(cf.file, O_RDONLY | O_CLOEXEC);
	char b[64];
	ssize_t n;

	if (fd < 0) {
		report("open", 0, "%s", strerror(errno));
		return;
	}
	n = read(fd, b, sizeof(b));
	report("open", n > 0, "read %zd bytes of the vault file", n);
	close(fd);
}

static void try_ptrace(void)
{
	pid_t daemon = getppid();
	uint8_t b[16];
	struct iovec local = { b, sizeof(b) }, remote = { (void *)(uintptr_t)cf.addr, sizeof(b) };
	ssize_t n;

	if (ptrace(PTRACE_ATTACH, daemon, 0, 0) < 0)
		report("ptrace", 0, "PTRACE_ATTACH to the daemon (pid %d): %s", (int)daemon, strerror(errno));
	else {
		report("ptrace", 1, "attached to the daemon (pid %d)", (int)daemon);
		(void)ptrace(PTRACE_DETACH, daemon, 0, 0);
	}
	if ((n = process_vm_readv(daemon, &local, 1, &remote, 1, 0)) < 0)
		report("vmread", 0, "process_vm_readv of the daemon at 0x%llx: %s", cf.addr, strerror(errno));
	else
		report("vmread", 1, "read %zd bytes of the daemon's memory at 0x%llx", n, cf.addr);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Read one byte of process p's memory through an open /proc/p/mem (an exiting process has none left): 1 or 0. */
static int mem_readable(pid_t p, int memfd)
{
	char path[64], line[256];
	unsigned long long start;
	uint8_t byte;
	FILE *f;
	int ok = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)p);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) && sscanf(line, "%llx-", &start) == 1)
		ok = pread(memfd, &byte, 1, (off_t)start) == 1;
	fclose(f);
	return ok;
}

/* Is process p a tokenseal-helper (after its exec: comm is the program's name)? */
static int is_helper(pid_t p)
{
	char path[64], comm[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)p);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	comm[n > 0 ? n : 0] = '\0';
	return strncmp(comm, "tokenseal-help", 14) == 0;
}

/*
 * Wait (up to 20 s) for the next helper the daemon starts (pids are handed
 * out in order: the few above ours are watched in a tight loop) and open its
 * memory read-write while it starts, reading a byte to be sure: a starting
 * process is dumpable until it says otherwise, unless its binary is one its
 * user cannot read (then exec makes it non-dumpable from the start).
 */
static void try_spy(const char *stop)
{
	pid_t self = getpid(), p;
	uint64_t end = now_ms() + 20000;
	int seen = 0;

	/* Until the test says the next helper has done its work (the file stop), or 20 s. */
	while (now_ms() < end && access(stop, F_OK) < 0) {
		for (p = self + 1; p < self + 256; p++) {
			char path[64];
			int fd;

			snprintf(path, sizeof(path), "/proc/%d/mem", (int)p);
			if ((fd = open(path, O_RDWR | O_CLOEXEC)) >= 0) {
				int got = is_helper(p) && mem_readable(p, fd);
				close(fd);
				if (got) {
					report("spy", 1, "opened /proc/%d/mem read-write and read it: the next helper's memory, "
					       "PINs and filter included", (int)p);
					return;
				}
				continue;
			}
			if ((errno == EACCES || errno == EPERM) && is_helper(p) && seen++ == 0)
				dprintf(2, "compromised-helper: spy: /proc/%d/mem of a helper: %s\n", (int)p, strerror(errno));
		}
	}
	report("spy", 0, "no /proc/PID/mem of a helper started after it could be opened and read (%d refused)", seen);
}

/*
 * In mode spy every helper of this program dawdles 300 ms before main (and
 * so before main makes it non-dumpable): the few milliseconds a real
 * helper's start takes become a window the test hits every time. A helper
 * exec'd from a binary its user cannot read is non-dumpable all along.
 */
__attribute__((constructor)) static void spy_window(void)
{
	struct timespec t = { 0, 300 * 1000 * 1000 };

	if (read_conf() == 0 && strcmp(cf.mode, "spy") == 0)
		nanosleep(&t, NULL);
}

static void victim_report(void)
{
	char b[4096], *s;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof(b) - 1) : -1;
	pid_t c;

	if (fd >= 0)
		close(fd);
	b[n > 0 ? n : 0] = '\0';
	s = strstr(b, "Seccomp:");
	c = (pid_t)syscall(SYS_fork);
	if (c == 0)
		_exit(0);
	dprintf(2, "compromised-helper: victim: %.10s, fork(): %s\n", s ? s : "Seccomp: ?",
	        c > 0 ? "SUCCEEDED (no filter)" : strerror(errno));
}

/* A TCP connection out of the helper, to 127.0.0.1:port. */
static void try_net(uint8_t op, const char *t)
{
	char type[64];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cf.port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd;

	snprintf(type, sizeof(type), "%s %s", t, op == TS_WIRE_OP_ENROLL ? "enroll" : op == TS_WIRE_OP_UNLOCK ? "unlock" :
	         op == TS_WIRE_OP_DESCRIBE ? "describe" : "other");
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		report("net", 0, "type %s: socket(AF_INET): %s", type, strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		report("net", 0, "type %s: connect to 127.0.0.1:%u: %s", type, cf.port, strerror(errno));
	else
		report("net", 1, "type %s: connected to 127.0.0.1:%u", type, cf.port);
	close(fd);
}

/* One byte of a reply, then nothing, and never exit: the daemon must not wait for the rest. */
static void stall(void)
{
	struct timespec t = { 600, 0 };

	dprintf(2, "compromised-helper: stall: one byte of a reply, then nothing\n");
	(void)!write(3, "", 1);
	for (;;)
		nanosleep(&t, NULL);
}

void ts_helper_compromised(uint8_t op, const char *type, const char *vault_name)
{
	dprintf(2, "compromised-helper: running as uid %u gid %u\n", (unsigned)getuid(), (unsigned)getgid());
	if (read_conf() < 0) {
		report("config", 0, "cannot read compromised.conf next to the executable: %s", strerror(errno));
		return;
	}
	if (strcmp(cf.mode, "net") == 0) {
		try_net(op, type);
		return;
	}
	if (strcmp(vault_name, "victim") == 0) {
		victim_report();
		return;
	}
	if (strcmp(vault_name, "trigger") == 0 && strcmp(cf.mode, "spy") == 0) {
		char exe[PATH_MAX], stop[PATH_MAX + 8];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		exe[n > 0 ? n : 0] = '\0';
		if (strrchr(exe, '/'))
			*strrchr(exe, '/') = '\0';
		snprintf(stop, sizeof(stop), "%s/stop", exe);
		try_spy(stop);
		_exit(0);
	}
	if (op == TS_WIRE_OP_DESCRIBE && strcmp(cf.mode, "stall-describe") == 0) {
		struct timespec t = { 600, 0 };
		dprintf(2, "compromised-helper: stall-describe: no answer\n");
		for (;;)
			nanosleep(&t, NULL);
	}
	if (strcmp(vault_name, "trigger") == 0 && strcmp(cf.mode, "stall") == 0)
		stall();
	if (op == TS_WIRE_OP_ESCROW_WRAP_KEY && strcmp(cf.mode, "escrow-stall") == 0)
		stall();
	if (op == TS_WIRE_OP_ESCROW_WRAP_KEY && strcmp(cf.mode, "escrow-exit") == 0) {
		dprintf(2, "compromised-helper: escrow-exit: no reply\n");
		_exit(1);
	}
	if (op == TS_WIRE_OP_ESCROW_WRAP_KEY)
		return;   /* an escrow wrap otherwise runs as in the real helper */
	try_unwrap();
	try_open();
	try_ptrace();
	dprintf(2, "\n<5>tokensealed: event=unlock vault=forged-by-helper owner=0 uid=0 pid=1 protector=p1 result=ok\n");
}
