#!/bin/bash
# policy-escrow.sh — escrow required by policy: officers' keys, 2-of-3 offline recovery, refusal with 1, tampered headers refused.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
PD="$RIG_DIR/policy.d"
mkdir -p "$PD"
rig_start_bus

# Officers' key pairs: the public key on stdout, the secret only in the 0600 file.
for o in alice bob carol; do
	"$TOKENSEAL" escrow keygen --out-secret "$RIG_DIR/$o.sec" >"$RIG_DIR/$o.pub" || fail "keygen $o"
	grep -qx 'tokenseal-escrow-pub:v1:[A-Za-z0-9_-]\{43\}' "$RIG_DIR/$o.pub" || fail "public key text: $(cat "$RIG_DIR/$o.pub")"
	grep -q '^tokenseal-escrow-sec:v1:' "$RIG_DIR/$o.sec" || fail "secret key file"
	[ "$(stat -c %a "$RIG_DIR/$o.sec")" = 600 ] || fail "secret key file mode $(stat -c %a "$RIG_DIR/$o.sec")"
	grep -q sec "$RIG_DIR/$o.pub" && fail "secret on stdout"
done
expect_fail "--out-secret FILE is required" "$TOKENSEAL" escrow keygen
pass "escrow keygen: public key printed, secret key written 0600"

{
	echo "[escrow]"
	echo "threshold = 2"
	for o in alice bob carol; do printf '[recipient %s]\nkey = %s\n' $o "$(cat "$RIG_DIR/$o.pub")"; done
} >"$PD/30-escrow.conf"
chmod 0644 "$PD/30-escrow.conf"
"$TOKENSEAL" policy check "$PD/30-escrow.conf" | grep -q ': ok$' || fail "policy check of a good file"
printf '[escrow]\nthreshold = 4\n[recipient x]\nkey = %s\n' "$(cat "$RIG_DIR/alice.pub")" >"$RIG_DIR/bad.conf"
chmod 0644 "$RIG_DIR/bad.conf"
rc=0; "$TOKENSEAL" policy check "$RIG_DIR/bad.conf" 2>"$RIG_DIR/check.err" || rc=$?
[ $rc -eq 10 ] && grep -q "bad.conf:2: \[escrow\] threshold" "$RIG_DIR/check.err" || fail "policy check of a bad file (rc $rc): $(cat "$RIG_DIR/check.err")"
"$TOKENSEAL" policy show --policy-dir "$PD" >"$RIG_DIR/show" || fail "policy show"
grep -q "^\[escrow\] threshold = 2    # $PD/30-escrow.conf:2$" "$RIG_DIR/show" || fail "policy show: $(cat "$RIG_DIR/show")"
grep -q "^\[protectors\] min = 1    # default$" "$RIG_DIR/show" || fail "policy show default"
pass "policy check (ok / FILE:LINE, exit 10) and policy show (value and where it was set)"

rig_start_daemon --idle-lock 0 --policy-dir "$PD"
P=$(create_vault esc "$RIG_DIR/user.rk") || fail "CreateVault under escrow policy"
rec=$(vprop "$P" EscrowRecipients)
for o in alice bob carol; do grep -q "\"$o\"" <<<"$rec" || fail "EscrowRecipients lacks $o: $rec"; done
grep -Eq '^3 "[0-9a-f]{4}(:[0-9a-f]{4}){7}"' <<<"$rec" || fail "EscrowRecipients fingerprints: $rec"
[ "$(vprop "$P" PolicyStatus)" = 'true ""' ] || fail "PolicyStatus: $(vprop "$P" PolicyStatus)"
"$TOKENSEAL" status --vault esc >"$RIG_DIR/st" || fail "tokenseal status"
grep -q "escrow:       3 officer(s) can also open this vault" "$RIG_DIR/st" || fail "status: $(cat "$RIG_DIR/st")"
for o in alice bob carol; do grep -Eq "^    [0-9a-f]{4}(:[0-9a-f]{4}){7}  $o\$" "$RIG_DIR/st" || fail "status lacks $o"; done
grep -q "p1   recovery" "$RIG_DIR/st" || fail "status lacks the protector"
# Escrow is the policy's, exactly: fewer recipients are refused.
expect_fail "PolicyViolation" vcall "$P" SetEscrow asu 2 "alice $(cat "$RIG_DIR/alice.pub")" "bob $(cat "$RIG_DIR/bob.pub")" 2
rec2=$(vprop "$P" EscrowRecipients)
[ "$rec2" = "$rec" ] || fail "refused SetEscrow changed the recipients"
# The same set again is accepted, logged and signalled.
listen_start "$RIG_DIR/mon"
"$TOKENSEAL" --vault esc escrow set --threshold 2 "alice=$(cat "$RIG_DIR/alice.pub")" "bob=$(cat "$RIG_DIR/bob.pub")" \
	"carol=$(cat "$RIG_DIR/carol.pub")" >"$RIG_DIR/set.out" || fail "escrow set with the policy's set"
