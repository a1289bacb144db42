#!/bin/bash
# tpm2-protector.sh — the tpm2 backend through tpm2-tss against swtpm: PIN, DA lockout, PCR policy, SRK, another TPM.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
CHECK="$TS_BUILD/tests/tools/tpm2_check"
[ -x "$CHECK" ] || fail "missing $CHECK (make BUILD=... $CHECK)"
A="$RIG_DIR/tpm-a" B="$RIG_DIR/tpm-b"
printf '1234\n' >"$RIG_DIR/pin"
printf '9999\n' >"$RIG_DIR/badpin"

swtpm_start "$B" || fail "swtpm b"
TB=$SWTPM_TCTI
swtpm_start "$A" || fail "swtpm a"
TA=$SWTPM_TCTI    # tpm2-tools (TPM2TOOLS_TCTI) now talk to a

# swtpm has no resource manager: anything the backend leaves loaded stays there.
no_handles() { # what
	local kind out
	for kind in handles-transient handles-loaded-session handles-saved-session; do
		out=$(tpm2_getcap "$kind") || fail "tpm2_getcap $kind"
		[ -z "$out" ] || fail "$kind not empty after $1: $out"
	done
}
chk() { "$CHECK" "$@"; }
kek_of() { grep '^kek ' <<<"$1"; }

# --- enroll / unlock without PIN, across a TPM restart -------------------
e=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/plain") || fail "enroll plain: $e"
no_handles "enroll"
grep -q 'fact pin=no' <<<"$e" && grep -q 'fact pcrs=none' <<<"$e" && grep -q 'fact parent=primary(ecc-p256)' <<<"$e" \
	|| fail "describe of the plain protector: $e"
u=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/plain") || fail "unlock plain: $u"
no_handles "unlock"
[ "$(kek_of "$e")" = "$u" ] || fail "KEK differs between enroll ($e) and unlock ($u)"
e2=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/plain2") || fail "second enroll: $e2"
[ "$(kek_of "$e2")" != "$u" ] || fail "two enrollments gave the same KEK"
out=$(chk describe --params-in "$RIG_DIR/plain") || fail "describe: $out"
grep -q '^needs_secret 0' <<<"$out" || fail "plain protector needs no secret: $out"
pass "enroll and unlock without PIN"

swtpm_restart "$A" || fail "restart a"
u2=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/plain") || fail "unlock after restart: $u2"
[ "$u2" = "$u" ] || fail "KEK changed across a TPM restart"
no_handles "unlock after restart"
pass "unlock after a TPM restart (primary re-derived from the owner seed)"

# --- PIN -----------------------------------------------------------------
e=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/pinned" --pin-file "$RIG_DIR/pin") || fail "enroll with PIN: $e"
grep -q 'fact pin=yes' <<<"$e" || fail "PIN not recorded: $e"
grep -q '^needs_secret 1' <<<"$(chk describe --params-in "$RIG_DIR/pinned")" || fail "needs_secret should be 1"
KPIN=$(kek_of "$e")
u=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned" --pin-file "$RIG_DIR/pin") || fail "unlock with PIN: $u"
[ "$u" = "$KPIN" ] || fail "KEK with PIN differs"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned") && fail "unlocked without the PIN"
grep -q '^error PinRequired' <<<"$out" || fail "expected PinRequired, got: $out"
out=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/x" --pin yes) && fail "pin=yes enrolled without a PIN"
grep -q '^error PinRequired' <<<"$out" || fail "expected PinRequired at enroll, got: $out"
pass "PIN protector"

# DA lockout: swtpm allows 3 failures by default; set it explicitly so the test says what it relies on.
tpm2_dictionarylockout -s -n 3 -t 600 -l 600 || fail "tpm2_dictionarylockout -s"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned" --pin-file "$RIG_DIR/badpin") && fail "wrong PIN accepted"
grep -q '^error PinInvalid: TPM PIN incorrect; 2 more failures' <<<"$out" || fail "expected PinInvalid with 2 left, got: $out"
no_handles "wrong PIN"
tpm2_getcap properties-variable | grep -q 'TPM2_PT_LOCKOUT_COUNTER: 0x1' || fail "the TPM did not count the wrong PIN (noDA set?)"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned" --pin-file "$RIG_DIR/badpin") && fail "wrong PIN accepted"
grep -q '^error PinInvalid: TPM PIN incorrect; 1 more failure ' <<<"$out" || fail "expected PinInvalid with 1 left, got: $out"
pass "wrong PIN: PinInvalid, counted by the TPM"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned" --pin-file "$RIG_DIR/badpin") && fail "wrong PIN accepted"
grep -q '^error PinBlocked: TPM PIN incorrect, and the TPM is now in dictionary-attack lockout; retry in 600 s' <<<"$out" \
	|| fail "expected PinBlocked on the failure that trips the lockout, got: $out"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned" --pin-file "$RIG_DIR/pin") && fail "right PIN worked during lockout"
