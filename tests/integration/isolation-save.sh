#!/bin/bash
# isolation-save.sh — a save that fails loses nothing: with the owner's directory full, then read-only,
# every state-changing method answers IOError and leaves the daemon's vault exactly as the file on disk;
# no new key is handed out for a vault that is not on disk; after space returns and a restart, every
# blob the daemon acknowledged opens and every key it handed out works; a recovery key's wrong guess
# that cannot be written down is the last one tried from its source. Also: re-creating a vault
# whose file was deleted never overwrites its surviving NAME.vault.bak.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
STATE_DIR=$D/state
OWN=$STATE_DIR/0
# The owner's directory is a small tmpfs of its own (the state directory keeps the daemon's lock
# file, open for writing, so only the vaults' directory can be remounted read-only).
mkdir -p "$OWN"
chmod 700 "$STATE_DIR"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$OWN" || fail "mount tmpfs"
save_cleanup() {
	local rc=$?
	if [ -n "$DAEMON_PID" ]; then _rig_term "$DAEMON_PID"; DAEMON_PID=; [ "$RIG_TERM_RC" = 0 ] || rc=1; fi
	umount -l "$OWN" 2>/dev/null || true
	set +e
	(exit $rc)
	rig_cleanup
}
trap save_cleanup EXIT

rig_start_bus
rig_start_daemon --idle-lock 0
"$TOKENSEAL" escrow keygen --out-secret "$D/officer.sec" >"$D/officer.pub" || fail "escrow keygen"

P=$(create_vault sv "$D/rk1") || fail "CreateVault"
[ "$(fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$D/rk2")" = p2 ] || fail "AddProtector p2"
printf 'p2 %s\n' "$(cat "$D/rk2")" >"$D/keep2"   # RotateRecoveryKey re-keys: p2 is kept with its key
BLOBS=() PTS=() N=0
# keep_blob WHY — Wrap a fresh plaintext and remember it: the daemon acknowledged it, it must open forever.
keep_blob() {
	local pt b
	N=$((N + 1))
	pt="4 $((N % 256)) 17 $(((N * 7) % 256)) 99"
	b=$(wrap "$P" "$pt" 0) || fail "Wrap ($1)"
	BLOBS+=("$b") PTS+=("$pt")
}
# all_open WHEN — every acknowledged blob unwraps to its plaintext.
all_open() {
	local i o
	for i in "${!BLOBS[@]}"; do
		o=$(unwrap "$P" "${BLOBS[i]}" 0 2>&1) || fail "$1: blob $((i + 1)) of ${#BLOBS[@]} acknowledged earlier does not open: $o"
		[ "$o" = "${PTS[i]}" ] || fail "$1: blob $((i + 1)) opens to '$o', not '${PTS[i]}'"
	done
}
# opens_with PROTECTOR KEYFILE WHEN — Lock, then Unlock with that key.
opens_with() {
	local o
	vcall "$P" Lock >/dev/null || fail "Lock"
	o=$(unlock "$P" "$1" "$2" 2>&1) || fail "$3: key of $1 refused: $o"
}
# unlocked — the vault is unlocked again, with the first recovery key if a failed save locked it.
unlocked() { [ "$(vprop "$P" Locked)" = false ] || opens_with p1 "$D/rk1" "$1"; }
ioerror() { # WHAT, CMD... — the call fails with IOError
	local what=$1 out; shift
	if out=$("$@" 2>&1); then fail "$what succeeded on a $PHASE state directory: $out"; fi
	grep -q "org.tokenseal1.Error.IOError" <<<"$out" || fail "$what on a $PHASE state directory: not IOError: $out"
}

keep_blob "before"
[ "$(vcall "$P" RotateKey 'a{ss}' 0)" = "u 2" ] || fail "RotateKey"
keep_blob "key version 2"
cp "$OWN/sv.vault" "$D/sv.before"
pass "vault sv: p1, p2 (recovery keys), root keys 1 and 2, blobs under both"

