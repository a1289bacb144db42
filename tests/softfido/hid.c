/* hid.c — CTAPHID (CTAP 2.1 §11.2) over 64-byte reports: channels, message assembly, keepalive and the wait for a touch. */
#include <string.h>

#include "softfido.h"

enum {
	HID_PING = 0x01,
	HID_MSG = 0x03,
	HID_LOCK = 0x04,
	HID_INIT = 0x06,
	HID_WINK = 0x08,
	HID_CBOR = 0x10,
	HID_CANCEL = 0x11,
	HID_KEEPALIVE = 0x3B,
	HID_ERROR = 0x3F,
};

enum {
	ERR_INVALID_CMD = 0x01,
	ERR_INVALID_PAR = 0x02,
	ERR_INVALID_LEN = 0x03,
	ERR_INVALID_SEQ = 0x04,
	ERR_MSG_TIMEOUT = 0x05,
	ERR_CHANNEL_BUSY = 0x06,
	ERR_INVALID_CHANNEL = 0x0B,
	ERR_OTHER = 0x7F,
};

#define CAP_WINK 0x01
#define CAP_CBOR 0x04
#define CAP_NMSG 0x08 /* no CTAP1/U2F MSG command */
#define STATUS_UPNEEDED 0x02
#define CID_BROADCAST 0xffffffffu
#define INIT_DATA (SF_REPORT_LEN - 7)
#define CONT_DATA (SF_REPORT_LEN - 5)
#define MSG_TIMEOUT_MS 500 /* between the packets of one message */
#define MAX_CHANNELS 32

typedef struct channel {
	uint32_t cid;
	sf_conn *conn;
	unsigned gen;
} channel;

static channel channels[MAX_CHANNELS];
static unsigned next_slot;

/* The message being assembled. One at a time: the device is single-threaded,
 * and another channel starting one meanwhile gets ERR_CHANNEL_BUSY. */
static struct {
	int active;
	uint32_t cid;
	sf_conn *conn;
	uint8_t cmd;
	size_t len, have;
	uint8_t seq;
	uint64_t deadline;
	uint8_t data[SF_MAX_MSG];
} rx;

/* The CBOR transaction in progress (waiting for a touch, possibly). */
static struct {
	int active;
	uint32_t cid;
	sf_conn *conn;
	unsigned gen;
	int cancelled, aborted;
} busy;

static uint8_t req[SF_MAX_MSG];
static sf_out resp;

