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
RIG_USERS=()
DAEMON_PID=

# Sanitizers (a make SAN=1 build, e.g. tests/run --build build-asan): every error aborts with a
# non-zero status, leaks are errors, and every report of every instrumented process the test
# starts (daemon, CLI, tools, softfido, the PAM module) goes to a file under $RIG_SAN, so a report
# fails the test even where a tool's output is swallowed or its failure is expected.
# TS_SAN=1 when the build under test is instrumented (tests may then do fewer repetitions).
RIG_SAN="$RIG_DIR/sanitizer"
mkdir -p "$RIG_SAN"
chmod 1777 "$RIG_SAN" # processes run as $OTHER_UID write here too
export ASAN_OPTIONS="abort_on_error=1:halt_on_error=1:detect_leaks=1:${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$RIG_SAN/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$RIG_SAN/ubsan"
TS_SAN=0
if ldd "$TOKENSEALED" 2>/dev/null | grep -q libasan; then TS_SAN=1; fi
export TS_SAN

# rig_san_clean [LOG...] — 0 if no sanitizer wrote a report file and no log given (default: the
# daemon's) holds a sanitizer report; otherwise prints the reports and returns 1.
RIG_SAN_PATTERN='AddressSanitizer|LeakSanitizer|runtime error'
rig_san_clean() {
	local f found=0
	[ $# -gt 0 ] || set -- "$RIG_DIR/daemon.log"
	for f in "$RIG_SAN"/* "$@"; do
		[ -f "$f" ] || continue
		case $f in "$RIG_SAN"/*) ;; *) grep -Eq "$RIG_SAN_PATTERN" "$f" || continue ;; esac
		echo "sanitizer report in ${f##*/}:" >&2
		head -n 80 "$f" >&2
		found=1
	done
	return $found
}

# _rig_term PID — SIGTERM, wait up to 30 s (a sanitized exit checks for leaks), then SIGKILL;
# the exit status goes to RIG_TERM_RC (not a subshell: only this shell can wait for its child).
_rig_term() {
	RIG_TERM_RC=0
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || RIG_TERM_RC=$?
}

