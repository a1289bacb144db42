/* remote.h — the daemon's side of tokenseal-helper beyond the synchronous ops: unlock without blocking the event loop. */
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
	const uint8_t *params;         /* enroll: the new protector record */
	size_t params_len;
	const char *desc;              /* enroll: its description; present: which token answered ("" if none) */
	const uint8_t *secret;         /* enroll: a minted secret to show once, or NULL */
	size_t secret_len;
	int present;                   /* present: 1 the token is there, 0 it is not */
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
 * The escrow RSA key wrapper for ts_escrow_set_rsa_key_wrapper(): the same
 * contract as ts_escrow_rsa_wrap_key() (escrow_rsa.h), run in
 * tokenseal-helper, which receives the box key and the SPKI only.
 */
int ts_remote_escrow_rsa_wrap_key(const uint8_t *spki, size_t spki_len, const uint8_t *k, ts_buf *out, char *err,
                                  size_t errlen);

/*
 * Have a helper describe this record (its facts and needs_secret) from the
 * loop, ahead of the first read of it, so that ops->describe and
 * ops->needs_secret answer from the cache without a helper run in the loop.
 * Does nothing for a record described already, queued, or not remote.
 */
void ts_remote_describe_prefetch(const ts_protector_ops *ops, const uint8_t *params, size_t params_len);

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

/* Kill the helper and free the job without calling done (shutdown). */
void ts_remote_job_cancel(ts_remote_job *j);

#endif
