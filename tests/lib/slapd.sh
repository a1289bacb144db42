# slapd.sh — a private OpenLDAP server (Debian's slapd) on an ldapi:// socket in a temp dir, for the tests.
#
# Source after rig.sh: the PID joins RIG_PIDS and rig_cleanup stops it.
#   slapd_start DIR   on first start, a cn=config made with slapadd (core, cosine and tokenseal's
#                     schema, contrib/ldap/tokenseal.ldif; an mdb database for LDAP_BASE whose
#                     manager is root by SASL EXTERNAL), then slapd in the foreground on
#                     ldapi://DIR/ldapi; sets LDAP_URI and LDAP_BASE (ou=escrow under the suffix)
#                     With SLAPD_TLS_CERT and SLAPD_TLS_KEY set at first start, cn=config names them
#                     (TLS on ldaps:// and StartTLS); SLAPD_EXTRA_URLS (e.g. "ldap://127.0.0.1:P/")
#                     are listened on too.
#   slapd_stop DIR    stop it by the PID it was started with (the data stays)
#   slapd_machine_acl UID NAME   the access control contrib/ldap/README.md recommends: a machine (cn=NAME
#                     under MACHINES, here uid UID over ldapi://, or a simple bind as that entry) adds and
#                     changes only the records named after itself; userPassword is for binding only
#   lq ...            ldapsearch/ldapmodify helpers: ldap_search ARGS, ldap_modify < LDIF
LDAP_SUFFIX="dc=tokenseal,dc=test"
LDAP_BASE="ou=escrow,$LDAP_SUFFIX"
MACHINES="ou=machines,$LDAP_SUFFIX"
ROOT_EXTERNAL="gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"

slapd_uri() { printf 'ldapi://%s' "$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1/ldapi")"; }

slapd_start() { # dir
	local d=$1 pid
	[ -x /usr/sbin/slapd ] || { echo "SKIP: slapd not installed (Debian package slapd)"; exit 77; }
	LDAP_URI=$(slapd_uri "$d")
	if [ ! -d "$d/slapd.d" ]; then
		mkdir -p "$d/slapd.d" "$d/db"
		{
			cat <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $d/slapd.pid
${SLAPD_TLS_CERT:+olcTLSCertificateFile: $SLAPD_TLS_CERT
olcTLSCertificateKeyFile: $SLAPD_TLS_KEY
}
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

LDIF
			cat /etc/ldap/schema/core.ldif; echo
			cat /etc/ldap/schema/cosine.ldif; echo
			cat "$TS_SRC/contrib/ldap/tokenseal.ldif"; echo
			cat <<LDIF
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=$ROOT_EXTERNAL manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $d/db
olcSuffix: $LDAP_SUFFIX
olcRootDN: $ROOT_EXTERNAL
olcDbMaxSize: 67108864
olcAccess: {0}to * by dn.exact=$ROOT_EXTERNAL manage by * none
LDIF
		} >"$d/config.ldif"
		slapadd -n 0 -F "$d/slapd.d" -l "$d/config.ldif" >"$d/slapadd.log" 2>&1 || fail "slapadd: $(cat "$d/slapadd.log")"
		printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: tokenseal\no: test\n\ndn: %s\nobjectClass: organizationalUnit\nou: escrow\n' \
			"$LDAP_SUFFIX" "$LDAP_BASE" >"$d/base.ldif"
		slapadd -n 1 -F "$d/slapd.d" -l "$d/base.ldif" >>"$d/slapadd.log" 2>&1 || fail "slapadd base: $(cat "$d/slapadd.log")"
	fi
	# -d 0: in the foreground (so $! is slapd itself), logging nothing but errors.
	/usr/sbin/slapd -d 0 -F "$d/slapd.d" -h "$LDAP_URI${SLAPD_EXTRA_URLS:+ $SLAPD_EXTRA_URLS}" 2>>"$d/log" &
	pid=$!
	echo "$pid" >"$d/pid"
	RIG_PIDS+=("$pid")
	for _ in $(seq 100); do
		if ldapsearch -LLL -Q -Y EXTERNAL -H "$LDAP_URI" -b "$LDAP_BASE" -s base dn >/dev/null 2>&1; then return 0; fi
		kill -0 "$pid" 2>/dev/null || fail "slapd exited: $(cat "$d/log")"
		sleep 0.05
	done
	fail "slapd on $LDAP_URI did not answer: $(cat "$d/log")"
}

slapd_stop() { _rig_term "$(cat "$1/pid")"; } # dir

ldap_search() { ldapsearch -LLL -Q -Y EXTERNAL -H "$LDAP_URI" "$@"; }
ldap_modify() { ldapmodify -Q -Y EXTERNAL -H "$LDAP_URI"; }

slapd_machine_acl() { # uid name
	ldap_modify >/dev/null <<LDIF || fail "cn=config: the recommended ACL"
dn: cn=config
changetype: modify
add: olcAuthzRegexp
olcAuthzRegexp: "^gidnumber=[0-9]+\\+uidnumber=$1,cn=peercred,cn=external,cn=auth\$" "cn=$2,$MACHINES"

dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcAccess
olcAccess: {0}to dn.regex="^cn=([A-Za-z0-9_-]+)\\.[0-9a-f]{32},$LDAP_BASE\$" by dn.exact,expand="cn=\$1,$MACHINES" write by * none
olcAccess: {1}to dn.exact="$LDAP_BASE" attrs=children by dn.regex="^cn=[A-Za-z0-9_-]+,$MACHINES\$" write by * none
olcAccess: {2}to dn.exact="$LDAP_BASE" by dn.regex="^cn=[A-Za-z0-9_-]+,$MACHINES\$" read by * none
olcAccess: {3}to dn.subtree="$MACHINES" attrs=userPassword by anonymous auth by * none
LDIF
}
