/*
 * pam_poolgate.so — a device-code sign-in in front of an account.
 *
 * Runs inside the host process (sshd, sudo, login, su), usually as root.
 * It decides from a verified token only: the stored one when it still meets
 * the policy (no fork, no network), else one the helper obtains by refresh
 * or by a device-code sign-in shown through the PAM conversation.
 *
 * MUST:
 *   - Return PAM_SUCCESS from authenticate and account only through
 *     gate_result(), and only when pg_gate_verify() accepted a token under
 *     the whole policy; every other outcome is a failure, never PAM_IGNORE
 *     (which is for accounts outside users= alone).
 *   - Never exit, install a signal handler, touch process-global state or
 *     keep a mutable static; free what it allocates; kill and reap the
 *     helper on every path.
 *   - Never log, show or keep a token, refresh token or device code except
 *     the gate token kept for the account phase (cleared when PAM ends).
 *   - Hand a sign-in's enrollment ticket on only inside its PAM transaction
 *     (pam_set_data, and POOLGATE_SIGN_IN in the PAM environment for the
 *     session phase of sshd and the command of sudo); the session phase
 *     always takes the variable out of the PAM environment.
 */
#include <errno.h>
#include <pwd.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "agentfiles.h"
#include "enroll.h"
#include "entra_errors.h"
#include "gate.h"
#include "internal.h"
#include "pg-build-config.h"
#include "spawn.h"

#define PG_PAM_EXPORT __attribute__((visibility("default")))

#define DATA_KEY "poolgate:gate-token"
/* Present only when auth completed a device-code sign-in in this PAM
 * transaction: the sign-in's single-use enrollment ticket. */
#define TICKET_KEY "poolgate:enroll-ticket"
/* The same ticket in the PAM environment: sshd authenticates in a child
 * process, so the session phase sees no pam_set_data of auth, only the PAM
 * environment the child hands back; sudo merges it into the command's
 * environment (poolgate register takes it from there). */
#define TICKET_ENV "POOLGATE_SIGN_IN"
/* Beyond the helper's own deadlines, time for its DONE to arrive. */
#define GRACE_MS 3000
/* Not a library code: the PAM conversation failed or is absent. */
#define ERR_CONV (-100)

struct args {
    const char *config;
    const char *helper;
    const char *users; /* comma-separated, or NULL for every account */
    bool debug, reauth, reg;
    int prompt; /* enum pg_prompt, or -1: from the config */
    int qr;     /* enum pg_qr, or -1: from the config */
};

struct gate {
    pam_handle_t *pamh;
    struct args a;
    int flags;
    const char *service, *user, *tty;
    uid_t uid;
    gid_t gid;
    struct pg_config *cfg;
    struct pg_helper helper; /* path and account; started per request */
    const char *via;         /* how the token was obtained, for the audit line */
    char *ticket;            /* the helper's DONE after a sign-in: its enrollment ticket */
    struct pg_verify_result res;
    char reason[PG_ERROR_MAX];
    struct pg_refusal refusal; /* the provider's, from the helper's last DONE */
};

/* ---- arguments ---------------------------------------------------------- */

static int pick(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return -1;
}

static int parse_args(pam_handle_t *pamh, int argc, const char **argv, struct args *a)
{
    static const char *const prompts[] = {"auto", "info", "enter"};
    static const char *const qrs[] = {"auto", "on", "off"};
    *a = (struct args){
        .config = PG_DEFAULT_CONFIG, .helper = PG_HELPER_PATH, .prompt = -1, .qr = -1};
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        bool ok = true;
        if (strncmp(s, "config=", 7) == 0)
            a->config = s + 7;
        else if (strncmp(s, "helper=", 7) == 0)
            a->helper = s + 7;
        else if (strncmp(s, "users=", 6) == 0)
            a->users = s + 6;
        else if (strncmp(s, "prompt=", 7) == 0)
            ok = (a->prompt = pick(s + 7, prompts, 3)) >= 0;
        else if (strncmp(s, "qr=", 3) == 0)
            ok = (a->qr = pick(s + 3, qrs, 3)) >= 0;
        else if (strcmp(s, "debug") == 0)
            a->debug = true;
        else if (strcmp(s, "reauth") == 0)
            a->reauth = true;
        else if (strcmp(s, "register") == 0)
            a->reg = true;
        else
            ok = false;
        if (!ok) {
            pam_syslog(pamh, LOG_ERR, "invalid argument '%s' (see pam_poolgate(8))", s);
            return PAM_SERVICE_ERR;
        }
    }
    if (a->config[0] != '/' || a->helper[0] != '/') {
        pam_syslog(pamh, LOG_ERR, "config= and helper= need absolute paths");
        return PAM_SERVICE_ERR;
    }
    return PAM_SUCCESS;
}

