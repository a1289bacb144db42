/* tpm2.c — the tpm2 protector: a random KEK sealed in a TPM 2.0 data object (optional PIN and PCR policy), via tpm2-tss ESAPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
/* Through tss2/: as system headers, so their own deprecation warnings do not break -Werror. */
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "core/params.h"
#include "core/vault.h"
#include "protectors/protector.h"

/*
 * Design (docs/TPM2.md):
 * - enroll draws a 32-byte KEK from libsodium and seals it in a KEYEDHASH
 *   data object (fixedTPM|fixedParent) created under the storage primary key:
 *   the persistent SRK at 0x81000001 when there is one, else a primary made
 *   in the owner hierarchy from the TCG ECC P-256 SRK template, which the TPM
 *   re-derives identically from its owner seed at every unlock.
 * - The object's authValue is the PIN (if any). A PCR binding sets authPolicy
 *   to PolicyPCR (+ PolicyAuthValue with a PIN) and clears userWithAuth, so
 *   only a policy session over the enrolled PCR values can unseal it.
 * - noDA stays clear whenever a PIN is set: every wrong PIN counts against
 *   the TPM's dictionary-attack lockout, which is what bounds guessing. An
 *   object without a PIN has nothing to guess, so it gets noDA and keeps
 *   working while the TPM is locked out by some other program's failures.
 * - Every command that carries a secret runs in a session salted to the
 *   primary key, with parameter encryption (AES-128-CFB): the KEK and the PIN
 *   in Create, and the KEK in the Unseal response, never cross the bus in
 *   clear. The primary's name is recorded at enroll and checked at unlock
 *   before the salt is encrypted to it, so another TPM (or an interposer
 *   that answers with its own key) is refused before anything is sent.
 * - Handles: swtpm and TCTIs without a resource manager keep whatever a
 *   client leaves loaded, so every transient object and session is flushed on
 *   every path (tpm2_close).
 */

#define TPM2_DEFAULT_TCTI "device:/dev/tpmrm0"
#define TPM2_SRK_HANDLE 0x81000001u
#define TPM2_PARAMS_VERSION 1
#define TPM2_PIN_MAX 32u          /* an authValue may not exceed the nameAlg (SHA-256) digest */
#define TPM2_PCR_MAX 24u          /* PCRs 0..23: the PC client platform */
#define TPM2_PCRS_TEXT_MAX 96     /* "sha512:0,1,...,23" fits */

typedef struct tpm2_bank {
	const char *name;
	TPMI_ALG_HASH alg;
} tpm2_bank;

static const tpm2_bank tpm2_banks[] = {
	{ "sha1", TPM2_ALG_SHA1 },
	{ "sha256", TPM2_ALG_SHA256 },
	{ "sha384", TPM2_ALG_SHA384 },
	{ "sha512", TPM2_ALG_SHA512 },
};

/* A PCR selection in one bank; mask 0 means "no PCR binding". */
typedef struct tpm2_pcrsel {
	const tpm2_bank *bank;
	uint32_t mask;
} tpm2_pcrsel;

/* The public record, decoded and checked; pointers borrow from the ts_params. */
typedef struct tpm2_params {
	uint64_t parent;                /* TPM2_SRK_HANDLE, or 0: primary from the SRK template */
	const uint8_t *parent_name;
	size_t parent_name_len;
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	tpm2_pcrsel pcrs;
	const char *pcrs_text;          /* "sha256:7" or "none" */
	const uint8_t *policy;          /* with PCRs: the object's authPolicy */
	size_t policy_len;
	uint64_t pin;
} tpm2_params;

/* One connection to the TPM and every handle made through it. */
typedef struct tpm2_ctx {
	const char *tcti_conf;
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	ESYS_TR primary;
	int primary_transient;          /* flush it (created) or only forget it (persistent) */
	uint32_t parent;                /* as recorded in the params */
	TPM2B_NAME *primary_name;
	ESYS_TR hmac;                   /* salted HMAC session */
	ESYS_TR policy;                 /* salted policy session, or a trial session at enroll */
	ESYS_TR object;                 /* the loaded sealed object */
} tpm2_ctx;

#define TPM2_CTX_INIT { .primary = ESYS_TR_NONE, .hmac = ESYS_TR_NONE, .policy = ESYS_TR_NONE, \
	                .object = ESYS_TR_NONE }

/* ---- small helpers ------------------------------------------------------- */

/*
 * The TPM's response code without the handle/session/parameter number and
 * without the TSS layer, so AUTH_FAIL on session 1 compares equal to
 * TPM2_RC_AUTH_FAIL. Codes of other TSS layers are returned as they are.
 */
static TSS2_RC tpm2_rc_base(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

	if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
		return rc;
	rc &= ~TSS2_RC_LAYER_MASK;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc & 0xfff;
}

static int tpm2_rc_is_tcti(TSS2_RC rc)
{
	return (rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER;
}

/* Any failure without a more precise meaning: the TCTI lost the TPM, or the TPM said no. */
static int tpm2_fail_rc(tpm2_ctx *c, ts_protector_request *req, TSS2_RC rc, const char *what)
{
	if (tpm2_rc_is_tcti(rc))
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT,
		                         "TPM not reachable at %s (%s failed: %s)", c->tcti_conf, what,
		                         Tss2_RC_Decode(rc));
	return ts_protector_fail(req, -TS_E_FAILED, "TPM %s failed: %s", what, Tss2_RC_Decode(rc));
}

