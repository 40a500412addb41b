/*
 * poolgate.conf(5): loading, strict parsing and checking.
 *
 * MUST:
 *   - Trust a file (the configuration, and the ca_file it names) only when
 *     it is a regular file reached without a symbolic link, owned by root
 *     (or, for a caller that is not root, by the caller), and not writable
 *     by group or others.
 *   - Refuse, never guess: an unknown key, a repeated key, a malformed line
 *     or an invalid value fails the whole load with "FILE:LINE: what".
 *   - Leave the output untouched on failure.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include "fileio.h"
#include "internal.h"

#define CONFIG_MAX_BYTES (64 * 1024)
#define LINE_MAX_BYTES 4096
#define SHOW_MAX 64

enum kind {
    K_STRING,
    K_URL,
    K_PATH,
    K_NUMBER,
    K_ENUM,
    K_LIST,
    K_BOOL,
    K_TENANT,
    K_USER,
    K_PROXY,
    K_ROLES_CLAIM,
    K_ALGS
};

struct key {
    const char *name;
    enum kind kind;
    size_t offset;
    long min, max;              /* K_NUMBER */
    const char *const *choices; /* K_ENUM: names, index = enum value */
};

static const char *const validate_names[] = {"id_token", "access_token", NULL};
static const char *const roles_match_names[] = {"all", "any", NULL};
static const char *const prompt_names[] = {"auto", "info", "enter", NULL};
static const char *const qr_names[] = {"auto", "on", "off", NULL};
static const char *const credential_names[] = {"device", "client_certificate", "managed_identity",
                                               NULL};
static const char *const assertion_names[] = {"PS256", "RS256", NULL};

#define F(field) offsetof(struct pg_config, field)
static const struct key keys[] = {
    {"issuer", K_URL, F(issuer), 0, 0, NULL},
    {"client_id", K_STRING, F(client_id), 0, 0, NULL},
    {"tenant", K_TENANT, F(tenant), 0, 0, NULL},
    {"scope", K_STRING, F(scope), 0, 0, NULL},
    {"device_authorization_endpoint", K_URL, F(device_authorization_endpoint), 0, 0, NULL},
    {"token_endpoint", K_URL, F(token_endpoint), 0, 0, NULL},
    {"jwks_uri", K_URL, F(jwks_uri), 0, 0, NULL},
    {"ca_file", K_PATH, F(ca_file), 0, 0, NULL},
    {"proxy", K_PROXY, F(proxy), 0, 0, NULL},
    {"http_timeout", K_NUMBER, F(http_timeout), 1, 300, NULL},
    {"validate", K_ENUM, F(validate), 0, 0, validate_names},
    {"audience", K_STRING, F(audience), 0, 0, NULL},
    {"required_roles", K_LIST, F(required_roles), 0, 0, NULL},
    {"roles_match", K_ENUM, F(roles_match), 0, 0, roles_match_names},
    {"roles_claim", K_ROLES_CLAIM, F(roles_claim), 0, 0, NULL},
    {"algorithms", K_ALGS, F(algorithms), 0, 0, NULL},
    {"clock_skew", K_NUMBER, F(clock_skew), 0, 600, NULL},
    {"max_age", K_NUMBER, F(max_age), 1, 31536000, NULL},
    {"sign_in_max_age", K_NUMBER, F(sign_in_max_age), 60, 31536000, NULL},
    {"login_timeout", K_NUMBER, F(login_timeout), 30, 3600, NULL},
    {"prompt", K_ENUM, F(prompt), 0, 0, prompt_names},
    {"qr", K_ENUM, F(qr), 0, 0, qr_names},
    {"helper_user", K_USER, F(helper_user), 0, 0, NULL},
    {"state_dir", K_PATH, F(state_dir), 0, 0, NULL},
    {"cache_dir", K_PATH, F(cache_dir), 0, 0, NULL},
    {"organization_url", K_URL, F(organization_url), 0, 0, NULL},
    {"pool", K_STRING, F(pool), 0, 0, NULL},
    {"agent_name", K_STRING, F(agent_name), 0, 0, NULL},
    {"agent_dir", K_PATH, F(agent_dir), 0, 0, NULL},
    {"agent_version", K_STRING, F(agent_version), 0, 0, NULL},
    {"devops_scope", K_STRING, F(devops_scope), 0, 0, NULL},
    {"credential", K_ENUM, F(credential), 0, 0, credential_names},
    {"certificate_file", K_PATH, F(certificate_file), 0, 0, NULL},
    {"managed_identity_client_id", K_STRING, F(managed_identity_client_id), 0, 0, NULL},
    {"managed_identity_object_id", K_STRING, F(managed_identity_object_id), 0, 0, NULL},
    {"managed_identity_resource_id", K_STRING, F(managed_identity_resource_id), 0, 0, NULL},
    {"gate_scope", K_STRING, F(gate_scope), 0, 0, NULL},
    {"keyvault_certificates", K_LIST, F(keyvault_certificates), 0, 0, NULL},
    {"keyvault_certificate_dir", K_PATH, F(keyvault_certificate_dir), 0, 0, NULL},
    {"allow_app_tokens", K_BOOL, F(allow_app_tokens), 0, 0, NULL},
    {"resource", K_STRING, F(resource), 0, 0, NULL},
    {"assertion_algorithm", K_ENUM, F(assertion_algorithm), 0, 0, assertion_names},
    {"imds_endpoint", K_STRING, F(imds_endpoint), 0, 0, NULL},
    {"agent_service", K_BOOL, F(agent_service), 0, 0, NULL},
    {"systemd_unit_dir", K_PATH, F(systemd_unit_dir), 0, 0, NULL},
    {"systemctl", K_PATH, F(systemctl), 0, 0, NULL},
    {"agent_user", K_USER, F(agent_user), 0, 0, NULL},
};
#undef F

