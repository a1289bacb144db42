#!/bin/bash
# pkcs11-protector.sh — the pkcs11 backend through p11-kit against a private SoftHSM2 token (RSA-OAEP and ECDH P-256).
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
CHECK="$TS_BUILD/tests/tools/pkcs11_check"
[ -x "$CHECK" ] || fail "build $CHECK first"

softhsm_setup "$RIG_DIR/hsm"
P=$RIG_DIR
printf '%s\n' "$SOFTHSM_PIN" >"$P/pin"
printf '000000\n' >"$P/badpin"
RSA_URI='pkcs11:token=ts-test;id=%01'
EC_URI='pkcs11:token=ts-test;id=%02'

kek_of() { grep '^kek ' <<<"$1" || true; }

# p11-kit's registry must hand the product SoftHSM2 (Debian registers it system-wide).
p11-kit list-modules 2>/dev/null | grep -q 'token: ts-test' || fail "p11-kit does not list the SoftHSM2 token"

# --- RSA: enroll (SHA-256 tried, SoftHSM2 turns it down, SHA-1 kept), unlock ---
out=$("$CHECK" enroll --uri "$RSA_URI" --pin-file "$P/pin" --params-out "$P/rsa") || fail "RSA enroll: $out"
grep -q '^fact algorithm=rsa2048-oaep-sha1$' <<<"$out" || fail "RSA: expected the SHA-1 fallback: $out"
grep -q '^fact token=ts-test$' <<<"$out" || fail "RSA: token label not recorded: $out"
grep -q '^fact uri=pkcs11:.*serial=' <<<"$out" || fail "RSA: URI not bound to the token serial: $out"
grep -q '^fact key-id=01$' <<<"$out" || fail "RSA: key id not recorded: $out"
grep -q '^needs-secret 1$' <<<"$out" || fail "RSA: needs_secret must be 1: $out"
k_rsa=$(kek_of "$out")
u=$("$CHECK" unlock --params-in "$P/rsa" --pin-file "$P/pin") || fail "RSA unlock: $u"
[ "$u" = "$k_rsa" ] || fail "RSA: unlock gave another KEK ($u vs $k_rsa)"
# A second enrollment of the same key gets a fresh random KEK.
out=$("$CHECK" enroll --uri "$RSA_URI" --pin-file "$P/pin" --params-out "$P/rsa2") || fail "RSA enroll 2: $out"
[ "$(kek_of "$out")" != "$k_rsa" ] || fail "RSA: two enrollments share a KEK"
pass "RSA-2048 enroll and unlock (OAEP SHA-1 chosen by a round trip)"

# Asking for SHA-256 explicitly is honoured, and refused by SoftHSM2 with a clear error.
out=$("$CHECK" enroll --uri "$RSA_URI" --pin-file "$P/pin" --oaep-hash sha256 --params-out "$P/x") && fail "SHA-256 enroll passed on SoftHSM2"
grep -q '^error NotSupported: .*CKM_RSA_PKCS_OAEP.*SHA-256' <<<"$out" || fail "expected NotSupported naming the mechanism: $out"
[ ! -e "$P/x" ] || fail "a protector that cannot unlock was written"
pass "explicit oaep-hash=sha256 is refused at enroll (not stored)"

# --- EC P-256: enroll (ECDH with an ephemeral key), unlock ---
out=$("$CHECK" enroll --uri "$EC_URI" --pin-file "$P/pin" --params-out "$P/ec") || fail "EC enroll: $out"
grep -q '^fact algorithm=ec-p256-ecdh$' <<<"$out" || fail "EC: algorithm: $out"
k_ec=$(kek_of "$out")
u=$("$CHECK" unlock --params-in "$P/ec" --pin-file "$P/pin") || fail "EC unlock: $u"
[ "$u" = "$k_ec" ] || fail "EC: unlock gave another KEK"
[ "$k_ec" != "$k_rsa" ] || fail "EC and RSA share a KEK"
out=$("$CHECK" enroll --uri "$EC_URI" --pin-file "$P/pin" --params-out "$P/ec2") || fail "EC enroll 2: $out"
[ "$(kek_of "$out")" != "$k_ec" ] || fail "EC: a second enrollment reused the ephemeral key"
pass "EC P-256 enroll and unlock (ECDH + KDF)"

