#!/bin/bash
# cli-completion.sh — the bash completion offers every command `tokenseal --help` lists, every subcommand and
# option that `tokenseal COMMAND --help` names, and no option the help does not know: they cannot drift apart.
# tests/run: may run beside another test
. "$TS_SRC/tests/lib/rig.sh"
COMPLETION="$TS_SRC/contrib/bash-completion/tokenseal"
[ -x "$TOKENSEAL" ] || fail "$TOKENSEAL not built"
export PATH="$TS_BUILD:$PATH"
# No daemon here: vault and protector lists come back empty, and fast.
export TOKENSEAL_BUS="unix:path=$RIG_DIR/no-bus"
set +u   # as in an interactive shell
. "$COMPLETION"

# offered WORD... — what completing the last word (may be "") offers, one per line.
offered() {
	local COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMPREPLY=()
	_tokenseal
	[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"
}
# help_options TEXT — the options a help text documents: every one on a usage line (or its "   [...]"
# continuation), and the one(s) an
# option line starts with ("  -c, --context ...", "  fido2:  --no-pin ...", "  --help, --version").
help_options() {
	{
		grep -E '^(Usage:)? *tokenseal |^ +\[' <<<"$1" | grep -oE -- '--[a-z][a-z0-9-]*'
		grep -oE '^ *([a-z0-9]+: *)?(-[a-zA-Z], )?--[a-z][a-z0-9-]*(, --[a-z][a-z0-9-]*)*' <<<"$1" |
			grep -oE -- '--[a-z][a-z0-9-]*'
	} | sort -u
}
# help_subcommands CMD TEXT — lowercase words right after "tokenseal [--vault NAME] CMD" on a usage line.
help_subcommands() {
	sed -n 's/^\(Usage:\)\{0,1\} *tokenseal \(\[--vault NAME\] \)\{0,1\}'"$1"' \([a-z][a-z0-9-]*\).*/\3/p' <<<"$2" |
		sort -u
}
has() { grep -qxF -- "$1" <<<"$2"; }

# --- commands and global options from `tokenseal --help`.
top=$("$TOKENSEAL" --help)
cmds=$(sed -n '/^Commands:/,/^$/p' <<<"$top" | awk 'NR > 1 && NF { print $1 }')
[ "$(wc -w <<<"$cmds")" -ge 10 ] || fail "could not read the command list from tokenseal --help: $cmds"
got=$(offered tokenseal "")
for c in $cmds; do has "$c" "$got" || fail "completion does not offer command '$c'"; done
for c in $got; do has "$c" "$cmds" || fail "completion offers '$c', which tokenseal --help does not list"; done
gopts=$(sed -n '/^Options:/,/^$/p' <<<"$top" | grep -oE '^ +--[a-z][a-z0-9-]*(, --[a-z][a-z0-9-]*)*' |
	grep -oE -- '--[a-z][a-z0-9-]*')
[ -n "$gopts" ] || fail "no global options in tokenseal --help"
got=$(offered tokenseal --)
for o in $gopts; do has "$o" "$got" || fail "completion does not offer global option $o"; done
[ "$(offered tokenseal st)" = status ] || fail "'st' completes to: $(offered tokenseal st)"
pass "every command ($(wc -w <<<"$cmds")) and global option of tokenseal --help is offered, nothing else"

# --- per command: subcommands and options from `tokenseal COMMAND --help`.
n_sub=0 n_opt=0
for c in $cmds; do
	help=$("$TOKENSEAL" "$c" --help 2>&1) || fail "tokenseal $c --help failed: $help"
	subs=$(help_subcommands "$c" "$help")
	got=$(offered tokenseal "$c" "")
	for s in $subs; do
		has "$s" "$got" || fail "completion does not offer '$c $s'"
		n_sub=$((n_sub + 1))
	done
	# All options offered for this command, with or without a subcommand.
	all=$(offered tokenseal "$c" --)
	for s in $subs; do
		sopts=$(offered tokenseal "$c" "$s" --)
		all=$(printf '%s\n%s\n' "$all" "$sopts")
		# The options a subcommand's own usage line names are offered after that subcommand.
		line=$(grep -E "^(Usage:)? *tokenseal (\[--vault NAME\] )?$c $s( |\$)" <<<"$help")
		for o in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$line" | grep -vx -- --vault); do
			has "$o" "$sopts" || fail "completion does not offer $o after '$c $s'"
		done
	done
	hopts=$(help_options "$help")
	for o in $hopts; do
		has "$o" "$all" || fail "completion does not offer option $o of '$c'"
		n_opt=$((n_opt + 1))
	done
	for o in $(sort -u <<<"$all"); do
		case $o in --help | --vault) continue ;; esac
		has "$o" "$hopts" || fail "completion offers $o for '$c', which tokenseal $c --help does not document"
	done
done
[ $n_sub -ge 8 ] && [ $n_opt -ge 40 ] || fail "too few subcommands ($n_sub) or options ($n_opt) read from the help texts"
pass "every subcommand ($n_sub) and option ($n_opt) the commands' --help texts name is offered, and only those"

# --- values.
[ "$(offered tokenseal enroll tpm2 --re)" = --replace ] || fail "enroll tpm2 --re: $(offered tokenseal enroll tpm2 --re)"
has --no-touch "$(offered tokenseal enroll tpm2 --)" && fail "enroll tpm2 offers fido2's --no-touch"
has --device "$(offered tokenseal enroll fido2 --)" && fail "enroll fido2 offers --device (the daemon's administrator chooses devices)"
[ "$(offered tokenseal --bus se)" = session ] || fail "--bus se: $(offered tokenseal --bus se)"
[ "$(offered tokenseal enroll pkcs11 --oaep-hash sha2)" = sha256 ] || fail "--oaep-hash"
[ "$(offered tokenseal --vault x escrow se)" = set ] || fail "a --vault value is not a command: $(offered tokenseal --vault x escrow se)"
touch "$RIG_DIR/policy-file.conf"
[ "$(offered tokenseal policy check "$RIG_DIR/policy-f")" = "$RIG_DIR/policy-file.conf" ] || fail "policy check FILE"
[ -z "$(offered tokenseal --vault "")" ] || fail "vault names without a daemon: $(offered tokenseal --vault "")"
pass "option values: protector ids, buses, hashes, files; a --vault value is skipped when finding the command"
