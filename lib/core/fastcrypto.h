/* The login fast path's direct OpenSSL calls (fastcrypto.c). */
#ifndef PG_FASTCRYPTO_H
#define PG_FASTCRYPTO_H

#include <limits.h>
#include <openssl/bn.h>
#include <openssl/types.h>
#include <stddef.h>

#include "poolgate/poolgate.h"

/* An RSA public key of modulus *n and exponent *e, which it takes (setting
 * both to NULL); NULL when it cannot be made, or OpenSSL defaults to FIPS
 * (then the EVP path serves). */
RSA *pg_rsa_pkcs1_new(BIGNUM **n, BIGNUM **e);

/* RSASSA-PKCS1-v1_5 of `input` (the JWS signing input) for alg RS256,
 * RS384 or RS512: 1 verified, 0 not, PG_ERR_CRYPTO when it cannot tell. */
int pg_rsa_pkcs1_verify(RSA *rsa, unsigned alg, const void *input, size_t inlen,
                        const unsigned char *sig, size_t siglen);

void pg_rsa_pkcs1_free(RSA *rsa);

/* SHA-256, -384 or -512 (`bits`) of data into md: the digest's length, or
 * 0 when it cannot be computed this way, or OpenSSL defaults to FIPS (then
 * EVP serves). */
size_t pg_sha2(unsigned bits, const void *data, size_t len, unsigned char md[64]);

#endif
