/* cmd-status.c — tokenseal status: every party that can open a vault, and its state, for humans or as JSON. */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lib/client-internal.h"
#include "lib/policy-client.h"

static const char status_help[] =
	"Usage: tokenseal status [--vault [OWNER:]NAME] [--json]\n"
	"Show the vaults you may use (or one): id, owner, locked or unlocked, why and since when,\n"
	"root key version and oldest usable version, and every protector that can open it, with\n"
	"whether its token is there now (checked without a touch or a PIN); protectors still\n"
	"needed to unlock, escrow officers, and whether the vault complies with the system\n"
	"policy (or what to do, e.g. a root key due for rotation).\n\n"
	"      --vault [OWNER:]NAME  show only this vault\n"
	"      --json         print a JSON array of vault objects with the same facts (tokenseal(1))\n"
	"  -h, --help         this text\n";

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/*
 * The rule a PolicyStatus message names: "out of policy: RULE (FILE:LINE): ..."
 * gives RULE ("[keys] max-age"), into buf; "" when the message has no rule.
 */
static const char *policy_rule(const char *msg, char *buf, size_t cap)
{
	static const char prefix[] = "out of policy: ";
	const char *end;

	buf[0] = '\0';
	if (!msg || strncmp(msg, prefix, sizeof(prefix) - 1) != 0)
		return buf;
	msg += sizeof(prefix) - 1;
	if ((end = strstr(msg, " (")) != NULL && *msg == '[' && (size_t)(end - msg) < cap) {
		memcpy(buf, msg, (size_t)(end - msg));
		buf[end - msg] = '\0';
	}
	return buf;
}

static void print_json(ts_client *c, const ts_vault_info *v)
{
	ts_vault_policy_info *pol = NULL;
	struct passwd *pw = getpwuid(v->owner);
	char rule[128], when[64];
	time_t t = (time_t)(v->lock_changed / 1000000u);
	struct tm tm;

	printf("{\"name\":");
	json_string(v->name);
	printf(",\"id\":");
	json_string(v->id);
	printf(",\"owner\":%u,\"owner_name\":", v->owner);
	if (pw)
		json_string(pw->pw_name);
	else
		printf("null");
	printf(",\"locked\":%s,\"lock_reason\":", v->locked ? "true" : "false");
	json_string(v->lock_reason);
	/* Since when locked (or unlocked): µs since the epoch, and the same second in ISO 8601 UTC. */
	printf(",\"lock_changed_usec\":%llu,\"lock_changed\":", (unsigned long long)v->lock_changed);
	if (v->lock_changed && gmtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		json_string(when);
	else
		printf("null");
	printf(",\"key_version\":%u,\"min_key_version\":%u,\"protectors\":[", v->key_version, v->min_key_version);
	for (size_t i = 0; i < v->n_protectors; i++) {
		const ts_protector_info *p = &v->protectors[i];

		printf("%s{\"id\":", i ? "," : "");
		json_string(p->id);
		printf(",\"type\":");
		json_string(p->type);
		printf(",\"description\":");
		json_string(p->description);
		printf(",\"created\":%llu,\"presence\":", (unsigned long long)p->created);
		json_string(p->presence ? p->presence : "unknown");
		printf(",\"facts\":{");
		for (size_t j = 0; j < p->n_facts; j++) {
			printf("%s", j ? "," : "");
			json_string(p->facts[j].key);
			putchar(':');
			json_string(p->facts[j].value);
		}
		printf("}}");
	}
	printf("]");
	/* Escrow and policy as the human form shows them; left out when the daemon has no such properties. */
	if (ts_client_vault_policy_info(c, v->name, &pol) >= 0) {
		printf(",\"shares_needed\":%u,\"policy_compliant\":%s,\"policy_message\":", pol->shares_needed,
		       pol->compliant ? "true" : "false");
		json_string(pol->policy_message ? pol->policy_message : "");
		/* The rule broken ("" when compliant); [keys] max-age means the root key is due for rotation. */
		policy_rule(pol->compliant ? NULL : pol->policy_message, rule, sizeof(rule));
		printf(",\"policy_rule\":");
		json_string(rule);
		printf(",\"rotation_due\":%s", strcmp(rule, "[keys] max-age") == 0 ? "true" : "false");
		printf(",\"escrow_recipients\":[");
		for (size_t i = 0; i < pol->n_escrow; i++) {
			printf("%s{\"fingerprint\":", i ? "," : "");
			json_string(pol->escrow_fp[i]);
			printf(",\"label\":");
			json_string(pol->escrow_label[i]);
			putchar('}');
		}
		putchar(']');
		ts_vault_policy_info_free(pol);
	}
	putchar('}');
}

/* Terminal output must not carry control characters from a vault file. */
static const char *safe(const char *s, char *buf, size_t cap)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < cap; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

/* "2026-11-29 05:40:01 UTC" from unix seconds. */
static void format_utc(uint64_t sec, char *buf, size_t cap)
{
	time_t t = (time_t)sec;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, cap, "%llu", (unsigned long long)sec);
}

