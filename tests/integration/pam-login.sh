#!/bin/bash
# pam-login.sh — pam_tokenseal.so under pam_wrapper + pamtester against the real daemon on a private bus:
# unlock at login, wrong secret, users without a vault, daemon absent or hung (over the bus and over the
# private socket), session close locks.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
rig_start_bus
D=$RIG_DIR
# The daemon serves its private socket too: the daemon-hung and daemon-gone checks run over both transports.
rig_start_daemon --idle-lock 0 --private-socket "$D/private"

# Vaults named after two real users (the PAM user names), owned by them; a third only for its key.
NP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' nobody "owner=65534" ">$D/rk-nobody") ||
	fail "create nobody"
DP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' daemon "owner=1" ">$D/rk-daemon") ||
	fail "create daemon"
fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' other "" ">$D/rk-other" >/dev/null ||
	fail "create other"
vcall "$NP" Lock >/dev/null && vcall "$DP" Lock >/dev/null || fail "lock"

pam_service login "auth required $PAM_SO timeout=2"

# --- wrong secrets fail cleanly with PAM_AUTH_ERR and leave the vault locked.
rc=0; pt login nobody authenticate <"$D/rk-other" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "another vault's recovery key authenticated: $(cat "$D/out")"
grep -q "Recovery key: " "$D/out" || fail "no recovery key prompt: $(cat "$D/out")"
grep -q "Authentication failure" "$D/out" || fail "wrong key: not PAM_AUTH_ERR: $(cat "$D/out")"
rc=0; echo "AAAAA-BBBBB" | pt login nobody authenticate >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "Authentication failure" "$D/out" || fail "mistyped key: $(cat "$D/out")"
[ "$(vprop "$NP" Locked)" = true ] || fail "vault unlocked by a wrong key"
pass "wrong recovery keys give PAM_AUTH_ERR; the vault stays locked"

# --- the right secret unlocks, and never shows up in a log.
pt login nobody authenticate <"$D/rk-nobody" >"$D/out" 2>&1 || fail "right key refused: $(cat "$D/out")"
grep -q "successfully authenticated" "$D/out" || fail "pamtester: $(cat "$D/out")"
[ "$(vprop "$NP" Locked)" = false ] || fail "vault still locked after login"
[ "$(vprop "$DP" Locked)" = true ] || fail "another user's vault was unlocked"
grep -q "event=unlock vault=nobody owner=[0-9-]* uid=0 pid=[0-9]* protector=p1 result=ok" "$D/daemon.log" ||
	fail "unlock not logged: $(tail -n 5 "$D/daemon.log")"
for k in nobody other; do
	grep -qF "$(cat "$D/rk-$k")" "$D/daemon.log" "$D/out" && fail "a recovery key appears in a log"
done
pass "the right recovery key unlocks the user's vault (Locked=false), no secret in the logs"

# --- vault= names another vault of the user; use_first_pass takes PAM_AUTHTOK from an earlier module,
# without a prompt. (Another user's vault is never taken for this user: security-namespace.sh.)
SETITEMS=/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so
pam_service first "auth required $SETITEMS" "auth required $PAM_SO vault=daemon use_first_pass timeout=2"
PAM_AUTHTOK=$(cat "$D/rk-daemon") pt first nobody authenticate </dev/null >"$D/out" 2>&1 &&
	fail "vault=daemon took uid 1's vault for nobody: $(cat "$D/out")"
PAM_AUTHTOK=$(cat "$D/rk-daemon") pt first daemon authenticate </dev/null >"$D/out" 2>&1 ||
	fail "use_first_pass: $(cat "$D/out")"
grep -q "Recovery key:" "$D/out" && fail "use_first_pass prompted"
[ "$(vprop "$DP" Locked)" = false ] || fail "vault=daemon not unlocked"
vcall "$DP" Lock >/dev/null
rc=0; pt first daemon authenticate </dev/null >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "Authentication failure" "$D/out" || fail "use_first_pass without a token: $(cat "$D/out")"
pass "vault=NAME and use_first_pass (PAM_AUTHTOK, no prompt)"

# --- users without a vault: PAM_USER_UNKNOWN, or ignored with nullok_novault (then the stack decides).
rc=0; pt login bin authenticate </dev/null >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "User not known" "$D/out" || fail "no vault, no nullok_novault: $(cat "$D/out")"
pam_service optional "auth [success=ok ignore=ignore default=bad] $PAM_SO nullok_novault timeout=2" \
	"auth required pam_permit.so"
pt optional bin authenticate </dev/null >"$D/out" 2>&1 || fail "nullok_novault did not skip: $(cat "$D/out")"
grep -q "Recovery key:" "$D/out" && fail "asked a user without a vault for a key"
rc=0; pt optional nobody authenticate <"$D/rk-other" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "nullok_novault let a wrong key through for a user with a vault"
pass "a user without a vault: PAM_USER_UNKNOWN, skipped (PAM_IGNORE) with nullok_novault"