/* A user name as the name services hand them out: letters, digits, '.',
 * '_', '-' (not first), '@' (SSSD's user@domain) and a final '$'. */
static bool user_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 255 || s[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && !strchr("._-@", s[i]) &&
            !(s[i] == '$' && i + 1 == len))
            return false;
    return true;
}

/* The uid of a local account; false when there is none. */
static bool uid_of(const char *name, uid_t *uid)
{
    char buf[4096];
    struct passwd pw, *found = NULL;
    if (getpwnam_r(name, &pw, buf, sizeof(buf), &found) != 0 || !found)
        return false;
    *uid = found->pw_uid;
    return true;
}

/*
 * Whether users= gates the account `user`, whose uid is *uid (NULL: no such
 * account; no users=: every account is gated).  The listed names are
 * resolved to uids at every call and compared with the user's uid, as the
 * store is keyed: an alias or another spelling of a listed account is
 * gated too.  A listed name spelled exactly as `user` is that account
 * already looked up: not looked up again (the shipped lines list the agent
 * account, which is the one logging in).  Fail closed: an empty or
 * malformed list, or a name no account has, is PAM_SERVICE_ERR with a line
 * saying which, for every account, never PAM_IGNORE.  PAM_IGNORE: not
 * listed.
 */
static int users_gate(pam_handle_t *pamh, const char *users, const char *user, const uid_t *uid)
{
    uid_t want = 0;
    char name[256], shown[300];
    if (!users)
        return PAM_SUCCESS;
    bool known = uid != NULL, in = false;
    pg_printable(shown, sizeof(shown), users);
    for (const char *p = users;; p++) {
        size_t len = strcspn(p, ",");
        if (!user_name_ok(p, len)) {
            pam_syslog(pamh, LOG_ERR, "users=%s: %s (see pam_poolgate(8))", shown,
                       len ? "a name that is not a user name" : "an empty name");
            return PAM_SERVICE_ERR;
        }
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        if (known && user && strcmp(name, user) == 0)
            want = *uid;
        else if (!uid_of(name, &want)) {
            pam_syslog(pamh, LOG_ERR, "users=%s: no account '%s' (see pam_poolgate(8))", shown,
                       name);
            return PAM_SERVICE_ERR;
        }
        in = in || (known && want == *uid);
        p += len;
        if (!*p)
            break;
    }
    return in ? PAM_SUCCESS : PAM_IGNORE;
}

/* ---- talking to the user ------------------------------------------------ */

static int converse(pam_handle_t *pamh, int style, const char *text)
{
    const struct pam_conv *conv = NULL;
    if (pam_get_item(pamh, PAM_CONV, (const void **)&conv) != PAM_SUCCESS || !conv || !conv->conv)
        return ERR_CONV;
    struct pam_message msg = {.msg_style = style, .msg = text};
    const struct pam_message *msgs[1] = {&msg};
    struct pam_response *resp = NULL;
    int r = conv->conv(1, msgs, &resp, conv->appdata_ptr);
    /* A prompt must be answered, even if only with an empty line. */
    bool answered = resp && resp->resp;
    if (resp) {
        pg_free_secret(resp->resp);
        free(resp);
    }
    if (r != PAM_SUCCESS || (style == PAM_PROMPT_ECHO_OFF && !answered))
        return ERR_CONV;
    return 0;
}

static bool enter_mode(const struct gate *g)
{
    int mode = g->a.prompt >= 0 ? g->a.prompt : (int)g->cfg->prompt;
    /* With PAM_SILENT no informational message may be shown: a prompt may. */
    if (g->flags & PAM_SILENT)
        return true;
    if (mode == PG_PROMPT_AUTO) /* OpenSSH shows info messages only with the next prompt */
        return g->service && strcmp(g->service, "sshd") == 0;
    return mode == PG_PROMPT_ENTER;
}

static bool want_qr(const struct gate *g)
{
    int qr = g->a.qr >= 0 ? g->a.qr : (int)g->cfg->qr;
    if (qr == PG_QR_AUTO) /* a local terminal, not a remote or graphical session */
        return g->tty && (strncmp(g->tty, "/dev/", 5) == 0 || strncmp(g->tty, "tty", 3) == 0 ||
                          strncmp(g->tty, "pts/", 4) == 0);
    return qr == PG_QR_ON;
}

