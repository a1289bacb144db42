#!/bin/bash
# tang-net-helper.sh — network requests go to a helper of their own user: with the token helpers' socket and the
# network helpers' socket each served by its own user (systemd-socket-activate + setpriv, as
# contrib/tokenseal-helper.socket and contrib/tokenseal-net-helper.socket do), a 2-of-{tpm2, tang} unlock sends
# the tang share to the network socket and the TPM share to the token socket; a network socket served by the
# token helper's user is refused before a byte is sent; a helper started without --network on the network
# socket refuses the tang request (a mix-up fails closed); with no network socket the tang share fails; in fork
# mode a --net-helper-user that is the token helper's or in one of its groups (tss) is refused at start.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/lib/tang.sh"
D=$RIG_DIR
T=$TOKENSEAL
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the helpers' own users)"; exit 77; }
for c in systemd-socket-activate setpriv; do
	command -v "$c" >/dev/null || { echo "SKIP: no $c"; exit 77; }
done
HUID=$(id -u "$TS_HELPER_USER") && HGID=$(id -g "$TS_HELPER_USER") || fail "no token helper user"
NUID=$(id -u "$TS_NET_HELPER_USER") && NGID=$(id -g "$TS_NET_HELPER_USER") || fail "no network helper user"
[ "$HUID" != "$NUID" ] && [ "$NUID" -ne 0 ] || fail "the network helper user is root or the token helper's"
id -nG "$TS_NET_HELPER_USER" | grep -qw tss && fail "the network helper user is in tss"

swtpm_start "$D/tpm"
tang_start "$D/tang"
rig_start_bus
chmod 0711 "$TS_HELPER"
mkdir -p "$D/policy"
printf '[tang]\nservers = %s\n' "$TANG_URL" >"$D/policy/10-tang.conf"

