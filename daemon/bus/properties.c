/* properties.c — org.tokenseal1.Vault's properties and their PropertiesChanged signal. */

#include "bus/escrow_publish.h"
#include "bus/properties.h"
#include "bus/authorize.h"
#include "bus/message.h"
#include "bus/policy_enforce.h"
#include "bus/signals.h"
#include "bus/state.h"

static uint32_t shares_needed(const ts_vault *v)
{
	if (!ts_vault_is_locked(v))
		return 0;
	return v->threshold > v->n_pending ? v->threshold - (uint32_t)v->n_pending : 1;
}

/* The body of PropertiesChanged: the values that change, and Protectors as invalidated only. */
static int build_properties_changed(sd_bus_message *sig, void *userdata)
{
	ts_vault_entry *e = userdata;
	int locked = ts_vault_is_locked(e->vault), r;

	if ((r = sd_bus_message_append(sig, "s", TS_VAULT_IFACE)) < 0 ||
	    (r = sd_bus_message_append(sig, "a{sv}", 6, "Locked", "b", locked, "LockReason", "s",
	                               locked ? e->lock_reason : "", "LockChanged", "t", e->lock_changed, "KeyVersion",
	                               "u", e->vault->key_version, "MinKeyVersion", "u", e->vault->min_key_version,
	                               "SharesNeeded", "u", shares_needed(e->vault))) < 0)
		return r;
	return sd_bus_message_append(sig, "as", 1, "Protectors");
}

void ts_properties_emit_changed(ts_vault_entry *e)
{
	if (!e->d->bus || e == e->d->placeholder || e == e->d->ghost)
		return;
	(void)ts_signals_emit(e->d, e->vault->owner_uid, e->path, "org.freedesktop.DBus.Properties",
	                      "PropertiesChanged", build_properties_changed, e);
}

/*
 * May the caller of the Get, GetAll or GetManagedObjects being answered
 * read e's properties? 0, or the refusal (error set). Their row has no
 * polkit action, so no answer can be pending; anything but 0 refuses.
 */
static int may_read(sd_bus *bus, ts_vault_entry *e, sd_bus_error *error)
{
	ts_caller caller;
	int r = ts_vault_authorize(sd_bus_get_current_message(bus), e, &caller, error);

	return r > 0 ? ts_bus_error(error, -TS_E_ACCESS_DENIED, NULL) : r;
}

int ts_prop_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "s", e->vault->name));
}

int ts_prop_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                   sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	char hex[2 * TS_VAULT_ID_BYTES + 1];
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	ts_vault_id_hex(e->vault, hex);
	return ts_bus_errno(error, sd_bus_message_append(reply, "s", hex));
}

int ts_prop_owner(sd_bus *bus, const char *path, const char *interface, const char *property,
                      sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "u", e->vault->owner_uid));
}

int ts_prop_locked(sd_bus *bus, const char *path, const char *interface, const char *property,
                       sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "b", ts_vault_is_locked(e->vault)));
}

int ts_prop_key_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "u", e->vault->key_version));
}

int ts_prop_min_key_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "u", e->vault->min_key_version));
}

int ts_prop_lock_reason(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error,
	                    sd_bus_message_append(reply, "s", ts_vault_is_locked(e->vault) ? e->lock_reason : ""));
}

int ts_prop_lock_changed(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "t", e->lock_changed));
}

static int add_fact(void *ud, const char *key, const char *value)
{
	return sd_bus_message_append(ud, "{ss}", key, value) < 0 ? -TS_E_NOMEM : 0;
}

int ts_prop_protectors(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	if ((r = sd_bus_message_open_container(reply, 'a', "(sssta{ss})")) < 0)
		return ts_bus_errno(error, r);
	for (size_t i = 0; i < e->vault->n_protectors; i++) {
		const ts_protector_record *p = &e->vault->protectors[i];
		const ts_protector_ops *ops = ts_protector_lookup(p->type);

		if ((r = sd_bus_message_open_container(reply, 'r', "sssta{ss}")) < 0 ||
		    (r = sd_bus_message_append(reply, "ssst", p->id, p->type, p->description, p->created)) < 0 ||
		    (r = sd_bus_message_open_container(reply, 'a', "{ss}")) < 0)
			return ts_bus_errno(error, r);
		/* Facts are best effort: a backend that cannot decode its record shows none. */
		if (ops && ops->describe)
			(void)ops->describe(p->params, p->params_len, add_fact, reply);
		if ((r = sd_bus_message_close_container(reply)) < 0 || (r = sd_bus_message_close_container(reply)) < 0)
			return ts_bus_errno(error, r);
	}
	return ts_bus_errno(error, sd_bus_message_close_container(reply));
}

int ts_prop_escrow_recipients(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	char fp[TS_ESCROW_FINGERPRINT_TEXT_BYTES];
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	if ((r = sd_bus_message_open_container(reply, 'a', "(ss)")) < 0)
		return ts_bus_errno(error, r);
	for (size_t i = 0; i < e->vault->n_escrow; i++) {
		ts_escrow_key_fingerprint_text(e->vault->escrow[i].pubkey, e->vault->escrow[i].pubkey_len, fp);
		if ((r = sd_bus_message_append(reply, "(ss)", fp, e->vault->escrow[i].label)) < 0)
			return ts_bus_errno(error, r);
	}
	return ts_bus_errno(error, sd_bus_message_close_container(reply));
}

int ts_prop_shares_needed(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	return ts_bus_errno(error, sd_bus_message_append(reply, "u", shares_needed(e->vault)));
}

int ts_prop_policy_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	ts_vault_entry *e = userdata;
	char msg[TS_POLICY_MSG_MAX + 128];
	int r;

	if ((r = may_read(bus, e, error)) < 0)
		return r;
	if ((r = ts_enforce_vault_status(e, msg, sizeof(msg))) < 0)
		return ts_bus_error(error, r, NULL);
	/* In policy otherwise, but refusing new blobs until its escrow record is stored ([escrow] publish). */
	if (r > 0) {
		char why[TS_POLICY_MSG_MAX];

		if (ts_publish_gate(e, why, sizeof(why)) < 0) {
			snprintf(msg, sizeof(msg), "out of policy: %s", why);
			r = 0;
		}
	}
	return ts_bus_errno(error, sd_bus_message_append(reply, "(bs)", r > 0, msg));
}
