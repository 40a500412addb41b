/* JWKS parsing: usable keys, and each kind of key that must be kept unusable. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "jws.h"
#include "keys.h"
#include "poolgate/poolgate.h"
#include "testkit.h"

struct fixture {
    EVP_PKEY *rsa, *rsa1024, *rsa_e3, *p256, *p384;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->rsa = tk_key("rsa2048-a");
    f->rsa1024 = tk_key("rsa1024");
    f->rsa_e3 = tk_key("rsa2048-e3");
    f->p256 = tk_key("p256");
    f->p384 = tk_key("p384");
    *state = f;
    return f->rsa && f->rsa1024 && f->rsa_e3 && f->p256 && f->p384 ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->rsa1024);
    EVP_PKEY_free(f->rsa_e3);
    EVP_PKEY_free(f->p256);
    EVP_PKEY_free(f->p384);
    free(f);
    return 0;
}

/* Parse {"keys":[one]} and return the reason the key is unusable, or NULL. */
static const char *one_key_reason(const char *jwk, struct pg_keyset **out)
{
    char doc[8192];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
    struct pg_error err = {0};
    assert_int_equal(pg_keyset_parse(doc, strlen(doc), out, &err), 0);
    assert_int_equal(pg_keyset_count(*out), 1);
    return (*out)->keys[0].unusable;
}

static void expect_unusable(const char *jwk, const char *phrase)
{
    struct pg_keyset *ks = NULL;
    const char *why = one_key_reason(jwk, &ks);
    assert_non_null(why);
    if (!strstr(why, phrase))
        fail_msg("reason '%s' does not mention '%s'", why, phrase);
    assert_int_equal(pg_keyset_usable(ks), 0);
    pg_keyset_free(ks);
}

static void test_good_keys(void **state)
{
    struct fixture *f = *state;
    char *a = tk_jwk(f->rsa, "r1", ",\"use\":\"sig\",\"x5t\":\"abc\"");
    char *b = tk_jwk(f->p256, "e1", ",\"alg\":\"ES256\"");
    char *c = tk_jwk(f->p384, "e2", NULL);
    char doc[16384];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", a, b, c);
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse(doc, strlen(doc), &ks, NULL), 0);
    assert_int_equal(pg_keyset_count(ks), 3);
    assert_int_equal(pg_keyset_usable(ks), 3);
    const struct pg_key *k = pg_keyset_find(ks, "r1", 2);
    assert_non_null(k);
    assert_int_equal(k->sigbytes, 256);
    assert_int_equal(k->algs, PG_ALG_RS256 | PG_ALG_RS384 | PG_ALG_RS512 | PG_ALG_PS256 |
                                  PG_ALG_PS384 | PG_ALG_PS512);
    assert_int_equal(pg_keyset_find(ks, "e1", 2)->algs, PG_ALG_ES256);
    assert_int_equal(pg_keyset_find(ks, "e2", 2)->algs, PG_ALG_ES384);
    assert_int_equal(pg_keyset_find(ks, "e2", 2)->sigbytes, 96);
    assert_null(pg_keyset_find(ks, "r", 1)); /* exact match only */
    assert_null(pg_keyset_find(ks, "r1x", 3));
    pg_keyset_free(ks);
    free(a), free(b), free(c);
}

static void test_entra_issuer_kept(void **state)
{
    struct fixture *f = *state;
    char *a =
        tk_jwk(f->rsa, "r1", ",\"issuer\":\"https://login.microsoftonline.com/{tenantid}/v2.0\"");
    struct pg_keyset *ks = NULL;
    assert_null(one_key_reason(a, &ks));
    assert_string_equal(ks->keys[0].issuer, "https://login.microsoftonline.com/{tenantid}/v2.0");
    pg_keyset_free(ks);
    free(a);
}

