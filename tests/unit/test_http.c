/*
 * The HTTP client against real loopback servers (tests/fixtures/http_server.py):
 * TLS verified against the test CA, and every limit the client promises.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "poolgate/poolgate.h"

static const char *https_base, *https_ip_base, *http_base, *ca, *other_ca;

static char *url(const char *base, const char *path)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", base, path);
    return buf;
}

static struct pg_http_opts opts(void)
{
    return (struct pg_http_opts){.ca_file = ca, .timeout = 10, .max_bytes = 4096};
}

/* GET base+path; returns the result code, the response in *res. */
static int get(struct pg_http_opts o, const char *base, const char *path,
               struct pg_http_response *res, struct pg_error *err)
{
    memset(res, 0, sizeof(*res));
    return pg_http_get(&o, url(base, path), NULL, res, err);
}

static void expect_fail(struct pg_http_opts o, const char *base, const char *path, int code,
                        const char *phrase)
{
    struct pg_http_response res;
    struct pg_error err = {0};
    int r = get(o, base, path, &res, &err);
    if (r != code || !strstr(err.msg, phrase))
        fail_msg("%s%s: got %d '%s', wanted %d '%s'", base, path, r, err.msg, code, phrase);
    assert_null(res.body);
}

static void test_json_ok(void **state)
{
    (void)state;
    struct pg_http_response res;
    struct pg_error err = {0};
    assert_int_equal(get(opts(), https_base, "/json", &res, &err), 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.content_type, "application/json");
    assert_string_equal(res.body, "{\"ok\":true}");
    assert_int_equal(pg_http_expect_json(&res, 200, "test", &err), 0);
    pg_http_response_clear(&res);
    assert_int_equal(get(opts(), https_base, "/json-charset", &res, &err), 0);
    assert_string_equal(res.content_type, "application/json"); /* lower-cased, no parameters */
    pg_http_response_clear(&res);
}

static void test_status_and_type_checked(void **state)
{
    (void)state;
    struct pg_http_response res;
    struct pg_error err = {0};
    assert_int_equal(get(opts(), https_base, "/html", &res, &err), 0);
    assert_int_equal(pg_http_expect_json(&res, 200, "the issuer", &err), PG_ERR_PROTOCOL);
    assert_non_null(strstr(err.msg, "content type text/html"));
    pg_http_response_clear(&res);
    assert_int_equal(get(opts(), https_base, "/status500", &res, &err), 0);
    assert_int_equal(res.status, 500);
    assert_int_equal(pg_http_expect_json(&res, 200, "the issuer", &err), PG_ERR_PROTOCOL);
    assert_non_null(strstr(err.msg, "HTTP 500"));
    pg_http_response_clear(&res);
}

/* Media types judged without a server: JSON and +json types (a key set is
 * served as application/jwk-set+json), nothing that merely looks alike. */
