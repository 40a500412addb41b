/*
 * Test-only: drive the development identity provider's controls
 * (tests/fixtures/dev_idp.py) from a C test running beside it.
 */
#ifndef PG_IDPKIT_H
#define PG_IDPKIT_H

#include <stdio.h>

#include "http.h"

static inline struct pg_http_opts idp_http(const char *ca)
{
    return (struct pg_http_opts){.ca_file = ca, .timeout = 10, .max_bytes = 65536};
}

/* POST one control (approve, deny, config, fault, rotate); fails the test on error. */
static inline void idp_control(const char *control, const char *ca, const char *what,
                               const struct pg_form_field *f, size_t n)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/%s", control, what);
    struct pg_http_opts o = idp_http(ca);
    struct pg_http_response res = {0};
    struct pg_error err = {0};
    if (pg_http_post_form(&o, url, f, n, &res, &err) != 0 || res.status != 200)
        fail_msg("control %s: %s (HTTP %ld)", what, err.msg, res.status);
    pg_http_response_clear(&res);
}

#endif
