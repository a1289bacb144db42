#!/bin/bash
# isolation-stall.sh — nothing one caller does stalls the daemon for everyone. While an unprivileged
# user runs each attack against its own vault (a vault with FIDO2, TPM 2.0 and PKCS#11 protectors), root
# measures Peer.Ping and Unwrap of its own vault (isolation_latency.py): p99 must stay under 50 ms.
# The attacks: three Unlock calls whose secret pipes are never closed; Unlock given a FIFO that never
# answers; ProbeProtectors in a loop; property GetAll in a loop; CreateVault with a full output pipe.
# A regular file (or a device) as a secret fd is refused with InvalidArgs: a FUSE or hung NFS file
# could block read() for as long as it likes.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
CHECK="$TS_BUILD/tests/tools/fido2_check"
LAT="$TS_SRC/tests/integration/isolation_latency.py"
D=$RIG_DIR
USR=tsst$$
rig_useradd "$USR"
UUID=$(id -u "$USR")
LIMIT_MS=50
SECS=3

softfido_start k
printf '1234\n' >"$D/fpin"
"$CHECK" set-pin --device "$SOFTFIDO_k_DEV" --vault-id 00 --pin-file "$D/fpin" || fail "set the key's PIN"
softhsm_setup "$D/hsm"
chmod -R a+rX "$D/hsm"
printf '%s\n' "$SOFTHSM_PIN" >"$D/hpin"
swtpm_start "$D/tpm"
# Four protectors at least: RevokeAndRekey of one of the user's four is refused, but only once every
# KEK it needs has been obtained (the attack below repeats it).
policy_conf 50-min.conf '[protectors]\nmin = 4\n'
rig_start_bus
rig_start_daemon --idle-lock 0 --test-devices --fido2-timeout 3 --fido2-device "$SOFTFIDO_k_DEV" \
	--tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$POLICY_DIR"

# root's own vault and a blob: what the bystander measures.
R=$(create_vault mine "$D/rk-root") || fail "create root's vault"
B=$(wrap "$R" "4 1 2 3 4" 0) || fail "wrap"
[ "$(unwrap "$R" "$B" 0)" = "4 1 2 3 4" ] || fail "unwrap"
B=$(printf '%02x' $(cut -d' ' -f2- <<<"$B"))
# The user's vault with one protector of each kind.
U=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' v "owner=$UUID" ">$D/rk") || fail "create"
chmod 644 "$D/rk"
T() { "$TOKENSEAL" --vault "$UUID:v" "$@"; }
T enroll fido2 --pin-fd 3 3<"$D/fpin" >"$D/e" 2>&1 || fail "enroll fido2: $(cat "$D/e")"
T enroll tpm2 >"$D/e" 2>&1 </dev/null || fail "enroll tpm2: $(cat "$D/e")"
T enroll pkcs11 --uri "pkcs11:token=ts-test;id=%01" --pin-fd 3 3<"$D/hpin" >"$D/e" 2>&1 || fail "enroll pkcs11: $(cat "$D/e")"
[ "$(vprop "$U" Protectors | grep -o '"p[0-9]*"' | wc -l)" -ge 4 ] || fail "protectors: $(vprop "$U" Protectors)"
as_u() { as_uid "$UUID" "$@"; }
ufdcall() { as_u /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$@"; }
ubctl() { as_u busctl --address="$BUS_ADDRESS" "$@"; }


measure "no attack"

# --- Unlock with a secret pipe that is never closed, three at once (one per vault: a second Unlock
# of the same vault gets Busy at once, [limits] in docs/POLICY.md).
UV[1]=$U
for i in 2 3; do
	UV[$i]=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "v$i" "owner=$UUID" ">/dev/null") ||
		fail "create v$i"
done
for i in 1 2 3; do
	ufdcall "${UV[$i]}" $VIFACE Unlock 'sha{ss}' "" hang "" >"$D/hang$i" 2>&1 &
	ATTACK+=($!)
	RIG_PIDS+=($!)
done
sleep 0.3
measure "three Unlock secret pipes held open"
wait "${ATTACK[@]}" 2>/dev/null || true
ATTACK=()
for i in 1 2 3; do grep -q "org.tokenseal1.Error.Timeout" "$D/hang$i" || fail "held pipe $i: $(cat "$D/hang$i")"; done
pass "Unlock with three secret pipes held open: the others are served meanwhile; each ends with Timeout"

# --- Unlock given a FIFO whose writer never writes nor closes.
mkfifo "$D/fifo"
chmod 666 "$D/fifo"
exec 7<>"$D/fifo"
ufdcall "$U" $VIFACE Unlock 'sha{ss}' "" "file<$D/fifo" "" >"$D/fifo.out" 2>&1 &
ATTACK+=($!)
RIG_PIDS+=($!)
sleep 0.3
measure "Unlock given a FIFO that never answers"
stop_attack
exec 7>&-
pass "a FIFO that never answers costs the daemon nothing"

