#!/bin/bash
# run.sh — `make bench`: a private bus and tokensealed, then tests/bench/bench; table on stdout, BUILD/bench.json.
#
#   tests/bench/run.sh BUILD_DIR [--quick]
#
# Two daemon runs: one over 1,000 vault files made offline (memory per vault),
# one over a fresh state dir for the timed part (latency, batches, concurrency,
# a million requests).
set -eu
BUILD=${1:?usage: tests/bench/run.sh BUILD_DIR [--quick]}
shift
TS_SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) ;; *) BUILD="$TS_SRC/$BUILD" ;; esac
export TS_SRC TS_BUILD="$BUILD"
QUICK=()
N_VAULTS=${BENCH_VAULTS:-1000}
if [ "${1:-}" = "--quick" ]; then QUICK=(--quick); N_VAULTS=${BENCH_VAULTS:-100}; fi
. "$TS_SRC/tests/lib/rig.sh"

BENCH="$BUILD/tests/bench/bench"
[ -x "$BENCH" ] || fail "$BENCH not built"
[ -x "$TOKENSEALED" ] || fail "$TOKENSEALED not built"

# Forget a stopped daemon's PID so that cleanup never signals a reused one.
stop_daemon() {
	local pid=$DAEMON_PID keep=()
	rig_stop_daemon TERM
	for p in "${RIG_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	RIG_PIDS=("${keep[@]}")
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
rig_start_bus

# 1. Memory with many vaults: files written offline by the core, loaded at start, then unlocked.
STATE_DIR="$RIG_DIR/state-many"
"$BENCH" mkvaults "$STATE_DIR" "$N_VAULTS" "$RIG_DIR/bench.key"
rig_start_daemon --idle-lock 0 --log-level warning
"$BENCH" vaults "$BUS_ADDRESS" "$DAEMON_PID" "$N_VAULTS" "$RIG_DIR/bench.key" "$RIG_DIR/vaults.json"
stop_daemon

# 2. The timed part, on a daemon that has only the benchmark vault.
STATE_DIR="$RIG_DIR/state"
rig_start_daemon --idle-lock 0 --log-level warning
sleep 0.2   # idle: let start-up settle before the first RSS sample
"$BENCH" run "$BUS_ADDRESS" "$DAEMON_PID" "$BUILD/bench.json" --vaults-json "$RIG_DIR/vaults.json" "${QUICK[@]}"
stop_daemon
echo "results: $BUILD/bench.json"
