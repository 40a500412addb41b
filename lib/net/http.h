/*
 * The HTTP client every network exchange of poolgate goes through (the
 * helper's discovery, key fetch, device flow and Azure DevOps calls).
 *
 * The caller owns libcurl's process-global state: curl_global_init() must
 * have run (the helper does it at start; the PAM module never does network
 * I/O itself).
 */
#ifndef PG_HTTP_H
#define PG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "poolgate/poolgate.h"

#define PG_HTTP_MAX_TOKEN_RESPONSE (64 * 1024)
#define PG_HTTP_MAX_KEYSET (256 * 1024)

struct pg_idp_error;

struct pg_http_opts {
    const char *ca_file;       /* PEM bundle to trust; NULL: the system store */
    const char *proxy;         /* proxy URL; NULL: none (environment variables are ignored) */
    long timeout;              /* seconds for the whole exchange (1..300) */
    int64_t deadline_ms;       /* CLOCK_MONOTONIC deadline in ms, 0: none; bounds timeout */
    size_t max_bytes;          /* response body cap */
    bool allow_plain_http;     /* only for the link-local instance metadata endpoint */
    struct pg_http_conn *conn; /* keeps connections between requests; NULL: one each */
    /* Where the device flow and the refresh grant (login.c) describe an
     * identity provider's refusal; NULL: not wanted.  Not used by this file. */
    struct pg_idp_error *refusal;
};

/*
 * Connections kept open between the requests of one run (with their TLS
 * sessions and DNS answers): the polls of a sign-in then cost one TLS
 * handshake in all rather than one each.  Every request still sets all of
 * its own options and limits, and one cut short (timeout, size cap) leaves
 * nothing for the next: libcurl closes its connection, or over HTTP/2
 * resets its stream.  Owned by the caller, for one thread.
 */
struct pg_http_conn;

int pg_http_conn_new(struct pg_http_conn **out); /* 0 or PG_ERR_NOMEM */
void pg_http_conn_free(struct pg_http_conn *c);  /* closes them; NULL is fine */

struct pg_http_response {
    long status;
    char *content_type; /* lower-case media type without parameters, or NULL */
    char *body;         /* NUL-terminated; may hold secrets: cleared on release */
    size_t len;
    int64_t date; /* the Date header, epoch seconds; 0 when absent or unreadable */
};

struct pg_form_field {
    const char *name;
    const char *value;
};

/* application/x-www-form-urlencoded (WHATWG URL §5): bytes outside
 * [A-Za-z0-9*-._] are percent-encoded and space becomes '+'. */
int pg_form_encode(const struct pg_form_field *fields, size_t n, char **out);

/* A URI component (RFC 3986): everything but unreserved characters is
 * percent-encoded, space as %20. */
int pg_url_escape(const char *s, char **out);

/* One GET or POST.  Any HTTP status is a success at this layer: the caller
 * judges it.  Failures: PG_ERR_NETWORK (connect, TLS, timeout, redirect,
 * refused scheme), PG_ERR_PROTOCOL (response over max_bytes), PG_ERR_NOMEM. */
int pg_http_get(const struct pg_http_opts *o, const char *url, const char *const *headers,
                struct pg_http_response *res, struct pg_error *err);
int pg_http_post_form(const struct pg_http_opts *o, const char *url,
                      const struct pg_form_field *fields, size_t n, struct pg_http_response *res,
                      struct pg_error *err);

/* Any method; `body` (NUL-terminated, may be NULL) is sent as is: its
 * Content-Type belongs in `headers`. */
int pg_http_request(const struct pg_http_opts *o, const char *method, const char *url,
                    const char *const *headers, const char *body, struct pg_http_response *res,
                    struct pg_error *err);

/* Require status `want` and a JSON body (application/json or
 * application/...+json); else PG_ERR_PROTOCOL. */
int pg_http_expect_json(const struct pg_http_response *res, long want, const char *what,
                        struct pg_error *err);

void pg_http_response_clear(struct pg_http_response *res);

#endif
