/*
 * The helper's half of agent registration: the Azure DevOps token and the
 * REST calls.  The caller (root: the CLI under sudo, or the PAM module) has
 * checked the gate and made the agent's key pair; it sends the public half
 * and writes the agent's files from what DONE returns.
 *
 * MUST:
 *   - Use the stored gate token's set only while its gate token still meets
 *     the policy: the caller's check is repeated here, before any call.
 *   - Interactive: change the pool only for the caller that holds the set's
 *     enrollment ticket, and use the ticket up before any call.
 *   - Get the Azure DevOps token from the refresh token for devops_scope,
 *     storing the rotated refresh token first; the Azure DevOps token itself
 *     is never stored, returned or logged.
 */
#include <time.h>
#include <unistd.h>

#include "devops.h"
#include "gate.h"
#include "device.h"
#include "helper.h"
#include "internal.h"

#define MAX_FIELD 256

/*
 * The caller hands in the enrollment ticket of the sign-in a person
 * completed for this change (in its PAM transaction or its command): the
 * pool is changed only on the stored set that carries it.  The ticket is
 * used up here, under the lock and before Azure DevOps is asked anything,
 * so that no other caller (a later login with the cached token, a replay)
 * can use it again.  A later sign-in replaced it with its own.  One
 * older than PG_TICKET_LIFETIME_S is used up too, and refused.
 */
static int use_ticket(struct request *q, int dir, struct pg_tokenset *set)
{
    const char *given = json_string_value(json_object_get(q->payload, "ticket"));
    if (!given || !given[0])
        return pg_fail(&q->err, PG_ERR_DENIED,
                       "no sign-in ticket came with the request: a device-code sign-in is "
                       "needed for this change");
    if (!pg_store_ticket_matches(set, given))
        return pg_fail(&q->err, PG_ERR_DENIED,
                       "the sign-in ticket is not the stored sign-in's (used already, replaced "
                       "by a later sign-in, or never issued): sign in again");
    bool fresh = pg_store_ticket_fresh(set, (int64_t)time(NULL));
    pg_free_secret(TAKE_PTR(set->enroll_ticket));
    int r = pg_store_write(dir, set, &q->err);
    if (r == 0 && !fresh)
        r = pg_fail(&q->err, PG_ERR_DENIED,
                    "the sign-in made for this change is more than %d minutes old: sign in "
                    "again",
                    PG_TICKET_LIFETIME_S / 60);
    return r;
}

/* The Azure DevOps access token, from the stored set (rotation kept). */
static int devops_token(struct request *q, char **token)
{
    struct pg_discovery d = {0};
    struct pg_tokenset set = {0}, fresh = {0};
    int dir = -1, lock = -1;
    bool unknown_kid = false;
    char *scope = NULL;
    int r = endpoints(q, &d);
    if (r == 0)
        r = open_store_locked(q, false, &dir, &lock);
    if (r < 0)
        goto out;
    if ((r = pg_store_read(dir, geteuid(), &set, &q->err)) == 0 && !set.refresh_token)
        r = pg_fail(&q->err, PG_ERR_DENIED, "no refresh token is stored; sign in again");
    if (r == 0)
        r = pg_sign_in_fresh(q->cfg, &set, (int64_t)time(NULL), &q->err);
    if (r == 0 && (r = verify_gate(q, &set, &unknown_kid)) < 0 && r != PG_ERR_TOKEN && !unknown_kid)
        r = pg_fail(&q->err, r, "the stored sign-in cannot be checked: %s", q->err.msg);
    if (r == 0)
        r = use_ticket(q, dir, &set);
    if (r == 0 && asprintf(&scope, "%s offline_access", q->cfg->devops_scope) < 0)
        r = pg_fail(&q->err, PG_ERR_NOMEM, "out of memory"), scope = NULL;
    if (r == 0)
        r = pg_refresh(&q->http, d.token_endpoint, q->cfg->client_id, set.refresh_token, scope,
                       NULL, &pg_system_clock, &fresh, &q->err);
    if (r == 0 && !fresh.access_token)
        r = pg_fail(&q->err, PG_ERR_PROTOCOL, "the provider sent no token for Azure DevOps");
    /* The set keeps its gate token; only the rotated refresh token replaces the old. */
    if (r == 0 && fresh.refresh_token) {
        pg_free_secret(set.refresh_token);
        set.refresh_token = TAKE_PTR(fresh.refresh_token);
        r = pg_store_write(dir, &set, &q->err);
    }
    if (r == 0)
        *token = TAKE_PTR(fresh.access_token);
    if (r < 0 && q->refusal.drop_refresh) /* expired, revoked: keep nothing unusable */
        drop_refused_refresh(dir, set.refresh_token);
    pg_store_unlock(lock);
    close(dir);
out:
    free(scope);
    pg_tokenset_clear(&set);
    pg_tokenset_clear(&fresh);
    pg_discovery_clear(&d);
    return r;
}

/* The Azure DevOps token from the configured unattended credential. */
static int unattended_token(struct request *q, char **token)
{
    struct pg_discovery d = {0};
    int r = endpoints(q, &d);
    if (r == 0)
        r = unattended_devops_token(q, &d, token);
    pg_discovery_clear(&d);
    return r;
}

