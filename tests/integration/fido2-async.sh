#!/bin/bash
# fido2-async.sh — an Unlock or AddProtector waiting for a touch does not stall the daemon: other callers are
# answered while it waits, the waiting call gets its own answer in the end, and a second token unlock can run
# at the same time.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
CHECK="$TS_BUILD/tests/tools/fido2_check"
WAIT=4   # --fido2-timeout: how long the daemon lets a helper wait for a touch

softfido_start a --aaguid aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
softfido_start b --aaguid bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
printf '1234\n' >"$RIG_DIR/pin"
"$CHECK" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$RIG_DIR/pin" || fail "set PIN a"
"$CHECK" set-pin --device "$SOFTFIDO_b_DEV" --vault-id 00 --pin-file "$RIG_DIR/pin" || fail "set PIN b"

rig_start_bus
rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_a_DEV,$SOFTFIDO_b_DEV" --fido2-timeout $WAIT --helper-keep 1
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" "$@"; }
ms() { date +%s%3N; }

# Vault "slow" opens with key a; vault "other" with key b; vault "soft" with its recovery key only.
for v in slow other soft; do T --vault $v create >"$RIG_DIR/$v.rk" 2>/dev/null || fail "create $v"; done
# Both keys are plugged in: enrolling takes the one that is touched (the other is left waiting, then cancelled).
softfido_ctl b up timeout >/dev/null
T --vault slow enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" >/dev/null 2>&1 || fail "enroll a"
softfido_ctl b up approve >/dev/null
softfido_ctl a up timeout >/dev/null
T --vault other enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" >/dev/null 2>&1 || fail "enroll b"
softfido_ctl a up approve >/dev/null
printf 'k' | T --vault soft wrap --context app=t --text >"$RIG_DIR/blob" || fail "wrap"
for v in slow other soft; do T --vault $v lock >/dev/null || fail "lock $v"; done
T --vault soft unlock --protector recovery --pin-fd 3 3<"$RIG_DIR/soft.rk" >/dev/null 2>&1 || fail "unlock soft"

# Key a never gets its touch: its unlock waits $WAIT s in the helper.
softfido_ctl a up timeout >/dev/null
t0=$(ms)
( set +e; T --vault slow unlock --protector fido2 --pin-fd 3 3<"$RIG_DIR/pin" >"$RIG_DIR/slow.out" 2>&1
  echo $? >"$RIG_DIR/slow.rc"; ms >"$RIG_DIR/slow.t" ) &
SLOW=$!
sleep 0.5
[ -e "$RIG_DIR/slow.rc" ] && fail "the touch-less unlock ended at once: $(cat "$RIG_DIR/slow.out")"

# Meanwhile: Ping, unwrap from another vault, status, and a second token unlock (key b touches at once).
t1=$(ms)
busctl --address="$BUS_ADDRESS" call org.tokenseal1 /org/tokenseal1 org.freedesktop.DBus.Peer Ping >/dev/null || fail "Ping"
[ "$(T --vault soft unwrap --context app=t <"$RIG_DIR/blob")" = k ] || fail "unwrap from another vault"
T --vault soft status >/dev/null || fail "status"
T --vault other unlock --protector fido2 --pin-fd 3 3<"$RIG_DIR/pin" >"$RIG_DIR/other.out" 2>&1 ||
	fail "unlock of another vault with key b during the wait: $(cat "$RIG_DIR/other.out")"
t2=$(ms)
[ -e "$RIG_DIR/slow.rc" ] && fail "the waiting unlock ended before the others were served (so it did not wait)"
[ $((t2 - t1)) -lt $(( (WAIT - 1) * 1000 )) ] ||
	fail "other callers waited $((t2 - t1)) ms: the touch wait stalled the daemon"
T --vault other status | grep -q 'state: *unlocked' || fail "vault other not unlocked"
pass "during a ${WAIT} s touch wait: Ping, unwrap, status and another key's unlock answered in $((t2 - t1)) ms"

