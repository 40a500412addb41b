/*
 * The privileged caller's part of unattended registration (enroll.c calls
 * it): the client assertions, signed here because only root reads
 * certificate_file, and the Key Vault certificates the helper fetched,
 * written here because only root may write where they belong.
 *
 * MUST:
 *   - Load the private key, sign, and free it within one call; send the
 *     helper nothing but the signed assertions.
 *   - Decode every certificate before writing any, and replace each file
 *     atomically: a failure leaves the earlier files as they were.
 *   - Give a file holding a private key to the agent account alone (0600);
 *     certificates alone are public (0644).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enroll.h"
#include "fileio.h"
#include "internal.h"
#include "unattended.h"

/* The audience of the assertions: the configured token endpoint, or the
 * one discovery names (the helper's KEYS answer says which). */
static int token_endpoint(const struct pg_enroll *e, int64_t deadline, char **out,
                          struct pg_error *err)
{
    if (e->cfg->token_endpoint)
        return (*out = strdup(e->cfg->token_endpoint))
                   ? 0
                   : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    struct pg_helper h = e->helper;
    json_t *done = NULL, *req = json_pack("{s:s}", "config", e->config_path);
    int r = req ? pg_helper_call(&h, PG_MSG_KEYS, req, deadline, &done, err)
                : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    const char *t = json_string_value(json_object_get(done, "token_endpoint"));
    if (r == 0 && (!t || !pg_https_url(t)))
        r = pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: no token endpoint");
    if (r == 0 && !(*out = strdup(t)))
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    json_decref(req);
    json_decref(done);
    return r;
}

/* One assertion per token the helper will ask for. */
static int sign_all(const struct pg_config *cfg, const char *aud, json_t *assertions,
                    struct pg_error *err)
{
    const char *purposes[] = {"gate", "devops", cfg->keyvault_certificates.count ? "vault" : NULL};
    unsigned alg = cfg->assertion_algorithm == PG_ASSERTION_RS256 ? PG_ALG_RS256 : PG_ALG_PS256;
    struct pg_client_cert *cert = NULL;
    time_t now = time(NULL);
    int r = pg_client_cert_load(cfg->certificate_file, geteuid(), now, &cert, err);
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(purposes) && purposes[i]; i++) {
        char *a = NULL;
        if ((r = pg_client_assertion(cert, alg, cfg->client_id, aud, now, &a, err)) == 0 &&
            json_object_set_new(assertions, purposes[i], json_string(a)) < 0)
            r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
        free(a);
    }
    pg_client_cert_free(cert);
    return r;
}

static int open_cert_dir(const char *path, int *fd, struct pg_error *err);

int pg_unattended_request(const struct pg_enroll *e, int64_t deadline, json_t *req,
                          struct pg_error *err)
{
    int dir = -1;
    if (e->cfg->credential == PG_CRED_DEVICE)
        return pg_fail(err, PG_ERR_CONFIG,
                       "--unattended needs credential = client_certificate or managed_identity "
                       "in %s",
                       e->cfg->path);
    /* The certificates' directory is checked before the pool is touched:
     * the files are written only after Azure DevOps accepted the agent. */
    int r = e->cfg->keyvault_certificates.count
                ? open_cert_dir(e->cfg->keyvault_certificate_dir, &dir, err)
                : 0;
    if (r < 0)
        return r;
    if (dir >= 0)
        close(dir);
    if (json_object_set_new(req, "unattended", json_true()) < 0)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (e->cfg->credential != PG_CRED_CLIENT_CERTIFICATE)
        return 0;
    char *aud = NULL;
    json_t *assertions = json_object();
    r = assertions ? token_endpoint(e, deadline, &aud, err)
                   : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (r == 0)
        r = sign_all(e->cfg, aud, assertions, err);
    if (r == 0 && json_object_set(req, "assertions", assertions) < 0)
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    free(aud);
    json_decref(assertions);
    return r;
}

