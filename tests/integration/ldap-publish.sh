#!/bin/bash
# ldap-publish.sh — [escrow] publish = required: the daemon keeps each vault's escrow record in a real OpenLDAP
# directory (slapd on ldapi:// in a temp dir; the helper binds as the machine's entry with a password file).
# Directory down at creation: Wrap refused with the reason, then allowed once the queue flushes; the record is the
# one an officer recovers from; an escrow change is written again; a restart does not refuse what is stored; a
# vault gone is removed; a record the directory does not hold back (a wrong password) is never taken as stored.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/slapd.sh"
D=$RIG_DIR
T=$TOKENSEAL
ts() { "$T" --vault pub "$@"; }
stored_b64() { ldap_search -o ldif-wrap=no -b "cn=m1.$1,$LDAP_BASE" -s base tokensealVaultFile | sed -n 's/^tokensealVaultFile:: //p'; }
# Wait (at most $2 s) until the command $1 succeeds.
wait_for() { local i; for i in $(seq $(($2 * 10))); do if eval "$1" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done; return 1; }

slapd_start "$D/ldap"
# The machine's entry (simple bind with a password), and the recommended access control: m1 writes m1's records.
printf 'dn: %s\nobjectClass: organizationalUnit\nou: machines\n\ndn: cn=m1,%s\nobjectClass: device\nobjectClass: simpleSecurityObject\ncn: m1\nuserPassword: m1-secret\n' \
	"$MACHINES" "$MACHINES" | ldapadd -Q -Y EXTERNAL -H "$LDAP_URI" >/dev/null || fail "ldapadd machines"
slapd_machine_acl 65534 m2
# The helper (its own user) reaches the ldapi socket in the test's directory.
chmod 0711 "$D"
for o in alice bob; do "$T" escrow keygen --out-secret "$D/$o.sec" >"$D/$o.pub" || fail "keygen $o"; done
printf 'm1-secret\n# the first line is the password\n' >"$D/m1.pw"
chmod 0600 "$D/m1.pw"
mkdir -p "$D/policy"
cat >"$D/policy/10-escrow.conf" <<EOF
[escrow]
threshold = 1
publish = required
ldap-uri = $LDAP_URI
ldap-base = $LDAP_BASE
ldap-bind-dn = cn=m1,$MACHINES
ldap-password-file = $D/m1.pw
machine-id = m1
[recipient alice]
key = $(cat "$D/alice.pub")
[recipient bob]
key = $(cat "$D/bob.pub")
EOF
"$T" policy check "$D/policy/10-escrow.conf" >/dev/null || fail "policy check: $("$T" policy check "$D/policy/10-escrow.conf" 2>&1)"
rig_start_bus
start() { rig_start_daemon --idle-lock 0 --policy-dir "$D/policy" "$@"; }
start

# --- a policy that says publish without where is refused at load, and so is a list of URIs (libldap would fall
# back to the second one without the first one's TLS).
printf '[escrow]\npublish = required\n' >"$D/bad.conf"
rc=0; "$T" policy check "$D/bad.conf" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "publish = required needs ldap-uri and ldap-base" "$D/out" || fail "publish without a directory: $(cat "$D/out")"
printf '[escrow]\nldap-uri = ldaps://dir.example ldap://10.0.0.9\n' >"$D/bad.conf"
rc=0; "$T" policy check "$D/bad.conf" >"$D/out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "one URI only, not a list" "$D/out" || fail "a list of URIs: $(cat "$D/out")"

