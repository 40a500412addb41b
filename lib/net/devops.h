/*
 * The Azure DevOps REST calls that enroll an agent into a pool, as the
 * official Azure Pipelines agent makes them: find the pool, find the agent,
 * add or replace it with a fresh public key, delete it.
 *
 * Runs in the helper only (it needs libcurl's global state and the Azure
 * DevOps token, which never leaves the helper).  Lists come wrapped as
 * {"count", "value"}; transient answers (429, 5xx) are retried with
 * back-off inside the caller's deadline.
 */
#ifndef PG_DEVOPS_H
#define PG_DEVOPS_H

#include <jansson.h>
#include <stdint.h>

#include "device.h"
#include "http.h"

#define PG_DEVOPS_API_VERSION "7.1"
#define PG_DEVOPS_MAX_RESPONSE (1024 * 1024)
/* The Azure DevOps resource: the audience of the tokens it accepts. */
#define PG_DEVOPS_RESOURCE "499b84ac-1321-427f-aa17-267ca6975798"

struct pg_devops {
    struct pg_http_opts http;     /* deadline_ms bounds the retries too */
    const char *org_url;          /* https://dev.azure.com/contoso, with or without '/' */
    const char *token;            /* the Azure DevOps access token (a secret) */
    const struct pg_clock *clock; /* for the back-off between retries */
    const char *pool;             /* the pool's name, for messages */
};

/* What registration tells the service about the agent. */
struct pg_agent_info {
    const char *name;
    const char *version;
    const char *os_description;
    const char *os_architecture; /* X64, Arm64, ... as .NET names it */
    const char *computer_name;
    const char *home_directory; /* agent_dir */
    const char *modulus;        /* standard base64 of the public key's big-endian bytes */
    const char *exponent;
};

/* What the service answered for an added or replaced agent. */
struct pg_agent {
    int64_t id;
    char *name;
    char *client_id;
    char *authorization_url;
    char *server_url; /* properties.ServerUrl, when the service sent it */
};

void pg_agent_clear(struct pg_agent *a);

/* The pool's id.  PG_ERR_CONFIG "pool 'X' not found in organization Y". */
int pg_devops_find_pool(const struct pg_devops *d, const char *pool, int64_t *pool_id,
                        struct pg_error *err);

/* The id of the agent called `name` in the pool, or 0 when there is none. */
int pg_devops_find_agent(const struct pg_devops *d, int64_t pool_id, const char *name,
                         int64_t *agent_id, struct pg_error *err);

/* Add the agent (agent_id 0: POST) or replace the one with that id (PUT). */
int pg_devops_put_agent(const struct pg_devops *d, int64_t pool_id, int64_t agent_id,
                        const struct pg_agent_info *info, struct pg_agent *out,
                        struct pg_error *err);

/* Delete the agent; 1 when the service no longer knew it. */
int pg_devops_delete_agent(const struct pg_devops *d, int64_t pool_id, int64_t agent_id,
                           struct pg_error *err);

/* The JSON body of an add (agent_id 0) or replace: new reference, or NULL. */
json_t *pg_devops_agent_body(const struct pg_agent_info *info, int64_t agent_id);

/* Parse an answer: an agent, or a {"count","value"} list's first item's
 * id (0 when the list is empty).  PG_ERR_PROTOCOL when malformed. */
int pg_devops_parse_agent(const char *body, size_t len, struct pg_agent *out, struct pg_error *err);
int pg_devops_parse_first_id(const char *body, size_t len, int64_t *id, struct pg_error *err);

#endif
