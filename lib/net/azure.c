/*
 * The helper's calls to Azure for unattended enrollment, beside the
 * metadata endpoint (imds.c): the client credentials grant with a signed
 * certificate assertion (RFC 7523 §2.2), and Key Vault secrets.
 *
 * MUST:
 *   - Send an assertion or token only to the https address it was made for.
 *   - Name the provider's or Key Vault's refusal (with Entra's AADSTS
 *     number) so the admin knows what to change; never retry a refusal.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>

#include "internal.h"
#include "unattended.h"

/* Entra's error number ("AADSTS700027") from an error_description, if any. */
static void aadsts(const char *body, size_t len, char *out, size_t outsz)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *d = json_string_value(json_object_get(doc, "error_description"));
    const char *at = d ? strstr(d, "AADSTS") : NULL;
    size_t n = 0;
    if (at)
        for (n = 6; n < outsz - 1 && isdigit((unsigned char)at[n]); n++)
            ;
    if (n > 6)
        snprintf(out, outsz, " (%.*s)", (int)n, at);
    json_decref(doc);
}

int pg_client_credentials(const struct pg_http_opts *http, const char *token_endpoint,
                          const char *client_id, const char *assertion, const char *scope,
                          const struct pg_clock *clock, char **token, struct pg_error *err)
{
    const struct pg_form_field f[] = {
        {"grant_type", "client_credentials"},
        {"client_id", client_id},
        {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        {"client_assertion", assertion},
        {"scope", scope},
    };
    struct pg_http_response res = {0};
    struct pg_tokenset ts = {0};
    enum pg_poll_outcome outcome = PG_POLL_FAILED;
    char code[24] = "", why[PG_ERROR_MAX] = "refused";
    int r = pg_http_post_form(http, token_endpoint, f, PG_ARRAY_SIZE(f), &res, err);
    if (r == 0)
        r = pg_token_response_parse(res.status, res.body, res.len, clock->wall(clock->ctx),
                                    &outcome, &ts, err);
    if (r == 0 && outcome != PG_POLL_TOKENS) {
        aadsts(res.body, res.len, code, sizeof(code));
        if (err && err->msg[0])
            snprintf(why, sizeof(why), "%s", err->msg);
        r = pg_fail(err, PG_ERR_DENIED, "the provider refused the client credentials for %s: %s%s",
                    scope, why, code);
    }
    if (r == 0)
        *token = TAKE_PTR(ts.access_token);
    pg_tokenset_clear(&ts);
    pg_http_response_clear(&res);
    return r;
}

int pg_vault_get(const struct pg_http_opts *http, const char *uri, const char *token,
                 char **content_type, char **value, struct pg_error *err)
{
    char *url = NULL, *auth = NULL;
    struct pg_http_response res = {0};
    struct pg_http_opts o = *http;
    o.max_bytes = PG_VAULT_MAX_RESPONSE;
    int r = asprintf(&url, "%s?api-version=" PG_VAULT_API_VERSION, uri) < 0 ||
                    asprintf(&auth, "Authorization: Bearer %s", token) < 0
                ? PG_ERR_NOMEM
                : 0;
    if (r < 0) {
        free(url);
        return pg_fail(err, r, "out of memory");
    }
    const char *headers[] = {auth, "Accept: application/json", NULL};
    r = pg_http_get(&o, url, headers, &res, err);
    if (r == 0 && res.status != 200 && (!res.content_type || !strstr(res.content_type, "json")))
        r = pg_fail(err, PG_ERR_PROTOCOL, "Key Vault answered HTTP %ld", res.status);
    else if (r == 0)
        r = pg_vault_parse(res.status, res.body, res.len, content_type, value, err);
    pg_http_response_clear(&res);
    pg_free_secret(auth);
    free(url);
    return r;
}
