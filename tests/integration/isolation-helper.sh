#!/bin/bash
# isolation-helper.sh — a compromised token helper gains nothing: run as its own user under its seccomp
# filter, it cannot Unwrap another user's unlocked vault over the bus (given the address), open a vault
# file, or ptrace / read the daemon's memory. The attack is build/tests/tokenseal-helper-compromised
# (tests/helper/compromised.c), started by the daemon as its helper; it reports each attempt to the log.
# Then the real helper: its user, groups, capabilities, no_new_privs, filter and environment, and the
# daemon's own capabilities.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
T=$TOKENSEAL
D=$RIG_DIR
COMPROMISED=$TS_BUILD/tests/tokenseal-helper-compromised
[ -x "$COMPROMISED" ] || fail "no $COMPROMISED (make all builds it)"
HUID=$(id -u "$TS_HELPER_USER") || fail "no helper user"
[ "$HUID" -ne 0 ] || fail "the helper user is root"

# The attack program in a directory of its own, with what to attack next to it (compromised.conf).
mkdir -p "$D/chelper"
cp "$COMPROMISED" "$D/chelper/tokenseal-helper"
chmod 755 "$D/chelper" "$D/chelper/tokenseal-helper"
rig_start_bus
TS_HELPER="$D/chelper/tokenseal-helper" rig_start_daemon --idle-lock 0 --helper-keep 0

# Root's vault, unlocked, with a wrapped data key: the target.
"$T" --vault target create >"$D/rk1" 2>/dev/null || fail "create target"
TARGET=/org/tokenseal1/user/0/vault/target
KEY="32 $(head -c 32 /dev/urandom | od -An -tu1 -v | tr -s ' \n' '  ')"
BLOB=$(wrap "$TARGET" "$KEY" 0) || fail "wrap"
# The blob is good: its owner gets the key back (so a refusal below is about who asks).
[ "$(unwrap "$TARGET" "$BLOB" 0 | tr -s ' ')" = "$(tr -s ' ' <<<"$KEY" | sed 's/ $//')" ] || fail "root's own unwrap"
VFILE=$(find "$STATE_DIR" -name 'target*.vault' | head -n1)
[ -n "$VFILE" ] && [ -r "$VFILE" ] || fail "no vault file for target in $STATE_DIR"
ADDR=$(awk '$2 ~ /^rw/ {split($1, a, "-"); print a[1]; exit}' "/proc/$DAEMON_PID/maps")
{
	echo "bus=$BUS_ADDRESS"
	echo "path=$TARGET"
	echo "blob=$(cut -d' ' -f2- <<<"$BLOB" | awk '{for (i = 1; i <= NF; i++) printf "%02x", $i}')"
	echo "file=$VFILE"
	echo "addr=$ADDR"
} >"$D/chelper/compromised.conf"
chmod 644 "$D/chelper/compromised.conf"

# Another vault whose recovery unlock runs in the (compromised) helper.
"$T" --vault trigger create >"$D/rk2" 2>/dev/null || fail "create trigger"
"$T" --vault trigger lock || fail "lock trigger"
"$T" --vault trigger unlock --protector recovery --pin-fd 3 3<"$D/rk2" >"$D/u" 2>&1 ||
	fail "recovery unlock through the compromised helper: $(cat "$D/u")"
for _ in $(seq 50); do grep -q 'compromised-helper: vmread:' "$D/daemon.log" && break; sleep 0.1; done
grep 'compromised-helper:\|seccomp:' "$D/daemon.log" | sed 's/^/  | /'

line() { grep "compromised-helper: $1:" "$D/daemon.log" | tail -n1; }
grep -q "compromised-helper: running as uid $HUID gid " "$D/daemon.log" ||
	fail "the helper did not run as $TS_HELPER_USER ($HUID): $(grep 'compromised-helper: running' "$D/daemon.log")"
for a in unwrap open ptrace vmread; do
	l=$(line $a)
	[ -n "$l" ] || fail "no report of the $a attempt (the helper did not get that far)"
	case $l in *SUCCEEDED*) fail "a compromised helper succeeded: $l" ;; esac
	case $l in *": refused ("*) ;; *) fail "unexpected report: $l" ;; esac
