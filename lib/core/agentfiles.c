/*
 * The agent's key pair and registration files (see agentfiles.h).
 *
 * MUST:
 *   - Pad every RSA parameter to the length .NET demands for a 2048-bit
 *     key; a stripped leading zero makes the agent reject the file.
 *   - Write as the agent account, never as root into a directory the
 *     account controls (it could plant links); never leave a torn file.
 *   - Clear the private key's text after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentfiles.h"
#include "fileio.h"
#include "internal.h"

#define KEY_BITS 2048
#define CHILD_TIMEOUT_MS 30000
/* The child's report that the directory is not the agent account's. */
#define ENOTOWNER (-1)
#define BOM "\xef\xbb\xbf"

const char *const pg_agent_file_names[PG_AGENT_FILES] = {".credentials_rsaparams", ".credentials",
                                                         ".agent"};

int pg_agent_key_new(EVP_PKEY **key, struct pg_error *err)
{
    *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)KEY_BITS);
    return *key ? 0 : pg_fail(err, PG_ERR_CRYPTO, "cannot generate the agent's RSA key");
}

/* Standard base64 of a parameter, left-padded with zeros to `width` bytes
 * (0: as few bytes as the number needs). */
static char *param_b64(EVP_PKEY *key, const char *name, int width)
{
    BIGNUM *bn = NULL;
    unsigned char raw[KEY_BITS / 8];
    char *out = NULL;
    if (!EVP_PKEY_get_bn_param(key, name, &bn))
        return NULL;
    int n = width ? width : BN_num_bytes(bn);
    if (n > 0 && n <= (int)sizeof(raw) && BN_bn2binpad(bn, raw, n) == n &&
        (out = malloc((size_t)(4 * ((n + 2) / 3) + 1))))
        EVP_EncodeBlock((unsigned char *)out, raw, n);
    pg_memzero(raw, sizeof(raw));
    BN_clear_free(bn);
    return out;
}

int pg_agent_public_key(EVP_PKEY *key, char **modulus, char **exponent, struct pg_error *err)
{
    *modulus = param_b64(key, OSSL_PKEY_PARAM_RSA_N, KEY_BITS / 8);
    *exponent = param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
    if (*modulus && *exponent)
        return 0;
    free(TAKE_PTR(*modulus));
    free(TAKE_PTR(*exponent));
    return pg_fail(err, PG_ERR_CRYPTO, "cannot read the agent's public key");
}

/* The .NET agent's layout: BOM, two-space indent, no final newline. */
static int dump(json_t *o, char **text, size_t *len)
{
    char *json = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!json)
        return PG_ERR_NOMEM;
    *len = strlen(BOM) + strlen(json);
    if ((*text = malloc(*len + 1)))
        snprintf(*text, *len + 1, BOM "%s", json);
    pg_memzero(json, strlen(json));
    free(json);
    return *text ? 0 : PG_ERR_NOMEM;
}

/*
 * RSAParametersSerializable's members, in the order the agent writes them,
 * formatted here rather than by jansson: base64 needs no escaping, and one
 * buffer sized in advance leaves no stray copies of the private key behind.
 */
static int rsaparams(EVP_PKEY *key, char **text, size_t *len)
{
    static const struct {
        const char *json, *param;
        int width;
    } members[] = {
        {"d", OSSL_PKEY_PARAM_RSA_D, 256},
        {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1, 128},
        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2, 128},
        {"exponent", OSSL_PKEY_PARAM_RSA_E, 0},
        {"inverseQ", OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 128},
        {"modulus", OSSL_PKEY_PARAM_RSA_N, 256},
        {"p", OSSL_PKEY_PARAM_RSA_FACTOR1, 128},
        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2, 128},
    };
    size_t size = 4096, o = 0;
    char *buf = malloc(size);
    if (!buf)
        return PG_ERR_NOMEM;
    o += (size_t)snprintf(buf, size, BOM "{\n  \"ContainerName\": \"\"");
    for (size_t i = 0; i < PG_ARRAY_SIZE(members); i++) {
        char *v = param_b64(key, members[i].param, members[i].width);
        if (!v) {
            pg_memzero(buf, size);
            free(buf);
            return PG_ERR_CRYPTO;
        }
        o += (size_t)snprintf(buf + o, size - o, ",\n  \"%s\": \"%s\"", members[i].json, v);
        pg_free_secret(v);
    }
    o += (size_t)snprintf(buf + o, size - o, "\n}");
    *text = buf;
    *len = o;
    return 0;
}

