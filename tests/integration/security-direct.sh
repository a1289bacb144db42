#!/bin/bash
# security-direct.sh — the private socket (tokensealed --private-socket) as a hostile local user meets it:
# the CLI works over it, and only over it when it is named; a socket served by another user gets
# nothing; one uid's connections are capped and a client that reads no replies is cut off, while root
# is served; root's share of the connections and of the large messages stays root's; answers left unread and calls waiting for polkit count against the uid's share of large
# messages, and unread answers are kept 10 s at most (judging the client, not a stopped daemon); a
# message over 32 MiB, with more than 2 fds, too many values, padding or an unknown header field, or
# fds sent with the pieces of an unfinished one, cuts its client off; the bus policy's interfaces hold;
# Subscribe over it brings the owner the lock and nobody else; polkit is asked about the connecting
# process; a stopped daemon is given up on in a second; SIGTERM ends the daemon with a client still in
# its handshake; and the trust-boundary and data-path tests
# (the CLI, the library, the age plugin, tokenseal-secrets) pass with every client on the socket.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
DC="$TS_BUILD/tests/tools/direct_client"
export TS_TRANSPORT=direct
# 256 clients at once below: the daemon holds 5 fds for each (the installed unit sets LimitNOFILE).
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rig_start_bus
rig_start_daemon --idle-lock 0
S=$D/private
[ -S "$S" ] || fail "no private socket at $S"
[ "$(stat -c %a "$S")" = 666 ] || fail "private socket mode $(stat -c %a "$S"), not 666"
[ -z "${TOKENSEAL_BUS:-}" ] && [ "$TOKENSEAL_PRIVATE_SOCKET" = "$S" ] || fail "rig: clients not pointed at the socket"
chmod 755 "$D"

# --- the CLI over the socket, and nowhere else when the socket is named.
"$TOKENSEAL" create vault1 >"$D/rk1" || fail "create over the private socket"
P=$(bq call org.tokenseal1 /org/tokenseal1 org.tokenseal1.Manager GetVault s vault1 | sed 's/^o "\(.*\)"$/\1/')
[ -n "$P" ] || fail "no path for vault1"
head -c 32 /dev/urandom >"$D/dk"
"$TOKENSEAL" wrap --vault vault1 <"$D/dk" >"$D/blob" || fail "wrap over the private socket"
"$TOKENSEAL" unwrap --vault vault1 <"$D/blob" >"$D/dk2" || fail "unwrap over the private socket"
cmp -s "$D/dk" "$D/dk2" || fail "unwrap over the private socket gave other bytes"
rc=0; TOKENSEAL_PRIVATE_SOCKET=$D/nosuch "$TOKENSEAL" status >"$D/out" 2>&1 || rc=$?
[ $rc -eq 9 ] || fail "a named socket that is not there: exit $rc, not 9 (no fall-back to the bus): $(cat "$D/out")"
pass "the CLI creates, wraps and unwraps over the private socket; a named socket is the only way tried"

# --- who calls is the socket's peer: another user's vault lands in that user's namespace.
mkdir -m 777 "$D/o"
as_other "$TOKENSEAL" create mine >"$D/o/rk" 2>/dev/null || fail "another user's create over the socket"
bq call org.tokenseal1 /org/tokenseal1 org.tokenseal1.Manager GetVault s "$OTHER_UID:mine" >/dev/null ||
	fail "the other user's vault is not in the other user's namespace"
! bq call org.tokenseal1 /org/tokenseal1 org.tokenseal1.Manager GetVault s mine >/dev/null 2>&1 ||
	fail "the other user's create made a vault of root's"
pass "the caller is the socket's peer: another user's vault is that user's"

