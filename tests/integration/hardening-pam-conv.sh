#!/bin/bash
# hardening-pam-conv.sh — pam_tokenseal.so frees (and wipes) what the conversation answered also when the conversation fails: no leak under valgrind or LeakSanitizer.
# Linux-PAM's pam_prompt passes the response on even when the application's conversation
# returns an error; tests/integration/pam_conv.c is such an application.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
. "$TS_SRC/tests/integration/core_lib.bash"
. "$TS_SRC/tests/integration/pam_lib.bash"
D=$RIG_DIR
rig_start_bus
rig_start_daemon --idle-lock 0
NP=$(fdcall /org/tokenseal1 org.tokenseal1.Manager CreateVault 'sa{ss}h' nobody "owner=65534" ">$D/rk-nobody") ||
	fail "create nobody"
vcall "$NP" Lock >/dev/null || fail "lock"
pam_service conv "auth required $PAM_SO timeout=5"

# The application: with the module's sanitizers when the module has them (LeakSanitizer then
# checks the whole process: the application itself frees everything it owns).
SAN_FLAGS=()
[ "$TS_SAN" = 1 ] && SAN_FLAGS=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
cc -std=gnu11 -Wall -Wextra -Werror -g "${SAN_FLAGS[@]}" "$TS_SRC/tests/integration/pam_conv.c" -o "$D/pam_conv" -lpam ||
	fail "building pam_conv"
if [ "$TS_SAN" = 1 ]; then
	# Leaks are this test's point: LeakSanitizer on (pam_lib.bash turns it off for pamtester).
	export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=1"
	CHECK=()
else
	command -v valgrind >/dev/null || fail "valgrind not installed (contrib/install-deps.sh)"
	CHECK=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --log-file="$D/vg.log")
fi

# run MODE [SECRET_FILE] — the application through pam_wrapper (after libasan when the module has it,
# pam_lib.bash); prints its verdict line.
run() {
	: >"$D/vg.log"
	LD_PRELOAD="$PT_PRELOAD" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$PAM_DIR" PAM_WRAPPER_DISABLE_DEEPBIND=1 \
		"${CHECK[@]}" "$D/pam_conv" conv nobody "$@" >"$D/out" 2>&1 || fail "pam_conv $1: exit status $? $(cat "$D/out" "$D/vg.log")"
	[ ! -s "$D/vg.log" ] || fail "valgrind ($1): $(cat "$D/vg.log")"
	rig_san_clean || fail "sanitizer report ($1)"
	cat "$D/out"
}

# Control: the same application with a conversation that succeeds unlocks, so the prompt was reached.
out=$(run ok "$D/rk-nobody")
grep -q "pam_authenticate: 0 " <<<"$out" || fail "right key through pam_conv: $out"
[ "$(vprop "$NP" Locked)" = false ] || fail "vault not unlocked by the right key"
vcall "$NP" Lock >/dev/null || fail "lock"

# The conversation answers (the right key, even) but reports PAM_CONV_ERR: refused, answer released.
out=$(run fail "$D/rk-nobody")
grep -q "pam_authenticate: 19 " <<<"$out" || fail "failed conversation: expected PAM_CONV_ERR (19): $out"
[ "$(vprop "$NP" Locked)" = true ] || fail "a failed conversation unlocked the vault"
# PAM_CONV_AGAIN: the module returns PAM_INCOMPLETE and releases the answer too.
out=$(run again "$D/rk-nobody")
grep -q "pam_authenticate: 31 " <<<"$out" || fail "conversation again: expected PAM_INCOMPLETE (31): $out"
[ "$(vprop "$NP" Locked)" = true ] || fail "PAM_CONV_AGAIN unlocked the vault"
# An answer longer than any secret (1,099 bytes; 1,024 at most) is a wrong one: PAM_AUTH_ERR (7), not
# PAM_AUTHINFO_UNAVAIL (9, "this module cannot decide", which a stack may take as leave to go on).
head -c 1099 /dev/zero | tr '\0' A >"$D/long"
out=$(run ok "$D/long")
grep -q "pam_authenticate: 7 " <<<"$out" || fail "an answer of 1,099 bytes: expected PAM_AUTH_ERR (7): $out"
[ "$(vprop "$NP" Locked)" = true ] || fail "a long answer unlocked the vault"
pass "failed and postponed conversations: refused, vault locked, the answer freed ($([ "$TS_SAN" = 1 ] && echo LeakSanitizer || echo valgrind))"
core_finish