grep -q '^error PinBlocked: TPM dictionary-attack lockout; retry in 600 s' <<<"$out" || fail "expected PinBlocked, got: $out"
no_handles "lockout"
tpm2_getcap properties-variable | grep -q 'inLockout: *1' || fail "tpm2-tools does not see the lockout"
# A protector without PIN has nothing to guess (noDA): it still opens during a lockout.
u=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/plain") || fail "PIN-less protector blocked by the lockout: $u"
tpm2_dictionarylockout -c || fail "tpm2_dictionarylockout -c"
u=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pinned" --pin-file "$RIG_DIR/pin") || fail "unlock after clearing lockout: $u"
[ "$u" = "$KPIN" ] || fail "KEK after lockout differs"
pass "DA lockout: PinBlocked with the time left; cleared by the owner"

# --- PCR policy ------------------------------------------------------------
e=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/pcr" --pcrs sha256:7) || fail "enroll PCR: $e"
grep -q 'fact pcrs=sha256:7' <<<"$e" || fail "PCRs not recorded: $e"
KPCR=$(kek_of "$e")
e=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/pcrpin" --pcrs sha256:7,0 --pin-file "$RIG_DIR/pin") || fail "enroll PCR+PIN: $e"
grep -q 'fact pcrs=sha256:0,7' <<<"$e" || fail "PCR list not canonical: $e"
KPCRPIN=$(kek_of "$e")
no_handles "PCR enroll (trial session)"
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pcr")" = "$KPCR" ] || fail "unlock PCR"
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pcrpin" --pin-file "$RIG_DIR/pin")" = "$KPCRPIN" ] || fail "unlock PCR+PIN"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pcrpin" --pin-file "$RIG_DIR/badpin") && fail "PCR+PIN: wrong PIN accepted"
grep -q '^error PinInvalid' <<<"$out" || fail "PCR+PIN wrong PIN: expected PinInvalid, got: $out"
tpm2_dictionarylockout -c
no_handles "PCR unlock"
pass "PCR-bound protectors (with and without PIN) unlock while PCRs are unchanged"

tpm2_pcrextend 7:sha256=$(printf 'tokenseal-test' | sha256sum | cut -d' ' -f1) || fail "tpm2_pcrextend"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pcr") && fail "unlocked after PCR 7 changed"
grep -q "^error PcrMismatch: PCR policy sha256:7 no longer matches" <<<"$out" || fail "expected PcrMismatch naming sha256:7, got: $out"
grep -q -- "--replace" <<<"$out" || fail "PcrMismatch should say how to re-enroll: $out"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pcrpin" --pin-file "$RIG_DIR/pin") && fail "PCR+PIN unlocked after PCR 7 changed"
grep -q "^error PcrMismatch: PCR policy sha256:0,7" <<<"$out" || fail "expected PcrMismatch naming sha256:0,7, got: $out"
tpm2_getcap properties-variable | grep -q 'TPM2_PT_LOCKOUT_COUNTER: 0x0' || fail "a PCR mismatch must not count as a PIN failure"
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/plain")" = "$u2" ] || fail "unbound protector affected by PCR change"
no_handles "PCR mismatch"
swtpm_restart "$A" || fail "restart a"   # a reboot: PCRs back to their boot values
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/pcr")" = "$KPCR" ] || fail "PCR protector after the PCRs were reset"
pass "PCR change: PcrMismatch naming the bank and PCRs; a reboot to the same state opens again"

out=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/x" --pcrs md5:7) && fail "bad bank accepted"
grep -q '^error InvalidArgs' <<<"$out" || fail "expected InvalidArgs for a bad bank, got: $out"
out=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/x" --pcrs sha256:24) && fail "PCR 24 accepted"
grep -q '^error InvalidArgs' <<<"$out" || fail "expected InvalidArgs for PCR 24, got: $out"
pass "invalid PCR selections refused"

