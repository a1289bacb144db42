/* policy_client.c — libtokenseal's internal calls for escrow, true revocation, k-of-n and policy status. */
#define _GNU_SOURCE 1  /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "core/buf.h"

#include "policy-client.h"



static int call(ts_client *c, sd_bus_message *m, uint64_t usec, sd_bus_message **reply)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int r;

	if ((r = sd_bus_call(c->bus, m, usec, &error, reply)) < 0) {
		r = ts_client_error(c, r, &error);
		sd_bus_error_free(&error);
		return r;
	}
	c->last_code = 0;
	return 0;
}

void ts_vault_policy_info_free(ts_vault_policy_info *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_escrow; i++) {
		free(p->escrow_fp[i]);
		free(p->escrow_label[i]);
	}
	free(p->escrow_fp);
	free(p->escrow_label);
	free(p->policy_message);
	free(p);
}

static int get_property(ts_client *c, const char *vault, const char *name, const char *sig, sd_bus_message **reply)
{
	sd_bus_message *m = NULL;
	char *path = NULL;
	int r;

	if ((r = ts_client_vault_path(c, vault, &path)) < 0)
		return r;
	r = sd_bus_message_new_method_call(c->bus, &m, TS_BUS_NAME, path, "org.freedesktop.DBus.Properties", "Get");
	free(path);
	if (r < 0 || (r = sd_bus_message_append(m, "ss", TS_VAULT_IFACE, name)) < 0) {
		sd_bus_message_unref(m);
		return ts_client_error(c, r, NULL);
	}
	r = call(c, m, 0, reply);
	sd_bus_message_unref(m);
	if (r < 0)
		return r;
	if ((r = sd_bus_message_enter_container(*reply, 'v', sig)) < 0)
		return ts_client_fail(c, -TS_E_FAILED, "property %s: unexpected type", name);
	return 0;
}

int ts_client_vault_policy_info(ts_client *c, const char *vault, ts_vault_policy_info **ret)
{
	ts_vault_policy_info *p;
	sd_bus_message *reply = NULL;
	const char *fp, *label, *msg;
	int r, b;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return ts_client_fail(c, -TS_E_NOMEM, "out of memory");
	if ((r = get_property(c, vault, "SharesNeeded", "u", &reply)) < 0 ||
	    (r = sd_bus_message_read(reply, "u", &p->shares_needed)) < 0)
		goto fail;
	reply = sd_bus_message_unref(reply);
	if ((r = get_property(c, vault, "PolicyStatus", "(bs)", &reply)) < 0 ||
	    (r = sd_bus_message_read(reply, "(bs)", &b, &msg)) < 0)
		goto fail;
	p->compliant = b;
	if ((p->policy_message = strdup(msg)) == NULL)
		goto nomem;
	reply = sd_bus_message_unref(reply);
	if ((r = get_property(c, vault, "EscrowRecipients", "a(ss)", &reply)) < 0 ||
	    (r = sd_bus_message_enter_container(reply, 'a', "(ss)")) < 0)
		goto fail;
	while ((r = sd_bus_message_read(reply, "(ss)", &fp, &label)) > 0) {
		char **nf = realloc(p->escrow_fp, (p->n_escrow + 1) * sizeof(char *));
		char **nl;
		if (!nf)
			goto nomem;
		p->escrow_fp = nf;
		if ((nl = realloc(p->escrow_label, (p->n_escrow + 1) * sizeof(char *))) == NULL)
			goto nomem;
		p->escrow_label = nl;
		p->escrow_fp[p->n_escrow] = strdup(fp);
		p->escrow_label[p->n_escrow] = strdup(label);
		p->n_escrow++;
		if (!p->escrow_fp[p->n_escrow - 1] || !p->escrow_label[p->n_escrow - 1])
			goto nomem;
	}
	if (r < 0)
		goto fail;
	sd_bus_message_unref(reply);
	*ret = p;
	return 0;
nomem:
	r = ts_client_fail(c, -TS_E_NOMEM, "out of memory");
	sd_bus_message_unref(reply);
	ts_vault_policy_info_free(p);
	return r;
fail:
	sd_bus_message_unref(reply);
	ts_vault_policy_info_free(p);
	return r < 0 && c->last_code ? r : ts_client_fail(c, -TS_E_FAILED, "unexpected reply from the daemon");
}

int ts_client_set_escrow(ts_client *c, const char *vault, const char *const *recipients, size_t n,
                         uint32_t threshold)
{
	sd_bus_message *m = NULL, *reply = NULL;
	int r;

	if ((r = ts_client_new_vault_call(c, vault, "SetEscrow", &m)) < 0)
		return r;
	if ((r = sd_bus_message_open_container(m, 'a', "s")) < 0)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if ((r = sd_bus_message_append(m, "s", recipients[i])) < 0)
			goto bad;
	if ((r = sd_bus_message_close_container(m)) < 0 || (r = sd_bus_message_append(m, "u", threshold)) < 0)
		goto bad;
	r = call(c, m, 0, &reply);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
	return r;
bad:
	sd_bus_message_unref(m);
	return ts_client_error(c, r, NULL);
}

