/*
 * What an identity provider's refusal means, and what to do about it.
 *
 * Entra ID answers a refused device authorization, poll or refresh with an
 * OAuth error (RFC 6749 §5.2) that carries more than `error`: an
 * `error_codes` array of AADSTS numbers, an `error_description` that starts
 * "AADSTSnnnnn: ", a `correlation_id` and a `trace_id`.  The AADSTS number
 * tells a Conditional Access block from a revoked session or a broken app
 * registration; `error` alone cannot.  This file turns such an answer into
 * a class with a one-line reason for the operator, the administrator's fix,
 * the library error code (hence the exit code) and what to do with the
 * stored set.  Any OIDC provider that sends only `error` gets the classes
 * RFC 6749 and RFC 8628 define.
 */
#ifndef PG_ENTRA_ERRORS_H
#define PG_ENTRA_ERRORS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "poolgate/poolgate.h"

#define PG_IDP_SUMMARY_MAX 160

enum pg_idp_class {
    PG_IDP_NONE = 0,           /* no refusal recorded */
    PG_IDP_PENDING,            /* authorization_pending, slow_down: not a refusal */
    PG_IDP_CONDITIONAL_ACCESS, /* a Conditional Access policy blocks the sign-in */
    PG_IDP_REFRESH_INVALID,    /* the refresh token is expired, revoked or needs a new sign-in */
    PG_IDP_CONFIG,             /* the app registration or the tenant is set up wrong */
    PG_IDP_DECLINED,           /* the person said no */
    PG_IDP_EXPIRED,            /* the device code expired */
    PG_IDP_BAD_CODE,           /* bad_verification_code */
    PG_IDP_UNKNOWN,            /* any other refusal */
};

/* Where a refusal came from: the wording of the reason depends on it. */
enum pg_idp_path { PG_IDP_DEVICE_CODE, PG_IDP_POLL, PG_IDP_REFRESH };

/*
 * One refusal, described.  Every string is filtered (pg_printable) and
 * bounded; `reason` and `fix` point into a static table.
 */
struct pg_idp_error {
    enum pg_idp_class cls;
    int code;                         /* PG_ERR_*: what the refusal means for the caller */
    bool drop_refresh;                /* the stored refresh token is useless: delete it */
    long aadsts;                      /* the AADSTS number, 0 when none was sent */
    char error[48];                   /* the OAuth `error` code */
    char summary[PG_IDP_SUMMARY_MAX]; /* the first line of error_description, less its AADSTS prefix
                                       */
    char correlation[40];             /* correlation_id (a GUID), or empty: for support tickets */
    const char *reason;               /* one line for the operator */
    const char *fix;                  /* what the administrator can do; NULL when nothing */
};

/*
 * Describe the OAuth error object `doc` (a JSON object holding `error`)
 * answered on `path`.  Returns false when `doc` has no string `error`.
 * Decides on `error`, `error_codes` and, only when `error_codes` is absent,
 * the AADSTS prefix of error_description; malformed optional members are
 * ignored, never trusted.
 */
bool pg_idp_error_parse(json_t *doc, enum pg_idp_path path, struct pg_idp_error *out);

/* The class as a word for logs and DONE ("conditional_access", ...). */
const char *pg_idp_class_name(enum pg_idp_class cls);

/* "<error>[ AADSTSn][: <first line of the description>]", for unknown refusals. */
void pg_idp_error_detail(const struct pg_idp_error *e, char *out, size_t outsz);

/*
 * The one-line message for the operator: the reason, the AADSTS number or
 * the error code, and for unknown refusals the description's first line.
 * Records it and e->code in err; returns e->code.
 */
int pg_idp_error_fail(const struct pg_idp_error *e, struct pg_error *err);

/*
 * A refusal as the helper's DONE tells it (`provider`: docs/helper-protocol.md),
 * read back by the CLI and the module: every member filtered again, empty
 * when absent; cls, code and correlation are unquoted fields of audit lines,
 * so anything but letters, digits and '_', '-', '.' in them becomes '?'.
 */
struct pg_refusal {
    char cls[32];         /* conditional_access, refresh_invalid, config_error, ... */
    char code[24];        /* AADSTSnnnnn, or the OAuth error code */
    char correlation[40]; /* for a support ticket */
    char fix[512];        /* what the administrator can do */
};

void pg_refusal_from_done(json_t *done, struct pg_refusal *out);

#endif
