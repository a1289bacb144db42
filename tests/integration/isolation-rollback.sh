#!/bin/bash
# isolation-rollback.sh — no silent rollback: an old vault file put back (a backup, the .bak) after a revocation, a
# retire or a recovery-key rotation is refused at start (Rollback), until root accepts it (--accept-rollback, audited);
# no .bak of the revoked generation is left; a crash between the vault write and its anchor locks nobody out.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
REVOKED_TOOL="$TS_BUILD/tests/tools/core_revoked"
[ -x "$REVOKED_TOOL" ] || fail "build $REVOKED_TOOL first"
AL="$RIG_DIR/audit.jsonl"
rig_start_bus
start() { rig_start_daemon --idle-lock 0 --audit-log "$AL" "$@"; }
start
S="$STATE_DIR/0"

add_recovery() { fdcall "$1" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$2"; }
# put_back NAME FILE — the administrator's careless restore: FILE becomes NAME.vault and NAME.vault.bak.
put_back() { cp "$2" "$S/$1.vault"; cp "$2" "$S/$1.vault.bak"; }
# refused NAME — the vault is not served: its owner's GetVault answers Rollback, the log says why.
refused() {
	grep -q "event=load vault=$1 result=Rollback" "$RIG_DIR/daemon.log" || fail "$1: no Rollback in the log: $(grep "vault=$1" "$RIG_DIR/daemon.log" | tail -n 3)"
	expect_fail org.tokenseal1.Error.Rollback vault_path "$1"
}

# 1. Revocation: RevokeAndRekey p2 (keep p1), then the file from before it is put back.
P=$(create_vault rv "$RIG_DIR/rv1") || fail "CreateVault rv"
add_recovery "$P" "$RIG_DIR/rv2" >/dev/null || fail "AddProtector rv p2"
B1=$(wrap "$P" "3 1 2 3" 0) || fail "Wrap"
cp "$S/rv.vault" "$RIG_DIR/rv-old.vault"
printf 'p1 %s\n' "$(cat "$RIG_DIR/rv1")" >"$RIG_DIR/rv-keep"
fdcall "$P" $VIFACE RevokeAndRekey sh p2 "<$RIG_DIR/rv-keep" >/dev/null || fail "RevokeAndRekey"
[ ! -e "$S/rv.vault.bak" ] || fail "the generation the revoked p2 opens is still on disk as rv.vault.bak"
pass "RevokeAndRekey leaves no .bak of the generation the revoked key opens"

# The same for RevokeProtector (removal only) and for a retire (RotateKey retire_below).
Q=$(create_vault rq "$RIG_DIR/rq1") || fail "CreateVault rq"
add_recovery "$Q" "$RIG_DIR/rq2" >/dev/null || fail "AddProtector rq p2"
vcall "$Q" RevokeProtector s p2 >/dev/null || fail "RevokeProtector"
[ ! -e "$S/rq.vault.bak" ] || fail "RevokeProtector left rq.vault.bak"
T=$(create_vault rt "$RIG_DIR/rt1") || fail "CreateVault rt"
BT=$(wrap "$T" "2 7 7" 0) || fail "Wrap rt"
vcall "$T" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey"
cp "$S/rt.vault" "$RIG_DIR/rt-old.vault"
vcall "$T" RotateKey 'a{ss}' 1 retire_below 2 >/dev/null || fail "RotateKey retire_below"
expect_fail org.tokenseal1.Error.KeyRetired unwrap "$T" "$BT" 0
[ ! -e "$S/rt.vault.bak" ] || fail "a retire left rt.vault.bak (it still holds the retired key)"
# AddProtector replace=ID takes the old one out (a new recovery key handed out, then p2 removed).
X=$(create_vault rx "$RIG_DIR/rx1") || fail "CreateVault rx"
add_recovery "$X" "$RIG_DIR/rx2" >/dev/null || fail "AddProtector rx p2"
[ "$(fdcall "$X" $VIFACE AddProtector 'sa{ss}hh' recovery "replace=p2" "</dev/null" ">$RIG_DIR/rx3")" = p3 ] ||
	fail "AddProtector replace=p2"
[ ! -e "$S/rx.vault.bak" ] || fail "AddProtector replace=p2 left rx.vault.bak (the replaced p2 opens it)"
pass "RevokeProtector, a retire and AddProtector replace= leave no .bak either"

rig_stop_daemon
cp "$S/rv.vault" "$RIG_DIR/rv-new.vault"
put_back rv "$RIG_DIR/rv-old.vault"
put_back rt "$RIG_DIR/rt-old.vault"
start
refused rv
refused rt
expect_fail org.freedesktop.DBus.Error.UnknownObject unlock /org/tokenseal1/user/0/vault/rv p2 "$RIG_DIR/rv2"
expect_fail "org.tokenseal1.Error.VaultExists" create_vault rv "$RIG_DIR/rv-x"
cmp -s "$S/rv.vault" "$RIG_DIR/rv-old.vault" || fail "the refused file was changed"
grep -q "event=rollback vault=rv owner=0 .*result=Rollback" "$RIG_DIR/daemon.log" || fail "no rollback audit event"
pass "old files put back after a revocation and a retire are refused (Rollback), not served, not touched"

# 2. The administrator's way out: --accept-rollback OWNER:NAME:GENERATION, audited with both generations.
gen=$(sed -n 's/.*--accept-rollback 0:rv:\([0-9]*\).*/\1/p' "$RIG_DIR/daemon.log" | tail -n1)
[ -n "$gen" ] || fail "the refusal does not say how to accept: $(grep 'vault=rv' "$RIG_DIR/daemon.log" | tail -n 2)"
rig_stop_daemon
start --accept-rollback "0:rv:$((gen + 1))"
refused rv
rig_stop_daemon
start --accept-rollback "0:rv:$gen"
P=$(vault_path rv) || fail "rv not served after --accept-rollback"
unlock "$P" p2 "$RIG_DIR/rv2" >/dev/null || fail "the accepted old file does not open with its p2"
[ "$(unwrap "$P" "$B1" 0)" = "3 1 2 3" ] || fail "blob in the accepted file"
grep -q "\"event\":\"rollback-accept\",\"vault\":\"rv\",\"owner\":0,.*\"result\":\"ok\",\"file_generation\":$gen,\"anchor_generation\":[0-9]*" "$AL" ||
	fail "no rollback-accept audit record: $(grep rv "$AL" | tail -n 3)"
refused rt
pass "--accept-rollback serves exactly the generation named, with a rollback-accept audit record"
rig_stop_daemon
# Putting the newest file back is no rollback.
put_back rv "$RIG_DIR/rv-new.vault"
rm -f "$S/rv.vault.bak"
start
P=$(vault_path rv) || fail "rv (newest file) not served"
expect_fail org.tokenseal1.Error.NoSuchProtector unlock "$P" p2 "$RIG_DIR/rv2"
expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$P" "" "$RIG_DIR/rv2"
unlock "$P" p1 "$RIG_DIR/rv1" >/dev/null || fail "rv p1"
pass "the newest file is served again; the revoked key opens nothing"

# 3. RotateRecoveryKey rotates the vault secret: the old key plus the old file opens nothing written after it.
R=$(create_vault rr "$RIG_DIR/rr1") || fail "CreateVault rr"
add_recovery "$R" "$RIG_DIR/rr2" >/dev/null || fail "AddProtector rr p2"
BR=$(wrap "$R" "2 5 5" 0) || fail "Wrap rr"
cp "$S/rr.vault" "$RIG_DIR/rr-old.vault"
vcall "$R" Lock || fail "Lock"
unlock "$R" p1 "$RIG_DIR/rr1" >/dev/null || fail "unlock rr p1"
printf 'p2 %s\n' "$(cat "$RIG_DIR/rr2")" >"$RIG_DIR/rr-keep"
out=$(fdcall "$R" $VIFACE RotateRecoveryKey shh "" "<$RIG_DIR/rr-keep" ">$RIG_DIR/rr3") || fail "RotateRecoveryKey"
[ "$(head -n1 <<<"$out")" = p3 ] || fail "RotateRecoveryKey: $out"
[ ! -e "$S/rr.vault.bak" ] || fail "RotateRecoveryKey left rr.vault.bak (the used key opens it)"
BR2=$(wrap "$R" "2 6 6" 0) || fail "Wrap rr after the rotation"
"$REVOKED_TOOL" "$RIG_DIR/rr-old.vault" "$S/rr.vault" p1 "$RIG_DIR/rr1" >"$RIG_DIR/rr.out" ||
	fail "old file + used recovery key still opens the rotated vault: $(cat "$RIG_DIR/rr.out")"
[ "$(unwrap "$R" "$BR" 0)" = "2 5 5" ] && [ "$(unwrap "$R" "$BR2" 0)" = "2 6 6" ] || fail "blobs after rotation"
vcall "$R" Lock || fail "Lock"
unlock "$R" p2 "$RIG_DIR/rr2" >/dev/null || fail "kept p2 after the rotation"
vcall "$R" Lock || fail "Lock"
unlock "$R" p3 "$RIG_DIR/rr3" >/dev/null || fail "new p3"
pass "RotateRecoveryKey re-keys: old file + used key opens neither the new keyring nor the new root key"
rig_stop_daemon
put_back rr "$RIG_DIR/rr-old.vault"
start
refused rr
pass "the file from before the recovery rotation, put back, is refused"

# 4. A crash between the vault write and the anchor write: the file is newer than its anchor, and it loads.
A=$(grep -lx 'name rr' "$STATE_DIR"/generations/* 2>/dev/null | head -n1) || true
[ -n "$A" ] || fail "no anchor file for rr in $STATE_DIR/generations"
rig_stop_daemon
start --accept-rollback "0:rr:$(sed -n 's/.*--accept-rollback 0:rr:\([0-9]*\).*/\1/p' "$RIG_DIR/daemon.log" | tail -n1)"
R=$(vault_path rr) || fail "rr not served after --accept-rollback"
cp "$A" "$RIG_DIR/rr-anchor-before"
unlock "$R" p1 "$RIG_DIR/rr1" >/dev/null || fail "unlock rr (accepted old file)"
vcall "$R" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey rr"
rig_stop_daemon
cp "$RIG_DIR/rr-anchor-before" "$A"
start
R=$(vault_path rr) || fail "a file one generation ahead of its anchor (crash before the anchor write) is refused"
unlock "$R" p1 "$RIG_DIR/rr1" >/dev/null || fail "unlock rr after the simulated crash"
cmp -s "$A" "$RIG_DIR/rr-anchor-before" && fail "the anchor did not catch up with the file at load"
pass "a vault file ahead of its anchor (crash between the two writes) loads, and the anchor catches up"

# SIGKILL at random moments of saves, as hardening-crash does: every restart serves the vault.
if [ "$TS_SAN" = 1 ]; then N=4; else N=10; fi
kill_during_saves "$N" 200 start rr p1 "$RIG_DIR/rr1"
pass "$N SIGKILLs during saves: the vault is never refused as a rollback"
core_finish