/*
 * Show the sign-in request.  It names the host, the local account and what
 * is being authorized (RFC 8628 §5.4: the person approving must know which
 * device asks), the address and the code.
 */
/* The helper's QR code, when asked for and harmless to a terminal: lines of
 * printable text (block characters are UTF-8), no control character, no
 * C1 control (U+0080-U+009F).  Anything else is not shown at all. */
static const char *safe_qr(const struct gate *g, json_t *p)
{
    const char *qr = json_string_value(json_object_get(p, "qr"));
    if (!qr || !want_qr(g) || json_string_length(json_object_get(p, "qr")) != strlen(qr))
        return NULL;
    return pg_terminal_text(qr) ? qr : NULL;
}

static int show_prompt(struct gate *g, json_t *p)
{
    char uri[512], code[96], host[256] = "this host";
    pg_printable(uri, sizeof(uri), json_string_value(json_object_get(p, "verification_uri")));
    pg_printable(code, sizeof(code), json_string_value(json_object_get(p, "user_code")));
    if (gethostname(host, sizeof(host) - 1) < 0)
        snprintf(host, sizeof(host), "this host");
    /* (At most a day: the number is the helper's, and only for display.) */
    /* valid_for: the code's life or login_timeout, whichever ends first. */
    json_t *valid = json_object_get(p, "valid_for");
    json_int_t expires = json_integer_value(valid ? valid : json_object_get(p, "expires_in"));
    long minutes = (long)((expires < 0 ? 0 : expires > 86400 ? 86400 : expires) + 59) / 60;
    const char *qr = safe_qr(g, p);
    bool enter = enter_mode(g);
    char *text = NULL;
    int n = asprintf(&text,
                     "poolgate: sign-in required for %s as '%s' on host %s.\n"
                     "Open %s in a web browser and enter the code %s\n"
                     "(the code is valid for %ld minute%s).\n%s%s",
                     g->service ? g->service : "this service", g->user, host, uri, code, minutes,
                     minutes == 1 ? "" : "s", qr ? qr : "",
                     enter ? "Then press Enter after signing in: "
                           : "Waiting for the sign-in to complete...");
    if (n < 0)
        return PG_ERR_NOMEM;
    int r = converse(g->pamh, enter ? PAM_PROMPT_ECHO_OFF : PAM_TEXT_INFO, text);
    free(text);
    return r;
}

/* ---- the helper --------------------------------------------------------- */

/* The helper's DONE status (the CLI's exit codes) as a library code. */
static int from_status(int status)
{
    static const int codes[] = {0, PG_ERR_DENIED, PG_ERR_CONFIG, PG_ERR_NETWORK};
    return status >= 0 && status <= 3 ? codes[status] : PG_ERR_PROTOCOL;
}

static int read_done(struct gate *g, json_t *p, char **token)
{
    json_t *st = json_object_get(p, "status"), *tok = json_object_get(p, "token");
    int r = json_is_integer(st) ? from_status((int)json_integer_value(st)) : PG_ERR_PROTOCOL;
    pg_printable(g->reason, sizeof(g->reason), json_string_value(json_object_get(p, "message")));
    pg_refusal_from_done(p, &g->refusal);
    json_t *ticket = json_object_get(p, "ticket");
    if (r == 0 && token) {
        r = json_is_string(tok) ? 0 : PG_ERR_PROTOCOL;
        if (r == 0 && !(*token = strdup(json_string_value(tok))))
            r = PG_ERR_NOMEM;
    }
    if (r == 0 && json_is_string(ticket) && !g->ticket &&
        !(g->ticket = strdup(json_string_value(ticket))))
        r = PG_ERR_NOMEM;
    if (r < 0 && token) { /* a failure hands out no token */
        pg_free_secret(*token);
        *token = NULL;
    }
    pg_json_clear_string(tok);
    pg_json_clear_string(ticket);
    return r;
}

/*
 * One request to a fresh helper; PROMPT events go to the user.  The helper
 * is killed when the user cannot be told, or when the deadline passes:
 * for a sign-in min(login_timeout, expires_in), else a few HTTP timeouts.
 */
