#!/bin/bash
# secrets-fido2.sh — tokenseal-secrets over a vault with a FIDO2 protector (the software key): the prompt's PIN goes
# through pinentry to the key, the user is told to touch it while the key waits, and the collection opens.
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/secrets_lib.bash"
command -v secret-tool >/dev/null || { echo "secret-tool missing"; exit 77; }
softfido_start a
printf 'q1w2e3\n' >"$RIG_DIR/fido2.pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$SOFTFIDO_a_DEV" --vault-id 00 --pin-file "$RIG_DIR/fido2.pin" || fail "set PIN"
rig_start_bus
rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_a_DEV" --fido2-timeout 5
T() { "$TOKENSEAL" --bus "$BUS_ADDRESS" --vault secrets "$@"; }
T create secrets >"$RIG_DIR/create.out" 2>&1 || { cat "$RIG_DIR/create.out"; fail "create"; }
T enroll fido2 --pin-fd 3 3<"$RIG_DIR/fido2.pin" >"$RIG_DIR/enroll.out" 2>&1 || { cat "$RIG_DIR/enroll.out"; fail "enroll fido2"; }
VP=$(vault_path secrets)

secrets_start_session_bus main
secrets_start
[ "$(st_store hunter2 --label=mail service imap user alice)" = "exit 0" ] || fail "store"
T lock >/dev/null || fail "lock"
for _ in $(seq 50); do [ "$(collection_locked)" = true ] && break; sleep 0.02; done
[ "$(collection_locked)" = true ] || fail "collection did not lock with the vault"

# The key's PIN typed into the (test) pinentry: the vault unlocks with the key, which is touched once the
# notice is up, as a person would (touched at once, the unlock may end before the notice's pinentry has
# read its first line, and it is closed unread).
tr -d '\n' <"$RIG_DIR/fido2.pin" >"$SECRETS_PIN_FILE"
: >"$SECRETS_PIN_LOG"
softfido_ctl a up timeout >/dev/null
st lookup service imap user alice >"$RIG_DIR/lookup.out" &
LOOKUP=$!
for _ in $(seq 80); do grep -qx MESSAGE "$SECRETS_PIN_LOG" && break; sleep 0.05; done
softfido_ctl a up approve >/dev/null
wait "$LOOKUP" || true
[ "$(cat "$RIG_DIR/lookup.out")" = "exit 0 out=hunter2" ] ||
	fail "lookup through the prompt: $(cat "$RIG_DIR/lookup.out"); $(tail -n 3 "$RIG_DIR/secrets.log")"
[ "$(vprop "$VP" Locked)" = false ] || fail "vault still locked"
grep -q "protector=p2 result=ok" "$RIG_DIR/daemon.log" || grep -q "event=unlock .*protector=p2" "$RIG_DIR/daemon.log" ||
	fail "the vault was not unlocked by the FIDO2 protector: $(grep 'event=unlock' "$RIG_DIR/daemon.log" | tail -n 2)"
grep -qx GETPIN "$SECRETS_PIN_LOG" || fail "no PIN asked"
grep -qx MESSAGE "$SECRETS_PIN_LOG" || fail "the user was not told to touch the key (TouchRequested not relayed)"
pass "FIDO2 vault: PIN through pinentry, touch notice shown while the key waited, collection open"

# A wrong PIN counts on the key and is asked again with the key's message; three wrong: dismissed. (Three wrong
# PINs in a row block the key until it is plugged in again, as CTAP2 says: the software key is power-cycled.)
T lock >/dev/null
for _ in $(seq 50); do [ "$(collection_locked)" = true ] && break; sleep 0.02; done
printf '000000' >"$SECRETS_PIN_FILE"
: >"$SECRETS_PIN_LOG"
[ "$(py unlock)" = "unlock: was_locked=True dismissed=True locked=True" ] || fail "a wrong PIN unlocked"
[ "$(grep -c GETPIN "$SECRETS_PIN_LOG")" = 3 ] || fail "a wrong PIN was not asked again ($(grep -c GETPIN "$SECRETS_PIN_LOG") asks)"
grep -qx SETERROR "$SECRETS_PIN_LOG" || fail "the retry did not say the PIN was wrong"
grep -q "the vault did not unlock" "$RIG_DIR/secrets.log" || fail "the wrong PIN was not reported"
softfido_ctl a power-cycle >/dev/null
tr -d '\n' <"$RIG_DIR/fido2.pin" >"$SECRETS_PIN_FILE"
[ "$(py unlock)" = "unlock: was_locked=True dismissed=False locked=False" ] || fail "the right PIN after wrong ones"
rm -f "$SECRETS_PIN_FILE"
pass "wrong FIDO2 PIN: asked again, then dismissed; the right one opens"
secrets_stop
