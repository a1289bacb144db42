# core_lib.bash — helpers for the core-*.sh integration scripts (sourced after tests/lib/rig.sh).
# busctl is the client wherever it can be; core_fdcall.py (libdbus) only for calls with fd arguments.
FDCALL_PY="$TS_SRC/tests/integration/core_fdcall.py"
MGR_ARGS=(org.tokenseal1 /org/tokenseal1 org.tokenseal1.Manager)
VIFACE=org.tokenseal1.Vault

fdcall() { /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$@"; }

# bq ARGS... — busctl on the private bus; on failure prints "ERRORNAME: message" on stderr
# (busctl 252 prints only the message; its debug log carries the name).
bq() {
	local err rc=0
	err=$(mktemp -p "$RIG_DIR")
	SYSTEMD_LOG_LEVEL=debug "${BQ_PREFIX[@]}" busctl --address="$BUS_ADDRESS" "$@" 2>"$err" || rc=$?
	if [ $rc -ne 0 ]; then
		sed -n '/error-name=n\/a/d; s/.*error-name=\([^ ]*\) error-message=\(.*\)/\1: \2/p' "$err" >&2
		grep -v '^Got message\|^Bus \|^Sent message\|^sd-bus:' "$err" | tail -n 2 >&2
	fi
	rm -f "$err"
	return $rc
}
BQ_PREFIX=()

# vault_path NAME — object path through GetVault.
vault_path() { local o; o=$(bq call "${MGR_ARGS[@]}" GetVault s "$1") || return 1; sed -n 's/^o "\(.*\)"$/\1/p' <<<"$o"; }

# policy_conf FILE [TEXT] — write TEXT (backslash escapes as printf %b), or stdin, to $POLICY_DIR/FILE,
# mode 0644 like a file in /etc; start the daemon with --policy-dir "$POLICY_DIR".
POLICY_DIR=$RIG_DIR/policy.d
policy_conf() {
	mkdir -p "$POLICY_DIR"
	if [ $# -ge 2 ]; then printf '%b' "$2" >"$POLICY_DIR/$1"; else cat >"$POLICY_DIR/$1"; fi
	chmod 0644 "$POLICY_DIR/$1"
}

# create_vault NAME KEYFILE — prints the object path; the recovery key lands in KEYFILE.
create_vault() { fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "$1" "" ">$2"; }

# unlock PATH PROTECTOR SECRETFILE
unlock() { fdcall "$1" $VIFACE Unlock 'sha{ss}' "$2" "<$3" ""; }

# vcall PATH METHOD SIG ARGS... — busctl against a vault object.
vcall() { local p=$1; shift; bq call org.tokenseal1 "$p" $VIFACE "$@"; }

# vprop PATH PROPERTY — the value only (busctl's "TYPE VALUE" minus TYPE).
vprop() { local o; o=$(bq get-property org.tokenseal1 "$1" $VIFACE "$2") || return 1; cut -d' ' -f2- <<<"$o"; }

# busctl prints an 'ay' reply as "ay N b1 b2 ..."; these turn it into arguments for the next call.
ay_args() { sed -n 's/^ay //p'; }

# wrap PATH "N b1 b2..." CTXCOUNT CTX... — prints "N b..." of the blob.
wrap() { local p=$1 pt=$2 o; shift 2; o=$(vcall "$p" Wrap 'aya{ss}' $pt "$@") || return 1; ay_args <<<"$o"; }
# unwrap PATH "N b..." CTXCOUNT CTX... — prints "N b..." of the plaintext.
unwrap() { local p=$1 blob=$2 o; shift 2; o=$(vcall "$p" Unwrap 'aya{ss}' $blob "$@") || return 1; ay_args <<<"$o"; }

# packed "N b..." ... — the busctl "ay" argument of a packed batch (UnwrapBatchPacked) of the blobs given
# in busctl's "ay" form: each a 4-byte little-endian length, then its bytes.
packed() {
	local out=() b n
	for b in "$@"; do
		set -- $b
		n=$1; shift
		out+=($((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)) "$@")
	done
	echo "${#out[@]} ${out[*]}"
}

# as_uid UID CMD... — run as UID (its group too, no others); as_other CMD... — as the unprivileged $OTHER_UID.
as_uid() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
as_other() { as_uid "$OTHER_UID" "$@"; }
# as_other_bq FUNC ARGS... — run a bq-based helper (vcall, wrap, ...) with busctl as the other user.
as_other_bq() { local BQ_PREFIX=(as_other); "$@"; }
bq_other() { as_other_bq bq "$@"; }

daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$RIG_DIR/daemon.log" >&2; fail "tokensealed died"; }; }

# core_finish — stop the daemon with SIGTERM (it must exit 0) and check its log for sanitizer reports.
core_finish() {
	local pid=$DAEMON_PID rc=0
	[ -n "$pid" ] || return 0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	DAEMON_PID=
	if grep -Eq "AddressSanitizer|LeakSanitizer|runtime error:|ERROR SUMMARY: [1-9]" "$RIG_DIR/daemon.log"; then
		cat "$RIG_DIR/daemon.log" >&2
		fail "sanitizer/valgrind report in the daemon log"
	fi
	[ $rc -eq 0 ] || { tail -n 20 "$RIG_DIR/daemon.log" >&2; fail "tokensealed exited $rc on SIGTERM"; }
}

# listen_start OUT [nosub] — a client (as the user running it; prefix with as_other for another uid)
# that asks for vault signals (Manager.Subscribe, unless nosub) and writes each signal it gets to OUT
# (signals_listen.py); waits until it is subscribed. listen_start_as UID OUT [nosub] runs it as UID.
LISTEN_PY="$TS_SRC/tests/integration/signals_listen.py"
listen_start_as() {
	local uid=$1 out=$2 ready="$2.ready"; shift 2
	rm -f "$ready"
	: >"$out"
	chmod 666 "$out"
	chmod 777 "$(dirname "$out")"
	setpriv --reuid "$uid" --regid "$uid" --clear-groups /usr/bin/python3 "$LISTEN_PY" "$BUS_ADDRESS" "$out" "$ready" "$@" \
		>>"$out.log" 2>&1 &
	RIG_PIDS+=($!)
	for _ in $(seq 100); do [ -s "$ready" ] && return 0; sleep 0.05; done
	cat "$out.log" >&2
	fail "signal listener did not start"
}
listen_start() { listen_start_as 0 "$@"; }

# kill_during_saves N MAX_MS START NAME PROTECTOR KEYFILE — N times: RotateKey on vault NAME in a loop, SIGKILL
# the daemon after a random 0..MAX_MS ms, restart it with the command START; the vault must be served
# (never refused as a rollback) and open with PROTECTOR's KEYFILE. Sets VP to the vault's path.
kill_during_saves() {
	local n=$1 max=$2 start=$3 name=$4 prot=$5 key=$6 i rot pid keep p
	VP=$(vault_path "$name") || fail "no vault $name"
	for i in $(seq "$n"); do
		( for _ in $(seq 10); do busctl --address="$BUS_ADDRESS" call org.tokenseal1 "$VP" $VIFACE RotateKey 'a{ss}' 0 >/dev/null 2>&1 || exit 0; done ) &
		rot=$!
		sleep "0.$(printf '%03d' $((RANDOM % max)))"
		pid=$DAEMON_PID
		rig_stop_daemon KILL
		keep=(); for p in "${RIG_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done; RIG_PIDS=("${keep[@]}")
		wait $rot || true
		$start
		VP=$(vault_path "$name") || fail "iteration $i: $name refused after a SIGKILL during a save: $(grep "vault=$name" "$RIG_DIR/daemon.log" | tail -n 2)"
		unlock "$VP" "$prot" "$key" >/dev/null || fail "iteration $i: $name does not open after SIGKILL"
	done
}

# ---- the isolation tests' attacks ----
# loop_as_user COMMAND... runs COMMAND again and again in the background until this script ends (its
# PID in ATTACK and RIG_PIDS); stop_attack stops them by PID; measure LABEL runs isolation_latency.py
# for root's Ping/Unwrap of vault $R and blob $B (hex) for $SECS s, and fails when p99 >= $LIMIT_MS.
ATTACK=()
loop_as_user() { ( while kill -0 $$ 2>/dev/null; do "$@" >/dev/null 2>&1 || true; done ) & ATTACK+=($!); RIG_PIDS+=($!); }
stop_attack() {
	local p
	for p in "${ATTACK[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${ATTACK[@]}"; do wait "$p" 2>/dev/null || true; done
	ATTACK=()
}
measure() {
	/usr/bin/python3 "$TS_SRC/tests/integration/isolation_latency.py" "$BUS_ADDRESS" "$R" "$B" "$SECS" "$LIMIT_MS" \
		"$1" >"$RIG_DIR/lat" 2>&1 || {
		cat "$RIG_DIR/lat"
		daemon_alive
		fail "$1: root's calls waited (p99 >= $LIMIT_MS ms): $(cat "$RIG_DIR/lat")"
	}
	cat "$RIG_DIR/lat"
}
