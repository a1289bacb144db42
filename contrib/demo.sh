#!/bin/bash
# demo.sh — a narrated end-to-end run of tokenseal on a private D-Bus: create a vault, lock, unlock, encrypt a file with age to it, open it again.
#
#   contrib/demo.sh BUILD_DIR        (what `make demo` runs)
#
# Everything happens in a temporary directory with its own dbus-daemon and
# tokensealed; your system bus and /var/lib/tokenseal are not touched. Every
# process started here is stopped by PID on exit. Exits 0 only if every step
# behaved as it should.
set -eu -o pipefail
BUILD=${1:?usage: contrib/demo.sh BUILD_DIR}
TS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
TS_BUILD=$BUILD
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/lib/softhsm.sh"

T=$TOKENSEAL
W=$RIG_DIR/demo
mkdir -m 700 "$W"
step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
# Run a command that must fail with a given exit code; show its message.
must_fail() { # rc, command...
	local want=$1 rc=0
	shift
	"$@" >/dev/null 2>"$W/err" || rc=$?
	sed 's/^/    /' "$W/err"
	[ "$rc" = "$want" ] || fail "expected exit code $want, got $rc"
	note "(refused as expected, exit code $rc)"
}

for x in "$TOKENSEALED" "$T" "$SOFTFIDO" "$TS_BUILD/tests/tools/fido2_check"; do [ -x "$x" ] || fail "$x not built; run 'make' first"; done
command -v age >/dev/null || fail "the demo encrypts a file with age; install it (contrib/install-deps.sh)"
[ -x "$TS_BUILD/age-plugin-tokenseal" ] || fail "$TS_BUILD/age-plugin-tokenseal not built; run 'make' first"
# age finds its plugins on PATH, where make install puts age-plugin-tokenseal.
mkdir -p "$RIG_DIR/bin"
ln -s "$TS_BUILD/age-plugin-tokenseal" "$RIG_DIR/bin/age-plugin-tokenseal"
export PATH="$RIG_DIR/bin:$PATH"

step "Starting a private D-Bus message bus (your system bus is not touched)..."
if [ "$(id -u)" = 0 ]; then
	rig_start_bus
else
	# The rig's bus is system-like: only root may own org.tokenseal1. As a
	# normal user, a bus of our own that lets us own it.
	mkdir -p "$RIG_DIR/bus"
	cat >"$RIG_DIR/bus/bus.conf" <<XML
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$RIG_DIR/bus/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="$(id -un)"/><allow own="*"/><allow send_destination="*" eavesdrop="false"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
XML
	dbus-daemon --config-file="$RIG_DIR/bus/bus.conf" --nofork --nopidfile --print-address=3 \
		3>"$RIG_DIR/bus/address" 2>/dev/null &
	RIG_PIDS+=($!)
	for _ in $(seq 100); do [ -s "$RIG_DIR/bus/address" ] && break; sleep 0.05; done
	[ -s "$RIG_DIR/bus/address" ] || fail "dbus-daemon did not start"
	BUS_ADDRESS=$(head -n1 "$RIG_DIR/bus/address")
	export TOKENSEAL_BUS="$BUS_ADDRESS"
fi
note "bus: $BUS_ADDRESS"

step "Plugging in the tokens — all software stand-ins for real hardware:"
softfido_start key --aaguid 5eca1f1d0000400080000000000000de
note "a FIDO2 security key: tests/softfido, a CTAP2 authenticator on $SOFTFIDO_key_DEV"
note "  (it approves every touch by itself; a real key blinks and waits for your finger)"
printf '%s\n' 246810 >"$W/fido2-pin"
"$TS_BUILD/tests/tools/fido2_check" set-pin --device "$SOFTFIDO_key_DEV" --vault-id 00 --pin-file "$W/fido2-pin" \
	|| fail "could not set the security key's PIN"
note "  its PIN is set to 246810 (as 'fido2-token -S' does for a new YubiKey)"
swtpm_start "$RIG_DIR/tpm" >/dev/null
note "a TPM 2.0: swtpm, reached as $TPM2TOOLS_TCTI (a real machine has /dev/tpmrm0)"
softhsm_setup "$RIG_DIR/hsm" >/dev/null 2>&1 || fail "could not set up the SoftHSM2 token"
note "a PKCS#11 smartcard: SoftHSM2 token '$SOFTHSM_LABEL' with an RSA-2048 key (found through p11-kit)"

step "Starting tokensealed on that bus, keeping vault files in $RIG_DIR/state ..."
rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_key_DEV" --tpm2-tcti "$TPM2TOOLS_TCTI"
note "daemon pid $DAEMON_PID; the tokenseal commands below find it through \$TOKENSEAL_BUS"

step "Creating vault 'demo'. Its first protector is a recovery key, shown only once:"
"$T" create demo >"$W/recovery-key" 2>/dev/null
note ""
note "    $(cat "$W/recovery-key")"
note ""
note "In real life you write this down and keep it safe. (The demo saves it in a file"
note "in its temporary directory only so that it can type it for you later.)"

