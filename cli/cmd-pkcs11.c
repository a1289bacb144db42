/* cmd-pkcs11.c — `tokenseal pkcs11 list`: offline listing of PKCS#11 tokens and the keys one could enroll; an escrow officer's RSA key on a token. */
#define _GNU_SOURCE 1
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "cli.h"
#include "core/escrow.h"
#include "protectors/pkcs11_mech.h"
#include "protectors/escrow_rsa.h"

static const char pkcs11_help[] =
	"Usage: tokenseal pkcs11 list [--module PATH] [--json]\n"
	"List PKCS#11 tokens and the public keys and certificates they show without a PIN,\n"
	"each with the pkcs11: URI to give to 'tokenseal enroll pkcs11 --uri'. A key its token cannot\n"
	"unlock with (EC without CKM_ECDH1_DERIVE, RSA without CKM_RSA_PKCS_OAEP) is marked unusable.\n"
	"Runs here, without the daemon; nothing is written to the tokens and no PIN is asked.\n\n"
	"  --module PATH   load this PKCS#11 module instead of every module registered with p11-kit\n"
	"  --json          print one JSON object {\"modules\": [...]}\n"
	"  -h, --help      this text\n\n"
	"Exit status: 0 when at least one token was found, 7 when none was.\n";

/*
 * Limits on what a module may make us walk: a token is untrusted input, and a
 * broken module could report huge counts. Beyond them the listing is cut.
 */
#define P11L_SLOTS_MAX 64
#define P11L_OBJECTS_MAX 1024
#define P11L_ATTR_MAX 16384   /* largest CKA_VALUE (certificate) or CKA_LABEL we read */

struct p11l {
	int json;
	size_t n_modules, n_tokens, n_objects;   /* for JSON commas and the exit status */
	/* The token being listed: does it offer what unlocking needs? 1 yes, 0 no, -1 it does not say. */
	int ecdh, oaep;
};

/* ---- output helpers ------------------------------------------------------ */

