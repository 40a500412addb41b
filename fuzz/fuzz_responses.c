/*
 * The network-facing parsers of the helper: discovery documents, device
 * authorization responses and token responses.  The first input byte picks
 * the parser; nothing may crash or leak, and a success must hold what the
 * parser promises.
 */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "oidc.h"
#include "poolgate/poolgate.h"

#define ISS "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"

static void discovery(const char *s, size_t n)
{
    struct pg_discovery d = {0};
    if (pg_discovery_parse(s, n, ISS, &d, NULL) == 0) {
        if (strcmp(d.issuer, ISS) != 0 || strncmp(d.token_endpoint, "https://", 8) != 0 ||
            strncmp(d.jwks_uri, "https://", 8) != 0)
            abort();
        pg_discovery_clear(&d);
    }
}

static void device_auth(const char *s, size_t n)
{
    struct pg_device_auth a = {0};
    if (pg_device_auth_parse(s, n, &a, NULL) == 0) {
        if (!a.device_code || !a.user_code || strncmp(a.verification_uri, "https://", 8) != 0 ||
            a.expires_in < 1 || a.interval < 1)
            abort();
        pg_device_auth_clear(&a);
    }
}

static void token_response(const char *s, size_t n, long status)
{
    struct pg_tokenset ts = {0};
    enum pg_poll_outcome o;
    if (pg_token_response_parse(status, s, n, 1767225600, &o, &ts, NULL) == 0 &&
        (o == PG_POLL_TOKENS) != (ts.access_token != NULL))
        abort();
    pg_tokenset_clear(&ts);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0:
        discovery(s, n);
        break;
    case 1:
        device_auth(s, n);
        break;
    case 2:
        token_response(s, n, 200);
        break;
    default:
        token_response(s, n, 400);
        break;
    }
    return 0;
}
