/* cli.h — shared state and helpers of the tokenseal command-line tool. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tokenseal.h"

/* Exit codes (documented in `tokenseal --help` and tokenseal(1)). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_LOCKED = 3,
	EXIT_DENIED = 4,
	EXIT_NO_VAULT = 5,
	EXIT_AUTH = 6,
	EXIT_TOKEN = 7,
	EXIT_BLOB = 8,
	EXIT_NO_DAEMON = 9,
	EXIT_POLICY = 10,
};

/* Options given before the subcommand (--vault also after it). */
struct cli_globals {
	const char *bus;      /* NULL: $TOKENSEAL_BUS, else the system bus */
	const char *vault;    /* NULL: the caller's own vault */
	int json;
};
extern struct cli_globals cli;

/* Largest input read from stdin or a file by wrap/unwrap (a blob of the largest plaintext, as text). */
#define CLI_INPUT_MAX (2 * TS_PLAINTEXT_MAX + 4096)

/* Map a TS_E_* code (either sign) to an exit code. */
int cli_exit_code(int code);

/* Print "tokenseal: <last error of c, or ts_strerror(r)>" and return the exit code for r. */
int cli_report(ts_client *c, int r);

/* Print "tokenseal: <fmt>" to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Usage error: message, hint to --help, returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Connect per the global options; prints the error. Returns 0 or an exit code. */
int cli_connect(ts_client **ret);

/*
 * Options every subcommand takes. A subcommand's long option table ends with
 * CLI_COMMON_OPTIONS (then { 0 }), its own option values start at
 * CLI_OPT_FIRST, and its getopt loop hands every value it does not know to
 * cli_common_opt.
 */
enum { CLI_OPT_VAULT = 0x100, CLI_OPT_FIRST };
#define CLI_COMMON_OPTIONS { "vault", required_argument, NULL, CLI_OPT_VAULT }, { "help", no_argument, NULL, 'h' }
/*
 * The shared tail of a getopt loop: --vault NAME sets cli.vault and returns 0
 * (go on); -h/--help prints help then common (the option lines the command's
 * family shares) to stdout and returns -1 (the command exits 0); anything
 * else is "bad option" for cmd ("wrap ": the hint names 'tokenseal wrap
 * --help') and returns EXIT_USAGE.
 */
int cli_common_opt(int ch, const char *cmd, const char *help, const char *common);

/* Context entries from --context k=v options; the strings point into argv (k= split in place). */
struct cli_kvlist {
	ts_kv *kv;
	size_t n;
};
/* Add "k=v" (modifies arg). Returns 0 or EXIT_USAGE with the message printed. */
int cli_kv_add(struct cli_kvlist *l, char *arg, const char *what);
/* Add a literal pair. Returns 0 or EXIT_FAIL. */
int cli_kv_set(struct cli_kvlist *l, const char *key, const char *value);
void cli_kv_free(struct cli_kvlist *l);

/*
 * Read all of fd (at most max bytes) into secure memory (NUL-terminated;
 * free with ts_secret_free(p, max + 1)). Returns 0, or an exit code with the
 * error printed (too long: EXIT_USAGE).
 */
int cli_read_fd(int fd, size_t max, uint8_t **ret, size_t *ret_len, const char *what);
/* The same for the file at path ("cannot open PATH: why" when it cannot be opened: EXIT_FAIL). */
int cli_read_path(const char *path, size_t max, uint8_t **ret, size_t *ret_len, const char *what);

/* Parse a non-negative decimal fd number. -1 if not valid. */
int cli_parse_fd(const char *s);

/*
 * A PIN or recovery key: from fd (--pin-fd; one trailing newline stripped)
 * or, when fd < 0, prompted on /dev/tty without echo. Secure memory, NUL-
 * terminated, free with ts_secret_free(p, CLI_SECRET_ALLOC). Returns 0 or an
 * exit code with the error printed.
 */
#define CLI_SECRET_ALLOC 1025
int cli_get_secret(int fd, const char *prompt, char **ret, size_t *ret_len);

/* One line typed on /dev/tty (with echo) after prompt, into buf (cut to cap - 1). 0, or -1 without a terminal. */
int cli_ask_line(const char *prompt, char *buf, size_t cap);

