/* util.c — helpers shared by the tokenseal subcommands: errors, exit codes, input, output, secret prompts. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "lib/client-internal.h"

struct cli_globals cli;

int cli_exit_code(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
	case TS_OK:
		return EXIT_OK;
	case TS_E_LOCKED:
		return EXIT_LOCKED;
	case TS_E_ACCESS_DENIED:
		return EXIT_DENIED;
	case TS_E_NO_SUCH_VAULT:
		return EXIT_NO_VAULT;
	case TS_E_AUTH_FAILED:
	case TS_E_PIN_INVALID:
	case TS_E_PIN_BLOCKED:
	case TS_E_PIN_REQUIRED:
	case TS_E_BAD_RECOVERY_KEY:
	case TS_E_TOKEN_NOT_ENROLLED:
	case TS_E_TOUCH_DENIED:
	case TS_E_PCR_MISMATCH:
		return EXIT_AUTH;
	case TS_E_TOKEN_ABSENT:
	case TS_E_TIMEOUT:
		return EXIT_TOKEN;
	case TS_E_BAD_BLOB:
	case TS_E_CONTEXT_MISMATCH:
	case TS_E_WRONG_VAULT:
	case TS_E_KEY_RETIRED:
	case TS_E_UNSUPPORTED_VERSION:
		return EXIT_BLOB;
	case TS_E_NO_DAEMON:
		return EXIT_NO_DAEMON;
	case TS_E_POLICY_VIOLATION:
		return EXIT_POLICY;
	default:
		return EXIT_FAIL;
	}
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("tokenseal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_report(ts_client *c, int r)
{
	const char *msg = c && ts_client_last_code(c) ? ts_client_last_error(c) : "";

	if (r == -TS_E_CONTEXT_MISMATCH)
		cli_err("%s (give the same --context entries as when it was wrapped)", *msg ? msg : ts_strerror(r));
	else
		cli_err("%s", *msg ? msg : ts_strerror(r));
	return cli_exit_code(r);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("tokenseal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'tokenseal %s--help'.\n", cmd ? cmd : "");
	return EXIT_USAGE;
}

int cli_common_opt(int ch, const char *cmd, const char *help, const char *common)
{
	switch (ch) {
	case CLI_OPT_VAULT:
		cli.vault = optarg;
		return 0;
	case 'h':
		fputs(help, stdout);
		fputs(common, stdout);
		return -1;
	default:
		return cli_usage_error(cmd, "bad option");
	}
}

int cli_connect(ts_client **ret)
{
	int r;

	if ((r = ts_client_open(ret, cli.bus)) < 0) {
		const char *where = cli.bus ? cli.bus : getenv("TOKENSEAL_BUS"), *sock = getenv("TOKENSEAL_PRIVATE_SOCKET");

		if (where && *where)
			cli_err("cannot connect to tokensealed (bus: %s): %s", where, ts_strerror(r));
		else if (sock && *sock)
			cli_err("cannot connect to tokensealed (private socket %s, served by root or you): %s", sock,
			        ts_strerror(r));
		else
			cli_err("cannot connect to tokensealed (private socket " TS_PRIVATE_SOCKET ", system bus): %s",
			        ts_strerror(r));
		return cli_exit_code(r);
	}
	return 0;
}

int cli_kv_set(struct cli_kvlist *l, const char *key, const char *value)
{
	ts_kv *n;

	if (l->n >= TS_CONTEXT_MAX_ENTRIES) {
		cli_err("too many entries (at most %d)", TS_CONTEXT_MAX_ENTRIES);
		return EXIT_USAGE;
	}
	if ((n = realloc(l->kv, (l->n + 1) * sizeof(*n))) == NULL) {
		cli_err("out of memory");
		return EXIT_FAIL;
	}
	l->kv = n;
	n[l->n].key = key;
	n[l->n].value = value;
	l->n++;
	return 0;
}

int cli_kv_add(struct cli_kvlist *l, char *arg, const char *what)
{
	char *eq = strchr(arg, '=');

	if (!eq || eq == arg) {
		cli_err("%s '%s' is not KEY=VALUE", what, arg);
		return EXIT_USAGE;
	}
	*eq = '\0';
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->kv[i].key, arg) == 0) {
			cli_err("%s key '%s' given twice", what, arg);
			return EXIT_USAGE;
		}
	return cli_kv_set(l, arg, eq + 1);
}

void cli_kv_free(struct cli_kvlist *l)
{
	free(l->kv);
	l->kv = NULL;
	l->n = 0;
}

int cli_read_path(const char *path, size_t max, uint8_t **ret, size_t *ret_len, const char *what)
{
	int fd, rc;

	*ret = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		cli_err("cannot open %s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	rc = cli_read_fd(fd, max, ret, ret_len, what);
	close(fd);
	return rc;
}

int cli_read_fd(int fd, size_t max, uint8_t **ret, size_t *ret_len, const char *what)
{
	uint8_t *buf;
	size_t len = 0;
	ssize_t n;

	*ret = NULL;
	*ret_len = 0;
	/* Input may be a plaintext key: secure memory from the first byte. */
	if ((buf = sodium_malloc(max + 1)) == NULL) {
		cli_err("out of memory");
		return EXIT_FAIL;
	}
	for (;;) {
		/* Read one byte past max to tell "exactly max" from "too long". */
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err("reading %s: %s", what, strerror(errno));
			ts_secret_free(buf, max + 1);
			return EXIT_FAIL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			cli_err("%s is longer than %zu bytes", what, max);
			ts_secret_free(buf, max + 1);
			return EXIT_USAGE;
		}
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

