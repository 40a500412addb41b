/*
 * The agent's registration files: byte for byte against golden files that
 * tests/fixtures/mkgolden_agent.py computed independently in Python, the
 * fixed width of every RSA parameter over fresh keys, and putting the files
 * in place: mode, atomic replacement, links refused, failures that leave the
 * previous files intact, removal.
 *
 *   test_agentfiles GOLDEN_DIR      (or PG_GOLDEN_AGENT=GOLDEN_DIR)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentfiles.h"
#include "enroll.h"
#include "fileio.h"
#include "internal.h"
#include "goldenkit.h"
#include "poolgate/poolgate.h"

#define BOM "\xef\xbb\xbf"
/* An account that owns nothing here, for the tests that run as root. */
#define OTHER_UID 65534

/* The settings mkgolden_agent.py rendered the golden files with (SETTINGS there). */
static const struct pg_agent_settings SETTINGS = {
    .agent_id = 17,
    .agent_name = "build-01",
    .pool_id = 7,
    .pool_name = "Build Hosts",
    .server_url = "https://dev.azure.com/contoso/",
    .client_id = "0b6a4c3e-1f2d-4e5f-8a9b-0c1d2e3f4a5b",
    .authorization_url = "https://vstoken.dev.azure.com/11111111-2222-3333-4444-555555555555",
};

/* Other settings, so that a replacement is told apart from the original. */
static const struct pg_agent_settings OTHER = {
    .agent_id = 18,
    .agent_name = "build-02",
    .pool_id = 8,
    .pool_name = "Release Hosts",
    .server_url = "https://dev.azure.com/fabrikam/",
    .client_id = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    .authorization_url = "https://vstoken.dev.azure.com/66666666-7777-8888-9999-000000000000",
};

/* The RSA parameters with their widths in bytes (0: minimal). */
static const struct {
    const char *json, *param;
    int width;
} PARAMS[] = {
    {"d", OSSL_PKEY_PARAM_RSA_D, 256},
    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1, 128},
    {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2, 128},
    {"exponent", OSSL_PKEY_PARAM_RSA_E, 0},
    {"inverseQ", OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 128},
    {"modulus", OSSL_PKEY_PARAM_RSA_N, 256},
    {"p", OSSL_PKEY_PARAM_RSA_FACTOR1, 128},
    {"q", OSSL_PKEY_PARAM_RSA_FACTOR2, 128},
};
#define NPARAMS (sizeof(PARAMS) / sizeof(PARAMS[0]))

static const char *golden_dir;
/* Whose files the tests write: the caller's own, or as root another
 * account (poolgate never writes an agent's files as root). */
static uid_t agent_uid;
static gid_t agent_gid;
static EVP_PKEY *golden_key;
static char top[64];   /* per test: a private temporary directory */
static char adir[128]; /* per test: top/agent, the agent_dir */

/* ---- helpers ------------------------------------------------------------- */

struct blob {
    char *data; /* NUL-terminated; NULL when the file could not be read */
    size_t len;
};

static struct blob slurp(const char *path)
{
    struct blob b = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return b;
    size_t cap = 4096;
    b.data = malloc(cap);
    for (size_t n; b.data && (n = fread(b.data + b.len, 1, cap - b.len - 1, f)) > 0;) {
        b.len += n;
        if (cap - b.len < 2)
            b.data = realloc(b.data, cap *= 2);
    }
    if (b.data)
        b.data[b.len] = '\0';
    fclose(f);
    return b;
}

static struct blob in_dir(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return slurp(path);
}

static struct blob golden(const char *name)
{
    struct blob b = in_dir(golden_dir, name);
    if (!b.data)
        fail_msg("cannot read golden file %s/%s (run tests/fixtures/mkgolden_agent.py)", golden_dir,
                 name);
    return b;
}

/* One of the agent's files parsed as JSON, after its byte order mark. */
static json_t *parse_agent_text(const char *text, size_t len)
{
    assert_true(len >= 3);
    assert_memory_equal(text, BOM, 3);
    json_error_t jerr;
    json_t *doc = json_loadb(text + 3, len - 3, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        fail_msg("not JSON: %s", jerr.text);
    return doc;
}

static void assert_file_is(const char *dir, const char *name, const char *text, size_t len)
{
    struct blob b = in_dir(dir, name);
    if (!b.data)
        fail_msg("%s/%s: %s", dir, name, strerror(errno));
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, text, len);
    free(b.data);
}

static void assert_files_are(const char *dir, const struct pg_agent_files *f)
{
    for (int i = 0; i < PG_AGENT_FILES; i++)
        assert_file_is(dir, pg_agent_file_names[i], f->text[i], f->len[i]);
}

