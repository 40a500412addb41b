/*
 * The helper's part of poolgate doctor: the provider as it answers now,
 * not as the cache remembers it.  Each finding is one line for the admin,
 * with what to do about it; DONE's status only says the checks ran.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "helper.h"
#include "internal.h"
#include "oidc.h"

static int add(json_t *checks, const char *level, const char *fmt, ...) PG_PRINTF(3, 4);

static int add(json_t *checks, const char *level, const char *fmt, ...)
{
    char text[PG_ERROR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return json_array_append_new(checks, json_pack("{s:s, s:s}", "level", level, "text", text));
}

/* Clocks: the provider's Date header against ours, within clock_skew. */
static void clock_check(struct request *q, json_t *checks, int64_t date)
{
    if (!date) {
        add(checks, "warn", "clock: the provider sent no Date header to compare with");
        return;
    }
    long long skew = (long long)(time(NULL) - date);
    long long abs_skew = skew < 0 ? -skew : skew;
    if (abs_skew <= q->cfg->clock_skew / 2)
        add(checks, "ok", "clock: %+lld s from the provider's", skew);
    else
        add(checks, abs_skew <= q->cfg->clock_skew ? "warn" : "fail",
            "clock: %+lld s from the provider's (clock_skew is %ld): synchronise this host's "
            "clock (systemd-timesyncd or chrony)",
            skew, q->cfg->clock_skew);
}

/* Discovery, fetched now; its issuer must be the configured one. */
static int discovery_check(struct request *q, json_t *checks, struct pg_discovery *d, int64_t *date)
{
    const struct pg_config *c = q->cfg;
    if (c->device_authorization_endpoint && c->token_endpoint && c->jwks_uri) {
        add(checks, "ok", "discovery: not used (all three endpoints are configured)");
        return (d->jwks_uri = strdup(c->jwks_uri)) ? 0 : PG_ERR_NOMEM;
    }
    char url[2048];
    struct pg_http_response res = {0};
    snprintf(url, sizeof(url), "%s/.well-known/openid-configuration", c->issuer);
    int r = fetch_json(q, url, PG_DISCOVERY_MAX_BYTES, "the discovery endpoint", &res);
    if (r == 0)
        r = pg_discovery_parse(res.body, res.len, c->issuer, d, &q->err);
    *date = res.date;
    pg_http_response_clear(&res);
    if (r < 0)
        add(checks, "fail", "discovery: %s (check issuer, ca_file, proxy and the network)",
            q->err.msg);
    else
        add(checks, "ok", "discovery: %s names issuer %s", url, c->issuer);
    if (r == 0 && c->jwks_uri) {
        free(d->jwks_uri);
        r = (d->jwks_uri = strdup(c->jwks_uri)) ? 0 : PG_ERR_NOMEM;
    }
    return r;
}

static void keys_check(struct request *q, json_t *checks, const char *jwks_uri, int64_t *date)
{
    struct pg_http_response res = {0};
    struct pg_keyset *ks = NULL;
    int r = fetch_json(q, jwks_uri, PG_HTTP_MAX_KEYSET, "the key set endpoint", &res);
    if (r == 0)
        r = pg_keyset_parse(res.body, res.len, &ks, &q->err);
    if (res.date)
        *date = res.date;
    if (r < 0)
        add(checks, "fail", "keys: %s", q->err.msg);
    else if (pg_keyset_usable(ks) == 0)
        add(checks, "fail", "keys: %s holds %zu keys and none poolgate can use", jwks_uri,
            pg_keyset_count(ks));
    else
        add(checks, "ok", "keys: %zu usable of %zu at %s", pg_keyset_usable(ks),
            pg_keyset_count(ks), jwks_uri);
    pg_keyset_free(ks);
    pg_http_response_clear(&res);
}

int do_check(struct request *q)
{
    struct pg_discovery d = {0};
    int64_t date = 0;
    json_t *checks = json_array();
    if (!checks)
        return pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    if (discovery_check(q, checks, &d, &date) == 0 && d.jwks_uri)
        keys_check(q, checks, d.jwks_uri, &date);
    if (date || d.jwks_uri)
        clock_check(q, checks, date);
    pg_discovery_clear(&d);
    memset(&q->err, 0, sizeof(q->err));
    q->result = json_pack("{s:o}", "checks", checks);
    return q->result ? 0 : pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
}