int cli_parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < 0 || v > INT_MAX || s[0] == '-' || s[0] == '+')
		return -1;
	return (int)v;
}

int cli_write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	ssize_t n;

	while (len > 0) {
		n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- secret prompt on the terminal ---------------------------------------------------------- */

/* The terminal state to restore if a signal arrives while echo is off. */
static int tty_fd = -1;
static struct termios tty_saved;

static void tty_restore_on_signal(int sig)
{
	/* tcsetattr and write are async-signal-safe. */
	if (tty_fd >= 0) {
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
		(void)!write(tty_fd, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int prompt_tty(const char *prompt, char *buf, size_t cap, size_t *ret_len)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa = { .sa_handler = tty_restore_on_signal }, old[5];
	struct termios t;
	size_t len = 0;
	int rc = 0, fd;
	char ch;
	ssize_t n;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		cli_err("no terminal to ask for the secret on; give it with --pin-fd N");
		return EXIT_USAGE;
	}
	if (tcgetattr(fd, &tty_saved) < 0) {
		close(fd);
		cli_err("cannot read the terminal settings: %s; give the secret with --pin-fd N", strerror(errno));
		return EXIT_USAGE;
	}
	t = tty_saved;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	t.c_lflag |= ICANON;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &sa, &old[i]);
	tty_fd = fd;
	/* Echo off before the prompt: TCSAFLUSH drops input typed before this point, never after it. */
	if (tcsetattr(fd, TCSAFLUSH, &t) < 0) {
		rc = EXIT_FAIL;
		cli_err("cannot turn off echo: %s", strerror(errno));
		goto out;
	}
	(void)!write(fd, prompt, strlen(prompt));
	for (;;) {
		n = read(fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err("reading the terminal: %s", strerror(errno));
			rc = EXIT_FAIL;
			break;
		}
		if (n == 0 || ch == '\n' || ch == '\r')
			break;
		if (len + 1 >= cap) {
			cli_err("secret longer than %zu bytes", cap - 1);
			rc = EXIT_USAGE;
			break;
		}
		buf[len++] = ch;
	}
	ch = 0;
	tcsetattr(fd, TCSAFLUSH, &tty_saved);
	(void)!write(fd, "\n", 1);
out:
	tty_fd = -1;
	for (size_t i = 0; i < 5; i++)
		sigaction(sigs[i], &old[i], NULL);
	close(fd);
	buf[len] = '\0';
	*ret_len = len;
	return rc;
}

int cli_ask_line(const char *prompt, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	char ch;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		return -1;
	(void)!write(fd, prompt, strlen(prompt));
	for (;;) {
		n = read(fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || ch == '\n' || ch == '\r')
			break;
		if (len + 1 < cap)
			buf[len++] = ch;
	}
	close(fd);
	buf[len] = '\0';
	return n < 0 ? -1 : 0;
}

int cli_get_secret(int fd, const char *prompt, char **ret, size_t *ret_len)
{
	char *buf;
	uint8_t *in = NULL;
	size_t len = 0;
	int rc;

	*ret = NULL;
	*ret_len = 0;
	if ((buf = sodium_malloc(CLI_SECRET_ALLOC)) == NULL) {
		cli_err("out of memory");
		return EXIT_FAIL;
	}
	if (fd >= 0) {
		if ((rc = cli_read_fd(fd, CLI_SECRET_ALLOC - 1, &in, &len, "the secret from --pin-fd")) != 0) {
			ts_secret_free(buf, CLI_SECRET_ALLOC);
			return rc;
		}
		/* One line: a trailing newline (and CR) is not part of the secret. */
		if (len > 0 && in[len - 1] == '\n')
			len--;
		if (len > 0 && in[len - 1] == '\r')
			len--;
		memcpy(buf, in, len);
		buf[len] = '\0';
		ts_secret_free(in, CLI_SECRET_ALLOC);
	} else if ((rc = prompt_tty(prompt, buf, CLI_SECRET_ALLOC, &len)) != 0) {
		ts_secret_free(buf, CLI_SECRET_ALLOC);
		return rc;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ---- output files --------------------------------------------------------------------------- */

int cli_out_open(struct cli_out *o, const char *path, unsigned mode)
{
	mode_t mask;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	if (!path || strcmp(path, "-") == 0) {
		o->fd = STDOUT_FILENO;
		return 0;
	}
	/* A temporary next to the target, so a failed run never leaves half a key or blob behind. */
	if (asprintf(&o->tmp, "%s.tmpXXXXXX", path) < 0 || (o->path = strdup(path)) == NULL) {
		cli_err("out of memory");
		return EXIT_FAIL;
	}
	if ((o->fd = mkostemp(o->tmp, O_CLOEXEC)) < 0) {
		cli_err("cannot create %s: %s", path, strerror(errno));
		free(o->tmp);
		free(o->path);
		o->tmp = o->path = NULL;
		return EXIT_FAIL;
	}
	mask = umask(0);
	umask(mask);
	if (fchmod(o->fd, (mode_t)mode & ~mask) < 0) {
		cli_err("chmod %s: %s", o->tmp, strerror(errno));
		cli_out_commit(o, 0);
		return EXIT_FAIL;
	}
	return 0;
}

int cli_out_commit(struct cli_out *o, int ok)
{
	int rc = 0;

	if (!o->path) {
		o->fd = -1;
		return 0;
	}
	if (ok && (fsync(o->fd) < 0 || rename(o->tmp, o->path) < 0)) {
		cli_err("cannot write %s: %s", o->path, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (!ok || rc)
		unlink(o->tmp);
	close(o->fd);
	o->fd = -1;
	free(o->tmp);
	free(o->path);
	o->tmp = o->path = NULL;
	return rc;
}
