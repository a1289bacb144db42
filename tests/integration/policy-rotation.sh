#!/bin/bash
# policy-rotation.sh — [keys] max-age: a root key older than the policy allows makes PolicyStatus false with the
# rule, FILE:LINE and what to do, shows in `tokenseal status` (human and JSON), is one rotation-due audit event per
# unlock, refuses nothing, and `tokenseal rotate` makes the vault compliant again.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
PD="$D/policy.d"
AL="$D/audit.jsonl"
mkdir -p "$PD"
POL="$PD/50-keys.conf"
printf '[keys]\n# seconds, so that a test can wait for it\nmax-age = 3s\n' >"$POL"
chmod 0644 "$POL"
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault rot "$@"; }
events() { grep -c '"event":"rotation-due","vault":"rot"' "$AL" || true; }
due_re='^false "out of policy: \[keys\] max-age ('"$POL"':3): root key version \([0-9]*\) is [0-9]* seconds old, the policy allows 3s; run `tokenseal rotate --vault rot`'

P=$(create_vault rot "$D/rk") || fail "CreateVault"
B=$(wrap "$P" "3 7 7 7" 0) || fail "Wrap"
st=$(vprop "$P" PolicyStatus)
[ "$st" = 'true ""' ] || fail "PolicyStatus of a new vault: $st"
[ "$(events)" = 0 ] || fail "rotation-due before the key is due"
pass "a new root key is within [keys] max-age = 3s: PolicyStatus (true, \"\")"

sleep 4
st=$(vprop "$P" PolicyStatus)
grep -q "$due_re" <<<"$st" || fail "PolicyStatus of a due vault: $st"
[ "$(sed -n "s|$due_re.*|\1|p" <<<"$st")" = 1 ] || fail "version in: $st"
[ "$(unwrap "$P" "$B" 0)" = "3 7 7 7" ] || fail "Unwrap refused while rotation is due"
vprop "$P" PolicyStatus >/dev/null
[ "$(events)" = 1 ] || fail "rotation-due events: $(events), expected 1: $(cat "$AL")"
grep -q "vault=rot: rotation due: \[keys\] max-age ($POL:3)" "$D/daemon.log" || fail "no rotation-due log line"
pass "older than max-age: PolicyStatus names the rule, FILE:LINE, age and what to do; one rotation-due event; unwrap works"

T status >"$D/st" || fail "status: $(cat "$D/st")"
grep -q 'policy:       OUT OF POLICY: \[keys\] max-age (.*): root key version 1 is [0-9]* seconds old, the policy allows 3s; run `tokenseal rotate --vault rot`' "$D/st" ||
	fail "status: $(cat "$D/st")"
T status --json >"$D/st.json" || fail "status --json"
/usr/bin/python3 - "$D/st.json" "$POL" <<'PY' || fail "status --json: $(cat "$D/st.json")"
import json, sys
[v] = json.load(open(sys.argv[1]))
assert v["name"] == "rot" and v["key_version"] == 1, v
assert v["policy_compliant"] is False and v["rotation_due"] is True and v["policy_rule"] == "[keys] max-age", v
assert v["policy_message"].startswith("out of policy: [keys] max-age (%s:3): root key version 1 is " % sys.argv[2]), v
PY
pass "tokenseal status shows the due rotation (human: OUT OF POLICY ...; JSON: rotation_due, policy_rule)"

# Locked, the daemon still knows the key's age from the unlock; unlocking again is a new report.
vcall "$P" Lock || fail "Lock"
grep -q "$due_re" <<<"$(vprop "$P" PolicyStatus)" || fail "PolicyStatus locked: $(vprop "$P" PolicyStatus)"
vprop "$P" PolicyStatus | grep -q "once it is unlocked" || fail "locked: no 'once it is unlocked'"
[ "$(events)" = 1 ] || fail "a locked vault's status recorded rotation-due"
unlock "$P" recovery "$D/rk" >/dev/null || fail "Unlock"
[ "$(events)" = 2 ] || fail "unlock of a due vault: $(events) rotation-due events, expected 2"
pass "locked: still out of policy; the next unlock records rotation-due again (once)"

T rotate >"$D/rot.out" || fail "rotate: $(cat "$D/rot.out")"
st=$(vprop "$P" PolicyStatus)
[ "$st" = 'true ""' ] || fail "PolicyStatus after rotate: $st"
T status | grep -q "policy:       compliant" || fail "status after rotate: $(T status)"
T status --json | /usr/bin/python3 -c 'import json,sys; [v] = json.load(sys.stdin); assert v["policy_compliant"] and not v["rotation_due"] and v["policy_rule"] == "" and v["key_version"] == 2, v' ||
	fail "status --json after rotate"
[ "$(unwrap "$P" "$B" 0)" = "3 7 7 7" ] || fail "old blob after rotate"
pass "tokenseal rotate: compliant again (PolicyStatus, status, JSON); old blobs still unwrap"

# The new key ages too: due again, reported again, for version 2.
sleep 4
st=$(vprop "$P" PolicyStatus)
grep -q "$due_re" <<<"$st" && [ "$(sed -n "s|$due_re.*|\1|p" <<<"$st")" = 2 ] || fail "version 2 due: $st"
[ "$(events)" = 3 ] || fail "rotation-due events after the new key aged: $(events), expected 3"
core_finish
pass "the rotated key becomes due in its turn (version 2), one new rotation-due event"
