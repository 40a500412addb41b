/*
 * Azure DevOps agent-pool calls (see devops.h).
 *
 * MUST:
 *   - Send the token only in the Authorization header, and clear every copy.
 *   - Send api-version on every call; JSON bodies exactly as the official
 *     agent sends them.
 *   - Turn every refusal into a message an admin can act on, and never
 *     retry one; retry only 429 and 5xx (a POST only 429), and never past
 *     the deadline.
 *   - Take nothing from an answer into the agent's files unchecked: ids
 *     positive, URLs https, no control characters anywhere.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>

#include "devops.h"
#include "internal.h"

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 16000

void pg_agent_clear(struct pg_agent *a)
{
    free(a->name);
    free(a->client_id);
    free(a->authorization_url);
    free(a->server_url);
    memset(a, 0, sizeof(*a));
}

/* ---- answers ------------------------------------------------------------- */

static bool plain_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* A string member with no control characters, at most max bytes; NULL if not. */
static const char *text_member(json_t *o, const char *key, size_t max)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!s || !*s || json_string_length(v) != strlen(s) || strlen(s) > max || !plain_text(s))
        return NULL;
    return s;
}

static bool positive_id(json_t *v, int64_t *id)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return false;
    *id = json_integer_value(v);
    return true;
}

static json_t *load(const char *body, size_t len, struct pg_error *err)
{
    json_error_t jerr;
    json_t *doc =
        len <= PG_DEVOPS_MAX_RESPONSE ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        pg_fail(err, PG_ERR_PROTOCOL,
                "Azure DevOps answered with something other than a JSON object");
        return NULL;
    }
    return doc;
}

int pg_devops_parse_first_id(const char *body, size_t len, int64_t *id, struct pg_error *err)
{
    json_t *doc = load(body, len, err);
    if (!doc)
        return PG_ERR_PROTOCOL;
    json_t *value = json_object_get(doc, "value"), *count = json_object_get(doc, "count");
    int r = 0;
    *id = 0;
    if (!json_is_array(value) ||
        (count && (!json_is_integer(count) ||
                   json_integer_value(count) != (json_int_t)json_array_size(value))))
        r = pg_fail(err, PG_ERR_PROTOCOL, "Azure DevOps answered a list without count and value");
    else if (json_array_size(value) > 0 &&
             !positive_id(json_object_get(json_array_get(value, 0), "id"), id))
        r = pg_fail(err, PG_ERR_PROTOCOL, "Azure DevOps listed an item without a valid id");
    json_decref(doc);
    return r;
}

static int copy_member(json_t *o, const char *key, size_t max, bool url, char **out)
{
    const char *s = text_member(o, key, max);
    if (!s || (url && !pg_https_url(s)))
        return PG_ERR_PROTOCOL;
    return (*out = strdup(s)) ? 0 : PG_ERR_NOMEM;
}

/* properties.ServerUrl comes typed: {"$type": "System.String", "$value": "https://..."}. */
static int server_url(json_t *agent, char **out)
{
    json_t *p = json_object_get(json_object_get(agent, "properties"), "ServerUrl");
    if (!p)
        return 0;
    const char *type = text_member(p, "$type", 64);
    if (!type || strcmp(type, "System.String") != 0)
        return PG_ERR_PROTOCOL;
    return copy_member(p, "$value", 1024, true, out);
}