static void test_weak_and_wrong_keys(void **state)
{
    struct fixture *f = *state;
    char *k;
    expect_unusable(k = tk_jwk(f->rsa1024, "w", NULL), "below 2048");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa_e3, "w", NULL), "exponent");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"use\":\"enc\""), "use");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"use\":1"), "use");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"key_ops\":[\"encrypt\"]"), "key_ops");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"alg\":\"ES256\""), "alg");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"alg\":\"HS256\""), "alg");
    free(k);
    expect_unusable(k = tk_jwk(f->p256, "w", ",\"alg\":\"RS256\""), "alg");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"d\":\"AQAB\""), "private");
    free(k);
    expect_unusable(k = tk_jwk(f->rsa, "w", ",\"issuer\":7"), "issuer");
    free(k);
    expect_unusable("{\"kty\":\"oct\",\"kid\":\"w\",\"k\":\"c2VjcmV0\"}", "(oct)");
    expect_unusable("{\"kty\":\"OKP\",\"kid\":\"w\",\"crv\":\"Ed25519\",\"x\":\"AA\"}",
                    "unsupported");
    expect_unusable("{\"kid\":\"w\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", "kty");
    expect_unusable("{\"kty\":\"RSA\",\"kid\":\"w\",\"n\":\"AQ==\",\"e\":\"AQAB\"}", "malformed");
    expect_unusable("{\"kty\":\"RSA\",\"kid\":\"w\",\"e\":\"AQAB\"}", "malformed");
    expect_unusable("\"not an object\"", "object");
    /* P-256 point that is not on the curve. */
    expect_unusable("{\"kty\":\"EC\",\"kid\":\"w\",\"crv\":\"P-256\","
                    "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                    "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                    "curve");
    expect_unusable("{\"kty\":\"EC\",\"kid\":\"w\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}",
                    "curve");
    expect_unusable("{\"kty\":\"EC\",\"kid\":\"w\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}",
                    "malformed");
}

static void test_kid_rules(void **state)
{
    struct fixture *f = *state;
    char *k = tk_jwk(f->rsa, "", NULL);
    expect_unusable(k, "kid");
    free(k);
    expect_unusable("{\"kty\":\"RSA\",\"kid\":5}", "kid");

    /* A kid published twice: neither entry may be used, others still work. */
    char *a = tk_jwk(f->rsa, "dup", NULL), *b = tk_jwk(f->p256, "dup", NULL),
         *c = tk_jwk(f->p384, "ok", NULL);
    char doc[16384];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", a, b, c);
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse(doc, strlen(doc), &ks, NULL), 0);
    assert_int_equal(pg_keyset_usable(ks), 1);
    assert_non_null(strstr(ks->keys[0].unusable, "more than once"));
    assert_non_null(strstr(ks->keys[1].unusable, "more than once"));
    pg_keyset_free(ks);
    free(a), free(b), free(c);
}

/* Loading only the token's key: the others keep their kid, unusable, and a
 * duplicated kid is still refused. */
static void test_parse_for_one_kid(void **state)
{
    struct fixture *f = *state;
    char *a = tk_jwk(f->rsa, "a", NULL), *b = tk_jwk(f->p256, "b", NULL),
         *d = tk_jwk(f->p384, "dup", NULL), *e = tk_jwk(f->rsa, "dup", NULL);
    char doc[16384];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s,%s]}", a, b, d, e);
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "b", 0, &ks, NULL), 0);
    assert_int_equal(pg_keyset_count(ks), 4);
    assert_int_equal(pg_keyset_usable(ks), 1);
    assert_null(pg_keyset_find(ks, "b", 1)->unusable);
    assert_non_null(strstr(pg_keyset_find(ks, "a", 1)->unusable, "not loaded"));
    assert_null(pg_keyset_find(ks, "a", 1)->pkey);
    pg_keyset_free(ks);
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "dup", 0, &ks, NULL), 0);
    assert_int_equal(pg_keyset_usable(ks), 0);
    pg_keyset_free(ks);
    /* No filter: every key is loaded, as pg_keyset_parse does. */
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), NULL, 0, &ks, NULL), 0);
    assert_int_equal(pg_keyset_usable(ks), 2);
    pg_keyset_free(ks);
    free(a), free(b), free(d), free(e);
}

/* Loading for one algorithm: the key keeps every algorithm it fits, but
 * only that algorithm's verification state and digest are made, and a
 * token of another algorithm it fits fails closed instead of verifying. */
