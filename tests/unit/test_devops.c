/*
 * The Azure DevOps client without a network: the registration body against
 * golden files (tests/fixtures/mkgolden_agent.py), the parsers of the
 * service's answers on what they must accept and everything they must
 * refuse before it reaches the agent's files, and URL escaping.
 *
 *   test_devops GOLDEN_DIR      (or PG_GOLDEN_AGENT=GOLDEN_DIR)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devops.h"
#include "goldenkit.h"
#include "http.h"
#include "poolgate/poolgate.h"

static const char *golden_dir;
static char *golden_modulus, *golden_exponent; /* from key.pem, with OpenSSL directly */

/* ---- helpers ------------------------------------------------------------- */

static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s: %s (run tests/fixtures/mkgolden_agent.py)", path,
                 strerror(errno));
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Standard base64 of a public key parameter's big-endian bytes at `width`. */
static int group_setup(void **state)
{
    (void)state;
    EVP_PKEY *key = golden_key_load(golden_dir);
    if (!key)
        return -1;
    golden_modulus = golden_param_b64(key, OSSL_PKEY_PARAM_RSA_N, 256);
    golden_exponent = golden_param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
    EVP_PKEY_free(key);
    return golden_modulus && golden_exponent ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(golden_modulus);
    free(golden_exponent);
    return 0;
}

/* ---- the registration body ----------------------------------------------- */

/* The info mkgolden_agent.py dumped the golden bodies with (INFO there). */
static struct pg_agent_info golden_info(void)
{
    return (struct pg_agent_info){
        .name = "build-01",
        .version = "4.248.0",
        .os_description = "Linux 6.8.0-1021-azure #21~22.04.1-Ubuntu SMP",
        .os_architecture = "X64",
        .computer_name = "build-01.contoso.example",
        .home_directory = "/opt/azagent/J\xc3\xbcrgen",
        .modulus = golden_modulus,
        .exponent = golden_exponent,
    };
}

static void check_body(int64_t agent_id, const char *golden_name)
{
    struct pg_agent_info info = golden_info();
    json_t *body = pg_devops_agent_body(&info, agent_id);
    assert_non_null(body);
    char *got = json_dumps(body, JSON_COMPACT), *want = slurp(golden_dir, golden_name);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("%s differs:\n--- got\n%s\n--- want\n%s", golden_name, got, want);
    free(got);
    free(want);
    json_decref(body);
}

static void test_body_add(void **state)
{
    (void)state;
    check_body(0, "body-add.json");
}

static void test_body_replace(void **state)
{
    (void)state;
    check_body(17, "body-replace.json");
}

/* ---- pg_devops_parse_agent ----------------------------------------------- */

#define MODULUS "j8hZQIp+q8L0DbDMNSVyISvdp2/d8SM0FCf2syrvB5fK"
#define CLIENT_ID "0b6a4c3e-1f2d-4e5f-8a9b-0c1d2e3f4a5b"
#define AUTH_URL "https://vstoken.dev.azure.com/11111111-2222-3333-4444-555555555555"
#define SERVER_URL "https://dev.azure.com/contoso/"

/* An answer to POST .../pools/7/agents as the service sends it. */
static const char REALISTIC[] =
    "{\"_links\":{\"self\":{\"href\":\"https://dev.azure.com/contoso/_apis/distributedtask/"
    "pools/7/agents/17\"},\"web\":{\"href\":\"https://dev.azure.com/contoso/_settings/"
    "agentpools?view=jobs&poolId=7&agentId=17\"}},"
    "\"maxParallelism\":1,\"createdOn\":\"2025-01-15T10:21:33.4966667Z\","
    "\"authorization\":{\"clientId\":\"" CLIENT_ID "\",\"authorizationUrl\":\"" AUTH_URL "\","
    "\"publicKey\":{\"exponent\":\"AQAB\",\"modulus\":\"" MODULUS "\"}},"
    "\"id\":17,\"name\":\"build-01\",\"version\":\"4.248.0\","
    "\"osDescription\":\"Linux 6.8.0-1021-azure #21~22.04.1-Ubuntu SMP\","
    "\"enabled\":true,\"status\":\"offline\",\"provisioningState\":\"Provisioned\","
    "\"accessPoint\":\"CodexAccessMapping\","
    "\"properties\":{\"ServerUrl\":{\"$type\":\"System.String\",\"$value\":\"" SERVER_URL "\"}},"
    "\"systemCapabilities\":{\"Agent.Name\":\"build-01\",\"Agent.OS\":\"Linux\"}}";

