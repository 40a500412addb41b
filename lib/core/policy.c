/*
 * The gate decision: a verified token's claims against the configured policy
 * (RFC 7519 §4.1, OpenID Connect Core §2, security.md items 10-18).
 *
 * MUST:
 *   - Read claims only from a payload whose signature verified (jws.c).
 *   - Compare iss, aud, tid and roles as exact strings, byte for byte:
 *     no case folding, no prefix match, no Unicode normalisation.
 *   - Treat a claim of the wrong JSON type as a failure, even when another
 *     member beside it would have matched.
 *   - Keep every time computation free of overflow: numeric claims are
 *     bounded to 0..MAX_TIME before any arithmetic.
 */
#include <stdio.h>

#include "internal.h"
#include "json.h"
#include "jws.h"
#include "keys.h"

#define MAX_TIME INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

/* Borrowed views into the parsed claims set. */
struct claims {
    const struct pg_json *root, *iss, *sub, *oid, *tid, *aud, *roles, *idtyp, *scp, *name;
    int64_t exp, nbf, iat; /* -1 when absent (exp is required) */
};

static const char *const reason_names[] = {
    [PG_REASON_NONE] = "none",
    [PG_REASON_MALFORMED] = "malformed",
    [PG_REASON_HEADER] = "header",
    [PG_REASON_ALGORITHM] = "algorithm",
    [PG_REASON_KEY] = "key",
    [PG_REASON_SIGNATURE] = "signature",
    [PG_REASON_CLAIMS] = "claims",
    [PG_REASON_EXPIRED] = "expired",
    [PG_REASON_NOT_YET] = "not-yet-valid",
    [PG_REASON_TOO_OLD] = "too-old",
    [PG_REASON_ISSUER] = "issuer",
    [PG_REASON_AUDIENCE] = "audience",
    [PG_REASON_TENANT] = "tenant",
    [PG_REASON_APP_TOKEN] = "app-token",
    [PG_REASON_ROLES] = "roles",
};

PG_EXPORT const char *pg_reason_name(enum pg_reason reason)
{
    if ((size_t)reason < PG_ARRAY_SIZE(reason_names) && reason_names[reason])
        return reason_names[reason];
    return "unknown";
}

/* A NumericDate claim: an integer in 0..MAX_TIME; absent gives -1. */
static int read_time(const struct pg_json *root, const char *name, bool required, int64_t *out,
                     struct pg_verify_result *res)
{
    const struct pg_json *v = pg_json_get(root, name);
    if (!v) {
        *out = -1;
        return required ? pg_refuse(res, PG_REASON_CLAIMS, "no '%s' claim", name) : 0;
    }
    if (v->type != PG_JSON_INT || v->u.i < 0 || v->u.i > MAX_TIME)
        return pg_refuse(res, PG_REASON_CLAIMS, "'%s' is not a valid NumericDate", name);
    *out = v->u.i;
    return 0;
}

/* An optional string claim; present with another type is an error. */
static int read_string(const struct pg_json *root, const char *name, bool required,
                       const struct pg_json **out, struct pg_verify_result *res)
{
    const struct pg_json *v = pg_json_get(root, name);
    if (v && v->type != PG_JSON_STRING)
        return pg_refuse(res, PG_REASON_CLAIMS, "'%s' is not a string", name);
    if (!v && required)
        return pg_refuse(res, PG_REASON_CLAIMS, "no '%s' claim", name);
    *out = v;
    return 0;
}

/* `aud`: one string, or a non-empty array whose members are all strings. */
static int read_aud(const struct pg_json *root, const struct pg_json **out,
                    struct pg_verify_result *res)
{
    const struct pg_json *v = pg_json_get(root, "aud");
    if (!v)
        return pg_refuse(res, PG_REASON_CLAIMS, "no 'aud' claim");
    if (v->type == PG_JSON_ARRAY) {
        if (v->len == 0)
            return pg_refuse(res, PG_REASON_AUDIENCE, "'aud' is an empty array");
        for (const struct pg_json *m = v->u.first; m; m = m->next)
            if (m->type != PG_JSON_STRING)
                return pg_refuse(res, PG_REASON_CLAIMS, "'aud' has a member that is not a string");
    } else if (v->type != PG_JSON_STRING) {
        return pg_refuse(res, PG_REASON_CLAIMS, "'aud' is neither a string nor an array");
    }
    *out = v;
    return 0;
}