static int ask_helper(struct gate *g, enum pg_msg_type type, bool unknown_kid, char **token)
{
    int64_t start = pg_monotonic_ms();
    int64_t limit = type == PG_MSG_LOGIN ? g->cfg->login_timeout : 3 * g->cfg->http_timeout;
    int64_t deadline = start + limit * 1000 + GRACE_MS;
    struct pg_error err = {0};
    json_t *req = json_pack("{s:s, s:I, s:b, s:b}", "config", g->a.config, "uid",
                            (json_int_t)g->uid, "unknown_kid", unknown_kid, "qr", want_qr(g));
    int r = req ? pg_helper_start(&g->helper, type, req, &err) : PG_ERR_NOMEM;
    json_decref(req);
    bool done = false;
    while (r == 0 && !done) {
        enum pg_msg_type t;
        json_t *p = NULL;
        if ((r = pg_helper_event(&g->helper, deadline, &t, &p, &err)) < 0)
            break;
        if (t == PG_MSG_PROMPT && type == PG_MSG_LOGIN) {
            json_int_t exp = json_integer_value(json_object_get(p, "expires_in"));
            if (exp > 0 && exp < 86400 && pg_monotonic_ms() + exp * 1000 + GRACE_MS < deadline)
                deadline = pg_monotonic_ms() + exp * 1000 + GRACE_MS;
            r = show_prompt(g, p);
        } else if (t == PG_MSG_DONE) {
            r = read_done(g, p, token);
            done = true;
        } else
            r = pg_fail(&err, PG_ERR_PROTOCOL, "helper protocol: unexpected message");
        json_decref(p);
    }
    if (!done && r != ERR_CONV)
        snprintf(g->reason, sizeof(g->reason), "%s", err.msg[0] ? err.msg : pg_strerror(r));
    if (r == ERR_CONV)
        snprintf(g->reason, sizeof(g->reason), "the conversation failed");
    pg_helper_stop(&g->helper, !done);
    return r;
}

/* ---- verification ------------------------------------------------------- */

/* Verify with the cached keys; the helper brings them up to date when due. */
static int verify(struct gate *g, const char *token)
{
    struct pg_error err = {0};
    enum pg_gate_keys keys = PG_GATE_KEYS_OK;
    pg_verify_result_clear(&g->res);
    int r = pg_gate_verify(g->cfg, g->helper.uid, token, 0, &keys, &g->res, &err);
    if (keys != PG_GATE_KEYS_OK) {
        pg_verify_result_clear(&g->res);
        r = ask_helper(g, PG_MSG_KEYS, keys == PG_GATE_KEYS_UNKNOWN_KID, NULL);
        if (r == 0)
            r = pg_gate_verify(g->cfg, g->helper.uid, token, 0, &keys, &g->res, &err);
    }
    if (r == PG_ERR_TOKEN)
        snprintf(g->reason, sizeof(g->reason), "%s: %.200s", pg_reason_name(g->res.reason),
                 g->res.detail);
    else if (r < 0 && err.msg[0])
        snprintf(g->reason, sizeof(g->reason), "%s", err.msg);
    return r;
}

static void drop_token(pam_handle_t *pamh, void *data, int status)
{
    (void)pamh;
    (void)status;
    pg_free_secret(data);
}

/* Verify a token and, when it passes, keep it for the account phase. */
static int verify_and_keep(struct gate *g, char *token)
{
    int r = verify(g, token);
    if (r == 0 && pam_set_data(g->pamh, DATA_KEY, token, drop_token) != PAM_SUCCESS)
        r = PG_ERR_NOMEM;
    else if (r == 0)
        return 0; /* PAM owns the token now */
    pg_free_secret(token);
    return r;
}

/* Whether a verified gate token ends within PG_GATE_EXPIRY_MARGIN_S (clock_skew included). */
static bool expiring(const struct gate *g)
{
    return g->res.id.exp + g->cfg->clock_skew - (int64_t)time(NULL) <= PG_GATE_EXPIRY_MARGIN_S;
}

/* The stored set: its gate token as it stands, or refreshed by the helper
 * when it has expired or is about to. */
static int stored(struct gate *g, bool allow_refresh)
{
    struct pg_error err = {0};
    char *token = NULL;
    bool has_refresh = false;
    int r = pg_gate_stored(g->cfg, g->uid, g->helper.uid, &token, &has_refresh, NULL, NULL, &err);
    if (r < 0) {
        snprintf(g->reason, sizeof(g->reason), "not signed in: %.200s", err.msg);
        /* Nothing stored is a refusal; an unsafe store is a broken host. */
        return r == PG_ERR_IO ? PG_ERR_DENIED : r;
    }
    g->via = "cached";
    r = verify_and_keep(g, token);
    bool stale =
        (r == PG_ERR_TOKEN && g->res.reason == PG_REASON_EXPIRED) || (r == 0 && expiring(g));
    if (stale && has_refresh && allow_refresh) {
        token = NULL;
        g->via = "refresh";
        r = ask_helper(g, PG_MSG_REFRESH, false, &token);
        if (r == 0)
            r = verify_and_keep(g, token);
    }
    return r;
}

