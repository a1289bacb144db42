#!/bin/bash
# pam-login.sh — pam_tokenseal.so under pam_wrapper + pamtester against the real daemon on a private bus:
# unlock at login, wrong secret, users without a vault, daemon absent or hung, session close locks.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
rig_start_bus
rig_start_daemon --idle-lock 0
D=$RIG_DIR

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

# --- daemon hung (SIGSTOP): the call times out after timeout= seconds; daemon gone: fails at once.
kill -STOP "$DAEMON_PID"
t0=$(date +%s%N); rc=0
pt login nobody authenticate <"$D/rk-nobody" >"$D/out" 2>&1 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$DAEMON_PID"
[ $rc -ne 0 ] || fail "authenticated with a hung daemon"
grep -q "Authentication service cannot retrieve authentication info" "$D/out" || fail "hung daemon: $(cat "$D/out")"
[ $ms -ge 1500 ] && [ $ms -lt 5000 ] || fail "timeout=2 with a hung daemon took $ms ms"
grep -q "Recovery key:" "$D/out" && fail "prompted although the daemon did not answer"
rig_stop_daemon
t0=$(date +%s%N); rc=0
pt login nobody authenticate <"$D/rk-nobody" >"$D/out" 2>&1 || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc -ne 0 ] && grep -q "Authentication service cannot retrieve authentication info" "$D/out" ||
	fail "daemon stopped: $(cat "$D/out")"
[ $ms -lt 2000 ] || fail "daemon stopped: took $ms ms"
pass "daemon hung: PAM_AUTHINFO_UNAVAIL within timeout=2 (< 5 s); daemon stopped: at once (${ms} ms)"

# --- session close locks the vault: without logind at once; with logind only after the last session.
rig_start_daemon --idle-lock 0
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
pam_service sessd "auth required $PAM_SO timeout=2" \
	"session required pam_env.so readenv=0 user_readenv=0 conffile=$D/env-d1.conf" \
	"session required $PAM_SO timeout=2"
# One pamtester run: pam_env puts XDG_SESSION_ID into the PAM environment at open_session only.
pt sessd daemon authenticate open_session close_session <"$D/rk-daemon" >"$D/out" 2>&1 ||
	fail "daemon login: $(cat "$D/out")"
grep -q "event=unlock vault=daemon owner=[0-9-]* uid=0 pid=[0-9]* protector=p1 result=ok" "$D/daemon.log" || fail "not unlocked"
[ "$(vprop "$DP" Locked)" = true ] || fail "closing the user's last logind session did not lock"
pass "with logind: another open session keeps the vault open; the last session's close locks it"

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