done
# Refused for who it is: the bus carried the call and the daemon answered it as to a stranger
# (another uid's vault answers as no vault at all), not a failure to connect or to speak D-Bus.
line unwrap | grep -Eq 'refused \((org\.freedesktop\.DBus\.Error\.UnknownObject|org\.tokenseal1\.Error\.AccessDenied)' ||
	fail "Unwrap refused for another reason than who the helper is: $(line unwrap)"
line open | grep -q 'Permission denied' || fail "vault file: $(line open)"
line ptrace | grep -q 'Operation not permitted' || fail "ptrace: $(line ptrace)"
line vmread | grep -q 'Operation not permitted' || fail "process_vm_readv: $(line vmread)"
grep -q 'seccomp: refused system call' "$D/daemon.log" || fail "the filter logged no refused call"
# Its stderr reaches the log through the daemon, marked as the helper's: no line of its passes for the daemon's.
grep -q 'vault=forged-by-helper' "$D/daemon.log" || fail "the helper's forged line did not reach the log at all"
grep -q '^<5>tokensealed: event=unlock vault=forged-by-helper' "$D/daemon.log" &&
	fail "a line the helper wrote passes for the daemon's audit event"
grep -q '^<4>tokensealed: token helper [0-9]*: <5>tokensealed: event=unlock vault=forged-by-helper' "$D/daemon.log" ||
	fail "the helper's line is not marked as the helper's: $(grep forged-by-helper "$D/daemon.log")"
[ "$("$T" --vault trigger status | sed -n 's/^ *state: *\([a-z]*\).*/\1/p')" = unlocked ] ||
	fail "the operation the helper was started for did not complete"
[ "$(unwrap "$TARGET" "$BLOB" 0 | tr -s ' ')" = "$(tr -s ' ' <<<"$KEY" | sed 's/ $//')" ] || fail "root's unwrap after"
pass "a compromised helper (uid $HUID): Unwrap of root's vault, the vault file, ptrace and process_vm_readv of the daemon all refused; its forged log line is marked as its own"

# Each round below: the compromised helper again, in a mode (compromised.conf), the daemon's log from here.
"$T" --vault victim create >"$D/rk3" 2>/dev/null || fail "create victim"
round() { # MODE BINARY_MODE
	rig_stop_daemon
	chmod "$2" "$D/chelper/tokenseal-helper"
	sed -i '/^mode=/d' "$D/chelper/compromised.conf"
	echo "mode=$1" >>"$D/chelper/compromised.conf"
	LOG0=$(wc -l <"$D/daemon.log")
	# (Sanitizer builds: LeakSanitizer makes a process dumpable while it checks at exit, which the
	# spy would see; the helpers of these rounds skip that check.)
	ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0" TS_HELPER="$D/chelper/tokenseal-helper" \
		rig_start_daemon --idle-lock 0 --helper-keep 0
	"$T" --vault trigger lock >/dev/null 2>&1 || true
	"$T" --vault victim lock >/dev/null 2>&1 || true
}
log_since() { tail -n +"$((LOG0 + 1))" "$D/daemon.log"; }

# The spy: while serving one unlock, the compromised helper waits for the next helper to start (another
# caller's unlock, vault "victim") and opens its /proc/PID/mem: the memory that will hold that caller's PIN,
# and its seccomp set-up, before the helper makes itself non-dumpable. The helper binary readable by its
# user (0755): the attack works, and the daemon warns at start. Execute-only (0711, root's, as make install
# puts it): exec makes every helper non-dumpable from its first instruction, and the attack fails.
spy() { # BINARY_MODE
	round spy "$1"
	rm -f "$D/chelper/stop"
	"$T" --vault trigger unlock --protector recovery --pin-fd 3 3<"$D/rk2" >/dev/null 2>&1 &
	local u=$!
	sleep 1
	"$T" --vault victim unlock --protector recovery --pin-fd 3 3<"$D/rk3" >"$D/v" 2>&1 || fail "victim unlock: $(cat "$D/v")"
	touch "$D/chelper/stop"   # the victim has done its work: the spy stops looking
	wait "$u" || true
	for _ in $(seq 50); do log_since | grep -q 'compromised-helper: spy: \(SUCCEEDED\|refused\)' && break; sleep 0.1; done
	log_since | grep 'compromised-helper: \(spy\|victim\)\|readable' | sed 's/^/  | /'
}
spy 0755
log_since | grep -q 'compromised-helper: spy: SUCCEEDED' || fail "control: the spy could not open a starting helper's memory"
log_since | grep -q 'token helper .* can be read by its user' || fail "no warning for a helper binary its user can read"
spy 0711
# (An ASan build's helper becomes readable to its user again late in its life, through the sanitizer's
# runtime: the refusal is checked in the ordinary build only.)
if [ "${TS_SAN:-0}" != 1 ]; then
	log_since | grep -q 'compromised-helper: spy: refused' || fail "the spy was not refused: $(log_since | grep spy)"
