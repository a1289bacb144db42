/* fuzz_policy.c — libFuzzer harness: the policy file parser (libinih under our strict reader) and its evaluators. */
#include <sodium.h>

#include "core/vault.h"
#include "../../policy/policy.h"
#include "fuzz.h"

TS_FUZZ_SODIUM_INIT()
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A refusal must be a policy violation with a message that names a rule ("[section] ..."). */
static void check_verdict(int r, const char *msg)
{
	TS_FUZZ_CHECK(r == 0 || r == -TS_E_POLICY_VIOLATION);
	if (r == 0)
		TS_FUZZ_CHECK(msg[0] == '\0');
	else
		TS_FUZZ_CHECK(msg[0] == '[' && strchr(msg, ']') != NULL);
}

static void evaluate(const ts_policy *p)
{
	static const ts_policy_protector prot[] = {
		{ "fido2", TS_POLICY_PIN | TS_POLICY_TOUCH }, { "tpm2", 0 }, { "recovery", 0 }, { "pkcs11", TS_POLICY_PIN },
	};
	static const uint32_t gids[] = { 0, 100 };
	const ts_policy_caller c = { .uid = 1000, .gids = gids, .n_gids = 2, .unit = "mail.service",
	                             .exe = "/usr/bin/thunderbird" };
	ts_escrow_recipient rcp[TS_VAULT_MAX_ESCROW];
	char msg[TS_POLICY_MSG_MAX];
	unsigned m = 0;
	size_t n;

	check_verdict(ts_policy_check_protectors(p, prot, 4, 2, 1, msg, sizeof(msg)), msg);
	check_verdict(ts_policy_check_protectors(p, prot + 1, 1, 1, 0, msg, sizeof(msg)), msg);
	check_verdict(ts_policy_check_unwrap(p, "mail-alice", &c, msg, sizeof(msg)), msg);
	n = ts_policy_escrow_required(p, rcp, TS_VAULT_MAX_ESCROW, &m);
	TS_FUZZ_CHECK(n <= TS_VAULT_MAX_ESCROW);
	TS_FUZZ_CHECK(n == 0 ? m == 0 : (m >= 1 && m <= n));
	(void)ts_policy_idle_timeout(p);
	(void)ts_policy_rotation_due(p, 0, UINT64_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[TS_POLICY_MSG_MAX];
	const ts_policy_setting *s;
	ts_policy *p = NULL;
	unsigned line, lines = 1;
	size_t i;
	int r;

	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	/* The input is not NUL-terminated: the parser must stay within size bytes. */
	r = ts_policy_parse("fuzz.conf", (const char *)data, size, &p, err, sizeof(err));
	if (r < 0) {
		TS_FUZZ_CHECK(p == NULL);
		TS_FUZZ_CHECK(r == -TS_E_INVALID_ARGS || r == -TS_E_LIMIT || r == -TS_E_NOMEM);
		/* Every refusal names the file and a line that exists. */
		if (r == -TS_E_INVALID_ARGS)
			TS_FUZZ_CHECK(sscanf(err, "fuzz.conf:%u: ", &line) == 1 && line >= 1 && line <= lines);
		TS_FUZZ_CHECK(!ts_fuzz_expect_valid());
		return 0;
	}
	TS_FUZZ_CHECK(p != NULL);
	TS_FUZZ_CHECK(ts_policy_n_settings(p) >= 16);
	for (i = 0; i < ts_policy_n_settings(p); i++) {
		s = ts_policy_setting_at(p, i);
		TS_FUZZ_CHECK(s && s->section && s->key && s->value && s->value[0]);
		TS_FUZZ_CHECK((s->file == NULL) == (s->line == 0));
		TS_FUZZ_CHECK(s->line <= lines);
	}
	TS_FUZZ_CHECK(ts_policy_setting_at(p, i) == NULL);
	evaluate(p);
	ts_policy_free(p);
	return 0;
}
