/*
 * bench_pam: what pam_poolgate.so costs a login on the fast path, and what
 * loading it costs the host process in memory.
 *
 *   LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=DIR \
 *       bench_pam MODULE [N]          (default N = 2000)
 *
 * Prepares a stored token set and a cached key set as the helper leaves
 * them (an Entra-like RS256 id_token, a key set of three 2048-bit keys),
 * then times N logins (each in a fresh PAM handle) for a service with
 * pam_poolgate.so and N for one with pam_permit.so alone: pam_authenticate
 * alone, and pam_authenticate followed by pam_acct_mgmt (as sshd calls
 * them; the account phase verifies the token again).  It prints median and
 * p99 of each and the difference, in wall-clock time and in the thread's
 * CPU time (which a busy machine disturbs less); beside them the CPU time
 * of pam_start + pam_end (where the host loads and unloads the module, so
 * costs moved there stay visible) and the page faults per authentication
 * (each first touch of a page of the freshly mapped module may be one).
 * The helper path does not exist: the fast path must not need it.
 * Memory: VmRSS before and after the first handle loads the module, and
 * after its first authentication (libcrypto and jansson are already
 * loaded, as in sshd).
 *
 * Beside them, the floor: what no implementation of the fast path with
 * every check kept can skip, done N times in a loop on the same files.
 * The two passwd look-ups (the account logging in, helper_user), the
 * system calls that open and check the configuration, the stored set and
 * the cached key set (as strace shows the module making them), and one
 * RS256 verification with the key built afresh from n and e (the module
 * is loaded anew for every handle, so no key survives).  No parsing, no
 * policy, no PAM; warm caches.  What the module adds above it is its own
 * work.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oidc.h"
#include "poolgate/poolgate.h"
#include "store.h"
#include "../tests/unit/testkit.h"

#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CID "6e74172b-be56-4843-9ff4-e66a39bb12e3"
#define ISS "https://login.microsoftonline.com/" TID "/v2.0"

static char work[64] = "/tmp/pg-bench-pam-XXXXXX";

/* For the floor: the signing key's modulus and exponent, the token. */
static BIGNUM *sign_n, *sign_e;
static char *bench_token;

