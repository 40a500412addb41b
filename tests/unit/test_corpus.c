/*
 * The Python-signed token corpus (tests/fixtures/mktokens.py), checked
 * through the library API: every case must be accepted or refused exactly
 * as the manifest says, with the expected reason and identity.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "jws.h"
#include "keys.h"
#include "poolgate/poolgate.h"

static const char *manifest_path;

static bool same_opt_string(json_t *want, const char *got)
{
    if (json_is_null(want) || !want)
        return got == NULL;
    return got && strcmp(json_string_value(want), got) == 0;
}

static bool same_list(json_t *want, const struct pg_strlist *got)
{
    if (json_array_size(want) != got->count)
        return false;
    for (size_t i = 0; i < got->count; i++)
        if (strcmp(json_string_value(json_array_get(want, i)), got->items[i]) != 0)
            return false;
    return true;
}

/* Identity fields against the manifest's expected claims; NULL when they agree. */
static const char *identity_mismatch(json_t *want, const struct pg_identity *id)
{
    if (!same_opt_string(json_object_get(want, "sub"), id->sub))
        return "sub";
    if (!same_opt_string(json_object_get(want, "oid"), id->oid))
        return "oid";
    if (!same_opt_string(json_object_get(want, "tid"), id->tid))
        return "tid";
    if (!same_opt_string(json_object_get(want, "iss"), id->iss))
        return "iss";
    if (!same_opt_string(json_object_get(want, "name"), id->name))
        return "name";
    if (json_integer_value(json_object_get(want, "exp")) != id->exp)
        return "exp";
    if (!same_list(json_object_get(want, "roles"), &id->roles))
        return "roles";
    if (!same_list(json_object_get(want, "aud"), &id->aud))
        return "aud";
    return NULL;
}

static bool reason_expected(json_t *want, enum pg_reason got)
{
    const char *name = pg_reason_name(got);
    if (json_is_string(want))
        return strcmp(json_string_value(want), name) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(want, i, v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

/* The key set as `fast` says: whole (pg_keyset_parse), or as the gate loads
 * it on every login (gate.c): the token's kid alone, with state for the
 * token's algorithm alone (for RS256/384/512 the RSA key of fastcrypto.c). */
static int load_keys(json_t *jwks, const char *tok, bool fast, struct pg_keyset **ks,
                     struct pg_error *err)
{
    const char *text = json_string_value(jwks);
    size_t len = json_string_length(jwks);
    char kid[256];
    unsigned alg = 0;
    if (!fast)
        return pg_keyset_parse(text, len, ks, err);
    bool one = pg_jws_peek(tok, strlen(tok), kid, sizeof(kid), &alg) == 0;
    return pg_keyset_parse_for(text, len, one ? kid : NULL, one ? alg : 0, ks, err);
}

/* Run one case; returns NULL on agreement or a static description of the failure. */
static const char *run_case(json_t *c, bool fast, char *why, size_t whysz)
{
    json_t *cfgtext = json_object_get(c, "config"), *jwks = json_object_get(c, "jwks"),
           *tok = json_object_get(c, "token");
    struct pg_config *cfg = NULL;
    struct pg_keyset *ks = NULL;
    struct pg_verify_result res;
    struct pg_error err = {0};
    const char *fail = NULL;
    if (pg_config_parse(json_string_value(cfgtext), json_string_length(cfgtext), "case.conf", &cfg,
                        &err) != 0) {
        snprintf(why, whysz, "config: %s", err.msg);
        return why;
    }
    if (load_keys(jwks, json_string_value(tok), fast, &ks, &err) != 0) {
        pg_config_free(cfg);
        snprintf(why, whysz, "jwks: %s", err.msg);
        return why;
    }
    time_t now = (time_t)json_integer_value(json_object_get(c, "now"));
    int r = pg_verify_token(cfg, ks, json_string_value(tok), json_string_length(tok),
                            &(struct pg_verify_opts){.now = now}, &res);
    bool accept = strcmp(json_string_value(json_object_get(c, "expect")), "accept") == 0;
    if (accept && r != 0) {
        snprintf(why, whysz, "refused (%s: %s)", pg_reason_name(res.reason), res.detail);
        fail = why;
    } else if (accept && (fail = identity_mismatch(json_object_get(c, "claims"), &res.id))) {
        snprintf(why, whysz, "identity field '%s' differs", fail);
        fail = why;
    } else if (!accept &&
               (r != PG_ERR_TOKEN || !reason_expected(json_object_get(c, "reason"), res.reason))) {
        snprintf(why, whysz, "got %d %s (%s)", r, pg_reason_name(res.reason), res.detail);
        fail = why;
    } else if (!accept && res.id.sub) {
        fail = "identity filled in on refusal";
    }
    pg_verify_result_clear(&res);
    pg_keyset_free(ks);
    pg_config_free(cfg);
    return fail;
}

static void test_corpus(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *doc = json_load_file(manifest_path, 0, &jerr);
    if (!doc)
        fail_msg("%s: %s", manifest_path, jerr.text);
    json_t *cases = json_object_get(doc, "cases"), *c;
    size_t i, failed = 0;
    assert_true(json_array_size(cases) >= 60);
    json_array_foreach(cases, i, c)
    {
        char why[512];
        for (int fast = 0; fast < 2; fast++) {
            const char *fail = run_case(c, fast, why, sizeof(why));
            if (fail) {
                print_message("FAIL %s%s: %s\n", json_string_value(json_object_get(c, "name")),
                              fast ? " (the gate's key loading)" : "", fail);
                failed++;
            }
        }
    }
    print_message("corpus-lib: %zu cases, %zu runs failed\n", json_array_size(cases), failed);
    json_decref(doc);
    assert_int_equal(failed, 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s corpus.json\n", argv[0]);
        return 2;
    }
    manifest_path = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