/* Token strings are the token's bytes: escape for JSON, neutralise control characters for a terminal. */
static void p11l_str(const struct p11l *l, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!l->json) {
		for (; *p; p++)
			putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
		return;
	}
	putchar('"');
	for (; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* A blank-padded CK_UTF8CHAR field as a C string (out has len + 1 bytes). */
static void p11l_trim(char *out, const CK_UTF8CHAR *field, size_t len)
{
	size_t n = p11_kit_space_strlen(field, len);

	memcpy(out, field, n);
	out[n] = '\0';
}

static void p11l_hex(char *out, const uint8_t *b, size_t len)
{
	static const char x[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = x[b[i] >> 4];
		out[2 * i + 1] = x[b[i] & 15];
	}
	out[2 * len] = '\0';
}

/* ---- object attributes --------------------------------------------------- */

/* Read one attribute into a new buffer (NUL-terminated for convenience). NULL if absent or too large. */
static uint8_t *p11l_attr(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                          size_t *ret_len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	uint8_t *buf;

	*ret_len = 0;
	if (m->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > P11L_ATTR_MAX)
		return NULL;
	if ((buf = calloc(1, a.ulValueLen + 1)) == NULL)
		return NULL;
	a.pValue = buf;
	/* The module may answer a different length the second time; trust only what fits. */
	if (m->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > P11L_ATTR_MAX) {
		free(buf);
		return NULL;
	}
	buf[a.ulValueLen] = '\0';
	*ret_len = a.ulValueLen;
	return buf;
}

static int p11l_ulong(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                      CK_ULONG *ret)
{
	CK_ATTRIBUTE a = { type, ret, sizeof(*ret) };

	return m->C_GetAttributeValue(s, o, &a, 1) == CKR_OK && a.ulValueLen == sizeof(*ret) ? 0 : -1;
}

/* The curve named by a DER OID (CKA_EC_PARAMS); only the curves worth naming. */
static const char *p11l_curve(const uint8_t *p, size_t len)
{
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const uint8_t p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
	static const uint8_t p521[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23 };

	if (p && len == sizeof(p256) && memcmp(p, p256, len) == 0)
		return "ec-p256";
	if (p && len == sizeof(p384) && memcmp(p, p384, len) == 0)
		return "ec-p384";
	if (p && len == sizeof(p521) && memcmp(p, p521, len) == 0)
		return "ec-p521";
	return "ec";
}

/* Key type of a public key object: "rsa-2048", "ec-p256", ... */
static void p11l_pubkey_type(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, char *out, size_t outlen)
{
	CK_ULONG kt, bits;
	uint8_t *v;
	size_t len;

	snprintf(out, outlen, "unknown");
	if (p11l_ulong(m, s, o, CKA_KEY_TYPE, &kt) < 0)
		return;
	if (kt == CKK_RSA) {
		if (p11l_ulong(m, s, o, CKA_MODULUS_BITS, &bits) < 0) {
			/* Some modules omit CKA_MODULUS_BITS on public keys; the modulus says it too. */
			v = p11l_attr(m, s, o, CKA_MODULUS, &len);
			bits = len * 8;
			free(v);
		}
		snprintf(out, outlen, "rsa-%lu", (unsigned long)bits);
	} else if (kt == CKK_EC) {
		v = p11l_attr(m, s, o, CKA_EC_PARAMS, &len);
		snprintf(out, outlen, "%s", p11l_curve(v, len));
		free(v);
	} else if (kt == CKK_EC_EDWARDS) {
		snprintf(out, outlen, "eddsa");
	} else {
		snprintf(out, outlen, "key-type-0x%lx", (unsigned long)kt);
	}
}

/* Key type of a certificate's subject key, parsed by OpenSSL from CKA_VALUE. */
static void p11l_cert_type(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, char *out, size_t outlen)
{
	size_t len;
	uint8_t *der = p11l_attr(m, s, o, CKA_VALUE, &len);
	const unsigned char *p = der;
	X509 *x = NULL;
	EVP_PKEY *k;
	char group[64];

	snprintf(out, outlen, "unknown");
	if (!der || (x = d2i_X509(NULL, &p, (long)len)) == NULL || (k = X509_get0_pubkey(x)) == NULL)
		goto out;
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA:
		snprintf(out, outlen, "rsa-%d", EVP_PKEY_get_bits(k));
		break;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(k, group, sizeof(group), NULL) != 1)
			snprintf(out, outlen, "ec");
		else if (strcmp(group, "prime256v1") == 0)
			snprintf(out, outlen, "ec-p256");
		else if (strcmp(group, "secp384r1") == 0)
			snprintf(out, outlen, "ec-p384");
		else if (strcmp(group, "secp521r1") == 0)
			snprintf(out, outlen, "ec-p521");
		else
			snprintf(out, outlen, "ec");
		break;
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		snprintf(out, outlen, "eddsa");
		break;
	default:
		break;
	}
out:
	X509_free(x);
	free(der);
}

/*
 * The URI to enroll this key: token label and serial (OpenSC gives every PIV
 * card the same label; the serial keeps a PIN off the wrong card) and the
 * key's CKA_ID, or its label when it has no id. Returns a new string or NULL.
 */
static char *p11l_uri(const CK_TOKEN_INFO *ti, const uint8_t *id, size_t id_len, const char *label)
{
	P11KitUri *uri = p11_kit_uri_new();
	CK_TOKEN_INFO *u;
	CK_ATTRIBUTE a;
	char *s = NULL;

	if (!uri)
		return NULL;
	u = p11_kit_uri_get_token_info(uri);
	/* Fields left zero are "any" to p11-kit and not written out. */
	memset(u, 0, sizeof(*u));
	memcpy(u->label, ti->label, sizeof(u->label));
	if (p11_kit_space_strlen(ti->serialNumber, sizeof(ti->serialNumber)) > 0)
		memcpy(u->serialNumber, ti->serialNumber, sizeof(u->serialNumber));
	if (id_len > 0) {
		a = (CK_ATTRIBUTE){ CKA_ID, (void *)(uintptr_t)id, id_len };
	} else if (label && label[0]) {
		a = (CK_ATTRIBUTE){ CKA_LABEL, (void *)(uintptr_t)label, strlen(label) };
	} else {
		goto out;   /* nothing would name this key: no URI to offer */
	}
	if (p11_kit_uri_set_attribute(uri, &a) != P11_KIT_URI_OK ||
	    p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &s) != P11_KIT_URI_OK)
		s = NULL;