static int no_conv(int n, const struct pam_message **m, struct pam_response **r, void *d)
{
    (void)n, (void)m, (void)r, (void)d;
    return PAM_CONV_ERR; /* the fast path never talks to the user */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static double now_us(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
    chmod(path, mode);
}

/* The stored set and the key cache, as the helper would have left them. */
static void prepare(const char *user)
{
    char dir[128], text[2048], *jwk[3];
    EVP_PKEY *keys[3];
    for (int i = 0; i < 3; i++) {
        char kid[16];
        snprintf(kid, sizeof(kid), "key-%d", i);
        keys[i] = EVP_RSA_gen(2048);
        jwk[i] = tk_jwk(keys[i], kid, ",\"use\":\"sig\"");
    }
    char *jwks = malloc(16384);
    snprintf(jwks, 16384, "{\"keys\":[%s,%s,%s]}", jwk[0], jwk[1], jwk[2]);
    long now = (long)time(NULL);
    char claims[1024];
    snprintf(claims, sizeof(claims),
             "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,"
             "\"name\":\"Alice Operator\",\"oid\":\"5f0c2a3e-1b4d-4c6e-8f70-9a1b2c3d4e5f\","
             "\"preferred_username\":\"alice.operator@contoso.example\","
             "\"roles\":[\"AgentPool.Enroll\",\"Build.Admin\"],"
             "\"sub\":\"AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ\",\"tid\":\"" TID "\","
             "\"ver\":\"2.0\"}",
             now - 60, now - 60, now + 3600);
    char *token =
        tk_sign(keys[1], "RS256", "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"key-1\"}", claims);
    if (!EVP_PKEY_get_bn_param(keys[1], "n", &sign_n) ||
        !EVP_PKEY_get_bn_param(keys[1], "e", &sign_e) || !(bench_token = strdup(token)))
        exit(2);

    snprintf(dir, sizeof(dir), "%s/state", work);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/cache", work);
    mkdir(dir, 0700);
    snprintf(text, sizeof(text),
             "issuer = " ISS "\nclient_id = " CID "\ntenant = " TID "\n"
             "required_roles = AgentPool.Enroll\nstate_dir = %s/state\ncache_dir = %s/cache\n"
             "helper_user = %s\n",
             work, work, user);
    write_file(work, "poolgate.conf", text, 0600);

    struct pg_error err = {0};
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    struct pg_keycache_entry e = {
        .issuer = (char *)ISS, .jwks = jwks, .fetched_at = now, .last_attempt = now};
    int store = -1;
    snprintf(dir, sizeof(dir), "%s/state", work);
    struct pg_tokenset ts = {.id_token = token, .stored_at = now};
    if (pg_keycache_save(fd, &e, &err) < 0 ||
        pg_store_open(dir, getuid(), true, geteuid(), &store, &err) < 0 ||
        pg_store_write(store, &ts, &err) < 0) {
        fprintf(stderr, "bench_pam: %s\n", err.msg);
        exit(2);
    }
    close(fd);
    close(store);
    free(token);
    free(jwks);
    for (int i = 0; i < 3; i++) {
        free(jwk[i]);
        EVP_PKEY_free(keys[i]);
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Timings of N logins, each sorted: [clock][0] authenticate, [clock][1]
 * authenticate + account; clock 0 is wall-clock time, 1 the thread's CPU time.
 * handle: pam_start + pam_end (loading and unloading the modules), CPU time;
 * minflt: page faults taken during all the authentications. */
struct timings {
    double *us[2][2];
    double *handle;
    long minflt;
};

static long minflt_now(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_minflt : 0;
}

static void sort_us(double *us, int n)
{
    qsort(us, (size_t)n, sizeof(double), cmp);
}

/* One login in a fresh handle: authenticate, then account. */
static int login(const char *service, const char *user, struct timings *t, int i)
{
    static const clockid_t clocks[2] = {CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID};
    struct pam_conv conv = {no_conv, NULL};
    pam_handle_t *ph = NULL;
    double t0[2], t1[2], t2[2], h0 = now_us(CLOCK_THREAD_CPUTIME_ID), h1;
    if (pam_start(service, user, &conv, &ph) != PAM_SUCCESS)
        return -1;
    h1 = now_us(CLOCK_THREAD_CPUTIME_ID);
    long f0 = minflt_now();
    for (int c = 0; c < 2; c++)
        t0[c] = now_us(clocks[c]);
    int r = pam_authenticate(ph, 0);
    for (int c = 1; c >= 0; c--)
        t1[c] = now_us(clocks[c]);
    t->minflt += minflt_now() - f0;
    if (r == PAM_SUCCESS)
        r = pam_acct_mgmt(ph, 0);
    for (int c = 1; c >= 0; c--)
        t2[c] = now_us(clocks[c]);
    double h2 = now_us(CLOCK_THREAD_CPUTIME_ID);
    pam_end(ph, r);
    t->handle[i] = (h1 - h0) + (now_us(CLOCK_THREAD_CPUTIME_ID) - h2);
    if (r != PAM_SUCCESS) {
        fprintf(stderr, "bench_pam: %s: %s\n", service, pam_strerror(NULL, r));
        return -1;
    }
    for (int c = 0; c < 2; c++) {
        t->us[c][0][i] = t1[c] - t0[c];
        t->us[c][1][i] = t2[c] - t0[c];
    }
    return 0;
}

/* N logins; sorts the timings. */
static int run(const char *service, const char *user, int n, struct timings *t)
{
    for (int i = 0; i < n; i++)
        if (login(service, user, t, i) < 0)
            return -1;
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++)
            sort_us(t->us[c][k], n);
    sort_us(t->handle, n);
    return 0;
}

static int alloc_timings(struct timings *t, int n)
{
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++)
            if (!(t->us[c][k] = calloc((size_t)n, sizeof(double))))
                return -1;
    return (t->handle = calloc((size_t)n, sizeof(double))) ? 0 : -1;
}

static void free_timings(struct timings *t)
{
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++)
            free(t->us[c][k]);
    free(t->handle);
}