# Selecting the key by label: the stored URI is pinned to the key's id.
out=$("$CHECK" enroll --uri 'pkcs11:token=ts-test;object=ts-ec' --pin-file "$P/pin" --params-out "$P/eclabel") || fail "enroll by label: $out"
grep -q '^fact uri=pkcs11:.*id=%02' <<<"$out" || fail "URI not completed with the id: $out"
u=$("$CHECK" unlock --params-in "$P/eclabel" --pin-file "$P/pin") || fail "unlock by label: $u"
[ "$u" = "$(kek_of "$out")" ] || fail "label-selected protector gave another KEK"
pass "key selected by object label"

# A key with only a certificate beside it (no public key object): the public key comes from the certificate.
softhsm_import_ec_with_cert 05 ts-cert "$P/certwork"
softhsm_p11tool --list-objects --type pubkey 2>/dev/null | grep -q 'ID: *05' && fail "test setup: id 05 has a public key object"
out=$("$CHECK" enroll --uri 'pkcs11:token=ts-test;object=ts-cert' --pin-file "$P/pin" --params-out "$P/cert") || fail "enroll from a certificate: $out"
grep -q '^fact key-id=05$' <<<"$out" || fail "certificate: key id: $out"
u=$("$CHECK" unlock --params-in "$P/cert" --pin-file "$P/pin") || fail "unlock of a certificate-enrolled key: $u"
[ "$u" = "$(kek_of "$out")" ] || fail "certificate: KEK differs"
# Known answer: with the private key known (it was imported), recompute the
# KEK outside tokenseal — ECDH by openssl, the KDF of docs/PKCS11.md by
# Python's BLAKE2b — and compare with what the token-side unlock gave.
want=$(/usr/bin/python3 - "$P/cert" "$P/certwork" <<'PY'
import hashlib, subprocess, sys
from fido2 import cbor
rec = cbor.decode(open(sys.argv[1], "rb").read())
epk, tpk, w = rec["epk"], rec["tpk"], sys.argv[2]
spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
open(w + "/epk.der", "wb").write(spki + epk)
shared = subprocess.check_output(["openssl", "pkeyutl", "-derive", "-inkey", w + "/key.pem",
                                  "-peerkey", w + "/epk.der", "-peerform", "DER"])
assert len(shared) == 32
kek = hashlib.blake2b(shared + epk + tpk, key=b"tokenseal-pkcs11-ecdh-v1", digest_size=32).digest()
print("kek", hashlib.blake2b(kek, digest_size=16).hexdigest())
PY
) || fail "recomputing the ECDH KEK"
[ "$want" = "$u" ] || fail "ECDH KEK differs from the documented KDF ($want vs $u)"
pass "public key read from a certificate on the token; KEK matches the documented KDF"

# --- PIN handling ---
out=$("$CHECK" unlock --params-in "$P/rsa" --pin-file "$P/badpin") && fail "wrong PIN accepted"
grep -q "^error PinInvalid: PIN incorrect.*'ts-test'" <<<"$out" || fail "expected PinInvalid naming the token: $out"
out=$("$CHECK" unlock --params-in "$P/ec" --pin-file "$P/badpin") && fail "wrong PIN accepted (EC)"
grep -q '^error PinInvalid' <<<"$out" || fail "expected PinInvalid (EC): $out"
u=$("$CHECK" unlock --params-in "$P/ec" --pin-file "$P/pin") || fail "right PIN after wrong ones: $u"
[ "$u" = "$k_ec" ] || fail "KEK changed after wrong PINs"
out=$("$CHECK" unlock --params-in "$P/rsa") && fail "unlocked without a PIN"
grep -q '^error PinRequired' <<<"$out" || fail "expected PinRequired: $out"
out=$("$CHECK" enroll --uri "$RSA_URI" --params-out "$P/x") && fail "enrolled from the token without a PIN"
grep -q '^error PinRequired' <<<"$out" || fail "expected PinRequired at enroll: $out"
pass "wrong PIN, missing PIN"

