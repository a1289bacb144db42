#!/bin/bash
# pkcs11-list.sh — `tokenseal pkcs11 list` against SoftHSM2: tokens, keys, flags, URIs that enroll, JSON, no token.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
T=$TOKENSEAL
D=$RIG_DIR
PY=/usr/bin/python3

softhsm_setup "$D/hsm"          # exports SOFTHSM2_CONF for the CLI (and the daemon below)
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin"

# --- offline, no daemon, no PIN: token facts and both keys with their URIs.
"$T" pkcs11 list >"$D/list" 2>"$D/err" </dev/null || fail "pkcs11 list exited $? — $(cat "$D/err")"
grep -q "^  token ts-test " "$D/list" || fail "token ts-test not listed: $(cat "$D/list")"
grep -q "manufacturer: *SoftHSM project" "$D/list" || fail "manufacturer missing"
grep -q "model: *SoftHSM v2" "$D/list" || fail "model missing"
grep -q "flags: .*login-required" "$D/list" || fail "login-required flag missing"
grep -q "public-key *rsa-2048 *id=01 label=\"ts-rsa\"" "$D/list" || fail "RSA key id 01 missing: $(cat "$D/list")"
grep -q "public-key *ec-p256 *id=02 label=\"ts-ec\"" "$D/list" || fail "EC key id 02 missing: $(cat "$D/list")"
serial=$(sed -n 's/^ *serial: *//p' "$D/list")
[ -n "$serial" ] || fail "serial missing"
URI1=$(grep -o 'pkcs11:[^ ]*id=%01$' "$D/list")
URI2=$(grep -o 'pkcs11:[^ ]*id=%02$' "$D/list")
for u in "$URI1" "$URI2"; do
	case $u in pkcs11:*"token=ts-test"*) ;; *) fail "URI without the token: '$u'" ;; esac
	case $u in *"serial=$serial"*) ;; *) fail "URI without the serial: '$u'" ;; esac
done
grep -q "$SOFTHSM_PIN" "$D/list" "$D/err" && fail "the PIN appears in the listing"
pass "pkcs11 list shows token ts-test, RSA id 01 and EC id 02 with token= serial= id= URIs"

# --- --json: same facts, machine-readable; --module PATH lists that module only.
"$T" --json pkcs11 list >"$D/json" </dev/null || fail "pkcs11 list --json"
"$PY" - "$D/json" "$URI1" "$URI2" <<'PY' || fail "JSON listing: $(cat "$D/json")"
import json, sys
d = json.load(open(sys.argv[1]))
toks = [t for m in d["modules"] for t in m["tokens"] if t["label"] == "ts-test"]
assert len(toks) == 1, toks
t = toks[0]
assert t["manufacturer"] == "SoftHSM project" and "login-required" in t["flags"], t
keys = {o["id"]: o for o in t["objects"] if o["class"] == "public-key"}
assert keys["01"]["type"] == "rsa-2048" and keys["01"]["label"] == "ts-rsa", keys
assert keys["02"]["type"] == "ec-p256" and keys["02"]["label"] == "ts-ec", keys
assert keys["01"]["uri"] == sys.argv[2] and keys["02"]["uri"] == sys.argv[3], keys
PY
"$T" pkcs11 list --json --module "$SOFTHSM_MODULE" >"$D/json1" </dev/null || fail "pkcs11 list --module"
"$PY" -c 'import json,sys; m=json.load(open(sys.argv[1]))["modules"]; assert len(m)==1 and m[0]["tokens"][0]["label"]=="ts-test", m' \
	"$D/json1" || fail "--module listing: $(cat "$D/json1")"
rc=0; "$T" pkcs11 list --module "$D/no-such-module.so" >/dev/null 2>"$D/err" || rc=$?
[ "$rc" = 1 ] && grep -q "no-such-module.so" "$D/err" || fail "bad --module: exit $rc, $(cat "$D/err")"
rc=0; "$T" pkcs11 frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown pkcs11 command exited $rc"
pass "pkcs11 list --json carries the same keys and URIs; --module PATH lists one module"

