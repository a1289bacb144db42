#!/bin/bash
# hardening-memory.sh — after Lock and after an idle lock, no vault secret, root key or root key's context-check key byte string is left in tokensealed's memory; the daemon is not dumpable.
# The keys are learnt offline (core_keys opens the vault file with its recovery key); the
# scanner (core_memscan) reads every readable mapping through /proc/PID/mem. It must FIND
# them while the vault is unlocked (proof that the scan works) and find nothing after a lock.
. "$TS_SRC/tests/lib/rig.sh"
T="$TS_BUILD/tests/tools"
for t in core_keys core_memscan core_session; do [ -x "$T/$t" ] || fail "$T/$t not built"; done
sess() { "$T/core_session" "$BUS_ADDRESS" "$@"; }
PAT="$RIG_DIR/patterns" KEY="$RIG_DIR/m.key"

# Patterns: VS, every live root key and its context-check key, and the recovery key text itself.
learn_keys() {
	"$T/core_keys" "$STATE_DIR/0/m.vault" "$KEY" >"$PAT" || fail "core_keys could not open the vault file"
	printf 'recovery-key %s\n' "$(head -n1 "$KEY" | tr -d '\n' | od -An -tx1 | tr -d ' \n')" >>"$PAT"
}

# scan WHEN: print per-pattern hit counts to $RIG_DIR/scan.WHEN
scan() {
	"$T/core_memscan" "$DAEMON_PID" "$PAT" >"$RIG_DIR/scan.$1" || fail "memory scan failed ($1): cannot read /proc/$DAEMON_PID/mem (needs root with CAP_SYS_PTRACE)"
	sed "s/^/  [$1] /" "$RIG_DIR/scan.$1"
}
expect_found() { # WHEN: VS, every root key and context-check key present (the recovery key is not required to be)
	scan "$1"
	grep -v '^scanned\|^recovery-key' "$RIG_DIR/scan.$1" | grep -q ': 0 hits$' &&
		fail "$1: a key of the unlocked vault was not found in memory: the scanner is blind"
	grep -q '^vs: [1-9]' "$RIG_DIR/scan.$1" || fail "$1: VS not found while unlocked"
	return 0
}
expect_absent() { # WHEN
	scan "$1"
	grep -v '^scanned' "$RIG_DIR/scan.$1" | grep -v ': 0 hits$' && fail "$1: secret bytes remain in the daemon's memory"
	return 0
}

# The daemon runs without CAP_SYS_PTRACE (for the dumpable check); the scanner keeps it.
NOPTRACE=(setpriv --inh-caps=-sys_ptrace --bounding-set=-sys_ptrace)
REAL_TOKENSEALED=$TOKENSEALED
TOKENSEALED="$RIG_DIR/tokensealed-noptrace"
printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${NOPTRACE[*]}" "$REAL_TOKENSEALED" >"$TOKENSEALED"
chmod 755 "$TOKENSEALED"

rig_start_bus
rig_start_daemon --idle-lock 0

# 1. A fresh vault (unlocked by CreateVault), three root keys, some use; then Lock.
P=$(sess create m "$KEY") || fail "CreateVault"
sess rotate "$P" >/dev/null && sess rotate "$P" >/dev/null || fail "RotateKey"
sess use "$P" 50 || fail "use"
learn_keys
[ "$(grep -c '^rk ' "$PAT")" = 3 ] || fail "expected 3 root keys from core_keys, got: $(cut -d' ' -f1,2 "$PAT")"
[ "$(grep -c '^ctxkey ' "$PAT")" = 3 ] || fail "expected 3 context-check keys from core_keys, got: $(cut -d' ' -f1,2 "$PAT")"
expect_found created-unlocked
sess lock "$P" || fail "Lock"
[ "$(sess locked "$P")" = "1 request" ] || fail "vault not locked after Lock"
expect_absent after-lock
pass "keys found while unlocked, none left after Lock"

# 2. Unlock with the recovery key, use, Lock again.
sess unlock "$P" "$KEY" || fail "Unlock"
sess use "$P" 50 || fail "use"
expect_found unlocked-again
sess lock "$P" || fail "Lock"
expect_absent after-second-lock
pass "after Unlock/use/Lock: none left"

# 3. The daemon is not dumpable. Test: a same-uid process without CAP_SYS_PTRACE may open
#    /proc/PID/mem of a dumpable process with no more capabilities than itself (control: a
#    sleep started the same way), and of a non-dumpable one never. Both the daemon (see
#    NOPTRACE below) and the control run without CAP_SYS_PTRACE, so only dumpability differs.
"${NOPTRACE[@]}" sleep 60 & CONTROL=$!
RIG_PIDS+=($CONTROL)
sleep 0.1
"${NOPTRACE[@]}" dd if=/proc/$CONTROL/mem bs=1 count=0 status=none 2>/dev/null ||
	fail "control: cannot open a dumpable process's /proc/PID/mem without CAP_SYS_PTRACE (cannot tell)"
"${NOPTRACE[@]}" dd if=/proc/$DAEMON_PID/mem bs=1 count=0 status=none 2>/dev/null &&
	fail "tokensealed is dumpable (PR_SET_DUMPABLE 0 missing)"
kill $CONTROL
pass "tokensealed is not dumpable"

# 4. Idle lock: a daemon with --idle-lock 4 locks the unused vault by itself.
rig_stop_daemon TERM
# (4 s: the scan of an ASan daemon's 300 MB must end before the idle lock comes.)
rig_start_daemon --idle-lock 4
sess unlock "$P" "$KEY" || fail "Unlock (idle daemon)"
sess use "$P" 5 || fail "use"
expect_found idle-unlocked
for _ in $(seq 80); do [ "$(sess locked "$P")" = "1 idle" ] && break; sleep 0.1; done
[ "$(sess locked "$P")" = "1 idle" ] || fail "vault not idle-locked after 4 s: $(sess locked "$P")"
expect_absent after-idle-lock
pass "after the idle lock: none left"
