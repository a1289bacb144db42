#!/bin/bash
# policy-audit.sh — the audit trail (--audit-log JSON lines) and [audit] fail-closed: no record, no operation.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
PD="$RIG_DIR/policy.d"
AL="$RIG_DIR/audit.jsonl"
mkdir -p "$PD"
printf '[audit]\nfail-closed = yes\n' >"$PD/90-audit.conf"
chmod 0644 "$PD/90-audit.conf"
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL"

add_recovery() { fdcall "$1" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$2"; }
P=$(create_vault aud "$RIG_DIR/rk1") || fail "CreateVault"
add_recovery "$P" "$RIG_DIR/rk2" >/dev/null || fail "AddProtector"
vcall "$P" Lock || fail "Lock"
create_vault aud-other "$RIG_DIR/rk-other" >/dev/null || fail "CreateVault other"
expect_fail org.tokenseal1.Error.AuthenticationFailed unlock "$P" p1 "$RIG_DIR/rk-other"
unlock "$P" p2 "$RIG_DIR/rk2" || fail "Unlock"
vcall "$P" RevokeProtector s p2 || fail "RevokeProtector"

# Each event a JSON object with vault, uid, pid, protector and result; never a secret.
/usr/bin/python3 - "$AL" "$RIG_DIR/rk1" "$RIG_DIR/rk2" <<'PY' || fail "audit log content"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = [json.loads(l) for l in lines]
def has(**kw):
    return any(all(e.get(k) == v for k, v in kw.items()) for e in ev)
for want in (dict(event="create", vault="aud", result="ok"), dict(event="enroll", vault="aud", protector="p2", result="ok"),
             dict(event="unlock", vault="aud", protector="p1", result="AuthenticationFailed"),
             dict(event="unlock", vault="aud", protector="p2", result="ok"),
             dict(event="revoke", vault="aud", protector="p2", result="ok")):
    assert has(**want), ("missing", want, lines)
assert all(e["uid"] == 0 and e["pid"] > 0 for e in ev if e["event"] in ("unlock", "revoke")), lines
text = open(sys.argv[1]).read()
for f in sys.argv[2:]:
    k = open(f).read().strip()
    assert k not in text and k.replace("-", "") not in text, "secret in the audit log"
PY
pass "audit log: create, enroll, failed and good unlock, revoke with vault/uid/pid/protector; no secrets"

# The sink becomes unwritable (a directory where the file was): every audited operation is refused.
rm -f "$AL"
mkdir "$AL"
vcall "$P" Lock || fail "Lock"
expect_fail "org.tokenseal1.Error.IOError: refused: the audit record cannot be written" unlock "$P" p1 "$RIG_DIR/rk1"
[ "$(vprop "$P" Locked)" = true ] || fail "unlocked without an audit record"
expect_fail "org.tokenseal1.Error.IOError" create_vault aud2 "$RIG_DIR/rk3"
[ ! -e "$STATE_DIR/0/aud2.vault" ] || fail "vault created without an audit record"
grep -q "cannot append to the audit log" "$RIG_DIR/daemon.log" || fail "no log line about the audit sink"
pass "[audit] fail-closed: unwritable audit log refuses Unlock and CreateVault"
rmdir "$AL"
unlock "$P" p1 "$RIG_DIR/rk1" || fail "Unlock once the sink is back"
rig_stop_daemon

# Without fail-closed the same failure is logged and the operation goes on.
rm -f "$PD/90-audit.conf"
mkdir "$AL.d"
rig_start_daemon --idle-lock 0 --policy-dir "$PD" --audit-log "$AL.d"
unlock "$P" p1 "$RIG_DIR/rk1" || fail "fail-open Unlock"
pass "without fail-closed an unwritable audit log does not block"
core_finish
