#!/bin/bash
# security-pam-user.sh — a login is a person. Alice's vault has a TPM protector with a PIN and one
# without ("opens at boot"). Someone at the machine runs `su alice` and types nothing: the TPM
# without PIN would open the vault for anyone, so pam_tokenseal never takes it as a login. Another user
# at the prompt (su by nobody) or a login from another host gets the recovery key only.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
ALICE=tspu$$
rig_useradd "$ALICE"
AUID=$(id -u "$ALICE")
swtpm_start "$D/tpm"
rig_start_bus
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock"
T() { "$TOKENSEAL" --vault "$AUID:$ALICE" "$@"; }
P=/org/tokenseal1/user/$AUID/vault/$ALICE
fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "$ALICE" "owner=$AUID" ">$D/rk" >/dev/null ||
	fail "create"
printf '4711\n' >"$D/pin"
T enroll tpm2 --pin --pin-fd 3 3<"$D/pin" </dev/null >"$D/e1" 2>&1 || fail "enroll tpm2 --pin: $(cat "$D/e1")"
T enroll tpm2 </dev/null >"$D/e2" 2>&1 || fail "enroll tpm2: $(cat "$D/e2")"
T lock >/dev/null

# --- the attack: nothing typed.
pam_service su "auth sufficient $PAM_SO timeout=5" "auth requisite pam_deny.so"
rc=0; pt su "$ALICE" authenticate </dev/null >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "su $ALICE with nothing typed logged in: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = true ] || fail "the PIN-less TPM opened the vault at the login prompt"
grep -q "PIN or recovery key: \|TPM PIN: " "$D/out" || fail "no prompt: $(cat "$D/out")"
# Named, it is refused too: a protector that proves nobody is no login.
pam_service named "auth required $PAM_SO protector=p3 timeout=5"
rc=0; pt named "$ALICE" authenticate </dev/null >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ "$(vprop "$P" Locked)" = true ] || fail "protector=p3 (TPM without PIN) logged in: $(cat "$D/out")"
# Enter alone at the prompt is nothing typed, not "no secret" (which the PIN-less TPM would take).
rc=0; printf '\n' | pt su "$ALICE" authenticate >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ "$(vprop "$P" Locked)" = true ] || fail "Enter alone logged in: $(cat "$D/out")"
# A type that includes the PIN-less TPM: any word typed must not open it.
pam_service bytype "auth required $PAM_SO protector=tpm2 timeout=5"
rc=0; printf 'wrong-guess\n' | pt bytype "$ALICE" authenticate >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ "$(vprop "$P" Locked)" = true ] || fail "protector=tpm2 with a wrong PIN logged in: $(cat "$D/out")"
grep -q "event=unlock .*protector=p3 result=ok" "$D/daemon.log" && fail "the PIN-less TPM answered a login"
# The daemon holds to it even if a client does not filter: need_user=yes over the bus.
expect_fail org.tokenseal1.Error.PinRequired fdcall "$P" $VIFACE Unlock 'sha{ss}' "" "</dev/null" "need_user=yes"
expect_fail org.tokenseal1.Error.PinInvalid fdcall "$P" $VIFACE Unlock 'sha{ss}' tpm2 "<$D/rk" "need_user=yes"
[ "$(vprop "$P" Locked)" = true ] || fail "need_user=yes: the PIN-less TPM opened the vault"
pass "a TPM without PIN never counts as a login: not named, not by type, not for Enter alone"

# --- the PIN does.
pt su "$ALICE" authenticate <"$D/pin" >"$D/out" 2>&1 || fail "the TPM PIN: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "not unlocked by the TPM PIN"
grep -q "event=unlock vault=$ALICE .*protector=p2 result=ok" "$D/daemon.log" || fail "not p2 that opened it"
# The CLI, run by the owner at the machine, still uses it (that is what it is for).
T lock >/dev/null
T unlock </dev/null >"$D/out" 2>&1 || fail "CLI unlock with the TPM: $(cat "$D/out")"
pass "the TPM's PIN logs in; the CLI still opens the vault with the PIN-less TPM"