out:
	p11_kit_uri_free(uri);
	return s;
}

/* ---- listing ------------------------------------------------------------- */

static void p11l_object(struct p11l *l, CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                        CK_OBJECT_CLASS cls, const CK_TOKEN_INFO *ti, size_t *n_in_token)
{
	const char *what = cls == CKO_CERTIFICATE ? "certificate" : "public-key", *unusable = NULL;
	char type[48], *idhex = NULL, *uri = NULL;
	size_t id_len = 0, label_len = 0;
	uint8_t *id = p11l_attr(m, s, o, CKA_ID, &id_len);
	char *label = (char *)p11l_attr(m, s, o, CKA_LABEL, &label_len);

	if (cls == CKO_CERTIFICATE)
		p11l_cert_type(m, s, o, type, sizeof(type));
	else
		p11l_pubkey_type(m, s, o, type, sizeof(type));
	/* A label with a NUL inside is cut there: it is for display, the id is what selects. */
	if ((idhex = malloc(2 * id_len + 1)) == NULL)
		goto out;
	p11l_hex(idhex, id, id_len);
	uri = p11l_uri(ti, id, id_len, label);
	/* Enrollment refuses a key its token cannot unlock with (daemon/protectors/pkcs11.c, p11_mech_usable). */
	if (strncmp(type, "ec-", 3) == 0 && l->ecdh != 1)
		unusable = l->ecdh == 0 ? "the token offers no CKM_ECDH1_DERIVE" : "the token does not say if it offers CKM_ECDH1_DERIVE";
	else if (strncmp(type, "rsa-", 4) == 0 && l->oaep != 1)
		unusable = l->oaep == 0 ? "the token offers no CKM_RSA_PKCS_OAEP" : "the token does not say if it offers CKM_RSA_PKCS_OAEP";

	if (l->json) {
		printf("%s{\"class\":\"%s\",\"type\":\"%s\",\"id\":\"%s\",\"label\":", *n_in_token ? "," : "", what, type,
		       idhex);
		p11l_str(l, label ? label : "");
		printf(",\"uri\":");
		if (uri)
			p11l_str(l, uri);
		else
			printf("null");
		printf(",\"usable\":%s", unusable ? "false" : "true");
		if (unusable)
			printf(",\"unusable\":\"%s\"", unusable);
		printf("}");
	} else {
		printf("    %-11s %-8s id=%s label=\"", what, type, id_len ? idhex : "(none)");
		p11l_str(l, label ? label : "");
		printf("\"\n      uri: ");
		p11l_str(l, uri ? uri : "(none: the key has neither id nor label)");
		printf("\n");
		if (unusable)
			printf("      unusable: %s; enrollment refuses this key\n", unusable);
	}
	(*n_in_token)++;
	l->n_objects++;
out:
	free(uri);
	free(idhex);
	free(label);
	free(id);
}

