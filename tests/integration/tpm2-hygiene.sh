#!/bin/bash
# tpm2-hygiene.sh — the tpm2 backend keeps secrets off the TPM bus (salted, encrypted sessions) and is valgrind clean.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
CHECK="$TS_BUILD/tests/tools/tpm2_check"
[ -x "$CHECK" ] || fail "missing $CHECK"
PY=/usr/bin/python3
swtpm_start "$RIG_DIR/tpm" || fail "swtpm"
T=$SWTPM_TCTI
# A PIN long enough that finding it in a capture by chance is impossible.
printf 'correct-horse-battery-31\n' >"$RIG_DIR/pin"

# Record every byte sent to and received from the TPM with the pcap TCTI (it wraps the swtpm one).
cap="$RIG_DIR/tpm.pcap"
e=$(TCTI_PCAP_FILE=$cap "$CHECK" enroll --tcti "pcap:$T" --params-out "$RIG_DIR/p" --pin-file "$RIG_DIR/pin" --pcrs sha256:7) \
	|| fail "enroll through pcap: $e"
u=$(TCTI_PCAP_FILE=$cap "$CHECK" unlock --tcti "pcap:$T" --params-in "$RIG_DIR/p" --pin-file "$RIG_DIR/pin") \
	|| fail "unlock through pcap: $u"
e2=$(TCTI_PCAP_FILE=$cap "$CHECK" enroll --tcti "pcap:$T" --params-out "$RIG_DIR/p2" --pin-file "$RIG_DIR/pin") \
	|| fail "enroll (HMAC session) through pcap: $e2"
u2=$(TCTI_PCAP_FILE=$cap "$CHECK" unlock --tcti "pcap:$T" --params-in "$RIG_DIR/p2" --pin-file "$RIG_DIR/pin") \
	|| fail "unlock (HMAC session) through pcap: $u2"
[ "$(grep '^kek' <<<"$e")" = "$u" ] && [ "$(grep '^kek' <<<"$e2")" = "$u2" ] || fail "KEK mismatch through pcap"
[ -s "$cap" ] || fail "no capture written"

# Look for the PIN, and for any 32-byte window whose BLAKE2b is the KEK's (the tool prints only that hash).
# Positive control: the sealed object's public area, which Load sends in clear, is found by the same scan.
$PY - "$cap" "$RIG_DIR/pin" "$RIG_DIR/p" "${u#kek }" "${u2#kek }" <<'PY' || fail "secret material seen on the TPM bus"
import hashlib, sys
cap = open(sys.argv[1], "rb").read()
pin = open(sys.argv[2], "rb").read().rstrip(b"\n")
params = open(sys.argv[3], "rb").read()
hashes = set(sys.argv[4:])
if pin in cap:
    sys.exit("PIN found in the capture")
for i in range(len(cap) - 31):
    if hashlib.blake2b(cap[i:i + 32], digest_size=16).hexdigest() in hashes:
        sys.exit("KEK found in the capture at offset %d" % i)
windows = {params[i:i + 32] for i in range(len(params) - 31)}
if not any(cap[i:i + 32] in windows for i in range(len(cap) - 31)):
    sys.exit("control failed: the public area was not found in the capture; the scan proves nothing")
print("capture of %d bytes: no PIN, no KEK; public area present" % len(cap))
PY
pass "PIN and KEK never cross the TPM bus in clear (parameter encryption)"

# Valgrind: enroll/unlock with PIN+PCR, and the error paths (wrong PIN, PCR mismatch) free everything.
# (Not under an ASan build: the two instrumentations do not mix.)
if command -v valgrind >/dev/null && ! grep -q __asan_init "$CHECK"; then
	vg() { valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect "$@"; }
	vg "$CHECK" enroll --tcti "$T" --params-out "$RIG_DIR/v" --pin-file "$RIG_DIR/pin" --pcrs sha256:7 >/dev/null \
		|| fail "valgrind: enroll ($?)"
	vg "$CHECK" unlock --tcti "$T" --params-in "$RIG_DIR/v" --pin-file "$RIG_DIR/pin" >/dev/null || fail "valgrind: unlock ($?)"
	printf 'nope\n' >"$RIG_DIR/bad"
	rc=0; vg "$CHECK" unlock --tcti "$T" --params-in "$RIG_DIR/v" --pin-file "$RIG_DIR/bad" >/dev/null || rc=$?
	[ "$rc" = 17 ] || fail "valgrind: wrong PIN path (expected exit 17 = PinInvalid), got $rc"
	tpm2_dictionarylockout -c
	tpm2_pcrextend 7:sha256=$(printf x | sha256sum | cut -d' ' -f1)
	rc=0; vg "$CHECK" unlock --tcti "$T" --params-in "$RIG_DIR/v" --pin-file "$RIG_DIR/pin" >/dev/null || rc=$?
	[ "$rc" = 22 ] || fail "valgrind: PCR mismatch path (expected exit 22 = PcrMismatch), got $rc"
	rc=0; vg "$CHECK" unlock --tcti "swtpm:path=$RIG_DIR/none" --params-in "$RIG_DIR/v" --pin-file "$RIG_DIR/pin" >/dev/null || rc=$?
	[ "$rc" = 15 ] || fail "valgrind: absent TPM path (expected exit 15 = TokenAbsent), got $rc"
	for kind in handles-transient handles-loaded-session handles-saved-session; do
		[ -z "$(tpm2_getcap $kind)" ] || fail "$kind not empty"
	done
	pass "valgrind clean on success and error paths"
fi
