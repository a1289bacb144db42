/* tpm2_nv.c — the helper's side of a vault's rollback counter: define, read, increment and undefine a TPM NV counter. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "protectors/tpm2_nv.h"

#define TPM2_DEFAULT_TCTI "device:/dev/tpmrm0"
#define NV_DEFINE_TRIES 16

/* A counter, incremented and read with its own auth, readable by the owner, outside dictionary-attack lockout. */
#define TS_NV_ATTRS ((TPMA_NV)((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | \
                               TPMA_NV_OWNERREAD | TPMA_NV_NO_DA))

typedef struct nv_ctx {
	const char *tcti_conf;
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *esys;
	ESYS_TR index;
} nv_ctx;

static int nv_fail(nv_ctx *c, ts_protector_request *req, TSS2_RC rc, const char *what)
{
	if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER)
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "TPM not reachable at %s (%s failed: %s)",
		                         c->tcti_conf, what, Tss2_RC_Decode(rc));
	return ts_protector_fail(req, -TS_E_FAILED, "TPM %s failed: %s", what, Tss2_RC_Decode(rc));
}

static void nv_close(nv_ctx *c)
{
	if (c->esys) {
		if (c->index != ESYS_TR_NONE)
			Esys_TR_Close(c->esys, &c->index);
		Esys_Finalize(&c->esys);
	}
	if (c->tcti)
		Tss2_TctiLdr_Finalize(&c->tcti);
}

static int nv_open(nv_ctx *c, ts_protector_request *req)
{
	TSS2_RC rc;

	c->index = ESYS_TR_NONE;
	c->tcti_conf = req->config && req->config->tpm2_tcti && req->config->tpm2_tcti[0] ? req->config->tpm2_tcti
	                                                                                    : TPM2_DEFAULT_TCTI;
	if (Tss2_TctiLdr_Initialize(c->tcti_conf, &c->tcti) != TSS2_RC_SUCCESS)
		return ts_protector_fail(req, -TS_E_TOKEN_ABSENT, "TPM not reachable at %s", c->tcti_conf);
	if ((rc = Esys_Initialize(&c->esys, c->tcti, NULL)) != TSS2_RC_SUCCESS)
		return nv_fail(c, req, rc, "ESAPI initialisation");
	return 0;
}

/* The TPM's code without layer and parameter number. */
static TSS2_RC nv_rc_base(TSS2_RC rc)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER && (rc & TSS2_RC_LAYER_MASK) != TSS2_RESMGR_TPM_RC_LAYER)
		return rc;
	rc &= ~TSS2_RC_LAYER_MASK;
	return (rc & TPM2_RC_FMT1) ? rc & (TPM2_RC_FMT1 | 0x3f) : rc & 0xfff;
}

/*
 * The index at handle, checked to be a counter with exactly our attributes
 * and no policy (an ordinary index root put there would hold any value it
 * chose), with auth set for the commands that follow.
 */
static int nv_attach(nv_ctx *c, ts_protector_request *req, uint32_t handle, const uint8_t *auth)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	TPM2B_AUTH a = { .size = TS_NV_AUTH_BYTES };
	TPMA_NV attrs;
	TSS2_RC rc;
	int ok;

	if ((rc = Esys_TR_FromTPMPublic(c->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &c->index)) !=
	    TSS2_RC_SUCCESS) {
		if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER)
			return nv_fail(c, req, rc, "NV_ReadPublic");
		return ts_protector_fail(req, -TS_E_KEY_NOT_FOUND, "no NV index at 0x%08x (%s)", handle,
		                         Tss2_RC_Decode(rc));
	}
	if ((rc = Esys_NV_ReadPublic(c->esys, c->index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL)) !=
	    TSS2_RC_SUCCESS)
		return nv_fail(c, req, rc, "NV_ReadPublic");
	attrs = pub->nvPublic.attributes & ~(TPMA_NV)TPMA_NV_WRITTEN;
	ok = pub->nvPublic.nvIndex == handle && attrs == TS_NV_ATTRS && pub->nvPublic.authPolicy.size == 0 &&
	     pub->nvPublic.dataSize == 8;
	Esys_Free(pub);
	if (!ok)
		return ts_protector_fail(req, -TS_E_KEY_NOT_FOUND, "the NV index at 0x%08x is not a tokenseal "
		                         "rollback counter (other attributes)", handle);
	if (auth) {
		memcpy(a.buffer, auth, TS_NV_AUTH_BYTES);
		rc = Esys_TR_SetAuth(c->esys, c->index, &a);
		sodium_memzero(&a, sizeof(a));
		if (rc != TSS2_RC_SUCCESS)
			return nv_fail(c, req, rc, "TR_SetAuth");
	}
	return 0;
}

static int nv_read(nv_ctx *c, ts_protector_request *req, uint32_t handle, uint64_t *ret)
{
	TPM2B_MAX_NV_BUFFER *data = NULL;
	uint64_t v = 0;
	TSS2_RC rc;

	if ((rc = Esys_NV_Read(c->esys, c->index, c->index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0,
	                       &data)) != TSS2_RC_SUCCESS) {
		if (nv_rc_base(rc) == TPM2_RC_AUTH_FAIL || nv_rc_base(rc) == TPM2_RC_BAD_AUTH)
			return ts_protector_fail(req, -TS_E_KEY_NOT_FOUND, "the NV counter at 0x%08x does not take "
			                         "this vault's auth: it was replaced", handle);
		return nv_fail(c, req, rc, "NV_Read");
	}
	if (data->size != 8) {
		Esys_Free(data);
		return ts_protector_fail(req, -TS_E_FAILED, "the TPM read %u bytes of an 8-byte counter", data->size);
	}
	for (int i = 0; i < 8; i++)
		v = v << 8 | data->buffer[i];
	Esys_Free(data);
	*ret = v;
	return 0;
}