/* A plain-text string member of the request, or NULL. */
static const char *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!s || !*s || json_string_length(v) != strlen(s) || strlen(s) > MAX_FIELD * 4)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return NULL;
    return s;
}

/* The client for the configured organization, with the registration's deadline. */
static int devops_open(struct request *q, struct pg_devops *d, char **token)
{
    if (!q->cfg->organization_url)
        return pg_fail(&q->err, PG_ERR_CONFIG, "organization_url is not set in the configuration");
    /* Everything from here, the token included, ends by login_timeout, or
     * earlier when the caller will stop waiting sooner. */
    int64_t limit = pg_monotonic_ms() + (int64_t)q->cfg->login_timeout * 1000;
    json_t *asked = json_object_get(q->payload, "deadline_ms");
    if (json_is_integer(asked) && json_integer_value(asked) > 0 &&
        json_integer_value(asked) < limit)
        limit = json_integer_value(asked);
    q->http.deadline_ms = limit;
    int r = json_is_true(json_object_get(q->payload, "unattended")) ? unattended_token(q, token)
                                                                    : devops_token(q, token);
    *d = (struct pg_devops){.http = q->http,
                            .org_url = q->cfg->organization_url,
                            .token = *token,
                            .clock = &pg_system_clock,
                            .pool = q->cfg->pool};
    return r;
}

/* The client, the pool's id and the id of the agent called `name` (0: none). */
static int find_agent(struct request *q, const char *name, struct pg_devops *d, char **token,
                      int64_t *pool_id, int64_t *agent_id)
{
    int r = devops_open(q, d, token);
    if (r == 0)
        r = pg_devops_find_pool(d, q->cfg->pool, pool_id, &q->err);
    if (r == 0)
        r = pg_devops_find_agent(d, *pool_id, name, agent_id, &q->err);
    return r;
}

/* The agent for DONE, beside what the token step put there already. */
static int agent_result(struct request *q, int64_t pool_id, const struct pg_agent *a, bool replaced)
{
    json_t *o = json_pack("{s:{s:I, s:s, s:I, s:s, s:s, s:s, s:s?}, s:b}", "agent", "id",
                          (json_int_t)a->id, "name", a->name, "pool_id", (json_int_t)pool_id,
                          "pool", q->cfg->pool, "client_id", a->client_id, "authorization_url",
                          a->authorization_url, "server_url", a->server_url, "replaced", replaced);
    return add_result(q, o);
}

int do_register(struct request *q)
{
    json_t *agent = json_object_get(q->payload, "agent"),
           *key = json_object_get(q->payload, "public_key");
    bool replace = json_is_true(json_object_get(q->payload, "replace"));
    struct pg_agent_info info = {field(agent, "name"),           field(agent, "version"),
                                 field(agent, "os_description"), field(agent, "os_architecture"),
                                 field(agent, "computer_name"),  field(agent, "home_directory"),
                                 field(key, "modulus"),          field(key, "exponent")};
    if (!info.name || !info.version || !info.os_description || !info.os_architecture ||
        !info.computer_name || !info.home_directory || !info.modulus || !info.exponent ||
        strlen(info.name) > MAX_FIELD)
        return pg_fail(&q->err, PG_ERR_ARG, "malformed registration request");
    struct pg_devops d;
    struct pg_agent out = {0};
    char *token = NULL;
    int64_t pool_id = 0, agent_id = 0;
    int r = find_agent(q, info.name, &d, &token, &pool_id, &agent_id);
    if (r == 0 && agent_id && !replace)
        r = pg_fail(&q->err, PG_ERR_DENIED,
                    "an agent named '%s' already exists in pool '%s'; use --replace to replace it",
                    info.name, q->cfg->pool);
    if (r == 0)
        r = pg_devops_put_agent(&d, pool_id, agent_id, &info, &out, &q->err);
    if (r == 0)
        r = agent_result(q, pool_id, &out, agent_id != 0);
    pg_agent_clear(&out);
    pg_free_secret(token);
    return r;
}

int do_unregister(struct request *q)
{
    const char *name = field(json_object_get(q->payload, "agent"), "name");
    if (!name || strlen(name) > MAX_FIELD)
        return pg_fail(&q->err, PG_ERR_ARG, "malformed unregistration request");
    /* Unattended credentials only ever add this host's agent. */
    if (json_object_get(q->payload, "unattended"))
        return pg_fail(&q->err, PG_ERR_ARG, "unregistration is never unattended");
    struct pg_devops d;
    char *token = NULL;
    int64_t pool_id = 0, agent_id = 0;
    /* By name in the configured pool: the ids in the agent's own .agent are
     * the agent account's to change, so they are not trusted. */
    int r = find_agent(q, name, &d, &token, &pool_id, &agent_id);
    if (r == 0 && agent_id)
        r = pg_devops_delete_agent(&d, pool_id, agent_id, &q->err);
    if (r >= 0 &&
        !(q->result = json_pack("{s:{s:I, s:s, s:I, s:s}, s:b}", "agent", "id",
                                (json_int_t)agent_id, "name", name, "pool_id", (json_int_t)pool_id,
                                "pool", q->cfg->pool, "was_gone", r == 1 || !agent_id)))
        r = pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    pg_free_secret(token);
    return r < 0 ? r : 0;
}
