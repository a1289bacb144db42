/* test_policy.c — policy files: every error names file and line, files merge strictly, evaluators enforce each rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sodium.h>

#include "tokenseal.h"
#include "core/escrow.h"
#include "core/vault.h"
#include "../../policy/policy.h"

static char pub_a[TS_ESCROW_PUB_TEXT_BYTES], pub_b[TS_ESCROW_PUB_TEXT_BYTES], pub_c[TS_ESCROW_PUB_TEXT_BYTES];
static uint8_t raw_a[32], raw_b[32], raw_c[32];

static int setup(void **state)
{
	uint8_t *sec = ts_secure_alloc(32);

	assert_int_equal(ts_escrow_keygen(raw_a, sec), 0);
	assert_int_equal(ts_escrow_keygen(raw_b, sec), 0);
	assert_int_equal(ts_escrow_keygen(raw_c, sec), 0);
	ts_escrow_pub_to_text(raw_a, pub_a);
	ts_escrow_pub_to_text(raw_b, pub_b);
	ts_escrow_pub_to_text(raw_c, pub_c);
	ts_secure_free(sec);
	return 0;
}

static ts_policy *parse_ok(const char *text)
{
	char err[TS_POLICY_MSG_MAX];
	ts_policy *p = NULL;
	int r = ts_policy_parse("t.conf", text, strlen(text), &p, err, sizeof(err));

	if (r != 0)
		fail_msg("unexpected policy error: %s", err);
	assert_non_null(p);
	return p;
}

/* The text must be refused with an error that starts with want (file:line: ...) and contains detail. */
static void parse_bad(const char *text, size_t len, const char *want, const char *detail)
{
	char err[TS_POLICY_MSG_MAX];
	ts_policy *p = (ts_policy *)1;
	int r = ts_policy_parse("t.conf", text, len, &p, err, sizeof(err));

	if (r != -TS_E_INVALID_ARGS || strncmp(err, want, strlen(want)) != 0 || !strstr(err, detail))
		fail_msg("policy %s: got %d '%s', wanted '%s...%s'", text, r, err, want, detail);
	assert_null(p);
}
#define BAD(text, want, detail) parse_bad(text, strlen(text), want, detail)

