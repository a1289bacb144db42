/* fuzz_ctap.c — libFuzzer harness: softfido's CTAPHID framing and CTAP2 CBOR requests, all in memory. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "../softfido/softfido.h"
#include "fuzz.h"

/*
 * The harness stands in for softfido's main.c (sockets, poll loop, state
 * file): it links hid.c, ctap.c, pin.c, cbor.c and crypto.c unchanged and
 * provides the few functions main.c exports. Reports "sent" by the
 * authenticator land in a buffer; the state lives in memory only
 * (sf_persist keeps it there) and is reset before every input, so an input
 * means the same thing whatever ran before it. User presence always
 * approves at once (sf.up_mode), so sf_loop_once is never needed to wait.
 *
 * Input, by its first byte:
 *   even: raw CTAPHID — the rest in 64-byte reports (the last one zero
 *         padded). A report whose CID is 00000001 goes to the channel the
 *         harness opened with INIT first (real CIDs are random, so the
 *         fuzzer could never name one).
 *   odd:  a sequence of CTAP2 requests (command byte + CBOR), each behind a
 *         2-byte big-endian length (the last takes what remains), sent as
 *         CTAPHID_CBOR messages on that channel. After a makeCredential
 *         succeeds, any run of 62 bytes 0xCC in a later request becomes its
 *         credential id, so a getAssertion seed can name a real credential.
 * ok-* seeds are CBOR sequences whose every request must answer CTAP2_OK.
 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HID_INIT 0x86
#define HID_CBOR 0x90
#define HID_KEEPALIVE 0xBB
#define HID_ERROR 0xBF
#define MAGIC_CID 0x00000001u
#define CRED_ID_LEN 62
#define MAX_OUT 512 /* reports kept per request: far above what one answer needs */

sf_authenticator sf;

struct sf_conn {
	unsigned gen;
	int alive;
};

static sf_conn conn = { .gen = 1, .alive = 1 };
static uint8_t out[MAX_OUT][SF_REPORT_LEN];
static size_t n_out;
static sf_state initial_state;

uint64_t sf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Formatted and dropped: the arguments are still read (UBSan/ASan see them). */
void sf_log(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
}

/* In memory only: the next input starts from initial_state anyway. */
int sf_persist(void)
{
	return CTAP2_OK;
}

void sf_power_cycle(void)
{
	sf.pin_failures = 0;
	sf_pin_regenerate();
	sf_pin_reset_token();
	sf.boot_ms = sf_now_ms();
}

unsigned sf_conn_gen(const sf_conn *c)
{
	return c->gen;
}

int sf_conn_alive(const sf_conn *c, unsigned gen)
{
	return c && c->alive && c->gen == gen;
}

int sf_conn_send(sf_conn *c, const uint8_t pkt[SF_REPORT_LEN])
{
	TS_FUZZ_CHECK(c == &conn);
	if (n_out < MAX_OUT)
		memcpy(out[n_out++], pkt, SF_REPORT_LEN);
	return 0;
}