static uint32_t be32(const uint8_t *p) {
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v) {
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Splits a message into an init packet and continuation packets. */
static void send_msg(sf_conn *c, uint32_t cid, uint8_t cmd, const uint8_t *data, size_t len) {
	uint8_t pkt[SF_REPORT_LEN];
	size_t off, n;
	uint8_t seq = 0;

	memset(pkt, 0, sizeof(pkt));
	put32(pkt, cid);
	pkt[4] = 0x80 | cmd;
	pkt[5] = (uint8_t)(len >> 8);
	pkt[6] = (uint8_t)len;
	n = len < INIT_DATA ? len : INIT_DATA;
	if (n)
		memcpy(pkt + 7, data, n);
	if (sf_conn_send(c, pkt) < 0)
		return;
	for (off = n; off < len; off += n) {
		memset(pkt, 0, sizeof(pkt));
		put32(pkt, cid);
		pkt[4] = seq++;
		n = len - off < CONT_DATA ? len - off : CONT_DATA;
		memcpy(pkt + 5, data + off, n);
		if (sf_conn_send(c, pkt) < 0)
			return;
	}
}

static void send_error(sf_conn *c, uint32_t cid, uint8_t code) {
	if (sf.verbose)
		sf_log("hid %08x: error 0x%02x", cid, code);
	send_msg(c, cid, HID_ERROR, &code, 1);
}

static channel *find_channel(sf_conn *c, uint32_t cid) {
	for (unsigned i = 0; i < MAX_CHANNELS; i++)
		if (channels[i].cid == cid && channels[i].conn == c && sf_conn_alive(c, channels[i].gen))
			return &channels[i];
	return NULL;
}

/* A fresh random CID (never 0 or broadcast); the oldest slot makes room. */
static uint32_t alloc_channel(sf_conn *c) {
	uint32_t cid;
	int taken;

	do {
		if (sf_random(&cid, sizeof(cid)) < 0)
			return 0;
		taken = 0;
		for (unsigned i = 0; i < MAX_CHANNELS; i++)
			if (channels[i].cid == cid)
				taken = 1;
	} while (cid == 0 || cid == CID_BROADCAST || taken);
	/* The evicted channel's half-received message goes with it. */
	if (rx.active && rx.cid == channels[next_slot].cid && rx.conn == channels[next_slot].conn)
		rx.active = 0;
	channels[next_slot].cid = cid;
	channels[next_slot].conn = c;
	channels[next_slot].gen = sf_conn_gen(c);
	next_slot = (next_slot + 1) % MAX_CHANNELS;
	return cid;
}

static void handle_init(sf_conn *c, uint32_t cid, const uint8_t *nonce, size_t len) {
	uint8_t r[17];
	uint32_t ncid = cid;

	if (cid != CID_BROADCAST && !find_channel(c, cid)) {
		send_error(c, cid, ERR_INVALID_CHANNEL);
		return;
	}
	if (len != 8) {
		send_error(c, cid, ERR_INVALID_LEN);
		return;
	}
	/* INIT on a channel resynchronises it: whatever it was doing is dropped. */
	if (rx.active && rx.cid == cid && rx.conn == c)
		rx.active = 0;
	if (busy.active && busy.cid == cid && busy.conn == c)
		busy.aborted = 1;
	if (cid == CID_BROADCAST && !(ncid = alloc_channel(c))) {
		send_error(c, cid, ERR_OTHER);
		return;
	}
	memcpy(r, nonce, 8);
	put32(r + 8, ncid);
	r[12] = 2;          /* CTAPHID protocol version */
	r[13] = 1;          /* device version major, minor, build */
	r[14] = 0;
	r[15] = 0;
	r[16] = CAP_WINK | CAP_CBOR | CAP_NMSG;
	send_msg(c, cid, HID_INIT, r, sizeof(r));
}

/* A whole message arrived on rx: run it. */
static void complete(void) {
	sf_conn *c = rx.conn;
	uint32_t cid = rx.cid;
	uint8_t cmd = rx.cmd;
	size_t len = rx.len;

	rx.active = 0;
	memcpy(req, rx.data, len);
	switch (cmd) {
	case HID_PING:
		send_msg(c, cid, HID_PING, req, len);
		break;
	case HID_WINK:
		if (len != 0)
			send_error(c, cid, ERR_INVALID_LEN);
		else
			send_msg(c, cid, HID_WINK, NULL, 0);
		break;
	case HID_CBOR:
		if (len == 0) {
			send_error(c, cid, ERR_INVALID_LEN);
			break;
		}
		busy.active = 1;
		busy.cid = cid;
		busy.conn = c;
		busy.gen = sf_conn_gen(c);
		busy.cancelled = busy.aborted = 0;
		sf_ctap_dispatch(req, len, &resp);
		busy.active = 0;
		if (resp.len && !busy.aborted && sf_conn_alive(c, busy.gen))
			send_msg(c, cid, HID_CBOR, resp.buf, resp.len);
		sf_wipe(req, len);
		sf_wipe(resp.buf, resp.len);
		break;
	default: /* MSG (no U2F), LOCK, vendor commands */
		send_error(c, cid, ERR_INVALID_CMD);
		break;
	}
}

static void handle_init_packet(sf_conn *c, uint32_t cid, const uint8_t *pkt) {
	uint8_t cmd = pkt[4] & 0x7f;
	size_t len = (size_t)pkt[5] << 8 | pkt[6];

	if (cid == 0) {
		send_error(c, cid, ERR_INVALID_CHANNEL);
		return;
	}
	if (cmd == HID_INIT) {
		handle_init(c, cid, pkt + 7, len);
		return;
	}
	if (cmd == HID_CANCEL) { /* never answered; ends a wait for a touch */
		if (busy.active && busy.cid == cid && busy.conn == c)
			busy.cancelled = 1;
		return;
	}
	if (cid == CID_BROADCAST || !find_channel(c, cid)) {
		send_error(c, cid, ERR_INVALID_CHANNEL);
		return;
	}
	if (busy.active) {
		send_error(c, cid, ERR_CHANNEL_BUSY);
		return;
	}
	if (rx.active) {
		if (rx.cid == cid && rx.conn == c) {
			/* A new message before the last one was whole: both are lost. */
			rx.active = 0;
			send_error(c, cid, ERR_INVALID_SEQ);
		} else {
			send_error(c, cid, ERR_CHANNEL_BUSY);
		}
		return;
	}
	if (len > SF_MAX_MSG) {
		send_error(c, cid, ERR_INVALID_LEN);
		return;
	}
	rx.active = 1;
	rx.cid = cid;
	rx.conn = c;
	rx.cmd = cmd;
	rx.len = len;
	rx.have = len < INIT_DATA ? len : INIT_DATA;
	rx.seq = 0;
	rx.deadline = sf_now_ms() + MSG_TIMEOUT_MS;
	memcpy(rx.data, pkt + 7, rx.have);
	if (rx.have == rx.len)
		complete();
}

static void handle_cont_packet(sf_conn *c, uint32_t cid, const uint8_t *pkt) {
	uint8_t seq = pkt[4];
	size_t n;

	if (cid == 0 || cid == CID_BROADCAST || !find_channel(c, cid)) {
		send_error(c, cid, ERR_INVALID_CHANNEL);
		return;
	}
	/* Spurious continuation packets, with no message started, are ignored (§11.2.4). */
	if (!rx.active || rx.cid != cid || rx.conn != c)
		return;
	if (seq != rx.seq) {
		rx.active = 0;
		send_error(c, cid, ERR_INVALID_SEQ);
		return;
	}
	n = rx.len - rx.have < CONT_DATA ? rx.len - rx.have : CONT_DATA;
	memcpy(rx.data + rx.have, pkt + 5, n);
	rx.have += n;
	rx.seq++;
	rx.deadline = sf_now_ms() + MSG_TIMEOUT_MS;
	if (rx.have == rx.len)
		complete();
}

void sf_hid_packet(sf_conn *c, const uint8_t *pkt, size_t n) {
	uint32_t cid;

	/* A HID report has exactly one size; anything else cannot come from a host stack. */
	if (n != SF_REPORT_LEN)
		return;
	cid = be32(pkt);
	if (sf.verbose)
		sf_log("hid %08x: %s 0x%02x len %u", cid, pkt[4] & 0x80 ? "init" : "cont", pkt[4],
		       (unsigned)pkt[5] << 8 | pkt[6]);
	if (pkt[4] & 0x80)
		handle_init_packet(c, cid, pkt);
	else
		handle_cont_packet(c, cid, pkt);
}

void sf_hid_conn_closed(sf_conn *c) {
	if (rx.active && rx.conn == c)
		rx.active = 0;
	if (busy.active && busy.conn == c)
		busy.aborted = 1;
	for (unsigned i = 0; i < MAX_CHANNELS; i++)
		if (channels[i].conn == c)
			memset(&channels[i], 0, sizeof(channels[i]));
}

int sf_hid_timeout_ms(void) {
	uint64_t now;

	if (!rx.active)
		return -1;
	now = sf_now_ms();
	return rx.deadline > now ? (int)(rx.deadline - now) : 0;
}

void sf_hid_tick(void) {
	if (rx.active && sf_now_ms() >= rx.deadline) {
		rx.active = 0;
		send_error(rx.conn, rx.cid, ERR_MSG_TIMEOUT);
	}
}

/* Takes the decision for this request: a one-shot mode is used up here. */
static sf_up_mode up_decision(void) {
	sf_up_mode m;

	if (sf.up_once) {
		m = (sf_up_mode)(sf.up_once - 1);
		sf.up_once = 0;
		return m;
	}
	return sf.up_mode;
}

int sf_up_wait(void) {
	uint64_t start = sf_now_ms(), now, next_ka = 0;
	uint8_t status = STATUS_UPNEEDED;

	if (!busy.active)
		return CTAP1_ERR_OTHER;
	for (;;) {
		if (sf.terminating || busy.aborted || !sf_conn_alive(busy.conn, busy.gen))
			return SF_ABORTED;
		if (busy.cancelled)
			return CTAP2_ERR_KEEPALIVE_CANCEL;
		now = sf_now_ms();
		/* As a real key blinks before it is touched: at least one keepalive. */
		if (now >= next_ka) {
			send_msg(busy.conn, busy.cid, HID_KEEPALIVE, &status, 1);
			next_ka = now + SF_KEEPALIVE_MS;
		}
		switch (up_decision()) {
		case SF_UP_APPROVE:
			return CTAP2_OK;
		case SF_UP_DENY:
			return CTAP2_ERR_OPERATION_DENIED;
		case SF_UP_TIMEOUT:
			break;
		}
		if (now - start >= SF_UP_TIMEOUT_MS)
			return CTAP2_ERR_USER_ACTION_TIMEOUT;
		sf_loop_once((int)(next_ka - now));
	}
}