/* Hand the sign-in's ticket to the rest of this PAM transaction: kept for
 * a session phase in this process, and in the PAM environment for one in
 * another (sshd) and for sudo's command.  No ticket (a later sign-in's set
 * was kept instead): nothing to hand on, nothing registers. */
static int hand_on_ticket(struct gate *g)
{
    char *env = NULL;
    if (!g->ticket)
        return 0;
    if (asprintf(&env, "%s=%s", TICKET_ENV, g->ticket) < 0)
        return PG_ERR_NOMEM;
    int r = pam_putenv(g->pamh, env) == PAM_SUCCESS ? 0 : PG_ERR_NOMEM;
    pg_free_secret(env); /* PAM keeps its own copy, and clears it when it drops it */
    if (r == 0 && pam_set_data(g->pamh, TICKET_KEY, g->ticket, drop_token) != PAM_SUCCESS)
        r = PG_ERR_NOMEM;
    else if (r == 0)
        g->ticket = NULL; /* PAM owns it now */
    return r;
}

/* A device-code sign-in; when it passes, the transaction holds the
 * sign-in's enrollment ticket (registration asks for it). */
static int sign_in(struct gate *g)
{
    char *token = NULL;
    g->via = "sign-in";
    int r = ask_helper(g, PG_MSG_LOGIN, false, &token);
    if (r == 0)
        r = verify_and_keep(g, token);
    if (r == 0)
        r = hand_on_ticket(g);
    return r;
}

/* ---- results ------------------------------------------------------------ */

static void roles_text(const struct pg_strlist *roles, char *out, size_t outsz)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < roles->count && o < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%s%s", i ? "," : "", roles->items[i]);
    if (!roles->count)
        snprintf(out, outsz, "-");
}

/* One syslog line per decision; never a token or a code.  Every value
 * goes through pg_audit_field(): none can add a field or a line. */
static void audit(struct gate *g, const char *phase, int pam_code)
{
    const struct pg_identity *id = &g->res.id;
    char roles[512], line[2048];
    roles_text(&id->roles, roles, sizeof(roles));
    snprintf(line, sizeof(line), "%s", phase);
    pg_audit_field(line, sizeof(line), "service", g->service, false);
    pg_audit_field(line, sizeof(line), "user", g->user, false);
    pg_audit_field(line, sizeof(line), "operator_oid", id->oid, false);
    pg_audit_field(line, sizeof(line), "tid", id->tid, false);
    pg_audit_field(line, sizeof(line), "name", id->name, true);
    pg_audit_field(line, sizeof(line), "roles", roles, false);
    pg_audit_field(line, sizeof(line), "via", g->via, false);
    pg_audit_field(line, sizeof(line), "outcome", pam_code == PAM_SUCCESS ? "granted" : "refused",
                   false);
    pg_audit_field(line, sizeof(line), "reason", g->reason[0] ? g->reason : "ok", true);
    pg_audit_field(line, sizeof(line), "code", g->refusal.code[0] ? g->refusal.code : NULL, false);
    pg_audit_field(line, sizeof(line), "correlation_id",
                   g->refusal.correlation[0] ? g->refusal.correlation : NULL, false);
    pam_syslog(g->pamh, LOG_AUTHPRIV | (pam_code == PAM_SUCCESS ? LOG_NOTICE : LOG_WARNING), "%s",
               line);
}

/*
 * A sign-in the provider refused for a reason the operator cannot see
 * (a Conditional Access block, a revoked session, a broken app
 * registration): tell them why and what the administrator can do, rather
 * than a bare "Permission denied".  A declined or expired code needs no
 * explanation.  A provider that could not be reached, or kept failing
 * until the code ran out, is told in fixed words: the failure itself
 * (host names, addresses, a proxy's) is for the auth log, not for a
 * client that has not authenticated.  Best effort: the result is the
 * same either way.
 */
