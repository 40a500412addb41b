/*
 * Unattended token sources against the doubles dev_idp.py starts: client
 * assertions (checked by the provider and by tests/fixtures/assertion_check.py,
 * a verifier written apart from poolgate), the instance metadata endpoint
 * with a fake clock (retries, 410, deadline, no identity), Key Vault
 * secrets (PEM, PKCS#12, 403, 404, disabled), and the address checks.
 *
 *   dev_idp.py -- test_unattended ASSERTION_CHECK_PY MKCERT_PY
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device.h"
#include "http.h"
#include "internal.h"
#include "poolgate/poolgate.h"
#include "testkit.h"
#include "unattended.h"

#define CLIENT "7f3b2a10-5c4d-4e8f-9a1b-2c3d4e5f6a70"
#define SP_OID "a1b2c3d4-0000-4f00-8e00-0000000000a1"
#define MI_OID "b2c3d4e5-0000-4f00-8e00-0000000000b2"
#define UA_CLIENT "c3d4e5f6-0000-4f00-8e00-0000000000c3"
#define UA_OID "d4e5f6a7-0000-4f00-8e00-0000000000d4"
#define UA_RES                                                                                     \
    "/subscriptions/8c1a9a52-7d0e-4a7b-9f0d-3e1c2b4a5d6f/resourceGroups/pg/providers/"             \
    "Microsoft.ManagedIdentity/userAssignedIdentities/build"

static const char *issuer, *ca, *idp_ctl, *imds_url, *imds_ctl, *vault_url, *vault_ctl;
static const char *checker, *mkcert;
static char dir[] = "/tmp/pg-unattended-XXXXXX";
static char cert_a[128], cert_b[128], p12_a[128], p12_openssl[128], p12_slow[128];
static char token_endpoint[512];

/* ---- a fake clock: sleeps advance time without waiting -------------------- */

struct fake {
    int64_t now_ms;
    int64_t slept[32];
    int sleeps;
};

static int64_t fake_mono(void *ctx)
{
    return ((struct fake *)ctx)->now_ms;
}

static int64_t fake_wall(void *ctx)
{
    (void)ctx;
    return time(NULL);
}

static void fake_sleep(void *ctx, int64_t ms)
{
    struct fake *f = ctx;
    if (f->sleeps < 32)
        f->slept[f->sleeps] = ms;
    f->sleeps++;
    f->now_ms += ms;
}

static struct pg_clock fake_clock(struct fake *f)
{
    *f = (struct fake){.now_ms = pg_monotonic_ms()};
    return (struct pg_clock){fake_mono, fake_wall, fake_sleep, f};
}

/* ---- the doubles' controls -------------------------------------------------- */

static struct pg_http_opts http(void)
{
    return (struct pg_http_opts){.ca_file = ca, .timeout = 10, .max_bytes = 1 << 20};
}

static void ctl(const char *base, const char *what, const struct pg_form_field *f, size_t n)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/%s", base, what);
    struct pg_http_opts o = http();
    o.allow_plain_http = strncmp(base, "http://", 7) == 0;
    struct pg_http_response res = {0};
    struct pg_error err = {0};
    if (pg_http_post_form(&o, url, f, n, &res, &err) != 0 || res.status != 200)
        fail_msg("control %s: %s (HTTP %ld)", what, err.msg, res.status);
    pg_http_response_clear(&res);
}

static json_t *imds_log(void)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/log", imds_ctl);
    struct pg_http_opts o = http();
    o.allow_plain_http = true;
    struct pg_http_response res = {0};
    struct pg_error err = {0};
    assert_int_equal(pg_http_get(&o, url, NULL, &res, &err), 0);
    json_t *log = json_loadb(res.body, res.len, 0, NULL);
    pg_http_response_clear(&res);
    assert_non_null(log);
    return log;
}

static char *slurp(const char *path)
{
    char *buf = tk_slurp(path);
    assert_non_null(buf);
    return buf;
}