static void tpm2_flush(ESYS_CONTEXT *esys, ESYS_TR *tr)
{
	if (*tr == ESYS_TR_NONE)
		return;
	/* If the TPM is gone the flush fails; still free ESAPI's record of it. */
	if (Esys_FlushContext(esys, *tr) != TSS2_RC_SUCCESS)
		Esys_TR_Close(esys, tr);
	*tr = ESYS_TR_NONE;
}

/* Flush every transient handle and session, forget the persistent ones, disconnect. */
static void tpm2_close(tpm2_ctx *c)
{
	if (c->esys) {
		tpm2_flush(c->esys, &c->object);
		tpm2_flush(c->esys, &c->policy);
		tpm2_flush(c->esys, &c->hmac);
		if (c->primary != ESYS_TR_NONE) {
			if (c->primary_transient)
				tpm2_flush(c->esys, &c->primary);
			else
				Esys_TR_Close(c->esys, &c->primary);
		}
		Esys_Free(c->primary_name);
		c->primary_name = NULL;
		Esys_Finalize(&c->esys);
	}
	if (c->tcti)
		Tss2_TctiLdr_Finalize(&c->tcti);
}

static int tpm2_open(tpm2_ctx *c, ts_protector_request *req)
{
	TSS2_RC rc;

	c->tcti_conf = req->config && req->config->tpm2_tcti && req->config->tpm2_tcti[0]
	                       ? req->config->tpm2_tcti : TPM2_DEFAULT_TCTI;
	if ((rc = Tss2_TctiLdr_Initialize(c->tcti_conf, &c->tcti)) != TSS2_RC_SUCCESS)
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT,
		                         "TPM not reachable at %s; check that a TPM 2.0 is present and "
		                         "enabled and that tokensealed may open it", c->tcti_conf);
	if ((rc = Esys_Initialize(&c->esys, c->tcti, NULL)) != TSS2_RC_SUCCESS)
		return tpm2_fail_rc(c, req, rc, "ESAPI initialisation");
	return 0;
}

/* One TPM property (TPM2_PT_*); 0 when the TPM does not report it. */
static int tpm2_get_properties(tpm2_ctx *c, TPM2_PT first, uint32_t n, const TPM2_PT *want,
                               uint32_t *ret, size_t n_want)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;

	for (size_t i = 0; i < n_want; i++)
		ret[i] = 0;
	rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                        TPM2_CAP_TPM_PROPERTIES, first, n, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return -1;
	for (uint32_t i = 0; i < cap->data.tpmProperties.count && i < TPM2_MAX_TPM_PROPERTIES; i++)
		for (size_t j = 0; j < n_want; j++)
			if (cap->data.tpmProperties.tpmProperty[i].property == want[j])
				ret[j] = cap->data.tpmProperties.tpmProperty[i].value;
	Esys_Free(cap);
	return 0;
}

/* The dictionary-attack state: failures counted, the limit, and seconds per decrement. */
typedef struct tpm2_da {
	uint32_t counter, max, interval, recovery;
} tpm2_da;

static int tpm2_da_read(tpm2_ctx *c, tpm2_da *da)
{
	static const TPM2_PT want[] = { TPM2_PT_LOCKOUT_COUNTER, TPM2_PT_MAX_AUTH_FAIL,
	                                TPM2_PT_LOCKOUT_INTERVAL, TPM2_PT_LOCKOUT_RECOVERY };
	uint32_t v[4];

	if (tpm2_get_properties(c, TPM2_PT_LOCKOUT_COUNTER, 4, want, v, 4) < 0)
		return -1;
	*da = (tpm2_da){ v[0], v[1], v[2], v[3] };
	return 0;
}

/* "IBM", "INTC", "NTC", ... for descriptions; "" if unknown. */
static void tpm2_manufacturer(tpm2_ctx *c, char out[5])
{
	static const TPM2_PT want[] = { TPM2_PT_MANUFACTURER };
	uint32_t v;
	size_t n = 0;

	out[0] = '\0';
	if (tpm2_get_properties(c, TPM2_PT_MANUFACTURER, 1, want, &v, 1) < 0)
		return;
	for (int shift = 24; shift >= 0; shift -= 8) {
		char ch = (char)((v >> shift) & 0xff);
		if (ch >= '!' && ch <= '~')
			out[n++] = ch;
	}
	out[n] = '\0';
}

/* ---- PCR selections: "sha256:0,2,7" <-> bank + mask --------------------- */

/* Parse (hostile) text; "none" or "" is no binding. 0 or -1. */
static int tpm2_pcrs_parse(const char *s, tpm2_pcrsel *ret)
{
	const char *colon, *p;
	size_t blen;

	*ret = (tpm2_pcrsel){ NULL, 0 };
	if (!s || !*s || strcmp(s, "none") == 0)
		return 0;
	if (!(colon = strchr(s, ':')))
		return -1;
	blen = (size_t)(colon - s);
	for (size_t i = 0; i < sizeof(tpm2_banks) / sizeof(tpm2_banks[0]); i++)
		if (strlen(tpm2_banks[i].name) == blen && strncmp(s, tpm2_banks[i].name, blen) == 0)
			ret->bank = &tpm2_banks[i];
	if (!ret->bank)
		return -1;
	p = colon + 1;
	for (;;) {
		unsigned v = 0;
		int digits = 0;

		while (*p >= '0' && *p <= '9' && digits < 3) {
			v = v * 10 + (unsigned)(*p++ - '0');
			digits++;
		}
		if (digits == 0 || v >= TPM2_PCR_MAX)
			return -1;
		ret->mask |= 1u << v;
		if (*p == '\0')
			break;
		if (*p++ != ',')
			return -1;
	}
	return 0;
}

