/*
 * fuzz_direct_frame.c — libFuzzer harness: a private-socket client's byte
 * stream, as the daemon's scanner (daemon/bus/direct_frame.c) reads it
 * before sd-bus does. The first byte chooses how the stream is cut into
 * reads; the rest is the stream.
 */
#include <errno.h>

#include "bus/direct.h"
#include "bus/direct_frame.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	size_t passed;
	unsigned headers;
	long refused;
} outcome;

/*
 * Scan stream[0..n) in reads of chunk bytes, as io_scan does, checking each
 * answer: a segment within what is there, each header within the bounds,
 * no segment past the end of its message.
 */
static outcome scan(const uint8_t *stream, size_t n, size_t chunk)
{
	static uint8_t buf[64 << 10];
	outcome o = { 0, 0, 0 };
	uint64_t left_of_msg = 0;
	size_t have = 0, fed = 0;
	ts_frame f;

	ts_frame_init(&f, TS_DIRECT_MESSAGE_MAX, TS_DIRECT_FDS_MAX);
	for (;;) {
		size_t take = n - fed < chunk ? n - fed : chunk;
		const char *why;
		ts_frame_msg msg;
		int got;
		long r = 0;

		if (take > sizeof(buf) - have)
			take = sizeof(buf) - have;
		memcpy(buf + have, stream + fed, take);
		have += take;
		fed += take;
		while (have > 0 && (r = ts_frame_next(&f, buf, have, &msg, &got, &why)) > 0) {
			TS_FUZZ_CHECK((size_t)r <= have);
			if (got) {
				o.headers++;
				TS_FUZZ_CHECK(msg.size <= TS_DIRECT_MESSAGE_MAX && msg.size >= 16 + msg.body_size);
				TS_FUZZ_CHECK(msg.data_method || msg.size <= TS_FRAME_SMALL_MAX);
				TS_FUZZ_CHECK(msg.fds <= TS_DIRECT_FDS_MAX && msg.serial != 0);
				TS_FUZZ_CHECK(left_of_msg == 0);
				left_of_msg = msg.size;
			}
			if (left_of_msg > 0) {
				TS_FUZZ_CHECK((uint64_t)r <= left_of_msg);
				left_of_msg -= (uint64_t)r;
			}
			o.passed += (size_t)r;
			memmove(buf, buf + r, have - (size_t)r);
			have -= (size_t)r;
		}
		if (r < 0) {
			TS_FUZZ_CHECK(r == -EBADMSG && why != NULL);
			o.refused = r;
			return o;
		}
		if (take == 0 || fed == n)
			return o;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	outcome whole, cut;

	if (size < 1 || size > (48 << 10))
		return 0;
	whole = scan(data + 1, size - 1, size - 1 ? size - 1 : 1);
	cut = scan(data + 1, size - 1, 1 + data[0] % 64);
	/* How the bytes arrive changes nothing: the same bytes pass, the same headers, the same refusal. */
	TS_FUZZ_CHECK(whole.refused == cut.refused);
	TS_FUZZ_CHECK(whole.refused != 0 || (whole.passed == cut.passed && whole.headers == cut.headers));
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(whole.refused == 0 && whole.headers > 0 && whole.passed == size - 1);
	return 0;
}
