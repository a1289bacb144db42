#!/bin/bash
# age-flow.sh — the real age (Debian's, 1.1.x) with age-plugin-tokenseal: files of 0, 1 byte and 1 MiB
# encrypted to a locked vault, refused while it stays locked (a clear message naming `tokenseal unlock`),
# decrypted after unlock and with the PIN (recovery key) typed at age's own prompt; another vault's
# identity and another uid are refused; a tokenseal and a native X25519 recipient both decrypt; a flipped
# byte in the stanza is refused, never decrypted; grease and unknown stanzas are tolerated; after rotate
# and retiring the old key version, old files cannot be opened. Also AgeUnwrap itself under attack.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/lib/softfido.sh"
command -v age >/dev/null || fail "age is not installed (contrib/install-deps.sh)"
D=$RIG_DIR
PLUGIN="$TS_BUILD/age-plugin-tokenseal"
# age finds plugins on PATH, as `make install` puts it in BINDIR.
mkdir -p "$D/bin" "$D/files"
ln -s "$PLUGIN" "$D/bin/age-plugin-tokenseal"
export PATH="$D/bin:$PATH"
chmod 0755 "$D/files"
# Without a controlling terminal age cannot ask anything (setsid): the "locked, no PIN" case.
AGE() { setsid -w age "$@" </dev/null; }
# The CLI, like the plugin, goes where the rig points clients: the bus, or the private socket (TS_TRANSPORT=direct).
T() { "$TOKENSEAL" "$@"; }

/usr/bin/python3 "$TS_SRC/tests/integration/age_vectors.py" "$TS_SRC/docs/FORMAT.md" || fail "docs/FORMAT.md's age vector"
pass "docs/FORMAT.md's age test vector recomputed independently (Python BLAKE2b, X25519, ChaCha20-Poly1305, Bech32)"