static void test_parse_for_one_alg(void **state)
{
    struct fixture *f = *state;
    char *a = tk_jwk(f->rsa, "a", NULL);
    char doc[8192];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "a", PG_ALG_RS256, &ks, NULL), 0);
    const struct pg_key *k = pg_keyset_find(ks, "a", 1);
    assert_null(k->unusable);
    assert_true(k->algs & PG_ALG_PS384);
    /* For PKCS#1 v1.5 alone the state is the RSA key itself (fastcrypto.c). */
#ifndef OPENSSL_NO_DEPRECATED_3_0
    assert_non_null(k->rsa);
    assert_null(k->pkey);
#endif
    for (unsigned i = 0; i < PG_NALGS; i++)
        if (1u << i == PG_ALG_RS256 && !k->rsa)
            assert_non_null(k->vctx[i]);
        else
            assert_null(k->vctx[i]);
    if (k->rsa)
        assert_null(pg_keyset_md(ks, PG_ALG_RS256)); /* the RSA key digests itself */
    else
        assert_non_null(pg_keyset_md(ks, PG_ALG_RS256));
    assert_null(pg_keyset_md(ks, PG_ALG_PS384));

    static const char claims[] = "{\"sub\":\"x\"}";
    char *rs = tk_sign(f->rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"a\"}", claims);
    char *ps = tk_sign(f->rsa, "PS384", "{\"alg\":\"PS384\",\"kid\":\"a\"}", claims);
    unsigned char *payload = NULL;
    size_t plen = 0;
    struct pg_verify_result res = {0};
    assert_int_equal(pg_jws_verify_compact(ks, ~0u, rs, strlen(rs), &payload, &plen, &res), 0);
    free(payload);
    payload = NULL;
    assert_int_not_equal(pg_jws_verify_compact(ks, ~0u, ps, strlen(ps), &payload, &plen, &res), 0);
    assert_null(payload);
    pg_keyset_free(ks);
    /* The whole set (alg 0) verifies both. */
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "a", 0, &ks, NULL), 0);
    assert_int_equal(pg_jws_verify_compact(ks, ~0u, ps, strlen(ps), &payload, &plen, &res), 0);
    free(payload);
    pg_keyset_free(ks);

    /* What the fast path peeks at to choose: the kid and the algorithm. */
    char kid[16];
    unsigned alg = 0;
    assert_int_equal(pg_jws_peek(ps, strlen(ps), kid, sizeof(kid), &alg), 0);
    assert_string_equal(kid, "a");
    assert_int_equal(alg, PG_ALG_PS384);
    char *odd = tk_sign(f->rsa, "RS256", "{\"alg\":\"rs256\",\"kid\":\"a\"}", claims);
    assert_int_equal(pg_jws_peek(odd, strlen(odd), kid, sizeof(kid), &alg), 0);
    assert_int_equal(alg, 0); /* no such algorithm: the whole key is loaded, then refused */
    free(odd), free(rs), free(ps), free(a);
}

/* Verify `tok` with the key set `doc` loaded for `alg` alone (the fast
 * path's RSA key for RS*) and loaded whole (EVP contexts): both must give
 * `want`, and the same reason on a refusal. */
static void expect_both(const char *doc, unsigned alg, const char *tok, int want)
{
    int got[2];
    enum pg_reason why[2];
    for (int i = 0; i < 2; i++) {
        struct pg_keyset *ks = NULL;
        unsigned char *payload = NULL;
        size_t plen = 0;
        struct pg_verify_result res = {0};
        assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "a", i ? 0 : alg, &ks, NULL), 0);
        got[i] = pg_jws_verify_compact(ks, ~0u, tok, strlen(tok), &payload, &plen, &res);
        why[i] = res.reason;
        free(payload);
        pg_verify_result_clear(&res);
        pg_keyset_free(ks);
    }
    if (got[0] != want || got[1] != want || why[0] != why[1])
        fail_msg("%s: alone %d (reason %d), whole %d (reason %d), wanted %d", pg_alg_name(alg),
                 got[0], why[0], got[1], why[1], want);
}

/* RS256/384/512 through the RSA key built for them alone: good tokens pass,
 * a changed signature, another key's signature and a short one fail, as
 * through the EVP contexts. */
