#!/bin/bash
# pam-install.sh — `make install DESTDIR=... PREFIX=/usr` installs every file with its mode, the unit passes
# `systemd-analyze verify`, the man pages render without warnings, completion works, `make uninstall` removes all.
. "$TS_SRC/tests/lib/rig.sh"
DEST=$RIG_DIR/dest
MK=(make -s -C "$TS_SRC" BUILD="$TS_BUILD" PREFIX=/usr DESTDIR="$DEST")
# The build being tested is installed as built: an ASan build stays one (else make would relink it).
ldd "$TS_BUILD/tokensealed" | grep -q libasan && MK+=(SAN=1)

"${MK[@]}" install >"$RIG_DIR/install.log" 2>&1 || { cat "$RIG_DIR/install.log" >&2; fail "make install"; }

# --- the tree: every file, its mode.
check_file() { # path mode
	[ -f "$DEST$1" ] || fail "not installed: $1"
	[ "$(stat -c %a "$DEST$1")" = "$2" ] || fail "$1: mode $(stat -c %a "$DEST$1"), expected $2"
}
check_file /usr/bin/tokenseal 755
check_file /usr/bin/age-plugin-tokenseal 755
check_file /usr/sbin/tokensealed 755
check_file /usr/libexec/tokenseal-helper 711
check_file /usr/lib/libtokenseal.so.1 755
[ "$(readlink "$DEST/usr/lib/libtokenseal.so")" = libtokenseal.so.1 ] || fail "libtokenseal.so symlink"
check_file /usr/lib/libtokenseal.a 644
check_file /usr/lib/pkgconfig/tokenseal.pc 644
check_file /usr/include/tokenseal.h 644
check_file /usr/lib/security/pam_tokenseal.so 644
check_file /usr/lib/systemd/system/tokensealed.service 644
check_file /usr/lib/systemd/system/tokenseal-helper.socket 644
check_file /usr/lib/systemd/system/tokenseal-helper@.service 644
check_file /usr/lib/systemd/system/tokenseal-net-helper.socket 644
check_file /usr/lib/systemd/system/tokenseal-net-helper@.service 644
check_file /usr/share/dbus-1/system.d/org.tokenseal1.conf 644
check_file /usr/share/dbus-1/system-services/org.tokenseal1.service 644
check_file /usr/share/dbus-1/interfaces/org.tokenseal1.xml 644
check_file /usr/share/polkit-1/actions/org.tokenseal1.policy 644
check_file /usr/share/bash-completion/completions/tokenseal 644
check_file /usr/share/man/man8/tokensealed.8 644
check_file /usr/lib/sysusers.d/tokenseal.conf 644
check_file /usr/lib/udev/rules.d/70-tokenseal.rules 644
check_file /usr/share/polkit-1/rules.d/50-tokenseal-pcscd.rules 644
check_file /usr/share/man/man8/pam_tokenseal.8 644
check_file /usr/share/man/man5/tokenseal-policy.5 644
check_file /usr/bin/tokenseal-secrets 755
check_file /usr/share/dbus-1/services/org.freedesktop.secrets.service 644
check_file /usr/lib/systemd/user/tokenseal-secrets.service 644
grep -qx 'Exec=/usr/bin/tokenseal-secrets' "$DEST/usr/share/dbus-1/services/org.freedesktop.secrets.service" ||
	fail "secrets activation Exec"
grep -qx 'ExecStart=/usr/bin/tokenseal-secrets' "$DEST/usr/lib/systemd/user/tokenseal-secrets.service" ||
	fail "secrets user unit ExecStart"
for m in "$TS_SRC"/docs/*.1; do [ -f "$m" ] && check_file "/usr/share/man/man1/${m##*/}" 644; done
# Nothing outside PREFIX (the unit, PAM module and all live under /usr with PREFIX=/usr).
[ -z "$(find "$DEST" -mindepth 1 -maxdepth 1 ! -name usr)" ] || fail "installed outside /usr: $(ls "$DEST")"
# The installed paths are the ones the unit and the activation file start.
grep -qx 'ExecStart=/usr/sbin/tokensealed --helper-socket /run/tokenseal/helper --net-helper-socket /run/tokenseal/net-helper --private-socket /run/tokenseal/private --bus system --state-dir /var/lib/tokenseal' \
	"$DEST/usr/lib/systemd/system/tokensealed.service" || fail "unit ExecStart"
