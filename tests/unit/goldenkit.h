/* Shared by the tests that compare with tests/golden/agent/ (written by
 * tests/fixtures/mkgolden_agent.py): the golden key and its parameters as
 * OpenSSL gives them, independently of poolgate's own encoding. */
#ifndef PG_TEST_GOLDENKIT_H
#define PG_TEST_GOLDENKIT_H

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The golden key.pem in dir, or NULL (with a message). */
static inline EVP_PKEY *golden_key_load(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return key;
}

/* Standard padded base64 of a key parameter at `width` bytes (0: minimal),
 * or NULL. */
static inline char *golden_param_b64(EVP_PKEY *key, const char *name, int width)
{
    BIGNUM *bn = NULL;
    unsigned char raw[512];
    char *out = NULL;
    if (!EVP_PKEY_get_bn_param(key, name, &bn))
        return NULL;
    int n = width ? width : BN_num_bytes(bn);
    if (n <= (int)sizeof(raw) && BN_bn2binpad(bn, raw, n) == n &&
        (out = malloc((size_t)(4 * ((n + 2) / 3) + 1))))
        EVP_EncodeBlock((unsigned char *)out, raw, n);
    BN_clear_free(bn);
    return out;
}

#endif
