#!/bin/bash
# hardening-crash.sh — SIGKILL tokensealed at random moments of CreateVault, AddProtector, RotateKey and RevokeProtector (220 times; 60 under ASan): every vault parses and opens, nothing acknowledged is lost.
# The loop (start daemon, call, kill, restart, check against a model of acknowledged replies)
# runs in tests/tools/core_crash.c for speed; this script provides the private bus.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
# Under ASan (TS_SAN=1, make check's second pass) 60: each restart of a sanitized daemon costs
# about three times as much, and the ordinary pass does the full 220.
if [ "$TS_SAN" = 1 ]; then ITERATIONS_DEFAULT=60; else ITERATIONS_DEFAULT=220; fi
ITERATIONS=${HARDENING_CRASH_ITERATIONS:-$ITERATIONS_DEFAULT}
SEED=${HARDENING_CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
TOOL="$TS_BUILD/tests/tools/core_crash"
[ -x "$TOOL" ] || fail "$TOOL not built"
rig_start_bus
mkdir -p "$RIG_DIR/state"
echo "seed $SEED (rerun with HARDENING_CRASH_SEED=$SEED)"
if ! "$TOOL" "$BUS_ADDRESS" "$TOKENSEALED" "$RIG_DIR/state" "$ITERATIONS" "$SEED"; then
	tail -n 20 "$RIG_DIR/daemon.log" >&2 || true
	fail "crash consistency (seed $SEED)"
fi
pass "$ITERATIONS SIGKILLs: every vault file parses and opens, acknowledged creates/enrolls/rotations/revocations and blobs kept"