#define NKEYS PG_ARRAY_SIZE(keys)

/* Enum fields are written through an int pointer. */
_Static_assert(sizeof(enum pg_validate) == sizeof(int) && sizeof(enum pg_qr) == sizeof(int) &&
                   sizeof(enum pg_credential) == sizeof(int) &&
                   sizeof(enum pg_assertion_alg) == sizeof(int),
               "enum fields must be int-sized");

/* Parser state: where we are, and on which line each key was first seen. */
struct cfgparse {
    struct pg_config *cfg;
    const char *name;
    unsigned line;
    unsigned seen[NKEYS];
    struct pg_error *err;
};

PG_PRINTF(2, 3)
static int bad(struct cfgparse *p, const char *fmt, ...)
{
    char what[PG_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return pg_fail(p->err, PG_ERR_CONFIG, "%s:%u: %s", p->name, p->line, what);
}

/* A short, printable rendering of an untrusted value for messages. */
static const char *show(char *buf, size_t bufsz, const char *v)
{
    size_t o = 0, n = strlen(v), max = bufsz - 1 < SHOW_MAX ? bufsz - 1 : SHOW_MAX;
    for (size_t i = 0; i < n && o < max; i++)
        buf[o++] = isprint((unsigned char)v[i]) ? v[i] : '?';
    if (n > max)
        memcpy(buf + max - 3, "...", 3);
    buf[o] = '\0';
    return buf;
}

static bool has_control(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            return true;
    return false;
}

/* scheme://host[...]: a non-empty host, no whitespace, no fragment. */
static bool url_with_scheme(const char *v, const char *scheme)
{
    size_t n = strlen(scheme);
    if (strncmp(v, scheme, n) != 0 || strncmp(v + n, "://", 3) != 0)
        return false;
    const char *host = v + n + 3;
    if (*host == '\0' || *host == '/' || *host == ':' || *host == '?')
        return false;
    return !strpbrk(v, " \t#");
}

static bool is_guid(const char *v)
{
    if (strlen(v) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? v[i] != '-' : !isxdigit((unsigned char)v[i]))
            return false;
    }
    return true;
}

