/* RFC 8628: device authorization parsing, token response classification, polling schedule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "device.h"
#include "internal.h"
#include "poolgate/poolgate.h"

static int auth(const char *json, struct pg_device_auth *a, struct pg_error *err)
{
    memset(a, 0, sizeof(*a));
    return pg_device_auth_parse(json, strlen(json), a, err);
}

static void test_device_auth_entra(void **state)
{
    (void)state;
    struct pg_device_auth a;
    struct pg_error err = {0};
    assert_int_equal(auth("{\"user_code\":\"ABCD-EFGH\",\"device_code\":\"DAQABAAEAAAD\","
                          "\"verification_uri\":\"https://microsoft.com/devicelogin\","
                          "\"expires_in\":900,\"interval\":5,\"message\":\"To sign in...\"}",
                          &a, &err),
                     0);
    assert_string_equal(a.user_code, "ABCD-EFGH");
    assert_string_equal(a.device_code, "DAQABAAEAAAD");
    assert_string_equal(a.verification_uri, "https://microsoft.com/devicelogin");
    assert_null(a.verification_uri_complete);
    assert_string_equal(a.message, "To sign in...");
    assert_int_equal(a.expires_in, 900);
    assert_int_equal(a.interval, 5);
    pg_device_auth_clear(&a);
}

static void test_device_auth_variants(void **state)
{
    (void)state;
    struct pg_device_auth a;
    struct pg_error err = {0};
    /* v1 spelling, numbers as strings, no interval (defaults to 5). */
    assert_int_equal(auth("{\"user_code\":\"X\",\"device_code\":\"D\","
                          "\"verification_url\":\"https://microsoft.com/devicelogin\","
                          "\"expires_in\":\"900\"}",
                          &a, &err),
                     0);
    assert_string_equal(a.verification_uri, "https://microsoft.com/devicelogin");
    assert_int_equal(a.expires_in, 900);
    assert_int_equal(a.interval, 5);
    pg_device_auth_clear(&a);
    assert_int_equal(auth("{\"user_code\":\"X\",\"device_code\":\"D\","
                          "\"verification_uri\":\"https://idp.example/device\","
                          "\"verification_uri_complete\":\"https://idp.example/device?c=X\","
                          "\"expires_in\":600,\"interval\":\"7\"}",
                          &a, &err),
                     0);
    assert_int_equal(a.interval, 7);
    assert_string_equal(a.verification_uri_complete, "https://idp.example/device?c=X");
    pg_device_auth_clear(&a);

    static const char *const bad[] = {
        "[]",
        "{\"device_code\":\"D\",\"verification_uri\":\"https://a/d\",\"expires_in\":9}",
        "{\"user_code\":\"X\",\"verification_uri\":\"https://a/d\",\"expires_in\":9}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"expires_in\":9}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"http://a/d\","
        "\"expires_in\":9}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"https://a/d\"}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"https://a/d\","
        "\"expires_in\":\"9s\"}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"https://a/d\","
        "\"expires_in\":0}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"https://a/d\","
        "\"expires_in\":9,\"interval\":0}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"https://a/d\","
        "\"expires_in\":9,\"interval\":-5}",
        "{\"user_code\":\"X\",\"device_code\":\"D\",\"verification_uri\":\"https://a/d\","
        "\"expires_in\":9.5}",
        "{\"user_code\":\"X\",\"user_code\":\"Y\",\"device_code\":\"D\","
        "\"verification_uri\":\"https://a/d\",\"expires_in\":9}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (auth(bad[i], &a, &err) != PG_ERR_PROTOCOL)
            fail_msg("accepted %s", bad[i]);
        assert_null(a.device_code);
    }
}

static enum pg_poll_outcome poll_outcome(long status, const char *json, int expect_r,
                                         struct pg_error *err)
{
    enum pg_poll_outcome o = (enum pg_poll_outcome)99;
    struct pg_tokenset ts = {0};
    assert_int_equal(pg_token_response_parse(status, json, strlen(json), 1000, &o, &ts, err),
                     expect_r);
    pg_tokenset_clear(&ts);
    return o;
}

