#!/bin/bash
# core-restart.sh — vaults survive restarts (locked, "startup"), blobs still unwrap, bad files are skipped untouched.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
rig_start_bus
rig_start_daemon --idle-lock 0

PA=$(create_vault a "$RIG_DIR/rka") || fail "create a"
PB=$(create_vault b.v-2 "$RIG_DIR/rkb") || fail "create b.v-2"
[ "$PB" = "/org/tokenseal1/user/0/vault/b_2ev_2d2" ] || fail "path not sd_bus_path_encode'd: $PB"
BA1=$(wrap "$PA" "2 1 1" 1 x y) || fail "wrap a"
vcall "$PA" RotateKey 'a{ss}' 0 >/dev/null || fail "rotate a"
BA2=$(wrap "$PA" "2 2 2" 0) || fail "wrap a v2"
BB=$(wrap "$PB" "1 3" 0) || fail "wrap b"
id=$(fdcall "$PB" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$RIG_DIR/rkb2") || fail "add p2 to b"

# A second daemon cannot take the name, and says why.
if "$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$RIG_DIR/state2" >"$RIG_DIR/second.log" 2>&1; then
	fail "a second daemon started on a taken name"
fi
grep -q "cannot own the bus name org.tokenseal1" "$RIG_DIR/second.log" || fail "second daemon: $(cat "$RIG_DIR/second.log")"
pass "a second daemon exits non-zero when the name is taken"

# SIGTERM: locks, exits 0.
kill -TERM "$DAEMON_PID"
rc=0; wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
[ $rc -eq 0 ] || fail "SIGTERM exit status $rc"
pass "SIGTERM exits 0"

# A corrupt file and a file of unknown format sit next to the good ones.
head -c 300 /dev/urandom >"$STATE_DIR/junk.vault"
printf '\xa1\x66format\x18\x63' >"$STATE_DIR/future.vault"
sum_before=$(sha256sum "$STATE_DIR/junk.vault" "$STATE_DIR/future.vault")
rig_start_daemon --idle-lock 0
out=$(bq call "${MGR_ARGS[@]}" ListVaults) || fail "ListVaults"
[ "$out" = 'a(so) 2 "a" "/org/tokenseal1/user/0/vault/a" "b.v-2" "/org/tokenseal1/user/0/vault/b_2ev_2d2"' ] || fail "vaults after restart: $out"
for p in "$PA" "$PB"; do
	[ "$(vprop "$p" Locked)" = true ] || fail "$p not locked after restart"
	[ "$(vprop "$p" LockReason)" = '"startup"' ] || fail "$p LockReason $(vprop "$p" LockReason)"
done
[ "$(vprop "$PA" KeyVersion)" = 2 ] || fail "KeyVersion lost"
[ "$(vprop "$PB" Protectors | cut -d' ' -f1)" = 2 ] || fail "protector lost"
grep -q "event=load vault=junk result=VaultCorrupt" "$RIG_DIR/daemon.log" || fail "junk not reported: $(cat "$RIG_DIR/daemon.log")"
grep -q "event=load vault=future result=" "$RIG_DIR/daemon.log" || fail "future not reported"
[ "$(sha256sum "$STATE_DIR/junk.vault" "$STATE_DIR/future.vault")" = "$sum_before" ] || fail "bad files were modified"
expect_fail org.tokenseal1.Error.VaultExists create_vault junk "$RIG_DIR/x"
[ "$(sha256sum "$STATE_DIR/junk.vault" "$STATE_DIR/future.vault")" = "$sum_before" ] || fail "bad file overwritten by CreateVault"
pass "restart: every vault back, locked with reason startup; bad files skipped and left alone"

unlock "$PA" recovery "$RIG_DIR/rka" || fail "unlock a after restart"
[ "$(unwrap "$PA" "$BA1" 1 x y)" = "2 1 1" ] || fail "v1 blob after restart"
[ "$(unwrap "$PA" "$BA2" 0)" = "2 2 2" ] || fail "v2 blob after restart"
unlock "$PB" p2 "$RIG_DIR/rkb2" || fail "unlock b with its second key"
[ "$(unwrap "$PB" "$BB" 0)" = "1 3" ] || fail "b blob after restart"
pass "old blobs unwrap after restart"

# The state on disk is the state acknowledged: a rotation after restart persists too.
vcall "$PA" RotateKey 'a{ss}' 1 retire_below 2 >/dev/null || fail "rotate a again"
rig_stop_daemon TERM
rig_start_daemon --idle-lock 0
unlock "$PA" "" "$RIG_DIR/rka" || fail "unlock a"
[ "$(vprop "$PA" KeyVersion)" = 3 ] && [ "$(vprop "$PA" MinKeyVersion)" = 2 ] || fail "versions not persisted"
expect_fail org.tokenseal1.Error.KeyRetired unwrap "$PA" "$BA1" 1 x y
[ "$(unwrap "$PA" "$BA2" 0)" = "2 2 2" ] || fail "v2 blob"
pass "rotation and retirement persist"

core_finish
