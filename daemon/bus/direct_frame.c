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
#include <stdlib.h>
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
	"Wrap", "Unwrap", "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch", "UnwrapBatchPacked",
	"RewrapBatchPacked",
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

/* The calls that take descriptors (the 'h' arguments of vault_object.c's and manager.c's tables). */
static const struct {
	const char *iface, *member, *signature;
} fd_methods[] = {
	{ TS_VAULT_IFACE, "Unlock", "sha{ss}" },
	{ TS_VAULT_IFACE, "AddProtector", "sa{ss}hh" },
	{ TS_VAULT_IFACE, "RevokeAndRekey", "sh" },
	{ TS_VAULT_IFACE, "RotateRecoveryKey", "shh" },
	{ TS_MANAGER_IFACE, "CreateVault", "sa{ss}h" },
};

/* An object path under the daemon's (/org/tokenseal1, and below it: elements of [A-Za-z0-9_]). */
static int path_ok(const uint8_t *p, size_t n)
{
	static const char root[] = "/org/tokenseal1";
	size_t m = sizeof(root) - 1;

	if (!p || n < m || memcmp(p, root, m) != 0)
		return 0;
	for (size_t i = m; i < n; i++) {
		uint8_t c = p[i];

		if (c == '/') {
			if (i + 1 == n || p[i + 1] == '/')
				return 0;
		} else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
		else if (i == m)
			return 0; /* "/org/tokenseal1x" */
	}
	return 1;
}

/* A well-known bus name as the D-Bus specification has it (elements of [A-Za-z0-9_-], not starting with a digit, at least two). */
static int bus_name_ok(const uint8_t *p, size_t n)
{
	size_t elements = 1, start = 0;

	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i <= n; i++) {
		uint8_t c = i < n ? p[i] : '.';

		if (c == '.') {
			if (i == start)
				return 0;
			elements += i < n;
			start = i + 1;
		} else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' ||
		             (c >= '0' && c <= '9' && i != start)))
			return 0;
	}
	return elements >= 2;
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

/*
 * The SASL exchange, held to the one sd-bus's server takes at once (with
 * anonymous authentication on: direct.c), so that the scanner and sd-bus
 * agree on where it ends: a NUL byte, "AUTH EXTERNAL" or "AUTH ANONYMOUS"
 * with or without a token, a "DATA" line only after an AUTH without one, at
 * most one "NEGOTIATE_UNIX_FD", then "BEGIN". A token is hex; EXTERNAL's
 * must spell a uid sd-bus parses (digits, no leading zero, not 65535 nor
 * 4294967295), ANONYMOUS's printable ASCII. Anything else (a line sd-bus
 * would answer with REJECTED or ERROR and stay in the exchange) cuts the
 * client off: otherwise what the scanner takes for messages could be
 * what sd-bus takes for the exchange, and the other way round.
 */
enum { AUTH_NUL, AUTH_FIRST, AUTH_WANTS_DATA, AUTH_DONE, AUTH_DONE_FDS };

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A token after "AUTH MECH " or "DATA ": 1 when sd-bus takes it for mechanism external (1) or anonymous (0). */
static int token_ok(const uint8_t *p, size_t n, int external)
{
	char text[128];
	size_t len = n / 2;

	if (n == 0 || n % 2 || len >= sizeof(text))
		return 0;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return 0;
		text[i] = (char)(hi << 4 | lo);
		if (external ? text[i] < '0' || text[i] > '9' : text[i] < 0x20 || text[i] > 0x7e)
			return 0;
	}
	text[len] = '\0';
	if (!external)
		return 1;
	if (len > 10 || (len > 1 && text[0] == '0'))
		return 0;
	unsigned long long uid = strtoull(text, NULL, 10);
	return uid < 4294967295ull && uid != 65535;
}