static int parse_agent(const char *body, size_t len, struct pg_agent *out, struct pg_error *err)
{
    memset(err, 0, sizeof(*err));
    return pg_devops_parse_agent(body, len, out, err);
}

static void test_parse_agent_realistic(void **state)
{
    (void)state;
    struct pg_agent a;
    struct pg_error err;
    assert_int_equal(parse_agent(REALISTIC, strlen(REALISTIC), &a, &err), 0);
    assert_int_equal(a.id, 17);
    assert_string_equal(a.name, "build-01");
    assert_string_equal(a.client_id, CLIENT_ID);
    assert_string_equal(a.authorization_url, AUTH_URL);
    assert_string_equal(a.server_url, SERVER_URL);
    pg_agent_clear(&a);
    assert_null(a.name);
    assert_int_equal(a.id, 0);
}

/* properties.ServerUrl is optional. */
static void test_parse_agent_without_server_url(void **state)
{
    (void)state;
    static const char body[] = "{\"id\":5,\"name\":\"a\",\"authorization\":{\"clientId\":\"c\","
                               "\"authorizationUrl\":\"" AUTH_URL "\"},\"properties\":{}}";
    struct pg_agent a;
    struct pg_error err;
    assert_int_equal(parse_agent(body, strlen(body), &a, &err), 0);
    assert_int_equal(a.id, 5);
    assert_null(a.server_url);
    pg_agent_clear(&a);
}

/* An agent answer made of the given member texts (NULL: member absent). */
struct agent_case {
    const char *what;
    const char *id, *name, *client_id, *auth_url, *props;
};

static char *agent_json(const struct agent_case *c)
{
    char *out = malloc(8192);
    int n = snprintf(out, 8192, "{");
    if (c->id)
        n += snprintf(out + n, 8192 - (size_t)n, "\"id\":%s,", c->id);
    if (c->name)
        n += snprintf(out + n, 8192 - (size_t)n, "\"name\":%s,", c->name);
    if (c->client_id || c->auth_url) {
        n += snprintf(out + n, 8192 - (size_t)n, "\"authorization\":{");
        if (c->client_id)
            n += snprintf(out + n, 8192 - (size_t)n, "\"clientId\":%s%s", c->client_id,
                          c->auth_url ? "," : "");
        if (c->auth_url)
            n += snprintf(out + n, 8192 - (size_t)n, "\"authorizationUrl\":%s", c->auth_url);
        n += snprintf(out + n, 8192 - (size_t)n, "},");
    }
    if (c->props)
        n += snprintf(out + n, 8192 - (size_t)n, "\"properties\":%s,", c->props);
    out[n - 1] = '}'; /* over the last ',' (or completes "{}" when empty) */
    if (n == 1)
        snprintf(out, 8192, "{}");
    return out;
}

#define GOOD_ID "17"
#define GOOD_NAME "\"build-01\""
#define GOOD_CLIENT "\"" CLIENT_ID "\""
#define GOOD_AUTH "\"" AUTH_URL "\""
#define GOOD_PROPS "{\"ServerUrl\":{\"$type\":\"System.String\",\"$value\":\"" SERVER_URL "\"}}"
#define GOOD GOOD_NAME, GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS

