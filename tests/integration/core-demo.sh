#!/bin/bash
# core-demo.sh — `make demo` must keep working: run the narrated demo and require every step to behave.
# tests/run: may run beside another test
set -eu
out=$(bash "$TS_SRC/contrib/demo.sh" "$TS_BUILD" 2>&1) || { printf '%s\n' "$out"; echo "FAIL: demo exited non-zero"; exit 1; }
grep -q 'Demo finished: every step behaved as expected.' <<<"$out" || { printf '%s\n' "$out"; echo "FAIL: demo did not finish"; exit 1; }
grep -q 'diff report.txt report.dec: identical.' <<<"$out" || { echo "FAIL: decrypted file not identical"; exit 1; }
echo "ok: make demo runs end to end"
