/*
 * RFC 8628 device authorization: response parsing and the polling schedule.
 *
 * MUST:
 *   - Poll no faster than the server's interval; after slow_down add 5 s
 *     to the interval for this and every later poll (§3.5).
 *   - Stop at the earlier of expires_in and login_timeout, and on every
 *     error but authorization_pending and slow_down.
 *   - Decide only on the `error` code and Entra's AADSTS number (error_codes,
 *     or the "AADSTSnnnnn:" prefix of error_description when error_codes is
 *     absent), never on the description's text (entra_errors.c).
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "device.h"
#include "entra_errors.h"
#include "internal.h"

#define MAX_EXPIRES_IN 86400L
#define MAX_INTERVAL 300L

/* A positive integer, given as a JSON number or a numeric string. */
static bool loose_number(json_t *v, long lo, long hi, long *out)
{
    long n;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < lo || i > hi)
            return false;
        n = (long)i;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        n = strtol(s, &end, 10);
        if (!isdigit((unsigned char)s[0]) || errno || *end || n < lo || n > hi)
            return false;
    } else {
        return false;
    }
    *out = n;
    return true;
}

static int dup_member(json_t *doc, const char *name, bool required, size_t max, char **out,
                      struct pg_error *err)
{
    json_t *v = json_object_get(doc, name);
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return pg_fail(err, PG_ERR_PROTOCOL, "device authorization: '%s' missing or invalid", name);
    *out = strdup(json_string_value(v));
    return *out ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
}

static int parse_auth_doc(json_t *doc, struct pg_device_auth *a, struct pg_error *err)
{
    /* verification_url is the older (and Entra v1) spelling. */
    const char *uri_name =
        json_object_get(doc, "verification_uri") ? "verification_uri" : "verification_url";
    int r = dup_member(doc, "device_code", true, 4096, &a->device_code, err);
    if (r == 0)
        r = dup_member(doc, "user_code", true, 64, &a->user_code, err);
    if (r == 0)
        r = dup_member(doc, uri_name, true, 2048, &a->verification_uri, err);
    if (r == 0)
        r = dup_member(doc, "verification_uri_complete", false, 2048, &a->verification_uri_complete,
                       err);
    if (r == 0)
        r = dup_member(doc, "message", false, 4096, &a->message, err);
    if (r == 0 && (!pg_https_url(a->verification_uri) ||
                   (a->verification_uri_complete && !pg_https_url(a->verification_uri_complete))))
        r = pg_fail(err, PG_ERR_PROTOCOL, "device authorization: verification URI is not https");
    if (r == 0 &&
        !loose_number(json_object_get(doc, "expires_in"), 1, MAX_EXPIRES_IN, &a->expires_in))
        r = pg_fail(err, PG_ERR_PROTOCOL, "device authorization: 'expires_in' missing or invalid");
    json_t *iv = json_object_get(doc, "interval");
    a->interval = PG_DEVICE_DEFAULT_INTERVAL;
    if (r == 0 && iv && !loose_number(iv, 1, MAX_INTERVAL, &a->interval))
        r = pg_fail(err, PG_ERR_PROTOCOL, "device authorization: 'interval' invalid");
    return r;
}

int pg_device_auth_parse(const char *json, size_t len, struct pg_device_auth *out,
                         struct pg_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    struct pg_device_auth a = {0};
    int r = json_is_object(doc)
                ? parse_auth_doc(doc, &a, err)
                : pg_fail(err, PG_ERR_PROTOCOL, "device authorization: not a JSON object");
    json_decref(doc);
    if (r == 0)
        *out = a;
    else
        pg_device_auth_clear(&a);
    return r;
}

void pg_device_auth_clear(struct pg_device_auth *a)
{
    if (!a)
        return;
    pg_free_secret(a->device_code);
    free(a->user_code);
    free(a->verification_uri);
    free(a->verification_uri_complete);
    free(a->message);
    memset(a, 0, sizeof(*a));
}

static int take_token(json_t *doc, const char *name, bool required, char **out,
                      struct pg_error *err)
{
    json_t *v = json_object_get(doc, name);
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return pg_fail(err, PG_ERR_PROTOCOL, "token response: '%s' missing or invalid", name);
    *out = strdup(json_string_value(v));
    return *out ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
}

