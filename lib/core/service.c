/*
 * The agent's systemd unit (see service.h).
 *
 * MUST:
 *   - Never run agent-owned code as root: root writes the unit and runs
 *     systemctl (with a fixed environment, no inherited descriptors); files
 *     in agent_dir are the agent account's (agentfiles.c).
 *   - Never overwrite or remove a unit that poolgate did not write.
 *   - Run inside a host process too (the PAM module's session phase): no
 *     exit, no signal handler; SIGCHLD is at its default only while
 *     systemctl runs, as lib/core/spawn.c does for the helper.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentfiles.h"
#include "enroll.h"
#include "internal.h"
#include "service.h"

/* The agent's limit on the unshortened name, and on its parts when shortening. */
#define NAME_MAX_CHARS 80
#define PART_MAX_CHARS 25
/* systemctl stop waits for the unit's TimeoutStopSec (5 min) at most. */
#define SYSTEMCTL_TIMEOUT_MS (6 * 60 * 1000)
#define SYSTEMCTL_OUTPUT_MAX 4096
#define UNIT_TEXT_MAX 4096

/* ---- the unit's name ------------------------------------------------------------ */

/* Characters (UTF-8 code points) in s; the agent counts .NET chars, which
 * differ only beyond the Basic Multilingual Plane. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Bytes of the first `n` characters of s. */
static size_t prefix_bytes(const char *s, size_t n)
{
    size_t i = 0;
    for (; s[i] && n; n--)
        for (i++; ((unsigned char)s[i] & 0xc0) == 0x80; i++)
            ;
    return i;
}

/* The organization's short name in an https URL: dev.azure.com/<org>, or
 * the first label of <org>.visualstudio.com (or any other host). */
static int account(const char *url, char *out, size_t outsz)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t hostlen = strcspn(host, "/:?#");
    const char *part = host;
    size_t len = strcspn(host, ".:/?#");
    if (hostlen == strlen("dev.azure.com") && strncasecmp(host, "dev.azure.com", hostlen) == 0) {
        part = host + strcspn(host, "/?#");
        part += strspn(part, "/");
        len = strcspn(part, "/?#");
    }
    if (len == 0 || len >= outsz)
        return -1;
    memcpy(out, part, len);
    out[len] = '\0';
    return 0;
}

int pg_service_names(const char *organization_url, const char *pool, const char *agent, char *raw,
                     size_t rawsz, char *description, size_t descsz, struct pg_error *err)
{
    char acct[256];
    if (account(organization_url, acct, sizeof(acct)) < 0)
        return pg_fail(err, PG_ERR_CONFIG, "cannot find the organization's name in %s",
                       organization_url);
    snprintf(description, descsz, "Azure Pipelines Agent (%s.%s.%s)", acct, pool, agent);
    int n = snprintf(raw, rawsz, "vsts.agent.%s.%s.%s.service", acct, pool, agent);
    size_t total = chars(raw);
    if (total > NAME_MAX_CHARS) {
        /* As the agent shortens: organization and pool to 25 characters,
         * then the agent's name by what is still too much. */
        long over = (long)(total - NAME_MAX_CHARS);
        size_t a = chars(acct), p = chars(pool), g = chars(agent);
        size_t a2 = a < PART_MAX_CHARS ? a : PART_MAX_CHARS;
        size_t p2 = p < PART_MAX_CHARS ? p : PART_MAX_CHARS;
        over -= (long)(a - a2) + (long)(p - p2);
        size_t g2 = over > 0 ? g - (size_t)over : g;
        n = snprintf(raw, rawsz, "vsts.agent.%.*s.%.*s.%.*s.service", (int)prefix_bytes(acct, a2),
                     acct, (int)prefix_bytes(pool, p2), pool, (int)prefix_bytes(agent, g2), agent);
    }
    if (n < 0 || (size_t)n >= rawsz)
        return pg_fail(err, PG_ERR_CONFIG, "the agent's unit name is too long");
    return 0;
}