fi
log_since | grep -q 'compromised-helper: victim: Seccomp:.*2, fork(): Operation not permitted' ||
	fail "the next helper was not sandboxed: $(log_since | grep victim)"
log_since | grep -q 'can be read by its user' && fail "a warning for an execute-only helper binary"
pass "a compromised helper cannot open the next helper's memory while it starts (binary 0711; 0755: it can, and the daemon warns)"

# The stall: the compromised helper sends one byte of its reply, then nothing, and never exits. Another
# caller is served meanwhile (the reply is read without waiting in the loop), and the daemon kills the helper
# (it is another uid: CAP_KILL) when the job ends, here when the daemon stops.
round stall 0711
"$T" --vault target unlock --protector recovery --pin-fd 3 3<"$D/rk1" >"$D/u" 2>&1 || fail "unlock target: $(cat "$D/u")"
"$T" --vault trigger unlock --protector recovery --pin-fd 3 3<"$D/rk2" >/dev/null 2>&1 &
U=$!
RIG_PIDS+=("$U")
for _ in $(seq 50); do log_since | grep -q 'compromised-helper: stall' && break; sleep 0.1; done
log_since | grep -q 'compromised-helper: stall' || fail "the stalling helper did not start"
HPID=$(ps -o pid=,uid= --ppid "$DAEMON_PID" | awk -v u="$HUID" '$2 == u {print $1; exit}')
[ -n "$HPID" ] || fail "no helper of uid $HUID under the daemon"
BLOBHEX=$(printf '%02x' $(cut -d' ' -f2- <<<"$BLOB"))
/usr/bin/python3 "$TS_SRC/tests/integration/isolation_latency.py" "$BUS_ADDRESS" "$TARGET" "$BLOBHEX" 2 50 \
	"a helper that sent half a reply" || fail "others waited for a helper that sent half a reply"
rig_stop_daemon
kill "$U" 2>/dev/null || true
kill -0 "$HPID" 2>/dev/null && fail "the stalled helper (pid $HPID) outlived the daemon's shutdown"
pass "a helper that sends half a reply and hangs: others served meanwhile, killed by the daemon (CAP_KILL) at the end"

# The real helper, kept as a spare: who it is and what it holds.
rig_stop_daemon
rig_start_daemon --idle-lock 0 --helper-keep 10
"$T" --vault trigger lock || fail "lock"
"$T" --vault trigger unlock --protector recovery --pin-fd 3 3<"$D/rk2" >"$D/u" 2>&1 || fail "unlock: $(cat "$D/u")"
sleep 0.5   # the helper that answered exits and is reaped; the spare started after it stays
spare=$(ps -o pid= --ppid "$DAEMON_PID" | tr -d ' ')
[ -n "$spare" ] && [ "$(wc -l <<<"$spare")" -eq 1 ] || fail "expected one spare helper, found: '$spare'"
st=/proc/$spare/status
[ "$(awk '/^Uid:/ {print $2 $3 $4 $5}' "$st")" = "$HUID$HUID$HUID$HUID" ] || fail "spare helper uids: $(grep ^Uid "$st")"
HGID=$(id -g "$TS_HELPER_USER")
[ "$(awk '/^Gid:/ {print $2 $3 $4 $5}' "$st")" = "$HGID$HGID$HGID$HGID" ] || fail "spare helper gids: $(grep ^Gid "$st")"
want_groups=$(id -G "$TS_HELPER_USER" | tr ' ' '\n' | sort -n | tr '\n' ' ')
have_groups=$(awk '/^Groups:/ {for (i = 2; i <= NF; i++) print $i}' "$st" | sort -n | tr '\n' ' ')
[ "$have_groups" = "$want_groups" ] || fail "spare helper groups: '$have_groups', want '$want_groups'"
for c in CapInh CapPrm CapEff CapAmb; do
	[ "$(awk -v c="$c:" '$1 == c {print $2}' "$st")" = 0000000000000000 ] || fail "spare helper $c: $(grep "^$c" "$st")"
