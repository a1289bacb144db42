/* escrow_rsa.h — the RSA half of escrow to an officer's HSM key: the box-key wrapper the helper runs, and key parsing for the CLI. The only escrow code that uses libcrypto. */
#ifndef TS_ESCROW_RSA_H
#define TS_ESCROW_RSA_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/*
 * The key wrapper (a ts_escrow_rsa_wrap_key_fn, registered with
 * ts_escrow_set_rsa_key_wrapper): RSA-OAEP-SHA256 (MGF1-SHA256, empty label)
 * of the box key k (TS_ESCROW_RSA_KEY_BYTES) to spki; appends exactly the
 * modulus size to out. 0, -TS_E_INVALID_ARGS (not an acceptable RSA key),
 * -TS_E_NOMEM or -TS_E_FAILED with a message in err.
 */
int ts_escrow_rsa_wrap_key(const uint8_t *spki, size_t spki_len, const uint8_t *k, ts_buf *out, char *err,
                           size_t errlen)
	__attribute__((warn_unused_result));

/*
 * An officer's RSA public key from a file's bytes: PEM "PUBLIC KEY", PEM
 * "CERTIFICATE", a DER certificate or a DER SubjectPublicKeyInfo. Appends
 * the canonical SPKI DER (as ts_escrow_rsa_spki_check accepts it) to out.
 * Not RSA, or RSA outside 2048..4096 bits: -TS_E_INVALID_ARGS with err set.
 */
int ts_escrow_rsa_spki_from_bytes(const uint8_t *in, size_t len, ts_buf *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The SPKI DER of the RSA key (n, e), big-endian magnitudes, appended to out (as above). */
int ts_escrow_rsa_spki_from_ne(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, ts_buf *out,
                               char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * For tokens that decrypt raw RSA only: check and strip the OAEP-SHA256
 * padding of em (the modulus-size output of CKM_RSA_X_509) into k
 * (TS_ESCROW_RSA_KEY_BYTES, secure memory). 0 or -TS_E_AUTH_FAILED.
 */
int ts_escrow_rsa_oaep_decode(const uint8_t *spki, size_t spki_len, const uint8_t *em, size_t em_len, uint8_t *k)
	__attribute__((warn_unused_result));

#endif
