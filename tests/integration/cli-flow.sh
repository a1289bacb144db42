#!/bin/bash
# cli-flow.sh — a vault's whole life through the tokenseal CLI and libtokenseal, against the real daemon on a private bus.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
rig_start_bus
rig_start_daemon --idle-lock 0
T=$TOKENSEAL
D=$RIG_DIR

# Run the CLI, expect exit code $1 and (optionally) $2 in its stderr.
expect_rc() { # rc, needle ('' for any), command...
	local want=$1 needle=$2 rc=0
	shift 2
	"$@" >"$D/out" 2>"$D/err" || rc=$?
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* — stderr: $(cat "$D/err")"
	[ -z "$needle" ] || grep -q -- "$needle" "$D/err" || fail "expected '$needle' in stderr of: $* — got: $(cat "$D/err")"
}

# --- create: key printed once, grouped; vault starts unlocked.
"$T" create demo >"$D/rk" 2>"$D/create.err" || fail "create"
grep -Eq '^[0-9A-Z]{5}(-[0-9A-Z]{5}){7}$' "$D/rk" || fail "recovery key not grouped: $(cat "$D/rk")"
grep -q "Write it down" "$D/create.err" || fail "no warning to write the key down"
grep -q "$(cat "$D/rk")" "$RIG_DIR/daemon.log" && fail "recovery key appears in the daemon log"
expect_rc 1 "already exists" "$T" create demo
"$T" status | grep -q "state: *unlocked" || fail "new vault not shown unlocked"
"$T" --vault demo status | grep -q "p1 *recovery" || fail "status misses the recovery protector"
"$T" --json status >"$D/st.json" || fail "status --json"
/usr/bin/python3 - "$D/st.json" <<'PY' || fail "status --json: $(cat "$D/st.json")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 1 and v[0]["name"] == "demo" and v[0]["locked"] is False, v
assert v[0]["key_version"] == 1 and v[0]["protectors"][0]["type"] == "recovery", v
assert v[0]["protectors"][0]["facts"]["kdf"] == "blake2b", v
PY
pass "create prints the grouped recovery key once; status (text and JSON) shows the vault"

# --- wrap/unwrap, text form, context required.
printf 'secret data\n' | "$T" --vault demo wrap --text -c app=mail -c user=ann >"$D/b.txt" || fail "wrap --text"
grep -Eq '^tokenseal:v1:[A-Za-z0-9_-]+$' "$D/b.txt" || fail "text blob form: $(cat "$D/b.txt")"
[ "$(wc -l <"$D/b.txt")" = 1 ] || fail "text blob should end in exactly one newline"
[ "$("$T" unwrap --vault demo -c user=ann -c app=mail <"$D/b.txt")" = "secret data" ] || fail "unwrap text blob"
expect_rc 8 "different context" "$T" unwrap --vault demo -c app=mail <"$D/b.txt"
expect_rc 8 "same --context" "$T" unwrap --vault demo -c app=mail -c user=bob <"$D/b.txt"
expect_rc 8 "" "$T" unwrap --vault demo <"$D/b.txt"
# A damaged blob (one character changed) is a bad blob, not a crash.
b=$(cat "$D/b.txt"); c=${b:40:1}; [ "$c" = A ] && r=B || r=A
printf '%s\n' "${b:0:40}$r${b:41}" >"$D/b-bad.txt"
expect_rc 8 "" "$T" unwrap --vault demo -c app=mail -c user=ann <"$D/b-bad.txt"
expect_rc 2 "KEY=VALUE" "$T" wrap --vault demo -c novalue </dev/null
pass "text blobs round-trip; missing, extra or wrong context and damaged blobs exit 8"

# --- binary form, binary-safe: random bytes with NULs and newlines.
{ head -c 1000 /dev/urandom; printf '\0\0\n\n\r\0end'; } >"$D/pt.bin"
"$T" --vault demo wrap -c k=v --in "$D/pt.bin" --out "$D/b.bin" || fail "wrap binary"
head -c 4 "$D/b.bin" | grep -q TSBL || fail "binary blob lacks its magic"
"$T" --vault demo unwrap -c k=v --in "$D/b.bin" --out "$D/pt.out" || fail "unwrap binary"
cmp "$D/pt.bin" "$D/pt.out" || fail "binary round trip changed the data"
[ "$(stat -c %a "$D/pt.out")" = 600 ] || fail "unwrap --out not mode 0600"
"$T" --vault demo wrap -c k=v <"$D/pt.bin" | "$T" --vault demo unwrap -c k=v | cmp - "$D/pt.bin" ||
	fail "stdin/stdout binary round trip"