done
grep -q '^NoNewPrivs:[[:space:]]*1' "$st" || fail "spare helper: no_new_privs not set"
grep -q '^Seccomp:[[:space:]]*2' "$st" || fail "spare helper: no seccomp filter"
env_names=$(tr '\0' '\n' <"/proc/$spare/environ" | cut -d= -f1 | sort | tr '\n' ' ')
for n in $env_names; do
	case $n in SOFTHSM2_CONF|PCSCLITE_CSOCK_NAME|ASAN_OPTIONS|UBSAN_OPTIONS|LSAN_OPTIONS|TSS2_LOG) ;;
	*) fail "spare helper environment has $n (all: $env_names)" ;; esac
done
grep -q "^DBUS_SYSTEM_BUS_ADDRESS=\|^TOKENSEAL_BUS=" <(tr '\0' '\n' <"/proc/$spare/environ") && fail "bus address in the helper's environment"
# The daemon keeps CAP_KILL, CAP_SETUID and CAP_SETGID (bits 5, 6, 7) permitted only, nothing effective.
dst=/proc/$DAEMON_PID/status
[ "$(awk '$1 == "CapEff:" {print $2}' "$dst")" = 0000000000000000 ] || fail "daemon CapEff: $(grep CapEff "$dst")"
[ "$(awk '$1 == "CapPrm:" {print $2}' "$dst")" = 00000000000000e0 ] || fail "daemon CapPrm: $(grep CapPrm "$dst")"
[ "$(awk '$1 == "CapBnd:" {print $2}' "$dst")" = 00000000000000e0 ] || fail "daemon CapBnd: $(grep CapBnd "$dst")"
pass "the helper: uid/gid $HUID/$HGID, groups '$want_groups', no capability, no_new_privs, seccomp, environment: $env_names; the daemon: CAP_KILL/CAP_SETUID/CAP_SETGID permitted only"

# A helper user that does not exist: no helper at all (never one as root), the recovery key still opens.
# (The network helper's user too: while it exists the daemon keeps what forking those helpers takes.)
rig_stop_daemon
rig_start_daemon --idle-lock 0 --helper-keep 10 --helper-user ts-no-such-user --net-helper-user ts-no-such-user
grep -q "the network helper's user ts-no-such-user does not exist" "$D/daemon.log" || fail "no start-up warning for a missing network helper user"
grep -q "the token helper's user ts-no-such-user does not exist" "$D/daemon.log" || fail "no start-up warning for a missing user"
"$T" --vault trigger lock || fail "lock"
"$T" --vault trigger unlock --protector recovery --pin-fd 3 3<"$D/rk2" >"$D/u" 2>&1 || fail "recovery unlock without a helper user: $(cat "$D/u")"
grep -q "protector=p1: .*checking it in the daemon" "$D/daemon.log" || fail "the recovery key was not checked in the daemon"
sleep 0.5
[ -z "$(ps -o pid= --ppid "$DAEMON_PID")" ] || fail "a helper runs although its user does not exist"
[ "$(awk '$1 == "CapPrm:" {print $2}' "/proc/$DAEMON_PID/status")" = 0000000000000000 ] || fail "daemon keeps capabilities with no helper user"
pass "no such helper user: no helper started, the daemon keeps no capability, the recovery key opens in the daemon"
rig_stop_daemon
