#!/bin/bash
# security-pin.sh — one PIN, one token. With two FIDO2 keys enrolled (different PINs), unlocking
# with key B's PIN must never spend a retry of key A (three such tries used to leave A demanding a
# re-plug; a few more block its PIN, and only a reset that wipes every credential on it helps).
# Key A's retry counter is read from the software key's own state file.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
CHECK="$TS_BUILD/tests/tools/fido2_check"
D=$RIG_DIR
USR=tspin$$
rig_useradd "$USR"
UUID=$(id -u "$USR")

softfido_start a --aaguid aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
softfido_start b --aaguid bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
printf '1234\n' >"$D/pin-a"
printf '4321\n' >"$D/pin-b"
"$CHECK" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$D/pin-a" || fail "set PIN a"
"$CHECK" set-pin --device "$SOFTFIDO_b_DEV" --vault-id 00 --pin-file "$D/pin-b" || fail "set PIN b"
retries() { sed -n 's/^retries //p' "$D/softfido-$1/state"; }
[ "$(retries a)" = 8 ] && [ "$(retries b)" = 8 ] || fail "fresh keys: retries $(retries a)/$(retries b)"

rig_start_bus
T() { "$TOKENSEAL" --vault "$USR:v" "$@"; }
# Each key is enrolled while the daemon sees only that one.
rig_start_daemon --idle-lock 0 --test-devices --fido2-timeout 3 --fido2-device "$SOFTFIDO_a_DEV"
fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' v "owner=$UUID" ">$D/rk" >/dev/null || fail "create"
T enroll fido2 --pin-fd 3 3<"$D/pin-a" >"$D/e1" 2>&1 || fail "enroll a: $(cat "$D/e1")"
rig_stop_daemon
rig_start_daemon --idle-lock 0 --test-devices --fido2-timeout 3 --fido2-device "$SOFTFIDO_b_DEV"
T unlock --pin-fd 3 3<"$D/rk" >/dev/null || fail "unlock with the recovery key"
T enroll fido2 --pin-fd 3 3<"$D/pin-b" >"$D/e2" 2>&1 || fail "enroll b: $(cat "$D/e2")"
PA=$(grep -Eo 'protector p[0-9]+' "$D/e1" | awk '{print $2}')
PB=$(grep -Eo 'protector p[0-9]+' "$D/e2" | awk '{print $2}')
[ "$PA" = p2 ] && [ "$PB" = p3 ] || fail "protector ids: $PA $PB"
rig_stop_daemon
rig_start_daemon --idle-lock 0 --test-devices --fido2-timeout 3 --fido2-device "$SOFTFIDO_a_DEV,$SOFTFIDO_b_DEV"
P=/org/tokenseal1/user/$UUID/vault/v
[ "$(retries a)" = 8 ] && [ "$(retries b)" = 8 ] || fail "enrolling spent retries: $(retries a)/$(retries b)"

# --- the attack: key B's PIN, no protector named, both keys plugged in; ten times.
for i in $(seq 10); do
	rc=0; T unlock --pin-fd 3 3<"$D/pin-b" >"$D/out" 2>&1 || rc=$?
	[ "$(retries a)" = 8 ] || fail "try $i: key B's PIN spent a retry of key A (A has $(retries a) left): $(cat "$D/out")"
	[ $rc -ne 0 ] && grep -q "several tokens could take this PIN: $PA .*$PB" "$D/out" ||
		fail "try $i: not the named error listing both (rc $rc): $(cat "$D/out")"
done
[ "$(retries b)" = 8 ] || fail "the ambiguous unlocks spent a retry of B: $(retries b)"
expect_fail org.tokenseal1.Error.AmbiguousProtector unlock "$P" "" "$D/pin-b"
[ "$(vprop "$P" Locked)" = true ] || fail "an ambiguous unlock opened the vault"
pass "10 unlocks with key B's PIN and both keys present: AmbiguousProtector naming both, no retry of A or B spent"

# --- naming the key: ten unlocks with B's PIN, A's counter untouched.
for i in $(seq 10); do
	T lock >/dev/null
	T unlock --protector "$PB" --pin-fd 3 3<"$D/pin-b" >"$D/out" 2>&1 || fail "try $i: unlock with $PB: $(cat "$D/out")"
done
[ "$(retries a)" = 8 ] && [ "$(retries b)" = 8 ] || fail "unlocks with $PB: retries $(retries a)/$(retries b)"
grep -q "Touch your security key (protector $PB)" "$D/out" || fail "no touch prompt while key B was asked: $(cat "$D/out")"
pass "10 unlocks naming key B: key A's counter unchanged (8), B's too"

# --- one key unplugged: the PIN goes to the one that is there, and only to it.
T lock >/dev/null
softfido_stop a
T unlock --pin-fd 3 3<"$D/pin-b" >"$D/out" 2>&1 || fail "B's PIN with A unplugged: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "not unlocked"
[ "$(retries a)" = 8 ] || fail "A (absent) lost a retry"
# A wrong PIN stops at the first token: it is never carried on to another protector.
T lock >/dev/null
printf '9999\n' >"$D/pin-bad"
rc=0; T unlock --pin-fd 3 3<"$D/pin-bad" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "PIN incorrect, 7 tries left" "$D/out" || fail "wrong PIN: (rc $rc) $(cat "$D/out")"
[ "$(retries b)" = 7 ] || fail "a wrong PIN cost B $((8 - $(retries b))) retries"
grep -c "event=unlock vault=v .*result=PinInvalid" "$D/daemon.log" | grep -qx 1 || fail "the wrong PIN went to more than one protector"
T unlock --protector "$PB" --pin-fd 3 3<"$D/pin-b" >/dev/null 2>&1 || fail "unlock with B"
[ "$(retries b)" = 8 ] || fail "B's counter not reset by the right PIN"
pass "with A unplugged B's PIN goes to B alone; a wrong PIN stops at the first token (B: 7 left, then 8)"

# --- a mistyped recovery key is never a token PIN.
softfido_start a
T lock >/dev/null
rk=$(tr -d '\n' <"$D/rk")
last=${rk: -1}; [ "$last" = X ] && typo=Y || typo=X
printf '%s%s\n' "${rk%?}" "$typo" >"$D/rk-typo"   # last character wrong: the checksum fails
rc=0; T unlock --pin-fd 3 3<"$D/rk-typo" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -qi "recovery key" "$D/out" || fail "mistyped recovery key: (rc $rc) $(cat "$D/out")"
[ "$(retries a)" = 8 ] && [ "$(retries b)" = 8 ] || fail "a mistyped recovery key reached a token: $(retries a)/$(retries b)"
T unlock --pin-fd 3 3<"$D/rk" >/dev/null 2>&1 || fail "the recovery key itself"
pass "input shaped like a recovery key goes to recovery protectors only"

# --- at a login prompt: PAM asks which token, and the PIN goes to that one alone.
T lock >/dev/null
pam_service login "auth required $PAM_SO vault=v timeout=5"
printf '4321\n2\n' | pt login "$USR" authenticate >"$D/out" 2>&1 || fail "PAM with a choice: $(cat "$D/out")"
grep -q "Several tokens could take this PIN" "$D/out" || fail "PAM did not ask which token: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "PAM login did not unlock"
[ "$(retries a)" = 8 ] && [ "$(retries b)" = 8 ] || fail "PAM: retries $(retries a)/$(retries b)"
pass "PAM asks which token when two could take the PIN; only the chosen one sees it"

core_finish
