#!/bin/sh
# install-deps.sh — install the Debian packages tokenseal needs to build, test and demo (idempotent).
#
#   contrib/install-deps.sh          what the build, the tests and the demo need
#   contrib/install-deps.sh --bench  also the peers `make bench` measures tokenseal against
#                                    (gnome-keyring's Secret Service, Clevis TPM2)
set -eu

PKGS="build-essential pkg-config clang
libsodium-dev libcbor-dev libsystemd-dev libfido2-dev libtss2-dev libp11-kit-dev libssl-dev libseccomp-dev
libcmocka-dev libinih-dev libpam0g-dev
dbus-daemon dbus-bin systemd util-linux
swtpm swtpm-tools tpm2-tools
softhsm2 opensc p11-kit openssl
python3 python3-fido2 python3-dbus python3-gi python3-cryptography man-db
pamtester libpam-wrapper
valgrind age
libjose-dev libcurl4-openssl-dev tang jose socat
libldap-dev slapd ldap-utils
libsecret-tools python3-secretstorage gnome-keyring pinentry-curses"

# Peers measured side by side by tests/bench/peers.sh; the bench leaves out any that is missing.
BENCH_PKGS="gnome-keyring libsecret-tools clevis clevis-tpm2"
case "${1:-}" in
--bench) PKGS="$PKGS $BENCH_PKGS" ;;
"") ;;
*) echo "usage: contrib/install-deps.sh [--bench]" >&2; exit 2 ;;
esac

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
	$SUDO apt-get update
	# shellcheck disable=SC2086
	$SUDO apt-get install -y --no-install-recommends $missing
fi
