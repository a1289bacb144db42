#!/bin/bash
# core-packed.sh — UnwrapBatchPacked and RewrapBatchPacked: the batches with their items in one byte array
# each way. The same answers as UnwrapBatch and RewrapBatch (all or nothing, the first failing index named,
# two threads from 256 items), a malformed array named at its first bad item, the same callers (another
# user: UnknownObject, or served when polkit grants use-other) and audit records naming the method; the
# client library uses the packed form, and falls back to UnwrapBatch against a daemon without it (a
# stand-in on the bus, core_packed_standin.py). security-direct.sh runs it again with
# every library client on the private socket.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
rig_start_bus
rig_start_daemon --idle-lock 0 --log-level info

P=$(create_vault pk "$D/rk") || fail "CreateVault"
B1=$(wrap "$P" "5 104 101 108 108 111" 1 app mail) || fail "Wrap 1"
B2=$(wrap "$P" "2 7 7" 0) || fail "Wrap 2"

many() { local i; for ((i = 0; i < $1; i++)); do printf '%s\n' "$2"; done; }

# --- the answer, in the same form, in order; all or nothing.
out=$(vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B2" "$B2") 0) || fail "UnwrapBatchPacked"
[ "$out" = "ay 12 2 0 0 0 7 7 2 0 0 0 7 7" ] || fail "UnwrapBatchPacked reply: $out"
out=$(vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B1") 1 app mail) || fail "UnwrapBatchPacked with a context"
[ "$out" = "ay 9 5 0 0 0 104 101 108 108 111" ] || fail "UnwrapBatchPacked reply with a context: $out"
expect_fail "item 1" vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B2" "$B1" "$B2") 0
mapfile -t M299 < <(many 299 "$B2")
threads_before=$(ls /proc/"$DAEMON_PID"/task | wc -l)
out=$(vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "${M299[@]}" "$B2") 0) || fail "UnwrapBatchPacked of 300"
[ "$out" = "ay 1800 $(many 300 "2 0 0 0 7 7" | tr '\n' ' ' | sed 's/ $//')" ] || fail "UnwrapBatchPacked of 300: reply"
expect_fail "item 299" vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "${M299[@]}" "$B1") 0
expect_fail "item 10" vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "${M299[@]:0:10}" "$B1" "${M299[@]:10}") 0
if [ "$(nproc)" -ge 2 ]; then
	[ "$(ls /proc/"$DAEMON_PID"/task | wc -l)" -le $((threads_before + 1)) ] || fail "more than one batch worker"
fi
pass "UnwrapBatchPacked: plaintexts packed in order, all or nothing, the first failing index named (300 items too)"

# --- malformed arrays: InvalidArgs naming the shape and the item; too many items: LimitExceeded.
expect_fail "org.tokenseal1.Error.InvalidArgs: no items" vcall "$P" UnwrapBatchPacked 'aya{ss}' 0 0
expect_fail "item 1: length cut short (2 of its 4 bytes)" \
	vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B2" | awk '{ $1 += 2; print $0, 1, 0 }') 0
expect_fail "item 0: length 1000 runs past the end" vcall "$P" UnwrapBatchPacked 'aya{ss}' 6 232 3 0 0 1 2 0
expect_fail "item 0: length 65607 is over the largest, 65606 bytes" \
	vcall "$P" UnwrapBatchPacked 'aya{ss}' 4 71 0 1 0 0
pass "UnwrapBatchPacked: a malformed array is InvalidArgs naming what is wrong and at which item"

# --- RewrapBatchPacked: new blobs packed in order, each unwrapping to its plaintext.
out=$(vcall "$P" RewrapBatchPacked 'aya{ss}' $(packed "$B2" "$B2" "$B2") 0) || fail "RewrapBatchPacked"
set -- $out
[ "$1 $2" = "ay $((3 * (4 + 72)))" ] || fail "RewrapBatchPacked reply: ${*:1:6}"
[ "${*:3:4}" = "72 0 0 0" ] || fail "RewrapBatchPacked: first length ${*:3:4}"
[ "$(unwrap "$P" "72 ${*:7:72}" 0)" = "2 7 7" ] || fail "RewrapBatchPacked: the first new blob"
[ "$(unwrap "$P" "72 ${*: -72}" 0)" = "2 7 7" ] || fail "RewrapBatchPacked: the last new blob"
expect_fail "item 2" vcall "$P" RewrapBatchPacked 'aya{ss}' $(packed "$B2" "$B2" "$B1") 0
pass "RewrapBatchPacked: new blobs packed in order, all or nothing"