# The same blob in text form unwraps too (the form is detected).
"$T" --vault demo rewrap -c k=v --text --in "$D/b.bin" >"$D/b2.txt" || fail "rewrap --text"
"$T" --vault demo unwrap -c k=v --in "$D/b2.txt" | cmp - "$D/pt.bin" || fail "unwrap of rewrapped text form"
head -c 65537 /dev/zero >"$D/big"
expect_rc 2 "longer than 65536" "$T" --vault demo wrap --in "$D/big"
pass "binary blobs are binary-safe through files and pipes; rewrap keeps the plaintext"

# --- gen-key: key file 0600, blob unwraps to the same key.
"$T" --vault demo gen-key --size 48 -c use=disk --blob-out "$D/k.blob" --key-out "$D/k.raw" || fail "gen-key"
[ "$(stat -c %s "$D/k.raw")" = 48 ] || fail "gen-key size"
[ "$(stat -c %a "$D/k.raw")" = 600 ] || fail "gen-key --key-out not mode 0600"
"$T" --vault demo unwrap -c use=disk --in "$D/k.blob" | cmp - "$D/k.raw" || fail "gen-key blob does not give the key"
"$T" --vault demo gen-key >"$D/k2.txt" || fail "gen-key, blob to stdout"
grep -Eq '^tokenseal:v1:' "$D/k2.txt" || fail "gen-key without --blob-out should print the text form"
[ "$("$T" --vault demo unwrap <"$D/k2.txt" | wc -c)" = 32 ] || fail "default key size is 32"
"$T" --vault demo gen-key --hex --key-out "$D/k.hex" --blob-out "$D/k3.blob" || fail "gen-key --hex"
[ "$("$T" --vault demo unwrap --hex --in "$D/k3.blob")" = "$(cat "$D/k.hex")" ] || fail "unwrap --hex"
expect_rc 2 "blob-out" "$T" --vault demo gen-key --key-out -
pass "gen-key writes a 0600 key and a blob that unwraps to it"

# --- lock, refused while locked, unlock by recovery key through --pin-fd.
"$T" --vault demo lock >/dev/null || fail "lock"
"$T" --vault demo status | grep -q "state: *locked (request)" || fail "status after lock"
expect_rc 3 "locked" "$T" --vault demo unwrap -c k=v --in "$D/b.bin"
expect_rc 3 "" "$T" --vault demo gen-key
# Wrong (valid) key of another vault: 6. A typo: 6 and the message says so.
"$T" create other >"$D/rk-other" 2>/dev/null || fail "create other"
expect_rc 6 "" "$T" --vault demo unlock --pin-fd 3 3<"$D/rk-other"
k=$(cat "$D/rk"); [ "${k:7:1}" = 0 ] && c=1 || c=0
printf '%s\n' "${k:0:7}$c${k:8}" >"$D/rk-typo"
expect_rc 6 "mistyped" "$T" --vault demo unlock --pin-fd 3 3<"$D/rk-typo"
"$T" --vault demo status | grep -q "state: *locked" || fail "failed unlocks opened the vault"
"$T" --vault demo unlock --protector recovery --pin-fd 3 3<"$D/rk" >/dev/null || fail "unlock with the recovery key"
"$T" --vault demo unwrap -c k=v --in "$D/b.bin" | cmp - "$D/pt.bin" || fail "unwrap after unlock"
pass "locked vault exits 3; wrong key 6; typo 6 'mistyped'; recovery key unlocks"

# --- unlock prompting on a terminal, without echo (a real pty).
"$T" --vault demo lock >/dev/null
/usr/bin/python3 - "$T" "$D/rk" <<'PY' || fail "unlock on a terminal"
import os, pty, sys, time, select
tokenseal, keyfile = sys.argv[1], sys.argv[2]
key = open(keyfile).read().strip()
pid, fd = pty.fork()
if pid == 0:
    os.execv(tokenseal, [tokenseal, "--vault", "demo", "unlock"])
out = b""
def read_until(needle, timeout=20):
    global out
    end = time.time() + timeout
    while needle not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 1024)
            except OSError:
                break
    return needle in out
if not read_until(b"Recovery key for vault 'demo': "):
    os.kill(pid, 9)
    sys.exit("no prompt: %r" % out)
os.write(fd, key.encode() + b"\n")
read_until(b"unlocked.")
for _ in range(100):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    sys.exit("tokenseal unlock did not finish: %r" % out)
assert os.waitstatus_to_exitcode(status) == 0, (status, out)
assert key.encode() not in out, "the recovery key was echoed"
PY
"$T" --vault demo status | grep -q "state: *unlocked" || fail "terminal unlock did not unlock"
pass "unlock asks on the terminal without echo"