/* Append one segment, escaped; `o` is where the output stands. */
static int escape_segment(const char *seg, size_t len, char *out, size_t outsz, size_t *o)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)seg[i];
        char piece[5] = {(char)c, '\0'};
        if (!(isascii(c) && (isalnum(c) || c == ':' || c == '_' || (c == '.' && *o > 0))))
            snprintf(piece, sizeof(piece), "\\x%02x", c);
        size_t n = strlen(piece);
        if (*o + n >= outsz)
            return -1;
        memcpy(out + *o, piece, n);
        *o += n;
    }
    return 0;
}

/* As systemd-escape --path: the name as a path, simplified (empty and "."
 * segments go; ".." is refused), segments joined by '-', each byte outside
 * [A-Za-z0-9:_.] (and a leading '.') as \xNN. */
int pg_service_escape(const char *name, char *out, size_t outsz, struct pg_error *err)
{
    size_t o = 0;
    for (const char *p = name; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && strncmp(p, "..", 2) == 0)
            return pg_fail(err, PG_ERR_CONFIG, "the agent's unit name %s has a '..' segment", name);
        bool skip = len == 0 || (len == 1 && *p == '.');
        if (!skip && o && o + 1 < outsz)
            out[o++] = '-';
        if (!skip && (o + 1 >= outsz || escape_segment(p, len, out, outsz, &o) < 0))
            return pg_fail(err, PG_ERR_CONFIG, "the agent's unit name is too long once escaped");
        p += len + (p[len] == '/');
    }
    if (o == 0)
        return pg_fail(err, PG_ERR_CONFIG, "the agent's unit name is empty");
    out[o] = '\0';
    return 0;
}

/* A value systemd takes literally on a unit line: printable, no white
 * space, quotes, backslash or specifier. */
static bool unit_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr("\"'\\%;", *s))
            return false;
    return true;
}

int pg_service_init(struct pg_service *s, const struct pg_config *cfg, uid_t uid, gid_t gid,
                    struct pg_error *err)
{
    char agent[257], raw[1200];
    struct passwd pw, *found = NULL;
    char buf[4096];
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->uid = uid;
    s->gid = gid;
    if (!cfg->agent_dir || !cfg->organization_url)
        return pg_fail(err, PG_ERR_CONFIG, "%s is not set in the configuration",
                       cfg->agent_dir ? "organization_url" : "agent_dir");
    if (cfg->agent_dir[0] != '/' || !unit_safe(cfg->agent_dir))
        return pg_fail(err, PG_ERR_CONFIG,
                       "agent_dir %s cannot go into a unit file: it must be an absolute path "
                       "without spaces, quotes, backslashes, %% or ;",
                       cfg->agent_dir);
    if (uid == 0)
        return pg_fail(err, PG_ERR_CONFIG, "the agent account must not be root");
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) || !found || !unit_safe(pw.pw_name) ||
        strlen(pw.pw_name) >= sizeof(s->user))
        return pg_fail(err, PG_ERR_CONFIG, "uid %u has no usable account name", (unsigned)uid);
    snprintf(s->user, sizeof(s->user), "%s", pw.pw_name);
    int r = pg_agent_name(cfg, agent, sizeof(agent), err);
    if (r == 0)
        r = pg_service_names(cfg->organization_url, cfg->pool, agent, raw, sizeof(raw),
                             s->description, sizeof(s->description), err);
    if (r == 0)
        r = pg_service_escape(raw, s->unit, sizeof(s->unit), err);
    return r;
}

/* ---- the unit file ------------------------------------------------------------- */

/* Description= text: % doubled (a specifier otherwise), controls and
 * backslashes as '?' (a backslash ending a shortened description would
 * join the next line to it). */
static void describe(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    for (; *in && o + 2 < outsz; in++) {
        if (*in == '%')
            out[o++] = '%';
        out[o++] = (unsigned char)*in < ' ' || *in == 0x7f || *in == '\\' ? '?' : *in;
    }
    out[o] = '\0';
}

