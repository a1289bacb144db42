/* remote.h — the daemon's side of tokenseal-helper: every token operation (unlock, enroll, present, describe, NV counters, escrow key wraps) started from the event loop, never waited for. */
#ifndef TS_REMOTE_H
#define TS_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "protectors/protector.h"

typedef struct ts_remote_job ts_remote_job;

/* What a helper answered; every pointer is valid during the callback only (secrets are wiped after it). */
typedef struct ts_remote_reply {
	const uint8_t *kek;            /* TS_KEY_BYTES */
	const uint8_t *params;         /* enroll: the new protector record; NV: the reply record; escrow: the RSA ciphertext */
	size_t params_len;
	const char *desc;              /* enroll: its description; present: which token answered ("" if none) */
	const uint8_t *secret;         /* enroll: a minted secret to show once, or NULL */
	size_t secret_len;
	int present;                   /* present: 1 the token is there, 0 it is not */
	int value;                     /* directory: TS_LDAP_PUT_* (put), 0 removed or 1 none there (remove) */
} ts_remote_reply;

/*
 * Called once when the helper answered, failed or timed out: rc 0 with
 * reply, or negative TS_E_* with reply NULL and err (never NULL, may be "").
 * The job is already finished and freed.
 */
typedef void (*ts_remote_reply_fn)(void *userdata, int rc, const ts_remote_reply *reply, const char *err);

/*
 * Keep a spare helper started for keep_usec after each token operation (0:
 * never), on event's loop. Without this call no spare is kept.
 */
void ts_protector_remote_set_event(sd_event *event, uint64_t keep_usec);

/*
 * Where a helper's stderr lines go (the daemon's log, escaped): fn(helper
 * pid, line); and the daemon's own warnings about its helpers (warn(msg):
 * a socket served by the wrong user).
 */
typedef void (*ts_remote_log_fn)(pid_t pid, const char *line);
typedef void (*ts_remote_warn_fn)(const char *msg);
void ts_protector_remote_set_logger(ts_remote_log_fn fn, ts_remote_warn_fn warn);
/*
 * At most n helpers alive at once ([limits] helpers; 0: no cap): an
 * unlock, enroll or present job that would start one more fails at once
 * with -TS_E_BUSY, and no spare is started while the cap is reached.
 * Helpers that answered count until they are reaped.
 */
void ts_protector_remote_set_max_helpers(unsigned n);
/* Kill the spare and drop the loop (before the loop is freed). */
void ts_protector_remote_shutdown(void);

/* Is ops one of the backends that run in the helper? */
int ts_protector_is_remote(const ts_protector_ops *ops);
/*
 * Does Unlock hand ops to the helper? The remote ones, and the recovery key:
 * its Argon2id (64 MiB, ~0.1 s) then runs off the daemon's loop too. The
 * recovery backend also stays in the daemon, which falls back to it when no
 * helper can run: the break-glass key must not depend on the helper.
 */
int ts_protector_unlocks_in_helper(const ts_protector_ops *ops);

/*
 * Start an unlock (or an enrollment) in a helper and return at once; done
 * runs from event's loop. Everything in req and params is copied into the
 * request before this returns. 0 and *ret (a handle for
 * ts_remote_job_cancel), or negative TS_E_* with req->err set (done will
 * not run).
 */
int ts_remote_unlock_start(sd_event *event, const ts_protector_ops *ops, const ts_protector_request *req,
                           const uint8_t *params, size_t params_len, ts_remote_reply_fn done, void *userdata,
                           ts_remote_job **ret);
int ts_remote_enroll_start(sd_event *event, const ts_protector_ops *ops, const ts_protector_request *req,
                           ts_remote_reply_fn done, void *userdata, ts_remote_job **ret);

/*
 * Ask a helper whether the token of this record is there (ops->present:
 * never a touch, never a PIN), without blocking: done gets rc 0 with
 * reply->present, or a negative TS_E_* when the backend cannot tell.
 */
int ts_remote_present_start(sd_event *event, const ts_protector_ops *ops, const ts_protector_request *req,
                            const uint8_t *params, size_t params_len, ts_remote_reply_fn done, void *userdata,
                            ts_remote_job **ret);