/* Public keys, then certificates: what a token shows before login. */
static void p11l_objects(struct p11l *l, CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_TOKEN_INFO *ti)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PUBLIC_KEY, CKO_CERTIFICATE };
	CK_SESSION_HANDLE s;
	size_t n_in_token = 0;

	l->ecdh = ts_p11_mech_offered(m, slot, CKM_ECDH1_DERIVE, CKF_DERIVE);
	l->oaep = ts_p11_mech_offered(m, slot, CKM_RSA_PKCS_OAEP, CKF_DECRYPT);
	if (l->json)
		printf(",\"objects\":[");
	if (m->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
		if (!l->json)
			printf("    (cannot open a session)\n");
		goto done;
	}
	for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
		CK_OBJECT_CLASS cls = classes[c];
		CK_ATTRIBUTE tmpl = { CKA_CLASS, &cls, sizeof(cls) };
		CK_OBJECT_HANDLE found[P11L_OBJECTS_MAX];
		CK_ULONG n = 0, got;

		if (m->C_FindObjectsInit(s, &tmpl, 1) != CKR_OK)
			continue;
		/* Collect first: some modules do not allow other calls during a search. */
		while (n < P11L_OBJECTS_MAX && m->C_FindObjects(s, found + n, P11L_OBJECTS_MAX - n, &got) == CKR_OK &&
		       got > 0 && got <= P11L_OBJECTS_MAX - n)
			n += got;
		m->C_FindObjectsFinal(s);
		for (CK_ULONG i = 0; i < n; i++)
			p11l_object(l, m, s, found[i], cls, ti, &n_in_token);
	}
	m->C_CloseSession(s);
	if (!l->json && n_in_token == 0)
		printf("    (no public key or certificate visible without login)\n");
done:
	if (l->json)
		printf("]");
}

static void p11l_flags(const struct p11l *l, CK_FLAGS f)
{
	static const struct {
		CK_FLAGS bit;
		const char *name;
	} names[] = {
		{ CKF_LOGIN_REQUIRED, "login-required" },
		{ CKF_PROTECTED_AUTHENTICATION_PATH, "pin-pad" },
		{ CKF_USER_PIN_COUNT_LOW, "pin-count-low" },
		{ CKF_USER_PIN_FINAL_TRY, "pin-final-try" },
		{ CKF_USER_PIN_LOCKED, "pin-locked" },
		{ CKF_USER_PIN_TO_BE_CHANGED, "pin-to-be-changed" },
		{ CKF_WRITE_PROTECTED, "write-protected" },
	};
	int n = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(f & names[i].bit))
			continue;
		if (l->json)
			printf("%s\"%s\"", n ? "," : "", names[i].name);
		else
			printf("%s%s", n ? " " : "", names[i].name);
		n++;
	}
	if (!l->json && n == 0)
		printf("(none)");
}

static void p11l_token(struct p11l *l, CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_TOKEN_INFO *ti,
                       size_t *n_in_module)
{
	char label[sizeof(ti->label) + 1], manuf[sizeof(ti->manufacturerID) + 1], model[sizeof(ti->model) + 1],
		serial[sizeof(ti->serialNumber) + 1];

	p11l_trim(label, ti->label, sizeof(ti->label));
	p11l_trim(manuf, ti->manufacturerID, sizeof(ti->manufacturerID));
	p11l_trim(model, ti->model, sizeof(ti->model));
	p11l_trim(serial, ti->serialNumber, sizeof(ti->serialNumber));
	if (l->json) {
		printf("%s{\"slot\":%lu,\"label\":", *n_in_module ? "," : "", (unsigned long)slot);
		p11l_str(l, label);
		printf(",\"manufacturer\":");
		p11l_str(l, manuf);
		printf(",\"model\":");
		p11l_str(l, model);
		printf(",\"serial\":");
		p11l_str(l, serial);
		printf(",\"flags\":[");
		p11l_flags(l, ti->flags);
		printf("]");
	} else {
		printf("  token ");
		p11l_str(l, label);
		printf(" (slot %lu)\n    manufacturer: ", (unsigned long)slot);
		p11l_str(l, manuf);
		printf("\n    model:        ");
		p11l_str(l, model);
		printf("\n    serial:       ");
		p11l_str(l, serial);
		printf("\n    flags:        ");
		p11l_flags(l, ti->flags);
		printf("\n");
	}
	p11l_objects(l, m, slot, ti);
	if (l->json)
		printf("}");
	(*n_in_module)++;
	l->n_tokens++;
}

