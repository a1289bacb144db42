#!/bin/bash
# pkcs11-daemon.sh — PKCS#11 protectors end to end: SoftHSM2, tokensealed on a private bus, and the tokenseal CLI.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
T=$TOKENSEAL
D=$RIG_DIR

expect_rc() { # rc, needle ('' for any), command...
	local want=$1 needle=$2 rc=0
	shift 2
	"$@" >"$D/out" 2>"$D/err" </dev/null || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* — stderr: $(cat "$D/err")"
	[ -z "$needle" ] || grep -q -- "$needle" "$D/err" || fail "expected '$needle' in stderr of: $* — got: $(cat "$D/err")"
}
enrolled_id() { sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$1"; }
ts() { "$T" --vault demo "$@"; }
locked() { ts status | grep -q "state: *locked" || fail "vault not locked"; }
unlocked() { ts status | grep -q "state: *unlocked" || fail "vault not unlocked"; }
# The facts line of protector $1 in `status`.
facts() { ts status | grep -A2 "^ *$1 " | tail -n1; }

softhsm_setup "$D/hsm"          # exports SOFTHSM2_CONF: the daemon inherits it
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin"
printf '999999\n' >"$D/badpin"
swtpm_start "$D/tpm"
rig_start_bus
rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock"

ts create >"$D/rk" 2>/dev/null || fail "create"

# --- RSA and EC keys, PIN through --pin-fd; status shows token, key id and algorithm.
expect_rc 0 "" ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%01" --pin-fd 3 3<"$D/pin"
P_RSA=$(enrolled_id "$D/out")
expect_rc 0 "" ts enroll pkcs11 --uri "pkcs11:token=ts-test;object=ts-ec" --pin-fd 3 3<"$D/pin"
P_EC=$(enrolled_id "$D/out")
[ -n "$P_RSA" ] && [ -n "$P_EC" ] || fail "enroll ids: '$P_RSA' '$P_EC'"
f=$(facts "$P_RSA")
case $f in *"token=ts-test"*"key-id=01"*"algorithm=rsa2048-oaep-sha"*) ;; *) fail "status of the RSA protector: $f" ;; esac
f=$(facts "$P_EC")
case $f in *"token=ts-test"*"key-id=02"*"algorithm=ec-p256-ecdh"*) ;; *) fail "status of the EC protector: $f" ;; esac
grep -q "$SOFTHSM_PIN" "$D/daemon.log" && fail "the PIN appears in the daemon log"
ts status | grep -q "$SOFTHSM_PIN" && fail "the PIN appears in status"
pass "enroll pkcs11 RSA and EC by URI; status shows token, key id, algorithm"

# --- each unlocks alone; a wrong PIN exits 6 and leaves the vault locked.
printf 'p11 data\n' | ts wrap --text -c app=p >"$D/blob" || fail "wrap"
for p in "$P_RSA" "$P_EC"; do
	ts lock >/dev/null
	expect_rc 6 "PIN incorrect" ts unlock --protector "$p" --pin-fd 3 3<"$D/badpin"
	locked
	expect_rc 0 "" ts unlock --protector "$p" --pin-fd 3 3<"$D/pin"
	unlocked
	[ "$(ts unwrap -c app=p <"$D/blob")" = "p11 data" ] || fail "unwrap after unlocking with $p"
done
pass "lock/unlock with the RSA and with the EC protector; wrong PIN exits 6"