/* Write all bytes; returns 0 or -1 with errno. */
int cli_write_all(int fd, const void *p, size_t len);

/*
 * Open an output: "-" or NULL is stdout; otherwise a new file (mode; an
 * existing file is replaced only after it is fully written, through a
 * temporary file and rename). See cli_out_commit.
 */
struct cli_out {
	int fd;
	char *path;           /* final path, NULL for stdout */
	char *tmp;            /* temporary path being written */
};
int cli_out_open(struct cli_out *o, const char *path, unsigned mode);
/* ok != 0: fsync + rename into place; else unlink the temporary. Returns 0 or exit code. */
int cli_out_commit(struct cli_out *o, int ok);

/* Subcommands: each returns an exit code. */
int status_main(int argc, char **argv);
int create_main(int argc, char **argv);
int unlock_main(int argc, char **argv);
int lock_main(int argc, char **argv);
int wrap_main(int argc, char **argv);
int unwrap_main(int argc, char **argv);
int rewrap_main(int argc, char **argv);
int gen_key_main(int argc, char **argv);
int rotate_main(int argc, char **argv);
int enroll_main(int argc, char **argv);
int revoke_main(int argc, char **argv);
/* cmd-policy.c, cmd-escrow.c */
int rekey_main(int argc, char **argv);
int escrow_main(int argc, char **argv);
int policy_main(int argc, char **argv);
/* age-recipient, age-identity (cmd-age.c). */
int age_recipient_main(int argc, char **argv);
int age_identity_main(int argc, char **argv);
/* Offline `pkcs11 list` (cmd-pkcs11.c). */
int pkcs11_main(int argc, char **argv);
/*
 * An escrow officer's RSA key on a PKCS#11 token (cmd-pkcs11.c). Each returns
 * 0 or an exit code with the error printed. open: the first token the
 * pkcs11: URI matches (module NULL: p11-kit's registered modules); the URI
 * must name the key and may not carry a PIN. spki: the key's SPKI DER,
 * from its public key object or certificate, appended to out. unwrap (after
 * login): RSA-OAEP-SHA256 decryption of the first ct_len (modulus) bytes of
 * an escrow box on the token into key (TS_ESCROW_RSA_KEY_BYTES, secure
 * memory); a token that refuses OAEP with SHA-256 is asked for CKM_RSA_X_509
 * and the padding is checked here.
 */
struct ts_buf;
typedef struct cli_p11_key cli_p11_key;
int cli_p11_key_open(const char *uri, const char *module, cli_p11_key **ret);
int cli_p11_key_spki(cli_p11_key *k, struct ts_buf *out);
int cli_p11_key_login(cli_p11_key *k, const char *pin, size_t pin_len);
int cli_p11_key_unwrap(cli_p11_key *k, const uint8_t *spki, size_t spki_len, const uint8_t *ct, size_t ct_len,
                       uint8_t *key);
void cli_p11_key_close(cli_p11_key *k);

/* status: k-of-n shares still needed, policy compliance, escrow officers (cmd-policy.c). */
void cli_status_policy(ts_client *c, const char *vault, int locked);
/*
 * unlock --rotate-recovery-key: replace the recovery key just used, re-keying
 * the vault, and print the new one (cmd-escrow.c). keep: "ID SECRET" / "ID"
 * lines for the other protectors to keep (RotateRecoveryKey's secrets).
 */
int cli_rotate_used_recovery_key(ts_client *c, const uint8_t *keep, size_t keep_len);
/*
 * The --keep ID=FILE and --touch ID options of revoke and unlock
 * --rotate-recovery-key: append "ID SECRET\n" (the secret read from FILE)
 * or "ID\n" to buf (len of cap bytes used, secure memory). 0, or an exit
 * code after a message naming cmd. cli_keep_secret cuts arg at '='.
 */
int cli_keep_secret(uint8_t *buf, size_t *len, size_t cap, char *arg, const char *cmd);
int cli_keep_touch(uint8_t *buf, size_t *len, size_t cap, const char *arg, const char *cmd);

#endif