# --- another TPM, absent TPM, damaged records ------------------------------
out=$(chk unlock --tcti "$TB" --params-in "$RIG_DIR/plain") && fail "another TPM opened the protector"
grep -q '^error TokenNotEnrolled: this protector is sealed to a different TPM' <<<"$out" || fail "expected TokenNotEnrolled, got: $out"
TPM2TOOLS_TCTI=$TB tpm2_getcap handles-transient | grep -q . && fail "handles left on TPM b"
swtpm_stop "$B"
out=$(chk unlock --tcti "$TB" --params-in "$RIG_DIR/plain") && fail "unlocked with TPM b stopped"
grep -q '^error TokenAbsent: TPM not reachable at swtpm:' <<<"$out" || fail "expected TokenAbsent, got: $out"
pass "another TPM: TokenNotEnrolled; no TPM: TokenAbsent"

head -c 40 "$RIG_DIR/plain" >"$RIG_DIR/trunc"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/trunc") && fail "truncated record accepted"
grep -q '^error VaultCorrupt' <<<"$out" || fail "expected VaultCorrupt, got: $out"
pass "damaged record: VaultCorrupt, TPM untouched"

# --- a provisioned SRK at 0x81000001 -----------------------------------------
tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -c "$RIG_DIR/srk.ctx" \
	-a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda' || fail "tpm2_createprimary"
tpm2_evictcontrol -Q -C o -c "$RIG_DIR/srk.ctx" 0x81000001 || fail "tpm2_evictcontrol"
tpm2_flushcontext -t
tpm2_getcap handles-persistent | grep -q 0x81000001 || fail "SRK not persistent"
e=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/srk" --pin-file "$RIG_DIR/pin") || fail "enroll under SRK: $e"
grep -q 'fact parent=0x81000001' <<<"$e" || fail "enroll did not use the SRK at 0x81000001: $e"
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/srk" --pin-file "$RIG_DIR/pin")" = "$(kek_of "$e")" ] || fail "unlock under SRK"
# Records made before the SRK existed still use the template primary.
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/plain")" = "$u2" ] || fail "older protector after SRK provisioning"
no_handles "SRK enroll/unlock"
tpm2_getcap handles-persistent | grep -q 0x81000001 || fail "the backend evicted the SRK"
pass "persistent SRK at 0x81000001 is used when present"

# Another key at 0x81000001: refused by name before anything is sent to it.
tpm2_evictcontrol -Q -C o -c 0x81000001 || fail "evict SRK"
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/srk" --pin-file "$RIG_DIR/pin") && fail "unlocked with the SRK gone"
grep -q '^error KeyNotFound: the TPM.s storage key 0x81000001 is gone' <<<"$out" || fail "expected KeyNotFound, got: $out"
tpm2_createprimary -Q -C o -G rsa2048:aes128cfb -c "$RIG_DIR/srk2.ctx" \
	-a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda' || fail "tpm2_createprimary 2"
tpm2_evictcontrol -Q -C o -c "$RIG_DIR/srk2.ctx" 0x81000001 || fail "tpm2_evictcontrol 2"
tpm2_flushcontext -t
da_before=$(tpm2_getcap properties-variable | grep LOCKOUT_COUNTER)
out=$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/srk" --pin-file "$RIG_DIR/pin") && fail "unlocked under another SRK"
grep -q '^error TokenNotEnrolled' <<<"$out" || fail "expected TokenNotEnrolled under another SRK, got: $out"
[ "$(tpm2_getcap properties-variable | grep LOCKOUT_COUNTER)" = "$da_before" ] || fail "another SRK must not cost a PIN try"
no_handles "SRK replaced"
pass "SRK evicted: KeyNotFound; SRK replaced: TokenNotEnrolled"

# --- an owner hierarchy with a password and no SRK: a clear refusal -------------
tpm2_evictcontrol -Q -C o -c 0x81000001 || fail "evict SRK 2"
tpm2_changeauth -c o owner-secret || fail "tpm2_changeauth"
out=$(chk enroll --tcti "$TA" --params-out "$RIG_DIR/x") && fail "enrolled under a password-protected owner hierarchy"
grep -q '^error NotSupported: the TPM owner hierarchy has a password.*0x81000001' <<<"$out" || fail "expected NotSupported naming the SRK, got: $out"
no_handles "owner password"
tpm2_changeauth -c o -p owner-secret || fail "tpm2_changeauth back"
[ "$(chk unlock --tcti "$TA" --params-in "$RIG_DIR/plain")" = "$u2" ] || fail "plain protector after owner auth removed"
pass "owner hierarchy with a password: NotSupported, saying how to provision an SRK"