static void test_fast_rsa_path(void **state)
{
    struct fixture *f = *state;
    static const unsigned algs[] = {PG_ALG_RS256, PG_ALG_RS384, PG_ALG_RS512};
    char *a = tk_jwk(f->rsa, "a", NULL), doc[8192], hdr[64];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
    EVP_PKEY *other = EVP_RSA_gen(2048);
    assert_non_null(other);
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        const char *name = pg_alg_name(algs[i]);
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"a\"}", name);
        char *good = tk_sign(f->rsa, name, hdr, "{\"sub\":\"x\"}");
        char *forged = tk_sign(other, name, hdr, "{\"sub\":\"x\"}");
        expect_both(doc, algs[i], good, 0);
        expect_both(doc, algs[i], forged, PG_ERR_TOKEN);
        /* One signature bit changed (the middle of its last segment). */
        char *sig = strrchr(good, '.') + 1, *mid = sig + strlen(sig) / 2;
        *mid = *mid == 'A' ? 'B' : 'A';
        expect_both(doc, algs[i], good, PG_ERR_TOKEN);
        /* A signature shorter than the modulus. */
        sig[strlen(sig) - 4] = '\0';
        expect_both(doc, algs[i], good, PG_ERR_TOKEN);
        free(good);
        free(forged);
    }
    EVP_PKEY_free(other);
    free(a);
}

/* What the gate does (gate.c): peek at the token's kid and alg, load the
 * set for them alone (the fast path's RSA key for RS*), verify; against the
 * whole set loaded (EVP contexts).  Both must give `want` and `reason`. */
static void expect_gate_like(const char *doc, const char *tok, int want, enum pg_reason reason)
{
    int got[2];
    enum pg_reason why[2];
    char kid[256], detail[2][256];
    unsigned alg = 0;
    bool one = pg_jws_peek(tok, strlen(tok), kid, sizeof(kid), &alg) == 0;
    for (int i = 0; i < 2; i++) {
        struct pg_keyset *ks = NULL;
        unsigned char *payload = NULL;
        size_t plen = 0;
        struct pg_verify_result res = {0};
        assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), i == 0 && one ? kid : NULL,
                                             i == 0 && one ? alg : 0, &ks, NULL),
                         0);
        got[i] = pg_jws_verify_compact(ks, ~0u, tok, strlen(tok), &payload, &plen, &res);
        why[i] = res.reason;
        snprintf(detail[i], sizeof(detail[i]), "%s", res.detail);
        free(payload);
        pg_verify_result_clear(&res);
        pg_keyset_free(ks);
    }
    if (got[0] != want || got[1] != want || why[0] != reason || why[1] != reason)
        fail_msg("fast %d (reason %d: %s), whole %d (reason %d: %s), wanted %d (reason %d)", got[0],
                 why[0], detail[0], got[1], why[1], detail[1], want, reason);
}

/* A token "H.P.S" with S the big-endian `sig` of `len` bytes. */
static char *with_sig(const char *header, const unsigned char *sig, size_t len)
{
    return tk_raw(header, "{\"sub\":\"x\"}", sig, len);
}

/* A hostile key set or token against the fast RSA path: every signature
 * value out of range, a key narrowed to another algorithm, another key type
 * under the kid, a digest of another size, a duplicated kid, weak keys: the
 * same verdict and reason as through the EVP contexts. */
