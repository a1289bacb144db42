#!/bin/bash
# isolation-share.sh — two users who loop RevokeAndRekey on vaults of their own (each call asks the token
# helper once per protector) get no more than their share of the token helpers: each call counts against
# [limits] jobs-per-uid like an Unlock, and a quarter of [limits] helpers is kept for root's calls and the
# daemon's own work. Meanwhile root's recovery-key unlocks of its own vault (a login) all succeed, and a
# third user's RevokeAndRekey never drops its TPM protector for want of a helper: it is kept, or the call
# answers Busy and changes nothing.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
T=$TOKENSEAL
D=$RIG_DIR
# The floods run until root has made UNLOCKS unlocks (at most FLOOD_MAX seconds): a count, not a
# time window, so that a slow (sanitized) daemon measures as many unlocks as a fast one.
UNLOCKS=4
FLOOD_MAX=90
swtpm_start "$D/tpm" || fail "swtpm"
rig_start_bus
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock"
"$T" --vault mine create >"$D/rk-root" 2>/dev/null || fail "create root's vault"
# The third user's vault: p1 recovery, p2 TPM (no PIN: re-derived on its own at a re-key), p3 recovery.
rig_useradd tssc$$
CU=$(id -u tssc$$)
PC=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' vc "owner=$CU" ">$D/rk-c") || fail "create vc"
"$T" --vault "$CU:vc" enroll tpm2 >"$D/e" 2>&1 </dev/null || fail "enroll tpm2: $(cat "$D/e")"
fdcall "$PC" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">/dev/null" >/dev/null || fail "AddProtector p3"
printf 'p1 %s\n' "$(cat "$D/rk-c")" >"$D/keep-c"
chmod 644 "$D/keep-c"

# Each attacker: a vault of its own with eight recovery protectors, unlocked (created so).
FLOODS=()
for u in a b; do
	name=tss$u$$
	rig_useradd "$name"
	uid=$(id -u "$name")
	P=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "v$u" "owner=$uid" ">$D/rk-$u") ||
		fail "create v$u"
	ids=""
	for i in $(seq 2 8); do
		id=$(fdcall "$P" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">/dev/null") || fail "AddProtector $i"
		ids="$ids${ids:+,}$id"
	done
	for k in $(seq 6); do
		as_uid "$uid" /usr/bin/python3 "$TS_SRC/tests/integration/isolation_rekey_flood.py" "$BUS_ADDRESS" "$P" p1 \
			"$ids" "$FLOOD_MAX" "$D/stop" >"$D/flood-$u$k" 2>&1 &
		FLOODS+=($!)
		RIG_PIDS+=($!)
	done
done
sleep 1
out=$(as_uid "$CU" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$PC" $VIFACE RevokeAndRekey sh p3 "<$D/keep-c" 2>&1) || true
echo "the third user's RevokeAndRekey p3 during the floods: $(tr '\n' ' ' <<<"$out")"
vprop "$PC" Protectors | grep -q '"p2" "tpm2"' || fail "the TPM protector was dropped while the helpers were busy: $out"
ok=0 busy=0 other=0 last=
end=$((SECONDS + FLOOD_MAX - 20))
while [ $((ok + busy + other)) -lt $UNLOCKS ] && [ $SECONDS -lt $end ]; do
	"$T" --vault mine lock >/dev/null 2>&1 || true
	if out=$("$T" --vault mine unlock --protector recovery --pin-fd 3 3<"$D/rk-root" 2>&1); then ok=$((ok + 1))
	elif grep -qi busy <<<"$out"; then busy=$((busy + 1)) last=$out
	else other=$((other + 1)) last=$out; fi
done
alive=0
for p in "${FLOODS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
touch "$D/stop"
wait "${FLOODS[@]}"
echo "flooders still running when root's last unlock answered: $alive of ${#FLOODS[@]}"
[ "$alive" -eq ${#FLOODS[@]} ] || fail "a flood ended before root's unlocks did: nothing was measured under load"
echo "root's recovery unlocks during the floods: ok=$ok busy=$busy other=$other${last:+ (last: $last)}"
for f in "$D"/flood-*; do echo "  $(basename "$f"): $(cat "$f")"; done
cat "$D"/flood-* | grep -q "LimitExceeded" || fail "no attacker call was held to [limits] jobs-per-uid"
[ "$ok" -eq $UNLOCKS ] || [ "$busy" -ne 0 ] || [ "$other" -ne 0 ] || fail "too few unlocks measured ($ok)"
[ "$busy" -eq 0 ] && [ "$other" -eq 0 ] || fail "root's unlocks were turned away while two users flooded: busy=$busy other=$other"
pass "two users' RevokeAndRekey floods: each held to its jobs; root's $ok recovery unlocks meanwhile all succeeded; another user's re-key kept its TPM protector"
core_finish
