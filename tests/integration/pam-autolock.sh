#!/bin/bash
# pam-autolock.sh — automatic locking: logind's PrepareForSleep and Session.Lock (from a stand-in logind that
# owns org.freedesktop.login1; impostors ignored), FIDO2 token removal (software authenticator stopped,
# after a PAM login with the key's PIN), and the idle timeout. Each reason shows in LockReason and the log.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
[ -x "$SOFTFIDO" ] || fail "softfido not built"
softfido_start a
printf '1234\n' >"$D/pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00112233445566778899aabbccddeeff \
	--pin-file "$D/pin" >/dev/null || fail "set the authenticator's PIN"

rig_start_bus
rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_a_DEV"
# logind comes after the daemon: it learns the owner from NameOwnerChanged.
standin_start logind

NP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' nobody "owner=65534" ">$D/rk-nobody") ||
	fail "create nobody"
DP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' daemon "owner=1" ">$D/rk-daemon") ||
	fail "create daemon"
KP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' key "owner=65534" ">$D/rk-key") ||
	fail "create key"
fdcall "$KP" $VIFACE AddProtector 'sa{ss}hh' fido2 "pin=yes" "<$D/pin" ">/dev/null" >/dev/null || fail "enroll fido2"

# --- impostors: the same signals from a connection that does not own org.freedesktop.login1.
bctl emit /org/freedesktop/login1 org.freedesktop.login1.Manager PrepareForSleep b true
bctl emit --destination=org.tokenseal1 /org/freedesktop/login1 org.freedesktop.login1.Manager PrepareForSleep b true
bctl emit --destination=org.tokenseal1 /org/freedesktop/login1/session/c1 org.freedesktop.login1.Session Lock
sleep 0.5
for p in "$NP" "$DP" "$KP"; do [ "$(vprop "$p" Locked)" = false ] || fail "an impostor's signal locked $p"; done
grep -q "autolock: ignoring org.freedesktop.login1.Manager.PrepareForSleep" "$D/daemon.log" ||
	fail "the directed impostor signal was not reported"
pass "PrepareForSleep and Session.Lock from a non-owner of org.freedesktop.login1 are ignored"

# --- screen lock: Session.Lock locks the vaults of that session's user only.
logind_ctl AddSession su c1 65534
logind_ctl EmitLock s c1
wait_prop "$NP" Locked true
wait_prop "$KP" Locked true
[ "$(vprop "$NP" LockReason)" = '"screen-lock"' ] || fail "LockReason $(vprop "$NP" LockReason)"
[ "$(vprop "$DP" Locked)" = false ] || fail "screen lock of uid 65534 locked uid 1's vault"
grep -q "event=lock-screen-lock vault=nobody" "$D/daemon.log" || fail "screen lock not logged"
pass "Session.Lock locks the session user's vaults (LockReason screen-lock), not others'"

# --- suspend: PrepareForSleep(true) locks everything; (false) unlocks nothing.
unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
logind_ctl EmitSleep b true
wait_prop "$NP" Locked true
wait_prop "$DP" Locked true
[ "$(vprop "$DP" LockReason)" = '"suspend"' ] || fail "LockReason $(vprop "$DP" LockReason)"
[ "$(vprop "$KP" LockReason)" = '"screen-lock"' ] || fail "an already locked vault changed its reason"
logind_ctl EmitSleep b false
sleep 0.3
[ "$(vprop "$NP" Locked)" = true ] || fail "resume unlocked a vault"
grep -q "event=lock-suspend vault=daemon" "$D/daemon.log" || fail "suspend not logged"
pass "PrepareForSleep(true) locks every vault (LockReason suspend); resume unlocks none"

# --- FIDO2: log in with the key's PIN through PAM, then unplug the key (stop the authenticator).
pam_service key "auth required $PAM_SO vault=key timeout=5"
printf '9999\n' >"$D/badpin"
rc=0; pt key nobody authenticate <"$D/badpin" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "Authentication failure" "$D/out" || fail "wrong PIN: $(cat "$D/out")"
grep -q "tries left" "$D/out" || fail "wrong PIN: no tries left shown: $(cat "$D/out")"
pt key nobody authenticate <"$D/pin" >"$D/out" 2>&1 || fail "PIN login: $(cat "$D/out")"
grep -q "PIN or recovery key: " "$D/out" || fail "no PIN prompt: $(cat "$D/out")"
grep -q "Touch your security key" "$D/out" || fail "no touch message: $(cat "$D/out")"
[ "$(vprop "$KP" Locked)" = false ] || fail "PIN login did not unlock"
unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
pass "PAM login with the security key's PIN (prompt, touch message) unlocks; a wrong PIN gives PAM_AUTH_ERR"

sleep 1.5
[ "$(vprop "$KP" Locked)" = false ] || fail "locked while the key is still there"
softfido_stop a
wait_prop "$KP" Locked true
[ "$(vprop "$KP" LockReason)" = '"token-removed"' ] || fail "LockReason $(vprop "$KP" LockReason)"
[ "$(vprop "$NP" Locked)" = false ] || fail "a vault unlocked by its recovery key was locked by token removal"
grep -q "event=lock-token-removed vault=key" "$D/daemon.log" || fail "token removal not logged"
pass "stopping the authenticator locks the vault it unlocked (token-removed), not the others"

# --- idle: a daemon with --idle-lock 1.
core_finish
rig_start_daemon --idle-lock 1
unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
[ "$(vprop "$NP" Locked)" = false ] || fail "not unlocked"
sleep 1.5
wait_prop "$NP" Locked true
[ "$(vprop "$NP" LockReason)" = '"idle"' ] || fail "LockReason $(vprop "$NP" LockReason)"
core_finish
pass "an unused vault locks after the idle timeout (LockReason idle)"