# attack — every state-changing method against the broken directory; each must fail with IOError
# and leave memory as the file is: the vault opens with its keys, blobs wrapped before and after open.
attack() {
	local prot esc
	prot=$(vprop "$P" Protectors)
	printf 'p1 %s\n' "$(cat "$D/rk1")" >"$D/secrets"
	ioerror RevokeAndRekey fdcall "$P" $VIFACE RevokeAndRekey sh p2 "<$D/secrets"
	# Its new vault secret does not open the file: locked, and the file's protectors open it.
	[ "$(vprop "$P" LockReason)" = '"save-failed"' ] || fail "after RevokeAndRekey: LockReason $(vprop "$P" LockReason)"
	unlocked "after RevokeAndRekey"
	keep_blob "after a failed RevokeAndRekey"
	[ "$(vprop "$P" Protectors)" = "$prot" ] || fail "RevokeAndRekey: protectors in memory changed"

	ioerror RotateRecoveryKey fdcall "$P" $VIFACE RotateRecoveryKey shh p1 "<$D/keep2" ">$D/new-$PHASE"
	[ ! -s "$D/new-$PHASE" ] || fail "RotateRecoveryKey handed out a key for a vault that is not on disk"
	opens_with p1 "$D/rk1" "after RotateRecoveryKey"
	keep_blob "after a failed RotateRecoveryKey"

	ioerror RotateKey vcall "$P" RotateKey 'a{ss}' 0
	[ "$(vprop "$P" KeyVersion)" = 2 ] || fail "RotateKey: version in memory $(vprop "$P" KeyVersion)"
	# The vault secret did not change: the file, read back, opens with it and the vault stays unlocked.
	[ "$(vprop "$P" Locked)" = false ] || fail "a failed RotateKey locked the vault"
	unlocked "after RotateKey"
	keep_blob "after a failed RotateKey"
	ioerror "RotateKey retire_below" vcall "$P" RotateKey 'a{ss}' 1 retire_below 2
	[ "$(vprop "$P" MinKeyVersion)" = 1 ] || fail "retire: MinKeyVersion in memory $(vprop "$P" MinKeyVersion)"
	unlocked "after a retire"

	ioerror AddProtector fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$D/add-$PHASE"
	[ ! -s "$D/add-$PHASE" ] || fail "AddProtector handed out a key for a vault that is not on disk"
	ioerror "AddProtector replace" fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' recovery "replace=p2" "</dev/null" \
		">$D/rep-$PHASE"
	[ ! -s "$D/rep-$PHASE" ] || fail "AddProtector replace=p2 handed out a key for a vault that is not on disk"
	ioerror RevokeProtector vcall "$P" RevokeProtector s p2
	[ "$(vprop "$P" Protectors)" = "$prot" ] || fail "protectors in memory changed: $(vprop "$P" Protectors)"
	opens_with p2 "$D/rk2" "after AddProtector/RevokeProtector"

	esc=$(vprop "$P" EscrowRecipients)
	ioerror SetEscrow vcall "$P" SetEscrow asu 1 "officer $(cat "$D/officer.pub")" 1
	[ "$(vprop "$P" EscrowRecipients)" = "$esc" ] || fail "SetEscrow: recipients in memory changed"
	unlocked "after SetEscrow"
	keep_blob "after a failed SetEscrow"

	ioerror CreateVault fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "new-$PHASE" "" \
		">$D/create-$PHASE"
	[ ! -s "$D/create-$PHASE" ] ||
		fail "CreateVault handed out a recovery key for a vault that is not on disk: $(ls "$OWN"; df "$OWN" | tail -n1)"
	expect_fail NoSuchVault vault_path "new-$PHASE"
	all_open "$PHASE, before a restart"
	cmp -s "$OWN/sv.vault" "$D/sv.before" || fail "$PHASE: the vault file changed"
	daemon_alive
}

# A full directory: new files can be made, not written (a byte-wise second fill takes the last page).
dd if=/dev/zero of="$OWN/fill" bs=64k 2>/dev/null || true
dd if=/dev/zero of="$OWN/fill2" bs=1 2>/dev/null || true
printf 'probe' 2>/dev/null >"$OWN/probe" && fail "the tmpfs is not full: $(df "$OWN" | tail -n1)"
rm -f "$OWN/probe"
PHASE=full attack
pass "full: every method answers IOError; memory stays the file; no key handed out; every blob opens"

# Guessing recovery keys while the disk is full: a wrong key the back-off cannot write down would be
# forgotten at the next restart. A source with a clean record still gets its one try (the owner on a
# full disk, first time); after a wrong one, nothing more is tried from there until it can be written.
printf 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG-HHHHH\n' >"$D/wrong"
vcall "$P" Lock >/dev/null || fail "Lock"
audited=$(grep -c "event=unlock vault=sv .*result=IOError" "$D/daemon.log" || true)
o=$(unlock "$P" p1 "$D/wrong" 2>&1) && fail "a wrong recovery key unlocked"
grep -q "IOError" <<<"$o" && fail "full: the first wrong key from a clean source was not tried: $o"
for k in wrong rk1; do
	o=$(unlock "$P" p1 "$D/$k" 2>&1) && fail "full: after a wrong key that could not be saved, the $k key was tried and unlocked"
	grep -q "org.tokenseal1.Error.IOError" <<<"$o" && grep -q "no secret was tried" <<<"$o" ||
		fail "full: after a wrong key that could not be saved, the $k key was not refused untried: $o"
done
[ "$(vprop "$P" Locked)" = true ] || fail "full: the vault opened"
[ "$(grep -c "event=unlock vault=sv .*result=IOError" "$D/daemon.log" || true)" = $((audited + 2)) ] ||
	fail "full: the refused attempts are not audited: $(grep "event=unlock" "$D/daemon.log" | tail -n3)"
