/*
 * The login fast path's direct OpenSSL calls: RSASSA-PKCS1-v1_5
 * verification (RS256, RS384, RS512) on an RSA key built straight from its
 * modulus and exponent, and SHA-2 digests without a provider fetch.
 *
 * Why not EVP: the module builds everything anew on every login (the host
 * unloads it with every PAM handle, so nothing survives), and with OpenSSL
 * 3.0 the EVP set-up costs more than the work: EVP_PKEY_CTX_new_from_name,
 * EVP_PKEY_fromdata and EVP_PKEY_verify_init each look the algorithm's names
 * up by walking the whole name table, and each EVP digest fetches its
 * implementation from the provider's method store.  RSA_set0_key and
 * RSA_verify are the calls the default provider itself ends in for this
 * padding (providers/implementations/signature/rsa_sig.c), so the check
 * made is the same: the signature exactly the modulus long, the DigestInfo
 * of the digest encoded strictly and compared whole.  SHA256_Init and its
 * kin are the code the provider's digests run.
 *
 * They are deprecated since OpenSSL 3.0; where OpenSSL is built without
 * them (OPENSSL_NO_DEPRECATED_3_0), these functions make and compute
 * nothing and their callers keep to the EVP path.  So they do too when the
 * host's OpenSSL defaults to FIPS (EVP_default_properties_is_fips_enabled):
 * the direct calls run OpenSSL's own code, not the FIPS provider's.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "fastcrypto.h"
#include "internal.h"

#ifndef OPENSSL_NO_DEPRECATED_3_0

RSA *pg_rsa_pkcs1_new(BIGNUM **n, BIGNUM **e)
{
    if (EVP_default_properties_is_fips_enabled(NULL))
        return NULL;
    RSA *rsa = RSA_new();
    if (!rsa || RSA_set0_key(rsa, *n, *e, NULL) != 1) {
        RSA_free(rsa);
        return NULL;
    }
    *n = *e = NULL; /* the key owns them now */
    return rsa;
}

size_t pg_sha2(unsigned bits, const void *data, size_t len, unsigned char md[64])
{
    SHA256_CTX c256;
    SHA512_CTX c512;
    if (EVP_default_properties_is_fips_enabled(NULL))
        return 0;
    switch (bits) {
    case 256:
        return SHA256_Init(&c256) && SHA256_Update(&c256, data, len) && SHA256_Final(md, &c256) ? 32
                                                                                                : 0;
    case 384:
        return SHA384_Init(&c512) && SHA384_Update(&c512, data, len) && SHA384_Final(md, &c512) ? 48
                                                                                                : 0;
    case 512:
        return SHA512_Init(&c512) && SHA512_Update(&c512, data, len) && SHA512_Final(md, &c512) ? 64
                                                                                                : 0;
    default:
        return 0;
    }
}

int pg_rsa_pkcs1_verify(RSA *rsa, unsigned alg, const void *input, size_t inlen,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char md[64];
    int nid = alg == PG_ALG_RS256   ? NID_sha256
              : alg == PG_ALG_RS384 ? NID_sha384
              : alg == PG_ALG_RS512 ? NID_sha512
                                    : NID_undef;
    unsigned bits = nid == NID_sha256 ? 256 : nid == NID_sha384 ? 384 : 512;
    size_t mdlen = nid == NID_undef ? 0 : pg_sha2(bits, input, inlen, md);
    if (mdlen == 0 || siglen > UINT_MAX)
        return PG_ERR_CRYPTO;
    return RSA_verify(nid, md, (unsigned)mdlen, sig, (unsigned)siglen, rsa) == 1 ? 1 : 0;
}

void pg_rsa_pkcs1_free(RSA *rsa)
{
    RSA_free(rsa);
}

#else

RSA *pg_rsa_pkcs1_new(BIGNUM **n, BIGNUM **e)
{
    (void)n, (void)e;
    return NULL;
}

size_t pg_sha2(unsigned bits, const void *data, size_t len, unsigned char md[64])
{
    (void)bits, (void)data, (void)len, (void)md;
    return 0;
}

int pg_rsa_pkcs1_verify(RSA *rsa, unsigned alg, const void *input, size_t inlen,
                        const unsigned char *sig, size_t siglen)
{
    (void)rsa, (void)alg, (void)input, (void)inlen, (void)sig, (void)siglen;
    return PG_ERR_CRYPTO;
}

void pg_rsa_pkcs1_free(RSA *rsa)
{
    (void)rsa;
}

#endif