static int set_string(struct cfgparse *p, const struct key *k, const char *v)
{
    char **slot = (char **)((char *)p->cfg + k->offset);
    char *copy = strdup(v);
    if (!copy)
        return pg_fail(p->err, PG_ERR_NOMEM, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

static int parse_number(struct cfgparse *p, const struct key *k, const char *v)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || !isdigit((unsigned char)v[0]) || n < k->min || n > k->max)
        return bad(p, "%s must be an integer from %ld to %ld", k->name, k->min, k->max);
    *(long *)((char *)p->cfg + k->offset) = n;
    return 0;
}

static int parse_enum(struct cfgparse *p, const struct key *k, const char *v)
{
    char shown[SHOW_MAX + 1], choices[128] = "";
    for (int i = 0; k->choices[i]; i++) {
        if (strcmp(v, k->choices[i]) == 0) {
            *(int *)((char *)p->cfg + k->offset) = i;
            return 0;
        }
        snprintf(choices + strlen(choices), sizeof(choices) - strlen(choices), "%s%s",
                 i ? ", " : "", k->choices[i]);
    }
    return bad(p, "invalid %s '%s' (expected one of: %s)", k->name, show(shown, sizeof(shown), v),
               choices);
}

static int parse_bool(struct cfgparse *p, const struct key *k, const char *v)
{
    static const char *const yes[] = {"yes", "true", "on"}, *const no[] = {"no", "false", "off"};
    for (size_t i = 0; i < PG_ARRAY_SIZE(yes); i++) {
        bool val;
        if (strcmp(v, yes[i]) == 0)
            val = true;
        else if (strcmp(v, no[i]) == 0)
            val = false;
        else
            continue;
        *(bool *)((char *)p->cfg + k->offset) = val;
        return 0;
    }
    return bad(p, "%s must be yes or no", k->name);
}

/* Split a comma/space separated value; calls add() for each item. */
static int each_item(struct cfgparse *p, const struct key *k, const char *v,
                     int (*add)(struct cfgparse *, const struct key *, const char *, size_t))
{
    size_t count = 0;
    while (*v) {
        size_t skip = strspn(v, ", \t"), n;
        v += skip;
        n = strcspn(v, ", \t");
        if (n == 0)
            continue;
        int r = add(p, k, v, n);
        if (r < 0)
            return r;
        count++;
        v += n;
    }
    return count ? 0 : bad(p, "%s is an empty list", k->name);
}

static int add_list_item(struct cfgparse *p, const struct key *k, const char *item, size_t n)
{
    struct pg_strlist *l = (struct pg_strlist *)((char *)p->cfg + k->offset);
    for (size_t i = 0; i < l->count; i++)
        if (strlen(l->items[i]) == n && memcmp(l->items[i], item, n) == 0)
            return bad(p, "'%.*s' appears twice in %s", (int)(n > SHOW_MAX ? SHOW_MAX : n), item,
                       k->name);
    return pg_strlist_add(l, item, n) < 0 ? pg_fail(p->err, PG_ERR_NOMEM, "out of memory") : 0;
}

static int add_alg_item(struct cfgparse *p, const struct key *k, const char *item, size_t n)
{
    for (unsigned bit = PG_ALG_RS256; bit <= PG_ALG_ES384; bit <<= 1) {
        const char *name = pg_alg_name(bit);
        if (strlen(name) == n && memcmp(name, item, n) == 0) {
            if (p->cfg->algorithms & bit)
                return bad(p, "'%s' appears twice in %s", name, k->name);
            p->cfg->algorithms |= bit;
            return 0;
        }
    }
    return bad(p,
               "unsupported algorithm '%.*s' in %s (supported: RS256 RS384 RS512 PS256 "
               "PS384 PS512 ES256 ES384)",
               (int)(n > SHOW_MAX ? SHOW_MAX : n), item, k->name);
}

static int parse_list(struct cfgparse *p, const struct key *k, const char *v)
{
    if (k->kind == K_ALGS) {
        p->cfg->algorithms = 0; /* the value replaces the default */
        return each_item(p, k, v, add_alg_item);
    }
    return each_item(p, k, v, add_list_item);
}