/* keyvault_certificate_dir: a real directory that only its owner (root,
 * or the caller in tests) may change. */
static int open_cert_dir(const char *path, int *fd, struct pg_error *err)
{
    struct stat st;
    *fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0)
        return pg_fail(err, PG_ERR_CONFIG, "keyvault_certificate_dir %s: %s", path,
                       strerror(errno));
    if (fstat(*fd, &st) < 0 || (st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
        close(*fd);
        return pg_fail(err, PG_ERR_PERM,
                       "keyvault_certificate_dir %s must be owned by root and not writable by "
                       "group or others",
                       path);
    }
    return 0;
}

struct fetched {
    char name[132]; /* <secret name>.pem */
    struct pg_vault_cert cert;
};

static int decode_all(const struct pg_config *cfg, json_t *list, struct fetched *f, size_t n,
                      struct pg_error *err)
{
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(list, i);
        const char *got = json_string_value(json_object_get(c, "name"));
        const char *type = json_string_value(json_object_get(c, "content_type"));
        const char *value = json_string_value(json_object_get(c, "value"));
        char name[128];
        /* File names come from our own configuration, never from the helper. */
        if (pg_vault_secret_name(cfg->keyvault_certificates.items[i], name, sizeof(name), err) < 0)
            return err ? err->code : PG_ERR_CONFIG;
        if (!got || strcmp(got, name) != 0 || !type || !value)
            return pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: malformed certificate");
        snprintf(f[i].name, sizeof(f[i].name), "%s.pem", name);
        int r = pg_vault_decode(type, value, &f[i].cert, err);
        pg_json_clear_string(json_object_get(c, "value")); /* the key, as Key Vault sent it */
        if (r < 0) {
            char why[PG_ERROR_MAX];
            snprintf(why, sizeof(why), "%s", err ? err->msg : "");
            return pg_fail(err, r, "Key Vault certificate '%s': %s", name, why);
        }
    }
    return 0;
}

/* One file: the certificate chain, and the key after it when there is one. */
static int write_one(int dir, const struct fetched *f, uid_t uid, gid_t gid, struct pg_error *err)
{
    const struct pg_vault_cert *c = &f->cert;
    if (!c->cert_pem)
        return pg_fail(err, PG_ERR_INTERNAL, "certificate '%s' was not decoded", f->name);
    size_t clen = strlen(c->cert_pem), klen = c->key_pem ? strlen(c->key_pem) : 0;
    char *data = malloc(clen + klen + 1);
    if (!data)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    memcpy(data, c->cert_pem, clen);
    memcpy(data + clen, c->key_pem ? c->key_pem : "", klen + 1);
    int r = c->key_pem ? pg_file_replace_as(dir, f->name, data, clen + klen, 0600, uid, gid,
                                            "certificate file", err)
                       : pg_file_replace_as(dir, f->name, data, clen, 0644, (uid_t)-1, (gid_t)-1,
                                            "certificate file", err);
    pg_memzero(data, clen + klen);
    free(data);
    return r;
}

int pg_vault_write(const struct pg_config *cfg, json_t *done, uid_t uid, gid_t gid,
                   struct pg_error *err)
{
    json_t *list = json_object_get(done, "certificates");
    size_t n = json_array_size(list);
    if (!cfg->keyvault_certificates.count)
        return 0;
    if (n != cfg->keyvault_certificates.count)
        return pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: certificates missing");
    struct fetched f[PG_VAULT_MAX_CERTIFICATES] = {0};
    int dir = -1;
    int r = open_cert_dir(cfg->keyvault_certificate_dir, &dir, err);
    if (r == 0)
        r = decode_all(cfg, list, f, n, err);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = write_one(dir, &f[i], uid, gid, err);
    for (size_t i = 0; i < n; i++)
        pg_vault_cert_clear(&f[i].cert);
    if (dir >= 0)
        close(dir);
    return r;
}

const struct pg_enroll_credential pg_unattended_credential = {pg_unattended_request,
                                                              pg_vault_write};
