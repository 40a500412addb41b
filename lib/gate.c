/*
 * The gate check without network (see gate.h).
 *
 * MUST: open every file without following links and expect the helper
 * account as its owner; return success only from pg_verify_token's success;
 * clear every copy of a token.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "gate.h"
#include "internal.h"
#include "jws.h"
#include "keys.h"
#include "oidc.h"
#include "store.h"

int pg_gate_stored(const struct pg_config *cfg, uid_t uid, uid_t owner, char **token,
                   bool *has_refresh, struct pg_error *err)
{
    struct pg_tokenset ts = {0};
    int dir = -1;
    int r = pg_store_open(cfg->state_dir, uid, false, owner, &dir, err);
    if (r == 0) {
        r = pg_store_read(dir, owner, &ts, err);
        close(dir);
    }
    if (r < 0)
        return r;
    bool access = cfg->validate == PG_VALIDATE_ACCESS_TOKEN;
    char **gate = access ? &ts.access_token : &ts.id_token;
    if (!*gate)
        r = pg_fail(err, PG_ERR_IO, "the stored set has no %s",
                    access ? "access_token" : "id_token");
    else {
        *has_refresh = ts.refresh_token != NULL;
        *token = TAKE_PTR(*gate);
    }
    pg_tokenset_clear(&ts);
    return r;
}

static int load_keys(const struct pg_config *cfg, uid_t owner, struct pg_keycache_entry *e,
                     struct pg_error *err)
{
    int dir = open(cfg->cache_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return pg_fail(err, PG_ERR_IO, "%s: %s", cfg->cache_dir, strerror(errno));
    int r = pg_keycache_load(dir, cfg->issuer, owner, e, err);
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
    int r = load_keys(cfg, owner, &e, err);
    /* Past its day (or absent) the set may not be used at all; within the
     * day, a set due for its hourly refresh still verifies: the helper
     * refreshes it on its next run. */
    if (pg_keycache_decide(r == 0 ? &e : NULL, t, false) == PG_KEYCACHE_FETCH) {
        *keys = PG_GATE_KEYS_FETCH;
        r = r < 0 ? r : pg_fail(err, PG_ERR_IO, "the cached key set is older than a day");
    }
    /* Only the token's key is built: a whole set of RSA keys costs far more
     * than the one verification the fast path needs. */
    char kid[256];
    bool one = r == 0 && pg_jws_peek_kid(token, strlen(token), kid, sizeof(kid)) == 0;
    if (r == 0)
        r = pg_keyset_parse_for(e.jwks, strlen(e.jwks), one ? kid : NULL, &ks, err);
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
