/* The CLI's side of the helper protocol (exchange.c). */
#ifndef PG_CLI_EXCHANGE_H
#define PG_CLI_EXCHANGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "entra_errors.h"

struct helper {
    const char *path; /* absolute path of poolgate-helper */
    uid_t uid;        /* the account it runs as (and that owns the store) */
    gid_t gid;
    bool qr; /* ask for a QR code of the sign-in address with the prompt */
};

/*
 * Send one request of `type` to a fresh helper, show PROMPT events on
 * stderr, and return the status of its DONE message (the CLI's exit codes
 * 0-3) with its message in msg and, when token is not NULL, the gate token
 * it returned (NULL if none; release with pg_free_secret); -1 when the
 * helper could not be run or broke the protocol.  When ref is not NULL it
 * is filled from DONE's `provider` member (cls empty when there is none).
 */
int helper_exchange(const struct helper *h, int type, json_t *request, char *msg, size_t msgsz,
                    char **token, struct pg_refusal *ref);

#endif