static void p11l_module(struct p11l *l, CK_FUNCTION_LIST *m, const char *given_path)
{
	char *name = p11_kit_module_get_name(m), *path = p11_kit_module_get_filename(m);
	const char *shown_path = path ? path : given_path ? given_path : "";
	CK_SLOT_ID slots[P11L_SLOTS_MAX];
	CK_ULONG n = P11L_SLOTS_MAX;
	size_t n_in_module = 0;

	if (l->json) {
		printf("%s{\"name\":", l->n_modules ? "," : "");
		p11l_str(l, name ? name : "");
		printf(",\"path\":");
		p11l_str(l, shown_path);
		printf(",\"tokens\":[");
	} else {
		printf("module ");
		p11l_str(l, name ? name : shown_path);
		if (name && shown_path[0]) {
			printf(" (");
			p11l_str(l, shown_path);
			printf(")");
		}
		printf("\n");
	}
	l->n_modules++;
	if (m->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK) {
		for (CK_ULONG i = 0; i < n && i < P11L_SLOTS_MAX; i++) {
			CK_TOKEN_INFO ti;

			/* An uninitialized token (SoftHSM2's spare slot, a blank card) holds no key to enroll. */
			if (m->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
				continue;
			p11l_token(l, m, slots[i], &ti, &n_in_module);
		}
	}
	if (l->json)
		printf("]}");
	else if (n_in_module == 0)
		printf("  (no token)\n");
	free(name);
	free(path);
}

/* CA trust stores (p11-kit-trust) are registered as modules too; they hold no keys of ours. */
static int p11l_is_trust_store(CK_FUNCTION_LIST *m)
{
	char *v = p11_kit_config_option(m, "trust-policy");
	int yes = v && (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0);

	free(v);
	return yes;
}

static int list_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct p11l l = { .json = cli.json };
	CK_FUNCTION_LIST **mods = NULL, *one = NULL;
	const char *module = NULL;
	CK_RV rv;
	int ch;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			module = optarg;
			break;
		case 'j':
			l.json = 1;
			break;
		case 'h':
			fputs(pkcs11_help, stdout);
			return EXIT_OK;
		default:
			return cli_usage_error("pkcs11 list ", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("pkcs11 list ", "unexpected argument '%s'", argv[optind]);

	if (module) {
		if ((one = p11_kit_module_load(module, 0)) == NULL) {
			cli_err("cannot load PKCS#11 module '%s': %s", module,
			        p11_kit_message() ? p11_kit_message() : "unknown error");
			return EXIT_FAIL;
		}
		if ((rv = p11_kit_module_initialize(one)) != CKR_OK) {
			cli_err("cannot initialize PKCS#11 module '%s': %s", module, p11_kit_strerror(rv));
			p11_kit_module_release(one);
			return EXIT_FAIL;
		}
	} else if ((mods = p11_kit_modules_load_and_initialize(0)) == NULL) {
		cli_err("cannot load the PKCS#11 modules registered with p11-kit: %s",
		        p11_kit_message() ? p11_kit_message() : "unknown error");
		return EXIT_FAIL;
	}

	if (l.json)
		printf("{\"modules\":[");
	if (one) {
		p11l_module(&l, one, module);
	} else {
		for (CK_FUNCTION_LIST **m = mods; *m; m++)
			if (!p11l_is_trust_store(*m))
				p11l_module(&l, *m, NULL);
	}
	if (l.json)
		printf("]}\n");
	fflush(stdout);

	if (one) {
		p11_kit_module_finalize(one);
		p11_kit_module_release(one);
	} else {
		p11_kit_modules_finalize_and_release(mods);
	}
	if (ferror(stdout)) {
		cli_err("cannot write the listing");
		return EXIT_FAIL;
	}
	if (l.n_tokens == 0) {
		cli_err("no PKCS#11 token found%s%s", module ? " by " : "", module ? module : "");
		return EXIT_TOKEN;
	}
	return EXIT_OK;
}

/* ---- an escrow officer's RSA key on a token ------------------------------ */

struct cli_p11_key {
	CK_FUNCTION_LIST **mods;      /* every module registered with p11-kit, or NULL */
	CK_FUNCTION_LIST *one;        /* the module given with --pkcs11-module, or NULL */
	CK_FUNCTION_LIST *fn;         /* the module of the token found */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	int open, logged_in;
	P11KitUri *uri;
	char label[33];
};

void cli_p11_key_close(cli_p11_key *k)
{
	if (!k)
		return;
	if (k->fn && k->logged_in)
		k->fn->C_Logout(k->session);
	if (k->fn && k->open)
		k->fn->C_CloseSession(k->session);
	if (k->mods)
		p11_kit_modules_finalize_and_release(k->mods);
	if (k->one) {
		p11_kit_module_finalize(k->one);
		p11_kit_module_release(k->one);
	}
	if (k->uri)
		p11_kit_uri_free(k->uri);
	free(k);
}

static int p11k_module_matches(CK_FUNCTION_LIST *m, P11KitUri *uri)
{
	CK_INFO info;

	return m->C_GetInfo(&info) == CKR_OK && p11_kit_uri_match_module_info(uri, &info);
}

/* The first initialized token the URI matches; its session is opened. 0 or an exit code. */
static int p11k_find_token(cli_p11_key *k, const char *uri_text)
{
	CK_FUNCTION_LIST *single[2] = { k->one, NULL };
	CK_FUNCTION_LIST **list = k->one ? single : k->mods;

	for (CK_FUNCTION_LIST **m = list; m && *m; m++) {
		CK_SLOT_ID slots[P11L_SLOTS_MAX];
		CK_ULONG n = P11L_SLOTS_MAX;

		if (!k->one && p11l_is_trust_store(*m))
			continue;
		if (!p11k_module_matches(*m, k->uri) || (*m)->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
			continue;
		for (CK_ULONG i = 0; i < n && i < P11L_SLOTS_MAX; i++) {
			CK_TOKEN_INFO ti;

			if ((*m)->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED) ||
			    !p11_kit_uri_match_token_info(k->uri, &ti))
				continue;
			if ((*m)->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &k->session) != CKR_OK)
				continue;
			k->fn = *m;
			k->slot = slots[i];
			k->open = 1;
			p11l_trim(k->label, ti.label, sizeof(ti.label));
			return 0;
		}
	}
	cli_err("%s: no PKCS#11 token matches this URI; insert it", uri_text);
	return EXIT_TOKEN;
}