/* Names in dir other than . and .., and how many end in ".poolgate-new". */
static int count_entries(const char *dir, int *leftovers)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0, tmp = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        size_t l = strlen(e->d_name), s = strlen(".poolgate-new");
        tmp += l > s && strcmp(e->d_name + l - s, ".poolgate-new") == 0;
    }
    closedir(d);
    if (leftovers)
        *leftovers = tmp;
    return n;
}

static void assert_no_leftovers(const char *dir)
{
    int leftovers = -1;
    count_entries(dir, &leftovers);
    assert_int_equal(leftovers, 0);
}

static bool exists_nofollow(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

static void render(EVP_PKEY *key, const struct pg_agent_settings *s, struct pg_agent_files *f)
{
    struct pg_error err = {0};
    int r = pg_agent_files_render(key, s, f, &err);
    if (r != 0)
        fail_msg("render: %d %s", r, err.msg);
}

static void write_as_me(const char *dir, const struct pg_agent_files *f)
{
    struct pg_error err = {0};
    int r = pg_agent_files_write(dir, agent_uid, agent_gid, f, &err);
    if (r != 0)
        fail_msg("write: %d %s", r, err.msg);
}

/* The parameter as OpenSSL gives it (goldenkit.h). */
static char *expected_param(EVP_PKEY *key, const char *param, int width)
{
    char *out = golden_param_b64(key, param, width);
    assert_non_null(out);
    return out;
}

/* ---- fixtures ------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    golden_key = golden_key_load(golden_dir);
    return golden_key ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(golden_key);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    strcpy(top, "/tmp/pg-agentfiles-XXXXXX");
    if (!mkdtemp(top))
        return -1;
    snprintf(adir, sizeof(adir), "%s/agent", top);
    if (mkdir(adir, 0755) < 0)
        return -1;
    /* As root: the agent's directory is its own, and reachable for it. */
    return geteuid() == 0 && (chmod(top, 0711) < 0 || chown(adir, agent_uid, agent_gid) < 0) ? -1
                                                                                             : 0;
}

/* Modes are restored first: a test may leave a directory unwritable. */
static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' && rm -rf '%s'", top, top);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- rendering ----------------------------------------------------------- */

static void test_render_golden(void **state)
{
    (void)state;
    struct pg_agent_files f;
    render(golden_key, &SETTINGS, &f);
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        struct blob want = golden(pg_agent_file_names[i]);
        if (f.len[i] != want.len || memcmp(f.text[i], want.data, want.len) != 0)
            fail_msg("%s differs from the golden file:\n--- got\n%s\n--- want\n%s",
                     pg_agent_file_names[i], f.text[i], want.data);
        free(want.data);
    }
    pg_agent_files_clear(&f);
    for (int i = 0; i < PG_AGENT_FILES; i++)
        assert_null(f.text[i]);
}

/* The golden key must keep testing the padding: some parameter is shorter
 * than its width (mkgolden_agent.py chose it so). */
static void test_golden_key_needs_padding(void **state)
{
    (void)state;
    int short_params = 0;
    for (size_t i = 0; i < NPARAMS; i++) {
        BIGNUM *bn = NULL;
        assert_true(EVP_PKEY_get_bn_param(golden_key, PARAMS[i].param, &bn));
        short_params += PARAMS[i].width && BN_num_bytes(bn) < PARAMS[i].width;
        BN_free(bn);
    }
    assert_true(short_params > 0);
}

static void test_public_key_golden(void **state)
{
    (void)state;
    struct pg_error err = {0};
    char *modulus = NULL, *exponent = NULL;
    assert_int_equal(pg_agent_public_key(golden_key, &modulus, &exponent, &err), 0);

    struct blob params = golden(".credentials_rsaparams");
    json_t *doc = parse_agent_text(params.data, params.len);
    assert_string_equal(modulus, json_string_value(json_object_get(doc, "modulus")));
    assert_string_equal(exponent, json_string_value(json_object_get(doc, "exponent")));
    json_decref(doc);
    free(params.data);

    struct blob body = golden("body-add.json");
    json_error_t jerr;
    doc = json_loadb(body.data, body.len, 0, &jerr);
    json_t *pub = json_object_get(json_object_get(doc, "authorization"), "publicKey");
    assert_string_equal(modulus, json_string_value(json_object_get(pub, "modulus")));
    assert_string_equal(exponent, json_string_value(json_object_get(pub, "exponent")));
    json_decref(doc);
    free(body.data);
    free(modulus);
    free(exponent);
}