# --- rotate, retire, rewrap.
"$T" --vault demo rotate | grep -q "version 2" || fail "rotate"
"$T" --vault demo rewrap -c k=v --in "$D/b.bin" --out "$D/b-v2.bin" || fail "rewrap after rotate"
"$T" --vault demo rotate --retire-below 2 >/dev/null || fail "rotate --retire-below"
expect_rc 8 "" "$T" --vault demo unwrap -c k=v --in "$D/b.bin"
"$T" --vault demo unwrap -c k=v --in "$D/b-v2.bin" | cmp - "$D/pt.bin" || fail "rewrapped blob after retiring v1"
[ "$("$T" --json --vault demo status | /usr/bin/python3 -c 'import json,sys; v=json.load(sys.stdin)[0]; print(v["key_version"], v["min_key_version"])')" = "3 2" ] ||
	fail "key versions after rotate"
pass "rotate adds versions; retired blobs exit 8; rewrapped ones still open"

# --- enroll a second recovery key, unlock with it, revoke it.
"$T" --vault demo enroll recovery >"$D/rk2" 2>/dev/null || fail "enroll recovery"
grep -q "Enrolled protector p2" "$D/rk2" || fail "enroll output: $(cat "$D/rk2")"
grep -Eo '^[0-9A-Z]{5}(-[0-9A-Z]{5}){7}$' "$D/rk2" >"$D/rk2.key" || fail "enroll printed no recovery key"
"$T" --vault demo status | grep -q "p2 *recovery" || fail "status misses p2"
"$T" --vault demo lock >/dev/null
"$T" --vault demo unlock --protector p2 --pin-fd 3 3<"$D/rk2.key" >/dev/null || fail "unlock with the new key"
"$T" --vault demo revoke p2 --keep "p1=$D/rk" >"$D/rv" || fail "revoke p2: $(cat "$D/rv")"
grep -q "kept: *p1" "$D/rv" || fail "revoke did not keep p1: $(cat "$D/rv")"
"$T" --vault demo status | grep -q "p2 " && fail "p2 still listed after revoke"
"$T" --vault demo lock >/dev/null
expect_rc 1 "" "$T" --vault demo unlock --protector p2 --pin-fd 3 3<"$D/rk2.key"
expect_rc 6 "" "$T" --vault demo unlock --pin-fd 3 3<"$D/rk2.key"
"$T" --vault demo unlock --pin-fd 3 3<"$D/rk" >/dev/null || fail "p1 still opens"
expect_rc 1 "only 0 protector(s) could be re-wrapped" "$T" --vault demo revoke p1
expect_rc 1 "last protector" "$T" --vault demo revoke p1 --record-only
expect_rc 2 "for fido2" "$T" --vault demo enroll tpm2 --no-touch
pass "enroll recovery prints a new key that unlocks; revoke (re-key, keeping p1) removes it; last protector stays"

# --- the library API from C: only tokenseal.h.
EX="$TS_BUILD/tests/tools/client_example"
head -c 300 /dev/urandom >"$D/ex.in"
"$EX" demo <"$D/ex.in" >"$D/ex.out" || fail "client_example: $(cat "$D/ex.out")"
grep -Eq '^tokenseal:v1:' "$D/ex.out" || fail "client_example printed no blob"
"$T" --vault demo unwrap -c app=example <"$D/ex.out" | cmp - "$D/ex.in" || fail "CLI cannot unwrap the library's blob"
"$T" --vault demo lock >/dev/null
rc=0; "$EX" demo <"$D/ex.in" >/dev/null 2>"$D/ex.err" || rc=$?
[ $rc = 4 ] || fail "client_example on a locked vault: rc $rc (want TS_E_LOCKED=4): $(cat "$D/ex.err")"
grep -q "org.tokenseal1.Error.Locked" "$D/ex.err" || fail "client_example error name: $(cat "$D/ex.err")"
pass "client_example wraps and unwraps with the library; errors come back as codes and names"

# --- the library's batch calls (used by the CLI's internal API), all or nothing.
"$T" --vault demo unlock --pin-fd 3 3<"$D/rk" >/dev/null || fail "unlock for batch"
"$TS_BUILD/tests/tools/client_batch" demo || fail "client_batch"
pass "UnwrapBatch and RewrapBatch through the library"

# --- ts_unwrap_into: the plaintext in the caller's buffer, as ts_unwrap gives it; a buffer one byte
# short, another context, a flipped blob byte: a named error each, and the buffer left all zero.
head -c 300 /dev/urandom >"$D/into.in"
"$TS_BUILD/tests/tools/client_into" demo <"$D/into.in" >"$D/into.out" 2>&1 || fail "client_into: $(cat "$D/into.out")"
[ "$(grep -c '^ok: ' "$D/into.out")" = 4 ] || fail "client_into: $(cat "$D/into.out")"
grep -q "LimitExceeded (the plaintext is 300 bytes, the buffer 299), length 300 given" "$D/into.out" ||
	fail "client_into: a short buffer: $(cat "$D/into.out")"
pass "ts_unwrap_into gives ts_unwrap's bytes into the caller's buffer; a short buffer is LimitExceeded; every failure wipes the buffer"