/* A dotted claim path: segments of [A-Za-z0-9_:-], no empty segment. */
static bool valid_claim_path(const char *v)
{
    bool seg_empty = true;
    for (; *v; v++) {
        if (*v == '.') {
            if (seg_empty)
                return false;
            seg_empty = true;
        } else if (isalnum((unsigned char)*v) || strchr("_:-", *v)) {
            seg_empty = false;
        } else {
            return false;
        }
    }
    return !seg_empty;
}

static bool valid_user(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 32 || !(islower((unsigned char)v[0]) || v[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = v[i];
        bool last_dollar = c == '$' && i == n - 1;
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '_' || c == '-' ||
              last_dollar))
            return false;
    }
    return true;
}

static int check_tenant(struct cfgparse *p, const char *v)
{
    static const char *const multi[] = {"common", "organizations", "consumers"};
    char shown[SHOW_MAX + 1];
    for (size_t i = 0; i < PG_ARRAY_SIZE(multi); i++)
        if (strcasecmp(v, multi[i]) == 0)
            return bad(p, "tenant '%s' is not a single tenant: use the tenant id", v);
    if (!is_guid(v))
        return bad(p,
                   "tenant '%s' is not a tenant id (a GUID such as "
                   "72f988bf-86f1-41af-91ab-2d7cd011db47)",
                   show(shown, sizeof(shown), v));
    return 0;
}

/* Checks of a value's form that the key's kind asks for; 0 when it passes. */
static int check_form(struct cfgparse *p, const struct key *k, const char *v)
{
    char shown[SHOW_MAX + 1];
    switch (k->kind) {
    case K_URL:
        if (!url_with_scheme(v, "https"))
            return bad(p, "%s must be an https:// URL, not '%s'", k->name,
                       show(shown, sizeof(shown), v));
        return 0;
    case K_PROXY:
        if (!url_with_scheme(v, "http") && !url_with_scheme(v, "https") &&
            !url_with_scheme(v, "socks5h"))
            return bad(p, "proxy must be an http://, https:// or socks5h:// URL");
        return 0;
    case K_PATH:
        return v[0] == '/' ? 0 : bad(p, "%s must be an absolute path", k->name);
    case K_TENANT:
        return check_tenant(p, v);
    case K_USER:
        return valid_user(v) ? 0
                             : bad(p, "%s '%s' is not a valid user name", k->name,
                                   show(shown, sizeof(shown), v));
    case K_ROLES_CLAIM:
        return valid_claim_path(v) ? 0
                                   : bad(p, "roles_claim '%s' is not a claim name or dotted path",
                                         show(shown, sizeof(shown), v));
    default:
        return 0;
    }
}

static int set_value(struct cfgparse *p, const struct key *k, const char *v)
{
    int r = check_form(p, k, v);
    if (r < 0)
        return r;
    switch (k->kind) {
    case K_NUMBER:
        return parse_number(p, k, v);
    case K_ENUM:
        return parse_enum(p, k, v);
    case K_BOOL:
        return parse_bool(p, k, v);
    case K_LIST:
    case K_ALGS:
        return parse_list(p, k, v);
    default:
        return set_string(p, k, v);
    }
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static int parse_line(struct cfgparse *p, char *line)
{
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\r')
        line[--n] = '\0';
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return 0;
    char *eq = strchr(s, '=');
    if (!eq)
        return bad(p, "malformed line (expected 'key = value')");
    *eq = '\0';
    char *name = trim(s), *value = trim(eq + 1), shown[SHOW_MAX + 1];
    if (*name == '\0')
        return bad(p, "malformed line (no key before '=')");
    if (has_control(value))
        return bad(p, "control character in the value of '%s'", show(shown, sizeof(shown), name));
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(name, keys[i].name) != 0)
            continue;
        if (p->seen[i])
            return bad(p, "key '%s' repeated (first on line %u)", name, p->seen[i]);
        p->seen[i] = p->line;
        if (*value == '\0')
            return bad(p, "empty value for key '%s'", name);
        return set_value(p, &keys[i], value);
    }
    return bad(p, "unknown key '%s'", show(shown, sizeof(shown), name));
}