# --- A regular file, a device, a directory: refused before anything is read.
printf 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG-HHHHH\n' >"$D/file"
chmod 644 "$D/file"
for f in "$D/file" /dev/zero "$D"; do
	rc=0; ufdcall "$U" $VIFACE Unlock 'sha{ss}' "" "file<$f" "" >"$D/out" 2>&1 || rc=$?
	[ $rc -ne 0 ] && grep -q "org.tokenseal1.Error.InvalidArgs: .*not a readable pipe or socket" "$D/out" ||
		fail "Unlock given $f: $(cat "$D/out")"
done
rc=0; fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' tofile "" "file>$D/out.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "org.tokenseal1.Error.InvalidArgs" "$D/out" && [ ! -s "$D/out.rk" ] ||
	fail "CreateVault into a regular file: $(cat "$D/out")"
pass "a regular file, a device or a directory as a secret fd: InvalidArgs, nothing read or written"

# --- ProbeProtectors in a loop (one helper per token), three clients at once.
for i in 1 2 3; do loop_as_user ubctl call org.tokenseal1 "$U" $VIFACE ProbeProtectors; done
sleep 0.3
measure "ProbeProtectors in a loop"
stop_attack
out=$(ubctl call org.tokenseal1 "$U" $VIFACE ProbeProtectors) || fail "ProbeProtectors"
case $out in *present*) ;; *) fail "ProbeProtectors: $out" ;; esac
pass "ProbeProtectors in a loop: the others are served meanwhile"

# --- Every property in a loop.
loop_as_user ubctl call org.tokenseal1 "$U" org.freedesktop.DBus.Properties GetAll s $VIFACE
sleep 0.3
measure "property GetAll in a loop"
stop_attack
pass "GetAll in a loop: the others are served meanwhile"

# --- CreateVault whose recovery key goes to a full pipe: refused at once, nothing created.
loop_as_user ufdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' full "" full
sleep 0.3
measure "CreateVault with a full output pipe, in a loop"
stop_attack
rc=0; ufdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' full "" full >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "org.tokenseal1.Error.IOError" "$D/out" || fail "CreateVault into a full pipe: $(cat "$D/out")"
[ ! -e "$STATE_DIR/$UUID/full.vault" ] || fail "a vault was created whose key nobody received"
pass "CreateVault with a full output pipe: IOError at once, nothing created"

# --- RevokeAndRekey keeping a FIDO2 key (PIN and touch), the TPM, the card and the recovery key: each
# KEK comes from the token helper.
ufdcall "$U" $VIFACE Unlock 'sha{ss}' recovery "<$D/rk" "" >/dev/null || fail "unlock the user's vault"
ids=$(vprop "$U" Protectors | grep -o '"p[0-9]*" "[a-z0-9]*"' | tr -d '"')
pid_of() { awk -v t="$1" '$2 == t { print $1; exit }' <<<"$ids"; }
printf '%s %s\n%s %s\n%s %s\n' "$(pid_of recovery)" "$(head -n1 "$D/rk")" "$(pid_of fido2)" 1234 \
	"$(pid_of pkcs11)" "$SOFTHSM_PIN" >"$D/keep"
chmod 644 "$D/keep"
spare=$(ufdcall "$U" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">/dev/null") || fail "add a spare key"
ufdcall "$U" $VIFACE RevokeAndRekey 'sh' "$spare" "<$D/keep" >"$D/rekey" 2>&1 || fail "RevokeAndRekey: $(cat "$D/rekey")"
for t in recovery fido2 tpm2 pkcs11; do
	grep -qx "$(pid_of $t)" "$D/rekey" || fail "RevokeAndRekey did not keep $t: $(cat "$D/rekey")"
done
# In a loop: revoking the TPM protector, with the secrets of the other three. Refused by the policy
# (3 < min), after the FIDO2 key, the card and the recovery key have each given their KEK.
rc=0; ufdcall "$U" $VIFACE RevokeAndRekey 'sh' "$(pid_of tpm2)" "<$D/keep" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "org.tokenseal1.Error.PolicyViolation" "$D/out" || fail "RevokeAndRekey below min: $(cat "$D/out")"
loop_as_user ufdcall "$U" $VIFACE RevokeAndRekey 'sh' "$(pid_of tpm2)" "<$D/keep"
sleep 0.3
measure "RevokeAndRekey (FIDO2, card, recovery key kept), in a loop"
stop_attack
pass "RevokeAndRekey in a loop: every KEK from the helper, the others are served meanwhile"

daemon_alive
core_finish
