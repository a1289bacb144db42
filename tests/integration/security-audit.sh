#!/bin/bash
# security-audit.sh — [audit] fail-closed covers the data methods: with the audit log broken, an unlocked
# vault gives out no data key (Wrap, Unwrap, Rewrap, GenerateDataKey, UnwrapBatch, RewrapBatch and their packed forms answer
# IOError), it serves again as soon as the log can be written (no restart), and the data-use records
# that covered the calls are in the log.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
PD=$POLICY_DIR
AL="$RIG_DIR/audit.jsonl"
policy_conf 90-audit.conf '[audit]\nfail-closed = yes\n'
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"

CTX=(1 app mail)
P=$(create_vault dk "$RIG_DIR/rk") || fail "CreateVault"
create_vault dk-other "$RIG_DIR/rk-other" >/dev/null || fail "CreateVault other"
vcall "$(vault_path dk-other)" Lock || fail "Lock other"
B1=$(wrap "$P" "3 1 2 3" "${CTX[@]}") || fail "Wrap"
B2=$(wrap "$P" "2 7 8" "${CTX[@]}") || fail "Wrap"
# A restart ends every interval: the daemon below starts with no data-use record written.
rig_stop_daemon
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"
unlock "$P" p1 "$RIG_DIR/rk" || fail "Unlock"

