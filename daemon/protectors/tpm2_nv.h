/* tpm2_nv.h — a vault's rollback counter: a TPM 2.0 NV counter index, and how daemon and helper name operations on it. */
#ifndef TS_TPM2_NV_H
#define TS_TPM2_NV_H

#include <stddef.h>
#include <stdint.h>

#include "tokenseal.h"
#include "protectors/protector.h"

/*
 * The index (docs/FORMAT.md, "TPM NV counter"): TPM_NT_COUNTER in the owner
 * hierarchy, at a free handle in TS_NV_HANDLE_FIRST..TS_NV_HANDLE_LAST,
 * attributes TS_NV_ATTRS: incremented and read with its own authValue (32
 * random bytes kept in the vault header), readable by the owner too, no
 * dictionary-attack lockout (the auth has 256 bits: nothing to guess).
 * A counter cannot be set, only incremented, and a counter index defined
 * anew starts at or above the highest value any counter of this TPM ever had.
 */
#define TS_NV_HANDLE_FIRST 0x01000000u
#define TS_NV_HANDLE_LAST 0x013fffffu
#define TS_NV_AUTH_BYTES 32

enum {
	TS_NV_DEFINE = 1,      /* define at a free handle, increment once (a counter must be written to be read), read */
	TS_NV_READ = 2,        /* read (checking the index is a counter with our attributes) */
	TS_NV_INCREMENT = 3,   /* increment, read */
	TS_NV_UNDEFINE = 4,    /* undefine (owner authorisation) */
};

/*
 * Request record (the helper wire's PARAMS of op TS_WIRE_OP_NV):
 *   u8 action | u32 BE handle (0 for DEFINE) | TS_NV_AUTH_BYTES auth
 * Reply record (PARAMS of the reply): u32 BE handle | u64 BE value.
 */
#define TS_NV_REQUEST_BYTES (1 + 4 + TS_NV_AUTH_BYTES)
#define TS_NV_REPLY_BYTES (4 + 8)

static inline void ts_nv_request_encode(uint8_t out[TS_NV_REQUEST_BYTES], uint8_t action, uint32_t handle,
                                        const uint8_t auth[TS_NV_AUTH_BYTES])
{
	out[0] = action;
	for (int i = 0; i < 4; i++)
		out[1 + i] = (uint8_t)(handle >> (24 - 8 * i));
	for (int i = 0; i < TS_NV_AUTH_BYTES; i++)
		out[5 + i] = auth ? auth[i] : 0;
}

/* 0, or -TS_E_INVALID_ARGS for a reply record of the wrong size or a handle outside the range. */
static inline int ts_nv_reply_decode(const uint8_t *b, size_t len, uint32_t *ret_handle, uint64_t *ret_value)
{
	uint32_t h = 0;
	uint64_t v = 0;

	if (!b || len != TS_NV_REPLY_BYTES)
		return -TS_E_INVALID_ARGS;
	for (int i = 0; i < 4; i++)
		h = h << 8 | b[i];
	for (int i = 4; i < 12; i++)
		v = v << 8 | b[i];
	if (h < TS_NV_HANDLE_FIRST || h > TS_NV_HANDLE_LAST)
		return -TS_E_INVALID_ARGS;
	*ret_handle = h;
	*ret_value = v;
	return 0;
}

/*
 * Helper side (linked into tokenseal-helper only): run the request record
 * against the TPM of req->config. 0 and out (TS_NV_REPLY_BYTES), or
 * -TS_E_INVALID_ARGS (a malformed record), -TS_E_TOKEN_ABSENT (the TPM is
 * not reachable), -TS_E_KEY_NOT_FOUND (no index at the handle, or one that
 * is not a counter with TS_NV_ATTRS: never read as ours), -TS_E_FAILED;
 * req->err says what happened.
 */
int ts_tpm2_nv_run(ts_protector_request *req, const uint8_t *rec, size_t rec_len, uint8_t out[TS_NV_REPLY_BYTES]);

#endif
