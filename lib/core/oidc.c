/*
 * Discovery document parsing and the issuer key cache; see oidc.h.
 *
 * MUST: trust a discovery document only when its issuer is the configured
 * one, byte for byte, and every endpoint in it is https; trust a cache
 * file only through pg_file_read's owner and mode checks, and only when it
 * names the issuer asked for.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "fastcrypto.h"
#include "fileio.h"
#include "internal.h"
#include "json.h"
#include "oidc.h"

#define KEYCACHE_MAX_BYTES (512 * 1024)

static int take_url(json_t *doc, const char *name, bool required, char **out, struct pg_error *err)
{
    json_t *v = json_object_get(doc, name);
    if (!v && !required)
        return 0;
    if (!json_is_string(v) || !pg_https_url(json_string_value(v)))
        return pg_fail(err, PG_ERR_PROTOCOL, "discovery document: '%s' is %s", name,
                       v ? "not an https URL" : "missing");
    *out = strdup(json_string_value(v));
    return *out ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
}

int pg_discovery_parse(const char *json, size_t len, const char *want_issuer,
                       struct pg_discovery *out, struct pg_error *err)
{
    json_error_t jerr;
    struct pg_discovery d = {0};
    json_t *doc =
        len <= PG_DISCOVERY_MAX_BYTES ? json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *iss = json_object_get(doc, "issuer");
    int r = 0;
    if (!json_is_object(doc))
        r = pg_fail(err, PG_ERR_PROTOCOL, "discovery document is not a JSON object");
    else if (!json_is_string(iss) || strcmp(json_string_value(iss), want_issuer) != 0)
        r = pg_fail(err, PG_ERR_PROTOCOL,
                    "discovery document names another issuer than the configured one");
    if (r == 0 && !(d.issuer = strdup(want_issuer)))
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (r == 0)
        r = take_url(doc, "token_endpoint", true, &d.token_endpoint, err);
    if (r == 0)
        r = take_url(doc, "jwks_uri", true, &d.jwks_uri, err);
    if (r == 0)
        r = take_url(doc, "device_authorization_endpoint", false, &d.device_authorization_endpoint,
                     err);
    json_decref(doc);
    if (r == 0)
        *out = d;
    else
        pg_discovery_clear(&d);
    return r;
}

void pg_discovery_clear(struct pg_discovery *d)
{
    if (!d)
        return;
    free(d->issuer);
    free(d->device_authorization_endpoint);
    free(d->token_endpoint);
    free(d->jwks_uri);
    memset(d, 0, sizeof(*d));
}

enum pg_keycache_action pg_keycache_decide(const struct pg_keycache_entry *e, int64_t now,
                                           bool unknown_kid)
{
    if (!e || !e->jwks || e->fetched_at <= 0)
        return PG_KEYCACHE_FETCH;
    int64_t age = now - e->fetched_at;
    if (age < 0 || age > PG_KEYS_MAX_AGE) /* too old, or the clock went back */
        return PG_KEYCACHE_FETCH;
    if (age > PG_KEYS_REFRESH_AFTER)
        return PG_KEYCACHE_REFRESH;
    /* An unknown kid may be a rotation: look again, but rate-limited, so a
     * stream of forged kids cannot turn into a stream of fetches. */
    if (unknown_kid && now - e->last_attempt >= PG_KEYS_UNKNOWN_KID_INTERVAL)
        return PG_KEYCACHE_REFRESH;
    return PG_KEYCACHE_USE;
}

/* "<prefix>-<32 hex digits of SHA-256(issuer)>.json" */
static int cache_name(const char *prefix, const char *issuer, char name[64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    /* Directly where OpenSSL allows: every login names the key cache. */
    if (pg_sha2(256, issuer, strlen(issuer), md) == 0 &&
        EVP_Digest(issuer, strlen(issuer), md, &mdlen, EVP_sha256(), NULL) != 1)
        return PG_ERR_CRYPTO;
    static const char hex[] = "0123456789abcdef";
    char *p = name + sprintf(name, "%s-", prefix);
    for (int i = 0; i < 16; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 15];
    }
    strcpy(p, ".json");
    return 0;
}

int pg_keycache_name(const char *issuer, char name[64])
{
    return cache_name("keys", issuer, name);
}

