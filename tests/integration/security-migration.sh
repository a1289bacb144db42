#!/bin/bash
# security-migration.sh — vault files written before names were per owner (one flat state directory,
# tests/integration/fixtures/flat-layout) load into their owners' namespaces with no manual step,
# byte for byte, and unlock and unwrap as before. A move a crash interrupted finishes; a flat file
# that would shadow a vault already in its owner's directory is never moved over it.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
FIX="$TS_SRC/tests/integration/fixtures/flat-layout"
S=$RIG_DIR/state
mkdir -m 700 "$S"
cp "$FIX/mail.vault" "$FIX/rootold.vault" "$S/"
rig_start_bus
rig_start_daemon --idle-lock 0

MP=/org/tokenseal1/user/65534/vault/mail RP=/org/tokenseal1/user/0/vault/rootold
[ ! -e "$S/mail.vault" ] && [ ! -e "$S/rootold.vault" ] || fail "flat files left in place: $(ls "$S")"
cmp -s "$FIX/mail.vault" "$S/65534/mail.vault" || fail "mail.vault not moved unchanged into $S/65534"
cmp -s "$FIX/rootold.vault" "$S/0/rootold.vault" || fail "rootold.vault not moved unchanged into $S/0"
[ "$(stat -c %a "$S/65534")" = 700 ] || fail "owner directory mode $(stat -c %a "$S/65534")"
[ "$(vprop "$MP" Owner)" = 65534 ] && [ "$(vprop "$MP" Locked)" = true ] || fail "mail not at $MP"
pass "flat-layout files moved into their owners' directories, unchanged"

# Unlock and unwrap as before: the owner with its key, root its own.
mkdir -m 777 "$RIG_DIR/o"
cp "$FIX/mail.rk" "$RIG_DIR/o/mail.rk" && chmod 644 "$RIG_DIR/o/mail.rk"
as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$MP" $VIFACE Unlock 'sha{ss}' "" "<$RIG_DIR/o/mail.rk" "" \
	>/dev/null || fail "the owner cannot unlock its migrated vault"
[ "$(as_other_bq unwrap "$MP" "$(cat "$FIX/mail.blob")" 1 app mail)" = "5 104 101 108 108 111" ] ||
	fail "a blob from before does not unwrap"
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes(int(x) for x in sys.argv[2:]))' \
	$(cat "$FIX/mail.blob") >"$RIG_DIR/o/mail.bin"
chmod 644 "$RIG_DIR/o/mail.bin"
[ "$(as_other "$TOKENSEAL" --vault mail unwrap --context app=mail --in "$RIG_DIR/o/mail.bin")" = hello ] ||
	fail "the CLI of the owner does not find its vault by name"
unlock "$RP" "" "$FIX/rootold.rk" >/dev/null || fail "root cannot unlock its migrated vault"
[ "$(unwrap "$RP" "$(cat "$FIX/rootold.blob")" 0)" = "3 1 2 3" ] || fail "root's blob from before"
pass "migrated vaults unlock with their old keys; old blobs unwrap; the owner finds it by name"

# Saves go to the new place; a restart finds everything again.
vcall "$RP" RotateKey 'a{ss}' 0 >/dev/null || fail "rotate"
[ ! -e "$S/rootold.vault" ] && [ -e "$S/0/rootold.vault.bak" ] || fail "save did not go to $S/0"
rig_stop_daemon
# A move a crash interrupted (the file in both places, the same bytes) finishes; a flat file that
# differs from the vault of that name in its owner's directory stays where it is, untouched.
cp "$S/65534/mail.vault" "$S/mail.vault"
cp "$FIX/rootold.vault" "$S/rootold.vault"
sum=$(sha256sum <"$S/rootold.vault")
rig_start_daemon --idle-lock 0
[ ! -e "$S/mail.vault" ] || fail "the copy of an interrupted move was not cleared"
[ "$(sha256sum <"$S/rootold.vault")" = "$sum" ] || fail "a clashing flat file was changed"
! cmp -s "$S/rootold.vault" "$S/0/rootold.vault" || fail "the clashing flat file replaced the newer vault"
grep -q "event=load vault=rootold result=VaultExists" "$RIG_DIR/daemon.log" || fail "the clash is not logged"
[ "$(vprop "$RP" KeyVersion)" = 2 ] || fail "the rotation was lost to an old flat file"
pass "an interrupted move completes; an old flat file never shadows the vault of that name"

core_finish
