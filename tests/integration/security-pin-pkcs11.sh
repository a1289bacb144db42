#!/bin/bash
# security-pin-pkcs11.sh — one PIN, one card, when two cards carry the same label (PIV cards of one
# make do). Card A (PIN 123456) holds p2, enrolled online (its URI names A's serial); card B (PIN
# 654321) holds p3, enrolled offline from its public key with token=LABEL only. B's PIN must never
# reach card A: not when no protector is named, and not when p3 is named either.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softhsm.sh"
D=$RIG_DIR
softhsm_setup "$D/hsm"
printf '%s\n' "$SOFTHSM_PIN" >"$D/pin-a"
printf '654321\n' >"$D/pin-b"
softhsm_export_pub 02 "$D/a.pem"   # while card A is the only one of its label (the slot order is random)
SLOT_B=$(softhsm2-util --init-token --free --label "$SOFTHSM_LABEL" --so-pin 11112222 --pin 654321 |
	sed -n 's/.*reassigned to slot \([0-9]*\).*/\1/p')
[ -n "$SLOT_B" ] || fail "second token"
pkcs11-tool --module "$SOFTHSM_MODULE" --slot "$SLOT_B" --login --pin 654321 --keypairgen --key-type EC:prime256v1 \
	--id 03 --label b-ec >/dev/null 2>&1 || fail "key on card B"
pkcs11-tool --module "$SOFTHSM_MODULE" --slot "$SLOT_B" --read-object --type pubkey --id 03 -o "$D/b.der" >/dev/null 2>&1 ||
	fail "public key of card B"
openssl pkey -pubin -inform DER -in "$D/b.der" -out "$D/b.pem" || fail "PEM"
rig_start_bus
rig_start_daemon --idle-lock 0
ts() { "$TOKENSEAL" --vault demo "$@"; }
ts create >"$D/rk" 2>/dev/null || fail "create"
ts enroll pkcs11 --uri "pkcs11:token=$SOFTHSM_LABEL;id=%02" --pin-fd 3 3<"$D/pin-a" </dev/null >"$D/e" 2>&1 ||
	fail "p2 on card A: $(cat "$D/e")"
ts enroll pkcs11 --uri "pkcs11:token=$SOFTHSM_LABEL;id=%03" --public-key "$D/b.pem" </dev/null >"$D/e" 2>&1 ||
	fail "p3 offline: $(cat "$D/e")"
ts lock >/dev/null

pin_to_a() { grep -c "event=unlock vault=demo .*protector=p2 result=PinInvalid" "$D/daemon.log" || true; }
rc=0; ts unlock --pin-fd 3 3<"$D/pin-b" </dev/null >"$D/out" 2>&1 || rc=$?
[ "$(pin_to_a)" = 0 ] || fail "card B's PIN was tried on card A"
[ $rc -ne 0 ] && grep -q "several tokens could take this PIN" "$D/out" || fail "no protector named: (rc $rc) $(cat "$D/out")"
ts unlock --protector p3 --pin-fd 3 3<"$D/pin-b" </dev/null >"$D/out" 2>&1 || fail "naming p3: $(cat "$D/out")"
[ "$(pin_to_a)" = 0 ] || fail "naming p3, card B's PIN went to card A"
grep -q "event=unlock vault=demo .*protector=p3 result=ok" "$D/daemon.log" || fail "p3 did not open it"
pass "two cards of one label: B's PIN never reaches A (AmbiguousProtector; naming p3 finds card B by its key)"

# Both protectors without a serial (A's key enrolled offline too): still two cards, never one.
ts unlock --protector p1 --pin-fd 3 3<"$D/rk" </dev/null >/dev/null 2>&1 || fail "recovery unlock"
ts revoke p2 --record-only >/dev/null 2>&1 || fail "revoke p2"
ts enroll pkcs11 --uri "pkcs11:token=$SOFTHSM_LABEL;id=%02" --public-key "$D/a.pem" </dev/null >"$D/e" 2>&1 ||
	fail "p4 offline on card A: $(cat "$D/e")"
ts lock >/dev/null
rc=0; ts unlock --pin-fd 3 3<"$D/pin-b" </dev/null >"$D/out" 2>&1 || rc=$?
grep -q "event=unlock vault=demo .*protector=p4 result=PinInvalid" "$D/daemon.log" && fail "card B's PIN went to card A (p4)"
[ $rc -ne 0 ] && grep -q "several tokens could take this PIN" "$D/out" || fail "two serial-less cards: (rc $rc) $(cat "$D/out")"
pass "two protectors without a serial on two cards of one label are two tokens"
rig_stop_daemon
