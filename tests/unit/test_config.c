/* poolgate.conf: defaults, every key, every error class, and file trust rules. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "poolgate/poolgate.h"

#define MIN                                                                                        \
    "issuer = https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\n"       \
    "client_id = 6e74172b-be56-4843-9ff4-e66a39bb12e3\n"

static struct pg_config *parse_ok(const char *text)
{
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    if (pg_config_parse(text, strlen(text), "t.conf", &cfg, &err) != 0)
        fail_msg("unexpected error: %s", err.msg);
    return cfg;
}

/* Parse MIN + extra and expect PG_ERR_CONFIG with a message containing both parts. */
static void expect_error(const char *extra, const char *where, const char *phrase)
{
    char text[8192];
    snprintf(text, sizeof(text), "%s%s", MIN, extra);
    struct pg_config *cfg = (struct pg_config *)0x1;
    struct pg_error err = {0};
    assert_int_equal(pg_config_parse(text, strlen(text), "t.conf", &cfg, &err), PG_ERR_CONFIG);
    assert_ptr_equal(cfg, (struct pg_config *)0x1);
    assert_int_equal(err.code, PG_ERR_CONFIG);
    if (strncmp(err.msg, where, strlen(where)) != 0 || !strstr(err.msg, phrase))
        fail_msg("for %s: got '%s', wanted prefix '%s' and '%s'", extra, err.msg, where, phrase);
}

static void test_defaults(void **state)
{
    (void)state;
    struct pg_config *c = parse_ok(MIN);
    assert_string_equal(c->path, "t.conf");
    assert_string_equal(c->client_id, "6e74172b-be56-4843-9ff4-e66a39bb12e3");
    assert_null(c->tenant);
    assert_string_equal(c->scope, "openid profile offline_access");
    assert_null(c->device_authorization_endpoint);
    assert_null(c->token_endpoint);
    assert_null(c->jwks_uri);
    assert_null(c->ca_file);
    assert_null(c->proxy);
    assert_int_equal(c->http_timeout, 10);
    assert_int_equal(c->validate, PG_VALIDATE_ID_TOKEN);
    assert_string_equal(c->audience, c->client_id);
    assert_int_equal(c->required_roles.count, 0);
    assert_int_equal(c->roles_match, PG_ROLES_ALL);
    assert_string_equal(c->roles_claim, "roles");
    assert_int_equal(c->algorithms, PG_ALG_RS256);
    assert_int_equal(c->clock_skew, 120);
    assert_int_equal(c->max_age, -1);
    assert_int_equal(c->sign_in_max_age, -1);
    assert_int_equal(c->login_timeout, 300);
    assert_int_equal(c->prompt, PG_PROMPT_AUTO);
    assert_int_equal(c->qr, PG_QR_AUTO);
    assert_string_equal(c->helper_user, "poolgate");
    assert_string_equal(c->state_dir, "/var/lib/poolgate");
    assert_string_equal(c->cache_dir, "/var/cache/poolgate");
    assert_null(c->organization_url);
    assert_string_equal(c->pool, "Default");
    assert_null(c->agent_name);
    assert_null(c->agent_dir);
    assert_null(c->agent_version);
    assert_string_equal(c->devops_scope, "499b84ac-1321-427f-aa17-267ca6975798/.default");
    assert_int_equal(c->credential, PG_CRED_DEVICE);
    assert_null(c->certificate_file);
    assert_null(c->managed_identity_client_id);
    assert_null(c->gate_scope);
    assert_int_equal(c->keyvault_certificates.count, 0);
    assert_null(c->keyvault_certificate_dir);
    assert_false(c->allow_app_tokens);
    assert_false(pg_config_app_tokens_allowed(c));
    pg_config_free(c);
}