static int read_strv(sd_bus_message *m, char ***ret)
{
	char **v = NULL, **nv;
	const char *s;
	size_t n = 0;
	int r;

	if ((r = sd_bus_message_enter_container(m, 'a', "s")) < 0)
		return r;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -ENOMEM;
	while ((r = sd_bus_message_read(m, "s", &s)) > 0) {
		if ((nv = realloc(v, (n + 2) * sizeof(*v))) == NULL || (nv[n] = strdup(s)) == NULL) {
			if (nv)
				v = nv;
			r = -ENOMEM;
			break;
		}
		v = nv;
		v[++n] = NULL;
	}
	if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0) {
		ts_strv_free(v);
		return r;
	}
	*ret = v;
	return 0;
}

int ts_client_revoke_rekey(ts_client *c, const char *vault, const char *id, const uint8_t *secrets,
                           size_t secrets_len, char ***kept, char ***dropped)
{
	sd_bus_message *m = NULL, *reply = NULL;
	int fd, r;

	*kept = *dropped = NULL;
	if ((r = ts_client_new_vault_call(c, vault, "RevokeAndRekey", &m)) < 0)
		return r;
	if ((fd = ts_client_secret_pipe(c, secrets, secrets_len)) < 0) {
		sd_bus_message_unref(m);
		return fd;
	}
	r = sd_bus_message_append(m, "sh", id, fd);
	close(fd);
	if (r < 0) {
		sd_bus_message_unref(m);
		return ts_client_error(c, r, NULL);
	}
	/* A FIDO2 key to keep waits for a touch. */
	r = call(c, m, TS_CLIENT_SLOW_TIMEOUT_USEC, &reply);
	sd_bus_message_unref(m);
	if (r < 0)
		return r;
	if (read_strv(reply, kept) < 0 || read_strv(reply, dropped) < 0) {
		ts_strv_free(*kept);
		*kept = NULL;
		sd_bus_message_unref(reply);
		return ts_client_fail(c, -TS_E_FAILED, "unexpected reply from the daemon");
	}
	sd_bus_message_unref(reply);
	return 0;
}

int ts_client_rotate_recovery(ts_client *c, const char *vault, const char *protector, const uint8_t *secrets,
                              size_t secrets_len, char **ret_key, size_t *ret_len, char **ret_id, char ***kept,
                              char ***dropped)
{
	sd_bus_message *m = NULL, *reply = NULL;
	const char *id;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int p[2], fd, r;

	*ret_key = NULL;
	*ret_id = NULL;
	*kept = *dropped = NULL;
	if ((r = ts_client_new_vault_call(c, vault, "RotateRecoveryKey", &m)) < 0)
		return r;
	if ((fd = ts_client_secret_pipe(c, secrets, secrets_len)) < 0) {
		sd_bus_message_unref(m);
		return fd;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		close(fd);
		sd_bus_message_unref(m);
		return ts_client_fail(c, -TS_E_FAILED, "pipe: %s", strerror(errno));
	}
	r = sd_bus_message_append(m, "shh", protector, fd, p[1]);
	close(fd);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		sd_bus_message_unref(m);
		return ts_client_error(c, r, NULL);
	}
	/* A FIDO2 key to keep waits for a touch. */
	r = call(c, m, TS_CLIENT_SLOW_TIMEOUT_USEC, &reply);
	sd_bus_message_unref(m);
	if (r < 0 || (r = sd_bus_message_read(reply, "s", &id)) < 0 || (*ret_id = strdup(id)) == NULL ||
	    read_strv(reply, kept) < 0 || read_strv(reply, dropped) < 0) {
		close(p[0]);
		sd_bus_message_unref(reply);
		free(*ret_id);
		*ret_id = NULL;
		ts_strv_free(*kept);
		*kept = NULL;
		return r < 0 && c->last_code ? r : ts_client_fail(c, -TS_E_FAILED, "unexpected reply from the daemon");
	}
	sd_bus_message_unref(reply);
	/* The daemon wrote the key before it replied: it is all in the pipe now. */
	if ((buf = ts_secure_alloc(TS_CLIENT_SECRET_MAX + 1)) == NULL || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		close(p[0]);
		ts_secure_free(buf);
		return ts_client_fail(c, -TS_E_NOMEM, "out of secure memory");
	}
	while (len < TS_CLIENT_SECRET_MAX && ((n = read(p[0], buf + len, TS_CLIENT_SECRET_MAX - len)) > 0 ||
	                                      (n < 0 && errno == EINTR)))
		if (n > 0)
			len += (size_t)n;
	close(p[0]);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	*ret_key = buf;
	*ret_len = len;
	return 0;
}
