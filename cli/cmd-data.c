/* cmd-data.c — tokenseal wrap, unwrap, rewrap and gen-key: data keys in and out of blobs. */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "lib/client-internal.h"

/* Options common to the data commands. */
struct data_opts {
	struct cli_kvlist ctx;
	const char *in;
	const char *out;
	const char *blob_out;
	const char *key_out;
	int text;
	int hex;
	size_t size;
};

enum { OPT_IN = CLI_OPT_FIRST, OPT_OUT, OPT_TEXT, OPT_HEX, OPT_BLOB_OUT, OPT_KEY_OUT, OPT_SIZE };

/* The options of every data command; each adds its own before CLI_COMMON_OPTIONS. */
#define DATA_CONTEXT_OPTION { "context", required_argument, NULL, 'c' }
#define DATA_IO_OPTIONS \
	DATA_CONTEXT_OPTION, { "in", required_argument, NULL, OPT_IN }, { "out", required_argument, NULL, OPT_OUT }

static const char common_help[] =
	"  -c, --context KEY=VALUE  bind this entry (repeatable); unwrap needs the same set again\n"
	"      --vault [OWNER:]NAME vault to use (default: your user name; OWNER:NAME is another\n"
	"                           user's vault, for root and callers polkit allows)\n"
	"  -h, --help               this text\n";

/*
 * Parse the options of one data command. longopts is the getopt long table
 * of the command; returns 0, or -1 after --help (exit 0), or an exit code.
 */
