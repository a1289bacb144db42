#!/bin/bash
# secrets.sh — part of `make bench`: GetSecret round trip of tokenseal-secrets and of gnome-keyring-daemon, each on
# its own private session bus of the same kind, measured in one run; prints both and their ratio.
#
#   tests/bench/secrets.sh BUILD_DIR [N]
set -eu
BUILD=${1:?usage: tests/bench/secrets.sh BUILD_DIR [N]}
N=${2:-20000}
TS_SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) ;; *) BUILD="$TS_SRC/$BUILD" ;; esac
export TS_SRC TS_BUILD="$BUILD"
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/secrets_lib.bash"
B="$BUILD/tests/bench/secrets_bench"
[ -x "$B" ] && [ -x "$SECRETS" ] || fail "build first ($B, $SECRETS)"
command -v gnome-keyring-daemon >/dev/null || { echo "secrets bench: gnome-keyring-daemon missing, skipped"; exit 0; }
rig_start_bus
rig_start_daemon --idle-lock 0 --log-level warning
create_vault secrets "$RIG_DIR/rk" >/dev/null || fail "CreateVault"

measure() { # label
	[ "$(st_store benchsecret --label=bench bench item)" = "exit 0" ] || fail "$1: store"
	"$B" "$DBUS_SESSION_BUS_ADDRESS" "$N" bench item >"$RIG_DIR/$1.out" || fail "$1: bench"
}
secrets_start_session_bus ours
secrets_start
measure ours
secrets_stop
secrets_start_session_bus gk
gk_start
measure gk

read -r _ ours_med ours_mean < <(grep getsecret_us "$RIG_DIR/ours.out")
read -r _ ours_pmed _ < <(grep ping_us "$RIG_DIR/ours.out")
read -r _ gk_med gk_mean < <(grep getsecret_us "$RIG_DIR/gk.out")
read -r _ gk_pmed _ < <(grep ping_us "$RIG_DIR/gk.out")
echo "GetSecret round trip (plain session, $N calls each, median / mean µs; Peer.Ping median to the same peer):"
printf '  %-22s %8s / %-8s ping %s\n' tokenseal-secrets "$ours_med" "$ours_mean" "$ours_pmed" gnome-keyring-daemon "$gk_med" "$gk_mean" "$gk_pmed"
awk -v a="$ours_med" -v b="$gk_med" 'BEGIN { printf "  ratio tokenseal-secrets / gnome-keyring (medians): %.2f\n", a / b }'