/* Register CLIENT with the certificate in `pem_file`. */
static void register_client(const char *pem_file, const char *roles)
{
    char *pem = slurp(pem_file);
    char *end = strstr(pem, "-----END CERTIFICATE-----");
    assert_non_null(end);
    end[sizeof("-----END CERTIFICATE-----") - 1] = '\0'; /* the certificate only */
    const struct pg_form_field f[] = {
        {"client_id", CLIENT}, {"certificate", pem}, {"oid", SP_OID}, {"roles", roles}};
    ctl(idp_ctl, "client", f, 4);
    free(pem);
}

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert_a, sizeof(cert_a), "%s/a.pem", dir);
    snprintf(cert_b, sizeof(cert_b), "%s/b.pem", dir);
    snprintf(p12_a, sizeof(p12_a), "%s/a.p12", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s 'poolgate a' %s >/dev/null", mkcert, cert_a,
             p12_a);
    if (run(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s 'poolgate b' >/dev/null", mkcert, cert_b);
    if (run(cmd) != 0)
        return -1;
    /* PKCS#12 as OpenSSL writes it with an empty password (encrypted safes,
     * a shrouded key), and one that asks for a million iterations. */
    snprintf(p12_openssl, sizeof(p12_openssl), "%s/openssl.p12", dir);
    snprintf(p12_slow, sizeof(p12_slow), "%s/slow.p12", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl pkcs12 -export -in %s -passout pass: -iter 2048 | base64 -w0 > %s && "
             "openssl pkcs12 -export -in %s -passout pass: -iter 1000000 -nomac | base64 -w0 > %s",
             cert_a, p12_openssl, cert_a, p12_slow);
    if (run(cmd) != 0)
        return -1;
    /* Entra's token endpoint beside its v2.0 issuer. */
    snprintf(token_endpoint, sizeof(token_endpoint), "%.*s/oauth2/v2.0/token",
             (int)(strlen(issuer) - strlen("/v2.0")), issuer);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return run(cmd);
}

/* ---- client certificate ----------------------------------------------------- */

static struct pg_client_cert *load(const char *path)
{
    struct pg_client_cert *c = NULL;
    struct pg_error err = {0};
    if (pg_client_cert_load(path, getuid(), time(NULL), &c, &err) != 0)
        fail_msg("load %s: %s", path, err.msg);
    return c;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(pg_write_all(fd, text, strlen(text)), 0);
    close(fd);
}

static void expect_load_error(const char *path, uid_t owner, int code, const char *phrase)
{
    struct pg_client_cert *c = NULL;
    struct pg_error err = {0};
    assert_int_equal(pg_client_cert_load(path, owner, time(NULL), &c, &err), code);
    assert_null(c);
    if (!strstr(err.msg, phrase))
        fail_msg("'%s' lacks '%s'", err.msg, phrase);
}

static void test_cert_load(void **state)
{
    (void)state;
    pg_client_cert_free(load(cert_a));
    char *a = slurp(cert_a), *b = slurp(cert_b), path[160], text[16384];
    char *a_key = strstr(a, "-----BEGIN PRIVATE KEY-----");
    char *b_key = strstr(b, "-----BEGIN PRIVATE KEY-----");
    assert_non_null(a_key);
    assert_non_null(b_key);
    snprintf(path, sizeof(path), "%s/mixed.pem", dir);

    /* The key first, then the certificate: accepted. */
    snprintf(text, sizeof(text), "%s%.*s", a_key, (int)(a_key - a), a);
    write_file(path, text, 0600);
    pg_client_cert_free(load(path));
    /* Another certificate's key. */
    snprintf(text, sizeof(text), "%.*s%s", (int)(a_key - a), a, b_key);
    write_file(path, text, 0600);
    expect_load_error(path, getuid(), PG_ERR_CONFIG, "does not belong to the certificate");
    /* No key at all. */
    snprintf(text, sizeof(text), "%.*s", (int)(a_key - a), a);
    write_file(path, text, 0600);
    expect_load_error(path, getuid(), PG_ERR_CONFIG, "no unencrypted PEM private key");
    /* Readable by others, or someone else's. */
    write_file(path, a, 0644);
    expect_load_error(path, getuid(), PG_ERR_PERM, "mode 0600");
    write_file(path, a, 0600);
    expect_load_error(path, getuid() + 1, PG_ERR_PERM, "unsafe type, owner or mode");
    unlink(path);
    expect_load_error(path, getuid(), PG_ERR_IO, "No such file");
    free(a);
    free(b);
}

/* assertion_check.py's verdict on an assertion; its JSON output on success. */
static json_t *independent_check(const char *assertion, const char *cert_file)
{
    char jwt[160], cmd[1024];
    snprintf(jwt, sizeof(jwt), "%s/assertion.jwt", dir);
    write_file(jwt, assertion, 0600);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %s '%s' %s", checker, jwt, cert_file,
             token_endpoint, CLIENT);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(jwt);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? json_loads(out, 0, NULL) : NULL;
}