# listen SOCKET LOG UID GID [HELPER-ARGS...] — one helper per connection as UID:GID, as the socket units do.
listen() {
	local sock=$1 log=$2 uid=$3 gid=$4 env=() v
	shift 4
	for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
		[ -n "${!v:-}" ] && env+=(-E "$v=${!v}")
	done
	systemd-socket-activate --accept -l "$sock" "${env[@]}" -- \
		setpriv --reuid="$uid" --regid="$gid" --init-groups --no-new-privs "$TS_HELPER" "$@" >>"$log" 2>&1 &
	RIG_PIDS+=($!)
	for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.05; done
	fail "systemd-socket-activate did not listen on $sock"
}
conns() { grep -c "Connection from PID $DAEMON_PID/" "$1" || true; }
state() { "$T" --vault v status | sed -n 's/^ *state: *\([a-z]*\).*/\1/p'; }
start() { rig_start_daemon --idle-lock 0 --helper-keep 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy" \
	--helper-socket "$D/token.sock" "$@"; }

listen "$D/token.sock" "$D/token.log" "$HUID" "$HGID"
listen "$D/net.sock" "$D/net.log" "$NUID" "$NGID" --network
start --net-helper-socket "$D/net.sock"

# --- enrollment and a 2-of-{tpm2, tang} unlock: each share through its own kind of helper.
"$T" --vault v create --threshold 2 >/dev/null || fail "create"
"$T" --vault v enroll tpm2 >"$D/e" 2>&1 </dev/null || fail "enroll tpm2: $(cat "$D/e")"
"$T" --vault v enroll tang --url "$TANG_URL" --thp "$TANG_THP" >"$D/e" 2>&1 </dev/null || fail "enroll tang: $(cat "$D/e")"
[ "$(conns "$D/net.log")" = 1 ] || fail "the tang enrollment made $(conns "$D/net.log") network helper connection(s)"
printf 'net data\n' | "$T" --vault v wrap --text -c app=n >"$D/blob" || fail "wrap"
"$T" --vault v lock >/dev/null || fail "lock"
tok0=$(conns "$D/token.log") net0=$(conns "$D/net.log")
"$T" --vault v unlock >"$D/u" 2>&1 </dev/null || fail "unlock 2-of-{tpm2, tang}: $(cat "$D/u")"
[ "$(state)" = unlocked ] || fail "not unlocked"
[ "$("$T" --vault v unwrap -c app=n <"$D/blob")" = "net data" ] || fail "unwrap after the unlock"
dtok=$(( $(conns "$D/token.log") - tok0 )) dnet=$(( $(conns "$D/net.log") - net0 ))
[ "$dnet" = 1 ] || fail "the unlock made $dnet network helper connection(s), expected 1 (the tang share)"
[ "$dtok" -ge 1 ] || fail "the unlock made no token helper connection (the tpm2 share)"
pass "2-of-{tpm2, tang}: the tang share through the network socket (uid $NUID, 1 connection), the TPM share through the token socket (uid $HUID, $dtok)"

# --- a network socket served by the token helper's user: refused on its hello, not a byte sent.
install -m 0644 "$TS_SRC/tests/integration/fake_helper_listener.py" "$D/fake.py"
# fake_listen DIR UID GID RECORD — the fake listener as UID:GID on DIR/net.sock, recording into RECORD.
fake_listen() {
	mkdir -m 0755 "$1" && chown "$2" "$1"
	: >"$4"; : >"$4.connections"; chmod 666 "$4" "$4.connections"
	setpriv --reuid="$2" --regid="$3" --init-groups /usr/bin/python3 "$D/fake.py" "$1/net.sock" "$4" >>"$D/fake.log" 2>&1 &
	RIG_PIDS+=($!)
	for _ in $(seq 100); do [ -S "$1/net.sock" ] && return 0; sleep 0.05; done
	fail "the fake listener did not start: $(cat "$D/fake.log")"
}
fake_listen "$D/tok" "$HUID" "$HGID" "$D/fake.bytes"
rig_stop_daemon
start --net-helper-socket "$D/tok/net.sock"
"$T" --vault v lock >/dev/null || fail "lock"
rc=0; "$T" --vault v unlock >"$D/u" 2>&1 </dev/null || rc=$?
[ $rc -ne 0 ] || fail "unlocked with the network socket served by the token helper's user"
grep -q "network helper socket $D/tok/net.sock is served by pid [0-9]*, uid $HUID gid $HGID, not by the helper's user (uid $NUID gid $NGID): refused, nothing sent" \
	"$D/daemon.log" || fail "the daemon did not log the refusal: $(tail -n 5 "$D/daemon.log")"
[ "$(state)" = locked ] || fail "the vault opened"
[ -s "$D/fake.bytes.connections" ] || fail "the daemon never reached the fake listener (the refusal proves nothing)"
[ "$(stat -c %s "$D/fake.bytes")" = 0 ] || fail "the token helper's user received $(stat -c %s "$D/fake.bytes") byte(s)"
pass "a network socket served by the token helper's user (uid $HUID): refused on its hello, 0 bytes sent, the vault stays locked"

# --- what a network helper is sent: its request, never the caller's PIN or a token's setting. The network socket
# served by a recorder of the network helper's own user (what a network helper taken over would see).
fake_listen "$D/rec" "$NUID" "$NGID" "$D/rec.bytes"
rig_stop_daemon
start --net-helper-socket "$D/rec/net.sock"
printf 'PIN-CANARY-4711\n' >"$D/canary"
# The recorder never answers: the CLI gives up after 2 s (the bytes are in by then).
timeout 2 "$T" --vault v unlock --protector tang --pin-fd 3 3<"$D/canary" >"$D/u" 2>&1 </dev/null || true
for _ in $(seq 50); do [ -s "$D/rec.bytes" ] && break; sleep 0.1; done
[ -s "$D/rec.bytes" ] || fail "the network helper's recorder received nothing (the check proves nothing): $(cat "$D/u")"
! grep -qa "PIN-CANARY-4711" "$D/rec.bytes" || fail "the caller's PIN reached the network helper"
! grep -qa "swtpm:path" "$D/rec.bytes" || fail "the TPM's setting reached the network helper"
grep -qa "tang" "$D/rec.bytes" || fail "the recorder did not get the tang request"
pass "a network helper gets its tang request without the caller's PIN or any token setting"

# --- the network socket served by the right user with a token helper (no --network): it refuses the tang request.
listen "$D/plain.sock" "$D/plain.log" "$NUID" "$NGID"
rig_stop_daemon
start --net-helper-socket "$D/plain.sock"
rc=0; "$T" --vault v unlock >"$D/u" 2>&1 </dev/null || rc=$?
[ $rc -ne 0 ] || fail "a helper without --network ran the tang unlock"
grep -q "this token helper runs no network request" "$D/u" "$D/plain.log" || fail "no clear refusal: $(cat "$D/u")"
[ "$(state)" = locked ] || fail "the vault opened"
pass "a helper started without --network on the network socket refuses the tang request (fails closed)"

# --- token helpers on a socket and no network socket: the tang share fails, nothing falls back to a token helper.
rig_stop_daemon
start
rc=0; "$T" --vault v unlock >"$D/u" 2>&1 </dev/null || rc=$?
[ $rc -ne 0 ] && grep -q "no network helper is configured" "$D/u" || fail "tang unlock without a network socket: rc $rc $(cat "$D/u")"
[ "$(state)" = locked ] || fail "the vault opened"
pass "--helper-socket without --net-helper-socket: the tang share fails (no network helper is configured), the vault stays locked"

# --- fork mode: the daemon forks network helpers as --net-helper-user, which must not be the token helper's.
rig_stop_daemon
rig_start_daemon --idle-lock 0 --helper-keep 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy" \
	--net-helper-user "$TS_HELPER_USER"
grep -q "the network helper's user (uid $HUID gid $HGID) is the token helper's, or shares a group with it" "$D/daemon.log" ||
	fail "no start-up warning for a network helper user that is the token helper's"
rc=0; "$T" --vault v unlock >"$D/u" 2>&1 </dev/null || rc=$?
[ $rc -ne 0 ] && grep -q "must be a user of its own" "$D/u" || fail "tang unlock with the token helper's user: rc $rc $(cat "$D/u")"
[ "$(state)" = locked ] || fail "the vault opened"
# A user of its own that is in tss (the TPM's group, which the token helper has): refused all the same.
if getent group tss >/dev/null && id -nG "$TS_HELPER_USER" | grep -qw tss; then
	rig_useradd "tsn$$"
	usermod -a -G tss "tsn$$" || fail "usermod tss"
	rig_stop_daemon
	rig_start_daemon --idle-lock 0 --helper-keep 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy" \
		--net-helper-user "tsn$$"
	grep -q "the network helper's user (uid $(id -u "tsn$$") gid [0-9]*) is the token helper's, or shares a group with it" \
		"$D/daemon.log" || fail "no start-up warning for a network helper user in tss"
fi
rig_stop_daemon
rig_start_daemon --idle-lock 0 --helper-keep 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy"
"$T" --vault v unlock >"$D/u" 2>&1 </dev/null || fail "fork mode unlock 2-of-{tpm2, tang}: $(cat "$D/u")"
[ "$(state)" = unlocked ] || fail "not unlocked in fork mode"
rig_stop_daemon
pass "fork mode: a network helper user that is the token helper's, or in tss, is refused at start (the tang share fails); as $TS_NET_HELPER_USER it unlocks"
