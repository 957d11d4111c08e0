/* fqt/sha512.h — SHA-512 (FIPS 180-4) and standard base64 (RFC 4648, with padding).
 *
 * For: verifying downloads against npm "sha512-<base64>" integrity strings, checksumming
 * vocabulary files, decoding the base64 tokens of .tiktoken files. Not for: anything
 * security-sensitive beyond integrity checks (no constant-time guarantees, no HMAC). */
#ifndef FQT_SHA512_H
#define FQT_SHA512_H

#include "fqt/common.h"

#define FQT_SHA512_BYTES 64

typedef struct {
    uint64_t h[8];
    uint64_t nbytes;          /* total message length; messages >= 2^64 bytes unsupported */
    unsigned char buf[128];   /* pending partial block */
    size_t nbuf;
} fqt_sha512_ctx;

void fqt_sha512_init(fqt_sha512_ctx *c);
void fqt_sha512_update(fqt_sha512_ctx *c, const void *data, size_t n);
/* Pads, writes the 64-byte digest, and leaves c unusable until the next init. */
void fqt_sha512_final(fqt_sha512_ctx *c, unsigned char out[FQT_SHA512_BYTES]);
/* One shot. n == 0 (data may be NULL) hashes the empty message. */
void fqt_sha512(const void *data, size_t n, unsigned char out[FQT_SHA512_BYTES]);
/* Lower-case hex of a digest: out must hold 2*FQT_SHA512_BYTES + 1 chars. */
void fqt_hex(const unsigned char *bytes, size_t n, char *out);

/* Base64 with '=' padding. Encode writes 4*ceil(n/3) chars plus a NUL into out (the caller
 * sizes it) and returns the length. Decode accepts only the canonical padded alphabet (no
 * whitespace); returns the decoded length, or -1 on any malformed input. out must hold
 * 3*(len/4) bytes. */
size_t fqt_base64_encode(const unsigned char *in, size_t n, char *out);
int64_t fqt_base64_decode(const char *in, size_t len, unsigned char *out);

#endif