/* Canonical text: bank, then the PCRs in increasing order. */
static void tpm2_pcrs_format(const tpm2_pcrsel *sel, char *out, size_t cap)
{
	size_t n;

	if (!sel->mask) {
		snprintf(out, cap, "none");
		return;
	}
	n = (size_t)snprintf(out, cap, "%s:", sel->bank->name);
	for (unsigned i = 0; i < TPM2_PCR_MAX && n < cap; i++)
		if (sel->mask & (1u << i))
			n += (size_t)snprintf(out + n, cap - n, "%s%u", out[n - 1] == ':' ? "" : ",", i);
}

static void tpm2_pcrs_tpml(const tpm2_pcrsel *sel, TPML_PCR_SELECTION *l)
{
	memset(l, 0, sizeof(*l));
	l->count = 1;
	l->pcrSelections[0].hash = sel->bank->alg;
	l->pcrSelections[0].sizeofSelect = 3;
	for (unsigned i = 0; i < TPM2_PCR_MAX; i++)
		if (sel->mask & (1u << i))
			l->pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Refuse, at enroll, a bank this TPM does not keep (its policy could never be met). */
static int tpm2_pcrs_check_active(tpm2_ctx *c, ts_protector_request *req, const tpm2_pcrsel *sel,
                                  const char *text)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;
	int ok = 0;

	rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS, 0, 1,
	                        &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_fail_rc(c, req, rc, "reading the PCR banks");
	for (uint32_t i = 0; i < cap->data.assignedPCR.count && i < TPM2_NUM_PCR_BANKS; i++) {
		const TPMS_PCR_SELECTION *s = &cap->data.assignedPCR.pcrSelections[i];
		uint32_t have = 0;

		if (s->hash != sel->bank->alg)
			continue;
		for (unsigned j = 0; j < TPM2_PCR_MAX && j / 8 < s->sizeofSelect; j++)
			if (s->pcrSelect[j / 8] & (1u << (j % 8)))
				have |= 1u << j;
		ok = (have & sel->mask) == sel->mask;
	}
	Esys_Free(cap);
	if (!ok)
		return ts_protector_fail(req, -TS_E_NOT_SUPPORTED,
		                         "PCR bank %s is not active on this TPM for PCRs %s; choose another "
		                         "bank (e.g. --pcrs sha256:7)", sel->bank->name, text);
	return 0;
}

/* ---- the storage primary key --------------------------------------------- */

/* The TCG "SRK template" for ECC NIST P-256 (TPM v2.0 Provisioning Guidance, EK profile L-2 fields). */
static const TPM2B_PUBLIC tpm2_srk_template = {
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
		                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
		                    TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
		.parameters.eccDetail = {
			.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
			.scheme = { .scheme = TPM2_ALG_NULL },
			.curveID = TPM2_ECC_NIST_P256,
			.kdf = { .scheme = TPM2_ALG_NULL },
		},
		.unique.ecc = { .x = { .size = 32 }, .y = { .size = 32 } },
	},
};

static int tpm2_srk_present(tpm2_ctx *c, ts_protector_request *req, int *ret)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	TSS2_RC rc;

	rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
	                        TPM2_SRK_HANDLE, 1, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return tpm2_fail_rc(c, req, rc, "listing persistent handles");
	*ret = cap->data.handles.count > 0 && cap->data.handles.handle[0] == TPM2_SRK_HANDLE;
	Esys_Free(cap);
	return 0;
}

/*
 * Make c->primary usable: parent TPM2_SRK_HANDLE uses the persistent key
 * (which must be a storage key), parent 0 creates the template primary.
 */