int pg_agent_files_render(EVP_PKEY *key, const struct pg_agent_settings *s,
                          struct pg_agent_files *out, struct pg_error *err)
{
    memset(out, 0, sizeof(*out));
    json_t *creds = json_pack("{s:s, s:{s:s, s:s, s:s}}", "scheme", "OAuth", "data", "clientId",
                              s->client_id, "authorizationUrl", s->authorization_url,
                              "oauthEndpointUrl", s->authorization_url);
    json_t *agent =
        json_pack("{s:I, s:s, s:I, s:s, s:s, s:s}", "agentId", (json_int_t)s->agent_id, "agentName",
                  s->agent_name, "poolId", (json_int_t)s->pool_id, "poolName", s->pool_name,
                  "serverUrl", s->server_url, "workFolder", "_work");
    int r = rsaparams(key, &out->text[PG_AGENT_FILE_RSAPARAMS], &out->len[PG_AGENT_FILE_RSAPARAMS]);
    if (r == 0)
        r = dump(creds, &out->text[PG_AGENT_FILE_CREDENTIALS],
                 &out->len[PG_AGENT_FILE_CREDENTIALS]);
    if (r == 0)
        r = dump(agent, &out->text[PG_AGENT_FILE_AGENT], &out->len[PG_AGENT_FILE_AGENT]);
    json_decref(creds);
    json_decref(agent);
    if (r < 0) {
        pg_agent_files_clear(out);
        return pg_fail(err, r,
                       r == PG_ERR_NOMEM ? "out of memory" : "cannot read the agent's private key");
    }
    return 0;
}

void pg_agent_files_clear(struct pg_agent_files *f)
{
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        if (f->text[i])
            pg_memzero(f->text[i], f->len[i]);
        free(f->text[i]);
    }
    memset(f, 0, sizeof(*f));
}

/* ---- writing as the agent account ------------------------------------------ */

enum job { JOB_CHECK, JOB_WRITE, JOB_REMOVE, JOB_VERSION, JOB_SERVICE, JOB_UNSERVICE };

struct work {
    const char *dir;
    enum job job;
    const struct pg_agent_files *files; /* JOB_WRITE */
    const char *unit;                   /* JOB_SERVICE: the unit's name */
};

/* What the child reports: an errno value, and JOB_VERSION's version. */
struct report {
    int e;
    char version[PG_AGENT_VERSION_MAX];
};

/* Temporary names beside the final ones; the directory lock keeps two
 * writers (a login and a sudo re-registration, say) from sharing them.
 * The new files are written under tmp_names; the files they replace are
 * kept under old_names until all three new ones are in place. */
static const char *const tmp_names[PG_AGENT_FILES] = {
    ".credentials_rsaparams.poolgate-new", ".credentials.poolgate-new", ".agent.poolgate-new"};
static const char *const old_names[PG_AGENT_FILES] = {
    ".credentials_rsaparams.poolgate-old", ".credentials.poolgate-old", ".agent.poolgate-old"};

/*
 * In the child: become the agent account (root never writes these files,
 * and a caller that is not root may only write its own), and make sure the
 * account cannot look into this copy of the host process: no core dump, no
 * ptrace, no inherited descriptor but the status pipe (fd 3 then).
 */
static int become(uid_t uid, gid_t gid)
{
    struct rlimit none = {0, 0};
    sigset_t all;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    if (uid == 0 || (geteuid() != 0 && geteuid() != uid))
        return EPERM;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL); /* the host's handlers are not ours */
    if (setrlimit(RLIMIT_CORE, &none) < 0)
        return errno;
    if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
        return errno;
    if (setuid(0) == 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return EPERM;
    return 0;
}

static int write_mode(int dir, const char *tmp, const char *text, size_t len, mode_t mode)
{
    unlinkat(dir, tmp, 0); /* a leftover of an interrupted run */
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    int e = fd < 0 ? errno : 0;
    if (!e && pg_write_all(fd, text, len) < 0)
        e = errno ? errno : EIO;
    if (!e && fsync(fd) < 0)
        e = errno;
    if (fd >= 0 && close(fd) < 0 && !e)
        e = errno;
    return e;
}

