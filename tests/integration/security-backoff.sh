#!/bin/bash
# security-backoff.sh — wrong recovery keys typed by anyone at a login prompt slow down that prompt,
# not the owner's own session; and a daemon restart does not reset the count. Back-off is counted
# per (vault, source: the calling uid, and for root the PAM service) and kept in the state directory.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
USR=tsbk$$
rig_useradd "$USR"
UUID=$(id -u "$USR")
policy_conf 50-recovery.conf '[recovery]\nattempts = 1\nmax-backoff = 120s\n'
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$POLICY_DIR"
P=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "$USR" "owner=$UUID" ">$D/rk") || fail "create"
chmod 644 "$D/rk"
vcall "$P" Lock >/dev/null
as_u() { as_uid "$UUID" "$@"; }
# Wrong keys, shaped like recovery keys (so they go to the recovery protector and count).
printf 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG-HHHHH\n' >"$D/wrong"

pam_service login "auth required $PAM_SO timeout=5"
# Five wrong keys, each once the last back-off has passed: the prompt must then wait 8 s.
for i in 1 2 3 4 5; do
	rc=0; pt login "$USR" authenticate <"$D/wrong" >"$D/out" 2>&1 || rc=$?
	[ $rc -ne 0 ] && grep -q "Authentication failure" "$D/out" || fail "wrong key $i: $(cat "$D/out")"
	[ $i -lt 2 ] || [ $i -eq 5 ] || sleep "$((1 << (i - 2))).2"
done
rc=0; pt login "$USR" authenticate <"$D/rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "exhausted maximum number of retries" "$D/out" ||
	fail "the login prompt is not backing off after 5 wrong keys: $(cat "$D/out")"
grep -q "event=unlock vault=$USR owner=[0-9-]* uid=0 .*result=Busy" "$D/daemon.log" || fail "Busy not logged"
pass "wrong keys at the login prompt: that prompt backs off (PAM_MAXTRIES)"

# The owner's own session is another source: not held up by what was typed at the prompt.
as_u "$TOKENSEAL" unlock --pin-fd 3 3<"$D/rk" >"$D/out" 2>&1 || fail "the owner is held up by the login prompt's back-off: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "not unlocked"
vcall "$P" Lock >/dev/null
pass "the owner unlocks from their own session meanwhile"

# Another PAM service (another prompt) is another source too; the same prompt stays held after a restart.
pam_service sshd "auth required $PAM_SO timeout=5"
pt sshd "$USR" authenticate <"$D/rk" >"$D/out" 2>&1 || fail "another service held up: $(cat "$D/out")"
vcall "$P" Lock >/dev/null
rig_stop_daemon
[ -s "$STATE_DIR/$UUID/$USR.backoff" ] || fail "no back-off counters in the state directory"
grep -q "^uid:0:pam:login 5 " "$STATE_DIR/$UUID/$USR.backoff" || fail "counters: $(cat "$STATE_DIR/$UUID/$USR.backoff")"
rig_start_daemon --idle-lock 0 --policy-dir "$POLICY_DIR"
rc=0; pt login "$USR" authenticate <"$D/rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "exhausted maximum number of retries" "$D/out" ||
	fail "a restart reset the login prompt's back-off: $(cat "$D/out")"
pass "the back-off survives a restart (kept in STATE/UID/NAME.backoff); another service is another source"

# Only root names a source: anyone else naming one (a fresh counter per guess) still counts as itself.
as_u /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "$P" $VIFACE Unlock 'sha{ss}' "" "<$D/wrong" "source=pam:fresh" \
	>/dev/null 2>&1 && fail "a wrong key unlocked"
grep -q "^uid:$UUID 1 " "$STATE_DIR/$UUID/$USR.backoff" && ! grep -q "pam:fresh" "$STATE_DIR/$UUID/$USR.backoff" ||
	fail "a non-root caller's source: $(cat "$STATE_DIR/$UUID/$USR.backoff")"
pass "only root's callers name their source"
core_finish
