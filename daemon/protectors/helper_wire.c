/* helper_wire.c — frames between tokensealed and tokenseal-helper (helper_wire.h). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/clock.h"
#include "protectors/helper_wire.h"

int ts_wire_encode(const ts_wire_field *fields, size_t n, uint8_t **ret, size_t *ret_len)
{
	size_t body = 0, off = 4;
	uint8_t *frame;

	for (size_t i = 0; i < n; i++) {
		if (fields[i].len > TS_WIRE_FRAME_MAX || body + 5 + fields[i].len > TS_WIRE_FRAME_MAX)
			return -TS_E_LIMIT;
		body += 5 + fields[i].len;
	}
	if ((frame = ts_secure_alloc(4 + body)) == NULL)
		return -TS_E_NOMEM;
	ts_put_be32(frame, (uint32_t)body);
	for (size_t i = 0; i < n; i++) {
		size_t l = fields[i].len;
		frame[off] = fields[i].tag;
		ts_put_be32(frame + off + 1, (uint32_t)l);
		if (l)
			memcpy(frame + off + 5, fields[i].data, l);
		off += 5 + l;
	}
	*ret = frame;
	*ret_len = off;
	return 0;
}

int ts_wire_next(const uint8_t *body, size_t len, size_t *off, ts_wire_field *f)
{
	uint32_t l;

	if (*off == len)
		return 0;
	if (*off > len || len - *off < 5)
		return -TS_E_INVALID_ARGS;
	l = ts_be32(body + *off + 1);
	if (l > len - *off - 5)
		return -TS_E_INVALID_ARGS;
	f->tag = body[*off];
	if (f->tag == 0 || (f->tag >= TS_WIRE_REQUEST_TAG_MAX && f->tag < TS_WIRE_RC) || f->tag >= TS_WIRE_TAG_MAX)
		return -TS_E_INVALID_ARGS;
	f->data = body + *off + 5;
	f->len = l;
	*off += 5 + (size_t)l;
	return 1;
}

int ts_wire_get_u32(const ts_wire_field *f, uint32_t *ret)
{
	if (f->len != 4)
		return -TS_E_INVALID_ARGS;
	*ret = ts_be32(f->data);
	return 0;
}

int ts_wire_get_i32(const ts_wire_field *f, int32_t *ret)
{
	uint32_t u;

	if (ts_wire_get_u32(f, &u) < 0)
		return -TS_E_INVALID_ARGS;
	*ret = (int32_t)u;
	return 0;
}

int ts_wire_get_str(const ts_wire_field *f, char *out, size_t cap)
{
	if (f->len > TS_WIRE_STR_MAX || f->len >= cap || memchr(f->data, '\0', f->len))
		return -TS_E_INVALID_ARGS;
	memcpy(out, f->data, f->len);
	out[f->len] = '\0';
	return 0;
}

int ts_wire_get_pair(const ts_wire_field *f, char *out, size_t cap, const char **key, const char **value)
{
	const uint8_t *nul;

	if (f->len > TS_WIRE_STR_MAX || f->len >= cap || (nul = memchr(f->data, '\0', f->len)) == NULL ||
	    nul == f->data || memchr(nul + 1, '\0', f->len - (size_t)(nul + 1 - (const uint8_t *)f->data)))
		return -TS_E_INVALID_ARGS;
	memcpy(out, f->data, f->len);
	out[f->len] = '\0';
	*key = out;
	*value = out + (nul - (const uint8_t *)f->data) + 1;
	return 0;
}

int ts_wire_write(int fd, const uint8_t *frame, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, frame, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -TS_E_IO;
		frame += w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_exact(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t got;
		if (deadline >= 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int64_t left = deadline - (int64_t)ts_mono_ms();
			int r;
			if (left <= 0)
				return -TS_E_TIMEOUT;
			r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -TS_E_IO;
			if (r == 0)
				continue;
		}
		got = read(fd, p, n);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return -TS_E_IO;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int ts_wire_read(int fd, int timeout_ms, uint8_t **ret, size_t *ret_len)
{
	int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)ts_mono_ms() + timeout_ms;
	uint8_t hdr[4];
	uint32_t len;
	uint8_t *body;
	int r;

	if ((r = read_exact(fd, hdr, sizeof(hdr), deadline)) < 0)
		return r;
	len = ts_be32(hdr);
	if (len > TS_WIRE_FRAME_MAX)
		return -TS_E_LIMIT;
	/* sodium_malloc(0) is fine, but keep every caller's pointer non-NULL and distinct. */
	if ((body = ts_secure_alloc(len ? len : 1)) == NULL)
		return -TS_E_NOMEM;
	if ((r = read_exact(fd, body, len, deadline)) < 0) {
		ts_secure_free(body);
		return r;
	}
	*ret = body;
	*ret_len = len;
	return 0;
}

