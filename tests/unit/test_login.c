/*
 * Device-code sign-in and refresh, end to end against the development
 * identity provider (tests/fixtures/dev_idp.py) over loopback TLS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "http.h"
#include "idpkit.h"
#include "oidc.h"
#include "poolgate/poolgate.h"

static const char *issuer, *client_id, *control, *ca;
static struct pg_discovery disco;

static struct pg_http_opts http(void)
{
    return idp_http(ca);
}

static void post_control(const char *what, const struct pg_form_field *f, size_t n)
{
    idp_control(control, ca, what, f, n);
}

static void configure(const char *interval, const char *expires_in)
{
    const struct pg_form_field f[] = {{"interval", interval}, {"expires_in", expires_in}};
    post_control("config", f, 2);
}

static struct pg_device_request request(long login_timeout)
{
    return (struct pg_device_request){
        disco.device_authorization_endpoint, disco.token_endpoint, client_id,
        "openid profile offline_access",     login_timeout,        NULL};
}

/* What the prompt does: approve, deny, or nothing (the operator walks away). */
struct operator
{
    const char *action; /* "approve", "deny" or NULL */
    const char *roles;
    char user_code[64];
    int prompts;
};

static int operator_prompt(void *ctx, const struct pg_device_auth *a)
{
    struct operator* op = ctx;
    op->prompts++;
    snprintf(op->user_code, sizeof(op->user_code), "%s", a->user_code);
    assert_true(strncmp(a->verification_uri, "https://localhost:", 18) == 0);
    if (op->action) {
        const struct pg_form_field f[] = {{"user_code", a->user_code},
                                          {"roles", op->roles ? op->roles : ""},
                                          {"oid", "11111111-2222-3333-4444-555555555555"}};
        post_control(op->action, f, 3);
    }
    return 0;
}

/* Verify an id_token from the provider with its own published keys. */
static int verify_id_token(const char *token, const char *roles, struct pg_verify_result *res)
{
    struct pg_http_opts o = http();
    struct pg_http_response keys = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_http_get(&o, disco.jwks_uri, NULL, &keys, &err), 0);
    struct pg_keyset *ks = NULL;
    assert_int_equal(pg_keyset_parse(keys.body, keys.len, &ks, &err), 0);
    char cfgtext[1024];
    snprintf(cfgtext, sizeof(cfgtext), "issuer = %s\nclient_id = %s\ntenant = %s\n%s%s\n", issuer,
             client_id, getenv("PG_IDP_TENANT"), roles ? "required_roles = " : "",
             roles ? roles : "");
    struct pg_config *cfg = NULL;
    assert_int_equal(pg_config_parse(cfgtext, strlen(cfgtext), "login.conf", &cfg, &err), 0);
    int r = pg_verify_token(cfg, ks, token, strlen(token), NULL, res);
    pg_config_free(cfg);
    pg_keyset_free(ks);
    pg_http_response_clear(&keys);
    return r;
}

static void test_sign_in_and_verify(void **state)
{
    (void)state;
    configure("1", "900");
    struct operator op = {"approve", "AgentPool.Enroll,Other", "", 0};
    struct pg_device_request req = request(60);
    struct pg_http_opts o = http();
    struct pg_tokenset ts = {0};
    struct pg_error err = {0};
    int r = pg_device_login(&o, &req, &pg_system_clock, operator_prompt, &op, &ts, &err);
    if (r != 0)
        fail_msg("sign-in: %s", err.msg);
    assert_int_equal(op.prompts, 1);
    assert_non_null(ts.id_token);
    assert_non_null(ts.refresh_token);
    assert_true(ts.expires_at > 0);
    struct pg_verify_result res;
    assert_int_equal(verify_id_token(ts.id_token, "AgentPool.Enroll", &res), 0);
    assert_string_equal(res.id.oid, "11111111-2222-3333-4444-555555555555");
    assert_int_equal(res.id.roles.count, 2);
    pg_verify_result_clear(&res);
    /* The same token, a role the operator does not hold: refused. */
    assert_int_equal(verify_id_token(ts.id_token, "Pool.Admin", &res), PG_ERR_TOKEN);
    assert_int_equal(res.reason, PG_REASON_ROLES);
    pg_verify_result_clear(&res);

    /* Refresh with rotation: the old refresh token works once. */
    struct pg_tokenset next = {0};
    assert_int_equal(pg_refresh(&o, disco.token_endpoint, client_id, ts.refresh_token, NULL, NULL,
                                &pg_system_clock, &next, &err),
                     0);
    assert_non_null(next.refresh_token);
    assert_string_not_equal(next.refresh_token, ts.refresh_token);
    struct pg_tokenset replay = {0};
    assert_int_equal(pg_refresh(&o, disco.token_endpoint, client_id, ts.refresh_token, NULL, NULL,
                                &pg_system_clock, &replay, &err),
                     PG_ERR_DENIED);
    assert_null(replay.access_token);
    assert_null(strstr(err.msg, ts.refresh_token)); /* never in a message */
    /* A refresh for another resource's scope (Azure DevOps, for registration). */
    struct pg_tokenset devops = {0};
    const char *scope = "499b84ac-1321-427f-aa17-267ca6975798/.default";
    assert_int_equal(pg_refresh(&o, disco.token_endpoint, client_id, next.refresh_token, scope,
                                NULL, &pg_system_clock, &devops, &err),
                     0);
    assert_string_equal(devops.scope, scope);
    assert_string_not_equal(devops.refresh_token, next.refresh_token);
    pg_tokenset_clear(&devops);
    pg_tokenset_clear(&next);
    pg_tokenset_clear(&ts);
}