static char *assertion_at(const struct pg_client_cert *c, unsigned alg, time_t now)
{
    char *a = NULL;
    struct pg_error err = {0};
    if (pg_client_assertion(c, alg, CLIENT, token_endpoint, now, &a, &err) != 0)
        fail_msg("assertion: %s", err.msg);
    return a;
}

static void test_assertion_format(void **state)
{
    (void)state;
    struct pg_client_cert *c = load(cert_a);
    char tp256[64], tp1[64];
    assert_int_equal(pg_client_cert_thumbprint(c, true, tp256), 0);
    assert_int_equal(pg_client_cert_thumbprint(c, false, tp1), 0);
    assert_int_equal(strlen(tp256), 43);
    assert_int_equal(strlen(tp1), 27);
    const struct {
        unsigned alg;
        const char *name, *x5t, *value, *absent;
    } cases[] = {{PG_ALG_PS256, "PS256", "x5t#S256", tp256, "x5t"},
                 {PG_ALG_RS256, "RS256", "x5t", tp1, "x5t#S256"}};
    for (size_t i = 0; i < PG_ARRAY_SIZE(cases); i++) {
        time_t now = time(NULL);
        char *a = assertion_at(c, cases[i].alg, now), *again = assertion_at(c, cases[i].alg, now);
        json_t *v = independent_check(a, cert_a);
        if (!v)
            fail_msg("assertion_check.py refused the %s assertion", cases[i].name);
        json_t *h = json_object_get(v, "header"), *cl = json_object_get(v, "claims");
        assert_string_equal(json_string_value(json_object_get(h, "alg")), cases[i].name);
        assert_string_equal(json_string_value(json_object_get(h, cases[i].x5t)), cases[i].value);
        assert_null(json_object_get(h, cases[i].absent));
        assert_string_equal(json_string_value(json_object_get(cl, "iss")), CLIENT);
        assert_string_equal(json_string_value(json_object_get(cl, "sub")), CLIENT);
        assert_string_equal(json_string_value(json_object_get(cl, "aud")), token_endpoint);
        json_int_t exp = json_integer_value(json_object_get(cl, "exp"));
        assert_int_equal(exp - json_integer_value(json_object_get(cl, "nbf")),
                         PG_ASSERTION_LIFETIME);
        assert_int_equal(json_integer_value(json_object_get(cl, "iat")), (json_int_t)now);
        /* Each assertion its own jti, even within one second. */
        assert_string_not_equal(a, again);
        json_decref(v);
        /* Signed by another certificate's key: the verifier refuses it. */
        assert_null(independent_check(a, cert_b));
        free(a);
        free(again);
    }
    pg_client_cert_free(c);
}

static int redeem(const char *assertion, char **token, struct pg_error *err)
{
    struct pg_http_opts o = http();
    return pg_client_credentials(&o, token_endpoint, CLIENT, assertion,
                                 "api://poolgate-enroll/.default", &pg_system_clock, token, err);
}

static void expect_refused(const char *assertion, const char *aadsts)
{
    char *token = NULL;
    struct pg_error err = {0};
    assert_int_equal(redeem(assertion, &token, &err), PG_ERR_DENIED);
    assert_null(token);
    if (!strstr(err.msg, aadsts))
        fail_msg("'%s' lacks %s", err.msg, aadsts);
}