static struct pg_idp_error idp_parse(const char *json, enum pg_idp_path path)
{
    json_error_t jerr;
    json_t *doc = json_loads(json, 0, &jerr);
    struct pg_idp_error e;
    memset(&e, 0x5a, sizeof(e));
    assert_true(pg_idp_error_parse(doc, path, &e));
    json_decref(doc);
    return e;
}

/* Entra's refusals: the AADSTS number decides the class, then the error
 * code; pending stays pending; text is filtered and one line. */
static void test_entra_errors(void **state)
{
    (void)state;
    struct pg_idp_error e = idp_parse(
        "{\"error\":\"access_denied\",\"error_description\":\"AADSTS53003: Access has been "
        "blocked.\\r\\nTrace ID: 1\\r\\nCorrelation ID: 2\\r\\nTimestamp: "
        "3\",\"error_codes\":[53003],"
        "\"correlation_id\":\"d7f2a1c4-0000-4b1e-9f00-1234567890ab\",\"trace_id\":\"x\"}",
        PG_IDP_POLL);
    struct pg_error err = {0};
    assert_int_equal(e.cls, PG_IDP_CONDITIONAL_ACCESS);
    assert_int_equal(e.code, PG_ERR_DENIED);
    assert_int_equal(e.aadsts, 53003);
    assert_string_equal(e.summary, "Access has been blocked.");
    assert_string_equal(e.correlation, "d7f2a1c4-0000-4b1e-9f00-1234567890ab");
    assert_non_null(e.fix);
    assert_int_equal(pg_idp_error_fail(&e, &err), PG_ERR_DENIED);
    assert_string_equal(err.msg, "a Conditional Access policy blocks device-code sign-in for "
                                 "this app (AADSTS53003)");
    /* error_codes decides over the description's prefix; without it, the prefix. */
    e = idp_parse("{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS53003: x\","
                  "\"error_codes\":[700082]}",
                  PG_IDP_REFRESH);
    assert_int_equal(e.cls, PG_IDP_REFRESH_INVALID);
    assert_true(e.drop_refresh);
    e = idp_parse("{\"error\":\"invalid_request\",\"error_codes\":[90002]}", PG_IDP_DEVICE_CODE);
    assert_int_equal(e.cls, PG_IDP_CONFIG);
    assert_int_equal(e.code, PG_ERR_CONFIG);
    e = idp_parse("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000218: x\"}",
                  PG_IDP_POLL);
    assert_int_equal(e.cls, PG_IDP_CONFIG);
    assert_int_equal(e.code, PG_ERR_CONFIG);
    /* A malformed error_codes is not trusted, nor replaced by the description. */
    e = idp_parse("{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS53003: x\","
                  "\"error_codes\":[\"53003\"]}",
                  PG_IDP_REFRESH);
    assert_int_equal(e.aadsts, 0);
    assert_int_equal(e.cls, PG_IDP_REFRESH_INVALID);
    e = idp_parse("{\"error\":\"x\",\"error_codes\":[99999999]}", PG_IDP_POLL);
    assert_int_equal(e.aadsts, 0);
    /* The refresh-invalid numbers refuse a sign-in, but touch no store there. */
    e = idp_parse("{\"error\":\"invalid_grant\",\"error_codes\":[50173]}", PG_IDP_POLL);
    assert_int_equal(e.cls, PG_IDP_REFRESH_INVALID);
    assert_false(e.drop_refresh);
    assert_null(e.fix);
    /* Pending is decided by `error` whatever the number says. */
    e = idp_parse("{\"error\":\"authorization_pending\",\"error_codes\":[53003]}", PG_IDP_POLL);
    assert_int_equal(e.cls, PG_IDP_PENDING);
    e = idp_parse("{\"error\":\"expired_token\",\"error_codes\":[70020]}", PG_IDP_POLL);
    assert_int_equal(e.cls, PG_IDP_EXPIRED);
    /* Unknown: its code and first line, filtered; no correlation that is not a GUID. */
    e = idp_parse("{\"error\":\"new\\u001b[2J\",\"error_description\":\"AADSTS123: line "
                  "\\u001b[31mone\\nTrace ID: t\",\"correlation_id\":\"a b\\n\"}",
                  PG_IDP_REFRESH);
    assert_int_equal(e.cls, PG_IDP_UNKNOWN);
    assert_int_equal(e.aadsts, 123);
    assert_string_equal(e.correlation, "");
    assert_int_equal(pg_idp_error_fail(&e, &err), PG_ERR_DENIED);
    assert_string_equal(err.msg, "sign-in failed: new?[2J AADSTS123: line ?[31mone");
    /* The code request: unknown means the provider answered wrongly. */
    e = idp_parse("{\"error\":\"invalid_request\"}", PG_IDP_DEVICE_CODE);
    assert_int_equal(e.code, PG_ERR_PROTOCOL);
    /* No error: not a refusal. */
    json_error_t jerr;
    json_t *doc = json_loads("{\"error_codes\":[53003]}", 0, &jerr);
    assert_false(pg_idp_error_parse(doc, PG_IDP_POLL, &e));
    json_decref(doc);
}

