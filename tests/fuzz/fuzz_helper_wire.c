/* fuzz_helper_wire.c — libFuzzer harness: the daemon <-> tokenseal-helper framing (request parser, field readers). */
#include <sodium.h>

#include "core/buf.h"
#include "protectors/helper_wire.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-encode what was accepted field by field: the encoder must give back the same bytes. */
static void check_roundtrip(const uint8_t *data, size_t size)
{
	ts_wire_field fields[512], f;
	size_t n = 0, off = 0, len;
	uint8_t *frame = NULL;
	int r;

	while ((r = ts_wire_next(data, size, &off, &f)) > 0) {
		if (n == sizeof(fields) / sizeof(fields[0]))
			return;
		fields[n++] = f;
	}
	TS_FUZZ_CHECK(r == 0);
	TS_FUZZ_CHECK(ts_wire_encode(fields, n, &frame, &len) == 0);
	TS_FUZZ_CHECK(len == size + 4 && memcmp(frame + 4, data, size) == 0);
	TS_FUZZ_CHECK(ts_be32(frame) == size);
	ts_secure_free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ts_wire_request q;
	ts_wire_field f;
	size_t off = 0;
	char s[TS_WIRE_STR_MAX + 1];
	const char *k, *v;
	int32_t i;
	int r;

	if (size > TS_WIRE_FRAME_MAX)
		return 0;
	/* The helper's side: one request. */
	memset(&q, 0, sizeof(q));
	r = ts_wire_parse_request(data, size, &q);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_INVALID_ARGS || r == -TS_E_LIMIT);
	if (r < 0) {
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
	} else {
		TS_FUZZ_CHECK(q.op >= TS_WIRE_OP_ENROLL && q.op <= TS_WIRE_OP_LDAP && q.type[0]);
		TS_FUZZ_CHECK(!q.box_key == (q.op != TS_WIRE_OP_ESCROW_WRAP_KEY));
		TS_FUZZ_CHECK(!q.box_key || (q.box_key >= data && q.box_key + TS_WIRE_BOX_KEY_BYTES <= data + size));
		TS_FUZZ_CHECK(q.n_options <= TS_WIRE_MAX_OPTIONS);
		for (size_t j = 0; j < q.n_options; j++)
			TS_FUZZ_CHECK(q.options[j].key[0] && strlen(q.options[j].value) <= TS_WIRE_STR_MAX);
		TS_FUZZ_CHECK(!q.pin || (q.pin >= data && q.pin + q.pin_len <= data + size));
		TS_FUZZ_CHECK(!q.params || (q.params >= data && q.params + q.params_len <= data + size));
		/* The socket transport is allowed only by the flag itself, never by default. */
		TS_FUZZ_CHECK(q.test_devices == !!(q.seen & (1u << TS_WIRE_TEST_DEVICES)));
	}
	/* The daemon's side: a reply read field by field, every reader on every field. */
	while ((r = ts_wire_next(data, size, &off, &f)) > 0) {
		TS_FUZZ_CHECK(f.len <= size && (const uint8_t *)f.data + f.len <= data + size);
		if (ts_wire_get_str(&f, s, sizeof(s)) == 0)
			TS_FUZZ_CHECK(strlen(s) == f.len);
		if (ts_wire_get_pair(&f, s, sizeof(s), &k, &v) == 0)
			TS_FUZZ_CHECK(k[0] && strlen(k) + 1 + strlen(v) == f.len);
		(void)ts_wire_get_i32(&f, &i);
	}
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_INVALID_ARGS);
	if (r == 0)
		check_roundtrip(data, size);
	return 0;
}