# --- a certificate without a public key object (PIV-style), and PIN flags from the token.
softhsm_import_ec_with_cert 04 ts-cert "$D/cert"
softhsm_set_user_pin_flags 00030000 || fail "setting token flags"   # CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY
"$T" pkcs11 list >"$D/list2" </dev/null || fail "pkcs11 list after import"
grep -q "certificate *ec-p256 *id=04 label=\"ts-cert\"" "$D/list2" || fail "certificate id 04: $(cat "$D/list2")"
grep -q 'pkcs11:[^ ]*token=ts-test;id=%04$' "$D/list2" || fail "certificate URI: $(cat "$D/list2")"
grep -q "flags: .*pin-count-low pin-final-try" "$D/list2" || fail "PIN flags: $(grep flags "$D/list2")"
softhsm_set_user_pin_flags 00040000 || fail "setting token flags"   # CKF_USER_PIN_LOCKED
"$T" pkcs11 list | grep -q "flags: .*pin-locked" || fail "pin-locked flag not shown"
pass "certificate-only keys are listed with their curve; PIN count low / final try / locked flags shown"

# --- the printed URI enrolls: a fresh token (flags above would refuse a login), through the daemon.
rm -rf "$D/hsm"
softhsm_setup "$D/hsm"
"$T" pkcs11 list >"$D/list" </dev/null || fail "pkcs11 list on the new token"
URI1=$(grep -o 'pkcs11:[^ ]*id=%01$' "$D/list")
[ -n "$URI1" ] || fail "no URI for id 01: $(cat "$D/list")"
rig_start_bus
rig_start_daemon --idle-lock 0
ts() { "$T" --vault demo "$@"; }
ts create >"$D/rk" 2>/dev/null || fail "create"
ts enroll pkcs11 --uri "$URI1" --pin-fd 3 3<"$D/pin" >"$D/out" 2>"$D/err" </dev/null ||
	fail "enroll with the listed URI '$URI1': $(cat "$D/err")"
P=$(sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$D/out")
[ -n "$P" ] || fail "no protector id: $(cat "$D/out")"
ts status | grep -A2 "^ *$P " | grep -q "key-id=01" || fail "status of $P: $(ts status)"
printf 'listed\n' | ts wrap --text -c app=l >"$D/blob" || fail "wrap"
ts lock >/dev/null || fail "lock"
ts unlock --protector "$P" --pin-fd 3 3<"$D/pin" >/dev/null 2>"$D/err" || fail "unlock with $P: $(cat "$D/err")"
[ "$(ts unwrap -c app=l <"$D/blob")" = listed ] || fail "unwrap after unlock"
pass "the URI printed for id 01 enrolls with 'tokenseal enroll pkcs11 --uri' and unlocks"

# --- no token: exit 7 with a message, in text and JSON; the listing still names the modules.
export SOFTHSM2_CONF
SOFTHSM2_CONF=$(softhsm_empty_conf "$D/empty")
rc=0; "$T" pkcs11 list >"$D/list" 2>"$D/err" </dev/null || rc=$?
[ "$rc" = 7 ] || fail "no token: expected exit 7, got $rc"
grep -q "no PKCS#11 token found" "$D/err" || fail "no-token message: $(cat "$D/err")"
grep -q "ts-test" "$D/list" && fail "ts-test listed from an empty token directory"
grep -q "^module softhsm2" "$D/list" || fail "module not named: $(cat "$D/list")"
rc=0; "$T" --json pkcs11 list >"$D/json" 2>/dev/null </dev/null || rc=$?
[ "$rc" = 7 ] || fail "no token --json: expected exit 7, got $rc"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert all(not m["tokens"] for m in d["modules"]), d' \
	"$D/json" || fail "no-token JSON: $(cat "$D/json")"
pass "no token found: message on stderr, exit 7 (text and JSON)"
