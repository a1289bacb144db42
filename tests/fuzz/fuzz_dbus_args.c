/* fuzz_dbus_args.c — libFuzzer harness: the daemon's reading of D-Bus method arguments (sd-bus messages built from the input). */
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"
#include "core/blob.h"
#include "core/buf.h"
#include "core/context.h"
#include "fuzz.h"

/*
 * The method handlers themselves need a live bus (the caller's credentials
 * come from the bus, the reply is sent on it), so this fuzzes the layer
 * they run first: reading hostile arguments out of a method call. The
 * harness builds a real sd_bus_message from the input, with the in-signature
 * of the method picked by the first byte (sd-bus refuses any other
 * signature before a handler runs), seals it as a received message would
 * be, and reads it back exactly as the handler does: ts_bus_read_kv (the
 * daemon's own, from manager.c) with the handler's limit, the "ay a{ss}"
 * reader, UnwrapBatch's count-then-rewind double walk. What was read must
 * be what was appended; the context then goes through ts_context_encode and
 * every blob through ts_blob_parse, as the handlers do next.
 *
 * Not covered: malformed marshalling (sd-bus validates wire bytes, including
 * UTF-8, before a message exists; building one from raw bytes needs private
 * API) and fds ('h' arguments are left out, so their read fails, as it does
 * for a client that sends none).
 *
 * Input after the method byte, consumed as needed (missing bytes read as 0):
 *   ay     2-byte big-endian length, bytes
 *   s      1-byte length, bytes (an input that is not valid UTF-8 is dropped)
 *   a{ss}  1-byte count, then s, s per entry
 *   aay    2-byte count, then ay per item
 *   as     1-byte count, then s per item
 *   u      4 bytes big-endian
 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum method {
	M_WRAP, M_UNWRAP, M_REWRAP, M_GENERATE, M_UNWRAP_BATCH, M_REWRAP_BATCH, M_ROTATE_KEY,
	M_ADD_PROTECTOR, M_CREATE_VAULT, M_UNLOCK, M_GET_VAULT, M_SET_ESCROW, M_AGE_UNWRAP, M_COUNT
};

static const char *const method_names[M_COUNT] = {
	"Wrap", "Unwrap", "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch", "RotateKey",
	"AddProtector", "CreateVault", "Unlock", "GetVault", "SetEscrow", "AgeUnwrap",
};

#define MAX_KV 255
#define MAX_ITEMS 300

static sd_bus *bus;

typedef struct input {
	const uint8_t *p;
	size_t n;
} input;

static size_t take(input *in, void *out, size_t n)
{
	size_t k = n < in->n ? n : in->n;

	memset(out, 0, n);
	memcpy(out, in->p, k);
	in->p += k;
	in->n -= k;
	return k;
}

static unsigned take_u8(input *in)
{
	uint8_t b;

	take(in, &b, 1);
	return b;
}

static unsigned take_u16(input *in)
{
	uint8_t b[2];

	take(in, b, 2);
	return (unsigned)b[0] << 8 | b[1];
}

static const uint8_t *take_bytes(input *in, size_t *n)
{
	const uint8_t *p = in->p;

	if (*n > in->n)
		*n = in->n;
	in->p += *n;
	in->n -= *n;
	return p;
}

/* A NUL-terminated copy of a length-prefixed string (NUL inside is kept: append stops there). */
static char *take_str(input *in)
{
	size_t n = take_u8(in);
	const uint8_t *p = take_bytes(in, &n);
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* What the harness appended, to compare with what the daemon reads. */
typedef struct expect {
	const uint8_t *bytes[MAX_ITEMS];
	size_t len[MAX_ITEMS];
	size_t n_items;
	char *str, *strs[MAX_KV];
	size_t n_strs;
	char *kv[2 * MAX_KV];
	size_t n_kv;
	uint32_t u;
} expect;

static void expect_free(expect *e)
{
	free(e->str);
	for (size_t i = 0; i < e->n_strs; i++)
		free(e->strs[i]);
	for (size_t i = 0; i < 2 * e->n_kv; i++)
		free(e->kv[i]);
}

static int append_kv(sd_bus_message *m, input *in, expect *e)
{
	int r;

	e->n_kv = take_u8(in);
	if ((r = sd_bus_message_open_container(m, 'a', "{ss}")) < 0)
		return r;
	for (size_t i = 0; i < e->n_kv; i++) {
		e->kv[2 * i] = take_str(in);
		e->kv[2 * i + 1] = take_str(in);
		if ((r = sd_bus_message_append(m, "{ss}", e->kv[2 * i], e->kv[2 * i + 1])) < 0) {
			e->n_kv = i + 1;
			return r;
		}
	}
	return sd_bus_message_close_container(m);
}

static int append_ay(sd_bus_message *m, input *in, expect *e)
{
	size_t n = take_u16(in);
	const uint8_t *p = take_bytes(in, &n);

	e->bytes[e->n_items] = p;
	e->len[e->n_items++] = n;
	return sd_bus_message_append_array(m, 'y', p, n);
}

/* Appends the in-signature of method (fds left out). */
static int build(sd_bus_message *m, enum method method, input *in, expect *e)
{
	size_t count;
	int r;

	switch (method) {
	case M_WRAP:
	case M_UNWRAP:
	case M_REWRAP:
		if ((r = append_ay(m, in, e)) < 0)
			return r;
		return append_kv(m, in, e);
	case M_GENERATE:
		e->u = (uint32_t)take_u16(in) << 16 | take_u16(in);
		if ((r = sd_bus_message_append(m, "u", e->u)) < 0)
			return r;
		return append_kv(m, in, e);
	case M_UNWRAP_BATCH:
	case M_REWRAP_BATCH:
		count = take_u16(in) % MAX_ITEMS;
		if ((r = sd_bus_message_open_container(m, 'a', "ay")) < 0)
			return r;
		for (size_t i = 0; i < count; i++)
			if ((r = append_ay(m, in, e)) < 0)
				return r;
		if ((r = sd_bus_message_close_container(m)) < 0)
			return r;
		return append_kv(m, in, e);
	case M_ROTATE_KEY:
		return append_kv(m, in, e);
	case M_ADD_PROTECTOR:
	case M_CREATE_VAULT:
		e->str = take_str(in);
		if ((r = sd_bus_message_append(m, "s", e->str)) < 0)
			return r;
		return append_kv(m, in, e);
	case M_UNLOCK:
	case M_GET_VAULT:
		e->str = take_str(in);
		return sd_bus_message_append(m, "s", e->str);
	case M_SET_ESCROW:
		e->n_strs = take_u8(in);
		if ((r = sd_bus_message_open_container(m, 'a', "s")) < 0)
			return r;
		for (size_t i = 0; i < e->n_strs; i++) {
			e->strs[i] = take_str(in);
			if ((r = sd_bus_message_append(m, "s", e->strs[i])) < 0) {
				e->n_strs = i + 1;
				return r;
			}
		}
		if ((r = sd_bus_message_close_container(m)) < 0)
			return r;
		e->u = (uint32_t)take_u16(in) << 16 | take_u16(in);
		return sd_bus_message_append(m, "u", e->u);
	case M_AGE_UNWRAP:
		e->u = (uint32_t)take_u16(in) << 16 | take_u16(in);
		if ((r = sd_bus_message_append(m, "u", e->u)) < 0 || (r = append_ay(m, in, e)) < 0)
			return r;
		return append_ay(m, in, e);
	default:
		abort();
	}
}

/* Strings went on the wire up to their first NUL. */
static int str_eq(const char *got, const char *sent)
{
	return got && strcmp(got, sent) == 0;
}

/* ts_bus_read_kv with the handler's limit: refuses exactly the over-long, returns exactly what was sent. */
static void read_kv(sd_bus_message *m, const expect *e, size_t max)
{
	_ts_cleanup_buf_ ts_buf enc = { 0 }, enc2 = { 0 };
	ts_kv *kv = NULL;
	size_t n = 0;
	int r, dup = 0, empty = 0;

	r = ts_bus_read_kv(m, &kv, &n, max);
	if (e->n_kv > max) {
		TS_FUZZ_CHECK(r == -TS_E_LIMIT && kv == NULL && n == 0);
		return;
	}
	TS_FUZZ_CHECK(r == 0 && n == e->n_kv);
	for (size_t i = 0; i < n; i++) {
		TS_FUZZ_CHECK(str_eq(kv[i].key, e->kv[2 * i]) && str_eq(kv[i].value, e->kv[2 * i + 1]));
		empty |= kv[i].key[0] == '\0';
		for (size_t j = 0; j < i; j++)
			dup |= strcmp(kv[i].key, kv[j].key) == 0;
	}
	/* What a handler does next with a context: canonical encoding, order-free. */
	r = ts_context_encode(kv, n, &enc);
	if (dup || empty)
		TS_FUZZ_CHECK(r < 0);
	if (r == 0 && n > 1) {
		ts_kv t = kv[0];

		kv[0] = kv[n - 1];
		kv[n - 1] = t;
		TS_FUZZ_CHECK(ts_context_encode(kv, n, &enc2) == 0);
		TS_FUZZ_CHECK(enc.len == enc2.len && memcmp(enc.data, enc2.data, enc.len) == 0);
	}
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	free(kv);
}

static void check_blob(const void *p, size_t n)
{
	ts_blob_view v;
	const uint8_t *b = p;

	if (ts_blob_parse(p, n, &v) < 0) {
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		return;
	}
	TS_FUZZ_CHECK(v.header == b && v.ciphertext >= b && v.ciphertext + v.ciphertext_len == b + n);
	TS_FUZZ_CHECK(v.plaintext_len + TS_BLOB_TAG_BYTES == v.ciphertext_len);
}

static void read_ay(sd_bus_message *m, const expect *e, size_t i, int blob)
{
	const void *p;
	size_t n;

	TS_FUZZ_CHECK(sd_bus_message_read_array(m, 'y', &p, &n) > 0);
	TS_FUZZ_CHECK(n == e->len[i] && (n == 0 || memcmp(p, e->bytes[i], n) == 0));
	if (blob)
		check_blob(p, n);
}

/* UnwrapBatch/RewrapBatch: count the items, read the context, rewind, walk them again. */
static void read_batch(sd_bus_message *m, const expect *e)
{
	const void *p;
	size_t n, count = 0;
	int r;

	TS_FUZZ_CHECK(sd_bus_message_enter_container(m, 'a', "ay") > 0);
	while ((r = sd_bus_message_read_array(m, 'y', &p, &n)) > 0)
		count++;
	TS_FUZZ_CHECK(r == 0 && count == e->n_items);
	TS_FUZZ_CHECK(sd_bus_message_exit_container(m) > 0);
	read_kv(m, e, TS_CONTEXT_MAX_ENTRIES);
	if (e->n_kv > TS_CONTEXT_MAX_ENTRIES)
		return;
	TS_FUZZ_CHECK(sd_bus_message_rewind(m, 1) > 0);
	TS_FUZZ_CHECK(sd_bus_message_enter_container(m, 'a', "ay") > 0);
	for (size_t i = 0; i < count; i++)
		read_ay(m, e, i, 1);
	TS_FUZZ_CHECK(sd_bus_message_read_array(m, 'y', &p, &n) == 0);
}

static void read_back(sd_bus_message *m, enum method method, const expect *e)
{
	const char *s;
	uint32_t u;
	int fd;

	switch (method) {
	case M_WRAP:
	case M_UNWRAP:
	case M_REWRAP:
		read_ay(m, e, 0, method != M_WRAP);
		read_kv(m, e, TS_CONTEXT_MAX_ENTRIES);
		break;
	case M_GENERATE:
		TS_FUZZ_CHECK(sd_bus_message_read(m, "u", &u) > 0 && u == e->u);
		read_kv(m, e, TS_CONTEXT_MAX_ENTRIES);
		break;
	case M_UNWRAP_BATCH:
	case M_REWRAP_BATCH:
		read_batch(m, e);
		break;
	case M_ROTATE_KEY:
		read_kv(m, e, 16);
		break;
	case M_ADD_PROTECTOR:
	case M_CREATE_VAULT:
		TS_FUZZ_CHECK(sd_bus_message_read(m, "s", &s) > 0 && str_eq(s, e->str));
		read_kv(m, e, method == M_ADD_PROTECTOR ? 32 : 16);
		if (e->n_kv <= (method == M_ADD_PROTECTOR ? 32u : 16u))
			/* No fd was sent: the handler's read of "h" must fail, not invent one. */
			TS_FUZZ_CHECK(sd_bus_message_read(m, "h", &fd) <= 0);
		break;
	case M_UNLOCK:
	case M_GET_VAULT:
		TS_FUZZ_CHECK(sd_bus_message_read(m, "s", &s) > 0 && str_eq(s, e->str));
		break;
	case M_SET_ESCROW:
		TS_FUZZ_CHECK(sd_bus_message_enter_container(m, 'a', "s") > 0);
		for (size_t i = 0; i < e->n_strs; i++)
			TS_FUZZ_CHECK(sd_bus_message_read(m, "s", &s) > 0 && str_eq(s, e->strs[i]));
		TS_FUZZ_CHECK(sd_bus_message_read(m, "s", &s) == 0);
		TS_FUZZ_CHECK(sd_bus_message_exit_container(m) > 0);
		TS_FUZZ_CHECK(sd_bus_message_read(m, "u", &u) > 0 && u == e->u);
		break;
	case M_AGE_UNWRAP:
		/* The version, the share and the body, each as sent; the handler then wants 32 + 32 bytes. */
		TS_FUZZ_CHECK(sd_bus_message_read(m, "u", &u) > 0 && u == e->u);
		read_ay(m, e, 0, 0);
		read_ay(m, e, 1, 0);
		break;
	default:
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int sv[2];

	(void)argc, (void)argv;
	if (sodium_init() < 0)
		abort();
	/*
	 * sd-bus creates messages only on an open bus: one end of a socketpair,
	 * started (it begins the auth handshake, which never completes). Nothing
	 * is ever sent; the messages are only built, sealed and read.
	 */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || sd_bus_new(&bus) < 0 ||
	    sd_bus_set_fd(bus, sv[0], sv[0]) < 0 || sd_bus_start(bus) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sd_bus_message *m = NULL;
	expect e = { 0 };
	input in = { data, size };
	enum method method;
	static uint64_t cookie;
	int r;

	if (size < 1)
		return 0;
	method = (enum method)(take_u8(&in) % M_COUNT);
	if (sd_bus_message_new_method_call(bus, &m, TS_BUS_NAME,
	                                   method != M_CREATE_VAULT && method != M_GET_VAULT
	                                       ? TS_USER_PATH_PREFIX "/0/vault/fuzz"
	                                       : TS_MANAGER_PATH,
	                                   method == M_CREATE_VAULT || method == M_GET_VAULT ? TS_MANAGER_IFACE
	                                                                                     : TS_VAULT_IFACE,
	                                   method_names[method]) < 0)
		abort();
	r = build(m, method, &in, &e);
	if (r < 0) {
		/* sd-bus refused to build it (invalid UTF-8 in a string, say): no client can send that either. */
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		goto out;
	}
	TS_FUZZ_CHECK(sd_bus_message_seal(m, ++cookie, 0) >= 0);
	TS_FUZZ_CHECK(sd_bus_message_rewind(m, 1) >= 0);
	read_back(m, method, &e);
out:
	sd_bus_message_unref(m);
	expect_free(&e);
	return 0;
}