static int tpm2_primary(tpm2_ctx *c, ts_protector_request *req, uint32_t parent)
{
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_NAME *name = NULL, *qname = NULL;
	TPM2B_CREATION_DATA *cdata = NULL;
	TPM2B_DIGEST *chash = NULL;
	TPMT_TK_CREATION *ticket = NULL;
	TSS2_RC rc;
	int r = 0;

	c->parent = parent;
	if (parent == TPM2_SRK_HANDLE) {
		rc = Esys_TR_FromTPMPublic(c->esys, TPM2_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
		                           &c->primary);
		if (rc != TSS2_RC_SUCCESS) {
			c->primary = ESYS_TR_NONE;
			if (tpm2_rc_is_tcti(rc)) {
				r = tpm2_fail_rc(c, req, rc, "reading the storage key");
				goto out;
			}
			r = ts_protector_fail(req, -TS_E_KEY_NOT_FOUND,
			                      "the TPM's storage key 0x%08x is gone (evicted, or the TPM was "
			                      "cleared); unlock with another protector and re-enroll with "
			                      "`tokenseal enroll tpm2 --replace ID`", TPM2_SRK_HANDLE);
			goto out;
		}
		c->primary_transient = 0;
		rc = Esys_ReadPublic(c->esys, c->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub,
		                     &name, &qname);
		if (rc != TSS2_RC_SUCCESS) {
			r = tpm2_fail_rc(c, req, rc, "reading the storage key");
			goto out;
		}
		const TPMA_OBJECT a = pub->publicArea.objectAttributes;
		if (!(a & TPMA_OBJECT_RESTRICTED) || !(a & TPMA_OBJECT_DECRYPT) || (a & TPMA_OBJECT_SIGN_ENCRYPT) ||
		    (pub->publicArea.type != TPM2_ALG_ECC && pub->publicArea.type != TPM2_ALG_RSA)) {
			r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED,
			                      "persistent handle 0x%08x is not a storage key (restricted "
			                      "decrypt ECC/RSA)", TPM2_SRK_HANDLE);
			goto out;
		}
	} else {
		TPM2B_SENSITIVE_CREATE empty = { 0 };
		TPM2B_DATA outside = { 0 };
		TPML_PCR_SELECTION nopcr = { 0 };

		rc = Esys_CreatePrimary(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
		                        &empty, &tpm2_srk_template, &outside, &nopcr, &c->primary, &pub, &cdata,
		                        &chash, &ticket);
		if (rc != TSS2_RC_SUCCESS) {
			TSS2_RC b = tpm2_rc_base(rc);
			c->primary = ESYS_TR_NONE;
			if (b == TPM2_RC_BAD_AUTH || b == TPM2_RC_AUTH_FAIL || b == TPM2_RC_LOCKOUT)
				r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED,
				                      "the TPM owner hierarchy has a password, so tokenseal cannot "
				                      "derive its storage key; provision an SRK at 0x%08x "
				                      "(tpm2_createprimary + tpm2_evictcontrol)", TPM2_SRK_HANDLE);
			else if (b == TPM2_RC_HIERARCHY)
				r = ts_protector_fail(req, -TS_E_NOT_SUPPORTED,
				                      "the TPM owner hierarchy is disabled; enable it in the firmware setup");
			else
				r = tpm2_fail_rc(c, req, rc, "creating the storage primary key");
			goto out;
		}
		c->primary_transient = 1;
	}
	if ((rc = Esys_TR_GetName(c->esys, c->primary, &c->primary_name)) != TSS2_RC_SUCCESS)
		r = tpm2_fail_rc(c, req, rc, "reading the storage key's name");
out:
	Esys_Free(pub);
	Esys_Free(name);
	Esys_Free(qname);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	return r;
}

/*
 * A session salted to the primary key: its session key is known only to us
 * and to the TPM that holds the primary's private key, and it encrypts the
 * first parameter of commands/responses (AES-128-CFB).
 */
static int tpm2_session(tpm2_ctx *c, ts_protector_request *req, TPM2_SE type, ESYS_TR *ret)
{
	static const TPMT_SYM_DEF aes = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
	TSS2_RC rc;

	rc = Esys_StartAuthSession(c->esys, c->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	                           NULL, type, &aes, TPM2_ALG_SHA256, ret);
	if (rc != TSS2_RC_SUCCESS) {
		*ret = ESYS_TR_NONE;
		return tpm2_fail_rc(c, req, rc, "starting a salted session");
	}
	return 0;
}

static int tpm2_session_attrs(tpm2_ctx *c, ts_protector_request *req, ESYS_TR s, TPMA_SESSION attrs)
{
	TSS2_RC rc = Esys_TRSess_SetAttributes(c->esys, s, attrs | TPMA_SESSION_CONTINUESESSION, 0xff);

	return rc == TSS2_RC_SUCCESS ? 0 : tpm2_fail_rc(c, req, rc, "setting session attributes");
}

/* Run the object's policy in session s; *ret_digest is the session's policy digest (Esys_Free it). */
static int tpm2_policy_run(tpm2_ctx *c, ts_protector_request *req, ESYS_TR s, const tpm2_pcrsel *sel,
                           int pin, const char *pcrs_text, TPM2B_DIGEST **ret_digest)
{
	TPML_PCR_SELECTION l;
	/* An empty pcrDigest: the TPM takes the current values of the selected PCRs. */
	TPM2B_DIGEST current = { 0 };
	TSS2_RC rc;

	tpm2_pcrs_tpml(sel, &l);
	rc = Esys_PolicyPCR(c->esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &l);
	if (rc != TSS2_RC_SUCCESS) {
		TSS2_RC b = tpm2_rc_base(rc);
		if (b == TPM2_RC_VALUE || b == TPM2_RC_POLICY_FAIL || b == TPM2_RC_PCR_CHANGED)
			return ts_protector_fail(req, -TS_E_PCR_MISMATCH,
			                         "the TPM refused PCR policy %s (bank inactive?); unlock with "
			                         "another protector and re-enroll with `tokenseal enroll tpm2 "
			                         "--replace ID`", pcrs_text);
		return tpm2_fail_rc(c, req, rc, "PolicyPCR");
	}
	if (pin && (rc = Esys_PolicyAuthValue(c->esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE)) != TSS2_RC_SUCCESS)
		return tpm2_fail_rc(c, req, rc, "PolicyAuthValue");
	if ((rc = Esys_PolicyGetDigest(c->esys, s, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ret_digest)) != TSS2_RC_SUCCESS)
		return tpm2_fail_rc(c, req, rc, "PolicyGetDigest");
	return 0;
}

/*
 * ESAPI keeps the last response in its own (ordinary heap) buffer; after an
 * Unseal that is where the KEK was decrypted. A harmless command with a
 * larger response overwrites it.
 */
static void tpm2_scrub_response(tpm2_ctx *c)
{
	TPM2B_DIGEST *rnd = NULL;

	if (Esys_GetRandom(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, sizeof(TPMU_HA), &rnd) == TSS2_RC_SUCCESS)
		Esys_Free(rnd);
}

