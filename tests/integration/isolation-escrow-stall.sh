#!/bin/bash
# isolation-escrow-stall.sh — escrow to an RSA (HSM) officer never makes the daemon wait for a token helper.
# The helper RSA-wraps each escrow box key; here it is the compromised test helper
# (tests/helper/compromised.c), which stalls on that request (one byte of a reply, then nothing) or exits
# without an answer. While an unprivileged user calls SetEscrow with an RSA recipient in a loop, root's
# Peer.Ping and Unwrap (isolation_latency.py) must keep a p99 under 50 ms; each such SetEscrow answers a
# named error (Timeout, Failed) and leaves the vault's escrow as it was. The same helper answering
# normally: SetEscrow succeeds, and the next one takes a box key wrapped ahead.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
LAT="$TS_SRC/tests/integration/isolation_latency.py"
COMPROMISED=$TS_BUILD/tests/tokenseal-helper-compromised
[ -x "$COMPROMISED" ] || fail "no $COMPROMISED (make all builds it)"
D=$RIG_DIR
USR=tses$$
rig_useradd "$USR"
UUID=$(id -u "$USR")
LIMIT_MS=50
SECS=3

# The officer's RSA key and an X25519 officer's.
openssl genrsa -out "$D/officer.key" 2048 2>/dev/null || fail "openssl genrsa"
openssl rsa -in "$D/officer.key" -pubout -out "$D/officer.pem" 2>/dev/null || fail "openssl rsa -pubout"
RSA=$("$TOKENSEAL" escrow show-key "$D/officer.pem" 2>/dev/null) || fail "escrow show-key"
"$TOKENSEAL" escrow keygen --out-secret "$D/x.sec" >"$D/x.pub" || fail "escrow keygen"
X=$(cat "$D/x.pub")

# mode MODE — what the helper does with the next escrow key wrap (compromised.conf, read per request).
mkdir -p "$D/chelper"
cp "$COMPROMISED" "$D/chelper/tokenseal-helper"
chmod 755 "$D/chelper" "$D/chelper/tokenseal-helper"
mode() { echo "mode=$1" >"$D/chelper/compromised.conf"; chmod 644 "$D/chelper/compromised.conf"; }
mode escrow-stall
rig_start_bus
TS_HELPER="$D/chelper/tokenseal-helper" rig_start_daemon --idle-lock 0 --helper-keep 0

# root's vault and a blob: what the bystander measures.
R=$(create_vault mine "$D/rk-root") || fail "create root's vault"
B=$(wrap "$R" "4 1 2 3 4" 0) || fail "wrap"
B=$(printf '%02x' $(cut -d' ' -f2- <<<"$B"))
# The user's vault, escrowed to the X25519 officer (no helper needed).
U=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' v "owner=$UUID" ">$D/rk") || fail "create"
ubctl() { as_uid "$UUID" busctl --address="$BUS_ADDRESS" "$@"; }
ubctl call org.tokenseal1 "$U" $VIFACE SetEscrow asu 1 "x $X" 1 >"$D/out" 2>&1 || fail "SetEscrow x25519: $(cat "$D/out")"
BEFORE=$(vprop "$U" EscrowRecipients) || fail "EscrowRecipients"
[ -n "$BEFORE" ] && [ "$BEFORE" != "0" ] || fail "no recipient after SetEscrow: $BEFORE"


measure "no attack"

# --- SetEscrow with an RSA recipient whose helper stalls, two callers in a loop.
for _ in 1 2; do loop_as_user ubctl --timeout=60 call org.tokenseal1 "$U" $VIFACE SetEscrow asu 1 "hsm $RSA" 1; done
sleep 0.5
measure "SetEscrow to an RSA officer whose helper stalls, in a loop"
stop_attack
daemon_alive
grep -q 'compromised-helper: stall' "$D/daemon.log" || fail "no helper stalled on the escrow key wrap"
pass "SetEscrow waiting for a stalled escrow helper: the others are served meanwhile"

