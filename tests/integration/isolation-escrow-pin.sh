#!/bin/bash
# isolation-escrow-pin.sh — one user cannot pin the escrow stock's RSA recipients (64 in all) and so turn
# every other user's RSA escrow away. The attack: 4 SetEscrow calls of 16 distinct RSA keys each, with a
# Lock right behind them (tests/integration/isolation_escrow_pin.py): before, each call held its keys
# while its wraps ran and for 30 s after its handler came back to a locked vault, so for 30 s another
# user's SetEscrow and RevokeAndRekey (the revocation of a lost token) answered Busy. Now the holds of
# one uid (SetEscrow, CreateVault and re-keys alike) may keep at most 16 RSA recipients waiting, and a
# call that does not come back is forgotten after 2 s: the other user's calls right after the attack
# succeed, at once or after a Busy or two while the attack's last wraps still hold helpers (its 16 RSA
# wraps, 4 helpers at a time: under a second here, a few under a sanitizer), within 5 s, not 30.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
rig_useradd tsepa$$; AUID=$(id -u tsepa$$)
rig_useradd tsepb$$; BUID=$(id -u tsepb$$)

mkdir -p "$D/keys"
for i in $(seq 0 64); do
	openssl genrsa -out "$D/keys/$i.key" 2048 2>/dev/null || fail "openssl genrsa"
	openssl rsa -in "$D/keys/$i.key" -pubout -out "$D/keys/$i.pem" 2>/dev/null
	"$TOKENSEAL" escrow show-key "$D/keys/$i.pem" >"$D/keys/$i.txt" 2>/dev/null || fail "escrow show-key"
done
chmod -R a+rX "$D/keys"
OFFICER=$(cat "$D/keys/64.txt")   # the other user's officer

rig_start_bus
rig_start_daemon --idle-lock 0
VA=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' va "owner=$AUID" ">$D/rkA") || fail "create A"
VB=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' vb "owner=$BUID" ">$D/rkB") || fail "create B"
chmod 644 "$D/rkA" "$D/rkB"
bb() { as_uid "$BUID" busctl --address="$BUS_ADDRESS" "$@"; }
bb call org.tokenseal1 "$VB" $VIFACE SetEscrow asu 1 "off $OFFICER" 1 >/dev/null || fail "B's SetEscrow before the attack"

as_uid "$AUID" /usr/bin/python3 "$TS_SRC/tests/integration/isolation_escrow_pin.py" "$BUS_ADDRESS" "$VA" \
	$(for i in $(seq 0 63); do echo "$D/keys/$i.txt"; done) >"$D/attack" 2>&1 || fail "the attack: $(cat "$D/attack")"
sed 's/^/  | /' "$D/attack"
grep -q "Lock: OK" "$D/attack" || fail "the attack's Lock: $(cat "$D/attack")"

# until_not_busy LABEL CMD... — CMD until it answers other than Busy, for at most 5 s; its output in $out.
until_not_busy() {
	local label=$1 t0 rc; shift
	t0=$(date +%s%N)
	while :; do
		rc=0; out=$("$@" 2>&1) || rc=$?
		[ $rc -ne 0 ] && grep -q "Error.Busy\|try again" <<<"$out" && [ $((($(date +%s%N) - t0) / 1000000)) -lt 5000 ] ||
			break
		sleep 0.1
	done
	echo "$label: answered after $((($(date +%s%N) - t0) / 1000000)) ms"
	return $rc
}
until_not_busy "B's SetEscrow" bb call org.tokenseal1 "$VB" $VIFACE SetEscrow asu 1 "off $OFFICER" 1 ||
	fail "B's SetEscrow after the attack: $out"
spare=$(as_uid "$BUID" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$VB" $VIFACE AddProtector 'sa{ss}hh' recovery "" \
	"</dev/null" ">/dev/null") || fail "B's AddProtector: $spare"
printf 'p1 %s\n' "$(head -n1 "$D/rkB")" >"$D/keepB"
chmod 644 "$D/keepB"
until_not_busy "B's RevokeAndRekey" as_uid "$BUID" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$VB" $VIFACE RevokeAndRekey 'sh' \
	"$spare" "<$D/keepB" || fail "B's RevokeAndRekey after the attack (its vault escrows to an RSA officer): $out"
pass "a user's 64 RSA recipients and a Lock pin nothing: another user's SetEscrow and RevokeAndRekey succeed within 5 s (the hold was 30 s)"
daemon_alive
core_finish
