#!/bin/bash
# tang-protector.sh — tang protectors against real Tang servers (Debian's tangd): 2-of-{tpm2, tang} unlocks,
# a server down fails with its name, a wrong thumbprint is refused, key rotation and --replace, policy (tang alone,
# [tang] servers checked before any helper reaches the network, at enrollment and at unlock).
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/lib/tang.sh"
. "$TS_SRC/tests/lib/slapd.sh"
D=$RIG_DIR
ts() { "$TOKENSEAL" --vault "${V:-demo}" "$@"; }
# Run, expect exit code $1 and (optionally) $2 in stderr.
expect_rc() { # rc, needle ('' for any), command...
	local want=$1 needle=$2 rc=0
	shift 2
	"$@" >"$D/out" 2>"$D/err" </dev/null || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* — stderr: $(cat "$D/err")"
	[ -z "$needle" ] || grep -qF -- "$needle" "$D/err" || fail "expected '$needle' in stderr of: $* — got: $(cat "$D/err")"
}
enrolled_id() { sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$1"; }
n_protectors() { ts status | sed -n 's/^ *protectors: *//p'; }
state() { ts status | sed -n 's/^ *state: *\([a-z]*\).*/\1/p'; }

swtpm_start "$D/tpm"
tang_start "$D/tang1"; URL1=$TANG_URL THP1=$TANG_THP PORT1=$(cat "$D/tang1/port")
tang_start "$D/tang2"; URL2=$TANG_URL THP2=$TANG_THP PORT2=$(cat "$D/tang2/port")
tang_start "$D/tang3"; URL3=$TANG_URL
[ "$THP1" != "$THP2" ] || fail "two tangd key directories with one signing key"
rig_start_bus
# The policy: first none (no [tang] servers: no tang protector at all), then the test's servers.
mkdir -p "$D/policy"
set_servers() { printf '[tang]\nservers = %s\n' "$*" >"$D/policy/10-tang.conf"; }
start() { rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy" "$@"; }
start

# --- the default policy: a tang protector that could open the vault alone is refused.
V=alone ts create >/dev/null || fail "create alone"
V=alone expect_rc 10 "[tang] alone (built-in default)" ts enroll tang --url "$URL1" --thp "$THP1"
[ "$(V=alone n_protectors)" = 1 ] || fail "a refused tang protector was enrolled"
grep -q "event=policy-denied vault=alone .*protector=tang" "$D/daemon.log" || fail "no policy-denied audit event"
pass "the default policy refuses a tang protector on its own ([tang] alone)"

# --- no [tang] servers in the policy: no tang protector, before any helper reaches anything.
V=none ts create --threshold 2 >/dev/null || fail "create none"
V=none expect_rc 10 "[tang] servers (built-in default): no Tang server is allowed" ts enroll tang --url "$URL1" --thp "$THP1"
grep -q "event=policy-denied vault=none .*protector=tang" "$D/daemon.log" || fail "no policy-denied audit event"
rig_stop_daemon
set_servers "$URL1, $URL2/, http://localhost:$PORT1, $URL3"
printf '[tang]\nalone = yes\n' >"$D/policy/20-alone.conf"
start
pass "without [tang] servers no tang protector is enrolled (the policy names the key)"

# --- [tang] alone = yes: a vault tang opens by itself is not published to a directory (its file would open it).
slapd_start "$D/ldap"
"$TOKENSEAL" escrow keygen --out-secret "$D/o.sec" >"$D/o.pub" || fail "keygen"
V=solo ts create >/dev/null || fail "create solo"
V=solo ts enroll tang --url "$URL1" --thp "$THP1" >/dev/null 2>&1 </dev/null || fail "enroll tang alone (alone = yes)"
V=solo ts escrow set "o=$(cat "$D/o.pub")" >/dev/null || fail "escrow set solo"
rc=0; "$TOKENSEAL" escrow publish --to-ldap "$LDAP_URI" --base "$LDAP_BASE" --state-dir "$STATE_DIR" --machine-id m1 \
	>"$D/p" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "solo (uid 0): not published: its tang protectors open it without any other protector (1 tang, it opens with 1)" "$D/p" ||
	fail "publish of a vault tang opens alone: rc $rc $(cat "$D/p")"
[ -z "$(ldap_search -b "$LDAP_BASE" -s one dn)" ] || fail "published: $(ldap_search -b "$LDAP_BASE" -s one dn)"
slapd_stop "$D/ldap"
pass "escrow publish refuses a vault that tang protectors open by themselves ([tang] alone = yes)"

# --- a URL not on the list: refused with one message whatever it is, and nothing is contacted.
LPORT=$(tang_free_port)
socat -u "TCP-LISTEN:$LPORT,bind=127.0.0.1,reuseaddr" "OPEN:$D/hit,creat" 2>/dev/null &
RIG_PIDS+=($!)
sleep 0.1
V=urls ts create --threshold 2 >/dev/null || fail "create urls"
V=urls expect_rc 10 "[tang] servers ($D/policy/10-tang.conf:2): a Tang server of this protector is not one the policy allows" \
	ts enroll tang --url "$URL2" --url "http://127.0.0.1:$LPORT" --thp "$THP2"
cp "$D/err" "$D/err1"
V=urls expect_rc 10 "" ts enroll tang --url "http://127.0.0.1@127.0.0.1:$PORT1" --thp "$THP1"
cmp -s "$D/err" "$D/err1" || fail "two addresses off the list got different answers: $(cat "$D/err1") / $(cat "$D/err")"
[ ! -e "$D/hit" ] || fail "a helper connected to an address not on the list: $(cat "$D/hit")"
pass "a Tang URL not on [tang] servers is refused before any connection, with one answer for all"

# --- 2-of-{recovery, tpm2, tang}: a wrong thumbprint is refused at enrollment, the right one binds.
ts create --threshold 2 >"$D/rk" || fail "create --threshold 2"
ts enroll tpm2 >"$D/e" 2>&1 </dev/null || fail "enroll tpm2: $(cat "$D/e")"
expect_rc 6 "no signing key of the advertisement has thumbprint $THP2" ts enroll tang --url "$URL1" --thp "$THP2"
expect_rc 2 "--thp THP" ts enroll tang --url "$URL1"
[ "$(n_protectors)" = 2 ] || fail "a refused tang protector was enrolled"
pass "a wrong thumbprint (another server's) is refused at enrollment, and so is none"

ts enroll tang --url "$URL1" --url "$URL2" --thp "$THP1" --thp "$THP2" >"$D/e" 2>&1 </dev/null ||
	fail "enroll tang: $(cat "$D/e")"
P_TANG=$(enrolled_id "$D/e")
ts status >"$D/st"
grep -A3 "^ *$P_TANG *tang" "$D/st" | grep -q "servers=2 url1=$URL1 thp1=$THP1 url2=$URL2 thp2=$THP2" ||
	fail "status of $P_TANG: $(cat "$D/st")"
printf 'fleet data\n' | ts wrap --text -c app=tang >"$D/blob" || fail "wrap"
ts lock >/dev/null || fail "lock"
expect_rc 0 "" ts unlock
[ "$(state)" = unlocked ] || fail "2-of-{tpm2, tang} did not unlock"
[ "$(ts unwrap -c app=tang <"$D/blob")" = "fleet data" ] || fail "unwrap after the tang unlock"
grep -q "event=unlock vault=demo .*protector=$P_TANG" "$D/daemon.log" || fail "no unlock by $P_TANG in the audit log"
pass "2-of-{tpm2, tang}: tpm2 and the Tang servers unlock with no one typing anything"

# --- servers down: one is enough; with none the share fails naming each server, the vault stays locked.
tang_stop "$D/tang1"
ts lock >/dev/null
expect_rc 0 "" ts unlock
[ "$(state)" = unlocked ] || fail "the second server alone did not unlock"
tang_stop "$D/tang2"
ts lock >/dev/null
expect_rc 1 "Tang server $URL1: Couldn't connect to server" ts unlock
grep -qF "Tang server $URL2: " "$D/err" || fail "the error does not name the second server: $(cat "$D/err")"
[ "$(state)" = locked ] || fail "unlocked with every Tang server down"
pass "one Tang server down: the other answers; both down: the share fails naming both, the vault stays locked"

# --- rotation on the server: the old key, hidden, still answers; --replace rebinds; then the old key can go.
tang_start "$D/tang1" "$PORT1"
[ "$TANG_THP" = "$THP1" ] || fail "tang1 restarted with other keys"
tang_rotate "$D/tang1"
NEW1=$(tang_thp "$URL1")
[ -n "$NEW1" ] && [ "$NEW1" != "$THP1" ] || fail "tangd-rotate-keys did not change the advertised key"
ls -a "$D/tang1/db" | grep -q '^\..*\.jwk$' || fail "no hidden old key after rotation"
expect_rc 0 "" ts unlock
[ "$(state)" = unlocked ] || fail "no unlock after tangd-rotate-keys (old key hidden, not removed)"
pass "after tangd-rotate-keys the protector still unlocks (the old key is hidden, not removed)"

tang_start "$D/tang2" "$PORT2"

expect_rc 6 "no signing key of the advertisement has thumbprint $THP1" ts enroll tang --replace "$P_TANG" --thp "$THP1" --thp "$THP2"
ts enroll tang --replace "$P_TANG" --thp "$NEW1" --thp "$THP2" >"$D/e" 2>&1 </dev/null || fail "enroll --replace: $(cat "$D/e")"
P_NEW=$(enrolled_id "$D/e")
grep -q "Protector $P_TANG replaced and removed" "$D/e" || fail "replace: $(cat "$D/e")"
ts status >"$D/st"
grep -q "^ *$P_TANG " "$D/st" && fail "the replaced protector is still there"
grep -A3 "^ *$P_NEW *tang" "$D/st" | grep -q "servers=2 url1=$URL1 thp1=$NEW1 url2=$URL2" ||
	fail "the rebound protector: $(cat "$D/st")"
rm -f "$D"/tang1/db/.*.jwk
ts lock >/dev/null
expect_rc 0 "" ts unlock
[ "$(state)" = unlocked ] || fail "the rebound protector did not unlock once the old key was removed"
pass "enroll tang --replace rebinds to the new key (the old thumbprint is refused); the old key can then go"

# --- trust on first use, by name (resolved in the helper): the key seen is recorded and shown.
V=tofu ts create --threshold 2 >/dev/null || fail "create tofu"
V=tofu ts enroll tang --url "http://localhost:$PORT1" --trust-first-use >"$D/e" 2>&1 </dev/null ||
	fail "enroll --trust-first-use: $(cat "$D/e")"
V=tofu ts status >"$D/st"
grep -q "trusted on first use, key ${NEW1:0:12}" "$D/st" || fail "status does not say the key was trusted on first use: $(cat "$D/st")"
grep -q "thp1=$NEW1" "$D/st" || fail "status does not show the thumbprint trusted"
pass "--trust-first-use records and shows the thumbprint seen (server given by name)"

# --- once the server's key is gone (rotated, then deleted), its answer says so.
V=tofu ts lock >/dev/null
tang_rotate "$D/tang1"
rm -f "$D"/tang1/db/.*.jwk
V=tofu expect_rc 1 "Tang server http://localhost:$PORT1: HTTP status 404" ts unlock
grep -qF "rebind with 'tokenseal enroll tang --replace'" "$D/err" || fail "no hint to rebind: $(cat "$D/err")"
pass "a server whose key was deleted: the share fails with HTTP 404 and the way to rebind"
grep -q "seccomp: refused" "$D/daemon.log" && fail "the helper's sandbox refused a call: $(grep seccomp "$D/daemon.log")"
rig_san_clean || fail "sanitizer report"

# --- one deadline for a whole share, resolution included: two servers that accept and never answer
# (8 s each before) use it up, and the third is not asked; the unlock fails in about 12 s, not 16.
V=slow ts create --threshold 2 >/dev/null || fail "create slow"
V=slow ts enroll tang --url "$URL1" --url "$URL2" --url "$URL3" --trust-first-use >/dev/null 2>&1 </dev/null ||
	fail "enroll slow"
P_SLOW=$(V=slow ts status | sed -n 's/^ *\(p[0-9]*\) *tang.*/\1/p')
tang_stop "$D/tang1"; tang_stop "$D/tang2"
for port in "$PORT1" "$PORT2"; do
	rm -f "$D/hang.$port"
	python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); open(sys.argv[2], "w").close(); time.sleep(60)' \
		"$port" "$D/hang.$port" 2>>"$D/hang.log" &
	RIG_PIDS+=($!); HANG_PIDS+=($!)
done
for _ in $(seq 100); do [ -e "$D/hang.$PORT1" ] && [ -e "$D/hang.$PORT2" ] && break; sleep 0.05; done
[ -e "$D/hang.$PORT1" ] && [ -e "$D/hang.$PORT2" ] || fail "the silent servers did not listen: $(cat "$D/hang.log")"
t0=$(date +%s%N)
V=slow expect_rc 7 "no Tang server answered: Tang server $URL1: Timeout was reached" ts unlock --protector "$P_SLOW"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
grep -qF "Tang server $URL3: not asked: the 12 s for all servers were used up" "$D/err" ||
	fail "the third server: $(cat "$D/err")"
[ $ms -ge 11000 ] && [ $ms -lt 14500 ] || fail "the share took $ms ms (12 s deadline)"
kill "${HANG_PIDS[@]}"; wait "${HANG_PIDS[@]}" 2>/dev/null || true
tang_start "$D/tang1" "$PORT1"; tang_start "$D/tang2" "$PORT2"
pass "one 12 s deadline for a tang share: two silent servers use it up, the third is not asked ($ms ms)"

# --- at unlock the record's servers are checked again: a server taken off the list is not asked.
rig_stop_daemon
set_servers "$URL2"
start
ts lock >/dev/null
expect_rc 10 "a Tang server of this protector is not one the policy allows" ts unlock --protector "$P_NEW"
[ "$(state)" = locked ] || fail "unlocked through a tang protector whose server the policy no longer lists"
rig_stop_daemon
set_servers "$URL1, $URL2, $URL3"
start
pass "at unlock, a record naming a server the policy does not list is refused"

# --- the helper's sandbox: only a tang request reaches the network. The attack: a helper that, once it has
# read its request, opens a TCP connection to the Tang server's port (tests/helper/compromised.c, mode=net).
rig_stop_daemon
mkdir -p "$D/chelper"
cp "$TS_BUILD/tests/tokenseal-helper-compromised" "$D/chelper/tokenseal-helper"
chmod 755 "$D/chelper" "$D/chelper/tokenseal-helper"
printf 'mode=net\nnet=%s\n' "$PORT1" >"$D/chelper/compromised.conf"
chmod 644 "$D/chelper/compromised.conf"
: >"$D/daemon.log"
TS_HELPER="$D/chelper/tokenseal-helper" start --helper-keep 0
ts lock >/dev/null
expect_rc 0 "" ts unlock
[ "$(state)" = unlocked ] || fail "no unlock through the (attacking) helper"
grep -q "compromised-helper: net: refused (type tang describe: socket(AF_INET): Operation not permitted)" "$D/daemon.log" ||
	fail "describing a tang record kept the network: $(grep 'compromised-helper: net' "$D/daemon.log")"
grep -q "compromised-helper: net: refused (type tpm2 unlock: socket(AF_INET): Operation not permitted)" "$D/daemon.log" ||
	fail "a tpm2 request's helper was not refused the network: $(grep 'compromised-helper: net' "$D/daemon.log")"
grep -q "compromised-helper: net: SUCCEEDED (type tang unlock: connected" "$D/daemon.log" ||
	fail "control: the tang request's helper could not connect: $(grep 'compromised-helper: net' "$D/daemon.log")"
pass "the helper's sandbox: a tpm2 unlock's or a tang describe's helper cannot open an AF_INET socket; a tang unlock's can"