/* Every parameter of a rendered key: its value, at its fixed width. */
static void check_rsaparams(EVP_PKEY *key, const struct pg_agent_files *f)
{
    json_t *doc =
        parse_agent_text(f->text[PG_AGENT_FILE_RSAPARAMS], f->len[PG_AGENT_FILE_RSAPARAMS]);
    assert_int_equal(json_object_size(doc), NPARAMS + 1);
    assert_string_equal(json_string_value(json_object_get(doc, "ContainerName")), "");
    for (size_t i = 0; i < NPARAMS; i++) {
        const char *got = json_string_value(json_object_get(doc, PARAMS[i].json));
        char *want = expected_param(key, PARAMS[i].param, PARAMS[i].width);
        assert_non_null(got);
        if (PARAMS[i].width)
            assert_int_equal(strlen(got), 4 * ((PARAMS[i].width + 2) / 3));
        if (strcmp(got, want) != 0)
            fail_msg("%s: got %s, want %s", PARAMS[i].json, got, want);
        free(want);
    }
    json_decref(doc);
}

static void test_fresh_keys_fixed_width(void **state)
{
    (void)state;
    struct pg_error err = {0};
    /* Key generation is slow under valgrind (PG_TEST_WRAPPER is set in that
     * stage); the golden key covers the leading zero either way. */
    int keys = getenv("PG_TEST_WRAPPER") ? 3 : 20;
    for (int k = 0; k < keys; k++) {
        EVP_PKEY *key = NULL;
        struct pg_agent_files f;
        assert_int_equal(pg_agent_key_new(&key, &err), 0);
        assert_int_equal(EVP_PKEY_get_bits(key), 2048);
        render(key, &SETTINGS, &f);
        check_rsaparams(key, &f);
        pg_agent_files_clear(&f);
        EVP_PKEY_free(key);
    }
}

/* ---- writing ------------------------------------------------------------- */

static void test_write_creates(void **state)
{
    (void)state;
    struct pg_agent_files f;
    render(golden_key, &SETTINGS, &f);
    assert_false(pg_agent_registered(adir));
    write_as_me(adir, &f);
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", adir, pg_agent_file_names[i]);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_uid, agent_uid);
    }
    assert_files_are(adir, &f);
    assert_int_equal(count_entries(adir, NULL), PG_AGENT_FILES);
    assert_no_leftovers(adir);
    assert_true(pg_agent_registered(adir));
    pg_agent_files_clear(&f);
}

/* A second write puts new files in by rename: a reader holding the old
 * file still sees it whole, never a mix. */
static void test_write_replaces(void **state)
{
    (void)state;
    struct pg_agent_files a, b;
    render(golden_key, &SETTINGS, &a);
    render(golden_key, &OTHER, &b);
    write_as_me(adir, &a);

    char path[512];
    struct stat before, after;
    snprintf(path, sizeof(path), "%s/.agent", adir);
    int old = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(old >= 0);
    assert_int_equal(fstat(old, &before), 0);

    write_as_me(adir, &b);
    assert_files_are(adir, &b);
    assert_no_leftovers(adir);
    assert_int_equal(stat(path, &after), 0);
    assert_true(after.st_ino != before.st_ino);

    char buf[1024];
    ssize_t n = pread(old, buf, sizeof(buf), 0);
    assert_int_equal(n, (ssize_t)a.len[PG_AGENT_FILE_AGENT]);
    assert_memory_equal(buf, a.text[PG_AGENT_FILE_AGENT], (size_t)n);
    close(old);
    pg_agent_files_clear(&a);
    pg_agent_files_clear(&b);
}

/* What an interrupted run left beside the final names is no obstacle. */
static void test_write_over_stale_temporaries(void **state)
{
    (void)state;
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s.poolgate-new", adir, pg_agent_file_names[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("torn", f);
        fclose(f);
    }
    struct pg_agent_files f;
    render(golden_key, &SETTINGS, &f);
    write_as_me(adir, &f);
    assert_files_are(adir, &f);
    assert_no_leftovers(adir);
    pg_agent_files_clear(&f);
}

