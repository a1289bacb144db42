/* escrow_publish.h — [escrow] publish: each vault's escrow record kept in the directory by the daemon, through a helper. */
#ifndef TS_BUS_ESCROW_PUBLISH_H
#define TS_BUS_ESCROW_PUBLISH_H

#include <stddef.h>

#include "bus/state.h"

/*
 * With [escrow] publish = optional or required (docs/FLEET.md), every vault
 * that escrows to officers has its record, cn=MACHINE.VAULT-ID under
 * [escrow] ldap-base, written by a network helper (the daemon reaches no
 * network) whenever what the officers need changes: a new vault, a new
 * escrow, a new root key, a new vault secret, or where the records go
 * (ldap-uri, ldap-base, the machine id: part of every digest). Written is not stored: the
 * helper reads the entry back and compares. One request at a time; a
 * failure is retried with a back-off from 1 s doubling to 5 min.
 *
 * What was verified is kept in STATE/escrow-records ("VAULT-ID DIGEST" per
 * line, 0600), so a restart does not refuse vaults whose records are
 * stored. A vault whose record was stored and whose file is gone at start
 * has its record removed, unless some vault file could not be loaded (its
 * id is then unknown, and a record that may be its own is kept).
 */

/* After loading the vaults, before serving: read the state file, queue what needs writing or removing. */
int ts_publish_start(ts_daemon *d);
void ts_publish_stop(void);

/* A vault was added or its file changed (every save): queue it if its escrow record is not the one stored. */
void ts_publish_changed(ts_vault_entry *e);

/*
 * The gate of Wrap, GenerateDataKey, Rewrap, RewrapBatch and AgeRecipient
 * under [escrow] publish = required: 0, or -TS_E_POLICY_VIOLATION with msg
 * naming the rule and why: the vault does not escrow to the policy's
 * recipients, or its current record is not stored yet (the directory and
 * the reason). A vault without escrow recipients, where the policy names
 * none, has nothing to publish and passes.
 */
int ts_publish_gate(const ts_vault_entry *e, char *msg, size_t msglen);

#endif
