/*
 * The helper's half of unattended registration: app-only tokens from the
 * configured credential, with no operator and nothing stored.
 *
 *   client_certificate: the caller (root, the only reader of the key) sent
 *       one signed client assertion per token; they are redeemed here.
 *   managed_identity:   the host's identity, from the metadata endpoint.
 *
 * MUST:
 *   - Verify the gate token (signature, issuer, audience, tenant, roles)
 *     and require an app-only token before any other token is asked for.
 *   - Keep the Azure DevOps and Key Vault tokens inside the helper.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "helper.h"
#include "internal.h"
#include "unattended.h"

/* The assertion the caller signed for `purpose` (gate, devops, vault). */
static const char *assertion(struct request *q, const char *purpose)
{
    json_t *a = json_object_get(json_object_get(q->payload, "assertions"), purpose);
    const char *s = json_string_value(a);
    return s && json_string_length(a) == strlen(s) && strlen(s) < 16384 ? s : NULL;
}

/* An app-only access token for `scope` (a "<resource>/.default"). */
static int app_token(struct request *q, const struct pg_discovery *d, const char *purpose,
                     const char *scope, char **token)
{
    const struct pg_config *c = q->cfg;
    if (c->credential == PG_CRED_CLIENT_CERTIFICATE) {
        const char *a = assertion(q, purpose);
        if (!a)
            return pg_fail(&q->err, PG_ERR_ARG, "malformed request: no %s assertion", purpose);
        return pg_client_credentials(&q->http, d->token_endpoint, c->client_id, a, scope,
                                     &pg_system_clock, token, &q->err);
    }
    char *resource = NULL;
    if (pg_scope_resource(scope, &resource) < 0)
        return pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    struct pg_imds_request r = {c->imds_endpoint, resource, c->managed_identity_client_id,
                                c->managed_identity_object_id, c->managed_identity_resource_id};
    int ret = pg_imds_token(&q->http, &r, &pg_system_clock, token, &q->err);
    free(resource);
    return ret;
}

/* The gate token under the whole policy, as an access token. */
static int verify_once(struct request *q, const char *token, struct pg_verify_result *res,
                       enum pg_gate_keys *keys)
{
    /* An Entra app token carries no scp; judging it as an access token
     * lets the policy see that even without the optional idtyp claim. */
    struct pg_config policy = *q->cfg;
    policy.validate = PG_VALIDATE_ACCESS_TOKEN;
    /* The one path that takes app-only tokens (and only those, below). */
    policy.allow_app_tokens = true;
    pg_verify_result_clear(res);
    return pg_gate_verify(&policy, geteuid(), token, 0, keys, res, &q->err);
}

static int identity_result(struct request *q, const struct pg_identity *id)
{
    return add_result(q, json_pack("{s:{s:s?, s:s?, s:s?}}", "identity", "oid", id->oid, "tid",
                                   id->tid, "name", id->name));
}

static int verify_app_gate(struct request *q, const struct pg_discovery *d, const char *token)
{
    struct pg_verify_result res = {0};
    enum pg_gate_keys keys = PG_GATE_KEYS_OK;
    int r = update_keys(q, d);
    if (r == 0)
        r = verify_once(q, token, &res, &keys);
    /* Signed with a key the cache lacks: the provider rotated; fetch once more. */
    if (keys == PG_GATE_KEYS_UNKNOWN_KID) {
        q->unknown_kid = true;
        memset(&q->err, 0, sizeof(q->err));
        if ((r = update_keys(q, d)) == 0)
            r = verify_once(q, token, &res, &keys);
    }
    if (r == PG_ERR_TOKEN)
        pg_fail(&q->err, r, "the gate token does not pass: %s: %s", pg_reason_name(res.reason),
                res.detail);
    else if (r == 0 && !res.id.app_only)
        r = pg_fail(&q->err, PG_ERR_TOKEN,
                    "the gate token is not an app-only token (it carries scp or idtyp user)");
    if (r == 0)
        r = identity_result(q, &res.id);
    pg_verify_result_clear(&res);
    return r;
}

/* Each configured Key Vault certificate, as DONE's "certificates". */
static int vault_certificates(struct request *q, const struct pg_discovery *d)
{
    const struct pg_strlist *uris = &q->cfg->keyvault_certificates;
    size_t total = 0;
    char *token = NULL;
    json_t *list = json_array();
    int r = list ? app_token(q, d, "vault", PG_VAULT_RESOURCE "/.default", &token)
                 : pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < uris->count; i++) {
        char name[128], *type = NULL, *value = NULL;
        if ((r = pg_vault_secret_name(uris->items[i], name, sizeof(name), &q->err)) == 0 &&
            (r = pg_vault_get(&q->http, uris->items[i], token, &type, &value, &q->err)) < 0) {
            char why[PG_ERROR_MAX];
            snprintf(why, sizeof(why), "%s", q->err.msg);
            pg_fail(&q->err, r, "Key Vault certificate '%s': %s", name, why);
        }
        /* They travel in one DONE message beside the agent. */
        if (r == 0 && (total += strlen(value)) > PG_VAULT_MAX_TOTAL)
            r = pg_fail(&q->err, PG_ERR_CONFIG,
                        "the Key Vault certificates hold more than %d bytes in all; poolgate "
                        "takes at most that many",
                        PG_VAULT_MAX_TOTAL);
        if (r == 0 &&
            json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name", name, "content_type",
                                                  type, "value", value)) < 0)
            r = pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
        free(type);
        pg_free_secret(value);
    }
    if (r == 0)
        r = add_result(q, json_pack("{s:O}", "certificates", list));
    pg_free_secret(token);
    json_decref(list);
    return r;
}

int unattended_devops_token(struct request *q, const struct pg_discovery *d, char **token)
{
    const struct pg_config *c = q->cfg;
    char *gate = NULL;
    if (c->credential == PG_CRED_DEVICE)
        return pg_fail(&q->err, PG_ERR_CONFIG,
                       "unattended registration needs credential = client_certificate or "
                       "managed_identity in the configuration");
    int r = app_token(q, d, "gate", c->gate_scope, &gate);
    if (r == 0)
        r = verify_app_gate(q, d, gate);
    pg_free_secret(gate);
    if (r == 0 && c->keyvault_certificates.count)
        r = vault_certificates(q, d);
    if (r == 0)
        r = app_token(q, d, "devops", c->devops_scope, token);
    return r;
}