static int set_defaults(struct pg_config *cfg)
{
    static const struct {
        size_t offset;
        const char *value;
    } strings[] = {
        {offsetof(struct pg_config, scope), "openid profile offline_access"},
        {offsetof(struct pg_config, roles_claim), "roles"},
        {offsetof(struct pg_config, helper_user), "poolgate"},
        {offsetof(struct pg_config, state_dir), "/var/lib/poolgate"},
        {offsetof(struct pg_config, cache_dir), "/var/cache/poolgate"},
        {offsetof(struct pg_config, pool), "Default"},
        {offsetof(struct pg_config, devops_scope), "499b84ac-1321-427f-aa17-267ca6975798/.default"},
        {offsetof(struct pg_config, systemd_unit_dir), "/etc/systemd/system"},
        {offsetof(struct pg_config, systemctl), "/usr/bin/systemctl"},
    };
    for (size_t i = 0; i < PG_ARRAY_SIZE(strings); i++)
        if (!(*(char **)((char *)cfg + strings[i].offset) = strdup(strings[i].value)))
            return PG_ERR_NOMEM;
    cfg->http_timeout = 10;
    cfg->algorithms = PG_ALG_RS256;
    cfg->clock_skew = 120;
    cfg->max_age = -1;
    cfg->sign_in_max_age = -1;
    cfg->login_timeout = 300;
    return 0;
}

/* ---- Key Vault secret URIs (keyvault_certificates) -------------------- */

#define NAME_MAX_LEN 127

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* "/secrets/<name>[/<version>]" with a 1..127 character name; the name's length. */
static size_t secret_path(const char *path)
{
    static const char prefix[] = "/secrets/";
    if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    const char *name = path + sizeof(prefix) - 1, *p = name;
    while (name_char(*p))
        p++;
    size_t n = (size_t)(p - name);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    if (*p == '/')
        for (p++; *p; p++)
            if (!name_char(*p))
                return 0;
    return *p ? 0 : n;
}

int pg_vault_secret_name(const char *uri, char *name, size_t namesz, struct pg_error *err)
{
    char host[256];
    const char *path = pg_url_authority(uri, "https://", host, sizeof(host));
    size_t n = path && host[0] != '[' ? secret_path(path) : 0;
    if (n == 0 || n >= namesz) {
        char shown[128];
        pg_printable(shown, sizeof(shown), uri);
        return pg_fail(err, PG_ERR_CONFIG,
                       "keyvault_certificates: '%s' is not a Key Vault secret URI "
                       "(https://VAULT.vault.azure.net/secrets/NAME[/VERSION])",
                       shown);
    }
    snprintf(name, namesz, "%.*s", (int)n, path + 9);
    return 0;
}

/* The unattended credentials' keys: each needs its companions. */
static bool loopback_or_link_local(const char *host)
{
    struct in_addr a;
    /* A dotted quad in 127.0.0.0/8 (inet_pton takes nothing looser). */
    if (inet_pton(AF_INET, host, &a) == 1)
        return strcmp(host, "169.254.169.254") == 0 || (ntohl(a.s_addr) >> 24) == 127;
    return strcmp(host, "[::1]") == 0;
}

bool pg_imds_endpoint_ok(const char *url)
{
    char host[64];
    const char *path = pg_url_authority(url, "http://", host, sizeof(host));
    return path && loopback_or_link_local(host);
}