static void report(const struct timings *base, const struct timings *gate, double *const floor[2],
                   int n)
{
    static const char *const what[2] = {"pam_authenticate", "authenticate + acct_mgmt"};
    static const char *const clock[2] = {"wall-clock", "CPU time"};
    printf("%d logins each (fresh handle per login), pam_poolgate.so fast path against "
           "pam_permit.so alone:\n",
           n);
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 2; c++) {
            const double *b = base->us[c][k], *g = gate->us[c][k];
            printf("  %-24s %-10s added: median %7.1f us   p99 %7.1f us   (permit alone: "
                   "median %.1f us)\n",
                   what[k], clock[c], g[n / 2] - b[n / 2], g[n * 99 / 100] - b[n * 99 / 100],
                   b[n / 2]);
        }
    printf("  pam_start + pam_end     CPU time   added: median %7.1f us (loading and unloading the "
           "module, outside the figures above)\n",
           gate->handle[n / 2] - base->handle[n / 2]);
    printf("  page faults per pam_authenticate: %.2f (permit alone: %.2f)\n",
           (double)gate->minflt / n, (double)base->minflt / n);
    printf("  goal: pam_authenticate adds at most 80 us at the median and 150 us at p99\n");
    printf("  floor: the passwd look-ups, system calls and RS256 verification no fast path can "
           "skip (see bench_pam.c):\n");
    for (int c = 0; c < 2; c++)
        printf("    %-10s: median %7.1f us   p99 %7.1f us   (pam_authenticate adds %.1f us above "
               "it at the median)\n",
               clock[c], floor[c][n / 2], floor[c][n * 99 / 100],
               gate->us[c][0][n / 2] - base->us[c][0][n / 2] - floor[c][n / 2]);
}

/* ---- the floor (see the top) -------------------------------------------- */

/* A file opened through its directory, checked and read whole. */
static int floor_read(int dir, const char *name, char *buf, size_t bufsz)
{
    struct stat st;
    int fd = openat(dir, name, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    int ok = fd >= 0 && fstat(fd, &st) == 0 && (size_t)st.st_size < bufsz &&
             read(fd, buf, (size_t)st.st_size) == st.st_size;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

/* The configuration as the module reaches it: each directory above its own
 * checked by name from / down, its own opened O_PATH and checked, the file
 * opened through that. */
static int floor_config(const char *path, char *buf, size_t bufsz)
{
    struct stat st;
    char dir[256];
    int r = fstatat(AT_FDCWD, "/", &st, AT_SYMLINK_NOFOLLOW);
    snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path), path);
    for (char *p = strchr(dir + 1, '/'); p && r == 0; p = strchr(p + 1, '/')) {
        *p = '\0';
        r = fstatat(AT_FDCWD, dir, &st, AT_SYMLINK_NOFOLLOW);
        *p = '/';
    }
    int d = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (r == 0 && d >= 0 && fstat(d, &st) == 0)
        r = floor_read(d, strrchr(path, '/') + 1, buf, bufsz);
    if (d >= 0)
        close(d);
    return d >= 0 ? r : -1;
}

/* A directory opened and checked, then `name` read through it; with `sub`,
 * that subdirectory checked by name first (the stored set's <uid>). */
static int floor_dir(const char *path, const char *sub, const char *name, char *buf, size_t bufsz)
{
    struct stat st;
    int d = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_DIRECTORY);
    int r = d >= 0 && fstat(d, &st) == 0 && (!sub || fstatat(d, sub, &st, AT_SYMLINK_NOFOLLOW) == 0)
                ? floor_read(d, name, buf, bufsz)
                : -1;
    if (d >= 0)
        close(d);
    return r;
}

/* RS256 on the stored token, the key built from n and e. */
static int floor_verify(void)
{
    const char *dot = strrchr(bench_token, '.');
    unsigned char md[32], sig[512];
    size_t siglen = 0;
    RSA *rsa = RSA_new();
    BIGNUM *n = BN_dup(sign_n), *e = BN_dup(sign_e);
    int ok = rsa && n && e && RSA_set0_key(rsa, n, e, NULL) == 1;
    if (!ok) {
        BN_free(n);
        BN_free(e);
    }
    ok = ok && SHA256((const unsigned char *)bench_token, (size_t)(dot - bench_token), md) &&
         pg_b64url_decode(dot + 1, strlen(dot + 1), sig, &siglen) == 0 &&
         RSA_verify(NID_sha256, md, sizeof(md), sig, (unsigned)siglen, rsa) == 1;
    RSA_free(rsa);
    return ok ? 0 : -1;
}