# The waiting call gets its own answer: the touch timeout (exit 7), after about $WAIT s.
wait $SLOW
[ "$(cat "$RIG_DIR/slow.rc")" = 7 ] || fail "touch-less unlock: exit $(cat "$RIG_DIR/slow.rc"): $(cat "$RIG_DIR/slow.out")"
grep -qi 'no touch' "$RIG_DIR/slow.out" || fail "touch-less unlock message: $(cat "$RIG_DIR/slow.out")"
took=$(( $(cat "$RIG_DIR/slow.t") - t0 ))
[ $took -ge $(( (WAIT - 1) * 1000 )) ] || fail "the touch-less unlock ended after $took ms, before the timeout"
T --vault slow status | grep -q 'state: *locked' || fail "vault slow not locked after the timeout"
pass "the waiting unlock ended on its own with the touch timeout after $took ms (exit 7)"

# With the touch given, the same unlock works (the job machinery did not break the normal path).
softfido_ctl a up approve >/dev/null
T --vault slow unlock --protector fido2 --pin-fd 3 3<"$RIG_DIR/pin" >/dev/null 2>&1 || fail "unlock slow with touch"
T --vault slow status | grep -q 'state: *unlocked' || fail "vault slow not unlocked"

# A caller that gives up (its connection closes) while the helper waits: the daemon lives on and is not stuck.
softfido_ctl a up timeout >/dev/null
T --vault slow lock >/dev/null
timeout 1 "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault slow unlock --protector fido2 --pin-fd 3 3<"$RIG_DIR/pin" \
	>/dev/null 2>&1 && fail "the abandoned unlock succeeded"
busctl --address="$BUS_ADDRESS" call org.tokenseal1 /org/tokenseal1 org.freedesktop.DBus.Peer Ping >/dev/null ||
	fail "Ping after an abandoned unlock"
sleep $((WAIT + 2))   # the helper gives up after $WAIT s; the spare started then lives 1 s (--helper-keep 1)
kill -0 "$DAEMON_PID" || fail "daemon died after the abandoned unlock"
kids=$(ps -o pid= --ppid "$DAEMON_PID" || true)
[ -z "$kids" ] || fail "helpers left behind: $kids"
softfido_ctl a up approve >/dev/null
pass "an abandoned unlock: the daemon answers, its helper is gone after the timeout"

# AddProtector waits for a touch in the helper too: enrolling into vault "other" (unlocked) while neither key
# gets its touch leaves the daemon serving, and the enrollment ends with the touch timeout.
softfido_ctl a up timeout >/dev/null
softfido_ctl b up timeout >/dev/null
t0=$(ms)
( set +e; T --vault other enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" >"$RIG_DIR/enr.out" 2>&1
  echo $? >"$RIG_DIR/enr.rc" ) &
ENR=$!
sleep 0.5
t1=$(ms)
busctl --address="$BUS_ADDRESS" call org.tokenseal1 /org/tokenseal1 org.freedesktop.DBus.Peer Ping >/dev/null || fail "Ping"
[ "$(T --vault soft unwrap --context app=t <"$RIG_DIR/blob")" = k ] || fail "unwrap during the enrollment"
t2=$(ms)
[ -e "$RIG_DIR/enr.rc" ] && fail "the touch-less enrollment ended at once: $(cat "$RIG_DIR/enr.out")"
[ $((t2 - t1)) -lt $(( (WAIT - 1) * 1000 )) ] || fail "callers waited $((t2 - t1)) ms behind an enrollment"
wait $ENR
[ "$(cat "$RIG_DIR/enr.rc")" != 0 ] || fail "the touch-less enrollment succeeded"
grep -qi 'no touch' "$RIG_DIR/enr.out" || fail "touch-less enrollment message: $(cat "$RIG_DIR/enr.out")"
n=$(T --vault other status | grep -c ' fido2 ' || true)
[ "$n" = 1 ] || fail "vault other has $n fido2 protectors after a failed enrollment (expected 1)"
softfido_ctl a up approve >/dev/null
T --vault other enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" >/dev/null 2>&1 ||
	fail "enrollment of key a with a touch"
softfido_ctl b up approve >/dev/null
n=$(T --vault other status | grep -c ' fido2 ' || true)
[ "$n" = 2 ] || fail "vault other has $n fido2 protectors after enrolling key a (expected 2)"
T --vault other status | grep -q 'aaguid=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' || fail "the key touched (a) was not the one enrolled"
pass "during a touch-less enrollment others were answered in $((t2 - t1)) ms; it ended with the touch timeout, nothing added; with a touch it adds the key"