# --- the directory down when the vault is made: Wrap and GenerateDataKey are refused, with the reason.
slapd_stop "$D/ldap"
ts create >"$D/rk" 2>/dev/null || fail "create"
VID=$(ts status | sed -n 's/^ *id: *//p')
[ ${#VID} = 32 ] || fail "vault id: '$VID'"
wait_for "grep -q 'escrow publish: vault $VID: .*next try in' '$D/daemon.log'" 10 || fail "no failed publish logged: $(tail -5 "$D/daemon.log")"
rc=0; printf 'k\n' | ts wrap --text -c app=pub >"$D/out" 2>&1 || rc=$?
[ $rc = 10 ] || fail "Wrap with the record not stored: rc $rc $(cat "$D/out")"
grep -q "\[escrow\] publish ($D/policy/10-escrow.conf:[0-9]*): the escrow record of vault 'pub' is not stored in ldapi://.* yet (.*Can't contact LDAP server.*); queued, next try in [0-9]* s" "$D/out" ||
	fail "the refusal does not say why: $(cat "$D/out")"
rc=0; ts gen-key -c app=pub >"$D/out" 2>&1 || rc=$?
[ $rc = 10 ] && grep -q "not stored in" "$D/out" || fail "GenerateDataKey with the record not stored: rc $rc $(cat "$D/out")"
rc=0; ts age-recipient >"$D/out" 2>&1 || rc=$?
[ $rc = 10 ] && grep -q "not stored in" "$D/out" || fail "AgeRecipient with the record not stored: rc $rc $(cat "$D/out")"
# The batches of new blobs are held back too, before their items are looked at.
for call in "RewrapBatch aaya{ss} 1 3 1 2 3 0" "RewrapBatchPacked aya{ss} 7 3 0 0 0 1 2 3 0"; do
	rc=0; busctl --address="$BUS_ADDRESS" call org.tokenseal1 /org/tokenseal1/user/0/vault/pub org.tokenseal1.Vault \
		$call >"$D/out" 2>&1 || rc=$?
	[ $rc != 0 ] && grep -q "not stored in" "$D/out" || fail "${call%% *} with the record not stored: rc $rc $(cat "$D/out")"
done
ts status >"$D/st" 2>&1
grep -q "not stored in ldapi://" "$D/st" || fail "status does not show the pending record: $(cat "$D/st")"
pass "the directory down at creation: Wrap, GenerateDataKey, AgeRecipient, RewrapBatch and RewrapBatchPacked refused naming the rule, the directory and the reason"

# --- the directory back: the queue flushes (back-off at most 8 s by now) and the vault is used.
slapd_start "$D/ldap"
wait_for "printf 'escrowed\n' | '$T' --vault pub wrap --text -c app=pub >'$D/blob'" 20 ||
	fail "Wrap still refused with the directory back: $(printf 'x\n' | ts wrap --text -c app=pub 2>&1)"
[ "$(stored_b64 "$VID")" = "$(base64 -w0 "$STATE_DIR/0/pub.vault")" ] || fail "the directory does not hold the vault file"
ldap_search -b "cn=m1.$VID,$LDAP_BASE" -s base modifiersName tokensealMachineId >"$D/entry"
grep -qi "^modifiersName: cn=m1,$MACHINES" "$D/entry" || fail "not written as the machine's entry: $(cat "$D/entry")"
grep -q "event=escrow-published vault=pub uid=0 id=$VID: record written, read back and verified" "$D/daemon.log" ||
	fail "no escrow-published record in the log"
pass "the directory back: the record written as cn=m1 and verified, then Wrap works"

# --- an officer recovers the vault from the record the daemon wrote.
mkdir -p "$D/state2"
"$T" escrow recover --from-ldap "$LDAP_URI" --base "$LDAP_BASE" --vault-id "$VID" --machine-id m1 --yes \
	--state-dir "$D/state2" --secret "$D/alice.sec" >"$D/rec" 2>&1 || fail "recover --from-ldap: $(cat "$D/rec")"
[ -f "$D/state2/0/pub.vault" ] || fail "no vault recovered: $(cat "$D/rec")"
pass "escrow recover --from-ldap opens the record the daemon published"

# --- a new root key (what the officers need changed) is written again; the vault stays usable once it is.
ts rotate >/dev/null || fail "rotate"
wait_for "[ \"\$(stored_b64 $VID)\" = \"\$(base64 -w0 '$STATE_DIR/0/pub.vault')\" ]" 15 || fail "the new root key's record was not written"
printf 'after\n' | ts wrap --text -c app=pub >/dev/null || fail "Wrap after the rotation's record was stored"
pass "a new root key: the record is written again, and Wrap goes on"

# --- a restart with the directory down: what was verified is remembered (no refusal).
rig_stop_daemon
slapd_stop "$D/ldap"
start
grep -Eo '[0-9A-Z]{5}(-[0-9A-Z]{5}){7}' "$D/rk" | head -n1 >"$D/key"
ts unlock --protector recovery --pin-fd 3 3<"$D/key" >/dev/null || fail "unlock with the recovery key"
printf 'restart\n' | ts wrap --text -c app=pub >/dev/null 2>"$D/out" || fail "Wrap refused after a restart, the record stored: $(cat "$D/out")"
pass "a restart with the directory down does not refuse a vault whose record is stored"

# --- a record lost by the directory (deleted, a restore) is read back at start and written again.
slapd_start "$D/ldap"
printf 'dn: cn=m1.%s,%s\nchangetype: delete\n' "$VID" "$LDAP_BASE" | ldap_modify >/dev/null || fail "delete the record"
rig_stop_daemon
start
wait_for "[ \"\$(stored_b64 $VID)\" = \"\$(base64 -w0 '$STATE_DIR/0/pub.vault')\" ]" 15 || fail "a lost record was not written again"
slapd_stop "$D/ldap"
pass "a record the directory lost is read back at start and written again"

# --- a record the directory refuses (a wrong password) is never taken as stored.
printf 'wrong\n' >"$D/m1.pw"
"$T" --vault other create >/dev/null 2>&1 || fail "create other"
slapd_start "$D/ldap"
wait_for "grep -q 'escrow publish: vault [0-9a-f]*: .*cannot bind as cn=m1,$MACHINES: Invalid credentials' '$D/daemon.log'" 20 ||
	fail "no bind failure logged: $(grep 'escrow publish' "$D/daemon.log" | tail -3)"
rc=0; printf 'x\n' | "$T" --vault other wrap --text -c app=pub >"$D/out" 2>&1 || rc=$?
[ $rc = 10 ] && grep -q "Invalid credentials" "$D/out" || fail "Wrap with a record the directory refused: rc $rc $(cat "$D/out")"
printf '\n' >"$D/m1.pw"
"$T" --vault empty create >/dev/null 2>&1 || fail "create empty"
wait_for "grep -q 'escrow publish: vault [0-9a-f]*: .*ldap-password-file $D/m1.pw: its first line is empty' '$D/daemon.log'" 10 ||
	fail "an empty password was not refused: $(grep 'escrow publish' "$D/daemon.log" | tail -3)"
printf 'm1-secret\n' >"$D/m1.pw"
pass "a wrong password: the record is not stored and the vault says why; an empty one is never sent"

# --- where the records go is part of what was verified: another machine id, and the vault waits for its record
# there (which cn=m1 may not write: the directory refuses it).
rig_stop_daemon
sed -i 's/^machine-id = m1$/machine-id = m9/' "$D/policy/10-escrow.conf"
start
ts unlock --protector recovery --pin-fd 3 3<"$D/key" >/dev/null || fail "unlock after the restart"
wait_for "grep -q 'escrow publish: vault $VID: .*cn=m9.$VID' '$D/daemon.log'" 10 || fail "no write to m9's record tried"
rc=0; printf 'x\n' | ts wrap --text -c app=pub >"$D/out" 2>&1 || rc=$?
[ $rc = 10 ] && grep -q "Insufficient access" "$D/out" || fail "Wrap with the record stored under another machine id: rc $rc $(cat "$D/out")"
rig_stop_daemon
sed -i 's/^machine-id = m9$/machine-id = m1/' "$D/policy/10-escrow.conf"
start
pass "another machine id: the record is written again there, the vault waits for it"

# --- a vault gone from this machine: its record is removed at the next start; not while any file named like a
# vault did not load (here a symlink, which the store never follows: its id is unknown, the record may be its own).
rig_stop_daemon
mv "$STATE_DIR/0/pub.vault" "$D/pub.vault.moved"; rm -f "$STATE_DIR/0/pub.vault.bak"
ln -s "$D/pub.vault.moved" "$STATE_DIR/0/pub.vault"
start
wait_for "grep -q 'not every vault file in $STATE_DIR was loaded: no record is removed' '$D/daemon.log'" 10 ||
	fail "no warning that removals are held back"
sleep 1
[ -n "$(stored_b64 "$VID")" ] || fail "the record of a vault that did not load was removed"
rig_stop_daemon
rm -f "$STATE_DIR/0/pub.vault"
start
wait_for "[ -z \"\$(stored_b64 $VID)\" ]" 15 || fail "the record of a deleted vault is still there"
grep -q "escrow publish: vault $VID is gone from this machine: its record removed" "$D/daemon.log" || fail "removal not logged"
pass "a vault gone: its record removed at the next start, not while a file named like a vault did not load"