rig_start_bus
# A software security key without PIN (touch only; softfido approves each touch at once).
softfido_start k
rig_start_daemon --idle-lock 0 --test-devices --fido2-device "$SOFTFIDO_k_DEV"
PA=$(create_vault agea "$D/rka") || fail "CreateVault agea"
PB=$(create_vault ageb "$D/rkb") || fail "CreateVault ageb"
RA=$(T age-recipient agea) || fail "age-recipient agea"
RB=$(T --vault ageb age-recipient) || fail "age-recipient ageb"
[[ $RA == age1tokenseal1* && ${#RA} -le 90 && $RA != "$RB" ]] || fail "recipients: $RA $RB"
T age-identity agea >"$D/files/ida" || fail "age-identity agea"
T age-identity ageb >"$D/files/idb" || fail "age-identity ageb"
grep -q '^AGE-PLUGIN-TOKENSEAL-1[0-9A-Z]*$' "$D/files/ida" && grep -q "holds no secret" "$D/files/ida" || fail "identity file: $(cat "$D/files/ida")"
chmod 0644 "$D/files/ida" "$D/files/idb"
pass "tokenseal age-recipient / age-identity: age1tokenseal1... (${#RA} characters), an identity file that says it holds no secret"

# Encrypting needs neither the token nor the daemon's vault unlocked.
vcall "$PA" Lock || fail "Lock agea"
vcall "$PB" Lock || fail "Lock ageb"
: >"$D/files/empty"
printf x >"$D/files/one"
head -c 1048576 /dev/urandom >"$D/files/big"
for f in empty one big; do
	AGE -r "$RA" -o "$D/files/$f.age" "$D/files/$f" || fail "age -r while locked ($f)"
	grep -aq '^-> tokenseal ' "$D/files/$f.age" || fail "$f.age has no tokenseal stanza"
done
pass "age -r age1tokenseal1... encrypts empty, 1-byte and 1 MiB files while the vault is locked"

# Locked and nobody to type a PIN: refused, with what to do.
out=$(AGE -d -i "$D/files/ida" "$D/files/one.age" 2>&1) && fail "decrypted while locked: $out"
grep -q "vault 'agea' is locked and no PIN was given" <<<"$out" && grep -q "tokenseal unlock --vault agea" <<<"$out" ||
	fail "locked, no PIN: $out"
pass "locked, no PIN: age fails with \"$(grep -o "tokenseal vault 'agea' is locked[^:]*" <<<"$out")\" and names the command"

# The recovery key typed at age's prompt (request-secret) unlocks the vault; later files need no prompt.
script -qec "age -d -i '$D/files/ida' -o '$D/files/one.out' '$D/files/one.age'" /dev/null <"$D/rka" >"$D/script.log" 2>&1 ||
	fail "age with the recovery key at its prompt: $(cat "$D/script.log")"
grep -q "tokenseal vault 'agea' is locked. Recovery key" "$D/script.log" || fail "no prompt through age: $(cat "$D/script.log")"
cmp "$D/files/one" "$D/files/one.out" || fail "1-byte file differs"
[ "$(vprop "$PA" Locked)" = false ] || fail "vault still locked after the PIN through age"
pass "locked: the recovery key typed at age's own prompt (request-secret) unlocks the vault and decrypts"
for f in empty big; do
	AGE -d -i "$D/files/ida" "$D/files/$f.age" >"$D/files/$f.out" || fail "decrypt $f after unlock"
	cmp "$D/files/$f" "$D/files/$f.out" || fail "$f differs"
done
pass "unlocked: the empty and the 1 MiB file decrypt with the identity file, byte for byte"

# A vault whose protector is a security key without PIN: the plugin unlocks it with a touch, and age
# shows the plugin's message (msg) asking for it.
PC=$(create_vault agec "$D/rkc") || fail "CreateVault agec"
T --vault agec enroll fido2 --no-pin </dev/null >"$D/enroll.out" 2>&1 || fail "enroll fido2 --no-pin: $(cat "$D/enroll.out")"
RC=$(T age-recipient agec) || fail "age-recipient agec"
T age-identity agec >"$D/files/idc" || fail "age-identity agec"
vcall "$PC" Lock || fail "Lock agec"
AGE -r "$RC" -o "$D/files/c.age" "$D/files/one" || fail "encrypt to agec"
out=$(AGE -d -i "$D/files/idc" -o "$D/files/c.out" "$D/files/c.age" 2>&1) || fail "decrypt with a touch: $out"
cmp -s "$D/files/one" "$D/files/c.out" || fail "agec: file differs"
grep -q "Touch your security key" <<<"$out" || fail "age did not show the plugin's touch message: $out"
[ "$(vprop "$PC" Locked)" = false ] || fail "agec still locked"
pass "locked vault with a touch-only security key: the plugin unlocks it with a touch, age shows \"$(grep -o 'Touch your security key[^)]*)' <<<"$out")\""

# Vault B's identity does not open A's file (B unlocked, so nothing is hidden behind "locked").
unlock "$PB" recovery "$D/rkb" >/dev/null || fail "Unlock ageb"
out=$(AGE -d -i "$D/files/idb" "$D/files/one.age" 2>&1) && fail "B's identity opened A's file"
grep -q "no identity matched" <<<"$out" || fail "B's identity on A's file: $out"
pass "a file for vault A is refused by vault B's identity (age: no identity matched)"

# An identity with A's public tag (it is in the recipient) and the rest made up, listed before A's
# own: the plugin tries every identity whose tag matches, so the made-up one hides nothing.
unlock "$PA" recovery "$D/rka" >/dev/null 2>&1 || true
SHADOW=$(/usr/bin/python3 - "$(vprop "$PA" Id | tr -d '"')" <<PY
import sys
sys.path.insert(0, "$TS_SRC/tests/integration")
from age_vectors import bech32
vid = bytes.fromhex(sys.argv[1])
print(bech32("AGE-PLUGIN-TOKENSEAL-", bytes([1]) + vid[:8] + bytes(8)))
PY
) || fail "make the shadow identity"
{ echo "$SHADOW"; grep '^AGE-PLUGIN' "$D/files/ida"; } >"$D/files/ids2"
out=$(AGE -d -i "$D/files/ids2" -o "$D/files/one.shadow" "$D/files/one.age" 2>&1) && cmp -s "$D/files/one" "$D/files/one.shadow" ||
	fail "an identity with A's tag listed first hid A's own: $out"
pass "an identity sharing A's public tag, listed first, does not hide A's own identity"

# Another uid with A's identity file and A unlocked: neither the plugin nor the bus gives it anything.
out=$(as_other env PATH="$PATH" setsid -w age -d -i "$D/files/ida" "$D/files/one.age" 2>&1 </dev/null) &&
	fail "uid $OTHER_UID decrypted with root's identity"
grep -q "no tokenseal vault with id [0-9a-f]* is yours to use" <<<"$out" || fail "other uid: $out"
# stanza_args FILE — the tokenseal stanza of an age file as AgeUnwrap's busctl arguments: "V 32 b... 32 b...".
stanza_args() {
	/usr/bin/python3 - "$1" <<'PY'
import base64, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
i = next(k for k, l in enumerate(lines) if l.startswith(b"-> tokenseal "))
d = lambda s: base64.b64decode(s + b"=" * (-len(s) % 4))
w = lines[i].split(b" ")
print(int(w[3]), 32, *d(w[4]), 32, *d(lines[i + 1]))
PY
}
# The attacker has the file: the real stanza, straight to the daemon.
expect_fail "UnknownObject" as_other_bq vcall "$PA" AgeUnwrap 'uayay' $(stanza_args "$D/files/one.age")
out=$(vcall "$PA" AgeUnwrap 'uayay' $(stanza_args "$D/files/one.age")) || fail "owner's AgeUnwrap"
[[ $out == "ay 16 "* ]] || fail "owner's AgeUnwrap: $out"
share=$(printf '32%.0s' ; for i in $(seq 32); do printf ' 9'; done)
expect_fail "UnknownObject" as_other_bq vcall "$PA" AgeRecipient
pass "uid $OTHER_UID with A's identity file: refused by the plugin; AgeUnwrap of the file's real stanza and AgeRecipient on A answer it UnknownObject (the owner gets the 16-byte file key)"

# Two recipients: tokenseal and a native X25519 key; each identity alone decrypts.
age-keygen -o "$D/files/native" 2>/dev/null || fail "age-keygen"
NATIVE=$(age-keygen -y "$D/files/native")
AGE -r "$RA" -r "$NATIVE" -o "$D/files/two.age" "$D/files/one" || fail "age -r tokenseal -r X25519"
for id in ida native; do
	AGE -d -i "$D/files/$id" -o "$D/files/two.$id" "$D/files/two.age" || fail "two recipients: $id"
	cmp "$D/files/one" "$D/files/two.$id" || fail "two recipients: $id differs"
done
pass "age -r age1tokenseal1... -r age1...: the tokenseal identity and the native X25519 identity each decrypt"

# The tokenseal identity listed first while its vault is locked and nobody can type a PIN: the
# plugin says why and lets age go on to the native identity, which opens the file.
vcall "$PA" Lock || fail "Lock agea"
cat "$D/files/ida" "$D/files/native" >"$D/files/both"
out=$(AGE -d -i "$D/files/both" -o "$D/files/two.both" "$D/files/two.age" 2>&1) ||
	fail "a locked tokenseal identity first stopped the native one: $out"
cmp -s "$D/files/one" "$D/files/two.both" || fail "two recipients, both identities: differs"
unlock "$PA" recovery "$D/rka" >/dev/null || fail "Unlock agea again"
pass "a locked tokenseal identity listed before a native one does not stop age from using the native one"

# Encrypting to the identity (age -e -i): to the vault's current recipient, which needs it unlocked.
AGE -e -i "$D/files/ida" -o "$D/files/toid.age" "$D/files/one" || fail "age -e -i identity"
AGE -d -i "$D/files/ida" -o "$D/files/toid.out" "$D/files/toid.age" && cmp -s "$D/files/one" "$D/files/toid.out" ||
	fail "decrypt a file encrypted to the identity"
vcall "$PB" Lock || fail "Lock ageb"
out=$(AGE -e -i "$D/files/idb" -o "$D/files/toid-b.age" "$D/files/one" 2>&1) && fail "encrypted to a locked vault's identity"
grep -q "encrypting to an identity needs the vault unlocked" <<<"$out" || fail "age -e -i, vault locked: $out"
pass "age -e -i IDENTITY encrypts to the vault's current recipient (unlocked); locked, it says to use the recipient"

# A flipped byte in the stanza (the share, the body, the version) is refused before age sees a key.
flip() { # FIELD OUT — copy one.age with one character of the tokenseal stanza's FIELD changed
	/usr/bin/python3 - "$D/files/one.age" "$2" "$1" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
head, sep, rest = data.partition(b"\n--- ")
lines = head.split(b"\n")
i = next(k for k, l in enumerate(lines) if l.startswith(b"-> tokenseal "))
w = lines[i].split(b" ")
swap = lambda s, k: s[:k] + (b"B" if s[k:k + 1] != b"B" else b"C") + s[k + 1:]
if sys.argv[3] == "share":
    w[4] = swap(w[4], 5)
elif sys.argv[3] == "version":
    w[3] = b"2"
elif sys.argv[3] == "tag":
    w[2] = swap(w[2], 3)
lines[i] = b" ".join(w)
if sys.argv[3] == "body":
    lines[i + 1] = swap(lines[i + 1], 7)
open(sys.argv[2], "wb").write(b"\n".join(lines) + sep + rest)
PY
}
for field in share body version; do
	flip $field "$D/files/flip.age" || fail "flip $field"
	cmp -s "$D/files/one.age" "$D/files/flip.age" && fail "flip $field changed nothing"
	rm -f "$D/files/flip.out"
	out=$(AGE -d -i "$D/files/ida" -o "$D/files/flip.out" "$D/files/flip.age" 2>&1) && fail "flipped $field decrypted"
	grep -q "does not open with this vault's age key" <<<"$out" || fail "flipped $field: $out"
	[ ! -s "$D/files/flip.out" ] || fail "flipped $field: output written"
done
flip tag "$D/files/flip.age"
out=$(AGE -d -i "$D/files/ida" "$D/files/flip.age" 2>&1) && fail "flipped tag decrypted"
grep -q "no identity matched" <<<"$out" || fail "flipped tag: $out"
pass "one character changed in the stanza's share, body or version: refused by the daemon (AEAD), nothing written; in the vault tag: not this vault's"

# Grease and unknown stanzas, in both state machines, through a driver that always sends them.
DRIVE=(/usr/bin/python3 "$TS_SRC/tests/integration/age_plugin_drive.py" "$PLUGIN")
export AGE_DRIVE_FILE_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
read -r ftype ttype tag ver shr body < <("${DRIVE[@]}" recipient "$RA") || fail "recipient-v1 with grease"
[ "$ftype $ttype" = "0 tokenseal" ] || fail "recipient-v1 with grease: $ftype $ttype"
out=$("${DRIVE[@]}" identity "$(grep ^AGE "$D/files/ida")" tokenseal "$tag $ver $shr" "$body") || fail "identity-v1: $out"
[ "$out" = "FILE-KEY $AGE_DRIVE_FILE_KEY" ] || fail "identity-v1 with grease and unknown stanzas: $out"
out=$("${DRIVE[@]}" identity "$(grep ^AGE "$D/files/ida")" tokenseal "$tag $ver" "$body" 2>&1) && fail "a stanza of 2 args accepted: $out"
grep -q "^ERROR stanza 0 2 malformed tokenseal stanza" <<<"$out" || fail "malformed stanza: $out"
pass "grease stanzas (phase 1, between commands) and unknown stanza types are ignored; a malformed tokenseal stanza is an error naming it"

# The file key the daemon just gave out (the driver's random one) is nowhere in its memory after the
# reply; the vault's id, which it keeps, is found (the scan is not blind).
{ echo "file-key $AGE_DRIVE_FILE_KEY"; echo "vault-id $(vprop "$PA" Id | tr -d '"')"; } >"$D/pat"
"$TS_BUILD/tests/tools/core_memscan" "$DAEMON_PID" "$D/pat" >"$D/scan" || fail "core_memscan (needs root)"
grep -qx "file-key: 0 hits" "$D/scan" && ! grep -qx "vault-id: 0 hits" "$D/scan" ||
	fail "daemon memory after AgeUnwrap: $(cat "$D/scan")"
pass "after AgeUnwrap answered, no copy of the file key (nor half of one) in the daemon's memory (its vault id: found)"

# Rotation: a new recipient; old files open until their version is retired, then never.
AGE -r "$RA" -o "$D/files/v1.age" "$D/files/one" || fail "encrypt v1"
T --vault agea rotate >/dev/null || fail "rotate"
RA2=$(T age-recipient agea) || fail "age-recipient after rotate"
[ "$RA2" != "$RA" ] || fail "same recipient after rotate"
AGE -r "$RA2" -o "$D/files/v2.age" "$D/files/one" || fail "encrypt v2"
AGE -d -i "$D/files/ida" -o /dev/null "$D/files/v1.age" || fail "v1 file after rotate"
T --vault agea rotate --retire-below 2 >/dev/null || fail "rotate --retire-below 2"
out=$(AGE -d -i "$D/files/ida" -o "$D/files/v1.out" "$D/files/v1.age" 2>&1) && fail "v1 file opened after retire"
grep -q "key version 1: the stanza's root key version was retired" <<<"$out" || fail "retired: $out"
AGE -d -i "$D/files/ida" -o "$D/files/v2.out" "$D/files/v2.age" || fail "v2 file after retiring v1"
cmp "$D/files/one" "$D/files/v2.out" || fail "v2 file differs"
pass "after rotate the recipient changes; v1 files open until v1 is retired, then \"retired\"; v2 files open"

# AgeUnwrap directly: locked, a random body, a retired or unknown version.
expect_fail "share and body must be 32 bytes" vcall "$PA" AgeUnwrap 'uayay' 3 1 0 1 0
expect_fail "BadBlob" vcall "$PA" AgeUnwrap 'uayay' 3 $share $share
expect_fail "KeyRetired" vcall "$PA" AgeUnwrap 'uayay' 1 $share $share
expect_fail "BadBlob" vcall "$PA" AgeUnwrap 'uayay' 99 $share $share
vcall "$PA" Lock || fail "Lock"
expect_fail "Locked" vcall "$PA" AgeUnwrap 'uayay' 3 $share $share
expect_fail "Locked" vcall "$PA" AgeRecipient
out=$(T age-recipient agea 2>&1) && fail "age-recipient while locked"
grep -q "unlock it once" <<<"$out" || fail "age-recipient locked: $out"
core_finish
pass "AgeUnwrap: BadBlob for a body that does not verify, KeyRetired, Locked; AgeRecipient needs the vault unlocked"