# SoftHSM2 2.6.1 has no retry counter: 12 more wrong PINs, and the right one still works.
for _ in $(seq 12); do "$CHECK" unlock --params-in "$P/rsa" --pin-file "$P/badpin" >/dev/null && fail "wrong PIN accepted"; done
u=$("$CHECK" unlock --params-in "$P/rsa" --pin-file "$P/pin") || fail "SoftHSM2 locked after all? $u"
# A token whose flags say "user PIN locked" is refused before any login attempt.
softhsm_set_user_pin_flags 40000 || fail "cannot set the token's PIN-locked flag"
out=$("$CHECK" unlock --params-in "$P/rsa" --pin-file "$P/pin") && fail "locked token unlocked"
grep -q "^error PinBlocked: PIN blocked on 'ts-test'" <<<"$out" || fail "expected PinBlocked: $out"
pass "PIN-locked token reports PinBlocked (flag set in SoftHSM2's token file)"

# Restore a fresh token for the rest (the flags file edit is permanent). It has
# the same label but another serial number and other keys: the old protectors
# are bound to the serial, so the PIN is not even offered to the new token.
rm -rf "$RIG_DIR/hsm"
softhsm_setup "$RIG_DIR/hsm"
out=$("$CHECK" unlock --params-in "$P/ec" --pin-file "$P/pin") && fail "protector opened on a re-initialized token"
grep -q "^error TokenAbsent: .*'ts-test'" <<<"$out" || fail "expected TokenAbsent for another token with the same label: $out"
out=$("$CHECK" enroll --uri "$RSA_URI" --pin-file "$P/pin" --params-out "$P/rsa") || fail "RSA enroll (new token): $out"
k_rsa=$(kek_of "$out")
out=$("$CHECK" enroll --uri "$EC_URI" --pin-file "$P/pin" --params-out "$P/ec") || fail "EC enroll (new token): $out"
k_ec=$(kek_of "$out")

# --- token absent, key missing ---
EMPTY=$(softhsm_empty_conf "$RIG_DIR/empty")
for f in rsa ec; do
	out=$(SOFTHSM2_CONF=$EMPTY "$CHECK" unlock --params-in "$P/$f" --pin-file "$P/pin") && fail "$f: unlocked without the token"
	grep -q "^error TokenAbsent: .*'ts-test'" <<<"$out" || fail "$f: expected TokenAbsent naming ts-test: $out"
done
out=$(SOFTHSM2_CONF=$EMPTY "$CHECK" enroll --uri "$RSA_URI" --pin-file "$P/pin" --params-out "$P/x") && fail "enrolled without the token"
grep -q '^error TokenAbsent' <<<"$out" || fail "expected TokenAbsent at enroll: $out"
pass "token absent"

out=$("$CHECK" enroll --uri 'pkcs11:token=ts-test;id=%77' --pin-file "$P/pin" --params-out "$P/x") && fail "enrolled a key that does not exist"
grep -q '^error KeyNotFound' <<<"$out" || fail "expected KeyNotFound at enroll: $out"
# Offline enrollment names a key the token does not have: unlock says KeyNotFound.
softhsm_export_pub 01 "$P/rsa.pem"
softhsm_export_pub 02 "$P/ec.pem"
"$CHECK" enroll --uri 'pkcs11:token=ts-test;id=%77' --public-key "$P/ec.pem" --params-out "$P/ghost" >/dev/null || fail "offline enroll (ghost)"
out=$("$CHECK" unlock --params-in "$P/ghost" --pin-file "$P/pin") && fail "unlocked with a missing key"
grep -q "^error KeyNotFound: .*'ts-test'" <<<"$out" || fail "expected KeyNotFound: $out"
out=$("$CHECK" enroll --uri 'pkcs11:token=ts-test' --pin-file "$P/pin" --params-out "$P/x") && fail "URI without a key accepted"
grep -q '^error InvalidArgs' <<<"$out" || fail "expected InvalidArgs for a URI naming no key: $out"
pass "missing key"