grep -qx 'ListenStream=/run/tokenseal/helper' "$DEST/usr/lib/systemd/system/tokenseal-helper.socket" || fail "socket ListenStream"
grep -qx 'ExecStart=/usr/libexec/tokenseal-helper' "$DEST/usr/lib/systemd/system/tokenseal-helper@.service" ||
	fail "helper unit ExecStart"
grep -qx 'ListenStream=/run/tokenseal/net-helper' "$DEST/usr/lib/systemd/system/tokenseal-net-helper.socket" ||
	fail "network helper socket ListenStream"
grep -qx 'ExecStart=/usr/libexec/tokenseal-helper --network' "$DEST/usr/lib/systemd/system/tokenseal-net-helper@.service" ||
	fail "network helper unit ExecStart"
grep -qx 'Exec=/usr/sbin/tokensealed --helper /usr/libexec/tokenseal-helper --bus system' "$DEST/usr/share/dbus-1/system-services/org.tokenseal1.service" ||
	fail "activation Exec"
grep -qx 'SystemdService=tokensealed.service' "$DEST/usr/share/dbus-1/system-services/org.tokenseal1.service" ||
	fail "activation SystemdService"
grep -q '@[A-Z]*@' -r "$DEST" --include='*.service' && fail "unsubstituted @VARIABLE@ in an installed file"
# The PAM module exports the PAM entry points and nothing else.
exports=$(nm -D --defined-only "$DEST/usr/lib/security/pam_tokenseal.so" | awk '{print $3}' | grep -v '^_' | sort | tr '\n' ' ')
[ "$exports" = "pam_sm_authenticate pam_sm_close_session pam_sm_open_session pam_sm_setcred " ] ||
	fail "pam_tokenseal.so exports: $exports"
pass "make install: every file in place with its mode; paths substituted; the PAM module exports pam_sm_* only"

# --- the unit: hardening present, and systemd-analyze verify clean in a root with the installed tree.
U="$DEST/usr/lib/systemd/system/tokensealed.service"
for k in 'Type=dbus' 'BusName=org.tokenseal1' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateNetwork=yes' \
	'NoNewPrivileges=yes' 'DevicePolicy=closed' \
	'MemoryDenyWriteExecute=yes' 'LockPersonality=yes' 'StateDirectory=tokenseal' 'StateDirectoryMode=0700' \
	'RestrictAddressFamilies=AF_UNIX' 'CapabilityBoundingSet=' 'SystemCallFilter=@system-service' \
	'SystemCallFilter=~@resources' 'PrivateMounts=yes' 'ProcSubset=pid' 'AmbientCapabilities=' \
	'Wants=tokenseal-helper.socket tokenseal-net-helper.socket' 'After=tokenseal-helper.socket tokenseal-net-helper.socket' \
	'ReadWritePaths=/run/tokenseal'; do
	grep -qxF "$k" "$U" || fail "unit lacks $k"
done
grep -q '^CapabilityBoundingSet=.' "$U" && fail "the daemon's unit gives it a capability: $(grep ^CapabilityBoundingSet "$U")"
grep -q '^DeviceAllow=' "$U" && fail "the daemon's unit allows a device (only the helper opens tokens)"
# The helper's: its own user, no privilege, no network, the token devices, a hard bound on its run time.
HU="$DEST/usr/lib/systemd/system/tokenseal-helper@.service"
for k in 'User=tokenseal-helper' 'Group=tokenseal-helper' 'SupplementaryGroups=tss' 'StandardInput=null' \
	'StandardOutput=null' 'StandardError=journal' 'CapabilityBoundingSet=' 'AmbientCapabilities=' 'NoNewPrivileges=yes' \
	'PrivateNetwork=yes' 'RestrictAddressFamilies=AF_UNIX' 'DevicePolicy=closed' 'DeviceAllow=char-hidraw rw' \
	'DeviceAllow=/dev/tpmrm0 rw' 'ProtectSystem=strict' 'ProtectHome=yes' 'RuntimeMaxSec=5min'; do
	grep -qxF "$k" "$HU" || fail "helper unit lacks $k"