# --- a direct client cannot name itself after a bus caller: root's bus connection, whose
# credentials the daemon has seen, and another user writing its name as the sender.
coproc ROOTBUS { /usr/bin/python3 -c '
import dbus, sys
b = dbus.bus.BusConnection(sys.argv[1])
b.get_object("org.tokenseal1", "/org/tokenseal1").GetVault("vault1", dbus_interface="org.tokenseal1.Manager")
print(b.get_unique_name(), flush=True)
sys.stdin.read()' "$BUS_ADDRESS"; }
read -r -t 10 ROOTNAME <&"${ROOTBUS[0]}" || fail "root's bus client did not start"
got=$(as_other "$DC" forge "$S" "$ROOTNAME" "$P")
[ "$got" = closed ] || fail "another user's message naming root's bus name ($ROOTNAME) got '$got', not cut off"
"$TOKENSEAL" status >/dev/null || fail "root not served after the forgery"
exec {ROOTBUS[1]}>&-
wait "$ROOTBUS_PID" 2>/dev/null || true
pass "a direct client that writes a sender (root's bus name) is cut off before anything reads its call"

# --- the bus policy (contrib/org.tokenseal1.conf) holds on the socket as on the bus: a call on an
# interface it does not list (ObjectManager's GetManagedObjects, which answered another user's
# client on the socket before), or naming no interface, is AccessDenied on both, for root too.
for who in root other; do
	for c in "org.freedesktop.DBus.ObjectManager GetManagedObjects" "- GetVault" "org.freedesktop.DBus.Peer Ping"; do
		run=("$DC"); [ $who = other ] && run=(as_other "$DC")
		# shellcheck disable=SC2086
		on_bus=$("${run[@]}" call "bus:$BUS_ADDRESS" /org/tokenseal1 $c)
		# shellcheck disable=SC2086
		on_sock=$("${run[@]}" call "$S" /org/tokenseal1 $c)
		want="error org.freedesktop.DBus.Error.AccessDenied"
		[ "$c" = "org.freedesktop.DBus.Peer Ping" ] && want=reply
		[ "$on_bus" = "$want" ] && [ "$on_sock" = "$want" ] ||
			fail "$who: $c: '$on_bus' on the bus, '$on_sock' on the socket, not '$want' on both"
	done
done
"$TOKENSEAL" status >/dev/null || fail "root not served after the refused calls"
pass "the bus policy holds on the socket: GetManagedObjects and a call naming no interface are AccessDenied on both paths, for root and another user"

# --- a socket served by another user: the client sends it nothing (not even the handshake).
mkdir -m 777 "$D/evil"
as_other /usr/bin/python3 - "$D/evil/sock" "$D/evil/got" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(4)
s.settimeout(20)
c, _ = s.accept(); c.settimeout(2)
got = b""
try:
    while True:
        b = c.recv(4096)
        if not b: break
        got += b
except socket.timeout:
    pass
open(sys.argv[2], "w").write(str(len(got)))
PY
EVIL=$!
for _ in $(seq 100); do [ -S "$D/evil/sock" ] && break; sleep 0.05; done
rc=0; TOKENSEAL_PRIVATE_SOCKET=$D/evil/sock "$TOKENSEAL" status >"$D/out" 2>&1 || rc=$?
wait $EVIL || true
[ $rc -eq 9 ] || fail "a socket served by another user: exit $rc, not 9: $(cat "$D/out")"
[ "$(cat "$D/evil/got" 2>/dev/null)" = 0 ] || fail "the client sent $(cat "$D/evil/got" 2>/dev/null || echo ?) bytes to another user's socket"
pass "a private socket served by another user is refused before a byte is sent"

# --- one uid holds all its connections: it gets no more; root is still served.
coproc HOLD { as_other "$DC" hold "$S" 20; }
read -r -t 20 held n <&"${HOLD[0]}" || fail "holder did not report"
[ "$held $n" = "held 16" ] || fail "one uid kept $n connections of 20, not 16"
rc=0; as_other "$TOKENSEAL" status >"$D/out" 2>&1 || rc=$?
[ $rc -eq 9 ] || fail "a 17th connection of that uid: exit $rc, not refused: $(cat "$D/out")"
"$TOKENSEAL" status >/dev/null || fail "root not served while another uid holds 16 connections"
exec {HOLD[1]}>&-
wait "$HOLD_PID" 2>/dev/null || true
for _ in $(seq 50); do as_other "$TOKENSEAL" status >/dev/null 2>&1 && break; sleep 0.1; done
as_other "$TOKENSEAL" status >/dev/null 2>&1 || fail "that uid is not served again once its connections are gone"
pass "a uid is capped at 16 connections, root served meanwhile; the cap lifts when they close"

# --- root's share is kept for root: 16 other uids holding 16 connections each get 240 of the 256
# together, and root is still served on the socket (before: they took all 256 and root was refused;
# a refused client falls back to the bus, but a login's PAM module should not have to); a 17th uid
# is refused. (The daemon holds 5 fds a connection: the suite raised RLIMIT_NOFILE for it above.)
[ "$(ulimit -n)" -ge 2048 ] || fail "256 connections need RLIMIT_NOFILE 2048 or more, and it is $(ulimit -n)"
{
	mkfifo "$D/gate"
	exec {GATE}<>"$D/gate"
	hpids=()
	for u in $(seq 20001 20016); do
		as_uid "$u" "$DC" hold "$S" 16 <"$D/gate" >"$D/held.$u" {GATE}>&- &
		hpids+=($!)
	done
	total=0
	for u in $(seq 20001 20016); do
		for _ in $(seq 300); do [ -s "$D/held.$u" ] && break; sleep 0.05; done
		read -r _ n <"$D/held.$u" || fail "holder of uid $u did not report"
		total=$((total + n))
	done
	[ $total -eq 240 ] || fail "16 other uids hold $total connections together, not 240"
	rc=0; as_uid 20017 "$TOKENSEAL" status >"$D/out" 2>&1 || rc=$?
	[ $rc -eq 9 ] || fail "a 17th uid while the others hold 240 connections: exit $rc, not refused: $(cat "$D/out")"
	"$TOKENSEAL" status >/dev/null || fail "root refused on the socket while other uids hold 240 connections"
	exec {GATE}>&-
	wait "${hpids[@]}" 2>/dev/null || true
	# Their connections go as the daemon sees them hang up: then the 17th is served.
	for _ in $(seq 50); do as_uid 20017 "$TOKENSEAL" status >/dev/null 2>&1 && break; sleep 0.1; done
	as_uid 20017 "$TOKENSEAL" status >/dev/null 2>&1 || fail "the 17th uid is not served once the others' connections are gone"
	pass "other uids hold at most 240 of the 256 connections: root is served on the socket, a 17th uid is refused"
}

# --- nor can a uid keep root out through the socket's queue: while its 16 connections keep the daemon
# busy (UnwrapBatches of 20,000 keys) and it floods connects that the daemon refuses (4 s), root connects
# and is served. Before, the daemon took one connection a turn of its loop, the queue stayed full, and
# root's connect was turned away (8 of 8 tries, each after about 1 s). Plain pass only.
if [ "${TS_SAN:-0}" != 1 ]; then
	head -c 32 /dev/urandom | as_other "$TOKENSEAL" wrap --vault mine >"$D/o/small.blob" || fail "wrap in mine"
	P2=$(bq call org.tokenseal1 /org/tokenseal1 org.tokenseal1.Manager GetVault s "$OTHER_UID:mine" | sed 's/^o "\(.*\)"$/\1/')
	coproc FLOOD { RAW_SECONDS=4 as_other /usr/bin/python3 "$TS_SRC/tests/integration/security_direct_raw.py" \
		"$S" 20000 16 0 loadflood "$P2" "$D/o/small.blob" 2>&1; }
	exec {FLOOD_OUT}<&"${FLOOD[0]}"
	read -r -t 20 ready <&"$FLOOD_OUT" || true
	[ "$ready" = ready ] || fail "raw client (loadflood) did not start: $ready"
	sleep 1
	for i in 1 2 3; do
		t0=$(date +%s%N)
		"$TOKENSEAL" status >"$D/out" 2>&1 ||
			fail "root's try $i while another uid floods the socket's queue: $(cat "$D/out") after $((($(date +%s%N) - t0) / 1000000)) ms"
		sleep 1
	done
	read -r -t 20 counts <&"$FLOOD_OUT" || true
	exec {FLOOD_OUT}<&-
	[[ "$counts" = "calls "* ]] || fail "raw client (loadflood): '$counts'"
	# The attack ran: the daemon was kept busy and took the flood (about 350,000 connects here).
	read -r _ calls _ connected _ <<<"$counts"
	[ "$calls" -ge 10 ] && [ "$connected" -ge 50000 ] || fail "the load and flood did not run: '$counts'"
	pass "a uid that keeps the daemon busy and floods the socket's queue does not keep root out ($counts)"
fi

# --- a client that sends calls and reads no reply is cut off; root is served.
read -r _ replies _ closed < <(as_other "$DC" flood "$S" 20000 "$P")
[ "$closed" = 1 ] || fail "a client reading no replies was not disconnected ($replies replies read)"
"$TOKENSEAL" unwrap --vault vault1 <"$D/blob" >"$D/dk2" || fail "root not served after the flood"
kill -0 "$DAEMON_PID" || fail "the daemon died"
pass "a client that leaves its replies unread is disconnected; the daemon serves on"

# --- bounds on one message, as dbus-daemon has them on the system bus, and what sd-bus would not show:
# a raw client (its own handshake, its own marshalling). Cut off, with a log line: more than 32 MiB
# (seen in the header, before the body is read), more than 2 fds, more than 104,096 values (110,000
# empty strings to Unwrap: 0.9 MB), a variant, 128 KiB or more to any method but the data methods,
# bytes after the last argument, a header field sd-bus would skip, fds sent in the pieces of an
# unfinished message or with a call that takes none (sd-bus would drop one it cannot parse and keep
# its fds open), a handshake sd-bus would not end where the scanner does (BEGIN before AUTH), calls
# sd-bus drops unparsed (70 with no member: the connection would wait for ever), and a third 30 MB
# call being read while the uid's first two are (64 MiB a uid), fds sent after a 16-byte call (sd-bus
# would read into them) or with a header whose padding is not zero (sd-bus would drop it with its fds),
# and a large call left half-sent for 10 s (it holds its uid's share).
# Answered: 1 MiB and 100,000 strings to Unwrap, 2 fds to AddProtector.
RAW="$TS_SRC/tests/integration/security_direct_raw.py"
fds0=$(ls /proc/"$DAEMON_PID"/fd | wc -l)
# The 30 MB cases (bigstall, bighold) run in the ordinary pass only: a sanitized daemon takes seconds to
# read a 30 MB call's first MiB, so its 10 s deadlines would judge the sanitizer, not the client.
big=1
[ "${TS_SAN:-0}" = 1 ] && big=0
# Meanwhile (root: its own share) a 30 MB call's first MiB, and then nothing: cut off after 10 s.
[ $big = 0 ] || { /usr/bin/python3 "$RAW" "$S" 30000000 0 0 bigstall >"$D/bigstall" 2>&1 & STALL=$!; }
for a in "34000000 0:closed" "0 3:closed" "16 200:closed" "0 0 110000 data:closed" "1048576 0 0 data:answered" \
	"0 2 0 fdcall:answered" "0 2:closed" "0 0 100000 data:answered" "0 0 0 variant:closed" "16 3 0 noreply:closed" \
	"16 0 0 noreply:reply" "200000 0:closed" "64 0 0 padded:closed" "0 0 0 padded:reply" "64 0 0 field:closed" \
	"1048576 50 0 pieces:closed" "0 0 0 begin:closed" "1 2 0 nomember:closed" "70 0 0 nomember:closed" \
	"30000000 3 0 bighold:held held closed" "0 2 0 short:closed" "0 2 0 badpad:closed"; do
	case $big:$a in 0:*big*) continue ;; esac
	got=$(as_other /usr/bin/python3 "$RAW" "$S" ${a%%:*}) || fail "raw client (${a%%:*}) failed"
	[ "$got" = "${a#*:}" ] || fail "a message of (bytes, fds, strings, mode) ${a%%:*}: '$got', not ${a#*:}"
	# The daemon logs at most 10 cut-off clients a second: each case below must find its line.
	case $got in *closed*) sleep 0.1 ;; esac