# --- URIs with a PIN ---
out=$("$CHECK" enroll --uri "$RSA_URI;pin-value=$SOFTHSM_PIN" --pin-file "$P/pin" --params-out "$P/x") && fail "pin-value accepted"
grep -q '^error InvalidArgs: .*pin-value' <<<"$out" || fail "expected InvalidArgs for pin-value: $out"
out=$("$CHECK" enroll --uri "$RSA_URI?pin-source=file:$P/pin" --pin-file "$P/pin" --params-out "$P/ps") || fail "pin-source URI: $out"
grep -q 'pin-source' <<<"$out" && fail "pin-source kept in the stored URI: $out"
grep -q 'pin-source' "$P/ps" && fail "pin-source kept in the params"
pass "pin-value refused, pin-source stripped"

# --- enrollment from the public key alone (no PIN, no login: the token only shows its mechanisms), then unlock ---
out=$(SOFTHSM2_CONF=$EMPTY "$CHECK" enroll --uri "$EC_URI" --public-key "$P/ec.pem" --params-out "$P/x") &&
	fail "offline enrollment with the token absent: $out"
grep -q '^error TokenAbsent' <<<"$out" || fail "expected TokenAbsent for an offline enrollment without the token: $out"
out=$("$CHECK" enroll --uri "$EC_URI" --public-key "$P/ec.pem" --params-out "$P/ecpem") || fail "EC offline enroll: $out"
grep -q '(enrolled offline)' <<<"$out" || fail "offline enrollment not described as such: $out"
k=$(kek_of "$out")
u=$("$CHECK" unlock --params-in "$P/ecpem" --pin-file "$P/pin") || fail "EC unlock after offline enroll: $u"
[ "$u" = "$k" ] || fail "EC offline: KEK differs"
out=$("$CHECK" enroll --uri "$RSA_URI" --public-key "$P/rsa.pem" --oaep-hash sha1 --params-out "$P/rsapem") || fail "RSA offline enroll: $out"
k=$(kek_of "$out")
u=$("$CHECK" unlock --params-in "$P/rsapem" --pin-file "$P/pin") || fail "RSA unlock after offline enroll: $u"
[ "$u" = "$k" ] || fail "RSA offline: KEK differs"
# Offline, the default is SHA-256, which this token cannot do: unlock names the mechanism.
out=$("$CHECK" enroll --uri "$RSA_URI" --public-key "$P/rsa.pem" --params-out "$P/rsa256") || fail "RSA offline sha256: $out"
grep -q '^fact algorithm=rsa2048-oaep-sha256$' <<<"$out" || fail "offline default should be sha256: $out"
out=$("$CHECK" unlock --params-in "$P/rsa256" --pin-file "$P/pin") && fail "SoftHSM2 did OAEP SHA-256?"
grep -q "^error NotSupported: token 'ts-test' refuses CKM_RSA_PKCS_OAEP with SHA-256" <<<"$out" || fail "expected NotSupported: $out"
# With the PEM and the PIN, the token is checked: the SHA-1 fallback applies again.
out=$("$CHECK" enroll --uri "$RSA_URI" --public-key "$P/rsa.pem" --pin-file "$P/pin" --params-out "$P/rsapin") || fail "RSA PEM+PIN enroll: $out"
grep -q '^fact algorithm=rsa2048-oaep-sha1$' <<<"$out" || fail "PEM+PIN: expected SHA-1 fallback: $out"
out=$("$CHECK" enroll --uri 'pkcs11:id=%02' --public-key "$P/ec.pem" --params-out "$P/x") && fail "offline URI without a token accepted"
grep -q '^error InvalidArgs: .*must name the token' <<<"$out" || fail "expected InvalidArgs for an offline URI naming no token: $out"
pass "offline enrollment from a PEM public key"