/* Forget the authValue ESAPI copied into its record of the object (plain heap). */
static void tpm2_forget_auth(tpm2_ctx *c)
{
	TPM2B_AUTH zero;

	if (c->object == ESYS_TR_NONE)
		return;
	memset(&zero, 0, sizeof(zero));
	Esys_TR_SetAuth(c->esys, c->object, &zero);
}

/* ---- params -------------------------------------------------------------- */

static int tpm2_params_decode(const uint8_t *b, size_t len, ts_params **ret_pp, tpm2_params *p)
{
	ts_params *pp = NULL;
	const uint8_t *pub, *priv;
	size_t pub_len, priv_len, off;
	uint64_t version;
	int r;

	memset(p, 0, sizeof(*p));
	if ((r = ts_params_decode(b, len, &pp)) < 0)
		return r;
	if ((r = ts_params_get_uint(pp, "v", &version)) < 0)
		goto out;
	if (version != TPM2_PARAMS_VERSION) {
		r = -TS_E_UNSUPPORTED_VERSION;
		goto out;
	}
	r = -TS_E_CORRUPT;
	if (ts_params_get_uint(pp, "parent", &p->parent) < 0 ||
	    ts_params_get_bytes(pp, "parent_name", &p->parent_name, &p->parent_name_len) < 0 ||
	    ts_params_get_bytes(pp, "public", &pub, &pub_len) < 0 ||
	    ts_params_get_bytes(pp, "private", &priv, &priv_len) < 0 ||
	    ts_params_get_str(pp, "pcrs", &p->pcrs_text) < 0 ||
	    ts_params_get_uint(pp, "pin", &p->pin) < 0)
		goto out;
	if ((p->parent != 0 && p->parent != TPM2_SRK_HANDLE) || p->pin > 1 ||
	    p->parent_name_len < 2 || p->parent_name_len > sizeof(TPMU_NAME))
		goto out;
	off = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_len, &off, &p->pub) != TSS2_RC_SUCCESS || off != pub_len ||
	    p->pub.publicArea.type != TPM2_ALG_KEYEDHASH)
		goto out;
	off = 0;
	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv, priv_len, &off, &p->priv) != TSS2_RC_SUCCESS || off != priv_len)
		goto out;
	if (tpm2_pcrs_parse(p->pcrs_text, &p->pcrs) < 0)
		goto out;
	if (p->pcrs.mask) {
		if (ts_params_get_bytes(pp, "policy", &p->policy, &p->policy_len) < 0 ||
		    p->policy_len == 0 || p->policy_len > sizeof(TPMU_HA))
			goto out;
	}
	r = 0;
out:
	if (r < 0)
		ts_params_free(pp);
	else
		*ret_pp = pp;
	return r;
}

/* ---- enroll -------------------------------------------------------------- */

