# peers.sh — `make bench`, the peers measured side by side in the same run (sourced by tests/bench/run.sh, after rig.sh).
#
#   peers_keyring OUT N          gnome-keyring-daemon on a private session-type dbus-daemon, its login
#                                collection unlocked with one item, and tokensealed on the same bus;
#                                `peers keyring` times N GetSecret and N Ping to the keyring against
#                                N Unwrap and N Ping to tokensealed, interleaved
#   peers_clevis OUT VAULT PROTECTOR TCTI M ROUNDS K
#                                K keys sealed with `clevis encrypt tpm2` on the swtpm at TCTI (the one the
#                                running daemon's tpm2 VAULT uses); `peers clevis` times M `clevis decrypt`
#                                against ROUNDS x (one `tokenseal unlock` + N Unwraps) for N = 1, 10, 100
#
# Each writes OUT/NAME.json and OUT/NAME.txt (NAME = keyring, clevis) for `bench run --peers-dir OUT`,
# or OUT/NAME.skip (the reason) when the peer is not installed: the bench then leaves it out.
# Everything started here joins RIG_PIDS (rig_cleanup stops it) and is stopped by PID when done.
# contrib/install-deps.sh --bench installs the peers.

PEERS="$TS_BUILD/tests/bench/peers"

peers_skip() { # out name reason
	echo "$3" >"$1/$2.skip"
	echo "peers: $2 left out: $3" >&2
}

# Forget a stopped process's PID, so that cleanup never signals a reused one.
peers_forget() { # pid
	local keep=() p
	for p in "${RIG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	RIG_PIDS=("${keep[@]}")
}

# Stop one process started here, by PID, and forget it.
peers_stop() { # pid
	kill "$1" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	peers_forget "$1"
}

peers_keyring() { # out n
	local out=$1 n=$2 d="$RIG_DIR/keyring" addr bus_pid gk_pid up
	mkdir -p "$out"
	command -v gnome-keyring-daemon >/dev/null || { peers_skip "$out" keyring "gnome-keyring-daemon not installed (package gnome-keyring)"; return 0; }
	command -v secret-tool >/dev/null || { peers_skip "$out" keyring "secret-tool not installed (package libsecret-tools)"; return 0; }
	command -v busctl >/dev/null || { peers_skip "$out" keyring "busctl not installed (package systemd)"; return 0; }
	local t0=$SECONDS
	mkdir -p "$d/home" "$d/run" "$d/data"
	chmod 700 "$d/run"
	# A session-type bus, the kind gnome-keyring serves on (rig.sh).
	rig_start_session_bus "$d"
	bus_pid=$RIG_DBUS_PID
	addr=$RIG_DBUS_ADDRESS
	# Its own HOME and runtime dir: a fresh login keyring, created and unlocked with the password on stdin.
	env HOME="$d/home" XDG_DATA_HOME="$d/data" XDG_RUNTIME_DIR="$d/run" DBUS_SESSION_BUS_ADDRESS="$addr" \
		gnome-keyring-daemon --foreground --components=secrets --unlock <<<"bench" >"$d/gk.log" 2>&1 &
	gk_pid=$!
	RIG_PIDS+=("$gk_pid")
	up=
	for _ in $(seq 100); do
		if busctl --timeout=2 --address="$addr" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
			NameHasOwner s org.freedesktop.secrets 2>/dev/null | grep -q true; then up=1; break; fi
		kill -0 "$gk_pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$up" ] || { cat "$d/gk.log" >&2; fail "keyring: gnome-keyring-daemon did not start"; }
	# One item in the default (login) collection, made through the Secret Service API; a 32-character secret.
	head -c 24 /dev/urandom | base64 | tr -d '\n' >"$d/secret"
	env HOME="$d/home" XDG_RUNTIME_DIR="$d/run" DBUS_SESSION_BUS_ADDRESS="$addr" \
		timeout 30 secret-tool store --label="tokenseal bench" tokenseal bench <"$d/secret" || fail "keyring: secret-tool store"
	# tokensealed on the same bus, so that both ratios come from one bus at the same moment.
	local rig_bus=$BUS_ADDRESS rig_state=${STATE_DIR:-} ts_pid
	BUS_ADDRESS=$addr STATE_DIR="$d/state"
	rig_start_daemon --idle-lock 0 --log-level warning
	ts_pid=$DAEMON_PID
	"$PEERS" keyring "$addr" "$d/secret" "$n" "$out/keyring.json" "$out/keyring.txt"
	rig_stop_daemon TERM
	peers_forget "$ts_pid"
	BUS_ADDRESS=$rig_bus STATE_DIR=$rig_state
	peers_stop "$gk_pid"
	peers_stop "$bus_pid"
	echo "peers: gnome-keyring took $((SECONDS - t0)) s" >&2
}

peers_clevis() { # out vault protector tcti m rounds k
	local out=$1 vault=$2 prot=$3 tcti=$4 m=$5 rounds=$6 k=$7 d="$RIG_DIR/clevis" i
	mkdir -p "$out"
	command -v clevis >/dev/null || { peers_skip "$out" clevis "clevis not installed (package clevis)"; return 0; }
	command -v clevis-decrypt-tpm2 >/dev/null || { peers_skip "$out" clevis "clevis-tpm2 not installed (package clevis-tpm2)"; return 0; }
	local t0=$SECONDS
	mkdir -p "$d"
	# clevis-tpm2 talks to the TPM through tpm2-tools, which take the TCTI from TPM2TOOLS_TCTI.
	for i in $(seq "$k"); do
		head -c 32 /dev/urandom >"$d/k$i"
		TPM2TOOLS_TCTI="$tcti" clevis encrypt tpm2 '{}' <"$d/k$i" >"$d/k$i.jwe" || fail "clevis encrypt tpm2"
	done
	TPM2TOOLS_TCTI="$tcti" TOKENSEAL="$TOKENSEAL" "$PEERS" clevis "$BUS_ADDRESS" "$vault" "$prot" "$d" "$m" "$rounds" \
		"$out/clevis.json" "$out/clevis.txt"
	echo "peers: clevis took $((SECONDS - t0)) s" >&2
}