# --- enrollment errors are clear and change nothing.
n=$(ts status | grep -c "^ *p[0-9]* ")
expect_rc 7 "no-such-token" ts enroll pkcs11 --uri "pkcs11:token=no-such-token;id=%01" --pin-fd 3 3<"$D/pin"
expect_rc 1 "ts-test" ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%77" --pin-fd 3 3<"$D/pin"
grep -qi "key" "$D/err" || fail "missing key message: $(cat "$D/err")"
expect_rc 1 "URI has attributes" ts enroll pkcs11 --uri "pkcs11:token=ts-test;colour=blue" --pin-fd 3 3<"$D/pin"
expect_rc 1 "pkcs11:" ts enroll pkcs11 --uri "https://example.com/" --pin-fd 3 3<"$D/pin"
expect_rc 2 "sha256 or sha1" ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%01" --oaep-hash md5
expect_rc 2 "for pkcs11" ts enroll tpm2 --public-key "$D/pin"
[ "$(ts status | grep -c "^ *p[0-9]* ")" = "$n" ] || fail "a failed enroll added a protector"
pass "enroll with a wrong token, key or URI fails with a message naming it"

# --- offline enrollment from a PEM public key: no token, no PIN at enroll time.
softhsm_keypair 03 ts-rsa-off rsa:2048
softhsm_export_pub 03 "$D/pub03.pem"
softhsm_export_pub 02 "$D/pub02.pem"
grep -q "BEGIN PUBLIC KEY" "$D/pub03.pem" || fail "export of the public key"
# SoftHSM2 2.6.1 decrypts OAEP with SHA-1 only, and offline nothing can be tried: say so.
expect_rc 0 "" ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%03" --public-key "$D/pub03.pem" --oaep-hash sha1
P_OFF=$(enrolled_id "$D/out")
expect_rc 0 "" ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%02" --public-key "$D/pub02.pem"
P_OFF_EC=$(enrolled_id "$D/out")
case $(facts "$P_OFF") in *"key-id=03"*"algorithm=rsa2048-oaep-sha1"*) ;; *) fail "status of $P_OFF: $(facts "$P_OFF")" ;; esac
head -c 100 /dev/urandom >"$D/junk.pem"
expect_rc 2 "not a PEM" ts enroll pkcs11 --uri "pkcs11:token=ts-test;id=%03" --public-key "$D/junk.pem"
for p in "$P_OFF" "$P_OFF_EC"; do
	ts lock >/dev/null
	expect_rc 0 "" ts unlock --protector "$p" --pin-fd 3 3<"$D/pin"
	unlocked
done
pass "enroll from --public-key FILE (RSA with --oaep-hash, EC) unlocks with the token later"

# --- PKCS#11 beside TPM2 and the recovery key: each opens the vault alone.
expect_rc 0 "" ts enroll tpm2
P_TPM=$(enrolled_id "$D/out")
for p in recovery "$P_RSA" "$P_TPM"; do
	ts lock >/dev/null
	locked
	case $p in
	recovery) expect_rc 0 "" ts unlock --protector p1 --pin-fd 3 3<"$D/rk" ;;
	"$P_TPM") expect_rc 0 "" ts unlock --protector "$p" ;;
	*) expect_rc 0 "" ts unlock --protector "$p" --pin-fd 3 3<"$D/pin" ;;
	esac
	[ "$(ts unwrap -c app=p <"$D/blob")" = "p11 data" ] || fail "unwrap after unlocking with $p"
done
# A plain unlock with the token's PIN on --pin-fd: the daemon finds the protector it opens.
ts lock >/dev/null
expect_rc 0 "" ts unlock --pin-fd 3 3<"$D/pin"
unlocked
pass "recovery key, PKCS#11 and TPM2 protectors each unlock the same vault alone"

# --- token absent: the daemon's SoftHSM2 sees an empty token directory.
rig_stop_daemon
SOFTHSM2_CONF=$(softhsm_empty_conf "$D/empty") rig_start_daemon --idle-lock 0 --tpm2-tcti "swtpm:path=$D/tpm/sock"
locked
expect_rc 7 "ts-test" ts unlock --protector "$P_RSA" --pin-fd 3 3<"$D/pin"
expect_rc 7 "" ts unlock --protector "$P_EC" --pin-fd 3 3<"$D/pin"
locked
expect_rc 0 "" ts unlock --protector "$P_TPM"
pass "token absent exits 7 naming the token; another protector still opens"