done
for line in "a message larger than the daemon takes" "more file descriptors than a message may carry" \
	"a message of more than 104096 values" "a message whose body is a variant or cannot be read" \
	"a message larger than its method takes" "a message with 64 body bytes no argument accounts for" \
	"a header field the daemon does not know" "file descriptors that came with no message's header" \
	"an authentication exchange the daemon does not take" "file descriptors with a message that takes none" \
	"a message sd-bus could not read" "large messages being read or answered past this uid's share" \
	"a message too short to be one" "a header field cut short or padded with other than zero"; do
	[ $big = 1 ] || [ "$line" != "large messages being read or answered past this uid's share" ] || continue
	grep -q "direct:[0-9]* (uid $OTHER_UID pid [0-9]*): $line; disconnected" "$D/daemon.log" ||
		fail "no log line for $line"
done
if [ $big = 1 ]; then
	wait "$STALL" || fail "the half-sent 30 MB call: $(cat "$D/bigstall")"
	read -r fate secs <"$D/bigstall"
	[ "$fate" = closed ] && [ "$secs" -ge 9 ] && [ "$secs" -le 13 ] ||
		fail "a 30 MB call left half-sent: '$(cat "$D/bigstall")', not closed after 10 s"
	grep -q "direct:[0-9]* (uid 0 pid [0-9]*): a large message not sent whole within [0-9]* seconds; disconnected" \
		"$D/daemon.log" || fail "no log line for the half-sent call"