static int parse_data_opts(int argc, char **argv, const struct option *longopts, const char *help,
                           struct data_opts *o, const char *cmd)
{
	char *end;
	int c, rc;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if ((rc = cli_kv_add(&o->ctx, optarg, "context")) != 0)
				return rc;
			break;
		case OPT_IN:
			o->in = optarg;
			break;
		case OPT_OUT:
			o->out = optarg;
			break;
		case OPT_BLOB_OUT:
			o->blob_out = optarg;
			break;
		case OPT_KEY_OUT:
			o->key_out = optarg;
			break;
		case OPT_TEXT:
			o->text = 1;
			break;
		case OPT_HEX:
			o->hex = 1;
			break;
		case OPT_SIZE:
			errno = 0;
			o->size = strtoul(optarg, &end, 10);
			if (!*optarg || *end || errno || optarg[0] == '-' || o->size == 0 || o->size > TS_PLAINTEXT_MAX)
				return cli_usage_error(cmd, "--size must be 1..%d bytes", TS_PLAINTEXT_MAX);
			break;
		default:
			if ((rc = cli_common_opt(c, cmd, help, common_help)) != 0)
				return rc;
		}
	}
	if (optind != argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* Read the whole input (--in FILE or stdin) into secure memory; free with ts_secret_free(p, max + 1). */
static int read_input(const char *path, size_t max, uint8_t **ret, size_t *ret_len, const char *what)
{
	int fd = STDIN_FILENO, rc;

	if (path && strcmp(path, "-") != 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_err("cannot open %s: %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	rc = cli_read_fd(fd, max, ret, ret_len, path && strcmp(path, "-") != 0 ? path : what);
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

/*
 * A blob from the input, binary or text form ("tokenseal:" after optional
 * whitespace). *ret is malloc()ed. *ret_text tells which form it was.
 */
static int read_blob(const char *path, uint8_t **ret, size_t *ret_len, int *ret_text)
{
	uint8_t *in = NULL, *bin = NULL;
	size_t len = 0, i = 0, bin_len = 0;
	int rc, r;

	*ret = NULL;
	if ((rc = read_input(path, CLI_INPUT_MAX, &in, &len, "standard input")) != 0)
		return rc;
	while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
		i++;
	*ret_text = len - i >= 10 && memcmp(in + i, "tokenseal:", 10) == 0;
	if (*ret_text) {
		/* A NUL in the middle would hide the rest from the text parser: refuse it. */
		if (memchr(in, '\0', len)) {
			rc = EXIT_BLOB;
			cli_err("%s", "text blob contains a NUL byte");
		} else if ((r = ts_blob_decode_text((const char *)in, &bin, &bin_len)) < 0) {
			rc = cli_exit_code(r);
			cli_err("not a valid tokenseal blob: %s", ts_strerror(r));
		}
	} else if (len == 0) {
		rc = EXIT_BLOB;
		cli_err("no blob on the input");
	} else if ((bin = malloc(len)) == NULL) {
		rc = EXIT_FAIL;
		cli_err("out of memory");
	} else {
		memcpy(bin, in, len);
		bin_len = len;
	}
	ts_secret_free(in, CLI_INPUT_MAX + 1);
	if (rc == 0) {
		*ret = bin;
		*ret_len = bin_len;
	}
	return rc;
}

/* Write a blob, binary or text form ("tokenseal:v1:...\n"), to path (NULL/"-": stdout). */
static int write_blob(const char *path, const uint8_t *blob, size_t len, int text)
{
	struct cli_out o;
	char *t = NULL;
	int rc, r, ok;

	if (!text && (!path || strcmp(path, "-") == 0) && isatty(STDOUT_FILENO)) {
		cli_err("refusing to write a binary blob to a terminal; use --text or --out FILE");
		return EXIT_USAGE;
	}
	if (text && (r = ts_blob_encode_text(blob, len, &t)) < 0) {
		cli_err("%s", ts_strerror(r));
		return cli_exit_code(r);
	}
	if ((rc = cli_out_open(&o, path, 0644)) != 0) {
		free(t);
		return rc;
	}
	ok = text ? cli_write_all(o.fd, t, strlen(t)) == 0 && cli_write_all(o.fd, "\n", 1) == 0
	          : cli_write_all(o.fd, blob, len) == 0;
	if (!ok)
		cli_err("writing the blob: %s", strerror(errno));
	free(t);
	rc = cli_out_commit(&o, ok);
	return ok ? rc : EXIT_FAIL;
}

/* Write plaintext (raw, or hex + newline) to path with mode 0600 (NULL/"-": stdout). */
static int write_secret(const char *path, const uint8_t *pt, size_t len, int hex)
{
	struct cli_out o;
	char *h = NULL;
	size_t hlen = 0;
	int rc, ok;

	if (hex) {
		hlen = 2 * len + 1;
		if ((h = sodium_malloc(hlen + 1)) == NULL) {
			cli_err("out of memory");
			return EXIT_FAIL;
		}
		sodium_bin2hex(h, hlen, pt, len);
		h[hlen - 1] = '\n';
	}
	if ((rc = cli_out_open(&o, path, 0600)) != 0) {
		if (h)
			ts_secret_free(h, hlen + 1);
		return rc;
	}
	ok = (hex ? cli_write_all(o.fd, h, hlen) : cli_write_all(o.fd, pt, len)) == 0;
	if (!ok)
		cli_err("writing the key: %s", strerror(errno));
	if (h)
		ts_secret_free(h, hlen + 1);
	rc = cli_out_commit(&o, ok);
	return ok ? rc : EXIT_FAIL;
}

/* ---- wrap, unwrap, rewrap ----------------------------------------------------------------- */

/* What goes in and comes out of a data command: a plaintext (secure memory) or a blob. */
enum data_kind { DATA_PLAINTEXT, DATA_BLOB };

/* wrap, unwrap and rewrap: one input, one daemon call with the context, one output. */
struct data_cmd {
	const char *cmd;               /* "wrap " (for usage errors) */
	const char *help;
	const struct option *opts;     /* DATA_IO_OPTIONS, the command's own, CLI_COMMON_OPTIONS */
	enum data_kind in, out;
	int (*call)(ts_client *c, const char *vault, const ts_kv *ctx, size_t n_ctx, const uint8_t *in,
	            size_t in_len, uint8_t **ret_out, size_t *ret_out_len);
};

static int data_main(int argc, char **argv, const struct data_cmd *d)
{
	struct data_opts o;
	ts_client *c = NULL;
	uint8_t *in = NULL, *res = NULL;
	size_t in_len = 0, res_len = 0;
	int rc, r, in_text = 0;

	if ((rc = parse_data_opts(argc, argv, d->opts, d->help, &o, d->cmd)) != 0)
		goto out;
	if (d->in == DATA_PLAINTEXT)
		rc = read_input(o.in, TS_PLAINTEXT_MAX, &in, &in_len, "the plaintext");
	else
		rc = read_blob(o.in, &in, &in_len, &in_text);
	if (rc != 0 || (rc = cli_connect(&c)) != 0)
		goto out;
	if ((r = d->call(c, cli.vault, o.ctx.kv, o.ctx.n, in, in_len, &res, &res_len)) < 0) {
		rc = cli_report(c, r);
		goto out;
	}
	if (d->out == DATA_PLAINTEXT)
		rc = write_secret(o.out, res, res_len, o.hex);
	else /* a blob from a blob keeps the input's form unless --text says text */
		rc = write_blob(o.out, res, res_len, o.text || in_text);
out:
	if (d->in == DATA_PLAINTEXT) {
		if (in)
			ts_secret_free(in, TS_PLAINTEXT_MAX + 1);
	} else {
		free(in);
	}
	if (d->out == DATA_PLAINTEXT)
		ts_secret_free(res, res_len);
	else
		free(res);
	ts_client_free(c);
	cli_kv_free(&o.ctx);
	return rc < 0 ? EXIT_OK : rc;
}

static const char wrap_help[] =
	"Usage: tokenseal wrap [--context KEY=VALUE]... [--text] [--in FILE] [--out FILE]\n"
	"Encrypt a data key (at most 65536 bytes, binary-safe) read from stdin or FILE into a blob.\n\n"
	"      --in FILE            read the plaintext from FILE (default: stdin)\n"
	"      --out FILE           write the blob to FILE (default: stdout)\n"
	"      --text               write the text form 'tokenseal:v1:...' and a newline\n";

int wrap_main(int argc, char **argv)
{
	static const struct option opts[] = {
		DATA_IO_OPTIONS, { "text", no_argument, NULL, OPT_TEXT }, CLI_COMMON_OPTIONS, { 0 }
	};
	static const struct data_cmd d = { "wrap ", wrap_help, opts, DATA_PLAINTEXT, DATA_BLOB, ts_wrap };

	return data_main(argc, argv, &d);
}

static const char unwrap_help[] =
	"Usage: tokenseal unwrap [--context KEY=VALUE]... [--in FILE] [--out FILE] [--hex]\n"
	"Decrypt a blob (binary or 'tokenseal:v1:' text form, from stdin or FILE) and write the\n"
	"data key to stdout or FILE (created with mode 0600). The context must be the one the\n"
	"blob was made with.\n\n"
	"      --in FILE            read the blob from FILE (default: stdin)\n"
	"      --out FILE           write the plaintext to FILE, mode 0600 (default: stdout)\n"
	"      --hex                write the plaintext as hex and a newline\n";

int unwrap_main(int argc, char **argv)
{
	static const struct option opts[] = {
		DATA_IO_OPTIONS, { "hex", no_argument, NULL, OPT_HEX }, CLI_COMMON_OPTIONS, { 0 }
	};
	static const struct data_cmd d = { "unwrap ", unwrap_help, opts, DATA_BLOB, DATA_PLAINTEXT, ts_unwrap };

	return data_main(argc, argv, &d);
}

static const char rewrap_help[] =
	"Usage: tokenseal rewrap [--context KEY=VALUE]... [--text] [--in FILE] [--out FILE]\n"
	"Re-encrypt a blob under the vault's current root key (after 'tokenseal rotate'); the\n"
	"plaintext never leaves the daemon. The new blob has the input's form (binary or text).\n\n"
	"      --in FILE            read the blob from FILE (default: stdin)\n"
	"      --out FILE           write the new blob to FILE (default: stdout)\n"
	"      --text               write the text form whatever the input's form\n";

int rewrap_main(int argc, char **argv)
{
	static const struct option opts[] = {
		DATA_IO_OPTIONS, { "text", no_argument, NULL, OPT_TEXT }, CLI_COMMON_OPTIONS, { 0 }
	};
	static const struct data_cmd d = { "rewrap ", rewrap_help, opts, DATA_BLOB, DATA_BLOB, ts_rewrap };

	return data_main(argc, argv, &d);
}

/* ---- gen-key ------------------------------------------------------------------------------- */

static const char gen_key_help[] =
	"Usage: tokenseal gen-key [--size N] [--context KEY=VALUE]... [--blob-out FILE [--text]]\n"
	"                         [--key-out FILE|- [--hex]]\n"
	"Generate a random data key in the daemon and wrap it. The blob is what you store; the\n"
	"key itself is written only where --key-out says (get it back later with 'unwrap').\n\n"
	"      --size N             key size in bytes, 1..65536 (default: 32)\n"
	"      --blob-out FILE      write the blob to FILE, binary (default: the text form on stdout)\n"
	"      --text               with --blob-out: write the text form instead\n"
	"      --key-out FILE       write the raw key to FILE, created with mode 0600;\n"
	"                           '-' writes it to stdout (then --blob-out FILE is required)\n"
	"      --hex                write the key as hex and a newline (e.g. for openssl -pass file:)\n";

int gen_key_main(int argc, char **argv)
{
	static const struct option opts[] = {
		DATA_CONTEXT_OPTION, { "size", required_argument, NULL, OPT_SIZE },
		{ "blob-out", required_argument, NULL, OPT_BLOB_OUT }, { "key-out", required_argument, NULL, OPT_KEY_OUT },
		{ "text", no_argument, NULL, OPT_TEXT }, { "hex", no_argument, NULL, OPT_HEX }, CLI_COMMON_OPTIONS, { 0 }
	};
	struct data_opts o;
	ts_client *c = NULL;
	uint8_t *pt = NULL, *blob = NULL;
	size_t blob_len = 0;
	int rc, r;

	if ((rc = parse_data_opts(argc, argv, opts, gen_key_help, &o, "gen-key ")) != 0)
		goto out;
	if (!o.size)
		o.size = 32;
	if (o.key_out && strcmp(o.key_out, "-") == 0 && (!o.blob_out || strcmp(o.blob_out, "-") == 0)) {
		rc = cli_usage_error("gen-key ", "--key-out - writes the key to stdout: give --blob-out FILE for the blob");
		goto out;
	}
	if ((rc = cli_connect(&c)) != 0)
		goto out;
	if ((r = ts_generate_data_key(c, cli.vault, o.ctx.kv, o.ctx.n, o.size, &pt, &blob, &blob_len)) < 0) {
		rc = cli_report(c, r);
		goto out;
	}
	/* The blob first: a key whose blob was lost could never be recovered. */
	if ((rc = write_blob(o.blob_out, blob, blob_len, o.blob_out ? o.text : 1)) != 0)
		goto out;
	if (o.key_out)
		rc = write_secret(o.key_out, pt, o.size, o.hex);
out:
	if (pt)
		ts_secret_free(pt, o.size);
	free(blob);
	ts_client_free(c);
	cli_kv_free(&o.ctx);
	return rc < 0 ? EXIT_OK : rc;
}
