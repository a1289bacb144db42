/* message.c — a method call's sender (ts_caller), its a{ss} arguments, and the named errors it is answered with. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/direct_conn.h"
#include "bus/direct_frame.h"
#include "bus/message.h"
#include "bus/state.h"
int ts_bus_error(sd_bus_error *error, int r, const char *msg)
{
	if (r >= 0)
		r = -TS_E_FAILED;
	sd_bus_error_set(error, ts_error_dbus_name(r), msg && *msg ? msg : ts_strerror(r));
	/* sd-bus wants a negative errno; the named error set above is what the caller sees. */
	return -EIO;
}

int ts_bus_errno(sd_bus_error *error, int r)
{
	char msg[96];

	if (r >= 0 || sd_bus_error_is_set(error))
		return r;
	if (r == -ENOMEM)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	snprintf(msg, sizeof(msg), "cannot answer: %s", strerror(-r));
	return ts_bus_error(error, -TS_E_FAILED, msg);
}

int ts_bus_bad_args(sd_bus_error *error, int r)
{
	char msg[96];

	if (r == -ENOMEM)
		return ts_bus_error(error, -TS_E_NOMEM, NULL);
	snprintf(msg, sizeof(msg), "malformed arguments: %s", strerror(r < 0 ? -r : EINVAL));
	return ts_bus_error(error, -TS_E_INVALID_ARGS, msg);
}

/*
 * Callers by unique bus name. Asking the bus for a sender's credentials is a
 * round trip to the bus driver per call, which would double the cost of an
 * Unwrap. A unique name is never reused during the bus's lifetime and its
 * credentials are those of the connection (fixed at connect time), so
 * remembering them is exact, not a guess.
 */
#define CALLER_CACHE_SIZE 64
static struct {
	char name[64];
	ts_caller caller;
} caller_cache[CALLER_CACHE_SIZE];
static unsigned caller_cache_next;

int ts_caller_get(sd_bus_message *m, ts_caller *ret)
{
	sd_bus_creds *c = NULL;
	const char *sender = sd_bus_message_get_sender(m);
	uid_t uid;
	pid_t pid = 0;
	size_t i;
	int r;

	/*
	 * A direct connection (the private socket): the caller is the socket's
	 * peer, taken at accept. sd-bus's own peer there is the daemon (direct.c)
	 * and is never asked; a connection gone meanwhile is nobody.
	 */
	if (sd_bus_is_bus_client(sd_bus_message_get_bus(m)) <= 0) {
		const ts_direct_conn *dc = ts_direct_of(sd_bus_message_get_bus(m));

		if (!dc)
			return -TS_E_ACCESS_DENIED;
		ret->uid = dc->uid;
		ret->pid = dc->pid;
		return 0;
	}
	if (sender && strlen(sender) < sizeof(caller_cache[0].name) && sender[0] == ':')
		for (i = 0; i < CALLER_CACHE_SIZE; i++)
			if (strcmp(caller_cache[i].name, sender) == 0) {
				*ret = caller_cache[i].caller;
				return 0;
			}
	/* From the bus (the caller's connection credentials), never from arguments. */
	r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_AUGMENT, &c);
	if (r < 0)
		return -TS_E_ACCESS_DENIED;
	if (sd_bus_creds_get_euid(c, &uid) < 0) {
		sd_bus_creds_unref(c);
		return -TS_E_ACCESS_DENIED;
	}
	if (sd_bus_creds_get_pid(c, &pid) < 0)
		pid = 0;
	sd_bus_creds_unref(c);
	ret->uid = uid;
	ret->pid = pid;
	if (sender && strlen(sender) < sizeof(caller_cache[0].name) && sender[0] == ':') {
		i = caller_cache_next++ % CALLER_CACHE_SIZE;
		snprintf(caller_cache[i].name, sizeof(caller_cache[i].name), "%s", sender);
		caller_cache[i].caller = *ret;
	}
	return 0;
}

int ts_caller_may_use(const ts_caller *c, const ts_vault *v)
{
	return c->uid == 0 || c->uid == (uid_t)v->owner_uid;
}

