#!/bin/bash
# fido2-protector.sh — the fido2 backend through libfido2 against two software authenticators.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
CHECK="$TS_BUILD/tests/tools/fido2_check"
VID=00112233445566778899aabbccddeeff

softfido_start a --aaguid 11111111111111111111111111111111
softfido_start b --aaguid 22222222222222222222222222222222 --pin-protocols 1
DEV_A=$SOFTFIDO_a_DEV DEV_B=$SOFTFIDO_b_DEV
printf '1234\n' >"$RIG_DIR/pin"
printf '9999\n' >"$RIG_DIR/badpin"

"$CHECK" set-pin --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" || fail "set PIN on a"
"$CHECK" set-pin --device "$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/pin" || fail "set PIN on b"

# Enroll each key (PIN + touch) and unlock with it: the same KEK comes back.
ka=$("$CHECK" enroll --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-out "$RIG_DIR/pa") || fail "enroll a: $ka"
grep -q 'fact aaguid=11111111111111111111111111111111' <<<"$ka" || fail "aaguid of a not recorded: $ka"
kb=$("$CHECK" enroll --device "$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-out "$RIG_DIR/pb") || fail "enroll b: $kb"
ua=$("$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa") || fail "unlock a: $ua"
[ "$(grep '^kek' <<<"$ka")" = "$ua" ] || fail "KEK of a differs between enroll and unlock"
ub=$("$CHECK" unlock --device "$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pb") || fail "unlock b: $ub"
[ "$(grep '^kek' <<<"$kb")" = "$ub" ] || fail "KEK of b differs between enroll and unlock"
[ "$ua" != "$ub" ] || fail "two keys gave the same KEK"
pass "enroll and unlock with two keys (PIN protocols 2 and 1)"

# With both keys present, the enrolled one is picked silently.
u=$("$CHECK" unlock --device "$DEV_A,$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pb") || fail "unlock b among two: $u"
[ "$u" = "$ub" ] || fail "wrong key chosen among two"
pass "the enrolled key is found among several"

# The KEK is bound to the vault id (rp id and KDF): another vault id gets nothing.
# (The assertion itself succeeds — the record names its rp id — but the KEK differs.)
out=$("$CHECK" unlock --device "$DEV_A" --vault-id ffeeddccbbaa99887766554433221100 --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa") || fail "unlock under another vault id: $out"
[ "$out" != "$ua" ] || fail "KEK not bound to the vault id"

# A key that is not enrolled: TokenNotEnrolled.
out=$("$CHECK" unlock --device "$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa") && fail "b opened a's protector"
grep -q '^error TokenNotEnrolled' <<<"$out" || fail "expected TokenNotEnrolled, got: $out"
pass "unenrolled key refused"

# No PIN given for a PIN protector.
out=$("$CHECK" unlock --device "$DEV_A" --vault-id $VID --params-in "$RIG_DIR/pa") && fail "unlocked without PIN"
grep -q '^error PinRequired' <<<"$out" || fail "expected PinRequired, got: $out"

# Wrong PIN: PinInvalid with tries left.
out=$("$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/badpin" --params-in "$RIG_DIR/pa") && fail "wrong PIN accepted"
grep -q '^error PinInvalid: PIN incorrect, 7 tries left' <<<"$out" || fail "expected PinInvalid with 7 tries left, got: $out"
# The right PIN resets the counter.
"$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa" >/dev/null || fail "right PIN after a wrong one"
pass "wrong PIN reports tries left"

# Touch denied, touch timeout.
softfido_ctl a up deny >/dev/null
out=$("$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa") && fail "denied touch unlocked"
grep -q '^error TouchDenied' <<<"$out" || fail "expected TouchDenied, got: $out"
softfido_ctl a up timeout >/dev/null
out=$("$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa" --timeout-ms 2000) && fail "timed-out touch unlocked"
grep -q '^error Timeout' <<<"$out" || fail "expected Timeout, got: $out"
softfido_ctl a up approve >/dev/null
"$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa" >/dev/null || fail "unlock after approve again"
pass "touch denied and touch timeout have their own errors"

# Without touch: a protector enrolled with --no-touch unlocks while presence is denied.
"$CHECK" enroll --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --no-touch --params-out "$RIG_DIR/pnt" >/dev/null || fail "enroll no-touch"
softfido_ctl a up deny >/dev/null
"$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pnt" >/dev/null || fail "no-touch protector needed a touch"
softfido_ctl a up approve >/dev/null
pass "no-touch protector"

# Eight wrong PINs block the key (power-cycling after every 3 in a row, as a user would replug).
for i in 1 2 3 4 5 6 7 8; do
	out=$("$CHECK" unlock --device "$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/badpin" --params-in "$RIG_DIR/pb") && fail "wrong PIN accepted"
	if [ $((i % 3)) -eq 0 ]; then
		grep -q '^error PinBlocked' <<<"$out" || fail "expected PinBlocked (replug) after 3 in a row, got: $out"
		softfido_ctl b power-cycle >/dev/null
	fi
done
out=$("$CHECK" unlock --device "$DEV_B" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pb") && fail "blocked key unlocked"
grep -q '^error PinBlocked' <<<"$out" || fail "expected PinBlocked, got: $out"
pass "eight wrong PINs block the key"

# Key absent.
softfido_stop a
out=$("$CHECK" unlock --device "$DEV_A" --vault-id $VID --pin-file "$RIG_DIR/pin" --params-in "$RIG_DIR/pa") && fail "absent key unlocked"
grep -q '^error TokenAbsent' <<<"$out" || fail "expected TokenAbsent, got: $out"
pass "absent key gives TokenAbsent"