static void test_every_key(void **state)
{
    (void)state;
    struct pg_config *c =
        parse_ok(MIN "tenant = 72F988BF-86F1-41AF-91AB-2D7CD011DB47\n"
                     "scope = openid offline_access api://x/.default\n"
                     "device_authorization_endpoint = https://idp.example/device\n"
                     "token_endpoint = https://idp.example/token\n"
                     "jwks_uri = https://idp.example/keys\n"
                     "ca_file = /etc/ssl/test-ca.pem\n"
                     "proxy = http://proxy.example:3128\n"
                     "http_timeout = 30\n"
                     "validate = access_token\n"
                     "audience = api://poolgate\n"
                     "required_roles = AgentPool.Enroll, Build.Admin\n"
                     "roles_match = any\n"
                     "roles_claim = realm_access.roles\n"
                     "algorithms = RS256 ES256,PS512\n"
                     "clock_skew = 0\n"
                     "max_age = 600\n"
                     "sign_in_max_age = 86400\n"
                     "login_timeout = 900\n"
                     "prompt = enter\n"
                     "qr = off\n"
                     "helper_user = _poolgate\n"
                     "state_dir = /srv/state\n"
                     "cache_dir = /srv/cache\n"
                     "organization_url = https://dev.azure.com/contoso\n"
                     "pool = Linux Builders\n"
                     "agent_name = build-01\n"
                     "agent_dir = /opt/azagent\n"
                     "agent_version = 4.248.0\n"
                     "devops_scope = custom/.default\n"
                     "credential = managed_identity\n"
                     "certificate_file = /etc/poolgate/sp.pem\n"
                     "managed_identity_client_id = 0000-1111\n"
                     "gate_scope = api://poolgate-enroll/.default\n"
                     "keyvault_certificates = https://v.vault.azure.net/secrets/a "
                     "https://v.vault.azure.net/secrets/b\n"
                     "keyvault_certificate_dir = /etc/poolgate/certs\n"
                     "allow_app_tokens = no\n"
                     "assertion_algorithm = RS256\n"
                     "imds_endpoint = http://127.0.0.1:8080/metadata/identity/oauth2/token\n");
    assert_string_equal(c->tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47"); /* lower-cased */
    assert_string_equal(c->scope, "openid offline_access api://x/.default");
    assert_string_equal(c->device_authorization_endpoint, "https://idp.example/device");
    assert_string_equal(c->token_endpoint, "https://idp.example/token");
    assert_string_equal(c->jwks_uri, "https://idp.example/keys");
    assert_string_equal(c->ca_file, "/etc/ssl/test-ca.pem");
    assert_string_equal(c->proxy, "http://proxy.example:3128");
    assert_int_equal(c->http_timeout, 30);
    assert_int_equal(c->validate, PG_VALIDATE_ACCESS_TOKEN);
    assert_string_equal(c->audience, "api://poolgate");
    assert_int_equal(c->required_roles.count, 2);
    assert_string_equal(c->required_roles.items[1], "Build.Admin");
    assert_int_equal(c->roles_match, PG_ROLES_ANY);
    assert_string_equal(c->roles_claim, "realm_access.roles");
    assert_int_equal(c->algorithms, PG_ALG_RS256 | PG_ALG_ES256 | PG_ALG_PS512);
    assert_int_equal(c->clock_skew, 0);
    assert_int_equal(c->max_age, 600);
    assert_int_equal(c->sign_in_max_age, 86400);
    assert_int_equal(c->login_timeout, 900);
    assert_int_equal(c->prompt, PG_PROMPT_ENTER);
    assert_int_equal(c->qr, PG_QR_OFF);
    assert_string_equal(c->helper_user, "_poolgate");
    assert_string_equal(c->state_dir, "/srv/state");
    assert_string_equal(c->cache_dir, "/srv/cache");
    assert_string_equal(c->organization_url, "https://dev.azure.com/contoso");
    assert_string_equal(c->pool, "Linux Builders");
    assert_string_equal(c->agent_name, "build-01");
    assert_string_equal(c->agent_dir, "/opt/azagent");
    assert_string_equal(c->agent_version, "4.248.0");
    assert_string_equal(c->devops_scope, "custom/.default");
    assert_int_equal(c->credential, PG_CRED_MANAGED_IDENTITY);
    assert_string_equal(c->certificate_file, "/etc/poolgate/sp.pem");
    assert_string_equal(c->managed_identity_client_id, "0000-1111");
    assert_string_equal(c->gate_scope, "api://poolgate-enroll/.default");
    assert_int_equal(c->keyvault_certificates.count, 2);
    assert_string_equal(c->keyvault_certificate_dir, "/etc/poolgate/certs");
    assert_false(c->allow_app_tokens);
    assert_int_equal(c->assertion_algorithm, PG_ASSERTION_RS256);
    assert_string_equal(c->imds_endpoint, "http://127.0.0.1:8080/metadata/identity/oauth2/token");
    /* Not implied by the unattended credential: sign-ins never take app tokens. */
    assert_false(pg_config_app_tokens_allowed(c));
    pg_config_free(c);
}

static void test_syntax_tolerated(void **state)
{
    (void)state;
    struct pg_config *c = parse_ok("# comment\n\n   # indented comment\r\n"
                                   "  issuer\t=\thttps://idp.example/realms/x  \r\n"
                                   "client_id=poolgate\n"
                                   "allow_app_tokens = on\n"
                                   "required_roles = a b,c ,, d"); /* no final newline */
    assert_string_equal(c->issuer, "https://idp.example/realms/x");
    assert_string_equal(c->client_id, "poolgate");
    assert_true(c->allow_app_tokens);
    assert_int_equal(c->required_roles.count, 4);
    assert_string_equal(c->required_roles.items[3], "d");
    pg_config_free(c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("isuer = x\n", "t.conf:3:", "unknown key 'isuer'");
    expect_error("\nissuer = https://a.example\n", "t.conf:4:", "repeated (first on line 1)");
    expect_error("just words\n", "t.conf:3:", "malformed line");
    expect_error(" = value\n", "t.conf:3:", "no key");
    expect_error("pool =\n", "t.conf:3:", "empty value for key 'pool'");
    expect_error("http_timeout = ten\n",
                 "t.conf:3:", "http_timeout must be an integer from 1 to 300");
    expect_error("http_timeout = 0\n", "t.conf:3:", "from 1 to 300");
    expect_error("http_timeout = 301\n", "t.conf:3:", "from 1 to 300");
    expect_error("http_timeout = -5\n", "t.conf:3:", "from 1 to 300");
    expect_error("http_timeout = 10s\n", "t.conf:3:", "from 1 to 300");
    expect_error("http_timeout = 99999999999999999999\n", "t.conf:3:", "from 1 to 300");
    expect_error("clock_skew = 601\n", "t.conf:3:", "clock_skew");
    expect_error("max_age = 0\n", "t.conf:3:", "max_age");
    expect_error("sign_in_max_age = 59\n", "t.conf:3:", "sign_in_max_age");
    expect_error("login_timeout = 29\n", "t.conf:3:", "login_timeout");
    expect_error("validate = both\n", "t.conf:3:", "invalid validate 'both'");
    expect_error("roles_match = some\n", "t.conf:3:", "roles_match");
    expect_error("prompt = ask\n", "t.conf:3:", "prompt");
    expect_error("qr = yes\n", "t.conf:3:", "qr");
    expect_error("credential = password\n", "t.conf:3:", "credential");
    expect_error("allow_app_tokens = maybe\n", "t.conf:3:", "yes or no");
    expect_error("algorithms = RS256 HS256\n", "t.conf:3:", "unsupported algorithm 'HS256'");
    expect_error("algorithms = none\n", "t.conf:3:", "unsupported algorithm 'none'");
    expect_error("algorithms = rs256\n", "t.conf:3:", "unsupported algorithm");
    expect_error("algorithms = RS256, RS256\n", "t.conf:3:", "appears twice");
    expect_error("required_roles = a b a\n", "t.conf:3:", "'a' appears twice");
    expect_error("required_roles = , ,\n", "t.conf:3:", "empty list");
    expect_error("tenant = common\n", "t.conf:3:", "not a single tenant");
    expect_error("tenant = Organizations\n", "t.conf:3:", "not a single tenant");
    expect_error("tenant = consumers\n", "t.conf:3:", "not a single tenant");
    expect_error("tenant = contoso\n", "t.conf:3:", "not a tenant id");
    expect_error("token_endpoint = http://idp.example/token\n", "t.conf:3:", "https:// URL");
    expect_error("jwks_uri = https://\n", "t.conf:3:", "https:// URL");
    expect_error("jwks_uri = https://idp.example/keys#frag\n", "t.conf:3:", "https:// URL");
    expect_error("organization_url = dev.azure.com/contoso\n", "t.conf:3:", "https:// URL");
    expect_error("proxy = ftp://proxy\n", "t.conf:3:", "proxy");
    expect_error("state_dir = var/lib/poolgate\n", "t.conf:3:", "absolute path");
    expect_error("ca_file = ca.pem\n", "t.conf:3:", "absolute path");
    expect_error("helper_user = Pool Gate\n", "t.conf:3:", "not a valid user name");
    expect_error("helper_user = 0day\n", "t.conf:3:", "not a valid user name");
    expect_error("roles_claim = realm_access..roles\n", "t.conf:3:", "dotted path");
    expect_error("roles_claim = .roles\n", "t.conf:3:", "dotted path");
    expect_error("roles_claim = roles.\n", "t.conf:3:", "dotted path");
    expect_error("roles_claim = ro les\n", "t.conf:3:", "dotted path");
    expect_error("pool = a\x01z\n", "t.conf:3:", "control character");
    expect_error("managed_identity_client_id = a\nmanaged_identity_resource_id = b\n",
                 "t.conf:", "at most one");
    expect_error("assertion_algorithm = ES256\n", "t.conf:3:", "assertion_algorithm");
    /* Rules of unattended enrollment, checked once the whole file is read. */
    expect_error("credential = client_certificate\ngate_scope = api://g/.default\n", "t.conf",
                 "needs certificate_file");
    expect_error("credential = managed_identity\n", "t.conf", "needs gate_scope");
    expect_error("imds_endpoint = http://10.0.0.1/metadata/identity/oauth2/token\n", "t.conf",
                 "imds_endpoint must be plain http to 169.254.169.254");
    expect_error("imds_endpoint = https://169.254.169.254/x\n", "t.conf", "imds_endpoint");
    expect_error("keyvault_certificates = https://v.vault.azure.net/secrets/a\n", "t.conf",
                 "needs keyvault_certificate_dir");
    expect_error("keyvault_certificate_dir = /c\n"
                 "keyvault_certificates = https://v.vault.azure.net/keys/a\n",
                 "t.conf", "not a Key Vault secret URI");
    expect_error("keyvault_certificate_dir = /c\n"
                 "keyvault_certificates = https://v.vault.azure.net/secrets/a "
                 "https://w.vault.azure.net/secrets/a/1\n",
                 "t.conf", "names the secret 'a' twice");
    expect_error("keyvault_certificate_dir = /c\n"
                 "keyvault_certificates = https://v.vault.azure.net/secrets/a "
                 "https://v.vault.azure.net/secrets/b https://v.vault.azure.net/secrets/c "
                 "https://v.vault.azure.net/secrets/d https://v.vault.azure.net/secrets/e\n",
                 "t.conf", "lists more than 4");
}

static void test_missing_and_limits(void **state)
{
    (void)state;
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    const char *no_issuer = "client_id = x\n";
    assert_int_equal(pg_config_parse(no_issuer, strlen(no_issuer), "t.conf", &cfg, &err),
                     PG_ERR_CONFIG);
    assert_string_equal(err.msg, "t.conf: missing required key 'issuer'");
    const char *no_client = "issuer = https://a.example\n";
    assert_int_equal(pg_config_parse(no_client, strlen(no_client), "t.conf", &cfg, &err),
                     PG_ERR_CONFIG);
    assert_string_equal(err.msg, "t.conf: missing required key 'client_id'");
    assert_int_equal(pg_config_parse(MIN "pool = a\0b\n", sizeof(MIN) + 10, "t.conf", &cfg, &err),
                     PG_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "NUL"));

    char *long_line = malloc(5000);
    memcpy(long_line, "pool = ", 7);
    memset(long_line + 7, 'x', 4992);
    long_line[4999] = '\0';
    expect_error(long_line, "t.conf:3:", "longer than 4096");
    free(long_line);

    /* Long untrusted values are shortened in messages. */
    char key[300];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    char line[400];
    snprintf(line, sizeof(line), "%s = 1\n", key);
    char text[1024];
    snprintf(text, sizeof(text), "%s%s", MIN, line);
    assert_int_equal(pg_config_parse(text, strlen(text), "t.conf", &cfg, &err), PG_ERR_CONFIG);
    assert_true(strlen(err.msg) < 120);
    assert_int_equal(pg_config_parse(NULL, 0, "t", &cfg, &err), PG_ERR_ARG);
    pg_config_free(NULL);
    assert_false(pg_config_app_tokens_allowed(NULL));
}

static char dir[64];

static char *write_file(const char *name, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MIN, strlen(MIN)), (ssize_t)strlen(MIN));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