int pg_service_unit_text(const struct pg_service *s, char **out, struct pg_error *err)
{
    char desc[sizeof(s->description) * 2];
    const char *dir = s->cfg->agent_dir;
    describe(desc, sizeof(desc), s->description);
    /* The fields and values of the agent's vsts.agent.service.template. */
    if (asprintf(out,
                 PG_SERVICE_MARKER
                 " (poolgate service install) for the agent in %s.\n"
                 "# poolgate replaces and removes this file; to manage it yourself, delete\n"
                 "# these comment lines first.\n"
                 "[Unit]\n"
                 "Description=%s\n"
                 "After=network.target\n"
                 "\n"
                 "[Service]\n"
                 "ExecStart=%s/runsvc.sh\n"
                 "User=%s\n"
                 "WorkingDirectory=%s\n"
                 "KillMode=process\n"
                 "KillSignal=SIGTERM\n"
                 "TimeoutStopSec=5min\n"
                 "Environment=DOCKER_CONFIG=%s/docker\n"
                 "\n"
                 "[Install]\n"
                 "WantedBy=multi-user.target\n",
                 dir, desc, dir, s->user, dir, dir) < 0) {
        *out = NULL;
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    }
    return 0;
}

/* systemd_unit_dir, opened without following a link: root's (or, for a
 * caller that is not root, the caller's), not writable by others. */
static int unit_dir(const struct pg_config *cfg, struct pg_error *err)
{
    struct stat st;
    int fd = open(cfg->systemd_unit_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return pg_fail(err, PG_ERR_IO, "systemd_unit_dir %s: %s", cfg->systemd_unit_dir,
                       strerror(errno));
    if (fstat(fd, &st) < 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
        (st.st_mode & (S_IWGRP | S_IWOTH))) {
        close(fd);
        return pg_fail(err, PG_ERR_PERM,
                       "systemd_unit_dir %s must belong to root and not be writable by others",
                       cfg->systemd_unit_dir);
    }
    return fd;
}

static int owner_at(int dir, const char *unit, enum pg_unit_owner *owner)
{
    char head[sizeof(PG_SERVICE_MARKER)] = "";
    struct stat st;
    *owner = PG_UNIT_NONE;
    if (fstatat(dir, unit, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    *owner = PG_UNIT_FOREIGN;
    if (!S_ISREG(st.st_mode))
        return 0;
    int fd = openat(dir, unit, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, head, sizeof(head) - 1);
    close(fd);
    if (n == (ssize_t)sizeof(head) - 1 && memcmp(head, PG_SERVICE_MARKER, (size_t)n) == 0)
        *owner = PG_UNIT_POOLGATE;
    return 0;
}

static int unit_owner(const struct pg_service *s, enum pg_unit_owner *owner, struct pg_error *err)
{
    int dir = unit_dir(s->cfg, err);
    if (dir < 0)
        return dir;
    int e = owner_at(dir, s->unit, owner);
    close(dir);
    if (e < 0)
        return pg_fail(err, PG_ERR_IO, "%s/%s: %s", s->cfg->systemd_unit_dir, s->unit,
                       strerror(-e));
    return 0;
}

static int foreign(const struct pg_service *s, struct pg_error *err)
{
    return pg_fail(err, PG_ERR_CONFIG,
                   "%s/%s exists and was not written by poolgate: it is left alone; to let "
                   "poolgate manage the agent's service, remove it first (sudo ./svc.sh "
                   "uninstall in %s, or systemctl disable --now the unit and delete the file)",
                   s->cfg->systemd_unit_dir, s->unit, s->cfg->agent_dir);
}

/* Write the unit beside its name, sync, rename: mode 0644, root's. */
static int unit_write(const struct pg_service *s, struct pg_error *err)
{
    char tmp[300], *text = NULL;
    enum pg_unit_owner owner;
    int r = pg_service_unit_text(s, &text, err), dir = -1, fd = -1, e = 0;
    if (r == 0 && (dir = unit_dir(s->cfg, err)) < 0)
        r = dir;
    if (r == 0 && (e = -owner_at(dir, s->unit, &owner)) == 0 && owner == PG_UNIT_FOREIGN)
        r = foreign(s, err);
    snprintf(tmp, sizeof(tmp), ".%s.poolgate-new", s->unit);
    if (r == 0 && !e) {
        unlinkat(dir, tmp, 0);
        fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        e = fd < 0 ? errno : 0;
    }
    if (r == 0 && !e &&
        (pg_write_all(fd, text, strlen(text)) < 0 || fchmod(fd, 0644) < 0 || fsync(fd) < 0))
        e = errno ? errno : EIO;
    if (fd >= 0 && close(fd) < 0 && !e)
        e = errno;
    if (r == 0 && !e && renameat(dir, tmp, dir, s->unit) < 0)
        e = errno;
    if (r == 0 && e) {
        unlinkat(dir, tmp, 0);
        r = pg_fail(err, PG_ERR_IO, "cannot write %s/%s: %s", s->cfg->systemd_unit_dir, s->unit,
                    strerror(e));
    }
    if (dir >= 0)
        close(dir);
    free(text);
    return r;
}

static int unit_remove(const struct pg_service *s, struct pg_error *err)
{
    int dir = unit_dir(s->cfg, err);
    if (dir < 0)
        return dir;
    int e = unlinkat(dir, s->unit, 0) < 0 && errno != ENOENT ? errno : 0;
    close(dir);
    if (e)
        return pg_fail(err, PG_ERR_IO, "cannot remove %s/%s: %s", s->cfg->systemd_unit_dir, s->unit,
                       strerror(e));
    return 0;
}

/* ---- systemctl ---------------------------------------------------------------- */

/* In the child (async-signal-safe calls only): output to the pipe, no
 * other descriptor, default signals, a fixed environment. */
static _Noreturn void systemctl_child(const char *path, char *const argv[], int out)
{
    static char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C",
                                "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", NULL};
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || pg_child_reset(null, out, out) < 0)
        _exit(127);
    execve(path, argv, env);
    _exit(127);
}

/* Read what systemctl says (at most outsz - 1 bytes kept) until it exits
 * or the deadline passes; then kill it. */
static void collect(int fd, pid_t pid, char *out, size_t outsz)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t o = 0;
    int64_t end = pg_monotonic_ms() + SYSTEMCTL_TIMEOUT_MS;
    for (;;) {
        int64_t left = end - pg_monotonic_ms();
        int n = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (n < 0 && errno == EINTR)
            continue;
        char buf[512];
        ssize_t got = n > 0 ? read(fd, buf, sizeof(buf)) : -1;
        if (got < 0 && n > 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (n <= 0)
                kill(pid, SIGKILL);
            break;
        }
        size_t take = (size_t)got < outsz - 1 - o ? (size_t)got : outsz - 1 - o;
        memcpy(out + o, buf, take);
        o += take;
    }
    out[o] = '\0';
}