done
grep -q '^PrivateNetwork=no\|^IPAddressAllow=' "$HU" && fail "the token helper unit reaches the network"
HS="$DEST/usr/lib/systemd/system/tokenseal-helper.socket"
for k in 'Accept=yes' 'SocketUser=root' 'SocketMode=0600' 'MaxConnections=16'; do
	grep -qxF "$k" "$HS" || fail "helper socket lacks $k"
	grep -qxF "$k" "${HS%/*}/tokenseal-net-helper.socket" || fail "network helper socket lacks $k"
done
# The network helper's: another user, no device at all, no address unless a drop-in names one.
NU="$DEST/usr/lib/systemd/system/tokenseal-net-helper@.service"
for k in 'User=tokenseal-net' 'Group=tokenseal-net' 'DevicePolicy=closed' 'PrivateDevices=yes' 'IPAddressDeny=any' \
	'CapabilityBoundingSet=' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'RuntimeMaxSec=5min'; do
	grep -qxF "$k" "$NU" || fail "network helper unit lacks $k"
done
grep -q '^DeviceAllow=\|^SupplementaryGroups=\|^IPAddressAllow=' "$NU" && fail "the network helper unit allows a device, a group or an address"
# No more exposure than before the helper got its own user (1.5): systemd's own score of the installed units.
exposure() { systemd-analyze security --offline=yes "$1" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
score=$(exposure "$U")
[ -n "$score" ] || fail "systemd-analyze security gave no score: $(systemd-analyze security --offline=yes "$U" 2>&1 | tail -3)"
awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }' || fail "systemd-analyze security: exposure $score, above 1.5"
hscore=$(exposure "$HU")
[ -n "$hscore" ] || fail "systemd-analyze security gave no score for the helper unit"
awk -v s="$hscore" 'BEGIN { exit !(s <= 1.5) }' || fail "systemd-analyze security of the helper unit: exposure $hscore, above 1.5"
nscore=$(exposure "$NU")
[ -n "$nscore" ] || fail "systemd-analyze security gave no score for the network helper unit"
awk -v s="$nscore" 'BEGIN { exit !(s <= 1.5) }' || fail "systemd-analyze security of the network helper unit: exposure $nscore, above 1.5"
# The helper's user as systemd-sysusers makes it from the installed file: a system user in group tss.
SROOT=$RIG_DIR/sysusers
mkdir -p "$SROOT/etc" "$SROOT/usr/lib/sysusers.d"
cp "$DEST/usr/lib/sysusers.d/tokenseal.conf" "$SROOT/usr/lib/sysusers.d/"
systemd-sysusers --root="$SROOT" >/dev/null 2>&1 || fail "systemd-sysusers refuses tokenseal.conf"
grep -q '^tokenseal-helper:x:[0-9]*:[0-9]*:.*:/nonexistent:/usr/sbin/nologin$' "$SROOT/etc/passwd" || fail "sysusers: no helper user"
grep -q '^tss:x:[0-9]*:.*tokenseal-helper' "$SROOT/etc/group" || fail "sysusers: the helper user is not in tss"
grep -q '^tokenseal-net:x:[0-9]*:[0-9]*:.*:/nonexistent:/usr/sbin/nologin$' "$SROOT/etc/passwd" || fail "sysusers: no network helper user"
grep -q '^[^:]*:x:[0-9]*:.*tokenseal-net' "$SROOT/etc/group" && fail "sysusers: the network helper user is in another group: $(grep tokenseal-net "$SROOT/etc/group")"
pass "the daemon's unit has an empty CapabilityBoundingSet=, systemd-analyze security $score, the helper's $hscore, the network helper's $nscore (each at most 1.5); sysusers makes both helpers' users"
VROOT=$RIG_DIR/vroot
cp -a "$DEST" "$VROOT"
# The system's own units (targets the unit depends on by default); dbus.socket if this machine has none.
cp -an /usr/lib/systemd/system/. "$VROOT/usr/lib/systemd/system/"
[ -e "$VROOT/usr/lib/systemd/system/dbus.socket" ] ||
	printf '[Unit]\nDescription=D-Bus System Message Bus Socket\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n' \
		>"$VROOT/usr/lib/systemd/system/dbus.socket"
