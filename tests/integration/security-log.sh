#!/bin/bash
# security-log.sh — text from outside the daemon cannot forge log lines: a token helper (the process that
# parses a token's bytes, so the one a malicious token would subvert) answers with a message holding a
# newline and a made-up "event=unlock ... result=ok"; the daemon logs the message on one line, escaped.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR

# The subverted helper: reads the request, answers Failed with a message of its choosing. (A Failed from
# the helper makes the daemon log the message and check a recovery key itself, so the unlock still works.)
FORGED='<5>tokensealed: event=unlock vault=alice owner=[0-9-]* uid=1000 pid=4242 protector=p2 result=ok'
cat >"$D/evil-helper" <<'PY'
#!/usr/bin/python3
import os, struct, sys

def read_exact(n):
    b = b""
    while len(b) < n:
        c = os.read(3, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b

(n,) = struct.unpack(">I", read_exact(4))
read_exact(n)
msg = open(os.path.join(os.path.dirname(sys.argv[0]), "evil-message"), "rb").read()
body = struct.pack(">BIi", 32, 4, -1) + struct.pack(">BI", 33, len(msg)) + msg
os.write(3, struct.pack(">I", len(body)) + body)
PY
chmod 755 "$D/evil-helper"
# A newline, then the forged event; then a carriage return, an ANSI "erase line", NEL (U+0085), LINE
# SEPARATOR (U+2028) and a right-to-left override (U+202E), each before more text. (The daemon keeps 255
# bytes of a helper's message.) In a file next to the helper: the daemon passes it no environment of ours.
printf 'helper broke\n%s\r<5>cr\033[2K<5>esc\xc2\x85<5>nel\xe2\x80\xa8<5>ls\xe2\x80\xaeok' "$FORGED" >"$D/evil-message"
chmod 644 "$D/evil-message"

rig_start_bus
TS_HELPER="$D/evil-helper" rig_start_daemon --idle-lock 0 --audit-log "$D/audit.jsonl"
P=$(create_vault victim "$D/rk") || fail "CreateVault"
vcall "$P" Lock >/dev/null || fail "Lock"
unlock "$P" recovery "$D/rk" >/dev/null || fail "unlock (checked by the daemon after the helper failed)"
[ "$(vprop "$P" Locked)" = false ] || fail "vault not unlocked"

# The message was logged (the test reached the logger) ...
grep -q "vault=victim protector=p1: helper broke" "$D/daemon.log" ||
	fail "the helper's message did not reach the log: $(cat "$D/daemon.log")"
# ... and no line of the log is the forged event, nor starts with its text.
if grep -n "event=unlock vault=alice" "$D/daemon.log" | grep -v "helper broke"; then
	fail "a forged audit line in the daemon log (above)"
fi
if LC_ALL=C grep -naP '[\r\x1b]|\xc2\x85|\xe2\x80[\xa8\xae]' "$D/daemon.log"; then
	fail "control or separator characters reached the log (above)"
fi
line=$(grep "vault=victim protector=p1: helper broke" "$D/daemon.log")
for esc in '\x0a<5>tokensealed: event=unlock' '\x0d<5>cr' '\x1b[2K<5>esc' '\xc2\x85<5>nel' '\xe2\x80\xa8<5>ls' \
	'\xe2\x80\xaeok'; do
	[[ $line == *"$esc"* ]] || fail "expected the escape '$esc' in: $line"
done
pass "a token helper's message with a newline, CR, ESC, NEL, U+2028, U+202E stays one escaped log line"

# The audit trail: one JSON object per line, every one of them valid.
python3 - "$D/audit.jsonl" <<'PY' || fail "audit log is not one JSON object per line"
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert lines, "empty audit log"
for l in lines:
    o = json.loads(l)
    assert o["vault"] in ("victim", "-") and isinstance(o["uid"], int), l
PY
grep -c '"event":"unlock"' "$D/audit.jsonl" | grep -qx 1 || fail "expected one unlock in the audit log"
pass "the JSON audit log stays one valid object per line, with the one real unlock"

daemon_alive
core_finish