/* Run systemctl with args; its output (stdout and stderr) in out. */
static int systemctl(const struct pg_config *cfg, const char *const args[], char *out, size_t outsz,
                     struct pg_error *err)
{
    /* execve wants writable strings: copies of the (short) arguments. */
    char copies[6][300] = {{0}}, *argv[8] = {cfg->systemctl};
    struct sigaction dfl = {.sa_handler = SIG_DFL}, host;
    int p[2], status = 0;
    for (size_t i = 0; i < PG_ARRAY_SIZE(copies) && args[i]; i++)
        argv[i + 1] = strncpy(copies[i], args[i], sizeof(copies[i]) - 1);
    if (pipe2(p, O_CLOEXEC) < 0)
        return pg_fail(err, PG_ERR_IO, "cannot make a pipe: %s", strerror(errno));
    /* The host may ignore SIGCHLD (the status would be lost) or reap from
     * a handler: neither while systemctl runs. */
    sigaction(SIGCHLD, &dfl, &host);
    /* Nor one of its handlers in the child (pg_fork_blocked). */
    pid_t pid = pg_fork_blocked();
    if (pid == 0)
        systemctl_child(cfg->systemctl, argv, p[1]);
    int e = pid < 0 ? errno : 0;
    close(p[1]);
    if (pid > 0)
        collect(p[0], pid, out, outsz);
    close(p[0]);
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    sigaction(SIGCHLD, &host, NULL);
    if (pid < 0)
        return pg_fail(err, PG_ERR_INTERNAL, "cannot fork: %s", strerror(e));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char line[200];
    out[strcspn(out, "\n")] = '\0';
    pg_printable(line, sizeof(line), out);
    return pg_fail(err, PG_ERR_IO, "%s %s %s failed (%s %d)%s%s", cfg->systemctl, args[0],
                   args[1] ? args[1] : "", WIFEXITED(status) ? "exit" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), line[0] ? ": " : "",
                   line);
}

