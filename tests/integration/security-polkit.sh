#!/bin/bash
# security-polkit.sh — one user flooding polkit checks (a polkit that never answers them) cannot make
# another user's cross-user call Busy; every check names the vault and its owner in its details.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR

# A second non-owner, besides $OTHER_UID (the flooder).
B_USER="tssecpk$$"
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$B_USER" || fail "useradd $B_USER"
cleanup_all() { local rc=$?; set +e; userdel "$B_USER" 2>/dev/null; (exit $rc); rig_cleanup; }
trap cleanup_all EXIT
B_UID=$(id -u "$B_USER")

rig_start_bus
rig_start_daemon --idle-lock 0
FP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' flood "" ">$D/rk-f") || fail "create flood"
TP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' target "owner=$OTHER_UID" ">$D/rk-t") ||
	fail "create target"
# polkit grants manage-other, but never answers a question about a process of $OTHER_UID (a dialog
# nobody closes).
standin_start polkit org.tokenseal1.manage-other "$D/polkit.log" "$OTHER_UID"

# The flooder: $OTHER_UID, 3 connections, 32 Lock calls each on root's vault 'flood'; it keeps its
# connections and writes how many calls got Busy and how many got any other answer.
cat >"$D/flood.py" <<'PY'
import sys
import dbus
import dbus.mainloop.glib
from gi.repository import GLib

address, path, nconn, ncalls, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
busy, other, msgs = [0] * nconn, [0] * nconn, set()
conns = [dbus.bus.BusConnection(address) for _ in range(nconn)]


def handlers(i):
    def ok(*a):
        other[i] += 1

    def err(e):
        if e.get_dbus_name() == "org.tokenseal1.Error.Busy":
            busy[i] += 1
            msgs.add(e.get_dbus_message())
        else:
            other[i] += 1
    return ok, err


for i, c in enumerate(conns):
    obj = c.get_object("org.tokenseal1", path, introspect=False)
    for _ in range(ncalls):
        ok, err = handlers(i)
        obj.Lock(dbus_interface="org.tokenseal1.Vault", reply_handler=ok, error_handler=err, timeout=300)


def report():
    with open(out + ".tmp", "w") as f:
        f.write("busy %s\nother %s\n" % (" ".join(map(str, busy)), " ".join(map(str, other))))
        for m in sorted(msgs):
            f.write("message %s\n" % m)
    import os
    os.rename(out + ".tmp", out)
    return True


GLib.timeout_add(100, report)
GLib.MainLoop().run()
PY
mkdir "$D/fl" && chown "$OTHER_UID" "$D/fl"
setpriv --reuid "$OTHER_UID" --regid "$OTHER_UID" --clear-groups /usr/bin/python3 "$D/flood.py" "$BUS_ADDRESS" "$FP" \
	3 32 "$D/fl/out" >"$D/flood.log" 2>&1 &
RIG_PIDS+=($!)
# Settled when every call was either answered Busy or is a question polkit keeps open.
for _ in $(seq 200); do
	asked=$( { wc -l <"$D/polkit.log"; } 2>/dev/null || true)
	nbusy=$(sed -n 's/^busy //p' "$D/fl/out" 2>/dev/null | tr ' ' '+')
	[ -n "$nbusy" ] && [ $((${asked:-0} + nbusy)) -eq 96 ] && break
	sleep 0.05
done
[ -n "$nbusy" ] && [ $((${asked:-0} + nbusy)) -eq 96 ] ||
	fail "flood did not settle: asked ${asked:-0}, $(cat "$D/fl/out" "$D/flood.log" 2>/dev/null)"
grep -q "^other 0 0 0$" "$D/fl/out" || fail "a flood call was answered while polkit kept it: $(cat "$D/fl/out")"
echo "flood: $asked questions held by polkit, $((96 - asked)) answered Busy ($(sed -n 's/^busy //p' "$D/fl/out"))"

# --- the other user's cross-user call: answered by polkit, not Busy.
out=$(setpriv --reuid "$B_UID" --regid "$B_UID" --clear-groups busctl --address="$BUS_ADDRESS" --timeout=30 \
	call org.tokenseal1 "$TP" $VIFACE Lock 2>&1) || fail "another user's Lock of $OTHER_UID's vault during the flood: $out"
[ "$(vprop "$TP" Locked)" = true ] || fail "the authorized Lock did not lock"
grep -q "event=polkit-manage-other vault=target owner=[0-9-]* uid=$B_UID" "$D/daemon.log" || fail "authorization not logged"
pass "one user's flood of polkit checks does not make another user's cross-user call Busy"

# --- the flooder's own excess got Busy: at most 8 per connection and 16 for its uid were put to polkit.
[ "$asked" -eq 16 ] || fail "expected 16 questions of uid $OTHER_UID held by polkit, got $asked"
read -r _ b0 b1 b2 < <(grep '^busy ' "$D/fl/out")
for b in $b0 $b1 $b2; do [ "$b" -ge 24 ] || fail "a connection had more than 8 questions in flight: busy $b0 $b1 $b2"; done
grep -q "^message too many authorization checks of this caller in progress$" "$D/fl/out" ||
	fail "Busy message: $(cat "$D/fl/out")"
pass "the flooder gets Busy beyond 8 questions per connection and 16 per uid"

# --- details: the vault's name and its owner's uid, for rules and the dialog's message.
B_NAME=$(sed -n "s/^system-bus-name \(:[0-9.]*\) org.tokenseal1.manage-other [01]$/\1/p" "$D/polkit.log" | tail -n 1)
grep -qx "$B_NAME org.tokenseal1.manage-other method=Lock owner=$OTHER_UID vault=target" "$D/polkit.log.details" ||
	fail "details of the Lock question: $(grep -v vault=flood "$D/polkit.log.details")"
grep -qx ":[0-9.]* org.tokenseal1.manage-other method=Lock owner=0 vault=flood" "$D/polkit.log.details" ||
	fail "details of the flood questions: $(head -n 2 "$D/polkit.log.details")"
unlock "$TP" recovery "$D/rk-t" >/dev/null || fail "unlock target"
out=$(setpriv --reuid "$B_UID" --regid "$B_UID" --clear-groups busctl --address="$BUS_ADDRESS" --timeout=30 \
	call org.tokenseal1 "$TP" $VIFACE Wrap 'aya{ss}' 1 7 0 2>&1) && fail "use-other granted although polkit said no"
grep -q " org.tokenseal1.use-other method=Wrap owner=$OTHER_UID vault=target$" "$D/polkit.log.details" ||
	fail "details of the Wrap question: $(tail -n 2 "$D/polkit.log.details")"
pass "CheckAuthorization carries details vault=NAME owner=UID method=MEMBER"

daemon_alive
core_finish