# --- daemon hung (SIGSTOP): the login fails after timeout= seconds, whichever the transport, connecting
# included. On the private socket connect() succeeds (the listen backlog) and the handshake waits; with the
# backlog full, connect() itself waits. A bus that does not answer its handshake (a hung dbus-daemon) counts
# the same. Daemon gone: fails at once, over either transport.
# over bus|socket|mute CMD... — the module reaches the daemon over the bus, over the private socket alone
# (named: no fall-back; and no system bus to fall back to), or over a bus that never answers.
over() {
	local t=$1; shift
	case $t in
	bus) TOKENSEAL_BUS=$BUS_ADDRESS "$@" ;;
	socket) TOKENSEAL_BUS= TOKENSEAL_PRIVATE_SOCKET=$D/private DBUS_SYSTEM_BUS_ADDRESS=unix:path=$D/no-bus "$@" ;;
	mute) TOKENSEAL_BUS=unix:path=$D/mute-bus "$@" ;;
	esac
}
# timed NAME TRANSPORT — a login over TRANSPORT (killed after 10 s), its output in $D/out-NAME, "RC MS" in $D/ms-NAME.
timed() {
	local t0 rc=0
	t0=$(date +%s%N)
	PT_WRAP="timeout 10" over "$2" pt login nobody authenticate <"$D/rk-nobody" >"$D/out-$1" 2>&1 || rc=$?
	echo "$rc $((($(date +%s%N) - t0) / 1000000))" >"$D/ms-$1"
}
# unavail NAME WHAT MIN MAX — the login NAME failed with PAM_AUTHINFO_UNAVAIL after MIN to MAX ms (in $ms), no prompt.
unavail() {
	local rc
	read -r rc ms <"$D/ms-$1"
	[ "$rc" -ne 0 ] || fail "$2: authenticated"
	grep -q "Authentication service cannot retrieve authentication info" "$D/out-$1" ||
		fail "$2: not PAM_AUTHINFO_UNAVAIL (exit $rc after $ms ms): $(cat "$D/out-$1")"
	[ "$ms" -ge "$3" ] && [ "$ms" -lt "$4" ] || fail "$2: timeout=2, took $ms ms (expected $3 to $4)"
	grep -q "Recovery key:" "$D/out-$1" && fail "$2: prompted although the daemon did not answer"
	return 0
}
timed sock-up socket
grep -q "successfully authenticated" "$D/out-sock-up" || fail "login over the private socket: $(cat "$D/out-sock-up")"
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(4); time.sleep(60)' "$D/mute-bus" &
MUTE=$!
RIG_PIDS+=($MUTE)
for _ in $(seq 100); do [ -S "$D/mute-bus" ] && break; sleep 0.02; done
[ -S "$D/mute-bus" ] || fail "the bus that does not answer did not start"
kill -STOP "$DAEMON_PID"
# The socket's connections the stopped daemon has (accepted or still in the backlog): its lines in /proc/net/unix.
queued() { grep -c " $D/private\$" /proc/net/unix || true; }
q0=$(queued)
timed bus bus &
b=$!
timed mute mute &
m=$!
timed sock socket &
s=$!
for _ in $(seq 150); do [ "$(queued)" -gt "$q0" ] && break; sleep 0.02; done
[ "$(queued)" -gt "$q0" ] || fail "the login over the private socket did not connect"
# That login waits in the handshake; now every other place in the backlog is taken (SOMAXCONN, at most
# net.core.somaxconn), and the next login's connect() waits.
coproc FILL { /usr/bin/python3 -c '
import resource, socket, sys
n = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 16)
resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
held = []
try:
    while True:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        held.append(c)
        c.connect(sys.argv[1])
except BlockingIOError:
    print("full", len(held) - 1, flush=True)
except OSError as e:
    print("not-full", e, flush=True)
sys.stdin.read()' "$D/private"; }
read -r -t 20 full n <&"${FILL[0]}" || fail "the backlog filler did not report"
[ "$full" = full ] || fail "could not fill the private socket's backlog: $n"
timed sock-full socket
exec {FILL[1]}>&-
wait "$FILL_PID" 2>/dev/null || true
wait $b $m $s
kill "$MUTE"
wait "$MUTE" 2>/dev/null || true
unavail bus "daemon hung, over the bus" 1500 5000
took="bus $ms ms"
unavail sock "daemon hung, over the private socket" 1500 5000
took="$took, private socket $ms ms"
unavail sock-full "daemon hung, over the private socket with its backlog ($n more) full" 1500 5000
took="$took, the socket's backlog full $ms ms"
pass "daemon hung: PAM_AUTHINFO_UNAVAIL within timeout=2, no prompt ($took)"
unavail mute "a bus that does not answer its handshake" 1500 5000
pass "a bus that does not answer its handshake: PAM_AUTHINFO_UNAVAIL within timeout=2 ($ms ms)"
# Gone, as after a crash (SIGKILL; not made to work through the flood's connections first): the bus has no
# owner of the name; the socket file is still there, and connect() is refused.
rig_stop_daemon KILL
[ -S "$D/private" ] || fail "the killed daemon's socket file is gone (the check is of a refused connect)"
took=
for t in bus socket; do
	timed "$t-gone" "$t"
	unavail "$t-gone" "daemon gone, over the $t" 0 1000
	took="$took${took:+, }$t $ms ms"
