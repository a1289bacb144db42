/* pkcs11_check.c — drive the pkcs11 protector backend directly (enroll / unlock / describe) for the integration tests. */
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
	        "usage: pkcs11_check enroll --uri URI [--pin-file F] [--public-key PEM-FILE] [--oaep-hash H]\n"
	        "                    [--module PATH] --params-out F\n"
	        "       pkcs11_check unlock --params-in F [--pin-file F] [--module PATH]\n"
	        "       pkcs11_check describe --params-in F\n"
	        "       pkcs11_check bench-unlock --vault FILE --protector ID --count N [--step] [--pin-file F] [--module PATH]\n"
	        "Prints 'kek <BLAKE2b of the KEK>' or 'error <DBusName>: <message>' (exit = TS error code);\n"
	        "bench-unlock times N unlocks with the params stored in vault FILE: 'sample_us', 'median_us', 'p99_us'\n"
	        "(--step: 'ready', then one call per line read on stdin).\n");
	exit(2);
}

/* The protector backends of this program (ts_protectors_use): the backend this tool tests. */
static const ts_protector_ops *const backends[] = { &ts_protector_pkcs11, NULL };

int main(int argc, char **argv) {
	ts_protectors_use(backends);
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'u' },        { "pin-file", required_argument, NULL, 'p' },
		{ "public-key", required_argument, NULL, 'k' }, { "oaep-hash", required_argument, NULL, 'h' },
		{ "module", required_argument, NULL, 'm' },     { "params-out", required_argument, NULL, 'o' },
		{ "params-in", required_argument, NULL, 'i' },  { "vault", required_argument, NULL, 'V' },
		{ "protector", required_argument, NULL, 'I' },  { "count", required_argument, NULL, 'n' },
		{ "step", no_argument, NULL, 'S' },             { NULL, 0, NULL, 0 },
	};
	const char *uri = NULL, *pin_file = NULL, *pem_file = NULL, *hash = NULL, *module = NULL;
	const char *out = NULL, *in = NULL, *vault_file = NULL, *protector = NULL;
	long count = 0;
	int step = 0;
	uint8_t vault_id[TS_VAULT_ID_BYTES] = { 0 };
	ts_buf params = { 0 }, pem = { 0 };
	uint8_t *pin = NULL, *kek = NULL;
	size_t pin_len = 0, nkv = 0, secret_len = 0;
	ts_kv kv[3];
	char err[512] = "", desc[TS_PROTECTOR_DESC_MAX] = "", secret[8];
	int c, r = -TS_E_FAILED, no_kek_line = 0;

	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': uri = optarg; break;
		case 'p': pin_file = optarg; break;
		case 'k': pem_file = optarg; break;
		case 'h': hash = optarg; break;
		case 'm': module = optarg; break;
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
	/* The backend's contract: the PIN is in secure memory (read straight into it, never through argv). */
	if (pin_file && tool_read_secret_file(pin_file, &pin, &pin_len) < 0) {
		perror(pin_file);
		return 1;
	}
	if (pem_file) {
		if (tool_read_file(pem_file, &pem) < 0 || ts_buf_append_u8(&pem, 0) < 0) {
			perror(pem_file);
			return 1;
		}
	}
	randombytes_buf(vault_id, sizeof(vault_id));

	ts_config cfg = { .pkcs11_module = module };
	if (uri)
		kv[nkv++] = (ts_kv){ "uri", uri };
	if (pem_file)
		kv[nkv++] = (ts_kv){ "public-key", (const char *)pem.data };
	if (hash)
		kv[nkv++] = (ts_kv){ "oaep-hash", hash };
	ts_protector_request req = {
		.config = &cfg, .vault_name = "check", .vault_id = vault_id, .options = kv, .n_options = nkv,
		.pin = pin, .pin_len = pin_len, .err = err, .err_len = sizeof(err),
	};
	const ts_protector_ops *ops = ts_protector_lookup("pkcs11");
	if (!ops || !(kek = ts_secure_alloc(TS_KEY_BYTES)))
		return 1;

	if (!strcmp(cmd, "enroll") && out) {
		r = ops->enroll(&req, kek, &params, desc, secret, sizeof(secret), &secret_len);
		if (r == 0 && tool_write_file(out, params.data, params.len) < 0)
			r = -TS_E_IO;
		if (r == 0) {
			printf("desc %s\n", desc);
			ops->describe(params.data, params.len, tool_print_fact, NULL);
			printf("needs-secret %d\n", ops->needs_secret(params.data, params.len));
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
		r = ops->describe(params.data, params.len, tool_print_fact, NULL);
		no_kek_line = 1;
	} else if (!strcmp(cmd, "bench-unlock") && vault_file && protector && count > 0) {
		r = tool_bench_unlock(ops, &req, vault_file, protector, count, step);
		no_kek_line = 1;   /* no KEK line: the samples are the output */
	} else
		usage();

	if (r < 0) {
		printf("error %s: %s\n", ts_error_dbus_name(r) + strlen("org.tokenseal1.Error."),
		       err[0] ? err : ts_strerror(r));
	} else if (!no_kek_line) {
		tool_print_kek(kek);
	}
	ts_secure_free(kek);
	ts_secure_free(pin);
	ts_buf_free(&params);
	ts_buf_free(&pem);
	return r < 0 ? -r : 0;
}