# --- One such call: a named error, and nothing changed.
rc=0; ( BQ_PREFIX=(as_uid "$UUID"); bq --timeout=60 call org.tokenseal1 "$U" $VIFACE SetEscrow asu 1 "hsm $RSA" 1 ) \
	>"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "org.tokenseal1.Error.Timeout: .*no answer in time" "$D/out" ||
	fail "SetEscrow with a stalled helper: $(cat "$D/out")"
cat "$D/out"
[ "$(vprop "$U" EscrowRecipients)" = "$BEFORE" ] || fail "a failed SetEscrow changed the recipients: $(vprop "$U" EscrowRecipients)"
mode escrow-exit
rc=0; bq call org.tokenseal1 "$U" $VIFACE SetEscrow asu 1 "hsm $RSA" 1 >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "org.tokenseal1.Error.Failed: .*escrow" "$D/out" || fail "SetEscrow with a helper that exits: $(cat "$D/out")"
cat "$D/out"
[ "$(vprop "$U" EscrowRecipients)" = "$BEFORE" ] || fail "a failed SetEscrow changed the recipients: $(vprop "$U" EscrowRecipients)"
pass "SetEscrow whose escrow helper stalls or exits: a named error (Timeout, Failed), the recipients unchanged"

# --- The helper answering: SetEscrow seals to the officer; the next one uses a box key wrapped ahead.
# The key wrapped for this call, then the two spares refilled after it: three helper runs.
mode none
runs() { grep -c 'compromised-helper: running as' "$D/daemon.log" || true; }
n0=$(runs)
vcall "$U" SetEscrow asu 2 "hsm $RSA" "x $X" 2 >"$D/out" 2>&1 || fail "SetEscrow RSA + x25519: $(cat "$D/out")"
AFTER=$(vprop "$U" EscrowRecipients)
[ "$AFTER" != "$BEFORE" ] && grep -q '"hsm"' <<<"$AFTER" || fail "EscrowRecipients after SetEscrow: $AFTER"
for _ in $(seq 100); do [ "$(runs)" -ge $((n0 + 3)) ] && break; sleep 0.1; done
[ "$(runs)" -ge $((n0 + 3)) ] || fail "the stock was not refilled after a use ($(( $(runs) - n0 )) helper runs)"
sleep 0.5
# Now a helper would stall: the call must not need one.
mode escrow-stall
t0=$(date +%s%N)
vcall "$U" SetEscrow asu 1 "hsm2 $RSA" 1 >"$D/out" 2>&1 || fail "SetEscrow from the stock: $(cat "$D/out")"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -q '"hsm2"' <<<"$(vprop "$U" EscrowRecipients)" || fail "EscrowRecipients: $(vprop "$U" EscrowRecipients)"
echo "  SetEscrow with a box key wrapped ahead, the helper stalling: $ms ms"
pass "SetEscrow to the RSA officer succeeds; the stock is refilled after it, and the next one needs no helper"

# --- RevokeAndRekey seals anew to the RSA officer with a key from the stock; once the stock is empty and
# the helper fails, the re-key answers a named error and changes nothing.
printf 'p1 %s\n' "$(head -n1 "$D/rk")" >"$D/keep"
rekey() {
	local spare
	spare=$(fdcall "$U" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">/dev/null") || fail "add a spare key"
	fdcall "$U" $VIFACE RevokeAndRekey 'sh' "$spare" "<$D/keep" >"$D/out" 2>&1
}
mode escrow-exit
rekey || fail "RevokeAndRekey with a box key from the stock: $(cat "$D/out")"
RECS=$(vprop "$U" EscrowRecipients)
grep -q '"hsm2"' <<<"$RECS" || fail "EscrowRecipients after the re-key: $RECS"
failed=0
for _ in 1 2 3 4; do
	if ! rekey; then failed=1; break; fi
done
[ $failed = 1 ] && grep -q "org.tokenseal1.Error.\(Failed\|Timeout\).*escrow to an RSA recipient" "$D/out" ||
	fail "RevokeAndRekey with no box key and a failing helper: $(cat "$D/out")"
cat "$D/out"
[ "$(vprop "$U" EscrowRecipients)" = "$RECS" ] || fail "a failed re-key changed the recipients"
pass "RevokeAndRekey re-seals to the RSA officer from the stock; with none left and a failing helper, a named error"

daemon_alive
core_finish
