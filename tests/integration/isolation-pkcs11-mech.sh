#!/bin/bash
# isolation-pkcs11-mech.sh — no protector is accepted that cannot open the vault: an EC key on a token
# without CKM_ECDH1_DERIVE (a real SoftHSM2 token with that mechanism switched off by slots.mechanisms)
# is refused at enrollment, offline from its public key too, and `tokenseal pkcs11 list` marks it
# unusable; offline enrollment with the token absent, where nothing can be checked, is refused.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
CHECK="$TS_BUILD/tests/tools/pkcs11_check"
[ -x "$CHECK" ] || fail "build $CHECK first"
D=$RIG_DIR
T=$TOKENSEAL
softhsm_setup "$D/hsm"
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin"
softhsm_export_pub 01 "$D/rsa.pem"
softhsm_export_pub 02 "$D/ec.pem"
FULL=$SOFTHSM2_CONF
# The same token, as a token that offers no ECDH (as tpm2-pkcs11 1.9 does).
NOECDH=$D/hsm/noecdh.conf
# SoftHSM2 2.6.1 keeps the '-' on the first name of the list, so that one matches nothing: a placeholder.
{ cat "$FULL"; echo "slots.mechanisms = -CKM_VENDOR_DEFINED,CKM_ECDH1_DERIVE"; } >"$NOECDH"
EMPTY=$(softhsm_empty_conf "$D/empty")
SOFTHSM2_CONF=$NOECDH pkcs11-tool --module "$SOFTHSM_MODULE" -M 2>/dev/null | grep -q ECDH1-DERIVE &&
	fail "the token still offers ECDH1-DERIVE: the test would prove nothing"
EC_URI='pkcs11:token=ts-test;id=%02'
RSA_URI='pkcs11:token=ts-test;id=%01'

# The listing: the EC key is marked on the token without ECDH, and only there.
SOFTHSM2_CONF=$NOECDH "$T" pkcs11 list >"$D/list" </dev/null || fail "pkcs11 list"
grep -A2 'public-key *ec-p256 *id=02' "$D/list" | grep -q "unusable: the token offers no CKM_ECDH1_DERIVE" ||
	fail "EC key on a token without ECDH not marked: $(cat "$D/list")"
grep -A2 'public-key *rsa-2048 *id=01' "$D/list" | grep -q unusable && fail "RSA key marked: $(cat "$D/list")"
SOFTHSM2_CONF=$NOECDH "$T" --json pkcs11 list >"$D/json" </dev/null || fail "pkcs11 list --json"
/usr/bin/python3 - "$D/json" <<'PY' || fail "JSON: $(cat "$D/json")"
import json, sys
t = [t for m in json.load(open(sys.argv[1]))["modules"] for t in m["tokens"] if t["label"] == "ts-test"][0]
k = {o["id"]: o for o in t["objects"] if o["class"] == "public-key"}
assert k["02"]["usable"] is False and "CKM_ECDH1_DERIVE" in k["02"]["unusable"], k
assert k["01"]["usable"] is True, k
PY
SOFTHSM2_CONF=$FULL "$T" pkcs11 list >"$D/list-full" </dev/null || fail "pkcs11 list (full token)"
grep -q unusable "$D/list-full" && fail "a key marked unusable on a token with every mechanism: $(cat "$D/list-full")"
pass "pkcs11 list marks the EC key unusable on the token without CKM_ECDH1_DERIVE, and only there"

# The attack through the daemon: enroll the EC key offline, from its public key, no PIN.
export SOFTHSM2_CONF=$NOECDH
rig_start_bus
rig_start_daemon --idle-lock 0
ts() { "$T" --vault demo "$@"; }
ts create >"$D/rk" 2>/dev/null || fail "create"
cp "$STATE_DIR/0/demo.vault" "$D/before"
rc=0; ts enroll pkcs11 --uri "$EC_URI" --public-key "$D/ec.pem" </dev/null >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "an EC key was enrolled offline on a token without CKM_ECDH1_DERIVE: $(cat "$D/out")"
grep -q "does not offer CKM_ECDH1_DERIVE" "$D/out" || fail "refusal does not name the mechanism: $(cat "$D/out")"
grep -q "event=enroll vault=demo .*result=NotSupported" "$D/daemon.log" || fail "not NotSupported: $(cat "$D/out")"
rc=0; ts enroll pkcs11 --uri "$EC_URI" --pin-fd 3 3<"$D/pin" </dev/null >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "CKM_ECDH1_DERIVE" "$D/out" || fail "EC enrolled with the token: $(cat "$D/out")"
cmp -s "$STATE_DIR/0/demo.vault" "$D/before" || fail "a refused enrollment changed the vault file"
[ "$(ts status | grep -c '^ *p[0-9]* ')" = 1 ] || fail "a refused enrollment added a protector: $(ts status)"
# Control: the check refuses only what cannot work; RSA-OAEP is there.
ts enroll pkcs11 --uri "$RSA_URI" --public-key "$D/rsa.pem" --oaep-hash sha1 </dev/null >"$D/out" 2>&1 ||
	fail "RSA offline enrollment refused: $(cat "$D/out")"
ts lock >/dev/null
ts unlock --protector p2 --pin-fd 3 3<"$D/pin" </dev/null >"$D/out" 2>&1 || fail "RSA unlock: $(cat "$D/out")"
pass "EC key on a token without CKM_ECDH1_DERIVE refused at enrollment (offline and with the PIN): NotSupported"

# Offline with the token absent: nothing to check, so refused (the backend as the helper runs it).
out=$(SOFTHSM2_CONF=$EMPTY "$CHECK" enroll --uri "$EC_URI" --public-key "$D/ec.pem" --params-out "$D/x") &&
	fail "offline enrollment accepted with the token absent: $out"
grep -q "^error TokenAbsent: enrolling from a public key checks" <<<"$out" || fail "expected TokenAbsent: $out"
out=$(SOFTHSM2_CONF=$FULL "$CHECK" enroll --uri "$EC_URI" --public-key "$D/ec.pem" --params-out "$D/ec-ok") ||
	fail "offline EC enrollment with the token present (ECDH offered): $out"
pass "offline enrollment needs the token present (no PIN): absent is TokenAbsent, present with ECDH works"