fi
# Announcing 30 MB and hanging up costs the daemon no 30 MB block to wipe: blocks of 4 MiB or more are
# mapped on their own and not wiped (their pages go back to the kernel). Before, glibc served them from
# the heap once the first was freed, and each hang-up had 30 MB wiped in the daemon's one loop (12,000
# page faults for these 20, and 7 ms of the daemon's CPU each; now about 20 faults in all).
if [ $big = 1 ]; then
	minflt() { awk '{print $10}' /proc/"$DAEMON_PID"/stat; }
	f0=$(minflt)
	got=$(as_other /usr/bin/python3 "$RAW" "$S" 30000000 20 0 bighangup) && [ "$got" = done ] ||
		fail "the hang-ups: $got"
	sleep 0.5
	[ $(($(minflt) - f0)) -lt 2000 ] ||
		fail "20 clients announcing 30 MB and hanging up cost the daemon $(($(minflt) - f0)) page faults"
fi
# Root's share of large messages is kept for root: 4 other uids' half-sent 30 MB calls, two each,
# get 6 of the 8 (192 MiB of the 256), and root's 30 MB call is read and answered meanwhile (before:
# all 8 were held, 240 MB, and root's was cut off).
if [ $big = 1 ]; then
	bpids=()
	for u in 20001 20002 20003 20004; do
		RAW_HOLD=5 as_uid "$u" /usr/bin/python3 "$RAW" "$S" 30000000 2 0 bighold >"$D/bighold.$u" 2>&1 &
		bpids+=($!)
	done
	for u in 20001 20002 20003 20004; do
		for _ in $(seq 200); do [ -s "$D/bighold.$u" ] && break; sleep 0.05; done
	done
	held=$(cat "$D"/bighold.2000? | tr ' ' '\n' | grep -c '^held$' || true)
	got=$(/usr/bin/python3 "$RAW" "$S" 30000000 0 0 data)
	for p in "${bpids[@]}"; do wait "$p" || fail "the other uids' half-sent calls: $(cat "$D"/bighold.2000?)"; done
	[ "$held" -eq 6 ] || fail "4 other uids' half-sent 30 MB calls: $held of 8 held, not 6 (192 MiB)"
	[ "$got" = answered ] || fail "root's 30 MB call while other uids hold 180 MB: '$got', not answered"
	pass "other uids hold at most 192 MiB of large messages together: root's 30 MB call is answered meanwhile"