int pg_devops_parse_agent(const char *body, size_t len, struct pg_agent *out, struct pg_error *err)
{
    memset(out, 0, sizeof(*out));
    json_t *doc = load(body, len, err);
    if (!doc)
        return PG_ERR_PROTOCOL;
    json_t *auth = json_object_get(doc, "authorization");
    int r = positive_id(json_object_get(doc, "id"), &out->id) ? 0 : PG_ERR_PROTOCOL;
    if (r == 0)
        r = copy_member(doc, "name", 256, false, &out->name);
    if (r == 0)
        r = copy_member(auth, "clientId", 64, false, &out->client_id);
    if (r == 0)
        r = copy_member(auth, "authorizationUrl", 1024, true, &out->authorization_url);
    if (r == 0)
        r = server_url(doc, &out->server_url);
    json_decref(doc);
    if (r < 0) {
        pg_agent_clear(out);
        return pg_fail(err, r,
                       r == PG_ERR_NOMEM ? "out of memory"
                                         : "Azure DevOps answered with a malformed agent");
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

json_t *pg_devops_agent_body(const struct pg_agent_info *a, int64_t agent_id)
{
    json_t *caps = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Agent.Name", a->name,
                             "Agent.Version", a->version, "Agent.ComputerName", a->computer_name,
                             "Agent.HomeDirectory", a->home_directory, "Agent.OS", "Linux",
                             "Agent.OSArchitecture", a->os_architecture);
    json_t *body =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:{s:s, s:s}}, s:o}", "name", a->name, "version",
                  a->version, "osDescription", a->os_description, "maxParallelism", 1,
                  "provisioningState", "Provisioned", "authorization", "publicKey", "exponent",
                  a->exponent, "modulus", a->modulus, "systemCapabilities", caps);
    if (body && agent_id > 0 && json_object_set_new(body, "id", json_integer(agent_id)) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* org_url + path (printf-style), with no doubled '/'. */
static char *endpoint(const struct pg_devops *d, const char *fmt, ...) PG_PRINTF(2, 3);

static char *endpoint(const struct pg_devops *d, const char *fmt, ...)
{
    char *path = NULL, *url = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&path, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    size_t base = strlen(d->org_url);
    while (base > 0 && d->org_url[base - 1] == '/')
        base--;
    if (asprintf(&url, "%.*s%s", (int)base, d->org_url, path) < 0)
        url = NULL;
    free(path);
    return url;
}

/* The service's own words, if it sent any, made safe for a terminal and a log. */
static void service_message(const struct pg_http_response *res, char *out, size_t outsz)
{
    json_error_t jerr;
    json_t *doc = res->body ? json_loadb(res->body, res->len, 0, &jerr) : NULL;
    const char *m = json_string_value(json_object_get(doc, "message"));
    char said[200];
    pg_printable(said, sizeof(said), m);
    snprintf(out, outsz, "%s%s", m ? ": " : "", m ? said : "");
    json_decref(doc);
}

/* A refusal, as the admin should read it. */
static int refused(const struct pg_devops *d, const struct pg_http_response *res, const char *what,
                   struct pg_error *err)
{
    char said[208];
    service_message(res, said, sizeof(said));
    switch (res->status) {
    case 203: /* the sign-in page, served when the token is not accepted */
    case 401:
        return pg_fail(err, PG_ERR_DENIED,
                       "Azure DevOps did not accept the signed-in identity's token (HTTP %ld)%s",
                       res->status, said);
    case 403:
        return pg_fail(err, PG_ERR_DENIED,
                       "the signed-in identity lacks the Administrator role on agent pool '%s' in "
                       "Azure DevOps (HTTP 403)%s",
                       d->pool, said);
    case 404:
        return pg_fail(err, PG_ERR_CONFIG,
                       "%s: not found in Azure DevOps organization %s (HTTP "
                       "404)%s",
                       what, d->org_url, said);
    default:
        return pg_fail(err, PG_ERR_PROTOCOL, "%s: Azure DevOps answered HTTP %ld%s", what,
                       res->status, said);
    }
}

static bool transient(long status)
{
    return status == 429 || (status >= 500 && status <= 599);
}

/*
 * One call, retried while the answer is transient and the deadline allows.
 * Success means status `want` (and a JSON body when want is not 204); any
 * other answer is left in *res for the caller to judge, with r = 1.
 */
static int call(const struct pg_devops *d, const char *method, const char *url, json_t *body,
                long want, const char *what, struct pg_http_response *res, struct pg_error *err)
{
    char *auth = NULL, *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if ((body && !text) || asprintf(&auth, "Authorization: Bearer %s", d->token) < 0) {
        auth = NULL;
        goto out;
    }
    const char *headers[] = {auth, "Accept: application/json",
                             body ? "Content-Type: application/json" : NULL, NULL};
    struct pg_http_opts o = d->http;
    o.max_bytes = PG_DEVOPS_MAX_RESPONSE;
    for (int64_t wait = RETRY_FIRST_MS;; wait = wait * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : wait * 2) {
        if ((r = pg_http_request(&o, method, url, headers, text, res, err)) < 0)
            goto out;
        /* A POST the service may have carried out is not sent twice. */
        if (!transient(res->status) || (strcmp(method, "POST") == 0 && res->status != 429))
            break;
        int64_t now = d->clock->monotonic_ms(d->clock->ctx);
        if (d->http.deadline_ms > 0 && now + wait >= d->http.deadline_ms) {
            r = pg_fail(err, PG_ERR_NETWORK,
                        "%s: Azure DevOps answered HTTP %ld until the time "
                        "limit",
                        what, res->status);
            pg_http_response_clear(res);
            goto out;
        }
        pg_http_response_clear(res);
        d->clock->sleep_ms(d->clock->ctx, wait);
    }
    if (res->status != want)
        r = 1;
    else if (want != 204)
        r = pg_http_expect_json(res, want, what, err);
    if (r < 0)
        pg_http_response_clear(res);
out:
    pg_free_secret(auth);
    free(text);
    return r;
}

static int fail_nomem(struct pg_error *err)
{
    return pg_fail(err, PG_ERR_NOMEM, "out of memory");
}

int pg_devops_find_pool(const struct pg_devops *d, const char *pool, int64_t *pool_id,
                        struct pg_error *err)
{
    char *name = NULL, *url = NULL;
    struct pg_http_response res = {0};
    int r = pg_url_escape(pool, &name) < 0 ? fail_nomem(err) : 0;
    if (r == 0 && !(url = endpoint(d,
                                   "/_apis/distributedtask/pools?poolName=%s&poolType=Automation"
                                   "&api-version=" PG_DEVOPS_API_VERSION,
                                   name)))
        r = fail_nomem(err);
    if (r == 0 && (r = call(d, "GET", url, NULL, 200, "the agent pool list", &res, err)) == 1)
        r = refused(d, &res, "the agent pool list", err);
    if (r == 0)
        r = pg_devops_parse_first_id(res.body, res.len, pool_id, err);
    if (r == 0 && *pool_id == 0)
        r = pg_fail(err, PG_ERR_CONFIG, "pool '%s' not found in organization %s", pool, d->org_url);
    pg_http_response_clear(&res);
    free(name);
    free(url);
    return r;
}

int pg_devops_find_agent(const struct pg_devops *d, int64_t pool_id, const char *name,
                         int64_t *agent_id, struct pg_error *err)
{
    char *escaped = NULL, *url = NULL;
    struct pg_http_response res = {0};
    int r = pg_url_escape(name, &escaped) < 0 ? fail_nomem(err) : 0;
    if (r == 0 && !(url = endpoint(d,
                                   "/_apis/distributedtask/pools/%lld/agents?agentName=%s"
                                   "&includeCapabilities=false&api-version=" PG_DEVOPS_API_VERSION,
                                   (long long)pool_id, escaped)))
        r = fail_nomem(err);
    if (r == 0 && (r = call(d, "GET", url, NULL, 200, "the agent list", &res, err)) == 1)
        r = refused(d, &res, "the agent list", err);
    if (r == 0)
        r = pg_devops_parse_first_id(res.body, res.len, agent_id, err);
    pg_http_response_clear(&res);
    free(escaped);
    free(url);
    return r;
}

int pg_devops_put_agent(const struct pg_devops *d, int64_t pool_id, int64_t agent_id,
                        const struct pg_agent_info *info, struct pg_agent *out,
                        struct pg_error *err)
{
    json_t *body = pg_devops_agent_body(info, agent_id);
    struct pg_http_response res = {0};
    char *url = NULL;
    int r = 0;
    if (!body || !(url = agent_id ? endpoint(d,
                                             "/_apis/distributedtask/pools/%lld/agents/%lld"
                                             "?api-version=" PG_DEVOPS_API_VERSION,
                                             (long long)pool_id, (long long)agent_id)
                                  : endpoint(d,
                                             "/_apis/distributedtask/pools/%lld/agents"
                                             "?api-version=" PG_DEVOPS_API_VERSION,
                                             (long long)pool_id)))
        r = fail_nomem(err);
    if (r == 0)
        r = call(d, agent_id ? "PUT" : "POST", url, body, 200, "the agent", &res, err);
    if (r == 1 && res.status == 409)
        r = pg_fail(err, PG_ERR_DENIED,
                    "an agent named '%s' already exists in pool '%s'; use --replace to replace it",
                    info->name, d->pool);
    else if (r == 1)
        r = refused(d, &res, "the agent", err);
    if (r == 0)
        r = pg_devops_parse_agent(res.body, res.len, out, err);
    pg_http_response_clear(&res);
    json_decref(body);
    free(url);
    return r;
}

int pg_devops_delete_agent(const struct pg_devops *d, int64_t pool_id, int64_t agent_id,
                           struct pg_error *err)
{
    struct pg_http_response res = {0};
    char *url = endpoint(
        d, "/_apis/distributedtask/pools/%lld/agents/%lld?api-version=" PG_DEVOPS_API_VERSION,
        (long long)pool_id, (long long)agent_id);
    int r = url ? call(d, "DELETE", url, NULL, 204, "the agent", &res, err) : fail_nomem(err);
    if (r == 1 && res.status == 404)
        r = 1; /* already gone */
    else if (r == 1)
        r = refused(d, &res, "the agent", err);
    pg_http_response_clear(&res);
    free(url);
    return r;
}