/* Follow a dotted path such as "realm_access.roles" through nested objects. */
static const struct pg_json *claim_path(const struct pg_json *root, const char *path)
{
    const struct pg_json *cur = root;
    char seg[128];
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, path, n);
        seg[n] = '\0';
        cur = pg_json_get(cur, seg);
        path += n + (path[n] == '.');
    }
    return cur;
}

static int read_roles(const struct pg_json *root, const char *path, const struct pg_json **out,
                      struct pg_verify_result *res)
{
    const struct pg_json *v = claim_path(root, path);
    if (v && v->type != PG_JSON_ARRAY)
        return pg_refuse(res, PG_REASON_CLAIMS, "'%s' is not an array", path);
    for (const struct pg_json *m = v ? v->u.first : NULL; m; m = m->next)
        if (m->type != PG_JSON_STRING)
            return pg_refuse(res, PG_REASON_CLAIMS, "'%s' has a member that is not a string", path);
    *out = v;
    return 0;
}

static int read_claims(const struct pg_json *root, const struct pg_config *cfg, struct claims *c,
                       struct pg_verify_result *res)
{
    if (root->type != PG_JSON_OBJECT)
        return pg_refuse(res, PG_REASON_MALFORMED, "claims set is not a JSON object");
    c->root = root;
    int r = read_time(root, "exp", true, &c->exp, res);
    if (r == 0)
        r = read_time(root, "nbf", false, &c->nbf, res);
    if (r == 0)
        r = read_time(root, "iat", false, &c->iat, res);
    if (r == 0)
        r = read_string(root, "iss", true, &c->iss, res);
    if (r == 0)
        r = read_string(root, "sub", true, &c->sub, res);
    if (r == 0)
        r = read_string(root, "oid", false, &c->oid, res);
    if (r == 0)
        r = read_string(root, "tid", false, &c->tid, res);
    if (r == 0)
        r = read_string(root, "idtyp", false, &c->idtyp, res);
    if (r == 0)
        r = read_string(root, "scp", false, &c->scp, res);
    if (r == 0)
        r = read_aud(root, &c->aud, res);
    if (r == 0)
        r = read_roles(root, cfg->roles_claim, &c->roles, res);
    /* Display name only, never authorised on; first string of these wins. */
    static const char *const names[] = {"name", "preferred_username", "upn"};
    for (size_t i = 0; r == 0 && !c->name && i < PG_ARRAY_SIZE(names); i++) {
        const struct pg_json *v = pg_json_get(root, names[i]);
        c->name = v && v->type == PG_JSON_STRING ? v : NULL;
    }
    return r;
}

static bool is_guid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]) || s[i] == '\0')
            return false;
    }
    return true;
}

/*
 * The tenant segment of an Entra-shaped issuer: https://HOST/<guid>/v2.0 or
 * https://sts.windows.net/<guid>/.  Other issuers have none.
 */
static bool entra_tenant(const char *iss, const char **seg)
{
    static const char v1[] = "https://sts.windows.net/";
    if (strncmp(iss, v1, sizeof(v1) - 1) == 0) {
        const char *g = iss + sizeof(v1) - 1;
        if (is_guid(g, 36 < strlen(g) ? 36 : strlen(g)) && strcmp(g + 36, "/") == 0) {
            *seg = g;
            return true;
        }
        return false;
    }
    if (strncmp(iss, "https://", 8) != 0)
        return false;
    const char *slash = strchr(iss + 8, '/');
    if (!slash || strlen(slash + 1) != 36 + 5 || !is_guid(slash + 1, 36) ||
        strcmp(slash + 1 + 36, "/v2.0") != 0)
        return false;
    *seg = slash + 1;
    return true;
}

/* A key's Entra issuer template, with {tenantid} replaced by tid, must equal iss. */
static int check_key_issuer(const struct pg_key *k, const struct claims *c,
                            struct pg_verify_result *res)
{
    static const char tmpl[] = "{tenantid}";
    if (!k->issuer)
        return 0;
    const char *at = strstr(k->issuer, tmpl);
    const char *iss = c->iss->u.s;
    size_t pre = at ? (size_t)(at - k->issuer) : strlen(k->issuer);
    bool ok;
    if (!at) {
        ok = strcmp(k->issuer, iss) == 0;
    } else {
        const char *rest = at + sizeof(tmpl) - 1;
        size_t tlen = c->tid ? c->tid->len : 0;
        ok = c->tid && strlen(iss) == pre + tlen + strlen(rest) &&
             memcmp(iss, k->issuer, pre) == 0 && memcmp(iss + pre, c->tid->u.s, tlen) == 0 &&
             strcmp(iss + pre + tlen, rest) == 0;
    }
    return ok ? 0
              : pg_refuse(res, PG_REASON_ISSUER, "'iss' does not match the signing key's issuer");
}

