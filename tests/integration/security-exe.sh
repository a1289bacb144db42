#!/bin/bash
# security-exe.sh — [unwrap] executables cannot be met by exec: a caller that connects, forks, execs an
# allowed program in the connecting process and sends Unwrap from the child is refused; the executable
# counts only for a caller in a system service's cgroup without a login uid.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
PD=$POLICY_DIR
SLEEP=$(readlink -f "$(command -v sleep)")
PY=$(readlink -f /usr/bin/python3)

# mail-*: only the sleep program may unwrap (a program that cannot speak D-Bus: only the exec trick gets in).
# svc-*: only python, the client of the positive case.
policy_conf 10-exe.conf <<EOF
[unwrap mail]
vaults = mail-*
executables = $SLEEP

[unwrap svc]
vaults = svc-*
executables = $PY
EOF
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$PD"

M=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' mail-n "owner=$OTHER_UID" ">$D/rk-m") ||
	fail "create mail-n"
S=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' svc-n "owner=$OTHER_UID" ">$D/rk-s") ||
	fail "create svc-n"
MB=$(fdcall "$M" $VIFACE Wrap 'aya{ss}' 68656c6c6f "") || fail "Wrap mail-n"
SB=$(fdcall "$S" $VIFACE Wrap 'aya{ss}' 776f726c64 "") || fail "Wrap svc-n"

# The attacker: the vault's owner running python in its own session (not an allowed executable).
cat >"$D/exec-trick.py" <<'PY'
# Connect, fork; the connecting process execs the allowed program (same pid: what the bus recorded),
# and the child, which inherited the connection, sends Unwrap.
import os, sys, time
import dbus

address, path, blob, exe = sys.argv[1:5]
conn = dbus.bus.BusConnection(address)
conn.get_unique_name()
parent = os.getpid()
if os.fork() != 0:
    os.execv(exe, [exe, "30"])
for _ in range(200):
    try:
        if os.readlink("/proc/%d/exe" % parent) == exe:
            break
    except OSError:
        pass
    time.sleep(0.05)
else:
    sys.stderr.write("the parent never became %s\n" % exe)
    os._exit(2)
rc = 0
try:
    reply = conn.call_blocking("org.tokenseal1", path, "org.tokenseal1.Vault", "Unwrap", "aya{ss}",
                               [dbus.ByteArray(bytes.fromhex(blob)), dbus.Dictionary({}, signature="ss")],
                               timeout=30, byte_arrays=True)
    print(bytes(reply).hex())
except dbus.exceptions.DBusException as e:
    sys.stderr.write("%s: %s\n" % (e.get_dbus_name(), e.get_dbus_message()))
    rc = 1
sys.stdout.flush()
os.kill(parent, 15)
os._exit(rc)
PY

