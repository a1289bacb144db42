#!/bin/bash
# isolation-escrow-helper.sh — escrow to an RSA (HSM) officer never hands the vault secret to tokenseal-helper: the daemon builds the box, the helper only RSA-encrypts its key; the officer's token still opens it.
# Every byte the daemon writes to a helper is recorded by a relay put in the helper's place
# (tokensealed --helper); VS is learnt offline (core_keys, with the recovery key) and must
# not be among them. The relay itself is checked: the recovery key, which CreateVault's
# recovery enrollment never sends but an Unlock does, must be found in the record.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
T="$TS_BUILD/tests/tools"
[ -x "$T/core_keys" ] || fail "$T/core_keys not built"
D=$RIG_DIR PD="$RIG_DIR/policy.d" REC="$RIG_DIR/helper-input"
mkdir -p "$PD"
: >"$REC"
rig_helper_access "$REC"   # the relay runs as the helper's user

# The relay: started by the daemon as its helper (socket on fd 3), it starts the real helper
# on a socket of its own and copies both ways, appending what the daemon sends to $REC.
cat >"$D/relay.py" <<'PY'
import os, select, socket, subprocess, sys
real, rec = sys.argv[1], sys.argv[2]
up = socket.socket(fileno=os.dup(3))
mine, theirs = socket.socketpair()      # fd 3 is still taken: these are above it
os.dup2(theirs.fileno(), 3); theirs.close()
null = os.open("/dev/null", os.O_RDWR)
child = subprocess.Popen([real], stdin=null, stdout=null, pass_fds=(3,))
os.close(3)
log = open(rec, "ab", buffering=0)
up_open = True
while True:
    ready, _, _ = select.select([up, mine] if up_open else [mine], [], [])
    if up in ready:
        b = up.recv(65536)
        if b:
            log.write(b); mine.sendall(b)
        else:
            up_open = False; mine.shutdown(socket.SHUT_WR)
    if mine in ready:
        b = mine.recv(65536)
        if not b:
            break
        up.sendall(b)
up.shutdown(socket.SHUT_WR)
sys.exit(child.wait())
PY
printf '#!/bin/sh\nexec /usr/bin/python3 "%s" "%s" "%s"\n' "$D/relay.py" "$TS_HELPER" "$REC" >"$D/helper-relay"
chmod 755 "$D/helper-relay"
REAL_HELPER=$TS_HELPER
TS_HELPER="$D/helper-relay"

# hits HEX — how many times the bytes appear in everything the daemon sent to helpers.
hits() { /usr/bin/python3 -c 'import sys; print(open(sys.argv[1], "rb").read().count(bytes.fromhex(sys.argv[2])))' "$REC" "$1"; }

softhsm_setup "$D/hsm"
softhsm_keypair 03 escrow-officer rsa:2048
URI="pkcs11:token=$SOFTHSM_LABEL;id=%03"
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin"
"$TOKENSEAL" escrow show-key --pkcs11 "$URI" >"$D/hsm.pub" 2>/dev/null || fail "show-key --pkcs11"
# One RSA officer, threshold 1: the box holds VS itself (x = 0).
printf '[escrow]\nthreshold = 1\n[recipient hsm]\nkey = %s\n' "$(cat "$D/hsm.pub")" >"$PD/30-escrow.conf"
chmod 0644 "$PD/30-escrow.conf"

rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
P=$(create_vault esc "$D/user.rk") || fail "CreateVault under an RSA escrow policy"
[ -s "$REC" ] || fail "the relay recorded nothing: the escrow box was not sealed through the helper"
"$T/core_keys" "$STATE_DIR/0/esc.vault" "$D/user.rk" >"$D/keys" || fail "core_keys could not open the vault file"
VS=$(sed -n 's/^vs //p' "$D/keys")
[ ${#VS} = 64 ] || fail "no VS from core_keys: $(cut -c1-20 "$D/keys")"
n=$(hits "$VS")
echo "  VS in what the daemon sent to helpers (CreateVault): $n"
[ "$n" = 0 ] || fail "the daemon sent the vault secret to tokenseal-helper ($n copies) to seal the escrow box"
# The same with a second seal (SetEscrow re-seals to the recipient).
vcall "$P" SetEscrow 'asu' 1 "hsm $(cat "$D/hsm.pub")" 1 >"$D/set.err" 2>&1 || fail "SetEscrow: $(cat "$D/set.err")"
n=$(hits "$VS")
echo "  VS in what the daemon sent to helpers (after SetEscrow): $n"
[ "$n" = 0 ] || fail "SetEscrow sent the vault secret to tokenseal-helper ($n copies)"
pass "escrow to an RSA officer: VS never reaches tokenseal-helper (CreateVault, SetEscrow)"

# The relay sees secrets that are meant for the helper: a recovery-key Unlock runs there.
vcall "$P" Lock || fail "Lock"
unlock "$P" "" "$D/user.rk" || fail "Unlock with the recovery key (through the relay)"
RK_HEX=$(head -n1 "$D/user.rk" | tr -d '\n' | od -An -tx1 | tr -d ' \n')
[ "$(hits "$RK_HEX")" -ge 1 ] || fail "the relay did not record the recovery key of an Unlock: the record is blind"
B=$(wrap "$P" "4 9 8 7 6" 0) || fail "Wrap"
rig_stop_daemon
pass "control: the record holds the recovery key an Unlock sent to the helper"

# The officer's token opens the box the daemon built (format unchanged): recovery enrolls a new key.
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --state-dir "$STATE_DIR" --officer-pkcs11 "$URI" \
	--pin-fd 3 3<"$D/pin" >"$D/rec.out" 2>&1 || fail "escrow recover with the HSM officer: $(cat "$D/rec.out")"
grep -Eo '[0-9A-Z]{5}(-[0-9A-Z]{5}){7}' "$D/rec.out" | head -n1 >"$D/new.rk"
[ -s "$D/new.rk" ] || fail "no new recovery key printed: $(cat "$D/rec.out")"
TS_HELPER=$REAL_HELPER
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
unlock "$P" "" "$D/new.rk" || fail "unlock with the key the escrow recovery enrolled"
[ "$(unwrap "$P" "$B" 0)" = "4 9 8 7 6" ] || fail "the blob wrapped before the recovery"
pass "the HSM officer's token opens the daemon-built box (escrow recover), and the recovered key opens the vault"
core_finish
