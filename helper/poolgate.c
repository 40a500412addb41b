/*
 * poolgate — the administrator's command-line tool.
 *
 * Exit codes (poolgate(1)): 0 success; 1 denied or invalid; 2 usage or
 * configuration error; 3 identity provider or Azure DevOps unreachable.
 * Human text goes to stderr, --json and validate's identity to stdout.
 *
 * MUST: never print a token, not even part of one; clear token buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pwd.h>
#include <sys/stat.h>
#include <signal.h>
#include <syslog.h>

#include "agentfiles.h"
#include "doctor.h"
#include "enroll.h"
#include "exchange.h"
#include "fileio.h"
#include "gate.h"
#include "internal.h"
#include "oidc.h"
#include "pg-build-config.h"
#include "poolgate/poolgate.h"
#include "proto.h"
#include "service.h"
#include "spawn.h"
#include "store.h"
#include "unattended.h"

enum { EXIT_OK = 0, EXIT_DENIED = 1, EXIT_USAGE = 2, EXIT_UNAVAILABLE = 3 };

#define TOKEN_READ_MAX (16384 + 2)
/* register/unregister: the enrollment ticket of the sign-in sudo's
 * `pam_poolgate.so reauth` made for this command (sudo merges the PAM
 * environment into the command's). */
#define TICKET_ENV "POOLGATE_SIGN_IN"
#define KEYSET_READ_MAX (256 * 1024)

struct globals {
    const char *config_path;
    const char *helper_path;
};