static int tpm2_enroll(ts_protector_request *req, uint8_t *kek, ts_buf *ret_params, char *ret_desc,
                       char *secret_out, size_t secret_out_cap, size_t *secret_out_len)
{
	tpm2_ctx c = TPM2_CTX_INIT;
	tpm2_pcrsel sel;
	const char *opt_pin = ts_protector_option(req, "pin");
	const char *opt_pcrs = ts_protector_option(req, "pcrs");
	char pcrs_text[TPM2_PCRS_TEXT_MAX], maker[5];
	TPM2B_SENSITIVE_CREATE *sens = NULL;
	TPM2B_DIGEST *policy = NULL;
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_CREATION_DATA *cdata = NULL;
	TPM2B_DIGEST *chash = NULL;
	TPMT_TK_CREATION *ticket = NULL;
	/* A sealed data object: no sign/decrypt, bound to this TPM and parent. */
	TPM2B_PUBLIC tmpl = {
		.publicArea = {
			.type = TPM2_ALG_KEYEDHASH,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT,
			.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
		},
	};
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION nopcr = { 0 };
	uint8_t pubbuf[sizeof(TPM2B_PUBLIC)], privbuf[sizeof(TPM2B_PRIVATE)];
	size_t publen = 0, privlen = 0;
	ts_params *pp = NULL;
	int use_pin, have_srk = 0, r;
	TSS2_RC rc;

	if (secret_out_len)
		*secret_out_len = 0;
	(void)secret_out;
	(void)secret_out_cap;

	/* Options first: nothing touches the TPM for a request that cannot succeed. */
	if (opt_pin && strcmp(opt_pin, "yes") != 0 && strcmp(opt_pin, "no") != 0)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "tpm2 option pin must be \"yes\" or \"no\"");
	use_pin = opt_pin ? strcmp(opt_pin, "yes") == 0 : (req->pin && req->pin_len > 0);
	if (use_pin && (!req->pin || req->pin_len == 0))
		return ts_protector_fail(req, -TS_E_PIN_REQUIRED, "a PIN is required to enroll a TPM protector with pin=yes");
	if (use_pin && req->pin_len > TPM2_PIN_MAX)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "a TPM PIN may be at most %u bytes", TPM2_PIN_MAX);
	if (tpm2_pcrs_parse(opt_pcrs, &sel) < 0)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS,
		                         "tpm2 option pcrs must look like \"sha256:7\" or \"sha256:0,2,7\" "
		                         "(banks sha1, sha256, sha384, sha512; PCRs 0-23) or \"none\"");
	tpm2_pcrs_format(&sel, pcrs_text, sizeof(pcrs_text));

	if (!(sens = ts_secure_alloc(sizeof(*sens))))
		return ts_protector_fail(req, -TS_E_NOMEM, "out of secure memory");
	if ((r = tpm2_open(&c, req)) < 0)
		goto out;
	if ((r = tpm2_srk_present(&c, req, &have_srk)) < 0 ||
	    (r = tpm2_primary(&c, req, have_srk ? TPM2_SRK_HANDLE : 0)) < 0)
		goto out;
	if (sel.mask && (r = tpm2_pcrs_check_active(&c, req, &sel, pcrs_text)) < 0)
		goto out;

	if (!use_pin)
		tmpl.publicArea.objectAttributes |= TPMA_OBJECT_NODA;
	if (sel.mask) {
		/* The policy digest, from a trial session over the PCRs' current values. */
		static const TPMT_SYM_DEF none = { .algorithm = TPM2_ALG_NULL };
		rc = Esys_StartAuthSession(c.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
		                           ESYS_TR_NONE, NULL, TPM2_SE_TRIAL, &none, TPM2_ALG_SHA256, &c.policy);
		if (rc != TSS2_RC_SUCCESS) {
			c.policy = ESYS_TR_NONE;
			r = tpm2_fail_rc(&c, req, rc, "starting a trial policy session");
			goto out;
		}
		if ((r = tpm2_policy_run(&c, req, c.policy, &sel, use_pin, pcrs_text, &policy)) < 0)
			goto out;
		tpm2_flush(c.esys, &c.policy);
		tmpl.publicArea.authPolicy = *policy;
	} else {
		tmpl.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
	}

	randombytes_buf(kek, TS_KEY_BYTES);
	sens->sensitive.data.size = TS_KEY_BYTES;
	memcpy(sens->sensitive.data.buffer, kek, TS_KEY_BYTES);
	if (use_pin) {
		sens->sensitive.userAuth.size = (UINT16)req->pin_len;
		memcpy(sens->sensitive.userAuth.buffer, req->pin, req->pin_len);
	}

	/* DECRYPT: inSensitive (KEK, PIN) travels encrypted. The primary's empty auth rides the same session. */
	if ((r = tpm2_session(&c, req, TPM2_SE_HMAC, &c.hmac)) < 0 ||
	    (r = tpm2_session_attrs(&c, req, c.hmac, TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT)) < 0)
		goto out;
	rc = Esys_Create(c.esys, c.primary, c.hmac, ESYS_TR_NONE, ESYS_TR_NONE, sens, &tmpl, &outside, &nopcr,
	                 &priv, &pub, &cdata, &chash, &ticket);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm2_fail_rc(&c, req, rc, "sealing the key (Create)");
		goto out;
	}
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, pubbuf, sizeof(pubbuf), &publen) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PRIVATE_Marshal(priv, privbuf, sizeof(privbuf), &privlen) != TSS2_RC_SUCCESS) {
		r = ts_protector_fail(req, -TS_E_FAILED, "cannot encode the sealed TPM object");
		goto out;
	}

	tpm2_manufacturer(&c, maker);
	if ((r = ts_params_new(&pp)) < 0 ||
	    (r = ts_params_set_uint(pp, "v", TPM2_PARAMS_VERSION)) < 0 ||
	    (r = ts_params_set_uint(pp, "parent", c.parent)) < 0 ||
	    (r = ts_params_set_bytes(pp, "parent_name", c.primary_name->name, c.primary_name->size)) < 0 ||
	    (r = ts_params_set_bytes(pp, "public", pubbuf, publen)) < 0 ||
	    (r = ts_params_set_bytes(pp, "private", privbuf, privlen)) < 0 ||
	    (r = ts_params_set_str(pp, "pcrs", pcrs_text)) < 0 ||
	    (r = ts_params_set_uint(pp, "pin", (uint64_t)use_pin)) < 0 ||
	    (sel.mask && (r = ts_params_set_bytes(pp, "policy", policy->buffer, policy->size)) < 0) ||
	    (maker[0] && (r = ts_params_set_str(pp, "tpm", maker)) < 0) ||
	    (r = ts_params_encode(pp, ret_params)) < 0) {
		ts_protector_fail(req, r, "cannot encode the tpm2 protector record");
		goto out;
	}
	if (ret_desc)
		snprintf(ret_desc, TS_PROTECTOR_DESC_MAX, "TPM 2.0%s%s, %s, PCRs %s, %s", maker[0] ? " " : "", maker,
		         c.parent ? "SRK 0x81000001" : "primary(ecc-p256)", pcrs_text, use_pin ? "PIN" : "no PIN");
	r = 0;
out:
	if (r < 0)
		sodium_memzero(kek, TS_KEY_BYTES);
	ts_secure_free(sens);
	Esys_Free(policy);
	Esys_Free(priv);
	Esys_Free(pub);
	Esys_Free(cdata);
	Esys_Free(chash);
	Esys_Free(ticket);
	ts_params_free(pp);
	tpm2_close(&c);
	return r;
}

/* ---- unlock -------------------------------------------------------------- */

