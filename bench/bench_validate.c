/*
 * bench_validate: the cost of one token validation through the full library
 * path, against the floor set by the RSA verification itself.
 *
 *   bench_validate [N]      (default N = 20000)
 *
 * Validates the same Entra-like RS256 id_token (2048-bit key, ~1.4 KB) N
 * times with pg_verify_token, and in the same process checks the same
 * signature N times in two raw ways with a pre-built key:
 *   - EVP_DigestVerifyInit + EVP_DigestVerify per call (the ratio this
 *     benchmark has always printed);
 *   - the floor, the cheapest OpenSSL allows: an EVP_PKEY_CTX set up once
 *     (padding and digest set), then per call SHA-256 of the signing input
 *     with a digest fetched once, and EVP_PKEY_verify.
 * Rounds alternate between the three and the best round of each counts,
 * to keep noise from other processes out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rsa.h>

#include "poolgate/poolgate.h"
#include "../tests/unit/testkit.h"

#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CID "6e74172b-be56-4843-9ff4-e66a39bb12e3"
#define NOW 1767225600
#define ROUNDS 5

static const char claims[] =
    "{\"aud\":\"" CID "\",\"iss\":\"https://login.microsoftonline.com/" TID "/v2.0\","
    "\"iat\":1767225540,\"nbf\":1767225540,\"exp\":1767229140,"
    "\"aio\":\"AWQAm/8VAAAAx4rTm3LzZx8Y2mPqv0Vd3vOQ5pWpFJ1hJtYl0m9n8aT6wR8L3oHk5p1gYqv2lQ==\","
    "\"email\":\"alice.operator@contoso.example\",\"name\":\"Alice Operator\","
    "\"oid\":\"5f0c2a3e-1b4d-4c6e-8f70-9a1b2c3d4e5f\","
    "\"preferred_username\":\"alice.operator@contoso.example\","
    "\"rh\":\"0.AXEAv4j5cvGGr0GRqy180BHbR0tnfFwlvlZDn_TmajmbsEMYAJA.\","
    "\"roles\":[\"AgentPool.Enroll\",\"Build.Admin\"],"
    "\"sid\":\"00aa1234-5678-90ab-cdef-1234567890ab\","
    "\"sub\":\"AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ\",\"tid\":\"" TID "\","
    "\"uti\":\"AbCdEf1234567890XyZ\",\"ver\":\"2.0\"}";

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct setup {
    EVP_PKEY *key;
    EVP_PKEY_CTX *vctx; /* the floor's verification state, set up once */
    EVP_MD *sha256;
    struct pg_keyset *ks;
    struct pg_config *cfg;
    char *token;
    const unsigned char *input;
    size_t inlen;
    unsigned char sig[256];
    size_t siglen;
};

static int prepare(struct setup *s)
{
    s->key = EVP_RSA_gen(2048);
    EVP_PKEY *decoy1 = EVP_RSA_gen(2048), *decoy2 = EVP_RSA_gen(2048);
    char *a = tk_jwk(decoy1, "decoy-1", ",\"use\":\"sig\"");
    char *b = tk_jwk(s->key, "nOo3ZDrODXEK1jKWhXslHR_KXEg", ",\"use\":\"sig\"");
    char *c = tk_jwk(decoy2, "decoy-2", ",\"use\":\"sig\"");
    char doc[16384];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", a, b, c);
    free(a), free(b), free(c);
    EVP_PKEY_free(decoy1), EVP_PKEY_free(decoy2);
    static const char cfgtext[] = "issuer = https://login.microsoftonline.com/" TID "/v2.0\n"
                                  "client_id = " CID "\n"
                                  "tenant = " TID "\n"
                                  "required_roles = AgentPool.Enroll\n";
    struct pg_error err = {0};
    if (pg_keyset_parse(doc, strlen(doc), &s->ks, &err) != 0 ||
        pg_config_parse(cfgtext, strlen(cfgtext), "bench.conf", &s->cfg, &err) != 0) {
        fprintf(stderr, "bench_validate: %s\n", err.msg);
        return -1;
    }
    s->token = tk_sign(
        s->key, "RS256",
        "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"nOo3ZDrODXEK1jKWhXslHR_KXEg\"}", claims);
    const char *dot = strrchr(s->token, '.');
    s->input = (const unsigned char *)s->token;
    s->inlen = (size_t)(dot - s->token);
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, s->key, NULL);
    if (!s->sha256 || !s->vctx || EVP_PKEY_verify_init(s->vctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(s->vctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(s->vctx, s->sha256) != 1)
        return -1;
    return pg_b64url_decode(dot + 1, strlen(dot + 1), s->sig, &s->siglen);
}

static double run_full(struct setup *s, long n)
{
    size_t len = strlen(s->token);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        struct pg_verify_result res;
        int r = pg_verify_token(s->cfg, s->ks, s->token, len, &(struct pg_verify_opts){.now = NOW},
                                &res);
        pg_verify_result_clear(&res);
        if (r != 0)
            return -1;
    }
    return now_s() - t0;
}

static double run_raw(struct setup *s, long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, s->key) == 1 &&
                 EVP_DigestVerify(ctx, s->sig, s->siglen, s->input, s->inlen) == 1;
        EVP_MD_CTX_free(ctx);
        if (!ok)
            return -1;
    }
    return now_s() - t0;
}

static double run_floor(struct setup *s, long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (EVP_Digest(s->input, s->inlen, md, &mdlen, s->sha256, NULL) != 1 ||
            EVP_PKEY_verify(s->vctx, s->sig, s->siglen, md, mdlen) != 1)
            return -1;
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_validate [N]\n");
        return 2;
    }
    struct setup s = {0};
    if (prepare(&s) != 0)
        return 1;
    run_full(&s, n / 10 + 1); /* warm up caches and lazy OpenSSL state */
    run_raw(&s, n / 10 + 1);
    run_floor(&s, n / 10 + 1);
    double best_full = 1e9, best_raw = 1e9, best_floor = 1e9;
    for (int round = 0; round < ROUNDS; round++) {
        double f = run_full(&s, n / ROUNDS), r = run_raw(&s, n / ROUNDS),
               fl = run_floor(&s, n / ROUNDS);
        if (f < 0 || r < 0 || fl < 0) {
            fprintf(stderr, "bench_validate: a validation failed\n");
            return 1;
        }
        best_full = f < best_full ? f : best_full;
        best_raw = r < best_raw ? r : best_raw;
        best_floor = fl < best_floor ? fl : best_floor;
    }
    double per = (double)(n / ROUNDS);
    printf("token: %zu bytes, RS256, 2048-bit key, %ld validations per side\n", strlen(s.token), n);
    printf("full path: %.0f validations/s (%.2f us each)\n", per / best_full,
           best_full / per * 1e6);
    printf("raw EVP_DigestVerify: %.0f verifications/s (%.2f us each)\n", per / best_raw,
           best_raw / per * 1e6);
    printf("floor (SHA-256 + EVP_PKEY_verify, context set up once): %.0f verifications/s "
           "(%.2f us each)\n",
           per / best_floor, best_floor / per * 1e6);
    printf("ratio: %.2f (target >= 0.72)\n", best_raw / best_full);
    printf("ratio to the floor: %.2f (target >= 0.95)\n", best_floor / best_full);
    free(s.token);
    pg_keyset_free(s.ks);
    pg_config_free(s.cfg);
    EVP_PKEY_CTX_free(s.vctx);
    EVP_MD_free(s.sha256);
    EVP_PKEY_free(s.key);
    return 0;
}