fi
# Every descriptor sent in the pieces was closed with the connection.
for _ in $(seq 20); do [ "$(ls /proc/"$DAEMON_PID"/fd | wc -l)" -le "$fds0" ] && break; sleep 0.1; done
[ "$(ls /proc/"$DAEMON_PID"/fd | wc -l)" -le "$fds0" ] ||
	fail "the daemon holds $(ls /proc/"$DAEMON_PID"/fd | wc -l) fds, $fds0 before the raw clients"
"$TOKENSEAL" unwrap --vault vault1 <"$D/blob" >"$D/dk2" || fail "root not served after the oversized messages"
pass "cut off (logged): over 32 MiB, over 2 fds, over 104,096 values, a variant, 128 KiB to a method other than the data ones, padding after the arguments, an unknown header field, fds sent with the pieces of a message or with a call that takes none (none kept), BEGIN before AUTH, calls sd-bus drops, a third 30 MB call being read, a 30 MB call half-sent for 10 s; 1 MiB and 100,000 values to Unwrap, 2 fds to AddProtector are served"

# --- Subscribe over the socket: the owner hears the lock, another user does not.
"$DC" subscribe "$S" "$P" 10 >"$D/owner-sub" 2>&1 &
SUB=$!
as_other "$DC" subscribe "$S" "$P" 3 >"$D/other-sub" 2>&1 &
OSUB=$!
for _ in $(seq 100); do grep -q subscribed "$D/owner-sub" && grep -q subscribed "$D/other-sub" && break; sleep 0.05; done
grep -q subscribed "$D/owner-sub" || fail "owner's subscription over the socket: $(cat "$D/owner-sub")"
"$TOKENSEAL" lock --vault vault1 || fail "lock"
wait $SUB || fail "the owner's direct subscriber missed the lock: $(cat "$D/owner-sub")"
grep -q "signal locked" "$D/owner-sub" || fail "owner's subscriber: $(cat "$D/owner-sub")"
rc=0; wait $OSUB || rc=$?
[ $rc -ne 0 ] && ! grep -q "signal locked" "$D/other-sub" || fail "another user's direct subscriber heard the lock"
pass "a direct subscriber hears its own vault lock; another user's does not"

# --- polkit over the socket: asked about the connecting process (pid, start time, uid).
"$TOKENSEAL" unlock --vault vault1 --protector recovery --pin-fd 3 3<"$D/rk1" >/dev/null || fail "unlock with the recovery key"
standin_start polkit org.tokenseal1.manage-other "$D/polkit.log"
as_other "$TOKENSEAL" lock --vault 0:vault1 >"$D/out" 2>&1 || fail "polkit-allowed lock over the socket: $(cat "$D/out")"
grep -q "^unix-process pid:[0-9]*:[0-9]*:$OTHER_UID org.tokenseal1.manage-other " "$D/polkit.log" ||
	fail "polkit was not asked about the process: $(cat "$D/polkit.log")"
[ "$(vprop "$P" Locked)" = true ] || fail "the polkit-allowed lock did not take effect"
# ... and not once that process is gone, even as a zombie under its pid with its start time: its
# child, holding the connection, is refused (pidfd) as a stranger is (UnknownObject; the reason goes
# to the log), and polkit is not asked.
"$TOKENSEAL" unlock --vault vault1 --protector recovery --pin-fd 3 3<"$D/rk1" >/dev/null || fail "unlock vault1 again"
asked=$(wc -l <"$D/polkit.log")
got=$(as_other /usr/bin/python3 "$RAW" "$S" 0 0 0 orphan "$P") || fail "raw client (orphan) failed"
[ "$got" = "error org.freedesktop.DBus.Error.UnknownObject" ] || fail "a call on a connection whose process is a zombie: '$got'"
grep -q "vault=vault1 uid=$OTHER_UID: the connecting process is gone" "$D/daemon.log" || fail "no log line for the zombie's call"
[ "$(wc -l <"$D/polkit.log")" = "$asked" ] || fail "polkit was asked about a process that is gone"
[ "$(vprop "$P" Locked)" = false ] || fail "the zombie's connection locked vault1"
pass "polkit is asked about the connecting process (unix-process: pid, start time, uid) and decides; not once it is gone (a zombie: refused, polkit not asked)"