# --- the rule works for a plain caller: python is not sleep.
out=$(as_other /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$M" $VIFACE Unwrap 'aya{ss}' "$MB" "" 2>&1) &&
	fail "python unwrapped from mail-n although only $SLEEP may: $out"
grep -q "PolicyViolation: \[unwrap mail\]" <<<"$out" || fail "expected PolicyViolation, got: $out"

# --- the attack: same pid, now running the allowed program; the child holds the connection.
# (Its status is the parent's, which the child ends: only the output tells.)
out=$(as_other /usr/bin/python3 "$D/exec-trick.py" "$BUS_ADDRESS" "$M" "$MB" "$SLEEP" 2>&1) || true
[ "$out" != 68656c6c6f ] || { tail -n 20 "$D/daemon.log"; fail "exec trick: the child of a process that exec'd $SLEEP unwrapped from mail-n"; }
grep -q "PolicyViolation: \[unwrap mail\] .*executable unknown.*its executable does not count: " <<<"$out" ||
	fail "expected a PolicyViolation saying why the executable does not count, got: $out"
grep -q "unwrap: vault=mail-n uid=$OTHER_UID pid=[0-9]*: \[unwrap\] executables entries do not match this caller" \
	"$D/daemon.log" || fail "the refusal is not explained in the log: $(tail -n 5 "$D/daemon.log")"
pass "exec trick (connect, fork, exec the allowed program, send from the child): refused, and logged why"

# --- once per caller: a second refusal on the same connection logs nothing new.
cat >"$D/twice.py" <<'PY'
import sys
import dbus
address, path, blob, kind = sys.argv[1:5]
# The bus, or (TS_TRANSPORT=direct) a connection of its own to the private socket.
conn = dbus.connection.Connection(address) if kind == "direct" else dbus.bus.BusConnection(address)
for _ in range(3):
    try:
        conn.call_blocking("org.tokenseal1", path, "org.tokenseal1.Vault", "Unwrap", "aya{ss}",
                           [dbus.ByteArray(bytes.fromhex(blob)), dbus.Dictionary({}, signature="ss")], timeout=30)
        sys.exit("admitted")
    except dbus.exceptions.DBusException as e:
        if "PolicyViolation" not in e.get_dbus_name():
            sys.exit(e.get_dbus_name())
PY
n=$(grep -c "executables entries do not match this caller" "$D/daemon.log")
if [ "${TS_TRANSPORT:-bus}" = direct ]; then
	as_other /usr/bin/python3 "$D/twice.py" "unix:path=$TOKENSEAL_PRIVATE_SOCKET" "$S" "$SB" direct ||
		fail "three refused Unwraps on one connection to the private socket"
else
	as_other /usr/bin/python3 "$D/twice.py" "$BUS_ADDRESS" "$S" "$SB" bus || fail "three refused Unwraps on one connection"
fi
[ "$(grep -c "executables entries do not match this caller" "$D/daemon.log")" = $((n + 1)) ] ||
	fail "not one log line for three refusals of one caller: $(grep "do not match this caller" "$D/daemon.log")"
pass "the reason is logged once per caller, not once per call"

# --- the positive case: python running in a system service's cgroup (no login uid) may unwrap from svc-n.
# Where sd-bus looks: the cgroup v2 path of the caller, relative to PID 1's (minus init.scope).
CG2=$(findmnt -n -t cgroup2 -o TARGET 2>/dev/null | head -n 1 || true)
BASE=$(sed -n 's/^0:://p' /proc/1/cgroup 2>/dev/null | sed 's#/init\.scope$##; s#/$##')
CG_MADE=()
cg_cleanup() { for ((j = ${#CG_MADE[@]} - 1; j >= 0; j--)); do rmdir "${CG_MADE[j]}" 2>/dev/null || true; done; }
cleanup_all() { local rc=$?; set +e; cg_cleanup; (exit $rc); rig_cleanup; }
trap cleanup_all EXIT
# cg_make REL — make the cgroup $CG2$BASE/REL in CG_DIR (what it made is removed at exit).
cg_make() {
	local part
	CG_DIR=$CG2$BASE
	for part in ${1//\// }; do
		CG_DIR="$CG_DIR/$part"
		[ -d "$CG_DIR" ] && continue
		mkdir "$CG_DIR" 2>/dev/null || return 1
		CG_MADE+=("$CG_DIR")
	done
}
# in_cgroup DIR CMD... — run CMD as $OTHER_UID inside the cgroup DIR (moved there by root first).
in_cgroup() {
	local dir=$1; shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$dir" setpriv --reuid "$OTHER_UID" --regid "$OTHER_UID" \
		--clear-groups "$@"
}
skipped=
if [ -n "$CG2" ] && cg_make "system.slice/tokenseal-test-$$.service" && SVC=$CG_DIR &&
	in_cgroup "$SVC" true 2>/dev/null; then
	out=$(in_cgroup "$SVC" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$S" $VIFACE Unwrap 'aya{ss}' "$SB" "" 2>&1) ||
		fail "python in system.slice/tokenseal-test-$$.service refused: $out"
	[ "$out" = 776f726c64 ] || fail "Unwrap in a system service: $out"
	out=$(in_cgroup "$SVC" busctl --address="$BUS_ADDRESS" call org.tokenseal1 "$S" $VIFACE Unwrap 'aya{ss}' \
		$(python3 -c 'import sys; b=bytes.fromhex(sys.argv[1]); print(len(b), *b)' "$SB") 0 2>&1) &&
		fail "busctl (not listed) in the same service unwrapped: $out"
	grep -q "executable $(readlink -f "$(command -v busctl)")) may not unwrap" <<<"$out" ||
		fail "busctl in the service: expected PolicyViolation naming its executable, got: $out"
	pass "python in a system service's cgroup (no login uid) unwraps from svc-n; busctl there does not"

	# A cron or at job runs in cron.service/atd.service but pam_loginuid gave it a login uid: not the service.
	out=$(in_cgroup "$SVC" sh -c 'echo '"$OTHER_UID"' >/proc/self/loginuid && exec "$@"' - /usr/bin/python3 \
		"$FDCALL_PY" "$BUS_ADDRESS" "$S" $VIFACE Unwrap 'aya{ss}' "$SB" "" 2>&1) &&
		fail "a caller with a login uid inside a system service (a cron job) unwrapped: $out"
	grep -q "PolicyViolation: .*its executable does not count: it has a login uid" <<<"$out" ||
		fail "cron-like caller: expected PolicyViolation naming the login uid, got: $out"
	pass "the same caller with a login uid (a cron or at job in the service's cgroup) is refused"

	# A service of the user's own manager (user@UID.service) is the user's to fill: it does not count.
	if cg_make "user.slice/user-$OTHER_UID.slice/user@$OTHER_UID.service/app.slice/fake.service"; then
		USVC=$CG_DIR
		out=$(in_cgroup "$USVC" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$S" $VIFACE Unwrap 'aya{ss}' "$SB" "" \
			2>&1) && fail "python in a user manager's service unwrapped: $out"
		grep -q "PolicyViolation: .*its executable does not count: it runs in fake.service" <<<"$out" ||
			fail "user service: expected PolicyViolation, got: $out"
		pass "python in a service of the user's own manager (user@$OTHER_UID.service) is refused"
	else
		skipped="cannot make a cgroup under user.slice"
	fi
else
	skipped="cgroup v2 is not mounted or not writable here (${CG2:-no cgroup2 mount}): the positive case (a caller in a system service is admitted) was not run"
fi
daemon_alive
core_finish
if [ -n "$skipped" ]; then
	echo "SKIP (after the attack checks passed): $skipped"
	exit 77
fi