int cli_p11_key_open(const char *uri_text, const char *module, cli_p11_key **ret)
{
	cli_p11_key *k;
	CK_RV rv;
	int pr, rc;

	if ((k = calloc(1, sizeof(*k))) == NULL || (k->uri = p11_kit_uri_new()) == NULL) {
		cli_err("out of memory");
		cli_p11_key_close(k);
		return EXIT_FAIL;
	}
	if ((pr = p11_kit_uri_parse(uri_text, P11_KIT_URI_FOR_ANY, k->uri)) != P11_KIT_URI_OK) {
		cli_err("%s: not a pkcs11: URI: %s", uri_text, p11_kit_uri_message(pr));
		cli_p11_key_close(k);
		return EXIT_USAGE;
	}
	/* A PIN in a URI ends up in argv, shell history and process listings. */
	if (p11_kit_uri_get_pin_value(k->uri) || p11_kit_uri_get_pin_source(k->uri)) {
		cli_err("%s: the URI may not carry a PIN (pin-value/pin-source); give it with --pin-fd or at the prompt",
		        uri_text);
		cli_p11_key_close(k);
		return EXIT_USAGE;
	}
	if (!p11_kit_uri_get_attribute(k->uri, CKA_ID) && !p11_kit_uri_get_attribute(k->uri, CKA_LABEL)) {
		cli_err("%s: the URI must name the key (id= or object=; see tokenseal pkcs11 list)", uri_text);
		cli_p11_key_close(k);
		return EXIT_USAGE;
	}
	if (module) {
		if ((k->one = p11_kit_module_load(module, 0)) == NULL) {
			cli_err("cannot load PKCS#11 module '%s': %s", module,
			        p11_kit_message() ? p11_kit_message() : "unknown error");
			cli_p11_key_close(k);
			return EXIT_FAIL;
		}
		if ((rv = p11_kit_module_initialize(k->one)) != CKR_OK) {
			cli_err("cannot initialize PKCS#11 module '%s': %s", module, p11_kit_strerror(rv));
			p11_kit_module_release(k->one);
			k->one = NULL;
			cli_p11_key_close(k);
			return EXIT_FAIL;
		}
	} else if ((k->mods = p11_kit_modules_load_and_initialize(0)) == NULL) {
		cli_err("cannot load the PKCS#11 modules registered with p11-kit: %s",
		        p11_kit_message() ? p11_kit_message() : "unknown error");
		cli_p11_key_close(k);
		return EXIT_FAIL;
	}
	if ((rc = p11k_find_token(k, uri_text)) != 0) {
		cli_p11_key_close(k);
		return rc;
	}
	*ret = k;
	return 0;
}

