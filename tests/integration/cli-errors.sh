#!/bin/bash
# cli-errors.sh — the tokenseal CLI's help, usage errors and exit codes: no such vault, other users, no daemon.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
T=$TOKENSEAL
D=$RIG_DIR

expect_rc() { # rc, needle ('' for any) in stderr, command...
	local want=$1 needle=$2 rc=0
	shift 2
	"$@" >"$D/out" 2>"$D/err" </dev/null || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* — stderr: $(cat "$D/err")"
	[ -z "$needle" ] || grep -q -- "$needle" "$D/err" || fail "expected '$needle' in stderr of: $* — got: $(cat "$D/err")"
}

# --- help: every subcommand, exit 0, its own options named.
"$T" --help >"$D/help" || fail "tokenseal --help"
for w in status create unlock lock wrap unwrap rewrap gen-key rotate enroll revoke "Exit status" "no such vault" \
	"not reachable" "policy"; do
	grep -q -- "$w" "$D/help" || fail "tokenseal --help does not mention '$w'"
done
check_help() { # command, words...
	local cmd=$1; shift
	"$T" "$cmd" --help >"$D/help" 2>&1 || fail "tokenseal $cmd --help exits non-zero"
	grep -q "Usage: tokenseal $cmd" "$D/help" || fail "tokenseal $cmd --help has no usage line"
	for w in "$@"; do grep -q -- "$w" "$D/help" || fail "tokenseal $cmd --help does not mention $w"; done
}
check_help status --json --vault
check_help create --owner --vault
check_help unlock --protector --pin-fd --vault
check_help lock --vault
check_help wrap --context --text --in --out --vault
check_help unwrap --context --in --out --hex --vault
check_help rewrap --context --text --in --out
check_help gen-key --size --context --blob-out --key-out --hex --text
check_help rotate --retire-below
check_help enroll --pin-fd --option --no-pin --no-touch --pin --pcrs --uri
check_help revoke ID --keep --touch --record-only --vault
pass "--help of the tool and of every subcommand exits 0 and names its options"

# --- usage errors exit 2, before any bus is needed; a secret is never taken from argv.
expect_rc 2 "" "$T"
expect_rc 2 "unknown command" "$T" frobnicate
expect_rc 2 "" "$T" wrap --bogus
expect_rc 2 "unexpected argument" "$T" unlock ABCDE-FGHIJ
expect_rc 2 "unexpected argument" "$T" lock extra
expect_rc 2 "TYPE" "$T" enroll
expect_rc 2 "ID" "$T" revoke
expect_rc 2 "size" "$T" gen-key --size 0
expect_rc 2 "pin-fd" "$T" unlock --pin-fd x
pass "usage errors exit 2; a recovery key on the command line is refused"

# --- no daemon: no bus at all, then a bus without tokensealed: 9.
expect_rc 9 "not reachable\|cannot connect" "$T" --bus "unix:path=$D/no-such-socket" status
rig_start_bus
expect_rc 9 "not reachable" "$T" status
echo x >"$D/x.txt"
expect_rc 9 "not reachable" "$T" --vault x wrap --in "$D/x.txt"
pass "no bus or no daemon on it: exit 9"

rig_start_daemon --idle-lock 0
"$T" create rootvault >"$D/rk" 2>/dev/null || fail "create"
expect_rc 5 "no vault named 'nosuch'" "$T" --vault nosuch status
echo x | "$T" --vault rootvault wrap >"$D/b.bin" || fail "wrap"
expect_rc 5 "nosuch" "$T" --vault nosuch unwrap --in "$D/b.bin"
expect_rc 5 "" "$T" --vault nosuch lock
pass "unknown vault: exit 5 with its name"

# --- another user: root's vault looks like no vault at all (5), by name or as root's (OWNER:NAME),
# and is not even listed; "rootvault" alone is a name in the user's own namespace.
chmod 644 "$D/b.bin"
as_other() { setpriv --reuid "$OTHER_UID" --regid "$OTHER_UID" --clear-groups "$@"; }
expect_rc 5 "no vault named 'root:rootvault'" as_other "$T" --vault root:rootvault unwrap --in "$D/b.bin"
expect_rc 5 "no vault named '0:rootvault'" as_other "$T" --vault 0:rootvault lock
expect_rc 5 "" as_other "$T" --vault 0:rootvault status
expect_rc 5 "" as_other "$T" --vault root:rootvault gen-key
expect_rc 5 "no vault named 'rootvault'" as_other "$T" --vault rootvault lock
as_other "$T" status >"$D/other-status" || fail "status as another user"
grep -q rootvault "$D/other-status" && fail "another user sees root's vault in status"
"$T" --vault rootvault status | grep -q "state: *unlocked" || fail "other user's attempts changed the vault"
# The library's own default vault is the caller's user name.
expect_rc 5 "no vault named 'nobody'\|no vault named" as_other "$T" status --vault nobody
expect_rc 5 "" as_other "$T" unwrap --in "$D/b.bin"
pass "another user gets exit 5 on root's vault, as for no vault, and does not see it"

# --- the daemon goes away mid-session: 9, not a hang.
rig_stop_daemon
expect_rc 9 "" "$T" --vault rootvault lock
pass "daemon stopped: exit 9"
