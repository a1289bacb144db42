#!/bin/bash
# fido2-daemon.sh — FIDO2 protectors end to end: CLI → tokensealed → libfido2 → two software keys.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
CHECK="$TS_BUILD/tests/tools/fido2_check"

softfido_start a --aaguid aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
softfido_start b --aaguid bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb --pin-protocols 1
printf 'q1w2e3\n' >"$RIG_DIR/pin"
printf 'z9x8c7\n' >"$RIG_DIR/pin-b"
printf '0000\n' >"$RIG_DIR/badpin"
"$CHECK" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$RIG_DIR/pin" || fail "set PIN a"
"$CHECK" set-pin --device "$SOFTFIDO_b_DEV" --vault-id 00 --pin-file "$RIG_DIR/pin-b" || fail "set PIN b"

rig_start_bus
rig_start_daemon --test-devices --fido2-device "$SOFTFIDO_a_DEV,$SOFTFIDO_b_DEV" --fido2-timeout 2
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault alice "$@"; }

T create alice >"$RIG_DIR/create.out" 2>&1 || { cat "$RIG_DIR/create.out"; fail "create"; }
RK=$(grep -Eo '([0-9A-Z]{5}-){7}[0-9A-Z]{5}' "$RIG_DIR/create.out" | head -n1)
[ -n "$RK" ] || fail "no recovery key printed"
printf '%s\n' "$RK" >"$RIG_DIR/rk"

# Enroll the primary and the backup key. Both are plugged in: the one touched is enrolled (the caller cannot
# name a device); the other waits for a touch that does not come and is cancelled.
softfido_ctl a up timeout >/dev/null
softfido_ctl b up timeout >/dev/null
set +e
out=$(T enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" 2>&1); rc=$?
set -e
[ $rc -eq 7 ] && grep -q 'no touch on any of the 2 security keys' <<<"$out" || fail "enroll with no key touched: exit $rc: $out"
T status | grep -q ' fido2 ' && fail "a fido2 protector was added although no key was touched"
softfido_ctl a up approve >/dev/null
T enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" >"$RIG_DIR/e1" 2>&1 || { cat "$RIG_DIR/e1"; fail "enroll a"; }
softfido_ctl b up approve >/dev/null
softfido_ctl a up timeout >/dev/null
T enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin-b" >"$RIG_DIR/e2" 2>&1 || { cat "$RIG_DIR/e2"; fail "enroll b"; }
softfido_ctl a up approve >/dev/null
PA=$(grep -Eo 'protector p[0-9]+' "$RIG_DIR/e1" | awk '{print $2}')
PB=$(grep -Eo 'protector p[0-9]+' "$RIG_DIR/e2" | awk '{print $2}')
[ -n "$PA" ] && [ -n "$PB" ] && [ "$PA" != "$PB" ] || fail "protector ids not reported: $PA $PB"
st=$(T status)
grep -q 'aaguid=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' <<<"$st" || fail "status lacks key a's AAGUID: $st"
grep -q 'aaguid=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' <<<"$st" || fail "status lacks key b's AAGUID"
grep -q 'created 20' <<<"$st" || fail "status lacks creation dates"
pass "two keys plugged in: each enrolled by touching it (none touched: Timeout, nothing added); status shows AAGUID and creation date"

printf 'mail password key' | T wrap --context app=mail --text >"$RIG_DIR/blob" || fail "wrap"

# Each key alone unlocks.
for k in a b; do
	if [ $k = a ]; then P=$PA PINF=$RIG_DIR/pin; else P=$PB PINF=$RIG_DIR/pin-b; fi
	T lock >/dev/null || fail "lock"
	T unwrap --context app=mail <"$RIG_DIR/blob" >/dev/null 2>&1 && fail "unwrap while locked"
	T unlock --protector "$P" --pin-fd 3 3<"$PINF" >/dev/null 2>&1 || fail "unlock with key $k"
	[ "$(T unwrap --context app=mail <"$RIG_DIR/blob")" = "mail password key" ] || fail "unwrap after unlock with $k"
done
pass "each key alone unlocks the vault"

# Wrong PIN: named error with tries left, through the CLI (exit 6).
T lock >/dev/null
set +e
out=$(T unlock --protector "$PA" --pin-fd 3 3<"$RIG_DIR/badpin" 2>&1); rc=$?
set -e
[ $rc -eq 6 ] || fail "wrong PIN: exit $rc, expected 6: $out"
grep -q 'PIN incorrect, 7 tries left' <<<"$out" || fail "wrong PIN message: $out"
pass "wrong PIN reports tries left (exit 6)"

# Touch denied / timeout.
softfido_ctl a up deny >/dev/null
expect_fail "declined" T unlock --protector "$PA" --pin-fd 3 3<"$RIG_DIR/pin"
softfido_ctl a up timeout >/dev/null
set +e
out=$(T unlock --protector "$PA" --pin-fd 3 3<"$RIG_DIR/pin" 2>&1); rc=$?
set -e
[ $rc -eq 7 ] || fail "touch timeout: exit $rc, expected 7: $out"
grep -qi 'no touch' <<<"$out" || fail "timeout message: $out"
softfido_ctl a up approve >/dev/null
pass "touch denied and touch timeout"

# Eight wrong PINs block key a (replugging after each three in a row) ...
# (The right PIN given during the touch tests reset the key's counter to 8.)
for i in 1 2 3 4 5 6 7 8; do
	T unlock --protector "$PA" --pin-fd 3 3<"$RIG_DIR/badpin" >/dev/null 2>&1 && fail "wrong PIN accepted"
	if [ $((i % 3)) -eq 0 ]; then softfido_ctl a power-cycle >/dev/null; fi
done
expect_fail "blocked" T unlock --protector "$PA" --pin-fd 3 3<"$RIG_DIR/pin"
# ... and the vault still opens with the backup key and with the recovery key.
T unlock --protector "$PB" --pin-fd 3 3<"$RIG_DIR/pin-b" >/dev/null 2>&1 || fail "backup key after a is blocked"
T lock >/dev/null
T unlock --protector recovery --pin-fd 3 3<"$RIG_DIR/rk" >/dev/null 2>&1 || fail "recovery key after a is blocked"
[ "$(T unwrap --context app=mail <"$RIG_DIR/blob")" = "mail password key" ] || fail "unwrap after recovery"
pass "a blocked key leaves the backup key and the recovery key working"

# Key b gone while a is present: a is not enrolled for b's protector.
T lock >/dev/null
softfido_stop b
expect_fail "is enrolled in vault 'alice'" T unlock --protector "$PB" --pin-fd 3 3<"$RIG_DIR/pin-b"
pass "a present key that is not the enrolled one is named as such"
# No key at all.
softfido_stop a
set +e
out=$(T unlock --protector "$PB" --pin-fd 3 3<"$RIG_DIR/pin-b" 2>&1); rc=$?
set -e
[ $rc -eq 7 ] || fail "absent key: exit $rc, expected 7: $out"
pass "absent key gives exit 7 (TokenAbsent)"
grep -q 'event=unlock vault=alice' "$RIG_DIR/daemon.log" || fail "no unlock audit line"
! grep -q 'q1w2e3\|z9x8c7' "$RIG_DIR/daemon.log" || fail "a PIN reached the log" # (letters: a pid or a time can hold any four digits)