/* "retry in N s" text for a lockout, or how to clear one that never lifts by itself. */
static void tpm2_lockout_text(const tpm2_da *da, char *out, size_t cap)
{
	if (da->interval == 0) {
		snprintf(out, cap, "it does not lift by itself: the TPM owner must clear it "
		         "(tpm2_dictionarylockout --clear-lockout)");
		return;
	}
	/* The counter drops by one every interval; unlocked once it is below the limit again. */
	uint64_t wait = (uint64_t)da->interval * (da->counter >= da->max ? da->counter - da->max + 1 : 1);
	snprintf(out, cap, "retry in %llu s (at most), or have the TPM owner clear it "
	         "(tpm2_dictionarylockout --clear-lockout)", (unsigned long long)wait);
}

static int tpm2_fail_unseal(tpm2_ctx *c, ts_protector_request *req, TSS2_RC rc, const tpm2_params *p)
{
	TSS2_RC b = tpm2_rc_base(rc);
	char when[160];
	tpm2_da da;

	if (b == TPM2_RC_AUTH_FAIL || b == TPM2_RC_BAD_AUTH) {
		if (tpm2_da_read(c, &da) < 0 || da.max == 0)
			return ts_protector_fail(req, -TS_E_PIN_INVALID, "TPM PIN incorrect");
		if (da.counter >= da.max) {
			/* This failure tripped the lockout: say so now, so nobody is asked for a PIN in vain. */
			tpm2_lockout_text(&da, when, sizeof(when));
			return ts_protector_fail(req, -TS_E_PIN_BLOCKED,
			                         "TPM PIN incorrect, and the TPM is now in dictionary-attack "
			                         "lockout; %s", when);
		}
		return ts_protector_fail(req, -TS_E_PIN_INVALID,
		                         "TPM PIN incorrect; %u more failure%s before the TPM's "
		                         "dictionary-attack lockout", da.max - da.counter,
		                         da.max - da.counter == 1 ? "" : "s");
	}
	if (b == TPM2_RC_LOCKOUT) {
		if (tpm2_da_read(c, &da) < 0)
			return ts_protector_fail(req, -TS_E_PIN_BLOCKED, "TPM dictionary-attack lockout; retry later");
		tpm2_lockout_text(&da, when, sizeof(when));
		return ts_protector_fail(req, -TS_E_PIN_BLOCKED, "TPM dictionary-attack lockout; %s", when);
	}
	if (p->pcrs.mask && (b == TPM2_RC_POLICY_FAIL || b == TPM2_RC_VALUE || b == TPM2_RC_PCR_CHANGED))
		return ts_protector_fail(req, -TS_E_PCR_MISMATCH,
		                         "PCR policy %s no longer matches this machine's boot state; unlock with "
		                         "another protector and re-enroll with `tokenseal enroll tpm2 --replace ID`",
		                         p->pcrs_text);
	return tpm2_fail_rc(c, req, rc, "unsealing the key (Unseal)");
}

