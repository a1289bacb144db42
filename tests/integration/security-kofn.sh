#!/bin/bash
# security-kofn.sh — one share of a 2-of-3 vault is not a login. Unlock says how many shares are
# still needed; pam_tokenseal (at login and as a screen locker) asks for the next protector until the
# vault is open, and fails otherwise; the CLI says "share accepted". Shares given expire
# ([lock] share-timeout) and are forgotten when the machine suspends.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
USR=tskn$$
rig_useradd "$USR"
UUID=$(id -u "$USR")
policy_conf 50-shares.conf '[lock]\nshare-timeout = 3s\n'
rig_start_bus
rig_start_daemon --idle-lock 0 --policy-dir "$POLICY_DIR"
T() { "$TOKENSEAL" --vault "$USR:v" "$@"; }
P=/org/tokenseal1/user/$UUID/vault/v

# --- tokenseal create --threshold: a 2-of-3 vault of recovery keys.
"$TOKENSEAL" create v --owner "$UUID" --threshold 2 >"$D/k1" 2>"$D/create.err" || fail "create --threshold 2: $(cat "$D/create.err")"
for k in 2 3; do T enroll recovery >"$D/e$k" 2>&1 || fail "enroll recovery $k: $(cat "$D/e$k")"; done
for k in 2 3; do grep -Eo '([0-9A-Z]{5}-){7}[0-9A-Z]{5}' "$D/e$k" | head -n1 >"$D/k$k"; [ -s "$D/k$k" ] || fail "key $k"; done
T lock >/dev/null
[ "$(vprop "$P" SharesNeeded)" = 2 ] || fail "create --threshold 2: SharesNeeded $(vprop "$P" SharesNeeded)"
pass "tokenseal create --threshold 2 makes a 2-of-n vault"

# --- the attack: one share at the login prompt.
pam_service login "auth required $PAM_SO vault=v timeout=5"
rc=0; pt login "$USR" authenticate <"$D/k1" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "one share of a 2-of-3 vault logged in: $(cat "$D/out")"
grep -q "Share accepted (protector p1); 1 more needed" "$D/out" || fail "PAM did not ask for the next share: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = true ] || fail "vault unlocked by one share"
# Two shares in one conversation: the login succeeds, and the vault is open.
T lock >/dev/null
cat "$D/k1" "$D/k3" | pt login "$USR" authenticate >"$D/out" 2>&1 || fail "two shares: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "two shares did not unlock"
# As a screen locker (the vault already open): one share still does not authenticate.
rc=0; pt login "$USR" authenticate <"$D/k2" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "one share authenticated the screen locker: $(cat "$D/out")"
cat "$D/k2" "$D/k3" | pt login "$USR" authenticate >"$D/out" 2>&1 || fail "screen locker, two shares: $(cat "$D/out")"
pass "PAM: one share fails (login and screen locker), two succeed"

# --- the CLI: one share is "share accepted", not "unlocked" (exit 3, as for a locked vault).
T lock >/dev/null
rc=0; T unlock --pin-fd 3 3<"$D/k2" >"$D/out" 2>&1 || rc=$?
[ $rc -eq 3 ] && grep -q "Share accepted; vault '$USR:v' needs 1 more to unlock" "$D/out" ||
	fail "CLI after one share: (rc $rc) $(cat "$D/out")"
grep -q "unlocked" "$D/out" && fail "CLI says unlocked after one share"
# Unlock's own answer: the protector taken and the shares still needed.
out=$(fdcall "$P" $VIFACE Unlock 'sha{ss}' "" "<$D/k3" "") || fail "Unlock"
[ "$out" = "$(printf 'p3\n0')" ] || fail "Unlock answered: $out"
pass "the CLI says share accepted, N more needed; Unlock returns (protector, shares needed)"

# --- a revoke that would go below the threshold names it.
rc=0; T revoke p2 --record-only >"$D/out" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "revoke p2 (3 -> 2 of 2-of-n): $(cat "$D/out")"
rc=0; T revoke p3 --record-only >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "opens with 2 of its protectors" "$D/out" ||
	fail "revoke below the threshold: (rc $rc) $(cat "$D/out")"
grep -q "last protector" "$D/out" && fail "the refusal speaks of the last protector: $(cat "$D/out")"
T enroll recovery >"$D/e4" 2>&1 || fail "enroll again"
pass "a revoke below the threshold is refused naming the threshold"