static int nv_increment(nv_ctx *c, ts_protector_request *req, uint32_t handle)
{
	TSS2_RC rc;

	if ((rc = Esys_NV_Increment(c->esys, c->index, c->index, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE)) !=
	    TSS2_RC_SUCCESS) {
		if (nv_rc_base(rc) == TPM2_RC_AUTH_FAIL || nv_rc_base(rc) == TPM2_RC_BAD_AUTH)
			return ts_protector_fail(req, -TS_E_KEY_NOT_FOUND, "the NV counter at 0x%08x does not take "
			                         "this vault's auth: it was replaced", handle);
		return nv_fail(c, req, rc, "NV_Increment");
	}
	return 0;
}

/* Define at a free handle of the owner range (tried at random: the TPM says which are taken). */
static int nv_define(nv_ctx *c, ts_protector_request *req, const uint8_t *auth, uint32_t *ret_handle)
{
	TPM2B_AUTH a = { .size = TS_NV_AUTH_BYTES };
	TPM2B_NV_PUBLIC pub = { 0 };
	uint32_t handle = 0;
	TSS2_RC rc = TSS2_RC_SUCCESS;
	int i;

	memcpy(a.buffer, auth, TS_NV_AUTH_BYTES);
	pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
	pub.nvPublic.attributes = TS_NV_ATTRS;
	pub.nvPublic.dataSize = 8;
	for (i = 0; i < NV_DEFINE_TRIES; i++) {
		handle = TS_NV_HANDLE_FIRST + randombytes_uniform(TS_NV_HANDLE_LAST - TS_NV_HANDLE_FIRST + 1);
		pub.nvPublic.nvIndex = handle;
		rc = Esys_NV_DefineSpace(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &a,
		                         &pub, &c->index);
		if (rc == TSS2_RC_SUCCESS || nv_rc_base(rc) != TPM2_RC_NV_DEFINED)
			break;
	}
	sodium_memzero(&a, sizeof(a));
	if (rc != TSS2_RC_SUCCESS) {
		if (nv_rc_base(rc) == TPM2_RC_NV_SPACE)
			return ts_protector_fail(req, -TS_E_LIMIT, "the TPM has no NV space left for a rollback counter");
		return nv_fail(c, req, rc, "NV_DefineSpace (owner hierarchy)");
	}
	*ret_handle = handle;
	return 0;
}

int ts_tpm2_nv_run(ts_protector_request *req, const uint8_t *rec, size_t rec_len, uint8_t out[TS_NV_REPLY_BYTES])
{
	nv_ctx c = { .index = ESYS_TR_NONE };
	const uint8_t *auth;
	uint32_t handle = 0;
	uint64_t value = 0;
	uint8_t action;
	int r;

	if (!rec || rec_len != TS_NV_REQUEST_BYTES)
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "malformed NV counter request");
	action = rec[0];
	for (int i = 1; i < 5; i++)
		handle = handle << 8 | rec[i];
	auth = rec + 5;
	if (action < TS_NV_DEFINE || action > TS_NV_UNDEFINE ||
	    (action == TS_NV_DEFINE) != (handle == 0) ||
	    (action != TS_NV_DEFINE && (handle < TS_NV_HANDLE_FIRST || handle > TS_NV_HANDLE_LAST)))
		return ts_protector_fail(req, -TS_E_INVALID_ARGS, "malformed NV counter request");
	if ((r = nv_open(&c, req)) < 0)
		goto out;
	switch (action) {
	case TS_NV_DEFINE:
		/* A counter reads only once written: one increment makes it the TPM's highest counter value. */
		if ((r = nv_define(&c, req, auth, &handle)) < 0 || (r = nv_increment(&c, req, handle)) < 0 ||
		    (r = nv_read(&c, req, handle, &value)) < 0)
			break;
		break;
	case TS_NV_READ:
		if ((r = nv_attach(&c, req, handle, auth)) < 0)
			break;
		r = nv_read(&c, req, handle, &value);
		break;
	case TS_NV_INCREMENT:
		if ((r = nv_attach(&c, req, handle, auth)) < 0 || (r = nv_increment(&c, req, handle)) < 0)
			break;
		r = nv_read(&c, req, handle, &value);
		break;
	case TS_NV_UNDEFINE: {
		TSS2_RC rc;
		if ((r = nv_attach(&c, req, handle, NULL)) < 0)
			break;
		if ((rc = Esys_NV_UndefineSpace(c.esys, ESYS_TR_RH_OWNER, c.index, ESYS_TR_PASSWORD, ESYS_TR_NONE,
		                                ESYS_TR_NONE)) != TSS2_RC_SUCCESS) {
			r = nv_fail(&c, req, rc, "NV_UndefineSpace (owner hierarchy)");
			break;
		}
		c.index = ESYS_TR_NONE;   /* gone with the index */
		break;
	}
	}
out:
	nv_close(&c);
	if (r < 0)
		return r;
	ts_put_be32(out, handle);
	ts_put_be64(out + 4, value);
	return 0;
}
