/* secrets_fixture.h — what the tokenseal-secrets store harness and its seed generator share: a fixed collection key and stubs. */
#ifndef TS_FUZZ_SECRETS_FIXTURE_H
#define TS_FUZZ_SECRETS_FIXTURE_H

#include <stdarg.h>
#include <stdint.h>

#include "../../secrets/secrets.h"

/* The collection key of the seeds (a test value; protects nothing), so that unmutated items open. */
static const uint8_t ts_fuzz_collection_key[SS_KEY_BYTES] = {
	0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x73, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x63, 0x6f, 0x6c,
	0x6c, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33,
};

/* store.c and collection.c call these; the harness has no service. */
void ss_log(const char *fmt, ...)
{
	(void)fmt;
}
ss_collection *ss_service_collection(ss_service *s, const char *id)
{
	return NULL;
}
int ss_service_add_collection(ss_service *s, ss_collection *c)
{
	return -1;
}

#endif
