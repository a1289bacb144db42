/* fido2_check.c — drive the fido2 protector backend directly (enroll / unlock) for the integration tests. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fido.h>
#include <sodium.h>

#include "core/vault.h"
#include "protectors/fido2.h"
#include "protectors/protector.h"
#include "tool_util.h"

static void usage(void) {
	fprintf(stderr,
	        "usage: fido2_check enroll|unlock --device LIST --vault-id HEX [--pin-file F] [--no-pin] [--no-touch]\n"
	        "                  [--params-out F | --params-in F] [--timeout-ms N]\n"
	        "       fido2_check set-pin --device PATH --vault-id HEX --pin-file F\n"
	        "       fido2_check bench-unlock --device LIST --vault FILE --protector ID --count N [--step] [--pin-file F]\n"
	        "Prints 'kek <BLAKE2b of the KEK>' or 'error <DBusName>: <message>' (exit = TS error code);\n"
	        "bench-unlock times N unlocks with the params stored in vault FILE: 'sample_us', 'median_us', 'p99_us'\n"
	        "(--step: 'ready', then one call per line read on stdin).\n");
	exit(2);
}

/* The protector backends of this program (ts_protectors_use): the backend this tool tests. */
static const ts_protector_ops *const backends[] = { &ts_protector_fido2, NULL };

int main(int argc, char **argv) {
	ts_protectors_use(backends);
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },   { "vault-id", required_argument, NULL, 'v' },
		{ "pin-file", required_argument, NULL, 'p' }, { "no-pin", no_argument, NULL, 'P' },
		{ "no-touch", no_argument, NULL, 'T' },       { "params-out", required_argument, NULL, 'o' },
		{ "params-in", required_argument, NULL, 'i' }, { "timeout-ms", required_argument, NULL, 't' },
		{ "vault", required_argument, NULL, 'V' },     { "protector", required_argument, NULL, 'I' },
		{ "count", required_argument, NULL, 'n' },     { "step", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	const char *device = NULL, *vid_hex = NULL, *pin_file = NULL, *out = NULL, *in = NULL;
	const char *vault_file = NULL, *protector = NULL;
	int no_pin = 0, no_touch = 0, c, r, bench;
	long count = 0;
	int step = 0;
	unsigned timeout = 30000;
	uint8_t vault_id[TS_VAULT_ID_BYTES] = { 0 };
	uint8_t *pin = NULL, *kek;
	size_t pin_len = 0;
	ts_buf params = { 0 };
	ts_kv kv[3];
	size_t nkv = 0;
	char err[512] = "", desc[TS_PROTECTOR_DESC_MAX] = "", secret[8];
	size_t secret_len = 0;

	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	bench = !strcmp(cmd, "bench-unlock");
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': device = optarg; break;
		case 'v': vid_hex = optarg; break;
		case 'p': pin_file = optarg; break;
		case 'P': no_pin = 1; break;
		case 'T': no_touch = 1; break;
		case 'o': out = optarg; break;
		case 'i': in = optarg; break;
		case 't': timeout = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'V': vault_file = optarg; break;
		case 'I': protector = optarg; break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'S': step = 1; break;
		default: usage();
		}
	}
	/* bench-unlock takes the vault id from the vault file. */
	if (sodium_init() < 0 || !device || (!vid_hex && !bench))
		usage();
	if (vid_hex && sodium_hex2bin(vault_id, sizeof(vault_id), vid_hex, strlen(vid_hex), NULL, NULL, NULL) != 0)
		usage();
	/* The PIN goes into secure memory, as the daemon keeps it, never through argv. */
	if (pin_file && tool_read_secret_file(pin_file, &pin, &pin_len) < 0) {
		perror(pin_file);
		return 1;
	}

	/* A test tool: the unix: transport of tests/softfido is allowed here (tokensealed needs --test-devices). */
	ts_config cfg = { .fido2_device = device, .fido2_timeout_ms = timeout, .test_devices = 1 };
	if (no_pin)
		kv[nkv++] = (ts_kv){ "pin", "no" };
	if (no_touch)
		kv[nkv++] = (ts_kv){ "up", "no" };
	ts_protector_request req = {
		.config = &cfg, .vault_name = "check", .vault_id = vault_id, .options = kv, .n_options = nkv,
		.pin = pin_len ? pin : NULL, .pin_len = pin_len, .err = err, .err_len = sizeof(err),
	};
	const ts_protector_ops *ops = ts_protector_lookup("fido2");
	if (!ops || !(kek = ts_secure_alloc(TS_KEY_BYTES)))
		return 1;

	if (!strcmp(cmd, "set-pin")) {
		/* Set the first PIN of a fresh key through libfido2 (as fido2-token -S would). */
		fido_dev_t *dev = fido_dev_new();
		fido_init(0);
		r = -TS_E_FAILED;
		if (dev && ts_fido2_dev_open(dev, device, &cfg) == FIDO_OK) {
			int fr = fido_dev_set_pin(dev, pin ? (const char *)pin : "", NULL);
			if (fr == FIDO_OK)
				r = 0;
			else
				fprintf(stderr, "set-pin: %s\n", fido_strerr(fr));
			fido_dev_close(dev);
		}
		fido_dev_free(&dev);
	} else if (!strcmp(cmd, "enroll") && out) {
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
	} else if (bench && vault_file && protector && count > 0) {
		r = tool_bench_unlock(ops, &req, vault_file, protector, count, step);
	} else
		usage();

	if (r < 0)
		printf("error %s: %s\n", ts_error_dbus_name(r) + strlen("org.tokenseal1.Error."), err[0] ? err : ts_strerror(r));
	else if (strcmp(cmd, "set-pin") != 0 && !bench)
		tool_print_kek(kek);
	ts_secure_free(kek);
	ts_secure_free(pin);
	ts_buf_free(&params);
	return r < 0 ? -r : 0;
}
