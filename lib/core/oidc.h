/*
 * OpenID Connect discovery and the issuer key cache (used by the helper,
 * which fetches, and by the PAM module's fast path, which only reads).
 *
 * Key cache rules (Microsoft's guidance for Entra ID, fine for any OIDC
 * provider): refresh about hourly; never use a set older than a day; on a
 * token whose kid is unknown, fetch again, but not more often than every
 * five minutes; when a fetch fails, keep using the last good set within
 * its day.
 */
#ifndef PG_OIDC_H
#define PG_OIDC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "poolgate/poolgate.h"

#define PG_KEYS_REFRESH_AFTER 3600
#define PG_KEYS_MAX_AGE 86400
#define PG_KEYS_UNKNOWN_KID_INTERVAL 300
#define PG_DISCOVERY_MAX_BYTES (64 * 1024)

struct pg_discovery {
    char *issuer;
    char *device_authorization_endpoint; /* may be NULL */
    char *token_endpoint;
    char *jwks_uri;
};

/*
 * Parse a discovery document.  Its issuer must equal `want_issuer` exactly
 * (OpenID Connect Discovery §4.3); the endpoints must be https URLs.
 * PG_ERR_PROTOCOL with a message on anything else.
 */
int pg_discovery_parse(const char *json, size_t len, const char *want_issuer,
                       struct pg_discovery *out, struct pg_error *err);
void pg_discovery_clear(struct pg_discovery *d);

struct pg_keycache_entry {
    char *issuer;
    char *jwks;           /* the key set document as fetched */
    int64_t fetched_at;   /* when jwks was fetched, epoch seconds */
    int64_t last_attempt; /* the last fetch attempt, successful or not */
};

enum pg_keycache_action {
    PG_KEYCACHE_USE,     /* the cached set is fresh enough */
    PG_KEYCACHE_REFRESH, /* fetch; if that fails, the cached set may still be used */
    PG_KEYCACHE_FETCH,   /* fetch; without it there is no usable set */
};

/* What to do, given the cached entry (NULL when none), the time, and
 * whether a token named a kid the cached set does not hold. */
enum pg_keycache_action pg_keycache_decide(const struct pg_keycache_entry *e, int64_t now,
                                           bool unknown_kid);

/* The cache file name for an issuer: "keys-<32 hex digits>.json". */
int pg_keycache_name(const char *issuer, char name[64]);

#define PG_DISCOVERY_MAX_AGE 86400

/* The issuer's discovery document from the cache directory, parsed and
 * checked as when fetched; PG_ERR_IO when absent, stale (over a day, or
 * from the future) or for another issuer. */
int pg_discovery_cache_load(int dirfd, const char *issuer, uid_t owner, int64_t now,
                            struct pg_discovery *out, struct pg_error *err);
/* Keep a fetched discovery document (after pg_discovery_parse accepted it). */
int pg_discovery_cache_save(int dirfd, const char *issuer, const char *document, size_t len,
                            int64_t now, struct pg_error *err);

/* Load the entry for `issuer` from the cache directory; PG_ERR_IO when absent. */
int pg_keycache_load(int dirfd, const char *issuer, uid_t owner, struct pg_keycache_entry *out,
                     struct pg_error *err);
/* Replace the entry atomically. */
int pg_keycache_save(int dirfd, const struct pg_keycache_entry *e, struct pg_error *err);
void pg_keycache_entry_clear(struct pg_keycache_entry *e);

#endif
