#!/bin/bash
# pam-autolock-pkcs11.sh — PKCS#11 token removal locks the vaults it unlocked (LockReason token-removed), and
# status tells whether each protector's token is there now, without a PIN.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
T=$TOKENSEAL
D=$RIG_DIR
ts() { "$T" --vault demo "$@"; }
# The line of protector $1 in `status`.
pline() { ts status | grep "^ *$1 "; }
state() { ts status | sed -n 's/^ *state: *//p'; }

softhsm_setup "$D/hsm"          # exports SOFTHSM2_CONF: the daemon inherits it
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin"
rig_start_bus
rig_start_daemon --idle-lock 0

ts create >"$D/rk" 2>/dev/null || fail "create"
ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%01" --pin-fd 3 3<"$D/pin" >"$D/out" 2>&1 || fail "enroll: $(cat "$D/out")"
P=$(sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$D/out")
[ -n "$P" ] || fail "no protector id in: $(cat "$D/out")"

# --- status: the token is there; the recovery key needs its secret; no PIN was tried for that.
case $(pline "$P") in *"[key present]"*) ;; *) fail "pkcs11 protector not shown present: $(pline "$P")" ;; esac
case $(pline p1) in *"[needs the secret]"*) ;; *) fail "recovery protector: $(pline p1)" ;; esac
ts status --json | grep -q "\"id\":\"$P\",\"type\":\"pkcs11\",[^}]*\"presence\":\"present\"" ||
	fail "JSON presence: $(ts status --json)"
pass "status shows the PKCS#11 token present and the recovery key as needing its secret"

# --- unlock with the token; remove it: within a few seconds the vault locks, reason token-removed.
ts lock >/dev/null || fail "lock"
ts unlock --protector "$P" --pin-fd 3 3<"$D/pin" >/dev/null 2>&1 || fail "unlock with the token"
case $(state) in unlocked*) ;; *) fail "not unlocked: $(state)" ;; esac
sleep 2.5
case $(state) in unlocked*) ;; *) fail "locked while the token is still there: $(state)" ;; esac
mkdir "$D/pulled"
mv "$D/hsm/tokens/"* "$D/pulled/" || fail "remove the token"
for _ in $(seq 1 30); do
	case $(state) in locked*) break ;; esac
	sleep 0.2
done
case $(state) in "locked (token-removed) since "*UTC) ;; *) fail "after removal: $(state)" ;; esac
grep -q "PKCS#11 token of protector $P went away" "$D/daemon.log" || fail "removal not logged"
case $(pline "$P") in *"[key absent]"*) ;; *) fail "removed token not shown absent: $(pline "$P")" ;; esac
pass "removing the SoftHSM2 token locks the vault (token-removed); status shows it absent"

# --- put it back: present again, and a vault unlocked by the recovery key is not watched.
mv "$D/pulled/"* "$D/hsm/tokens/" || fail "reinsert the token"
case $(pline "$P") in *"[key present]"*) ;; *) fail "reinserted token: $(pline "$P")" ;; esac
ts unlock --protector p1 --pin-fd 3 3<"$D/rk" >/dev/null 2>&1 || fail "unlock with the recovery key"
mv "$D/hsm/tokens/"* "$D/pulled/"
sleep 3
case $(state) in unlocked*) ;; *) fail "a vault unlocked by the recovery key was locked by token removal: $(state)" ;; esac
pass "reinserted token shows present; token removal spares a vault unlocked otherwise"