# --- shares expire, and go when the machine suspends.
T lock >/dev/null
T unlock --pin-fd 3 3<"$D/k1" >/dev/null 2>&1 || true
[ "$(vprop "$P" SharesNeeded)" = 1 ] || fail "share not kept: $(vprop "$P" SharesNeeded)"
sleep 4
[ "$(vprop "$P" SharesNeeded)" = 2 ] || fail "share still kept after [lock] share-timeout: $(vprop "$P" SharesNeeded)"
grep -q "vault=v: shares given so far forgotten (share-timeout)" "$D/daemon.log" || fail "expiry not logged"
standin_start logind
T unlock --pin-fd 3 3<"$D/k1" >/dev/null 2>&1 || true
[ "$(vprop "$P" SharesNeeded)" = 1 ] || fail "share not kept (2)"
logind_ctl EmitSleep b true >/dev/null
for _ in $(seq 50); do [ "$(vprop "$P" SharesNeeded)" = 2 ] && break; sleep 0.1; done
[ "$(vprop "$P" SharesNeeded)" = 2 ] || fail "a share survived suspend"
pass "a share given is forgotten after [lock] share-timeout and on suspend"

# --- guessing one recovery key while holding another: that share does not start the count again.
printf 'AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG-HHHHH\n' >"$D/wrong"
for _ in 1 2; do T unlock --protector p3 --pin-fd 3 3<"$D/wrong" >/dev/null 2>&1 && fail "a wrong key was taken"; done
grep -q "^uid:0 2 " "$STATE_DIR/$UUID/v.backoff" || fail "2 wrong keys not counted: $(cat "$STATE_DIR/$UUID/v.backoff")"
T unlock --protector p1 --pin-fd 3 3<"$D/k1" >/dev/null 2>&1 || true
[ "$(vprop "$P" SharesNeeded)" = 1 ] || fail "the share of p1 was not kept"
sleep 0.5   # a change is saved just after the reply
grep -q "^uid:0 2 " "$STATE_DIR/$UUID/v.backoff" ||
	fail "another recovery key's share reset the count of guesses at p3: $(cat "$STATE_DIR/$UUID/v.backoff")"
pass "one recovery key's share leaves the count of guesses at another as it was"

# --- the token that gave a share goes away: its share goes too (a 2-of-2 of a key and a recovery key).
softfido_start a
printf 'k3y-pin\n' >"$D/pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$D/pin" || fail "set PIN"
rig_stop_daemon
policy_conf 50-shares.conf '[lock]\nshare-timeout = 60s\n'   # not what forgets it here
rig_start_daemon --idle-lock 0 --policy-dir "$POLICY_DIR" --test-devices --fido2-timeout 3 --fido2-device "$SOFTFIDO_a_DEV"
"$TOKENSEAL" create w --threshold 2 >"$D/w-rk" 2>/dev/null || fail "create w"
"$TOKENSEAL" --vault w enroll fido2 --pin-fd 3 3<"$D/pin" >"$D/e" 2>&1 || fail "enroll fido2: $(cat "$D/e")"
"$TOKENSEAL" --vault w lock >/dev/null
W=/org/tokenseal1/user/0/vault/w
# The recovery keys' wait holds back recovery keys only (a security key counts its own PIN), and the
# key's share leaves that count as it was.
rig_stop_daemon
printf 'tokenseal-backoff v1\nuid:0 9 %s\n' "$(($(date +%s) + 120))000000" >"$STATE_DIR/0/w.backoff"
rig_start_daemon --idle-lock 0 --policy-dir "$POLICY_DIR" --test-devices --fido2-timeout 3 --fido2-device "$SOFTFIDO_a_DEV"
o=$("$TOKENSEAL" --vault w unlock --protector p1 --pin-fd 3 3<"$D/w-rk" 2>&1) && fail "a recovery key went through the wait"
grep -q "retry in" <<<"$o" || fail "a recovery key during the wait: $o"
o=$("$TOKENSEAL" --vault w unlock --protector p2 --pin-fd 3 3<"$D/pin" 2>&1) || true
[ "$(vprop "$W" SharesNeeded)" = 1 ] || fail "the key's share was not kept: $o"
sleep 0.5   # a change is saved just after the reply
grep -q "^uid:0 9 " "$STATE_DIR/0/w.backoff" ||
	fail "the security key's share changed the recovery keys' back-off: $(cat "$STATE_DIR/0/w.backoff")"
pass "the recovery keys' wait does not hold back a security key, whose share leaves that count as it was"
softfido_stop a
for _ in $(seq 40); do [ "$(vprop "$W" SharesNeeded)" = 2 ] && break; sleep 0.1; done
[ "$(vprop "$W" SharesNeeded)" = 2 ] || fail "the key's share outlived the key"
grep -q "vault=w: shares given so far forgotten (token-removed)" "$D/daemon.log" || fail "not forgotten for the removal"
"$TOKENSEAL" --vault w unlock --pin-fd 3 3<"$D/w-rk" >/dev/null 2>&1 || true
[ "$(vprop "$W" Locked)" = true ] || fail "the recovery key alone opened a 2-of-2 vault after the key went away"
pass "a share given with a security key is forgotten when the key is unplugged"

core_finish