done
pass "daemon gone (killed, its socket file left): PAM_AUTHINFO_UNAVAIL at once, no prompt ($took)"

# --- session close locks the vault: without logind at once; with logind only after the last session.
rig_start_daemon --idle-lock 0 --private-socket "$D/private"
cat >"$D/env-c1.conf" <<'ENV'
XDG_SESSION_ID DEFAULT=c1
ENV
cat >"$D/env-d1.conf" <<'ENV'
XDG_SESSION_ID DEFAULT=d1
ENV
pam_service sess "auth required $PAM_SO timeout=2" \
	"session required pam_env.so readenv=0 user_readenv=0 conffile=$D/env-c1.conf" \
	"session required $PAM_SO timeout=2"
pt sess nobody authenticate open_session <"$D/rk-nobody" >"$D/out" 2>&1 || fail "login: $(cat "$D/out")"
[ "$(vprop "$NP" Locked)" = false ] || fail "not unlocked"
pt sess nobody close_session </dev/null >"$D/out" 2>&1 || fail "close_session: $(cat "$D/out")"
[ "$(vprop "$NP" Locked)" = true ] && [ "$(vprop "$NP" LockReason)" = '"request"' ] ||
	fail "no logind: session close did not lock ($(vprop "$NP" Locked) $(vprop "$NP" LockReason))"
pass "without logind, session close locks"

standin_start logind
logind_ctl AddSession su c1 65534
logind_ctl AddSession su c2 65534
logind_ctl AddSession su d1 1
pt sess nobody authenticate open_session close_session <"$D/rk-nobody" >"$D/out" 2>&1 || fail "sess: $(cat "$D/out")"
[ "$(vprop "$NP" Locked)" = false ] || fail "locked although session c2 of the user is still open"
# The same over the private socket, logind on the system bus: tokensealed's socket has no logind behind it.
bctl call org.tokenseal1 "$NP" $VIFACE Lock || fail "lock"
TOKENSEAL_BUS= TOKENSEAL_PRIVATE_SOCKET=$D/private DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDRESS \
	pt sess nobody authenticate open_session close_session <"$D/rk-nobody" >"$D/out" 2>&1 || fail "sess: $(cat "$D/out")"
[ "$(vprop "$NP" Locked)" = false ] || fail "over the private socket: locked although session c2 of the user is still open"
pam_service sessd "auth required $PAM_SO timeout=2" \
	"session required pam_env.so readenv=0 user_readenv=0 conffile=$D/env-d1.conf" \
	"session required $PAM_SO timeout=2"
# One pamtester run: pam_env puts XDG_SESSION_ID into the PAM environment at open_session only.
pt sessd daemon authenticate open_session close_session <"$D/rk-daemon" >"$D/out" 2>&1 ||
	fail "daemon login: $(cat "$D/out")"
grep -q "event=unlock vault=daemon owner=[0-9-]* uid=0 pid=[0-9]* protector=p1 result=ok" "$D/daemon.log" || fail "not unlocked"
[ "$(vprop "$DP" Locked)" = true ] || fail "closing the user's last logind session did not lock"
pass "with logind: another open session keeps the vault open (the module on the bus and on the private socket); the last session's close locks it"

# The module under valgrind: no memory error, no definite leak, on success and failure paths.
# Not for an ASan build of the module (make check's second pass checks it with ASan instead):
# valgrind cannot run ASan code, and pamtester would not even start.
if [ "$TS_SAN" = 1 ]; then
	pass "(valgrind: the module under test is the ASan build; the ordinary pass runs valgrind)"
elif command -v valgrind >/dev/null; then
	for input in "$D/rk-nobody" "$D/rk-other"; do
		rc=0
		PAM_WRAPPER_DISABLE_DEEPBIND=1 PT_WRAP="valgrind -q --error-exitcode=99 --leak-check=full \
			--errors-for-leak-kinds=definite --log-file=$D/vg.log" \
			pt sess nobody authenticate open_session close_session <"$input" >"$D/out" 2>&1 || rc=$?
		[ $rc -ne 99 ] && [ ! -s "$D/vg.log" ] || fail "valgrind: $(cat "$D/vg.log")"
		grep -q "performing operation - authenticate" "$D/out" || fail "pamtester did not run under valgrind: $(cat "$D/out")"
	done
	pass "valgrind clean (right and wrong secret, session open and close)"
fi

# A user without a vault: session close is not an error.
pam_service sessx "session required $PAM_SO timeout=2" "session optional pam_permit.so"
pt sessx bin open_session close_session </dev/null >"$D/out" 2>&1 || fail "no-vault session: $(cat "$D/out")"
core_finish
pass "session of a user without a vault is left alone; daemon exits cleanly"