static int check_unattended(struct cfgparse *p)
{
    const struct pg_config *c = p->cfg;
    char name[128];
    if (c->credential == PG_CRED_CLIENT_CERTIFICATE && !c->certificate_file)
        return pg_fail(p->err, PG_ERR_CONFIG,
                       "%s: credential = client_certificate needs certificate_file", p->name);
    if (c->credential != PG_CRED_DEVICE && !c->gate_scope)
        return pg_fail(p->err, PG_ERR_CONFIG, "%s: credential = %s needs gate_scope", p->name,
                       credential_names[c->credential]);
    if (c->imds_endpoint && !pg_imds_endpoint_ok(c->imds_endpoint))
        return pg_fail(p->err, PG_ERR_CONFIG,
                       "%s: imds_endpoint must be plain http to 169.254.169.254 (or loopback, "
                       "for tests)",
                       p->name);
    if (c->keyvault_certificates.count && !c->keyvault_certificate_dir)
        return pg_fail(p->err, PG_ERR_CONFIG,
                       "%s: keyvault_certificates needs keyvault_certificate_dir", p->name);
    if (c->keyvault_certificates.count > PG_VAULT_MAX_CERTIFICATES)
        return pg_fail(p->err, PG_ERR_CONFIG, "%s: keyvault_certificates lists more than %d",
                       p->name, PG_VAULT_MAX_CERTIFICATES);
    for (size_t i = 0; i < c->keyvault_certificates.count; i++) {
        struct pg_error e = {0};
        if (pg_vault_secret_name(c->keyvault_certificates.items[i], name, sizeof(name), &e) < 0)
            return pg_fail(p->err, PG_ERR_CONFIG, "%s: %s", p->name, e.msg);
        /* Each becomes keyvault_certificate_dir/<name>.pem: names must differ. */
        for (size_t j = 0; j < i; j++) {
            char other[128];
            pg_vault_secret_name(c->keyvault_certificates.items[j], other, sizeof(other), NULL);
            if (strcmp(name, other) == 0)
                return pg_fail(p->err, PG_ERR_CONFIG,
                               "%s: keyvault_certificates names the secret '%s' twice", p->name,
                               name);
        }
    }
    return 0;
}

/* Rules that involve more than one key. */
static int check_whole(struct cfgparse *p)
{
    struct pg_config *c = p->cfg;
    static const char *const required[] = {"issuer", "client_id"};
    if (!c->issuer || !c->client_id)
        return pg_fail(p->err, PG_ERR_CONFIG, "%s: missing required key '%s'", p->name,
                       required[c->issuer != NULL]);
    if (!!c->managed_identity_client_id + !!c->managed_identity_object_id +
            !!c->managed_identity_resource_id >
        1)
        return pg_fail(p->err, PG_ERR_CONFIG,
                       "%s: set at most one of managed_identity_client_id, "
                       "managed_identity_object_id, managed_identity_resource_id",
                       p->name);
    int r = check_unattended(p);
    if (r < 0)
        return r;
    /* Entra writes tid in lower case; an upper-case GUID in the file means the same tenant. */
    for (char *t = c->tenant; t && *t; t++)
        *t = (char)tolower((unsigned char)*t);
    if (!c->audience && !(c->audience = strdup(c->client_id)))
        return pg_fail(p->err, PG_ERR_NOMEM, "out of memory");
    return 0;
}

PG_EXPORT int pg_config_parse(const char *text, size_t len, const char *name,
                              struct pg_config **out, struct pg_error *err)
{
    if (!text || !name || !out)
        return pg_fail(err, PG_ERR_ARG, "invalid arguments");
    if (len > CONFIG_MAX_BYTES)
        return pg_fail(err, PG_ERR_CONFIG, "%s: larger than %d bytes", name, CONFIG_MAX_BYTES);
    if (memchr(text, '\0', len))
        return pg_fail(err, PG_ERR_CONFIG, "%s: contains a NUL byte", name);

    struct cfgparse p = {.name = name, .err = err};
    _cleanup_(freep) char *copy = NULL;
    int r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    p.cfg = calloc(1, sizeof(*p.cfg));
    if (!p.cfg || !(copy = pg_strndup_checked(text, len)) || !(p.cfg->path = strdup(name)) ||
        set_defaults(p.cfg) < 0)
        goto out;
    r = 0;
    for (char *line = copy; r == 0 && line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        p.line++;
        r = strlen(line) > LINE_MAX_BYTES ? bad(&p, "line longer than %d bytes", LINE_MAX_BYTES)
                                          : parse_line(&p, line);
        line = nl ? nl + 1 : NULL;
    }
    if (r == 0)
        r = check_whole(&p);
    if (r == 0) {
        if (err)
            memset(err, 0, sizeof(*err));
        *out = TAKE_PTR(p.cfg);
    }
out:
    pg_config_free(p.cfg);
    return r;
}