static void tell_refusal(struct gate *g, int r)
{
    const char *c = g->refusal.cls;
    char *text = NULL;
    if (g->flags & PAM_SILENT)
        return;
    if (!c[0] && r == PG_ERR_NETWORK) {
        converse(g->pamh, PAM_ERROR_MSG,
                 "poolgate: the identity provider could not be reached, or kept failing; "
                 "try again later (the auth log names the failure)");
        return;
    }
    if (!c[0] || strcmp(c, "declined") == 0 || strcmp(c, "expired") == 0)
        return;
    if (asprintf(&text, "poolgate: %s%s%s", g->reason, g->refusal.fix[0] ? "\nAdministrator: " : "",
                 g->refusal.fix) < 0)
        return;
    converse(g->pamh, PAM_ERROR_MSG, text);
    free(text);
}

/* The one place library results become PAM codes. */
static int gate_result(struct gate *g, const char *phase, int r, bool account)
{
    int code;
    switch (r) {
    case 0:
        code = PAM_SUCCESS; /* pg_gate_verify accepted the token under the whole policy */
        break;
    case PG_ERR_TOKEN:
        code = account ? PAM_PERM_DENIED : PAM_AUTH_ERR;
        break;
    case PG_ERR_DENIED:
        code = account ? PAM_PERM_DENIED : PAM_AUTH_ERR;
        break;
    case PG_ERR_NETWORK:
    case PG_ERR_PROTOCOL:
        code = PAM_AUTHINFO_UNAVAIL;
        break;
    case PG_ERR_NOMEM:
        code = PAM_BUF_ERR;
        break;
    case ERR_CONV:
        code = PAM_CONV_ERR;
        break;
    default:
        code = PAM_SERVICE_ERR;
    }
    audit(g, phase, code);
    return code;
}

/* Arguments, account, configuration: everything a decision needs. */
static int gate_open(struct gate *g, pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    *g = (struct gate){.pamh = pamh, .flags = flags, .helper = {.stderr_fd = -1, .fd = -1}};
    int r = parse_args(pamh, argc, argv, &g->a);
    if (r != PAM_SUCCESS)
        return r;
    if ((r = pam_get_user(pamh, &g->user, NULL)) != PAM_SUCCESS || !g->user || !g->user[0])
        return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_USER_UNKNOWN;
    /* One look-up of the account, for users= and for its uid. */
    char buf[4096];
    struct passwd pw, *found = NULL;
    if (getpwnam_r(g->user, &pw, buf, sizeof(buf), &found) != 0)
        found = NULL;
    if ((r = users_gate(pamh, g->a.users, g->user, found ? &found->pw_uid : NULL)) != PAM_SUCCESS)
        return r;
    pam_get_item(pamh, PAM_SERVICE, (const void **)&g->service);
    pam_get_item(pamh, PAM_TTY, (const void **)&g->tty);
    if (!found) {
        /* The client's own text, before any authentication: quoted, one value. */
        char line[512] = "no local account:";
        pg_audit_field(line, sizeof(line), "user", g->user, true);
        pam_syslog(pamh, LOG_NOTICE, "%s", line);
        return PAM_USER_UNKNOWN;
    }
    g->uid = found->pw_uid;
    g->gid = found->pw_gid;
    struct pg_error err = {0};
    uid_t euid = geteuid();
    if ((r = pg_config_load_as(g->a.config, euid, &g->cfg, &err)) == 0)
        r = pg_helper_account(g->cfg->helper_user, euid, &g->helper.uid, &g->helper.gid, &err);
    if (r < 0) {
        pam_syslog(pamh, LOG_ERR, "%s", err.msg);
        return r == PG_ERR_NOMEM ? PAM_BUF_ERR : PAM_SERVICE_ERR;
    }
    /* The helper account writes the store and the key cache this module
     * believes: the account it gates (under sudo, the one asking for root)
     * would pass at will if it were that account. */
    if (g->helper.uid != 0 && g->helper.uid == g->uid && euid == 0) {
        pam_syslog(pamh, LOG_ERR,
                   "helper_user %s is the account '%s' being authenticated: give the helper an "
                   "account of its own",
                   g->cfg->helper_user, g->user);
        return PAM_SERVICE_ERR;
    }
    g->helper.path = g->a.helper;
    return PAM_SUCCESS;
}

static void gate_close(struct gate *g)
{
    pg_free_secret(g->ticket);
    pg_verify_result_clear(&g->res);
    pg_config_free(g->cfg);
}

static void debug(const struct gate *g, const char *what)
{
    char line[PG_ERROR_MAX + 512];
    if (!g->a.debug)
        return;
    snprintf(line, sizeof(line), "%s:", what);
    pg_audit_field(line, sizeof(line), "user", g->user, false);
    pg_audit_field(line, sizeof(line), "reason", g->reason, true);
    pam_syslog(g->pamh, LOG_AUTHPRIV | LOG_DEBUG, "%s", line);
}

