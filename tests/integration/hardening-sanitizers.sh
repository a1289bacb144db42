#!/bin/bash
# hardening-sanitizers.sh — the unit tests and a daemon flow under valgrind memcheck: zero reports. (ASan+UBSan:
#   make check's second pass runs every unit and integration test against the SAN=1 build.)
. "$TS_SRC/tests/lib/rig.sh"
# In make check's ASan pass (tests/run --build build-asan) every test already runs sanitized, and
# valgrind cannot run ASan binaries: this test belongs to the ordinary pass.
if [ "$TS_SAN" = 1 ]; then echo "the build under test is sanitized: this test runs in the ordinary pass"; exit 77; fi
SESSION="$TS_BUILD/tests/tools/core_session"
[ -x "$SESSION" ] || fail "$SESSION not built"
command -v valgrind >/dev/null || fail "valgrind not installed (contrib/install-deps.sh)"
VG=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite)

units=()
for s in "$TS_SRC"/tests/unit/test_*.c; do units+=("tests/unit/$(basename "$s" .c)"); done

# 1. Unit tests under valgrind on the ordinary build (make check runs them under ASan+UBSan in its second pass),
#    two at a time: valgrind runs a program on one CPU.
vg_wait() { # pid unit
	wait "$1" || { tail -n 40 "$RIG_DIR/vg-${2##*/}.log" >&2; fail "$2 under valgrind"; }
}
running=() names=()
for u in "${units[@]}"; do
	[ -x "$TS_BUILD/$u" ] || fail "$TS_BUILD/$u not built"
	"${VG[@]}" "$TS_BUILD/$u" >"$RIG_DIR/vg-${u##*/}.log" 2>&1 &
	running+=($!) names+=("$u")
	if [ ${#running[@]} -ge 2 ]; then
		vg_wait "${running[0]}" "${names[0]}"
		running=("${running[@]:1}") names=("${names[@]:1}")
	fi
done
for i in "${!running[@]}"; do vg_wait "${running[i]}" "${names[i]}"; done
pass "${#units[@]} unit tests clean under valgrind (memcheck, definite leaks are errors)"

# 2. A core daemon flow: create, wrap/unwrap (busctl), lock, unlock, use, rotate, lock, clean exit.
flow() { # label
	local P out pt blob
	P=$("$SESSION" "$BUS_ADDRESS" create "flow$1" "$RIG_DIR/flow.key") || fail "$1: CreateVault"
	out=$(bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Wrap 'aya{ss}' 4 1 2 3 4 1 app flow) || fail "$1: Wrap"
	blob=$(sed -n 's/^ay //p' <<<"$out")
	pt=$(bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Unwrap 'aya{ss}' $blob 1 app flow) || fail "$1: Unwrap"
	[ "$pt" = "ay 4 1 2 3 4" ] || fail "$1: Unwrap gave $pt"
	bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Unwrap 'aya{ss}' $blob 1 app other >/dev/null 2>&1 &&
		fail "$1: Unwrap with another context succeeded"
	bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Unwrap 'aya{ss}' 3 1 2 3 0 >/dev/null 2>&1 &&
		fail "$1: a 3-byte blob unwrapped"
	bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Lock >/dev/null || fail "$1: Lock"
	bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Unwrap 'aya{ss}' $blob 1 app flow >/dev/null 2>&1 &&
		fail "$1: Unwrap on a locked vault succeeded"
	"$SESSION" "$BUS_ADDRESS" unlock "$P" "$RIG_DIR/flow.key" || fail "$1: Unlock"
	"$SESSION" "$BUS_ADDRESS" use "$P" 20 || fail "$1: use"
	"$SESSION" "$BUS_ADDRESS" rotate "$P" >/dev/null || fail "$1: RotateKey"
	pt=$(bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Unwrap 'aya{ss}' $blob 1 app flow) || fail "$1: Unwrap after rotation"
	[ "$pt" = "ay 4 1 2 3 4" ] || fail "$1: Unwrap after rotation gave $pt"
	bctl call org.tokenseal1 "$P" org.tokenseal1.Vault Lock >/dev/null || fail "$1: Lock"
}
# Stop with SIGTERM and demand a clean exit (a sanitizer or valgrind error makes it non-zero).
stop_clean() { # label
	local pid=$DAEMON_PID rc=0 keep=()
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	DAEMON_PID=
	for p in "${RIG_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	RIG_PIDS=("${keep[@]}")
	if [ $rc -ne 0 ] || grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer\|ERROR SUMMARY: [1-9]' "$RIG_DIR/daemon.log"; then
		tail -n 60 "$RIG_DIR/daemon.log" >&2
		fail "$1: daemon exit status $rc or a report in its log"
	fi
}

rig_start_bus
REAL_TOKENSEALED=$TOKENSEALED
# valgrind: the ordinary daemon binary, through a wrapper (rig starts "$TOKENSEALED ARGS").
TOKENSEALED="$RIG_DIR/tokensealed-valgrind"
printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${VG[*]}" "$REAL_TOKENSEALED" >"$TOKENSEALED"
chmod 755 "$TOKENSEALED"
: >"$RIG_DIR/daemon.log"
STATE_DIR="$RIG_DIR/state-vg"
rig_start_daemon --idle-lock 0
flow valgrind
stop_clean valgrind
pass "daemon flow clean under valgrind"
