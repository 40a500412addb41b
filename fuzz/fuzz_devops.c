/*
 * The parsers of Azure DevOps answers, whose results go into the agent's
 * files.  The first input byte picks the parser (even: an agent, odd: a
 * {"count","value"} list).  Nothing may crash or leak; a success must hold
 * what the parser promises (positive id, https URLs, no control characters),
 * and a failure must leave nothing behind and say why.
 */
#include <stdlib.h>
#include <string.h>

#include "devops.h"
#include "poolgate/poolgate.h"

static void check_text(const char *s, size_t max)
{
    if (!s || strlen(s) > max)
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

static void check_https(const char *s)
{
    check_text(s, 1024);
    if (strncmp(s, "https://", 8) != 0 || s[8] == '\0')
        abort();
}

static void agent(const char *s, size_t n)
{
    struct pg_agent a;
    struct pg_error err = {0};
    if (pg_devops_parse_agent(s, n, &a, &err) == 0) {
        if (a.id <= 0)
            abort();
        check_text(a.name, 256);
        check_text(a.client_id, 64);
        check_https(a.authorization_url);
        if (a.server_url)
            check_https(a.server_url);
    } else if (err.msg[0] == '\0' || a.id != 0 || a.name || a.client_id || a.authorization_url ||
               a.server_url) {
        abort();
    }
    pg_agent_clear(&a);
}

static void first_id(const char *s, size_t n)
{
    int64_t id = -1;
    struct pg_error err = {0};
    if (pg_devops_parse_first_id(s, n, &id, &err) == 0) {
        if (id < 0)
            abort();
    } else if (err.msg[0] == '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    if (data[0] % 2 == 0)
        agent(s, size - 1);
    else
        first_id(s, size - 1);
    return 0;
}
