/* fuzz_secrets_store.c — libFuzzer harness: tokenseal-secrets' collection file parser, its canonical form, and opening items. */
#include <errno.h>
#include <sodium.h>

#include "fuzz.h"
#include "secrets_fixture.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int expect_valid = ts_fuzz_expect_valid();
	ss_collection *c = NULL;
	uint8_t *out = NULL, *sec;
	size_t out_len = 0, i, slen, n_before;
	int r;

	r = ss_store_parse(data, size, &c);
	TS_FUZZ_CHECK(r == 0 || r == -EBADMSG);
	TS_FUZZ_CHECK(!expect_valid || r == 0);
	if (r < 0) {
		TS_FUZZ_CHECK(c == NULL);
		return 0;
	}
	/* One file, one form: what parses is written back byte for byte. */
	TS_FUZZ_CHECK(ss_store_serialize(c, &out, &out_len) == 0);
	TS_FUZZ_CHECK(out_len == size && memcmp(out, data, size) == 0);
	free(out);
	/* Items with the seeds' key: those that do not open are dropped, never served. */
	if ((c->key = sodium_malloc(SS_KEY_BYTES)) == NULL)
		abort();
	memcpy(c->key, ts_fuzz_collection_key, SS_KEY_BYTES);
	n_before = c->n_items;
	r = ss_collection_open_items(c);
	TS_FUZZ_CHECK(r >= 0 && (size_t)r + c->n_items == n_before);
	TS_FUZZ_CHECK(!expect_valid || (r == 0 && c->n_items > 0));
	for (i = 0; i < c->n_items; i++) {
		TS_FUZZ_CHECK(c->items[i]->label != NULL && c->items[i]->n_attrs == c->items[i]->n_hattrs);
		TS_FUZZ_CHECK(ss_item_unseal_secret(c, c->items[i], &sec, &slen) == 0);
		TS_FUZZ_CHECK(slen <= SS_SECRET_MAX);
		sodium_memzero(sec, slen);
		sodium_free(sec);
	}
	ss_collection_free(c);
	return 0;
}