verify() { systemd-analyze verify --man=no --root="$VROOT" /usr/lib/systemd/system/"${1:-tokensealed.service}" 2>&1; }
for u in tokensealed.service tokenseal-helper.socket tokenseal-helper@.service tokenseal-net-helper.socket \
	tokenseal-net-helper@.service; do
	out=$(verify "$u") || fail "systemd-analyze verify $u failed: $out"
	[ -z "$out" ] || fail "systemd-analyze verify $u: $out"
done
# The check can fail: a broken setting and a missing binary are both reported.
cp "$VROOT/usr/lib/systemd/system/tokensealed.service" "$RIG_DIR/unit.good"
sed -i 's/^ProtectHome=yes/ProtectHome=sometimes/' "$VROOT/usr/lib/systemd/system/tokensealed.service"
grep -q "ProtectHome\|protect home" <<<"$(verify)" || fail "verify did not notice a bad setting"
cp "$RIG_DIR/unit.good" "$VROOT/usr/lib/systemd/system/tokensealed.service"
rm "$VROOT/usr/sbin/tokensealed" "$VROOT/usr/libexec/tokenseal-helper"
grep -q "not executable" <<<"$(verify)" || fail "verify did not notice the missing binary"
grep -q "not executable" <<<"$(verify tokenseal-helper@.service)" || fail "verify did not notice the missing helper"
pass "the units are hardened and pass systemd-analyze verify (which does catch a bad unit)"

# --- polkit actions: well-formed, and the ids are the ones the daemon asks for.
/usr/bin/python3 - "$DEST/usr/share/polkit-1/actions/org.tokenseal1.policy" "$TS_SRC/daemon/bus/polkit.h" <<'PY' ||
import re, sys, xml.etree.ElementTree as ET
ids = sorted(a.get("id") for a in ET.parse(sys.argv[1]).getroot().iter("action"))
used = sorted(re.findall(r'#define TS_POLKIT_ACTION_\w+ "([^"]+)"', open(sys.argv[2]).read()))
assert ids == used and ids, (ids, used)
PY
	fail "polkit actions and daemon disagree"
pass "polkit .policy parses and lists exactly the actions the daemon checks"

# --- man pages render without warnings (and a broken page would show one).
for m in $(find "$DEST/usr/share/man" -type f); do
	w=$(MANWIDTH=80 man -l --warnings "$m" 2>&1 >/dev/null)
	[ -z "$w" ] || fail "man -l $m: $w"
	[ "$(MANWIDTH=80 man -l "$m" 2>/dev/null | wc -l)" -gt 10 ] || fail "$m renders to almost nothing"
done
printf '.TH X 1\n.SH NAME\nx \\- y\n.BOGUSMACRO z\n' >"$RIG_DIR/bad.1"
[ -n "$(MANWIDTH=80 man -l --warnings "$RIG_DIR/bad.1" 2>&1 >/dev/null)" ] || fail "man --warnings reports nothing"
pass "man pages render with man -l without warnings"

# --- bash completion: commands, and options read from the command's --help.
comp() { # words... (the last is being completed)
	PATH="$DEST/usr/bin:$PATH" bash -c '
		_init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
			words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
		_filedir() { :; }
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tokenseal; echo "${COMPREPLY[*]}"' \
		_ "$DEST/usr/share/bash-completion/completions/tokenseal" "$@"
}
[ "$(comp tokenseal enr)" = enroll ] || fail "completion of 'enr': $(comp tokenseal enr)"
[ "$(comp tokenseal --bus sys)" = system ] || fail "completion of --bus"
[ "$(comp tokenseal enroll f)" = fido2 ] || fail "completion of enroll's type"
grep -qw -- --pin-fd <<<"$(comp tokenseal enroll fido2 --)" || fail "enroll options: $(comp tokenseal enroll fido2 --)"
pass "bash completion: commands, --bus values, protector types, per-command options"

# --- uninstall leaves no file behind.
"${MK[@]}" uninstall >"$RIG_DIR/uninstall.log" 2>&1 || { cat "$RIG_DIR/uninstall.log" >&2; fail "make uninstall"; }
left=$(find "$DEST" ! -type d)
[ -z "$left" ] || fail "left after uninstall: $left"
pass "make uninstall removes every installed file"
