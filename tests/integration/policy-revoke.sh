#!/bin/bash
# policy-revoke.sh — true revocation: RevokeAndRekey re-keys, and the old vault file plus the revoked key opens nothing new.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
REVOKED_TOOL="$TS_BUILD/tests/tools/core_revoked"
[ -x "$REVOKED_TOOL" ] || fail "build $REVOKED_TOOL first"
mkdir -p "$RIG_DIR/policy.d"
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$RIG_DIR/policy.d"

add_recovery() { fdcall "$1" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$2"; }

P=$(create_vault rv "$RIG_DIR/rk1") || fail "CreateVault"
[ "$(add_recovery "$P" "$RIG_DIR/rk2")" = p2 ] || fail "AddProtector p2"
[ "$(add_recovery "$P" "$RIG_DIR/rk3")" = p3 ] || fail "AddProtector p3"
B1=$(wrap "$P" "3 1 2 3" 0) || fail "Wrap"
cp "$STATE_DIR/0/rv.vault" "$RIG_DIR/old.vault"
[ "$(vprop "$P" KeyVersion)" = 1 ] || fail "KeyVersion before"

# Negative control first: the tool must see through removal-only revocation.
W=$(create_vault rw "$RIG_DIR/w1") || fail "CreateVault rw"
add_recovery "$W" "$RIG_DIR/w2" >/dev/null || fail "AddProtector rw p2"
cp "$STATE_DIR/0/rw.vault" "$RIG_DIR/w-old.vault"
vcall "$W" RevokeProtector s p2 >/dev/null || fail "RevokeProtector"
rc=0; "$REVOKED_TOOL" "$RIG_DIR/w-old.vault" "$STATE_DIR/0/rw.vault" p2 "$RIG_DIR/w2" >"$RIG_DIR/w.out" || rc=$?
[ $rc -eq 1 ] && grep -q "FAIL: the old vault secret opens the new keyring" "$RIG_DIR/w.out" ||
	fail "removal-only revocation should be caught by core_revoked (rc $rc): $(cat "$RIG_DIR/w.out")"
pass "control: after RevokeProtector (removal only) the old file + removed key still opens the vault"

# A wrong secret for a protector to keep is caught before anything changes.
printf 'p1 %s\np3 %s\n' "$(cat "$RIG_DIR/rk1")" "$(cat "$RIG_DIR/rk1")" >"$RIG_DIR/sec-bad"
out=$(fdcall "$P" $VIFACE RevokeAndRekey sh p2 "<$RIG_DIR/sec-bad") || fail "RevokeAndRekey (p3 wrong)"
[ "$(head -n1 <<<"$out")" = p1 ] || fail "kept: $out"
grep -q "protector p3 dropped by the re-key" "$RIG_DIR/daemon.log" || fail "p3 with a wrong key not dropped: $out"
vprop "$P" Protectors | grep -q '"p3"' && fail "p3 still listed"
vprop "$P" Protectors | grep -q '"p2"' && fail "p2 still listed"
pass "RevokeAndRekey drops a protector whose secret is wrong, with a warning"

# The main proof on a fresh vault: revoke p2, keep p1 and p3 with their keys.
Q=$(create_vault rq "$RIG_DIR/q1") || fail "CreateVault rq"
add_recovery "$Q" "$RIG_DIR/q2" >/dev/null || fail "AddProtector q2"
add_recovery "$Q" "$RIG_DIR/q3" >/dev/null || fail "AddProtector q3"
QB=$(wrap "$Q" "4 9 8 7 6" 1 app x) || fail "Wrap rq"
cp "$STATE_DIR/0/rq.vault" "$RIG_DIR/q-old.vault"
# Refused: nothing could be kept.
expect_fail org.tokenseal1.Error.LastProtector fdcall "$Q" $VIFACE RevokeAndRekey sh p2 "</dev/null"
cmp -s "$STATE_DIR/0/rq.vault" "$RIG_DIR/q-old.vault" || fail "refused re-key changed the file"
printf 'p1 %s\np3 %s\n' "$(cat "$RIG_DIR/q1")" "$(cat "$RIG_DIR/q3")" >"$RIG_DIR/sec"
out=$(fdcall "$Q" $VIFACE RevokeAndRekey sh p2 "<$RIG_DIR/sec") || fail "RevokeAndRekey"
[ "$(head -n2 <<<"$out")" = $'p1\np3' ] || fail "kept: $out"
[ "$(vprop "$Q" KeyVersion)" = 2 ] || fail "root key not rotated: $(vprop "$Q" KeyVersion)"
grep -q "event=rekey vault=rq" "$RIG_DIR/daemon.log" || fail "no rekey audit event"
pass "RevokeAndRekey p2 keeps p1 and p3, rotates the root key"

"$REVOKED_TOOL" "$RIG_DIR/q-old.vault" "$STATE_DIR/0/rq.vault" p2 "$RIG_DIR/q2" >"$RIG_DIR/q.out" ||
	fail "revocation broken: $(cat "$RIG_DIR/q.out")"
grep -c '^ok:' "$RIG_DIR/q.out" | grep -qx 4 || fail "core_revoked: $(cat "$RIG_DIR/q.out")"
pass "old vault file + revoked key: opens the old file only, never the new keyring or header"

# Old blobs still unwrap (old root key kept until retired); the kept keys open the new vault, the revoked one nothing.
[ "$(unwrap "$Q" "$QB" 1 app x)" = "4 9 8 7 6" ] || fail "old blob after re-key"
vcall "$Q" Lock || fail "Lock"
expect_fail org.tokenseal1.Error.NoSuchProtector unlock "$Q" p2 "$RIG_DIR/q2"
expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$Q" "" "$RIG_DIR/q2"
unlock "$Q" p3 "$RIG_DIR/q3" || fail "p3 after re-key"
vcall "$Q" Lock || fail "Lock"
unlock "$Q" p1 "$RIG_DIR/q1" || fail "p1 after re-key"
[ "$(unwrap "$Q" "$QB" 1 app x)" = "4 9 8 7 6" ] || fail "old blob after re-key and unlock"
pass "kept protectors open the re-keyed vault; the revoked key does not; old blobs still unwrap"

# The CLI: tokenseal rekey ID --keep ID=FILE.
C=$(create_vault rc "$RIG_DIR/c1") || fail "CreateVault rc"
add_recovery "$C" "$RIG_DIR/c2" >/dev/null || fail "AddProtector c2"
add_recovery "$C" "$RIG_DIR/c3" >/dev/null || fail "AddProtector c3"
cp "$STATE_DIR/0/rc.vault" "$RIG_DIR/c-old.vault"
"$TOKENSEAL" --vault rc rekey p3 --keep "p1=$RIG_DIR/c1" >"$RIG_DIR/c.out" || fail "tokenseal rekey: $(cat "$RIG_DIR/c.out")"
grep -q "kept:    p1" "$RIG_DIR/c.out" && grep -q "dropped: p2" "$RIG_DIR/c.out" || fail "rekey output: $(cat "$RIG_DIR/c.out")"
"$REVOKED_TOOL" "$RIG_DIR/c-old.vault" "$STATE_DIR/0/rc.vault" p3 "$RIG_DIR/c3" >/dev/null || fail "CLI rekey did not revoke p3"
"$REVOKED_TOOL" "$RIG_DIR/c-old.vault" "$STATE_DIR/0/rc.vault" p2 "$RIG_DIR/c2" >/dev/null || fail "dropped p2 still opens"
pass "tokenseal rekey: keeps p1 (secret given), drops p2 (not given), p3 and p2 open nothing new"

# After a restart, the same (the file is what counts).
rig_stop_daemon
rig_start_daemon --idle-lock 0 --policy-dir "$RIG_DIR/policy.d"
expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$Q" "" "$RIG_DIR/q2"
unlock "$Q" "" "$RIG_DIR/q1" || fail "p1 after restart"
pass "after a restart the revoked key still opens nothing"
core_finish
