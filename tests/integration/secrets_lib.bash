# secrets_lib.bash — helpers for the secrets-*.sh tests (sourced after tests/lib/rig.sh and core_lib.bash):
# a private session bus, tokenseal-secrets or gnome-keyring-daemon on it, and the test pinentry.
SECRETS="$TS_BUILD/tokenseal-secrets"
SECRETS_CLIENT_PY="$TS_SRC/tests/integration/secrets_client.py"
SECRETS_PINENTRY="$TS_SRC/tests/integration/secrets_pinentry.sh"
SECRETS_PID=
# The test pinentry answers with this file's contents, or cancels while it does not exist.
export SECRETS_PIN_FILE="$RIG_DIR/pin" SECRETS_PIN_LOG="$RIG_DIR/pin.log"
# The provider's data directory.
SECRETS_DATA="$RIG_DIR/secrets-data"

# secrets_start_session_bus NAME — a private session bus (no service files: nothing is activated behind
# the test's back) whose address goes to DBUS_SESSION_BUS_ADDRESS.
secrets_start_session_bus() {
	rig_start_session_bus "$RIG_DIR/session-$1"
	DBUS_SESSION_BUS_ADDRESS=$RIG_DBUS_ADDRESS
	export DBUS_SESSION_BUS_ADDRESS
}

secrets_wait_name() {
	local pid=$1
	for _ in $(seq 200); do
		busctl --user status org.freedesktop.secrets >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# secrets_start [ARGS...] — tokenseal-secrets for vault "secrets" on the session bus; log in $RIG_DIR/secrets.log.
# With TS_TRANSPORT=direct it reaches tokensealed where the rig points clients: the private socket.
secrets_start() {
	local where=(--tokenseal-bus "$BUS_ADDRESS")
	[ "${TS_TRANSPORT:-bus}" = direct ] && where=()
	"$SECRETS" "${where[@]}" --vault secrets --data-dir "$SECRETS_DATA" --pinentry "$SECRETS_PINENTRY" "$@" \
		>>"$RIG_DIR/secrets.log" 2>&1 &
	SECRETS_PID=$!
	RIG_PIDS+=($SECRETS_PID)
	secrets_wait_name $SECRETS_PID || { cat "$RIG_DIR/secrets.log" >&2; fail "tokenseal-secrets did not take its name"; }
}

# secrets_stop [SIGNAL] — stop it; with TERM (the default) it must exit 0.
secrets_stop() {
	local sig=${1:-TERM} rc=0
	[ -n "$SECRETS_PID" ] || return 0
	kill -"$sig" "$SECRETS_PID" 2>/dev/null || true
	wait "$SECRETS_PID" 2>/dev/null || rc=$?
	[ "$sig" != TERM ] || [ $rc -eq 0 ] || { tail -n 20 "$RIG_DIR/secrets.log" >&2; fail "tokenseal-secrets exited $rc on SIGTERM"; }
	SECRETS_PID=
}

# gk_start — gnome-keyring-daemon's secrets component on the session bus, its login keyring created and unlocked.
gk_start() {
	local home="$RIG_DIR/gk-home"
	mkdir -p "$home/data" "$home/run"
	chmod 700 "$home/run"
	printf 'test password' | HOME="$home" XDG_DATA_HOME="$home/data" XDG_RUNTIME_DIR="$home/run" \
		gnome-keyring-daemon --unlock --foreground --components=secrets >>"$RIG_DIR/gk.log" 2>&1 &
	GK_PID=$!
	RIG_PIDS+=($GK_PID)
	secrets_wait_name $GK_PID || { cat "$RIG_DIR/gk.log" >&2; fail "gnome-keyring-daemon did not take the name"; }
}

# py STEP [ARGS] — one step of secrets_client.py; prints its result line (or what failed).
py() { timeout 20 /usr/bin/python3 "$SECRETS_CLIENT_PY" "$@" 2>"$RIG_DIR/py.err" || echo "$1: failed $(tail -n 1 "$RIG_DIR/py.err")"; }

# st ARGS... — secret-tool with a time limit; prints "exit N" and its output on one line.
st() {
	local rc=0 out
	out=$(timeout 20 secret-tool "$@" 2>/dev/null) || rc=$?
	printf 'exit %s%s' "$rc" "${out:+ out=$out}"
}

# st_store SECRET ARGS... — secret-tool store with SECRET on stdin.
st_store() {
	local s=$1 rc=0
	shift
	printf '%s' "$s" | timeout 20 secret-tool store "$@" 2>/dev/null || rc=$?
	printf 'exit %s' "$rc"
}

# collection_locked — the default collection's Locked property ("true"/"false").
collection_locked() {
	busctl --user get-property org.freedesktop.secrets /org/freedesktop/secrets/aliases/default \
		org.freedesktop.Secret.Collection Locked | cut -d' ' -f2
}
