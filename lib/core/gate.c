/*
 * The gate check without network (see gate.h).
 *
 * MUST: open every file without following links and expect the helper
 * account as its owner (cache_dir: the helper account or root, closed to
 * group and others); return success only from pg_verify_token's success;
 * clear every copy of a token.
 */
#include <stdio.h>
#include <unistd.h>

#include "fileio.h"
#include "gate.h"
#include "internal.h"
#include "jws.h"
#include "keys.h"
#include "oidc.h"
#include "store.h"

int pg_gate_stored(const struct pg_config *cfg, uid_t uid, uid_t owner, char **token,
                   bool *has_refresh, const char *ticket, bool *ticket_current,
                   struct pg_error *err)
{
    struct pg_tokenset ts = {0};
    int r = pg_store_load(cfg->state_dir, uid, owner, &ts, err);
    if (r < 0)
        return r;
    bool access = cfg->validate == PG_VALIDATE_ACCESS_TOKEN;
    char **gate = access ? &ts.access_token : &ts.id_token;
    if (!*gate)
        r = pg_fail(err, PG_ERR_IO, "the stored set has no %s",
                    access ? "access_token" : "id_token");
    else if (pg_sign_in_fresh(cfg, &ts, (int64_t)time(NULL), err) < 0)
        r = PG_ERR_IO; /* as good as nothing stored: a sign-in follows */
    else {
        *has_refresh = ts.refresh_token != NULL;
        if (ticket_current)
            *ticket_current = ticket && pg_store_ticket_matches(&ts, ticket) &&
                              pg_store_ticket_fresh(&ts, (int64_t)time(NULL));
        *token = TAKE_PTR(*gate);
    }
    pg_tokenset_clear(&ts);
    return r;
}

int pg_sign_in_fresh(const struct pg_config *cfg, const struct pg_tokenset *ts, int64_t now,
                     struct pg_error *err)
{
    if (cfg->sign_in_max_age < 0)
        return 0;
    if (ts->signed_in_at <= 0)
        return pg_fail(err, PG_ERR_DENIED,
                       "the stored sign-in is of unknown age and sign_in_max_age is set: "
                       "sign in again");
    if (now - ts->signed_in_at > cfg->sign_in_max_age)
        return pg_fail(err, PG_ERR_DENIED,
                       "the stored sign-in is %lld seconds old, past sign_in_max_age %ld: "
                       "sign in again",
                       (long long)(now - ts->signed_in_at), cfg->sign_in_max_age);
    return 0;
}

/*
 * The cached key set.  Its files are checked one by one, but whoever may
 * replace entries in cache_dir decides which keys the gate believes: the
 * directory itself must be the helper account's (or root's), reached
 * without a link, and closed to group and others.  An unsafe directory is
 * PG_ERR_PERM, which no key fetch can cure; anything else wrong with the
 * cache (missing, unreadable, stale) is the helper's to put right.
 */
static int load_keys(const struct pg_config *cfg, uid_t owner, struct pg_keycache_entry *e,
                     bool *unsafe_dir, struct pg_error *err)
{
    char what[PG_ERROR_MAX];
    int dir = -1;
    snprintf(what, sizeof(what), "cache_dir %s", cfg->cache_dir);
    int r = pg_open_trusted(cfg->cache_dir, true, owner, what, &dir, err);
    *unsafe_dir = r == PG_ERR_PERM;
    if (r < 0)
        return r;
    r = pg_keycache_load(dir, cfg->issuer, owner, e, err);
    close(dir);
    return r;
}

int pg_gate_verify(const struct pg_config *cfg, uid_t owner, const char *token, time_t now,
                   enum pg_gate_keys *keys, struct pg_verify_result *res, struct pg_error *err)
{
    struct pg_keycache_entry e = {0};
    struct pg_keyset *ks = NULL;
    int64_t t = now ? (int64_t)now : (int64_t)time(NULL);
    *res = (struct pg_verify_result){0};
    *keys = PG_GATE_KEYS_OK;
    bool unsafe_dir = false;
    int r = load_keys(cfg, owner, &e, &unsafe_dir, err);
    if (unsafe_dir)
        return r;
    /* Past its day (or absent) the set may not be used at all; within the
     * day, a set due for its hourly refresh still verifies: the helper
     * refreshes it on its next run. */
    if (pg_keycache_decide(r == 0 ? &e : NULL, t, false) == PG_KEYCACHE_FETCH) {
        *keys = PG_GATE_KEYS_FETCH;
        r = r < 0 ? r : pg_fail(err, PG_ERR_IO, "the cached key set is older than a day");
    }
    /* Only the token's key is built, and its state only for the token's
     * algorithm: a whole set of RSA keys, or one key's state for all six RSA
     * algorithms, costs far more than the one verification the fast path
     * needs. */
    char kid[256];
    unsigned alg = 0;
    bool one = r == 0 && pg_jws_peek(token, strlen(token), kid, sizeof(kid), &alg) == 0;
    if (r == 0)
        r = pg_keyset_parse_for(e.jwks, strlen(e.jwks), one ? kid : NULL, one ? alg : 0, &ks, err);
    if (r == 0) {
        r = pg_verify_token(cfg, ks, token, strlen(token),
                            &(struct pg_verify_opts){.now = (time_t)t}, res);
        if (r == PG_ERR_TOKEN && res->reason == PG_REASON_KEY && strstr(res->detail, "no key") &&
            pg_keycache_decide(&e, t, true) != PG_KEYCACHE_USE)
            *keys = PG_GATE_KEYS_UNKNOWN_KID;
    }
    pg_keyset_free(ks);
    pg_keycache_entry_clear(&e);
    return r;
}
