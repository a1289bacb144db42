#!/bin/bash
# hardening-fuzz-corpus.sh — each fuzz target replays its committed seeds (ok-* ones must pass all the way), then fuzzes ~2 s (17 targets, two at a time: about 20 s of fuzzing; building them with clang takes longer).
# tests/run: may run beside another test
set -eu
: "${TS_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
cd "$TS_SRC"
# The fuzz targets are their own clang build (build-fuzz/), whatever the build under test: in
# make check's ASan pass (TS_BUILD sanitized) this would repeat the ordinary pass exactly.
if [ -n "${TS_BUILD:-}" ] && ldd "$TS_BUILD/tokensealed" 2>/dev/null | grep -q libasan; then
	echo "build-fuzz does not depend on the build under test: runs in the ordinary pass"
	exit 77
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-2}

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

make -s -j2 fuzz-build || fail "make fuzz-build"

targets=()
for src in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
[ ${#targets[@]} -gt 0 ] || fail "no fuzz targets"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
log=$(mktemp /tmp/tokenseal-fuzzreplay.XXXXXX)
trap 'rm -f "$log"' EXIT

for t in "${targets[@]}"; do
	bin=build-fuzz/$t seeds=tests/fuzz/corpus/${t#fuzz_}
	[ -x "$bin" ] || fail "$t not built"
	files=("$seeds"/*)
	[ -f "${files[0]}" ] || fail "$t has no seed corpus in $seeds"
	# Every seed once: nothing may crash, leak or break an invariant.
	"$bin" "${files[@]}" >"$log" 2>&1 || { tail -n 40 "$log" >&2; fail "$t crashed on a seed"; }
	n=$(grep -c '^Executed ' "$log" || true)
	[ "$n" -eq ${#files[@]} ] || { cat "$log" >&2; fail "$t ran $n of ${#files[@]} seeds"; }
	# ok-* seeds must be accepted end to end (parsed, opened, unlocked): a stale
	# corpus after a format change would leave the fuzzer at the front door.
	ok=("$seeds"/ok-*)
	[ -f "${ok[0]}" ] || fail "$t has no ok-* seed"
	TS_FUZZ_EXPECT_VALID=1 "$bin" "${ok[@]}" >"$log" 2>&1 ||
		{ tail -n 40 "$log" >&2; fail "$t: an ok-* seed is no longer accepted (regenerate: make fuzz-seeds)"; }
	pass "$t replays ${#files[@]} seeds (${#ok[@]} accepted end to end)"
done

# Then a short fuzzing run of every target, two at a time (2 cores).
FUZZ_JOBS=2 tests/fuzz/run.sh "$FUZZ_SECONDS" || fail "fuzzing found a crash (input path above)"
pass "every target fuzzed ${FUZZ_SECONDS}s without a crash"
