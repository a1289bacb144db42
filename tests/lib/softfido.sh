# softfido.sh — start/stop the software FIDO2 authenticator (tests/softfido) for integration tests.
# Source after rig.sh. softfido_start NAME [softfido options...] sets SOFTFIDO_<NAME>_DEV=unix:SOCK.
SOFTFIDO="$TS_BUILD/softfido"

softfido_start() { # name, extra args...
	local name=$1; shift
	local d="$RIG_DIR/softfido-$name"
	mkdir -p "$d"
	rm -f "$d/sock" "$d/ctl"
	"$SOFTFIDO" --socket "$d/sock" --state "$d/state" --control "$d/ctl" "$@" >>"$d/log" 2>&1 &
	local pid=$!
	RIG_PIDS+=($pid)
	eval "SOFTFIDO_PID_$name=$pid"
	for _ in $(seq 100); do [ -S "$d/sock" ] && [ -S "$d/ctl" ] && break; sleep 0.05; done
	[ -S "$d/sock" ] || { cat "$d/log" >&2; fail "softfido $name did not start"; }
	rig_helper_access "$d/sock"   # the token helper, as its own user, connects to it
	eval "SOFTFIDO_${name}_DEV=unix:$d/sock"
}

softfido_stop() { # name
	local pid
	eval "pid=\${SOFTFIDO_PID_$1:-}"
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	eval "SOFTFIDO_PID_$1="
}

# softfido_ctl NAME COMMAND... — one line on the control socket; prints the answer.
softfido_ctl() {
	local name=$1; shift
	/usr/bin/python3 - "$RIG_DIR/softfido-$name/ctl" "$*" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
PY
}
