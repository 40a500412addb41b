/*
 * poolgate doctor: what stands between this host and a working gate, one
 * line per check with what to do about it.  Local checks run here; the
 * provider (discovery, keys, clock) is checked by the helper, which is the
 * only part of poolgate that talks to the network.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentfiles.h"
#include "doctor.h"
#include "internal.h"
#include "service.h"
#include "spawn.h"

#define MAX_USERS 16
#define SSHD_OUTPUT_MAX (256 * 1024)

struct doctor {
    const struct doctor_opts *o;
    struct pg_config *cfg;
    uid_t helper_uid;
    gid_t helper_gid;
    bool helper_ok;
    bool sshd_gated;           /* sshd's PAM service uses the module */
    char users[MAX_USERS][64]; /* accounts named by users= in sshd's service */
    int nusers;
    int fails;
};

static void say(struct doctor *d, const char *level, const char *fmt, ...) PG_PRINTF(3, 4);

static void say(struct doctor *d, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-4s ", level);
    vprintf(fmt, ap);
    putchar('\n');
    /* Out before any fork (the agent-account child): under valgrind a
     * child's exit flushes what it inherited. */
    fflush(stdout);
    va_end(ap);
    if (strcmp(level, "fail") == 0)
        d->fails++;
}

/* ---- files and accounts ------------------------------------------------------ */

static bool check_config(struct doctor *d)
{
    struct pg_error err = {0};
    if (pg_config_load(d->o->config_path, &d->cfg, &err) < 0) {
        say(d, "fail", "config: %s", err.msg);
        return false;
    }
    static const char zero[] = "00000000-0000-0000-0000-000000000000";
    const struct pg_config *c = d->cfg;
    /* The installed file's placeholders load, but sign nobody in. */
    if (strcmp(c->client_id, zero) == 0 || (c->tenant && strcmp(c->tenant, zero) == 0) ||
        strstr(c->issuer, zero))
        say(d, "fail",
            "config: %s still holds the placeholder id %s: set issuer, client_id "
            "and tenant to your tenant and app registration",
            d->o->config_path, zero);
    else
        say(d, "ok", "config: %s", d->o->config_path);
    return true;
}

static void check_helper(struct doctor *d)
{
    struct stat st;
    const char *p = d->o->helper_path;
    if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR))
        say(d, "fail", "helper: %s is missing or not executable: reinstall poolgate", p);
    else if (st.st_mode & (S_ISUID | S_ISGID))
        say(d, "fail", "helper: %s is set-uid or set-gid, which it refuses: chmod u-s,g-s %s", p,
            p);
    else if (geteuid() == 0 && (st.st_uid != 0 || (st.st_mode & 022)))
        say(d, "fail",
            "helper: %s can be changed by someone other than root: chown root %s && chmod go-w %s",
            p, p, p);
    else {
        say(d, "ok", "helper: %s", p);
        d->helper_ok = true;
    }
}

static void check_account(struct doctor *d)
{
    struct pg_error err = {0};
    if (pg_helper_account(d->cfg->helper_user, geteuid(), &d->helper_uid, &d->helper_gid, &err) <
        0) {
        say(d, "fail",
            "helper_user: %s: create it (systemd-sysusers, see /usr/lib/sysusers.d/poolgate.conf)",
            err.msg);
        d->helper_ok = false;
    } else if (geteuid() != 0)
        say(d, "ok", "helper_user: not checked (not root: the helper runs as the caller, uid %u)",
            (unsigned)d->helper_uid);
    else if (d->helper_uid == 0)
        say(d, "warn", "helper_user: %s is root: give the helper an account of its own",
            d->cfg->helper_user);
    else
        say(d, "ok", "helper_user: %s (uid %u)", d->cfg->helper_user, (unsigned)d->helper_uid);
}

/*
 * The helper account writes the store and the key cache the gate believes,
 * so the agent account, which runs pipeline jobs, must not be it: neither
 * agent_dir's owner nor an account sshd's service gates (users=).  Only as
 * root (otherwise the helper runs as the caller) and for a helper_user
 * other than root (check_account warns about that).
 */