int ts_wire_parse_request(const uint8_t *body, size_t len, ts_wire_request *q)
{
	ts_wire_field f;
	size_t off = 0;
	int r;

	while ((r = ts_wire_next(body, len, &off, &f)) > 0) {
		if (f.tag != TS_WIRE_OPTION) {
			if (f.tag >= 32 || (q->seen & (1u << f.tag)))
				return -TS_E_INVALID_ARGS;
			q->seen |= 1u << f.tag;
		}
		switch (f.tag) {
		case TS_WIRE_OP:
			if (f.len != 1)
				return -TS_E_INVALID_ARGS;
			q->op = *(const uint8_t *)f.data;
			break;
		case TS_WIRE_TYPE: r = ts_wire_get_str(&f, q->type, sizeof(q->type)); break;
		case TS_WIRE_TCTI: r = ts_wire_get_str(&f, q->tcti, sizeof(q->tcti)); break;
		case TS_WIRE_FIDO2_DEVICE: r = ts_wire_get_str(&f, q->fido2_device, sizeof(q->fido2_device)); break;
		case TS_WIRE_PKCS11_MODULE: r = ts_wire_get_str(&f, q->pkcs11_module, sizeof(q->pkcs11_module)); break;
		case TS_WIRE_FIDO2_TIMEOUT: r = ts_wire_get_u32(&f, &q->fido2_timeout_ms); break;
		case TS_WIRE_VAULT_NAME: r = ts_wire_get_str(&f, q->vault_name, sizeof(q->vault_name)); break;
		case TS_WIRE_VAULT_ID:
			if (f.len != TS_VAULT_ID_BYTES)
				return -TS_E_INVALID_ARGS;
			memcpy(q->vault_id, f.data, f.len);
			break;
		case TS_WIRE_OPTION: {
			size_t i = q->n_options;
			if (i >= TS_WIRE_MAX_OPTIONS)
				return -TS_E_LIMIT;
			r = ts_wire_get_pair(&f, q->option_text[i], sizeof(q->option_text[i]), &q->options[i].key,
			                     &q->options[i].value);
			q->n_options++;
			break;
		}
		case TS_WIRE_PIN: q->pin = f.data; q->pin_len = f.len; break;
		case TS_WIRE_PARAMS: q->params = f.data; q->params_len = f.len; break;
		case TS_WIRE_TEST_DEVICES:
			if (f.len != 1 || *(const uint8_t *)f.data != 1)
				return -TS_E_INVALID_ARGS;
			q->test_devices = 1;
			break;
		case TS_WIRE_BOX_KEY:
			if (f.len != TS_WIRE_BOX_KEY_BYTES)
				return -TS_E_INVALID_ARGS;
			q->box_key = f.data;
			break;
		default: return -TS_E_INVALID_ARGS;   /* a reply field in a request */
		}
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	if (q->op < TS_WIRE_OP_ENROLL || q->op > TS_WIRE_OP_LDAP || !q->type[0])
		return -TS_E_INVALID_ARGS;
	if (q->op != TS_WIRE_OP_ENROLL && !q->params)
		return -TS_E_INVALID_ARGS;
	/* The escrow op carries a box key and nothing secret besides; no other op carries one. */
	if (q->op == TS_WIRE_OP_ESCROW_WRAP_KEY ? !q->box_key || q->pin : q->box_key != NULL)
		return -TS_E_INVALID_ARGS;
	return 0;
}