int pg_discovery_cache_load(int dirfd, const char *issuer, uid_t owner, int64_t now,
                            struct pg_discovery *out, struct pg_error *err)
{
    char name[64], *text = NULL;
    size_t len = 0;
    int r = cache_name("discovery", issuer, name);
    if (r == 0)
        r = pg_file_read(dirfd, name, KEYCACHE_MAX_BYTES, owner, "cached discovery document", &text,
                         &len, err);
    if (r < 0)
        return r;
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *iss = json_object_get(doc, "issuer"), *body = json_object_get(doc, "document");
    int64_t at = json_integer_value(json_object_get(doc, "fetched_at"));
    if (!json_is_string(iss) || strcmp(json_string_value(iss), issuer) != 0 ||
        !json_is_string(body))
        r = pg_fail(err, PG_ERR_IO, "cached discovery document is corrupt or for another issuer");
    else if (at <= 0 || now < at || now - at > PG_DISCOVERY_MAX_AGE)
        r = pg_fail(err, PG_ERR_IO, "cached discovery document is stale");
    else /* parsed and checked again, exactly as when it was fetched */
        r = pg_discovery_parse(json_string_value(body), json_string_length(body), issuer, out, err);
    json_decref(doc);
    free(text);
    return r;
}

int pg_discovery_cache_save(int dirfd, const char *issuer, const char *document, size_t len,
                            int64_t now, struct pg_error *err)
{
    char name[64];
    if (cache_name("discovery", issuer, name) < 0)
        return pg_fail(err, PG_ERR_CRYPTO, "cannot name the discovery cache file");
    json_t *o = json_pack("{s:s, s:s%, s:I}", "issuer", issuer, "document", document, len,
                          "fetched_at", (json_int_t)now);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    int r = text
                ? pg_file_replace(dirfd, name, text, strlen(text), "cached discovery document", err)
                : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    free(text);
    return r;
}

int pg_keycache_load(int dirfd, const char *issuer, uid_t owner, struct pg_keycache_entry *out,
                     struct pg_error *err)
{
    char name[64], *text = NULL;
    size_t len = 0;
    int r = pg_keycache_name(issuer, name);
    if (r == 0)
        r = pg_file_read(dirfd, name, KEYCACHE_MAX_BYTES, owner, "cached key set", &text, &len,
                         err);
    if (r < 0)
        return r;
    /* The strict parser of the tokens, not jansson: this runs on every
     * login (json.h).  The file is jansson's output, which it reads whole. */
    struct pg_json_doc *doc = NULL;
    struct pg_keycache_entry e = {0};
    r = pg_json_parse(text, len, &doc);
    const struct pg_json *root = pg_json_root(doc);
    const char *iss = pg_json_str(root, "issuer"), *jwks = pg_json_str(root, "jwks");
    if (r == PG_ERR_NOMEM)
        r = pg_fail(err, r, "out of memory");
    else if (r < 0 || !iss || strcmp(iss, issuer) != 0 || !jwks)
        r = pg_fail(err, PG_ERR_IO, "cached key set is corrupt or for another issuer");
    else if (!(e.issuer = strdup(issuer)) || !(e.jwks = strdup(jwks)))
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    e.fetched_at = pg_json_int(root, "fetched_at");
    e.last_attempt = pg_json_int(root, "last_attempt");
    pg_json_free(doc);
    free(text);
    if (r == 0)
        *out = e;
    else
        pg_keycache_entry_clear(&e);
    return r;
}

int pg_keycache_save(int dirfd, const struct pg_keycache_entry *e, struct pg_error *err)
{
    char name[64];
    if (!e->issuer || !e->jwks || pg_keycache_name(e->issuer, name) < 0)
        return pg_fail(err, PG_ERR_ARG, "incomplete key cache entry");
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I}", "issuer", e->issuer, "jwks", e->jwks, "fetched_at",
                  (json_int_t)e->fetched_at, "last_attempt", (json_int_t)e->last_attempt);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    int r = text ? pg_file_replace(dirfd, name, text, strlen(text), "cached key set", err)
                 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    free(text);
    return r;
}

void pg_keycache_entry_clear(struct pg_keycache_entry *e)
{
    if (!e)
        return;
    free(e->issuer);
    free(e->jwks);
    memset(e, 0, sizeof(*e));
}