grep -q "any 2 of them can recover it" "$RIG_DIR/set.out" || fail "escrow set: $(cat "$RIG_DIR/set.out")"
rc=0; "$TOKENSEAL" --vault esc escrow set "alice=$(cat "$RIG_DIR/alice.pub")" 2>"$RIG_DIR/set.err" || rc=$?
[ $rc -eq 10 ] && grep -q "\[recipient bob\]\|\[escrow\]" "$RIG_DIR/set.err" || fail "escrow set of 1 (rc $rc): $(cat "$RIG_DIR/set.err")"
sleep 0.5
grep -q "^EscrowChanged " "$RIG_DIR/mon" || fail "no EscrowChanged signal: $(cat "$RIG_DIR/mon")"
grep -q "event=escrow vault=esc owner=[0-9-]* uid=0 .*result=ok" "$RIG_DIR/daemon.log" || fail "no escrow audit event"
pass "CreateVault escrows to the policy's 3 officers (2-of-3); SetEscrow must match the policy; EscrowChanged emitted"

B=$(wrap "$P" "4 1 2 3 4" 0) || fail "Wrap"
rig_stop_daemon

# Offline recovery: one officer is not enough; two are.
rc=0
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --secret "$RIG_DIR/bob.sec" --state-dir "$STATE_DIR" \
	>"$RIG_DIR/rec1.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "needs 2 of its 3 escrow recipients" "$RIG_DIR/rec1.out" || fail "recover with 1 officer (rc $rc): $(cat "$RIG_DIR/rec1.out")"
"$TOKENSEAL" escrow keygen --out-secret "$RIG_DIR/mallory.sec" >"$RIG_DIR/mallory.pub" || fail "keygen mallory"
rc=0
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --secret "$RIG_DIR/bob.sec" --secret "$RIG_DIR/mallory.sec" \
	--state-dir "$STATE_DIR" >"$RIG_DIR/rec1.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "is not an escrow recipient" "$RIG_DIR/rec1.out" || fail "recover with a stranger's key: $(cat "$RIG_DIR/rec1.out")"
"$TOKENSEAL" escrow recover --vault-file "$STATE_DIR/0/esc.vault" --secret "$RIG_DIR/alice.sec" --secret "$RIG_DIR/carol.sec" \
	--state-dir "$STATE_DIR" >"$RIG_DIR/rec2.out" 2>&1 || fail "recover with 2 officers: $(cat "$RIG_DIR/rec2.out")"
grep -Eo '[0-9A-Z]{5}(-[0-9A-Z]{5}){7}' "$RIG_DIR/rec2.out" | head -n1 >"$RIG_DIR/new.rk"
[ -s "$RIG_DIR/new.rk" ] || fail "no new recovery key printed: $(cat "$RIG_DIR/rec2.out")"
pass "escrow recover: refused with 1 officer and with a stranger's key; 2 of 3 enroll a new recovery key"

rig_start_daemon --idle-lock 0 --policy-dir "$PD"
unlock "$P" "" "$RIG_DIR/new.rk" || fail "unlock with the recovered key"
[ "$(unwrap "$P" "$B" 0)" = "4 1 2 3 4" ] || fail "old blob after escrow recovery"
vprop "$P" Protectors | grep -q '"Recovery key (escrow recovery)"' || fail "new protector not listed"
vcall "$P" Lock || fail "Lock"
unlock "$P" "" "$RIG_DIR/user.rk" || fail "the user's first key after recovery"
pass "the recovered key opens the vault and its data; the first key still works"

# Tampered headers (edited on disk between restarts) are refused at unlock with VaultCorrupt.
rig_stop_daemon
cp "$STATE_DIR/0/esc.vault" "$RIG_DIR/good.vault"
tamper() { # python expression over b (bytes) -> bytes
	/usr/bin/python3 - "$STATE_DIR/0/esc.vault" "$1" <<'PY'
import base64, sys
path, expr = sys.argv[1], sys.argv[2]
b = open(path, "rb").read()
def pub(name):
    t = open(name).read().strip().split(":")[-1]
    return base64.urlsafe_b64decode(t + "=")
nb = eval(expr)
assert nb != b and len(nb) == len(b), "tamper did not apply"
open(path, "wb").write(nb)
PY
}
RD="$RIG_DIR"
for t in "b.replace(b'carol', b'carox', 1)" \
         "b.replace(pub('$RD/alice.pub'), pub('$RD/mallory.pub'), 1)" \
         "b.replace(b'Recovery key (escrow recovery)', b'Recovery key (escrow recoverz)', 1)"; do
	cp "$RIG_DIR/good.vault" "$STATE_DIR/0/esc.vault"
	tamper "$t" || fail "tamper $t"
	rig_start_daemon --idle-lock 0 --policy-dir "$PD"
	expect_fail org.tokenseal1.Error.VaultCorrupt unlock "$P" "" "$RIG_DIR/user.rk"
	rig_stop_daemon
done
cp "$RIG_DIR/good.vault" "$STATE_DIR/0/esc.vault"
rig_start_daemon --idle-lock 0 --policy-dir "$PD"
unlock "$P" "" "$RIG_DIR/user.rk" || fail "the untampered file no longer opens"
pass "an escrow label edited, an escrow recipient's key replaced, a protector edited: VaultCorrupt at unlock"
core_finish
