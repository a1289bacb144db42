#!/bin/bash
# pam-polkit.sh — operations on another user's vault: root-only without polkit; with a stand-in polkit
# authority, allowed exactly for the action it grants (org.tokenseal1.manage-other), asked about the caller's bus name.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
rig_start_bus
rig_start_daemon --idle-lock 0
D=$RIG_DIR

RP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' rootvault "" ">$D/rk-root") || fail "create"
NP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' nobody "owner=$OTHER_UID" ">$D/rk-n") ||
	fail "create nobody"

# --- no polkit on the bus: a non-owner is refused, root is not.
out=$(bq_other call org.tokenseal1 "$RP" $VIFACE Lock 2>&1) && fail "non-owner locked root's vault without polkit"
grep -q "org.freedesktop.DBus.Error.UnknownObject" <<<"$out" || fail "expected UnknownObject (as for no vault), got: $out"
[ "$(vprop "$RP" Locked)" = false ] || fail "vault locked anyway"
grep -q "polkit is not running" "$D/daemon.log" || fail "the root-only fallback is not explained in the log"
vcall "$NP" Lock >/dev/null || fail "root cannot lock another user's vault"
[ "$(vprop "$NP" Locked)" = true ] || fail "root's Lock did nothing"
unlock "$NP" recovery "$D/rk-n" >/dev/null || fail "root cannot unlock another user's vault"
pass "without polkit: a non-owner finds no vault (UnknownObject), root is allowed"

# --- a polkit authority that grants manage-other only.
standin_start polkit org.tokenseal1.manage-other "$D/polkit.log"
bq_other call org.tokenseal1 "$RP" $VIFACE Lock >/dev/null || fail "polkit-authorized Lock refused"
[ "$(vprop "$RP" Locked)" = true ] || fail "authorized Lock did not lock"
grep -q "^system-bus-name :1\.[0-9]* org.tokenseal1.manage-other [01]$" "$D/polkit.log" ||
	fail "polkit was not asked about the caller's bus name: $(cat "$D/polkit.log")"
grep -q "event=polkit-manage-other vault=rootvault owner=[0-9-]* uid=$OTHER_UID" "$D/daemon.log" || fail "authorization not logged"
unlock "$RP" recovery "$D/rk-root" >/dev/null || fail "unlock"
# Data keys are another action, which this authority does not grant.
out=$(as_other_bq wrap "$RP" "2 4 2" 0 2>&1) && fail "use-other granted although polkit said no"
grep -q "UnknownObject" <<<"$out" || fail "expected UnknownObject for Wrap, got: $out"
grep -q "org.tokenseal1.use-other" "$D/polkit.log" || fail "Wrap did not ask for use-other"
# The owner and root never need polkit.
n=$(wc -l <"$D/polkit.log")
as_other_bq vcall "$NP" Lock >/dev/null || fail "owner Lock"
vcall "$RP" Lock >/dev/null || fail "root Lock"
[ "$(wc -l <"$D/polkit.log")" = "$n" ] || fail "polkit asked about the owner or root"
daemon_alive
core_finish
pass "with polkit: manage-other granted to a non-owner, use-other refused; owner and root not asked"