static void test_declined(void **state)
{
    (void)state;
    configure("1", "900");
    struct operator op = {"deny", NULL, "", 0};
    struct pg_device_request req = request(60);
    struct pg_http_opts o = http();
    struct pg_tokenset ts = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_device_login(&o, &req, &pg_system_clock, operator_prompt, &op, &ts, &err),
                     PG_ERR_DENIED);
    assert_non_null(strstr(err.msg, "declined"));
    assert_null(ts.id_token);
}

static void test_deadlines(void **state)
{
    (void)state;
    struct pg_http_opts o = http();
    struct pg_tokenset ts = {0};
    struct pg_error err = {0};
    struct operator op = {NULL, NULL, "", 0};
    /* login_timeout shorter than the code's life. */
    configure("1", "900");
    struct pg_device_request req = request(3);
    assert_int_equal(pg_device_login(&o, &req, &pg_system_clock, operator_prompt, &op, &ts, &err),
                     PG_ERR_DENIED);
    assert_non_null(strstr(err.msg, "not completed in time"));
    /* The code's life shorter than login_timeout. */
    configure("1", "2");
    req = request(300);
    assert_int_equal(pg_device_login(&o, &req, &pg_system_clock, operator_prompt, &op, &ts, &err),
                     PG_ERR_DENIED);
}

/* A clock that does not wait the first two times (polling too fast), and on
 * the third wait lets the operator approve. */
struct hasty {
    int sleeps;
    struct operator* op;
};

static void hasty_sleep(void *ctx, int64_t ms)
{
    struct hasty *h = ctx;
    if (++h->sleeps <= 2)
        return;
    if (h->sleeps == 3) {
        const struct pg_form_field f[] = {{"user_code", h->op->user_code},
                                          {"roles", "AgentPool.Enroll"}};
        post_control("approve", f, 2);
    }
    pg_system_clock.sleep_ms(NULL, ms);
}

static int64_t real_ms(void *ctx)
{
    (void)ctx;
    return pg_system_clock.monotonic_ms(NULL);
}

static int64_t real_wall(void *ctx)
{
    (void)ctx;
    return pg_system_clock.wall(NULL);
}

static void test_slow_down_is_kept(void **state)
{
    (void)state;
    configure("1", "900");
    struct operator op = {NULL, NULL, "", 0};
    struct hasty h = {0, &op};
    struct pg_clock clock = {real_ms, real_wall, hasty_sleep, &h};
    struct pg_device_request req = request(60);
    struct pg_http_opts o = http();
    struct pg_tokenset ts = {0};
    struct pg_error err = {0};
    int r = pg_device_login(&o, &req, &clock, operator_prompt, &op, &ts, &err);
    if (r != 0)
        fail_msg("sign-in: %s", err.msg);
    pg_tokenset_clear(&ts);
    /* The provider's request log: after slow_down, the wait grew by 5 s. */
    struct pg_http_response res = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s/log", control);
    assert_int_equal(pg_http_get(&o, url, NULL, &res, &err), 0);
    json_t *log = json_loadb(res.body, res.len, 0, NULL), *e;
    size_t i;
    double polls[16];
    size_t n = 0;
    json_array_foreach(log, i, e)
    {
        const char *g = json_string_value(json_object_get(e, "grant_type"));
        if (g && strstr(g, "device_code") && n < 16)
            polls[n++] = json_real_value(json_object_get(e, "t"));
    }
    /* Polls of this sign-in are the last three: the two hasty ones, then one
     * six seconds (interval 1 + 5) after the slow_down. */
    assert_true(n >= 3);
    assert_true(polls[n - 1] - polls[n - 2] >= 5.8);
    json_decref(log);
    pg_http_response_clear(&res);
}

static void test_refused_client(void **state)
{
    (void)state;
    struct pg_device_request req = request(60);
    req.client_id = "00000000-0000-0000-0000-000000000000";
    struct pg_http_opts o = http();
    struct operator op = {NULL, NULL, "", 0};
    struct pg_tokenset ts = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_device_login(&o, &req, &pg_system_clock, operator_prompt, &op, &ts, &err),
                     PG_ERR_PROTOCOL);
    assert_non_null(strstr(err.msg, "HTTP 400"));
    assert_int_equal(op.prompts, 0);
}

static int setup(void **state)
{
    (void)state;
    char url[512];
    snprintf(url, sizeof(url), "%s/.well-known/openid-configuration", issuer);
    struct pg_http_opts o = http();
    struct pg_http_response res = {0};
    struct pg_error err = {0};
    int r = pg_http_get(&o, url, NULL, &res, &err);
    if (r == 0)
        r = pg_http_expect_json(&res, 200, "discovery", &err);
    if (r == 0)
        r = pg_discovery_parse(res.body, res.len, issuer, &disco, &err);
    pg_http_response_clear(&res);
    if (r != 0)
        fprintf(stderr, "discovery: %s\n", err.msg);
    return r;
}

static int teardown(void **state)
{
    (void)state;
    pg_discovery_clear(&disco);
    return 0;
}

int main(void)
{
    issuer = getenv("PG_IDP_ISSUER");
    client_id = getenv("PG_IDP_CLIENT_ID");
    control = getenv("PG_IDP_CONTROL");
    ca = getenv("PG_TEST_CA");
    if (!issuer || !client_id || !control || !ca) {
        fprintf(stderr, "run under tests/fixtures/dev_idp.py\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_in_and_verify), cmocka_unit_test(test_declined),
        cmocka_unit_test(test_deadlines),          cmocka_unit_test(test_slow_down_is_kept),
        cmocka_unit_test(test_refused_client),
    };
    int r = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return r;
}
