#!/bin/bash
# isolation-rollback-tpm.sh — a vault with a tpm2 protector is bound to a TPM NV counter: root putting back an old
# vault file together with its generation anchor is still refused (Rollback), because the counter cannot go back; a
# save whose increment failed (TPM away) is made up at the next start; --accept-rollback re-bases the counter.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
AL="$RIG_DIR/audit.jsonl"
TPM=$RIG_DIR/tpm
swtpm_start "$TPM"
rig_start_bus
start() { rig_start_daemon --idle-lock 0 --audit-log "$AL" --tpm2-tcti "swtpm:path=$TPM/sock" "$@"; }
start
S="$STATE_DIR/0"
LOG="$RIG_DIR/daemon.log"

# wait_log PATTERN [COUNT] — until the daemon log has COUNT (default 1) lines matching PATTERN (10 s at most).
wait_log() {
	local i
	for i in $(seq 200); do
		[ "$(grep -c -- "$1" "$LOG")" -ge "${2:-1}" ] && return 0
		sleep 0.05
	done
	fail "no '$1' (x${2:-1}) in the daemon log: $(tail -n 5 "$LOG")"
}
# counter HANDLE — the TPM counter's value, read with the owner hierarchy (what root sees).
counter() { tpm2_nvread -C o -s 8 "$1" | od -An -tx1 | tr -d ' \n' | sed 's/^/0x/' | xargs printf '%d\n'; }
anchor_of() { grep -lx "name $1" "$STATE_DIR"/generations/* | head -n1; }
refused() {
	grep -q "event=load vault=$1 result=Rollback" "$LOG" || fail "$1: no Rollback in the log: $(grep "vault=$1" "$LOG" | tail -n 3)"
	expect_fail org.tokenseal1.Error.Rollback vault_path "$1"
	expect_fail org.freedesktop.DBus.Error.UnknownObject unlock "/org/tokenseal1/user/0/vault/$1" p1 "$RIG_DIR/nv1"
}

# A vault with a recovery key (p1) and a tpm2 protector (p2): the enrolment creates its counter.
P=$(create_vault nv "$RIG_DIR/nv1") || fail "CreateVault"
fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' tpm2 "" "</dev/null" ">/dev/null" >/dev/null || fail "AddProtector tpm2"
wait_log "vault=nv: TPM rollback counter 0x[0-9a-f]* created"
H=$(sed -n 's/.*vault=nv: TPM rollback counter \(0x[0-9a-f]*\) created.*/\1/p' "$LOG" | head -n1)
tpm2_nvreadpublic "$H" >"$RIG_DIR/nvpub" 2>&1 || fail "no NV index $H in the TPM: $(cat "$RIG_DIR/nvpub")"
grep -q "nt=0x1|" "$RIG_DIR/nvpub" || fail "$H is not a counter: $(cat "$RIG_DIR/nvpub")"
grep -q "auth" <(python3 -c 'import sys; print(open(sys.argv[1],"rb").read().count(b"nv_counter") and "auth")' "$S/nv.vault") ||
	fail "the vault file does not name its counter"
pass "enrolling a tpm2 protector creates a TPM counter index ($H) named in the vault header"

# Several saves; each one is followed by an increment.
c0=$(counter "$H")
vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey 1"
vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey 2"
for i in $(seq 100); do [ "$(counter "$H")" -ge $((c0 + 2)) ] && break; sleep 0.05; done
[ "$(counter "$H")" = $((c0 + 2)) ] || fail "two saves: counter $(counter "$H"), expected $((c0 + 2))"
pass "each save increments the counter ($c0 -> $((c0 + 2)))"

# Root's copy: the vault file AND its generation anchor.
A=$(anchor_of nv); [ -n "$A" ] || fail "no anchor for nv"
cp "$S/nv.vault" "$RIG_DIR/nv-old.vault"; cp "$A" "$RIG_DIR/nv-old.anchor"
B=$(wrap "$P" "3 1 2 3" 0) || fail "Wrap"
vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey 3"
vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey 4"
for i in $(seq 100); do [ "$(counter "$H")" -ge $((c0 + 4)) ] && break; sleep 0.05; done
rig_stop_daemon
cp "$RIG_DIR/nv-old.vault" "$S/nv.vault"; cp "$RIG_DIR/nv-old.vault" "$S/nv.vault.bak"; cp "$RIG_DIR/nv-old.anchor" "$A"
start
refused nv
grep -q "vault=nv .*its file expects TPM counter value $((c0 + 2)) but the counter is at $((c0 + 4))" "$LOG" ||
	fail "the refusal does not give both counter values: $(grep 'vault=nv' "$LOG" | tail -n 2)"
grep -q "\"event\":\"rollback\",\"vault\":\"nv\",\"owner\":0,.*\"file_counter\":$((c0 + 2)),\"tpm_counter\":$((c0 + 4))" "$AL" ||
	fail "no rollback audit record with both counter values: $(grep '"nv"' "$AL" | tail -n 2)"
cmp -s "$S/nv.vault" "$RIG_DIR/nv-old.vault" || fail "the refused file was changed"
[ "$(counter "$H")" = $((c0 + 4)) ] || fail "a refused file moved the counter"
pass "old vault file + old anchor put back by root: refused (Rollback) by the TPM counter, both values audited"

# The same old file with the anchors made unreadable (a symlink where their directory was): the counter still
# decides.
rig_stop_daemon
mv "$STATE_DIR/generations" "$STATE_DIR/generations.real"
ln -s generations.real "$STATE_DIR/generations"
n=$(grep -c "its file expects TPM counter value $((c0 + 2)) but the counter is at $((c0 + 4))" "$LOG")
start
grep -q "event=load vault=nv: cannot read its generation anchor" "$LOG" || fail "the unreadable anchor is not logged"
[ "$(grep -c "its file expects TPM counter value $((c0 + 2)) but the counter is at $((c0 + 4))" "$LOG")" -gt "$n" ] ||
	fail "an unreadable anchor switched the TPM counter check off: $(grep 'vault=nv' "$LOG" | tail -n 3)"
refused nv
rig_stop_daemon
rm "$STATE_DIR/generations"
mv "$STATE_DIR/generations.real" "$STATE_DIR/generations"
start
pass "old vault file with the anchors unreadable: still refused by the TPM counter"

# --accept-rollback (the generation of the old file) serves it and re-bases the counter at its next save.
gen=$(sed -n 's/.*--accept-rollback 0:nv:\([0-9]*\).*/\1/p' "$LOG" | tail -n1)
[ -n "$gen" ] || fail "the refusal does not say how to accept it"
rig_stop_daemon
start --accept-rollback "0:nv:$gen"
P=$(vault_path nv) || fail "nv not served after --accept-rollback"
grep -q "\"event\":\"rollback-accept\",\"vault\":\"nv\",.*\"file_counter\":$((c0 + 2)),\"tpm_counter\":$((c0 + 4))" "$AL" ||
	fail "no rollback-accept audit record with the counter values"
unlock "$P" p2 /dev/null >/dev/null || fail "the accepted file does not open with its tpm2 protector"
vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey after accepting"
for i in $(seq 100); do [ "$(counter "$H")" -ge $((c0 + 5)) ] && break; sleep 0.05; done
[ "$(counter "$H")" = $((c0 + 5)) ] || fail "re-base: counter $(counter "$H")"
rig_stop_daemon
start
P=$(vault_path nv) || fail "the re-based file is refused at the next start: $(grep 'vault=nv' "$LOG" | tail -n 2)"
pass "--accept-rollback serves the old file (audited) and its next save re-bases the counter"

# A save whose increment does not happen (the TPM is away): the file is one ahead; the next start makes it up.
unlock "$P" p1 "$RIG_DIR/nv1" >/dev/null || fail "unlock p1"
kill "$(cat "$TPM/pid")"; wait "$(cat "$TPM/pid")" 2>/dev/null || true
vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "a save with the TPM away fails"
wait_log "vault=nv: saved, but its TPM counter $H was not incremented"
rig_stop_daemon
swtpm_start "$TPM"
[ "$(counter "$H")" = $((c0 + 5)) ] || fail "the counter moved while the TPM was away"
start
P=$(vault_path nv) || fail "a file one ahead of its counter (save without increment) is refused"
grep -q "event=load vault=nv: its file was one ahead of its TPM counter" "$LOG" || fail "no catch-up logged"
[ "$(counter "$H")" = $((c0 + 6)) ] || fail "the increment was not made up: $(counter "$H")"
unlock "$P" p2 /dev/null >/dev/null || fail "unlock tpm2 after the missed increment"
[ "$(unwrap "$P" "$B" 0)" = "3 1 2 3" ] || fail "blob"
pass "a save not followed by its increment (TPM away) still loads; the increment is made up at start"

# The TPM away at start: served, checked by the anchor only, audited; once it is back, the next save reads the
# counter and follows it again.
rig_stop_daemon
kill "$(cat "$TPM/pid")"; wait "$(cat "$TPM/pid")" 2>/dev/null || true
start
P=$(vault_path nv) || fail "nv refused while the TPM is away at start"
grep -q "event=load vault=nv: cannot read its TPM counter $H" "$LOG" || fail "no error logged for the unread counter"
grep -q '"event":"rollback-unchecked","vault":"nv"' "$AL" || fail "no rollback-unchecked audit record"
unlock "$P" p1 "$RIG_DIR/nv1" >/dev/null || fail "unlock p1 with the TPM away"
swtpm_start "$TPM"
c=$(counter "$H")
# (The first save starts the read; saves until it has answered keep the file's value.)
for i in $(seq 20); do
	vcall "$P" RotateKey 'a{ss}' 0 >/dev/null || fail "RotateKey once the TPM is back"
	sleep 0.2
	[ "$(counter "$H")" -gt "$c" ] && break
done
[ "$(counter "$H")" = $((c + 1)) ] || fail "after the TPM came back: counter $(counter "$H"), expected $((c + 1))"
rig_stop_daemon
start
P=$(vault_path nv) || fail "nv refused after the TPM came back: $(grep 'vault=nv' "$LOG" | tail -n 2)"
unlock "$P" p2 /dev/null >/dev/null || fail "unlock p2 after the TPM came back"
pass "the TPM away at start: served on the anchor alone (audited rollback-unchecked); the next save re-reads the counter"

# SIGKILL at random moments of saves (between a file and its increment among them): every restart serves the vault.
if [ "$TS_SAN" = 1 ]; then N=3; else N=6; fi
kill_during_saves "$N" 300 start nv p2 /dev/null
P=$VP
pass "$N SIGKILLs during saves: the vault is never refused as a rollback ($(grep -c "was one ahead of its TPM counter" "$LOG") starts made up a lost increment)"

# Revoking the last tpm2 protector undefines the counter and the file stops naming it.
vcall "$P" RevokeProtector s p2 >/dev/null || fail "RevokeProtector p2"
wait_log "vault=nv: TPM counter $H undefined"
tpm2_getcap handles-nv-index | grep -qix -- "- $(printf '0x%X' "$H")" && fail "the index $H is still defined"
rig_stop_daemon
start
P=$(vault_path nv) || fail "nv without a counter is refused"
unlock "$P" p1 "$RIG_DIR/nv1" >/dev/null || fail "unlock p1 after the revocation"
pass "revoking the last tpm2 protector undefines the counter"
core_finish
