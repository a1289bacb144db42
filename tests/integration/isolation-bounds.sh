#!/bin/bash
# isolation-bounds.sh — 1,000 parallel wrong Unlocks from a vault's owner (and 1,000 from another uid)
# leave the daemon bounded: token helpers alive never above [limits] helpers, its memory flat, the
# back-off holding (at most the allowed number of secrets checked: an attempt counts when it starts),
# and the owner's right key opens the vault afterwards. A uid gets no more vaults than [limits]
# vaults-per-uid.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
FLOOD="$TS_BUILD/tests/tools/unlock_flood"
HELPERS=3 JOBS=2 VAULTS=3 ATTEMPTS=3 CALLS=1000
# Under a sanitizer build the daemon answers slower than 1000 calls arrive: the bus then refuses nearly
# all of them (LimitsExceeded, its per-connection limits) and, once, none reached a vault at all, which
# proves nothing. 300 still flood the helpers' cap and the back-off.
[ "${TS_SAN:-0}" = 1 ] && CALLS=300
A=tsba$$ B=tsbb$$
rig_useradd "$A"
rig_useradd "$B"
UA=$(id -u "$A") UB=$(id -u "$B")
policy_conf 50-bounds.conf "[recovery]\nattempts = $ATTEMPTS\nmax-backoff = 300s\n"
policy_conf 60-limits.conf "[limits]\nhelpers = $HELPERS\njobs-per-uid = $JOBS\nvaults-per-uid = $VAULTS\n"
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$POLICY_DIR"

# A has VAULTS vaults, B two; every recovery key readable by the test's clients.
declare -a PA PB
for i in $(seq "$VAULTS"); do
	PA[$i]=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "a$i" "owner=$UA" ">$D/rka$i") ||
		fail "create a$i"
	vcall "${PA[$i]}" Lock >/dev/null
done
for i in 1 2; do
	PB[$i]=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "b$i" "owner=$UB" ">$D/rkb$i") ||
		fail "create b$i"
	vcall "${PB[$i]}" Lock >/dev/null
done
chmod 644 "$D"/rk*

# The cap on vaults: the owner cannot make one more, nor can root make one more for that owner.
out=$(as_uid "$UA" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" /org/tokenseal1 org.tokenseal1.Manager CreateVault \
	'sa{ss}h' "a-more" "" ">/dev/null" 2>&1) && fail "uid $UA created vault number $((VAULTS + 1))"
grep -q "LimitExceeded" <<<"$out" || fail "CreateVault over the cap: $out"
out=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "a-root" "owner=$UA" ">/dev/null" 2>&1) &&
	fail "root created vault number $((VAULTS + 1)) for uid $UA"
grep -q "LimitExceeded" <<<"$out" || fail "CreateVault over the cap (root): $out"
as_uid "$UB" /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" /org/tokenseal1 org.tokenseal1.Manager CreateVault \
	'sa{ss}h' "b3" "" ">/dev/null" >/dev/null || fail "uid $UB could not create its third vault"
pass "a uid gets no more than $VAULTS vaults (LimitExceeded), root's CreateVault for it neither; another uid still can"

# A wrong key with a right checksum reaches the KDF: it is a secret checked, not a typo. (The key of
# root's own vault, which none of A's or B's takes.)
fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' spare "" ">$D/wrong" >/dev/null || fail "create spare"
chmod 644 "$D/wrong"
for _ in $(seq 20); do [ "$(ps -o comm= --ppid "$DAEMON_PID" | grep -c tokenseal-help || true)" -eq 0 ] && break; sleep 0.1; done
HWM0=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")

# Sample helpers alive and the daemon's RSS while the floods run.
helpers_alive() { ps -o comm= --ppid "$DAEMON_PID" | grep -c tokenseal-help || true; }
touch "$D/sampling"
(
	max=0 rss=0
	while [ -e "$D/sampling" ]; do
		n=$(helpers_alive)
		if [ "$n" -gt "$max" ]; then max=$n; fi
		r=$(rig_daemon_rss)
		if [ "${r:-0}" -gt "$rss" ]; then rss=$r; fi
		echo "$max $rss" >"$D/samples"
		sleep 0.01
	done
) &
SAMPLER=$!
T0=$(date +%s.%N)
as_uid "$UA" timeout 120 "$FLOOD" "$BUS_ADDRESS" "$D/wrong" 10 "$CALLS" "${PA[@]:1}" >"$D/flood-a" 2>&1 &
FA=$!
as_uid "$UB" timeout 120 "$FLOOD" "$BUS_ADDRESS" "$D/wrong" 10 "$CALLS" "${PA[1]}" "${PB[1]}" "${PB[2]}" \
	>"$D/flood-b" 2>&1 &