int ts_bus_refuse_large(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	const char *iface = sd_bus_message_get_interface(m), *member = sd_bus_message_get_member(m);
	uint8_t type;

	/* On the private socket the scanner saw the header first (direct.c). */
	if (sd_bus_is_bus_client(sd_bus_message_get_bus(m)) <= 0 || sd_bus_message_get_type(m, &type) < 0 ||
	    type != SD_BUS_MESSAGE_METHOD_CALL || !member || ts_frame_data_method(iface, member) ||
	    (iface && strcmp(iface, TS_VAULT_IFACE) != 0 && strcmp(iface, TS_MANAGER_IFACE) != 0))
		return 0;
	if (ts_direct_message_bytes(m, TS_FRAME_SMALL_MAX) <= TS_FRAME_SMALL_MAX)
		return 0;
	if (sd_bus_message_get_expect_reply(m))
		(void)sd_bus_reply_method_errorf(m, ts_error_dbus_name(-TS_E_LIMIT),
		                                 "a call of %s may hold at most %u bytes of arguments", member,
		                                 TS_FRAME_SMALL_MAX);
	return 1;
}

/*
 * A method call flagged NO_REPLY_EXPECTED to a method whose only effect is
 * its reply is dropped before dispatch: nothing is decrypted, checked or
 * logged for an answer nobody reads. The bus does not count such calls
 * against a client's pending-reply quota, so a client flooding them could
 * otherwise keep the daemon busy with work whose result is thrown away
 * while every other caller waits behind it; dropped, each costs a header
 * look-up and the daemon keeps up with the bus (docs/PERFORMANCE.md).
 */
int ts_bus_drop_unanswered(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	/* Besides the data methods (ts_frame_data_method's list, kept in one place). */
	static const char *const reply_only[] = { "ProbeProtectors", "ListVaults", "GetVault" };
	const char *iface, *member;
	uint8_t type;

	if (sd_bus_message_get_type(m, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL ||
	    sd_bus_message_get_expect_reply(m) || !(iface = sd_bus_message_get_interface(m)) ||
	    !(member = sd_bus_message_get_member(m)))
		return 0;
	if (strcmp(iface, TS_VAULT_IFACE) != 0 && strcmp(iface, TS_MANAGER_IFACE) != 0)
		return 0;
	if (ts_frame_data_method(iface, member))
		return 1;
	for (size_t i = 0; i < sizeof(reply_only) / sizeof(reply_only[0]); i++)
		if (strcmp(member, reply_only[i]) == 0)
			return 1;
	return 0;
}

/*
 * One {ss} entry, by the calls sd_bus_message_read(m, "{ss}", ...) makes
 * for it (enter the entry, two strings, leave) without parsing that format
 * string again for every entry: that parsing was about a quarter of
 * ts_bus_read_kv's instructions. 1 and the two strings (aliasing m), 0 at
 * the end of the array, or a negative errno (-ENXIO: an entry without its
 * two strings).
 */
static int read_entry(sd_bus_message *m, const char **ret_key, const char **ret_value)
{
	int r;

	if ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "ss")) <= 0)
		return r;
	if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, ret_key)) <= 0 ||
	    (r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, ret_value)) <= 0)
		return r < 0 ? r : -ENXIO;
	if ((r = sd_bus_message_exit_container(m)) < 0)
		return r;
	return 1;
}

int ts_bus_read_kv(sd_bus_message *m, ts_kv **ret, size_t *ret_n, size_t max)
{
	ts_kv *kv = NULL, *nkv;
	size_t n = 0, cap = 0;
	const char *k, *val;
	int r;

	*ret = NULL;
	*ret_n = 0;
	if (sd_bus_message_enter_container(m, 'a', "{ss}") <= 0)
		return -TS_E_INVALID_ARGS;
	while ((r = read_entry(m, &k, &val)) > 0) {
		/* Count before allocating: a client controls how many entries arrive. */
		if (n >= max) {
			free(kv);
			return -TS_E_LIMIT;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nkv = realloc(kv, cap * sizeof(*kv))) == NULL) {
				free(kv);
				return -TS_E_NOMEM;
			}
			kv = nkv;
		}
		kv[n].key = k;
		kv[n].value = val;
		n++;
	}
	if (r < 0 || sd_bus_message_exit_container(m) < 0) {
		free(kv);
		return -TS_E_INVALID_ARGS;
	}
	*ret = kv;
	*ret_n = n;
	return 0;
}
