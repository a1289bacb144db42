#!/bin/bash
# policy-recovery.sh — a used recovery key is rotated: the new key is shown once, the used one retired only after that.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
mkdir -p "$RIG_DIR/policy.d"
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$RIG_DIR/policy.d"

P=$(create_vault rot "$RIG_DIR/rk1") || fail "CreateVault"
fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$RIG_DIR/rk2" >/dev/null || fail "AddProtector"
B=$(wrap "$P" "2 9 9" 0) || fail "Wrap"
vcall "$P" Lock || fail "Lock"

# The key cannot be delivered: nothing changes, the used key keeps working.
unlock "$P" p1 "$RIG_DIR/rk1" || fail "Unlock p1"
printf 'p2 %s\n' "$(cat "$RIG_DIR/rk2")" >"$RIG_DIR/keep2"
expect_fail org.tokenseal1.Error fdcall "$P" $VIFACE RotateRecoveryKey shh "" "<$RIG_DIR/keep2" closed
vprop "$P" Protectors | grep -q '"p1"' || fail "p1 retired although the new key never reached the caller"
vcall "$P" Lock || fail "Lock"
unlock "$P" p1 "$RIG_DIR/rk1" || fail "p1 after a failed rotation"
pass "RotateRecoveryKey with an unwritable fd changes nothing"

# The CLI: unlock with the recovery key and rotate it.
vcall "$P" Lock || fail "Lock"
"$TOKENSEAL" --vault rot unlock --protector p1 --rotate-recovery-key --keep "p2=$RIG_DIR/rk2" --pin-fd 3 3<"$RIG_DIR/rk1" >"$RIG_DIR/out" ||
	fail "tokenseal unlock --rotate-recovery-key: $(cat "$RIG_DIR/out")"
grep -q "recovery key you used has been replaced and the vault re-keyed" "$RIG_DIR/out" || fail "output: $(cat "$RIG_DIR/out")"
grep -q "kept:    p2" "$RIG_DIR/out" || fail "p2 (--keep) not kept: $(cat "$RIG_DIR/out")"
grep -Eo '[0-9A-Z]{5}(-[0-9A-Z]{5}){7}' "$RIG_DIR/out" >"$RIG_DIR/rk3"
[ "$(wc -l <"$RIG_DIR/rk3")" = 1 ] || fail "expected exactly one new key: $(cat "$RIG_DIR/out")"
cmp -s "$RIG_DIR/rk1" "$RIG_DIR/rk3" && fail "the new key is the old one"
vprop "$P" Protectors | grep -q '"p1"' && fail "used key p1 still enrolled"
# p3 went to the key that could not be delivered (saved, then taken out again: ids are never reused).
vprop "$P" Protectors | grep -q '"p4" "recovery"' || fail "no new recovery protector: $(vprop "$P" Protectors)"
grep -q "event=rotate-recovery vault=rot owner=[0-9-]* uid=0 .*protector=p1 result=ok" "$RIG_DIR/daemon.log" || fail "no audit event"
vcall "$P" Lock || fail "Lock"
expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$P" "" "$RIG_DIR/rk1"
unlock "$P" "" "$RIG_DIR/rk3" || fail "unlock with the new key"
[ "$(unwrap "$P" "$B" 0)" = "2 9 9" ] || fail "data after rotation"
pass "unlock --rotate-recovery-key prints a new key once; the used one no longer opens the vault"

# Unlocked with something that is not a recovery key's protector? p2 is one too: rotating "" names p4 now, then p2.
vcall "$P" Lock || fail "Lock"
unlock "$P" p2 "$RIG_DIR/rk2" || fail "unlock p2"
printf 'p4 %s\n' "$(cat "$RIG_DIR/rk3")" >"$RIG_DIR/keep3"
out=$(fdcall "$P" $VIFACE RotateRecoveryKey shh "" "<$RIG_DIR/keep3" ">$RIG_DIR/rk4") || fail "RotateRecoveryKey of the last used (p2)"
[ "$(head -n1 <<<"$out")" = p5 ] || fail "RotateRecoveryKey of the last used (p2): $out"
vprop "$P" Protectors | grep -q '"p2"' && fail "p2 not retired"
vprop "$P" Protectors | grep -q '"p4"' || fail "p4 retired by mistake"
pass "RotateRecoveryKey \"\" retires the protector that last unlocked the vault"

# Attempts and back-off come from the policy: [recovery] attempts = 2 -> the 4th try in a row waits.
rig_stop_daemon
printf '[recovery]\nattempts = 2\nmax-backoff = 60s\n' >"$RIG_DIR/policy.d/50-recovery.conf"
chmod 0644 "$RIG_DIR/policy.d/50-recovery.conf"
rig_start_daemon --idle-lock 0 --policy-dir "$RIG_DIR/policy.d"
create_vault stranger "$RIG_DIR/rk-x" >/dev/null || fail "CreateVault stranger"
for i in 1 2 3; do expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$P" "" "$RIG_DIR/rk-x"; done
expect_fail "org.tokenseal1.Error.Busy: too many failed unlocks" unlock "$P" "" "$RIG_DIR/rk3"
[ "$(vprop "$P" Locked)" = true ] || fail "unlocked during the back-off"
sleep 1.2
unlock "$P" "" "$RIG_DIR/rk3" || fail "unlock after the back-off"
pass "[recovery] attempts = 2: the third wrong key starts the back-off"
core_finish
