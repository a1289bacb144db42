#!/bin/bash
# run.sh — build the libFuzzer targets and fuzz each one for a while, on a scratch copy of its seed corpus.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs are names like fuzz_blob (default:
# every build-fuzz/fuzz_* built from tests/fuzz/fuzz_*.c). FUZZ_JOBS=N fuzzes
# N targets at once (default 1). The committed corpus is never grown in
# place: each target works on a copy in a temp dir that is removed at the end.
# A crash, leak, timeout or UBSan report fails the run; the input that caused
# it is kept as build-fuzz/crashes/<target>-crash-<sha1> and its path printed.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-60}
[ $# -gt 0 ] && shift
jobs=${FUZZ_JOBS:-1}
case $secs in *[!0-9]*|'') echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

make -s -j"$(nproc)" fuzz-build || { echo "fuzz: build failed" >&2; exit 1; }

if [ $# -eq 0 ]; then
	for src in tests/fuzz/fuzz_*.c; do set -- "$@" "$(basename "$src" .c)"; done
fi
crashdir="$PWD/build-fuzz/crashes"
mkdir -p "$crashdir"
work=$(mktemp -d /tmp/tokenseal-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

fuzz_one() { # target
	local t=$1 bin="build-fuzz/$1" seeds="tests/fuzz/corpus/${1#fuzz_}"
	local d="$work/$t"
	mkdir -p "$d/corpus"
	[ -x "$bin" ] || { echo "$t: FAIL (not built: $bin)" >"$d/result"; return 1; }
	if [ -d "$seeds" ]; then cp -- "$seeds"/* "$d/corpus/" 2>/dev/null || true; fi
	"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
		-artifact_prefix="$crashdir/$t-" "$d/corpus" >"$d/log" 2>&1
	local rc=$?
	local stats
	stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$d/log" | tail -n1 | sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/\1 runs, /; s/ lim:.*//')
	if [ $rc -eq 0 ]; then
		echo "$t: ok (${stats:-no stats})" >"$d/result"
	else
		{
			echo "$t: FAIL (exit $rc)"
			tail -n 40 "$d/log" | sed 's/^/    | /'
			grep -E 'Test unit written to|artifact_prefix' "$d/log" | sed 's/^/    crash input: /'
		} >"$d/result"
	fi
	return $rc
}

# The verdict comes from each target's result file, not from wait's status.
running=0
for t in "$@"; do
	fuzz_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
failed=0
for t in "$@"; do
	r=$(cat "$work/$t/result" 2>/dev/null) || r="$t: FAIL (no result)"
	echo "$r"
	case $r in "$t: ok"*) ;; *) failed=$((failed + 1)) ;; esac
done
echo "fuzz: $(( $# - failed )) targets ok, $failed failed (${secs}s each)"
[ $failed -eq 0 ]
