# tang.sh — start and stop a real Tang server (Debian's tangd) on a loopback port, for the integration tests.
#
# Source after rig.sh: the PIDs join RIG_PIDS and rig_cleanup stops them.
#   tang_start DIR [PORT]  a key directory DIR/db (made by tangd-keygen on first start) served on
#                          127.0.0.1:PORT (a free one by default) by socat, one tangd per
#                          connection as systemd's tangd.socket (Accept=yes) runs it; sets
#                          TANG_URL and TANG_THP (the signing key's SHA-256 thumbprint)
#   tang_stop DIR          stop it by the PID it was started with (the keys stay)
#   tang_rotate DIR        tangd-rotate-keys: new keys advertised, the old ones hidden but kept
TANGD=/usr/libexec/tangd
TANGD_KEYGEN=/usr/libexec/tangd-keygen
TANGD_ROTATE=/usr/libexec/tangd-rotate-keys

tang_free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The SHA-256 thumbprint of the signing key the server at URL advertises now (as tang-show-keys prints it).
tang_thp() { # url
	curl -sSf "$1/adv" | jose fmt --json - -g payload -y -o- | jose jwk use -i- -r -u verify -o- |
		jose jwk thp -i- -a S256
}

tang_start() { # dir [port]
	local d=$1 port=${2:-} pid
	[ -x "$TANGD" ] || { echo "SKIP: tangd not installed (Debian package tang)"; exit 77; }
	mkdir -p "$d/db"
	[ -n "$(ls "$d/db")" ] || "$TANGD_KEYGEN" "$d/db" 2>/dev/null || fail "tangd-keygen"
	[ -n "$port" ] || port=$(tang_free_port)
	socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" EXEC:"$TANGD $d/db" 2>>"$d/log" &
	pid=$!
	echo "$pid" >"$d/pid"
	echo "$port" >"$d/port"
	RIG_PIDS+=("$pid")
	TANG_URL="http://127.0.0.1:$port"
	for _ in $(seq 100); do
		if curl -sf -o /dev/null "$TANG_URL/adv"; then
			TANG_THP=$(tang_thp "$TANG_URL") || fail "cannot read the thumbprint of $TANG_URL"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || fail "socat/tangd exited: $(cat "$d/log")"
		sleep 0.05
	done
	fail "tangd on $TANG_URL did not answer"
}

tang_stop() { _rig_term "$(cat "$1/pid")"; } # dir

tang_rotate() { # dir
	"$TANGD_ROTATE" -d "$1/db" >/dev/null 2>&1 || fail "tangd-rotate-keys"
}
