/* Discovery documents and the issuer key cache: parsing, trust, and the refresh rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oidc.h"
#include "poolgate/poolgate.h"

#define ISS "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
#define T0 1767225600

static void expect_discovery_error(const char *doc, const char *phrase)
{
    struct pg_discovery d = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_discovery_parse(doc, strlen(doc), ISS, &d, &err), PG_ERR_PROTOCOL);
    if (!strstr(err.msg, phrase))
        fail_msg("'%s' lacks '%s'", err.msg, phrase);
    assert_null(d.issuer);
}

static void test_discovery(void **state)
{
    (void)state;
    const char *doc = "{\"issuer\":\"" ISS "\",\"token_endpoint\":\"https://l.example/t\","
                      "\"jwks_uri\":\"https://l.example/k\","
                      "\"device_authorization_endpoint\":\"https://l.example/d\","
                      "\"response_types_supported\":[\"code\"]}";
    struct pg_discovery d = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_discovery_parse(doc, strlen(doc), ISS, &d, &err), 0);
    assert_string_equal(d.issuer, ISS);
    assert_string_equal(d.token_endpoint, "https://l.example/t");
    assert_string_equal(d.jwks_uri, "https://l.example/k");
    assert_string_equal(d.device_authorization_endpoint, "https://l.example/d");
    pg_discovery_clear(&d);

    expect_discovery_error("{\"issuer\":\"" ISS "/\",\"token_endpoint\":\"https://a/t\","
                           "\"jwks_uri\":\"https://a/k\"}",
                           "another issuer");
    expect_discovery_error("{\"token_endpoint\":\"https://a/t\",\"jwks_uri\":\"https://a/k\"}",
                           "another issuer");
    expect_discovery_error("{\"issuer\":\"" ISS "\",\"token_endpoint\":\"http://a/t\","
                           "\"jwks_uri\":\"https://a/k\"}",
                           "'token_endpoint' is not an https URL");
    expect_discovery_error("{\"issuer\":\"" ISS "\",\"token_endpoint\":\"https://a/t\"}",
                           "'jwks_uri' is missing");
    expect_discovery_error("{\"issuer\":\"" ISS "\",\"token_endpoint\":\"https://a/t\","
                           "\"jwks_uri\":\"https://a/k\",\"device_authorization_endpoint\":5}",
                           "device_authorization_endpoint");
    expect_discovery_error("{\"issuer\":\"" ISS "\",\"issuer\":\"" ISS "\"}", "not a JSON object");
    expect_discovery_error("[]", "not a JSON object");
    expect_discovery_error("{\"issuer\":\"" ISS "\",\"token_endpoint\":\"https://a b/t\","
                           "\"jwks_uri\":\"https://a/k\"}",
                           "not an https URL");
}

static void test_refresh_rules(void **state)
{
    (void)state;
    struct pg_keycache_entry e = {.issuer = (char *)ISS,
                                  .jwks = (char *)"{\"keys\":[]}",
                                  .fetched_at = T0,
                                  .last_attempt = T0};
    assert_int_equal(pg_keycache_decide(NULL, T0, false), PG_KEYCACHE_FETCH);
    assert_int_equal(pg_keycache_decide(&e, T0 + 60, false), PG_KEYCACHE_USE);
    assert_int_equal(pg_keycache_decide(&e, T0 + 3600, false), PG_KEYCACHE_USE);
    assert_int_equal(pg_keycache_decide(&e, T0 + 3601, false), PG_KEYCACHE_REFRESH);
    assert_int_equal(pg_keycache_decide(&e, T0 + 86400, false), PG_KEYCACHE_REFRESH);
    assert_int_equal(pg_keycache_decide(&e, T0 + 86401, false), PG_KEYCACHE_FETCH);
    assert_int_equal(pg_keycache_decide(&e, T0 - 10, false), PG_KEYCACHE_FETCH);
    /* Unknown kid: at most one fetch per five minutes. */
    assert_int_equal(pg_keycache_decide(&e, T0 + 299, true), PG_KEYCACHE_USE);
    assert_int_equal(pg_keycache_decide(&e, T0 + 300, true), PG_KEYCACHE_REFRESH);
    e.last_attempt = T0 + 1000; /* a failed attempt also counts */
    assert_int_equal(pg_keycache_decide(&e, T0 + 1200, true), PG_KEYCACHE_USE);
    assert_int_equal(pg_keycache_decide(&e, T0 + 1300, true), PG_KEYCACHE_REFRESH);
    e.jwks = NULL;
    assert_int_equal(pg_keycache_decide(&e, T0 + 60, false), PG_KEYCACHE_FETCH);
}