static void test_client_credentials(void **state)
{
    (void)state;
    struct pg_client_cert *a = load(cert_a), *b = load(cert_b);
    char *good = assertion_at(a, PG_ALG_PS256, time(NULL));
    expect_refused(good, "AADSTS700016"); /* the tenant does not know the client yet */
    register_client(cert_a, "AgentPool.Enroll");
    for (unsigned alg = PG_ALG_RS256; alg; alg = alg == PG_ALG_RS256 ? PG_ALG_PS256 : 0) {
        char *fresh = assertion_at(a, alg, time(NULL)), *token = NULL;
        struct pg_error err = {0};
        if (redeem(fresh, &token, &err) != 0)
            fail_msg("client credentials: %s", err.msg);
        assert_true(strncmp(token, "eyJ", 3) == 0);
        pg_free_secret(token);
        expect_refused(fresh, "AADSTS700029"); /* a jti is good once */
        free(fresh);
    }
    char *old = assertion_at(a, PG_ALG_PS256, time(NULL) - 3600);
    expect_refused(old, "AADSTS700024");
    char *other = assertion_at(b, PG_ALG_PS256, time(NULL));
    expect_refused(other, "AADSTS700027");
    free(good);
    free(old);
    free(other);
    pg_client_cert_free(a);
    pg_client_cert_free(b);
}

/* ---- managed identity ------------------------------------------------------- */

static int imds_token(const char *resource, const char *client_id, const char *object_id,
                      struct pg_clock *clock, int64_t deadline, char **token, struct pg_error *err)
{
    struct pg_http_opts o = http();
    o.ca_file = ca;
    o.deadline_ms = deadline;
    struct pg_imds_request q = {imds_url, resource, client_id, object_id, NULL};
    return pg_imds_token(&o, &q, clock, token, err);
}

static void imds_fault(const char *kind, const char *count)
{
    const struct pg_form_field f[] = {{"kind", kind}, {"count", count}};
    ctl(imds_ctl, "fault", f, 2);
}

static void imds_reset(void)
{
    ctl(imds_ctl, "reset", NULL, 0);
}

