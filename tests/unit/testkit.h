/*
 * Test-only helpers: make keys, JWKs and signed tokens with OpenSSL directly,
 * independently of the library's verification code.
 */
#ifndef PG_TESTKIT_H
#define PG_TESTKIT_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A key made at build time (tests/fixtures/mkkeys.py): $PG_TEST_KEYS/NAME.pem,
 * or NULL with a message. */
static inline EVP_PKEY *tk_key(const char *name)
{
    const char *dir = getenv("PG_TEST_KEYS");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.pem", dir ? dir : ".", name);
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    if (!k)
        fprintf(stderr, "test key %s: cannot be read (is PG_TEST_KEYS set?)\n", path);
    return k;
}

/* A whole file of at most 64 KiB, NUL-terminated (the caller frees it);
 * NULL when it cannot be read. */
static inline char *tk_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = f ? calloc(1, 65536) : NULL;
    if (buf)
        buf[fread(buf, 1, 65535, f)] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static inline char *tk_b64url(const unsigned char *in, size_t len)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len / 3 * 4 + 5);
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (len - i == 1) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 8 | in[i + 1];
        out[o++] = a[v >> 10];
        out[o++] = a[(v >> 4) & 63];
        out[o++] = a[(v & 15) << 2];
    }
    out[o] = '\0';
    return out;
}

static inline char *tk_b64url_str(const char *s)
{
    return tk_b64url((const unsigned char *)s, strlen(s));
}

static inline char *tk_bn_b64url(const BIGNUM *bn, int width)
{
    int n = width ? width : BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)n + 1);
    BN_bn2binpad(bn, buf, n);
    char *s = tk_b64url(buf, (size_t)n);
    free(buf);
    return s;
}

/* A JWK for a public RSA or EC key; `extra` is inserted verbatim (",\"use\":\"sig\"" ...). */
static inline char *tk_jwk(EVP_PKEY *k, const char *kid, const char *extra)
{
    char *buf = malloc(4096);
    if (EVP_PKEY_is_a(k, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
        char *sn = tk_bn_b64url(n, 0), *se = tk_bn_b64url(e, 0);
        snprintf(buf, 4096, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid, sn,
                 se, extra ? extra : "");
        free(sn), free(se), BN_free(n), BN_free(e);
    } else {
        BIGNUM *x = NULL, *y = NULL;
        char group[32] = "";
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL);
        int w = strcmp(group, "prime256v1") == 0 ? 32 : 48;
        char *sx = tk_bn_b64url(x, w), *sy = tk_bn_b64url(y, w);
        snprintf(buf, 4096,
                 "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", kid,
                 w == 32 ? "P-256" : "P-384", sx, sy, extra ? extra : "");
        free(sx), free(sy), BN_free(x), BN_free(y);
    }
    return buf;
}

static inline const EVP_MD *tk_md(const char *alg)
{
    if (strstr(alg, "384"))
        return EVP_sha384();
    if (strstr(alg, "512"))
        return EVP_sha512();
    return EVP_sha256();
}

/* Sign an already encoded signing input "H.P" with k under alg (RS*, PS*, ES*). */
static inline char *tk_sign_input(EVP_PKEY *k, const char *alg, const char *input)
{
    size_t inlen = strlen(input);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit(ctx, &pctx, tk_md(alg), NULL, k);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t siglen = 0;
    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, inlen);
    unsigned char *sig = malloc(siglen);
    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, inlen);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E') { /* DER to raw r||s */
        const unsigned char *q = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)siglen);
        int w = strstr(alg, "384") ? 48 : 32;
        unsigned char *raw = malloc((size_t)w * 2);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, w);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + w, w);
        ECDSA_SIG_free(es);
        free(sig);
        sig = raw;
        siglen = (size_t)w * 2;
    }
    char *s = tk_b64url(sig, siglen);
    size_t tlen = inlen + 1 + strlen(s);
    char *tok = malloc(tlen + 1);
    snprintf(tok, tlen + 1, "%s.%s", input, s);
    free(sig), free(s);
    return tok;
}

/* Sign header.payload (both JSON text) with k under alg. */
static inline char *tk_sign(EVP_PKEY *k, const char *alg, const char *header, const char *payload)
{
    char *h = tk_b64url_str(header), *p = tk_b64url_str(payload);
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *input = malloc(inlen + 1);
    snprintf(input, inlen + 1, "%s.%s", h, p);
    char *tok = tk_sign_input(k, alg, input);
    free(h), free(p), free(input);
    return tok;
}

/* A token with an arbitrary raw signature segment (for forged-signature cases). */
static inline char *tk_raw(const char *header, const char *payload, const unsigned char *sig,
                           size_t siglen)
{
    char *h = tk_b64url_str(header), *p = tk_b64url_str(payload), *s = tk_b64url(sig, siglen);
    size_t n = strlen(h) + strlen(p) + strlen(s) + 3;
    char *tok = malloc(n);
    snprintf(tok, n, "%s.%s.%s", h, p, s);
    free(h), free(p), free(s);
    return tok;
}

#endif