/* Exactly one object of class cls matching the URI's id and label. */
static CK_OBJECT_HANDLE p11k_find(cli_p11_key *k, CK_OBJECT_CLASS cls, int *ambiguous)
{
	CK_ATTRIBUTE tmpl[4], *a;
	CK_ULONG n = 0, na = 0, found = 0;
	CK_OBJECT_HANDLE obj[2] = { CK_INVALID_HANDLE, CK_INVALID_HANDLE };

	*ambiguous = 0;
	tmpl[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	a = p11_kit_uri_get_attributes(k->uri, &na);
	for (CK_ULONG i = 0; a && i < na && n < 4; i++)
		if (a[i].type == CKA_ID || a[i].type == CKA_LABEL)
			tmpl[n++] = a[i];
	if (k->fn->C_FindObjectsInit(k->session, tmpl, n) != CKR_OK)
		return CK_INVALID_HANDLE;
	if (k->fn->C_FindObjects(k->session, obj, 2, &found) != CKR_OK || found > 2)
		found = 0;
	k->fn->C_FindObjectsFinal(k->session);
	if (found == 2)
		*ambiguous = 1;
	return found == 1 ? obj[0] : CK_INVALID_HANDLE;
}

int cli_p11_key_spki(cli_p11_key *k, ts_buf *out)
{
	char err[256] = "";
	CK_OBJECT_HANDLE o;
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int amb = 0, r;

	if ((o = p11k_find(k, CKO_PUBLIC_KEY, &amb)) != CK_INVALID_HANDLE) {
		a = p11l_attr(k->fn, k->session, o, CKA_MODULUS, &alen);
		b = p11l_attr(k->fn, k->session, o, CKA_PUBLIC_EXPONENT, &blen);
		r = a && b ? ts_escrow_rsa_spki_from_ne(a, alen, b, blen, out, err, sizeof(err)) : -TS_E_INVALID_ARGS;
		if (!a || !b)
			snprintf(err, sizeof(err), "the public key is not an RSA key");
	} else if (!amb && (o = p11k_find(k, CKO_CERTIFICATE, &amb)) != CK_INVALID_HANDLE) {
		/* Many cards and HSMs show a certificate and no public key object. */
		a = p11l_attr(k->fn, k->session, o, CKA_VALUE, &alen);
		r = a ? ts_escrow_rsa_spki_from_bytes(a, alen, out, err, sizeof(err)) : -TS_E_INVALID_ARGS;
		if (!a)
			snprintf(err, sizeof(err), "cannot read the certificate");
	} else {
		cli_err("token '%s': %s", k->label, amb ? "the URI matches more than one key; add id= or object="
		                                         : "no public key or certificate matches the URI");
		return EXIT_TOKEN;
	}
	free(a);
	free(b);
	if (r < 0) {
		cli_err("token '%s': %s", k->label, err);
		return cli_exit_code(r);
	}
	return 0;
}

int cli_p11_key_login(cli_p11_key *k, const char *pin, size_t pin_len)
{
	CK_RV rv = k->fn->C_Login(k->session, CKU_USER, (CK_UTF8CHAR_PTR)(uintptr_t)pin, pin_len);

	switch (rv) {
	case CKR_OK:
		k->logged_in = 1;
		return 0;
	case CKR_USER_ALREADY_LOGGED_IN:
		return 0;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_LEN_RANGE:
		cli_err("PIN incorrect for token '%s'", k->label);
		return EXIT_AUTH;
	case CKR_PIN_LOCKED:
		cli_err("PIN blocked on token '%s'; unblock it with the SO PIN", k->label);
		return EXIT_AUTH;
	default:
		cli_err("login to token '%s' failed: %s", k->label, p11_kit_strerror(rv));
		return EXIT_TOKEN;
	}
}

int cli_p11_key_unwrap(cli_p11_key *k, const uint8_t *spki, size_t spki_len, const uint8_t *ct, size_t ct_len,
                       uint8_t *key)
{
	CK_RSA_PKCS_OAEP_PARAMS oaep = { CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0 };
	CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	CK_MECHANISM raw = { CKM_RSA_X_509, NULL, 0 };
	CK_OBJECT_HANDLE o;
	CK_ULONG out_len = ct_len;
	uint8_t *out = NULL;
	int amb = 0, rc = EXIT_TOKEN, is_raw = 0;
	CK_RV rv;

	if ((o = p11k_find(k, CKO_PRIVATE_KEY, &amb)) == CK_INVALID_HANDLE) {
		cli_err("token '%s': %s", k->label, amb ? "the URI matches more than one private key"
		                                        : "no private key matches the URI");
		return EXIT_TOKEN;
	}
	if ((out = ts_secure_alloc(ct_len)) == NULL) {
		cli_err("out of secure memory");
		return EXIT_FAIL;
	}
	rv = k->fn->C_DecryptInit(k->session, &mech, o);
	if (rv == CKR_MECHANISM_PARAM_INVALID || rv == CKR_ARGUMENTS_BAD || rv == CKR_MECHANISM_INVALID) {
		/*
		 * The token takes OAEP with SHA-1 only (SoftHSM2 2.6) or no OAEP at
		 * all: ask for the raw RSA operation and check the OAEP-SHA256
		 * padding here, in this process's locked memory.
		 */
		fprintf(stderr, "tokenseal: token '%s' refuses RSA-OAEP with SHA-256; decrypting with CKM_RSA_X_509 and "
		        "checking the padding here\n", k->label);
		is_raw = 1;
		rv = k->fn->C_DecryptInit(k->session, &raw, o);
	}
	if (rv != CKR_OK) {
		cli_err("token '%s' cannot decrypt with this key: %s", k->label, p11_kit_strerror(rv));
		goto out;
	}
	rv = k->fn->C_Decrypt(k->session, (CK_BYTE_PTR)(uintptr_t)ct, ct_len, out, &out_len);
	if (rv != CKR_OK || out_len > ct_len) {
		cli_err("token '%s': the escrow box does not decrypt with this key (%s)", k->label,
		        rv != CKR_OK ? p11_kit_strerror(rv) : "bad length");
		rc = EXIT_AUTH;
		goto out;
	}
	if (is_raw) {
		/* Raw RSA output may come without its leading zero bytes. */
		memmove(out + (ct_len - out_len), out, out_len);
		memset(out, 0, ct_len - out_len);
		if (ts_escrow_rsa_oaep_decode(spki, spki_len, out, ct_len, key) < 0) {
			cli_err("token '%s': the escrow box does not decrypt with this key", k->label);
			rc = EXIT_AUTH;
			goto out;
		}
	} else if (out_len != TS_ESCROW_RSA_KEY_BYTES) {
		cli_err("token '%s': the escrow box does not decrypt with this key", k->label);
		rc = EXIT_AUTH;
		goto out;
	} else {
		memcpy(key, out, TS_ESCROW_RSA_KEY_BYTES);
	}
	rc = 0;
out:
	ts_secure_free(out);
	return rc;
}

int pkcs11_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "list") == 0) {
		optind = 0;
		return list_main(argc - 1, argv + 1);
	}
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(pkcs11_help, stdout);
		return EXIT_OK;
	}
	if (argc >= 2)
		return cli_usage_error("pkcs11 ", "unknown pkcs11 command '%s'", argv[1]);
	return cli_usage_error("pkcs11 ", "which pkcs11 command? (list)");
}
