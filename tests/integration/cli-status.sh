#!/bin/bash
# cli-status.sh — `tokenseal status` for humans and as JSON: locked or unlocked, why and since when, and whether
# each protector's token is there now (software FIDO2 key plugged and unplugged), found without a touch or a PIN.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
D=$RIG_DIR
[ -x "$SOFTFIDO" ] || fail "softfido not built"
softfido_start a
printf '1234\n' >"$D/pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$D/pin" >/dev/null ||
	fail "set the authenticator's PIN"
rig_start_bus
rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_a_DEV" --fido2-timeout 2
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault alice "$@"; }
state() { T status | sed -n 's/^ *state: *//p'; }
pline() { T status | grep "^ *$1 "; }
# The seconds of "... since YYYY-MM-DD HH:MM:SS UTC" in the state line.
since() { date -u -d "$(state | sed -n 's/.* since \(.*\) UTC$/\1/p')" +%s; }

t0=$(date -u +%s)
T create >"$D/create.out" 2>&1 || fail "create: $(cat "$D/create.out")"
T enroll fido2 --pin-fd 3 3<"$D/pin" >"$D/e" 2>&1 || fail "enroll: $(cat "$D/e")"
PF=$(grep -Eo 'protector p[0-9]+' "$D/e" | awk '{print $2}')
[ -n "$PF" ] || fail "no protector id: $(cat "$D/e")"

# --- "since": set on lock and unlock, in UTC, never before the test started.
case $(state) in "unlocked since "*UTC) ;; *) fail "state of a new vault: $(state)" ;; esac
T lock >/dev/null || fail "lock"
case $(state) in "locked (request) since "*UTC) ;; *) fail "state after lock: $(state)" ;; esac
s1=$(since) || fail "unparsable time: $(state)"
[ "$s1" -ge "$t0" ] && [ "$s1" -le "$(date -u +%s)" ] || fail "lock time $s1 not in [$t0, now]"
sleep 1.2
T unlock --protector "$PF" --pin-fd 3 3<"$D/pin" >/dev/null 2>&1 || fail "unlock with the key"
s2=$(since) || fail "unparsable time: $(state)"
[ "$s2" -gt "$s1" ] || fail "unlock did not move the time: $s1 -> $s2"
u=$(T status --json | grep -Eo '"lock_changed_usec":[0-9]+' | cut -d: -f2)
[ -n "$u" ] && [ $((u / 1000000)) -eq "$s2" ] || fail "JSON lock_changed_usec '$u' vs $s2"
pass "status says locked/unlocked, why and since when (human UTC and JSON µs)"

# --- presence: with touch denied, the key is still found (no touch asked) and no PIN retry is spent.
retries() { softfido_ctl a status | grep -Eo 'pin_retries=[0-9]+'; }
r0=$(retries)
softfido_ctl a up deny >/dev/null
case $(pline "$PF") in *"[key present]"*) ;; *) fail "plugged key: $(pline "$PF")" ;; esac
case $(pline p1) in *"[needs the secret]"*) ;; *) fail "recovery protector: $(pline p1)" ;; esac
T status --json | grep -q "\"id\":\"$PF\",\"type\":\"fido2\",[^}]*\"presence\":\"present\"" ||
	fail "JSON presence: $(T status --json)"
[ "$(retries)" = "$r0" ] || fail "status cost a PIN retry: $r0 -> $(retries)"
softfido_ctl a up approve >/dev/null
pass "a plugged FIDO2 key shows [key present], without a touch or a PIN retry"

# --- unplugged: absent, and status stays quick.
softfido_stop a
t=$SECONDS
case $(pline "$PF") in *"[key absent]"*) ;; *) fail "unplugged key: $(pline "$PF")" ;; esac
[ $((SECONDS - t)) -le 3 ] || fail "status took $((SECONDS - t)) s with the key unplugged"
T status --json | grep -q "\"id\":\"$PF\",\"type\":\"fido2\",[^}]*\"presence\":\"absent\"" ||
	fail "JSON presence unplugged: $(T status --json)"
pass "an unplugged FIDO2 key shows [key absent]"

# --- JSON is valid and carries the escrow and policy facts the human form shows.
T status --json >"$D/st.json" || fail "status --json"
/usr/bin/python3 - "$D/st.json" "$PF" <<'PY' || fail "JSON status: $(cat "$D/st.json")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 1, v
v = v[0]
assert v["name"] == "alice" and isinstance(v["lock_changed_usec"], int) and v["lock_changed_usec"] > 0, v
import datetime
t = datetime.datetime.strptime(v["lock_changed"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
assert int(t.timestamp()) == v["lock_changed_usec"] // 1000000, v
assert v["owner"] == 0 and v["owner_name"] == "root" and isinstance(v["locked"], bool), v
assert v["key_version"] == 1 and v["min_key_version"] == 1, v
assert v["policy_message"] == "" and v["policy_rule"] == "" and v["rotation_due"] is False, v
assert v["escrow_recipients"] == [] and v["policy_compliant"] is True and isinstance(v["shares_needed"], int), v
assert {p["id"]: p["presence"] for p in v["protectors"]} == {"p1": "needs-secret", sys.argv[2]: "absent"}, v
PY
pass "status --json parses and includes owner_name, lock_changed(_usec), presence, escrow_recipients, policy (rule, rotation_due), shares_needed"