static int parse_success(json_t *doc, int64_t now, struct pg_tokenset *ts, struct pg_error *err)
{
    const char *type = json_string_value(json_object_get(doc, "token_type"));
    if (!type || strcasecmp(type, "Bearer") != 0)
        return pg_fail(err, PG_ERR_PROTOCOL, "token response: token_type is not Bearer");
    int r = take_token(doc, "access_token", true, &ts->access_token, err);
    if (r == 0)
        r = take_token(doc, "id_token", false, &ts->id_token, err);
    if (r == 0)
        r = take_token(doc, "refresh_token", false, &ts->refresh_token, err);
    if (r == 0)
        r = take_token(doc, "scope", false, &ts->scope, err);
    long expires_in = 0;
    json_t *ei = json_object_get(doc, "expires_in");
    if (r == 0 && ei && !loose_number(ei, 1, 31536000L, &expires_in))
        r = pg_fail(err, PG_ERR_PROTOCOL, "token response: 'expires_in' invalid");
    ts->expires_at = expires_in ? now + expires_in : 0;
    ts->stored_at = now;
    return r;
}

/* An OAuth error answer: described (entra_errors.c), then what it means for polling. */
static int classify_error(json_t *doc, enum pg_idp_path path, enum pg_poll_outcome *outcome,
                          struct pg_idp_error *idp, struct pg_error *err)
{
    struct pg_idp_error e;
    if (!pg_idp_error_parse(doc, path, &e))
        return pg_fail(err, PG_ERR_PROTOCOL, "token response: an error without an error code");
    switch (e.cls) {
    case PG_IDP_PENDING:
        *outcome = strcmp(e.error, "slow_down") == 0 ? PG_POLL_SLOW_DOWN : PG_POLL_PENDING;
        break;
    case PG_IDP_DECLINED:
        *outcome = PG_POLL_DENIED;
        break;
    case PG_IDP_EXPIRED:
        *outcome = PG_POLL_EXPIRED;
        break;
    default:
        /* Anything else stops: the message names the refusal. */
        pg_idp_error_fail(&e, err);
        *outcome = PG_POLL_FAILED;
    }
    if (idp)
        *idp = e;
    return 0;
}

int pg_token_response_describe(long status, const char *json, size_t len, int64_t now,
                               enum pg_idp_path path, enum pg_poll_outcome *outcome,
                               struct pg_tokenset *ts, struct pg_idp_error *idp,
                               struct pg_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    struct pg_tokenset got = {0};
    int r;
    if (!json_is_object(doc))
        r = pg_fail(err, PG_ERR_PROTOCOL, "token response (HTTP %ld) is not a JSON object", status);
    else if (status == 200)
        r = parse_success(doc, now, &got, err);
    else if (status == 400 || status == 401)
        r = classify_error(doc, path, outcome, idp, err);
    else
        r = pg_fail(err, PG_ERR_PROTOCOL, "token endpoint answered HTTP %ld", status);
    json_decref(doc);
    if (r == 0 && status == 200) {
        *ts = got;
        *outcome = PG_POLL_TOKENS;
    } else {
        pg_tokenset_clear(&got);
    }
    return r;
}

int pg_token_response_parse(long status, const char *json, size_t len, int64_t now,
                            enum pg_poll_outcome *outcome, struct pg_tokenset *ts,
                            struct pg_error *err)
{
    return pg_token_response_describe(status, json, len, now, PG_IDP_POLL, outcome, ts, NULL, err);
}

void pg_poller_start(struct pg_poller *p, int64_t now_ms, long interval, long expires_in,
                     long login_timeout)
{
    long limit = expires_in < login_timeout ? expires_in : login_timeout;
    p->interval_ms = (int64_t)(interval > 0 ? interval : PG_DEVICE_DEFAULT_INTERVAL) * 1000;
    p->deadline_ms = now_ms + (int64_t)limit * 1000;
    p->next_ms = now_ms + p->interval_ms;
    p->backoff_ms = 0;
}

int64_t pg_poller_wait(const struct pg_poller *p, int64_t now_ms)
{
    if (p->next_ms >= p->deadline_ms)
        return -1;
    return p->next_ms > now_ms ? p->next_ms - now_ms : 0;
}

void pg_poller_after(struct pg_poller *p, int64_t now_ms, enum pg_poll_outcome outcome,
                     bool timeout)
{
    if (timeout) {
        /* RFC 8628 §3.5: back off exponentially on connection timeouts. */
        p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : p->interval_ms;
        if (p->backoff_ms > PG_DEVICE_MAX_BACKOFF_MS)
            p->backoff_ms = PG_DEVICE_MAX_BACKOFF_MS;
        p->next_ms = now_ms + p->interval_ms + p->backoff_ms;
        return;
    }
    p->backoff_ms = 0;
    if (outcome == PG_POLL_SLOW_DOWN)
        p->interval_ms += PG_DEVICE_SLOW_DOWN_STEP * 1000;
    p->next_ms = now_ms + p->interval_ms;
}