static void test_fast_rsa_hostile(void **state)
{
    struct fixture *f = *state;
    char doc[16384], *k, *tok;
    static const char h256[] = "{\"alg\":\"RS256\",\"kid\":\"a\"}";
    unsigned char sig[256];
    BIGNUM *n = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(f->rsa, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    k = tk_jwk(f->rsa, "a", NULL);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", k);
    free(k);
    /* Signature values: n, n + 1, n - 1, all ones, 0, 1. */
    static const int deltas[] = {0, 1, -1};
    for (size_t i = 0; i < 3; i++) {
        BIGNUM *v = BN_dup(n);
        assert_int_equal(deltas[i] < 0 ? BN_sub_word(v, 1) : BN_add_word(v, (unsigned)deltas[i]),
                         1);
        assert_int_equal(BN_bn2binpad(v, sig, sizeof(sig)), (int)sizeof(sig));
        expect_gate_like(doc, tok = with_sig(h256, sig, sizeof(sig)), PG_ERR_TOKEN,
                         PG_REASON_SIGNATURE);
        free(tok);
        BN_free(v);
    }
    memset(sig, 0xff, sizeof(sig));
    expect_gate_like(doc, tok = with_sig(h256, sig, sizeof(sig)), PG_ERR_TOKEN,
                     PG_REASON_SIGNATURE);
    free(tok);
    memset(sig, 0, sizeof(sig));
    expect_gate_like(doc, tok = with_sig(h256, sig, sizeof(sig)), PG_ERR_TOKEN,
                     PG_REASON_SIGNATURE);
    free(tok);
    sig[sizeof(sig) - 1] = 1;
    expect_gate_like(doc, tok = with_sig(h256, sig, sizeof(sig)), PG_ERR_TOKEN,
                     PG_REASON_SIGNATURE);
    free(tok);
    /* One byte too long, led by a zero. */
    unsigned char longer[257] = {0};
    BN_bn2binpad(n, longer + 1, 256);
    longer[256] ^= 2;
    expect_gate_like(doc, tok = with_sig(h256, longer, sizeof(longer)), PG_ERR_TOKEN,
                     PG_REASON_SIGNATURE);
    free(tok);
    BN_free(n);

    /* A good signature that starts with a zero byte verifies, whole; cut to
     * its significant bytes it does not. */
    char payload[64];
    for (int i = 0;; i++) {
        assert_true(i < 4096);
        snprintf(payload, sizeof(payload), "{\"sub\":\"x\",\"n\":%d}", i);
        tok = tk_sign(f->rsa, "RS256", h256, payload);
        const char *s0 = strrchr(tok, '.') + 1; /* 6 + 2 zero bits: a zero first byte */
        if (s0[0] == 'A' && s0[1] >= 'A' && s0[1] <= 'P')
            break;
        free(tok);
    }
    expect_gate_like(doc, tok, 0, PG_REASON_NONE);
    char *s = strrchr(tok, '.') + 1;
    unsigned char raw[300];
    size_t rawlen = 0;
    assert_int_equal(pg_b64url_decode(s, strlen(s), raw, &rawlen), 0);
    assert_int_equal(rawlen, 256);
    assert_int_equal(raw[0], 0);
    char *cut = tk_b64url(raw + 1, rawlen - 1);
    strcpy(s, cut);
    free(cut);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_SIGNATURE);
    free(tok);

    /* The digest of another size than the header names: RS384 over a
     * SHA-256 DigestInfo, and RS256 over a SHA-512 one. */
    char *h384 = tk_b64url_str("{\"alg\":\"RS384\",\"kid\":\"a\"}"),
         *p = tk_b64url_str("{\"sub\":\"x\"}");
    char input[256];
    snprintf(input, sizeof(input), "%s.%s", h384, p);
    tok = tk_sign_input(f->rsa, "RS256", input);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_SIGNATURE);
    free(tok), free(h384);
    char *h = tk_b64url_str(h256);
    snprintf(input, sizeof(input), "%s.%s", h, p);
    tok = tk_sign_input(f->rsa, "RS512", input);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_SIGNATURE);
    free(tok);
    /* A PS256 signature under an RS256 header, and the other way round. */
    tok = tk_sign_input(f->rsa, "PS256", input);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_SIGNATURE);
    free(tok);
    char *hps = tk_b64url_str("{\"alg\":\"PS256\",\"kid\":\"a\"}");
    snprintf(input, sizeof(input), "%s.%s", hps, p);
    tok = tk_sign_input(f->rsa, "RS256", input);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_SIGNATURE);
    free(tok), free(hps), free(h), free(p);

    /* The key narrowed by its 'alg' to PS256 (or to RS384): an RS256 token
     * is refused for its algorithm, whatever it was loaded for. */
    static const char *const narrowed[] = {",\"alg\":\"PS256\"", ",\"alg\":\"RS384\""};
    for (size_t i = 0; i < 2; i++) {
        k = tk_jwk(f->rsa, "a", narrowed[i]);
        snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", k);
        free(k);
        tok = tk_sign(f->rsa, "RS256", h256, "{\"sub\":\"x\"}");
        expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_ALGORITHM);
        free(tok);
    }
    /* An EC key under the kid an RS256 token names. */
    k = tk_jwk(f->p256, "a", NULL);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", k);
    free(k);
    tok = tk_sign(f->rsa, "RS256", h256, "{\"sub\":\"x\"}");
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_ALGORITHM);
    /* The kid twice: the right key and an EC one, or the right key twice. */
    char *a = tk_jwk(f->rsa, "a", NULL), *b = tk_jwk(f->p256, "a", NULL);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_KEY);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, a);
    expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_KEY);
    free(a), free(b), free(tok);
    /* Weak keys, each signing its own token: unusable either way. */
    EVP_PKEY *weak[] = {f->rsa1024, f->rsa_e3};
    for (size_t i = 0; i < 2; i++) {
        k = tk_jwk(weak[i], "a", NULL);
        snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", k);
        free(k);
        tok = tk_sign(weak[i], "RS256", h256, "{\"sub\":\"x\"}");
        expect_gate_like(doc, tok, PG_ERR_TOKEN, PG_REASON_KEY);
        free(tok);
    }
}