static void test_cache_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/pg-cache-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    struct pg_keycache_entry in = {.issuer = (char *)ISS,
                                   .jwks = (char *)"{\"keys\":[]}",
                                   .fetched_at = T0,
                                   .last_attempt = T0 + 5},
                             out = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_keycache_load(dfd, ISS, geteuid(), &out, &err), PG_ERR_IO); /* none yet */
    assert_int_equal(pg_keycache_save(dfd, &in, &err), 0);
    assert_int_equal(pg_keycache_load(dfd, ISS, geteuid(), &out, &err), 0);
    assert_string_equal(out.jwks, "{\"keys\":[]}");
    assert_int_equal(out.fetched_at, T0);
    assert_int_equal(out.last_attempt, T0 + 5);
    pg_keycache_entry_clear(&out);

    char name[64], other[64];
    assert_int_equal(pg_keycache_name(ISS, name), 0);
    /* The first 128 bits of SHA-256 of the issuer: the helper and the module
     * (and every version of them) must agree on it. */
    assert_string_equal(name, "keys-7d505a447aec371ee54738096545c859.json");
    assert_int_equal(pg_keycache_name(ISS "/", other), 0);
    assert_string_not_equal(name, other);
    /* A file for another issuer under this issuer's name is not trusted. */
    assert_int_equal(renameat(dfd, name, dfd, other), 0);
    assert_int_equal(pg_keycache_load(dfd, ISS "/", geteuid(), &out, &err), PG_ERR_IO);
    assert_non_null(strstr(err.msg, "another issuer"));
    /* Nor is a file others can read or write. */
    assert_int_equal(pg_keycache_save(dfd, &in, &err), 0);
    assert_int_equal(fchmodat(dfd, name, 0644, 0), 0);
    assert_int_equal(pg_keycache_load(dfd, ISS, geteuid(), &out, &err), PG_ERR_PERM);
    /* The discovery document: kept, re-checked on load, stale after a day. */
    const char *doc = "{\"issuer\":\"" ISS "\",\"token_endpoint\":\"https://l.example/t\","
                      "\"jwks_uri\":\"https://l.example/k\"}";
    struct pg_discovery d = {0};
    assert_int_equal(pg_discovery_cache_load(dfd, ISS, geteuid(), T0, &d, &err), PG_ERR_IO);
    assert_int_equal(pg_discovery_cache_save(dfd, ISS, doc, strlen(doc), T0, &err), 0);
    assert_int_equal(pg_discovery_cache_load(dfd, ISS, geteuid(), T0 + 60, &d, &err), 0);
    assert_string_equal(d.jwks_uri, "https://l.example/k");
    pg_discovery_clear(&d);
    assert_int_equal(pg_discovery_cache_load(dfd, ISS, geteuid(), T0 + 86401, &d, &err), PG_ERR_IO);
    assert_non_null(strstr(err.msg, "stale"));
    assert_int_equal(pg_discovery_cache_load(dfd, ISS, geteuid(), T0 - 1, &d, &err), PG_ERR_IO);
    assert_int_equal(pg_discovery_cache_load(dfd, ISS "/", geteuid(), T0, &d, &err), PG_ERR_IO);
    /* A cached document whose content names another issuer is refused on load. */
    const char *other_doc = "{\"issuer\":\"https://evil.example\",\"token_endpoint\":"
                            "\"https://l.example/t\",\"jwks_uri\":\"https://l.example/k\"}";
    assert_int_equal(pg_discovery_cache_save(dfd, ISS, other_doc, strlen(other_doc), T0, &err), 0);
    assert_int_equal(pg_discovery_cache_load(dfd, ISS, geteuid(), T0, &d, &err), PG_ERR_PROTOCOL);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    close(dfd);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_refresh_rules),
        cmocka_unit_test(test_cache_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
