/* core_session.c — test tool: the vault calls a session makes (create, unlock, use, rotate, lock), over sd-bus, secrets through pipes. */
/*
 *   core_session ADDRESS create NAME KEY_OUT      prints the object path; the recovery key goes to KEY_OUT
 *   core_session ADDRESS unlock PATH KEY_FILE     Unlock("recovery", fd)
 *   core_session ADDRESS lock PATH
 *   core_session ADDRESS rotate PATH              prints the new version
 *   core_session ADDRESS use PATH N               N x (GenerateDataKey, Unwrap, Rewrap, Wrap), every answer checked
 *   core_session ADDRESS locked PATH              prints "Locked LockReason", e.g. "1 idle"
 *
 * Secrets travel through pipes (never argv); a D-Bus error is printed as
 * "NAME: message" and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-bus.h>

#define BUS_NAME "org.tokenseal1"
#define VAULT_IFACE "org.tokenseal1.Vault"

static sd_bus *bus;

static int bus_fail(const char *what, int r, const sd_bus_error *e)
{
	fprintf(stderr, "%s: %s: %s\n", what, e && e->name ? e->name : "error",
	        e && e->message ? e->message : strerror(-r));
	exit(1);
}

/* A pipe whose read end carries the contents of file (the secret never sits in argv). */
static int secret_fd(const char *file)
{
	char buf[1024];
	ssize_t n;
	int p[2], fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 || (n = read(fd, buf, sizeof(buf))) < 0 || pipe(p) < 0 ||
	    write(p[1], buf, (size_t)n) != n) {
		fprintf(stderr, "cannot pass %s: %s\n", file, strerror(errno));
		exit(1);
	}
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	close(p[1]);
	return p[0];
}

/* Call a vault method with "ay a{ss}" and return the first ay of the reply. */
static sd_bus_message *call_ay(const char *path, const char *method, const void *in, size_t n, const char *ctx)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	int r;

	if ((r = sd_bus_message_new_method_call(bus, &m, BUS_NAME, path, VAULT_IFACE, method)) < 0 ||
	    (r = sd_bus_message_append_array(m, 'y', in, n)) < 0 ||
	    (r = sd_bus_message_append(m, "a{ss}", 1, "session", ctx)) < 0)
		bus_fail(method, r, NULL);
	if ((r = sd_bus_call(bus, m, 0, &e, &reply)) < 0)
		bus_fail(method, r, &e);
	sd_bus_message_unref(m);
	return reply;
}

static void use(const char *path, int n)
{
	for (int i = 0; i < n; i++) {
		sd_bus_error e = SD_BUS_ERROR_NULL;
		sd_bus_message *reply = NULL, *r2, *r3, *r4;
		const void *pt, *blob, *p2, *b3;
		size_t pt_len, blob_len, n2, n3;
		uint8_t key[32], blob_copy[256], rewrapped[256];
		char ctx[16];
		int r;

		snprintf(ctx, sizeof(ctx), "c%d", i);
		if ((r = sd_bus_call_method(bus, BUS_NAME, path, VAULT_IFACE, "GenerateDataKey", &e, &reply, "ua{ss}",
		                            32, 1, "session", ctx)) < 0)
			bus_fail("GenerateDataKey", r, &e);
		if (sd_bus_message_read_array(reply, 'y', &pt, &pt_len) < 0 ||
		    sd_bus_message_read_array(reply, 'y', &blob, &blob_len) < 0 || pt_len != 32 ||
		    blob_len > sizeof(blob_copy))
			bus_fail("GenerateDataKey: reply", -EBADMSG, NULL);
		memcpy(key, pt, 32);
		memcpy(blob_copy, blob, blob_len);
		sd_bus_message_unref(reply);
		r2 = call_ay(path, "Unwrap", blob_copy, blob_len, ctx);
		if (sd_bus_message_read_array(r2, 'y', &p2, &n2) < 0 || n2 != 32 || memcmp(p2, key, 32) != 0) {
			fprintf(stderr, "Unwrap gave a wrong key\n");
			exit(1);
		}
		sd_bus_message_unref(r2);
		r3 = call_ay(path, "Rewrap", blob_copy, blob_len, ctx);
		if (sd_bus_message_read_array(r3, 'y', &b3, &n3) < 0 || n3 != blob_len)
			bus_fail("Rewrap: reply", -EBADMSG, NULL);
		memcpy(rewrapped, b3, n3);
		sd_bus_message_unref(r3);
		r4 = call_ay(path, "Unwrap", rewrapped, n3, ctx);
		if (sd_bus_message_read_array(r4, 'y', &p2, &n2) < 0 || n2 != 32 || memcmp(p2, key, 32) != 0) {
			fprintf(stderr, "Unwrap of a rewrapped blob gave a wrong key\n");
			exit(1);
		}
		sd_bus_message_unref(r4);
		sd_bus_message_unref(call_ay(path, "Wrap", key, 32, ctx));
		sodium_memzero(key, sizeof(key));
	}
}