static int write_one(int dir, const char *tmp, const char *text, size_t len)
{
    return write_mode(dir, tmp, text, len, 0600);
}

/* Keep a second name for each file there is: the way back if a later
 * rename fails.  Returns an errno value. */
static int keep_old(int dir)
{
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        unlinkat(dir, old_names[i], 0); /* a leftover of an interrupted run */
        if (linkat(dir, pg_agent_file_names[i], dir, old_names[i], 0) < 0 && errno != ENOENT)
            return errno;
    }
    return 0;
}

/* Undo the first `done` renames: the old file back where there was one,
 * else no file, so the directory holds the old set or none, never a mix. */
static void restore_old(int dir, int done)
{
    for (int i = 0; i < done; i++)
        if (renameat(dir, old_names[i], dir, pg_agent_file_names[i]) < 0)
            unlinkat(dir, pg_agent_file_names[i], 0);
}

static int write_all(int dir, const struct pg_agent_files *f)
{
    int e = 0, done = 0;
    for (int i = 0; !e && i < PG_AGENT_FILES; i++)
        e = write_one(dir, tmp_names[i], f->text[i], f->len[i]);
    if (!e)
        e = keep_old(dir);
    while (!e && done < PG_AGENT_FILES)
        if (renameat(dir, tmp_names[done], dir, pg_agent_file_names[done]) < 0)
            e = errno;
        else
            done++;
    if (e)
        restore_old(dir, done);
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        unlinkat(dir, old_names[i], 0);
        if (e)
            unlinkat(dir, tmp_names[i], 0);
    }
    return e;
}

/* What a write will need, tried before the pool is touched. */
static int check_writable(int dir)
{
    int e = write_one(dir, tmp_names[0], "", 0);
    unlinkat(dir, tmp_names[0], 0);
    return e;
}

/* A version as the agent's packages name them: N.N.N, digits only. */
static bool version_ok(const char *v)
{
    int parts = 0, digits = 0;
    for (; *v; v++) {
        if (*v >= '0' && *v <= '9' && ++digits <= 9)
            continue;
        if (*v != '.' || !digits)
            return false;
        parts++;
        digits = 0;
    }
    return digits && parts == 2;
}

/*
 * The agent's bin directory, opened without following a link, and the
 * version its layout shows: a fresh extract has a directory `bin` (no
 * version: version[0] is NUL); the agent's self-update leaves `bin` a link
 * to `bin.<version>` beside it, read here as text, never followed.  A link
 * elsewhere, or to a directory that is not there, is EINVAL/ENOENT.
 * Returns a descriptor, or -errno.
 */
