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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
static int read_time(const struct pg_json *v, const char *name, bool required, int64_t *out,
                     struct pg_verify_result *res)
{
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
static int read_string(const struct pg_json *v, const char *name, bool required,
                       const struct pg_json **out, struct pg_verify_result *res)
{
    if (v && v->type != PG_JSON_STRING)
        return pg_refuse(res, PG_REASON_CLAIMS, "'%s' is not a string", name);
    if (!v && required)
        return pg_refuse(res, PG_REASON_CLAIMS, "no '%s' claim", name);
    *out = v;
    return 0;
}

/* `aud`: one string, or a non-empty array whose members are all strings. */
static int read_aud(const struct pg_json *v, const struct pg_json **out,
                    struct pg_verify_result *res)
{
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

#define SEGMENT_MAX 128

/* Whether a roles path names a member of the root itself (no dots). */
static bool top_level(const char *path)
{
    size_t n = strcspn(path, ".");
    return n > 0 && n < SEGMENT_MAX && path[n] == '\0';
}

/* Follow a dotted path such as "realm_access.roles" through nested objects. */
static const struct pg_json *claim_path(const struct pg_json *root, const char *path)
{
    const struct pg_json *cur = root;
    char seg[SEGMENT_MAX];
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

static int read_roles(const struct pg_json *v, const char *path, const struct pg_json **out,
                      struct pg_verify_result *res)
{
    if (v && v->type != PG_JSON_ARRAY)
        return pg_refuse(res, PG_REASON_CLAIMS, "'%s' is not an array", path);
    for (const struct pg_json *m = v ? v->u.first : NULL; m; m = m->next)
        if (m->type != PG_JSON_STRING)
            return pg_refuse(res, PG_REASON_CLAIMS, "'%s' has a member that is not a string", path);
    *out = v;
    return 0;
}

/* The claims read_claims looks at, in the order it checks them. */
enum {
    C_EXP,
    C_NBF,
    C_IAT,
    C_ISS,
    C_SUB,
    C_OID,
    C_TID,
    C_IDTYP,
    C_SCP,
    C_AUD,
    C_NAME,               /* display name only, never authorised on: the first string of */
    C_PREFERRED_USERNAME, /* these three wins */
    C_UPN,
    C_ROLES, /* the roles claim, when it is a member of the root itself */
    C_OTHER
};

/* Which of those (but the roles claim) a member is, or C_OTHER. */
static unsigned claim_of(const struct pg_json *m)
{
    switch (pg_json_name3(m)) {
    case PG_JSON_NAME3('e', 'x', 'p'):
        return C_EXP;
    case PG_JSON_NAME3('n', 'b', 'f'):
        return C_NBF;
    case PG_JSON_NAME3('i', 'a', 't'):
        return C_IAT;
    case PG_JSON_NAME3('i', 's', 's'):
        return C_ISS;
    case PG_JSON_NAME3('s', 'u', 'b'):
        return C_SUB;
    case PG_JSON_NAME3('o', 'i', 'd'):
        return C_OID;
    case PG_JSON_NAME3('t', 'i', 'd'):
        return C_TID;
    case PG_JSON_NAME3('s', 'c', 'p'):
        return C_SCP;
    case PG_JSON_NAME3('a', 'u', 'd'):
        return C_AUD;
    case PG_JSON_NAME3('u', 'p', 'n'):
        return C_UPN;
    case 0:
        break;
    default:
        return C_OTHER;
    }
    if (m->keylen == 4 && memcmp(m->key, "name", 4) == 0)
        return C_NAME;
    if (m->keylen == 5 && memcmp(m->key, "idtyp", 5) == 0)
        return C_IDTYP;
    if (m->keylen == 18 && memcmp(m->key, "preferred_username", 18) == 0)
        return C_PREFERRED_USERNAME;
    return C_OTHER;
}

static int read_claims(const struct pg_json *root, const struct pg_config *cfg, struct claims *c,
                       struct pg_verify_result *res)
{
    if (root->type != PG_JSON_OBJECT)
        return pg_refuse(res, PG_REASON_MALFORMED, "claims set is not a JSON object");
    c->root = root;
    /* Every claim in one pass over the members (the parser refused
     * duplicates), the roles claim too unless it is a path into nested
     * objects; it may also be one of the others. */
    const struct pg_json *m[C_OTHER + 1] = {0};
    const char *rc = cfg->roles_claim;
    bool top = top_level(rc);
    size_t rlen = top ? strlen(rc) : 0;
    for (const struct pg_json *v = root->u.first; v; v = v->next) {
        m[claim_of(v)] = v;
        if (top && v->keylen == rlen && v->key[0] == rc[0] && memcmp(v->key, rc, rlen) == 0)
            m[C_ROLES] = v;
    }
    const struct pg_json *roles = top ? m[C_ROLES] : claim_path(root, rc);

    int r = read_time(m[C_EXP], "exp", true, &c->exp, res);
    if (r == 0)
        r = read_time(m[C_NBF], "nbf", false, &c->nbf, res);
    if (r == 0)
        r = read_time(m[C_IAT], "iat", false, &c->iat, res);
    if (r == 0)
        r = read_string(m[C_ISS], "iss", true, &c->iss, res);
    if (r == 0)
        r = read_string(m[C_SUB], "sub", true, &c->sub, res);
    if (r == 0)
        r = read_string(m[C_OID], "oid", false, &c->oid, res);
    if (r == 0)
        r = read_string(m[C_TID], "tid", false, &c->tid, res);
    if (r == 0)
        r = read_string(m[C_IDTYP], "idtyp", false, &c->idtyp, res);
    if (r == 0)
        r = read_string(m[C_SCP], "scp", false, &c->scp, res);
    if (r == 0)
        r = read_aud(m[C_AUD], &c->aud, res);
    if (r == 0)
        r = read_roles(roles, cfg->roles_claim, &c->roles, res);
    for (size_t i = C_NAME; r == 0 && !c->name && i <= C_UPN; i++)
        c->name = m[i] && m[i]->type == PG_JSON_STRING ? m[i] : NULL;
    return r;
}

/* Dashes at 8, 13, 18 and 23 of a GUID, hex digits everywhere else. */
#define GUID_DASHES                                                                                \
    ((UINT64_C(1) << 8) | (UINT64_C(1) << 13) | (UINT64_C(1) << 18) | (UINT64_C(1) << 23))
#define GUID_ALL ((UINT64_C(1) << 36) - 1)

static bool is_guid(const char *s, size_t len)
{
    uint64_t hex = 0, dash = 0;
    if (len != 36)
        return false;
#ifdef __SSE2__
    /* Three overlapping blocks of 16 bytes (this runs on every login); the
     * signed compares leave bytes from 0x80 up out of every range. */
    static const unsigned at[] = {0, 16, 20};
    for (size_t i = 0; i < 3; i++) {
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + at[i]));
        __m128i x = _mm_or_si128(c, _mm_set1_epi8(0x20)); /* 'A'-'F' as 'a'-'f' */
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(c, _mm_set1_epi8('0' - 1)),
                                      _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), c));
        __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('a' - 1)),
                                       _mm_cmpgt_epi8(_mm_set1_epi8('f' + 1), x));
        hex |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(digit, letter)) << at[i];
        dash |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(c, _mm_set1_epi8('-')))
                << at[i];
    }