/* ---- the PAM entry points ----------------------------------------------- */

PG_PAM_EXPORT int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct gate g;
    int code = gate_open(&g, pamh, flags, argc, argv);
    if (code != PAM_SUCCESS) {
        gate_close(&g);
        return code;
    }
    int r = PG_ERR_DENIED;
    if (!g.a.reauth) {
        r = stored(&g, true);
        debug(&g, r == 0 ? "stored token accepted" : "stored token not usable");
    }
    /* Only a refused or missing token calls for a sign-in; when the provider
     * or the host is broken, asking a person would not help. */
    if (r == PG_ERR_TOKEN || r == PG_ERR_DENIED || r == PG_ERR_IO) {
        /* The refresh's refusal is not the sign-in's: a sign-in that ends
         * without the helper's DONE must not be audited with it. */
        g.reason[0] = '\0';
        g.refusal = (struct pg_refusal){0};
        r = sign_in(&g);
    }
    if (r != 0)
        tell_refusal(&g, r);
    code = gate_result(&g, "auth", r, false);
    gate_close(&g);
    return code;
}

PG_PAM_EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct gate g;
    int code = gate_open(&g, pamh, flags, argc, argv);
    if (code != PAM_SUCCESS) {
        gate_close(&g);
        return code;
    }
    /* The token the auth phase accepted, verified again against the policy;
     * without one (sshd with a public key skips auth), the stored set. */
    const void *kept = NULL;
    int r;
    if (pam_get_data(pamh, DATA_KEY, &kept) == PAM_SUCCESS && kept) {
        g.via = "auth";
        r = verify(&g, kept);
    } else
        r = stored(&g, true);
    code = gate_result(&g, "account", r, true);
    gate_close(&g);
    return code;
}

/* The phases that decide nothing: arguments checked, users= honoured. */
static int bystander(pam_handle_t *pamh, int argc, const char **argv, struct args *a)
{
    const void *user = NULL;
    uid_t uid = 0;
    int r = parse_args(pamh, argc, argv, a);
    if (r == PAM_SUCCESS && a->users && pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS)
        user = NULL;
    bool known = r == PAM_SUCCESS && a->users && user && uid_of(user, &uid);
    return r == PAM_SUCCESS ? users_gate(pamh, a->users, user, known ? &uid : NULL) : r;
}

/* poolgate sets no credentials: the decision is made in auth and account. */
PG_PAM_EXPORT int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    struct args a;
    return bystander(pamh, argc, argv, &a);
}

/*
 * The enrollment ticket this PAM transaction holds, as a copy (NULL: none),
 * taken out of the PAM environment whatever else happens: it must never
 * reach the processes of the session (pam_getenvlist).  Auth in this
 * process kept it with pam_set_data; auth in another (sshd's child) left
 * it only in the environment.  Not in setcred: sshd and sudo call it
 * before the session phase, and sudo reads the PAM environment for its
 * command only after that.
 */
static char *take_ticket(pam_handle_t *pamh)
{
    const void *kept = NULL;
    const char *env = pam_getenv(pamh, TICKET_ENV);
    char *ticket = NULL;
    if (pam_get_data(pamh, TICKET_KEY, &kept) == PAM_SUCCESS && kept) {
        ticket = strdup(kept);
        pam_set_data(pamh, TICKET_KEY, NULL, NULL); /* drop_token clears the kept one */
    } else if (env)
        ticket = strdup(env);
    if (env)
        pam_putenv(pamh, TICKET_ENV); /* a name alone removes it */
    return ticket;
}

/*
 * Whether a person signed in for this login: auth of this PAM transaction
 * completed a device-code sign-in (it holds that sign-in's ticket), the
 * ticket is still the stored set's (not used, not replaced by a later
 * sign-in), and the gate token passes the policy now.  A cached or
 * refreshed token brings no ticket, whatever its iat.  The helper checks
 * the ticket again under the store's lock and uses it up.
 */
