#!/bin/bash
# age.sh — decrypting N small files (default 100) with the real age through age-plugin-tokenseal (the vault
# unlocked once) against age with a native X25519 identity file; one line of results and BUILD/bench-age.json.
#
#   tests/bench/age.sh BUILD_DIR [N]     (run by tests/bench/run.sh, i.e. make bench)
set -eu
BUILD=${1:?usage: tests/bench/age.sh BUILD_DIR [N]}
N=${2:-${BENCH_AGE_FILES:-100}}
TS_SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) ;; *) BUILD="$TS_SRC/$BUILD" ;; esac
export TS_SRC TS_BUILD="$BUILD"
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
command -v age >/dev/null || { echo "age: not installed, left out" >&2; exit 0; }
D=$RIG_DIR/age
mkdir -p "$D/bin" "$D/tok" "$D/nat"
ln -s "$BUILD/age-plugin-tokenseal" "$D/bin/age-plugin-tokenseal"
export PATH="$D/bin:$PATH"
[ -n "${BUS_ADDRESS:-}" ] || rig_start_bus
STATE_DIR="$D/state"
rig_start_daemon --idle-lock 0 --log-level warning
create_vault bench-age "$D/rk" >/dev/null || fail "CreateVault"
R=$("$TOKENSEAL" --bus "$BUS_ADDRESS" age-recipient bench-age) || fail "age-recipient"
"$TOKENSEAL" --bus "$BUS_ADDRESS" age-identity bench-age >"$D/id.tok" || fail "age-identity"
age-keygen -o "$D/id.nat" 2>/dev/null
RN=$(age-keygen -y "$D/id.nat")
for i in $(seq "$N"); do
	head -c 64 /dev/urandom >"$D/f$i"
	age -r "$R" -o "$D/tok/f$i.age" "$D/f$i"
	age -r "$RN" -o "$D/nat/f$i.age" "$D/f$i"
done
# Warm the page cache and the plugin binary once, then time each kind, each file its own age process.
age -d -i "$D/id.tok" -o /dev/null "$D/tok/f1.age"
age -d -i "$D/id.nat" -o /dev/null "$D/nat/f1.age"
timed() { # KIND — seconds (3 decimals) to decrypt the N files of KIND, checked byte for byte
	local t0 t1 i
	t0=$(date +%s%N)
	for i in $(seq "$N"); do age -d -i "$D/id.$1" -o "$D/out" "$D/$1/f$i.age"; done
	t1=$(date +%s%N)
	for i in 1 "$N"; do age -d -i "$D/id.$1" -o "$D/out" "$D/$1/f$i.age"; cmp -s "$D/out" "$D/f$i" || fail "$1: f$i differs"; done
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}
tok=$(timed tok)
nat=$(timed nat)
ratio=$(awk -v a="$tok" -v b="$nat" 'BEGIN { printf "%.2f", a / b }')
awk -v n="$N" -v t="$tok" -v x="$nat" -v r="$ratio" 'BEGIN {
	printf "age: %d files of 64 bytes, one age process each: tokenseal %.3f s (%.1f ms/file), native X25519 %.3f s (%.1f ms/file), ratio %s\n",
		n, t, 1000 * t / n, x, 1000 * x / n, r }'
printf '{"files": %d, "tokenseal_s": %s, "native_s": %s, "ratio": %s}\n' "$N" "$tok" "$nat" "$ratio" >"$BUILD/bench-age.json"
rig_stop_daemon