static int tpm2_unlock(ts_protector_request *req, const uint8_t *params, size_t params_len, uint8_t *kek)
{
	tpm2_ctx c = TPM2_CTX_INIT;
	ts_params *pp = NULL;
	tpm2_params p;
	TPM2B_AUTH *auth = NULL;
	TPM2B_DIGEST *digest = NULL;
	TPM2B_SENSITIVE_DATA *out = NULL;
	ESYS_TR session;
	TSS2_RC rc;
	int r;

	if ((r = tpm2_params_decode(params, params_len, &pp, &p)) < 0)
		return ts_protector_fail(req, r, "the tpm2 protector record is %s",
		                         r == -TS_E_UNSUPPORTED_VERSION ? "of an unknown version" : "corrupt");
	if (p.pin && (!req->pin || req->pin_len == 0)) {
		r = ts_protector_fail(req, -TS_E_PIN_REQUIRED, "this TPM protector needs its PIN");
		goto out;
	}
	if (p.pin && req->pin_len > TPM2_PIN_MAX) {
		/* Cannot be the PIN (enroll refuses longer ones): say so without spending a TPM try. */
		r = ts_protector_fail(req, -TS_E_PIN_INVALID, "TPM PIN incorrect (longer than %u bytes)", TPM2_PIN_MAX);
		goto out;
	}
	if (!(auth = ts_secure_alloc(sizeof(*auth)))) {
		r = ts_protector_fail(req, -TS_E_NOMEM, "out of secure memory");
		goto out;
	}
	if ((r = tpm2_open(&c, req)) < 0 || (r = tpm2_primary(&c, req, (uint32_t)p.parent)) < 0)
		goto out;
	/* Before any salt is encrypted to it: is this the key the object was sealed under? */
	if (c.primary_name->size != p.parent_name_len ||
	    memcmp(c.primary_name->name, p.parent_name, p.parent_name_len) != 0) {
		r = ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
		                      "this protector is sealed to a different TPM (or this TPM was cleared, "
		                      "or its storage key replaced); use the machine it was enrolled on, or "
		                      "another protector");
		goto out;
	}
	if ((r = tpm2_session(&c, req, TPM2_SE_HMAC, &c.hmac)) < 0 ||
	    (r = tpm2_session_attrs(&c, req, c.hmac, 0)) < 0)
		goto out;
	rc = Esys_Load(c.esys, c.primary, c.hmac, ESYS_TR_NONE, ESYS_TR_NONE, &p.priv, &p.pub, &c.object);
	if (rc != TSS2_RC_SUCCESS) {
		c.object = ESYS_TR_NONE;
		TSS2_RC b = tpm2_rc_base(rc);
		if (b == TPM2_RC_INTEGRITY || b == TPM2_RC_SIZE || b == TPM2_RC_VALUE || b == TPM2_RC_KEY ||
		    b == TPM2_RC_ATTRIBUTES || b == TPM2_RC_TYPE)
			r = ts_protector_fail(req, -TS_E_TOKEN_NOT_ENROLLED,
			                      "the sealed object does not load under this TPM's storage key "
			                      "(sealed to a different TPM, or damaged)");
		else
			r = tpm2_fail_rc(&c, req, rc, "loading the sealed object");
		goto out;
	}
	if (p.pin) {
		auth->size = (UINT16)req->pin_len;
		memcpy(auth->buffer, req->pin, req->pin_len);
		if ((rc = Esys_TR_SetAuth(c.esys, c.object, auth)) != TSS2_RC_SUCCESS) {
			r = tpm2_fail_rc(&c, req, rc, "setting the PIN");
			goto out;
		}
	}

	session = c.hmac;
	if (p.pcrs.mask) {
		if ((r = tpm2_session(&c, req, TPM2_SE_POLICY, &c.policy)) < 0 ||
		    (r = tpm2_policy_run(&c, req, c.policy, &p.pcrs, (int)p.pin, p.pcrs_text, &digest)) < 0)
			goto out;
		/*
		 * The digest over today's PCR values differs from the enrolled one:
		 * a clean PcrMismatch now rather than POLICY_FAIL from Unseal.
		 */
		if (digest->size != p.policy_len || memcmp(digest->buffer, p.policy, p.policy_len) != 0) {
			r = ts_protector_fail(req, -TS_E_PCR_MISMATCH,
			                      "PCR policy %s no longer matches this machine's boot state; unlock "
			                      "with another protector and re-enroll with `tokenseal enroll tpm2 "
			                      "--replace ID`", p.pcrs_text);
			goto out;
		}
		session = c.policy;
	}
	/* ENCRYPT: the KEK comes back encrypted under the salted session key. */
	if ((r = tpm2_session_attrs(&c, req, session, TPMA_SESSION_ENCRYPT)) < 0)
		goto out;
	rc = Esys_Unseal(c.esys, c.object, session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
	if (rc != TSS2_RC_SUCCESS) {
		out = NULL;
		r = tpm2_fail_unseal(&c, req, rc, &p);
		goto out;
	}
	if (out->size != TS_KEY_BYTES) {
		r = ts_protector_fail(req, -TS_E_CORRUPT, "the TPM object holds %u bytes, not a %u-byte key",
		                      (unsigned)out->size, (unsigned)TS_KEY_BYTES);
		goto out;
	}
	memcpy(kek, out->buffer, TS_KEY_BYTES);
	r = 0;
out:
	if (out) {
		sodium_memzero(out, sizeof(*out));
		Esys_Free(out);
		tpm2_scrub_response(&c);
	}
	tpm2_forget_auth(&c);
	ts_secure_free(auth);
	Esys_Free(digest);
	ts_params_free(pp);
	tpm2_close(&c);
	return r;
}

/* ---- describe / needs_secret --------------------------------------------- */

static int tpm2_describe(const uint8_t *params, size_t len,
                         int (*add)(void *ud, const char *key, const char *value), void *ud)
{
	ts_params *pp = NULL;
	tpm2_params p;
	const char *maker;
	char text[TPM2_PCRS_TEXT_MAX];
	int r;

	if ((r = tpm2_params_decode(params, len, &pp, &p)) < 0)
		return r;
	tpm2_pcrs_format(&p.pcrs, text, sizeof(text));
	if ((r = add(ud, "pcrs", text)) < 0 ||
	    (r = add(ud, "pin", p.pin ? "yes" : "no")) < 0 ||
	    (r = add(ud, "parent", p.parent ? "0x81000001" : "primary(ecc-p256)")) < 0)
		goto out;
	if (ts_params_get_str(pp, "tpm", &maker) == 0 && (r = add(ud, "tpm", maker)) < 0)
		goto out;
	r = 0;
out:
	ts_params_free(pp);
	return r;
}

static int tpm2_needs_secret(const uint8_t *params, size_t len)
{
	ts_params *pp = NULL;
	tpm2_params p;
	int r;

	if (tpm2_params_decode(params, len, &pp, &p) < 0)
		return 0;
	r = p.pin != 0;
	ts_params_free(pp);
	return r;
}

/*
 * Present when the TCTI opens: the machine's TPM is reachable. Loading the
 * sealed object would need sessions and transient handles on every status
 * call; a TPM that is there but cleared shows at unlock instead.
 */
static int tpm2_present(ts_protector_request *req, const uint8_t *params, size_t len)
{
	const char *conf = req->config && req->config->tpm2_tcti && req->config->tpm2_tcti[0]
	                           ? req->config->tpm2_tcti : TPM2_DEFAULT_TCTI;
	TSS2_TCTI_CONTEXT *tcti = NULL;

	if (Tss2_TctiLdr_Initialize(conf, &tcti) != TSS2_RC_SUCCESS)
		return 0;
	Tss2_TctiLdr_Finalize(&tcti);
	/* Every tpm2 protector takes its PIN on the one TPM of this TCTI. */
	if (req->token_id)
		snprintf(req->token_id, req->token_id_len, "tpm2 %s", conf);
	return 1;
}

const ts_protector_ops ts_protector_tpm2 = {
	.type = "tpm2",
	.enroll = tpm2_enroll,
	.unlock = tpm2_unlock,
	.describe = tpm2_describe,
	.needs_secret = tpm2_needs_secret,
	.present = tpm2_present,
};
