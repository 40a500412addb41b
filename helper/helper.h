/* What the helper's request handlers share (helper.c, enroll.c). */
#ifndef PG_HELPER_H
#define PG_HELPER_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "entra_errors.h"
#include "http.h"
#include "oidc.h"
#include "store.h"

#define LOCK_TIMEOUT_MS 10000

struct request {
    struct pg_config *cfg;
    json_t *payload; /* the request as received */
    uid_t uid;
    bool unknown_kid;
    bool qr;        /* draw a QR code of the sign-in address into the PROMPT */
    char *token;    /* the gate token of a stored set, for DONE */
    json_t *result; /* more members for DONE, on success */
    struct pg_http_opts http;
    struct pg_error err;
    struct pg_idp_error refusal; /* the provider's last refusal (http.refusal points here) */
};

/* GET url and require a 200 JSON answer of at most max bytes. */
int fetch_json(struct request *q, const char *url, size_t max, const char *what,
               struct pg_http_response *res);

/* The provider's endpoints: from the config, else discovery (cached). */
int endpoints(struct request *q, struct pg_discovery *d);

/* Merge the members of `o` (taken; NULL: out of memory) into DONE's result. */
int add_result(struct request *q, json_t *o);

/* Fetch the key set when the cache rules say so; keep the last good set on failure. */
int update_keys(struct request *q, const struct pg_discovery *d);

/* The Azure DevOps token of an unattended registration (unattended.c):
 * the gate token first, verified as an app-only token, and Key Vault's
 * certificates into q->result. */
int unattended_devops_token(struct request *q, const struct pg_discovery *d, char **token);

/* The caller's store directory, locked against concurrent refreshes. */
int open_store_locked(struct request *q, bool create, int *dir, int *lock);

/* Check a set's gate token under the whole policy with the cached keys;
 * *unknown_kid tells whether it failed only for want of its signing key. */
int verify_gate(struct request *q, const struct pg_tokenset *ts, bool *unknown_kid);

/* The provider refused this refresh token for good: take it out of the
 * store (locked by the caller), unless a sign-in has replaced it since. */
void drop_refused_refresh(int dir, const char *refused);

/* DONE's `provider` member for a refusal (provider.c); NULL when there is none. */
json_t *refusal_json(const struct request *q);

int do_check(struct request *q);
int do_register(struct request *q);
int do_unregister(struct request *q);

#endif
