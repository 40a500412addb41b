/*
 * The agent's unit name and file: names as the official agent computes
 * them (its CalculateServiceName, including the 80-character shortening),
 * escaped as systemd-escape --path does, and the unit text against
 * tests/golden/service (derived by hand from the agent's template; see the
 * README there).
 *
 *   test_service GOLDEN_DIR
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentfiles.h"
#include "poolgate/poolgate.h"
#include "testkit.h"
#include "service.h"

#define BASE "issuer = https://login.example.test/t/v2.0\nclient_id = c\n"

static const char *golden_dir;

static void names(const char *url, const char *pool, const char *agent, const char *want_raw,
                  const char *want_desc)
{
    char raw[1200], desc[600];
    struct pg_error err = {0};
    assert_int_equal(pg_service_names(url, pool, agent, raw, sizeof(raw), desc, sizeof(desc), &err),
                     0);
    assert_string_equal(raw, want_raw);
    assert_string_equal(desc, want_desc);
}

/* The agent's own test cases (ServiceControlManagerL0), and the older
 * visualstudio.com form whose account is the host's first label. */
static void test_names(void **state)
{
    (void)state;
    names("https://dev.azure.com/bar", "pool1", "foo", "vsts.agent.bar.pool1.foo.service",
          "Azure Pipelines Agent (bar.pool1.foo)");
    char x40[41], y40[41];
    memset(x40, 'X', 40);
    memset(y40, 'Y', 40);
    x40[40] = y40[40] = '\0';
    names("https://dev.azure.com/bar", y40, x40,
          "vsts.agent.bar.YYYYYYYYYYYYYYYYYYYYYYYYY.XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX.service",
          "Azure Pipelines Agent (bar."
          "YYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYYY."
          "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX)");
    names("https://contoso.visualstudio.com/", "Default", "build-01",
          "vsts.agent.contoso.Default.build-01.service",
          "Azure Pipelines Agent (contoso.Default.build-01)");
    names("https://DEV.AZURE.COM//contoso/", "Default", "a", "vsts.agent.contoso.Default.a.service",
          "Azure Pipelines Agent (contoso.Default.a)");
    /* Exactly 80 characters: left alone; 83: the agent's name loses 3. */
    char a57[58], a60[61], want[100];
    memset(a57, 'a', 57);
    a57[57] = '\0';
    memset(a60, 'a', 60);
    a60[60] = '\0';
    snprintf(want, sizeof(want), "vsts.agent.o.p.%s.service", a57);
    assert_int_equal(strlen(want), 80);
    char desc57[100], desc60[100];
    snprintf(desc57, sizeof(desc57), "Azure Pipelines Agent (o.p.%s)", a57);
    snprintf(desc60, sizeof(desc60), "Azure Pipelines Agent (o.p.%s)", a60);
    names("https://dev.azure.com/o", "p", a57, want, desc57);
    names("https://dev.azure.com/o", "p", a60, want, desc60);
    /* Characters, not bytes: 30 two-byte letters shorten to 25. */
    char pool[61] = "";
    for (int i = 0; i < 30; i++)
        strcat(pool, "\xc3\xb8");
    char raw[1200], desc[600];
    struct pg_error err = {0};
    assert_int_equal(pg_service_names("https://dev.azure.com/o", pool,
                                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", raw,
                                      sizeof(raw), desc, sizeof(desc), &err),
                     0);
    /* 80 characters: the pool's first 25 letters (50 bytes), 33 of the agent's 50. */
    assert_int_equal(strlen(raw), 11 + 1 + 1 + 50 + 1 + 33 + 8);
    assert_int_equal(
        pg_service_names("https:///", "p", "a", raw, sizeof(raw), desc, sizeof(desc), &err),
        PG_ERR_CONFIG);
}

static void escaped(const char *in, const char *want)
{
    char out[256];
    struct pg_error err = {0};
    assert_int_equal(pg_service_escape(in, out, sizeof(out), &err), 0);
    assert_string_equal(out, want);
}

/* What systemd-escape --path prints for the same input. */
static void test_escape(void **state)
{
    (void)state;
    escaped("vsts.agent.contoso.Build Hosts.build-01.service",
            "vsts.agent.contoso.Build\\x20Hosts.build\\x2d01.service");
    escaped("vsts.agent.\xc3\xb8.p.a.service", "vsts.agent.\\xc3\\xb8.p.a.service");
    escaped("/a//b/", "a-b");
    escaped(".x/y", "\\x2ex-y");
    escaped("a/./b", "a-b");
    char out[16];
    struct pg_error err = {0};
    assert_int_equal(pg_service_escape("a/../b", out, sizeof(out), &err), PG_ERR_CONFIG);
    assert_int_equal(pg_service_escape("0123456789abcdef", out, sizeof(out), &err), PG_ERR_CONFIG);
    assert_int_equal(pg_service_escape("///", out, sizeof(out), &err), PG_ERR_CONFIG);
}

static char *slurp(const char *path)
{
    char *buf = tk_slurp(path);
    assert_non_null(buf);
    return buf;
}

/* Every line of the golden unit (the template's output) is in poolgate's,
 * in order; poolgate's adds only comment lines. */
/* The configuration `more` (after BASE) and its service, for nobody. */
static struct pg_config *service_for(const char *more, struct pg_service *s, struct passwd **pw)
{
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    char text[1024];
    snprintf(text, sizeof(text), BASE "organization_url = https://dev.azure.com/contoso\n%s", more);
    *pw = getpwnam("nobody");
    assert_non_null(*pw);
    assert_int_equal(pg_config_parse(text, strlen(text), "t.conf", &cfg, &err), 0);
    assert_int_equal(pg_service_init(s, cfg, (*pw)->pw_uid, (*pw)->pw_gid, &err), 0);
    return cfg;
}

