# rig.sh — shared test rig for integration scripts: a private dbus-daemon, tokensealed, and helpers.
# Source it from a test script:  . "$TS_SRC/tests/lib/rig.sh"
# Every component is started here and stopped by PID in rig_cleanup (trap on EXIT).
set -eu
: "${TS_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${TS_BUILD:=$TS_SRC/build}"
TOKENSEALED="$TS_BUILD/tokensealed"
TS_HELPER="$TS_BUILD/tokenseal-helper"   # the token helper the daemon starts (--helper)
TOKENSEAL="$TS_BUILD/tokenseal"
RIG_DIR=$(mktemp -d /tmp/tokenseal-rig.XXXXXX)
chmod 755 "$RIG_DIR"
RIG_PIDS=()
DAEMON_PID=

rig_cleanup() {
	local rc=$?
	for ((i = ${#RIG_PIDS[@]} - 1; i >= 0; i--)); do
		kill "${RIG_PIDS[i]}" 2>/dev/null || true
	done
	for p in "${RIG_PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$RIG_DIR"
	exit $rc
}
trap rig_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# Start a private, system-bus-like dbus-daemon with the project's service policy.
rig_start_bus() {
	mkdir -p "$RIG_DIR/bus"
	cat >"$RIG_DIR/bus/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$RIG_DIR/bus/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_destination="org.freedesktop.DBus"/>
    <allow receive_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <!-- stand-ins for logind and polkit (tests/integration/pam_standin.py) -->
  <policy user="root">
    <allow own="org.freedesktop.login1"/>
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.login1"/>
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
  <include>$TS_SRC/contrib/org.tokenseal1.conf</include>
</busconfig>
XML
	dbus-daemon --config-file="$RIG_DIR/bus/bus.conf" --nofork --nopidfile \
		--print-address=3 3>"$RIG_DIR/bus/address" &
	RIG_PIDS+=($!)
	for _ in $(seq 100); do [ -s "$RIG_DIR/bus/address" ] && break; sleep 0.05; done
	[ -s "$RIG_DIR/bus/address" ] || fail "dbus-daemon did not start"
	BUS_ADDRESS=$(head -n1 "$RIG_DIR/bus/address")
	export DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" TOKENSEAL_BUS="$BUS_ADDRESS"
}

# Start tokensealed on the private bus; extra arguments are passed through.
# State dir: $STATE_DIR (default $RIG_DIR/state). Waits until the name is owned.
rig_start_daemon() {
	: "${STATE_DIR:=$RIG_DIR/state}"
	"$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$STATE_DIR" --helper "$TS_HELPER" "$@" \
		>>"$RIG_DIR/daemon.log" 2>&1 &
	DAEMON_PID=$!
	RIG_PIDS+=($DAEMON_PID)
	for _ in $(seq 200); do
		if busctl --address="$BUS_ADDRESS" status org.tokenseal1 >/dev/null 2>&1; then return 0; fi
		kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$RIG_DIR/daemon.log" >&2; fail "tokensealed exited"; }
		sleep 0.05
	done
	cat "$RIG_DIR/daemon.log" >&2
	fail "tokensealed did not take its bus name"
}

rig_stop_daemon() { # [signal]
	[ -n "$DAEMON_PID" ] || return 0
	kill -"${1:-TERM}" "$DAEMON_PID" 2>/dev/null || true
	wait "$DAEMON_PID" 2>/dev/null || true
	DAEMON_PID=
}

# busctl against the private bus.
bctl() { busctl --address="$BUS_ADDRESS" "$@"; }

# Run a command, expect failure whose output contains a string.
expect_fail() { # needle, command...
	local needle=$1; shift
	local out
	if out=$("$@" 2>&1); then fail "expected failure ($needle) but succeeded: $*"; fi
	case $out in *"$needle"*) ;; *) fail "expected '$needle' from: $* — got: $out" ;; esac
}

# An unprivileged uid for "other user" tests.
OTHER_UID=65534
