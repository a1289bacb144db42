/* main.c — softfido: a software CTAP2.1 authenticator on a Unix SOCK_SEQPACKET socket, for tests. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "softfido.h"

/*
 * One poll loop serves everything: the HID socket (each message one 64-byte
 * report), the control socket (line commands that play the user), and the
 * clients of both. While a request waits for a touch, sf_up_wait() turns the
 * same loop, so CANCEL, INIT and the control socket still work meanwhile.
 */

#define MAX_CONNS 8
#define MAX_CTLS 4
#define CTL_LINE_MAX 256

struct sf_conn {
	int fd;
	unsigned gen; /* bumped on close, so a stale pointer never reaches a new client */
};

typedef struct ctl_conn {
	int fd;
	size_t len;
	char line[CTL_LINE_MAX];
} ctl_conn;

sf_authenticator sf;

static int hid_listen_fd = -1, ctl_listen_fd = -1;
static sf_conn conns[MAX_CONNS];
static ctl_conn ctls[MAX_CTLS];
static const char *socket_path, *control_path, *pidfile_path;

uint64_t sf_now_ms(void) {
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sf_log(const char *fmt, ...) {
	va_list ap;

	fprintf(stderr, "softfido[%lu]: ", sf.serial);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int sf_persist(void) {
	if (sf_state_save(&sf.st, sf.state_path) < 0) {
		sf_log("cannot write the state file: %s", strerror(errno));
		return CTAP1_ERR_OTHER;
	}
	return CTAP2_OK;
}

void sf_power_cycle(void) {
	sf.pin_failures = 0;
	sf_pin_regenerate();
	sf_pin_reset_token();
	sf.boot_ms = sf_now_ms();
}

/* ---- HID connections ----------------------------------------------------- */

unsigned sf_conn_gen(const sf_conn *c) {
	return c->gen;
}

int sf_conn_alive(const sf_conn *c, unsigned gen) {
	return c && c->fd >= 0 && c->gen == gen;
}

static void conn_close(sf_conn *c) {
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->gen++;
	sf_hid_conn_closed(c);
}

/* A client that stops reading must not stall the authenticator forever:
 * wait up to a second for room, then drop it. */
int sf_conn_send(sf_conn *c, const uint8_t pkt[SF_REPORT_LEN]) {
	struct pollfd p = { .fd = c->fd, .events = POLLOUT };
	ssize_t n;

	if (c->fd < 0)
		return -1;
	for (int tries = 0; tries < 2; tries++) {
		n = send(c->fd, pkt, SF_REPORT_LEN, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == SF_REPORT_LEN)
			return 0;
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			break;
		if (poll(&p, 1, 1000) <= 0)
			break;
	}
	conn_close(c);
	return -1;
}

static void hid_accept(void) {
	int fd = accept4(hid_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd < 0) {
			conns[i].fd = fd;
			return;
		}
	close(fd); /* all slots in use: as if the device were busy elsewhere */
}

static void hid_read(sf_conn *c) {
	uint8_t buf[SF_REPORT_LEN + 1];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n > 0)
		sf_hid_packet(c, buf, (size_t)n);
}

/* ---- control channel ----------------------------------------------------- */

static void ctl_reply(ctl_conn *k, const char *s) {
	if (send(k->fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		sf_log("control reply lost: %s", strerror(errno));
}

static void ctl_command(ctl_conn *k, char *line) {
	char buf[256];
	static const char *const modes[] = { "approve", "deny", "timeout" };

	if (!strcmp(line, "up approve") || !strcmp(line, "up deny") || !strcmp(line, "up timeout")) {
		sf.up_mode = !strcmp(line + 3, "approve") ? SF_UP_APPROVE
		             : !strcmp(line + 3, "deny")  ? SF_UP_DENY
		                                          : SF_UP_TIMEOUT;
		sf.up_once = 0;
		ctl_reply(k, "ok\n");
	} else if (!strcmp(line, "up approve-once") || !strcmp(line, "up deny-once")) {
		sf.up_once = (!strcmp(line + 3, "approve-once") ? SF_UP_APPROVE : SF_UP_DENY) + 1;
		ctl_reply(k, "ok\n");
	} else if (!strcmp(line, "flags honest") || !strcmp(line, "flags no-up") || !strcmp(line, "flags no-uv") ||
	           !strcmp(line, "flags no-up,no-uv")) {
		/* A broken or malicious key: assertions without the UP (and no touch) or UV flag, same output. */
		sf.lie_flags = (strstr(line, "no-up") ? 0x01u : 0) | (strstr(line, "no-uv") ? 0x04u : 0);
		ctl_reply(k, "ok\n");
	} else if (!strcmp(line, "status")) {
		snprintf(buf, sizeof(buf),
		         "serial=%lu pin_set=%d pin_retries=%u pin_failures=%u power_cycle_needed=%d "
		         "sign_count=%u up=%s%s token=%d flags=%s\n",
		         sf.serial, sf.st.pin_set, sf.st.pin_retries, sf.pin_failures,
		         sf.pin_failures >= SF_PIN_AUTH_FAILURES_MAX, (unsigned)sf.st.sign_count, modes[sf.up_mode],
		         sf.up_once == SF_UP_APPROVE + 1 ? "+approve-once"
		         : sf.up_once == SF_UP_DENY + 1  ? "+deny-once"
		                                         : "",
		         sf.token.in_use,
		         sf.lie_flags == 0 ? "honest" : sf.lie_flags == 0x01u ? "no-up" : sf.lie_flags == 0x04u ? "no-uv"
		                                                                                    : "no-up,no-uv");
		ctl_reply(k, buf);
	} else if (!strcmp(line, "power-cycle")) {
		sf_power_cycle();
		ctl_reply(k, "ok\n");
	} else {
		ctl_reply(k, "error unknown command\n");
	}
}

static void ctl_close(ctl_conn *k) {
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
	k->len = 0;
}

static void ctl_read(ctl_conn *k) {
	ssize_t n = recv(k->fd, k->line + k->len, sizeof(k->line) - 1 - k->len, MSG_DONTWAIT);
	char *nl;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		ctl_close(k);
		return;
	}
	if (n < 0)
		return;
	k->len += (size_t)n;
	k->line[k->len] = '\0';
	while ((nl = memchr(k->line, '\n', k->len))) {
		size_t used = (size_t)(nl - k->line) + 1;

		*nl = '\0';
		if (nl > k->line && nl[-1] == '\r')
			nl[-1] = '\0';
		ctl_command(k, k->line);
		memmove(k->line, k->line + used, k->len - used);
		k->len -= used;
		k->line[k->len] = '\0';
	}
	if (k->len == sizeof(k->line) - 1) { /* a line too long to be a command */
		ctl_reply(k, "error line too long\n");
		ctl_close(k);
	}
}

static void ctl_accept(void) {
	int fd = accept4(ctl_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CTLS; i++)
		if (ctls[i].fd < 0) {
			ctls[i].fd = fd;
			ctls[i].len = 0;
			return;
		}
	close(fd);
}

/* ---- the loop ------------------------------------------------------------- */

void sf_loop_once(int timeout_ms) {
	struct pollfd pfd[2 + MAX_CONNS + MAX_CTLS];
	struct { int kind, idx, fd; unsigned gen; } what[2 + MAX_CONNS + MAX_CTLS];
	int n = 0, t, r;

	pfd[n] = (struct pollfd){ .fd = hid_listen_fd, .events = POLLIN };
	what[n++] = (typeof(what[0])){ 0, 0, hid_listen_fd, 0 };
	if (ctl_listen_fd >= 0) {
		pfd[n] = (struct pollfd){ .fd = ctl_listen_fd, .events = POLLIN };
		what[n++] = (typeof(what[0])){ 1, 0, ctl_listen_fd, 0 };
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
			what[n++] = (typeof(what[0])){ 2, i, conns[i].fd, conns[i].gen };
		}
	for (int i = 0; i < MAX_CTLS; i++)
		if (ctls[i].fd >= 0) {
			pfd[n] = (struct pollfd){ .fd = ctls[i].fd, .events = POLLIN };
			what[n++] = (typeof(what[0])){ 3, i, ctls[i].fd, 0 };
		}
	t = sf_hid_timeout_ms();
	if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
		timeout_ms = t;
	r = poll(pfd, (nfds_t)n, timeout_ms);
	if (r > 0) {
		for (int i = 0; i < n && !sf.terminating; i++) {
			if (!pfd[i].revents)
				continue;
			/* A handler may have run a nested loop (a touch wait) that closed or
			 * reused this slot: act only if it is still the same client. */
			switch (what[i].kind) {
			case 0:
				hid_accept();
				break;
			case 1:
				ctl_accept();
				break;
			case 2:
				if (conns[what[i].idx].fd == what[i].fd && conns[what[i].idx].gen == what[i].gen)
					hid_read(&conns[what[i].idx]);
				break;
			case 3:
				if (ctls[what[i].idx].fd == what[i].fd)
					ctl_read(&ctls[what[i].idx]);
				break;
			}
		}
	}
	sf_hid_tick();
}

/* ---- setup --------------------------------------------------------------- */

static void on_signal(int sig) {
	(void)sig;
	sf.terminating = 1;
}

static int listen_on(const char *path, int type) {
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "softfido: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path); /* a stale socket from an earlier run */
	if ((fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 || listen(fd, 8) < 0) {
		fprintf(stderr, "softfido: cannot listen on %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int parse_hex(const char *s, uint8_t *out, size_t n) {
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", s[2 * i + 1]))
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void usage(FILE *f) {
	fprintf(f, "usage: softfido --socket PATH --state FILE [--control PATH] [--aaguid HEX32]\n"
	           "                [--pin-protocols 1,2|1|2] [--up approve|deny|timeout] [--serial N]\n"
	           "                [--pidfile FILE] [--verbose]\n");
}

int main(int argc, char **argv) {
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, 'S' },
		{ "control", required_argument, NULL, 'c' },
		{ "aaguid", required_argument, NULL, 'a' },
		{ "pin-protocols", required_argument, NULL, 'p' },
		{ "up", required_argument, NULL, 'u' },
		{ "serial", required_argument, NULL, 'n' },
		{ "pidfile", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint8_t aaguid[16];
	int have_aaguid = 0, o, rc = 1;
	struct sigaction sa;
	char *end;

	sf.proto_v1 = sf.proto_v2 = 1;
	sf.up_mode = SF_UP_APPROVE;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			socket_path = optarg;
			break;
		case 'S':
			sf.state_path = optarg;
			break;
		case 'c':
			control_path = optarg;
			break;
		case 'a':
			if (parse_hex(optarg, aaguid, sizeof(aaguid)) < 0) {
				fprintf(stderr, "softfido: --aaguid wants 32 hex digits\n");
				return 2;
			}
			have_aaguid = 1;
			break;
		case 'p':
			if (!strcmp(optarg, "1,2") || !strcmp(optarg, "2,1"))
				sf.proto_v1 = sf.proto_v2 = 1;
			else if (!strcmp(optarg, "1"))
				sf.proto_v1 = 1, sf.proto_v2 = 0;
			else if (!strcmp(optarg, "2"))
				sf.proto_v1 = 0, sf.proto_v2 = 1;
			else {
				fprintf(stderr, "softfido: --pin-protocols wants 1,2 or 1 or 2\n");
				return 2;
			}
			break;
		case 'u':
			if (!strcmp(optarg, "approve"))
				sf.up_mode = SF_UP_APPROVE;
			else if (!strcmp(optarg, "deny"))
				sf.up_mode = SF_UP_DENY;
			else if (!strcmp(optarg, "timeout"))
				sf.up_mode = SF_UP_TIMEOUT;
			else {
				fprintf(stderr, "softfido: --up wants approve, deny or timeout\n");
				return 2;
			}
			break;
		case 'n':
			errno = 0;
			sf.serial = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg) {
				fprintf(stderr, "softfido: --serial wants a number\n");
				return 2;
			}
			break;
		case 'P':
			pidfile_path = optarg;
			break;
		case 'v':
			sf.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!socket_path || !sf.state_path || optind != argc) {
		usage(stderr);
		return 2;
	}
	umask(077);
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	for (int i = 0; i < MAX_CTLS; i++)
		ctls[i].fd = -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() must return */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (sf_state_load(&sf.st, sf.state_path, have_aaguid ? aaguid : NULL) < 0) {
		fprintf(stderr, "softfido: cannot load or create the state file %s\n", sf.state_path);
		goto out;
	}
	sf_power_cycle();
	if (!sf.key_agreement)
		goto out;
	if ((hid_listen_fd = listen_on(socket_path, SOCK_SEQPACKET)) < 0)
		goto out;
	if (control_path && (ctl_listen_fd = listen_on(control_path, SOCK_STREAM)) < 0)
		goto out;
	if (pidfile_path) {
		FILE *f = fopen(pidfile_path, "w");

		if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
			fprintf(stderr, "softfido: cannot write %s\n", pidfile_path);
			goto out;
		}
	}
	sf_log("ready on %s (PIN protocols%s%s, PIN %s)", socket_path, sf.proto_v2 ? " 2" : "",
	       sf.proto_v1 ? " 1" : "", sf.st.pin_set ? "set" : "not set");
	while (!sf.terminating)
		sf_loop_once(-1);
	sf_log("terminating");
	rc = 0;
out:
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	for (int i = 0; i < MAX_CTLS; i++)
		ctl_close(&ctls[i]);
	if (hid_listen_fd >= 0) {
		close(hid_listen_fd);
		unlink(socket_path);
	}
	if (ctl_listen_fd >= 0) {
		close(ctl_listen_fd);
		unlink(control_path);
	}
	if (pidfile_path && rc == 0)
		unlink(pidfile_path);
	EVP_PKEY_free(sf.key_agreement);
	sf_wipe(&sf.st, sizeof(sf.st));
	sf_wipe(&sf.token, sizeof(sf.token));
	return rc;
}