static void expect_rejected(const char *what, const char *body, size_t len)
{
    struct pg_agent a;
    struct pg_error err;
    memset(&a, 0x5a, sizeof(a)); /* the parser must reset it */
    int r = parse_agent(body, len, &a, &err);
    if (r != PG_ERR_PROTOCOL)
        fail_msg("%s: got %d, want PG_ERR_PROTOCOL, for %.300s", what, r, body);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(a.id, 0);
    assert_null(a.name);
    assert_null(a.client_id);
    assert_null(a.authorization_url);
    assert_null(a.server_url);
}

static void test_parse_agent_template_accepts(void **state)
{
    (void)state;
    /* The rejections below differ from this one in one member each. */
    struct agent_case c = {"good", GOOD_ID, GOOD};
    char *body = agent_json(&c);
    struct pg_agent a;
    struct pg_error err;
    assert_int_equal(parse_agent(body, strlen(body), &a, &err), 0);
    assert_string_equal(a.server_url, SERVER_URL);
    pg_agent_clear(&a);
    free(body);
}

static void test_parse_agent_rejects(void **state)
{
    (void)state;
    char long_name[300], max_name[300];
    snprintf(long_name, sizeof(long_name), "\"%0257d\"", 0); /* 257 characters */
    snprintf(max_name, sizeof(max_name), "\"%0256d\"", 0);
    const struct agent_case cases[] = {
        {"id missing", NULL, GOOD},
        {"id zero", "0", GOOD},
        {"id negative", "-3", GOOD},
        {"id a string", "\"17\"", GOOD},
        {"id a real", "17.0", GOOD},
        {"id null", "null", GOOD},
        {"name missing", GOOD_ID, NULL, GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS},
        {"name not a string", GOOD_ID, "42", GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS},
        {"name over 256 bytes", GOOD_ID, long_name, GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS},
        {"name with NUL", GOOD_ID, "\"build\\u0000-01\"", GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS},
        {"name with newline", GOOD_ID, "\"build\\n-01\"", GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS},
        {"authorization missing", GOOD_ID, GOOD_NAME, NULL, NULL, GOOD_PROPS},
        {"clientId missing", GOOD_ID, GOOD_NAME, NULL, GOOD_AUTH, GOOD_PROPS},
        {"clientId empty", GOOD_ID, GOOD_NAME, "\"\"", GOOD_AUTH, GOOD_PROPS},
        {"name empty", GOOD_ID, "\"\"", GOOD_CLIENT, GOOD_AUTH, GOOD_PROPS},
        {"clientId with control character", GOOD_ID, GOOD_NAME, "\"0b6a\\u0001c3e\"", GOOD_AUTH,
         GOOD_PROPS},
        {"clientId with DEL", GOOD_ID, GOOD_NAME, "\"0b6a\\u007fc3e\"", GOOD_AUTH, GOOD_PROPS},
        {"clientId with tab", GOOD_ID, GOOD_NAME, "\"0b6a\\tc3e\"", GOOD_AUTH, GOOD_PROPS},
        {"clientId with NUL", GOOD_ID, GOOD_NAME, "\"0b6a\\u0000c3e\"", GOOD_AUTH, GOOD_PROPS},
        {"authorizationUrl missing", GOOD_ID, GOOD_NAME, GOOD_CLIENT, NULL, GOOD_PROPS},
        {"authorizationUrl http", GOOD_ID, GOOD_NAME, GOOD_CLIENT,
         "\"http://vstoken.dev.azure.com/1111\"", GOOD_PROPS},
        {"authorizationUrl with space", GOOD_ID, GOOD_NAME, GOOD_CLIENT,
         "\"https://vstoken.dev.azure.com/11 11\"", GOOD_PROPS},
        {"authorizationUrl with newline", GOOD_ID, GOOD_NAME, GOOD_CLIENT,
         "\"https://vstoken.dev.azure.com/11\\n11\"", GOOD_PROPS},
        {"authorizationUrl without host", GOOD_ID, GOOD_NAME, GOOD_CLIENT, "\"https://\"",
         GOOD_PROPS},
        {"ServerUrl of another $type", GOOD_ID, GOOD_NAME, GOOD_CLIENT, GOOD_AUTH,
         "{\"ServerUrl\":{\"$type\":\"System.Uri\",\"$value\":\"" SERVER_URL "\"}}"},
        {"ServerUrl without $type", GOOD_ID, GOOD_NAME, GOOD_CLIENT, GOOD_AUTH,
         "{\"ServerUrl\":{\"$value\":\"" SERVER_URL "\"}}"},
        {"ServerUrl a bare string", GOOD_ID, GOOD_NAME, GOOD_CLIENT, GOOD_AUTH,
         "{\"ServerUrl\":\"" SERVER_URL "\"}"},
        {"ServerUrl http", GOOD_ID, GOOD_NAME, GOOD_CLIENT, GOOD_AUTH,
         "{\"ServerUrl\":{\"$type\":\"System.String\",\"$value\":\"http://dev.azure.com/c/\"}}"},
        {"ServerUrl with NUL", GOOD_ID, GOOD_NAME, GOOD_CLIENT, GOOD_AUTH,
         "{\"ServerUrl\":{\"$type\":\"System.String\",\"$value\":\"https://a\\u0000b/\"}}"},
        {"duplicate id", "17,\"id\":18", GOOD},
        {"duplicate clientId", GOOD_ID, GOOD_NAME,
         GOOD_CLIENT ","
                     "\"clientId\":\"other\"",
         GOOD_AUTH, GOOD_PROPS},
        {"duplicate $value", GOOD_ID, GOOD_NAME, GOOD_CLIENT, GOOD_AUTH,
         "{\"ServerUrl\":{\"$type\":\"System.String\",\"$value\":\"" SERVER_URL
         "\",\"$value\":\"https://evil.example/\"}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = agent_json(&cases[i]);
        expect_rejected(cases[i].what, body, strlen(body));
        free(body);
    }

    /* The boundary: a 256-byte name is still accepted. */
    struct agent_case ok = {"name of 256 bytes", GOOD_ID,   max_name,
                            GOOD_CLIENT,         GOOD_AUTH, GOOD_PROPS};
    char *body = agent_json(&ok);
    struct pg_agent a;
    struct pg_error err;
    assert_int_equal(parse_agent(body, strlen(body), &a, &err), 0);
    assert_int_equal(strlen(a.name), 256);
    pg_agent_clear(&a);
    free(body);
}

static void test_parse_agent_not_an_object(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "[]", "[{\"id\":17}]", "\"agent\"", "17", "null", "", "{", "{\"id\":17,}", "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_rejected(bodies[i], bodies[i], strlen(bodies[i]));
    /* The length given counts, not the NUL: a document cut short is refused. */
    expect_rejected("cut short", REALISTIC, strlen(REALISTIC) - 1);
}

/* REALISTIC padded with spaces before its final '}' to `len` bytes. */
static char *padded(size_t len)
{
    size_t head = strlen(REALISTIC) - 1;
    char *body = malloc(len + 1);
    memcpy(body, REALISTIC, head);
    memset(body + head, ' ', len - head - 1);
    body[len - 1] = '}';
    body[len] = '\0';
    return body;
}

/* An answer is read up to PG_DEVOPS_MAX_RESPONSE bytes, and not one more. */
static void test_parse_agent_size_limit(void **state)
{
    (void)state;
    char *body = padded(PG_DEVOPS_MAX_RESPONSE);
    struct pg_agent a;
    struct pg_error err;
    assert_int_equal(parse_agent(body, PG_DEVOPS_MAX_RESPONSE, &a, &err), 0);
    assert_int_equal(a.id, 17);
    pg_agent_clear(&a);
    free(body);
    body = padded(PG_DEVOPS_MAX_RESPONSE + 1);
    expect_rejected("over the size limit", body, PG_DEVOPS_MAX_RESPONSE + 1);
    free(body);
}

/* ---- pg_devops_parse_first_id -------------------------------------------- */

static int first_id(const char *body, int64_t *id)
{
    struct pg_error err = {0};
    *id = -1;
    int r = pg_devops_parse_first_id(body, strlen(body), id, &err);
    if (r != 0 && err.msg[0] == '\0')
        fail_msg("no message for %s", body);
    return r;
}

static void test_first_id(void **state)
{
    (void)state;
    int64_t id;
    assert_int_equal(first_id("{\"count\":0,\"value\":[]}", &id), 0);
    assert_int_equal(id, 0);
    assert_int_equal(first_id("{\"count\":1,\"value\":[{\"id\":5}]}", &id), 0);
    assert_int_equal(id, 5);
    assert_int_equal(
        first_id("{\"count\":2,\"value\":[{\"id\":9,\"name\":\"a\"},{\"id\":3}]}", &id), 0);
    assert_int_equal(id, 9);
}

static void test_first_id_rejects(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"count\":2,\"value\":[{\"id\":5}]}",             /* count mismatch */
        "{\"count\":0,\"value\":[{\"id\":5}]}",             /* count mismatch */
        "{\"count\":1,\"value\":{\"id\":5}}",               /* value not an array */
        "{\"count\":1}",                                    /* value missing */
        "{\"count\":\"1\",\"value\":[{\"id\":5}]}",         /* count a string */
        "{\"count\":1,\"value\":[{\"name\":\"x\"}]}",       /* item without id */
        "{\"count\":1,\"value\":[{\"id\":0}]}",             /* id zero */
        "{\"count\":1,\"value\":[{\"id\":-5}]}",            /* id negative */
        "{\"count\":1,\"value\":[{\"id\":\"5\"}]}",         /* id a string */
        "{\"count\":1,\"value\":[5]}",                      /* item not an object */
        "{\"count\":1,\"count\":1,\"value\":[{\"id\":5}]}", /* duplicate key */
        "[{\"id\":5}]",                                     /* not an object */
        "",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        int64_t id;
        int r = first_id(bodies[i], &id);
        if (r != PG_ERR_PROTOCOL)
            fail_msg("got %d (id %lld), want PG_ERR_PROTOCOL, for %s", r, (long long)id, bodies[i]);
    }
}

