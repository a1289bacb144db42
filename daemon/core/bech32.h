/* bech32.h — Bech32 (BIP-173) text encoding of bytes, as age writes its recipients and identities. Pure: no I/O. */
#ifndef TS_BECH32_H
#define TS_BECH32_H

#include <stddef.h>
#include <stdint.h>

/* BIP-173's limit on a whole string, which age 1.1 enforces too. */
#define TS_BECH32_MAX 90
#define TS_BECH32_HRP_MAX 83

/*
 * Encode len bytes as HRP "1" data checksum, NUL-terminated into out (cap
 * bytes). hrp is all lower case or all upper case (characters 33..126); the
 * output has its case. 0, or -TS_E_INVALID_ARGS (bad HRP), -TS_E_LIMIT (the
 * string would pass TS_BECH32_MAX, or out is too small).
 */
int ts_bech32_encode(const char *hrp, const uint8_t *data, size_t len, char *out, size_t cap);

/*
 * Decode the len bytes at s (no NUL needed; at most TS_BECH32_MAX): one case
 * only, the separator the last '1', a valid checksum. The HRP is written in
 * lower case, NUL-terminated, into hrp (hrp_cap bytes); the data part, as
 * 5-bit groups, into d5 (d5_cap), its count (checksum excluded) into *ret_n5.
 * 0, or -TS_E_INVALID_ARGS.
 */
int ts_bech32_decode5(const char *s, size_t len, char *hrp, size_t hrp_cap, uint8_t *d5, size_t d5_cap,
                      size_t *ret_n5);

/*
 * ts_bech32_decode5, then the 5-bit groups regrouped to bytes (at most 4
 * bits of zero padding, as BIP-173 requires) into out (cap bytes), count in
 * *ret_len. 0, or -TS_E_INVALID_ARGS.
 */
int ts_bech32_decode(const char *s, size_t len, char *hrp, size_t hrp_cap, uint8_t *out, size_t cap,
                     size_t *ret_len);

#endif
