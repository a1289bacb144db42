/*
 * direct_frame.c — the private socket's byte stream, checked before sd-bus
 * reads it (direct_frame.h). Written for hostile bytes: every length is
 * checked against what is there before it is used, and nothing is copied.
 *
 * The stream is the D-Bus one: a NUL byte, SASL lines ending in CRLF up to
 * and including "BEGIN", then messages. A message is a 16-byte fixed header
 * (endianness, type, flags, version, body length, serial, length of the
 * header-field array), the header fields (an array of (code, variant)
 * structs, 8-aligned), padding to 8, and the body.
 */
#include <errno.h>
#include <string.h>

#include "bus/direct_frame.h"
#include "bus/state.h"

#define ALIGN_TO(x, a) (((x) + (a) - 1) & ~(uint64_t)((a) - 1))

enum {
	FIELD_PATH = 1,
	FIELD_INTERFACE,
	FIELD_MEMBER,
	FIELD_ERROR_NAME,
	FIELD_REPLY_SERIAL,
	FIELD_DESTINATION,
	FIELD_SENDER,
	FIELD_SIGNATURE,
	FIELD_UNIX_FDS,
	FIELD_MAX = FIELD_UNIX_FDS
};

/* The type each known field must have. */
static const char field_type[FIELD_MAX + 1] = {
	[FIELD_PATH] = 'o', [FIELD_INTERFACE] = 's', [FIELD_MEMBER] = 's', [FIELD_ERROR_NAME] = 's',
	[FIELD_REPLY_SERIAL] = 'u', [FIELD_DESTINATION] = 's', [FIELD_SENDER] = 's', [FIELD_SIGNATURE] = 'g',
	[FIELD_UNIX_FDS] = 'u',
};

/* The methods whose arguments may be large (a context, blobs, a batch): every other message is small. */
static const char *const data_methods[] = {
	"Wrap", "Unwrap", "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch",
};

int ts_frame_data_method(const char *iface, const char *member)
{
	if (!member || (iface && strcmp(iface, TS_VAULT_IFACE) != 0))
		return 0;
	for (size_t i = 0; i < sizeof(data_methods) / sizeof(data_methods[0]); i++)
		if (strcmp(member, data_methods[i]) == 0)
			return 1;
	return 0;
}

void ts_frame_init(ts_frame *f, uint32_t max_size, unsigned max_fds)
{
	memset(f, 0, sizeof(*f));
	f->phase = TS_FRAME_AUTH;
	f->max_size = max_size;
	f->max_fds = max_fds;
}

