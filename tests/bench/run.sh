#!/bin/bash
# run.sh — `make bench`: a private bus and tokensealed, then tests/bench/bench; table on stdout, BUILD/bench.json.
#
#   tests/bench/run.sh BUILD_DIR [--quick]
#
# Five daemon runs: one over 1,000 vault files made offline (memory per vault);
# one with the software tokens (softfido, swtpm, SoftHSM2) and a vault per
# protector type, for the unlock overhead, and Clevis TPM2 on the same swtpm;
# one on a session-type bus next to gnome-keyring's Secret Service (these two
# are the peers, tests/bench/peers.sh, where installed); one over a fresh state
# dir for the timed part (latency, batches, concurrency, a million requests);
# and tests/bench/age.sh (decrypting small files with age through the plugin
# against a native identity).
set -eu
BUILD=${1:?usage: tests/bench/run.sh BUILD_DIR [--quick]}
shift
TS_SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) ;; *) BUILD="$TS_SRC/$BUILD" ;; esac
export TS_SRC TS_BUILD="$BUILD"
QUICK=()
N_VAULTS=${BENCH_VAULTS:-1000}
N_UNLOCK=${BENCH_UNLOCKS:-100}
# The peers: GetSecret and Ping calls each; clevis decrypts, rounds of tokenseal, distinct sealed keys.
N_KEYRING=20000 N_CLEVIS=20 N_CLEVIS_ROUNDS=5 N_CLEVIS_KEYS=4
if [ "${1:-}" = "--quick" ]; then
	QUICK=(--quick); N_VAULTS=${BENCH_VAULTS:-100}; N_UNLOCK=${BENCH_UNLOCKS:-10}
	N_KEYRING=2000 N_CLEVIS=6 N_CLEVIS_ROUNDS=3 N_CLEVIS_KEYS=2
fi
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
. "$TS_SRC/tests/bench/peers.sh"
PEERS_DIR="$RIG_DIR/peers"
mkdir -p "$PEERS_DIR"
TOOLS="$BUILD/tests/tools"

BENCH="$BUILD/tests/bench/bench"
[ -x "$BENCH" ] || fail "$BENCH not built"
[ -x "$TOKENSEALED" ] || fail "$TOKENSEALED not built"

# Forget a stopped process's PID so that cleanup never signals a reused one.
forget_pid() { # pid
	local keep=() p
	for p in "${RIG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	RIG_PIDS=("${keep[@]}")
}
stop_daemon() {
	local pid=$DAEMON_PID
	rig_stop_daemon TERM
	forget_pid "$pid"
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
rig_start_bus

# 1. Memory with many vaults: files written offline by the core, loaded at start, then unlocked.
STATE_DIR="$RIG_DIR/state-many"
"$BENCH" mkvaults "$STATE_DIR" "$N_VAULTS" "$RIG_DIR/bench.key"
rig_start_daemon --idle-lock 0 --log-level warning
"$BENCH" vaults "$BUS_ADDRESS" "$DAEMON_PID" "$N_VAULTS" "$RIG_DIR/bench.key" "$RIG_DIR/vaults.json"
stop_daemon

# 2. Unlock per protector type. One vault each, made and enrolled with the CLI
# as the tests do; bench unlock then times Unlock through the bus against the
# in-process baseline TYPE_check bench-unlock on the same vault file.
# A token whose software stand-in is missing here is left out of the table.
U="$RIG_DIR/unlock"
mkdir -p "$U"
PLAN="$U/plan"
: >"$PLAN"
DAEMON_ARGS=(--idle-lock 0 --log-level warning)
plan() { local IFS=$'\t'; echo "$*" >>"$PLAN"; }
have_fido2=; have_tpm2=; have_pkcs11=
if [ -x "$SOFTFIDO" ]; then
	softfido_start bench   # touch requests are approved at once (its default)
	printf '1234\n' >"$U/fido2.pin"
	"$TOOLS/fido2_check" set-pin --device "$SOFTFIDO_bench_DEV" --vault-id 00 --pin-file "$U/fido2.pin" ||
		fail "softfido: cannot set the PIN"
	DAEMON_ARGS+=(--test-devices --fido2-device "$SOFTFIDO_bench_DEV")
	have_fido2=1
else echo "unlock: no softfido, fido2 left out" >&2; fi
if command -v swtpm >/dev/null && command -v tpm2_getcap >/dev/null; then
	swtpm_start "$U/tpm"
	DAEMON_ARGS+=(--tpm2-tcti "swtpm:path=$U/tpm/sock")
	have_tpm2=1
else echo "unlock: no swtpm, tpm2 left out" >&2; fi
if softhsm_module_path >/dev/null && command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null; then
	softhsm_setup "$U/hsm"   # exports SOFTHSM2_CONF: the daemon and pkcs11_check find the token through p11-kit
	printf '%s\n' "$SOFTHSM_PIN" >"$U/pkcs11.pin"
	have_pkcs11=1
else echo "unlock: no SoftHSM2, pkcs11 left out" >&2; fi

STATE_DIR="$U/state"
rig_start_daemon "${DAEMON_ARGS[@]}"
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault "$@"; }
enroll() { # vault, enroll arguments... (a PIN on fd 3 if open): prints the new protector id
	local v=$1 out
	shift
	out=$(T "$v" enroll "$@" 2>&1 </dev/null) || fail "enroll in $v: $out"
	sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' <<<"$out"
}
for v in recovery ${have_fido2:+fido2-pin fido2-nopin} ${have_tpm2:+tpm2} ${have_pkcs11:+pkcs11-rsa}; do
	T "$v" create >"$U/$v.rk" 2>/dev/null || fail "create vault $v"