void sf_loop_once(int timeout_ms)
{
	(void)timeout_ms;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* A fixed master key and AAGUID: test values that protect nothing. */
	for (size_t i = 0; i < sizeof(initial_state.master); i++)
		initial_state.master[i] = (uint8_t)(0x40 + i);
	memcpy(initial_state.aaguid, "softfido-fuzz-00", 16);
	initial_state.pin_retries = SF_PIN_RETRIES_MAX;
	sf.proto_v1 = sf.proto_v2 = 1;
	sf.up_mode = SF_UP_APPROVE;
	sf.serial = 1;
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Every report the authenticator sends is on the channel the harness opened,
 * on broadcast, or on a CID some input report used (as sent, after padding). */
static void check_out_cids(uint32_t cid, const uint32_t *sent, size_t n_sent)
{
	for (size_t i = 0; i < n_out; i++) {
		uint32_t c = be32(out[i]);
		int known = c == cid || c == 0xffffffffu;

		for (size_t j = 0; !known && j < n_sent; j++)
			known = sent[j] == c;
		TS_FUZZ_CHECK(known);
	}
}

/* Opens a channel with INIT on the broadcast CID; returns the new CID. */
static uint32_t open_channel(void)
{
	uint8_t pkt[SF_REPORT_LEN] = { 0 };
	uint32_t cid;

	put32(pkt, 0xffffffffu);
	pkt[4] = HID_INIT;
	pkt[6] = 8;
	memcpy(pkt + 7, "fuzznonc", 8);
	n_out = 0;
	sf_hid_packet(&conn, pkt, sizeof(pkt));
	TS_FUZZ_CHECK(n_out == 1 && out[0][4] == HID_INIT && out[0][6] == 17);
	TS_FUZZ_CHECK(memcmp(out[0] + 7, "fuzznonc", 8) == 0);
	cid = be32(out[0] + 15);
	TS_FUZZ_CHECK(cid != 0 && cid != 0xffffffffu);
	return cid;
}

/*
 * Sends one CTAPHID_CBOR message and reassembles the answer: keepalives
 * first, then exactly one CBOR message. Returns its length, or -1 if the
 * authenticator answered with an HID error (a request too long).
 */
static long cbor_exchange(uint32_t cid, const uint8_t *req, size_t n, uint8_t *resp)
{
	uint8_t pkt[SF_REPORT_LEN];
	size_t off, k, i, len, have;
	uint8_t seq = 0;

	n_out = 0;
	memset(pkt, 0, sizeof(pkt));
	put32(pkt, cid);
	pkt[4] = HID_CBOR;
	pkt[5] = (uint8_t)(n >> 8);
	pkt[6] = (uint8_t)n;
	k = n < SF_REPORT_LEN - 7 ? n : SF_REPORT_LEN - 7;
	memcpy(pkt + 7, req, k);
	sf_hid_packet(&conn, pkt, sizeof(pkt));
	for (off = k; off < n; off += k) {
		memset(pkt, 0, sizeof(pkt));
		put32(pkt, cid);
		pkt[4] = seq++;
		k = n - off < SF_REPORT_LEN - 5 ? n - off : SF_REPORT_LEN - 5;
		memcpy(pkt + 5, req + off, k);
		sf_hid_packet(&conn, pkt, sizeof(pkt));
	}
	for (i = 0; i < n_out; i++)
		TS_FUZZ_CHECK(be32(out[i]) == cid);
	for (i = 0; i < n_out && out[i][4] == HID_KEEPALIVE; i++)
		;
	TS_FUZZ_CHECK(i < n_out);
	len = (size_t)out[i][5] << 8 | out[i][6];
	if (out[i][4] == HID_ERROR) {
		TS_FUZZ_CHECK(len == 1 && i + 1 == n_out);
		/* Only a length the framing cannot carry or an empty message earns an HID error. */
		TS_FUZZ_CHECK(n == 0 || n > SF_MAX_MSG);
		return -1;
	}
	TS_FUZZ_CHECK(out[i][4] == HID_CBOR && len >= 1 && len <= SF_MAX_MSG);
	have = len < SF_REPORT_LEN - 7 ? len : SF_REPORT_LEN - 7;
	memcpy(resp, out[i] + 7, have);
	for (seq = 0, i++; i < n_out; i++, seq++) {
		TS_FUZZ_CHECK(out[i][4] == seq && have < len);
		k = len - have < SF_REPORT_LEN - 5 ? len - have : SF_REPORT_LEN - 5;
		memcpy(resp + have, out[i] + 5, k);
		have += k;
	}
	TS_FUZZ_CHECK(have == len);
	return (long)len;
}

/* A successful answer is one canonical-looking CBOR map and nothing after it; an error is the status alone. */
static void check_response(const uint8_t *resp, size_t len)
{
	struct cbor_load_result res;
	cbor_item_t *item;

	if (resp[0] != CTAP2_OK) {
		TS_FUZZ_CHECK(len == 1);
		return;
	}
	if (len == 1)
		return;
	item = cbor_load(resp + 1, len - 1, &res);
	TS_FUZZ_CHECK(item != NULL && res.error.code == CBOR_ERR_NONE && res.read == len - 1);
	TS_FUZZ_CHECK(cbor_isa_map(item));
	cbor_decref(&item);
}

/* The credential id inside a makeCredential answer's attested credential data. */
static int extract_cred_id(const uint8_t *resp, size_t len, uint8_t id[CRED_ID_LEN])
{
	struct cbor_load_result res;
	cbor_item_t *item, *ad;
	const uint8_t *p;
	size_t n;
	int ok = 0;

	if (len < 2 || resp[0] != CTAP2_OK || !(item = cbor_load(resp + 1, len - 1, &res)))
		return 0;
	ad = sf_cbor_get_int_key(item, 2); /* authData */
	if (ad && sf_cbor_bytes(ad, &p, &n) == CTAP2_OK && n >= 55 + CRED_ID_LEN &&
	    p[32] & 0x40 && ((size_t)p[53] << 8 | p[54]) == CRED_ID_LEN) {
		memcpy(id, p + 55, CRED_ID_LEN);
		ok = 1;
	}
	cbor_decref(&item);
	return ok;
}

static void substitute_cred_id(uint8_t *req, size_t n, const uint8_t id[CRED_ID_LEN])
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		run = req[i] == 0xCC ? run + 1 : 0;
		if (run == CRED_ID_LEN) {
			memcpy(req + i + 1 - CRED_ID_LEN, id, CRED_ID_LEN);
			run = 0;
		}
	}
}

