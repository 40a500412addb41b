/*
 * Managed identity tokens from the Azure instance metadata endpoint.
 *
 * MUST:
 *   - Talk plain HTTP only to the link-local metadata address (or, for
 *     tests, loopback): the one exception to https everywhere.
 *   - Send Metadata: true and a resource (not a scope), with at most one
 *     identity selector, every value escaped.
 *   - Retry 404, 429 and 5xx with back-off and 410 for up to 70 s, never
 *     past the caller's deadline; report "no identity" as a setup error.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <strings.h>

#include "internal.h"
#include "unattended.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 8000
#define RETRY_TRIES 6 /* for 404, 429, 5xx: about half a minute in all */

int pg_scope_resource(const char *scope, char **out)
{
    static const char suffix[] = "/.default";
    size_t n = strlen(scope), k = sizeof(suffix) - 1;
    if (n > k && strcmp(scope + n - k, suffix) == 0)
        n -= k;
    return (*out = strndup(scope, n)) ? 0 : PG_ERR_NOMEM;
}

int pg_imds_url(const struct pg_imds_request *q, char **out)
{
    const char *sel = q->client_id     ? "client_id"
                      : q->object_id   ? "object_id"
                      : q->resource_id ? "msi_res_id"
                                       : NULL;
    const char *id = q->client_id ? q->client_id : q->object_id ? q->object_id : q->resource_id;
    char *res = NULL, *esc_id = NULL;
    int r = pg_url_escape(q->resource, &res) < 0 || (id && pg_url_escape(id, &esc_id) < 0)
                ? PG_ERR_NOMEM
                : 0;
    if (r == 0 && asprintf(out, "%s?api-version=" PG_IMDS_API_VERSION "&resource=%s%s%s%s%s",
                           q->endpoint ? q->endpoint : PG_IMDS_ENDPOINT, res, sel ? "&" : "",
                           sel ? sel : "", sel ? "=" : "", sel ? esc_id : "") < 0)
        r = PG_ERR_NOMEM;
    free(res);
    free(esc_id);
    return r;
}

/* A JSON number or a string of digits (IMDS sends numbers as strings). */
static bool numeric(json_t *v)
{
    const char *s = json_string_value(v);
    if (json_is_integer(v))
        return json_integer_value(v) >= 0;
    if (!s || !*s || strlen(s) > 12)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int parse_token(json_t *doc, char **token, struct pg_error *err)
{
    const char *t = json_string_value(json_object_get(doc, "access_token"));
    const char *type = json_string_value(json_object_get(doc, "token_type"));
    if (!t || !*t || strlen(t) > 16384)
        return pg_fail(err, PG_ERR_PROTOCOL, "the instance metadata endpoint sent no access token");
    if (!type || strcasecmp(type, "Bearer") != 0)
        return pg_fail(err, PG_ERR_PROTOCOL,
                       "the instance metadata endpoint sent a token of type "
                       "other than Bearer");
    if (!numeric(json_object_get(doc, "expires_in")))
        return pg_fail(err, PG_ERR_PROTOCOL,
                       "the instance metadata endpoint sent no usable expires_in");
    return (*token = strdup(t)) ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
}

/* A 400: Azure's "Identity not found" is a setup problem the admin can fix. */
static int refused(json_t *doc, long status, struct pg_error *err)
{
    char desc[160];
    const char *code = json_string_value(json_object_get(doc, "error"));
    const char *text = json_string_value(json_object_get(doc, "error_description"));
    pg_printable(desc, sizeof(desc), text ? text : "");
    if (text && strstr(text, "Identity not found"))
        return pg_fail(err, PG_ERR_CONFIG,
                       "no managed identity: this VM has none assigned, or none matches the "
                       "configured managed_identity_* (the metadata endpoint said: %s)",
                       desc);
    pg_printable(desc, sizeof(desc), text ? text : code ? code : "no description");
    return pg_fail(err, PG_ERR_DENIED,
                   "the instance metadata endpoint refused the request (HTTP %ld): %s", status,
                   desc);
}

int pg_imds_parse(long status, const char *body, size_t len, char **token, struct pg_error *err)
{
    if (status == 404 || status == 410 || status == 429 || (status >= 500 && status < 600))
        return 1;
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
    int r;
    if (status != 200 && status != 400 && status != 401 && status != 403)
        r = pg_fail(err, PG_ERR_PROTOCOL, "the instance metadata endpoint answered HTTP %ld",
                    status);
    else if (!json_is_object(doc))
        r = pg_fail(err, PG_ERR_PROTOCOL,
                    "the instance metadata endpoint answered HTTP %ld without a JSON object",
                    status);
    else if (status == 200)
        r = parse_token(doc, token, err);
    else
        r = refused(doc, status, err);
    json_decref(doc);
    return r;
}

/* The wait before the next try, or -1 when the answer is final or time is up. */
static int64_t next_wait(long status, int tries, int64_t wait, int64_t started, int64_t now,
                         int64_t deadline)
{
    if (status == 410 ? now + wait > started + PG_IMDS_GONE_MS : tries >= RETRY_TRIES)
        return -1;
    if (deadline > 0 && now + wait >= deadline)
        return -1;
    return wait;
}

int pg_imds_token(const struct pg_http_opts *http, const struct pg_imds_request *q,
                  const struct pg_clock *clock, char **token, struct pg_error *err)
{
    const char *headers[] = {"Metadata: true", "Accept: application/json", NULL};
    struct pg_http_opts o = *http;
    struct pg_http_response res = {0};
    char *url = NULL;
    o.allow_plain_http = true;
    o.ca_file = NULL;
    o.proxy = NULL; /* the metadata endpoint is never reached through a proxy */
    o.max_bytes = PG_HTTP_MAX_TOKEN_RESPONSE;
    if (q->endpoint && !pg_imds_endpoint_ok(q->endpoint))
        return pg_fail(err, PG_ERR_CONFIG,
                       "the instance metadata endpoint must be plain http to 169.254.169.254");
    if (pg_imds_url(q, &url) < 0)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    int64_t started = clock->monotonic_ms(clock->ctx), wait = RETRY_FIRST_MS;
    int r;
    for (int tries = 1;; tries++) {
        r = pg_http_get(&o, url, headers, &res, err);
        if (r < 0) {
            char why[PG_ERROR_MAX];
            snprintf(why, sizeof(why), "%s", err ? err->msg : "");
            r = pg_fail(err, r,
                        "the instance metadata endpoint cannot be reached (is this an Azure VM?): "
                        "%s",
                        why);
            break;
        }
        if ((r = pg_imds_parse(res.status, res.body, res.len, token, err)) != 1)
            break;
        long status = res.status;
        pg_http_response_clear(&res);
        int64_t w =
            next_wait(status, tries, wait, started, clock->monotonic_ms(clock->ctx), o.deadline_ms);
        if (w < 0) {
            r = pg_fail(err, PG_ERR_NETWORK,
                        "the instance metadata endpoint answered HTTP %ld until the time limit",
                        status);
            break;
        }
        clock->sleep_ms(clock->ctx, w);
        wait = wait * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : wait * 2;
    }
    pg_http_response_clear(&res);
    free(url);
    return r;
}