/* N rounds of the floor; us[0] wall-clock, us[1] CPU time, each sorted. */
static int floor_run(const char *user, int n, double *us[2])
{
    char conf[128], state[128], cache[128], uid[16], tokens[64], keys[128], buf[16384];
    snprintf(conf, sizeof(conf), "%s/poolgate.conf", work);
    snprintf(state, sizeof(state), "%s/state", work);
    snprintf(cache, sizeof(cache), "%s/cache", work);
    snprintf(uid, sizeof(uid), "%u", (unsigned)getuid());
    snprintf(tokens, sizeof(tokens), "%s/tokens.json", uid);
    if (pg_keycache_name(ISS, keys) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        double t0[2] = {now_us(CLOCK_MONOTONIC), now_us(CLOCK_THREAD_CPUTIME_ID)};
        char pwbuf[4096];
        struct passwd pw, *found = NULL, *helper = NULL;
        int r = getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &found) == 0 && found ? 0 : -1;
        (void)geteuid();
        r = r == 0 ? floor_config(conf, buf, sizeof(buf)) : r;
        if (r == 0 && (getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &helper) != 0 || !helper))
            r = -1;
        r = r == 0 ? floor_dir(state, uid, tokens, buf, sizeof(buf)) : r;
        r = r == 0 ? floor_dir(cache, NULL, keys, buf, sizeof(buf)) : r;
        r = r == 0 ? floor_verify() : r;
        if (r < 0) {
            fprintf(stderr, "bench_pam: the floor's round %d failed\n", i);
            return -1;
        }
        us[1][i] = now_us(CLOCK_THREAD_CPUTIME_ID) - t0[1];
        us[0][i] = now_us(CLOCK_MONOTONIC) - t0[0];
    }
    sort_us(us[0], n);
    sort_us(us[1], n);
    return 0;
}

/* RSS added by loading the module (pam_start) and by its first authentication. */
static int memory(const char *user, long *load, long *first)
{
    struct pam_conv conv = {no_conv, NULL};
    pam_handle_t *ph = NULL;
    long before = rss_kib();
    if (pam_start("pg-bench", user, &conv, &ph) != PAM_SUCCESS)
        return -1;
    *load = rss_kib() - before;
    int r = pam_authenticate(ph, 0);
    *first = rss_kib() - before;
    pam_end(ph, r);
    return r == PAM_SUCCESS ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *svcdir = getenv("PAM_WRAPPER_RUNTIME_DIR");
    if (argc < 2 || !svcdir) {
        fprintf(stderr, "usage: LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 "
                        "PAM_WRAPPER_SERVICE_DIR=DIR bench_pam MODULE [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 2000;
    if (n < 10 || !mkdtemp(work))
        return 2;
    const char *user = getpwuid(getuid())->pw_name;
    prepare(user);
    char text[1024];
    snprintf(text, sizeof(text),
             "auth required %s config=%s/poolgate.conf helper=/nonexistent/poolgate-helper\n"
             "account required %s config=%s/poolgate.conf helper=/nonexistent/poolgate-helper\n",
             argv[1], work, argv[1], work);
    write_file(svcdir, "pg-bench", text, 0644);
    write_file(svcdir, "pg-permit", "auth required pam_permit.so\naccount required pam_permit.so\n",
               0644);
    write_file(svcdir, "other", "auth required pam_deny.so\naccount required pam_deny.so\n", 0644);

    struct timings base = {0}, gate = {0};
    long load = 0, first = 0;
    double *floor[2] = {calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double))};
    int r = alloc_timings(&base, n) == 0 && alloc_timings(&gate, n) == 0 && floor[0] && floor[1]
                ? 0
                : -1;
    r = r == 0 ? run("pg-permit", user, n, &base) : r;
    r = r == 0 ? memory(user, &load, &first) : r;
    r = r == 0 ? run("pg-bench", user, n, &gate) : r;
    r = r == 0 ? floor_run(user, n, floor) : r;
    if (r == 0) {
        report(&base, &gate, floor, n);
        printf("  RSS added by loading the module: %ld KiB, with its first authentication: "
               "%ld KiB (goal <= 1024 KiB)\n",
               load, first);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
    if (getenv("PG_BENCH_KEEP")) /* to profile the pieces on the same files */
        printf("  files kept in %s\n", work);
    else if (system(cmd) != 0)
        r = -1;
    free_timings(&base);
    free_timings(&gate);
    free(floor[0]);
    free(floor[1]);
    free(bench_token);
    BN_free(sign_n);
    BN_free(sign_e);
    return r == 0 ? 0 : 1;
}