static void run_hid(const uint8_t *data, size_t size, uint32_t cid)
{
	static uint32_t sent[SF_MAX_MSG];
	uint8_t pkt[SF_REPORT_LEN];
	size_t k, n_sent = 0;

	n_out = 0;
	for (size_t off = 0; off < size && n_sent < SF_MAX_MSG; off += SF_REPORT_LEN) {
		k = size - off < SF_REPORT_LEN ? size - off : SF_REPORT_LEN;
		memset(pkt, 0, sizeof(pkt));
		memcpy(pkt, data + off, k);
		if (be32(pkt) == MAGIC_CID)
			put32(pkt, cid);
		sent[n_sent++] = be32(pkt);
		sf_hid_packet(&conn, pkt, sizeof(pkt));
		check_out_cids(cid, sent, n_sent);
		n_out = 0;
	}
	/* A message left half-received times out like on the wire. */
	sf_hid_tick();
}

static void run_cbor(const uint8_t *data, size_t size, uint32_t cid)
{
	static uint8_t req[SF_MAX_MSG + 64], resp[SF_MAX_MSG];
	uint8_t id[CRED_ID_LEN];
	int have_id = 0;
	size_t off = 0, n;
	long len;

	while (off < size) {
		n = size - off >= 2 ? (size_t)data[off] << 8 | data[off + 1] : 0;
		off += size - off >= 2 ? 2 : size - off;
		if (n > size - off)
			n = size - off;
		if (n > sizeof(req))
			n = sizeof(req);
		memcpy(req, data + off, n);
		off += n;
		if (have_id)
			substitute_cred_id(req, n, id);
		len = cbor_exchange(cid, req, n, resp);
		if (len < 0) {
			TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
			continue;
		}
		check_response(resp, (size_t)len);
		if (ts_fuzz_expect_valid() && resp[0] != CTAP2_OK) {
			fprintf(stderr, "request 0x%02x answered 0x%02x\n", n ? req[0] : 0, resp[0]);
			TS_FUZZ_CHECK(resp[0] == CTAP2_OK);
		}
		if (n && req[0] == 0x01 && extract_cred_id(resp, (size_t)len, id))
			have_id = 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t cid;

	if (size < 1)
		return 0;
	/* Same state for every input: fixed keys, no PIN, full retries, fresh channels. */
	sf.st = initial_state;
	sf.up_once = 0;
	sf_power_cycle();
	sf_hid_conn_closed(&conn);
	conn.gen++;
	cid = open_channel();
	if (data[0] & 1)
		run_cbor(data + 1, size - 1, cid);
	else
		run_hid(data + 1, size - 1, cid);
	return 0;
}