rig_cleanup() {
	local rc=$?
	# The daemon first, with its exit status checked, so a crash or leak at exit counts.
	if [ -n "$DAEMON_PID" ]; then
		_rig_term "$DAEMON_PID"
		DAEMON_PID=
		if [ "$RIG_TERM_RC" != 0 ]; then
			echo "tokensealed exited with status $RIG_TERM_RC on SIGTERM at cleanup" >&2
			tail -n 30 "$RIG_DIR/daemon.log" >&2 || true
			rc=1
		fi
	fi
	for ((i = ${#RIG_PIDS[@]} - 1; i >= 0; i--)); do
		kill "${RIG_PIDS[i]}" 2>/dev/null || true
	done
	for p in "${RIG_PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	rig_san_clean || { echo "FAIL: sanitizer report (see above)" >&2; rc=1; }
	for u in "${RIG_USERS[@]}"; do _rig_account userdel "$u" >/dev/null || true; done
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
	_rig_dbus_daemon "$RIG_DIR/bus"
	BUS_ADDRESS=$RIG_DBUS_ADDRESS
	export DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" TOKENSEAL_BUS="$BUS_ADDRESS"
}

# _rig_dbus_daemon DIR — dbus-daemon with DIR/bus.conf, stopped by rig_cleanup; waits for its address:
# RIG_DBUS_ADDRESS, RIG_DBUS_PID.
_rig_dbus_daemon() {
	rm -f "$1/address"
	dbus-daemon --config-file="$1/bus.conf" --nofork --nopidfile --print-address=3 3>"$1/address" 2>>"$1/bus.log" &
	RIG_DBUS_PID=$!
	RIG_PIDS+=($RIG_DBUS_PID)
	for _ in $(seq 100); do [ -s "$1/address" ] && break; sleep 0.05; done
	[ -s "$1/address" ] || fail "dbus-daemon ($1) did not start: $(cat "$1/bus.log" 2>/dev/null)"
	RIG_DBUS_ADDRESS=$(head -n1 "$1/address")
}

# rig_start_session_bus DIR — a session-type bus (the stock session policy; no service files, so nothing
# is activated behind the test's back; only the uid that runs it may connect): RIG_DBUS_ADDRESS, RIG_DBUS_PID.
rig_start_session_bus() {
	mkdir -p "$1"
	cat >"$1/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$1/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
XML
	_rig_dbus_daemon "$1"
}

# Start tokensealed on the private bus; extra arguments are passed through.
# State dir: $STATE_DIR (default $RIG_DIR/state). Waits until the name is owned.
rig_start_daemon() {
	: "${STATE_DIR:=$RIG_DIR/state}"
	# The SoftHSM2 tokens of the test, whatever created them since: the helper's user uses them.
	if declare -F softhsm_helper_access >/dev/null; then softhsm_helper_access; fi
	# The helper as make install puts it, execute-only: exec makes each helper non-dumpable (helper_spawn.h).
	if [ "$(id -u)" = 0 ] && [ "$TS_HELPER" = "$TS_BUILD/tokenseal-helper" ]; then chmod 0711 "$TS_HELPER"; fi
	# TS_TRANSPORT=direct: the daemon also serves its private socket, and the CLI, PAM module and
	# client library of the test reach it there only ($TOKENSEAL_PRIVATE_SOCKET: no fall-back to the bus).
	local direct=()
	if [ "${TS_TRANSPORT:-bus}" = direct ]; then
		direct=(--private-socket "$RIG_DIR/private")
		export TOKENSEAL_PRIVATE_SOCKET="$RIG_DIR/private"
		unset TOKENSEAL_BUS
	fi
	"$TOKENSEALED" --bus "$BUS_ADDRESS" --state-dir "$STATE_DIR" --helper "$TS_HELPER" "${direct[@]}" "$@" \
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

# rig_start_daemon_lean [ARG...] — rig_start_daemon for a test that measures the daemon's memory. A
# sanitized daemon (TS_SAN=1) then runs without ASan's quarantine, which keeps up to 256 MiB of freed
# buffers on purpose (+340 MiB measured after hardening-load's storm), and gives freed memory back
# within 100 ms; redzones, UBSan and leak checking stay on, use-after-free detection is off.
rig_start_daemon_lean() {
	if [ "${TS_SAN:-0}" = 1 ]; then
		ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0:allocator_release_to_os_interval_ms=100" \
			rig_start_daemon "$@"
	else
		rig_start_daemon "$@"
	fi
}

# rig_daemon_rss — tokensealed's VmRSS in KiB (nothing once it is gone).
rig_daemon_rss() { awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status" 2>/dev/null || true; }

# rig_stop_daemon [SIGNAL] — stop tokensealed. With SIGTERM (the default) it must exit 0 and
# leave no sanitizer report (in its log or elsewhere); another signal is not checked.
rig_stop_daemon() {
	local sig=${1:-TERM} pid=$DAEMON_PID
	[ -n "$pid" ] || return 0
	DAEMON_PID=
	if [ "$sig" != TERM ]; then
		kill -"$sig" "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	_rig_term "$pid"
	rig_san_clean || fail "sanitizer report (see above)"
	if [ "$RIG_TERM_RC" -ne 0 ]; then
		tail -n 30 "$RIG_DIR/daemon.log" >&2
		fail "tokensealed exited with status $RIG_TERM_RC on SIGTERM"
	fi
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

# _rig_account CMD ARG... — useradd, usermod or userdel: these lock /etc/passwd and give up at once
# when another holds it (tests/run -j: another test adding or removing its users), so a failure
# that names the lock is tried again, for up to 10 s. Prints the last error and returns non-zero
# when it did not succeed.
_rig_account() {
	local i err
	for i in $(seq 100); do
		err=$("$@" 2>&1) && return 0
		grep -qi "lock" <<<"$err" || break
		sleep 0.1
	done
	echo "$err"
	return 1
}

# The token helper's own system user, as make install creates it (contrib/sysusers.d/tokenseal.conf):
# the daemon starts every helper as this user. Created once and kept (like a sysusers account); other
# tests may create it at the same moment, so a failed useradd counts only if the user is still missing.
# (Not root, as `make demo` may be: the daemon then runs the helper as its own uid, nothing to set up.)
TS_HELPER_USER=tokenseal-helper
if [ "$(id -u)" = 0 ] && ! getent passwd "$TS_HELPER_USER" >/dev/null; then
	_rig_account useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		"$TS_HELPER_USER" >/dev/null || getent passwd "$TS_HELPER_USER" >/dev/null || fail "useradd $TS_HELPER_USER"
fi
if [ "$(id -u)" = 0 ] && getent group tss >/dev/null && ! id -nG "$TS_HELPER_USER" | grep -qw tss; then
	_rig_account usermod -a -G tss "$TS_HELPER_USER" >/dev/null || true
fi
# The network helper's user (tang, [escrow] publish): the daemon starts those helpers as this one, in no
# group of the token helper's (no tss, no token access), created the same way.
TS_NET_HELPER_USER=tokenseal-net
if [ "$(id -u)" = 0 ] && ! getent passwd "$TS_NET_HELPER_USER" >/dev/null; then
	_rig_account useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		"$TS_NET_HELPER_USER" >/dev/null || getent passwd "$TS_NET_HELPER_USER" >/dev/null ||
		fail "useradd $TS_NET_HELPER_USER"
fi

# rig_helper_access PATH... — the helper's group may use these test tokens (a socket: connect; a
# directory tree: read and write), as udev and pcscd give it real devices. Nothing is opened to others.
rig_helper_access() {
	local p
	[ "$(id -u)" = 0 ] || return 0
	for p in "$@"; do
		[ -e "$p" ] || continue
		chgrp -R "$TS_HELPER_USER" "$p" && chmod -R g+rwX "$p" || fail "helper access to $p"
	done
}

# rig_useradd NAME — a real local account (system user, no home, no shell) for tests that need a
# second uid with a name: PAM and getpwnam see it. Removed at exit. Not in $(...): the list of
# accounts to remove lives in this shell. Its uid: $(id -u NAME).
rig_useradd() {
	local err
	err=$(_rig_account useradd --system --no-create-home --shell /usr/sbin/nologin "$1") || fail "useradd $1: $err"
	RIG_USERS+=("$1")
}