/* One line of the exchange, without its CRLF: 1 when taken, 0 when it ends the exchange (BEGIN), -1 when refused. */
static int auth_line(ts_frame *f, const uint8_t *l, size_t n)
{
	static const char ext[] = "AUTH EXTERNAL", anon[] = "AUTH ANONYMOUS";

	if (f->auth_step == AUTH_FIRST) {
		int external = n >= sizeof(ext) - 1 && memcmp(l, ext, sizeof(ext) - 1) == 0;
		size_t m = external ? sizeof(ext) - 1 : sizeof(anon) - 1;

		if (!external && !(n >= m && memcmp(l, anon, m) == 0))
			return -1;
		f->external = external;
		if (n == m) {
			f->auth_step = AUTH_WANTS_DATA;
			return 1;
		}
		if (l[m] != ' ' || !token_ok(l + m + 1, n - m - 1, external))
			return -1;
		f->auth_step = AUTH_DONE;
		return 1;
	}
	if (f->auth_step == AUTH_WANTS_DATA && n >= 4 && memcmp(l, "DATA", 4) == 0) {
		if (n > 4 && (l[4] != ' ' || !token_ok(l + 5, n - 5, f->external)))
			return -1;
		f->auth_step = AUTH_DONE;
		return 1;
	}
	if (f->auth_step != AUTH_DONE_FDS && n == 17 && memcmp(l, "NEGOTIATE_UNIX_FD", 17) == 0) {
		f->auth_step = AUTH_DONE_FDS;
		return 1;
	}
	return eq(l, n, "BEGIN") ? 0 : -1;
}

/* The SASL lines: passed on whole, up to and including BEGIN. */
static long next_auth(ts_frame *f, const uint8_t *buf, size_t len, const char **why)
{
	size_t off = 0, i;

	if (f->auth_step == AUTH_NUL && len > 0) {
		if (buf[0] != 0)
			return refuse(why, "a stream that does not begin with a NUL byte");
		off = 1;
		f->auth_step = AUTH_FIRST;
	}
	for (i = off; i + 1 < len; i++) {
		int r;

		if (buf[i] != '\r' || buf[i + 1] != '\n')
			continue;
		if ((r = auth_line(f, buf + off, i - off)) < 0)
			return refuse(why, "an authentication exchange the daemon does not take");
		off = i + 2;
		if (r == 0) {
			f->phase = TS_FRAME_HEADER;
			break;
		}
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
	const uint8_t *member = NULL, *iface = NULL, *path = NULL, *dest = NULL, *sig = NULL;
	size_t member_len = 0, iface_len = 0, path_len = 0, dest_len = 0, sig_len = 0;
	size_t pos = 0;

	while (pos < n) {
		uint8_t code;
		uint64_t vlen;

		/* sd-bus refuses (and drops) a message whose padding is not zero. */
		for (size_t end = (size_t)ALIGN_TO(pos, 8); pos < end; pos++)
			if (pos >= n || h[pos] != 0)
				return refuse(why, "a header field cut short or padded with other than zero");
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
			sig = h + pos + 1;
			sig_len = vlen;
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
			} else if (code == FIELD_PATH) {
				path = h + pos + 4;
				path_len = vlen;
			} else if (code == FIELD_DESTINATION) {
				dest = h + pos + 4;
				dest_len = vlen;
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
	/*
	 * Descriptors only with a call that takes them, whose header sd-bus is
	 * sure to parse: sd-bus drops a message it cannot parse and forgets its
	 * descriptors without closing them. So: a method call, no reply serial
	 * or error name, one of the methods below with exactly its signature
	 * (its interface, or none), a path under the daemon's, and a destination
	 * (when there is one) that is a well-formed bus name.
	 */
	if (msg->fds > 0) {
		int ok = 0;

		for (size_t i = 0; i < sizeof(fd_methods) / sizeof(fd_methods[0]) && !ok; i++)
			ok = eq(member, member_len, fd_methods[i].member) && eq(sig, sig_len, fd_methods[i].signature) &&
			     (!iface || eq(iface, iface_len, fd_methods[i].iface));
		if (type != 1 || (seen & (1u << FIELD_REPLY_SERIAL | 1u << FIELD_ERROR_NAME)) || !ok ||
		    !path_ok(path, path_len) || (dest && !bus_name_ok(dest, dest_len)))
			return refuse(why, "file descriptors with a message that takes none");
	}
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
	/*
	 * Under 24 bytes sd-bus would read into the next message (it reads at
	 * least 24 for a header), with the descriptors sent there; no message
	 * sd-bus takes is that short.
	 */
	if (size < 24)
		return refuse(why, "a message too short to be one");
	if (len < head)
		return 0;
	for (uint64_t i = 16 + fields_len; i < head; i++)
		if (buf[i] != 0)
			return refuse(why, "a header padded with other than zero");
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
