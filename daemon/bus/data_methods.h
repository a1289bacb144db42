/* data_methods.h — the Vault's data methods (the vault unlocked): blobs in and out, and RotateKey. */
#ifndef TS_BUS_DATA_METHODS_H
#define TS_BUS_DATA_METHODS_H

#include <systemd/sd-bus.h>

/*
 * sd-bus method handlers of org.tokenseal1.Vault (userdata: the
 * ts_vault_entry), as docs/DBUS-API.md describes each: read the arguments,
 * authorize (authorize.h), act, reply. Return 1 without replying while
 * polkit is asked; the call is dispatched again with its answer. Replies
 * that carry a plaintext are marked sensitive.
 */
int ts_data_method_wrap(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_data_method_unwrap(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_data_method_rewrap(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_data_method_generate_data_key(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_data_method_unwrap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_data_method_rewrap_batch(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* The same with the items in one "ay" each way (core/packed.h): UnwrapBatchPacked, RewrapBatchPacked. */
int ts_data_method_unwrap_batch_packed(sd_bus_message *m, void *userdata, sd_bus_error *error);
int ts_data_method_rewrap_batch_packed(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* RotateKey(a{ss} options) -> (u version): a new root key for new blobs; old ones still open. */
int ts_data_method_rotate_key(sd_bus_message *m, void *userdata, sd_bus_error *error);

#endif
