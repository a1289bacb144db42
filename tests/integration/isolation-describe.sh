#!/bin/bash
# isolation-describe.sh — no property read and no Unlock waits for a token helper to describe a
# protector record. The daemon is restarted with a helper that never answers a request to describe
# one (tests/helper/compromised.c, mode=stall-describe): start-up waits a bounded time for the records
# of the vaults it loaded, says which it could not describe, and serves; such a record reads as
# unknown (no facts, no PIN offered to it) and is asked again from the loop later, never while a
# caller waits. While an unprivileged user reads its vault's properties and tries PINs in a loop,
# root's Peer.Ping and Unwrap keep their p99 under 50 ms and each under 1 s (isolation_latency.py);
# before, a read of a record not described yet waited up to 2 s for a helper. A protector enrolled
# meanwhile (the enrollment is answered) is described by its enrollment's reply: its facts are there
# at once, and Unlock takes the PIN to it.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
LAT="$TS_SRC/tests/integration/isolation_latency.py"
COMPROMISED=$TS_BUILD/tests/tokenseal-helper-compromised
[ -x "$COMPROMISED" ] || fail "no $COMPROMISED (make all builds it)"
D=$RIG_DIR
USR=tsds$$
rig_useradd "$USR"
UUID=$(id -u "$USR")
LIMIT_MS=50
MAX_MS=1000   # one read of a record not described yet used to wait up to 2 s
SECS=3

softhsm_setup "$D/hsm"
chmod -R a+rX "$D/hsm"
printf '%s\n' "$SOFTHSM_PIN" >"$D/hpin"
chmod 644 "$D/hpin"
rig_start_bus
rig_start_daemon --idle-lock 0

R=$(create_vault mine "$D/rk-root") || fail "create root's vault"
B=$(wrap "$R" "4 1 2 3 4" 0) || fail "wrap"
B=$(printf '%02x' $(cut -d' ' -f2- <<<"$B"))
U=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' v "owner=$UUID" ">$D/rk") || fail "create"
T() { "$TOKENSEAL" --vault "$UUID:v" "$@"; }
T enroll pkcs11 --uri "pkcs11:token=ts-test;id=%01" --pin-fd 3 3<"$D/hpin" >"$D/e" 2>&1 || fail "enroll pkcs11: $(cat "$D/e")"
P1=$(vprop "$U" Protectors | grep -o '"p[0-9]*" "pkcs11"' | grep -o '^"p[0-9]*' | tr -d '"' | head -n1)
[ -n "$P1" ] || fail "no pkcs11 protector: $(vprop "$U" Protectors)"

# The same daemon again, with a helper that describes nothing.
rig_stop_daemon
mkdir -p "$D/chelper"
cp "$COMPROMISED" "$D/chelper/tokenseal-helper"
chmod 711 "$D/chelper/tokenseal-helper"
chmod 755 "$D/chelper"
echo "mode=stall-describe" >"$D/chelper/compromised.conf"
chmod 644 "$D/chelper/compromised.conf"
LOG0=$(wc -l <"$D/daemon.log")
t0=$(date +%s%N)
TS_HELPER="$D/chelper/tokenseal-helper" rig_start_daemon --idle-lock 0 --helper-keep 0
t1=$(date +%s%N)
echo "  start-up with a record no helper describes: $(((t1 - t0) / 1000000)) ms"
tail -n +"$((LOG0 + 1))" "$D/daemon.log" | grep -q "did not describe a pkcs11 protector record" ||
	fail "start-up did not say a record was left undescribed: $(tail -n +"$((LOG0 + 1))" "$D/daemon.log" | tail -n 20)"
grep -q "compromised-helper: stall-describe" "$D/daemon.log" || fail "the stalling helper was not asked"
pass "start-up waits a bounded time for a helper that will not describe a record, says so, and serves"
unlock "$R" recovery "$D/rk-root" >/dev/null || fail "unlock root's vault again"

as_u() { as_uid "$UUID" "$@"; }
ufdcall() { as_u /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$@"; }
ubctl() { as_u busctl --address="$BUS_ADDRESS" "$@"; }
helpers() { pgrep -c -u "$TS_HELPER_USER" -f "$D/chelper/tokenseal-helper" || true; }

# Properties (Protectors: each record's facts) and Unlock with a PIN (which token takes it) in a loop.
loop_as_user ubctl call org.tokenseal1 "$U" org.freedesktop.DBus.Properties GetAll s $VIFACE
loop_as_user ufdcall "$U" $VIFACE Unlock 'sha{ss}' "" "<$D/hpin" ""
sleep 0.3
/usr/bin/python3 "$LAT" "$BUS_ADDRESS" "$R" "$B" "$SECS" "$LIMIT_MS" "GetAll and Unlock of undescribed records" \
	"$MAX_MS" >"$D/lat" 2>&1 ||
	{ cat "$D/lat"; daemon_alive; fail "root's calls waited (p99 >= $LIMIT_MS ms or one >= $MAX_MS ms): $(cat "$D/lat")"; }
cat "$D/lat"
n=$(helpers)
stop_attack
[ "$n" -le 1 ] || fail "$n helpers describing records during the reads: a read started helpers"
vprop "$U" Protectors | grep -q "\"$P1\" \"pkcs11\" \"[^\"]*\" [0-9]* 0" ||
	fail "the undescribed record shows facts: $(vprop "$U" Protectors)"
pass "reads of a record no helper describes never wait, start no helper, and show no facts"

# An enrollment meanwhile: its reply carries the record's facts, so Unlock offers the PIN to it.
chmod 644 "$D/rk"
# (after the back-off the wrong PINs above earned)
for _ in $(seq 60); do
	out=$(ufdcall "$U" $VIFACE Unlock 'sha{ss}' recovery "<$D/rk" "" 2>&1) && break
	case $out in *Error.Busy*) sleep 1 ;; *) fail "unlock the user's vault: $out" ;; esac
done
[ "$(vprop "$U" Locked)" = false ] || fail "unlock the user's vault: $out"
T enroll pkcs11 --uri "pkcs11:token=ts-test;id=%02" --pin-fd 3 3<"$D/hpin" >"$D/e" 2>&1 || fail "enroll pkcs11: $(cat "$D/e")"
P2=$(vprop "$U" Protectors | grep -o '"p[0-9]*" "pkcs11"' | grep -o '^"p[0-9]*' | tr -d '"' | grep -vx "$P1" | head -n1)
[ -n "$P2" ] || fail "no second pkcs11 protector: $(vprop "$U" Protectors)"
vprop "$U" Protectors | grep -q "\"$P2\" \"pkcs11\" \"[^\"]*\" [0-9]* [1-9][0-9]* \"token\" \"ts-test\"" ||
	fail "the new record's facts are not there at once: $(vprop "$U" Protectors)"
T lock >/dev/null 2>&1 || true
for _ in $(seq 60); do
	out=$(ufdcall "$U" $VIFACE Unlock 'sha{ss}' "" "<$D/hpin" "" 2>&1) && break
	case $out in *Error.Busy*) sleep 1 ;; *) fail "Unlock with the PIN: $out" ;; esac
done
grep -q "$P2" <<<"$out" || fail "Unlock was not opened by the new protector: $out"
pass "a protector enrolled meanwhile is described by its enrollment: its facts at once, the PIN goes to it"

daemon_alive
core_finish
