/* escrow_stock.h — box keys for escrow to RSA (HSM) officers, wrapped by tokenseal-helper before a seal needs them, so that no seal waits for RSA in the event loop. */
#ifndef TS_ESCROW_STOCK_H
#define TS_ESCROW_STOCK_H

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "core/buf.h"

/*
 * Each box key is drawn here (randombytes_buf, secure memory), sent to a
 * helper with the officer's SPKI only, kept with the RSA-OAEP the helper
 * sends back, given out once by ts_escrow_stock_take and wiped. What a
 * client can make the daemon keep is bounded: box keys for at most
 * TS_ESCROW_STOCK_RECIPIENTS RSA keys (the least recently used one is
 * forgotten for another), TS_ESCROW_STOCK_SPARE free keys each once one was
 * used, TS_ESCROW_STOCK_HOLDS holds, TS_ESCROW_STOCK_JOBS helpers at once.
 */
#define TS_ESCROW_STOCK_RECIPIENTS 64
#define TS_ESCROW_STOCK_SPARE 2
#define TS_ESCROW_STOCK_HOLDS 64
#define TS_ESCROW_STOCK_JOBS 4
#define TS_ESCROW_STOCK_PER_HOLD 16        /* TS_VAULT_MAX_ESCROW */

typedef struct ts_escrow_stock_hold ts_escrow_stock_hold;

/* A hold is complete (rc 0) or cannot be (negative TS_E_*, err never NULL); called from the loop. */
typedef void (*ts_escrow_stock_done_fn)(void *userdata, int rc, const char *err);

/*
 * Hold one box key for each of the n RSA SPKIs (a key given twice gets two),
 * taking free ones from the stock and having helpers wrap the rest, on
 * event's loop. Returns 1 with *ret holding every key already (done will not
 * run), 0 with *ret that will hold them (done runs once, from the loop, when
 * all are held or one cannot be had: a helper failed, timed out or could not
 * start), or negative TS_E_* with err set (-TS_E_BUSY: too many holds or
 * recipients kept, or no helper may start for this caller; -TS_E_LIMIT,
 * -TS_E_INVALID_ARGS). uid: whose call it is; root's may use the helpers
 * [limits] keeps back. A hold that must wait counts its recipients against
 * its uid: a uid other than root may keep at most a quarter of
 * TS_ESCROW_STOCK_RECIPIENTS waiting, all such uids three quarters (Busy
 * beyond). The spkis are copied. Keys held are given out only
 * after ts_escrow_stock_release: release right before sealing.
 */
int ts_escrow_stock_prepare(sd_event *event, const uint8_t *const *spkis, const size_t *lens, size_t n,
                            uint32_t uid, ts_escrow_stock_done_fn done, void *userdata,
                            ts_escrow_stock_hold **ret, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * End a hold (done does not run after this): its keys go back to the stock,
 * where the next ts_escrow_stock_take finds them; a key still being wrapped
 * goes there when it arrives. NULL is fine.
 */
void ts_escrow_stock_release(ts_escrow_stock_hold *h);

/*
 * The daemon's key source (ts_escrow_set_rsa_key_source, core/escrow.h):
 * a free box key for spki into k and its RSA-OAEP appended to out, the key
 * then forgotten here; never runs a helper. -TS_E_BUSY at once when there is
 * none. Each use has the stock refilled from the loop afterwards.
 */
int ts_escrow_stock_take(const uint8_t *spki, size_t spki_len, uint8_t *k, ts_buf *out, char *err, size_t errlen);

/* Cancel every wrap, wipe every key, end every hold without done (shutdown, before the loop goes). */
void ts_escrow_stock_shutdown(void);

#endif