static void test_imds(void **state)
{
    (void)state;
    const struct pg_form_field ids[] = {{"system", MI_OID},
                                        {"user", UA_CLIENT ":" UA_OID ":" UA_RES}};
    ctl(imds_ctl, "identities", ids, 2);
    imds_reset();
    struct fake f;
    struct pg_clock clock = fake_clock(&f);
    struct pg_error err = {0};
    char *token = NULL;

    /* The system identity; a resource, Metadata: true, the API version. */
    assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err), 0);
    assert_true(strncmp(token, "eyJ", 3) == 0);
    pg_free_secret(TAKE_PTR(token));
    json_t *log = imds_log(), *e = json_array_get(log, 0);
    assert_int_equal(json_array_size(log), 1);
    assert_string_equal(json_string_value(json_object_get(e, "metadata")), "true");
    json_t *q = json_object_get(e, "query");
    assert_string_equal(json_string_value(json_object_get(q, "resource")), "api://poolgate-enroll");
    assert_string_equal(json_string_value(json_object_get(q, "api-version")), PG_IMDS_API_VERSION);
    json_decref(log);
    assert_int_equal(f.sleeps, 0);

    /* A user-assigned identity by client id; a selector that matches nothing. */
    assert_int_equal(
        imds_token("https://vault.azure.net", UA_CLIENT, NULL, &clock, 0, &token, &err), 0);
    pg_free_secret(TAKE_PTR(token));
    assert_int_equal(imds_token("https://vault.azure.net", NULL, SP_OID, &clock, 0, &token, &err),
                     PG_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "no managed identity"));
    assert_null(token);

    /* 404, 429, 500 and 503 are retried, with growing pauses. */
    static const char *const transient[] = {"404", "429", "500", "503"};
    for (size_t i = 0; i < PG_ARRAY_SIZE(transient); i++) {
        clock = fake_clock(&f);
        imds_fault(transient[i], "2");
        assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err),
                         0);
        pg_free_secret(TAKE_PTR(token));
        assert_int_equal(f.sleeps, 2);
        assert_int_equal(f.slept[0], 1000);
        assert_int_equal(f.slept[1], 2000);
    }
    /* ... six tries in all. */
    clock = fake_clock(&f);
    imds_fault("500", "20");
    assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err),
                     PG_ERR_NETWORK);
    assert_int_equal(f.sleeps, 5);
    imds_reset();
    /* ... never past the caller's deadline. */
    clock = fake_clock(&f);
    int64_t deadline = f.now_ms + 5000;
    imds_fault("429", "20");
    assert_int_equal(
        imds_token("api://poolgate-enroll", NULL, NULL, &clock, deadline, &token, &err),
        PG_ERR_NETWORK);
    assert_true(f.now_ms < deadline);
    assert_int_equal(f.sleeps, 2);
    imds_reset();
    /* 410 (the endpoint is being updated): retried for up to 70 s. */
    clock = fake_clock(&f);
    int64_t start = f.now_ms;
    imds_fault("410", "3");
    assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err), 0);
    pg_free_secret(TAKE_PTR(token));
    clock = fake_clock(&f);
    start = f.now_ms;
    imds_fault("410", "100");
    assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err),
                     PG_ERR_NETWORK);
    assert_true(f.now_ms - start <= PG_IMDS_GONE_MS);
    assert_true(f.now_ms - start > PG_IMDS_GONE_MS - 8000);
    assert_true(f.sleeps > 6);
    imds_reset();
    /* Not JSON: not a token, not retried. */
    clock = fake_clock(&f);
    imds_fault("garbage", "1");
    assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err),
                     PG_ERR_PROTOCOL);
    assert_int_equal(f.sleeps, 0);
    imds_reset();
    /* No identity on the host: a setup error that says so. */
    const struct pg_form_field none[] = {{"system", ""}};
    ctl(imds_ctl, "identities", none, 1);
    assert_int_equal(imds_token("api://poolgate-enroll", NULL, NULL, &clock, 0, &token, &err),
                     PG_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "Identity not found"));
    /* Nobody listening: "is this an Azure VM?" */
    struct pg_http_opts o = http();
    struct pg_imds_request gone = {"http://127.0.0.1:9/metadata/identity/oauth2/token",
                                   "api://poolgate-enroll", NULL, NULL, NULL};
    assert_int_equal(pg_imds_token(&o, &gone, &clock, &token, &err), PG_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "is this an Azure VM?"));
    ctl(imds_ctl, "identities", ids, 2);
}