static int person_signed_in(struct gate *g, const char *ticket)
{
    const void *kept = NULL;
    struct pg_error err = {0};
    char *token = NULL;
    bool has_refresh = false, current = false,
         here = pam_get_data(g->pamh, DATA_KEY, &kept) == PAM_SUCCESS && kept;
    int r =
        pg_gate_stored(g->cfg, g->uid, g->helper.uid, &token, &has_refresh, ticket, &current, &err);
    if (!ticket) {
        snprintf(g->reason, sizeof(g->reason),
                 "registration needs a device-code sign-in at this login; a stored or refreshed "
                 "token never registers. Log in again after `poolgate logout`, or run `sudo "
                 "poolgate register`");
        r = PG_ERR_DENIED;
    } else if (r == 0 && !current) {
        snprintf(g->reason, sizeof(g->reason),
                 "the sign-in ticket of this login is not the stored sign-in's (used already, or "
                 "replaced by a later sign-in); log in again");
        r = PG_ERR_DENIED;
    } else if (r == 0) {
        g->via = here ? "auth" : "cached";
        r = verify(g, here ? kept : token);
    } else
        snprintf(g->reason, sizeof(g->reason), "not signed in: %.200s", err.msg);
    pg_free_secret(token);
    return r == PG_ERR_IO ? PG_ERR_DENIED : r;
}

/*
 * Session-time enrollment: register the agent when agent_dir has no .agent
 * yet, only after a device-code sign-in at this login (person_signed_in).
 * The outcome is logged and told to the user; PAM_SESSION_ERR lets the
 * stack decide whether a failure ends the login (`session required`) or not.
 */
static int enroll_at_session(struct gate *g, const char *ticket)
{
    struct pg_enrolled done = {0};
    struct pg_error err = {0};
    char line[2048];
    if (g->cfg->agent_dir && pg_agent_registered(g->cfg->agent_dir)) {
        debug(g, "agent already registered");
        return PAM_SUCCESS;
    }
    int r = person_signed_in(g, ticket);
    bool gated = r == 0;
    if (gated) {
        struct pg_enroll e = {g->cfg, g->a.config, g->helper, g->uid, g->gid, false, NULL, ticket};
        if ((r = pg_enroll(&e, &done, &err)) < 0)
            snprintf(g->reason, sizeof(g->reason), "%s", err.msg);
    }
    if (!done.agent_name[0])
        pg_agent_name(g->cfg, done.agent_name, sizeof(done.agent_name), NULL);
    pg_enroll_audit(line, sizeof(line),
                    &(struct pg_enroll_audit){"register", g->user, &g->res.id, g->cfg,
                                              done.agent_name, done.agent_id,
                                              r == 0   ? "registered"
                                              : !gated ? "refused"
                                                       : "failed",
                                              g->reason, &done.refusal});
    pam_syslog(g->pamh, LOG_AUTHPRIV | (r == 0 ? LOG_NOTICE : LOG_WARNING), "%s", line);
    /* (Azure DevOps' and the helper's text, for a terminal.) */
    pg_printable(done.agent_name, sizeof(done.agent_name), done.agent_name);
    pg_printable(g->reason, sizeof(g->reason), g->reason);
    /* agent_service: registered, but the unit did not come up. */
    if (r == 0 && done.service_error[0])
        pam_syslog(g->pamh, LOG_AUTHPRIV | LOG_WARNING, "agent service: %s", done.service_error);
    if (r == 0)
        snprintf(line, sizeof(line),
                 "poolgate: agent '%s' registered in pool '%s' (agent id %lld).", done.agent_name,
                 g->cfg->pool, (long long)done.agent_id);
    else
        snprintf(line, sizeof(line), "poolgate: the agent was not registered: %.400s%s%.500s",
                 g->reason, done.refusal.fix[0] ? "\nAdministrator: " : "", done.refusal.fix);
    if (!(g->flags & PAM_SILENT))
        converse(g->pamh, r == 0 ? PAM_TEXT_INFO : PAM_ERROR_MSG, line);
    return r == 0 ? PAM_SUCCESS : r == PG_ERR_NOMEM ? PAM_BUF_ERR : PAM_SESSION_ERR;
}

/* Every session phase takes the ticket out of the PAM environment, with
 * `register` or without: the session's processes never see it. */
PG_PAM_EXPORT int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct args a;
    char *ticket = take_ticket(pamh);
    int r = bystander(pamh, argc, argv, &a);
    if (r == PAM_SUCCESS && a.reg) {
        struct gate g;
        if ((r = gate_open(&g, pamh, flags, argc, argv)) == PAM_SUCCESS)
            r = enroll_at_session(&g, ticket);
        gate_close(&g);
    }
    pg_free_secret(ticket);
    return r;
}

PG_PAM_EXPORT int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    struct args a;
    return bystander(pamh, argc, argv, &a);
}
