/* tpm2_check.c — drive the tpm2 protector backend directly (enroll / unlock / describe) for the integration tests. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/vault.h"
#include "protectors/protector.h"
#include "tool_util.h"

__attribute__((noreturn)) static void usage(void) {
	fprintf(stderr,
	        "usage: tpm2_check enroll --tcti T --params-out F [--pin-file P] [--pin yes|no] [--pcrs sha256:7]\n"
	        "       tpm2_check unlock --tcti T --params-in F [--pin-file P]\n"
	        "       tpm2_check describe --params-in F\n"
	        "       tpm2_check bench-unlock --tcti T --vault FILE --protector ID --count N [--step] [--pin-file P]\n"
	        "Prints 'kek <BLAKE2b of the KEK>' or 'error <DBusName>: <message>' (exit = TS error code),\n"
	        "and for enroll/describe 'desc ...' and 'fact KEY=VALUE' lines;\n"
	        "bench-unlock times N unlocks with the params stored in vault FILE: 'sample_us', 'median_us', 'p99_us'\n"
	        "(--step: 'ready', then one call per line read on stdin).\n");
	exit(2);
}

/* The protector backends of this program (ts_protectors_use): the backend this tool tests. */
static const ts_protector_ops *const backends[] = { &ts_protector_tpm2, NULL };

int main(int argc, char **argv) {
	ts_protectors_use(backends);
	static const struct option opts[] = {
		{ "tcti", required_argument, NULL, 't' },       { "pin-file", required_argument, NULL, 'p' },
		{ "pin", required_argument, NULL, 'P' },        { "pcrs", required_argument, NULL, 'c' },
		{ "params-out", required_argument, NULL, 'o' }, { "params-in", required_argument, NULL, 'i' },
		{ "vault", required_argument, NULL, 'V' },      { "protector", required_argument, NULL, 'I' },
		{ "count", required_argument, NULL, 'n' },      { "step", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	static const uint8_t vault_id[TS_VAULT_ID_BYTES] = { 0x74, 0x70, 0x6d, 0x32 };
	const char *tcti = NULL, *pin_file = NULL, *pin_opt = NULL, *pcrs = NULL, *out = NULL, *in = NULL;
	const char *vault_file = NULL, *protector = NULL;
	long count = 0;
	int step = 0;
	ts_buf params = { 0 };
	uint8_t *pin = NULL, *kek = NULL;
	size_t pin_len = 0;
	ts_kv kv[2];
	size_t nkv = 0;
	char err[512] = "", desc[TS_PROTECTOR_DESC_MAX] = "", secret[8];
	size_t secret_len = 0;
	int c, r;

	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't': tcti = optarg; break;
		case 'p': pin_file = optarg; break;
		case 'P': pin_opt = optarg; break;
		case 'c': pcrs = optarg; break;
		case 'o': out = optarg; break;
		case 'i': in = optarg; break;
		case 'V': vault_file = optarg; break;
		case 'I': protector = optarg; break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'S': step = 1; break;
		default: usage();
		}
	}
	if (sodium_init() < 0)
		return 1;
	/* ESAPI logs TPM errors (a wrong PIN, say) on stderr; the tests read our lines instead. */
	if (!getenv("TSS2_LOG"))
		setenv("TSS2_LOG", "all+NONE", 1);
	if (!(kek = ts_secure_alloc(TS_KEY_BYTES)))
		return 1;
	/* The PIN goes into secure memory, as the daemon keeps it, never through argv. */
	if (pin_file && tool_read_secret_file(pin_file, &pin, &pin_len) < 0) {
		perror(pin_file);
		return 1;
	}
	if (pin_opt)
		kv[nkv++] = (ts_kv){ "pin", pin_opt };
	if (pcrs)
		kv[nkv++] = (ts_kv){ "pcrs", pcrs };

	ts_config cfg = { .tpm2_tcti = tcti };
	ts_protector_request req = {
		.config = &cfg, .vault_name = "check", .vault_id = vault_id, .options = kv, .n_options = nkv,
		.pin = pin_len ? pin : NULL, .pin_len = pin_len, .err = err, .err_len = sizeof(err),
	};
	const ts_protector_ops *ops = ts_protector_lookup("tpm2");
	if (!ops)
		return 1;

	if (!strcmp(cmd, "enroll") && out) {
		r = ops->enroll(&req, kek, &params, desc, secret, sizeof(secret), &secret_len);
		if (r == 0 && tool_write_file(out, params.data, params.len) < 0)
			r = -TS_E_IO;
		if (r == 0) {
			printf("desc %s\n", desc);
			ops->describe(params.data, params.len, tool_print_fact, NULL);
		}
	} else if (!strcmp(cmd, "unlock") && in) {
		if (tool_read_file(in, &params) < 0) {
			perror(in);
			return 1;
		}
		r = ops->unlock(&req, params.data, params.len, kek);
	} else if (!strcmp(cmd, "describe") && in) {
		if (tool_read_file(in, &params) < 0) {
			perror(in);
			return 1;
		}
		if ((r = ops->describe(params.data, params.len, tool_print_fact, NULL)) == 0)
			printf("needs_secret %d\n", ops->needs_secret(params.data, params.len));
		goto done;
	} else if (!strcmp(cmd, "bench-unlock") && vault_file && protector && count > 0) {
		if ((r = tool_bench_unlock(ops, &req, vault_file, protector, count, step)) == 0)
			goto done;
	} else
		usage();

	if (r < 0) {
		printf("error %s: %s\n", ts_error_dbus_name(r) + strlen("org.tokenseal1.Error."),
		       err[0] ? err : ts_strerror(r));
	} else {
		tool_print_kek(kek);
	}
done:
	if (r < 0 && !strcmp(cmd, "describe"))
		printf("error %s\n", ts_error_dbus_name(r) + strlen("org.tokenseal1.Error."));
	ts_secure_free(kek);
	ts_secure_free(pin);
	ts_buf_free(&params);
	return r < 0 ? -r : 0;
}