step "Enrolling the security key as the main way in (PIN + touch; fed the PIN through --pin-fd):"
"$T" --vault demo enroll fido2 --pin-fd 3 3<"$W/fido2-pin" 2>&1 | sed 's/^/    /'

step "Enrolling this machine's TPM as a second protector (no PIN: opens only on this machine):"
"$T" --vault demo enroll tpm2 2>&1 | sed 's/^/    /'

step "Enrolling the smartcard's RSA key as a third protector:"
printf '%s\n' "$SOFTHSM_PIN" >"$W/card-pin"
"$T" --vault demo enroll pkcs11 --uri "pkcs11:token=$SOFTHSM_LABEL;id=%01" --pin-fd 3 3<"$W/card-pin" 2>&1 | sed 's/^/    /'

step "Every party that can open the vault is listed — nothing is silent:"
"$T" --vault demo status | sed 's/^/    /'

step "The vault's age recipient (public: anyone may encrypt to it) and identity (names the vault, no secret):"
"$T" --vault demo age-recipient >"$W/recipient"
"$T" --vault demo age-identity >"$W/identity"
note "$(cat "$W/recipient")"
note "$(grep '^AGE-' "$W/identity")"

step "Locking the vault: the daemon wipes its keys from memory."
"$T" --vault demo lock | sed 's/^/    /'

step "Asking for a new data key while the vault is locked must be refused:"
must_fail 3 "$T" --vault demo gen-key

step "Encrypting report.txt with age to the vault's recipient: no token, vault still locked..."
printf 'Quarterly report: the numbers are fine.\nLine two, with a tab\there.\n' >"$W/report.txt"
age -R "$W/recipient" -o "$W/report.txt.age" "$W/report.txt"
note "report.txt.age: $(stat -c %s "$W/report.txt.age") bytes, authenticated (age: X25519 to the vault's key, ChaCha20-Poly1305)."

step "Decrypting it while the vault is locked, with nobody at a terminal to type a PIN, must be refused:"
must_fail 1 setsid -w age -d -i "$W/identity" -o "$W/report.dec" "$W/report.txt.age"

step "Unlocking with the security key: PIN, then a touch (the software key approves it)..."
FIDO2_ID=$("$T" --vault demo status | awk '$2 == "fido2" {print $1; exit}')
"$T" --vault demo unlock --protector "$FIDO2_ID" --pin-fd 3 3<"$W/fido2-pin" 2>&1 | sed 's/^/    /'

step "Wrapping a data key for an application, bound to the context file=report.txt ..."
"$T" --vault demo gen-key --size 32 --context file=report.txt --text --blob-out "$W/report.key-blob" >/dev/null
note "wrapped key (safe to store next to the data):"
note "$(cat "$W/report.key-blob")"

step "Locking the vault again..."
"$T" --vault demo lock | sed 's/^/    /'

step "Unwrapping the key while locked must be refused:"
must_fail 3 "$T" --vault demo unwrap --context file=report.txt --in "$W/report.key-blob"

step "Unlocking again, this time with the TPM: no prompt at all (it tries protectors without PIN first)..."
"$T" --vault demo unlock </dev/null 2>&1 | sed 's/^/    /'

step "Unwrapping with the wrong context must be refused (a blob only opens for its own purpose):"
must_fail 8 "$T" --vault demo unwrap --context file=other.txt --in "$W/report.key-blob"

step "Decrypting report.txt.age with age: the plugin asks the unlocked vault, no prompt..."
age -d -i "$W/identity" -o "$W/report.dec" "$W/report.txt.age"
if diff "$W/report.txt" "$W/report.dec" >/dev/null; then
	note "diff report.txt report.dec: identical."
else
	fail "the decrypted file differs from the original"
fi

step "Lost every token? The recovery key still opens the vault:"
"$T" --vault demo lock | sed 's/^/    /'
"$T" --vault demo unlock --protector recovery --pin-fd 3 3<"$W/recovery-key" 2>&1 | sed 's/^/    /'
"$T" --vault demo unwrap --context file=report.txt --in "$W/report.key-blob" >/dev/null || fail "unwrap after recovery"
age -d -i "$W/identity" -o /dev/null "$W/report.txt.age" || fail "age after recovery"
note "unwrap and age -d work again."

step "And the smartcard alone opens it too (PIN via --pin-fd):"
"$T" --vault demo lock | sed 's/^/    /'
CARD_ID=$("$T" --vault demo status | awk '$2 == "pkcs11" {print $1; exit}')
"$T" --vault demo unlock --protector "$CARD_ID" --pin-fd 3 3<"$W/card-pin" 2>&1 | sed 's/^/    /'

step "Locking the vault and stopping everything."
"$T" --vault demo lock | sed 's/^/    /'
printf '\nDemo finished: every step behaved as expected.\n'