int main(int argc, char **argv)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *cmd;
	int r;

	if (argc < 4) {
		fprintf(stderr, "usage: core_session ADDRESS create|unlock|lock|rotate|use|locked ARGS...\n");
		return 2;
	}
	cmd = argv[2];
	if (sodium_init() < 0 || sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, argv[1]) < 0 ||
	    sd_bus_set_bus_client(bus, 1) < 0 || sd_bus_start(bus) < 0) {
		fprintf(stderr, "cannot connect to %s\n", argv[1]);
		return 1;
	}
	if (strcmp(cmd, "create") == 0 && argc == 5) {
		char key[256];
		const char *path;
		ssize_t n;
		int p[2], fd;

		if (pipe(p) < 0)
			return 1;
		if ((r = sd_bus_call_method(bus, BUS_NAME, "/org/tokenseal1", "org.tokenseal1.Manager", "CreateVault", &e,
		                            &reply, "sa{ss}h", argv[3], 0, p[1])) < 0)
			bus_fail("CreateVault", r, &e);
		close(p[1]);
		if ((n = read(p[0], key, sizeof(key))) <= 0 ||
		    (fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 || write(fd, key, (size_t)n) != n ||
		    close(fd) < 0) {
			fprintf(stderr, "no recovery key arrived or cannot save it\n");
			return 1;
		}
		sodium_memzero(key, sizeof(key));
		if (sd_bus_message_read(reply, "o", &path) < 0)
			return 1;
		printf("%s\n", path);
	} else if (strcmp(cmd, "unlock") == 0 && argc == 5) {
		int fd = secret_fd(argv[4]);
		if ((r = sd_bus_call_method(bus, BUS_NAME, argv[3], VAULT_IFACE, "Unlock", &e, NULL, "sha{ss}", "recovery", fd, 0)) < 0)
			bus_fail("Unlock", r, &e);
		close(fd);
	} else if (strcmp(cmd, "lock") == 0 && argc == 4) {
		if ((r = sd_bus_call_method(bus, BUS_NAME, argv[3], VAULT_IFACE, "Lock", &e, NULL, "")) < 0)
			bus_fail("Lock", r, &e);
	} else if (strcmp(cmd, "rotate") == 0 && argc == 4) {
		uint32_t v;
		if ((r = sd_bus_call_method(bus, BUS_NAME, argv[3], VAULT_IFACE, "RotateKey", &e, &reply, "a{ss}", 0)) < 0)
			bus_fail("RotateKey", r, &e);
		if (sd_bus_message_read(reply, "u", &v) < 0)
			return 1;
		printf("%u\n", v);
	} else if (strcmp(cmd, "use") == 0 && argc == 5) {
		use(argv[3], atoi(argv[4]));
	} else if (strcmp(cmd, "locked") == 0 && argc == 4) {
		char *reason = NULL;
		int locked;
		if ((r = sd_bus_get_property_trivial(bus, BUS_NAME, argv[3], VAULT_IFACE, "Locked", &e, 'b', &locked)) < 0 ||
		    (r = sd_bus_get_property_string(bus, BUS_NAME, argv[3], VAULT_IFACE, "LockReason", &e, &reason)) < 0)
			bus_fail("Locked", r, &e);
		printf("%d %s\n", locked, reason);
		free(reason);
	} else {
		fprintf(stderr, "core_session: bad command line\n");
		return 2;
	}
	sd_bus_message_unref(reply);
	sd_bus_flush_close_unref(bus);
	return 0;
}