static int run(const struct pg_service *s, const char *verb, struct pg_error *err)
{
    char out[SYSTEMCTL_OUTPUT_MAX];
    const char *args[] = {verb, s->unit, NULL};
    if (strcmp(verb, "daemon-reload") == 0)
        args[1] = NULL;
    return systemctl(s->cfg, args, out, sizeof(out), err);
}

int pg_service_control(const struct pg_service *s, const char *verb, struct pg_error *err)
{
    return run(s, verb, err);
}

/* ---- install, uninstall, state ------------------------------------------------ */

/* A directory on the way to agent_dir that no third account can change:
 * root's or the agent account's, and writable by others only when sticky. */
static bool parent_safe(const struct stat *st, uid_t uid)
{
    return S_ISDIR(st->st_mode) && (st->st_uid == 0 || st->st_uid == uid) &&
           (!(st->st_mode & (S_IWGRP | S_IWOTH)) || (st->st_mode & S_ISVTX));
}

static int untrusted(const struct pg_service *s, int len, const struct stat *st,
                     struct pg_error *err)
{
    char what[64] = "writable by others";
    if (st->st_uid != 0 && st->st_uid != s->uid)
        snprintf(what, sizeof(what), "owned by uid %u", (unsigned)st->st_uid);
    return pg_fail(err, PG_ERR_CONFIG,
                   "agent_dir %s: %.*s is %s: the directories above agent_dir must be root's or "
                   "%s's, writable by no one else (unless sticky)",
                   s->cfg->agent_dir, len, s->cfg->agent_dir, what, s->user);
}

/*
 * agent_dir reached from "/" one directory at a time, never through a
 * link; with `s`, every directory above it checked with parent_safe():
 * systemd finds the unit's ExecStart= through them each time it starts the
 * agent, and an account that may rename one (its owner, or anyone who may
 * write to it) would choose what runs as the agent account.  *owner: who
 * owns agent_dir itself.
 */
static int walk(const char *dir, const struct pg_service *s, uid_t *owner, struct pg_error *err)
{
    const char *p = dir + strspn(dir, "/");
    char name[256];
    struct stat st;
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), e = fd < 0 ? errno : 0, r = 0;
    while (!e && !r && *p) {
        size_t len = strcspn(p, "/");
        int shown = (int)(p - dir); /* the directory's path, without its last '/' */
        while (shown > 1 && dir[shown - 1] == '/')
            shown--;
        if (fstat(fd, &st) < 0)
            e = errno;
        else if (s && !parent_safe(&st, s->uid))
            r = untrusted(s, shown, &st, err);
        else if (len >= sizeof(name))
            e = ENAMETOOLONG;
        else {
            memcpy(name, p, len);
            name[len] = '\0';
            int next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            e = next < 0 ? errno : 0;
            close(fd);
            fd = next;
            p += len + strspn(p + len, "/");
        }
    }
    if (!e && !r && fstat(fd, &st) < 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    if (!e && !r)
        *owner = st.st_uid;
    if (e == ELOOP || e == ENOTDIR)
        return pg_fail(err, PG_ERR_CONFIG,
                       "agent_dir %s: the path goes through a symbolic link or a file", dir);
    return e ? pg_fail(err, PG_ERR_CONFIG, "agent_dir %s: %s", dir, strerror(e)) : r;
}

int pg_service_install(const struct pg_service *s, struct pg_error *err)
{
    enum pg_unit_owner owner;
    uid_t dir_owner;
    int r = unit_owner(s, &owner, err);
    if (r == 0 && owner == PG_UNIT_FOREIGN)
        r = foreign(s, err);
    if (r == 0)
        r = walk(s->cfg->agent_dir, s, &dir_owner, err);
    /* runsvc.sh first: the unit names it. */
    if (r == 0)
        r = pg_agent_service_files(s->cfg->agent_dir, s->uid, s->gid, s->unit, err);
    if (r == 0)
        r = unit_write(s, err);
    if (r == 0)
        r = run(s, "daemon-reload", err);
    if (r == 0)
        r = run(s, "enable", err);
    return r;
}

