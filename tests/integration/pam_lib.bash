# pam_lib.bash — helpers for the pam-*.sh integration scripts (sourced after rig.sh and core_lib.bash).
PAM_SO="$TS_BUILD/pam_tokenseal.so"
STANDIN_PY="$TS_SRC/tests/integration/pam_standin.py"
PAM_DIR="$RIG_DIR/pam.d"
mkdir -p "$PAM_DIR"
[ -f "$PAM_SO" ] || fail "$PAM_SO not built"

# pam_service NAME LINE... — a PAM service file for pam_wrapper (absolute module paths).
pam_service() { local n=$1; shift; printf '%s\n' "$@" >"$PAM_DIR/$n"; }

# An ASan-built module (make SAN=1) needs the ASan runtime loaded first into the uninstrumented
# pamtester, and pam_wrapper without RTLD_DEEPBIND. Leak checking is valgrind's job here (pamtester leaks).
PT_PRELOAD=libpam_wrapper.so
if ldd "$PAM_SO" | grep -q libasan; then
	PT_PRELOAD="$(ldd "$PAM_SO" | awk '/libasan/ {print $3}') $PT_PRELOAD"
	export PAM_WRAPPER_DISABLE_DEEPBIND=1 ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
fi

# pt SERVICE USER OPERATION... — pamtester through pam_wrapper; the conversation reads stdin.
# $PT_WRAP (e.g. "valgrind --error-exitcode=99 ...") runs pamtester under a checker; it then needs
# PAM_WRAPPER_DISABLE_DEEPBIND=1 too.
pt() {
	LD_PRELOAD="$PT_PRELOAD" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$PAM_DIR" ${PT_WRAP:-} pamtester -v "$@"
}

# standin_start logind|polkit [ACTION LOGFILE] — a stand-in service; waits until it owns its name.
standin_start() {
	local role=$1 ready="$RIG_DIR/standin-$1.ready"; shift
	rm -f "$ready"
	/usr/bin/python3 "$STANDIN_PY" "$BUS_ADDRESS" "$role" "$ready" "$@" >>"$RIG_DIR/standin-$role.log" 2>&1 &
	RIG_PIDS+=($!)
	eval "STANDIN_PID_$role=$!"
	for _ in $(seq 100); do [ -s "$ready" ] && return 0; sleep 0.05; done
	cat "$RIG_DIR/standin-$role.log" >&2
	fail "stand-in $role did not start"
}

# logind_ctl METHOD SIG ARGS... — drive the logind stand-in.
logind_ctl() { bctl call org.freedesktop.login1 /org/freedesktop/login1 org.tokenseal1.test.Control "$@"; }

# wait_prop PATH PROPERTY VALUE — poll up to 5 s.
wait_prop() {
	local v
	for _ in $(seq 100); do
		v=$(vprop "$1" "$2") && [ "$v" = "$3" ] && return 0
		sleep 0.05
	done
	tail -n 15 "$RIG_DIR/daemon.log" >&2
	fail "$2 of $1 is '$v', expected '$3'"
}
