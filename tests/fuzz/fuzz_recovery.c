/* fuzz_recovery.c — libFuzzer harness: the parser of recovery keys as users type them. */
#include <ctype.h>
#include <sodium.h>

#include "core/recovery.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[TS_RECOVERY_KEY_BYTES], key2[TS_RECOVERY_KEY_BYTES];
	char *text;
	size_t i;
	int r;

	/* Exactly sized and not NUL-terminated: the parser must stay within len. */
	if ((text = malloc(size ? size : 1)) == NULL)
		abort();
	if (size)
		memcpy(text, data, size);
	memset(key, 0xa5, sizeof(key));
	r = ts_recovery_parse(text, size, key);
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_BAD_RECOVERY_KEY);
	if (ts_fuzz_expect_valid())
		TS_FUZZ_CHECK(r == 0);
	if (r == 0) {
		/* Case does not matter: the lower-case spelling gives the same key. */
		for (i = 0; i < size; i++)
			text[i] = (char)tolower((unsigned char)text[i]);
		TS_FUZZ_CHECK(ts_recovery_parse(text, size, key2) == 0);
		TS_FUZZ_CHECK(memcmp(key, key2, sizeof(key)) == 0);
	}
	free(text);
	return 0;
}
