#!/bin/bash
# core-hostile.sh — garbage, wrong types and oversized arguments get named errors; the daemon keeps serving.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
rig_start_bus
rig_start_daemon --idle-lock 0

P=$(create_vault h "$RIG_DIR/rk") || fail "CreateVault"
B=$(wrap "$P" "4 10 20 30 40" 1 a b) || fail "Wrap"
set -- $B
N=$1; shift; BYTES=("$@")

# Garbage and damaged blobs.
expect_fail org.tokenseal1.Error.BadBlob vcall "$P" Unwrap 'aya{ss}' 0 0
expect_fail org.tokenseal1.Error.BadBlob vcall "$P" Unwrap 'aya{ss}' 5 1 2 3 4 5 0
expect_fail org.tokenseal1.Error.BadBlob vcall "$P" Unwrap 'aya{ss}' $((N - 1)) "${BYTES[@]:0:N-1}" 1 a b
flip=("${BYTES[@]}"); flip[N-1]=$(( (flip[N-1] + 1) % 256 ))
expect_fail org.tokenseal1.Error.BadBlob vcall "$P" Unwrap 'aya{ss}' $N "${flip[@]}" 1 a b
ver=("${BYTES[@]}"); ver[4]=99
expect_fail org.tokenseal1.Error.UnsupportedVersion vcall "$P" Unwrap 'aya{ss}' $N "${ver[@]}" 1 a b
# Random bytes, many times.
for i in $(seq 20); do
	n=$((RANDOM % 200))
	rnd=$(head -c $n /dev/urandom | od -An -tu1 | tr -s ' \n' ' ')
	expect_fail org.tokenseal1.Error. vcall "$P" Unwrap 'aya{ss}' $n $rnd 0
done
# A blob of another vault.
Q=$(create_vault h2 "$RIG_DIR/rk2") || fail "CreateVault h2"
expect_fail org.tokenseal1.Error.WrongVault vcall "$Q" Unwrap 'aya{ss}' $B 1 a b
daemon_alive
pass "garbage and damaged blobs: BadBlob / UnsupportedVersion / WrongVault"

# Wrong types: sd-bus answers InvalidArgs for a signature the method does not take.
expect_fail org.freedesktop.DBus.Error.InvalidArgs vcall "$P" Unwrap 's' hello
expect_fail org.freedesktop.DBus.Error.InvalidArgs vcall "$P" Wrap 'ay' 1 1
expect_fail org.freedesktop.DBus.Error.InvalidArgs vcall "$P" Lock 'u' 7
expect_fail org.freedesktop.DBus.Error.InvalidArgs vcall "$P" RotateKey 'a{su}' 1 x 1
expect_fail org.freedesktop.DBus.Error.InvalidArgs bq call "${MGR_ARGS[@]}" GetVault u 1
expect_fail org.freedesktop.DBus.Error.UnknownMethod vcall "$P" Explode
expect_fail org.freedesktop.DBus.Error.UnknownObject bq call org.tokenseal1 /org/tokenseal1/user/0/vault/nosuch $VIFACE Lock
expect_fail org.tokenseal1.Error.NoSuchVault bq call "${MGR_ARGS[@]}" GetVault s "../../etc/passwd"
daemon_alive
pass "wrong types and unknown members: named errors"

# Limits: plaintext, context entries and sizes, context content.
big=$(printf '0 %.0s' $(seq 65537))
expect_fail org.tokenseal1.Error.LimitExceeded vcall "$P" Wrap 'aya{ss}' 65537 $big 0
ctx=(); for i in $(seq 65); do ctx+=("k$i" v); done
expect_fail org.tokenseal1.Error.LimitExceeded vcall "$P" Wrap 'aya{ss}' 1 1 65 "${ctx[@]}"
expect_fail org.tokenseal1.Error.InvalidArgs vcall "$P" Wrap 'aya{ss}' 1 1 1 "" v
expect_fail org.tokenseal1.Error.InvalidArgs vcall "$P" Wrap 'aya{ss}' 1 1 1 "$(head -c 300 /dev/zero | tr '\0' k)" v
# Exactly at the limits still works.
ok=$(printf '7 %.0s' $(seq 65536))
BB=$(wrap "$P" "65536 $ok" 0) || fail "wrap of 65536 bytes"
[ "$(unwrap "$P" "$BB" 0 | cut -d' ' -f1)" = 65536 ] || fail "unwrap of 65536 bytes"
daemon_alive
pass "limits: LimitExceeded / InvalidArgs, and exactly-at-limit works"

# Batches: the failing index is named; nothing is returned.
expect_fail "item 2" vcall "$P" UnwrapBatch 'aaya{ss}' 3 $B $B 3 1 2 3 1 a b
expect_fail "item 0" vcall "$P" RewrapBatch 'aaya{ss}' 1 0 1 a b
[ "$(vcall "$P" UnwrapBatch 'aaya{ss}' 0 0)" = "aay 0" ] || fail "empty batch"
pass "batches are all or nothing"

# Secret fds that are not readable secrets.
expect_fail org.tokenseal1.Error.LimitExceeded fdcall "$P" $VIFACE Unlock 'sha{ss}' recovery "</dev/zero" ""
expect_fail org.tokenseal1.Error.InvalidArgs fdcall "$P" $VIFACE Unlock 'sha{ss}' recovery ">$RIG_DIR/w" ""
expect_fail org.tokenseal1.Error.InvalidArgs fdcall "$P" $VIFACE Unlock 'sha{ss}' recovery "file<$RIG_DIR" ""
head -c 2000 /dev/urandom >"$RIG_DIR/junk"
expect_fail org.tokenseal1.Error.LimitExceeded fdcall "$P" $VIFACE Unlock 'sha{ss}' recovery "<$RIG_DIR/junk" ""
printf '\xff\xfe\x00garbage\n' >"$RIG_DIR/junk2"
expect_fail org.tokenseal1.Error.BadRecoveryKey fdcall "$P" $VIFACE Unlock 'sha{ss}' recovery "<$RIG_DIR/junk2" ""
daemon_alive
pass "unusable secret fds: named errors"

# Still serving, and still right.
[ "$(unwrap "$P" "$B" 1 a b)" = "4 10 20 30 40" ] || fail "unwrap after the abuse"
bq call org.tokenseal1 /org/tokenseal1 org.freedesktop.DBus.Peer Ping || fail "Ping"
pass "daemon keeps serving"

core_finish
