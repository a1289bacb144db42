#!/bin/bash
# fido2-softfido-fuzz.sh — softfido survives 20000 random and mutated CTAPHID frames and CBOR requests (also under ASan+UBSan).
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
PY=/usr/bin/python3 # Debian's, with python3-fido2
[ -x "$SOFTFIDO" ] || fail "softfido is not built: $SOFTFIDO"
export PYTHONPATH="$TS_SRC/tests/fido2" PYTHONDONTWRITEBYTECODE=1
FRAMES=${SOFTFIDO_FUZZ_FRAMES:-20000}

# Fuzzes the running instance NAME; it must be alive afterwards and exit 0 on SIGTERM.
fuzz() { # name, frames
	local name=$1 frames=$2 d="$RIG_DIR/softfido-$1" pid rc=0
	eval "pid=\$SOFTFIDO_PID_$name"
	"$PY" "$TS_SRC/tests/fido2/fuzz.py" --socket "$d/sock" --control "$d/ctl" --frames "$frames" \
		${SOFTFIDO_FUZZ_SEED:+--seed "$SOFTFIDO_FUZZ_SEED"} ||
		{ tail -n 20 "$d/log" >&2; fail "fuzzing $name"; }
	kill -0 "$pid" 2>/dev/null || fail "softfido $name died"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	eval "SOFTFIDO_PID_$name="
	[ $rc -eq 0 ] || { tail -n 20 "$d/log" >&2; fail "softfido $name exited with status $rc"; }
	if grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$d/log" >&2; then
		fail "sanitizer report from softfido $name"
	fi
}

softfido_start plain
fuzz plain "$FRAMES"
pass "softfido ($SOFTFIDO) survived $FRAMES fuzzed frames"

# The same under AddressSanitizer and UBSan: built here from the sources, which
# takes seconds, so memory errors that do not crash still fail the test.
if [ "$TS_SAN" = 1 ]; then
	pass "(the softfido above is already the ASan+UBSan build)"
elif command -v cc >/dev/null; then
	cc -std=gnu11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
		$(pkg-config --cflags libcbor libcrypto) "$TS_SRC"/tests/softfido/*.c -o "$RIG_DIR/softfido-asan-bin" \
		$(pkg-config --libs libcbor libcrypto) || fail "building softfido with ASan"
	SOFTFIDO="$RIG_DIR/softfido-asan-bin"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1
	softfido_start asan
	fuzz asan "$FRAMES"
	pass "softfido under ASan+UBSan survived $FRAMES fuzzed frames"
fi
