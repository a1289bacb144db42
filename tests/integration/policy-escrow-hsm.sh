#!/bin/bash
# policy-escrow-hsm.sh — an escrow officer whose RSA key lives on a PKCS#11 token (SoftHSM2) next to two X25519 officers, 2-of-3; offline recovery refused while the daemon runs.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
PD="$D/policy.d"
mkdir -p "$PD"
rig_start_bus

softhsm_setup "$D/hsm"          # exports SOFTHSM2_CONF for the CLI
softhsm_keypair 03 escrow-officer rsa:3072
softhsm_keypair 04 other-officer rsa:3072
softhsm_export_pub 03 "$D/hsm.pem"
softhsm_export_pub 04 "$D/other.pem"
URI="pkcs11:token=$SOFTHSM_LABEL;id=%03"
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin"
printf 'not-the-pin\n' >"$D/badpin"

# The RSA officer's key: one text form whether read from the token or from a PEM file.
"$TOKENSEAL" escrow show-key --pkcs11 "$URI" >"$D/hsm.pub" 2>"$D/show.err" || fail "show-key --pkcs11: $(cat "$D/show.err")"
grep -qx 'tokenseal-escrow-rsa:v1:[A-Za-z0-9_-]*' "$D/hsm.pub" || fail "RSA key text: $(cat "$D/hsm.pub")"
grep -Eq '^rsa-3072, fingerprint [0-9a-f]{4}(:[0-9a-f]{4}){7}$' "$D/show.err" || fail "show-key stderr: $(cat "$D/show.err")"
HSM_FP=$(sed -n 's/^rsa-3072, fingerprint //p' "$D/show.err")
"$TOKENSEAL" escrow show-key "$D/hsm.pem" >"$D/hsm2.pub" 2>/dev/null || fail "show-key FILE"
cmp -s "$D/hsm.pub" "$D/hsm2.pub" || fail "token and PEM file give different key texts"
expect_fail "not an RSA key" "$TOKENSEAL" escrow show-key --pkcs11 "pkcs11:token=$SOFTHSM_LABEL;id=%02"
expect_fail "may not carry a PIN" "$TOKENSEAL" escrow show-key --pkcs11 "$URI;pin-value=123456"
for o in alice bob; do
	"$TOKENSEAL" escrow keygen --out-secret "$D/$o.sec" >"$D/$o.pub" || fail "keygen $o"
done
pass "escrow show-key: the HSM officer's RSA-3072 key from the token and from PEM, with its fingerprint; EC and PIN-in-URI refused"

# A policy naming the HSM officer (a line of ~550 characters) and two X25519 officers, any 2 of 3.
{
	echo "[escrow]"
	echo "threshold = 2"
	printf '[recipient hsm]\nkey = %s\n' "$(cat "$D/hsm.pub")"
	for o in alice bob; do printf '[recipient %s]\nkey = %s\n' $o "$(cat "$D/$o.pub")"; done
} >"$PD/30-escrow.conf"
chmod 0644 "$PD/30-escrow.conf"
"$TOKENSEAL" policy check "$PD/30-escrow.conf" | grep -q ': ok$' || fail "policy check with an RSA recipient"

rig_start_daemon --idle-lock 0 --policy-dir "$PD"
P=$(create_vault esc "$D/user.rk") || fail "CreateVault under the escrow policy"
rec=$(vprop "$P" EscrowRecipients)
grep -q "\"$HSM_FP\" \"hsm\"" <<<"$rec" || fail "EscrowRecipients lacks the HSM officer ($HSM_FP): $rec"
"$TOKENSEAL" status --vault esc >"$D/st" || fail "tokenseal status"
grep -q "^    $HSM_FP  hsm\$" "$D/st" || fail "status does not list the RSA recipient: $(cat "$D/st")"
# The same set through the CLI: the HSM officer read from the token, then from its PEM file.
"$TOKENSEAL" --vault esc escrow set --threshold 2 --pkcs11 "hsm=$URI" "alice=$(cat "$D/alice.pub")" \
	"bob=$(cat "$D/bob.pub")" >"$D/set.out" 2>&1 || fail "escrow set --pkcs11: $(cat "$D/set.out")"
"$TOKENSEAL" --vault esc escrow set --threshold 2 "hsm=$D/hsm.pem" "alice=$(cat "$D/alice.pub")" \
	"bob=$(cat "$D/bob.pub")" >"$D/set.out" 2>&1 || fail "escrow set FILE: $(cat "$D/set.out")"
# Another RSA key in its place is not the policy's officer.
rc=0; "$TOKENSEAL" --vault esc escrow set --threshold 2 "hsm=$D/other.pem" "alice=$(cat "$D/alice.pub")" \
	"bob=$(cat "$D/bob.pub")" >"$D/set.out" 2>&1 || rc=$?
[ $rc -eq 10 ] && grep -q "recipient hsm" "$D/set.out" || fail "escrow set with another RSA key (rc $rc): $(cat "$D/set.out")"
grep -q "\"$HSM_FP\" \"hsm\"" <<<"$(vprop "$P" EscrowRecipients)" || fail "refused set changed the recipients"
pass "CreateVault escrows 2-of-3 to the HSM officer and two X25519 officers; status lists the RSA recipient's fingerprint; escrow set --pkcs11 / PEM"

