#!/bin/bash
# ldap-escrow.sh — escrow records in a real OpenLDAP directory (slapd on ldapi:// in a temp dir, SASL EXTERNAL):
# publish, read back, refresh on an escrow change, recover --from-ldap on another machine, tampered records
# refused, directory down, a vault gone is removed.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/slapd.sh"
D=$RIG_DIR
T=$TOKENSEAL
ts() { "$T" --vault fleet "$@"; }
publish() { "$T" escrow publish --to-ldap "$LDAP_URI" --base "$LDAP_BASE" --state-dir "$STATE_DIR" --machine-id m1 "$@"; }
stored_b64() { ldap_search -o ldif-wrap=no -b "cn=m1.$1,$LDAP_BASE" -s base tokensealVaultFile | sed -n 's/^tokensealVaultFile:: //p'; }

# TLS for the ldaps:// and ldap:// (StartTLS) listeners: a certificate for 127.0.0.1 that no system CA signed.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$D/tls.key" -out "$D/tls.crt" >/dev/null 2>&1 || fail "openssl req"
SLAPD_TLS_CERT=$D/tls.crt SLAPD_TLS_KEY=$D/tls.key
LPORT=$(free_port) SPORT=$(free_port)
SLAPD_EXTRA_URLS="ldap://127.0.0.1:$LPORT/ ldaps://127.0.0.1:$SPORT/"
slapd_start "$D/ldap"
rig_start_bus
rig_start_daemon --idle-lock 0
for o in alice bob; do "$T" escrow keygen --out-secret "$D/$o.sec" >"$D/$o.pub" || fail "keygen $o"; done
ts create >"$D/rk" || fail "create"
ts escrow set --threshold 2 "alice=$(cat "$D/alice.pub")" "bob=$(cat "$D/bob.pub")" >/dev/null || fail "escrow set"
printf 'escrowed data\n' | ts wrap --text -c app=fleet >"$D/blob" || fail "wrap"
VID=$(ts status | sed -n 's/^ *id: *//p')
[ ${#VID} = 32 ] || fail "vault id: '$VID'"
"$T" --vault plain create >/dev/null || fail "create plain"

# --- publish: one entry per (machine, vault), read back and compared; a vault without escrow is skipped.
publish >"$D/p" 2>&1 || fail "publish: $(cat "$D/p")"
grep -q "^published fleet (uid 0, generation [0-9]*, 2 officer(s), 2 needed): cn=m1.$VID,$LDAP_BASE, read back and verified$" "$D/p" ||
	fail "publish output: $(cat "$D/p")"
grep -q "^skipped plain (uid 0): no escrow recipients$" "$D/p" || fail "plain not skipped: $(cat "$D/p")"
[ "$(stored_b64 "$VID")" = "$(base64 -w0 "$STATE_DIR/0/fleet.vault")" ] || fail "the directory does not hold the vault file"
ldap_search -b "cn=m1.$VID,$LDAP_BASE" -s base >"$D/entry"
for a in "tokensealVaultId: $VID" "tokensealMachineId: m1" "tokensealVaultName: fleet" "tokensealOwnerUid: 0" \
	"tokensealEscrowThreshold: 2" "tokensealEscrowRecipient: alice" "tokensealEscrowRecipient: bob"; do
	grep -qx "$a" "$D/entry" || fail "entry lacks '$a': $(cat "$D/entry")"
done
publish >"$D/p" 2>&1 || fail "publish again"
grep -q "^0 published, 1 unchanged, 1 without escrow, 0 failed$" "$D/p" || fail "second publish rewrote: $(cat "$D/p")"
pass "escrow publish: the vault file under cn=MACHINE.VAULT-ID, read back and verified; unchanged is not rewritten"

# --- the network: ldap:// only with StartTLS; the server's certificate verified, whatever an ldaprc or LDAPTLS_*
# says (the certificate here is signed by no CA the system knows; --ca-file names it).
mkdir -p "$D/cwd"
printf 'TLS_REQCERT never\n' >"$D/cwd/ldaprc"
try_uri() { # uri [options]: publish from a directory with a hostile ldaprc; its stderr in $D/p
	local uri=$1 rc=0
	shift
	(cd "$D/cwd" && HOME=$D/cwd LDAPTLS_REQCERT=never "$T" escrow publish --to-ldap "$uri" --base "$LDAP_BASE" \
		--state-dir "$STATE_DIR" --machine-id m1 "$@") >/dev/null 2>"$D/p" || rc=$?
	[ $rc -ne 0 ] || fail "publish over $uri $* succeeded without any identity"
}
try_uri "ldap://127.0.0.1:$LPORT"
grep -q "StartTLS failed (.*); refusing to bind or send records in the clear" "$D/p" ||
	fail "ldap:// whose StartTLS does not verify: $(cat "$D/p")"
try_uri "ldaps://127.0.0.1:$SPORT"
grep -q "Can't contact LDAP server" "$D/p" ||
	fail "ldaps:// with an unverifiable certificate (ldaprc says TLS_REQCERT never): $(cat "$D/p")"
# Control: with the CA given, both get through TLS, to a bind that fails only for want of a client certificate.
try_uri "ldap://127.0.0.1:$LPORT" --ca-file "$D/tls.crt"
grep -q "cannot bind (SASL EXTERNAL)" "$D/p" && ! grep -q "Can't contact" "$D/p" ||
	fail "ldap:// + StartTLS with --ca-file: $(cat "$D/p")"
try_uri "ldaps://127.0.0.1:$SPORT" --ca-file "$D/tls.crt"
grep -q "cannot bind (SASL EXTERNAL)" "$D/p" && ! grep -q "Can't contact" "$D/p" ||
	fail "ldaps:// with --ca-file: $(cat "$D/p")"
pass "ldap:// needs StartTLS; the certificate must verify (no ldaprc, ~/.ldaprc or LDAPTLS_* obeyed); --ca-file"

# --- a hostile server's huge entry is refused as it arrives (libldap's limit on one message), not buffered.
python3 -c 'import base64, sys; sys.stdout.write("dn: cn=m1.%s,%s\nchangetype: add\nobjectClass: tokensealEscrowRecord\ncn: m1.%s\ntokensealVaultId: %s\ntokensealMachineId: m1\ntokensealVaultFile:: %s\n" % (sys.argv[1], sys.argv[2], sys.argv[1], sys.argv[1], base64.b64encode(b"x" * (4608 * 1024)).decode()))' \
	"ffffffffffffffffffffffffffffffff" "$LDAP_BASE" | ldap_modify >/dev/null || fail "ldapadd of a huge entry"
mkdir -p "$D/huge"
rc=0; "$T" escrow recover --from-ldap "$LDAP_URI" --base "$LDAP_BASE" --vault-id ffffffffffffffffffffffffffffffff \
	--machine-id m1 --yes --state-dir "$D/huge" --secret "$D/alice.sec" >"$D/rec" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "read cn=m1.f*,$LDAP_BASE: Can't contact LDAP server" "$D/rec" ||
	fail "a 4.5 MiB entry: rc $rc $(cat "$D/rec")"
printf 'dn: cn=m1.ffffffffffffffffffffffffffffffff,%s\nchangetype: delete\n' "$LDAP_BASE" | ldap_modify >/dev/null
pass "an entry larger than any record is refused as it arrives"

# --- an escrow change is published again (1 of 2 officers now).
mkdir -p "$D/older/0"; cp "$STATE_DIR/0/fleet.vault" "$D/older/0/"
ts escrow set --threshold 1 "alice=$(cat "$D/alice.pub")" "bob=$(cat "$D/bob.pub")" >/dev/null || fail "escrow set 1"
publish >"$D/p" 2>&1 || fail "publish after the change"
grep -q "^published fleet .* 1 needed)" "$D/p" || fail "the change was not published: $(cat "$D/p")"
[ "$(stored_b64 "$VID")" = "$(base64 -w0 "$STATE_DIR/0/fleet.vault")" ] || fail "the directory holds the old file"
pass "an escrow change is published again (threshold 2 -> 1)"

# --- a run that read an older file (racing a newer save the daemon published) never puts it back.
"$T" escrow publish --to-ldap "$LDAP_URI" --base "$LDAP_BASE" --state-dir "$D/older" --machine-id m1 >"$D/p" 2>&1 ||
	fail "publish of an older file: $(cat "$D/p")"
grep -q "^unchanged fleet (uid 0): cn=m1.$VID,$LDAP_BASE holds generation [0-9]*, later than this file's; left alone$" "$D/p" ||
	fail "an older file: $(cat "$D/p")"
[ "$(stored_b64 "$VID")" = "$(base64 -w0 "$STATE_DIR/0/fleet.vault")" ] || fail "an older file replaced the newer record"
pass "an older generation never replaces a newer record"

# --- recover reads exactly cn=MACHINE.VAULT-ID: another machine's entry claiming to be m1's record of this vault
# neither answers nor blocks it; the officer sees what the record is (and when and by whom it was written) and
# nothing is written without a confirmation.
recover() { "$T" escrow recover --from-ldap "$LDAP_URI" --base "$LDAP_BASE" --vault-id "$VID" "$@"; }
printf 'dn: cn=m2.%s,%s\nobjectClass: tokensealEscrowRecord\ncn: m2.%s\ntokensealVaultId: %s\ntokensealMachineId: m1\ntokensealVaultFile:: %s\n' \
	"$VID" "$LDAP_BASE" "$VID" "$VID" "$(base64 -w0 "$STATE_DIR/0/plain.vault")" | ldapadd -Q -Y EXTERNAL -H "$LDAP_URI" >/dev/null ||
	fail "ldapadd of m2's entry"
mkdir -p "$D/state2"
rc=0; recover --state-dir "$D/state2" --secret "$D/alice.sec" >"$D/rec" 2>&1 </dev/null || rc=$?
[ $rc = 2 ] && grep -q "needs --machine-id" "$D/rec" || fail "recover without --machine-id: rc $rc $(cat "$D/rec")"
rc=0; recover --machine-id m1 --state-dir "$D/state2" --secret "$D/alice.sec" >"$D/rec" 2>&1 </dev/null || rc=$?
[ $rc = 2 ] && grep -q "not confirmed: .* run again with --yes; nothing written" "$D/rec" ||
	fail "recover without --yes and no terminal: rc $rc $(cat "$D/rec")"
for a in "Escrow record cn=m1.$VID,$LDAP_BASE" "vault:     'fleet' (id $VID)" "owner:     uid 0" "generation: " \
	"written:   20[0-9-]* [0-9:]* UTC, by gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"; do
	grep -q "$a" "$D/rec" || fail "the record shown lacks '$a': $(cat "$D/rec")"
done
[ -z "$(find "$D/state2" -name '*.vault*')" ] || fail "a vault was written without confirmation"
pass "recover --from-ldap reads cn=MACHINE.VAULT-ID alone, shows what and who wrote it, and needs --machine-id and --yes"

# --- recover on another machine, from the directory alone, by one officer; the data opens.
recover --machine-id m1 --yes --state-dir "$D/state2" --secret "$D/alice.sec" >"$D/rec" 2>&1 ||
	fail "recover --from-ldap: $(cat "$D/rec")"
NEWKEY=$(grep -Eo '[0-9A-Z]{5}(-[0-9A-Z]{5}){7}' "$D/rec" | head -n1)
[ -n "$NEWKEY" ] || fail "no new recovery key: $(cat "$D/rec")"
rig_stop_daemon
STATE1=$STATE_DIR
STATE_DIR=$D/state2 rig_start_daemon --idle-lock 0
printf '%s\n' "$NEWKEY" >"$D/newkey"
ts unlock --protector recovery --pin-fd 3 3<"$D/newkey" >/dev/null || fail "unlock with the recovered vault's new key"
[ "$(ts unwrap -c app=fleet <"$D/blob")" = "escrowed data" ] || fail "unwrap after recovery from the directory"
rig_stop_daemon
pass "escrow recover --from-ldap on another machine: one officer, a new recovery key, the data opens"

# --- a record tampered with in the directory is refused: a flipped byte, and another vault's file.
good=$(stored_b64 "$VID")
set_file() { printf 'dn: cn=m1.%s,%s\nchangetype: modify\nreplace: tokensealVaultFile\ntokensealVaultFile:: %s\n' \
	"$VID" "$LDAP_BASE" "$1" | ldap_modify >/dev/null || fail "ldapmodify"; }
rm -rf "$D/state3"; mkdir -p "$D/state3"
flipped=$(base64 -d <<<"$good" | python3 -c 'import sys; b = bytearray(sys.stdin.buffer.read()); b[len(b) // 2] ^= 1; sys.stdout.buffer.write(b)' | base64 -w0)
set_file "$flipped"
rc=0; recover --machine-id m1 --yes --state-dir "$D/state3" --secret "$D/alice.sec" >"$D/rec" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a tampered record was recovered: $(cat "$D/rec")"
grep -q "escrow recovery failed: Authentication failed" "$D/rec" || fail "tampered record: $(cat "$D/rec")"
[ -z "$(find "$D/state3" -name '*.vault*')" ] || fail "a vault was written from a tampered record: $(find "$D/state3")"
set_file "$(base64 -w0 "$STATE1/0/plain.vault")"
rc=0; recover --machine-id m1 --yes --state-dir "$D/state3" --secret "$D/alice.sec" >"$D/rec" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "holds vault [0-9a-f]*, not $VID; refused" "$D/rec" || fail "a swapped record: rc $rc $(cat "$D/rec")"
set_file "$good"
pass "a record tampered with in the directory (a flipped byte, another vault's file) is refused at recovery"

# --- the directory down: publish fails and says so; back up, it catches up; a vault gone is removed.
STATE_DIR=$STATE1
slapd_stop "$D/ldap"
rc=0; publish >"$D/p" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "cannot bind" "$D/p" || fail "publish with the directory down: rc $rc $(cat "$D/p")"
slapd_start "$D/ldap"
# An owner's directory that cannot be read (here: root without CAP_DAC_*) fails the run, and removes nothing.
mkdir -m 700 "$STATE_DIR/1000"; chown 1000 "$STATE_DIR/1000"
mv "$STATE_DIR/0/fleet.vault" "$STATE_DIR/1000/"
rc=0; setpriv --bounding-set=-dac_override,-dac_read_search -- "$T" escrow publish --to-ldap "$LDAP_URI" \
	--base "$LDAP_BASE" --state-dir "$STATE_DIR" --machine-id m1 >"$D/p" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "$STATE_DIR/1000: Permission denied; that owner's vaults not published, nothing removed" "$D/p" ||
	fail "an unreadable owner directory: rc $rc $(cat "$D/p")"
[ -n "$(stored_b64 "$VID")" ] || fail "the record of a vault in an unreadable owner directory was removed: $(cat "$D/p")"
mv "$STATE_DIR/1000/fleet.vault" "$STATE_DIR/0/"; rmdir "$STATE_DIR/1000"
pass "an owner directory that cannot be read fails the publish and removes nothing"
rm -f "$STATE_DIR/0/fleet.vault" "$STATE_DIR/0/fleet.vault.bak"
publish >"$D/p" 2>&1 || fail "publish after the vault went: $(cat "$D/p")"
grep -q "^removed cn=m1.$VID,$LDAP_BASE (its vault is gone from this machine)$" "$D/p" || fail "not removed: $(cat "$D/p")"
[ "$(ldap_search -b "$LDAP_BASE" -s one dn)" = "dn: cn=m2.$VID,$LDAP_BASE" ] ||
	fail "entries left: $(ldap_search -b "$LDAP_BASE" -s one dn) (m2's entry, which says m1, must stay: it is not named m1's)"
pass "the directory down: publish fails naming it; back up: the record of a vault gone is removed"

# --- the access control contrib/ldap/README.md recommends, on this slapd: another machine (uid 65534, mapped to
# cn=m2,ou=machines) may add and change only entries named after itself, never m1's.
slapd_machine_acl 65534 m2
as_m2() { setpriv --reuid 65534 --regid 65534 --clear-groups -- ldapmodify -Q -Y EXTERNAL -H "$LDAP_URI"; }
entry_ldif() { printf 'dn: cn=%s.%s,%s\nchangetype: add\nobjectClass: tokensealEscrowRecord\ncn: %s.%s\ntokensealVaultId: %s\ntokensealMachineId: %s\ntokensealVaultFile:: AA==\n' \
	"$1" "$2" "$LDAP_BASE" "$1" "$2" "$2" "$1"; }
chmod 0711 "$D"
H1=11111111111111111111111111111111
[ "$(setpriv --reuid 65534 --regid 65534 --clear-groups -- ldapwhoami -Q -Y EXTERNAL -H "$LDAP_URI")" = "dn:cn=m2,$MACHINES" ] ||
	fail "uid 65534 is not mapped to cn=m2"
rc=0; entry_ldif m1 "$H1" | as_m2 >"$D/acl" 2>&1 || rc=$?
[ $rc = 50 ] || fail "m2 added an entry named after m1: rc $rc $(cat "$D/acl")"
entry_ldif m2 "$H1" | as_m2 >"$D/acl" 2>&1 || fail "m2 cannot add its own entry: $(cat "$D/acl")"
rc=0; printf 'dn: cn=m2.%s,%s\nchangetype: modrdn\nnewrdn: cn=m1.%s\ndeleteoldrdn: 1\n' "$H1" "$LDAP_BASE" "$H1" | as_m2 >"$D/acl" 2>&1 || rc=$?
[ $rc = 50 ] || fail "m2 renamed its entry to m1's name: rc $rc $(cat "$D/acl")"
H2=22222222222222222222222222222222
entry_ldif m1 "$H2" | ldap_modify >/dev/null || fail "root adds m1's entry"
rc=0; printf 'dn: cn=m1.%s,%s\nchangetype: modify\nreplace: tokensealVaultFile\ntokensealVaultFile:: AQ==\n' "$H2" "$LDAP_BASE" |
	as_m2 >"$D/acl" 2>&1 || rc=$?
[ $rc = 50 ] || fail "m2 replaced the vault file of m1's record: rc $rc $(cat "$D/acl")"
chmod 0700 "$D"
pass "the recommended ACL: a machine adds, renames and changes only entries named after itself"
