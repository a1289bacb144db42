#!/bin/bash
# policy-lock.sh — [lock] on-suspend, on-screen-lock, on-token-removal: a trigger the policy turns off leaves an
# unlocked vault unlocked (and the log names the rule and file), while the other triggers still lock; with the
# triggers set to yes every one locks. Suspend and screen lock come from the logind stand-in, token removal is
# the software authenticator being stopped or the SoftHSM2 token directory being moved away.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
[ -x "$SOFTFIDO" ] || fail "softfido not built"
softfido_start a
DEV=$SOFTFIDO_a_DEV
printf '1234\n' >"$D/pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$DEV" --vault-id 00112233445566778899aabbccddeeff \
	--pin-file "$D/pin" >/dev/null || fail "set the authenticator's PIN"
mkdir -p "$D/policy.d"
POL="$D/policy.d/10-lock.conf"

rig_start_bus
standin_start logind
logind_ctl AddSession su c1 65534

# phase LINE... — restart the daemon with a [lock] section of these lines (none: no policy file).
phase() {
	core_finish
	rm -f "$POL"
	if [ $# -gt 0 ]; then printf '%s\n' "[lock]" "$@" >"$POL"; chmod 644 "$POL"; fi
	: >"$D/daemon.log"
	rig_start_daemon --idle-lock 0 --policy-dir "$D/policy.d" --test-devices --fido2-device "$DEV"
}
# open_both — unlock the recovery vault and (with the key's PIN) the FIDO2 vault.
open_both() {
	unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
	unlock "$KP" fido2 "$D/pin" >/dev/null || fail "unlock key with the FIDO2 key"
	[ "$(vprop "$NP" Locked)" = false ] && [ "$(vprop "$KP" Locked)" = false ] || fail "not unlocked"
}
# wait_log TEXT — the daemon has handled the event (up to 5 s).
wait_log() {
	for _ in $(seq 100); do grep -qF -- "$1" "$D/daemon.log" && return 0; sleep 0.05; done
	tail -n 15 "$D/daemon.log" >&2
	fail "not in the daemon log: $1"
}
kept() { wait_log "autolock: $1: $2 vault(s) kept open by the policy: [lock] $3 = no ($POL:$4)"; }
unplug() { softfido_stop a; }
replug() { softfido_start a; }

rig_start_daemon --idle-lock 0 --policy-dir "$D/policy.d" --test-devices --fido2-device "$DEV"
NP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' nobody "owner=65534" ">$D/rk-nobody") ||
	fail "create nobody"
KP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' key "owner=65534" ">$D/rk-key") ||
	fail "create key"
fdcall "$KP" $VIFACE AddProtector 'sa{ss}hh' fido2 "pin=yes" "<$D/pin" ">/dev/null" >/dev/null || fail "enroll fido2"

# --- on-suspend = no
phase "on-screen-lock = yes" "on-suspend = no"
open_both
logind_ctl EmitSleep b true
kept suspend 2 on-suspend 3
[ "$(vprop "$NP" Locked)" = false ] && [ "$(vprop "$KP" Locked)" = false ] || fail "suspend locked with on-suspend = no"
grep -q "event=lock-suspend" "$D/daemon.log" && fail "a lock-suspend event with on-suspend = no"
logind_ctl EmitSleep b false
pass "on-suspend = no: PrepareForSleep leaves the vaults unlocked, the log names the rule and FILE:LINE"
unplug
wait_prop "$KP" Locked true
[ "$(vprop "$KP" LockReason)" = '"token-removed"' ] || fail "LockReason $(vprop "$KP" LockReason)"
[ "$(vprop "$NP" Locked)" = false ] || fail "token removal locked the recovery-unlocked vault"
logind_ctl EmitLock s c1
wait_prop "$NP" Locked true
[ "$(vprop "$NP" LockReason)" = '"screen-lock"' ] || fail "LockReason $(vprop "$NP" LockReason)"
replug
pass "on-suspend = no: token removal and screen lock still lock"

# --- on-screen-lock = no
phase "on-screen-lock = no"
open_both
logind_ctl EmitLock s c1
kept screen-lock 2 on-screen-lock 2
[ "$(vprop "$NP" Locked)" = false ] && [ "$(vprop "$KP" Locked)" = false ] ||
	fail "screen lock locked with on-screen-lock = no"
pass "on-screen-lock = no: Session.Lock leaves the vaults unlocked, the log names the rule and FILE:LINE"
unplug
wait_prop "$KP" Locked true
[ "$(vprop "$KP" LockReason)" = '"token-removed"' ] || fail "LockReason $(vprop "$KP" LockReason)"
logind_ctl EmitSleep b true
wait_prop "$NP" Locked true
[ "$(vprop "$NP" LockReason)" = '"suspend"' ] || fail "LockReason $(vprop "$NP" LockReason)"
logind_ctl EmitSleep b false
replug
pass "on-screen-lock = no: token removal and suspend still lock"

# --- on-token-removal = no
phase "on-token-removal = no"
open_both
unplug
kept token-removed 1 on-token-removal 2
sleep 1.2   # one more probe round: still open
[ "$(vprop "$KP" Locked)" = false ] || fail "token removal locked with on-token-removal = no"
pass "on-token-removal = no: unplugging the key leaves its vault unlocked, the log names the rule and FILE:LINE"
logind_ctl EmitLock s c1
wait_prop "$KP" Locked true
wait_prop "$NP" Locked true
[ "$(vprop "$KP" LockReason)" = '"screen-lock"' ] || fail "LockReason $(vprop "$KP" LockReason)"
unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
logind_ctl EmitSleep b true
wait_prop "$NP" Locked true
[ "$(vprop "$NP" LockReason)" = '"suspend"' ] || fail "LockReason $(vprop "$NP" LockReason)"
logind_ctl EmitSleep b false
replug
pass "on-token-removal = no: screen lock and suspend still lock"

# --- every trigger yes (the default, written out): each one locks.
phase "on-suspend = yes" "on-screen-lock = true" "on-token-removal = on"
open_both
unplug
wait_prop "$KP" Locked true
[ "$(vprop "$KP" LockReason)" = '"token-removed"' ] || fail "LockReason $(vprop "$KP" LockReason)"
[ "$(vprop "$NP" Locked)" = false ] || fail "token removal locked the recovery-unlocked vault"
logind_ctl EmitLock s c1
wait_prop "$NP" Locked true
[ "$(vprop "$NP" LockReason)" = '"screen-lock"' ] || fail "LockReason $(vprop "$NP" LockReason)"
unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
logind_ctl EmitSleep b true
wait_prop "$NP" Locked true
[ "$(vprop "$NP" LockReason)" = '"suspend"' ] || fail "LockReason $(vprop "$NP" LockReason)"
logind_ctl EmitSleep b false
grep -q "kept open by the policy" "$D/daemon.log" && fail "the policy kept a vault open with every trigger on"
replug
pass "on-suspend, on-screen-lock, on-token-removal = yes: each trigger locks"

# --- PKCS#11 token removal (probed by the daemon, per vault) with on-token-removal = no.
. "$TS_SRC/tests/lib/softhsm.sh"
softhsm_setup "$D/hsm"          # exports SOFTHSM2_CONF: the next daemon inherits it
printf '%s\n' "$SOFTHSM_PIN" >"$D/hsmpin"
phase "on-token-removal = no"
H() { "$TOKENSEAL" --vault hsm "$@"; }
H create >"$D/rk-hsm" 2>/dev/null || fail "create hsm"
H enroll pkcs11 --uri "pkcs11:token=ts-test;id=%01" --pin-fd 3 3<"$D/hsmpin" >"$D/out" 2>&1 ||
	fail "enroll pkcs11: $(cat "$D/out")"
HP=$(sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$D/out")
[ -n "$HP" ] || fail "no protector id in: $(cat "$D/out")"
H lock >/dev/null || fail "lock hsm"
H unlock --protector "$HP" --pin-fd 3 3<"$D/hsmpin" >/dev/null 2>&1 || fail "unlock with the PKCS#11 token"
HV=$(vault_path hsm) || fail "GetVault hsm"
mkdir "$D/pulled"
mv "$D/hsm/tokens/"* "$D/pulled/" || fail "remove the token"
wait_log "autolock: token-removed: vault=hsm kept open by the policy: [lock] on-token-removal = no ($POL:2)"
sleep 2.5   # another probe round: still open, and not said again
[ "$(vprop "$HV" Locked)" = false ] || fail "PKCS#11 token removal locked with on-token-removal = no"
[ "$(grep -c "vault=hsm kept open by the policy" "$D/daemon.log")" = 1 ] || fail "the kept-open line repeats"
pass "on-token-removal = no: removing the PKCS#11 token leaves its vault unlocked, said once with rule and FILE:LINE"

# --- no policy file at all: the defaults lock too (suspend shown; the others are pam-autolock.sh).
phase
unlock "$NP" recovery "$D/rk-nobody" >/dev/null || fail "unlock nobody"
logind_ctl EmitSleep b true
wait_prop "$NP" Locked true
logind_ctl EmitSleep b false
core_finish
pass "without a policy, suspend locks (default on-suspend = yes)"
