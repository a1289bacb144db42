/* policy.h — the system policy: the policy.d files (INI) parsed, merged, and used to judge vault operations. */
#ifndef TS_POLICY_H
#define TS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "tokenseal.h"
#include "core/vault.h"

/*
 * The file format, every key, its default and the merge rule are in
 * docs/POLICY.md. In short: INI files, read in lexical order; each key may be
 * set once across all files (a second setting is an error naming both
 * places); an unknown section or key, a bad value or a contradiction is an
 * error "FILE:LINE: ..."; a policy with any error does not load at all, so
 * the caller can never end up enforcing less than the administrator wrote.
 */

#define TS_POLICY_DIR "/etc/tokenseal/policy.d"
#define TS_POLICY_FILE_MAX (1u << 20)   /* larger files are refused unread */
#define TS_POLICY_MSG_MAX 512           /* enough for any error or violation message */

typedef struct ts_policy ts_policy;

/* What a protector offers, as its backend reports it; compared with [fido2] pin = required etc. */
#define TS_POLICY_PIN   0x1u   /* a PIN (FIDO2 clientPIN, TPM authValue, PKCS#11 user PIN) */
#define TS_POLICY_TOUCH 0x2u   /* user presence (FIDO2 UP) */
#define TS_POLICY_UV    0x4u   /* FIDO2 user verification: the UV flag, which tokenseal gets through the key's PIN */
#define TS_POLICY_PCR   0x8u   /* bound to TPM PCRs */

typedef struct ts_policy_protector {
	const char *type;          /* "fido2", "tpm2", "pkcs11", "recovery" */
	unsigned props;            /* TS_POLICY_* bits */
} ts_policy_protector;

/* Who calls, from the bus credentials (never from arguments). */
typedef struct ts_policy_caller {
	uint32_t uid;
	const uint32_t *gids;      /* primary and supplementary groups */
	size_t n_gids;
	const char *unit;          /* systemd unit, or NULL */
	const char *exe;           /* absolute executable path, or NULL */
} ts_policy_caller;

/* Lock triggers ([lock]). */
#define TS_POLICY_LOCK_SUSPEND       0x1u
#define TS_POLICY_LOCK_SCREEN        0x2u
#define TS_POLICY_LOCK_TOKEN_REMOVAL 0x4u

/*
 * Load every *.conf (not starting with '.') of dir in lexical (strcmp) order
 * into one policy. A missing dir is the empty policy (every default). Files
 * must be regular, at most TS_POLICY_FILE_MAX bytes, owned by root or the
 * caller, and not writable by group or others.
 * Returns 0 and *ret (free with ts_policy_free), or -TS_E_INVALID_ARGS (a
 * policy error: err holds "FILE:LINE: what"), -TS_E_IO (err says which file
 * and why), -TS_E_NOMEM. err may be NULL; it is always NUL-terminated.
 */
int ts_policy_load_dir(const char *dir, ts_policy **ret, char *err, size_t errlen);

/* One file alone (`tokenseal policy check FILE`); same rules and results. */
int ts_policy_load_file(const char *path, ts_policy **ret, char *err, size_t errlen);

/*
 * The parser itself, on (text, len) bytes that need not be NUL-terminated
 * and are not trusted (the fuzz target). name is used in messages only.
 */
int ts_policy_parse(const char *name, const char *text, size_t len, ts_policy **ret,
                    char *err, size_t errlen);

/* Free; accepts NULL. */
void ts_policy_free(ts_policy *p);

/*
 * The effective policy for `tokenseal policy show`: every key with its value
 * and where it was set (file NULL and line 0 for a built-in default), in a
 * stable order: the fixed sections first, then [recipient NAME] and
 * [unwrap NAME] sections in the order they appeared. Strings belong to p.
 */
typedef struct ts_policy_setting {
	const char *section;       /* "protectors", "recipient alice", "unwrap mail", ... */
	const char *key;
	const char *value;
	const char *file;
	unsigned line;
} ts_policy_setting;

size_t ts_policy_n_settings(const ts_policy *p);
/* NULL past the end. */
const ts_policy_setting *ts_policy_setting_at(const ts_policy *p, size_t i);

/*
 * Evaluators. Each returns 0 or -TS_E_POLICY_VIOLATION and then writes to msg
 * (may be NULL) a sentence naming the rule and where it was set, e.g.
 * "[protectors] min (/etc/tokenseal/policy.d/10-site.conf:4): the vault has 1
 * protector, the policy requires at least 2".
 */

/*
 * The protectors of a vault after a change (n of them, the vault's k-of-n
 * threshold k): every type allowed, every [TYPE] requirement met, k at least
 * [protectors] threshold. complete = 0 while a vault is being built
 * (CreateVault, AddProtector: it may still be below the minimum); complete = 1
 * for RevokeProtector and for using a vault (Unlock, Unwrap): then there
 * must be at least [protectors] min protectors, and at least k.
 */
