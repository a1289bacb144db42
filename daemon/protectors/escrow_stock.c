/* escrow_stock.c — box keys for RSA escrow recipients, wrapped ahead by tokenseal-helper and given out once (escrow_stock.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/escrow.h"
#include "core/vault.h"
#include "protectors/escrow_stock.h"
#include "protectors/remote.h"

_Static_assert(TS_ESCROW_STOCK_PER_HOLD == TS_VAULT_MAX_ESCROW, "a hold covers one vault's recipients");

typedef struct stock_key {
	struct stock_key *next;
	uint8_t *k;                 /* secure memory, TS_ESCROW_RSA_KEY_BYTES */
	uint8_t *wrapped;           /* RSA-OAEP of k: public, the modulus size */
	size_t wrapped_len;
} stock_key;

typedef struct recipient {
	uint8_t *spki;              /* NULL: a free slot */
	size_t spki_len, mod;
	stock_key *free;            /* keys nobody holds */
	size_t n_free;
	size_t spare;               /* free keys to keep: set once one was taken, 0 after a refill failed */
	ts_remote_job *job;         /* one wrap at a time */
	uint8_t *job_k;             /* the key being wrapped (secure memory) */
	uint64_t used;              /* for the least recently used */
} recipient;

struct ts_escrow_stock_hold {
	ts_escrow_stock_hold *next;
	size_t n;
	recipient *rcp[TS_ESCROW_STOCK_PER_HOLD];
	stock_key *key[TS_ESCROW_STOCK_PER_HOLD];
	uint32_t uid;               /* whose call it is */
	int reserved_ok;
	int notified;               /* done has run, or never will */
	int failed;
	char err[256];
	ts_escrow_stock_done_fn done;
	void *userdata;
};

static recipient recipients[TS_ESCROW_STOCK_RECIPIENTS];
static ts_escrow_stock_hold *holds;   /* oldest first: keys go to the longest waiting */
static size_t n_holds, n_jobs;
static uint64_t tick;
static sd_event *stock_event;
static sd_event_source *refill_defer;

static void key_free(stock_key *s)
{
	if (!s)
		return;
	ts_secure_free(s->k);
	free(s->wrapped);
	free(s);
}

static void recipient_clear(recipient *rc)
{
	while (rc->free) {
		stock_key *s = rc->free;
		rc->free = s->next;
		key_free(s);
	}
	free(rc->spki);
	memset(rc, 0, sizeof(*rc));
}

static recipient *recipient_find(const uint8_t *spki, size_t len)
{
	for (size_t i = 0; i < TS_ESCROW_STOCK_RECIPIENTS; i++)
		if (recipients[i].spki && recipients[i].spki_len == len && memcmp(recipients[i].spki, spki, len) == 0)
			return &recipients[i];
	return NULL;
}

/* A hold waits for it, or a wrap for it runs: it stays. */
static int recipient_busy(const recipient *rc)
{
	if (rc->job)
		return 1;
	for (const ts_escrow_stock_hold *h = holds; h; h = h->next)
		for (size_t i = 0; i < h->n; i++)
			if (h->rcp[i] == rc)
				return 1;
	return 0;
}

/* The slot of spki, or a new one (a free slot, else the least recently used idle one, forgotten). */
static recipient *recipient_get(const uint8_t *spki, size_t len, size_t mod)
{
	recipient *rc = recipient_find(spki, len), *lru = NULL;

	if (rc)
		return rc;
	for (size_t i = 0; i < TS_ESCROW_STOCK_RECIPIENTS; i++) {
		if (!recipients[i].spki) {
			lru = &recipients[i];
			break;
		}
		if (!recipient_busy(&recipients[i]) && (!lru || recipients[i].used < lru->used))
			lru = &recipients[i];
	}
	if (!lru)
		return NULL;
	recipient_clear(lru);
	if ((lru->spki = malloc(len)) == NULL)
		return NULL;
	memcpy(lru->spki, spki, len);
	lru->spki_len = len;
	lru->mod = mod;
	return lru;
}

static size_t waiting_for(const recipient *rc, int *ret_reserved_ok)
{
	size_t n = 0;

	for (const ts_escrow_stock_hold *h = holds; h; h = h->next)
		for (size_t i = 0; i < h->n; i++)
			if (h->rcp[i] == rc && !h->key[i] && !h->failed) {
				n++;
				if (ret_reserved_ok && h->reserved_ok)
					*ret_reserved_ok = 1;
			}
	return n;
}

/* Keys still to wrap for rc: one per waiting hold, and the spares. */
static size_t wanted(const recipient *rc)
{
	return waiting_for(rc, NULL) + (rc->n_free < rc->spare ? rc->spare - rc->n_free : 0);
}

static int hold_complete(const ts_escrow_stock_hold *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (!h->key[i])
			return 0;
	return 1;
}

static void fail_waiting(recipient *rc, int r, const char *err)
{
	for (ts_escrow_stock_hold *h = holds; h; h = h->next)
		for (size_t i = 0; i < h->n; i++)
			if (h->rcp[i] == rc && !h->key[i] && !h->failed) {
				h->failed = r;
				snprintf(h->err, sizeof(h->err), "%s", err && *err ? err : ts_strerror(r));
			}
}