static const ts_policy_setting *find_setting(const ts_policy *p, const char *section, const char *key)
{
	for (size_t i = 0; i < ts_policy_n_settings(p); i++) {
		const ts_policy_setting *s = ts_policy_setting_at(p, i);

		if (strcmp(s->section, section) == 0 && strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

static void empty_policy_is_every_default(void **state)
{
	ts_policy *p = parse_ok("# nothing here\n\n; nor here\n");
	const ts_policy_setting *s;
	ts_policy_protector one = { "recovery", 0 };
	ts_policy_caller c = { .uid = 4242 };

	/* 16 + [recovery] attempts, max-backoff, [lock] share-timeout, [audit] data-interval, [limits] x3, [tang] alone,
	 * servers, [escrow] publish and its directory (8 keys) */
	assert_int_equal(ts_policy_n_settings(p), 34);
	for (size_t i = 0; i < ts_policy_n_settings(p); i++) {
		assert_null(ts_policy_setting_at(p, i)->file);
		assert_int_equal(ts_policy_setting_at(p, i)->line, 0);
	}
	assert_null(ts_policy_setting_at(p, 34));
	s = find_setting(p, "protectors", "allowed");
	assert_string_equal(s->value, "fido2, tpm2, pkcs11, recovery, tang");
	assert_int_equal(ts_policy_check_protectors(p, &one, 1, 1, 1, NULL, 0), 0);
	assert_int_equal(ts_policy_check_unwrap(p, "alice", &c, NULL, 0), 0);
	assert_int_equal(ts_policy_idle_timeout(p), 0);
	assert_int_equal(ts_policy_lock_flags(p), TS_POLICY_LOCK_SUSPEND | TS_POLICY_LOCK_SCREEN |
	                                          TS_POLICY_LOCK_TOKEN_REMOVAL);
	assert_int_equal(ts_policy_rotation_due(p, 0, UINT64_MAX), 0);
	assert_int_equal(ts_policy_audit_fail_closed(p), 0);
	assert_int_equal(ts_policy_audit_data_interval(p), 60);
	assert_int_equal(ts_policy_escrow_required(p, NULL, 0, NULL), 0);
	assert_int_equal(ts_policy_recovery_attempts(p), 5);
	assert_int_equal(ts_policy_recovery_max_backoff(p), 300);
	assert_int_equal(ts_policy_limit_helpers(p), 8);
	assert_int_equal(ts_policy_limit_jobs(p), 4);
	assert_int_equal(ts_policy_limit_vaults(p), 32);
	ts_policy_free(p);
	p = parse_ok("[limits]\nhelpers = 2\njobs-per-uid = 4096\nvaults-per-uid = 1\n");
	assert_int_equal(ts_policy_limit_helpers(p), 2);
	assert_int_equal(ts_policy_limit_jobs(p), 4096);
	assert_int_equal(ts_policy_limit_vaults(p), 1);
	ts_policy_free(p);
	BAD("[limits]\nhelpers = 0\n", "t.conf:2: ", "[limits] helpers: '0' is not a number from 1 to 4096");
	BAD("[limits]\njobs-per-uid = 4097\n", "t.conf:2: ", "not a number from 1 to 4096");
	BAD("[limits]\nvaults = 3\n", "t.conf:2: ", "[limits]: unknown key 'vaults'");
	p = parse_ok("[recovery]\nattempts = 2\nmax-backoff = 1h\n");
	assert_int_equal(ts_policy_recovery_attempts(p), 2);
	assert_int_equal(ts_policy_recovery_max_backoff(p), 3600);
	ts_policy_free(p);
	p = parse_ok("[audit]\ndata-interval = 5m\n");
	assert_int_equal(ts_policy_audit_data_interval(p), 300);
	ts_policy_free(p);
	p = parse_ok("[audit]\ndata-interval = off\n");
	assert_int_equal(ts_policy_audit_data_interval(p), 0);
	ts_policy_free(p);
}

static void every_error_names_file_and_line(void **state)
{
	char long_line[4200], text[4400];

	BAD("[protector]\nmin = 2\n", "t.conf:1: ", "unknown section [protector]");
	BAD("[audit]\ndata-interval = 2h\n", "t.conf:2: ", "[audit] data-interval: '2h' is longer than 1h");
	BAD("[protectors]\n[bogus]\n", "t.conf:2: ", "unknown section [bogus]");
	BAD("[protectors\nmin = 2\n", "t.conf:1: ", "without ']'");
	BAD("min = 2\n", "t.conf:1: ", "outside of any [section]");
	BAD("[lock]\nidle = 5m\nsleep = yes\n", "t.conf:3: ", "unknown key 'sleep'");
	BAD("[protectors]\nallowed = fido2, usb\n", "t.conf:2: ", "unknown protector type 'usb'");
	BAD("[protectors]\nallowed = fido2,,tpm2\n", "t.conf:2: ", "empty list entry");
	BAD("[protectors]\nallowed = fido2, fido2\n", "t.conf:2: ", "listed twice");
	BAD("[protectors]\nallowed =\n", "t.conf:2: ", "empty value");
	BAD("[protectors]\nmin = two\n", "t.conf:2: ", "not a number");
	BAD("[protectors]\nmin = 0\n", "t.conf:2: ", "not a number");
	BAD("[protectors]\nmin = 33\n", "t.conf:2: ", "not a number");
	BAD("[protectors]\nmin = 02\n", "t.conf:2: ", "not a number");
	BAD("[protectors]\nmin = -2\n", "t.conf:2: ", "not a number");
	BAD("[protectors]\nmin = 2\n\nmin = 3\n", "t.conf:4: ", "already set at t.conf:2");
	BAD("[protectors]\nmin\n", "t.conf:2: ", "syntax error");
	/* An indented line is not a continuation of the previous value. */
	BAD("[protectors]\nallowed = fido2\n  tpm2\n", "t.conf:3: ", "syntax error");
	BAD("[fido2]\npin = sometimes\n", "t.conf:2: ", "neither 'required' nor 'optional'");
	BAD("[lock]\non-suspend = maybe\n", "t.conf:2: ", "not yes or no");
	BAD("[lock]\nidle = 15 m\n", "t.conf:2: ", "not a duration");
	BAD("[lock]\nidle = 15x\n", "t.conf:2: ", "not a duration");
	BAD("[lock]\nidle = 0m\n", "t.conf:2: ", "not a duration");
	BAD("[keys]\nmax-age = 99999999999999999999d\n", "t.conf:2: ", "not a duration");
	BAD("[keys]\nmax-age = 36501w\n", "t.conf:2: ", "not a duration");
	BAD("[recipient alice]\nkey = tokenseal-escrow-pub:v1:AAAA\n", "t.conf:2: ", "not an escrow public key");
	BAD("[recipient alice]\nname = x\n", "t.conf:2: ", "unknown key 'name'");
	BAD("[recipient al ice]\n", "t.conf:1: ", "unknown section");
	BAD("[unwrap mail]\nusers = nosuchuser-tokenseal\n", "t.conf:2: ", "no such user 'nosuchuser-tokenseal'");
	BAD("[unwrap mail]\ngroups = nosuchgroup-tokenseal\n", "t.conf:2: ", "no such group");
	BAD("[unwrap mail]\nusers = 0\nexecutables = usr/bin/x\n", "t.conf:3: ", "absolute executable path");
	BAD("[unwrap mail]\nusers = 0\nexecutables = /usr/../bin/x\n", "t.conf:3: ", "absolute executable path");
	BAD("[unwrap mail]\nusers = 0\nunits = mail\n", "t.conf:3: ", "systemd unit name");
	BAD("[unwrap mail]\nusers = 0\nvaults = a/b\n", "t.conf:3: ", "vault name pattern");
	BAD("[unwrap mail]\nusers = 0\nwho = me\n", "t.conf:3: ", "unknown key 'who'");
	/* Bytes inih would let through. */
	parse_bad("[protectors]\nmin = 2\0 3\n", 21, "t.conf:2: ", "control character 0x00");
	BAD("[protectors]\nmin = 2\x1b[0m\n", "t.conf:2: ", "control character 0x1b");
	BAD("[protectors]\n# caf\xc3\n", "t.conf:2: ", "not valid UTF-8");
	memset(long_line, 'x', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	snprintf(text, sizeof(text), "[protectors]\n\n# %s\n", long_line);
	BAD(text, "t.conf:3: ", "line too long");
	/* The first error wins, even when a later line is also wrong. */
	BAD("[protectors]\nmin = x\n[nope]\n", "t.conf:2: ", "not a number");

	/* Contradictions. */
	BAD("[protectors]\nmin = 2\nthreshold = 3\n", "t.conf:3: ", "threshold = 3 is more than min = 2 (t.conf:2)");
	BAD("[protectors]\nthreshold = 2\n", "t.conf:2: ", "min = 1 (built-in default)");
	BAD("[escrow]\nthreshold = 2\n", "t.conf:2: ", "no [recipient NAME]");
	snprintf(text, sizeof(text), "[escrow]\nthreshold = 3\n[recipient a]\nkey = %s\n[recipient b]\nkey = %s\n",
	         pub_a, pub_b);
	BAD(text, "t.conf:2: ", "only 2 recipients");
	snprintf(text, sizeof(text), "[recipient a]\nkey = %s\n[recipient b]\nkey = %s\n", pub_a, pub_a);
	BAD(text, "t.conf:4: ", "same key as [recipient a] (t.conf:2)");
	snprintf(text, sizeof(text), "[recipient a]\nkey = %s\n[recipient a]\nkey = %s\n", pub_a, pub_b);
	BAD(text, "t.conf:4: ", "already set at t.conf:2");
	BAD("[unwrap mail]\nvaults = mail\n", "t.conf:2: ", "names no callers");
}

static void values_take_effect_and_show_where_they_came_from(void **state)
{
	char text[2048];
	const ts_policy_setting *s;
	ts_escrow_recipient r[4];
	ts_policy *p;
	unsigned m = 0;

	snprintf(text, sizeof(text),
	         "; site policy\n"
	         "[protectors]\n"
	         "allowed = fido2, recovery   ; no TPM here\n"
	         "min = 2\n"
	         "threshold = 1\n"
	         "[fido2]\n"
	         "pin = required\n"
	         "touch = required\n"
	         "[lock]\n"
	         "idle = 15m\n"
	         "on-screen-lock = no\n"
	         "[keys]\n"
	         "max-age = 90d\n"
	         "[audit]\n"
	         "fail-closed = yes\n"
	         "[escrow]\n"
	         "threshold = 2\n"
	         "[recipient alice]\n"
	         "key = %s\n"
	         "[recipient bob]\n"
	         "key = %s\r\n"
	         "[unwrap mail]\n"
	         "vaults = mail-*\n"
	         "users = root, 1000\n",
	         pub_a, pub_b);
	p = parse_ok(text);
	assert_int_equal(ts_policy_idle_timeout(p), 900);
	assert_int_equal(ts_policy_lock_flags(p), TS_POLICY_LOCK_SUSPEND | TS_POLICY_LOCK_TOKEN_REMOVAL);
	assert_int_equal(ts_policy_audit_fail_closed(p), 1);
	assert_int_equal(ts_policy_rotation_due(p, 1000, 1000 + 90 * 86400 - 1), 0);
	assert_int_equal(ts_policy_rotation_due(p, 1000, 1000 + 90 * 86400), 1);
	assert_int_equal(ts_policy_rotation_due(p, 2000, 1000), 0);
	assert_int_equal(ts_policy_escrow_required(p, r, 4, &m), 2);
	assert_int_equal(m, 2);
	assert_string_equal(r[0].label, "alice");
	assert_memory_equal(r[1].pubkey, raw_b, 32);

	s = find_setting(p, "protectors", "allowed");
	assert_string_equal(s->value, "fido2, recovery");
	assert_string_equal(s->file, "t.conf");
	assert_int_equal(s->line, 3);
	s = find_setting(p, "fido2", "uv");
	assert_string_equal(s->value, "optional");
	assert_null(s->file);
	s = find_setting(p, "recipient bob", "key");
	assert_string_equal(s->value, pub_b);
	assert_int_equal(s->line, 21);
	s = find_setting(p, "unwrap mail", "users");
	assert_string_equal(s->value, "root, 1000");
	assert_int_equal(s->line, 24);
	s = find_setting(p, "lock", "idle");
	assert_string_equal(s->value, "15m");
	ts_policy_free(p);
}

static void protector_rules_are_enforced_with_rule_and_place(void **state)
{
	ts_policy *p = parse_ok("[protectors]\nallowed = fido2, recovery\nmin = 3\nthreshold = 2\n"
	                        "[fido2]\npin = required\ntouch = required\n[tpm2]\npin = required\n");
	char msg[TS_POLICY_MSG_MAX];
	ts_policy_protector ok[3] = {
		{ "fido2", TS_POLICY_PIN | TS_POLICY_TOUCH }, { "fido2", TS_POLICY_PIN | TS_POLICY_TOUCH | TS_POLICY_UV },
		{ "recovery", 0 },
	};
	ts_policy_protector tpm = { "tpm2", TS_POLICY_PIN }, nopin = { "fido2", TS_POLICY_TOUCH },
	                    weird = { "usb-stick", 0 };

	assert_int_equal(ts_policy_check_protectors(p, ok, 3, 2, 1, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	assert_int_equal(ts_policy_check_protectors(p, &tpm, 1, 2, 0, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_string_equal(msg, "[protectors] allowed (t.conf:2): protector type 'tpm2' is not allowed "
	                         "(allowed: fido2, recovery)");
	assert_int_equal(ts_policy_check_protectors(p, &weird, 1, 2, 0, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_int_equal(ts_policy_check_protectors(p, &nopin, 1, 2, 0, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_string_equal(msg, "[fido2] pin (t.conf:6): every fido2 protector must use a PIN");
	/* While being built a vault may be below the minimum, not once in use. */
	assert_int_equal(ts_policy_check_protectors(p, ok, 2, 2, 0, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_protectors(p, ok, 2, 2, 1, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_string_equal(msg, "[protectors] min (t.conf:3): the vault has 2 protectors, the policy requires at least 3");
	assert_int_equal(ts_policy_check_protectors(p, ok, 3, 1, 0, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "[protectors] threshold (t.conf:4)"));
	assert_int_equal(ts_policy_check_create(p, "alice", ok, 1, 2, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_create(p, "alice", &tpm, 1, 2, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_int_equal(ts_policy_check_create(p, ".bad", ok, 1, 2, msg, sizeof(msg)), -TS_E_INVALID_ARGS);
	ts_policy_free(p);
}

static void tang_opens_a_vault_only_with_another_protector_unless_allowed(void **state)
{
	ts_policy *def = parse_ok(""), *alone = parse_ok("[tang]\nalone = yes\n");
	char msg[TS_POLICY_MSG_MAX];
	ts_policy_protector two[3] = { { "recovery", 0 }, { "tpm2", 0 }, { "tang", 0 } };
	ts_policy_protector tangs[3] = { { "recovery", 0 }, { "tang", 0 }, { "tang", 0 } };

	/* Alone (threshold 1): refused by default, naming the key; a share of 2-of-n is fine. */
	assert_int_equal(ts_policy_check_protectors(def, two, 3, 1, 0, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "[tang] alone (built-in default): tang protectors would open the vault"));
	assert_int_equal(ts_policy_check_protectors(def, two, 3, 2, 1, msg, sizeof(msg)), 0);
	/* Two tang protectors of a 2-of-n vault would open it together: refused too. */
	assert_int_equal(ts_policy_check_protectors(def, tangs, 3, 2, 0, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_int_equal(ts_policy_check_protectors(def, tangs, 3, 3, 1, msg, sizeof(msg)), 0);
	/* [tang] alone = yes allows both. */
	assert_int_equal(ts_policy_check_protectors(alone, two, 3, 1, 1, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_protectors(alone, tangs, 3, 2, 1, msg, sizeof(msg)), 0);
	ts_policy_free(def);
	ts_policy_free(alone);
}

static void escrow_publish_names_its_directory(void **state)
{
	ts_policy *def = parse_ok(""),
	          *p = parse_ok("[escrow]\npublish = required\nldap-uri = ldaps://dir.example.org\n"
	                        "ldap-base = ou=escrow,dc=example,dc=org\nldap-bind-dn = cn=m1,ou=machines,dc=example,dc=org\n"
	                        "ldap-password-file = /etc/tokenseal/ldap.pw\nldap-ca-file = /etc/ssl/ca.pem\n"
	                        "machine-id = m1\n");
	ts_policy_directory_conf c;
	char msg[TS_POLICY_MSG_MAX];

	ts_policy_directory(def, &c);
	assert_int_equal(c.publish, TS_POLICY_PUBLISH_OFF);
	assert_null(c.uri);
	assert_null(c.machine_id);
	assert_string_equal(find_setting(def, "escrow", "publish")->value, "off");
	ts_policy_directory(p, &c);
	assert_int_equal(c.publish, TS_POLICY_PUBLISH_REQUIRED);
	assert_string_equal(c.uri, "ldaps://dir.example.org");
	assert_string_equal(c.base, "ou=escrow,dc=example,dc=org");
	assert_string_equal(c.bind_dn, "cn=m1,ou=machines,dc=example,dc=org");
	assert_string_equal(c.password_file, "/etc/tokenseal/ldap.pw");
	assert_string_equal(c.ca_file, "/etc/ssl/ca.pem");
	assert_null(c.cert_file);
	assert_string_equal(c.machine_id, "m1");
	assert_int_equal(ts_policy_publish_violation(p, "not stored", msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_string_equal(msg, "[escrow] publish (t.conf:2): not stored");
	ts_policy_free(p);
	ts_policy_free(def);

	/* What `policy show` prints for a key not set reads back as not set. */
	p = parse_ok("[escrow]\nldap-uri = none\nldap-bind-dn = none\nldap-password-file = none\n"
	             "machine-id = /etc/machine-id\n");
	ts_policy_directory(p, &c);
	assert_null(c.uri);
	assert_null(c.bind_dn);
	assert_null(c.password_file);
	assert_null(c.machine_id);
	ts_policy_free(p);

	BAD("[escrow]\npublish = yes\n", "t.conf:2:", "is not off, optional or required");
	BAD("[escrow]\npublish = optional\n", "t.conf:2:", "needs ldap-uri and ldap-base");
	BAD("[escrow]\npublish = optional\nldap-uri = ldapi:///run/slapd/ldapi\n", "t.conf:2:", "needs ldap-uri and ldap-base");
	BAD("[escrow]\nldap-uri = http://dir.example.org\n", "t.conf:2:", "not an ldapi://, ldaps:// or ldap:// URI");
	BAD("[escrow]\nldap-uri = ldaps://a.example ldap://b.example\n", "t.conf:2:", "one URI only, not a list");
	BAD("[escrow]\nldap-uri = ldaps://a.example,ldap://b.example\n", "t.conf:2:", "one URI only, not a list");
	{
		char text[700];

		snprintf(text, sizeof(text), "[escrow]\nldap-base = ou=%0600d\n", 0);
		BAD(text, "t.conf:2:", "longer than 511 bytes");
	}
	BAD("[escrow]\nldap-password-file = relative.pw\n", "t.conf:2:", "not an absolute path");
	BAD("[escrow]\nmachine-id = m1.evil,dc=x\n", "t.conf:2:", "not [A-Za-z0-9_-]{1,64}");
	BAD("[escrow]\nldap-bind-dn = cn=m1\n", "t.conf:2:", "ldap-bind-dn and ldap-password-file go together");
	BAD("[escrow]\nldap-key-file = /k.pem\n", "t.conf:2:", "ldap-cert-file and ldap-key-file go together");
	BAD("[escrow]\nldap-uri = ldapi:///run/slapd/ldapi\nldap-ca-file = /ca.pem\n", "t.conf:2:", "not ldapi://");
}

static void tang_servers_are_an_allowlist_of_origins_empty_by_default(void **state)
{
	ts_policy *def = parse_ok(""),
	          *p = parse_ok("[tang]\nservers = http://Tang.Example.org, https://10.0.0.5:8443/, http://[fd00::1]:7500\n");
	const char *ok[] = { "http://tang.example.org", "http://TANG.example.org:80/", "https://10.0.0.5:8443",
	                     "http://[fd00::1]:7500/tang" };
	const char *bad[] = {
		"http://tang.example.org:8080",        /* another port */
		"https://tang.example.org",            /* another scheme (port 443) */
		"http://tang.example.org.evil.net",    /* a longer name */
		"http://evil.net/http://tang.example.org",
		"http://tang.example.org@evil.net",    /* a user part */
		"http://tang%2Eexample.org",           /* percent-encoding */
		"http://127.0.0.1:22", "http://169.254.169.254", "https://10.0.0.5", "http://[fd00::1]",
		"ftp://tang.example.org", "http://tang.example.org:0", "http://tang.example.org:65536",
		"http://tang.example.org:80x", "http://", "http://[fd00::1", "http://tang.example.org\n",
	};
	char msg[TS_POLICY_MSG_MAX], first[TS_POLICY_MSG_MAX];
	const ts_policy_setting *st;

	/* No list: no Tang server at all, naming the key. */
	assert_int_equal(ts_policy_check_tang_urls(def, ok, 1, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "[tang] servers (built-in default): no Tang server is allowed"));
	assert_string_equal(find_setting(def, "tang", "servers")->value, "none");
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (ts_policy_check_tang_urls(p, &ok[i], 1, msg, sizeof(msg)) != 0)
			fail_msg("%s refused: %s", ok[i], msg);
	assert_int_equal(ts_policy_check_tang_urls(p, ok, 4, msg, sizeof(msg)), 0);
	/* Anything else gets the same answer: no way to tell an invalid URL from an unlisted one. */
	assert_int_equal(ts_policy_check_tang_urls(p, &bad[0], 1, first, sizeof(first)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(first, "[tang] servers (t.conf:2): a Tang server of this protector is not one the policy allows"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *two[2] = { ok[0], bad[i] };

		if (ts_policy_check_tang_urls(p, two, 2, msg, sizeof(msg)) != -TS_E_POLICY_VIOLATION)
			fail_msg("%s allowed", bad[i]);
		assert_string_equal(msg, first);
	}
	st = find_setting(p, "tang", "servers");
	assert_string_equal(st->value, "http://Tang.Example.org, https://10.0.0.5:8443/, http://[fd00::1]:7500");
	/* Entries are origins: no path, user or query; nothing that is not http(s). */
	BAD("[tang]\nservers = http://tang.example.org/adv\n", "t.conf:2: ", "is not http://HOST[:PORT]");
	BAD("[tang]\nservers = http://u@tang.example.org\n", "t.conf:2: ", "is not http://HOST[:PORT]");
	BAD("[tang]\nservers = tang.example.org\n", "t.conf:2: ", "is not http://HOST[:PORT]");
	BAD("[tang]\nservers = http://a, http://a\n", "t.conf:2: ", "listed twice");
	ts_policy_free(def);
	ts_policy_free(p);
}

static void unwrap_rules_match_vault_and_every_listed_criterion(void **state)
{
	ts_policy *p = parse_ok("[unwrap mail]\nvaults = mail-*, shared\nusers = root, 1000\n"
	                        "executables = /usr/bin/thunderbird\n"
	                        "[unwrap backup]\nvaults = shared\ngroups = 0\nunits = backup.service\n");
	char msg[TS_POLICY_MSG_MAX];
	uint32_t wheel[2] = { 100, 0 }, users[1] = { 100 };
	ts_policy_caller tb = { .uid = 1000, .gids = users, .n_gids = 1, .exe = "/usr/bin/thunderbird" };
	ts_policy_caller tb_root = { .uid = 0, .exe = "/usr/bin/thunderbird" };
	ts_policy_caller other_exe = { .uid = 1000, .exe = "/usr/bin/evil" };
	ts_policy_caller other_uid = { .uid = 1001, .exe = "/usr/bin/thunderbird" };
	ts_policy_caller backup = { .uid = 34, .gids = wheel, .n_gids = 2, .unit = "backup.service" };
	ts_policy_caller backup_nogroup = { .uid = 34, .gids = users, .n_gids = 1, .unit = "backup.service" };

	assert_int_equal(ts_policy_check_unwrap(p, "mail-alice", &tb, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_unwrap(p, "mail-alice", &tb_root, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_unwrap(p, "mail-alice", &other_exe, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_string_equal(msg, "[unwrap mail] (t.conf:2): uid 1000 (unit none, executable /usr/bin/evil) may not "
	                         "unwrap from vault 'mail-alice'");
	assert_int_equal(ts_policy_check_unwrap(p, "mail-alice", &other_uid, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	/* "shared" has two rules: either admits. */
	assert_int_equal(ts_policy_check_unwrap(p, "shared", &tb, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_unwrap(p, "shared", &backup, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_unwrap(p, "shared", &backup_nogroup, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	/* The backup rule does not reach mail vaults; a vault no rule names is not restricted. */
	assert_int_equal(ts_policy_check_unwrap(p, "mail-bob", &backup, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_int_equal(ts_policy_check_unwrap(p, "alice", &other_exe, msg, sizeof(msg)), 0);
	ts_policy_free(p);

	/* A plain [unwrap] applies to every vault. */
	p = parse_ok("[unwrap]\nusers = 1000\n");
	assert_int_equal(ts_policy_check_unwrap(p, "anything", &tb, msg, sizeof(msg)), 0);
	assert_int_equal(ts_policy_check_unwrap(p, "anything", &other_uid, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "[unwrap] (t.conf:2)"));
	ts_policy_free(p);
}

static void escrow_of_a_vault_must_match_the_policy_exactly(void **state)
{
	char text[1024], msg[TS_POLICY_MSG_MAX];
	ts_escrow_recipient r[3];
	ts_policy *p;
	ts_vault *v = NULL;
	unsigned m;
	size_t n;

	snprintf(text, sizeof(text), "[escrow]\nthreshold = 2\n[recipient alice]\nkey = %s\n[recipient bob]\nkey = %s\n",
	         pub_a, pub_b);
	p = parse_ok(text);
	assert_int_equal(ts_vault_create(&v, "alice", 1000, 1), 0);
	assert_int_equal(ts_policy_check_escrow(p, v, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "[recipient alice] key (t.conf:4): the vault is not escrowed to alice"));

	n = ts_policy_escrow_required(p, r, 3, &m);
	assert_int_equal(ts_vault_set_escrow(v, r, n, m), 0);
	assert_int_equal(ts_policy_check_escrow(p, v, msg, sizeof(msg)), 0);
	/* Whole instead of split. */
	assert_int_equal(ts_vault_set_escrow(v, r, n, 1), 0);
	assert_int_equal(ts_policy_check_escrow(p, v, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "[escrow] threshold (t.conf:2)"));
	/* An extra recipient is someone the policy does not name. */
	r[2] = (ts_escrow_recipient){ .label = "mallory", .pubkey = raw_c };
	assert_int_equal(ts_vault_set_escrow(v, r, 3, 2), 0);
	assert_int_equal(ts_policy_check_escrow(p, v, msg, sizeof(msg)), -TS_E_POLICY_VIOLATION);
	assert_non_null(strstr(msg, "'mallory'"));
	ts_vault_free(v);
	ts_policy_free(p);
}

/* ---- directories ------------------------------------------------------------- */

static char tmpdir[64];

static void put(const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void rm_all(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
}

static void directory_merges_each_key_once_in_lexical_order(void **state)
{
	char err[TS_POLICY_MSG_MAX], want[256], missing[128];
	const ts_policy_setting *s;
	ts_policy *p = NULL;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tokenseal-policy-test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(missing, sizeof(missing), "%s/none", tmpdir);
	assert_int_equal(ts_policy_load_dir(missing, &p, err, sizeof(err)), 0);
	assert_int_equal(ts_policy_n_settings(p), 34);
	ts_policy_free(p);

	put("10-site.conf", "[protectors]\nmin = 2\n", 0644);
	put("20-fido.conf", "[fido2]\npin = required\n", 0644);
	put("README", "not a policy\n", 0644);
	put(".hidden.conf", "[nonsense\n", 0644);
	put("x.conf.bak", "[nonsense\n", 0644);
	assert_int_equal(ts_policy_load_dir(tmpdir, &p, err, sizeof(err)), 0);
	s = find_setting(p, "protectors", "min");
	snprintf(want, sizeof(want), "%s/10-site.conf", tmpdir);
	assert_string_equal(s->file, want);
	assert_int_equal(s->line, 2);
	s = find_setting(p, "fido2", "pin");
	snprintf(want, sizeof(want), "%s/20-fido.conf", tmpdir);
	assert_string_equal(s->file, want);
	ts_policy_free(p);

	/* "9-" sorts after "10-" and "20-": the conflict is reported there, naming the first place. */
	put("9-late.conf", "# late\n[protectors]\nmin = 1\n", 0644);
	assert_int_equal(ts_policy_load_dir(tmpdir, &p, err, sizeof(err)), -TS_E_INVALID_ARGS);
	assert_null(p);
	snprintf(want, sizeof(want), "%s/9-late.conf:3: [protectors] min already set at %s/10-site.conf:2", tmpdir, tmpdir);
	assert_string_equal(err, want);

	/* A broken file makes the whole load fail: never a policy with less in it. */
	put("9-late.conf", "[protectors]\nthreshold = 3\n", 0644);
	assert_int_equal(ts_policy_load_dir(tmpdir, &p, err, sizeof(err)), -TS_E_INVALID_ARGS);
	snprintf(want, sizeof(want), "%s/9-late.conf:2: [protectors] threshold = 3 is more than min = 2 (%s/10-site.conf:2)",
	         tmpdir, tmpdir);
	assert_non_null(strstr(err, want));

	/* A file others can write is not policy. */
	put("9-late.conf", "[lock]\nidle = 5m\n", 0666);
	assert_int_equal(ts_policy_load_dir(tmpdir, &p, err, sizeof(err)), -TS_E_IO);
	assert_non_null(strstr(err, "9-late.conf: refusing a policy file that others than root can write"));
	put("9-late.conf", "[lock]\nidle = 5m\n", 0644);
	assert_int_equal(ts_policy_load_dir(tmpdir, &p, err, sizeof(err)), 0);
	assert_int_equal(ts_policy_idle_timeout(p), 300);
	ts_policy_free(p);

	snprintf(want, sizeof(want), "%s/9-late.conf", tmpdir);
	assert_int_equal(ts_policy_load_file(want, &p, err, sizeof(err)), 0);
	assert_int_equal(ts_policy_idle_timeout(p), 300);
	ts_policy_free(p);
	assert_int_equal(ts_policy_load_file(tmpdir, &p, err, sizeof(err)), -TS_E_IO);
	assert_non_null(strstr(err, "not a regular file"));
	rm_all();
}

/*
 * The commented examples in policy/examples/ load alone and all together
 * (they never set a key twice). They are copied with mode 0644 first: a
 * checkout under umask 002 would make them group-writable, which a policy
 * directory rightly refuses.
 */
static void shipped_examples_load_alone_and_together(void **state)
{
	static const char *const files[] = {
		"10-backup-required.conf", "20-fido2-with-pin.conf", "30-escrow-two-officers.conf",
		"40-unwrap-callers.conf", "50-lock-and-rotation.conf",
	};
	const char *src = getenv("TS_SRC") ? getenv("TS_SRC") : ".";
	char path[600], err[TS_POLICY_MSG_MAX], text[4096];
	ts_policy *p = NULL;
	unsigned m;
	size_t n;
	FILE *f;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/tokenseal-policy-test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/policy/examples/%s", src, files[i]);
		if ((f = fopen(path, "r")) == NULL)
			fail_msg("%s: cannot open (run from the source tree or set TS_SRC)", path);
		n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		text[n] = '\0';
		put(files[i], text, 0644);
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		if (ts_policy_load_file(path, &p, err, sizeof(err)) != 0)
			fail_msg("%s", err);
		ts_policy_free(p);
	}
	if (ts_policy_load_dir(tmpdir, &p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(ts_policy_escrow_required(p, NULL, 0, &m), 3);
	assert_int_equal(m, 2);
	assert_int_equal(ts_policy_idle_timeout(p), 900);
	assert_string_equal(find_setting(p, "protectors", "min")->value, "2");
	ts_policy_free(p);
	rm_all();
}

/*
 * Property: for any mutation of a valid policy, parsing either succeeds or
 * fails with "t.conf:LINE: " where LINE is a line of the text; it never
 * crashes or reports a line that is not there.
 */
static void mutated_policies_fail_cleanly_with_a_real_line(void **state)
{
	static const char base[] =
		"[protectors]\nallowed = fido2, tpm2, recovery\nmin = 2\nthreshold = 2\n"
		"[fido2]\npin = required\ntouch = required\n[lock]\nidle = 15m\non-suspend = yes\n"
		"[keys]\nmax-age = 90d\n[unwrap mail]\nvaults = mail\nusers = 0\n";
	char text[sizeof(base) + 8], err[TS_POLICY_MSG_MAX];
	unsigned t, ok = 0, lines, line;
	size_t len, i;
	ts_policy *p;
	int r;

	for (t = 0; t < 20000; t++) {
		memcpy(text, base, sizeof(base));
		len = sizeof(base) - 1;
		for (unsigned m = 0; m < 1 + t % 3; m++) {
			i = randombytes_uniform((uint32_t)len);
			switch (randombytes_uniform(3)) {
			case 0: text[i] = (char)randombytes_uniform(256); break;
			case 1: text[i] = "=[],; \n#0a"[randombytes_uniform(10)]; break;
			default: memmove(text + i, text + i + 1, len - i); len--; break;
			}
		}
		for (lines = 1, i = 0; i < len; i++)
			lines += text[i] == '\n';
		p = NULL;
		r = ts_policy_parse("t.conf", text, len, &p, err, sizeof(err));
		if (r == 0) {
			assert_non_null(p);
			ok++;
			ts_policy_free(p);
			continue;
		}
		assert_int_equal(r, -TS_E_INVALID_ARGS);
		assert_null(p);
		if (sscanf(err, "t.conf:%u: ", &line) != 1 || line == 0 || line > lines)
			fail_msg("error without a real line: '%s'", err);
	}
	/* Some mutations (in comments-free text, few) still parse: the parser is not refusing everything. */
	assert_true(ok > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_policy_is_every_default),
		cmocka_unit_test(every_error_names_file_and_line),
		cmocka_unit_test(values_take_effect_and_show_where_they_came_from),
		cmocka_unit_test(protector_rules_are_enforced_with_rule_and_place),
		cmocka_unit_test(unwrap_rules_match_vault_and_every_listed_criterion),
		cmocka_unit_test(tang_opens_a_vault_only_with_another_protector_unless_allowed),
		cmocka_unit_test(tang_servers_are_an_allowlist_of_origins_empty_by_default),
		cmocka_unit_test(escrow_publish_names_its_directory),
		cmocka_unit_test(escrow_of_a_vault_must_match_the_policy_exactly),
		cmocka_unit_test(directory_merges_each_key_once_in_lexical_order),
		cmocka_unit_test(shipped_examples_load_alone_and_together),
		cmocka_unit_test(mutated_policies_fail_cleanly_with_a_real_line),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, NULL);
}