/* What status says about a protector's token; NULL when the daemon did not say. */
static const char *presence_text(const char *presence)
{
	if (!presence)
		return NULL;
	if (strcmp(presence, "present") == 0)
		return "key present";
	if (strcmp(presence, "absent") == 0)
		return "key absent";
	if (strcmp(presence, "needs-secret") == 0)
		return "needs the secret";
	return "presence unknown";
}

static void print_human(const ts_vault_info *v)
{
	struct passwd *pw = getpwuid(v->owner);
	char a[512], b[512], d[512], when[64], since[80] = "";
	const char *pr;

	printf("vault %s\n", safe(v->name, a, sizeof(a)));
	printf("  id:           %s\n", safe(v->id, a, sizeof(a)));
	printf("  owner:        %u (%s)\n", v->owner, pw ? pw->pw_name : "?");
	if (v->lock_changed) {
		format_utc(v->lock_changed / 1000000u, when, sizeof(when));
		snprintf(since, sizeof(since), " since %s", when);
	}
	if (v->locked)
		printf("  state:        locked (%s)%s\n", *v->lock_reason ? safe(v->lock_reason, a, sizeof(a)) : "locked",
		       since);
	else
		printf("  state:        unlocked%s\n", since);
	printf("  key version:  %u (oldest usable: %u)\n", v->key_version, v->min_key_version);
	printf("  protectors:   %zu\n", v->n_protectors);
	for (size_t i = 0; i < v->n_protectors; i++) {
		const ts_protector_info *p = &v->protectors[i];

		format_utc(p->created, when, sizeof(when));
		printf("    %-4s %-9s %s", safe(p->id, a, sizeof(a)), safe(p->type, b, sizeof(b)),
		       *p->description ? safe(p->description, d, sizeof(d)) : "");
		if ((pr = presence_text(p->presence)) != NULL)
			printf(" [%s]", pr);
		putchar('\n');
		printf("         created %s\n", when);
		if (p->n_facts) {
			printf("        ");
			for (size_t j = 0; j < p->n_facts; j++)
				printf(" %s=%s", safe(p->facts[j].key, a, sizeof(a)), safe(p->facts[j].value, b, sizeof(b)));
			printf("\n");
		}
	}
}

int status_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vault", required_argument, NULL, 'V' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { 0 }
	};
	ts_client *c = NULL;
	ts_vault_info *v = NULL;
	char **names = NULL;
	size_t n = 0, shown = 0;
	int ch, r, rc = 0;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'V':
			cli.vault = optarg;
			break;
		case 'j':
			cli.json = 1;
			break;
		case 'h':
			fputs(status_help, stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("status ", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("status ", "unexpected argument '%s'", argv[optind]);
	if ((rc = cli_connect(&c)) != 0)
		return rc;

	if (cli.vault) {
		if ((r = ts_client_vault_info(c, cli.vault, &v)) < 0) {
			rc = cli_report(c, r);
			goto out;
		}
		/* Best effort: an older daemon has no ProbeProtectors, and status still has much to say. */
		(void)ts_client_probe_protectors(c, cli.vault, v);
		if (cli.json) {
			putchar('[');
			print_json(c, v);
			printf("]\n");
		} else {
			print_human(v);
			cli_status_policy(c, v->name, v->locked);
		}
		goto out;
	}

	if ((r = ts_client_list_vaults(c, &names, &n)) < 0) {
		rc = cli_report(c, r);
		goto out;
	}
	if (cli.json)
		putchar('[');
	for (size_t i = 0; i < n; i++) {
		if ((r = ts_client_vault_info(c, names[i], &v)) < 0) {
			/* Removed since the list was made: not an error. */
			if (r == -TS_E_NO_SUCH_VAULT)
				continue;
			rc = cli_report(c, r);
			break;
		}
		(void)ts_client_probe_protectors(c, names[i], v);
		if (cli.json) {
			if (shown)
				putchar(',');
			print_json(c, v);
		} else {
			if (shown)
				putchar('\n');
			print_human(v);
			cli_status_policy(c, v->name, v->locked);
		}
		shown++;
		ts_vault_info_free(v);
		v = NULL;
	}
	if (cli.json)
		printf("]\n");
	else if (!shown && rc == 0)
		printf("No vaults. Create one with 'tokenseal create'.\n");
out:
	ts_vault_info_free(v);
	ts_strv_free(names);
	ts_client_free(c);
	if (fflush(stdout) != 0 && rc == 0)
		rc = EXIT_FAIL;
	return rc;
}