/* Tell each hold that is complete or failed; a done may release holds, so the walk starts over. */
static void notify(void)
{
	ts_escrow_stock_hold *h;

	for (;;) {
		for (h = holds; h; h = h->next)
			if (!h->notified && (h->failed || hold_complete(h)))
				break;
		if (!h)
			return;
		h->notified = 1;
		h->done(h->userdata, h->failed, h->err);
	}
}

static void on_wrapped(void *userdata, int r, const ts_remote_reply *reply, const char *err);

static int wrap_start(recipient *rc, int reserved_ok, char *err, size_t errlen)
{
	int r;

	if ((rc->job_k = ts_secure_alloc(TS_ESCROW_RSA_KEY_BYTES)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -TS_E_NOMEM;
	}
	randombytes_buf(rc->job_k, TS_ESCROW_RSA_KEY_BYTES);
	if ((r = ts_remote_escrow_wrap_start(stock_event, rc->spki, rc->spki_len, rc->job_k, reserved_ok, on_wrapped, rc,
	                                     &rc->job, err, errlen)) < 0) {
		ts_secure_free(rc->job_k);
		rc->job_k = NULL;
		return r;
	}
	n_jobs++;
	return 0;
}

/* Start the wraps wanted, a few at a time; a recipient whose wrap cannot start fails its holds. */
static void schedule(void)
{
	char err[256];

	for (size_t i = 0; i < TS_ESCROW_STOCK_RECIPIENTS && n_jobs < TS_ESCROW_STOCK_JOBS && stock_event; i++) {
		recipient *rc = &recipients[i];
		int reserved_ok = 0, r;

		if (!rc->spki || rc->job || wanted(rc) == 0)
			continue;
		/* For a hold, its caller's; a spare only, the daemon's own work. */
		if (waiting_for(rc, &reserved_ok) == 0)
			reserved_ok = 1;
		err[0] = '\0';
		if ((r = wrap_start(rc, reserved_ok, err, sizeof(err))) < 0) {
			fail_waiting(rc, r, err);
			rc->spare = 0;
		}
	}
	notify();
}

static void on_wrapped(void *userdata, int r, const ts_remote_reply *reply, const char *err)
{
	recipient *rc = userdata;
	stock_key *s = NULL;
	char why[256];

	rc->job = NULL;
	n_jobs--;
	if (r >= 0 && reply->params_len != rc->mod) {
		r = -TS_E_FAILED;
		err = "the token helper sent an RSA ciphertext of the wrong size";
	}
	if (r >= 0 && ((s = calloc(1, sizeof(*s))) == NULL || (s->wrapped = malloc(rc->mod)) == NULL)) {
		r = -TS_E_NOMEM;
		err = "out of memory";
	}
	if (r < 0) {
		snprintf(why, sizeof(why), "%s", err && *err ? err : ts_strerror(r));
		ts_secure_free(rc->job_k);
		rc->job_k = NULL;
		key_free(s);
		fail_waiting(rc, r, why);
		rc->spare = 0;   /* no refill until the next use */
		schedule();
		return;
	}
	s->k = rc->job_k;
	rc->job_k = NULL;
	memcpy(s->wrapped, reply->params, rc->mod);
	s->wrapped_len = rc->mod;
	for (ts_escrow_stock_hold *h = holds; h && s; h = h->next)
		for (size_t i = 0; i < h->n && s; i++)
			if (h->rcp[i] == rc && !h->key[i] && !h->failed) {
				h->key[i] = s;
				s = NULL;
			}
	if (s && rc->n_free < TS_ESCROW_STOCK_SPARE) {
		s->next = rc->free;
		rc->free = s;
		rc->n_free++;
		s = NULL;
	}
	key_free(s);
	schedule();
}

static int on_refill(sd_event_source *src, void *userdata)
{
	refill_defer = sd_event_source_disable_unref(refill_defer);
	schedule();
	return 0;
}

/*
 * Would h, which must wait, take its uid past the recipients a uid other
 * than root may keep waiting, or all such uids past theirs? A recipient a
 * hold names cannot be forgotten for another, so no user may pin more than
 * a quarter of the stock, nor all users but root more than three quarters.
 */
static int hold_over_cap(const ts_escrow_stock_hold *h)
{
	size_t mine = 0, others = 0;

	if (h->uid == 0)
		return 0;
	for (const ts_escrow_stock_hold *o = holds; o; o = o->next) {
		mine += o->uid == h->uid ? o->n : 0;
		others += o->uid != 0 ? o->n : 0;
	}
	return mine > TS_ESCROW_STOCK_RECIPIENTS / 4 || others > TS_ESCROW_STOCK_RECIPIENTS * 3 / 4;
}

int ts_escrow_stock_prepare(sd_event *event, const uint8_t *const *spkis, const size_t *lens, size_t n,
                            uint32_t uid, ts_escrow_stock_done_fn done, void *userdata,
                            ts_escrow_stock_hold **ret, char *err, size_t errlen)
{
	ts_escrow_stock_hold *h, **tail;
	size_t mod[TS_ESCROW_STOCK_PER_HOLD];
	int r, reserved_ok = uid == 0;

	*ret = NULL;
	if (n > TS_ESCROW_STOCK_PER_HOLD) {
		snprintf(err, errlen, "at most %d escrow recipients", TS_ESCROW_STOCK_PER_HOLD);
		return -TS_E_LIMIT;
	}
	for (size_t i = 0; i < n; i++)
		if (ts_escrow_rsa_spki_check(spkis[i], lens[i], &mod[i]) < 0) {
			snprintf(err, errlen, "escrow recipient %zu: not a usable RSA key", i + 1);
			return -TS_E_INVALID_ARGS;
		}
	if (n_holds >= TS_ESCROW_STOCK_HOLDS) {
		snprintf(err, errlen, "%zu escrow seals are waiting for RSA-wrapped box keys; try again", n_holds);
		return -TS_E_BUSY;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -TS_E_NOMEM;
	}
	stock_event = event;
	h->uid = uid;
	h->reserved_ok = reserved_ok;
	h->done = done;
	h->userdata = userdata;
	/* Listed first, so that the recipients it names are not forgotten for one another. */
	for (tail = &holds; *tail; tail = &(*tail)->next)
		;
	*tail = h;
	n_holds++;
	for (size_t i = 0; i < n; i++) {
		recipient *rc;

		if ((rc = recipient_get(spkis[i], lens[i], mod[i])) == NULL) {
			ts_escrow_stock_release(h);
			snprintf(err, errlen, "box keys are being kept for %d other RSA escrow recipients; try again",
			         TS_ESCROW_STOCK_RECIPIENTS);
			return -TS_E_BUSY;
		}
		rc->used = ++tick;
		h->rcp[h->n] = rc;
		if (rc->free) {
			h->key[h->n] = rc->free;
			rc->free = rc->free->next;
			h->key[h->n]->next = NULL;
			rc->n_free--;
		}
		h->n++;
	}
	if (hold_complete(h)) {
		h->notified = 1;
		*ret = h;
		return 1;
	}
	if (hold_over_cap(h)) {
		ts_escrow_stock_release(h);
		snprintf(err, errlen, "calls of this user (or of all users) wait for box keys of too many RSA escrow "
		         "recipients; try again");
		return -TS_E_BUSY;
	}
	/* The caller's wraps start now, or fail now: Busy is the caller's answer, not a later callback. */
	for (size_t i = 0; i < h->n; i++) {
		recipient *rc = h->rcp[i];

		if (h->key[i] || rc->job || n_jobs >= TS_ESCROW_STOCK_JOBS)
			continue;   /* being wrapped, or queued: started when a wrap ends */
		if ((r = wrap_start(rc, reserved_ok, err, errlen)) < 0) {
			ts_escrow_stock_release(h);
			return r;
		}
	}
	*ret = h;
	return 0;
}

void ts_escrow_stock_release(ts_escrow_stock_hold *h)
{
	if (!h)
		return;
	for (ts_escrow_stock_hold **pp = &holds; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			n_holds--;
			break;
		}
	for (size_t i = 0; i < h->n; i++)
		if (h->key[i]) {
			h->key[i]->next = h->rcp[i]->free;
			h->rcp[i]->free = h->key[i];
			h->rcp[i]->n_free++;
		}
	free(h);
}

int ts_escrow_stock_take(const uint8_t *spki, size_t spki_len, uint8_t *k, ts_buf *out, char *err, size_t errlen)
{
	recipient *rc = recipient_find(spki, spki_len);
	stock_key *s;
	int r;

	if (!rc || !rc->free) {
		snprintf(err, errlen, "no RSA-wrapped box key is ready for this escrow recipient; try again");
		return -TS_E_BUSY;
	}
	s = rc->free;
	rc->free = s->next;
	rc->n_free--;
	rc->used = ++tick;
	rc->spare = TS_ESCROW_STOCK_SPARE;
	/* Refilled from the loop, after this seal: never a helper started in the middle of one. */
	if (!refill_defer && stock_event && sd_event_add_defer(stock_event, &refill_defer, on_refill, NULL) < 0)
		refill_defer = NULL;
	memcpy(k, s->k, TS_ESCROW_RSA_KEY_BYTES);
	r = ts_buf_append(out, s->wrapped, s->wrapped_len);
	key_free(s);   /* used once: wiped whatever happens */
	return r;
}

void ts_escrow_stock_shutdown(void)
{
	while (holds) {
		ts_escrow_stock_hold *h = holds;
		for (size_t i = 0; i < h->n; i++) {
			key_free(h->key[i]);
			h->key[i] = NULL;
		}
		ts_escrow_stock_release(h);
	}
	for (size_t i = 0; i < TS_ESCROW_STOCK_RECIPIENTS; i++) {
		ts_remote_job_cancel(recipients[i].job);
		ts_secure_free(recipients[i].job_k);
		recipient_clear(&recipients[i]);
	}
	n_jobs = 0;
	refill_defer = sd_event_source_disable_unref(refill_defer);
	stock_event = NULL;
}
