/*
 * The gate check that needs no network: the stored token set of a user and
 * the cached key set of the issuer, read as the helper account left them,
 * and the gate token verified under the whole policy.  Used by the PAM
 * module's fast path and by `poolgate status`; both ask the helper only
 * when this says the key cache must be brought up to date.
 */
#ifndef PG_GATE_H
#define PG_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "poolgate/poolgate.h"

/* A stored gate token this close to the end of its validity (clock_skew
 * included), in seconds, is refreshed rather than accepted: the PAM
 * module's account phase re-verifies it moments after auth and must not
 * find it expired, and the helper takes a set another refresh stored only
 * when it is further from its end than this. */
#define PG_GATE_EXPIRY_MARGIN_S 5

/* What the key cache needs before a verification can be trusted. */
enum pg_gate_keys {
    PG_GATE_KEYS_OK = 0,      /* the cached set was used */
    PG_GATE_KEYS_FETCH,       /* no set, or one older than a day: ask the helper */
    PG_GATE_KEYS_UNKNOWN_KID, /* the token names a key the set lacks, and a fetch is allowed */
};

/* The gate token (id_token or access_token, per `validate`) of the set
 * stored for uid, as a copy to release with pg_free_secret(); *has_refresh
 * tells whether a refresh token is stored too, and *ticket_current (when
 * not NULL) whether `ticket` is the set's enrollment ticket, still fresh
 * (pg_store_ticket_fresh): a read, no change, for registration's check;
 * only the helper consumes a ticket, under the lock.  PG_ERR_IO when none,
 * and when the sign-in behind the set is older than sign_in_max_age. */
int pg_gate_stored(const struct pg_config *cfg, uid_t uid, uid_t owner, char **token,
                   bool *has_refresh, const char *ticket, bool *ticket_current,
                   struct pg_error *err);

struct pg_tokenset;

/* PG_ERR_DENIED, with what to do, when sign_in_max_age is set and the
 * device sign-in behind `ts` is older than that at `now` (or of unknown
 * age: a set stored before poolgate recorded it).  Neither the gate nor
 * the helper's refresh accepts such a set: only a new sign-in renews it. */
int pg_sign_in_fresh(const struct pg_config *cfg, const struct pg_tokenset *ts, int64_t now,
                     struct pg_error *err);

/*
 * Verify `token` with the cached key set (files owned by `owner`) at `now`
 * (0: the current time).  Returns pg_verify_token's result; *keys says
 * whether the helper should fetch keys first (then the result is
 * PG_ERR_IO, or the PG_ERR_TOKEN of the unknown kid).  A cache_dir that is
 * not the helper account's or root's, is a link, or is writable by group
 * or others is PG_ERR_PERM, with no fetch asked for.
 */
int pg_gate_verify(const struct pg_config *cfg, uid_t owner, const char *token, time_t now,
                   enum pg_gate_keys *keys, struct pg_verify_result *res, struct pg_error *err);

#endif