/* Whether s is text JSON can carry (jansson checks UTF-8). */
static bool json_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* A 400 answer of the token endpoint, as the poll sees it: its result. */
static int poll_answer(const char *json, enum pg_poll_outcome *o, struct pg_idp_error *e,
                       struct pg_error *err)
{
    struct pg_tokenset ts = {0};
    return pg_token_response_describe(400, json, strlen(json), 0, PG_IDP_POLL, o, &ts, e, err);
}

/* What a hostile provider may answer: nothing in it reaches a terminal, a
 * log line or the helper's DONE other than bounded, printable UTF-8 text,
 * and nothing malformed decides a class. */
static void test_entra_hostile(void **state)
{
    (void)state;
    struct pg_error err = {0};
    struct pg_idp_error e;
    enum pg_poll_outcome o = PG_POLL_TOKENS;
    /* Malformed JSON a provider may send: not a refusal poolgate acts on. */
    static const char *const broken[] = {
        "{\"error\":\"invalid_grant\",\"error_codes\":[1e400]}",
        "{\"error\":\"invalid_grant\",\"error_codes\":[9223372036854775808]}",
        "{\"error\":\"invalid_grant\",\"error\":\"authorization_pending\"}",
        "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: a\\u0000b\"}",
        "{\"error\":\"invalid_grant\",\"error_description\":\"\xc3\"}",
        "{\"error\":5,\"error_codes\":[70008]}",
        "{\"error\":[\"invalid_grant\"]}",
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        memset(&e, 0, sizeof(e));
        assert_int_equal(poll_answer(broken[i], &o, &e, &err), PG_ERR_PROTOCOL);
        assert_false(e.drop_refresh);
    }
    /* Numbers out of range, or too many of them: no number at all. */
    e = idp_parse("{\"error\":\"invalid_request\",\"error_codes\":[-1]}", PG_IDP_REFRESH);
    assert_int_equal(e.aadsts, 0);
    assert_int_equal(e.cls, PG_IDP_UNKNOWN);
    assert_false(e.drop_refresh);
    e = idp_parse("{\"error\":\"invalid_request\",\"error_codes\":[53003,1,2,3,4,5,6,7,8,9,10,"
                  "11,12,13,14,15,16]}",
                  PG_IDP_POLL);
    assert_int_equal(e.aadsts, 0);
    e = idp_parse("{\"error\":\"x\",\"error_codes\":[53003.0]}", PG_IDP_POLL);
    assert_int_equal(e.aadsts, 0);
    /* Pending with a fatal number is pending, on every path; never a drop. */
    e = idp_parse("{\"error\":\"authorization_pending\",\"error_codes\":[70008]}", PG_IDP_REFRESH);
    assert_int_equal(e.cls, PG_IDP_PENDING);
    assert_false(e.drop_refresh);
    /* A refusal of the sign-in itself deletes nothing. */
    e = idp_parse("{\"error\":\"invalid_grant\",\"error_codes\":[530036]}", PG_IDP_POLL);
    assert_false(e.drop_refresh);
    e = idp_parse("{\"error\":\"interaction_required\"}", PG_IDP_DEVICE_CODE);
    assert_false(e.drop_refresh);
    /* Text cut inside a UTF-8 character stays UTF-8: an error code of 46
     * bytes then "é", a first line of 158 bytes then "é" (the cut is at 159),
     * with a correlation id that carries a field of its own. */
    char doc[1024], want[200];
    snprintf(doc, sizeof(doc),
             "{\"error\":\"%046d\xc3\xa9\",\"error_description\":\"AADSTS99996: %0158d\xc3\xa9"
             "\xc3\xa9 more\",\"correlation_id\":\"0a outcome=granted\"}",
             0, 0);
    e = idp_parse(doc, PG_IDP_REFRESH);
    assert_true(json_ok(e.error));
    assert_true(json_ok(e.summary));
    snprintf(want, sizeof(want), "%0158d", 0);
    assert_string_equal(e.summary, want);
    assert_string_equal(e.correlation, "");
    pg_idp_error_fail(&e, &err);
    assert_true(json_ok(err.msg));
    /* A message cut by its buffer inside a character: still UTF-8. */
    snprintf(doc, sizeof(doc), "%0254d\xc3\xa9", 0);
    pg_fail(&err, PG_ERR_DENIED, "%s", doc);
    assert_true(json_ok(err.msg));
    /* Escapes as C1 controls, overlong forms, surrogates: '?'; real text kept. */
    char out[64];
    pg_printable(out, sizeof(out),
                 "\xc2\x9b"
                 "31m \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 "
                 "\xe2\x80\xa8 \xf0\x9f\x94\x91 \xc3\xa9");
    assert_string_equal(out, "?31m ?? ??? ???? \xe2\x80\xa8 \xf0\x9f\x94\x91 \xc3\xa9");
    pg_printable(out, 4, "ab\xc3\xa9");
    assert_string_equal(out, "ab");
    /* What the CLI and the module read back from DONE for audit lines: words. */
    json_t *done = json_pack("{s:{s:s, s:s, s:s}}", "provider", "class", "x y=z", "error",
                             "bad outcome=granted", "correlation_id", "1 outcome=granted");
    struct pg_refusal f;
    pg_refusal_from_done(done, &f);
    assert_string_equal(f.cls, "x?y?z");
    assert_string_equal(f.code, "bad?outcome?granted");
    assert_string_equal(f.correlation, "1?outcome?granted");
    json_decref(done);
}

