/* The CLI's side of the helper protocol (exchange.c). */
#ifndef PG_CLI_EXCHANGE_H
#define PG_CLI_EXCHANGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "entra_errors.h"

struct helper {
    const char *path; /* absolute path of poolgate-helper */
    uid_t uid;        /* the account it runs as (and that owns the store) */
    gid_t gid;
    bool qr; /* ask for a QR code of the sign-in address with the prompt */
};

/* What a DONE returned beside its status and message. */
struct helper_done {
    char *token;           /* the gate token (NULL if none; release with pg_free_secret) */
    int64_t signed_in_at;  /* when the sign-in behind the set was made (0: not said) */
    char *ticket;          /* LOGIN: the sign-in's enrollment ticket (pg_free_secret) */
    struct pg_refusal ref; /* the provider's refusal, when DONE carried one */
};

/*
 * Send one request of `type` to a fresh helper, show PROMPT events on
 * stderr, and return the status of its DONE message (the CLI's exit codes
 * 0-3) with its message in msg and, when out is not NULL, what it
 * returned (its refusal: DONE's `provider` member, cls empty when there is
 * none); -1 when the helper could not be run or broke the protocol.
 */
int helper_exchange(const struct helper *h, int type, json_t *request, char *msg, size_t msgsz,
                    struct helper_done *out);

#endif
