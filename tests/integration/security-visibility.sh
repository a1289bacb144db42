#!/bin/bash
# security-visibility.sh — another local user learns nothing of a vault: not its name, not its lock
# state, not when it unlocks. Vault signals go only to the owner's (and root's) subscribed
# connections; another user, subscribed or listening for broadcasts, gets none, and a vault's path
# answers them exactly as a path with no vault behind it. What a polkit-allowed user does to the
# vault still reaches the owner.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
USR=tsvi$$
rig_useradd "$USR"
UUID=$(id -u "$USR")
rig_start_bus
rig_start_daemon --idle-lock 0
mkdir -m 777 "$D/l"

# The other user listens two ways: subscribed, and with a plain match for broadcasts.
listen_start_as "$OTHER_UID" "$D/l/other-sub"
listen_start_as "$OTHER_UID" "$D/l/other-bcast" nosub
listen_start_as "$UUID" "$D/l/owner"
listen_start "$D/l/root"

P=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' diary "owner=$UUID" ">$D/rk") || fail "create"
chmod 644 "$D/rk"
as_u() { as_uid "$UUID" "$@"; }
as_u "$TOKENSEAL" --vault diary lock >/dev/null || fail "owner lock"
as_u "$TOKENSEAL" --vault diary unlock --pin-fd 3 3<"$D/rk" >/dev/null || fail "owner unlock"
sleep 0.5
for f in other-sub other-bcast; do
	[ ! -s "$D/l/$f" ] || fail "the other user received vault signals ($f): $(cat "$D/l/$f")"
done
grep -q "^VaultAdded /org/tokenseal1 diary $P$" "$D/l/owner" || fail "owner missed VaultAdded: $(cat "$D/l/owner")"
grep -q "^PropertiesChanged $P .*LockReason=request Locked=true" "$D/l/owner" || fail "owner missed the lock: $(cat "$D/l/owner")"
grep -q "^PropertiesChanged $P .*Locked=false" "$D/l/owner" || fail "owner missed the unlock"
grep -q "^PropertiesChanged $P .*Locked=false" "$D/l/root" || fail "root's subscriber missed the unlock"
pass "lock and unlock reach the owner's and root's subscribers only; nothing is broadcast"

# --- the vault's path answers another user as no vault does.
NOPATH=/org/tokenseal1/user/$UUID/vault/nosuch
same() { # what, then the two commands' outputs must be equal once the paths are the same
	local a b
	a=$(bq_other "$@" 2>&1 | sed "s|$P|PATH|g") || true
	b=$(bq_other "${@//$P/$NOPATH}" 2>&1 | sed "s|$NOPATH|PATH|g") || true
	[ "$a" = "$b" ] || fail "$1 tells the vault from no vault: '$a' vs '$b'"
	grep -q "UnknownObject" <<<"$a" || fail "$1: not UnknownObject: $a"
}
same introspect org.tokenseal1 "$P"
same get-property org.tokenseal1 "$P" $VIFACE Locked
same call org.tokenseal1 "$P" org.freedesktop.DBus.Properties GetAll s $VIFACE
same call org.tokenseal1 "$P" $VIFACE Lock
same call org.tokenseal1 "$P" $VIFACE RotateKey 'a{ss}' 0
same call org.tokenseal1 "$P" $VIFACE SetEscrow asu 0 0
same call org.tokenseal1 "$P" $VIFACE AgeRecipient
same call org.tokenseal1 "$P" $VIFACE AgeUnwrap uayay 1 0 0
[ "$(vprop "$P" Locked)" = false ] || fail "the other user's Lock took effect"
! bq_other tree org.tokenseal1 | grep -q diary || fail "introspection shows the vault"
pass "another user gets UnknownObject for the vault's methods, properties and introspection, as for no vault"

# --- a polkit-allowed user locks the vault: the owner hears of it, the other user's listener does not.
standin_start polkit org.tokenseal1.manage-other "$D/polkit.log"
bq_other call org.tokenseal1 "$P" $VIFACE Lock >/dev/null || fail "polkit-allowed Lock"
for _ in $(seq 50); do [ "$(grep -c "Locked=true" "$D/l/owner")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c "^PropertiesChanged $P .*Locked=true" "$D/l/owner")" = 2 ] || fail "the owner did not hear of the polkit-allowed Lock"
for f in other-sub other-bcast; do
	[ ! -s "$D/l/$f" ] || fail "the acting user received vault signals ($f): $(cat "$D/l/$f")"
done
pass "a change by a polkit-allowed user reaches the owner"

core_finish
