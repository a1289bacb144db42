#!/bin/bash
# policy-kofn.sh — a 2-of-3 vault: one share leaves it locked (SharesNeeded), two open it; the policy's threshold applies.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
PD="$RIG_DIR/policy.d"
mkdir -p "$PD"
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD"

add_recovery() { fdcall "$1" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$2"; }

P=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' k2 threshold=2 ">$RIG_DIR/k1") ||
	fail "CreateVault threshold=2"
add_recovery "$P" "$RIG_DIR/k2" >/dev/null || fail "AddProtector p2"
add_recovery "$P" "$RIG_DIR/k3" >/dev/null || fail "AddProtector p3"
B=$(wrap "$P" "3 4 5 6" 0) || fail "Wrap"
[ "$(vprop "$P" SharesNeeded)" = 0 ] || fail "SharesNeeded while unlocked"
vcall "$P" Lock || fail "Lock"
[ "$(vprop "$P" SharesNeeded)" = 2 ] || fail "SharesNeeded locked: $(vprop "$P" SharesNeeded)"

# One share: success, but still locked.
unlock "$P" p1 "$RIG_DIR/k1" || fail "Unlock p1 (a share)"
[ "$(vprop "$P" Locked)" = true ] || fail "one share of 2 unlocked the vault"
[ "$(vprop "$P" SharesNeeded)" = 1 ] || fail "SharesNeeded after one: $(vprop "$P" SharesNeeded)"
expect_fail org.tokenseal1.Error.Locked unwrap "$P" "$B" 0
# The same protector twice is still one share; a wrong key is an error and adds nothing.
unlock "$P" p1 "$RIG_DIR/k1" || fail "Unlock p1 again"
[ "$(vprop "$P" Locked)" = true ] || fail "the same share twice unlocked the vault"
expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$P" p2 "$RIG_DIR/k3"
[ "$(vprop "$P" SharesNeeded)" = 1 ] || fail "SharesNeeded after a wrong key"
"$TOKENSEAL" status --vault k2 >"$RIG_DIR/st" || fail "tokenseal status"
grep -q "to unlock:    1 more protector(s)" "$RIG_DIR/st" || fail "status: $(cat "$RIG_DIR/st")"
pass "2-of-3: one share (even twice) leaves the vault locked with SharesNeeded 1"

unlock "$P" "" "$RIG_DIR/k3" || fail "Unlock with p3's key"
[ "$(vprop "$P" Locked)" = false ] || fail "two shares did not unlock"
[ "$(vprop "$P" SharesNeeded)" = 0 ] || fail "SharesNeeded after unlock"
[ "$(unwrap "$P" "$B" 0)" = "3 4 5 6" ] || fail "Unwrap after 2-of-3 unlock"
grep -q "event=unlock-share vault=k2 .*protector=p1" "$RIG_DIR/daemon.log" || fail "no unlock-share audit event"
pass "2-of-3: a second protector opens it"

# After a restart the file alone needs two again.
rig_stop_daemon
cat >"$PD/10-k.conf" <<'EOF'
[protectors]
min = 2
threshold = 2
EOF
chmod 0644 "$PD/10-k.conf"
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
unlock "$P" p2 "$RIG_DIR/k2" || fail "Unlock p2 after restart"
[ "$(vprop "$P" Locked)" = true ] || fail "one share after restart unlocked"
unlock "$P" p3 "$RIG_DIR/k3" || fail "Unlock p3 after restart"
[ "$(vprop "$P" Locked)" = false ] || fail "two shares after restart did not unlock"
pass "after a restart two of three again"

# The policy's threshold: a new vault gets it; asking for less is refused naming the rule.
expect_fail "PolicyViolation: [protectors] threshold ($PD/10-k.conf:3)" \
	fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' k1 threshold=1 ">$RIG_DIR/x"
[ ! -e "$STATE_DIR/0/k1.vault" ] || fail "vault written despite the refusal"
Q=$(create_vault kp "$RIG_DIR/q1") || fail "CreateVault under threshold policy"
add_recovery "$Q" "$RIG_DIR/q2" >/dev/null || fail "AddProtector q2"
vcall "$Q" Lock || fail "Lock kp"
[ "$(vprop "$Q" SharesNeeded)" = 2 ] || fail "policy threshold not applied: $(vprop "$Q" SharesNeeded)"
pass "[protectors] threshold: default for new vaults, lower refused"
core_finish
