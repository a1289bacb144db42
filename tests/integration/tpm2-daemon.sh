#!/bin/bash
# tpm2-daemon.sh — TPM 2.0 protectors end to end: swtpm, tokensealed on a private bus, and the tokenseal CLI.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
T=$TOKENSEAL
D=$RIG_DIR
TPM1=$D/tpm1
PIN=4711-tpm

# Run the CLI, expect exit code $1 and (optionally) $2 in its stderr.
expect_rc() { # rc, needle ('' for any), command...
	local want=$1 needle=$2 rc=0
	shift 2
	"$@" >"$D/out" 2>"$D/err" </dev/null || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* — stderr: $(cat "$D/err")"
	[ -z "$needle" ] || grep -q -- "$needle" "$D/err" || fail "expected '$needle' in stderr of: $* — got: $(cat "$D/err")"
}
# The id from "Enrolled protector pN (...)".
enrolled_id() { sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$1"; }
# No transient objects or sessions left in TPM dir $1 (swtpm has no resource manager).
tpm_clean() { # dir
	local h out
	for h in handles-transient handles-loaded-session handles-saved-session; do
		out=$(TPM2TOOLS_TCTI="swtpm:path=$1/sock" tpm2_getcap "$h") || fail "tpm2_getcap $h failed"
		[ -z "$out" ] || fail "$h not empty: $out"
	done
}
ts() { "$T" --vault demo "$@"; }
locked() { ts status | grep -q "state: *locked" || fail "vault not locked"; }
unlocked() { ts status | grep -q "state: *unlocked" || fail "vault not unlocked"; }

swtpm_start "$TPM1"
rig_start_bus
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$TPM1/sock"

# --- a vault with two TPM protectors: one without and one with a PIN.
ts create >"$D/rk" 2>/dev/null || fail "create"
grep -Eq '^[0-9A-Z]{5}(-[0-9A-Z]{5}){7}$' "$D/rk" || fail "no recovery key printed"
ts enroll tpm2 >"$D/e" 2>&1 </dev/null || fail "enroll tpm2: $(cat "$D/e")"
P_NOPIN=$(enrolled_id "$D/e")
printf '%s\n' "$PIN" >"$D/pin"
ts enroll tpm2 --pin --pin-fd 3 3<"$D/pin" >"$D/e" 2>&1 </dev/null || fail "enroll tpm2 --pin: $(cat "$D/e")"
P_PIN=$(enrolled_id "$D/e")
[ -n "$P_NOPIN" ] && [ -n "$P_PIN" ] && [ "$P_NOPIN" != "$P_PIN" ] || fail "enroll ids: '$P_NOPIN' '$P_PIN'"
ts status >"$D/st"
grep -A2 "^ *$P_NOPIN *tpm2" "$D/st" | grep -q "pcrs=none pin=no" || fail "status of $P_NOPIN: $(cat "$D/st")"
grep -A2 "^ *$P_PIN *tpm2" "$D/st" | grep -q "pin=yes" || fail "status of $P_PIN: $(cat "$D/st")"
grep -q "$PIN" "$D/daemon.log" && fail "the PIN appears in the daemon log"
tpm_clean "$TPM1"
pass "enroll tpm2 with and without a PIN; status shows pcrs and pin"

# --- lock; a plain unlock needs no PIN (stdin and terminal closed); the PIN protector opens too.
ts lock >/dev/null || fail "lock"
locked
expect_rc 0 "" setsid -w "$T" --vault demo unlock
unlocked
ts lock >/dev/null
expect_rc 0 "" ts unlock --protector "$P_PIN" --pin-fd 3 3<"$D/pin"
unlocked
printf 'tpm data\n' | ts wrap --text -c app=t >"$D/blob" || fail "wrap"
[ "$(ts unwrap -c app=t <"$D/blob")" = "tpm data" ] || fail "unwrap"
tpm_clean "$TPM1"
pass "lock; unlock without PIN through the PIN-less protector; unlock with the PIN; wrap/unwrap"

# --- a TPM power cycle on the same state: both still open.
swtpm_restart "$TPM1"
ts lock >/dev/null
expect_rc 0 "" ts unlock --protector "$P_NOPIN"
ts lock >/dev/null
expect_rc 0 "" ts unlock --protector "$P_PIN" --pin-fd 3 3<"$D/pin"
[ "$(ts unwrap -c app=t <"$D/blob")" = "tpm data" ] || fail "unwrap after the restart"
pass "after a swtpm restart on the same state both protectors unlock"

# --- wrong PIN: exit 6, PinInvalid with the tries left; the vault stays locked.
ts lock >/dev/null
printf 'not-the-pin\n' >"$D/badpin"
expect_rc 6 "PIN incorrect" ts unlock --protector "$P_PIN" --pin-fd 3 3<"$D/badpin"
grep -q "more failures" "$D/err" || fail "PinInvalid message without the tries left: $(cat "$D/err")"
locked
# The counted failure must not stick: the right PIN clears nothing but still works.
expect_rc 0 "" ts unlock --protector "$P_PIN" --pin-fd 3 3<"$D/pin"
tpm_clean "$TPM1"
pass "wrong TPM PIN exits 6 with 'PIN incorrect; N more failures'"

# --- PCR binding: a changed PCR refuses, the recovery key still opens, --replace re-seals.
ts enroll tpm2 --pcrs sha256:7 >"$D/e" 2>&1 </dev/null || fail "enroll --pcrs: $(cat "$D/e")"
P_PCR=$(enrolled_id "$D/e")
ts status | grep -A2 "^ *$P_PCR *tpm2" | grep -q "pcrs=sha256:7" || fail "status lacks the PCR policy: $(ts status)"
ts lock >/dev/null
expect_rc 0 "" ts unlock --protector "$P_PCR"
ts lock >/dev/null
TPM2TOOLS_TCTI="swtpm:path=$TPM1/sock" tpm2_pcrextend \
	7:sha256=0000000000000000000000000000000000000000000000000000000000000001 || fail "tpm2_pcrextend"
expect_rc 6 "PCR policy sha256:7" ts unlock --protector "$P_PCR"
grep -q -- "--replace" "$D/err" || fail "PCR mismatch message does not say how to re-seal: $(cat "$D/err")"
locked
expect_rc 0 "" ts unlock --protector recovery --pin-fd 3 3<"$D/rk"
unlocked
expect_rc 0 "" ts enroll tpm2 --replace "$P_PCR" --pcrs sha256:7
P_NEW=$(enrolled_id "$D/out")
[ -n "$P_NEW" ] && [ "$P_NEW" != "$P_PCR" ] || fail "replace gave no new id: $(cat "$D/out")"
grep -q "Protector $P_PCR replaced" "$D/out" || fail "replace output: $(cat "$D/out")"
ts status >"$D/st"
grep -q "^ *$P_PCR " "$D/st" && fail "replaced protector $P_PCR still listed"
grep -A2 "^ *$P_NEW *tpm2" "$D/st" | grep -q "pcrs=sha256:7" || fail "new protector lacks the PCR policy"
ts lock >/dev/null
expect_rc 0 "" ts unlock --protector "$P_NEW"
# --replace inherits the PCR selection when none is given.
expect_rc 0 "" ts enroll tpm2 --replace "$P_NEW"
P_NEW2=$(enrolled_id "$D/out")
ts status | grep -A2 "^ *$P_NEW2 *tpm2" | grep -q "pcrs=sha256:7" || fail "--replace did not keep the PCRs"
P_NEW=$P_NEW2
# A PIN protector replaced keeps needing a PIN: the new one is given on --pin-fd.
printf 'new-%s\n' "$PIN" >"$D/pin2"
expect_rc 0 "" ts enroll tpm2 --replace "$P_PIN" --pin-fd 3 3<"$D/pin2"
P_PIN2=$(enrolled_id "$D/out")
ts status | grep -A2 "^ *$P_PIN2 *tpm2" | grep -q "pcrs=none pin=yes" || fail "--replace did not keep the PIN"
ts lock >/dev/null
expect_rc 6 "PIN incorrect" ts unlock --protector "$P_PIN2" --pin-fd 3 3<"$D/pin"
expect_rc 0 "" ts unlock --protector "$P_PIN2" --pin-fd 3 3<"$D/pin2"
P_PIN=$P_PIN2
cp "$D/pin2" "$D/pin"
# Nothing changes when the replaced id is unknown or of another type.
n=$(ts status | grep -c "^ *p[0-9]* ")
expect_rc 1 "no protector" ts enroll tpm2 --replace p99
expect_rc 2 "not tpm2" ts enroll tpm2 --replace p1
[ "$(ts status | grep -c "^ *p[0-9]* ")" = "$n" ] || fail "a refused --replace changed the protectors"
tpm_clean "$TPM1"
pass "PCR change refuses naming the policy; recovery key opens; enroll --replace re-seals in one step"

# --- a second TPM cannot open what the first sealed. The vault's rollback counter is not on that TPM either,
# so the file is refused until the administrator accepts it (docs/FORMAT.md, "TPM NV counter").
rig_stop_daemon
swtpm_start "$D/tpm2"
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm2/sock"
grep -q "event=load vault=demo result=Rollback: its TPM counter 0x[0-9a-f]* is gone" "$D/daemon.log" ||
	fail "a vault whose TPM counter is missing was not refused: $(grep 'vault=demo' "$D/daemon.log" | tail -n 2)"
gen=$(sed -n 's/.*--accept-rollback 0:demo:\([0-9]*\).*/\1/p' "$D/daemon.log" | tail -n1)
rig_stop_daemon
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm2/sock" --accept-rollback "0:demo:$gen"
locked
expect_rc 6 "different TPM" ts unlock --protector "$P_NOPIN"
expect_rc 6 "" ts unlock --protector "$P_PIN" --pin-fd 3 3<"$D/pin"
locked
tpm_clean "$D/tpm2"
expect_rc 0 "" ts unlock --protector recovery --pin-fd 3 3<"$D/rk"
swtpm_stop "$D/tpm2"
pass "a vault sealed to one swtpm does not open through another"

# --- back on the first TPM: everything opens again; nothing was left loaded.
rig_stop_daemon
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$TPM1/sock"
expect_rc 0 "" ts unlock --protector "$P_NOPIN"
[ "$(ts unwrap -c app=t <"$D/blob")" = "tpm data" ] || fail "unwrap at the end"
tpm_clean "$TPM1"
pass "the first TPM still opens it; no transient handles or sessions left"