# --- another user at the prompt (`su alice` run by nobody: PAM_RUSER; a login from another host:
# PAM_RHOST) gets the recovery key only, whose wrong guesses the daemon backs off. Before, every PIN
# typed at `su alice` by anyone went to alice's TPM and counted toward its dictionary-attack lockout,
# which holds every user's TPM PIN (and a security key's PIN retries, once spent, leave the key to be
# reset; its touch, to whoever is near it).
T lock >/dev/null
n0=$(grep -c "event=unlock vault=$ALICE .*protector=p2 " "$D/daemon.log" || true)
# A wrong recovery key (the right one, its first group changed) and then a wrong PIN.
sed 's/^...../ZZZZZ/' "$D/rk" >"$D/wrongrk"
rc=0; pt -I ruser=nobody su "$ALICE" authenticate <"$D/wrongrk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "su $ALICE by nobody with a wrong recovery key logged in: $(cat "$D/out")"
rc=0; printf 'wrong-pin\n' | pt -I ruser=nobody su "$ALICE" authenticate >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "su $ALICE by nobody with a wrong PIN logged in: $(cat "$D/out")"
grep -q "Recovery key: " "$D/out" || fail "su by nobody: not asked for the recovery key: $(cat "$D/out")"
rc=0; pt -I ruser=nobody su "$ALICE" authenticate <"$D/pin" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "su $ALICE by nobody with alice's TPM PIN logged in: $(cat "$D/out")"
rc=0; pt -I rhost=192.0.2.7 su "$ALICE" authenticate <"$D/pin" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a login of $ALICE from another host with the TPM PIN logged in: $(cat "$D/out")"
grep -q "That is not a recovery key" "$D/out" || fail "a PIN typed from another host was not refused as no recovery key: $(cat "$D/out")"
rc=0; pt -I rhost=192.0.2.7 su "$ALICE" authenticate <"$D/wrongrk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a wrong recovery key from another host logged in: $(cat "$D/out")"
n1=$(grep -c "event=unlock vault=$ALICE .*protector=p2 " "$D/daemon.log" || true)
[ "$n1" = "$n0" ] || fail "PINs typed by another user or from another host reached alice's TPM ($((n1 - n0)) tries)"
[ "$(vprop "$P" Locked)" = true ] || fail "another user's su unlocked the vault"
# Each requester's wrong keys on a counter of its own: nobody's, the remote ones'; none on the prompt's own
# (uid:0:pam:su, which the account's own logins there use), so neither holds the owner back.
bo="$STATE_DIR/$AUID/$ALICE.backoff"
grep -aq "^uid:0:pam:uid:65534:su " "$bo" && grep -aq "^uid:0:pam:remote:su " "$bo" && ! grep -aq "^uid:0:pam:su " "$bo" ||
	fail "wrong guesses not counted per requester (back-off sources): $(cat "$bo" 2>&1)"
pt -I ruser=nobody su "$ALICE" authenticate <"$D/rk" >"$D/out" 2>&1 || fail "su by nobody with the recovery key: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "not unlocked by the recovery key"
T lock >/dev/null
# foreign=any: the administrator lets another user's PIN through.
pam_service suany "auth sufficient $PAM_SO timeout=5 foreign=any" "auth requisite pam_deny.so"
pt -I ruser=nobody suany "$ALICE" authenticate <"$D/pin" >"$D/out" 2>&1 || fail "foreign=any: the TPM PIN: $(cat "$D/out")"
[ "$(vprop "$P" Locked)" = false ] || fail "foreign=any: not unlocked by the TPM PIN"
pass "another user's su, or a login from another host, gets the recovery key only (no PIN reaches the TPM); foreign=any lets PINs through"

core_finish
