#!/bin/bash
# core-introspection.sh — contrib/org.tokenseal1.xml is exactly what the daemon serves; busctl sees the Vault interface.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
rig_start_bus
rig_start_daemon --idle-lock 0

SHIPPED="$TS_SRC/contrib/org.tokenseal1.xml"
"$TOKENSEALED" --print-introspection >"$RIG_DIR/printed.xml" || fail "--print-introspection"
diff -u "$SHIPPED" "$RIG_DIR/printed.xml" || fail "contrib/org.tokenseal1.xml differs from --print-introspection (regenerate it)"
pass "shipped XML = --print-introspection"

# The interfaces as the running daemon serves them over the bus, cut out of its Introspect replies.
P=$(create_vault intro "$RIG_DIR/rk") || fail "CreateVault"
iface_block() { # xml-file interface
	awk -v want="<interface name=\"$2\">" 'index($0, want) { on = 1 } on { print } on && /<\/interface>/ { exit }' "$1"
}
bq introspect --xml-interface org.tokenseal1 /org/tokenseal1 >"$RIG_DIR/mgr.xml" || fail "introspect manager"
bq introspect --xml-interface org.tokenseal1 "$P" >"$RIG_DIR/vault.xml" || fail "introspect vault"
{ iface_block "$RIG_DIR/mgr.xml" org.tokenseal1.Manager; iface_block "$RIG_DIR/vault.xml" org.tokenseal1.Vault; } >"$RIG_DIR/served"
{ iface_block "$SHIPPED" org.tokenseal1.Manager; iface_block "$SHIPPED" org.tokenseal1.Vault; } >"$RIG_DIR/shipped"
[ -s "$RIG_DIR/served" ] && grep -q 'method name="Unwrap"' "$RIG_DIR/served" || fail "served XML lacks the interfaces"
diff -u "$RIG_DIR/shipped" "$RIG_DIR/served" || fail "shipped XML differs from what the daemon serves"
pass "shipped XML = served XML"

# busctl's own view of a vault object.
out=$(bq introspect org.tokenseal1 "$P") || fail "busctl introspect"
for m in .Unlock .Lock .Wrap .Unwrap .Rewrap .GenerateDataKey .UnwrapBatch .RewrapBatch .RotateKey \
	.AddProtector .RevokeProtector .Protectors .KeyVersion .Locked .LockReason; do
	grep -q "^$m " <<<"$out" || fail "busctl introspect misses $m"
done
grep -q '^org.tokenseal1.Vault *interface' <<<"$out" || fail "no Vault interface"
bq tree org.tokenseal1 | grep -q "/org/tokenseal1/user/0/vault/intro" || fail "busctl tree misses the vault"
pass "busctl introspect shows the Vault interface"

# Every method and property of docs/DBUS-API.md is in the XML, and nothing else.
doc_methods=$(sed -n 's/^| \([A-Z][A-Za-z]*\) | .*/\1/p' "$TS_SRC/docs/DBUS-API.md" | grep -v '^method$' | sort)
xml_methods=$(sed -n 's/.*<method name="\([A-Za-z]*\)">.*/\1/p' "$SHIPPED" | sort)
[ "$doc_methods" = "$xml_methods" ] || fail "methods in docs/DBUS-API.md and the XML differ: $(diff <(echo "$doc_methods") <(echo "$xml_methods"))"
pass "docs/DBUS-API.md and the XML list the same methods"

core_finish
