/*
 * main.c — age-plugin-tokenseal: the age plugin protocol (C2SP age-plugin.md),
 * recipient-v1 (wrap a file key to age1tokenseal1... recipients, no daemon
 * needed) and identity-v1 (open "tokenseal" stanzas through tokensealed,
 * unlocking the vault with a PIN asked through age when it is locked).
 * stdin and stdout belong to age; nothing else is ever written to stdout.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "core/age.h"
#include "core/text.h"
#include "lib/client-internal.h"
#include "stanza.h"

#define MAX_RECIPIENTS 64
#define MAX_IDENTITIES 64
#define MAX_FILES 64
#define MAX_ENTRIES 256      /* tokenseal stanzas read in one session */

/* The protocol stream: one stanza parser over age's pipe, and a secure line buffer. */
typedef struct conn {
	int in, out;
	ts_stanza st;
	char *line;
} conn;

/* The next complete stanza from age: 1, 0 at end of input, or <0. */
static int next_stanza(conn *c)
{
	size_t len;
	int r;

	for (;;) {
		if ((r = ts_stanza_read_line(c->in, c->line, TS_STANZA_LINE_MAX + 1, &len)) <= 0)
			return r == 0 && c->st.in_body ? -TS_E_IO : r;
		r = ts_stanza_feed(&c->st, c->line, len);
		sodium_memzero(c->line, len);
		if (r != 0)
			return r;
	}
}

/* A command of phase 2 and age's answer (in c->st): 0, or <0 when the pipe broke. */
static int command(conn *c, const char *type, const char *const *args, size_t n, const void *body, size_t len)
{
	int r;

	if ((r = ts_stanza_write(c->out, type, args, n, body, len)) < 0)
		return r;
	if ((r = next_stanza(c)) <= 0)
		return r == 0 ? -TS_E_IO : r;
	return 0;
}

static int answered(const conn *c, const char *type)
{
	return c->st.type && strcmp(c->st.type, type) == 0;
}

/* "-> error KIND [INDEX...]" with a message for the user, then "done": the session ends. */
static int fail_session(conn *c, const char *kind, const char *i1, const char *i2, const char *msg)
{
	const char *args[3] = { kind, i1, i2 };
	size_t n = i1 ? (i2 ? 3 : 2) : 1;

	(void)command(c, "error", args, n, msg, strlen(msg));
	(void)ts_stanza_write(c->out, "done", NULL, 0, NULL, 0);
	return 1;
}

static int parse_index(const char *s, size_t max, size_t *ret)
{
	uint64_t v;

	if (ts_parse_uint(s, strlen(s), max, &v) < 0)
		return -TS_E_INVALID_ARGS;
	*ret = (size_t)v;
	return 0;
}

/* ---- identity-v1 ---------------------------------------------------------------------- */

typedef struct ident {
	uint8_t id[TS_VAULT_ID_BYTES];
	int looked_up;
	char *vault;              /* how to name it to the daemon (ListVaults' name), NULL: not visible */
	int unusable;             /* not visible, or locked and not unlocked: asked once, not again */
	int locked;               /* as the look-up found it */
	char why[256];            /* why it is unusable */
} ident;

typedef struct entry {
	ts_age_stanza st;
	size_t file, index;
} entry;

typedef struct session {
	conn *c;
	ts_client *client;
	const char *vault;        /* the vault being unlocked, for prompts */
	int secret_refused;       /* age could not ask (no terminal) or the user gave up */
} session;