static void test_imds_offline(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "http://127.0.0.1:8080/metadata/identity/oauth2/token",
        "http://[::1]:80/x",
    };
    static const char *const bad[] = {
        "https://169.254.169.254/metadata/identity/oauth2/token",
        "http://169.254.169.254.evil.example/x",
        "http://127.evil.example/x",
        "http://127.1.2.3.4.5/x",
        "http://127.1/x",
        "http://user@169.254.169.254/x",
        "http://169.254.169.254/x?resource=y",
        "http://169.254.169.254/x#f",
        "http://169.254.169.254",
        "http://169.254.169.254:99999/x",
        "http://10.0.0.1/metadata/identity/oauth2/token",
        "http://169.254.169.254/a b",
    };
    for (size_t i = 0; i < PG_ARRAY_SIZE(ok); i++)
        if (!pg_imds_endpoint_ok(ok[i]))
            fail_msg("refused %s", ok[i]);
    for (size_t i = 0; i < PG_ARRAY_SIZE(bad); i++)
        if (pg_imds_endpoint_ok(bad[i]))
            fail_msg("accepted %s", bad[i]);

    char *url = NULL, *res = NULL;
    struct pg_imds_request q = {NULL, "api://poolgate-enroll", NULL, NULL, UA_RES};
    assert_int_equal(pg_imds_url(&q, &url), 0);
    assert_string_equal(url, PG_IMDS_ENDPOINT
                        "?api-version=2018-02-01&resource=api%3A%2F%2Fpoolgate-enroll"
                        "&msi_res_id=%2Fsubscriptions%2F8c1a9a52-7d0e-4a7b-9f0d-"
                        "3e1c2b4a5d6f%2FresourceGroups%2Fpg%2Fproviders%2FMicrosoft."
                        "ManagedIdentity%2FuserAssignedIdentities%2Fbuild");
    free(url);
    assert_int_equal(pg_scope_resource("api://poolgate-enroll/.default", &res), 0);
    assert_string_equal(res, "api://poolgate-enroll");
    free(res);

    /* Numbers as strings, as IMDS sends them; a token is required. */
    struct pg_error err = {0};
    char *token = NULL;
    const char good[] = "{\"access_token\":\"eyJx.y.z\",\"expires_in\":\"86399\","
                        "\"expires_on\":\"1767225600\",\"token_type\":\"Bearer\"}";
    assert_int_equal(pg_imds_parse(200, good, strlen(good), &token, &err), 0);
    assert_string_equal(token, "eyJx.y.z");
    pg_free_secret(token);
    const char empty[] = "{\"access_token\":\"\",\"token_type\":\"Bearer\"}";
    assert_true(pg_imds_parse(200, empty, strlen(empty), &token, &err) < 0);
    assert_int_equal(pg_imds_parse(410, "", 0, &token, &err), 1);
    assert_int_equal(pg_imds_parse(302, "{}", 2, &token, &err), PG_ERR_PROTOCOL);
}

/* ---- Key Vault -------------------------------------------------------------- */

static char *vault_token(void)
{
    struct fake f;
    struct pg_clock clock = fake_clock(&f);
    struct pg_error err = {0};
    char *token = NULL;
    if (imds_token(PG_VAULT_RESOURCE, NULL, NULL, &clock, 0, &token, &err) != 0)
        fail_msg("vault token: %s", err.msg);
    return token;
}

static void put_secret(const char *name, const char *type, const char *value, const char *enabled)
{
    const struct pg_form_field f[] = {
        {"name", name}, {"content_type", type}, {"value", value}, {"enabled", enabled}};
    ctl(vault_ctl, "secret", f, 4);
}

static int vault_get(const char *name, const char *token, struct pg_vault_cert *cert,
                     struct pg_error *err)
{
    char uri[512];
    char *type = NULL, *value = NULL;
    snprintf(uri, sizeof(uri), "%s/secrets/%s", vault_url, name);
    struct pg_http_opts o = http();
    int r = pg_vault_get(&o, uri, token, &type, &value, err);
    if (r == 0)
        r = pg_vault_decode(type, value, cert, err);
    free(type);
    pg_free_secret(value);
    return r;
}

static void expect_vault_error(const char *name, const char *token, int code, const char *phrase)
{
    struct pg_vault_cert c = {0};
    struct pg_error err = {0};
    int r = vault_get(name, token, &c, &err);
    if (r != code)
        fail_msg("%s: %d, not %d: %s", name, r, code, err.msg);
    if (!strstr(err.msg, phrase))
        fail_msg("'%s' lacks '%s'", err.msg, phrase);
    assert_null(c.cert_pem);
}

