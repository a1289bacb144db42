#!/bin/bash
# hardening-batch-memory.sh — a burst of large batches does not stay in tokensealed's memory: after
# three UnwrapBatchPacked of 10,000 keys (messages of hundreds of KiB each way) the daemon's VmRSS
# comes back, within a few seconds, to within 1 MiB of what it was after one batch of 1,000.
# glibc keeps freed heap memory; the daemon gives it back a second after the last batch of 1,000
# items or more (ts_daemon_trim_later). Without that it stayed about 2 MiB higher for good.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
D=$RIG_DIR
T="$TS_BUILD/tests/tools"
[ -x "$T/client_batch" ] || fail "$T/client_batch not built"
rss() { rig_daemon_rss; }

rig_start_bus
# ASan's allocator, not glibc's, serves a sanitized daemon, told to give freed memory back itself:
# that pass checks the trim timer's path runs cleanly, the ordinary pass what the trim gives back.
rig_start_daemon_lean --idle-lock 0 --log-level info
create_vault bm "$D/rk" >/dev/null || fail "CreateVault"

# The baseline: one batch of 1,000 (the batch worker thread and its memory exist from here on).
"$T/client_batch" bm loop 1 1000 >/dev/null || fail "a batch of 1,000"
sleep 2
before=$(rss)
"$T/client_batch" bm loop 3 10000 >/dev/null || fail "three batches of 10,000"
peak=$(rss)
after=$peak
for _ in $(seq 50); do
	after=$(rss)
	[ "$after" -le $((before + 1024)) ] && break
	sleep 0.1
done
echo "daemon VmRSS: $before KiB after a batch of 1,000, $peak KiB right after three of 10,000, $after KiB later"
[ "$after" -le $((before + 1024)) ] ||
	fail "the daemon kept $((after - before)) KiB of a burst of batches 5 s after it (before $before KiB, now $after KiB)"
# Still serving, with the right answers.
"$T/client_batch" bm loop 1 100 >/dev/null || fail "a batch after the trim"
pass "three batches of 10,000: VmRSS $before -> $peak -> $after KiB"
