/*
 * OAuth 2.0 device authorization grant (RFC 8628), as pure parsing and a
 * polling schedule driven by a clock the caller supplies, so that every
 * timing rule is testable without waiting.
 */
#ifndef PG_DEVICE_H
#define PG_DEVICE_H

#include <stdint.h>

#include "entra_errors.h"
#include "http.h"
#include "poolgate/poolgate.h"
#include "store.h"

#define PG_DEVICE_DEFAULT_INTERVAL 5 /* RFC 8628 §3.2 */
#define PG_DEVICE_SLOW_DOWN_STEP 5   /* RFC 8628 §3.5 */
#define PG_DEVICE_MAX_BACKOFF_MS 60000

/* The device authorization response (RFC 8628 §3.2). */
struct pg_device_auth {
    char *device_code; /* secret: cleared on release */
    char *user_code;
    char *verification_uri;          /* from verification_uri, or the older verification_url */
    char *verification_uri_complete; /* may be NULL (Entra never sends it) */
    char *message;                   /* may be NULL */
    long expires_in;                 /* seconds */
    long interval;                   /* seconds */
};

int pg_device_auth_parse(const char *json, size_t len, struct pg_device_auth *out,
                         struct pg_error *err);
void pg_device_auth_clear(struct pg_device_auth *a);

/* What one token request answered. */
enum pg_poll_outcome {
    PG_POLL_TOKENS,    /* success: the token set is filled in */
    PG_POLL_PENDING,   /* authorization_pending: ask again after the interval */
    PG_POLL_SLOW_DOWN, /* slow_down: the interval grows by 5 s for good */
    PG_POLL_DENIED,    /* access_denied or authorization_declined */
    PG_POLL_EXPIRED,   /* expired_token */
    PG_POLL_FAILED,    /* bad_verification_code, or any other error: stop */
};

/*
 * Classify a token endpoint response (RFC 6749 §5.1/§5.2, RFC 8628 §3.5).
 * Only the `error` code decides, never error_description.  A success needs
 * access_token and token_type; its tokens go to *ts (expires_at computed
 * from `now`).  An answer that is neither a success nor an OAuth error is
 * PG_ERR_PROTOCOL.  For PG_POLL_FAILED, err names the refusal (and its
 * AADSTS number) and err->code says what it means (entra_errors.h).
 */
int pg_token_response_parse(long status, const char *json, size_t len, int64_t now,
                            enum pg_poll_outcome *outcome, struct pg_tokenset *ts,
                            struct pg_error *err);

/* The same, for a response on `path`; an OAuth error is described in *idp
 * (when not NULL) whatever the outcome. */
int pg_token_response_describe(long status, const char *json, size_t len, int64_t now,
                               enum pg_idp_path path, enum pg_poll_outcome *outcome,
                               struct pg_tokenset *ts, struct pg_idp_error *idp,
                               struct pg_error *err);

/* The polling schedule, in CLOCK_MONOTONIC milliseconds. */
struct pg_poller {
    int64_t interval_ms; /* current interval, grown by slow_down */
    int64_t deadline_ms; /* min(expires_in, login_timeout) after the start */
    int64_t next_ms;     /* when the next poll may be sent */
    int64_t backoff_ms;  /* extra wait after connection timeouts, doubling */
};

void pg_poller_start(struct pg_poller *p, int64_t now_ms, long interval, long expires_in,
                     long login_timeout);

/* The wait before the next poll, or -1 when the deadline comes first. */
int64_t pg_poller_wait(const struct pg_poller *p, int64_t now_ms);

/* Record what a poll sent at now_ms brought: PG_POLL_PENDING, PG_POLL_SLOW_DOWN,
 * or (timeout = true) a connection timeout. */
void pg_poller_after(struct pg_poller *p, int64_t now_ms, enum pg_poll_outcome outcome,
                     bool timeout);

/* The clock and the waiting, supplied by the caller (tests make time pass at once). */
struct pg_clock {
    int64_t (*monotonic_ms)(void *ctx); /* CLOCK_MONOTONIC, for deadlines */
    int64_t (*wall)(void *ctx);         /* epoch seconds, for token expiry */
    void (*sleep_ms)(void *ctx, int64_t ms);
    void *ctx;
};

/* The real clock. */
extern const struct pg_clock pg_system_clock;

/* Shows the user code and URL; a negative return aborts the sign-in
 * (the conversation failed or the user gave up). */
typedef int (*pg_prompt_fn)(void *ctx, const struct pg_device_auth *auth);

struct pg_device_request {
    const char *device_authorization_endpoint;
    const char *token_endpoint;
    const char *client_id;
    const char *scope;
    long login_timeout;
    const char *resource; /* RFC 8707 resource indicator, or NULL */
};

/*
 * A whole device-code sign-in: request a code, show it, poll until the
 * tokens come, the user declines, or the deadline passes.  Returns 0 with
 * *out filled, PG_ERR_DENIED (declined, expired, timed out, aborted, or
 * refused: a Conditional Access block, ...), PG_ERR_CONFIG (a refusal that
 * names a configuration error: consent, unknown app, public client flows),
 * PG_ERR_NETWORK or PG_ERR_PROTOCOL (the provider unreachable or answering
 * wrongly, also when the deadline passed while the last poll failed), with
 * a message in err.  A refusal is described in http->refusal when set.
 * Time-outs and 5xx answers of the token endpoint are retried with RFC
 * 8628's back-off.
 */
int pg_device_login(const struct pg_http_opts *http, const struct pg_device_request *req,
                    const struct pg_clock *clock, pg_prompt_fn prompt, void *prompt_ctx,
                    struct pg_tokenset *out, struct pg_error *err);

/*
 * Redeem a refresh token (RFC 6749 §6), optionally for another scope or
 * resource (RFC 8707; NULL: none).  The
 * answer usually carries a rotated refresh token: the caller must store it
 * before using anything else from *out.  PG_ERR_DENIED when the provider
 * refuses the refresh token (invalid_grant: expired, revoked, replayed; a
 * Conditional Access block), PG_ERR_CONFIG when the refusal names a
 * configuration error; described in http->refusal when set (its
 * drop_refresh says whether the refresh token is useless from now on).
 */
int pg_refresh(const struct pg_http_opts *http, const char *token_endpoint, const char *client_id,
               const char *refresh_token, const char *scope, const char *resource,
               const struct pg_clock *clock, struct pg_tokenset *out, struct pg_error *err);

#endif