# --- answers left unread hold the uid's share of large messages (64 MiB) as the calls did while
# being read: RewrapBatches of 71 blobs of 60,000 bytes (4.3 MB each way) on the uid's 16
# connections, which read nothing. The 16th is cut off (68 MB), on the caller's own vault (answered
# at once) and on root's through polkit (answered once polkit said yes); root is served meanwhile.
# Before, each connection could leave 64 MiB unread: 1 GiB a uid; and the kernel held 8 MiB of
# them for each connection (sd-bus's send buffer). A share held by answers is held 10 s at most. (Not larger calls: under ASan,
# sd-bus's realloc of its read buffer copies the message at every read, and a 15 MB one would not
# come whole within 10 s.)
head -c 60000 /dev/urandom >"$D/big"
as_other "$TOKENSEAL" wrap --vault mine <"$D/big" >"$D/o/bigblob" || fail "wrap 60,000 bytes in the other user's vault"
P2=$(bq call org.tokenseal1 /org/tokenseal1 org.tokenseal1.Manager GetVault s "$OTHER_UID:mine" | sed 's/^o "\(.*\)"$/\1/')
"$TOKENSEAL" unlock --vault vault1 --protector recovery --pin-fd 3 3<"$D/rk1" >/dev/null || fail "unlock vault1 again"
"$TOKENSEAL" wrap --vault vault1 <"$D/big" >"$D/o/bigblob1" || fail "wrap 60,000 bytes in vault1"
kill "$STANDIN_PID_polkit"; wait "$STANDIN_PID_polkit" 2>/dev/null || true
standin_start polkit org.tokenseal1.use-other "$D/polkit.log"
# Under a sanitizer (TS_SAN) sd-bus takes about 0.8 s a call of 4.3 MB (its buffers are copied at each
# realloc): the 16 would not all be answered within the 10 s that an unread answer is kept, so there
# two connections are answered and hold their answers, and the share itself is left to the plain pass.
n=16 want="$(printf 'answered %.0s' $(seq 15))closed"
[ "${TS_SAN:-0}" = 1 ] && n=2 want="answered answered"
for v in "$P2 $D/o/bigblob" "$P $D/o/bigblob1"; do
	got=$(as_other /usr/bin/python3 "$RAW" "$S" 71 $n 0 answers $v) || fail "raw client (answers, $v) failed"
	[ "${got% queued:*}" = "$want" ] ||
		fail "$n RewrapBatches of 4.3 MB whose answers stay unread ($v): '$got', not '$want'"
	# The rest of each answer waits in sd-bus's queue, where the share counts it; the kernel holds at
	# most about the socket's send buffer (256 KiB; 285 KiB of data was seen), not the 8 MiB sd-bus asks for.
	[ "${got##*queued:}" -le 524288 ] || fail "the kernel held ${got##*queued:} bytes of one unread answer, more than 512 KiB"
	"$TOKENSEAL" unwrap --vault vault1 <"$D/blob" >"$D/dk2" || fail "root not served after unread answers"