static void test_token_responses(void **state)
{
    (void)state;
    struct pg_error err = {0};
    enum pg_poll_outcome o;
    struct pg_tokenset ts = {0};
    const char *ok = "{\"token_type\":\"Bearer\",\"scope\":\"openid\",\"expires_in\":\"3599\","
                     "\"access_token\":\"at\",\"refresh_token\":\"rt\",\"id_token\":\"it\"}";
    assert_int_equal(pg_token_response_parse(200, ok, strlen(ok), 1000, &o, &ts, &err), 0);
    assert_int_equal(o, PG_POLL_TOKENS);
    assert_string_equal(ts.access_token, "at");
    assert_string_equal(ts.refresh_token, "rt");
    assert_string_equal(ts.id_token, "it");
    assert_int_equal(ts.expires_at, 1000 + 3599);
    pg_tokenset_clear(&ts);

    assert_int_equal(poll_outcome(400,
                                  "{\"error\":\"authorization_pending\","
                                  "\"error_description\":\"AADSTS70016: expired_token\"}",
                                  0, &err),
                     PG_POLL_PENDING); /* the description never decides */
    assert_int_equal(poll_outcome(400, "{\"error\":\"slow_down\"}", 0, &err), PG_POLL_SLOW_DOWN);
    assert_int_equal(poll_outcome(400, "{\"error\":\"access_denied\"}", 0, &err), PG_POLL_DENIED);
    assert_int_equal(poll_outcome(400, "{\"error\":\"authorization_declined\"}", 0, &err),
                     PG_POLL_DENIED);
    assert_int_equal(poll_outcome(400, "{\"error\":\"expired_token\"}", 0, &err), PG_POLL_EXPIRED);
    assert_int_equal(poll_outcome(400, "{\"error\":\"bad_verification_code\"}", 0, &err),
                     PG_POLL_FAILED);
    assert_non_null(strstr(err.msg, "bad_verification_code"));
    assert_int_equal(poll_outcome(401, "{\"error\":\"something_new\"}", 0, &err), PG_POLL_FAILED);
    /* Not OAuth at all. */
    poll_outcome(500, "{\"error\":\"server_error\"}", PG_ERR_PROTOCOL, &err);
    poll_outcome(400, "<html>", PG_ERR_PROTOCOL, &err);
    poll_outcome(400, "{\"error\":7}", PG_ERR_PROTOCOL, &err);
    poll_outcome(200, "{\"access_token\":\"at\"}", PG_ERR_PROTOCOL, &err); /* no token_type */
    poll_outcome(200, "{\"token_type\":\"mac\",\"access_token\":\"at\"}", PG_ERR_PROTOCOL, &err);
    poll_outcome(200, "{\"token_type\":\"bearer\",\"access_token\":\"\"}", PG_ERR_PROTOCOL, &err);
    poll_outcome(200, "{\"token_type\":\"bearer\",\"access_token\":\"a\",\"id_token\":5}",
                 PG_ERR_PROTOCOL, &err);
}