int ts_policy_check_protectors(const ts_policy *p, const ts_policy_protector *prot, size_t n,
                               unsigned threshold, int complete, char *msg, size_t msglen);

/* CreateVault: the vault name and its first protector(s), as ts_policy_check_protectors(complete = 0). */
int ts_policy_check_create(const ts_policy *p, const char *vault, const ts_policy_protector *prot,
                           size_t n, unsigned threshold, char *msg, size_t msglen);

/*
 * Escrow: when the policy names recipients, the vault must escrow to exactly
 * those public keys with exactly the policy's m-of-n ([escrow] threshold).
 */
int ts_policy_check_escrow(const ts_policy *p, const ts_vault *v, char *msg, size_t msglen);

/*
 * The recipients a new vault must escrow to: fills up to max entries of out
 * (labels and keys point into p) and *ret_m; returns how many there are
 * (0: escrow not required).
 */
size_t ts_policy_escrow_required(const ts_policy *p, ts_escrow_recipient *out, size_t max, unsigned *ret_m);

/*
 * Unwrap from vault by caller. Rules ([unwrap] and [unwrap NAME]) whose
 * `vaults` patterns match the vault apply; when any applies, the caller must
 * satisfy one of them (every criterion the rule lists). A vault no rule
 * applies to is not restricted by the policy.
 */
int ts_policy_check_unwrap(const ts_policy *p, const char *vault, const ts_policy_caller *c,
                           char *msg, size_t msglen);

/*
 * [tang] servers: every URL (a tang protector's servers) must have an origin
 * (scheme, host, port) on the list; an empty list (the default) allows
 * none. One message for any URL not on the list, whatever it is.
 */
int ts_policy_check_tang_urls(const ts_policy *p, const char *const *urls, size_t n, char *msg, size_t msglen);

/*
 * "scheme://host:port" of an http:// or https:// URL (host lowercased, the
 * port explicit) into out; path_ok = 0 refuses a path other than "/".
 * 0, or -1 for anything else (user part, percent-encoding, query, ...).
 */
int ts_policy_url_origin(const char *url, int path_ok, char *out, size_t cap);

/* [lock] idle in seconds, 0 = never. */
uint64_t ts_policy_idle_timeout(const ts_policy *p);
/* TS_POLICY_LOCK_* bits that are on. */
unsigned ts_policy_lock_flags(const ts_policy *p);
/* 1 when a root key created at key_created is older than [keys] max-age at now, else 0. */
int ts_policy_rotation_due(const ts_policy *p, uint64_t key_created, uint64_t now);
/* [audit] fail-closed: 1 = refuse operations whose audit record cannot be written. */
int ts_policy_audit_fail_closed(const ts_policy *p);
/* [audit] data-interval in seconds (at most 3600): how long one data-use record covers; 0 = every call. */
uint64_t ts_policy_audit_data_interval(const ts_policy *p);
/* [recovery] attempts: wrong secrets in a row before Unlock backs off (1, 2, 4 ... s). */
unsigned ts_policy_recovery_attempts(const ts_policy *p);
/*
 * [lock] share-timeout: shares of a k-of-n vault given to Unlock are
 * forgotten this many seconds after the first of them (0 = off: kept until
 * an automatic lock trigger or a restart).
 */
uint64_t ts_policy_share_timeout(const ts_policy *p);
/* [recovery] max-backoff: the longest back-off in seconds (0 = off: no delay at all). */
uint64_t ts_policy_recovery_max_backoff(const ts_policy *p);
/* [limits] helpers: token helpers alive at once, daemon-wide (1..4096, default 8). */
unsigned ts_policy_limit_helpers(const ts_policy *p);
/* [limits] jobs-per-uid: Unlock and AddProtector calls one uid may have in flight (root: no cap; default 4). */
unsigned ts_policy_limit_jobs(const ts_policy *p);
/* [limits] vaults-per-uid: vaults one owner may have (default 32). */
unsigned ts_policy_limit_vaults(const ts_policy *p);

/* [escrow] publish and the directory it names (docs/FLEET.md); strings belong to p, NULL when not set. */
#define TS_POLICY_PUBLISH_OFF 0
#define TS_POLICY_PUBLISH_OPTIONAL 1   /* publish, queue while the directory is down; never refuse */
#define TS_POLICY_PUBLISH_REQUIRED 2   /* and Wrap/GenerateDataKey/Rewrap refused until the record is verified */
typedef struct ts_policy_directory_conf {
	int publish;
	const char *uri, *base, *bind_dn, *password_file, *ca_file, *cert_file, *key_file;
	const char *machine_id;        /* NULL: /etc/machine-id */
} ts_policy_directory_conf;
void ts_policy_directory(const ts_policy *p, ts_policy_directory_conf *out);

/* A violation of [escrow] publish = required: -TS_E_POLICY_VIOLATION, msg "[escrow] publish (FILE:LINE): why". */
int ts_policy_publish_violation(const ts_policy *p, const char *why, char *msg, size_t msglen);

#endif