done
[ "${TS_SAN:-0}" = 1 ] ||
	[ "$(grep -c "direct:[0-9]* (uid $OTHER_UID pid [0-9]*): large messages being read or answered past this uid's share; disconnected" "$D/daemon.log")" -ge 2 ] ||
	fail "no log line for the unread answers"
grep -q "^unix-process pid:[0-9]*:[0-9]*:$OTHER_UID org.tokenseal1.use-other " "$D/polkit.log" ||
	fail "the RewrapBatches on root's vault did not go through polkit"
# The calls waiting for polkit count against that share, and polkit counts the socket's large messages
# against its own: two 30 MB RewrapBatches of this uid waiting on root's vault (polkit holds its answer
# for this uid), and a third 30 MB one, on its own vault, is cut off (90 MB); before, it was read and
# answered. A call polkit refused is counted once, not again when it comes back: 5 GenerateDataKey
# answers and then a refused 30 MB RewrapBatch left unread on one connection, a 30 MB call on another
# is answered (60 MB); before, it was counted as 90 and cut off. (30 MB calls: not under a sanitizer.)
if [ "${TS_SAN:-0}" != 1 ]; then
	kill "$STANDIN_PID_polkit"; wait "$STANDIN_PID_polkit" 2>/dev/null || true
	standin_start polkit org.tokenseal1.use-other "$D/polkit.log" "$OTHER_UID"
	RAW_WAIT=1 RAW_HOLD=2 as_other /usr/bin/python3 "$RAW" "$S" 500 2 0 answers "$P" "$D/o/bigblob1" >"$D/waiting" 2>&1 &
	W=$!
	for _ in $(seq 150); do [ -s "$D/waiting" ] && break; sleep 0.1; done
	[ "$(cat "$D/waiting")" = "held held queued:0" ] || fail "two 30 MB calls waiting for polkit: '$(cat "$D/waiting")'"
	got=$(as_other /usr/bin/python3 "$RAW" "$S" 500 1 0 answers "$P2" "$D/o/bigblob") || fail "raw client (answers) failed"
	[ "${got% queued:*}" = closed ] || fail "a 30 MB call with 60 MB of this uid's waiting for polkit: '$got', not cut off"
	wait "$W" || fail "the calls waiting for polkit: $(cat "$D/waiting")"
	kill "$STANDIN_PID_polkit"; wait "$STANDIN_PID_polkit" 2>/dev/null || true
	standin_start polkit org.tokenseal1.manage-other "$D/polkit.log"
	RAW_GDK=5:$P2 RAW_WAIT=5 RAW_HOLD=3 as_other /usr/bin/python3 "$RAW" "$S" 500 1 0 answers "$P" "$D/o/bigblob1" \
		>"$D/refused" 2>&1 &
	W=$!
	for _ in $(seq 100); do [ -s "$D/refused" ] && break; sleep 0.1; done
	sleep 2
	got=$(as_other /usr/bin/python3 "$RAW" "$S" 500 1 0 answers "$P2" "$D/o/bigblob") || fail "raw client (answers) failed"
	[ "${got% queued:*}" = answered ] || fail "a 30 MB call beside a refused one (60 MB): '$got', not answered"
	wait "$W" || fail "the refused call: $(cat "$D/refused")"
	grep -q "org.tokenseal1.use-other" "$D/polkit.log" || fail "the refused RewrapBatch did not go to polkit"
fi

# Those 10 s judge the client, not the daemon: stopped for 11 s (as a loaded loop falls behind) while
# one client sends a 4.3 MB call and another reads a 4.3 MB answer, both are served; before, both were
# cut off when it went on. In the plain pass only: the suite's time is bounded, and the ASan pass
# meets on_deadline and on_unread in the checks around this one.
if [ "${TS_SAN:-0}" != 1 ]; then
	coproc LATE { as_other /usr/bin/python3 "$RAW" "$S" 71 0 0 late "$P2" "$D/o/bigblob" 2>&1; }
	# A copy of its output: bash unsets LATE once the client has exited.
	exec {LATE_OUT}<&"${LATE[0]}"
	read -r -t 20 ready <&"$LATE_OUT" || true
	[ "$ready" = ready ] || fail "raw client (late) did not start: $ready"
	# And a client slower than the daemon: 20 MB at 4 MB/s (5 s of its own), stopped 11 s in the
	# middle, is served (the 10 s move on by the 11 s the daemon was behind). Before, the deadline was
	# looked at again 2 s after it ran late, and the client, whose bytes never waited, was cut off.
	as_uid 20005 /usr/bin/python3 "$RAW" "$S" 20000000 0 0 paced >"$D/paced" 2>&1 &
	PACED=$!
	for _ in $(seq 100); do [ -s "$D/paced" ] && break; sleep 0.05; done
	[ "$(head -n 1 "$D/paced")" = ready ] || fail "raw client (paced) did not start: $(cat "$D/paced")"
	sleep 1
	kill -STOP "$DAEMON_PID"
	sleep 11
	kill -CONT "$DAEMON_PID"
	read -r -t 60 got <&"$LATE_OUT" || true
	exec {LATE_OUT}<&-
	[ "$got" = "answered answered" ] || fail "a large call and a large answer while the daemon was behind: '$got', not both served"
	wait "$PACED" || fail "raw client (paced) failed: $(cat "$D/paced")"
	[ "$(tail -n 1 "$D/paced")" = answered ] ||
		fail "a 20 MB call at 4 MB/s while the daemon was stopped 11 s: '$(tr '\n' ' ' <"$D/paced")', not answered"
fi

# ... and not for ever: a client that leaves answers waiting unsent 10 s is cut off, a large one or
# 20 small ones (GenerateDataKey of 64 KiB: 2.5 MiB, under the 32 unread that cut a client off at once).
# And reading now and then does not keep it: 200 KB read once, then nothing: cut off after 10 s too
# (before, a socket buffer kept under half full gave it 60 s).
as_other /usr/bin/python3 "$RAW" "$S" 20 0 0 smallstall "$P2" >"$D/smallstall" 2>&1 &
SMALL=$!
RAW_READ=200000 as_other /usr/bin/python3 "$RAW" "$S" 71 1 0 answerstall "$P2" "$D/o/bigblob" >"$D/readonce" 2>&1 &
ONCE=$!
got=$(as_other /usr/bin/python3 "$RAW" "$S" 71 1 0 answerstall "$P2" "$D/o/bigblob") || fail "raw client (answerstall) failed"
wait "$SMALL" || fail "raw client (smallstall) failed: $(cat "$D/smallstall")"
wait "$ONCE" || fail "raw client (answerstall, a read once) failed: $(cat "$D/readonce")"
once=$(cat "$D/readonce")
# The 10 s move on by as long as the daemon was behind: its own turns on these calls count, up to 0.8 s
# a 4.3 MB call under a sanitizer (about 4 s here): there 20 s at most, 13 in the plain pass.
most=13
[ "${TS_SAN:-0}" = 1 ] && most=20
for g in "${got#answered }" "$(cat "$D/smallstall")" "${once#answered }"; do
	secs=${g#hung up after }
	secs=${secs%% s*}
	[[ "$g" = "hung up after "* ]] && [ "$secs" -ge 9 ] && [ "$secs" -le $most ] ||
		fail "answers left unread: '$g', not hung up on after 10 s"
done
[ "$(grep -c "direct:[0-9]* (uid $OTHER_UID pid [0-9]*): answers or signals not read within [0-9]* seconds; disconnected" "$D/daemon.log")" -ge 3 ] ||
	fail "no log line for the answers left unread"
pass "answers left unread count against the uid's 64 MiB share: a 16th RewrapBatch of 4.3 MB is cut off, on the caller's own vault and on another's through polkit; answers left unread 10 s (a large one, read once or not at all, or 20 of 128 KiB) cut their client off"

# --- a daemon that does not answer (stopped): the client gives up on the socket's handshake within
# a second or so, it does not wait for sd-bus's 90 s.
kill -STOP "$DAEMON_PID"
t0=$(date +%s%N); rc=0
timeout 30 "$TOKENSEAL" status >"$D/out" 2>&1 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$DAEMON_PID"
[ $rc -eq 9 ] && [ $ms -lt 3000 ] || fail "a stopped daemon: exit $rc after $ms ms (want 9 within 3 s): $(cat "$D/out")"
pass "a daemon that does not answer: the client says so after $ms ms (exit 9)"

# --- the trust-boundary tests, every client of theirs on the private socket.
# Under a sanitizer build (TS_SAN) the data-path re-runs but one are left out: that pass runs them on the
# bus, and the plain build's pass runs them here; the boundary ones and core-packed stay (the suite's time
# is bounded).
boundary=(security-namespace security-visibility security-exe policy-rules)
data=(core-packed)
[ "${TS_SAN:-0}" = 1 ] || data=(core-flow core-packed cli-flow age-flow secrets-vault)
tests=("${data[0]}" "${boundary[@]}" "${data[@]:1}") # the longest first
# Two at a time (each has a rig of its own), as tests/run -j 2 runs the scripts marked for it.
declare -A running=()
rerun_reap() {
	local pid=
	wait -n -p pid "${!running[@]}" || { tail -n 30 "$D/${running[$pid]}.log" >&2; fail "${running[$pid]} over the private socket"; }
	unset "running[$pid]"
}
for t in "${tests[@]}"; do
	while [ ${#running[@]} -ge 2 ]; do rerun_reap; done
	bash "$TS_SRC/tests/integration/$t.sh" >"$D/$t.log" 2>&1 &
	running[$!]=$t
done
while [ ${#running[@]} -gt 0 ]; do rerun_reap; done
pass "the trust-boundary tests (namespace, visibility, exe, [unwrap] rules) and the data-path ones (${data[*]}) pass over the private socket"

# --- SIGTERM while a client is connected and has not finished its handshake (nor started it): the
# daemon still exits at once, with status 0 (sd-bus would flush that connection at the loop's exit,
# waiting for the client).
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"\0AUTH EXTERNAL\r\n")
time.sleep(30)' "$S" &
MUTE=$!
RIG_PIDS+=($MUTE)
sleep 0.3
pid=$DAEMON_PID
DAEMON_PID=
t0=$(date +%s%N)
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
ms=$((($(date +%s%N) - t0) / 1000000))
! kill -0 "$pid" 2>/dev/null || fail "SIGTERM with a client in its handshake: still running after $ms ms"
wait "$pid" 2>/dev/null; rc=$?
[ $rc -eq 0 ] || fail "SIGTERM with a client in its handshake: exit status $rc"
kill "$MUTE" 2>/dev/null || true
pass "SIGTERM with a client in its handshake: the daemon exits 0 after $ms ms"