done
plan recovery recovery p1 "$U/recovery.rk" \
	"$TOOLS/recovery_check" bench-unlock --vault "$U/state/0/recovery.vault" --protector p1 --pin-file "$U/recovery.rk"
if [ -n "$have_fido2" ]; then
	p=$(enroll fido2-pin fido2 --pin-fd 3 3<"$U/fido2.pin")
	plan fido2 fido2-pin "$p" "$U/fido2.pin" "$TOOLS/fido2_check" bench-unlock \
		--device "$SOFTFIDO_bench_DEV" --vault "$U/state/0/fido2-pin.vault" --protector "$p" --pin-file "$U/fido2.pin"
	p=$(enroll fido2-nopin fido2 --no-pin --pin-fd 3 3<"$U/fido2.pin")
	plan fido2 fido2-nopin "$p" - "$TOOLS/fido2_check" bench-unlock \
		--device "$SOFTFIDO_bench_DEV" --vault "$U/state/0/fido2-nopin.vault" --protector "$p"
fi
if [ -n "$have_tpm2" ]; then
	p=$(enroll tpm2 tpm2)
	P_TPM2=$p
	plan tpm2 tpm2 "$p" - "$TOOLS/tpm2_check" bench-unlock \
		--tcti "swtpm:path=$U/tpm/sock" --vault "$U/state/0/tpm2.vault" --protector "$p"
fi
if [ -n "$have_pkcs11" ]; then
	p=$(enroll pkcs11-rsa pkcs11 --uri "pkcs11:token=$SOFTHSM_LABEL;id=%01" --pin-fd 3 3<"$U/pkcs11.pin")
	plan pkcs11 pkcs11-rsa "$p" "$U/pkcs11.pin" "$TOOLS/pkcs11_check" bench-unlock \
		--vault "$U/state/0/pkcs11-rsa.vault" --protector "$p" --pin-file "$U/pkcs11.pin"
fi
"$BENCH" unlock "$BUS_ADDRESS" "$PLAN" "$N_UNLOCK" "$U/unlock.json" "$U/unlock.txt"
# Clevis TPM2 on the same swtpm, against the tpm2 vault of this daemon.
if [ -n "$have_tpm2" ]; then
	peers_clevis "$PEERS_DIR" tpm2 "$P_TPM2" "swtpm:path=$U/tpm/sock" "$N_CLEVIS" "$N_CLEVIS_ROUNDS" "$N_CLEVIS_KEYS"
else peers_skip "$PEERS_DIR" clevis "no swtpm"; fi
stop_daemon
if [ -n "$have_fido2" ]; then forget_pid "$SOFTFIDO_PID_bench"; softfido_stop bench; fi
if [ -n "$have_tpm2" ]; then p=$(cat "$U/tpm/pid"); swtpm_stop "$U/tpm"; forget_pid "$p"; fi
unset SOFTHSM2_CONF

# gnome-keyring's GetSecret against Ping, and a tokensealed's Unwrap against Ping, on one session-type bus.
peers_keyring "$PEERS_DIR" "$N_KEYRING"

# 3. The timed part, on a daemon that has only the benchmark vault.
STATE_DIR="$RIG_DIR/state"
# Also its private socket: (a) and (b) measure Unwrap and UnwrapBatch there too, against the bus's Ping.
rig_start_daemon --idle-lock 0 --log-level warning --private-socket "$RIG_DIR/private"
sleep 0.2   # idle: let start-up settle before the first RSS sample
BENCH_PRIVATE_SOCKET="$RIG_DIR/private" "$BENCH" run "$BUS_ADDRESS" "$DAEMON_PID" "$BUILD/bench.json" --vaults-json "$RIG_DIR/vaults.json" \
	--unlock-json "$U/unlock.json" --unlock-table "$U/unlock.txt" --peers-dir "$PEERS_DIR" "${QUICK[@]}"
stop_daemon

# 4. age through age-plugin-tokenseal against a native identity (its own daemon and vault).
"$TS_SRC/tests/bench/age.sh" "$BUILD" "${BENCH_AGE_FILES:-$([ ${#QUICK[@]} -gt 0 ] && echo 20 || echo 100)}"
echo "results: $BUILD/bench.json"
# 4. tokenseal-secrets against gnome-keyring-daemon (docs/PERFORMANCE.md, "Secret Service").
N_SECRETS=20000
[ ${#QUICK[@]} -eq 0 ] || N_SECRETS=2000
"$TS_SRC/tests/bench/secrets.sh" "$BUILD" "$N_SECRETS"
echo "whole run: $SECONDS s"
