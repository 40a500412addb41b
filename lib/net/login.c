/*
 * The network side of a sign-in: the device authorization grant end to end
 * (RFC 8628 §3.1-3.5) and the refresh-token grant (RFC 6749 §6).  Runs in
 * the helper, never in the PAM module.
 *
 * MUST: never poll faster than the schedule in device.c allows; stop at
 * the deadline; never put a device code or refresh token in a message.
 */
#include <errno.h>
#include <jansson.h>
#include <time.h>

#include "device.h"
#include "http.h"
#include "internal.h"

static int64_t sys_monotonic_ms(void *ctx)
{
    (void)ctx;
    return pg_monotonic_ms();
}

static int64_t sys_wall(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

static void sys_sleep_ms(void *ctx, int64_t ms)
{
    (void)ctx;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

const struct pg_clock pg_system_clock = {sys_monotonic_ms, sys_wall, sys_sleep_ms, NULL};

/* Keep the description of a refusal where the caller asked for it. */
static void record(const struct pg_http_opts *http, const struct pg_idp_error *e)
{
    if (http->refusal)
        *http->refusal = *e;
}

/* An OAuth error answer (RFC 6749 §5.2) to the code request: what was
 * refused, and why when the provider says (entra_errors.c). */
static bool refusal(const struct pg_http_opts *http, const struct pg_http_response *res,
                    struct pg_error *err)
{
    json_error_t jerr;
    json_t *doc = res->body ? json_loadb(res->body, res->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    struct pg_idp_error e;
    bool refused = json_is_object(doc) && pg_idp_error_parse(doc, PG_IDP_DEVICE_CODE, &e);
    if (refused && e.cls == PG_IDP_UNKNOWN) {
        char what[PG_ERROR_MAX];
        pg_idp_error_detail(&e, what, sizeof(what));
        pg_fail(err, PG_ERR_PROTOCOL,
                "the device authorization endpoint refused the request (HTTP %ld): %.180s",
                res->status, what);
    } else if (refused)
        pg_idp_error_fail(&e, err);
    if (refused && res->status < 500) /* (a 5xx is a failure, not a refusal) */
        record(http, &e);
    json_decref(doc);
    return refused;
}

static int request_code(const struct pg_http_opts *http, const struct pg_device_request *req,
                        struct pg_device_auth *auth, struct pg_error *err)
{
    /* The resource indicator (RFC 8707 §2.1) goes last, and only when set. */
    const struct pg_form_field f[] = {
        {"client_id", req->client_id}, {"scope", req->scope}, {"resource", req->resource}};
    struct pg_http_response res = {0};
    int r = pg_http_post_form(http, req->device_authorization_endpoint, f, req->resource ? 3 : 2,
                              &res, err);
    if (r == 0 && res.status != 200 && refusal(http, &res, err))
        r = err->code;
    else if (r == 0 &&
             (r = pg_http_expect_json(&res, 200, "the device authorization endpoint", err)) == 0)
        r = pg_device_auth_parse(res.body, res.len, auth, err);
    pg_http_response_clear(&res);
    return r;
}

/* One token request.  *transient tells a failure worth retrying (a time-out,
 * a stalled body, a 5xx or 429 answer) from the rest. */
static int poll_once(const struct pg_http_opts *http, const struct pg_device_request *req,
                     const struct pg_device_auth *auth, int64_t now, enum pg_poll_outcome *outcome,
                     struct pg_tokenset *ts, bool *transient, struct pg_error *err)
{
    const struct pg_form_field f[] = {
        {"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
        {"client_id", req->client_id},
        {"device_code", auth->device_code},
        {"resource", req->resource},
    };
    struct pg_http_response res = {0};
    struct pg_idp_error e = {0};
    int r = pg_http_post_form(http, req->token_endpoint, f, PG_ARRAY_SIZE(f) - !req->resource, &res,
                              err);
    *transient = r == PG_ERR_NETWORK || (r == 0 && (res.status >= 500 || res.status == 429));
    if (r == 0)
        r = pg_token_response_describe(res.status, res.body, res.len, now, PG_IDP_POLL, outcome, ts,
                                       &e, err);
    if (r == 0 && *outcome == PG_POLL_FAILED)
        record(http, &e);
    pg_http_response_clear(&res);
    return r;
}

static int poll_loop(const struct pg_http_opts *http, const struct pg_device_request *req,
                     const struct pg_clock *clock, const struct pg_device_auth *auth,
                     struct pg_tokenset *out, struct pg_error *err)
{
    struct pg_poller p;
    char failing[PG_ERROR_MAX] = ""; /* the last poll's failure, while the provider fails */
    pg_poller_start(&p, clock->monotonic_ms(clock->ctx), auth->interval, auth->expires_in,
                    req->login_timeout);
    for (;;) {
        int64_t wait = pg_poller_wait(&p, clock->monotonic_ms(clock->ctx));
        /* Out of time: a person who did not approve, or a provider that
         * kept failing to the end (then nobody could have). */
        if (wait < 0 && failing[0])
            return pg_fail(err, PG_ERR_NETWORK,
                           "the sign-in could not be completed in time: the provider was "
                           "failing (last: %.180s)",
                           failing);
        if (wait < 0)
            return pg_fail(err, PG_ERR_DENIED, "the sign-in was not completed in time");
        clock->sleep_ms(clock->ctx, wait);
        struct pg_http_opts o = *http;
        o.deadline_ms = p.deadline_ms;
        enum pg_poll_outcome outcome = PG_POLL_FAILED;
        bool transient = false;
        int r = poll_once(&o, req, auth, clock->wall(clock->ctx), &outcome, out, &transient, err);
        if (r < 0 && !transient)
            return r;
        /* RFC 8628 §3.5 backs off on time-outs; a 5xx is treated alike. */
        pg_poller_after(&p, clock->monotonic_ms(clock->ctx), outcome, transient);
        if (transient) {
            snprintf(failing, sizeof(failing), "%s", err->msg);
            continue;
        }
        failing[0] = '\0';
        switch (outcome) {
        case PG_POLL_TOKENS:
            return 0;
        case PG_POLL_PENDING:
        case PG_POLL_SLOW_DOWN:
            continue;
        case PG_POLL_DENIED:
            return pg_fail(err, PG_ERR_DENIED, "the sign-in was declined");
        case PG_POLL_EXPIRED:
            return pg_fail(err, PG_ERR_DENIED, "the sign-in code expired");
        case PG_POLL_FAILED:
            return err->code; /* err names the refusal; its code says what it means */
        }
    }
}

int pg_device_login(const struct pg_http_opts *http, const struct pg_device_request *req,
                    const struct pg_clock *clock, pg_prompt_fn prompt, void *prompt_ctx,
                    struct pg_tokenset *out, struct pg_error *err)
{
    struct pg_device_auth auth = {0};
    struct pg_tokenset ts = {0};
    struct pg_error local = {0};
    struct pg_http_opts o = *http;
    struct pg_http_conn *own = NULL;
    err = err ? err : &local;
    if (!req->device_authorization_endpoint || !req->token_endpoint)
        return pg_fail(err, PG_ERR_PROTOCOL, "the provider offers no device authorization");
    /* One connection for the code and every poll: a fresh TLS handshake per
     * poll would add its round trips between the approval and the tokens. */
    int r = 0;
    if (!o.conn && pg_http_conn_new(&own) < 0)
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    o.conn = o.conn ? o.conn : own;
    if (r == 0)
        r = request_code(&o, req, &auth, err);
    if (r == 0 && prompt(prompt_ctx, &auth) < 0)
        r = pg_fail(err, PG_ERR_DENIED, "the sign-in was abandoned");
    if (r == 0)
        r = poll_loop(&o, req, clock, &auth, &ts, err);
    if (r == 0)
        *out = ts;
    else
        pg_tokenset_clear(&ts);
    pg_device_auth_clear(&auth);
    pg_http_conn_free(own);
    return r;
}

/* The provider refused a refresh token: why, and whether it is any use now. */
static int refresh_refused(const struct pg_http_opts *http, struct pg_idp_error *e,
                           struct pg_error *err)
{
    if (e->cls != PG_IDP_REFRESH_INVALID && e->cls != PG_IDP_CONDITIONAL_ACCESS &&
        e->cls != PG_IDP_CONFIG) {
        /* (Anything else: the answer of old, with the provider's words.) */
        char what[PG_ERROR_MAX];
        pg_idp_error_detail(e, what, sizeof(what));
        e->code = PG_ERR_DENIED;
        record(http, e);
        return pg_fail(err, PG_ERR_DENIED, "the provider refused the refresh token: %.200s", what);
    }
    record(http, e);
    pg_idp_error_fail(e, err);
    return e->code;
}

int pg_refresh(const struct pg_http_opts *http, const char *token_endpoint, const char *client_id,
               const char *refresh_token, const char *scope, const char *resource,
               const struct pg_clock *clock, struct pg_tokenset *out, struct pg_error *err)
{
    struct pg_form_field f[5] = {
        {"grant_type", "refresh_token"},
        {"client_id", client_id},
        {"refresh_token", refresh_token},
    };
    size_t n = 3;
    if (scope)
        f[n++] = (struct pg_form_field){"scope", scope};
    if (resource)
        f[n++] = (struct pg_form_field){"resource", resource};
    struct pg_http_response res = {0};
    struct pg_tokenset ts = {0};
    struct pg_idp_error e = {0};
    enum pg_poll_outcome outcome = PG_POLL_FAILED;
    int r = pg_http_post_form(http, token_endpoint, f, n, &res, err);
    if (r == 0)
        r = pg_token_response_describe(res.status, res.body, res.len, clock->wall(clock->ctx),
                                       PG_IDP_REFRESH, &outcome, &ts, &e, err);
    if (r == 0 && outcome != PG_POLL_TOKENS) {
        /* Pending or declined make no sense here: still a refusal. */
        e.cls = e.cls == PG_IDP_NONE ? PG_IDP_UNKNOWN : e.cls;
        r = refresh_refused(http, &e, err);
    }
    if (r == 0)
        *out = ts;
    else
        pg_tokenset_clear(&ts);
    pg_http_response_clear(&res);
    return r;
}
