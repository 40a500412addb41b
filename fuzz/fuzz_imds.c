/*
 * The managed identity side of unattended enrollment: the instance metadata
 * endpoint's answers, the imds_endpoint check and the scope-to-resource
 * mapping.  The first two input bytes are the HTTP status (a first byte
 * below 9 picks one the parser treats specially: 200, 400, 401, 403, 404,
 * 410, 429, 500, 503; any other pair is a number, (byte0 - 9) * 256 +
 * byte1), the rest is the body.  Nothing may crash or leak; the answer is a
 * token (0), a retry (1) or a PG_ERR_* whose message is one printable line,
 * and only a token leaves anything behind.  The body, as a string, is also
 * an endpoint URL and a scope: an endpoint accepted is plain http with no
 * query, fragment, user info, space or control character.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "poolgate/poolgate.h"
#include "fuzzkit.h"
#include "unattended.h"

static void answer(long status, const char *s, size_t n)
{
    char *token = NULL;
    struct pg_error err = {0};
    int r = pg_imds_parse(status, s, n, &token, &err);
    if (r == 0) {
        if (!token || !*token || strlen(token) > 16384)
            abort();
        pg_free_secret(token);
    } else if (token) {
        abort(); /* a retry or a refusal handed out a token */
    } else if (r < 0) {
        if (r < PG_ERR_DENIED || err.code != r)
            abort();
        fuzz_check_line(err.msg, sizeof(err.msg));
    } else if (r != 1) {
        abort();
    }
}

static void endpoint(const char *url)
{
    if (!pg_imds_endpoint_ok(url))
        return;
    if (strncmp(url, "http://", 7) != 0)
        abort();
    const char *path = strchr(url + 7, '/');
    if (!path || memchr(url + 7, '@', (size_t)(path - url - 7)))
        abort(); /* no path, or user info in the authority */
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
            abort();
}

static void scope(const char *s)
{
    char *out = NULL;
    if (pg_scope_resource(s, &out) != 0 || !out || strlen(out) > strlen(s))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *body = (const char *)data + 2;
    size_t n = size - 2;
    answer(fuzz_status(data[0], data[1]), body, n);
    char *s = malloc(n + 1);
    memcpy(s, body, n);
    s[n] = '\0';
    endpoint(s);
    scope(s);
    free(s);
    return 0;
}