static void test_registered(void **state)
{
    (void)state;
    char path[512];
    assert_false(pg_agent_registered(adir));
    snprintf(path, sizeof(path), "%s/missing", top);
    assert_false(pg_agent_registered(path));

    /* .agent must be a regular file: a directory of that name is not one. */
    snprintf(path, sizeof(path), "%s/.agent", adir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_false(pg_agent_registered(adir));
    assert_int_equal(rmdir(path), 0);

    struct pg_agent_files f;
    render(golden_key, &SETTINGS, &f);
    write_as_me(adir, &f);
    assert_true(pg_agent_registered(adir));
    pg_agent_files_clear(&f);
}

/* agent_dir itself a link: the account could point it anywhere. */
static void test_agent_dir_symlink(void **state)
{
    (void)state;
    char target[256], link[256];
    snprintf(target, sizeof(target), "%s/target", top);
    snprintf(link, sizeof(link), "%s/link", top);
    assert_int_equal(mkdir(target, 0755), 0);
    assert_int_equal(chown(target, agent_uid, agent_gid), 0);
    assert_int_equal(symlink(target, link), 0);

    struct pg_agent_files f;
    struct pg_error err = {0};
    render(golden_key, &SETTINGS, &f);
    assert_int_equal(pg_agent_files_write(link, agent_uid, agent_gid, &f, &err), PG_ERR_PERM);
    assert_non_null(strstr(err.msg, "is a symbolic link"));
    assert_int_equal(count_entries(target, NULL), 0);

    /* Files that are really there are neither seen nor removed through it. */
    write_as_me(target, &f);
    assert_false(pg_agent_registered(link));
    assert_int_equal(pg_agent_files_remove(link, agent_uid, agent_gid, &err), PG_ERR_PERM);
    assert_files_are(target, &f);
    pg_agent_files_clear(&f);
}

/*
 * A parent of agent_dir swapped for a link (the agent account may own
 * ~/agents in ~/agents/a1): the link leads into another tree, which is
 * neither written, checked, seen nor cleared through it; the message
 * names the link.
 */
static void test_agent_dir_parent_symlink(void **state)
{
    (void)state;
    char other[256], parent[256], dir[300], want[700];
    struct pg_agent_files f;
    struct pg_error err = {0};
    snprintf(other, sizeof(other), "%s/other", top);
    snprintf(parent, sizeof(parent), "%s/agents", top);
    snprintf(dir, sizeof(dir), "%s/a1", parent);
    assert_int_equal(mkdir(other, 0755), 0);
    snprintf(want, sizeof(want), "%s/a1", other);
    assert_int_equal(mkdir(want, 0755), 0);
    assert_int_equal(chown(want, agent_uid, agent_gid), 0);
    assert_int_equal(symlink(other, parent), 0);
    render(golden_key, &SETTINGS, &f);
    snprintf(want, sizeof(want),
             "agent_dir %s: %s is a symbolic link; poolgate does not follow links in agent_dir",
             dir, parent);
    assert_int_equal(pg_agent_files_check(dir, agent_uid, agent_gid, &err), PG_ERR_PERM);
    assert_string_equal(err.msg, want);
    assert_int_equal(pg_agent_files_write(dir, agent_uid, agent_gid, &f, &err), PG_ERR_PERM);
    assert_string_equal(err.msg, want);
    snprintf(want, sizeof(want), "%s/a1", other);
    assert_int_equal(count_entries(want, NULL), 0);
    write_as_me(want, &f);
    assert_false(pg_agent_registered(dir));
    assert_int_equal(pg_agent_files_remove(dir, agent_uid, agent_gid, &err), PG_ERR_PERM);
    assert_files_are(want, &f);
    pg_agent_files_clear(&f);
}

/* One walk of pg_dir_open_nofollow / pg_dir_walk_nofollow: its result,
 * the link it names, and (on success) the directory it opened. */
static void expect_dir(int (*open_dir)(const char *, int *, size_t *), const char *path, int want,
                       const char *link, const char *same_as)
{
    int fd = -1;
    size_t len = 99;
    struct stat a, b;
    assert_int_equal(open_dir(path, &fd, &len), want);
    if (want == -ELOOP) {
        assert_int_equal(len, strlen(link));
        assert_memory_equal(path, link, len);
    }
    if (want != 0)
        return;
    assert_int_equal(fstat(fd, &a), 0);
    assert_int_equal(stat(same_as, &b), 0);
    assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    /* Opened for reading, not O_PATH: it can be listed and locked. */
    assert_int_equal(flock(fd, LOCK_SH), 0);
    close(fd);
}

/* Both ways of reaching a directory without links: openat2 where the
 * kernel has it, and the walk it falls back to (called directly). */
static void test_dir_nofollow(void **state)
{
    (void)state;
    int (*const ways[])(const char *, int *, size_t *) = {pg_dir_open_nofollow,
                                                          pg_dir_walk_nofollow};
    char a[128], b[160], c[192], link[160], viaa[200], deep[260], file[160], mid[220];
    snprintf(a, sizeof(a), "%s/a", top);
    snprintf(b, sizeof(b), "%s/b", a);
    snprintf(c, sizeof(c), "%s/c", b);
    snprintf(link, sizeof(link), "%s/l", top);
    snprintf(viaa, sizeof(viaa), "%s/b/c", link);
    snprintf(deep, sizeof(deep), "%s//b/./c/", a);
    snprintf(file, sizeof(file), "%s/f", top);
    snprintf(mid, sizeof(mid), "%s/f/x", top);
    assert_int_equal(mkdir(a, 0755), 0);
    assert_int_equal(mkdir(b, 0711), 0);
    assert_int_equal(mkdir(c, 0755), 0);
    assert_int_equal(symlink(a, link), 0);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
        expect_dir(ways[i], c, 0, NULL, c);
        expect_dir(ways[i], deep, 0, NULL, c); /* repeated '/' and '.' */
        expect_dir(ways[i], "/", 0, NULL, "/");
        expect_dir(ways[i], viaa, -ELOOP, link, NULL); /* a link in a parent */
        expect_dir(ways[i], link, -ELOOP, link, NULL); /* the last one a link */
        expect_dir(ways[i], file, -ENOTDIR, NULL, NULL);
        expect_dir(ways[i], mid, -ENOTDIR, NULL, NULL);
        expect_dir(ways[i], "relative/path", -EINVAL, NULL, NULL);
        snprintf(mid, sizeof(mid), "%s/missing/x", top);
        expect_dir(ways[i], mid, -ENOENT, NULL, NULL);
        snprintf(mid, sizeof(mid), "%s/f/x", top);
    }
    struct pg_error err = {0};
    int fd = -1;
    assert_int_equal(pg_open_dir_nolinks(viaa, "agent_dir", &fd, &err), PG_ERR_PERM);
    char want[700];
    snprintf(want, sizeof(want),
             "agent_dir %s: %s is a symbolic link; poolgate does not follow links in agent_dir",
             viaa, link);
    assert_string_equal(err.msg, want);
    assert_int_equal(pg_open_dir_nolinks(c, "agent_dir", &fd, &err), 0);
    close(fd);
}

