/* audit.h — the audit trail: journal fields and the --audit-log file, fail-closed gates, data-use intervals. */
#ifndef TS_BUS_AUDIT_H
#define TS_BUS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "bus/message.h"
#include "bus/state.h"

/* Journal fields and the --audit-log line for one event; 0 or -TS_E_IO (called by ts_audit). */
int ts_audit_sinks(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector, int r);

/* --audit-log FILE: append one JSON object per event. NULL: journal/stderr only. */
void ts_audit_set_file(const char *path);

/*
 * ts_audit for an event with no caller (uid -1, protector "-") that carries
 * numbers: n named unsigned values (names [a-z_]), appended as JSON members
 * ("name":V), log fields (name=V) and journal fields (TOKENSEAL_NAME=V).
 * 0, or -TS_E_IO when the audit file could not be written.
 */
int ts_audit_numbers(const char *event, const char *vault, uint32_t owner, int r, const char *const *names,
                     const uint64_t *values, size_t n);

/*
 * Before a security-relevant operation: record that it is being attempted.
 * When the policy says [audit] fail-closed = yes and the record cannot be
 * written, returns -TS_E_IO and sets error; the caller must refuse.
 */
int ts_audit_gate(const char *event, const char *vault, uint32_t owner, const ts_caller *caller, const char *protector,
                  sd_bus_error *error);

/*
 * The data methods (method_name: the D-Bus method, "Wrap", "Unwrap",
 * "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch",
 * "UnwrapBatchPacked", "RewrapBatchPacked", "AgeUnwrap"), once the caller is admitted: recorded per
 * interval ([audit] data-interval, default 60 s) for each (vault, caller uid,
 * method). The first call of an interval writes a `data-use` record before
 * it is answered; later calls of the interval are only counted, and the
 * interval's `data-use-end` record (method, calls) is written when it is
 * over (timer), or at ts_audit_data_stop. With fail-closed, after any failed
 * audit write, calls write their records again until one succeeds.
 * data-interval 0: a `data-use` record per call. Returns 0, or -TS_E_IO with
 * error set when the policy says [audit] fail-closed = yes and the record
 * cannot be written: the caller must refuse. An open interval with a healthy
 * log costs a table lookup, no system call.
 */
int ts_audit_data_use(ts_vault_entry *e, const ts_caller *caller, const char *method_name, sd_bus_error *error);
/* Shutdown: end every open interval (data-use-end records) and drop the timer. */
void ts_audit_data_stop(void);

#endif