static void test_json_media_types(void **state)
{
    (void)state;
    static const struct {
        const char *type;
        int want;
    } cases[] = {
        {"application/json", 0},
        {"application/jwk-set+json", 0},
        {"application/problem+json", 0},
        {"application/+json", PG_ERR_PROTOCOL},
        {"text/json", PG_ERR_PROTOCOL},
        {"application/jsonx", PG_ERR_PROTOCOL},
        {"application/json+xml", PG_ERR_PROTOCOL},
        {"application/a/b+json", PG_ERR_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char type[64], body[] = "{}";
        snprintf(type, sizeof(type), "%s", cases[i].type);
        struct pg_http_response res = {.status = 200, .content_type = type, .body = body, .len = 2};
        struct pg_error err = {0};
        if (pg_http_expect_json(&res, 200, "test", &err) != cases[i].want)
            fail_msg("%s: expected %d", cases[i].type, cases[i].want);
    }
}

static void test_redirects_refused(void **state)
{
    (void)state;
    expect_fail(opts(), https_base, "/redirect-http", PG_ERR_NETWORK, "redirect refused");
    expect_fail(opts(), https_base, "/redirect-https", PG_ERR_NETWORK, "redirect refused");
}

static void test_size_cap(void **state)
{
    (void)state;
    struct pg_http_opts o = opts();
    o.max_bytes = PG_HTTP_MAX_KEYSET;
    expect_fail(o, https_base, "/big", PG_ERR_PROTOCOL, "larger than 262144 bytes");
    o.max_bytes = 100;
    struct pg_http_response res;
    struct pg_error err = {0};
    assert_int_equal(get(o, https_base, "/exact?n=100", &res, &err), 0);
    assert_int_equal(res.len, 100);
    pg_http_response_clear(&res);
    expect_fail(o, https_base, "/exact?n=101", PG_ERR_PROTOCOL, "larger than 100 bytes");
}

static void test_https_only(void **state)
{
    (void)state;
    expect_fail(opts(), http_base, "/json", PG_ERR_NETWORK, "");
    /* The one exception, for the instance metadata endpoint. */
    struct pg_http_opts o = opts();
    o.allow_plain_http = true;
    struct pg_http_response res;
    struct pg_error err = {0};
    assert_int_equal(get(o, http_base, "/json", &res, &err), 0);
    pg_http_response_clear(&res);
}

static void test_tls_verification(void **state)
{
    (void)state;
    struct pg_http_opts o = opts();
    o.ca_file = other_ca;
    expect_fail(o, https_base, "/json", PG_ERR_NETWORK, "");
    o.ca_file = NULL; /* the system store does not know the test CA */
    expect_fail(o, https_base, "/json", PG_ERR_NETWORK, "");
    /* The certificate names localhost, not 127.0.0.1. */
    expect_fail(opts(), https_ip_base, "/json", PG_ERR_NETWORK, "");
}

static double elapsed(struct timespec a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void test_slow_server_bounded(void **state)
{
    (void)state;
    struct timespec t0;
    struct pg_http_opts o = opts();
    o.timeout = 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_fail(o, https_base, "/slow", PG_ERR_NETWORK, "");
    assert_true(elapsed(t0) < 30); /* far below the 100 s the server would take */

    /* A deadline shorter than the timeout wins. */
    o.timeout = 60;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    o.deadline_ms = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000 + 1500;
    expect_fail(o, https_base, "/slow", PG_ERR_NETWORK, "");
    assert_true(elapsed(t0) < 30);
}

static void test_unreachable(void **state)
{
    (void)state;
    expect_fail(opts(), "https://localhost:1", "/json", PG_ERR_NETWORK, "https://localhost:1/json");
}

static void test_proxy_environment_ignored(void **state)
{
    (void)state;
    setenv("https_proxy", "http://127.0.0.1:1", 1);
    setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
    setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
    struct pg_http_response res;
    struct pg_error err = {0};
    int r = get(opts(), https_base, "/json", &res, &err);
    unsetenv("https_proxy"), unsetenv("HTTPS_PROXY"), unsetenv("ALL_PROXY");
    if (r != 0)
        fail_msg("%s", err.msg);
    pg_http_response_clear(&res);
    /* An explicit proxy is used: this one does not exist. */
    struct pg_http_opts o = opts();
    o.proxy = "http://127.0.0.1:1";
    expect_fail(o, https_base, "/json", PG_ERR_NETWORK, "");
}

static void test_headers_and_query_not_in_messages(void **state)
{
    (void)state;
    const char *hdrs[] = {"Metadata: true", NULL};
    struct pg_http_opts o = opts();
    struct pg_http_response res;
    struct pg_error err = {0};
    assert_int_equal(pg_http_get(&o, url(https_base, "/headers"), hdrs, &res, &err), 0);
    assert_non_null(strstr(res.body, "\"metadata\": \"true\""));
    pg_http_response_clear(&res);
    o.max_bytes = 1;
    expect_fail(o, https_base, "/json?secret=abc", PG_ERR_PROTOCOL, "/json:");
    assert_int_equal(pg_http_get(&o, url(https_base, "/json?secret=abc"), NULL, &res, &err),
                     PG_ERR_PROTOCOL);
    assert_null(strstr(err.msg, "secret"));
}

static void test_form_post(void **state)
{
    (void)state;
    const struct pg_form_field f[] = {
        {"client_id", "a&b=c"},
        {"scope", "openid profile api://x/.default"},
        {"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
        {"text", "\xc3\xbc~*-._"},
    };
    struct pg_http_opts o = opts();
    struct pg_http_response res;
    struct pg_error err = {0};
    assert_int_equal(pg_http_post_form(&o, url(https_base, "/echo"), f, 4, &res, &err), 0);
    assert_non_null(strstr(res.body, "\"content_type\": \"application/x-www-form-urlencoded\""));
    assert_non_null(strstr(res.body, "client_id=a%26b%3Dc&scope=openid+profile+api%3A%2F%2Fx%2F."
                                     "default&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%"
                                     "3Adevice_code&text=%C3%BC%7E*-._"));
    pg_http_response_clear(&res);
    char *enc = NULL;
    assert_int_equal(pg_form_encode(f, 0, &enc), 0);
    assert_string_equal(enc, "");
    free(enc);
    pg_http_response_clear(NULL);
}

int main(void)
{
    https_base = getenv("PG_TEST_HTTPS");
    https_ip_base = getenv("PG_TEST_HTTPS_IP");
    http_base = getenv("PG_TEST_HTTP");
    ca = getenv("PG_TEST_CA");
    other_ca = getenv("PG_TEST_OTHER_CA");
    if (!https_base || !https_ip_base || !http_base || !ca || !other_ca) {
        fprintf(stderr, "run under tests/fixtures/http_server.py\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* the caller's job, as the helper does */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_ok),
        cmocka_unit_test(test_status_and_type_checked),
        cmocka_unit_test(test_json_media_types),
        cmocka_unit_test(test_redirects_refused),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_https_only),
        cmocka_unit_test(test_tls_verification),
        cmocka_unit_test(test_slow_server_bounded),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_proxy_environment_ignored),
        cmocka_unit_test(test_headers_and_query_not_in_messages),
        cmocka_unit_test(test_form_post),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
