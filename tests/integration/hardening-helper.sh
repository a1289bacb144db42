#!/bin/bash
# hardening-helper.sh — token operations run in tokenseal-helper, never in the daemon: the daemon maps no token
# library, leaves no helper behind, and survives a helper that is missing or dies; recovery keys still work then.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
T=$TOKENSEAL
D=$RIG_DIR
TOKEN_LIBS='libfido2|libtss2|libp11-kit|libcrypto|libssl|softhsm'

ts() { "$T" --vault h "$@"; }
state() { ts status | sed -n 's/^ *state: *\([a-z]*\).*/\1/p'; }
# Every mapping of the daemon: no token library among them.
no_token_libs() { # label
	local pid=$DAEMON_PID hit
	hit=$(grep -E "$TOKEN_LIBS" "/proc/$pid/maps" | awk '{print $6}' | sort -u) || true
	[ -z "$hit" ] || fail "$1: the daemon maps token libraries: $hit"
}
# No process whose parent is the daemon (each helper is reaped after its one operation, from the loop:
# a helper that just died may be a zombie for a moment).
no_children() { # label
	local kids
	for _ in $(seq 40); do
		kids=$(ps -o pid=,comm= --ppid "$DAEMON_PID") || true
		[ -z "$kids" ] && return 0
		sleep 0.05
	done
	fail "$1: helpers left behind: $kids"
}

swtpm_start "$D/tpm"
rig_start_bus
KEEP=2   # --helper-keep: how long a spare helper is kept after a token operation
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --helper-keep $KEEP

# The check can fail: the helper itself does map the token libraries.
ldd "$TS_HELPER" | grep -Eq "$TOKEN_LIBS" || fail "the helper links no token library (check cannot fail)"

ts create >"$D/rk" 2>/dev/null || fail "create"
ts enroll tpm2 >"$D/e" 2>&1 </dev/null || fail "enroll tpm2: $(cat "$D/e")"
ts lock || fail "lock"
setsid -w "$T" --vault h unlock </dev/null >"$D/u" 2>&1 || fail "unlock through tpm2: $(cat "$D/u")"
[ "$(state)" = unlocked ] || fail "not unlocked after tpm2 unlock"
ts status >/dev/null || fail "status"
no_token_libs "after enroll, unlock and status through the TPM"
# One spare helper, started ahead for the next operation, and nothing else; gone after --helper-keep.
# (Helpers that answered are reaped from the loop within a moment.)
sleep 0.5
kids=$(ps -o comm= --ppid "$DAEMON_PID" || true)
[ "$kids" = tokenseal-helpe ] || fail "expected one spare helper after token operations, found: '$kids'"
spare=$(ps -o pid= --ppid "$DAEMON_PID" | tr -d ' ')
grep -Eq "$TOKEN_LIBS" "/proc/$spare/maps" || fail "the spare helper has not loaded the token libraries"
sleep $((KEEP + 1))
no_children "$((KEEP + 1)) s after the last token operation"
setsid -w "$T" --vault h unlock </dev/null >"$D/u" 2>&1 || fail "unlock after the spare expired: $(cat "$D/u")"
pass "enroll/unlock/status through tpm2 work; the daemon maps none of $TOKEN_LIBS; one warm spare, gone after ${KEEP} s"

# A helper that dies without answering: a clear error, the daemon lives on, the recovery key opens.
restart_with_helper() { # program
	rig_stop_daemon
	TS_HELPER=$1 rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --helper-keep 0
}
printf '#!/bin/sh\nexit 3\n' >"$D/dying-helper"
chmod 755 "$D/dying-helper"
restart_with_helper "$D/dying-helper"
[ "$(state)" = locked ] || fail "vault not locked after restart"
# (Without a helper the daemon cannot tell whether the protector takes a PIN, so the CLI wants one: give any.)
echo x >"$D/anypin"
if ts unlock --protector tpm2 --pin-fd 3 3<"$D/anypin" >"$D/u" 2>&1; then fail "unlock with a dying helper succeeded"; fi
grep -Eq "token helper.*exited (without an answer|before reading its request)" "$D/u" || fail "no clear error for a dying helper: $(cat "$D/u")"
busctl --address="$BUS_ADDRESS" call org.tokenseal1 /org/tokenseal1 org.freedesktop.DBus.Peer Ping >/dev/null ||
	fail "daemon gone after a helper died"
no_children "after a helper died"
ts unlock --protector recovery --pin-fd 3 3<"$D/rk" >"$D/u" 2>&1 || fail "recovery unlock with a dying helper: $(cat "$D/u")"
[ "$(state)" = unlocked ] || fail "recovery key did not unlock"
grep -q "protector=p1: .*checking it in the daemon" "$D/daemon.log" ||
	fail "the recovery key did not fall back to the daemon: $(tail -n 5 "$D/daemon.log")"
pass "a helper that dies: a clear error, the daemon alive, the recovery key still opens (checked in the daemon)"

# A missing helper: the same, with the path in the message.
ts lock || fail "lock"
restart_with_helper "$D/no-such-helper"
grep -q "token helper $D/no-such-helper" "$D/daemon.log" || fail "no start-up warning for a missing helper"
if ts unlock --protector tpm2 --pin-fd 3 3<"$D/anypin" >"$D/u" 2>&1; then fail "unlock without a helper succeeded"; fi
grep -q "cannot start the token helper $D/no-such-helper" "$D/u" || fail "no clear error for a missing helper: $(cat "$D/u")"
ts unlock --protector recovery --pin-fd 3 3<"$D/rk" >/dev/null 2>&1 || fail "recovery unlock without a helper"
pass "a missing helper: warned at start, named in the error; the recovery key still opens"

# The real helper again: the TPM protector opens as before.
ts lock || fail "lock"
restart_with_helper "$TS_BUILD/tokenseal-helper"
setsid -w "$T" --vault h unlock --protector tpm2 </dev/null >"$D/u" 2>&1 || fail "tpm2 unlock after restart: $(cat "$D/u")"
no_token_libs "after restart"
# The recovery key's Argon2id (64 MiB) runs in the helper too: the daemon's peak memory stays far below it.
ts lock || fail "lock"
: >"$D/daemon.log"
ts unlock --protector recovery --pin-fd 3 3<"$D/rk" >"$D/u" 2>&1 || fail "recovery unlock: $(cat "$D/u")"
[ "$(state)" = unlocked ] || fail "recovery key did not unlock"
grep -q "checking it in the daemon" "$D/daemon.log" && fail "the recovery key fell back to the daemon with a working helper"
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$DAEMON_PID/status")
# (An ASan build's own memory is far above any such bound: there the log check above has to do.)
[ "${TS_SAN:-0}" = 1 ] || [ "$hwm" -lt 32768 ] ||
	fail "daemon peak RSS $hwm KiB after a recovery unlock: Argon2id ran in the daemon"
pass "back with the real helper: the TPM protector opens; a recovery unlock leaves the daemon's peak RSS at $hwm KiB"
