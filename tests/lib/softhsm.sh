# softhsm.sh — a private SoftHSM2 token with RSA-2048 and EC P-256 key pairs, for the integration tests.
#
# Source after rig.sh (or on its own: nothing here runs in the background,
# the token is a directory of files, removed with the test's temp dir).
#   softhsm_setup DIR        DIR/softhsm2.conf + DIR/tokens; exports SOFTHSM2_CONF;
#                            token "ts-test" (SO PIN / user PIN below) with key pairs
#                            id 01 "ts-rsa" (RSA-2048) and id 02 "ts-ec" (EC P-256)
#   softhsm_keypair ID LABEL TYPE   another key pair on ts-test (TYPE as pkcs11-tool: rsa:2048, EC:prime256v1)
#   softhsm_export_pub ID OUT.pem   the public key of ID as PEM (what an offline enrollment is given)
#   softhsm_import_ec_with_cert ID LABEL WORKDIR   a P-256 key + certificate, no public key object
#   softhsm_empty_conf DIR   a conf whose token dir is empty: no token "ts-test" (echoes its path)
#   softhsm_set_user_pin_flags FLAGS   OR FLAGS (hex) into ts-test's stored token flags
# The product finds SoftHSM2 through p11-kit's registry (Debian registers it
# in /usr/share/p11-kit/modules/softhsm2.module); SOFTHSM2_CONF points it here.
# SOFTHSM_MODULE is the module's path, for pkcs11-tool and the explicit-module tests.

SOFTHSM_LABEL=ts-test
SOFTHSM_SO_PIN=87654321
SOFTHSM_PIN=123456

softhsm_module_path() {
	local f=/usr/share/p11-kit/modules/softhsm2.module m
	if [ -r "$f" ]; then
		m=$(sed -n 's/^module:[[:space:]]*//p' "$f" | head -n1)
		case $m in
		/*) [ -e "$m" ] && { echo "$m"; return 0; } ;;
		?*) for d in "$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null)" /usr/lib/*/pkcs11; do
			[ -e "$d/$m" ] && { echo "$d/$m"; return 0; }
		    done ;;
		esac
	fi
	for m in /usr/lib/*/softhsm/libsofthsm2.so /usr/lib/softhsm/libsofthsm2.so; do
		[ -e "$m" ] && { echo "$m"; return 0; }
	done
	return 1
}

softhsm_p11tool() { # args... (logged in to ts-test)
	local rc=0
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$SOFTHSM_LABEL" "$@" || rc=$?
	softhsm_helper_access
	return $rc
}

# softhsm_helper_access — the token files (new ones are root's, 0600) to the token helper's group:
# the daemon starts the helper as its own user (tests/lib/rig.sh, rig_helper_access).
softhsm_helper_access() {
	declare -F rig_helper_access >/dev/null || return 0
	[ -n "${SOFTHSM2_CONF:-}" ] && [ -r "$SOFTHSM2_CONF" ] || return 0
	rig_helper_access "$(sed -n 's/^directories.tokendir[[:space:]]*=[[:space:]]*//p' "$SOFTHSM2_CONF")"
}

softhsm_keypair() { # id label type
	softhsm_p11tool --login --pin "$SOFTHSM_PIN" --keypairgen --key-type "$3" --id "$1" --label "$2" >/dev/null
}

softhsm_export_pub() { # id out.pem
	softhsm_p11tool --read-object --type pubkey --id "$1" -o "$2.der" >/dev/null 2>&1
	openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
	rm -f "$2.der"
}

softhsm_setup() { # dir
	local d=$1
	SOFTHSM_MODULE=$(softhsm_module_path) || { echo "softhsm: libsofthsm2.so not found" >&2; return 1; }
	mkdir -p "$d/tokens"
	cat >"$d/softhsm2.conf" <<EOF
directories.tokendir = $d/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
	export SOFTHSM2_CONF="$d/softhsm2.conf" SOFTHSM_MODULE
	softhsm2-util --init-token --free --label "$SOFTHSM_LABEL" \
		--so-pin "$SOFTHSM_SO_PIN" --pin "$SOFTHSM_PIN" >/dev/null
	softhsm_keypair 01 ts-rsa rsa:2048
	softhsm_keypair 02 ts-ec EC:prime256v1
}

# A P-256 private key made in software and imported with a self-signed
# certificate and no public key object: how many PIV cards and HSMs look.
softhsm_import_ec_with_cert() { # id label workdir
	local w=$3
	mkdir -p "$w"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$w/key.pem" 2>/dev/null
	openssl pkey -in "$w/key.pem" -outform DER -out "$w/key.der"
	openssl req -x509 -new -key "$w/key.pem" -subj "/CN=$2" -days 2 -outform DER -out "$w/cert.der"
	softhsm_p11tool --login --pin "$SOFTHSM_PIN" --write-object "$w/key.der" --type privkey \
		--id "$1" --label "$2" --usage-derive >/dev/null
	softhsm_p11tool --login --pin "$SOFTHSM_PIN" --write-object "$w/cert.der" --type cert \
		--id "$1" --label "$2" >/dev/null
	# WORKDIR/key.pem stays: a test may recompute what the token computes.
	rm -f "$w/key.der"
}

softhsm_empty_conf() { # dir
	local d=$1
	mkdir -p "$d/tokens"
	cat >"$d/softhsm2.conf" <<EOF
directories.tokendir = $d/tokens
objectstore.backend = file
log.level = ERROR
EOF
	echo "$d/softhsm2.conf"
}

# SoftHSM2 keeps the token flags as a CK_ULONG attribute (vendor type
# 0x8000534b) in token.object; C_GetTokenInfo reports them as stored. This is
# how a test makes the token say "user PIN locked", which SoftHSM2 2.6.1
# never does on its own (it has no retry counter).
softhsm_set_user_pin_flags() { # hex flags to OR in
	local dir
	dir=$(sed -n 's/^directories.tokendir[[:space:]]*=[[:space:]]*//p' "$SOFTHSM2_CONF")
	/usr/bin/python3 - "$dir" "$1" <<'PY'
import glob, struct, sys
tag = struct.pack(">QQ", 0x8000534b, 2)     # attribute type, kind 2 = CK_ULONG
n = 0
for f in glob.glob(sys.argv[1] + "/*/token.object"):
    b = bytearray(open(f, "rb").read())
    i = b.find(tag)
    if i < 0 or b"ts-test " not in b:
        continue
    v = struct.unpack(">Q", b[i + 16:i + 24])[0] | int(sys.argv[2], 16)
    b[i + 16:i + 24] = struct.pack(">Q", v)
    open(f, "wb").write(b)
    n += 1
sys.exit(0 if n == 1 else 1)
PY
}
