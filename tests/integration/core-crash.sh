#!/bin/bash
# core-crash.sh — SIGKILL at random moments of RotateKey, over and over: the vault always opens and keeps every acknowledged version.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
# 15 (10 under ASan, where each restart costs about three times as much): hardening-crash.sh kills
# RotateKey among other calls 220 times more, through its own faster loop.
if [ "${TS_SAN:-0}" = 1 ]; then ITERATIONS_DEFAULT=10; else ITERATIONS_DEFAULT=15; fi
ITERATIONS=${CORE_CRASH_ITERATIONS:-$ITERATIONS_DEFAULT}
rig_start_bus
rig_start_daemon --idle-lock 0

P=$(create_vault crash "$RIG_DIR/rk") || fail "CreateVault"
B0=$(wrap "$P" "3 9 8 7" 1 c x) || fail "wrap"
acked=1

# Stop the daemon by its PID and forget that PID (it must not be signalled again later).
kill_daemon() {
	local pid=$DAEMON_PID
	rig_stop_daemon KILL
	local keep=()
	for p in "${RIG_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	RIG_PIDS=("${keep[@]}")
}

for i in $(seq "$ITERATIONS"); do
	# Rotate as fast as possible in the background, recording every acknowledged version.
	: >"$RIG_DIR/acks"
	(
		for _ in $(seq 15); do
			out=$(busctl --address="$BUS_ADDRESS" call org.tokenseal1 "$P" $VIFACE RotateKey 'a{ss}' 0 2>/dev/null) || exit 0
			echo "$out" >>"$RIG_DIR/acks"
		done
	) &
	ROT=$!
	sleep "0.$(printf '%03d' $((RANDOM % 300)))"
	kill_daemon
	wait $ROT || true
	last=$(sed -n 's/^u //p' "$RIG_DIR/acks" | tail -n1)
	[ -z "$last" ] || acked=$last

	rig_start_daemon --idle-lock 0
	unlock "$P" recovery "$RIG_DIR/rk" || fail "iteration $i: vault does not open after SIGKILL"
	v=$(vprop "$P" KeyVersion)
	[ "$v" -ge "$acked" ] || fail "iteration $i: KeyVersion $v < acknowledged $acked (an acknowledged rotation was lost)"
	[ "$(unwrap "$P" "$B0" 1 c x)" = "3 9 8 7" ] || fail "iteration $i: the first blob no longer unwraps"
	acked=$v
	ls -A "$STATE_DIR" | grep -v '^0$' | grep -v '^tokensealed\.lock$' | grep -v '^generations$' | grep -q . && fail "iteration $i: leftovers in the state dir: $(ls -a "$STATE_DIR")"
	ls -A "$STATE_DIR/generations" | grep -v '^[0-9a-f]\{32\}$' | grep -q . && fail "iteration $i: leftovers among the generation anchors: $(ls -a "$STATE_DIR/generations")"
	ls -A "$STATE_DIR/0" | grep -v '^crash\.\(vault\|vault\.bak\|backoff\)$' | grep -q . && fail "iteration $i: leftovers in the owner's dir: $(ls -a "$STATE_DIR/0")"
done
pass "$ITERATIONS SIGKILLs during RotateKey: vault opens, no acknowledged version lost, old blob unwraps (last version $acked)"

core_finish
