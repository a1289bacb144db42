/* fuzz.h — fixtures shared by the libFuzzer harnesses and the seed generator (tests/fuzz/mkseeds.c). */
#ifndef TS_FUZZ_H
#define TS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenseal.h"
#include "core/blob.h"

/*
 * The seeds are made with these fixed keys so that a harness can drive an
 * unmutated seed all the way through (open, unlock) instead of stopping at
 * the first MAC check. They are test values and protect nothing.
 */
static const uint8_t ts_fuzz_blob_key[TS_KEY_BYTES] = {
	0x70, 0x6f, 0x6b, 0x65, 0x6e, 0x73, 0x65, 0x61, 0x6c, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x62,
	0x6c, 0x6f, 0x62, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
};
static const uint8_t ts_fuzz_kek[TS_KEY_BYTES] = {
	0x6b, 0x65, 0x6b, 0x2d, 0x66, 0x6f, 0x72, 0x2d, 0x74, 0x68, 0x65, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
	0x2d, 0x76, 0x61, 0x75, 0x6c, 0x74, 0x2d, 0x66, 0x69, 0x78, 0x74, 0x75, 0x72, 0x65, 0x2e, 0x2e,
};
static const ts_kv ts_fuzz_ctx[] = {
	{ "app", "org.example.Mail" },
	{ "purpose", "fuzz-seed" },
};
#define TS_FUZZ_N_CTX (sizeof(ts_fuzz_ctx) / sizeof(ts_fuzz_ctx[0]))

/* The vault fixture: p1 wraps VS under ts_fuzz_kek, p2 under a random KEK. */
#define TS_FUZZ_NOW 1700000000u
#define TS_FUZZ_VAULT_NAME "fuzz-fixture"
#define TS_FUZZ_VAULT_OWNER 1000u
#define TS_FUZZ_P1_DESC "fixed fuzz KEK"
#define TS_FUZZ_P2_DESC "SoftFIDO (unknown KEK)"

/*
 * A broken invariant is a bug even when nothing crashed: abort() so that
 * libFuzzer saves the input as a crash file.
 */
#define TS_FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/*
 * With TS_FUZZ_EXPECT_VALID=1 in the environment a harness also aborts when
 * an input is not accepted all the way (parsed, opened, unlocked). The
 * hardening test replays the ok-* seeds this way, so a format change that
 * leaves the committed corpus stale (and the fuzzing shallow) is noticed.
 */
static inline int ts_fuzz_expect_valid(void)
{
	static int cached = -1;

	if (cached < 0) {
		const char *e = getenv("TS_FUZZ_EXPECT_VALID");
		cached = e != NULL && strcmp(e, "1") == 0;
	}
	return cached;
}

/* The libFuzzer start-up of a harness that needs only libsodium ready (and the entry points' prototypes). */
#define TS_FUZZ_SODIUM_INIT()                                  \
	int LLVMFuzzerInitialize(int *argc, char ***argv);     \
	int LLVMFuzzerInitialize(int *argc, char ***argv)      \
	{                                                      \
		(void)argc, (void)argv;                        \
		if (sodium_init() < 0)                         \
			abort();                               \
		return 0;                                      \
	}

#endif
