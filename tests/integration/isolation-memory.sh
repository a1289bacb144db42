#!/bin/bash
# isolation-memory.sh — data keys, the PIN and the recovery key do not linger: after a long-lived libtokenseal client has moved a known 32-byte key through every data call and the vault is locked, neither the daemon's memory nor the client's holds a copy.
# The client (tests/tools/client_memory) unlocks with the recovery key and with a PKCS#11 PIN
# (SoftHSM2; a long random PIN, so that a hit means a copy), then runs N rounds of Wrap,
# Unwrap, Rewrap, UnwrapBatch, RewrapBatch (the library sends their packed forms, UnwrapBatchPacked
# and RewrapBatchPacked) and GenerateDataKey on the pattern, wipes its own
# copies and waits. core_memscan reads both processes through /proc/PID/mem. The scanner is
# shown not to be blind: a client told to keep a heap copy of the pattern is found holding it.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
T="$TS_BUILD/tests/tools"
for t in core_memscan core_session client_memory; do [ -x "$T/$t" ] || fail "$T/$t not built"; done
D=$RIG_DIR N=${MEMSCAN_ROUNDS:-20}
hexof() { od -An -tx1 | tr -d ' \n'; }

softhsm_setup "$D/hsm"
PIN=$(head -c 16 /dev/urandom | hexof)   # 32 characters
SLOT=$(softhsm2-util --init-token --free --label tsmem --so-pin 11112222 --pin "$PIN" |
	sed -n 's/.*reassigned to slot \([0-9]*\).*/\1/p')
[ -n "$SLOT" ] || fail "SoftHSM2 token with a long PIN"
pkcs11-tool --module "$SOFTHSM_MODULE" --slot "$SLOT" --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 \
	--id 05 --label mem-ec >/dev/null 2>&1 || fail "key pair on the token"
printf '%s\n' "$PIN" >"$D/pin"
head -c 32 /dev/urandom | hexof >"$D/pattern"

rig_start_bus
rig_start_daemon --idle-lock 0
P=$("$T/core_session" "$BUS_ADDRESS" create m "$D/rk") || fail "CreateVault"
"$TOKENSEAL" --vault m enroll pkcs11 --uri "pkcs11:token=tsmem;id=%05" --pin-fd 3 3<"$D/pin" </dev/null >"$D/e" 2>&1 ||
	fail "enroll the PKCS#11 key: $(cat "$D/e")"
"$T/core_session" "$BUS_ADDRESS" lock "$P" || fail "Lock"
{
	printf 'pattern %s\n' "$(cat "$D/pattern")"
	printf 'pin %s\n' "$(printf '%s' "$PIN" | hexof)"
	printf 'recovery-key %s\n' "$(head -n1 "$D/rk" | tr -d '\n' | hexof)"
} >"$D/patterns"

# scan WHO PID WHEN — per-pattern hit counts into $D/scan.WHO.WHEN (a whole copy is 2 hits: one per half).
scan() {
	"$T/core_memscan" "$2" "$D/patterns" >"$D/scan.$1.$3" || fail "memory scan of the $1 failed ($3)"
	sed "s/^/  [$1, $3] /" "$D/scan.$1.$3"
}

# start_client ROUNDS [keep] — client_memory in the background, held alive by the fifo until release_client.
mkfifo "$D/hold"
start_client() {
	"$T/client_memory" m "$D/pin" "$D/rk" "$D/pattern" "$@" <"$D/hold" >"$D/client.out" 2>&1 &
	CLIENT=$!
	RIG_PIDS+=($CLIENT)
	exec 7>"$D/hold"
	for _ in $(seq 1200); do grep -q '^ready$' "$D/client.out" && break; kill -0 $CLIENT 2>/dev/null || break; sleep 0.1; done
	grep -q '^ready$' "$D/client.out" || fail "the client did not get ready: $(cat "$D/client.out")"
}
release_client() { exec 7>&-; wait $CLIENT || fail "client_memory: $(cat "$D/client.out")"; }

# Control: a client told to keep a copy of the pattern in its heap; the scan must find it.
start_client 1 keep
"$T/core_session" "$BUS_ADDRESS" lock "$P" || fail "Lock"
scan client "$CLIENT" control
grep -q '^pattern: [1-9]' "$D/scan.client.control" || fail "the scanner does not see the client's heap copy: blind"
release_client
pass "control: the scanner finds the copy a client keeps"

# The run: N rounds, then the client waits with its connection open; the vault is locked.
start_client "$N"
"$T/core_session" "$BUS_ADDRESS" lock "$P" || fail "Lock"
[ "$("$T/core_session" "$BUS_ADDRESS" locked "$P")" = "1 request" ] || fail "vault not locked after Lock"
scan daemon "$DAEMON_PID" after-lock
scan client "$CLIENT" after-lock
release_client
bad=$(cat "$D/scan.daemon.after-lock" "$D/scan.client.after-lock" | grep -v '^scanned' | grep -v ': 0 hits$' || true)
[ -z "$bad" ] || fail "copies left after $N rounds and Lock (daemon, then client): $(echo $bad)"
pass "after $N rounds of Wrap/Unwrap/Rewrap/UnwrapBatch/RewrapBatch/GenerateDataKey and a Lock: no copy of the data key, the PIN or the recovery key in the daemon or the client"