/* age asks the user; the answer comes in secure memory. */
static int ask_secret(void *ud, const char *what, char **ret, size_t *ret_len)
{
	session *s = ud;
	char prompt[256];
	char *p;

	snprintf(prompt, sizeof(prompt), "tokenseal vault '%s' is locked. %s", s->vault, what);
	if (command(s->c, "request-secret", NULL, 0, prompt, strlen(prompt)) < 0)
		return -TS_E_IO;
	if (!answered(s->c, "ok") || s->c->st.body_len == 0) {
		s->secret_refused = 1;
		return -TS_E_PIN_REQUIRED;
	}
	if (s->c->st.body_len > TS_CLIENT_SECRET_MAX || (p = sodium_malloc(s->c->st.body_len + 1)) == NULL)
		return -TS_E_LIMIT;
	memcpy(p, s->c->st.body, s->c->st.body_len);
	p[s->c->st.body_len] = '\0';
	*ret = p;
	*ret_len = s->c->st.body_len;
	return 0;
}

static void info(void *ud, const char *msg)
{
	session *s = ud;

	(void)command(s->c, "msg", NULL, 0, msg, strlen(msg));
}

/* Several tokens could take the PIN: two are a yes/no question (confirm), more are asked by id. */
static int choose(void *ud, const char *question, const ts_protector_info *const *p, size_t n)
{
	session *s = ud;
	char a[2][160], b64[2][224], answer[64];

	if (n == 2) {
		const char *args[2] = { b64[0], b64[1] };
		for (int i = 0; i < 2; i++) {
			snprintf(a[i], sizeof(a[i]), "%s (%s)", p[i]->id, p[i]->description);
			sodium_bin2base64(b64[i], sizeof(b64[i]), (const uint8_t *)a[i], strlen(a[i]),
			                  sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
		}
		if (command(s->c, "confirm", args, 2, question, strlen(question)) < 0 || !answered(s->c, "ok") ||
		    s->c->st.n_args != 1)
			return -1;
		return strcmp(s->c->st.args[0], "yes") == 0 ? 0 : 1;
	}
	if (command(s->c, "request-public", NULL, 0, question, strlen(question)) < 0 || !answered(s->c, "ok") ||
	    s->c->st.body_len == 0 || s->c->st.body_len >= sizeof(answer))
		return -1;
	memcpy(answer, s->c->st.body, s->c->st.body_len);
	answer[s->c->st.body_len] = '\0';
	for (size_t i = 0; i < n; i++)
		if (strcmp(answer, p[i]->id) == 0)
			return (int)i;
	return -1;
}

/* Which of the vaults the caller may use has this id (ListVaults, then each one's Id). */
static int look_up(session *s, ident *id, char *msg, size_t cap)
{
	char **names = NULL, hex[2 * TS_VAULT_ID_BYTES + 1];
	size_t n = 0;
	int r;

	if (id->looked_up)
		return id->vault ? 0 : -TS_E_NO_SUCH_VAULT;
	id->looked_up = 1;
	sodium_bin2hex(hex, sizeof(hex), id->id, TS_VAULT_ID_BYTES);
	if ((r = ts_client_list_vaults(s->client, &names, &n)) < 0) {
		snprintf(msg, cap, "tokensealed: %s", ts_client_last_error(s->client));
		return r;
	}
	for (size_t i = 0; i < n && !id->vault; i++) {
		ts_vault_info *v = NULL;
		if (ts_client_vault_info(s->client, names[i], &v) == 0 && v->id && strcmp(v->id, hex) == 0) {
			id->vault = strdup(names[i]);
			id->locked = v->locked;
		}
		ts_vault_info_free(v);
	}
	ts_strv_free(names);
	if (!id->vault) {
		snprintf(msg, cap, "no tokenseal vault with id %s is yours to use (this identity names another "
		                   "user's vault, or a vault that no longer exists)", hex);
		return -TS_E_NO_SUCH_VAULT;
	}
	return 0;
}

/* The vault unlocked (as the look-up found it), asking for its PIN through age if need be. */
static int ensure_unlocked(session *s, ident *id, char *msg, size_t cap)
{
	/*
	 * need_user: only what shows somebody is there (a PIN or recovery key typed at age's prompt, a
	 * security key touched), never a TPM without PIN: decrypting a file must not unlock the vault
	 * for every application behind the user's back.
	 */
	ts_unlock_ui ui = { .ud = s, .ask_secret = ask_secret, .choose = choose, .info = info, .need_user = 1 };
	unsigned needed = 0;
	int r;

	if (!id->locked)
		return 0;
	s->vault = id->vault;
	s->secret_refused = 0;
	if ((r = ts_client_unlock_interactive(s->client, id->vault, NULL, &ui, &needed)) == 0 && needed == 0) {
		id->locked = 0;
		return 0;
	}
	if (s->secret_refused)
		snprintf(msg, cap, "tokenseal vault '%s' is locked and no PIN was given: unlock it with "
		                   "'tokenseal unlock --vault %s', then run age again", id->vault, id->vault);
	else
		snprintf(msg, cap, "tokenseal vault '%s' is locked and could not be unlocked: %s (or run "
		                   "'tokenseal unlock --vault %s')", id->vault, ts_client_last_error(s->client), id->vault);
	return r < 0 ? r : -TS_E_LOCKED;
}

/* ---- recipient-v1 --------------------------------------------------------------------- */

static int recipient_v1(conn *c)
{
	ts_age_recipient rec[MAX_RECIPIENTS + MAX_IDENTITIES];
	ident ids[MAX_IDENTITIES];
	session s = { .c = c };
	uint8_t *keys = sodium_malloc(MAX_FILES * TS_AGE_FILE_KEY_BYTES);
	size_t n_rec = 0, n_id = 0, n_files = 0, n_direct;
	char msg[256] = "", idx[24] = "", kind[16] = "";
	int r, rc = 1;

	memset(ids, 0, sizeof(ids));
	if (!keys)
		return 1;
	/* Phase 1: what age wants wrapped to whom. Unknown (grease) stanzas are ignored. */
	while ((r = next_stanza(c)) > 0 && !answered(c, "done")) {
		if (answered(c, "add-recipient")) {
			if (c->st.n_args != 1 || n_rec >= MAX_RECIPIENTS ||
			    (r = ts_age_recipient_decode(c->st.args[0], strlen(c->st.args[0]), &rec[n_rec])) < 0) {
				if (!*kind) {
					snprintf(kind, sizeof(kind), "recipient");
					snprintf(idx, sizeof(idx), "%zu", n_rec);
					if (n_rec >= MAX_RECIPIENTS)
						snprintf(msg, sizeof(msg), "more than %d tokenseal recipients", MAX_RECIPIENTS);
					else if (r == -TS_E_UNSUPPORTED_VERSION)
						snprintf(msg, sizeof(msg), "a tokenseal recipient of a newer format: update age-plugin-tokenseal");
					else
						snprintf(msg, sizeof(msg), "not a valid tokenseal recipient (age1tokenseal1...)");
				}
			}
			n_rec++;
		} else if (answered(c, "add-identity")) {
			/* Encrypting to an identity: to its vault's current recipient, asked of the daemon below. */
			if (c->st.n_args != 1 || n_id >= MAX_IDENTITIES ||
			    (r = ts_age_identity_decode(c->st.args[0], strlen(c->st.args[0]), ids[n_id].id)) < 0) {
				if (!*kind) {
					snprintf(kind, sizeof(kind), "identity");
					snprintf(idx, sizeof(idx), "%zu", n_id);
					snprintf(msg, sizeof(msg), "not a valid tokenseal identity (AGE-PLUGIN-TOKENSEAL-1...)");
				}
			}
			n_id++;
		} else if (answered(c, "wrap-file-key")) {
			if (c->st.n_args != 0 || c->st.body_len != TS_AGE_FILE_KEY_BYTES || n_files >= MAX_FILES) {
				if (!*kind) {
					snprintf(kind, sizeof(kind), "internal");
					snprintf(msg, sizeof(msg), "malformed wrap-file-key");
				}
			} else {
				memcpy(keys + n_files++ * TS_AGE_FILE_KEY_BYTES, c->st.body, TS_AGE_FILE_KEY_BYTES);
			}
		}
	}
	if (r <= 0)
		goto out;
	/* Phase 2: a stanza per file and recipient, or the first error. */
	n_direct = n_rec;
	/* Each identity's vault gives its current recipient (the vault must be unlocked: it is derived from the root key). */
	for (size_t i = 0; i < n_id && !*kind; i++) {
		uint8_t vid[TS_VAULT_ID_BYTES];
		ts_age_recipient *x = &rec[n_rec];

		if (!s.client && (r = ts_client_open(&s.client, NULL)) < 0)
			snprintf(msg, sizeof(msg), "cannot reach tokensealed: %s", ts_strerror(r));
		else if ((r = look_up(&s, &ids[i], msg, sizeof(msg))) == 0 &&
		         (r = ts_client_age_recipient(s.client, ids[i].vault, vid, &x->key_version, x->public_key)) < 0)
			snprintf(msg, sizeof(msg), "vault '%s': %s%s", ids[i].vault, ts_client_last_error(s.client),
			         r == -TS_E_LOCKED ? " (encrypting to an identity needs the vault unlocked; its recipient, "
			                             "'tokenseal age-recipient', does not)" : "");
		else if (r == 0 && sodium_memcmp(vid, ids[i].id, sizeof(vid)) != 0) {
			r = -TS_E_WRONG_VAULT;
			snprintf(msg, sizeof(msg), "vault '%s' answered with another id", ids[i].vault);
		}
		if (r < 0) {
			snprintf(kind, sizeof(kind), "identity");
			snprintf(idx, sizeof(idx), "%zu", i);
			break;
		}
		memcpy(x->vault_tag, vid, TS_AGE_VAULT_TAG_BYTES);
		n_rec++;
	}
	if (*kind) {
		rc = fail_session(c, kind, strcmp(kind, "internal") ? idx : NULL, NULL, msg);
		goto out;
	}
	for (size_t f = 0; f < n_files; f++) {
		for (size_t i = 0; i < n_rec; i++) {
			ts_age_stanza st;
			char file[24], tag[12], ver[6], share[44];
			const char *args[6] = { file, TS_AGE_STANZA_TYPE, tag, ver, share, NULL };

			snprintf(file, sizeof(file), "%zu", f);
			if (ts_age_wrap(&rec[i], keys + f * TS_AGE_FILE_KEY_BYTES, NULL, &st) < 0 ||
			    ts_age_stanza_format(&st, tag, ver, share) < 0) {
				snprintf(idx, sizeof(idx), "%zu", i < n_direct ? i : i - n_direct);
				rc = fail_session(c, i < n_direct ? "recipient" : "identity", idx, NULL,
				                  "this tokenseal recipient's public key is unusable");
				goto out;
			}
			if (command(c, "recipient-stanza", args, 5, st.body, sizeof(st.body)) < 0)
				goto out;
			if (!answered(c, "ok"))
				goto out;
		}
	}
	rc = ts_stanza_write(c->out, "done", NULL, 0, NULL, 0) < 0;
out:
	for (size_t i = 0; i < n_id && i < MAX_IDENTITIES; i++)
		free(ids[i].vault);
	ts_client_free(s.client);
	sodium_free(keys);
	return rc;
}

static int identity_v1(conn *c)
{
	ident ids[MAX_IDENTITIES];
	entry *ents = calloc(MAX_ENTRIES, sizeof(*ents));
	session s = { .c = c };
	size_t n_ids = 0, n_ents = 0, n_files = 0, last_file = SIZE_MAX, per_file = 0;
	char msg[512] = "", i1[24] = "", i2[24] = "", kind[16] = "";
	uint8_t *fk = sodium_malloc(TS_AGE_FILE_KEY_BYTES);
	int r, rc = 1;

	memset(ids, 0, sizeof(ids));
	if (!ents || !fk)
		goto out;
	/* Phase 1: the identities and every stanza of every file. */
	while ((r = next_stanza(c)) > 0 && !answered(c, "done")) {
		if (answered(c, "add-identity")) {
			if (c->st.n_args != 1 || n_ids >= MAX_IDENTITIES ||
			    (r = ts_age_identity_decode(c->st.args[0], strlen(c->st.args[0]), ids[n_ids].id)) < 0) {
				if (!*kind) {
					snprintf(kind, sizeof(kind), "identity");
					snprintf(i1, sizeof(i1), "%zu", n_ids);
					snprintf(msg, sizeof(msg), "%s", r == -TS_E_UNSUPPORTED_VERSION
					         ? "a tokenseal identity of a newer format: update age-plugin-tokenseal"
					         : "not a valid tokenseal identity (AGE-PLUGIN-TOKENSEAL-1...)");
				}
			} else {
				n_ids++;
			}
		} else if (answered(c, "recipient-stanza")) {
			size_t file;
			if (c->st.n_args < 2 || parse_index(c->st.args[0], MAX_FILES - 1, &file) < 0) {
				if (!*kind) {
					snprintf(kind, sizeof(kind), "internal");
					snprintf(msg, sizeof(msg), "malformed recipient-stanza");
				}
				continue;
			}
			per_file = file == last_file ? per_file + 1 : 0;
			last_file = file;
			if (file + 1 > n_files)
				n_files = file + 1;
			if (strcmp(c->st.args[1], TS_AGE_STANZA_TYPE) != 0)
				continue;   /* another kind of recipient: not ours */
			if (n_ents >= MAX_ENTRIES ||
			    ts_age_stanza_parse(c->st.args + 2, c->st.n_args - 2, c->st.body, c->st.body_len,
			                        &ents[n_ents].st) < 0) {
				if (!*kind) {
					snprintf(kind, sizeof(kind), "stanza");
					snprintf(i1, sizeof(i1), "%zu", file);
					snprintf(i2, sizeof(i2), "%zu", per_file);
					snprintf(msg, sizeof(msg), n_ents >= MAX_ENTRIES ? "too many tokenseal stanzas"
					                                                 : "malformed tokenseal stanza");
				}
				continue;
			}
			ents[n_ents].file = file;
			ents[n_ents++].index = per_file;
		}
	}
	if (r <= 0)
		goto out;
	if (*kind) {
		rc = fail_session(c, kind, *i1 ? i1 : NULL, *i2 ? i2 : NULL, msg);
		goto out;
	}
	/* Phase 2: per file, the first of its stanzas that one of our vaults opens. */
	for (size_t f = 0; f < n_files; f++) {
		const entry *failed = NULL;
		int opened = 0, refused = 0;

		for (size_t k = 0; k < n_ents && !opened; k++) {
			entry *e = &ents[k];

			if (e->file != f)
				continue;
			/*
			 * Every identity whose tag matches, in turn: the tag is public (it is in the
			 * recipient), so an identity someone handed over with the same tag must not
			 * hide the real one behind it.
			 */
			for (size_t i = 0; i < n_ids && !opened; i++) {
				ident *id = &ids[i];

				if (sodium_memcmp(id->id, e->st.vault_tag, TS_AGE_VAULT_TAG_BYTES) != 0)
					continue;   /* made for a vault this identity does not name */
				if (id->unusable) {
					snprintf(msg, sizeof(msg), "%s", id->why);
					failed = e;
					continue;
				}
				if (!s.client && (r = ts_client_open(&s.client, NULL)) < 0) {
					snprintf(msg, sizeof(msg), "cannot reach tokensealed: %s", ts_strerror(r));
					failed = e;
					break;
				}
				/* Not this vault: another stanza of the file may be for another of our vaults. */
				if ((r = look_up(&s, id, msg, sizeof(msg))) < 0 || (r = ensure_unlocked(&s, id, msg, sizeof(msg))) < 0) {
					id->unusable = 1;
					snprintf(id->why, sizeof(id->why), "%s", msg);
					failed = e;
					if (r == -TS_E_IO)
						goto out;   /* age went away */
					continue;
				}
				r = ts_client_age_unwrap(s.client, id->vault, e->st.key_version, e->st.share, e->st.body, fk);
				if (r == -TS_E_LOCKED) {
					/* Locked since the look-up (idle timeout, suspend): unlock once more and try again. */
					id->locked = 1;
					if ((r = ensure_unlocked(&s, id, msg, sizeof(msg))) < 0) {
						id->unusable = 1;
						snprintf(id->why, sizeof(id->why), "%s", msg);
						failed = e;
						continue;
					}
					r = ts_client_age_unwrap(s.client, id->vault, e->st.key_version, e->st.share, e->st.body, fk);
				}
				if (r == 0) {
					char file[24];
					const char *args[1] = { file };
					snprintf(file, sizeof(file), "%zu", f);
					r = command(c, "file-key", args, 1, fk, TS_AGE_FILE_KEY_BYTES);
					sodium_memzero(fk, TS_AGE_FILE_KEY_BYTES);
					if (r < 0)
						goto out;
					opened = 1;
				} else {
					snprintf(msg, sizeof(msg), "vault '%s', key version %u: %s", id->vault, e->st.key_version,
					         ts_client_last_error(s.client));
					failed = e;
					refused = 1;
				}
			}
		}
		if (!opened && failed && !refused) {
			/*
			 * No identity here can be used now (its vault is not the caller's, or is locked
			 * and no PIN came): say why, and let age go on to its other identities (a native
			 * X25519 one may open the file). Only a stanza the daemon refused ends the session.
			 */
			if (command(c, "msg", NULL, 0, msg, strlen(msg)) < 0)
				goto out;
			continue;
		}
		if (!opened && failed) {
			snprintf(i1, sizeof(i1), "%zu", failed->file);
			snprintf(i2, sizeof(i2), "%zu", failed->index);
			rc = fail_session(c, "stanza", i1, i2, msg);
			goto out;
		}
	}
	rc = ts_stanza_write(c->out, "done", NULL, 0, NULL, 0) < 0;
out:
	for (size_t i = 0; i < n_ids; i++)
		free(ids[i].vault);
	ts_client_free(s.client);
	free(ents);
	if (fk)
		sodium_free(fk);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: age-plugin-tokenseal --age-plugin=recipient-v1|identity-v1\n"
	           "The age plugin of tokenseal: age runs it for age1tokenseal1... recipients and\n"
	           "AGE-PLUGIN-TOKENSEAL-1... identities. Print those with 'tokenseal age-recipient'\n"
	           "and 'tokenseal age-identity' (tokenseal(1)); the construction: docs/FORMAT.md.\n");
}

int main(int argc, char **argv)
{
	struct rlimit no_core = { 0, 0 };
	conn c = { .in = STDIN_FILENO, .out = STDOUT_FILENO };
	int rc;

	/* File keys and PINs pass through this process: no core dumps, no ptrace by peers. */
	(void)setrlimit(RLIMIT_CORE, &no_core);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc != 2 || strncmp(argv[1], "--age-plugin=", 13) != 0) {
		usage(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	if (sodium_init() < 0 || ts_stanza_init(&c.st) < 0 || (c.line = sodium_malloc(TS_STANZA_LINE_MAX + 1)) == NULL) {
		fprintf(stderr, "age-plugin-tokenseal: out of memory\n");
		return 1;
	}
	if (strcmp(argv[1] + 13, "recipient-v1") == 0) {
		rc = recipient_v1(&c);
	} else if (strcmp(argv[1] + 13, "identity-v1") == 0) {
		rc = identity_v1(&c);
	} else {
		fprintf(stderr, "age-plugin-tokenseal: unknown state machine '%s'\n", argv[1] + 13);
		rc = 2;
	}
	ts_stanza_free(&c.st);
	sodium_free(c.line);
	return rc;
}