static bool aud_contains(const struct pg_json *aud, const char *want)
{
    if (aud->type == PG_JSON_STRING)
        return strcmp(aud->u.s, want) == 0;
    for (const struct pg_json *m = aud->u.first; m; m = m->next)
        if (strcmp(m->u.s, want) == 0)
            return true;
    return false;
}

static int check_tenant(const struct pg_config *cfg, const struct claims *c,
                        struct pg_verify_result *res)
{
    const char *seg = NULL;
    bool entra = entra_tenant(c->iss->u.s, &seg);
    if ((cfg->tenant || entra) && !c->tid)
        return pg_refuse(res, PG_REASON_TENANT, "no 'tid' claim");
    if (cfg->tenant && strcmp(c->tid->u.s, cfg->tenant) != 0)
        return pg_refuse(res, PG_REASON_TENANT, "'tid' is not the configured tenant");
    if (entra && (c->tid->len != 36 || memcmp(c->tid->u.s, seg, 36) != 0))
        return pg_refuse(res, PG_REASON_TENANT, "'tid' differs from the tenant in 'iss'");
    return 0;
}

static int check_times(const struct pg_config *cfg, const struct claims *c, int64_t now,
                       struct pg_verify_result *res)
{
    int64_t skew = cfg->clock_skew;
    if (now > c->exp + skew)
        return pg_refuse(res, PG_REASON_EXPIRED, "expired at %lld, now %lld", (long long)c->exp,
                         (long long)now);
    if (c->nbf > now + skew)
        return pg_refuse(res, PG_REASON_NOT_YET, "not valid before %lld, now %lld",
                         (long long)c->nbf, (long long)now);
    if (c->iat > now + skew)
        return pg_refuse(res, PG_REASON_NOT_YET, "issued in the future (%lld, now %lld)",
                         (long long)c->iat, (long long)now);
    if (cfg->max_age >= 0 && c->iat < 0)
        return pg_refuse(res, PG_REASON_TOO_OLD, "no 'iat' claim and max_age is set");
    if (cfg->max_age >= 0 && now - c->iat > cfg->max_age)
        return pg_refuse(res, PG_REASON_TOO_OLD, "issued %lld seconds ago, max_age is %ld",
                         (long long)(now - c->iat), cfg->max_age);
    return 0;
}

/* RFC 9068 / Entra: idtyp=app, or an Entra access token without scp, is app-only. */
static bool is_app_only(const struct pg_config *cfg, const struct claims *c)
{
    const char *seg;
    if (c->idtyp && strcmp(c->idtyp->u.s, "app") == 0)
        return true;
    return cfg->validate == PG_VALIDATE_ACCESS_TOKEN && !c->scp && entra_tenant(c->iss->u.s, &seg);
}

static bool has_role(const struct pg_json *roles, const char *want)
{
    size_t n = strlen(want);
    for (const struct pg_json *m = roles ? roles->u.first : NULL; m; m = m->next)
        if (m->len == n && memcmp(m->u.s, want, n) == 0)
            return true;
    return false;
}

static int check_roles(const struct pg_config *cfg, const struct claims *c,
                       struct pg_verify_result *res)
{
    const struct pg_strlist *req = &cfg->required_roles;
    if (req->count == 0)
        return 0;
    size_t held = 0;
    const char *missing = NULL;
    for (size_t i = 0; i < req->count; i++) {
        if (has_role(c->roles, req->items[i]))
            held++;
        else if (!missing)
            missing = req->items[i];
    }
    if (cfg->roles_match == PG_ROLES_ALL ? held == req->count : held > 0)
        return 0;
    if (cfg->roles_match == PG_ROLES_ALL)
        return pg_refuse(res, PG_REASON_ROLES, "required role '%s' is missing", missing);
    return pg_refuse(res, PG_REASON_ROLES, "none of the required roles is present");
}