static void test_unit_text(void **state)
{
    (void)state;
    struct pg_error err = {0};
    struct pg_service s;
    struct passwd *pw;
    struct pg_config *cfg =
        service_for("pool = Build Hosts\nagent_name = build-01\nagent_dir = /srv/agent\n", &s, &pw);
    assert_string_equal(s.unit, "vsts.agent.contoso.Build\\x20Hosts.build\\x2d01.service");
    char path[1024], *unit = NULL;
    snprintf(path, sizeof(path), "%s/expected.service", golden_dir);
    char *golden = slurp(path);
    assert_int_equal(pg_service_unit_text(&s, &unit, &err), 0);
    assert_true(strncmp(unit, PG_SERVICE_MARKER, strlen(PG_SERVICE_MARKER)) == 0);
    /* The golden file names the account "azagent"; ours runs as nobody. */
    char *mine = unit, *line, *save = NULL;
    for (line = strtok_r(golden, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char want[512];
        if (strncmp(line, "User=", 5) == 0)
            snprintf(want, sizeof(want), "User=%s\n", pw->pw_name);
        else
            snprintf(want, sizeof(want), "%s\n", line);
        while (*mine == '#' || *mine == '\n') /* comments and blank lines */
            mine += strcspn(mine, "\n") + 1;
        assert_true(strncmp(mine, want, strlen(want)) == 0);
        mine += strlen(want);
    }
    while (*mine == '\n')
        mine++;
    assert_string_equal(mine, "");
    free(golden);
    free(unit);

    /* Values that would change the unit's meaning are refused. */
    const char *bad[] = {"agent_dir = /srv/my agent\n", "agent_dir = /srv/50%\n",
                         "agent_dir = /srv/a;b\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pg_config *c2 = NULL;
        char t2[256];
        snprintf(t2, sizeof(t2), BASE "organization_url = https://dev.azure.com/c\n%s", bad[i]);
        assert_int_equal(pg_config_parse(t2, strlen(t2), "t.conf", &c2, &err), 0);
        assert_int_equal(pg_service_init(&s, c2, pw->pw_uid, pw->pw_gid, &err), PG_ERR_CONFIG);
        pg_config_free(c2);
    }
    assert_int_equal(pg_service_init(&s, cfg, 0, 0, &err), PG_ERR_CONFIG);
    pg_config_free(cfg);
}

/* The unit text for the configuration `more` (after BASE); `desc`, when
 * set, stands in for the description the names make.  *s stays for its
 * names (its configuration is freed). */
static char *unit_for(const char *more, const char *desc, struct pg_service *s)
{
    struct pg_error err = {0};
    struct passwd *pw;
    char *unit = NULL;
    struct pg_config *cfg = service_for(more, s, &pw);
    if (desc)
        snprintf(s->description, sizeof(s->description), "%s", desc);
    assert_int_equal(pg_service_unit_text(s, &unit, &err), 0);
    pg_config_free(cfg);
    s->cfg = NULL;
    return unit;
}

/* A % in the pool goes into Description= doubled (a specifier otherwise). */
static void test_description_specifier(void **state)
{
    (void)state;
    struct pg_service s;
    char *unit = unit_for("pool = 50%pool\nagent_name = a\nagent_dir = /srv/agent\n", NULL, &s);
    assert_non_null(strstr(unit, "Description=Azure Pipelines Agent (contoso.50%%pool.a)\n"));
    free(unit);
}

/* A description shortened to its buffer ends where it ends: a backslash
 * there would join the next line (After=) to Description=. */
static void test_description_backslash(void **state)
{
    (void)state;
    struct pg_service s;
    char more[800];
    /* "Azure Pipelines Agent (contoso." is 31 bytes: the pool's byte 567
     * is the description's last (599th) byte. */
    snprintf(more, sizeof(more), "pool = %0567d\\%040d\nagent_name = a\nagent_dir = /srv/agent\n",
             0, 0);
    char *unit = unit_for(more, NULL, &s);
    assert_int_equal(strlen(s.description), sizeof(s.description) - 1);
    assert_int_equal(s.description[sizeof(s.description) - 2], '\\');
    assert_null(strstr(unit, "\\\n"));
    assert_non_null(strstr(unit, "\nAfter=network.target\n"));
    free(unit);
}

/* Whatever the names hold (a host name may hold anything), the description
 * stays one line: no field of the unit comes from it. */
static void test_description_one_line(void **state)
{
    (void)state;
    struct pg_service s;
    char *unit = unit_for("pool = p\nagent_name = a\nagent_dir = /srv/agent\n",
                          "x\nUser=root\r\n[Service]\nExecStartPre=+/bin/sh -c id %n\x7f", &s);
    assert_non_null(strstr(unit, "\nDescription=x?User=root??[Service]?ExecStartPre=+/bin/sh -c id "
                                 "%%n?\n"));
    assert_null(strstr(unit, "\nUser=root"));
    assert_null(strstr(unit, "\nExecStartPre"));
    free(unit);
}

int main(int argc, char **argv)
{
    golden_dir = argc > 1 ? argv[1] : getenv("PG_GOLDEN_SERVICE");
    if (!golden_dir) {
        fprintf(stderr, "usage: test_service GOLDEN_DIR\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_unit_text),
        cmocka_unit_test(test_description_specifier),
        cmocka_unit_test(test_description_backslash),
        cmocka_unit_test(test_description_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
