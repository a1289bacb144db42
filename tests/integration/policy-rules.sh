#!/bin/bash
# policy-rules.sh — the daemon enforces the system policy: start refused on a broken one, each rule allowed and refused by name.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
PD="$RIG_DIR/policy.d"
mkdir -p "$PD" "$RIG_DIR/bad.d"
rig_start_bus

# A broken policy: the daemon refuses to start and says FILE:LINE.
printf '[protectors]\nmin = two\n' >"$RIG_DIR/bad.d/10-bad.conf"
chmod 0644 "$RIG_DIR/bad.d/10-bad.conf"
rc=0
timeout 20 "$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$RIG_DIR/state-bad" --policy-dir "$RIG_DIR/bad.d" \
	>"$RIG_DIR/bad.log" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "tokensealed started with a broken policy"
grep -q "refusing to start: policy: $RIG_DIR/bad.d/10-bad.conf:2: \[protectors\] min" "$RIG_DIR/bad.log" ||
	fail "no FILE:LINE error: $(cat "$RIG_DIR/bad.log")"
# Group-writable: refused too (never a policy anyone else could have written).
printf '[protectors]\nmin = 2\n' >"$RIG_DIR/bad.d/10-bad.conf"
chmod 0664 "$RIG_DIR/bad.d/10-bad.conf"
rc=0
timeout 20 "$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$RIG_DIR/state-bad" --policy-dir "$RIG_DIR/bad.d" \
	>"$RIG_DIR/bad.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "10-bad.conf" "$RIG_DIR/bad.log" || fail "group-writable policy accepted: $(cat "$RIG_DIR/bad.log")"
pass "a broken policy stops the daemon with FILE:LINE"

# A vault made before any policy, to be judged later.
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
OLD=$(create_vault legacy "$RIG_DIR/legacy1") || fail "CreateVault legacy"
[ "$(vprop "$OLD" PolicyStatus)" = 'true ""' ] || fail "PolicyStatus with no policy: $(vprop "$OLD" PolicyStatus)"
rig_stop_daemon

cat >"$PD/10-site.conf" <<'EOF'
# test policy
[protectors]
allowed = recovery, tpm2
min = 2

[unwrap mail]
vaults = mail-*
executables = /usr/bin/python3.11, /usr/bin/python3
EOF
cat >"$PD/20-root-only.conf" <<'EOF'
[unwrap db]
vaults = db
users = root
EOF
chmod 0644 "$PD"/*.conf
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
F10="$PD/10-site.conf"

# The old vault is now out of policy and says what to do.
st=$(vprop "$OLD" PolicyStatus)
grep -q "^false \"out of policy: \[protectors\] min ($F10:4): .*add or revoke protectors" <<<"$st" || fail "PolicyStatus: $st"
"$TOKENSEAL" status --vault legacy >"$RIG_DIR/st" || fail "tokenseal status"
grep -q "policy:       OUT OF POLICY: \[protectors\] min" "$RIG_DIR/st" || fail "status: $(cat "$RIG_DIR/st")"
pass "a vault made before a stricter policy reports PolicyStatus false with the rule and what to do"

# [protectors] allowed: fido2 is refused before any token is touched.
P=$(create_vault mail-alice "$RIG_DIR/m1") || fail "CreateVault mail-alice"
expect_fail "PolicyViolation: [protectors] allowed ($F10:3)" \
	fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' fido2 "" "</dev/null" ">$RIG_DIR/none"
grep -q "event=policy-denied vault=mail-alice .*protector=fido2 result=PolicyViolation" "$RIG_DIR/daemon.log" ||
	fail "no policy-denied audit event"
# recovery is allowed (the second protector, as min = 2 wants).
[ "$(fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$RIG_DIR/m2")" = p2 ] || fail "AddProtector recovery"
pass "[protectors] allowed: fido2 refused naming rule and file, recovery allowed"

# [protectors] min: revoking down to one protector is refused; the vault is compliant.
expect_fail "PolicyViolation: [protectors] min ($F10:4)" vcall "$P" RevokeProtector s p2
[ "$(vprop "$P" PolicyStatus)" = 'true ""' ] || fail "PolicyStatus of a compliant vault: $(vprop "$P" PolicyStatus)"
vprop "$P" Protectors | grep -q '"p2"' || fail "p2 gone after a refused revoke"
pass "[protectors] min: RevokeProtector refused below the minimum"

# [unwrap mail] executables: an executable counts only for a caller in a system service (security-exe.sh
# has that case); this rig's callers run in no service, so python, although listed, is refused too.
B=$(fdcall "$P" $VIFACE Wrap 'aya{ss}' 68656c6c6f "") || fail "Wrap"
expect_fail "PolicyViolation: [unwrap mail] ($F10:7)" fdcall "$P" $VIFACE Unwrap 'aya{ss}' "$B" ""
expect_fail "its executable does not count" fdcall "$P" $VIFACE Unwrap 'aya{ss}' "$B" ""
dec=$(python3 -c 'import sys; b=bytes.fromhex(sys.argv[1]); print(len(b), *b)' "$B")
expect_fail "PolicyViolation: [unwrap mail] ($F10:7)" vcall "$P" Unwrap 'aya{ss}' $dec 0
expect_fail "PolicyViolation: [unwrap mail]" vcall "$P" UnwrapBatch 'aaya{ss}' 1 $dec 0
expect_fail "PolicyViolation: [unwrap mail]" vcall "$P" Rewrap 'aya{ss}' $dec 0
expect_fail "PolicyViolation: [unwrap mail]" vcall "$P" RewrapBatch 'aaya{ss}' 1 $dec 0
pk=$(python3 -c 'import sys, struct; b=bytes.fromhex(sys.argv[1]); p=struct.pack("<I", len(b)) + b; print(len(p), *p)' "$B")
expect_fail "PolicyViolation: [unwrap mail]" vcall "$P" UnwrapBatchPacked 'aya{ss}' $pk 0
expect_fail "PolicyViolation: [unwrap mail]" vcall "$P" RewrapBatchPacked 'aya{ss}' $pk 0
pass "[unwrap mail] executables: outside a system service even the listed executable is refused (Unwrap, Rewrap and the batches)"

# [unwrap db] users: root may; a vault no rule matches is not restricted by the policy.
D=$(create_vault db "$RIG_DIR/d1") || fail "CreateVault db"
DB=$(wrap "$D" "2 7 7" 0) || fail "Wrap db"
[ "$(unwrap "$D" "$DB" 0)" = "2 7 7" ] || fail "root unwrap from db"
X=$(create_vault other "$RIG_DIR/x1") || fail "CreateVault other"
XB=$(wrap "$X" "1 5" 0) || fail "Wrap other"
[ "$(unwrap "$X" "$XB" 0)" = "1 5" ] || fail "busctl unwrap from an unruled vault"
pass "[unwrap db] users = root admits root; an unruled vault is unrestricted"

core_finish