static uint32_t u32_at(const uint8_t *p, int big)
{
	return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
	           : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Is p[0..n) the string s? */
static int eq(const uint8_t *p, size_t n, const char *s)
{
	return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

static long refuse(const char **why, const char *what)
{
	*why = what;
	return -EBADMSG;
}

/* The SASL lines: passed on whole, up to and including BEGIN. */
static long next_auth(ts_frame *f, const uint8_t *buf, size_t len, const char **why)
{
	size_t off = 0, i;

	if (f->auth_seen == 0 && len > 0) {
		if (buf[0] != 0)
			return refuse(why, "a stream that does not begin with a NUL byte");
		off = 1;
	}
	for (i = off; i + 1 < len; i++) {
		if (buf[i] != '\r' || buf[i + 1] != '\n')
			continue;
		if (i - off == 5 && memcmp(buf + off, "BEGIN", 5) == 0) {
			f->phase = TS_FRAME_HEADER;
			off = i + 2;
			break;
		}
		off = i + 2;
		i++;
	}
	if (f->auth_seen + (f->phase == TS_FRAME_AUTH ? len : off) > TS_FRAME_AUTH_MAX)
		return refuse(why, "an authentication exchange too long");
	f->auth_seen += off;
	return (long)off;
}

/*
 * The header fields, fields[0..n): each known code at most once, with its
 * own type, strings NUL-terminated inside the array; no unknown code and
 * no sender (only a bus driver writes one). Fills msg's descriptor count
 * and whether it calls a data method.
 */
static long check_fields(const uint8_t *h, size_t n, int big, ts_frame_msg *msg, uint8_t type, const char **why)
{
	unsigned seen = 0;
	const uint8_t *member = NULL, *iface = NULL;
	size_t member_len = 0, iface_len = 0;
	size_t pos = 0;

	while (pos < n) {
		uint8_t code;
		uint64_t vlen;

		pos = (size_t)ALIGN_TO(pos, 8);
		if (pos + 4 > n)
			return refuse(why, "a header field cut short");
		code = h[pos];
		if (code == 0 || code > FIELD_MAX)
			return refuse(why, "a header field the daemon does not know");
		if (code == FIELD_SENDER)
			return refuse(why, "a message naming a sender");
		if (seen & 1u << code)
			return refuse(why, "a header field twice");
		seen |= 1u << code;
		/* The variant's signature: one type, the field's own. */
		if (h[pos + 1] != 1 || h[pos + 2] != (uint8_t)field_type[code] || h[pos + 3] != 0)
			return refuse(why, "a header field of the wrong type");
		pos += 4;
		switch (field_type[code]) {
		case 'u':
			if (pos + 4 > n)
				return refuse(why, "a header field cut short");
			if (code == FIELD_UNIX_FDS)
				msg->fds = u32_at(h + pos, big) > 255 ? 256 : u32_at(h + pos, big);
			pos += 4;
			break;
		case 'g':
			if (pos + 1 > n)
				return refuse(why, "a header field cut short");
			vlen = h[pos];
			if (pos + 1 + vlen + 1 > n || h[pos + 1 + vlen] != 0 || memchr(h + pos + 1, 0, vlen))
				return refuse(why, "a header field cut short");
			pos += 1 + vlen + 1;
			break;
		default: /* 's', 'o' */
			if (pos + 4 > n)
				return refuse(why, "a header field cut short");
			vlen = u32_at(h + pos, big);
			if (vlen > n || pos + 4 + vlen + 1 > n || h[pos + 4 + vlen] != 0 || memchr(h + pos + 4, 0, vlen))
				return refuse(why, "a header field cut short");
			if (code == FIELD_MEMBER) {
				member = h + pos + 4;
				member_len = vlen;
			} else if (code == FIELD_INTERFACE) {
				iface = h + pos + 4;
				iface_len = vlen;
			}
			pos += 4 + vlen + 1;
			break;
		}
	}
	/* A client has no business writing to sd-bus's own interface of local events (Disconnected). */
	if (eq(iface, iface_len, "org.freedesktop.DBus.Local"))
		return refuse(why, "a message on the local interface");
	msg->data_method = 0;
	if (type == 1 && (!iface || eq(iface, iface_len, TS_VAULT_IFACE)))
		for (size_t i = 0; i < sizeof(data_methods) / sizeof(data_methods[0]); i++)
			msg->data_method |= eq(member, member_len, data_methods[i]);
	return 0;
}

static long next_header(ts_frame *f, const uint8_t *buf, size_t len, ts_frame_msg *msg, int *got, const char **why)
{
	uint32_t fields_len;
	uint64_t head, size;
	int big;
	long r;

	if (len < 16)
		return 0;
	if (buf[0] != 'l' && buf[0] != 'B')
		return refuse(why, "a message of no known byte order");
	big = buf[0] == 'B';
	if (buf[1] < 1 || buf[1] > 4 || buf[3] != 1)
		return refuse(why, "a message of no known type or version");
	memset(msg, 0, sizeof(*msg));
	msg->body_size = u32_at(buf + 4, big);
	msg->serial = u32_at(buf + 8, big);
	fields_len = u32_at(buf + 12, big);
	if (msg->serial == 0 || msg->serial == f->last_serial)
		return refuse(why, "a message whose serial is 0 or that of the one before");
	if (fields_len > TS_FRAME_FIELDS_MAX)
		return refuse(why, "a message with header fields too long");
	head = 16 + ALIGN_TO((uint64_t)fields_len, 8);
	size = head + msg->body_size;
	if (size > f->max_size)
		return refuse(why, "a message larger than the daemon takes");
	if (len < head)
		return 0;
	if ((r = check_fields(buf + 16, fields_len, big, msg, buf[1], why)) < 0)
		return r;
	if (!msg->data_method && size > TS_FRAME_SMALL_MAX)
		return refuse(why, "a message larger than its method takes");
	if (msg->fds > f->max_fds)
		return refuse(why, "a message with too many file descriptors");
	msg->size = (uint32_t)size;
	f->last_serial = msg->serial;
	*got = 1;
	if (msg->body_size > len - head) {
		f->phase = TS_FRAME_BODY;
		f->body_left = msg->body_size - (len - head);
		return (long)len;
	}
	return (long)(head + msg->body_size);
}

long ts_frame_next(ts_frame *f, const uint8_t *buf, size_t len, ts_frame_msg *msg, int *got, const char **why)
{
	*got = 0;
	*why = NULL;
	switch (f->phase) {
	case TS_FRAME_AUTH:
		return next_auth(f, buf, len, why);
	case TS_FRAME_HEADER:
		return next_header(f, buf, len, msg, got, why);
	default:
		if ((uint64_t)len >= f->body_left) {
			len = (size_t)f->body_left;
			f->phase = TS_FRAME_HEADER;
			f->body_left = 0;
			return (long)len;
		}
		f->body_left -= len;
		return (long)len;
	}
}