/* The load of `path` by a caller whose euid is `euid` (-1: pg_config_load,
 * this process's own) ends with `want` and a message containing `phrase`. */
static void expect_load_as(const char *path, uid_t euid, int want, const char *phrase)
{
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    int r = euid == (uid_t)-1 ? pg_config_load(path, &cfg, &err)
                              : pg_config_load_as(path, euid, &cfg, &err);
    if (r != want || (phrase && !strstr(err.msg, phrase)))
        fail_msg("%s: got %d '%s', wanted %d '%s'", path, r, err.msg, want, phrase ? phrase : "");
    if (r == 0)
        assert_string_equal(cfg->path, path);
    pg_config_free(cfg);
}

static void expect_load(const char *path, int want, const char *phrase)
{
    expect_load_as(path, (uid_t)-1, want, phrase);
}

static void test_file_trust(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/pg-config-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    expect_load(write_file("good.conf", 0600), 0, NULL);
    expect_load(write_file("readable.conf", 0644), 0, NULL);
    expect_load(write_file("gw.conf", 0620), PG_ERR_PERM,
                "writable by group or others (mode 0620)");
    expect_load(write_file("ww.conf", 0666), PG_ERR_PERM, "writable by group or others");

    char link[128], target[128], missing[128];
    snprintf(target, sizeof(target), "%s/good.conf", dir);
    snprintf(link, sizeof(link), "%s/link.conf", dir);
    assert_int_equal(symlink(target, link), 0);
    expect_load(link, PG_ERR_PERM, "symbolic link");
    expect_load(dir, PG_ERR_PERM, "not a regular file");
    snprintf(missing, sizeof(missing), "%s/missing.conf", dir);
    expect_load(missing, PG_ERR_IO, "No such file");
    /* Spelled otherwise than realpath() spells it: resolved first, then walked. */
    char odd[160];
    snprintf(odd, sizeof(odd), "%s/./good.conf", dir);
    expect_load(odd, 0, NULL);
    snprintf(odd, sizeof(odd), "/tmp//%s/../%s/good.conf", dir + 5, dir + 5);
    expect_load(odd, 0, NULL);
    snprintf(odd, sizeof(odd), "%s/../%s/ww.conf", dir, dir + 5);
    expect_load(odd, PG_ERR_PERM, "writable by group or others");
    snprintf(odd, sizeof(odd), "%s/missing/good.conf", dir);
    expect_load(odd, PG_ERR_IO, "No such file");

    char *other = write_file("other.conf", 0644);
    if (geteuid() == 0) {
        /* As root, only root-owned files are trusted. */
        assert_int_equal(chown(other, 65534, 65534), 0);
        expect_load(other, PG_ERR_PERM, "must be owned by root (owner uid 65534)");
    }
    const char *names[] = {"good.conf", "readable.conf", "gw.conf",
                           "ww.conf",   "link.conf",     "other.conf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A configuration naming `ca` as its ca_file; returns the configuration's path. */
static const char *conf_with_ca(const char *ca)
{
    static char path[128];
    char text[512];
    snprintf(path, sizeof(path), "%s/ca.conf", dir);
    snprintf(text, sizeof(text), MIN "ca_file = %s\n", ca);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    return path;
}

/* Expect the load of a configuration naming `ca` to fail with `want`, and a
 * message that names the configuration, ca_file and its path, then `phrase`. */
static void expect_ca_refused(const char *ca, int want, const char *phrase)
{
    char head[256];
    const char *conf = conf_with_ca(ca);
    struct pg_config *cfg = (struct pg_config *)0x1;
    struct pg_error err = {0};
    snprintf(head, sizeof(head), "%s: ca_file %s: ", conf, ca);
    int r = pg_config_load(conf, &cfg, &err);
    if (r != want || strncmp(err.msg, head, strlen(head)) != 0 || !strstr(err.msg, phrase))
        fail_msg("ca_file %s: got %d '%s', wanted %d '%s...%s'", ca, r, err.msg, want, head,
                 phrase);
    assert_ptr_equal(cfg, (struct pg_config *)0x1);
}

/* ca_file decides which CAs the helper trusts: the configuration's own rules. */
static void test_ca_file_trust(void **state)
{
    (void)state;
    char ca[128], link[128], fifo[128], missing[128];
    strcpy(dir, "/tmp/pg-config-ca-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s", write_file("ca.pem", 0644));
    expect_load(conf_with_ca(ca), 0, NULL);

    assert_int_equal(chmod(ca, 0664), 0);
    expect_ca_refused(ca, PG_ERR_PERM, "must not be writable by group or others (mode 0664)");
    assert_int_equal(chmod(ca, 0646), 0);
    expect_ca_refused(ca, PG_ERR_PERM, "must not be writable by group or others (mode 0646)");
    assert_int_equal(chmod(ca, 0644), 0);

    snprintf(link, sizeof(link), "%s/link.pem", dir);
    assert_int_equal(symlink(ca, link), 0);
    expect_ca_refused(link, PG_ERR_PERM, "is a symbolic link");
    expect_ca_refused(dir, PG_ERR_PERM, "not a regular file");
    /* (A FIFO is refused without waiting for a writer.) */
    snprintf(fifo, sizeof(fifo), "%s/fifo.pem", dir);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    expect_ca_refused(fifo, PG_ERR_PERM, "not a regular file");
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    expect_ca_refused(missing, PG_ERR_IO, "No such file");
    if (geteuid() == 0) {
        assert_int_equal(chown(ca, 65534, 65534), 0);
        expect_ca_refused(ca, PG_ERR_PERM, "must be owned by root (owner uid 65534)");
    }
    const char *names[] = {"ca.pem", "link.pem", "fifo.pem", "ca.conf"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

/*
 * pg_config_load_as (the module's load: it asks geteuid once per call):
 * the configuration, its directories and ca_file are trusted as a caller
 * with the euid passed would trust them, not as this process would.  A
 * file of an account's own is refused for the module running as root.
 */
static void test_load_as_euid(void **state)
{
    (void)state;
    char ca[128], conf[128];
    strcpy(dir, "/tmp/pg-config-as-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s", write_file("ca.pem", 0644));
    snprintf(conf, sizeof(conf), "%s", conf_with_ca(ca));
    uid_t me = geteuid();
    if (me != 0) {
        expect_load_as(conf, 0, PG_ERR_PERM, "must be owned by root (owner uid");
        expect_load_as(conf, me + 1, PG_ERR_PERM, "must be owned by root or uid");
        expect_load_as(conf, me, 0, NULL);
    } else {
        /* Another account's directory, configuration and ca_file. */
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(chown(conf, 65534, 65534), 0);
        assert_int_equal(chown(ca, 65534, 65534), 0);
        expect_load_as(conf, 0, PG_ERR_PERM, "must be owned by root (owner uid 65534)");
        expect_load(conf, PG_ERR_PERM, "must be owned by root (owner uid 65534)");
        expect_load_as(conf, 65533, PG_ERR_PERM,
                       "must be owned by root or uid 65533 (owner uid 65534)");
        expect_load_as(conf, 65534, 0, NULL);
        /* ca_file under the same rule: that account's or root's only. */
        char want[256];
        snprintf(want, sizeof(want),
                 "ca_file %s: must be owned by root or uid 65534 (owner uid 65533)", ca);
        assert_int_equal(chown(ca, 65533, 65533), 0);
        expect_load_as(conf, 65534, PG_ERR_PERM, want);
    }
    unlink(ca);
    unlink(conf);
    rmdir(dir);
}

/* Expect the load of `path` to fail with PG_ERR_PERM and a message that
 * starts with `start` (the directory, or the configuration and ca_file). */
static void expect_parent_refused(const char *path, const char *start, const char *phrase)
{
    struct pg_config *cfg = (struct pg_config *)0x1;
    struct pg_error err = {0};
    int r = pg_config_load(path, &cfg, &err);
    if (r != PG_ERR_PERM || strncmp(err.msg, start, strlen(start)) != 0 || !strstr(err.msg, phrase))
        fail_msg("%s: got %d '%s', wanted %d '%s...%s'", path, r, err.msg, PG_ERR_PERM, start,
                 phrase);
    assert_ptr_equal(cfg, (struct pg_config *)0x1);
}

/* Every directory above the configuration and ca_file: root's (or, not as
 * root, the caller's), not writable by group or others unless root's and
 * sticky, like /tmp. */
static void test_parent_trust(void **state)
{
    (void)state;
    char d[128], e[128], conf[160], ca[160], head[512], link[128];
    strcpy(dir, "/tmp/pg-config-parents-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(d, sizeof(d), "%s/d", dir);
    snprintf(e, sizeof(e), "%s/d/e", dir);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(mkdir(e, 0755), 0);
    strcpy(dir, e);
    snprintf(conf, sizeof(conf), "%s", write_file("p.conf", 0600));
    snprintf(ca, sizeof(ca), "%s", write_file("ca.pem", 0644));
    *strrchr(dir, '/') = '\0';
    *strrchr(dir, '/') = '\0';
    expect_load(conf, 0, NULL); /* the normal case, under /tmp (root's, 1777) */

    /* Two levels up from the file, group- or world-writable: refused, named. */
    assert_int_equal(chmod(d, 0775), 0);
    expect_parent_refused(conf, d, ": must not be writable by group or others (mode 0775)");
    assert_int_equal(chmod(d, 0757), 0);
    expect_parent_refused(conf, d, ": must not be writable by group or others (mode 0757)");
    /* The same for ca_file, after the configuration's name. */
    snprintf(head, sizeof(head), "%s: ca_file %s: %s: ", conf_with_ca(ca), ca, d);
    expect_parent_refused(conf_with_ca(ca), head, "writable by group or others (mode 0757)");
    /* A link to the file's directory is followed: where it leads counts. */
    snprintf(link, sizeof(link), "%s/l", dir);
    assert_int_equal(symlink(e, link), 0);
    snprintf(head, sizeof(head), "%s/p.conf", link);
    expect_parent_refused(head, d, "(mode 0757)");

    /* Sticky and world-writable: trusted only when root's. */
    assert_int_equal(chmod(d, 01777), 0);
    if (geteuid() == 0)
        expect_load(conf, 0, NULL);
    else
        expect_parent_refused(conf, d, "must not be writable by group or others (mode 1777)");
    assert_int_equal(chmod(d, 0755), 0);
    expect_load(conf, 0, NULL);
    expect_load(head, 0, NULL);

    if (geteuid() == 0) {
        /* As root, a parent owned by anyone else is refused. */
        assert_int_equal(chown(d, 65534, 65534), 0);
        expect_parent_refused(conf, d, ": must be owned by root (owner uid 65534)");
        assert_int_equal(chown(d, 0, 0), 0);
    }
    char p[192];
    const char *names[] = {"d/e/p.conf", "d/e/ca.pem", "ca.conf", "l", "d/e", "d"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        if (unlink(p) < 0)
            rmdir(p);
    }
    rmdir(dir);
}

/*
 * What root (or the owner) does to a checked directory while the load runs,
 * and what someone else then does in the sticky directory above it: called
 * right after the library has checked the directory `swap_dir`, by name
 * (fstatat) or on a descriptor (fstat).  The executable's own fstatat64 and
 * fstat64 are the ones the statically linked library calls.
 */
static const char *swap_dir;
static void (*swap_hook)(void);

static void after_check(const char *path)
{
    if (swap_dir && strcmp(path, swap_dir) == 0) {
        swap_dir = NULL;
        swap_hook();
    }
}

int fstatat64(int at, const char *path, struct stat64 *st, int flags);
int fstatat64(int at, const char *path, struct stat64 *st, int flags)
{
    int (*real)(int, const char *, struct stat64 *, int);
    void *sym = dlsym(RTLD_NEXT, "fstatat64");
    memcpy(&real, &sym, sizeof(real)); /* (ISO C has no cast between the two) */
    int r = real(at, path, st, flags);
    if (at == AT_FDCWD)
        after_check(path);
    return r;
}

int fstat64(int fd, struct stat64 *st);
int fstat64(int fd, struct stat64 *st)
{
    int (*real)(int, struct stat64 *);
    void *sym = dlsym(RTLD_NEXT, "fstat64");
    memcpy(&real, &sym, sizeof(real));
    int r = real(fd, st);
    char link[64], path[256] = "";
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    if (swap_dir && readlink(link, path, sizeof(path) - 1) > 0)
        after_check(path);
    return r;
}

static char swap_base[64];

/* Root removes the configuration's directory (here: moves it aside); the
 * name is free in the sticky directory above, and another account makes it
 * its own, holding a root-owned file (a hard link, where the kernel allows
 * them) that is a valid configuration of another client. */
static void replace_dir(void)
{
    char d[128], aside[128], f[160];
    snprintf(d, sizeof(d), "%s/d", swap_base);
    snprintf(aside, sizeof(aside), "%s/aside", swap_base);
    snprintf(f, sizeof(f), "%s/p.conf", d);
    assert_int_equal(rename(d, aside), 0);
    assert_int_equal(mkdir(d, 0755), 0);
    FILE *out = fopen(f, "w");
    assert_non_null(out);
    fputs("issuer = https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0\n"
          "client_id = 00000000-0000-0000-0000-00000000dead\n",
          out);
    fclose(out);
    assert_int_equal(chmod(f, 0644), 0);
    assert_int_equal(chown(d, 65534, 65534), 0);
}

/* The directory the configuration is read from may be replaced by its owner
 * between its check and the open; nobody else's directory that then takes
 * its name in a sticky parent may be read from. */
static void test_parent_replaced(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* another account's directory */
    char d[128], conf[160];
    strcpy(swap_base, "/tmp/pg-config-swap-XXXXXX");
    assert_non_null(mkdtemp(swap_base));
    assert_int_equal(chmod(swap_base, 01777), 0);
    snprintf(d, sizeof(d), "%s/d", swap_base);
    assert_int_equal(mkdir(d, 0755), 0);
    strcpy(dir, d);
    snprintf(conf, sizeof(conf), "%s", write_file("p.conf", 0644));
    expect_load(conf, 0, NULL);

    swap_dir = d;
    swap_hook = replace_dir;
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    int r = pg_config_load(conf, &cfg, &err);
    assert_null(swap_dir); /* the swap happened */
    if (r == 0 && strcmp(cfg->client_id, "6e74172b-be56-4843-9ff4-e66a39bb12e3") != 0)
        fail_msg("read the configuration of uid 65534's directory (client_id %s)", cfg->client_id);
    pg_config_free(cfg);

    char p[192];
    const char *names[] = {"d/p.conf", "aside/p.conf", "d", "aside"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", swap_base, names[i]);
        if (unlink(p) < 0)
            rmdir(p);
    }
    rmdir(swap_base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),           cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_syntax_tolerated),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_missing_and_limits), cmocka_unit_test(test_file_trust),
        cmocka_unit_test(test_ca_file_trust),      cmocka_unit_test(test_parent_trust),
        cmocka_unit_test(test_parent_replaced),    cmocka_unit_test(test_load_as_euid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