# A PEM that is not the key the URI names: refused at enroll with the PIN, detected at unlock without.
softhsm_keypair 03 ts-ec3 EC:prime256v1
out=$("$CHECK" enroll --uri 'pkcs11:token=ts-test;id=%03' --public-key "$P/ec.pem" --pin-file "$P/pin" --params-out "$P/x") && fail "mismatched PEM enrolled"
grep -q '^error TokenNotEnrolled' <<<"$out" || fail "expected TokenNotEnrolled for a mismatched PEM: $out"
[ ! -e "$P/x" ] || fail "mismatched protector written"
out=$("$CHECK" enroll --uri "$RSA_URI" --public-key "$P/ec.pem" --pin-file "$P/pin" --params-out "$P/x") && fail "EC PEM on an RSA key enrolled"
grep -q '^error TokenNotEnrolled' <<<"$out" || fail "expected TokenNotEnrolled for an EC PEM on the RSA key: $out"
"$CHECK" enroll --uri 'pkcs11:token=ts-test;id=%03' --public-key "$P/ec.pem" --params-out "$P/wrong" >/dev/null || fail "offline mismatched enroll"
out=$("$CHECK" unlock --params-in "$P/wrong" --pin-file "$P/pin") && fail "mismatched key unlocked"
grep -q '^error TokenNotEnrolled' <<<"$out" || fail "expected TokenNotEnrolled at unlock: $out"
printf 'not a key\n' >"$P/junk.pem"
out=$("$CHECK" enroll --uri "$EC_URI" --public-key "$P/junk.pem" --params-out "$P/x") && fail "junk PEM accepted"
grep -q '^error InvalidArgs' <<<"$out" || fail "expected InvalidArgs for junk PEM: $out"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | openssl pkey -pubout -out "$P/small.pem"
out=$("$CHECK" enroll --uri "$RSA_URI" --public-key "$P/small.pem" --params-out "$P/x") && fail "RSA-1024 accepted"
grep -q '^error NotSupported: RSA key of 1024 bits' <<<"$out" || fail "expected NotSupported for RSA-1024: $out"
pass "mismatched or unsuitable public keys refused"

# --- the explicit module (config pkcs11_module) instead of p11-kit's registry ---
out=$("$CHECK" enroll --module "$SOFTHSM_MODULE" --uri "$EC_URI" --pin-file "$P/pin" --params-out "$P/ecmod") || fail "enroll with --module: $out"
k=$(kek_of "$out")
u=$("$CHECK" unlock --module "$SOFTHSM_MODULE" --params-in "$P/ecmod" --pin-file "$P/pin") || fail "unlock with --module: $u"
[ "$u" = "$k" ] || fail "--module: KEK differs"
u=$("$CHECK" unlock --params-in "$P/ecmod" --pin-file "$P/pin") || fail "registry unlock of a --module protector: $u"
[ "$u" = "$k" ] || fail "module and registry disagree"
u=$("$CHECK" unlock --module "$SOFTHSM_MODULE" --params-in "$P/rsa" --pin-file "$P/pin") || fail "RSA unlock with --module: $u"
[ "$u" = "$k_rsa" ] || fail "RSA --module: KEK differs"
out=$("$CHECK" unlock --module "$RIG_DIR/no-such-module.so" --params-in "$P/rsa" --pin-file "$P/pin") && fail "missing module worked"
grep -q '^error Failed: cannot load PKCS#11 module' <<<"$out" || fail "expected a module load error: $out"
out=$(SOFTHSM2_CONF=$EMPTY "$CHECK" unlock --module "$SOFTHSM_MODULE" --params-in "$P/ec" --pin-file "$P/pin") && fail "absent token via --module"
grep -q '^error TokenAbsent' <<<"$out" || fail "expected TokenAbsent via --module: $out"
pass "explicit module path"

# --- hostile params: truncated or altered records are refused, never crash ---
head -c 40 "$P/ec" >"$P/trunc"
out=$("$CHECK" unlock --params-in "$P/trunc" --pin-file "$P/pin") && fail "truncated params unlocked"
grep -q '^error VaultCorrupt' <<<"$out" || fail "expected VaultCorrupt for truncated params: $out"
/usr/bin/python3 - "$P/ec" "$P/flip" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
i = b.find(b"epk") + 3 + 2 + 10    # inside the ephemeral point
b[i] ^= 1
open(sys.argv[2], "wb").write(b)
PY
out=$("$CHECK" unlock --params-in "$P/flip" --pin-file "$P/pin") && [ "$(kek_of "$out")" = "$k_ec" ] && fail "altered epk gave the same KEK"
"$CHECK" describe --params-in "$P/ec" | grep -q '^fact algorithm=ec-p256-ecdh$' || fail "describe"
pass "corrupt params refused"

echo "all pkcs11 protector checks passed"