/*
 * RSA-OAEP of an escrow box key k (TS_ESCROW_RSA_KEY_BYTES) to spki, as
 * ts_escrow_rsa_wrap_key() (escrow_rsa.h) does it, run in a helper, which
 * receives the box key and the SPKI only; returns at once. k and spki are
 * copied into the request before this returns. done gets reply->params, the
 * ciphertext (its size is the caller's to check), or a negative TS_E_*
 * (-TS_E_TIMEOUT after 5 s: the wrap touches no token). reserved_ok: the
 * daemon's own work may use the helpers [limits] keeps back. 0 and *ret, or
 * negative TS_E_* with err set (done will not run). Used by escrow_stock.h
 * only: nothing seals while it waits for this.
 */
int ts_remote_escrow_wrap_start(sd_event *event, const uint8_t *spki, size_t spki_len, const uint8_t *k,
                                int reserved_ok, ts_remote_reply_fn done, void *userdata, ts_remote_job **ret,
                                char *err, size_t errlen);

/*
 * ops->describe and ops->needs_secret of the remote backends answer from a
 * cache and never wait for a helper. A record is described by a helper once
 * per run: its enrollment's reply carries the description; a record met
 * otherwise is queued here, described from the loop, and reads as unknown
 * (no facts, no secret needed) until then. ts_remote_describe_prefetch
 * queues one record (nothing for a record described already, queued, or not
 * remote).
 */
void ts_remote_describe_prefetch(const ts_protector_ops *ops, const uint8_t *params, size_t params_len);

/*
 * Run the loop until every queued record is described, at most timeout_usec:
 * start-up only, before the daemon serves (the records of the vaults
 * loaded). 0, -TS_E_TIMEOUT (the rest goes on from the loop), or a negative
 * errno from sd-event. Returns early when the loop was asked to exit.
 */
int ts_remote_describe_wait(uint64_t timeout_usec);

/*
 * The records the daemon holds, for the cache: records(ctx, fn, ud) calls fn
 * for each protector record of each vault loaded. When the cache is full,
 * the entries of records no vault holds are dropped, and it grows otherwise.
 * Without it, the cache only grows.
 */
typedef void (*ts_remote_record_fn)(const char *type, const uint8_t *params, size_t params_len, void *ud);
typedef void (*ts_remote_records_fn)(void *ctx, ts_remote_record_fn fn, void *ud);
void ts_remote_describe_set_records(ts_remote_records_fn records, void *ctx);

/*
 * A vault's TPM NV counter (tpm2_nv.h: action, handle, the index's auth of
 * TS_NV_AUTH_BYTES), run by a helper on the TPM of config. ts_remote_nv
 * waits (at most 15 s: start-up only, never from the loop): 0 and
 * *ret_handle, *ret_value, or negative TS_E_* with err.
 * ts_remote_nv_start returns at once; done gets reply->params, the reply
 * record for ts_nv_reply_decode.
 */
int ts_remote_nv(const ts_config *config, uint8_t action, uint32_t handle, const uint8_t *auth, uint32_t *ret_handle,
                 uint64_t *ret_value, char *err, size_t errlen);
int ts_remote_nv_start(sd_event *event, const ts_config *config, uint8_t action, uint32_t handle,
                       const uint8_t *auth, ts_remote_reply_fn done, void *userdata, ts_remote_job **ret, char *err,
                       size_t errlen);

/*
 * A vault's escrow record in a directory (ldap_record.h), by a helper: the
 * daemon reaches no network. action "put" (data: the vault file; written,
 * read back and compared) or "remove" (data: the vault id in hex). Returns
 * at once; done gets reply->value, or a negative TS_E_* with the helper's
 * sentence (-TS_E_NO_DAEMON: the directory did not answer). The password
 * is copied into the request (secure memory) before this returns.
 */
typedef struct ts_remote_ldap {
	const char *action, *uri, *base, *machine, *bind_dn, *ca_file, *cert_file, *key_file;
	const uint8_t *password;       /* secret; with bind_dn only */
	size_t password_len;
	const uint8_t *data;
	size_t len;
} ts_remote_ldap;
int ts_remote_ldap_start(sd_event *event, const ts_remote_ldap *l, ts_remote_reply_fn done, void *userdata,
                         ts_remote_job **ret, char *err, size_t errlen);

/* Kill the helper and free the job without calling done (shutdown). */
void ts_remote_job_cancel(ts_remote_job *j);

#endif