static void check_separation(struct doctor *d)
{
    const struct pg_config *c = d->cfg;
    const char *name = c->helper_user;
    struct stat st;
    int before = d->fails;
    if (geteuid() != 0 || d->helper_uid == 0)
        return;
    if (c->agent_dir && lstat(c->agent_dir, &st) == 0 && st.st_uid == d->helper_uid)
        say(d, "fail",
            "helper_user: %s owns agent_dir %s, so the agent account is the helper account: "
            "give the helper an account of its own",
            name, c->agent_dir);
    for (int i = 0; i < d->nusers; i++) {
        struct passwd pw, *found = NULL;
        char buf[4096];
        if (getpwnam_r(d->users[i], &pw, buf, sizeof(buf), &found) == 0 && found &&
            found->pw_uid == d->helper_uid)
            say(d, "fail",
                "helper_user: %s is the account sshd's PAM service gates (users=%s): give the "
                "helper an account of its own",
                name, d->users[i]);
    }
    if (d->fails == before)
        say(d, "ok", "helper_user: %s is not the agent account", name);
}

/* A directory the helper account owns, not writable by others (private: 0700). */
static void check_dir(struct doctor *d, const char *key, const char *path, bool private)
{
    struct stat st;
    mode_t bad = private ? 077 : 022;
    if (lstat(path, &st) < 0)
        say(d, "fail", "%s: %s: %s: systemd-tmpfiles --create poolgate.conf makes it", key, path,
            strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        say(d, "fail", "%s: %s is not a directory (a symbolic link is not accepted)", key, path);
    else if (st.st_uid != d->helper_uid)
        say(d, "fail", "%s: %s is owned by uid %u, not the helper account (uid %u): chown %u %s",
            key, path, (unsigned)st.st_uid, (unsigned)d->helper_uid, (unsigned)d->helper_uid, path);
    else if (st.st_mode & bad)
        say(d, "fail", "%s: %s has mode %04o: chmod %s %s", key, path,
            (unsigned)(st.st_mode & 07777), private ? "0700" : "go-w", path);
    else
        say(d, "ok", "%s: %s (uid %u, mode %04o)", key, path, (unsigned)st.st_uid,
            (unsigned)(st.st_mode & 07777));
}

/* ---- the provider, through the helper ------------------------------------------- */

static void check_provider(struct doctor *d)
{
    struct pg_helper h = {.path = d->o->helper_path,
                          .uid = d->helper_uid,
                          .gid = d->helper_gid,
                          .stderr_fd = STDERR_FILENO,
                          .fd = -1};
    struct pg_error err = {0};
    json_t *done = NULL, *req = json_pack("{s:s}", "config", d->o->config_path);
    int64_t deadline = pg_monotonic_ms() + (2 * d->cfg->http_timeout + 10) * 1000L;
    if (!req || pg_helper_call(&h, PG_MSG_CHECK, req, deadline, &done, &err) < 0) {
        say(d, "fail", "provider: not checked: %s", req ? err.msg : "out of memory");
        json_decref(req);
        return;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(done, "checks"), i, c)
    {
        const char *level = json_string_value(json_object_get(c, "level"));
        char text[PG_ERROR_MAX + 256];
        pg_printable(text, sizeof(text), json_string_value(json_object_get(c, "text")));
        say(d,
            level && strcmp(level, "ok") && strcmp(level, "warn") ? "fail"
            : level                                               ? level
                                                                  : "fail",
            "%s", text);
    }
    json_decref(done);
    json_decref(req);
}

/* ---- PAM stacks ---------------------------------------------------------------- */

/* Whether an auth or account control lets a refusal end the stack. */
static bool gating(const char *control)
{
    if (strcmp(control, "required") == 0 || strcmp(control, "requisite") == 0)
        return true;
    return control[0] == '[' && strstr(control, "default=die") &&
           !strstr(control, "default=ignore");
}

static void remember_users(struct doctor *d, const char *args)
{
    const char *u = strstr(args, "users=");
    if (!u)
        return;
    char list[512];
    snprintf(list, sizeof(list), "%.*s", (int)strcspn(u + 6, " \t"), u + 6);
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && d->nusers < MAX_USERS;
         t = strtok_r(NULL, ",", &save))
        snprintf(d->users[d->nusers++], sizeof(d->users[0]), "%s", t);
}

/* One line of a PAM service that names the module. */
static void pam_line(struct doctor *d, const char *service, char *line)
{
    char type[32] = "", control[256] = "";
    char *p = line + strspn(line, " \t");
    int n = 0;
    if (sscanf(p, "%31s%n", type, &n) != 1)
        return;
    p += n;
    p += strspn(p, " \t");
    size_t len = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, " \t");
    snprintf(control, sizeof(control), "%.*s", (int)len, p);
    const char *args = strstr(p, "pam_poolgate.so") + strlen("pam_poolgate.so");
    args += strspn(args, " \t");
    const char *t = type[0] == '-' ? type + 1 : type;
    bool decides = strcmp(t, "auth") == 0 || strcmp(t, "account") == 0;
    if (strcmp(service, "sshd") == 0) {
        d->sshd_gated = true;
        remember_users(d, args);
    }
    if (decides && !gating(control))
        say(d, "warn",
            "pam: %s: %s %s does not gate: a refusal does not end the stack (use "
            "required, or [success=done ignore=ignore default=die])",
            service, t, control);
    else
        say(d, "ok", "pam: %s: %s %s pam_poolgate.so %s", service, t, control, args);
}