/* The audit line's quoting (pg_audit_field, shared by the module and the
 * CLI): values that try to end their quotes, add a field or a line. */
static void test_audit_quoting(void **state)
{
    (void)state;
    char line[512], small[24];
    struct pg_config cfg = {.organization_url = (char *)(uintptr_t) "https://dev.azure.com/c",
                            .pool = (char *)(uintptr_t) "Build \"Hosts\""};
    char *roles[] = {(char *)(uintptr_t) "r"};
    struct pg_identity id = {.oid = (char *)(uintptr_t) "o\" outcome=granted\n",
                             .tid = (char *)(uintptr_t) "72f988bf",
                             .name = (char *)(uintptr_t) "N\x1b[2J\\\r\xc2\x9b",
                             .roles = {roles, 1}};
    pg_enroll_audit(line, sizeof(line),
                    &(struct pg_enroll_audit){"register", "azagent", &id, &cfg, "a1", 12,
                                              "registered", NULL, NULL});
    assert_string_equal(line,
                        "register user=azagent operator_oid=\"o\\\" outcome=granted?\" "
                        "tid=72f988bf name=\"N?[2J\\\\??\" organization=https://dev.azure.com/c "
                        "pool=\"Build \\\"Hosts\\\"\" agent=\"a1\" agent_id=12 "
                        "outcome=registered reason=\"ok\" code=- correlation_id=-");
    /* A failure the provider caused carries its code and correlation id. */
    struct pg_refusal ref = {.cls = "config_error",
                             .code = "AADSTS65001",
                             .correlation = "0a1b-2c3d",
                             .fix = "grant admin consent"};
    pg_enroll_audit(
        line, sizeof(line),
        &(struct pg_enroll_audit){"register", "x=y", NULL, &cfg, "", 0, "failed", "why", &ref});
    assert_non_null(strstr(line, "register user=\"x=y\" operator_oid=- tid=- name=\"-\""));
    assert_non_null(strstr(line, "agent=\"\" agent_id=0 outcome=failed reason=\"why\" "
                                 "code=AADSTS65001 correlation_id=0a1b-2c3d"));
    /* Cut to the room left: the quote still closes, no escape is split. */
    snprintf(small, sizeof(small), "auth");
    pg_audit_field(small, sizeof(small), "name", "\"\"\"\"\"\"\"\"\"\"\"\"", true);
    assert_string_equal(small, "auth name=\"\\\"\\\"\\\"\\\"\\\"\"");
    pg_audit_field(small, sizeof(small), "reason", "x", true); /* no room: left out */
    assert_int_equal(strlen(small), 22);
}

