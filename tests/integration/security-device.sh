#!/bin/bash
# security-device.sh — a vault owner cannot make the token helper (root) open a device of their choosing:
# AddProtector's device= (and every option naming a device, file, module or TCTI) is refused before any helper
# runs, and the unix: CTAP-HID-over-socket transport exists only in a daemon started with --test-devices.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
[ -x "$SOFTFIDO" ] || fail "softfido not built"

# The attacker's socket: a SOCK_SEQPACKET listener run by the unprivileged user, logging each connection (and
# hanging up at once, so that a helper that did connect fails fast instead of waiting for CTAP-HID answers).
mkdir -m 777 "$RIG_DIR/other"
TRAP=$RIG_DIR/other/trap.sock TRAP_LOG=$RIG_DIR/other/trap.log
# (setpriv execs python: $! is the listener itself, which the rig stops by that pid.)
setpriv --reuid "$OTHER_UID" --regid "$OTHER_UID" --clear-groups /usr/bin/python3 - "$TRAP" "$TRAP_LOG" <<'PY' &
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path)
os.chmod(path, 0o777)
s.listen(16)
open(log, "a").close()
while True:
    c, _ = s.accept()
    with open(log, "a") as f:
        f.write("connected\n")
    c.close()
PY
RIG_PIDS+=($!)
for _ in $(seq 100); do [ -S "$TRAP" ] && [ -f "$TRAP_LOG" ] && break; sleep 0.05; done
[ -S "$TRAP" ] || fail "the trap socket did not start"
trapped() { wc -l <"$TRAP_LOG"; }

# add_as_other VAULTPATH TYPE OPTIONS — AddProtector as the unprivileged owner.
add_as_other() {
	as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$1" $VIFACE AddProtector 'sa{ss}hh' "$2" "$3" \
		"</dev/null" ">/dev/null"
}

# --- 1. A production daemon (no test flag, keys enumerated): the owner names the trap as the device.
rig_start_bus
rig_start_daemon --idle-lock 0 --fido2-timeout 2
OP=$(as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" /org/tokenseal1 org.tokenseal1.Manager \
	CreateVault 'sa{ss}h' mine "" ">$RIG_DIR/other/rk") || fail "the unprivileged user's CreateVault"
[ "$(vprop "$OP" Owner)" = "$OTHER_UID" ] || fail "owner of 'mine'"
out=$(add_as_other "$OP" fido2 "device=unix:$TRAP,pin=no,up=no" 2>&1) && fail "AddProtector with device= succeeded: $out"
sleep 0.5
[ "$(trapped)" = 0 ] || fail "the token helper (root) connected to the caller's socket $(trapped) time(s); the reply: $out"
case $out in org.tokenseal1.Error.InvalidArgs:*"tokensealed --fido2-device"*) ;;
*) fail "AddProtector device=unix:SOCKET: expected InvalidArgs naming tokensealed --fido2-device, got: $out" ;; esac
expect_fail org.tokenseal1.Error.InvalidArgs add_as_other "$OP" fido2 "device=/dev/hidraw0,pin=no"
sleep 1
[ "$(trapped)" = 0 ] || fail "the token helper connected to the caller's socket $(trapped) time(s)"
pass "AddProtector fido2 device=unix:SOCKET (and device=/dev/...) from the owner: InvalidArgs naming tokensealed --fido2-device; the socket saw no connection"

# Every other option that would name a device, file, module or TCTI, and options a type does not know.
expect_fail "tokensealed --tpm2-tcti" add_as_other "$OP" tpm2 "tcti=swtpm:path=$TRAP"
expect_fail "tokensealed --pkcs11-module" add_as_other "$OP" pkcs11 "uri=pkcs11:token=x;id=%01,module=$RIG_DIR/other/evil.so"
expect_fail org.tokenseal1.Error.InvalidArgs add_as_other "$OP" fido2 "colour=red"
expect_fail org.tokenseal1.Error.InvalidArgs add_as_other "$OP" recovery "device=unix:$TRAP"
[ "$(vprop "$OP" Protectors | grep -o '"p[0-9]*"' | wc -l)" = 1 ] || fail "a protector was added: $(vprop "$OP" Protectors)"
[ "$(trapped)" = 0 ] || fail "the trap saw a connection"
pass "tcti=, module=, unknown options and device= on any type: InvalidArgs, nothing added"
rig_stop_daemon