static int complain(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int complain(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("poolgate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* The one place library results become exit codes. */
static int exit_code(int err)
{
    switch (err) {
    case PG_OK:
        return EXIT_OK;
    case PG_ERR_TOKEN:
    case PG_ERR_DENIED:
        return EXIT_DENIED;
    case PG_ERR_NETWORK:
    case PG_ERR_PROTOCOL:
        return EXIT_UNAVAILABLE;
    default:
        return EXIT_USAGE;
    }
}

/*
 * Read at most max bytes from path ("-" or NULL: stdin).  *truncated is set
 * when the input holds more than that.  The buffer is NUL-terminated.
 */
static int read_input(const char *path, size_t max, char **out, size_t *outlen, bool *truncated)
{
    bool use_stdin = !path || strcmp(path, "-") == 0;
    int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    char *buf = malloc(max + 2);
    size_t len = 0;
    int r = buf ? 0 : -ENOMEM;
    while (r == 0 && len < max + 1) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (!use_stdin)
        close(fd);
    if (r < 0) {
        if (buf)
            pg_memzero(buf, max + 2);
        free(buf);
        return r;
    }
    *truncated = len > max;
    if (*truncated)
        len = max;
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static int load_config(const struct globals *g, struct pg_config **cfg)
{
    struct pg_error err = {0};
    int r = pg_config_load(g->config_path, cfg, &err);
    if (r < 0)
        return complain(EXIT_USAGE, "%s", err.msg[0] ? err.msg : pg_strerror(r));
    return 0;
}

static int load_keyset_file(const char *path, struct pg_keyset **ks)
{
    char *text = NULL;
    size_t len = 0;
    bool truncated = false;
    int r = read_input(path, KEYSET_READ_MAX, &text, &len, &truncated);
    if (r < 0)
        return complain(EXIT_USAGE, "%s: %s", path, strerror(-r));
    struct pg_error err = {0};
    if (truncated)
        r = complain(EXIT_USAGE, "%s: key set larger than %d bytes", path, KEYSET_READ_MAX);
    else if ((r = pg_keyset_parse(text, len, ks, &err)) < 0)
        r = complain(EXIT_USAGE, "%s: %s", path, err.msg);
    free(text);
    return r;
}

static json_t *strlist_json(const struct pg_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->count; i++)
        json_array_append_new(a, json_string(l->items[i]));
    return a;
}

static void set_opt_string(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

/* The identity (NULL: none) as JSON on stdout, with `extra`'s members
 * (status only: registration and service; NULL: none). */
static int print_identity(const struct pg_identity *id, json_t *extra)
{
    json_t *o = json_object();
    if (!o)
        return complain(EXIT_USAGE, "out of memory");
    if (id) {
        set_opt_string(o, "sub", id->sub);
        set_opt_string(o, "oid", id->oid);
        set_opt_string(o, "tid", id->tid);
        set_opt_string(o, "iss", id->iss);
        json_object_set_new(o, "aud", strlist_json(&id->aud));
        json_object_set_new(o, "exp", json_integer(id->exp));
        if (id->iat >= 0)
            json_object_set_new(o, "iat", json_integer(id->iat));
        if (id->nbf >= 0)
            json_object_set_new(o, "nbf", json_integer(id->nbf));
        json_object_set_new(o, "roles", strlist_json(&id->roles));
        set_opt_string(o, "name", id->name);
        json_object_set_new(o, "app_only", json_boolean(id->app_only));
    }
    if (extra)
        json_object_update(o, extra);
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    if (!text)
        return complain(EXIT_USAGE, "out of memory");
    int r = puts(text) < 0 || fflush(stdout) != 0 ? complain(EXIT_USAGE, "cannot write output")
                                                  : EXIT_OK;
    free(text);
    return r;
}

static int parse_epoch(const char *s, time_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 253402300799LL)
        return complain(EXIT_USAGE, "--now: '%s' is not a positive epoch time in seconds", s);
    *out = (time_t)v;
    return 0;
}

struct validate_args {
    const char *jwks, *token;
    time_t now;
};

static int validate_parse_args(int argc, char **argv, struct validate_args *a)
{
    static const struct option opts[] = {
        {"jwks", required_argument, NULL, 'j'},
        {"now", required_argument, NULL, 'n'},
        {"token", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            a->jwks = optarg;
            break;
        case 't':
            a->token = optarg;
            break;
        case 'n':
            if ((r = parse_epoch(optarg, &a->now)) != 0)
                return r;
            break;
        case 'h':
            fputs("usage: poolgate [--config PATH] validate [--jwks FILE] [--now EPOCH] "
                  "[--token FILE]\n",
                  stdout);
            return -1;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc)
        return complain(EXIT_USAGE, "validate: unexpected argument '%s'", argv[optind]);
    return 0;
}

/* Read the token; one trailing newline is allowed and dropped. */
static int read_token(const char *path, char **tok, size_t *len)
{
    bool truncated = false;
    int r = read_input(path, TOKEN_READ_MAX, tok, len, &truncated);
    if (r < 0)
        return complain(EXIT_USAGE, "%s: %s", path && strcmp(path, "-") ? path : "stdin",
                        strerror(-r));
    if (!truncated && *len > 0 && (*tok)[*len - 1] == '\n')
        (*tok)[--*len] = '\0';
    return 0;
}

/* The helper's path and account, from --helper and helper_user. */
static int find_helper(const struct globals *g, const struct pg_config *cfg, struct helper *h)
{
    h->path = g->helper_path;
    if (h->path[0] != '/')
        return complain(EXIT_USAGE, "--helper must be an absolute path");
    struct pg_error err = {0};
    if (pg_helper_account(cfg->helper_user, geteuid(), &h->uid, &h->gid, &err) < 0)
        return complain(EXIT_USAGE, "%s", err.msg);
    /* qr = auto: only where a person looks at a terminal. */
    h->qr = cfg->qr == PG_QR_ON || (cfg->qr == PG_QR_AUTO && isatty(STDERR_FILENO));
    return 0;
}

/* Run one helper request; returns the exit code, complaining on failure
 * (with the administrator's fix when the provider's refusal has one). */
static int ask_helper_why(const struct globals *g, const struct helper *h, int type, uid_t uid,
                          bool unknown_kid, struct helper_done *out, char *msg, size_t msgsz)
{
    json_t *req = json_pack("{s:s, s:I, s:b}", "config", g->config_path, "uid", (json_int_t)uid,
                            "unknown_kid", unknown_kid);
    int st = req ? helper_exchange(h, type, req, msg, msgsz, out) : -1;
    json_decref(req);
    if (st < 0)
        return complain(EXIT_USAGE, "%s", msg[0] ? msg : "cannot run the helper");
    if (st != EXIT_OK) {
        complain(st, "%s", msg);
        if (out && out->ref.fix[0])
            complain(st, "what the administrator can do: %s", out->ref.fix);
        return st;
    }
    return EXIT_OK;
}

static int ask_helper(const struct globals *g, const struct helper *h, int type, uid_t uid,
                      bool unknown_kid, struct helper_done *out)
{
    char msg[PG_ERROR_MAX] = "";
    return ask_helper_why(g, h, type, uid, unknown_kid, out, msg, sizeof(msg));
}

/* One audit line per sign-in; a refusal names the provider's code and its
 * correlation id (what a support ticket needs), never a token.  The code
 * is the provider's own text: every value goes through pg_audit_field(),
 * so none can add a field or a line. */
static void audit_login(uid_t uid, int rc, const char *reason, const struct pg_refusal *ref)
{
    char line[2048], id[16];
    snprintf(id, sizeof(id), "%u", (unsigned)uid);
    snprintf(line, sizeof(line), "login");
    pg_audit_field(line, sizeof(line), "uid", id, false);
    pg_audit_field(line, sizeof(line), "outcome", rc == EXIT_OK ? "signed-in" : "refused", false);
    pg_audit_field(line, sizeof(line), "class", ref->cls[0] ? ref->cls : "-", false);
    pg_audit_field(line, sizeof(line), "code", ref->code[0] ? ref->code : "-", false);
    pg_audit_field(line, sizeof(line), "correlation_id",
                   ref->correlation[0] ? ref->correlation : "-", false);
    pg_audit_field(line, sizeof(line), "reason", rc == EXIT_OK ? "ok" : reason, true);
    openlog("poolgate", LOG_PID, LOG_AUTHPRIV);
    syslog(LOG_AUTHPRIV | (rc == EXIT_OK ? LOG_NOTICE : LOG_WARNING), "%s", line);
    closelog();
}

/* Verify with the cached key set, asking the helper to bring it up to date
 * when it is missing, past its day, or lacks the token's key (rate-limited). */
static int verify_cached(const struct globals *g, const struct pg_config *cfg,
                         const struct helper *h, const char *tok, time_t now,
                         struct pg_verify_result *res)
{
    enum pg_gate_keys keys = PG_GATE_KEYS_OK;
    struct pg_error err = {0};
    int v = pg_gate_verify(cfg, h->uid, tok, now, &keys, res, &err);
    if (keys != PG_GATE_KEYS_OK) {
        pg_verify_result_clear(res);
        int r = ask_helper(g, h, PG_MSG_KEYS, getuid(), keys == PG_GATE_KEYS_UNKNOWN_KID, NULL);
        if (r != 0)
            return r;
        v = pg_gate_verify(cfg, h->uid, tok, now, &keys, res, &err);
    }
    if (v < 0 && v != PG_ERR_TOKEN)
        return complain(v == PG_ERR_IO ? EXIT_USAGE : exit_code(v), "no usable key set for %s: %s",
                        cfg->issuer, err.msg);
    return v;
}

static int report_verify(int v, const struct pg_verify_result *res)
{
    if (v == PG_ERR_TOKEN)
        return complain(EXIT_DENIED, "invalid token: %s: %s", pg_reason_name(res->reason),
                        res->detail);
    if (v < 0)
        return complain(exit_code(v), "cannot validate: %s", pg_strerror(v));
    return v; /* 0, or an exit code already reported */
}

static int cmd_validate(const struct globals *g, int argc, char **argv)
{
    struct validate_args a = {0};
    struct pg_config *cfg = NULL;
    struct pg_keyset *ks = NULL;
    struct pg_verify_result res = {0};
    struct helper h = {0};
    char *tok = NULL;
    size_t len = 0;

    int r = validate_parse_args(argc, argv, &a);
    if (r != 0)
        return r < 0 ? EXIT_OK : r;
    if ((r = load_config(g, &cfg)) != 0 || (a.jwks && (r = load_keyset_file(a.jwks, &ks)) != 0) ||
        (!a.jwks && (r = find_helper(g, cfg, &h)) != 0) ||
        (r = read_token(a.token, &tok, &len)) != 0)
        goto out;
    int v = ks ? pg_verify_token(cfg, ks, tok, len, &(struct pg_verify_opts){.now = a.now}, &res)
               : verify_cached(g, cfg, &h, tok, a.now, &res);
    r = v == 0 ? print_identity(&res.id, NULL) : report_verify(v, &res);
out:
    if (tok) {
        pg_memzero(tok, len);
        free(tok);
    }
    pg_verify_result_clear(&res);
    pg_keyset_free(ks);
    pg_config_free(cfg);
    return r;
}

/* Options of the commands that act for an account. */
enum { OPT_JSON = 1, OPT_REPLACE = 2, OPT_UNATTENDED = 4, OPT_IF_NOT_REGISTERED = 8 };

struct user_args {
    const char *user;
    bool json, replace, unattended, if_not_registered;
};

static int user_parse_args(const char *cmd, int argc, char **argv, int allowed, struct user_args *a)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, OPT_JSON},
        {"replace", no_argument, NULL, OPT_REPLACE},
        {"unattended", no_argument, NULL, OPT_UNATTENDED},
        {"if-not-registered", no_argument, NULL, OPT_IF_NOT_REGISTERED},
        {0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if (c == 'u')
            a->user = optarg;
        else if (c > 0 && c <= OPT_IF_NOT_REGISTERED && (c & allowed))
            *(c == OPT_JSON         ? &a->json
              : c == OPT_REPLACE    ? &a->replace
              : c == OPT_UNATTENDED ? &a->unattended
                                    : &a->if_not_registered) = true;
        else
            return complain(EXIT_USAGE, "%s: unknown option (see poolgate --help)", cmd);
    }
    if (optind != argc)
        return complain(EXIT_USAGE, "%s: unexpected argument '%s'", cmd, argv[optind]);
    return 0;
}

/* The local account a command acts for: the caller, or --user (root only). */
static int target_uid(const char *user, uid_t *uid)
{
    if (!user) {
        *uid = getuid();
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return complain(EXIT_USAGE, "no such user '%s'", user);
    if (pw->pw_uid != getuid() && geteuid() != 0)
        return complain(EXIT_USAGE, "only root may act for another user");
    *uid = pw->pw_uid;
    return 0;
}

/* Common start of login, status and logout. */
static int user_command(const struct globals *g, const char *cmd, int argc, char **argv,
                        int allowed, struct user_args *a, struct pg_config **cfg, struct helper *h,
                        uid_t *uid)
{
    int r = user_parse_args(cmd, argc, argv, allowed, a);
    if (r == 0)
        r = target_uid(a->user, uid);
    if (r == 0)
        r = load_config(g, cfg);
    if (r == 0)
        r = find_helper(g, *cfg, h);
    return r;
}

/* The stored gate token of uid, verified; *has_refresh tells whether a refresh token is stored. */
static int stored_identity(const struct globals *g, const struct pg_config *cfg,
                           const struct helper *h, uid_t uid, struct pg_verify_result *res,
                           bool *has_refresh)
{
    struct pg_error err = {0};
    char *gate = NULL;
    if (pg_gate_stored(cfg, uid, h->uid, &gate, has_refresh, NULL, NULL, &err) < 0)
        return complain(EXIT_DENIED, "not signed in (%s)", err.msg);
    int r = verify_cached(g, cfg, h, gate, 0, res);
    pg_free_secret(gate);
    return r;
}

/* A device-code sign-in through the helper, its gate token verified here
 * too (the helper verified the set before storing it).  With `ticket`,
 * the sign-in's enrollment ticket (release with pg_free_secret): NULL when
 * a later sign-in's set was kept instead of this one. */
static int sign_in_now(const struct globals *g, const struct pg_config *cfg, const struct helper *h,
                       uid_t uid, struct pg_verify_result *res, char **ticket)
{
    struct helper_done done = {0};
    char msg[PG_ERROR_MAX] = "";
    int r = ask_helper_why(g, h, PG_MSG_LOGIN, uid, false, &done, msg, sizeof(msg));
    if (r == 0 && (!done.token || done.signed_in_at <= 0))
        r = complain(EXIT_UNAVAILABLE, "the helper returned no token or no signed_in_at");
    if (r == 0)
        r = report_verify(verify_cached(g, cfg, h, done.token, 0, res), res);
    if (r == 0 && ticket)
        *ticket = TAKE_PTR(done.ticket);
    audit_login(uid, r, msg[0] ? msg : "the signed-in token does not pass", &done.ref);
    pg_free_secret(done.token);
    pg_free_secret(done.ticket);
    return r;
}

/* Who the token names, for a person at a terminal: every claim shown is
 * the provider's text, so each passes pg_printable() first. */
static void describe(const struct pg_identity *id)
{
    char when[64] = "", name[256], oid[128], tid[128], role[256];
    time_t exp = (time_t)id->exp;
    struct tm tm;
    if (gmtime_r(&exp, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    pg_printable(name, sizeof(name), id->name ? id->name : "-");
    pg_printable(oid, sizeof(oid), id->oid ? id->oid : "-");
    pg_printable(tid, sizeof(tid), id->tid ? id->tid : "-");
    fprintf(stderr, "signed in as %s (oid %s, tenant %s)\nroles: ", name, oid, tid);
    for (size_t i = 0; i < id->roles.count; i++) {
        pg_printable(role, sizeof(role), id->roles.items[i]);
        fprintf(stderr, "%s%s", i ? ", " : "", role);
    }
    fprintf(stderr, "%s\nvalid until %s\n", id->roles.count ? "" : "(none)", when);
}

static int cmd_login(const struct globals *g, int argc, char **argv)
{
    struct user_args a = {0};
    struct pg_config *cfg = NULL;
    struct helper h = {0};
    struct pg_verify_result res = {0};
    uid_t uid = 0;
    int r = user_command(g, "login", argc, argv, 0, &a, &cfg, &h, &uid);
    if (r == 0 && (r = sign_in_now(g, cfg, &h, uid, &res, NULL)) == 0)
        describe(&res.id);
    pg_verify_result_clear(&res);
    pg_config_free(cfg);
    return r;
}

/* ---- the agent's service ------------------------------------------------------- */

static const char *const owner_names[] = {"not installed", "written by poolgate",
                                          "not written by poolgate"};

/* The unit's name and state for `status`, `service status` and --json;
 * NULL (and *why set) when it cannot be told. */
static json_t *service_json(const struct pg_config *cfg, uid_t uid, gid_t gid, char *why,
                            size_t whysz)
{
    struct pg_service s;
    struct pg_service_state st;
    struct pg_error err = {0};
    if (pg_service_init(&s, cfg, uid, gid, &err) < 0 || pg_service_state(&s, &st, &err) < 0) {
        snprintf(why, whysz, "%s", err.msg);
        return NULL;
    }
    return json_pack("{s:s, s:b, s:b, s:s, s:s, s:s, s:I}", "unit", s.unit, "installed",
                     st.owner != PG_UNIT_NONE, "poolgate", st.owner == PG_UNIT_POOLGATE,
                     "active_state", st.active, "sub_state", st.sub, "unit_file_state", st.enabled,
                     "main_pid", (json_int_t)st.main_pid);
}

static void describe_service(const json_t *svc, const char *why)
{
    if (!svc) {
        fprintf(stderr, "service: unknown (%s)\n", why);
        return;
    }
    bool installed = json_is_true(json_object_get(svc, "installed"));
    bool ours = json_is_true(json_object_get(svc, "poolgate"));
    fprintf(stderr, "service: %s (%s)", json_string_value(json_object_get(svc, "unit")),
            owner_names[!installed ? 0
                        : ours     ? 1
                                   : 2]);
    if (installed)
        fprintf(stderr, ": %s (%s), %s, main pid %lld",
                json_string_value(json_object_get(svc, "active_state")),
                json_string_value(json_object_get(svc, "sub_state")),
                json_string_value(json_object_get(svc, "unit_file_state")),
                (long long)json_integer_value(json_object_get(svc, "main_pid")));
    fputc('\n', stderr);
}

/* What status adds about the agent: registered, its version, its service. */
static json_t *agent_json(const struct pg_config *cfg, uid_t uid, bool human)
{
    char why[PG_ERROR_MAX] = "", version[PG_AGENT_VERSION_MAX] = "";
    struct passwd pw, *found = NULL;
    char buf[4096];
    struct pg_error err = {0};
    json_t *o = json_object();
    if (!o || !cfg->agent_dir)
        return o;
    bool registered = pg_agent_registered(cfg->agent_dir);
    json_object_set_new(o, "registered", json_boolean(registered));
    if (human)
        fprintf(stderr, "agent: %s in %s\n", registered ? "registered" : "not registered",
                cfg->agent_dir);
    if (uid == 0 || getpwuid_r(uid, &pw, buf, sizeof(buf), &found) || !found)
        return o;
    if (pg_agent_version_read(cfg->agent_dir, uid, pw.pw_gid, version, &err) == 0)
        json_object_set_new(o, "agent_version", json_string(version));
    if (human)
        fprintf(stderr, "agent version: %s\n", version[0] ? version : err.msg);
    if (!cfg->organization_url)
        return o;
    json_t *svc = service_json(cfg, uid, pw.pw_gid, why, sizeof(why));
    if (human)
        describe_service(svc, why);
    json_object_set_new(o, "service", svc ? svc : json_null());
    return o;
}

static int cmd_status(const struct globals *g, int argc, char **argv)
{
    struct user_args a = {0};
    struct pg_config *cfg = NULL;
    struct helper h = {0};
    struct pg_verify_result res = {0};
    bool refresh = false;
    uid_t uid = 0;
    int r = user_command(g, "status", argc, argv, OPT_JSON, &a, &cfg, &h, &uid);
    if (r != 0)
        goto out;
    r = report_verify(stored_identity(g, cfg, &h, uid, &res, &refresh), &res);
    if (r == EXIT_DENIED && refresh)
        fprintf(stderr, "a refresh token is stored: the next sign-in may not need the code\n");
    if (r == 0 && !a.json)
        describe(&res.id);
    /* The agent's part is told even without a sign-in: an unattended host
     * has none, and monitoring reads it. */
    if (r == 0 || r == EXIT_DENIED) {
        json_t *agent = agent_json(cfg, uid, !a.json);
        if (a.json && agent)
            json_object_set_new(agent, "signed_in", json_boolean(r == 0));
        int w = a.json ? print_identity(r == 0 ? &res.id : NULL, agent) : 0;
        r = r ? r : w;
        json_decref(agent);
    }
out:
    pg_verify_result_clear(&res);
    pg_config_free(cfg);
    return r;
}

static int cmd_logout(const struct globals *g, int argc, char **argv)
{
    struct user_args a = {0};
    struct pg_config *cfg = NULL;
    struct helper h = {0};
    uid_t uid = 0;
    int r = user_command(g, "logout", argc, argv, 0, &a, &cfg, &h, &uid);
    if (r == 0 && (r = ask_helper(g, &h, PG_MSG_LOGOUT, uid, false, NULL)) == 0)
        fprintf(stderr, "signed out: the stored token set is deleted\n");
    pg_config_free(cfg);
    return r;
}

/* ---- register, unregister --------------------------------------------------- */

/*
 * The agent account: --user, else the caller; as root under sudo, the
 * account that ran sudo (the sudoers line routes the agent account's
 * re-registration through root).
 */
static int agent_account(const char *user, struct passwd *pw, char *buf, size_t bufsz)
{
    struct passwd *found = NULL;
    const char *sudo_uid = getuid() == 0 && !user ? getenv("SUDO_UID") : NULL;
    uid_t uid = sudo_uid ? (uid_t)strtoul(sudo_uid, NULL, 10) : getuid();
    int e =
        user ? getpwnam_r(user, pw, buf, bufsz, &found) : getpwuid_r(uid, pw, buf, bufsz, &found);
    if (e || !found)
        return complain(EXIT_USAGE, "no such user '%s'", user ? user : sudo_uid ? sudo_uid : "?");
    if (found->pw_uid != getuid() && geteuid() != 0)
        return complain(EXIT_USAGE, "only root may act for another user");
    return 0;
}

static void audit_enroll(const char *action, const struct passwd *pw, const struct pg_identity *id,
                         const struct pg_config *cfg, const struct pg_enrolled *res,
                         const char *outcome, const char *reason)
{
    char line[2048];
    pg_enroll_audit(line, sizeof(line),
                    &(struct pg_enroll_audit){action, pw->pw_name, id, cfg, res->agent_name,
                                              res->agent_id, outcome, reason, &res->refusal});
    openlog("poolgate", LOG_PID, LOG_AUTHPRIV);
    syslog(LOG_AUTHPRIV |
               (strcmp(outcome, "refused") && strcmp(outcome, "failed") ? LOG_NOTICE : LOG_WARNING),
           "%s", line);
    closelog();
}

/* agent_dir, reached without following any link (a parent the agent
 * account owns could be swapped for a link into another account's tree),
 * must be the agent account's own directory. */
static int agent_dir_owned(const struct pg_config *cfg, const struct passwd *pw)
{
    struct pg_error err = {0};
    struct stat st;
    int fd = -1;
    if (!cfg->agent_dir)
        return complain(EXIT_USAGE, "register --unattended: agent_dir is not set in the "
                                    "configuration");
    if (pg_open_dir_nolinks(cfg->agent_dir, "agent_dir", &fd, &err) < 0)
        return complain(EXIT_USAGE, "register --unattended: %s", err.msg);
    int r = fstat(fd, &st) < 0 ? complain(EXIT_USAGE, "register --unattended: agent_dir %s: %s",
                                          cfg->agent_dir, strerror(errno))
            : st.st_uid != pw->pw_uid
                ? complain(EXIT_USAGE,
                           "register --unattended: agent_dir %s is owned by uid %u, not by the "
                           "agent account %s (uid %u)",
                           cfg->agent_dir, (unsigned)st.st_uid, pw->pw_name, (unsigned)pw->pw_uid)
                : 0;
    close(fd);
    return r;
}

/*
 * The agent account of an unattended registration: --user, else
 * agent_user; never one derived from a path.  agent_dir must be its own.
 */
static int unattended_account(const char *user, const struct pg_config *cfg, struct passwd *pw,
                              char *buf, size_t bufsz)
{
    if (geteuid() != 0)
        return complain(EXIT_USAGE, "register --unattended: only root may register unattended "
                                    "(it reads certificate_file and writes the agent's files)");
    if (!user && !cfg->agent_user)
        return complain(EXIT_USAGE, "register --unattended: set agent_user in the configuration "
                                    "(or name the agent account with --user)");
    int r = agent_account(user ? user : cfg->agent_user, pw, buf, bufsz);
    return r ? r : agent_dir_owned(cfg, pw);
}

/* The service principal or managed identity the helper's gate passed. */
static struct pg_identity app_identity(struct pg_enrolled *done)
{
    return (struct pg_identity){.oid = done->oid[0] ? done->oid : NULL,
                                .tid = done->tid[0] ? done->tid : NULL,
                                .name = done->name[0] ? done->name : NULL,
                                .app_only = true};
}

/*
 * The enrollment ticket sudo handed to this command (POOLGATE_SIGN_IN, from
 * the PAM environment of its `pam_poolgate.so reauth` sign-in), taken out
 * of the environment and its bytes cleared there (/proc/<pid>/environ):
 * nothing this command starts inherits it.  NULL when none.
 */
static char *ticket_from_env(void)
{
    char *value = getenv(TICKET_ENV), *ticket = value ? strdup(value) : NULL;
    if (value)
        pg_memzero(value, strlen(value));
    unsetenv(TICKET_ENV);
    return ticket;
}

/*
 * Whether the ticket handed to this command is the stored set's: a sign-in
 * a person made for it (sudo's `reauth`), not used or replaced since.  A
 * refresh keeps the ticket but never hands one out, and a ticket taken
 * from an environment is nothing by itself: the stored set decides, and
 * the helper checks it again under the store's lock and uses it up.  The
 * gate token must pass the policy too.
 */
static bool signed_in_for_command(const struct globals *g, const struct pg_config *cfg,
                                  const struct helper *h, uid_t uid, const char *ticket,
                                  struct pg_verify_result *res)
{
    struct pg_error err = {0};
    char *gate = NULL;
    bool refresh = false, current = false;
    if (!ticket || pg_gate_stored(cfg, uid, h->uid, &gate, &refresh, ticket, &current, &err) < 0)
        return false;
    int v = current ? verify_cached(g, cfg, h, gate, 0, res) : -1;
    pg_free_secret(gate);
    if (v == PG_ERR_TOKEN)
        report_verify(v, res); /* why the sign-in before the command does not count */
    if (v != 0)
        pg_verify_result_clear(res);
    return v == 0;
}

/* Who may change the pool: a person who completed a device-code sign-in
 * for this command (just before it, through sudo's stack, or now).
 * *ticket is that sign-in's enrollment ticket, for the helper. */
static int operator_gate(const struct globals *g, const char *cmd, const struct pg_config *cfg,
                         const struct helper *h, const struct passwd *pw,
                         struct pg_verify_result *res, char **ticket)
{
    struct pg_enrolled none = {0};
    int r = 0;
    if (!signed_in_for_command(g, cfg, h, pw->pw_uid, *ticket, res)) {
        fprintf(stderr,
                "%s: a device-code sign-in is needed for this change (a stored or "
                "refreshed sign-in never counts)\n",
                cmd);
        pg_free_secret(TAKE_PTR(*ticket));
        r = sign_in_now(g, cfg, h, pw->pw_uid, res, ticket);
        if (r == 0 && !*ticket)
            r = complain(EXIT_DENIED, "%s: a later sign-in replaced this one; run it again", cmd);
    }
    if (r != 0) {
        pg_agent_name(cfg, none.agent_name, sizeof(none.agent_name), NULL);
        audit_enroll(cmd, pw, &res->id, cfg, &none, "refused",
                     "no device-code sign-in passed the gate for this command");
    }
    return r;
}

/* The helper account is not the agent account: checked before the gate,
 * whose verdict would mean nothing otherwise (that account writes the store
 * and the key cache the gate believes). */
static int accounts_apart(const char *cmd, const struct pg_config *cfg, const struct helper *h,
                          const struct passwd *pw)
{
    struct pg_enrolled none = {0};
    struct pg_error err = {0};
    if (pg_helper_not_agent(cfg, h->uid, pw->pw_uid, &err) == 0)
        return 0;
    pg_agent_name(cfg, none.agent_name, sizeof(none.agent_name), NULL);
    audit_enroll(cmd, pw, NULL, cfg, &none, "failed", err.msg);
    return complain(EXIT_USAGE, "%s: %s", cmd, err.msg);
}

/* agent_service: how the unit fared after the pool change. */
static int service_outcome(const char *cmd, const struct pg_config *cfg,
                           const struct pg_enrolled *done)
{
    if (done->service_error[0])
        return complain(EXIT_USAGE, "%s: the pool change is made, but the agent's service: %s", cmd,
                        done->service_error);
    if (cfg->agent_service)
        fprintf(stderr, "agent service: %s\n",
                strcmp(cmd, "register") == 0 ? "installed and running" : "stopped and removed");
    return EXIT_OK;
}

/* Register or unregister, after the gate passed: the stored operator's
 * token, or (--unattended) the configured credential's, checked by the
 * helper before Azure DevOps is asked anything. */
static int enroll_command(const struct globals *g, const char *cmd, int argc, char **argv, bool reg)
{
    struct user_args a = {0};
    struct pg_config *cfg = NULL;
    struct helper h = {0};
    struct pg_verify_result res = {0};
    struct pg_enrolled done = {0};
    struct pg_error err = {0};
    struct passwd pw = {0};
    char buf[4096];
    char *ticket = ticket_from_env();
    int r = user_parse_args(cmd, argc, argv,
                            reg ? OPT_REPLACE | OPT_UNATTENDED | OPT_IF_NOT_REGISTERED : 0, &a);
    if (r == 0 && a.if_not_registered && !a.unattended)
        r = complain(EXIT_USAGE, "register: --if-not-registered goes with --unattended");
    if (r == 0)
        r = load_config(g, &cfg);
    if (r == 0)
        r = a.unattended ? unattended_account(a.user, cfg, &pw, buf, sizeof(buf))
                         : agent_account(a.user, &pw, buf, sizeof(buf));
    if (r == 0 && a.if_not_registered && cfg->agent_dir && pg_agent_registered(cfg->agent_dir)) {
        fprintf(stderr, "agent already registered in %s; nothing to do\n", cfg->agent_dir);
        goto out;
    }
    if (r == 0)
        r = find_helper(g, cfg, &h);
    if (r == 0)
        r = accounts_apart(cmd, cfg, &h, &pw);
    /* Nothing reaches Azure DevOps unless the gate holds now. */
    if (r == 0 && !a.unattended)
        r = operator_gate(g, cmd, cfg, &h, &pw, &res, &ticket);
    if (r != 0)
        goto out;
    struct pg_enroll e = {
        cfg,
        g->config_path,
        {.path = h.path, .uid = h.uid, .gid = h.gid, .stderr_fd = STDERR_FILENO, .fd = -1},
        pw.pw_uid,
        pw.pw_gid,
        a.replace,
        a.unattended ? &pg_unattended_credential : NULL,
        ticket};
    int v = reg ? pg_enroll(&e, &done, &err) : pg_unenroll(&e, &done, &err);
    struct pg_identity app = app_identity(&done);
    const struct pg_identity *who = a.unattended ? &app : &res.id;
    if (v < 0) {
        if (!done.agent_name[0])
            pg_agent_name(cfg, done.agent_name, sizeof(done.agent_name), NULL);
        /* Unattended, a denial is the gate's (or Azure DevOps') verdict on the identity. */
        audit_enroll(cmd, &pw, who, cfg, &done,
                     a.unattended && v == PG_ERR_DENIED ? "refused" : "failed", err.msg);
        /* (The helper's text, which quotes Azure DevOps and the provider, for a terminal.) */
        pg_printable(err.msg, sizeof(err.msg), err.msg);
        r = complain(exit_code(v), "%s: %s", cmd, err.msg);
        if (done.refusal.fix[0])
            complain(r, "what the administrator can do: %s", done.refusal.fix);
        goto out;
    }
    const char *outcome = !reg ? "unregistered" : done.replaced ? "replaced" : "registered";
    audit_enroll(cmd, &pw, who, cfg, &done, outcome, NULL);
    /* (The name as Azure DevOps answered it, for the terminal.) */
    pg_printable(done.agent_name, sizeof(done.agent_name), done.agent_name);
    if (reg)
        fprintf(stderr,
                "agent '%s' %s in pool '%s' (agent id %lld, pool id %lld); files written to %s\n",
                done.agent_name, outcome, cfg->pool, (long long)done.agent_id,
                (long long)done.pool_id, cfg->agent_dir);
    else
        fprintf(stderr, "agent '%s' %s pool '%s'; its files are removed from %s\n", done.agent_name,
                done.was_gone ? "was no longer in" : "removed from", cfg->pool, cfg->agent_dir);
    r = service_outcome(cmd, cfg, &done);
out:
    pg_free_secret(ticket);
    pg_verify_result_clear(&res);
    pg_config_free(cfg);
    return r;
}

static int cmd_register(const struct globals *g, int argc, char **argv)
{
    return enroll_command(g, "register", argc, argv, true);
}

static int cmd_unregister(const struct globals *g, int argc, char **argv)
{
    return enroll_command(g, "unregister", argc, argv, false);
}

static const char *const service_verbs[] = {"install", "uninstall", "start", "stop", "status"};

/* poolgate service VERB [--user NAME]: the agent's unit, by hand. */
static int cmd_service(const struct globals *g, int argc, char **argv)
{
    struct user_args a = {0};
    struct pg_config *cfg = NULL;
    struct pg_service s;
    struct pg_error err = {0};
    struct passwd pw = {0};
    char buf[4096], why[PG_ERROR_MAX] = "";
    static const struct option opts[] = {{"user", required_argument, NULL, 'u'}, {0}};
    size_t verb = 0;
    int c, r = 0;
    optind = 1;
    /* The verb may come before or after --user (GNU getopt permutes). */
    while (r == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (c == 'u')
            a.user = optarg;
        else
            r = complain(EXIT_USAGE, "service: unknown option (see poolgate --help)");
    while (r == 0 && optind + 1 == argc && verb < PG_ARRAY_SIZE(service_verbs) &&
           strcmp(argv[optind], service_verbs[verb]) != 0)
        verb++;
    if (r == 0 && (optind + 1 != argc || verb == PG_ARRAY_SIZE(service_verbs)))
        r = complain(EXIT_USAGE, "service: say install, uninstall, start, stop or status");
    if (r == 0)
        r = load_config(g, &cfg);
    if (r == 0)
        r = agent_account(a.user, &pw, buf, sizeof(buf));
    if (r == 0 && pw.pw_uid == 0)
        r = complain(EXIT_USAGE, "service: name the agent account with --user");
    if (r == 0 && pg_service_init(&s, cfg, pw.pw_uid, pw.pw_gid, &err) < 0)
        r = complain(exit_code(err.code), "service: %s", err.msg);
    if (r != 0)
        goto out;
    int v = 0;
    if (verb == 0)
        v = pg_service_install(&s, &err);
    else if (verb == 1)
        v = pg_service_uninstall(&s, &err);
    else if (verb < 4)
        v = pg_service_control(&s, service_verbs[verb], &err);
    if (v < 0)
        r = complain(exit_code(v), "service %s: %s", service_verbs[verb], err.msg);
    else if (verb == 4) {
        json_t *svc = service_json(cfg, pw.pw_uid, pw.pw_gid, why, sizeof(why));
        describe_service(svc, why);
        r = svc ? EXIT_OK : complain(EXIT_USAGE, "service status: %s", why);
        json_decref(svc);
    } else
        fprintf(stderr, "service %s: %s (%s/%s)\n", service_verbs[verb], s.unit,
                cfg->systemd_unit_dir, s.unit);
out:
    pg_config_free(cfg);
    return r;
}

static int cmd_doctor(const struct globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pam-dir", required_argument, NULL, 'p'},
        {"sshd", required_argument, NULL, 's'},
        {"sshd-config", required_argument, NULL, 'f'},
        {0},
    };
    struct doctor_opts o = {.config_path = g->config_path,
                            .helper_path = g->helper_path,
                            .pam_dir = "/etc/pam.d",
                            .sshd = "/usr/sbin/sshd"};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if (c == 'p')
            o.pam_dir = optarg;
        else if (c == 's')
            o.sshd = optarg;
        else if (c == 'f')
            o.sshd_config = optarg;
        else
            return complain(EXIT_USAGE, "doctor: unknown option (see poolgate --help)");
    }
    if (optind != argc)
        return complain(EXIT_USAGE, "doctor: unexpected argument '%s'", argv[optind]);
    if (g->helper_path[0] != '/')
        return complain(EXIT_USAGE, "--helper must be an absolute path");
    return doctor_run(&o);
}

static void usage(FILE *f)
{
    fputs("usage: poolgate [--config PATH] [--helper PATH] COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  validate [--jwks FILE] [--now EPOCH] [--token FILE]\n"
          "           check one token against the configured policy\n"
          "  login [--user NAME]            sign in with a device code and store the tokens\n"
          "  status [--user NAME] [--json]  the signed-in identity and roles, the agent's\n"
          "                                 registration, version and service\n"
          "  logout [--user NAME]           delete the stored tokens\n"
          "  register [--user NAME] [--replace] [--unattended [--if-not-registered]]\n"
          "           register the agent into its pool (after a sign-in made for it;\n"
          "           --unattended: with the configured credential, as root;\n"
          "           --if-not-registered: do nothing when agent_dir has a registration)\n"
          "  unregister [--user NAME]       remove the agent from its pool and its files\n"
          "  service install|uninstall|start|stop|status [--user NAME]\n"
          "           the agent's systemd unit (vsts.agent.ORG.POOL.AGENT.service), as root\n"
          "  doctor [--pam-dir DIR] [--sshd PATH] [--sshd-config FILE]\n"
          "           check this host's setup, one line per check\n"
          "\n"
          "options:\n"
          "  --config PATH   configuration file (default " PG_DEFAULT_CONFIG ")\n"
          "  --helper PATH   the network helper (default " PG_HELPER_PATH ")\n"
          "  --help          show this text\n"
          "  --version       show the version\n"
          "\n"
          "See poolgate(1) and poolgate.conf(5).\n",
          f);
}

static const struct {
    const char *name;
    int (*run)(const struct globals *g, int argc, char **argv);
} commands[] = {
    {"validate", cmd_validate}, {"login", cmd_login},       {"status", cmd_status},
    {"logout", cmd_logout},     {"register", cmd_register}, {"unregister", cmd_unregister},
    {"doctor", cmd_doctor},     {"service", cmd_service},
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"helper", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    struct globals g = {.config_path = PG_DEFAULT_CONFIG, .helper_path = PG_HELPER_PATH};
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            g.config_path = optarg;
            break;
        case 'H':
            g.helper_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            puts("poolgate " PG_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* A helper that dies must not kill the CLI through a write to its pipe. */
    signal(SIGPIPE, SIG_IGN);
    const char *cmd = argv[optind];
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(&g, argc - optind, argv + optind);
    return complain(EXIT_USAGE, "unknown command '%s' (see poolgate --help)", cmd);
}
