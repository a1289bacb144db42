/* recovery_check.c — drive the recovery protector backend directly: the in-process unlock baseline of the benchmark. */
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
	        "usage: recovery_check bench-unlock --vault FILE --protector ID --count N [--step] --pin-file KEY-FILE\n"
	        "Times N unlocks with the params stored in vault FILE and the recovery key in KEY-FILE:\n"
	        "'sample_us', 'median_us', 'p99_us' lines, or 'error <DBusName>: <message>' (exit = TS error code).\n"
	        "--step: 'ready', then one call per line read on stdin.\n");
	exit(2);
}

/* The protector backends of this program (ts_protectors_use): the backend this tool tests. */
static const ts_protector_ops *const backends[] = { &ts_protector_recovery, NULL };

int main(int argc, char **argv) {
	ts_protectors_use(backends);
	static const struct option opts[] = {
		{ "pin-file", required_argument, NULL, 'p' },  { "vault", required_argument, NULL, 'V' },
		{ "protector", required_argument, NULL, 'I' }, { "count", required_argument, NULL, 'n' },
		{ "step", no_argument, NULL, 'S' },            { NULL, 0, NULL, 0 },
	};
	const char *pin_file = NULL, *vault_file = NULL, *protector = NULL;
	long count = 0;
	int step = 0;
	uint8_t *key = NULL;
	size_t key_len = 0;
	char err[512] = "";
	int c, r;

	if (argc < 2 || strcmp(argv[1], "bench-unlock") != 0)
		usage();
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pin_file = optarg; break;
		case 'V': vault_file = optarg; break;
		case 'I': protector = optarg; break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'S': step = 1; break;
		default: usage();
		}
	}
	if (!pin_file || !vault_file || !protector || count < 1)
		usage();
	if (sodium_init() < 0)
		return 1;
	/* The recovery key goes into secure memory, as the daemon keeps it, never through argv. */
	if (tool_read_secret_file(pin_file, &key, &key_len) < 0) {
		perror(pin_file);
		return 1;
	}
	ts_config cfg = { 0 };
	ts_protector_request req = {
		.config = &cfg, .pin = key_len ? key : NULL, .pin_len = key_len, .err = err, .err_len = sizeof(err),
	};
	const ts_protector_ops *ops = ts_protector_lookup("recovery");
	if (!ops)
		return 1;
	if ((r = tool_bench_unlock(ops, &req, vault_file, protector, count, step)) < 0)
		printf("error %s: %s\n", ts_error_dbus_name(r) + strlen("org.tokenseal1.Error."),
		       err[0] ? err : ts_strerror(r));
	ts_secure_free(key);
	return r < 0 ? -r : 0;
}