B=$(wrap "$P" "4 9 8 7 6" 0) || fail "Wrap"

# Offline recovery while the daemon runs: refused, nothing written; a second daemon is refused too.
cp "$STATE_DIR/0/esc.vault" "$D/before.vault"
rc=0
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --state-dir "$STATE_DIR" --secret "$D/alice.sec" \
	--secret "$D/bob.sec" >"$D/busy.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "tokensealed is running on $STATE_DIR; stop it first" "$D/busy.out" ||
	fail "recover while the daemon runs (rc $rc): $(cat "$D/busy.out")"
grep -q "New recovery key" "$D/busy.out" && fail "a recovery key was printed while refused"
cmp -s "$D/before.vault" "$STATE_DIR/0/esc.vault" || fail "the vault file changed under a refused recovery"
[ ! -e "$STATE_DIR/0/esc.vault.bak" ] || cmp -s "$D/before.vault" "$STATE_DIR/0/esc.vault" || fail "backup written"
rc=0
timeout 20 "$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$STATE_DIR" --policy-dir "$PD" >"$D/second.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "tokensealed is running on $STATE_DIR; stop it first" "$D/second.log" ||
	fail "a second daemon on the same state directory (rc $rc): $(cat "$D/second.log")"
daemon_alive
pass "escrow recover and a second tokensealed are refused while tokensealed runs on the state directory; the file is unchanged"
rig_stop_daemon

# Daemon stopped: the HSM officer alone is not enough; a wrong PIN is refused; HSM + alice recover.
rc=0
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --state-dir "$STATE_DIR" --officer-pkcs11 "$URI" \
	--pin-fd 3 3<"$D/pin" >"$D/rec1.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "needs 2 of its 3 escrow recipients" "$D/rec1.out" || fail "recover with the HSM officer alone (rc $rc): $(cat "$D/rec1.out")"
rc=0
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --state-dir "$STATE_DIR" --officer-pkcs11 "$URI" \
	--secret "$D/alice.sec" --pin-fd 3 3<"$D/badpin" >"$D/rec1.out" 2>&1 || rc=$?
[ $rc -eq 6 ] && grep -q "PIN incorrect" "$D/rec1.out" || fail "recover with a wrong PIN (rc $rc): $(cat "$D/rec1.out")"
rc=0
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --state-dir "$STATE_DIR" \
	--officer-pkcs11 "pkcs11:token=$SOFTHSM_LABEL;id=%04" --secret "$D/alice.sec" --pin-fd 3 3<"$D/pin" >"$D/rec1.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "is not an escrow recipient" "$D/rec1.out" || fail "recover with another HSM key (rc $rc): $(cat "$D/rec1.out")"
cmp -s "$D/before.vault" "$STATE_DIR/0/esc.vault" || fail "a refused recovery changed the vault file"
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --state-dir "$STATE_DIR" --officer-pkcs11 "$URI" \
	--secret "$D/alice.sec" --pin-fd 3 3<"$D/pin" >"$D/rec2.out" 2>&1 || fail "recover with HSM + alice: $(cat "$D/rec2.out")"
grep -Eo '[0-9A-Z]{5}(-[0-9A-Z]{5}){7}' "$D/rec2.out" | head -n1 >"$D/new.rk"
[ -s "$D/new.rk" ] || fail "no new recovery key printed: $(cat "$D/rec2.out")"
grep -q "$SOFTHSM_PIN" "$D/rec2.out" && fail "the PIN was printed"
pass "escrow recover: HSM officer alone refused, wrong PIN refused (exit 6), another HSM key refused; HSM (C_Decrypt on the token) + one X25519 officer enroll a new recovery key"

rig_start_daemon --idle-lock 0 --policy-dir "$PD"
unlock "$P" "" "$D/new.rk" || fail "unlock with the recovered key"
[ "$(unwrap "$P" "$B" 0)" = "4 9 8 7 6" ] || fail "old blob after escrow recovery"
vcall "$P" Lock || fail "Lock"
rig_stop_daemon
pass "the recovered key opens the vault and its data"

# An RSA recipient's key swapped in the file (another 3072-bit key, same size) is caught at unlock.
cp "$STATE_DIR/0/esc.vault" "$D/good.vault"
/usr/bin/python3 - "$STATE_DIR/0/esc.vault" "$D/hsm.pub" "$D/other.pem" <<'PY' || fail "swap the RSA recipient"
import base64, subprocess, sys
path, hsm_txt, other_pem = sys.argv[1:]
def spki_of_text(t):
    t = t.strip().split(":")[-1]
    return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
a = spki_of_text(open(hsm_txt).read())
b = subprocess.run(["openssl", "pkey", "-pubin", "-in", other_pem, "-outform", "DER"], capture_output=True, check=True).stdout
assert len(a) == len(b) and a != b
data = open(path, "rb").read()
assert data.count(a) == 1
open(path, "wb").write(data.replace(a, b))
PY
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
expect_fail org.tokenseal1.Error.VaultCorrupt unlock "$P" "" "$D/user.rk"
rig_stop_daemon
cp "$D/good.vault" "$STATE_DIR/0/esc.vault"
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
unlock "$P" "" "$D/user.rk" || fail "the untampered file no longer opens"
pass "an RSA escrow recipient swapped in the vault file: VaultCorrupt at unlock"
core_finish