static int check_policy(const struct pg_config *cfg, const struct pg_key *k, const struct claims *c,
                        int64_t now, struct pg_verify_result *res)
{
    if (strcmp(c->iss->u.s, cfg->issuer) != 0)
        return pg_refuse(res, PG_REASON_ISSUER, "'iss' is not the configured issuer");
    int r = check_key_issuer(k, c, res);
    if (r == 0 && !aud_contains(c->aud, cfg->audience ? cfg->audience : cfg->client_id))
        r = pg_refuse(res, PG_REASON_AUDIENCE, "'aud' does not contain the configured audience");
    if (r == 0)
        r = check_tenant(cfg, c, res);
    if (r == 0)
        r = check_times(cfg, c, now, res);
    if (r == 0 && is_app_only(cfg, c) && !pg_config_app_tokens_allowed(cfg))
        r = pg_refuse(res, PG_REASON_APP_TOKEN, "app-only token, and app tokens are not allowed");
    if (r == 0)
        r = check_roles(cfg, c, res);
    return r;
}

static int dup_opt(const struct pg_json *v, char **out)
{
    if (!v)
        return 0;
    *out = strdup(v->u.s);
    return *out ? 0 : PG_ERR_NOMEM;
}

static int fill_list(const struct pg_json *v, struct pg_strlist *l)
{
    if (v && v->type == PG_JSON_STRING)
        return pg_strlist_add(l, v->u.s, v->len);
    for (const struct pg_json *m = v ? v->u.first : NULL; m; m = m->next)
        if (pg_strlist_add(l, m->u.s, m->len) < 0)
            return PG_ERR_NOMEM;
    return 0;
}

static int fill_identity(const struct claims *c, bool app, struct pg_identity *id)
{
    id->exp = c->exp;
    id->iat = c->iat;
    id->nbf = c->nbf;
    id->app_only = app;
    if (dup_opt(c->sub, &id->sub) < 0 || dup_opt(c->oid, &id->oid) < 0 ||
        dup_opt(c->tid, &id->tid) < 0 || dup_opt(c->iss, &id->iss) < 0 ||
        dup_opt(c->name, &id->name) < 0 || fill_list(c->aud, &id->aud) < 0 ||
        fill_list(c->roles, &id->roles) < 0)
        return PG_ERR_NOMEM;
    return 0;
}

PG_EXPORT int pg_verify_token(const struct pg_config *cfg, const struct pg_keyset *ks,
                              const char *token, size_t len, const struct pg_verify_opts *opts,
                              struct pg_verify_result *res)
{
    if (!res)
        return PG_ERR_ARG;
    memset(res, 0, sizeof(*res));
    if (!cfg || !ks || !token)
        return PG_ERR_ARG;

    unsigned char *payload = NULL;
    size_t plen = 0;
    const struct pg_key *key = NULL;
    struct pg_json_doc *doc = NULL;
    struct claims c = {0};
    int64_t now = opts && opts->now ? (int64_t)opts->now : (int64_t)time(NULL);

    int r = pg_jws_verify_key(ks, cfg->algorithms, token, len, &payload, &plen, &key, res);
    if (r == 0 && (r = pg_json_parse((const char *)payload, plen, &doc)) == PG_ERR_ARG)
        r = pg_refuse(res, PG_REASON_MALFORMED, "claims set is not strict JSON");
    if (r == 0)
        r = read_claims(pg_json_root(doc), cfg, &c, res);
    if (r == 0)
        r = check_policy(cfg, key, &c, now, res);
    if (r == 0)
        r = fill_identity(&c, is_app_only(cfg, &c), &res->id);
    if (r != 0) {
        /* Never hand out a partial identity. */
        struct pg_verify_result keep = *res;
        memset(&keep.id, 0, sizeof(keep.id));
        pg_verify_result_clear(res);
        *res = keep;
        if (r != PG_ERR_TOKEN)
            res->reason = PG_REASON_NONE;
    }
    pg_json_free(doc);
    if (payload)
        pg_memzero(payload, plen);
    free(payload);
    return r;
}

PG_EXPORT void pg_verify_result_clear(struct pg_verify_result *res)
{
    if (!res)
        return;
    struct pg_identity *id = &res->id;
    free(id->sub);
    free(id->oid);
    free(id->tid);
    free(id->iss);
    free(id->name);
    pg_strlist_clear(&id->aud);
    pg_strlist_clear(&id->roles);
    memset(res, 0, sizeof(*res));
}