static void check_pam(struct doctor *d)
{
    DIR *dir = opendir(d->o->pam_dir);
    int found = 0;
    /* A service that cannot be read is a stack that cannot be checked. */
    if (!dir) {
        say(d, "fail", "pam: %s: %s: the PAM services cannot be checked", d->o->pam_dir,
            strerror(errno));
        return;
    }
    for (struct dirent *e; (e = readdir(dir));) {
        char path[1024], line[1024];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", d->o->pam_dir, e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            say(d, "fail", "pam: %s: %s: this service cannot be checked", path, strerror(errno));
        while (f && fgets(line, sizeof(line), f)) {
            line[strcspn(line, "\n")] = '\0';
            const char *s = line + strspn(line, " \t");
            if (*s != '#' && strstr(s, "pam_poolgate.so")) {
                pam_line(d, e->d_name, line);
                found++;
            }
        }
        if (f)
            fclose(f);
    }
    closedir(dir);
    if (!found)
        say(d, "warn",
            "pam: no service in %s uses pam_poolgate.so: see pam_poolgate(8) for the "
            "sshd, login and sudo stacks",
            d->o->pam_dir);
}

/* ---- sshd ---------------------------------------------------------------------- */

/* sshd -T [-f FILE] [-C user=U,...]: its effective settings, or NULL. */
static char *sshd_settings(struct doctor *d, const char *user, char *why, size_t whysz)
{
    char conn[128], dash_t[] = "-T", dash_f[] = "-f", dash_c[] = "-C";
    char *argv[8];
    int n = 0, p[2];
    char sshd[1024], config[1024];
    snprintf(sshd, sizeof(sshd), "%s", d->o->sshd);
    argv[n++] = sshd;
    argv[n++] = dash_t;
    if (d->o->sshd_config) {
        snprintf(config, sizeof(config), "%s", d->o->sshd_config);
        argv[n++] = dash_f;
        argv[n++] = config;
    }
    if (user) {
        snprintf(conn, sizeof(conn), "user=%s,host=localhost,addr=127.0.0.1", user);
        argv[n++] = dash_c;
        argv[n++] = conn;
    }
    argv[n] = NULL;
    if (pipe2(p, O_CLOEXEC) < 0)
        return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    char *out = calloc(1, SSHD_OUTPUT_MAX + 1);
    size_t len = 0;
    ssize_t r;
    while (out && len < SSHD_OUTPUT_MAX &&
           ((r = read(p[0], out + len, SSHD_OUTPUT_MAX - len)) > 0 || (r < 0 && errno == EINTR)))
        len += r > 0 ? (size_t)r : 0;
    close(p[0]);
    int ws = 0;
    while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        snprintf(why, whysz, "%.*s", (int)(out ? strcspn(out, "\n") : 0), out ? out : "");
        free(out);
        return NULL;
    }
    return out;
}

/* The value of `key` in sshd -T output ("key value" lines). */
static const char *setting(const char *out, const char *key, char *val, size_t valsz)
{
    size_t k = strlen(key);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, key, k) == 0 && l[k] == ' ') {
            snprintf(val, valsz, "%.*s", (int)strcspn(l + k + 1, "\n"), l + k + 1);
            return val;
        }
    return NULL;
}

/* A lists-of-methods value: every alternative must include keyboard-interactive. */
static bool kbd_always(const char *methods)
{
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", methods);
    for (char *save = NULL, *alt = strtok_r(copy, " ", &save); alt;
         alt = strtok_r(NULL, " ", &save))
        if (!strstr(alt, "keyboard-interactive"))
            return false;
    return strcmp(methods, "any") != 0;
}

/* One file of sshd's configuration, Include lines followed where they stand
 * (up to `depth` levels): the first line setting `key` (to a value other
 * than `want`, when given) goes to out as "FILE:LINE". */