# Each data method once, as an application would call it; $1 names the expected outcome. Every method
# is tried before the verdict, so a failure names all the methods that behaved wrongly.
data_calls() { # ok | refused
	local m out rc bad=()
	for m in Wrap Unwrap Rewrap GenerateDataKey UnwrapBatch RewrapBatch UnwrapBatchPacked RewrapBatchPacked; do
		rc=0
		case $m in
		Wrap) out=$(vcall "$P" Wrap 'aya{ss}' 3 4 5 6 "${CTX[@]}" 2>&1) || rc=$? ;;
		Unwrap) out=$(vcall "$P" Unwrap 'aya{ss}' $B1 "${CTX[@]}" 2>&1) || rc=$? ;;
		Rewrap) out=$(vcall "$P" Rewrap 'aya{ss}' $B1 "${CTX[@]}" 2>&1) || rc=$? ;;
		GenerateDataKey) out=$(vcall "$P" GenerateDataKey 'ua{ss}' 32 "${CTX[@]}" 2>&1) || rc=$? ;;
		UnwrapBatch) out=$(vcall "$P" UnwrapBatch 'aaya{ss}' 2 $B1 $B2 "${CTX[@]}" 2>&1) || rc=$? ;;
		RewrapBatch) out=$(vcall "$P" RewrapBatch 'aaya{ss}' 2 $B1 $B2 "${CTX[@]}" 2>&1) || rc=$? ;;
		UnwrapBatchPacked) out=$(vcall "$P" UnwrapBatchPacked 'aya{ss}' $(packed "$B1" "$B2") "${CTX[@]}" 2>&1) || rc=$? ;;
		RewrapBatchPacked) out=$(vcall "$P" RewrapBatchPacked 'aya{ss}' $(packed "$B1" "$B2") "${CTX[@]}" 2>&1) || rc=$? ;;
		esac
		if [ "$1" = ok ]; then
			if [ $rc -ne 0 ]; then bad+=("$m refused with a writable audit log: $out"); fi
			case $m in Unwrap) [ "$out" = "ay 3 1 2 3" ] || bad+=("Unwrap gave: $out") ;; esac
		elif [ $rc -eq 0 ]; then
			bad+=("$m answered while its audit record cannot be written: ${out:0:60}...")
		else
			case $out in
			*"org.tokenseal1.Error.IOError: refused: the audit record cannot be written"*) ;;
			*) bad+=("$m: expected IOError, got: $out") ;;
			esac
		fi
	done
	[ ${#bad[@]} -eq 0 ] || { printf '  %s\n' "${bad[@]}" >&2; fail "data calls (${#bad[@]} of 8) not $1"; }
}

# 1. The log is broken before any data call of this daemon: a directory where the file was.
mv "$AL" "$AL.keep"
mkdir "$AL"
data_calls refused
[ "$(vprop "$P" Locked)" = false ] || fail "the vault locked itself (the test wants an unlocked vault)"
grep -q "event=data-use vault=dk owner=[0-9-]* uid=0 .*refused" "$RIG_DIR/daemon.log" || fail "no log line for a refused data call"
pass "fail-closed, audit log unwritable: Wrap/Unwrap/Rewrap/GenerateDataKey/UnwrapBatch/RewrapBatch and the packed batches refused (IOError)"

# The log comes back: the same calls work without a restart, each recorded.
rmdir "$AL"
mv "$AL.keep" "$AL"
data_calls ok
pass "audit log writable again: every data method works again, no restart"

# 2. The log breaks while intervals are open (their data-use records written): the next failed write
# (here the refused Unlock of another vault) takes the daemon's healthy flag down, and from then on
# each data call must write its own record again, or be refused.
mv "$AL" "$AL.keep"
mkdir "$AL"
expect_fail "org.tokenseal1.Error.IOError" unlock "$(vault_path dk-other)" p1 "$RIG_DIR/rk-other"
data_calls refused
rmdir "$AL"
mv "$AL.keep" "$AL"
data_calls ok
pass "a failed audit write while intervals are open: data calls refused until the log works again"

# 3. A full disk (open works, write fails with ENOSPC): /dev/full mounted over the log file.
if mount --bind /dev/full "$AL" 2>/dev/null; then
	expect_fail "org.tokenseal1.Error.IOError" unlock "$(vault_path dk-other)" p1 "$RIG_DIR/rk-other"
	data_calls refused
	umount "$AL"
	data_calls ok
	pass "audit log on a full device: data calls refused, then served again once it can be written"
else
	echo "note: cannot bind-mount /dev/full here (not root, or no mount namespace rights); full-disk case not run"
fi

# 4. No other audit write at all: the end of the interval is the write that finds the log broken, so
# calls go on unrecorded for at most one interval ([audit] data-interval, 2 s here).
rig_stop_daemon
policy_conf 90-audit.conf '[audit]\nfail-closed = yes\ndata-interval = 2s\n'
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"
unlock "$P" p1 "$RIG_DIR/rk" || fail "Unlock"
ends() { grep -c '"event":"data-use-end","vault":"dk".*"method":"Unwrap"' "$AL"; }
n0=$(ends)
for _ in 1 2 3; do unwrap "$P" "$B1" "${CTX[@]}" >/dev/null || fail "Unwrap"; done
for _ in $(seq 60); do [ "$(ends)" -gt "$n0" ] && break; sleep 0.1; done
[ "$(ends)" -gt "$n0" ] || fail "no data-use-end after the interval"
grep '"event":"data-use-end","vault":"dk".*"method":"Unwrap"' "$AL" | tail -n 1 | grep -q '"calls":3}' ||
	fail "data-use-end does not count 3 calls: $(tail -n 1 "$AL")"
unwrap "$P" "$B1" "${CTX[@]}" >/dev/null || fail "Unwrap"
mv "$AL" "$AL.keep"
mkdir "$AL"
sleep 3
expect_fail "org.tokenseal1.Error.IOError" unwrap "$P" "$B1" "${CTX[@]}"
rmdir "$AL"
mv "$AL.keep" "$AL"
unwrap "$P" "$B1" "${CTX[@]}" >/dev/null || fail "Unwrap once the log is back"
pass "data-interval 2s: data-use-end counts the calls; a log broken without other writes stops calls after the interval"

# data-interval = off: a record per call, so the first call after the log breaks is refused.
rig_stop_daemon
policy_conf 90-audit.conf '[audit]\nfail-closed = yes\ndata-interval = off\n'
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"
P2=$(vault_path dk-other)
unlock "$P2" p1 "$RIG_DIR/rk-other" || fail "Unlock other"
for _ in 1 2 3; do wrap "$P2" "2 9 9" "${CTX[@]}" >/dev/null || fail "Wrap other"; done
[ "$(grep -c '"event":"data-use","vault":"dk-other".*"method":"Wrap"' "$AL")" -eq 3 ] ||
	fail "data-interval off: not one record per call"
mv "$AL" "$AL.keep"
mkdir "$AL"
expect_fail "org.tokenseal1.Error.IOError" wrap "$P2" "2 9 9" "${CTX[@]}"
rmdir "$AL"
mv "$AL.keep" "$AL"
pass "data-interval off: one data-use record per call; the first call after the log breaks is refused"

# Without fail-closed the same broken log blocks nothing (the records still go to the daemon's log).
rig_stop_daemon
rm -f "$PD/90-audit.conf"
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"
unlock "$P" p1 "$RIG_DIR/rk" || fail "Unlock"
mv "$AL" "$AL.keep"
mkdir "$AL"
data_calls ok
pass "without fail-closed an unwritable audit log blocks no data call"
rig_stop_daemon
rmdir "$AL"
mv "$AL.keep" "$AL"

# The records: one data-use per (vault, uid, method) and interval, written before the first call was
# answered, and a data-use-end with the number of calls when the interval ended (here at each stop).
/usr/bin/python3 - "$AL" <<'PY' || fail "audit log content"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = [json.loads(l) for l in lines]
methods = ("Wrap", "Unwrap", "Rewrap", "GenerateDataKey", "UnwrapBatch", "RewrapBatch", "UnwrapBatchPacked",
           "RewrapBatchPacked")
for m in methods:
    start = [e for e in ev if e["event"] == "data-use" and e["vault"] == "dk" and e.get("method") == m]
    end = [e for e in ev if e["event"] == "data-use-end" and e["vault"] == "dk" and e.get("method") == m]
    assert start, ("no data-use record", m, lines)
    assert all(e["uid"] == 0 and e["pid"] > 0 and e["result"] == "ok" for e in start), (m, start)
    assert end and all(e["uid"] == 0 and e["calls"] >= 1 for e in end), ("no data-use-end record", m, lines)
# Wrap: 2 calls in the first daemon, one interval; its end record counts both.
assert any(e["event"] == "data-use-end" and e.get("method") == "Wrap" and e["calls"] == 2 for e in ev), lines
# Every data-use record of an interval comes before its data-use-end.
for m in methods:
    seq = [e["event"] for e in ev if e.get("method") == m and e["vault"] == "dk"]
    depth = 0
    for s in seq:
        depth += 1 if s == "data-use" else -1
        assert depth in (0, 1), (m, seq)
PY
pass "audit log: data-use before the first call of each method and interval, data-use-end with the call count"
core_finish