static int open_bin(int dir, char version[PG_AGENT_VERSION_MAX])
{
    char target[PG_AGENT_VERSION_MAX + 8];
    struct stat st;
    version[0] = '\0';
    if (fstatat(dir, "bin", &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlinkat(dir, "bin", target, sizeof(target) - 1);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        if ((size_t)n == sizeof(target) - 1 || strncmp(target, "bin.", 4) != 0 ||
            !version_ok(target + 4))
            return -EINVAL;
        memcpy(version, target + 4, (size_t)n - 3);
    } else if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    int fd =
        openat(dir, version[0] ? target : "bin", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* bin/runsvc.sh, at most this many bytes (the agent's is about 1 KiB; the
 * buffer is on the child's stack). */
#define RUNSVC_MAX (16 * 1024)

/* The copy of bin/runsvc.sh the unit starts, and `.service` naming the
 * unit, as the agent's svc.sh leaves them. */
static int write_service(int dir, const char *unit)
{
    char text[RUNSVC_MAX + 1], version[PG_AGENT_VERSION_MAX], name[300];
    struct stat st;
    size_t n = 0;
    ssize_t got = 1;
    int e = 0, bin = open_bin(dir, version);
    if (bin < 0)
        return -bin;
    int fd = openat(bin, "runsvc.sh", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) < 0)
        e = errno;
    else if (!S_ISREG(st.st_mode) || st.st_size > RUNSVC_MAX)
        e = EFBIG;
    while (!e && got > 0 && n < sizeof(text))
        if ((got = read(fd, text + n, sizeof(text) - n)) > 0)
            n += (size_t)got;
        else if (got < 0 && errno != EINTR)
            e = errno;
        else if (got < 0)
            got = 1;
    if (!e && n > RUNSVC_MAX)
        e = EFBIG;
    if (fd >= 0)
        close(fd);
    close(bin);
    if (!e)
        e = write_mode(dir, "runsvc.sh.poolgate-new", text, n, 0755);
    if (!e && renameat(dir, "runsvc.sh.poolgate-new", dir, "runsvc.sh") < 0)
        e = errno;
    size_t len = strlen(unit);
    if (!e && len + 2 > sizeof(name))
        e = ENAMETOOLONG;
    if (!e) {
        memcpy(name, unit, len);
        name[len] = '\n';
        e = write_mode(dir, ".service.poolgate-new", name, len + 1, 0644);
    }
    if (!e && renameat(dir, ".service.poolgate-new", dir, ".service") < 0)
        e = errno;
    unlinkat(dir, "runsvc.sh.poolgate-new", 0);
    unlinkat(dir, ".service.poolgate-new", 0);
    return e;
}

/* The child's work (async-signal-safe calls only); returns an errno value. */
static int child_work(const struct work *w, struct report *rep)
{
    int dir = -1, e = -pg_dir_open_nofollow(w->dir, &dir, NULL);
    struct stat st;
    if (e)
        return e;
    /* The agent's own directory only: not one it merely may write to. */
    if (fstat(dir, &st) < 0 || st.st_uid != getuid())
        e = ENOTOWNER;
    if (!e && flock(dir, LOCK_EX) < 0)
        e = errno;
    if (!e && w->job == JOB_CHECK)
        e = check_writable(dir);
    else if (!e && w->job == JOB_WRITE)
        e = write_all(dir, w->files);
    else if (!e && w->job == JOB_SERVICE)
        e = write_service(dir, w->unit);
    else if (!e && w->job == JOB_UNSERVICE && unlinkat(dir, ".service", 0) < 0 && errno != ENOENT)
        e = errno;
    if (!e && w->job == JOB_VERSION) {
        int bin = open_bin(dir, rep->version);
        e = bin < 0 ? -bin : rep->version[0] ? 0 : ENODATA;
        if (bin >= 0)
            close(bin);
    }
    for (int i = 0; !e && w->job == JOB_REMOVE && i < PG_AGENT_FILES; i++)
        if (unlinkat(dir, pg_agent_file_names[PG_AGENT_FILES - 1 - i], 0) < 0 && errno != ENOENT)
            e = errno;
    if (!e && w->job != JOB_CHECK && w->job != JOB_VERSION && fsync(dir) < 0)
        e = errno;
    close(dir);
    return e;
}

/* Wait for the child's word, at most CHILD_TIMEOUT_MS: the account it runs
 * as can stop it, or make its directory hang. */
static int child_result(int fd, pid_t pid, struct report *rep)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int e = EIO, n;
    int64_t end = pg_monotonic_ms() + CHILD_TIMEOUT_MS;
    while ((n = poll(&p, 1, (int)(end - pg_monotonic_ms() > 0 ? end - pg_monotonic_ms() : 0))) <
               0 &&
           errno == EINTR)
        ;
    if (n <= 0) {
        kill(pid, SIGKILL);
        e = ETIMEDOUT;
    } else if (pg_read_all(fd, rep, sizeof(*rep)) < 0)
        e = EIO;
    else
        e = rep->e;
    rep->version[sizeof(rep->version) - 1] = '\0';
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return e;
}

/* The child found a link (or a file) on the way to agent_dir: named
 * here, where messages may be made. */
static int link_error(const char *dir, int e, struct pg_error *err)
{
    size_t link_len = 0;
    int fd = -1, again = pg_dir_open_nofollow(dir, &fd, &link_len);
    if (again == 0)
        close(fd); /* (gone since: still refused, as the child saw it) */
    return pg_dir_error(dir, "agent_dir", again == -e ? again : -e, link_len, err);
}

/* The child reports its errno value over a pipe: a host process that
 * ignores SIGCHLD gets no exit status to read. */
static int as_agent(const struct work *w, uid_t uid, gid_t gid, struct report *rep,
                    struct pg_error *err)
{
    static const char *const verbs[] = {"prepare",
                                        "write",
                                        "remove",
                                        "read the version of",
                                        "write the service files among",
                                        "remove .service from"};
    int p[2], e;
    memset(rep, 0, sizeof(*rep));
    if (pipe2(p, O_CLOEXEC) < 0)
        return pg_fail(err, PG_ERR_IO, "cannot make a pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        if (p[1] != 3 && dup2(p[1], 3) < 0)
            _exit(1);
        closefrom(4);
        e = become(uid, gid);
        rep->e = e ? e : child_work(w, rep);
        _exit(pg_write_all(3, rep, sizeof(*rep)) == 0 ? 0 : 1);
    }
    close(p[1]);
    e = pid > 0 ? child_result(p[0], pid, rep) : errno;
    close(p[0]);
    if (pid < 0)
        return pg_fail(err, PG_ERR_INTERNAL, "cannot fork: %s", strerror(e));
    if (e == ELOOP || e == ENOTDIR)
        return link_error(w->dir, e, err);
    if (e == ENOTOWNER)
        return pg_fail(err, PG_ERR_CONFIG, "%s is not owned by the agent account (uid %u)", w->dir,
                       (unsigned)uid);
    if (e == ENODATA || (w->job == JOB_VERSION && (e == EINVAL || e == ENOENT || e == ENOTDIR)))
        return pg_fail(err, PG_ERR_CONFIG, "%s/bin %s", w->dir,
                       e == ENODATA   ? "is a directory, as in a fresh extract: its version is "
                                        "recorded nowhere poolgate can read without running it"
                       : e == EINVAL  ? "is a link, but not to bin.<version> beside it"
                       : e == ENOTDIR ? "is not a directory"
                                      : "is missing, or links to a directory that is not there");
    if (e)
        return pg_fail(err, PG_ERR_IO, "cannot %s the agent's files in %s as uid %u: %s",
                       verbs[w->job], w->dir, (unsigned)uid, strerror(e));
    return 0;
}

int pg_agent_files_check(const char *agent_dir, uid_t uid, gid_t gid, struct pg_error *err)
{
    if (uid == 0)
        return pg_fail(err, PG_ERR_CONFIG, "the agent account must not be root");
    struct work w = {.dir = agent_dir, .job = JOB_CHECK};
    struct report rep;
    return as_agent(&w, uid, gid, &rep, err);
}

int pg_agent_files_write(const char *agent_dir, uid_t uid, gid_t gid,
                         const struct pg_agent_files *f, struct pg_error *err)
{
    struct work w = {.dir = agent_dir, .job = JOB_WRITE, .files = f};
    struct report rep;
    return as_agent(&w, uid, gid, &rep, err);
}

int pg_agent_files_remove(const char *agent_dir, uid_t uid, gid_t gid, struct pg_error *err)
{
    struct work w = {.dir = agent_dir, .job = JOB_REMOVE};
    struct report rep;
    return as_agent(&w, uid, gid, &rep, err);
}

bool pg_agent_registered(const char *agent_dir)
{
    int dir = -1;
    struct stat st;
    bool yes = pg_dir_open_nofollow(agent_dir, &dir, NULL) == 0 &&
               fstatat(dir, ".agent", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    if (dir >= 0)
        close(dir);
    return yes;
}

int pg_agent_version_read(const char *agent_dir, uid_t uid, gid_t gid,
                          char version[PG_AGENT_VERSION_MAX], struct pg_error *err)
{
    struct work w = {.dir = agent_dir, .job = JOB_VERSION};
    struct report rep;
    int r = as_agent(&w, uid, gid, &rep, err);
    if (r == 0)
        memcpy(version, rep.version, sizeof(rep.version));
    return r;
}

int pg_agent_service_files(const char *agent_dir, uid_t uid, gid_t gid, const char *unit,
                           struct pg_error *err)
{
    struct work w = {.dir = agent_dir, .job = unit ? JOB_SERVICE : JOB_UNSERVICE, .unit = unit};
    struct report rep;
    return as_agent(&w, uid, gid, &rep, err);
}