static bool find_setting(const char *path, const char *key, const char *want, int depth, char *out,
                         size_t outsz)
{
    FILE *fp = fopen(path, "re");
    char line[1024], word[64], arg[512];
    bool found = false;
    for (int n = 1; fp && !found && fgets(line, sizeof(line), fp); n++) {
        arg[0] = '\0';
        if (sscanf(line, " %63s %511s", word, arg) < 1 || word[0] == '#')
            continue;
        if (strcasecmp(word, key) == 0 && (!want || strcasecmp(arg, want) != 0)) {
            snprintf(out, outsz, "%s:%d", path, n);
            found = true;
        } else if (depth > 0 && strcasecmp(word, "Include") == 0 && arg[0]) {
            char pattern[600];
            glob_t g = {0};
            snprintf(pattern, sizeof(pattern), "%s%s", arg[0] == '/' ? "" : "/etc/ssh/", arg);
            if (glob(pattern, 0, NULL, &g) == 0)
                for (size_t i = 0; !found && i < g.gl_pathc; i++)
                    found = find_setting(g.gl_pathv[i], key, want, depth - 1, out, outsz);
            globfree(&g);
        }
    }
    if (fp)
        fclose(fp);
    return found;
}

/*
 * Where to change `key` in sshd's configuration: the line that sets it
 * (sshd keeps the first value it reads; with `want`, the first line that
 * sets another value, which may be in a Match block or a drop-in), else
 * the main file.  For the fix's wording only: sshd -T has the real value.
 */
static void where_set(const struct doctor *d, const char *key, const char *want, char *out,
                      size_t outsz)
{
    const char *main_file = d->o->sshd_config ? d->o->sshd_config : "/etc/ssh/sshd_config";
    if (!find_setting(main_file, key, want, 2, out, outsz))
        snprintf(out, outsz, "%s", main_file);
}

static void sshd_for(struct doctor *d, const char *user)
{
    char why[256] = "", v[512], file[1100];
    char *out = sshd_settings(d, user, why, sizeof(why));
    int before = d->fails;
    if (!out) {
        say(d, "fail", "sshd: %s -T failed: %s", d->o->sshd, why[0] ? why : "no output");
        return;
    }
    const char *who = user ? user : "every account";
    if (!setting(out, "usepam", v, sizeof(v)) || strcmp(v, "yes") != 0) {
        where_set(d, "UsePAM", "yes", file, sizeof(file));
        say(d, "fail", "sshd: UsePAM is not yes: set UsePAM yes in %s", file);
    }
    if (!setting(out, "kbdinteractiveauthentication", v, sizeof(v)) || strcmp(v, "yes") != 0) {
        where_set(d, "KbdInteractiveAuthentication", "yes", file, sizeof(file));
        say(d, "fail",
            "sshd: KbdInteractiveAuthentication is not yes for %s: set it to yes in %s (the "
            "code is shown through it)",
            who, file);
    }
    /* 0 is no limit; sshd cuts a login off at LoginGraceTime, code or not. */
    long grace = setting(out, "logingracetime", v, sizeof(v)) ? strtol(v, NULL, 10) : 120;
    if (grace > 0 && grace < d->cfg->login_timeout) {
        where_set(d, "LoginGraceTime", NULL, file, sizeof(file));
        say(d, "fail",
            "sshd: LoginGraceTime %ld is shorter than login_timeout %ld: raise LoginGraceTime "
            "in %s",
            grace, d->cfg->login_timeout, file);
    }
    if (d->fails != before) {
        free(out);
        return;
    }
    if (!setting(out, "authenticationmethods", v, sizeof(v)) || !kbd_always(v))
        say(d, "warn",
            "sshd: %s can log in without the sign-in (AuthenticationMethods %s): "
            "set AuthenticationMethods keyboard-interactive in a Match User block",
            who, setting(out, "authenticationmethods", v, sizeof(v)) ? v : "any");
    else
        say(d, "ok",
            "sshd: UsePAM yes, KbdInteractiveAuthentication yes, LoginGraceTime %ld, "
            "AuthenticationMethods %s for %s",
            grace, v, who);
    free(out);
}

static void check_sshd(struct doctor *d)
{
    if (access(d->o->sshd, X_OK) < 0)
        say(d, "ok", "sshd: %s is not installed", d->o->sshd);
    else if (!d->sshd_gated)
        say(d, "ok", "sshd: its PAM service does not use pam_poolgate.so (nothing to check)");
    else if (geteuid() != 0)
        say(d, "warn", "sshd: not checked: run poolgate doctor as root to read sshd's settings");
    else if (!d->nusers)
        sshd_for(d, NULL);
    for (int i = 0; geteuid() == 0 && d->sshd_gated && i < d->nusers; i++)
        sshd_for(d, d->users[i]);
}

/* ---- the agent ------------------------------------------------------------------ */

/* agent_version against what the layout shows (read as the agent account:
 * only root, or that account itself, can). */
