#!/bin/bash
# fido2-softfido-conformance.sh — softfido checked by python-fido2 0.9.1 (PIN protocols 1 and 1,2); its state survives a restart.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/lib/softfido.sh"
PY=/usr/bin/python3 # Debian's, with python3-fido2; not whichever python3 is first on PATH
[ -x "$SOFTFIDO" ] || fail "softfido is not built: $SOFTFIDO"
export PYTHONPATH="$TS_SRC/tests/fido2" PYTHONDONTWRITEBYTECODE=1

# SIGTERM must end softfido with status 0.
stop_checked() { # name
	local pid rc=0
	eval "pid=\$SOFTFIDO_PID_$1"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	eval "SOFTFIDO_PID_$1="
	[ $rc -eq 0 ] || { cat "$RIG_DIR/softfido-$1/log" >&2; fail "softfido $1 exited with status $rc"; }
}

conformance() { # name, PIN protocols, extra conformance.py options...
	local name=$1 protos=$2 aaguid d
	shift 2
	aaguid=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	softfido_start "$name" --aaguid "$aaguid" --pin-protocols "$protos" --serial 7
	d="$RIG_DIR/softfido-$name"
	"$PY" "$TS_SRC/tests/fido2/conformance.py" --socket "$d/sock" --control "$d/ctl" \
		--protocols "$protos" --aaguid "$aaguid" "$@" ||
		{ tail -n 20 "$d/log" >&2; fail "conformance with PIN protocols $protos"; }
	stop_checked "$name"
	pass "python-fido2 conformance, PIN protocols $protos"
}

conformance v1 1
conformance v12 1,2 ${SOFTFIDO_SLOW:+--slow}

# The state file: mode 0600, and PIN, retries, credentials and counter survive a restart.
softfido_start p
"$PY" "$TS_SRC/tests/fido2/persist.py" before "$RIG_DIR/softfido-p/sock" "$RIG_DIR/expect" || fail "persist: before"
before=$(softfido_ctl p status)
stop_checked p
[ "$(stat -c %a "$RIG_DIR/softfido-p/state")" = 600 ] || fail "state file mode is not 0600"
softfido_start p
grep -q 'pin_set=1 pin_retries=7 ' <<<"$(softfido_ctl p status)" || fail "status after restart: $(softfido_ctl p status)"
"$PY" "$TS_SRC/tests/fido2/persist.py" after "$RIG_DIR/softfido-p/sock" "$RIG_DIR/expect" || fail "persist: after"
stop_checked p
pass "state survives a restart ($before)"

# A damaged state file is refused, not replaced.
printf 'softfido-state 1\nmaster zz\n' >"$RIG_DIR/bad-state"
if "$SOFTFIDO" --socket "$RIG_DIR/bad.sock" --state "$RIG_DIR/bad-state" 2>/dev/null; then
	fail "softfido started on a damaged state file"
fi
grep -q 'master zz' "$RIG_DIR/bad-state" || fail "damaged state file was overwritten"
pass "damaged state file refused"
