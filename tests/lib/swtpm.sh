# swtpm.sh — start, stop and restart a software TPM 2.0 (swtpm) in a directory, for the integration tests.
#
# Source after rig.sh (the PIDs then join RIG_PIDS and rig_cleanup stops them)
# or on its own (an EXIT trap stops what was started here).
#   swtpm_start DIR   start swtpm on DIR/sock (state kept in DIR); exports
#                     TPM2TOOLS_TCTI and SWTPM_TCTI = "swtpm:path=DIR/sock"
#   swtpm_stop DIR    stop it by the PID it was started with (the state stays)
#   swtpm_restart DIR stop then start on the same state: a power cycle
# swtpm has no resource manager: whatever a client leaves loaded stays
# loaded until the next restart, which is why the tests count handles.

SWTPM_PIDS=()

if ! declare -p RIG_PIDS >/dev/null 2>&1; then
	swtpm_cleanup() {
		local rc=$? p
		for p in "${SWTPM_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
		exit $rc
	}
	trap swtpm_cleanup EXIT
fi

swtpm_start() { # dir
	local d=$1 pid
	mkdir -p "$d"
	rm -f "$d/sock" "$d/sock.ctrl" "$d/pid"
	# Foreground with & so that $! is swtpm itself (not a forking parent).
	swtpm socket --tpm2 --tpmstate dir="$d" \
		--server type=unixio,path="$d/sock" --ctrl type=unixio,path="$d/sock.ctrl" \
		--flags startup-clear,not-need-init --log file="$d/log" >>"$d/log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/pid"
	SWTPM_PIDS+=("$pid")
	if declare -p RIG_PIDS >/dev/null 2>&1; then RIG_PIDS+=("$pid"); fi
	export TPM2TOOLS_TCTI="swtpm:path=$d/sock" SWTPM_TCTI="swtpm:path=$d/sock"
	local i
	for i in $(seq 100); do
		if [ -S "$d/sock" ] && tpm2_getcap properties-fixed >/dev/null 2>&1; then
			# The token helper runs as its own user: it may connect (tests/lib/rig.sh).
			if declare -F rig_helper_access >/dev/null; then rig_helper_access "$d/sock" "$d/sock.ctrl"; fi
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	cat "$d/log" >&2 2>/dev/null
	echo "swtpm did not start in $d" >&2
	return 1
}

swtpm_stop() { # dir
	local d=$1 pid
	[ -f "$d/pid" ] || return 0
	pid=$(cat "$d/pid")
	rm -f "$d/pid"
	# An orderly TPM2_Shutdown first, as an OS does: without it the TPM counts
	# the power loss as a dictionary-attack failure at the next start.
	TPM2TOOLS_TCTI="swtpm:path=$d/sock" tpm2_shutdown -c >/dev/null 2>&1 || true
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
	kill -9 "$pid" 2>/dev/null || true
}

swtpm_restart() { # dir
	swtpm_stop "$1"
	swtpm_start "$1"
}