FB=$!
rca=0 rcb=0
wait "$FA" || rca=$?
wait "$FB" || rcb=$?
T1=$(date +%s.%N)
rm -f "$D/sampling"
wait "$SAMPLER" || true
daemon_alive
echo "flood from the owner (uid $UA):"; sed 's/^/  /' "$D/flood-a"
echo "flood from another uid ($UB):"; sed 's/^/  /' "$D/flood-b"
[ $rca -eq 0 ] && [ $rcb -eq 0 ] || fail "not every Unlock was answered (rc $rca, $rcb)"
grep -q "^ok " "$D/flood-a" "$D/flood-b" && fail "a wrong key unlocked"
grep -q "^org.freedesktop.DBus.Error.UnknownObject " "$D/flood-b" || fail "B's calls to A's vault: $(cat "$D/flood-b")"

read -r MAXH MAXRSS <"$D/samples"
HWM1=$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
ELAPSED=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')
echo "flood took ${ELAPSED}s; helpers alive at most: $MAXH (cap $HELPERS); daemon VmRSS at most ${MAXRSS} kB," \
	"VmHWM ${HWM0} -> ${HWM1} kB"
[ "$MAXH" -le "$HELPERS" ] || fail "$MAXH token helpers alive at once, the cap is $HELPERS"
[ $((HWM1 - HWM0)) -le 32768 ] || fail "the daemon's peak RSS grew by $((HWM1 - HWM0)) kB under the flood"
pass "2 x $CALLS parallel wrong Unlocks: at most $MAXH helpers alive (cap $HELPERS), daemon peak RSS +$((HWM1 - HWM0)) kB"

# The back-off held: secrets actually checked (an AuthenticationFailed from the recovery protector)
# are at most the free attempts, the one that starts the wait, and one more per wait (1, 2, 4 ... s)
# that could pass while the flood ran; and the counter on disk says as many as were checked.
allowed=$(awk -v e="$ELAPSED" -v a="$ATTEMPTS" 'BEGIN { n = a + 1; w = 1; t = w; while (t <= e) { n++; w *= 2; t += w }; print n }')
total=0
for i in $(seq "$VAULTS"); do
	n=$(grep -c "event=unlock vault=a$i owner=$UA uid=$UA .*protector=p1 result=AuthenticationFailed" \
		"$D/daemon.log" || true)
	c=$(awk -v s="uid:$UA" '$1 == s { print $2 }' "$STATE_DIR/$UA/a$i.backoff" 2>/dev/null || true)   # none yet: no file
	echo "vault a$i: $n wrong keys checked, back-off counter ${c:-none} (allowed at most $allowed)"
	[ "$n" -le "$allowed" ] || fail "vault a$i: $n wrong keys checked in ${ELAPSED}s, the back-off allows $allowed"
	[ "${c:-0}" -eq "$n" ] || fail "vault a$i: the back-off counter on disk (${c:-0}) is not the $n checked"
	total=$((total + n))
done
[ "$total" -gt 0 ] || fail "no wrong key was checked at all: the flood did not reach the vaults"
pass "the back-off held: $total wrong keys checked over $VAULTS vaults in ${ELAPSED}s, counted when they started"

# Nothing left running. The owner's own source is still backed off; the right key typed at the
# login prompt (another source: root's PAM module names it) opens the vault.
# (On a loaded machine the flood may have checked fewer keys than the free attempts, or the last wait
# may have run out meanwhile: wrong keys until the source waits long enough that the right key, typed
# next, surely falls inside the wait (a wait of a second or two can run out while a sanitized CLI
# starts); a shorter wait is sat out, and the next wrong key doubles it.)
for _ in $(seq 100); do [ "$(helpers_alive)" -le 1 ] && break; sleep 0.1; done
for _ in $(seq $((ATTEMPTS + 8))); do
	out=$(as_uid "$UA" "$TOKENSEAL" --vault a1 unlock --pin-fd 3 3<"$D/wrong" 2>&1) && fail "a wrong key opened a1"
	wait_s=$(sed -n 's/.*too many failed unlocks from here; retry in \([0-9]*\) s.*/\1/p' <<<"$out" | head -n1)
	[ -n "$wait_s" ] && [ "$wait_s" -ge 4 ] && break
	if [ -n "$wait_s" ]; then sleep $((wait_s + 1)); elif grep -qi busy <<<"$out"; then sleep 0.2; fi
done
grep -qi "too many failed" <<<"$out" || fail "$((ATTEMPTS + 8)) more wrong keys did not start the back-off: $out"
out=$(as_uid "$UA" "$TOKENSEAL" --vault a1 unlock --pin-fd 3 3<"$D/rka1" 2>&1) && fail "the owner's source is not backed off"
grep -qi "too many failed" <<<"$out" || fail "the owner's source after the flood: $out"
fdcall "${PA[1]}" $VIFACE Unlock 'sha{ss}' "" "<$D/rka1" "source=pam:login" >"$D/out" 2>&1 ||
	fail "the owner's right key at the login prompt after the flood: $(cat "$D/out")"
[ "$(vprop "${PA[1]}" Locked)" = false ] || fail "a1 not unlocked"
pass "after the flood the owner's source still waits, and the right key from the login prompt opens the vault"
core_finish