int pg_service_uninstall(const struct pg_service *s, struct pg_error *err)
{
    enum pg_unit_owner owner;
    int r = unit_owner(s, &owner, err);
    if (r == 0 && owner == PG_UNIT_FOREIGN)
        r = foreign(s, err);
    if (r == 0 && owner == PG_UNIT_POOLGATE) {
        r = run(s, "stop", err);
        if (r == 0)
            r = run(s, "disable", err);
        if (r == 0)
            r = unit_remove(s, err);
        if (r == 0)
            r = run(s, "daemon-reload", err);
    }
    if (r == 0)
        r = pg_agent_service_files(s->cfg->agent_dir, s->uid, s->gid, NULL, err);
    return r;
}

/* One property's value from `systemctl show` output. */
static void property(const char *out, const char *key, char *val, size_t valsz)
{
    size_t klen = strlen(key);
    val[0] = '\0';
    for (const char *l = out; *l; l += strcspn(l, "\n"), l += *l == '\n')
        if (strncmp(l, key, klen) == 0 && l[klen] == '=') {
            int n = (int)strcspn(l + klen + 1, "\n");
            char raw[64];
            snprintf(raw, sizeof(raw), "%.*s", n, l + klen + 1);
            pg_printable(val, valsz, raw);
            return;
        }
}

int pg_service_state(const struct pg_service *s, struct pg_service_state *st, struct pg_error *err)
{
    char out[SYSTEMCTL_OUTPUT_MAX], pid[32];
    const char *args[] = {"show", "-p", "ActiveState,SubState,UnitFileState,MainPID", s->unit,
                          NULL};
    memset(st, 0, sizeof(*st));
    int r = unit_owner(s, &st->owner, err);
    if (r == 0 && st->owner != PG_UNIT_NONE)
        r = systemctl(s->cfg, args, out, sizeof(out), err);
    if (r == 0 && st->owner != PG_UNIT_NONE) {
        property(out, "ActiveState", st->active, sizeof(st->active));
        property(out, "SubState", st->sub, sizeof(st->sub));
        property(out, "UnitFileState", st->enabled, sizeof(st->enabled));
        property(out, "MainPID", pid, sizeof(pid));
        st->main_pid = strtol(pid, NULL, 10);
    }
    return r;
}

/* ---- the enrollment's hooks --------------------------------------------------- */

int pg_service_hook(const struct pg_config *cfg, uid_t uid, gid_t gid, enum pg_service_phase phase,
                    struct pg_error *err)
{
    struct pg_service s;
    enum pg_unit_owner owner = PG_UNIT_NONE;
    if (!cfg->agent_service)
        return 0;
    int r = pg_service_init(&s, cfg, uid, gid, err);
    if (r < 0)
        return r;
    struct pg_service_state st;
    switch (phase) {
    case PG_SERVICE_BEFORE_CHANGE:
        /* Whoever wrote the unit: the agent stops before its credentials
         * change.  1 tells the caller it was running. */
        r = pg_service_state(&s, &st, err);
        if (r < 0 || st.owner == PG_UNIT_NONE)
            return r;
        r = run(&s, "stop", err);
        return r < 0 ? r : strcmp(st.active, "active") == 0 || strcmp(st.active, "activating") == 0;
    case PG_SERVICE_RESUME:
        r = unit_owner(&s, &owner, err);
        return r == 0 && owner != PG_UNIT_NONE ? run(&s, "start", err) : r;
    case PG_SERVICE_AFTER_REGISTER:
        r = pg_service_install(&s, err);
        return r == 0 ? run(&s, "restart", err) : r;
    case PG_SERVICE_AFTER_UNREGISTER:
        return pg_service_uninstall(&s, err);
    }
    return pg_fail(err, PG_ERR_INTERNAL, "unknown service phase");
}
