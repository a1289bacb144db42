#!/bin/bash
# security-fido2-uv.sh — `[fido2] uv = required` is met exactly by a PIN protector (the key verifies the user
# and sets UV), and a key whose assertion lacks the UP (touch) or UV flag the protector needs is refused at
# unlock and at enrollment, even though its hmac-secret output would open the vault.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
[ -x "$SOFTFIDO" ] || fail "softfido not built"
softfido_start a
printf '1234\n' >"$RIG_DIR/pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$RIG_DIR/pin" ||
	fail "set the key's PIN"
PD=$POLICY_DIR
policy_conf 10-uv.conf '[fido2]\nuv = required\n'
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --test-devices --fido2-device "$SOFTFIDO_a_DEV" --fido2-timeout 2
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault alice "$@"; }
T create >"$RIG_DIR/create.out" 2>&1 || fail "create: $(cat "$RIG_DIR/create.out")"
nfido() { T status | grep -c ' fido2 ' || true; }

# --- 1. uv = required: a PIN protector meets it, a touch-only one does not.
T enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" >"$RIG_DIR/e1" 2>&1 ||
	fail "uv = required refused a PIN protector (the key verifies the user with its PIN): $(cat "$RIG_DIR/e1")"
PF=$(grep -Eo 'protector p[0-9]+' "$RIG_DIR/e1" | awk '{print $2}')
T status | grep -A3 " $PF " | grep -q 'uv=yes' || fail "status does not show uv=yes for the PIN protector: $(T status)"
set +e
out=$(T enroll fido2 --no-pin 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "\[fido2\] uv ($PD/10-uv.conf:2)" <<<"$out" ||
	fail "uv = required admitted a protector without PIN (exit $rc): $out"
[ "$(nfido)" = 1 ] || fail "$(nfido) fido2 protectors after the refused one"
pass "[fido2] uv = required admits a PIN protector (uv=yes) and refuses a touch-only one, naming the rule"

# --- 2. A key that answers without the flags the protector needs is refused (the output alone would open it).
T lock >/dev/null || fail "lock"
for lie in "no-up:without a touch (no UP flag" "no-uv:without verifying the PIN (no UV flag"; do
	softfido_ctl a flags "${lie%%:*}" >/dev/null
	set +e
	out=$(T unlock --protector "$PF" --pin-fd 3 3<"$RIG_DIR/pin" 2>&1); rc=$?
	set -e
	[ $rc -ne 0 ] || fail "a key that answered ${lie#*:}) unlocked the vault: $out"
	grep -qi "${lie#*:}" <<<"$out" || fail "${lie%%:*} refusal message: $out"
	T status | grep -q 'state: *locked' || fail "vault unlocked after a ${lie%%:*} answer"
done
grep -q "event=unlock vault=alice .*protector=$PF result=AuthenticationFailed" "$RIG_DIR/daemon.log" ||
	fail "the refused answer is not in the audit log"
softfido_ctl a flags honest >/dev/null
T unlock --protector "$PF" --pin-fd 3 3<"$RIG_DIR/pin" >/dev/null 2>&1 || fail "the honest key no longer unlocks"
pass "an assertion without UP or without UV is refused (AuthenticationFailed, logged); the honest answer unlocks"

# --- 3. The same at enrollment: the first assertion proves the flags too, nothing is added.
softfido_ctl a flags no-up >/dev/null
set +e
out=$(T enroll fido2 --pin-fd 3 3<"$RIG_DIR/pin" 2>&1); rc=$?
set -e
softfido_ctl a flags honest >/dev/null
[ $rc -ne 0 ] && grep -qi 'no UP flag' <<<"$out" || fail "enrolling through a key that skips the touch: exit $rc: $out"
[ "$(nfido)" = 1 ] || fail "a protector was added through a key that skipped the touch"
pass "enrolling through a key that answers without a touch is refused, nothing added"
