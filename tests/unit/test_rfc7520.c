/*
 * RFC 7520 ("Examples of Protecting Content Using JOSE") §4.1: the RSA v1.5
 * signature example, with the RSA key of §3.4, as a byte-exact positive
 * vector for the signature layer, and bit flips of it as negatives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jws.h"
#include "poolgate/poolgate.h"

/* §3.4: public part of the RSA key "bilbo.baggins@hobbiton.example". */
static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"bilbo.baggins@hobbiton.example\",\"use\":\"sig\","
    "\"n\":\"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZ"
    "QHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHY"
    "pPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_"
    "3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw\","
    "\"e\":\"AQAB\"}]}";

/* §4.1.3: the compact serialization. */
static const char compact[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9"
    "."
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250by"
    "B0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUg"
    "eW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
    "."
    "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII"
    "7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1"
    "Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-Z"
    "nmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";

/* §4: the plaintext, with its two U+2019 apostrophes. */
static const char plaintext[] =
    "It\xe2\x80\x99s a dangerous business, Frodo, going out your door. You step onto the road, "
    "and if you don't keep your feet, there\xe2\x80\x99s no knowing where you might be swept off "
    "to.";

static int setup(void **state)
{
    struct pg_keyset *ks = NULL;
    if (pg_keyset_parse(jwks, strlen(jwks), &ks, NULL) != 0 || pg_keyset_usable(ks) != 1)
        return -1;
    *state = ks;
    return 0;
}

static int teardown(void **state)
{
    pg_keyset_free(*state);
    return 0;
}

static int verify(struct pg_keyset *ks, const char *tok, unsigned char **payload, size_t *len,
                  struct pg_verify_result *res)
{
    return pg_jws_verify_compact(ks, PG_ALG_RS256, tok, strlen(tok), payload, len, res);
}

static void test_vector_verifies(void **state)
{
    unsigned char *payload = NULL;
    size_t len = 0;
    struct pg_verify_result res;
    assert_int_equal(verify(*state, compact, &payload, &len, &res), 0);
    assert_int_equal(len, strlen(plaintext));
    assert_memory_equal(payload, plaintext, len);
    free(payload);
    pg_verify_result_clear(&res);
}

static void test_not_allowed_algorithm(void **state)
{
    unsigned char *payload = NULL;
    size_t len = 0;
    struct pg_verify_result res;
    assert_int_equal(
        pg_jws_verify_compact(*state, PG_ALG_PS256, compact, strlen(compact), &payload, &len, &res),
        PG_ERR_TOKEN);
    assert_int_equal(res.reason, PG_REASON_ALGORITHM);
    assert_null(payload);
}

/* Flip one bit of every character in turn: nothing but the original may verify. */
static void test_every_single_change_fails(void **state)
{
    size_t n = strlen(compact), refused = 0;
    char *tok = strdup(compact);
    for (size_t i = 0; i < n; i++) {
        if (tok[i] == '.')
            continue;
        tok[i] ^= 0x01;
        unsigned char *payload = NULL;
        size_t len = 0;
        struct pg_verify_result res;
        int r = verify(*state, tok, &payload, &len, &res);
        assert_int_equal(r, PG_ERR_TOKEN);
        assert_null(payload);
        assert_true(res.reason == PG_REASON_SIGNATURE || res.reason == PG_REASON_MALFORMED ||
                    res.reason == PG_REASON_HEADER || res.reason == PG_REASON_ALGORITHM ||
                    res.reason == PG_REASON_KEY);
        pg_verify_result_clear(&res);
        tok[i] ^= 0x01;
        refused++;
    }
    assert_int_equal(refused, n - 2);
    free(tok);
}

static void test_payload_is_not_claims(void **state)
{
    const char *cfgtext = "issuer = https://server.example.com\nclient_id = x\n";
    struct pg_config *cfg = NULL;
    assert_int_equal(pg_config_parse(cfgtext, strlen(cfgtext), "t", &cfg, NULL), 0);
    struct pg_verify_result res;
    assert_int_equal(pg_verify_token(cfg, *state, compact, strlen(compact), NULL, &res),
                     PG_ERR_TOKEN);
    assert_int_equal(res.reason, PG_REASON_MALFORMED);
    pg_verify_result_clear(&res);
    pg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_verifies),
        cmocka_unit_test(test_not_allowed_algorithm),
        cmocka_unit_test(test_every_single_change_fails),
        cmocka_unit_test(test_payload_is_not_claims),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