/* A host whose OpenSSL defaults to FIPS keeps to the EVP path (the FIPS
 * provider's code): no direct RSA key, no direct digest. */
static void test_fast_path_not_under_fips(void **state)
{
    struct fixture *f = *state;
    char *a = tk_jwk(f->rsa, "a", NULL), doc[8192];
    unsigned char md[64];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "a", PG_ALG_RS256, &ks, NULL), 0);
#ifndef OPENSSL_NO_DEPRECATED_3_0
    assert_non_null(pg_keyset_find(ks, "a", 1)->rsa);
    assert_int_equal(pg_sha2(256, "x", 1, md), 32);
#endif
    pg_keyset_free(ks);
    assert_int_equal(EVP_default_properties_enable_fips(NULL, 1), 1);
    assert_int_equal(pg_keyset_parse_for(doc, strlen(doc), "a", PG_ALG_RS256, &ks, NULL), 0);
    const struct pg_key *k = pg_keyset_find(ks, "a", 1);
    /* (Without a FIPS provider installed the EVP key cannot be made either.) */
    assert_null(k->rsa);
    assert_int_equal(pg_sha2(256, "x", 1, md), 0);
    pg_keyset_free(ks);
    assert_int_equal(EVP_default_properties_enable_fips(NULL, 0), 1);
    free(a);
}

static void test_document_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":[]} trailing",
        "{\"keys\":[],\"keys\":[]}", /* duplicate member */
        "{\"keys\":[{\"kid\":\"a\",\"kid\":\"b\"}]}",
        "{\"keys\":[{\"kid\":\"a\\u0000b\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pg_keyset *ks = (struct pg_keyset *)0x1;
        struct pg_error err = {0};
        assert_int_equal(pg_keyset_parse(bad[i], strlen(bad[i]), &ks, &err), PG_ERR_KEYSET);
        assert_ptr_equal(ks, (struct pg_keyset *)0x1);
        assert_true(err.msg[0] != '\0');
    }
    /* More keys than the cap. */
    char *doc = malloc(200 * 4 + 32);
    strcpy(doc, "{\"keys\":[");
    for (int i = 0; i < 101; i++)
        strcat(doc, i ? ",{}" : "{}");
    strcat(doc, "]}");
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse(doc, strlen(doc), &ks, NULL), PG_ERR_KEYSET);
    free(doc);
    /* An empty set is valid; it verifies nothing. */
    assert_int_equal(pg_keyset_parse("{\"keys\":[]}", 11, &ks, NULL), 0);
    assert_int_equal(pg_keyset_count(ks), 0);
    pg_keyset_free(ks);
    pg_keyset_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_keys),
        cmocka_unit_test(test_entra_issuer_kept),
        cmocka_unit_test(test_weak_and_wrong_keys),
        cmocka_unit_test(test_kid_rules),
        cmocka_unit_test(test_parse_for_one_kid),
        cmocka_unit_test(test_parse_for_one_alg),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_fast_rsa_path),
        cmocka_unit_test(test_fast_path_not_under_fips),
        cmocka_unit_test(test_fast_rsa_hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