static void check_version(struct doctor *d, uid_t uid, gid_t gid)
{
    const struct pg_config *c = d->cfg;
    char seen[PG_AGENT_VERSION_MAX] = "";
    struct pg_error err = {0};
    bool readable = geteuid() == 0 || geteuid() == uid;
    if (readable && pg_agent_version_read(c->agent_dir, uid, gid, seen, &err) < 0)
        seen[0] = '\0';
    if (!c->agent_version && seen[0])
        say(d, "ok", "agent: version %s, from %s/bin -> bin.%s (agent_version is not set)", seen,
            c->agent_dir, seen);
    else if (!c->agent_version)
        say(d, "fail", "agent: agent_version is not set, and %s: set agent_version",
            readable ? err.msg : "the layout cannot be read unless as root");
    else if (seen[0] && strcmp(seen, c->agent_version) != 0)
        say(d, "warn",
            "agent: agent_version is %s, but %s/bin links to bin.%s: the agent updated itself; "
            "set agent_version = %s (or remove it)",
            c->agent_version, c->agent_dir, seen, seen);
}

/* The unit against the registration: each without the other is wrong. */
static void check_service(struct doctor *d, uid_t uid, gid_t gid, bool registered)
{
    const struct pg_config *c = d->cfg;
    struct pg_service s;
    struct pg_service_state st;
    struct pg_error err = {0};
    if (!c->organization_url || pg_service_init(&s, c, uid, gid, &err) < 0 ||
        pg_service_state(&s, &st, &err) < 0) {
        if (c->agent_service)
            say(d, "fail", "service: %s", err.msg);
        return;
    }
    bool running = strcmp(st.active, "active") == 0 || strcmp(st.active, "activating") == 0 ||
                   strcmp(st.active, "reloading") == 0;
    if (registered && !running && (c->agent_service || st.owner != PG_UNIT_NONE))
        say(d, "fail",
            "service: the agent is registered but %s %s: run sudo poolgate service %s, and "
            "see journalctl -u '%s'",
            s.unit, st.owner == PG_UNIT_NONE ? "is not installed" : "is not running",
            st.owner == PG_UNIT_NONE ? "install" : "start", s.unit);
    else if (!registered && running)
        say(d, "fail",
            "service: %s is running for an agent whose files are gone from %s: run sudo "
            "poolgate service stop (or register the agent again)",
            s.unit, c->agent_dir);
    else if (st.owner == PG_UNIT_FOREIGN && c->agent_service)
        say(d, "warn",
            "service: %s was not written by poolgate (svc.sh?): agent_service leaves it alone",
            s.unit);
    else if (st.owner != PG_UNIT_NONE)
        say(d, "ok", "service: %s %s (%s)", s.unit, st.active, st.sub);
}

static void check_agent(struct doctor *d)
{
    const struct pg_config *c = d->cfg;
    struct stat st;
    if (!c->agent_dir) {
        say(d, "ok", "agent: agent_dir is not set (registration is not configured)");
        return;
    }
    if (!c->organization_url)
        say(d, "fail", "agent: organization_url is not set: registration needs it");
    if (lstat(c->agent_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        say(d, "fail", "agent: %s is not a directory: install the agent there, or fix agent_dir",
            c->agent_dir);
        return;
    }
    if (st.st_uid == 0) {
        say(d, "fail", "agent: %s is owned by root: it must belong to the agent account",
            c->agent_dir);
        return;
    }
    bool registered = pg_agent_registered(c->agent_dir);
    if (registered)
        say(d, "ok", "agent: registered (%s/.agent)", c->agent_dir);
    else
        say(d, "warn",
            "agent: not registered yet in %s: run sudo poolgate register as the agent "
            "account, or log in through a session with register",
            c->agent_dir);
    check_version(d, st.st_uid, st.st_gid);
    check_service(d, st.st_uid, st.st_gid, registered);
}

int doctor_run(const struct doctor_opts *o)
{
    struct doctor d = {.o = o};
    if (check_config(&d)) {
        check_helper(&d);
        check_account(&d);
        check_dir(&d, "state_dir", d.cfg->state_dir, true);
        check_dir(&d, "cache_dir", d.cfg->cache_dir, false);
        if (d.helper_ok)
            check_provider(&d);
        else
            say(&d, "fail", "provider: not checked (the helper cannot run)");
    }
    check_pam(&d);
    if (d.cfg)
        check_separation(&d); /* (after check_pam: it knows the users= accounts) */
    if (d.cfg)
        check_sshd(&d);
    if (d.cfg)
        check_agent(&d);
    pg_config_free(d.cfg);
    printf("%d check%s failed\n", d.fails, d.fails == 1 ? "" : "s");
    return d.fails ? 1 : 0;
}
