/*
 * Token sources for unattended enrollment, where no operator signs in:
 * a service principal's certificate (RFC 7523 client assertions, signed by
 * root, the only reader of the key), the host's managed identity (the
 * instance metadata endpoint), and certificates kept in Key Vault.
 */
#ifndef PG_UNATTENDED_H
#define PG_UNATTENDED_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "device.h"
#include "http.h"
#include "poolgate/poolgate.h"

/* ---- client certificate ------------------------------------------------- */

#define PG_CERT_FILE_MAX (64 * 1024)
#define PG_ASSERTION_LIFETIME 300 /* seconds: Entra accepts up to ten minutes */

struct pg_client_cert;

/*
 * Load certificate_file: a PEM certificate and its RSA private key (2048
 * bits or more), in any order, in a regular file owned by `owner` with no
 * group or other permissions.  The key must belong to the certificate, and
 * the certificate must be within its validity at `now`.  The file's bytes
 * are cleared once parsed.
 */
int pg_client_cert_load(const char *path, uid_t owner, time_t now, struct pg_client_cert **out,
                        struct pg_error *err);
/* Frees the key (OpenSSL clears its private numbers). */
void pg_client_cert_free(struct pg_client_cert *c);

/* base64url of the SHA-256 (x5t#S256) or SHA-1 (x5t) of the certificate's DER. */
int pg_client_cert_thumbprint(const struct pg_client_cert *c, bool sha256, char out[64]);

/*
 * A client assertion for the token endpoint `audience`: `alg` PG_ALG_PS256
 * (header x5t#S256) or PG_ALG_RS256 (header x5t); iss = sub = client_id, a
 * random jti, nbf = iat = now, exp = now + PG_ASSERTION_LIFETIME.
 */
int pg_client_assertion(const struct pg_client_cert *c, unsigned alg, const char *client_id,
                        const char *audience, time_t now, char **out, struct pg_error *err);

/*
 * The client credentials grant with an assertion (RFC 7523 §2.2) for one
 * `scope` (a "<resource>/.default").  The answer's access token goes to
 * *token; a refusal is PG_ERR_DENIED naming the OAuth error (and Entra's
 * AADSTS number when the description carries one).
 */
int pg_client_credentials(const struct pg_http_opts *http, const char *token_endpoint,
                          const char *client_id, const char *assertion, const char *scope,
                          const struct pg_clock *clock, char **token, struct pg_error *err);

/* ---- managed identity ---------------------------------------------------- */

#define PG_IMDS_ENDPOINT "http://169.254.169.254/metadata/identity/oauth2/token"
#define PG_IMDS_API_VERSION "2018-02-01"
#define PG_IMDS_GONE_MS 70000 /* 410: the endpoint is being updated; retry this long */

struct pg_imds_request {
    const char *endpoint;  /* NULL: PG_IMDS_ENDPOINT */
    const char *resource;  /* a resource, not a scope */
    const char *client_id; /* at most one of these three selects a user-assigned identity */
    const char *object_id;
    const char *resource_id;
};

/* The request URL, with every parameter escaped. */
int pg_imds_url(const struct pg_imds_request *q, char **out);

/* A token from the metadata endpoint: 404, 429 and 5xx retried with
 * back-off, 410 for up to PG_IMDS_GONE_MS, all within http->deadline_ms. */
int pg_imds_token(const struct pg_http_opts *http, const struct pg_imds_request *q,
                  const struct pg_clock *clock, char **token, struct pg_error *err);

/* One metadata answer judged (numbers arrive as strings); 1: transient. */
int pg_imds_parse(long status, const char *body, size_t len, char **token, struct pg_error *err);

/* The resource of a "<resource>/.default" scope (IMDS wants the resource). */
int pg_scope_resource(const char *scope, char **out);

/* ---- Key Vault ------------------------------------------------------------ */

#define PG_VAULT_RESOURCE "https://vault.azure.net"
#define PG_VAULT_API_VERSION "7.4"
#define PG_VAULT_MAX_RESPONSE (64 * 1024)
/* All certificates' secrets together: they reach the caller in one helper
 * message (PG_PROTO_MAX) with the agent's settings. */
#define PG_VAULT_MAX_TOTAL (48 * 1024)

/* GET the secret with the bearer token; *value and *content_type on 200,
 * Key Vault's own error (403, 404, ...) explained otherwise. */
int pg_vault_get(const struct pg_http_opts *http, const char *uri, const char *token,
                 char **content_type, char **value, struct pg_error *err);

/* One secret answer judged: value and contentType of a 200. */
int pg_vault_parse(long status, const char *body, size_t len, char **content_type, char **value,
                   struct pg_error *err);

/* A certificate secret as files: the certificate chain as PEM, and the
 * private key as PKCS#8 PEM when the secret holds one (else NULL). */
struct pg_vault_cert {
    char *cert_pem;
    char *key_pem; /* secret: cleared on release */
};

int pg_vault_decode(const char *content_type, const char *value, struct pg_vault_cert *out,
                    struct pg_error *err);
void pg_vault_cert_clear(struct pg_vault_cert *c);

/* ---- the privileged caller (credential.c) ------------------------------- */

#include "enroll.h"

/* The credential hooks pg_enroll calls for `register --unattended`. */
extern const struct pg_enroll_credential pg_unattended_credential;

/* Mark the registration request unattended and, for client_certificate,
 * add the signed assertions (gate, devops, and vault when certificates are
 * configured) for the token endpoint. */
int pg_unattended_request(const struct pg_enroll *e, int64_t deadline, json_t *req,
                          struct pg_error *err);

/* Write DONE's Key Vault certificates into keyvault_certificate_dir, a key
 * only ever in a 0600 file of the agent account (uid, gid). */
int pg_vault_write(const struct pg_config *cfg, json_t *done, uid_t uid, gid_t gid,
                   struct pg_error *err);

#endif
