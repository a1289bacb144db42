#!/bin/bash
# fleet.sh — `make bench`, the fleet part: a Tang share's unlock against a TPM share's (swtpm, a real tangd on
# loopback), and the latency of publishing an escrow record to a real slapd (write + read back) and of a run
# that finds it unchanged; then the daemon's own publishing ([escrow] publish = required): from a rotation's
# return to the first Wrap the daemon allows (its helper wrote and verified the record meanwhile). Each figure
# is the median of N runs of the tokenseal CLI (process start included).
#
#   tests/bench/fleet.sh BUILD_DIR [N]
set -eu
BUILD=${1:?usage: tests/bench/fleet.sh BUILD_DIR [N]}
N=${2:-${BENCH_FLEET_RUNS:-20}}
TS_SRC=$(cd "$(dirname "$0")/../.." && pwd)
case $BUILD in /*) ;; *) BUILD="$TS_SRC/$BUILD" ;; esac
export TS_SRC TS_BUILD="$BUILD"
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/swtpm.sh"
. "$TS_SRC/tests/lib/tang.sh"
. "$TS_SRC/tests/lib/slapd.sh"
D=$RIG_DIR
ts() { "$TOKENSEAL" --vault bench "$@"; }
now_us() { date +%s%6N; }
median() { sort -n | awk '{ a[NR] = $1 } END { m = a[int((NR + 1) / 2)]; printf "%.1f", m / 1000 }'; }

swtpm_start "$D/tpm"
tang_start "$D/tang"
slapd_start "$D/ldap"
rig_start_bus
mkdir -p "$D/policy"
printf '[tang]\nservers = %s\n' "$TANG_URL" >"$D/policy/10-tang.conf"
rig_start_daemon --idle-lock 0 --log-level warning --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy"
ts create --threshold 2 >/dev/null
ts enroll tpm2 </dev/null >"$D/e1"
ts enroll tang --url "$TANG_URL" --thp "$TANG_THP" </dev/null >"$D/e2"
P_TPM=$(sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$D/e1")
P_TANG=$(sed -n 's/^Enrolled protector \(p[0-9]*\) .*/\1/p' "$D/e2")
"$TOKENSEAL" escrow keygen --out-secret "$D/o.sec" >"$D/o.pub"
ts escrow set "o=$(cat "$D/o.pub")" >/dev/null

# One share each (a 2-of-n vault stays locked after one): Lock, then time Unlock --protector.
share() { # protector
	local t0 t1
	ts lock >/dev/null
	t0=$(now_us)
	ts unlock --protector "$1" </dev/null >/dev/null 2>&1 || true   # one share: still locked, exit 3
	t1=$(now_us)
	echo $((t1 - t0))
}
for _ in $(seq "$N"); do share "$P_TPM"; done | median >"$D/tpm.ms"
for _ in $(seq "$N"); do share "$P_TANG"; done | median >"$D/tang.ms"

ts unlock </dev/null >/dev/null   # both shares: escrow set needs it unlocked
pub() { "$TOKENSEAL" escrow publish --to-ldap "$LDAP_URI" --base "$LDAP_BASE" --state-dir "$STATE_DIR" --machine-id bench >/dev/null; }
for _ in $(seq "$N"); do
	ts escrow set "o=$(cat "$D/o.pub")" >/dev/null   # a new generation: the record changes
	t0=$(now_us); pub; t1=$(now_us); echo $((t1 - t0))
done | median >"$D/pub.ms"
for _ in $(seq "$N"); do t0=$(now_us); pub; t1=$(now_us); echo $((t1 - t0)); done | median >"$D/same.ms"

# The daemon publishes ([escrow] publish = required), binding as the machine's entry (simple bind).
printf 'dn: %s\nobjectClass: organizationalUnit\nou: machines\n\ndn: cn=bench,%s\nobjectClass: device\nobjectClass: simpleSecurityObject\ncn: bench\nuserPassword: bench-secret\n' \
	"$MACHINES" "$MACHINES" | ldapadd -Q -Y EXTERNAL -H "$LDAP_URI" >/dev/null
slapd_machine_acl 65534 nobody
chmod 0711 "$D"
printf 'bench-secret\n' >"$D/bench.pw"
chmod 0600 "$D/bench.pw"
printf '[escrow]\npublish = required\nldap-uri = %s\nldap-base = %s\nldap-bind-dn = cn=bench,%s\nldap-password-file = %s\nmachine-id = bench\n' \
	"$LDAP_URI" "$LDAP_BASE" "$MACHINES" "$D/bench.pw" >"$D/policy/20-publish.conf"
rig_stop_daemon
rig_start_daemon --idle-lock 0 --log-level warning --tpm2-tcti "swtpm:path=$D/tpm/sock" --policy-dir "$D/policy"
ts unlock </dev/null >/dev/null 2>&1
for _ in $(seq "$N"); do
	ts rotate >/dev/null
	t0=$(now_us)
	until printf 'k\n' | ts wrap --text >/dev/null 2>&1; do :; done
	t1=$(now_us); echo $((t1 - t0))
done | median >"$D/daemon.ms"

printf 'fleet (median of %s, CLI round trip incl. process start):\n' "$N"
printf '  unlock share, tpm2 (swtpm)              %8s ms\n' "$(cat "$D/tpm.ms")"
printf '  unlock share, tang (tangd on loopback)  %8s ms\n' "$(cat "$D/tang.ms")"
printf '  escrow publish, 1 vault changed         %8s ms  (write, read back, compare)\n' "$(cat "$D/pub.ms")"
printf '  escrow publish, 1 vault unchanged       %8s ms  (read, compare)\n' "$(cat "$D/same.ms")"
printf '  daemon publish, rotate -> Wrap allowed  %8s ms  (its helper writes, reads back, compares)\n' "$(cat "$D/daemon.ms")"
printf '  vault file (recovery, tpm2, tang, 1 officer) %5s bytes: the record'"'"'s size\n' "$(stat -c %s "$STATE_DIR/0/bench.vault")"
