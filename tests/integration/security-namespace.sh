#!/bin/bash
# security-namespace.sh — the attack: bob names a vault after alice (or root) before she has one,
# then logs in as alice (PAM) with his own recovery key. Vault names are per owner, so his vault
# is his; pam_tokenseal takes only the vault of the account being authenticated.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
ALICE=tsal$$ BOB=tsbo$$
rig_useradd "$ALICE"
rig_useradd "$BOB"
AUID=$(id -u "$ALICE") BUID=$(id -u "$BOB")
rig_start_bus
rig_start_daemon --idle-lock 0
as_bob() { as_uid "$BUID" "$@"; }
as_bob_bq() { local BQ_PREFIX=(as_uid "$BUID"); "$@"; }
mkdir -m 777 "$D/bob"

# --- bob squats on alice's name, root's, and a name an administrator might share.
for name in "$ALICE" root shared; do
	as_bob "$TOKENSEAL" create "$name" >"$D/bob/$name.rk" 2>"$D/bob/$name.err" ||
		fail "bob cannot create a vault named $name: $(cat "$D/bob/$name.err")"
done

pam_service login "auth required $PAM_SO timeout=5"
# --- the login: bob's key for "alice" must not make him alice (she has no vault yet).
rc=0; pt login "$ALICE" authenticate <"$D/bob/$ALICE.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "bob's recovery key logged in as $ALICE: $(cat "$D/out")"
grep -q "User not known" "$D/out" || fail "alice without a vault: not PAM_USER_UNKNOWN: $(cat "$D/out")"
rc=0; pt login root authenticate <"$D/bob/root.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "bob's recovery key logged in as root: $(cat "$D/out")"
pass "bob's key does not log in as $ALICE or root"

BP=$(as_bob_bq vault_path "$ALICE") || fail "bob's own vault $ALICE"
[ "$BP" = "/org/tokenseal1/user/$BUID/vault/$ALICE" ] || fail "bob's vault $ALICE is at $BP, not in his namespace"
# He cannot make one for her, nor find hers by name.
expect_fail org.tokenseal1.Error.AccessDenied as_bob /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" \
	/org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "$ALICE" "owner=$AUID" ">/dev/null"
pass "bob's vaults named $ALICE, root and shared are in bob's namespace; owner= stays root's"

# --- vault= names a vault of the account being authenticated, never someone else's.
pam_service shared "auth required $PAM_SO vault=shared timeout=5"
rc=0; pt shared "$ALICE" authenticate <"$D/bob/shared.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "vault=shared took bob's vault for $ALICE: $(cat "$D/out")"
pam_service sharedby "auth required $PAM_SO vault=$BUID:shared timeout=5"
rc=0; pt sharedby "$ALICE" authenticate <"$D/bob/shared.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "Authentication failure" "$D/out" || fail "vault=UID:NAME accepted: $(cat "$D/out")"
# An administrator who means it says so: shared_owner= names the one owner allowed.
pam_service kiosk "auth required $PAM_SO vault=shared shared_owner=$BOB timeout=5"
pt kiosk "$ALICE" authenticate <"$D/bob/shared.rk" >"$D/out" 2>&1 || fail "shared_owner=$BOB: $(cat "$D/out")"
rc=0; pt kiosk "$ALICE" authenticate <"$D/bob/root.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "shared_owner: a wrong key passed"
pass "vault= is the user's own; a shared vault only with shared_owner="

# --- alice's own vault: her key works, bob's does not, and the two "alice" vaults are two vaults.
AP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' "$ALICE" "owner=$AUID" ">$D/alice.rk") ||
	fail "root creates alice's vault"
[ "$AP" = "/org/tokenseal1/user/$AUID/vault/$ALICE" ] || fail "alice's vault at $AP"
vcall "$AP" Lock >/dev/null || fail "lock"
rc=0; pt login "$ALICE" authenticate <"$D/bob/$ALICE.rk" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "Authentication failure" "$D/out" || fail "bob's key on alice's vault: $(cat "$D/out")"
[ "$(vprop "$AP" Locked)" = true ] || fail "alice's vault opened by bob's key"
pt login "$ALICE" authenticate <"$D/alice.rk" >"$D/out" 2>&1 || fail "alice's own key: $(cat "$D/out")"
[ "$(vprop "$AP" Locked)" = false ] || fail "alice's login did not unlock her vault"
bq call "${MGR_ARGS[@]}" ListVaults >"$D/list" || fail "ListVaults"
grep -q "\"$AUID:$ALICE\" \"/org/tokenseal1/user/$AUID/vault/$ALICE\"" "$D/list" &&
	grep -q "\"$BUID:$ALICE\" \"/org/tokenseal1/user/$BUID/vault/$ALICE\"" "$D/list" ||
	fail "root's ListVaults does not name both as UID:NAME: $(cat "$D/list")"
"$TOKENSEAL" --vault "$ALICE:$ALICE" status >"$D/st" || fail "root: status --vault $ALICE:$ALICE"
grep -q "state: *unlocked" "$D/st" || fail "OWNER:NAME did not reach alice's vault: $(cat "$D/st")"
pass "alice's key opens her vault, bob's does not; root addresses each as OWNER:NAME"

# --- "The protector that last unlocked the vault" (RotateRecoveryKey "") belongs to that vault, not to
# its name: alice unlocking her "twin" with p2 tells bob's rotation of his own "twin" (never unlocked) nothing.
as_bob "$TOKENSEAL" create twin >/dev/null 2>&1 || fail "bob: create twin"
as_uid "$AUID" "$TOKENSEAL" create twin >"$D/alice-twin.rk" 2>/dev/null || fail "alice: create twin"
AP=/org/tokenseal1/user/$AUID/vault/twin
fdcall "$AP" $VIFACE AddProtector 'sa{ss}hh' recovery "" "</dev/null" ">$D/alice-twin2.rk" >/dev/null || fail "AddProtector"
chmod 644 "$D"/alice-twin*.rk
vcall "$AP" Lock >/dev/null || fail "Lock"
as_uid "$AUID" "$TOKENSEAL" --vault twin unlock --protector p2 --pin-fd 3 3<"$D/alice-twin2.rk" >/dev/null ||
	fail "alice: unlock twin with p2"
out=$(as_bob /usr/bin/python3 "$FDCALL_PY" "$BUS_ADDRESS" "/org/tokenseal1/user/$BUID/vault/twin" $VIFACE \
	RotateRecoveryKey shh "" "</dev/null" ">/dev/null" 2>&1) && fail "bob rotated a key of a vault never unlocked: $out"
grep -q "no recovery protector '' in this vault" <<<"$out" || fail "bob's RotateRecoveryKey(\"\") answered: $out"
pass "RotateRecoveryKey(\"\") takes the last unlock of that very vault: alice's unlock of her vault of the same name tells bob nothing"

core_finish