static void test_agent_file_symlink(void **state)
{
    (void)state;
    char real[256], path[512];
    snprintf(real, sizeof(real), "%s/real-agent", top);
    FILE *fp = fopen(real, "w");
    assert_non_null(fp);
    fputs(BOM "{}", fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/.agent", adir);
    assert_int_equal(symlink(real, path), 0);
    assert_false(pg_agent_registered(adir));

    /* A dangling link neither. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink("/nonexistent/poolgate", path), 0);
    assert_false(pg_agent_registered(adir));
}

/* A failed write leaves the previous files exactly as they were. */
static void check_failed_write_keeps(uid_t uid, gid_t gid)
{
    struct pg_agent_files a, b;
    struct pg_error err = {0};
    render(golden_key, &SETTINGS, &a);
    render(golden_key, &OTHER, &b);
    write_as_me(adir, &a);
    assert_int_equal(chmod(adir, 0500), 0);
    assert_int_equal(pg_agent_files_write(adir, uid, gid, &b, &err), PG_ERR_IO);
    assert_non_null(strstr(err.msg, adir));
    assert_int_equal(chmod(adir, 0755), 0);
    assert_files_are(adir, &a);
    assert_int_equal(count_entries(adir, NULL), PG_AGENT_FILES);
    assert_true(pg_agent_registered(adir));
    pg_agent_files_clear(&a);
    pg_agent_files_clear(&b);
}

/* As the agent account, whose own permissions apply: even when the caller
 * is root, a directory the account cannot write refuses the files. */
static void test_write_fails_unwritable(void **state)
{
    (void)state;
    check_failed_write_keeps(agent_uid, agent_gid);
}

/* Only the agent account's own directory, and never as root. */
static void test_write_refuses_foreign_dir_and_root(void **state)
{
    (void)state;
    struct pg_agent_files f;
    struct pg_error err = {0};
    render(golden_key, &SETTINGS, &f);
    assert_int_equal(pg_agent_files_check(adir, agent_uid, agent_gid, &err), 0);
    assert_int_equal(count_entries(adir, NULL), 0);
    assert_int_equal(pg_agent_files_check(adir, 0, 0, &err), PG_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "must not be root"));
    assert_int_equal(pg_agent_files_write(adir, 0, 0, &f, &err), PG_ERR_IO);
    if (geteuid() == 0) {
        assert_int_equal(chown(adir, 0, 0), 0);
        assert_int_equal(pg_agent_files_check(adir, agent_uid, agent_gid, &err), PG_ERR_CONFIG);
        assert_non_null(strstr(err.msg, "not owned by the agent account"));
        assert_int_equal(pg_agent_files_write(adir, agent_uid, agent_gid, &f, &err), PG_ERR_CONFIG);
    }
    assert_int_equal(count_entries(adir, NULL), 0);
    pg_agent_files_clear(&f);
}

static void test_write_as_agent_account(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    assert_int_equal(chmod(top, 0711), 0);
    assert_int_equal(chown(adir, OTHER_UID, OTHER_UID), 0);
    struct pg_agent_files f;
    struct pg_error err = {0};
    render(golden_key, &SETTINGS, &f);
    assert_int_equal(pg_agent_files_write(adir, OTHER_UID, OTHER_UID, &f, &err), 0);
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        char path[512];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", adir, pg_agent_file_names[i]);
        assert_int_equal(lstat(path, &st), 0);
        assert_int_equal(st.st_uid, OTHER_UID);
        assert_int_equal(st.st_gid, OTHER_UID);
        assert_int_equal(st.st_mode & 07777, 0600);
    }
    assert_files_are(adir, &f);
    assert_int_equal(pg_agent_files_remove(adir, OTHER_UID, OTHER_UID, &err), 0);
    assert_false(pg_agent_registered(adir));
    pg_agent_files_clear(&f);
}

/* The process blocked in flock() on the directory `st` names, from
 * /proc/locks ("N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE ..."); 0 while
 * there is none. */
static pid_t lock_waiter(const struct stat *st)
{
    FILE *f = fopen("/proc/locks", "r");
    char line[256];
    pid_t found = 0;
    while (f && !found && fgets(line, sizeof(line), f)) {
        int pid;
        unsigned maj, min;
        unsigned long ino;
        if (sscanf(line, "%*d: -> FLOCK %*s %*s %d %x:%x:%lu", &pid, &maj, &min, &ino) == 4 &&
            maj == major(st->st_dev) && min == minor(st->st_dev) && ino == st->st_ino)
            found = pid;
    }
    if (f)
        fclose(f);
    return found;
}

/* The line of /proc/PID/FILE that starts with `key`, or "". */
static void proc_line(pid_t pid, const char *file, const char *key, char *out, size_t n)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, strlen(key)) == 0) {
            snprintf(out, n, "%s", line);
            break;
        }
    if (f)
        fclose(f);
}

/* Become the agent account as an ordinary process of it: dumpable, and
 * allowed core files. */
static int become_other(void)
{
    struct rlimit all = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_CORE, &all) < 0 || setgroups(0, NULL) < 0 || setgid(OTHER_UID) < 0 ||
        setuid(OTHER_UID) < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
        return -1;
    return 0;
}

/*
 * The writer child, seen by the agent account: a process of the account
 * (dumpable, core files allowed) writes its own files; while the child waits
 * for the directory lock, which this test holds, its core file limit is 0
 * and the account can neither read its environment nor attach to it,
 * though it can read the parent's.
 */
