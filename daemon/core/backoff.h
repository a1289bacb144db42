/* backoff.h — Unlock's back-off after wrong secrets, counted per (vault, source) and kept across restarts. Pure. */
#ifndef TS_BACKOFF_H
#define TS_BACKOFF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"

#define TS_BACKOFF_SOURCE_MAX 48      /* NUL included */
#define TS_BACKOFF_SOURCES 32         /* per vault: 31 sources; the rest share one counter ("*") */

/*
 * Where wrong secrets come from: "uid:U" for a caller of uid U, and for root
 * (a PAM module at a login prompt, which runs as root for every service)
 * "uid:0:HINT" with the source root names, e.g. "pam:login". Only root can
 * split its counter this way: for anyone else a hint would be a fresh counter
 * per guess.
 */
typedef struct ts_backoff_source {
	char source[TS_BACKOFF_SOURCE_MAX];
	uint32_t failures;        /* wrong secrets in a row from this source */
	uint64_t retry_at;        /* wall-clock µs; before it, Unlock from this source gets Busy */
} ts_backoff_source;

typedef struct ts_backoff {
	ts_backoff_source s[TS_BACKOFF_SOURCES];
	size_t n;
} ts_backoff;

/* The source of a caller (uid, and root's hint or NULL) into out. */
void ts_backoff_source_of(uid_t uid, const char *hint, char out[TS_BACKOFF_SOURCE_MAX]);

/*
 * The side file's text: "tokenseal-backoff v1" then one "SOURCE FAILURES
 * RETRY_AT" line per source. Parsing takes hostile bytes: a malformed line
 * is dropped, never trusted in part. Returns 0 or -TS_E_CORRUPT (not this
 * format at all; b is then empty).
 */
int ts_backoff_parse(const uint8_t *data, size_t len, ts_backoff *b);
int ts_backoff_format(const ts_backoff *b, ts_buf *out);

/*
 * May source try now (wall-clock µs)? 0, or -TS_E_BUSY with *ret_wait_sec
 * (rounded up; never more than max_sec, so a clock set back cannot lock a
 * source out for longer than the policy allows).
 */
int ts_backoff_check(const ts_backoff *b, const char *source, uint64_t now, uint64_t max_sec, uint64_t *ret_wait_sec);

/*
 * A wrong secret from source: after free_failures in a row it must wait
 * 1, 2, 4 ... up to max_sec seconds (0: never). A source without a counter
 * of its own is counted on the shared one once that exists (the table was
 * full then); ts_backoff_check holds it back by that one too.
 */
void ts_backoff_failed(ts_backoff *b, const char *source, uint64_t now, unsigned free_failures, uint64_t max_sec);

/*
 * An attempt counts when it starts: Unlock calls ts_backoff_reserve before a
 * secret is checked. It counts one wrong secret as ts_backoff_failed does and
 * keeps the counter it charged as it was in *before: before->source names it
 * (source, or the shared "*"), and before->failures is the count the attempt
 * is judged by. ts_backoff_restore gives the attempt back: that counter as it
 * was, or gone if it was made for this attempt. Exact only while nothing
 * else changes the table in between (one Unlock per vault at a time).
 */
void ts_backoff_reserve(ts_backoff *b, const char *source, uint64_t now, unsigned free_failures, uint64_t max_sec,
                        ts_backoff_source *before);
void ts_backoff_restore(ts_backoff *b, const ts_backoff_source *before);

/*
 * The right secret from source: its own count starts again (kept at zero
 * while the shared counter exists, so that the source is not moved onto
 * it). 1 when b changed, else 0.
 */
int ts_backoff_succeeded(ts_backoff *b, const char *source);

#endif