# --- the audit records name the method; the events are the batches' own.
grep -q "event=data-use vault=pk .*method=UnwrapBatchPacked" "$D/daemon.log" || fail "no data-use record of UnwrapBatchPacked"
grep -q "event=data-use vault=pk .*method=RewrapBatchPacked" "$D/daemon.log" || fail "no data-use record of RewrapBatchPacked"
pass "data-use records say method=UnwrapBatchPacked / RewrapBatchPacked"

# --- the library: the packed form, the aay form, and hostile arrays on its own connection
# (the private socket under security-direct.sh).
"$TS_BUILD/tests/tools/client_batch" pk >"$D/cb" || fail "client_batch (packed)"
grep -q "(packed)" "$D/cb" || fail "the library did not use the packed form: $(cat "$D/cb")"
"$TS_BUILD/tests/tools/client_batch" pk aay >"$D/cb" || fail "client_batch (aay)"
"$TS_BUILD/tests/tools/client_batch" pk hostile >"$D/cb" || fail "client_batch hostile"
pass "the library's batches: packed, UnwrapBatch when told the daemon has no packed form, hostile arrays named"

# --- another user: the vault is not there for them, until polkit grants use-other.
expect_fail UnknownObject as_other_bq vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B2") 0
expect_fail UnknownObject as_other_bq vcall "$P" RewrapBatchPacked 'aya{ss}' $(packed "$B2") 0
# ... and through the library on its own connection (the private socket under security-direct.sh).
rc=0; as_other "$TS_BUILD/tests/tools/client_batch" 0:pk >"$D/cb" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "UnknownObject\|NoSuchVault" "$D/cb" || fail "another user's library batch: rc $rc, $(cat "$D/cb")"
grep -q "event=unwrap-batch vault=pk .*uid=$OTHER_UID .*result=AccessDenied" "$D/daemon.log" ||
	fail "the refused UnwrapBatchPacked is not an unwrap-batch event"
standin_start polkit org.tokenseal1.use-other "$D/polkit.log"
out=$(as_other_bq vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B2") 0) || fail "polkit-allowed UnwrapBatchPacked"
[ "$out" = "ay 6 2 0 0 0 7 7" ] || fail "polkit-allowed UnwrapBatchPacked reply: $out"
grep -q " org.tokenseal1.use-other form=packed method=UnwrapBatch owner=0 vault=pk$" "$D/polkit.log.details" ||
	fail "polkit was not asked about the UnwrapBatchPacked: $(tail -n 2 "$D/polkit.log.details")"
as_other "$TS_BUILD/tests/tools/client_batch" 0:pk >"$D/cb" 2>&1 || fail "polkit-allowed library batch: $(cat "$D/cb")"
grep -q "(packed)" "$D/cb" || fail "polkit-allowed library batch not packed: $(cat "$D/cb")"
[ "$(grep -c " org.tokenseal1.use-other form=packed method=UnwrapBatch owner=0 vault=pk$" "$D/polkit.log.details")" -ge 2 ] ||
	fail "polkit was not asked about the library's UnwrapBatchPacked"
kill "$STANDIN_PID_polkit"; wait "$STANDIN_PID_polkit" 2>/dev/null || true
pass "another user: UnknownObject (an unwrap-batch event), served when polkit grants use-other (busctl and the library)"

core_finish

# --- a daemon from before the packed forms (a stand-in on the bus that has UnwrapBatch only): the library
# gets UnknownMethod once, answers from UnwrapBatch, and sends UnwrapBatch at once from then on.
/usr/bin/python3 "$TS_SRC/tests/integration/core_packed_standin.py" "$BUS_ADDRESS" "$D/old.ready" "$D/old.log" \
	>>"$D/old.out" 2>&1 &
RIG_PIDS+=($!)
OLD_PID=$!
for _ in $(seq 100); do [ -s "$D/old.ready" ] && break; sleep 0.05; done
[ -s "$D/old.ready" ] || fail "the old-daemon stand-in did not start: $(cat "$D/old.out")"
env -u TOKENSEAL_PRIVATE_SOCKET TOKENSEAL_BUS="$BUS_ADDRESS" "$TS_BUILD/tests/tools/client_batch" old echo >"$D/cb" 2>&1 ||
	fail "the library against a daemon without packed batches: $(cat "$D/cb")"
[ "$(cat "$D/old.log")" = "$(printf 'UnwrapBatch 3\nUnwrapBatch 3')" ] || fail "stand-in calls: $(cat "$D/old.log")"
kill "$OLD_PID"; wait "$OLD_PID" 2>/dev/null || true
pass "against a daemon without them, the library falls back to UnwrapBatch on UnknownMethod, once per connection"