static void expect_pair(const char *name, const char *token, const char *pem_file)
{
    struct pg_vault_cert c = {0};
    struct pg_error err = {0};
    if (vault_get(name, token, &c, &err) != 0)
        fail_msg("%s: %s", name, err.msg);
    char *want = slurp(pem_file);
    char *end = strstr(want, "-----END CERTIFICATE-----\n");
    assert_non_null(end);
    end[sizeof("-----END CERTIFICATE-----\n") - 1] = '\0';
    assert_string_equal(c.cert_pem, want);
    assert_non_null(c.key_pem);
    assert_true(strncmp(c.key_pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    free(want);
    pg_vault_cert_clear(&c);
    assert_null(c.key_pem);
}

static void test_vault(void **state)
{
    (void)state;
    char *token = vault_token(), *pem = slurp(cert_a), *p12 = slurp(p12_a);
    put_secret("pem", "application/x-pem-file", pem, "1");
    put_secret("p12", "application/x-pkcs12", p12, "1");
    expect_vault_error("pem", token, PG_ERR_DENIED, "Key Vault Secrets User");
    const struct pg_form_field who[] = {{"oids", MI_OID}};
    ctl(vault_ctl, "access", who, 1);
    expect_pair("pem", token, cert_a);
    expect_pair("p12", token, cert_a);
    char *ossl = slurp(p12_openssl), *slow = slurp(p12_slow);
    put_secret("ossl", "application/x-pkcs12", ossl, "1");
    expect_pair("ossl", token, cert_a);
    put_secret("slow", "application/x-pkcs12", slow, "1");
    expect_vault_error("slow", token, PG_ERR_CONFIG, "key derivation iterations");
    free(ossl);
    free(slow);
    expect_vault_error("missing", token, PG_ERR_CONFIG, "no such secret");
    put_secret("off", "application/x-pem-file", pem, "0");
    expect_vault_error("off", token, PG_ERR_CONFIG, "disabled");
    put_secret("text", "text/plain", "hello", "1");
    expect_vault_error("text", token, PG_ERR_CONFIG, "text/plain");
    expect_vault_error("pem", "eyJ.not.a-token", PG_ERR_DENIED, "refused the token");
    /* A certificate without its key: the chain only. */
    char *key = strstr(pem, "-----BEGIN PRIVATE KEY-----");
    *key = '\0';
    put_secret("chain", "application/x-pem-file", pem, "1");
    struct pg_vault_cert c = {0};
    struct pg_error err = {0};
    assert_int_equal(vault_get("chain", token, &c, &err), 0);
    assert_null(c.key_pem);
    assert_true(strncmp(c.cert_pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
    pg_vault_cert_clear(&c);
    /* Garbage in a PKCS#12 secret. */
    put_secret("bad", "application/x-pkcs12", "bm90IGEgcGtjczEy", "1");
    expect_vault_error("bad", token, PG_ERR_CONFIG, "PKCS#12");
    const struct pg_form_field fault[] = {{"kind", "500"}, {"count", "1"}};
    ctl(vault_ctl, "fault", fault, 2);
    expect_vault_error("pem", token, PG_ERR_PROTOCOL, "HTTP 500");
    pg_free_secret(token);
    free(pem);
    free(p12);
}

static void test_vault_names(void **state)
{
    (void)state;
    static const struct {
        const char *uri, *name;
    } ok[] = {
        {"https://contoso.vault.azure.net/secrets/web-cert", "web-cert"},
        {"https://contoso.vault.azure.net/secrets/web-cert/", "web-cert"},
        {"https://contoso.vault.azure.net/secrets/Web1/0123abcd", "Web1"},
        {"https://localhost:8443/secrets/x", "x"},
    };
    static const char *const bad[] = {
        "http://contoso.vault.azure.net/secrets/web",
        "https://contoso.vault.azure.net/keys/web",
        "https://contoso.vault.azure.net/secrets/",
        "https://contoso.vault.azure.net/secrets/we_b",
        "https://contoso.vault.azure.net/secrets/web?api-version=1",
        "https://contoso.vault.azure.net/secrets/web#x",
        "https://me@contoso.vault.azure.net/secrets/web",
        "https://contoso.vault.azure.net/secrets/web/v/extra",
        "https://contoso.vault.azure.net/secrets/../web",
        "https:///secrets/web",
    };
    char name[128];
    struct pg_error err = {0};
    for (size_t i = 0; i < PG_ARRAY_SIZE(ok); i++) {
        if (pg_vault_secret_name(ok[i].uri, name, sizeof(name), &err) != 0)
            fail_msg("%s: %s", ok[i].uri, err.msg);
        assert_string_equal(name, ok[i].name);
    }
    for (size_t i = 0; i < PG_ARRAY_SIZE(bad); i++)
        if (pg_vault_secret_name(bad[i], name, sizeof(name), &err) == 0)
            fail_msg("accepted %s", bad[i]);
    assert_non_null(strstr(err.msg, "not a Key Vault secret URI"));
}

/* DONE's certificates: the names must be those of the configured URIs, in
 * their order; nothing is written otherwise. */
static json_t *done_with(const char *first, const char *second, const char *pem)
{
    return json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "certificates", "name", first,
                     "content_type", "application/x-pem-file", "value", pem, "name", second,
                     "content_type", "application/x-pem-file", "value", pem);
}

static void test_vault_write_names(void **state)
{
    (void)state;
    char certs[160], text[1024], path[200];
    snprintf(certs, sizeof(certs), "%s/certs", dir);
    assert_int_equal(mkdir(certs, 0755), 0);
    snprintf(text, sizeof(text),
             "issuer = %s\nclient_id = " CLIENT "\ncredential = managed_identity\n"
             "gate_scope = api://poolgate-enroll/.default\n"
             "keyvault_certificates = https://contoso.vault.azure.net/secrets/web "
             "https://contoso.vault.azure.net/secrets/api/0123abcd\n"
             "keyvault_certificate_dir = %s\n",
             issuer, certs);
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    if (pg_config_parse(text, strlen(text), "t.conf", &cfg, &err) != 0)
        fail_msg("config: %s", err.msg);
    char *pem = slurp(cert_a);
    *strstr(pem, "-----BEGIN PRIVATE KEY-----") = '\0'; /* the certificate only */
    static const char *const wrong[][2] = {
        {"api", "web"}, {"web", "web"}, {"web", "../api"}, {"Web", "api"}, {"web", "api.pem"}};
    for (size_t i = 0; i < PG_ARRAY_SIZE(wrong); i++) {
        json_t *done = done_with(wrong[i][0], wrong[i][1], pem);
        memset(&err, 0, sizeof(err));
        if (pg_vault_write(cfg, done, getuid(), getgid(), &err) != PG_ERR_PROTOCOL)
            fail_msg("%s, %s: accepted (%s)", wrong[i][0], wrong[i][1], err.msg);
        assert_string_equal(err.msg, "helper protocol: malformed certificate");
        snprintf(path, sizeof(path), "%s/web.pem", certs);
        assert_int_equal(access(path, F_OK), -1);
        json_decref(done);
    }
    /* The same answer with the configured names is written. */
    json_t *done = done_with("web", "api", pem);
    if (pg_vault_write(cfg, done, getuid(), getgid(), &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(done);
    snprintf(path, sizeof(path), "%s/api.pem", certs);
    assert_int_equal(access(path, F_OK), 0);
    free(pem);
    pg_config_free(cfg);
}

int main(int argc, char **argv)
{
    issuer = getenv("PG_IDP_ISSUER");
    ca = getenv("PG_TEST_CA");
    idp_ctl = getenv("PG_IDP_CONTROL");
    imds_url = getenv("PG_IMDS_ENDPOINT");
    imds_ctl = getenv("PG_IMDS_CONTROL");
    vault_url = getenv("PG_VAULT_URL");
    vault_ctl = getenv("PG_VAULT_CONTROL");
    if (argc != 3 || !issuer || !ca || !idp_ctl || !imds_url || !imds_ctl || !vault_url ||
        !vault_ctl) {
        fprintf(stderr, "run under tests/fixtures/dev_idp.py with ASSERTION_CHECK_PY MKCERT_PY\n");
        return 2;
    }
    checker = argv[1];
    mkcert = argv[2];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_load),
        cmocka_unit_test(test_assertion_format),
        cmocka_unit_test(test_client_credentials),
        cmocka_unit_test(test_imds_offline),
        cmocka_unit_test(test_imds),
        cmocka_unit_test(test_vault),
        cmocka_unit_test(test_vault_names),
        cmocka_unit_test(test_vault_write_names),
    };
    int r = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return r;
}