/* ---- pg_url_escape -------------------------------------------------------- */

static void check_escape(const char *in, const char *want)
{
    char *out = NULL;
    assert_int_equal(pg_url_escape(in, &out), 0);
    assert_string_equal(out, want);
    free(out);
}

static void test_url_escape(void **state)
{
    (void)state;
    check_escape("Build Hosts/\xc3\xa4~", "Build%20Hosts%2F%C3%A4~");
    check_escape("", "");
    check_escape("AZaz09-._~", "AZaz09-._~");
    check_escape("a+b&c=d?e#f%", "a%2Bb%26c%3Dd%3Fe%23f%25");
}

int main(int argc, char **argv)
{
    golden_dir = argc > 1 ? argv[1] : getenv("PG_GOLDEN_AGENT");
    if (!golden_dir) {
        fprintf(stderr, "usage: %s GOLDEN_DIR (or PG_GOLDEN_AGENT=GOLDEN_DIR)\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_add),
        cmocka_unit_test(test_body_replace),
        cmocka_unit_test(test_parse_agent_realistic),
        cmocka_unit_test(test_parse_agent_without_server_url),
        cmocka_unit_test(test_parse_agent_template_accepts),
        cmocka_unit_test(test_parse_agent_rejects),
        cmocka_unit_test(test_parse_agent_not_an_object),
        cmocka_unit_test(test_parse_agent_size_limit),
        cmocka_unit_test(test_first_id),
        cmocka_unit_test(test_first_id_rejects),
        cmocka_unit_test(test_url_escape),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