static void test_writer_child_not_traceable(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct pg_agent_files f;
    struct stat dst;
    char limit[256] = "", uids[256] = "", ppid[256] = "", want[64];
    render(golden_key, &SETTINGS, &f);
    int dir = open(adir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dir >= 0);
    assert_int_equal(fstat(dir, &dst), 0);
    assert_int_equal(flock(dir, LOCK_EX), 0);

    pid_t caller = fork();
    assert_true(caller >= 0);
    if (caller == 0) {
        struct pg_error err = {0};
        if (become_other() < 0)
            _exit(10);
        _exit(pg_agent_files_write(adir, OTHER_UID, OTHER_UID, &f, &err) == 0 ? 0 : 11);
    }
    pid_t writer = 0;
    for (int i = 0; i < 2000 && !(writer = lock_waiter(&dst)); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);

    int seen = -1;
    if (writer > 0) {
        proc_line(writer, "limits", "Max core file size", limit, sizeof(limit));
        proc_line(writer, "status", "Uid:", uids, sizeof(uids));
        proc_line(writer, "status", "PPid:", ppid, sizeof(ppid));
        /* What the agent account can do to the child, and to its parent. */
        pid_t probe = fork();
        if (probe == 0) {
            char env[64];
            int bits = 0, fd;
            if (setgroups(0, NULL) < 0 || setgid(OTHER_UID) < 0 || setuid(OTHER_UID) < 0)
                _exit(100);
            snprintf(env, sizeof(env), "/proc/%d/environ", (int)writer);
            if ((fd = open(env, O_RDONLY)) >= 0 || errno != EACCES)
                bits |= 1;
            if (fd >= 0)
                close(fd);
            if (ptrace(PTRACE_SEIZE, writer, NULL, NULL) == 0 || errno != EPERM)
                bits |= 2; /* a seized tracee is let go when this process ends */
            snprintf(env, sizeof(env), "/proc/%d/environ", (int)caller);
            if ((fd = open(env, O_RDONLY)) < 0)
                bits |= 4;
            else
                close(fd);
            _exit(bits);
        }
        int st = -1;
        if (probe > 0 && waitpid(probe, &st, 0) == probe && WIFEXITED(st))
            seen = WEXITSTATUS(st);
    }
    assert_int_equal(flock(dir, LOCK_UN), 0);
    close(dir);
    int status = -1;
    assert_int_equal(waitpid(caller, &status, 0), caller);

    assert_true(writer > 0);
    snprintf(want, sizeof(want), "PPid:\t%d\n", (int)caller);
    assert_string_equal(ppid, want);
    snprintf(want, sizeof(want), "Uid:\t%d\t%d\t%d\t%d\n", OTHER_UID, OTHER_UID, OTHER_UID,
             OTHER_UID);
    assert_string_equal(uids, want);
    assert_string_equal(limit,
                        "Max core file size        0                    0                    "
                        "bytes     \n");
    assert_int_equal(seen, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_files_are(adir, &f);
    pg_agent_files_clear(&f);
}

/* A write that fails after the first file was written removes what it
 * wrote (a copy of the private key) and leaves the previous files.  The
 * second temporary name is taken by a non-empty directory, which neither
 * unlinkat nor O_EXCL gets past. */
static void test_write_fails_midway_cleans_up(void **state)
{
    (void)state;
    struct pg_agent_files a, b;
    struct pg_error err = {0};
    char block[512], inner[600];
    render(golden_key, &SETTINGS, &a);
    render(golden_key, &OTHER, &b);
    write_as_me(adir, &a);
    snprintf(block, sizeof(block), "%s/%s.poolgate-new", adir,
             pg_agent_file_names[PG_AGENT_FILE_CREDENTIALS]);
    snprintf(inner, sizeof(inner), "%s/x", block);
    assert_int_equal(mkdir(block, 0700), 0);
    assert_int_equal(mkdir(inner, 0700), 0);

    assert_int_equal(pg_agent_files_write(adir, agent_uid, agent_gid, &b, &err), PG_ERR_IO);
    assert_files_are(adir, &a);
    char first[512];
    snprintf(first, sizeof(first), "%s.poolgate-new", pg_agent_file_names[0]);
    assert_false(exists_nofollow(adir, first));
    assert_int_equal(count_entries(adir, NULL), PG_AGENT_FILES + 1); /* + the directory */
    pg_agent_files_clear(&a);
    pg_agent_files_clear(&b);
}

/* ---- the service files: what the agent account plants in bin ------------ */

/* top/agent/NAME, the agent account's. */
static void plant(const char *name, const char *text, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", adir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chown(path, agent_uid, agent_gid), 0);
}

static void plant_dir(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", adir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(chown(path, agent_uid, agent_gid), 0);
}

static void plant_link(const char *target, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", adir, name);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(lchown(path, agent_uid, agent_gid), 0);
}

static void unplant(const char *name)
{
    char cmd[640];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", adir, name);
    assert_int_equal(system(cmd), 0);
}

/* The copy fails in bounded time, and nothing is copied. */
static void service_files_refused(const char *why)
{
    struct pg_error err = {0};
    time_t start = time(NULL);
    /* (PG_ERR_IO for what bin holds, PG_ERR_PERM for a link on the way.) */
    int r = pg_agent_service_files(adir, agent_uid, agent_gid, "u.service", &err);
    if (r != PG_ERR_IO && r != PG_ERR_PERM)
        fail_msg("%s: %d (%s), not a refusal", why, r, err.msg);
    assert_true(time(NULL) - start < 10);
    struct blob b = in_dir(adir, "runsvc.sh");
    if (b.data)
        fail_msg("%s: runsvc.sh was copied", why);
    b = in_dir(adir, ".service");
    if (b.data)
        fail_msg("%s: .service was written", why);
}

/* runsvc.sh as a FIFO (the copy would wait for a writer), a link (to a
 * file only root may read), larger than the limit, or bin a link out of
 * agent_dir or through a second link: refused; a plain one is copied
 * over a link planted in runsvc.sh's place, which is not followed. */
static void test_service_files_hostile_bin(void **state)
{
    (void)state;
    char path[512], secret[512];
    plant_dir("bin");
    snprintf(path, sizeof(path), "%s/bin/runsvc.sh", adir);
    assert_int_equal(mkfifo(path, 0644), 0);
    assert_int_equal(chown(path, agent_uid, agent_gid), 0);
    service_files_refused("a FIFO");
    unplant("bin/runsvc.sh");

    snprintf(secret, sizeof(secret), "%s/secret", top);
    int fd = open(secret, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "root only\n", 10), 10);
    assert_int_equal(close(fd), 0);
    plant_link(secret, "bin/runsvc.sh");
    service_files_refused("a link");
    unplant("bin/runsvc.sh");

    size_t big = 16 * 1024 + 1;
    char *text = calloc(1, big);
    assert_non_null(text);
    plant("bin/runsvc.sh", text, big);
    free(text);
    service_files_refused("a file over the limit");
    unplant("bin");

    plant_link("/usr/bin", "bin");
    service_files_refused("bin a link out of agent_dir");
    unplant("bin");
    plant_link("/usr/bin", "bin.1.2.3");
    plant_link("bin.1.2.3", "bin");
    service_files_refused("bin.<version> itself a link");
    unplant("bin");
    unplant("bin.1.2.3");

    /* A plain one, over a link in runsvc.sh's place. */
    plant_dir("bin.1.2.3");
    plant("bin.1.2.3/runsvc.sh", "#!/bin/sh\n", 10);
    plant_link("bin.1.2.3", "bin");
    plant_link(secret, "runsvc.sh");
    struct pg_error err = {0};
    assert_int_equal(pg_agent_service_files(adir, agent_uid, agent_gid, "u.service", &err), 0);
    struct stat st;
    snprintf(path, sizeof(path), "%s/runsvc.sh", adir);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_uid, agent_uid);
    struct blob b = in_dir(adir, "runsvc.sh"), sec = slurp(secret);
    assert_string_equal(b.data, "#!/bin/sh\n");
    assert_string_equal(sec.data, "root only\n");
    free(b.data);
    free(sec.data);
}