#else
    for (unsigned i = 0; i < 36; i++) {
        unsigned c = (unsigned char)s[i];
        hex |= (uint64_t)((c - '0' < 10) | ((c | 0x20) - 'a' < 6)) << i;
        dash |= (uint64_t)(c == '-') << i;
    }
#endif
    return (dash & GUID_DASHES) == GUID_DASHES && ((hex | GUID_DASHES) & GUID_ALL) == GUID_ALL;
}

/*
 * The tenant segment of an Entra-shaped issuer: https://HOST/<guid>/v2.0 or
 * https://sts.windows.net/<guid>/.  Other issuers have none.  (The parser
 * refuses \u0000: a string claim's length is that of its C string.)
 */
static bool entra_tenant(const struct pg_json *issuer, const char **seg)
{
    static const char v1[] = "https://sts.windows.net/", v2[] = "/v2.0";
    const size_t v1len = sizeof(v1) - 1, v2len = sizeof(v2) - 1;
    const char *iss = issuer->u.s;
    size_t len = issuer->len;
    if (len >= v1len && memcmp(iss, v1, v1len) == 0) {
        const char *g = iss + v1len;
        if (len == v1len + 37 && is_guid(g, 36) && g[36] == '/') {
            *seg = g;
            return true;
        }
        return false;
    }
    if (len < 8 || memcmp(iss, "https://", 8) != 0)
        return false;
    const char *slash = memchr(iss + 8, '/', len - 8);
    if (!slash || (size_t)(iss + len - (slash + 1)) != 36 + v2len || !is_guid(slash + 1, 36) ||
        memcmp(slash + 1 + 36, v2, v2len) != 0)
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
    bool entra = entra_tenant(c->iss, &seg);
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
    return cfg->validate == PG_VALIDATE_ACCESS_TOKEN && !c->scp && entra_tenant(c->iss, &seg);
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

/* A copy of a string claim (its length is known: no strlen, no strdup). */
static int dup_opt(const struct pg_json *v, char **out)
{
    if (!v)
        return 0;
    *out = malloc((size_t)v->len + 1);
    if (!*out)
        return PG_ERR_NOMEM;
    memcpy(*out, v->u.s, (size_t)v->len + 1);
    return 0;
}

/* A string or an array of strings into a list, its array sized once. */
static int fill_list(const struct pg_json *v, struct pg_strlist *l)
{
    bool one = v && v->type == PG_JSON_STRING;
    size_t n = one ? 1 : v ? v->len : 0;
    if (n == 0)
        return 0;
    l->items = malloc(n * sizeof(*l->items));
    if (!l->items)
        return PG_ERR_NOMEM;
    for (const struct pg_json *m = one ? v : v->u.first; m && l->count < n; m = m->next) {
        if (dup_opt(m, &l->items[l->count]) < 0)
            return PG_ERR_NOMEM;
        l->count++;
    }
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

    /* The payload and its document on the stack for tokens of the usual size. */
    unsigned char plocal[4096], *payload = NULL;
    PG_JSON_BUF(4096) docbuf;
    size_t plen = 0;
    const struct pg_key *key = NULL;
    struct pg_json_doc *doc = NULL;
    struct claims c = {0};
    int64_t now = opts && opts->now ? (int64_t)opts->now : (int64_t)time(NULL);

    int r = pg_jws_verify_key(ks, cfg->algorithms, token, len, plocal, sizeof(plocal), &payload,
                              &plen, &key, res);
    if (r == 0 && (r = pg_json_parse_in((const char *)payload, plen, &docbuf, sizeof(docbuf),
                                        &doc)) == PG_ERR_ARG)
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
    if (payload != plocal)
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