# --- 2. A daemon refuses unix: devices unless started with the test flag (and says which flag).
set +e
out=$(timeout 10 "$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$RIG_DIR/state2" --helper "$TS_HELPER" \
	--fido2-device "unix:$TRAP" 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "tokensealed --fido2-device unix:... without --test-devices started (exit $rc): $out"
grep -q -- '--test-devices' <<<"$out" || fail "the refusal does not name --test-devices: $out"
[ "$(trapped)" = 0 ] || fail "the trap saw a connection"
pass "tokensealed --fido2-device unix:SOCKET without --test-devices refuses to start (exit $rc)"

# --- 3. The helper installs the socket transport only when the request carries the test flag.
# helper_enroll TEST_FLAG — one fido2 enroll request (device unix:TRAP, no PIN), straight to tokenseal-helper.
helper_enroll() {
	/usr/bin/python3 - "$TS_HELPER" "$TRAP" "$1" <<'PY'
import os, socket, struct, subprocess, sys
helper, trap, test_flag = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def field(tag, data):
    return struct.pack(">BI", tag, len(data)) + data
OP, TYPE, FIDO2_DEVICE, FIDO2_TIMEOUT, VAULT_NAME, VAULT_ID, OPTION, TEST_DEVICES = 1, 2, 4, 6, 7, 8, 9, 12
body = (field(OP, b"\x01") + field(TYPE, b"fido2") + field(FIDO2_DEVICE, b"unix:" + trap.encode()) +
        field(FIDO2_TIMEOUT, struct.pack(">I", 2000)) + field(VAULT_NAME, b"mine") + field(VAULT_ID, bytes(16)) +
        field(OPTION, b"pin\x00no") + field(OPTION, b"up\x00no"))
if test_flag:
    body += field(TEST_DEVICES, b"\x01")
a, b = socket.socketpair()
# The request goes on fd 3, as tokensealed gives it (python's own fds are close-on-exec).
p = subprocess.Popen([helper], close_fds=False, preexec_fn=lambda: os.dup2(b.fileno(), 3),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
b.close()
a.sendall(struct.pack(">I", len(body)) + body)
a.settimeout(20)
reply = b""
while True:
    d = a.recv(65536)
    if not d:
        break
    reply += d
p.wait(timeout=20)
rc, err, off, body = None, "", 0, reply[4:]
while off + 5 <= len(body):
    tag, n = struct.unpack(">BI", body[off:off + 5])
    v = body[off + 5:off + 5 + n]
    off += 5 + n
    if tag == 32:
        rc = struct.unpack(">i", v)[0]
    elif tag == 33:
        err = v.decode()
print(rc, err)
PY
}
out=$(helper_enroll 0) || fail "helper run: $out"
[ "$(trapped)" = 0 ] || fail "the helper connected to a unix: device without the test flag: $out"
case $out in "-15 "*) ;; *) fail "helper without the test flag: expected TokenAbsent (-15): $out" ;; esac
out=$(helper_enroll 1) || fail "helper run: $out"
[ "$(trapped)" -ge 1 ] || fail "with the test flag the helper did not reach the socket (the check above proves nothing): $out"
pass "tokenseal-helper: no socket transport without the request's test flag (TokenAbsent, no connection); with it, it connects"

# --- 4. A daemon started for tests: softfido works, and a caller still cannot name a device.
: >"$TRAP_LOG"
softfido_start a
STATE_DIR=$RIG_DIR/state3 rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_a_DEV" \
	--fido2-timeout 2
OP=$(as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" /org/tokenseal1 org.tokenseal1.Manager \
	CreateVault 'sa{ss}h' mine "" ">$RIG_DIR/other/rk3") || fail "CreateVault"
expect_fail "tokensealed --fido2-device" add_as_other "$OP" fido2 "device=unix:$TRAP,pin=no"
id=$(add_as_other "$OP" fido2 "pin=no") || fail "enrolling the daemon's own (test) key"
[ "$id" = p2 ] || fail "protector id: $id"
[ "$(trapped)" = 0 ] || fail "the trap saw a connection from the test daemon"
pass "with --test-devices: the daemon's softfido enrolls; device= is refused all the same"