pass "full: after one wrong recovery key that cannot be written down, that source's keys are refused untried"
rm -f "$OWN/fill" "$OWN/fill2"
o=$(unlock "$P" p1 "$D/rk1" 2>&1) || fail "space is back: the right key is refused: $o"
# The right key's reset is saved just after the reply.
for _ in $(seq 20); do grep -q "^uid:0 " "$OWN/sv.backoff" || break; sleep 0.1; done
grep -q "^uid:0 " "$OWN/sv.backoff" && fail "the right key did not start the count again: $(cat "$OWN/sv.backoff")"
mount -o remount,ro "$OWN" || fail "remount ro"
PHASE=read-only attack
pass "read-only: every method answers IOError; memory stays the file; no key handed out; every blob opens"
mount -o remount,rw "$OWN" || fail "remount rw"

# Space is back: the next save must not drop what the failed ones left in memory.
[ "$(vcall "$P" RotateKey 'a{ss}' 0)" = "u 3" ] || fail "RotateKey once the directory is writable again"
keep_blob "key version 3"
rig_stop_daemon
rig_start_daemon --idle-lock 0
P=$(vault_path sv) || fail "sv after a restart"
o=$(unlock "$P" p1 "$D/rk1" 2>&1) || fail "after a restart: the first recovery key is refused: $o"
all_open "after a restart"
opens_with p2 "$D/rk2" "after a restart"
[ "$(vprop "$P" KeyVersion)" = 3 ] || fail "KeyVersion after a restart: $(vprop "$P" KeyVersion)"
pass "after a restart: ${#BLOBS[@]} acknowledged blobs open, both recovery keys work, root key 3 is current"

# Handing out only what is on disk, with space: the keys come out after the save and work.
R=$(fdcall "$P" $VIFACE RotateRecoveryKey shh p1 "<$D/keep2" ">$D/rk3") || fail "RotateRecoveryKey"
R=$(head -n1 <<<"$R")
[ -s "$D/rk3" ] || fail "RotateRecoveryKey: no key"
opens_with "$R" "$D/rk3" "the rotated key"
rc=0; unlock "$P" p1 "$D/rk1" >/dev/null 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "the used recovery key still opens after RotateRecoveryKey"
rig_stop_daemon
rig_start_daemon --idle-lock 0
P=$(vault_path sv) || fail "sv after a second restart"
o=$(unlock "$P" "$R" "$D/rk3" 2>&1) || fail "after a restart: the rotated key is refused: $o"
all_open "after a second restart"
pass "RotateRecoveryKey with space: the new key works, before and after a restart; the used one is gone"

# A deleted vault's surviving backup: re-creating the name must not overwrite it.
B=$(create_vault bk "$D/bk1") || fail "CreateVault bk"
fdcall "$B" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$D/bk2" >/dev/null || fail "AddProtector bk"
[ -s "$OWN/bk.vault.bak" ] || fail "no bk.vault.bak"
cp "$OWN/bk.vault.bak" "$D/bk.bak"
rig_stop_daemon
rm "$OWN/bk.vault"
rig_start_daemon --idle-lock 0
out=$(create_vault bk "$D/bk-new" 2>&1) && B=$out || B=
if [ -n "$B" ]; then
	fdcall "$B" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$D/bk-new2" >/dev/null ||
		fail "AddProtector on the re-created bk"
fi
cmp -s "$OWN/bk.vault.bak" "$D/bk.bak" || fail "re-creating bk overwrote the deleted vault's bk.vault.bak"
[ -z "$B" ] || fail "bk was re-created over a surviving backup"
grep -q "VaultExists" <<<"$out" && grep -q "bk.vault.bak" <<<"$out" || fail "re-create bk: $out"
[ ! -s "$D/bk-new" ] || fail "a recovery key was handed out for a vault that was not created"
pass "re-creating a deleted vault's name is refused while its NAME.vault.bak survives (VaultExists, names the file)"

# Out of descriptors: CreateVault cannot tell whether a name is free, and says so (IOError), neither
# "exists" nor a vault made over one it could not see; with descriptors back the name is created.
# The limit leaves room for the call's own fd (sd-bus would drop the message and its bus with it).
free=0
while [ -e "/proc/$DAEMON_PID/fd/$free" ]; do free=$((free + 1)); done
soft=$(prlimit --pid "$DAEMON_PID" --nofile --noheadings --output SOFT --raw)
prlimit --pid "$DAEMON_PID" --nofile=$((free + 1)):
out=$(create_vault nofd "$D/nofd1" 2>&1) && B=$out || B=
prlimit --pid "$DAEMON_PID" --nofile="$soft":
[ -z "$B" ] || fail "CreateVault out of descriptors created nofd"
grep -q "IOError" <<<"$out" && grep -q "cannot tell whether vault 'nofd' exists" <<<"$out" ||
	fail "CreateVault out of descriptors: '$out', not IOError saying it cannot tell"
[ ! -e "$OWN/nofd.vault" ] && [ ! -s "$D/nofd1" ] || fail "CreateVault out of descriptors left a file or a key"
B=$(create_vault nofd "$D/nofd2") || fail "CreateVault nofd with descriptors back"
[ -s "$OWN/nofd.vault" ] || fail "no nofd.vault"
pass "out of descriptors, CreateVault answers IOError ('cannot tell whether vault ... exists'), not VaultExists, and creates nothing; then the name is created"
