#!/bin/bash
# core-access.sh — another local user can neither see nor use root's vault; root can give a vault to a user.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
rig_start_bus
rig_start_daemon --idle-lock 0

P=$(create_vault rootvault "$RIG_DIR/rk") || fail "CreateVault"
B=$(wrap "$P" "3 1 2 3" 0) || fail "Wrap"
chmod 644 "$RIG_DIR/rk"   # even holding the key, the other user is refused: access is by uid

# Every method on root's vault: UnknownObject (no different from no vault), and the vault stays as it was.
for call in "Lock" "Wrap aya{ss} 1 1 0" "Unwrap aya{ss} $B 0" "Rewrap aya{ss} $B 0" \
	"GenerateDataKey ua{ss} 16 0" "UnwrapBatch aaya{ss} 1 $B 0" "RewrapBatch aaya{ss} 1 $B 0" \
	"UnwrapBatchPacked aya{ss} 4 0 0 0 0 0" "RewrapBatchPacked aya{ss} 4 0 0 0 0 0" \
	"RotateKey a{ss} 0" "RevokeProtector s p1"; do
	expect_fail org.freedesktop.DBus.Error.UnknownObject bq_other call org.tokenseal1 "$P" $VIFACE $call
done
expect_fail org.freedesktop.DBus.Error.UnknownObject as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" \
	"$P" $VIFACE Unlock 'sha{ss}' recovery "<$RIG_DIR/rk" ""
expect_fail org.freedesktop.DBus.Error.UnknownObject as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" \
	"$P" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" "hang"
[ "$(vprop "$P" Locked)" = false ] || fail "other user's Lock took effect"
[ "$(vprop "$P" KeyVersion)" = 1 ] || fail "other user's RotateKey took effect"
pass "every Vault method refuses another user"

# Properties, ListVaults, GetVault, introspection: nothing of root's vault shows.
expect_fail org.freedesktop.DBus.Error.UnknownObject bq_other get-property org.tokenseal1 "$P" $VIFACE Protectors
expect_fail org.freedesktop.DBus.Error.UnknownObject bq_other get-property org.tokenseal1 "$P" $VIFACE Name
[ "$(bq_other call "${MGR_ARGS[@]}" ListVaults)" = "a(so) 0" ] || fail "ListVaults shows root's vault to another user"
expect_fail org.tokenseal1.Error.NoSuchVault bq_other call "${MGR_ARGS[@]}" GetVault s rootvault
expect_fail org.tokenseal1.Error.NoSuchVault bq_other call "${MGR_ARGS[@]}" GetVault s 0:rootvault
! bq_other tree org.tokenseal1 | grep -q rootvault || fail "introspection shows root's vault to another user"
pass "another user sees no trace of root's vault"

# The other user makes a vault of its own; owner= is root's privilege.
expect_fail org.tokenseal1.Error.AccessDenied as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" \
	/org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' stolen owner=0 ">/dev/null"
mkdir -m 777 "$RIG_DIR/other"
OP=$(as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" /org/tokenseal1 org.tokenseal1.Manager \
	CreateVault 'sa{ss}h' nobodys "" ">$RIG_DIR/other/rk") || fail "unprivileged CreateVault"
[ "$(vprop "$OP" Owner)" = "$OTHER_UID" ] || fail "owner of nobodys: $(vprop "$OP" Owner)"
OB=$(as_other_bq wrap "$OP" "2 4 2" 0) || fail "owner wraps"
[ "$(unwrap "$OP" "$OB" 0)" = "2 4 2" ] || fail "root may use any vault"
bq_other call "${MGR_ARGS[@]}" ListVaults | grep -q '"nobodys"' || fail "ListVaults misses the user's own vault"
! bq_other call "${MGR_ARGS[@]}" ListVaults | grep -q rootvault || fail "ListVaults leaks"
pass "a user owns its own vault; root may use it"

# Root creates a vault for the user.
GP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' gift "owner=$OTHER_UID" ">$RIG_DIR/rk-gift") || fail "root CreateVault owner="
[ "$(vprop "$GP" Owner)" = "$OTHER_UID" ] || fail "gift owner"
GB=$(as_other_bq wrap "$GP" "1 5" 0) || fail "user uses the gift"
expect_fail org.tokenseal1.Error.InvalidArgs fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' g2 "owner=abc" ">/dev/null"
expect_fail org.tokenseal1.Error.InvalidArgs fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' g2 "colour=red" ">/dev/null"
pass "root creates a vault owned by a user"

grep -q "event=lock vault=rootvault owner=[0-9-]* uid=$OTHER_UID pid=[0-9]* protector=- result=AccessDenied" "$RIG_DIR/daemon.log" ||
	fail "denied access not logged"
pass "denials logged"

core_finish