static void test_poll_schedule(void **state)
{
    (void)state;
    struct pg_poller p;
    int64_t t = 100000;
    pg_poller_start(&p, t, 5, 900, 300); /* login_timeout is the tighter bound */
    assert_int_equal(pg_poller_wait(&p, t), 5000);
    t += 5000;
    assert_int_equal(pg_poller_wait(&p, t), 0);
    pg_poller_after(&p, t, PG_POLL_PENDING, false);
    assert_int_equal(pg_poller_wait(&p, t), 5000);
    /* slow_down: +5 s, and it stays for every later poll. */
    t += 5000;
    pg_poller_after(&p, t, PG_POLL_SLOW_DOWN, false);
    assert_int_equal(pg_poller_wait(&p, t), 10000);
    t += 10000;
    pg_poller_after(&p, t, PG_POLL_PENDING, false);
    assert_int_equal(pg_poller_wait(&p, t), 10000);
    t += 10000;
    pg_poller_after(&p, t, PG_POLL_SLOW_DOWN, false);
    assert_int_equal(pg_poller_wait(&p, t), 15000);
    /* Connection timeouts back off exponentially, then recover. */
    t += 15000;
    pg_poller_after(&p, t, PG_POLL_PENDING, true);
    assert_int_equal(pg_poller_wait(&p, t), 15000 + 15000);
    pg_poller_after(&p, t, PG_POLL_PENDING, true);
    assert_int_equal(pg_poller_wait(&p, t), 15000 + 30000);
    pg_poller_after(&p, t, PG_POLL_PENDING, true);
    assert_int_equal(pg_poller_wait(&p, t), 15000 + 60000); /* capped */
    pg_poller_after(&p, t, PG_POLL_PENDING, false);
    assert_int_equal(pg_poller_wait(&p, t), 15000);
    /* The deadline: no poll is scheduled at or after it. */
    int64_t deadline = 100000 + 300000;
    assert_int_equal(pg_poller_wait(&p, deadline - 15000), 0);
    pg_poller_after(&p, deadline - 14000, PG_POLL_PENDING, false);
    assert_int_equal(pg_poller_wait(&p, deadline - 14000), -1);

    /* expires_in tighter than login_timeout. */
    pg_poller_start(&p, 0, 5, 12, 300);
    assert_int_equal(pg_poller_wait(&p, 0), 5000);
    pg_poller_after(&p, 5000, PG_POLL_PENDING, false);
    assert_int_equal(pg_poller_wait(&p, 5000), 5000);
    pg_poller_after(&p, 10000, PG_POLL_PENDING, false);
    assert_int_equal(pg_poller_wait(&p, 10000), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_auth_entra), cmocka_unit_test(test_device_auth_variants),
        cmocka_unit_test(test_token_responses),   cmocka_unit_test(test_entra_errors),
        cmocka_unit_test(test_entra_hostile),     cmocka_unit_test(test_poll_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
