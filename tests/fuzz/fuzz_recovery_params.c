/* fuzz_recovery_params.c — libFuzzer harness: the CBOR record of a recovery protector (salt and Argon2id cost). */
#include <sodium.h>

#include "core/buf.h"
#include "core/recovery.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ts_recovery_params p, q;
	ts_buf enc1 = { 0 }, enc2 = { 0 };
	int r;

	/*
	 * Only the decoder is fuzzed, never ts_recovery_derive_kek: Argon2id at
	 * a hostile cost would measure the fuzzer's patience, not the parser.
	 */
	memset(&p, 0, sizeof(p));
	r = ts_recovery_params_decode(data, size, &p);
	TS_FUZZ_CHECK(r < 0 || r == 0);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	if (r < 0)
		return 0;
	TS_FUZZ_CHECK(ts_recovery_params_encode(&p, &enc1) == 0);
	memset(&q, 0, sizeof(q));
	TS_FUZZ_CHECK(ts_recovery_params_decode(enc1.data, enc1.len, &q) == 0);
	TS_FUZZ_CHECK(memcmp(p.salt, q.salt, sizeof(p.salt)) == 0);
	TS_FUZZ_CHECK(p.opslimit == q.opslimit && p.memlimit == q.memlimit);
	TS_FUZZ_CHECK(ts_recovery_params_encode(&q, &enc2) == 0);
	TS_FUZZ_CHECK(enc1.len == enc2.len && memcmp(enc1.data, enc2.data, enc1.len) == 0);
	ts_buf_free(&enc2);
	ts_buf_free(&enc1);
	return 0;
}