static void test_remove(void **state)
{
    (void)state;
    struct pg_agent_files f;
    struct pg_error err = {0};
    char other[512];
    render(golden_key, &SETTINGS, &f);
    write_as_me(adir, &f);
    snprintf(other, sizeof(other), "%s/config.sh", adir);
    FILE *fp = fopen(other, "w");
    assert_non_null(fp);
    fclose(fp);

    assert_int_equal(pg_agent_files_remove(adir, agent_uid, agent_gid, &err), 0);
    for (int i = 0; i < PG_AGENT_FILES; i++)
        assert_false(exists_nofollow(adir, pg_agent_file_names[i]));
    assert_false(pg_agent_registered(adir));
    assert_true(exists_nofollow(adir, "config.sh"));
    assert_int_equal(count_entries(adir, NULL), 1);

    /* Absent files are fine: removing again succeeds. */
    assert_int_equal(pg_agent_files_remove(adir, agent_uid, agent_gid, &err), 0);
    pg_agent_files_clear(&f);
}

int main(int argc, char **argv)
{
    golden_dir = argc > 1 ? argv[1] : getenv("PG_GOLDEN_AGENT");
    agent_uid = geteuid() == 0 ? OTHER_UID : getuid();
    agent_gid = geteuid() == 0 ? OTHER_UID : getgid();
    if (!golden_dir) {
        fprintf(stderr, "usage: %s GOLDEN_DIR (or PG_GOLDEN_AGENT=GOLDEN_DIR)\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_golden),
        cmocka_unit_test(test_golden_key_needs_padding),
        cmocka_unit_test(test_public_key_golden),
        cmocka_unit_test(test_fresh_keys_fixed_width),
        cmocka_unit_test_setup_teardown(test_write_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_over_stale_temporaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_dir_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_dir_parent_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_nofollow, setup, teardown),
        cmocka_unit_test(test_audit_quoting),
        cmocka_unit_test_setup_teardown(test_agent_file_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_foreign_dir_and_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_as_agent_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_child_not_traceable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_midway_cleans_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_files_hostile_bin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