/* Read up to `cap` bytes of a regular file that fstat found `expect` bytes
 * long.  A short read that brings at least that much is its end: that
 * spares the read that would only say so (a system call on every login). */
static int read_all(int fd, char *buf, size_t cap, size_t expect, size_t *len)
{
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            break;
        bool short_read = (size_t)k < cap - n;
        n += (size_t)k;
        if (n == cap || (short_read && n >= expect))
            break;
    }
    *len = n;
    return 0;
}

/*
 * ca_file decides which certificates the helper believes, and so where the
 * provider's signing keys may come from: whoever can write it can add a CA
 * and serve keys of their own.  It is trusted like the configuration
 * itself (root's, or the caller's own when the caller is not root; no
 * link; not writable by group or others).
 *
 * Checked here, at load, for every program: the helper (which hands the
 * path to libcurl) and the CLI (which refuses before it starts the helper,
 * exit 2) need it, and the module, which never opens ca_file, depends on
 * it all the same: the key cache it verifies with was fetched through it.
 * That costs the module one open and fstat per PAM call, next to reading
 * this file, the stored set and the key cache; in return a loose ca_file
 * fails every login instead of going unnoticed until someone uses it.
 * libcurl opens the file again by name: the check holds because the
 * directories above it are checked too (pg_open_trusted_path()), so only
 * root (or the caller, when not root) can replace it in between.
 */
static int check_ca_file(const struct pg_config *cfg, uid_t euid, struct pg_error *err)
{
    char what[PG_ERROR_MAX];
    int fd = -1;
    if (!cfg->ca_file)
        return 0;
    snprintf(what, sizeof(what), "%s: ca_file %s", cfg->path, cfg->ca_file);
    int r = pg_open_trusted_path(cfg->ca_file, euid, what, &fd, NULL, err);
    if (r == 0)
        close(fd);
    return r;
}

PG_EXPORT int pg_config_load(const char *path, struct pg_config **out, struct pg_error *err)
{
    return pg_config_load_as(path, geteuid(), out, err);
}

int pg_config_load_as(const char *path, uid_t euid, struct pg_config **out, struct pg_error *err)
{
    if (!path || !out)
        return pg_fail(err, PG_ERR_ARG, "invalid arguments");
    int fd = -1;
    size_t size = 0;
    int r = pg_open_trusted_path(path, euid, path, &fd, &size, err);
    if (r < 0)
        return r;

    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    struct pg_config *cfg = NULL;
    size_t len = 0;
    if (!buf)
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (r == 0 && (r = read_all(fd, buf, CONFIG_MAX_BYTES + 1, size, &len)) < 0)
        r = pg_fail(err, PG_ERR_IO, "%s: %s", path, strerror(-r));
    close(fd);
    if (r == 0 && len > CONFIG_MAX_BYTES)
        r = pg_fail(err, PG_ERR_CONFIG, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
    if (r == 0)
        r = pg_config_parse(buf, len, path, &cfg, err);
    if (r == 0)
        r = check_ca_file(cfg, euid, err);
    if (r == 0)
        *out = TAKE_PTR(cfg);
    pg_config_free(cfg);
    free(buf);
    return r;
}

PG_EXPORT void pg_config_free(struct pg_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        void *slot = (char *)cfg + keys[i].offset;
        if (keys[i].kind == K_LIST)
            pg_strlist_clear(slot);
        else if (keys[i].kind != K_NUMBER && keys[i].kind != K_ENUM && keys[i].kind != K_BOOL &&
                 keys[i].kind != K_ALGS)
            free(*(char **)slot);
    }
    free(cfg->path);
    free(cfg);
}

PG_EXPORT bool pg_config_app_tokens_allowed(const struct pg_config *cfg)
{
    /* Not implied by an unattended credential: those tokens pass only on
     * the unattended path, which allows them for itself (never a login). */
    return cfg && cfg->allow_app_tokens;
}
