/*
 * pam_poolgate.so through the real PAM library (pam_wrapper + libpamtest),
 * with poolgate-helper signing in at the development identity provider:
 *
 *   dev_idp.py LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 ... -- test_pam MODULE HELPER
 *
 * The conversation plays the operator: it reads the user code from the
 * prompt and approves or declines it at the provider.  Audit lines are
 * caught by defining the syslog entry points here (pam_syslog reaches
 * them; pam_wrapper runs with PAM_WRAPPER_USE_SYSLOG=1).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <libpamtest.h>
#include <pwd.h>
#include <security/pam_appl.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#include "http.h"
#include "idpkit.h"

static const char *control, *ca, *module, *helper, *fault_module;
static char work[128], svcdir[256], conf[256], conf_fast[256], user[64], self[512];
static const char *const role = "AgentPool.Enroll";
static const char *const oid = "0b5e3c1a-0000-4e8b-9a61-3c4d5e6f7a8b";

/* ---- syslog, caught ------------------------------------------------------ */

static char logbuf[1 << 16];
static size_t loglen;

static void catch_log(const char *fmt, va_list ap)
{
    if (loglen + 2 >= sizeof(logbuf))
        return;
    int n = vsnprintf(logbuf + loglen, sizeof(logbuf) - loglen - 1, fmt, ap);
    if (n > 0)
        loglen += (size_t)n < sizeof(logbuf) - loglen - 2 ? (size_t)n : sizeof(logbuf) - loglen - 2;
    logbuf[loglen++] = '\n';
    logbuf[loglen] = '\0';
}

void syslog(int pri, const char *fmt, ...);
void __syslog_chk(int pri, int flag, const char *fmt, ...);
void vsyslog(int pri, const char *fmt, va_list ap);
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap);

void syslog(int pri, const char *fmt, ...)
{
    (void)pri;
    va_list ap;
    va_start(ap, fmt);
    catch_log(fmt, ap);
    va_end(ap);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
    (void)pri;
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    catch_log(fmt, ap);
    va_end(ap);
}

void vsyslog(int pri, const char *fmt, va_list ap)
{
    (void)pri;
    catch_log(fmt, ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
    (void)pri;
    (void)flag;
    catch_log(fmt, ap);
}

/* ---- the module's writes to the helper ---------------------------------- */

/*
 * The module's send() calls resolve to this definition (the program exports
 * its symbols, as it does for syslog).  While `hold_send` is set, the first
 * send waits until the other end of the socket hangs up, that is until the
 * stand-in helper has exited: the helper is gone before the module writes,
 * every time, not only when a race goes that way.
 */
static bool hold_send, hangup_seen;

ssize_t send(int fd, const void *buf, size_t len, int flags);
ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    if (hold_send) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        hold_send = false;
        hangup_seen = poll(&p, 1, 20000) == 1 && (p.revents & POLLHUP);
    }
    return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}

/* The ASan runtime is not first when pam_wrapper is preloaded; that is expected here. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
}

/* ---- the module's clock ---------------------------------------------------- */

/*
 * The module's time() calls resolve to this definition too: `clock_ahead`
 * seconds are added to the real time, so a sign-in made a moment ago looks
 * that much older to the module (the helper, a program of its own, keeps
 * the real time).
 */
static time_t clock_ahead;

time_t time(time_t *t);
time_t time(time_t *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t now = ts.tv_sec + clock_ahead;
    if (t)
        *t = now;
    return now;
}

/* ---- the accounts --------------------------------------------------------- */

/*
 * The module's getpwnam_r() calls resolve to this definition too: the name
 * `alias_name` is another name of the account `alias_of` (same uid), as
 * NSS can give one account several names, or names that differ in case.
 */
static char alias_name[] = "pgalias";
static const char *alias_of;

int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len, struct passwd **out);
int getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t len, struct passwd **out)
{
    int (*real)(const char *, struct passwd *, char *, size_t, struct passwd **);
    void *sym = dlsym(RTLD_NEXT, "getpwnam_r");
    memcpy(&real, &sym, sizeof(real));
    if (alias_of && strcmp(name, alias_name) == 0) {
        int r = real(alias_of, pw, buf, len, out);
        if (r == 0 && *out)
            pw->pw_name = alias_name;
        return r;
    }
    return real(name, pw, buf, len, out);
}

/* ---- the operator --------------------------------------------------------- */

enum answer { ANSWER, FAIL_CONV, NULL_RESPONSE };

struct operator
{
    const char *action; /* "approve", "deny" or NULL (walks away) */
    const char *roles;
    enum answer answer;
    int calls;
    int style;
    char text[8192];
};

/* In a thread signing in beside the test: where its user codes go. */
static _Thread_local int report_fd = -1;

/* Who signs in, when a test changes it: the token's name and oid, and
 * its idtyp when set. */
static const char *signer_name = "Olga Operator", *signer_oid, *signer_idtyp = "";

static void act(struct operator* op, const char *text)
{
    const char *p = strstr(text, "enter the code ");
    char code[64];
    /* (A sign-in beside the test: the test approves, or not, as it pleases.) */
    if (p && report_fd >= 0 && sscanf(p + 15, "%63s", code) == 1)
        dprintf(report_fd, "%s\n", code);
    if (!op->action || !p || sscanf(p + 15, "%63s", code) != 1)
        return;
    const struct pg_form_field f[] = {{"user_code", code},
                                      {"roles", op->roles},
                                      {"oid", signer_oid ? signer_oid : oid},
                                      {"name", signer_name},
                                      {"idtyp", signer_idtyp}};
    idp_control(control, ca, op->action, f, 5);
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    struct operator* op = data;
    if (op->answer == FAIL_CONV) {
        op->calls += n;
        return PAM_CONV_ERR;
    }
    struct pam_response *r = calloc((size_t)n, sizeof(*r));
    for (int i = 0; i < n; i++) {
        op->calls++;
        op->style = msg[i]->msg_style;
        snprintf(op->text, sizeof(op->text), "%s", msg[i]->msg);
        act(op, msg[i]->msg);
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF && op->answer == ANSWER)
            r[i].resp = strdup("");
    }
    *resp = r;
    return PAM_SUCCESS;
}

/* ---- set-up --------------------------------------------------------------- */

static void write_file(const char *path, mode_t mode, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void write_conf_for(const char *path, const char *helper_user, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "issuer = %s\nclient_id = %s\ntenant = %s\nrequired_roles = %s\nca_file = %s\n"
             "state_dir = %s/state\ncache_dir = %s/cache\nlogin_timeout = 60\n"
             "helper_user = %s\n%s",
             getenv("PG_IDP_ISSUER"), getenv("PG_IDP_CLIENT_ID"), getenv("PG_IDP_TENANT"), role, ca,
             work, work, helper_user, extra);
    write_file(path, 0600, text);
}

static void write_conf(const char *path, const char *extra)
{
    write_conf_for(path, user, extra);
}

/* A PAM service: `lines` use MOD for the module line's start. */
static void service(const char *name, const char *lines)
{
    char path[512], text[4096], *o = text;
    for (const char *p = lines; *p;) {
        if (strncmp(p, "MOD", 3) == 0) {
            o += snprintf(o, (size_t)(text + sizeof(text) - o), "%s config=%s helper=%s qr=off",
                          module, conf, helper);
            p += 3;
        } else
            *o++ = *p++;
    }
    *o = '\0';
    snprintf(path, sizeof(path), "%s/%s", svcdir, name);
    write_file(path, 0644, text);
}

static void configure(const char *name, const char *value)
{
    const struct pg_form_field f[] = {{name, value}};
    idp_control(control, ca, "config", f, 1);
}

static char *store_path_of(uid_t uid, char *buf, size_t n)
{
    snprintf(buf, n, "%s/state/%u/tokens.json", work, (unsigned)uid);
    return buf;
}

static char *store_path(char *buf, size_t n)
{
    return store_path_of(getuid(), buf, n);
}

static void forget(void)
{
    char p[512];
    unlink(store_path(p, sizeof(p)));
}

/* The bytes of the set stored for uid (empty when none). */
static char *stored_of(uid_t uid)
{
    char p[512];
    static char buf[2][65536];
    static int which;
    char *b = buf[which ^= 1];
    b[0] = '\0';
    FILE *f = fopen(store_path_of(uid, p, sizeof(p)), "r");
    if (f) {
        b[fread(b, 1, sizeof(buf[0]) - 1, f)] = '\0';
        fclose(f);
    }
    return b;
}

/* The stored set's bytes (empty when none), to show a failure left it intact. */
static char *stored(void)
{
    return stored_of(getuid());
}

/* Run the operations of one PAM transaction for `who`; returns the first
 * op's code and the second's in *second when asked. */
static int run_for(const char *who, const char *svc, struct operator* op, int flags,
                   enum pamtest_ops second, int *second_rv)
{
    struct pam_testcase t[] = {pam_test_flags(PAMTEST_AUTHENTICATE, 0, flags),
                               pam_test_flags(second, 0, flags)};
    if (second_rv)
        _pamtest_conv(svc, who, op ? conv : NULL, op, t, 2, NULL);
    else
        _pamtest_conv(svc, who, op ? conv : NULL, op, t, 1, NULL);
    if (second_rv)
        *second_rv = t[1].op_rv;
    return t[0].op_rv;
}

static int run(const char *svc, struct operator* op, int flags, enum pamtest_ops second,
               int *second_rv)
{
    return run_for(user, svc, op, flags, second, second_rv);
}

static int auth(const char *svc, struct operator* op)
{
    return run(svc, op, 0, PAMTEST_ACCOUNT, NULL);
}

/* No helper is left running or unreaped. */
static void assert_no_children(void)
{
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void assert_logged(const char *what)
{
    if (!strstr(logbuf, what))
        fail_msg("not in the audit log: %s\nlog:\n%s", what, logbuf);
}

/* A fresh sign-in with the role: the stored state most tests start from. */
static void signed_in(void)
{
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    service("pg-reauth", "auth required MOD reauth prompt=info\n");
    assert_int_equal(auth("pg-reauth", &op), PAM_SUCCESS);
}

static int setup(void **state)
{
    (void)state;
    loglen = 0;
    logbuf[0] = '\0';
    return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_sign_in_info(void **state)
{
    (void)state;
    forget();
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    service("pg-info", "auth required MOD prompt=info\naccount required MOD\n");
    int acct = -1;
    assert_int_equal(run("pg-info", &op, 0, PAMTEST_ACCOUNT, &acct), PAM_SUCCESS);
    assert_int_equal(acct, PAM_SUCCESS);
    assert_int_equal(op.calls, 1);
    assert_int_equal(op.style, PAM_TEXT_INFO);
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    char want[512];
    snprintf(want, sizeof(want), "sign-in required for pg-info as '%s' on host %s", user, host);
    assert_non_null(strstr(op.text, want));
    assert_non_null(strstr(op.text, "Open https://localhost:"));
    assert_non_null(strstr(op.text, "enter the code "));
    assert_null(strstr(op.text, "press Enter"));
    assert_logged("auth service=pg-info");
    assert_logged("operator_oid=0b5e3c1a-0000-4e8b-9a61-3c4d5e6f7a8b tid=72f988bf");
    assert_logged("name=\"Olga Operator\" roles=AgentPool.Enroll via=sign-in outcome=granted");
    assert_logged("account service=pg-info");
    assert_logged("via=auth outcome=granted");
    /* Never a token in the log: every JWT starts with "eyJ". */
    assert_null(strstr(logbuf, "eyJ"));
    assert_true(strlen(stored()) > 0);
    assert_no_children();
}

static void test_fast_path(void **state)
{
    (void)state;
    signed_in();
    loglen = 0;
    /* The helper cannot even be started: the stored token must do. */
    char lines[1024];
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=/nonexistent/helper\n",
             module, conf);
    char path[512];
    snprintf(path, sizeof(path), "%s/pg-fast", svcdir);
    write_file(path, 0644, lines);
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    int acct = -1;
    assert_int_equal(run("pg-fast", &op, 0, PAMTEST_ACCOUNT, &acct), PAM_SUCCESS);
    assert_int_equal(op.calls, 0);
    assert_logged("via=cached outcome=granted");
    assert_no_children();
}

static void test_reauth_always_signs_in(void **state)
{
    (void)state;
    signed_in();
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &op), PAM_SUCCESS);
    assert_int_equal(op.calls, 1);
    assert_logged("via=sign-in outcome=granted");
}

static void test_missing_role_refused(void **state)
{
    (void)state;
    signed_in();
    char before[65536];
    snprintf(before, sizeof(before), "%s", stored());
    loglen = 0;
    struct operator op = {"approve", "Other.Role", ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &op), PAM_AUTH_ERR);
    assert_string_equal(stored(), before);
    assert_logged("outcome=refused");
    assert_logged("roles");
    assert_no_children();
}

static void test_declined(void **state)
{
    (void)state;
    signed_in();
    char before[65536];
    snprintf(before, sizeof(before), "%s", stored());
    struct operator op = {"deny", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &op), PAM_AUTH_ERR);
    assert_string_equal(stored(), before);
    assert_logged("via=sign-in outcome=refused");
    assert_no_children();
}

static void test_enter_prompt(void **state)
{
    (void)state;
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    service("pg-enter", "auth required MOD reauth prompt=enter\n");
    assert_int_equal(auth("pg-enter", &op), PAM_SUCCESS);
    assert_int_equal(op.calls, 1);
    assert_int_equal(op.style, PAM_PROMPT_ECHO_OFF);
    assert_non_null(strstr(op.text, "press Enter after signing in"));
    assert_non_null(strstr(op.text, "enter the code "));
    assert_non_null(strstr(op.text, "https://localhost:"));
}

static void test_auto_prompt(void **state)
{
    (void)state;
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    service("sshd", "auth required MOD reauth prompt=auto\n");
    assert_int_equal(auth("sshd", &op), PAM_SUCCESS);
    assert_int_equal(op.style, PAM_PROMPT_ECHO_OFF);
    struct operator op2 = {"approve", role, ANSWER, 0, 0, ""};
    service("pg-auto", "auth required MOD reauth prompt=auto\n");
    assert_int_equal(auth("pg-auto", &op2), PAM_SUCCESS);
    assert_int_equal(op2.style, PAM_TEXT_INFO);
}

static void test_silent_uses_a_prompt(void **state)
{
    (void)state;
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run("pg-reauth", &op, PAM_SILENT, PAMTEST_ACCOUNT, NULL), PAM_SUCCESS);
    assert_int_equal(op.calls, 1);
    assert_int_equal(op.style, PAM_PROMPT_ECHO_OFF);
}

static void test_conversation_absent(void **state)
{
    (void)state;
    assert_int_equal(auth("pg-reauth", NULL), PAM_CONV_ERR);
    assert_logged("outcome=refused reason=\"the conversation failed\"");
    assert_no_children();
}

static void test_conversation_fails(void **state)
{
    (void)state;
    struct operator op = {"approve", role, FAIL_CONV, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &op), PAM_CONV_ERR);
    assert_int_equal(op.calls, 1);
    assert_no_children();
}

static void test_conversation_null_answer(void **state)
{
    (void)state;
    struct operator op = {NULL, role, NULL_RESPONSE, 0, 0, ""};
    assert_int_equal(auth("pg-enter", &op), PAM_CONV_ERR);
    assert_no_children();
}

static void test_users_filter(void **state)
{
    (void)state;
    char lines[1024];
    /* PAM turns a stack that only ignores into a failure: PAM_IGNORE shows
     * as neither success (sufficient, then pam_deny) nor failure (required,
     * then pam_permit). */
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    service("pg-others", "auth sufficient MOD reauth users=daemon,bin\n"
                         "auth required pam_deny.so\n"
                         "account sufficient MOD users=daemon,bin\n"
                         "account required pam_deny.so\n");
    int acct = -1;
    assert_int_equal(auth("pg-others", &op), PAM_AUTH_ERR);
    struct pam_testcase t[] = {pam_test(PAMTEST_ACCOUNT, PAM_AUTH_ERR)};
    assert_int_equal(_pamtest_conv("pg-others", user, conv, &op, t, 1, NULL), PAMTEST_ERR_OK);
    service("pg-others", "auth required MOD reauth users=daemon,bin\n"
                         "auth required pam_permit.so\n"
                         "account required MOD users=daemon,bin\n"
                         "account required pam_permit.so\n");
    assert_int_equal(run("pg-others", &op, 0, PAMTEST_ACCOUNT, &acct), PAM_SUCCESS);
    assert_int_equal(acct, PAM_SUCCESS);
    assert_int_equal(op.calls, 0);
    assert_null(strstr(logbuf, "service=pg-others"));
    snprintf(lines, sizeof(lines), "auth required MOD reauth users=daemon,%s\n", user);
    service("pg-me", lines);
    struct operator op2 = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-me", &op2), PAM_SUCCESS);
    assert_int_equal(op2.calls, 1);
}

/*
 * users= fails closed: a list that is empty, has an empty or malformed
 * name, or names no account is a broken setup (PAM_SERVICE_ERR and a log
 * line naming it) for every account, in every phase, not PAM_IGNORE,
 * which lets the stack decide without the gate (pam_permit after it).
 */
static void test_users_fail_closed(void **state)
{
    (void)state;
    /* (U: the test's own account, listed.) */
    static const char *const lists[] = {
        "", ",", "U,", ",U", "U,,someone", "U,no/such", "U,-x", "U,pg-no-such-account-here"};
    static const char *const said[] = {"an empty name",
                                       "an empty name",
                                       "an empty name",
                                       "an empty name",
                                       "an empty name",
                                       "a name that is not a user name",
                                       "a name that is not a user name",
                                       "no account 'pg-no-such-account-here'"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char users[128], lines[1024];
        struct operator op = {"approve", role, ANSWER, 0, 0, ""};
        const char *u = strchr(lists[i], 'U');
        snprintf(users, sizeof(users), "%.*s%s%s", u ? (int)(u - lists[i]) : 0, lists[i],
                 u ? user : lists[i], u ? u + 1 : "");
        snprintf(lines, sizeof(lines),
                 "auth required MOD reauth users=%s\nauth required pam_permit.so\n"
                 "account required MOD users=%s\naccount required pam_permit.so\n"
                 "session required MOD users=%s\nsession required pam_permit.so\n",
                 users, users, users);
        service("pg-users", lines);
        loglen = 0;
        logbuf[0] = '\0';
        for (int who = 0; who < 2; who++) {
            /* Listed or not, every account: the list itself is broken. */
            const char *name = who ? "nobody" : user;
            struct pam_testcase t[] = {pam_test(PAMTEST_AUTHENTICATE, PAM_SERVICE_ERR),
                                       pam_test(PAMTEST_ACCOUNT, PAM_SERVICE_ERR),
                                       pam_test(PAMTEST_OPEN_SESSION, PAM_SERVICE_ERR)};
            for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++)
                if (_pamtest_conv("pg-users", name, conv, &op, &t[k], 1, NULL) != PAMTEST_ERR_OK)
                    fail_msg("users=%s for %s: phase %zu gave %d, not PAM_SERVICE_ERR", users, name,
                             k, t[k].op_rv);
        }
        assert_int_equal(op.calls, 0);
        assert_logged(said[i]);
    }
    assert_no_children();
}

/* users= matches accounts by uid, as the store is keyed: another name of
 * a listed account is gated too, and a listed alias gates the account. */
static void test_users_alias(void **state)
{
    (void)state;
    char lines[1024];
    alias_of = user;
    snprintf(lines, sizeof(lines),
             "auth required MOD reauth prompt=info users=daemon,%s\n"
             "auth required pam_permit.so\n",
             user);
    service("pg-alias", lines);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for(alias_name, "pg-alias", &op, 0, PAMTEST_ACCOUNT, NULL), PAM_SUCCESS);
    assert_int_equal(op.calls, 1); /* gated: a sign-in was asked for */
    assert_logged("user=pgalias");
    struct operator deny = {"deny", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for(alias_name, "pg-alias", &deny, 0, PAMTEST_ACCOUNT, NULL),
                     PAM_AUTH_ERR);
    /* Listed by its other name. */
    snprintf(lines, sizeof(lines),
             "auth required MOD reauth prompt=info users=%s\nauth required pam_permit.so\n",
             alias_name);
    service("pg-alias", lines);
    struct operator op2 = {"deny", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for(user, "pg-alias", &op2, 0, PAMTEST_ACCOUNT, NULL), PAM_AUTH_ERR);
    assert_int_equal(op2.calls, 1);
    alias_of = NULL;
    assert_no_children();
}

/*
 * An app-only token (idtyp app) at a sign-in: refused even where the
 * configuration names an unattended credential (only register
 * --unattended takes app tokens), fresh and stored alike.
 */
static void test_app_token_refused(void **state)
{
    (void)state;
    static const char unattended[] = "credential = managed_identity\n"
                                     "gate_scope = api://poolgate-enroll/.default\n";
    char allowed[256];
    snprintf(allowed, sizeof(allowed), "%sallow_app_tokens = yes\n", unattended);
    signer_idtyp = "app";
    write_conf(conf, unattended);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    int r = auth("pg-reauth", &op);
    /* Stored while the key allowed it, then judged without the key. */
    write_conf(conf, allowed);
    struct operator op2 = {"approve", role, ANSWER, 0, 0, ""};
    int stored_ok = auth("pg-reauth", &op2);
    write_conf(conf, unattended);
    service("pg-acct-app", "account required MOD\n");
    struct pam_testcase t[] = {pam_test(PAMTEST_ACCOUNT, PAM_PERM_DENIED)};
    int acct = _pamtest_conv("pg-acct-app", user, NULL, NULL, t, 1, NULL);
    service("pg-auth-app", "auth required MOD\n");
    struct operator op3 = {NULL, role, ANSWER, 0, 0, ""};
    /* Nobody signs in after the refusal: a code of 3 s ends the wait, not
     * login_timeout (60 s). */
    configure("expires_in", "3");
    int cached = run("pg-auth-app", &op3, 0, PAMTEST_ACCOUNT, NULL);
    configure("expires_in", "900");
    signer_idtyp = "";
    write_conf(conf, "");
    forget();
    assert_int_equal(r, PAM_AUTH_ERR);
    assert_logged("app-token: app-only token");
    assert_int_equal(stored_ok, PAM_SUCCESS);
    assert_int_equal(acct, PAMTEST_ERR_OK);
    assert_int_equal(cached, PAM_AUTH_ERR);
    assert_no_children();
}

/* The fields of one audit line (the phase, then ` key=value`, a value bare
 * or quoted with '\' escapes): how many are named `key`; -1 when the line
 * does not parse as such. */
static int count_field(const char *line, size_t n, const char *key)
{
    const char *p = memchr(line, ' ', n), *end = line + n;
    int count = 0;
    while (p && p < end && *p == ' ') {
        const char *k = ++p;
        while (p < end && ((*p >= 'a' && *p <= 'z') || *p == '_'))
            p++;
        if (p == k || p >= end || *p != '=')
            return -1;
        count += (size_t)(p - k) == strlen(key) && strncmp(k, key, strlen(key)) == 0;
        if (++p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && ++p == end)
                    return -1;
            if (p++ >= end)
                return -1;
        } else
            for (; p < end && *p != ' '; p++)
                if (*p == '"' || *p == '\\' || *p == '=')
                    return -1;
    }
    return p == end || !p ? count : -1;
}

/*
 * The token's text reaches the audit line: a name, roles and oid that
 * carry ESC, CR, LF, '"' and a forged ` outcome=granted` neither add a
 * field nor start a line, and no control character is logged.
 */
static void test_untrusted_claims_in_audit(void **state)
{
    (void)state;
    signer_name = "Eve\x1b[31m\r\n\" outcome=granted";
    signer_oid = "0b5e3c1a\" outcome=granted\nforged=\x1b";
    struct operator op = {
        "approve", "AgentPool.Enroll,x\x1b]0;\x07\r\n\" outcome=granted", ANSWER, 0, 0, ""};
    int r = auth("pg-reauth", &op);
    signer_name = "Olga Operator";
    signer_oid = NULL;
    forget();
    assert_int_equal(r, PAM_SUCCESS);
    assert_null(memchr(logbuf, '\x1b', loglen));
    assert_null(memchr(logbuf, '\r', loglen));
    assert_null(memchr(logbuf, '\x07', loglen));
    int lines = 0;
    for (const char *next = logbuf; next < logbuf + loglen;) {
        const char *l = next, *nl = memchr(l, '\n', (size_t)(logbuf + loglen - l));
        size_t n = nl ? (size_t)(nl - l) : (size_t)(logbuf + loglen - l);
        const char *tag = memmem(l, n, "): ", 3); /* pam_syslog's "module(service:phase): " */
        next = l + n + 1;
        if (tag) {
            n -= (size_t)(tag + 3 - l);
            l = tag + 3;
        }
        bool audit =
            (n > 5 && strncmp(l, "auth ", 5) == 0) || (n > 8 && strncmp(l, "account ", 8) == 0);
        if (audit && count_field(l, n, "outcome") != 1)
            fail_msg("audit line without exactly one outcome field: %.*s", (int)n, l);
        if (!audit && memmem(l, n, "outcome=", 8))
            fail_msg("a line of a value's own: %.*s", (int)n, l);
        lines += audit;
    }
    assert_int_equal(lines, 1);
    assert_logged("name=\"Eve?[31m??\\\" outcome=granted\"");
    assert_logged("operator_oid=\"0b5e3c1a\\\" outcome=granted?forged=?\"");
    assert_logged("roles=\"AgentPool.Enroll,x?]0;???\\\" outcome=granted\" via=sign-in "
                  "outcome=granted");
    assert_no_children();
}

/* Whether `outcome=` stands in the line outside a double-quoted value. */
static bool bare_outcome(const char *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (l[i] == '"')
            for (i++; i < n && l[i] != '"'; i++)
                i += l[i] == '\\';
        else if (n - i >= 8 && strncmp(l + i, "outcome=", 8) == 0)
            return true;
    }
    return false;
}

/*
 * The PAM user name comes from the client (ssh's user@, su's argument)
 * before any authentication: one that is no account is logged, and must
 * not forge a field there (` outcome=granted`) any more than in an audit
 * line: it stands quoted, one value.
 */
static void test_unknown_user_in_log(void **state)
{
    (void)state;
    service("pg-unknown", "auth required MOD\n");
    struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
    int r = run_for("nobody' outcome=granted via=sign-in\n\" x", "pg-unknown", &none, 0,
                    PAMTEST_ACCOUNT, NULL);
    assert_int_equal(r, PAM_USER_UNKNOWN);
    assert_int_equal(none.calls, 0);
    assert_logged("no local account");
    for (const char *next = logbuf; next < logbuf + loglen;) {
        const char *l = next, *nl = memchr(l, '\n', (size_t)(logbuf + loglen - l));
        size_t n = nl ? (size_t)(nl - l) : (size_t)(logbuf + loglen - l);
        next = l + n + 1;
        if (bare_outcome(l, n))
            fail_msg("a field forged by the user name: %.*s", (int)n, l);
    }
    assert_no_children();
}

/* The module's codes in the stacks admins write. */
static void test_stacks(void **state)
{
    (void)state;
    static const struct {
        const char *lines;
        const char *action;
        int want;
    } cases[] = {
        {"auth required MOD reauth\nauth required pam_permit.so\n", "approve", PAM_SUCCESS},
        {"auth required MOD reauth\nauth required pam_permit.so\n", "deny", PAM_AUTH_ERR},
        {"auth sufficient MOD reauth\nauth required pam_deny.so\n", "approve", PAM_SUCCESS},
        {"auth sufficient MOD reauth\nauth required pam_deny.so\n", "deny", PAM_AUTH_ERR},
        {"auth [success=ok default=bad] MOD reauth\nauth required pam_permit.so\n", "approve",
         PAM_SUCCESS},
        {"auth [success=ok default=bad] MOD reauth\nauth required pam_permit.so\n", "deny",
         PAM_AUTH_ERR},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct operator op = {cases[i].action, role, ANSWER, 0, 0, ""};
        service("pg-stack", cases[i].lines);
        int got = auth("pg-stack", &op);
        if (got != cases[i].want)
            fail_msg("stack %zu (%s): got %d, want %d", i, cases[i].action, got, cases[i].want);
    }
    /* users= outside the list: PAM_IGNORE, so the stack decides without us. */
    service("pg-stack", "auth sufficient MOD users=someone\nauth required pam_deny.so\n");
    assert_int_equal(auth("pg-stack", NULL), PAM_AUTH_ERR);
}

/* An expired gate token with a refresh token: renewed without a prompt. */
static void test_silent_refresh(void **state)
{
    (void)state;
    configure("token_lifetime", "2");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    char lines[1024];
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth\n", module,
             conf_fast, helper);
    char path[512];
    snprintf(path, sizeof(path), "%s/pg-short", svcdir);
    write_file(path, 0644, lines);
    assert_int_equal(auth("pg-short", &op), PAM_SUCCESS);
    configure("token_lifetime", "3600");
    sleep(3);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s\n", module, conf_fast,
             helper);
    write_file(path, 0644, lines);
    loglen = 0;
    struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-short", &none), PAM_SUCCESS);
    assert_int_equal(none.calls, 0);
    assert_logged("via=refresh outcome=granted");
    assert_no_children();
}

/*
 * sign_in_max_age bounds the chain of refreshes behind a stored set: past
 * it, neither the stored token nor a refresh lets anyone in, and only a
 * new sign-in (which restarts the count) does.
 */
static void test_sign_in_max_age(void **state)
{
    (void)state;
    write_conf(conf, "sign_in_max_age = 600\n");
    service("pg-age", "auth required MOD\n");
    struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
    int r[2], calls[2];
    /* An id_token of 300 s: 700 s on, it has expired and the sign-in is too
     * old, so no refresh (test_silent_refresh's path) but a sign-in; then,
     * with that sign-in's hour-long token still valid 700 s on, the same. */
    configure("token_lifetime", "300");
    signed_in();
    configure("token_lifetime", "3600");
    loglen = 0;
    int fast = auth("pg-age", &none);
    static char cached[sizeof(logbuf)];
    snprintf(cached, sizeof(cached), "%s", logbuf);
    loglen = 0;
    for (int i = 0; i < 2; i++) {
        struct operator op = {"approve", role, ANSWER, 0, 0, ""};
        clock_ahead = 700;
        r[i] = auth("pg-age", &op);
        calls[i] = op.calls;
        clock_ahead = 0;
    }
    /* The new sign-in counts from now: the fast path again. */
    static char signed_in_log[sizeof(logbuf)];
    snprintf(signed_in_log, sizeof(signed_in_log), "%s", logbuf);
    loglen = 0;
    int again = auth("pg-age", &none);
    write_conf(conf, "");
    assert_int_equal(fast, PAM_SUCCESS);
    assert_non_null(strstr(cached, "via=cached outcome=granted"));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i], PAM_SUCCESS);
        assert_int_equal(calls[i], 1);
    }
    assert_null(strstr(signed_in_log, "via=refresh"));
    assert_non_null(strstr(signed_in_log, "via=sign-in outcome=granted"));
    assert_int_equal(again, PAM_SUCCESS);
    assert_int_equal(none.calls, 0);
    assert_logged("via=cached outcome=granted");
}

/* The provider cannot start a sign-in: no prompt, and the operator is
 * told why rather than just refused. */
static void test_provider_failing(void **state)
{
    (void)state;
    const struct pg_form_field f[] = {{"path", "devicecode"}, {"kind", "500"}, {"count", "1"}};
    idp_control(control, ca, "fault", f, 3);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &op), PAM_AUTHINFO_UNAVAIL);
    assert_int_equal(op.calls, 1);
    assert_int_equal(op.style, PAM_ERROR_MSG);
    assert_non_null(strstr(op.text, "poolgate: the identity provider could not be reached, or "
                                    "kept failing"));
    assert_null(strstr(op.text, "enter the code"));
    assert_logged("HTTP 500");
    assert_no_children();
}

/* The token endpoint fails until the code runs out: the operator learns
 * that the provider was failing, not that they were too slow; the audit
 * line names the last failure; PAM_AUTHINFO_UNAVAIL, as for any outage. */
static void test_provider_failing_until_timeout(void **state)
{
    (void)state;
    const struct pg_form_field f[] = {{"path", "token"}, {"kind", "500"}, {"count", "1000"}};
    const struct pg_form_field off[] = {{"path", "token"}, {"kind", "500"}, {"count", "0"}};
    configure("expires_in", "3");
    idp_control(control, ca, "fault", f, 3);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    int r = auth("pg-reauth", &op);
    idp_control(control, ca, "fault", off, 3);
    configure("expires_in", "900");
    assert_int_equal(r, PAM_AUTHINFO_UNAVAIL);
    assert_int_equal(op.style, PAM_ERROR_MSG);
    assert_non_null(strstr(op.text, "poolgate: the identity provider could not be reached, or "
                                    "kept failing"));
    /* What failed is in the auth log, not told to a client not yet authenticated. */
    assert_null(strstr(op.text, "HTTP 500"));
    assert_logged("outcome=refused reason=\"the sign-in could not be completed in time: the "
                  "provider was failing (last: token endpoint answered HTTP 500)");
    assert_no_children();
}

/* An Entra refusal in Entra's shape, for the next request at `at`. */
static void refuse(const char *at, const char *error, const char *aadsts, const char *corr)
{
    const struct pg_form_field f[] = {
        {"at", at}, {"error", error}, {"aadsts", aadsts}, {"correlation", corr}};
    idp_control(control, ca, "refuse", f, 4);
}

/* A Conditional Access block: the operator is told why and what the
 * administrator can do, not just refused; the audit line carries the code
 * and the correlation id for a support ticket. */
static void test_conditional_access(void **state)
{
    (void)state;
    refuse("device", "access_denied", "53003", "5e1f0c2a-0000-4a6b-8c3d-9e8f7a6b5c4d");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    char before[65536];
    snprintf(before, sizeof(before), "%s", stored());
    assert_int_equal(auth("pg-reauth", &op), PAM_AUTH_ERR);
    assert_int_equal(op.style, PAM_ERROR_MSG);
    assert_non_null(strstr(op.text, "poolgate: a Conditional Access policy blocks device-code "
                                    "sign-in for this app (AADSTS53003)\nAdministrator: exclude"));
    assert_null(strstr(op.text, "Trace ID"));
    assert_logged("outcome=refused reason=\"a Conditional Access policy blocks device-code "
                  "sign-in for this app (AADSTS53003)\" code=AADSTS53003 "
                  "correlation_id=5e1f0c2a-0000-4a6b-8c3d-9e8f7a6b5c4d");
    assert_string_equal(stored(), before);
    assert_no_children();
}

/* A hostile provider's refusal of the sign-in: an error code posing as
 * audit fields, a description cut inside a UTF-8 character.  Still a plain
 * refusal (PAM_AUTH_ERR, never PAM_SERVICE_ERR, which some stacks treat
 * apart), told to the operator, one outcome on the audit line. */
static void test_hostile_refusal(void **state)
{
    (void)state;
    char text[256];
    snprintf(text, sizeof(text), "%0158d\xc3\xa9\xc3\xa9", 0);
    const struct pg_form_field f[] = {{"at", "device"},
                                      {"error", "no_such outcome=granted"},
                                      {"aadsts", ""},
                                      {"text", text},
                                      {"correlation", "0a outcome=granted"}};
    idp_control(control, ca, "refuse", f, 5);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    char before[65536];
    snprintf(before, sizeof(before), "%s", stored());
    loglen = 0;
    assert_int_equal(auth("pg-reauth", &op), PAM_AUTH_ERR);
    assert_int_equal(op.style, PAM_ERROR_MSG);
    assert_non_null(strstr(op.text, "poolgate: sign-in failed: no_such outcome=granted: 00000"));
    assert_logged("outcome=refused reason=\"sign-in failed: no_such outcome=granted: 0000");
    assert_logged("\" code=no_such?outcome?granted correlation_id=-");
    assert_null(strstr(logbuf, "outcome=granted correlation_id"));
    assert_string_equal(stored(), before);
    assert_no_children();
}

/* A stored refresh token the provider has revoked: deleted, and the same
 * login goes on to a device-code sign-in. */
static void test_refresh_revoked(void **state)
{
    (void)state;
    configure("token_lifetime", "2");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    char lines[1024], path[512];
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth prompt=info\n",
             module, conf_fast, helper);
    snprintf(path, sizeof(path), "%s/pg-revoked", svcdir);
    write_file(path, 0644, lines);
    assert_int_equal(auth("pg-revoked", &op), PAM_SUCCESS);
    configure("token_lifetime", "3600");
    sleep(3);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s prompt=info\n", module,
             conf_fast, helper);
    write_file(path, 0644, lines);
    refuse("refresh", "invalid_grant", "50173", "6e1f0c2a-0000-4a6b-8c3d-9e8f7a6b5c4d");
    loglen = 0;
    struct operator again = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-revoked", &again), PAM_SUCCESS);
    assert_int_equal(again.calls, 1); /* the code, nothing else */
    assert_logged("via=sign-in outcome=granted");
    assert_non_null(strstr(stored(), "refresh_token"));
    assert_no_children();
}

/* A refused refresh, then a sign-in that ends without the helper's word
 * (here the conversation fails): the audit line is the sign-in's, not
 * the refresh's code and correlation id. */
static void test_refusal_not_carried(void **state)
{
    (void)state;
    char lines[1024], path[512];
    configure("token_lifetime", "2");
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth prompt=info\n",
             module, conf_fast, helper);
    snprintf(path, sizeof(path), "%s/pg-carried", svcdir);
    write_file(path, 0644, lines);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-carried", &op), PAM_SUCCESS);
    configure("token_lifetime", "3600");
    sleep(3);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s prompt=info\n", module,
             conf_fast, helper);
    write_file(path, 0644, lines);
    refuse("refresh", "invalid_grant", "530036", "7e1f0c2a-0000-4a6b-8c3d-9e8f7a6b5c4d");
    loglen = 0;
    struct operator walks = {"approve", role, FAIL_CONV, 0, 0, ""};
    assert_int_equal(auth("pg-carried", &walks), PAM_CONV_ERR);
    assert_logged("via=sign-in outcome=refused reason=\"the conversation failed\" code=- "
                  "correlation_id=-");
    assert_no_children();
}

static void test_code_expires(void **state)
{
    (void)state;
    configure("expires_in", "3");
    struct operator op = {NULL, role, ANSWER, 0, 0, ""};
    int r = auth("pg-reauth", &op);
    configure("expires_in", "900");
    assert_int_equal(r, PAM_AUTH_ERR);
    assert_non_null(strstr(op.text, "valid for 1 minute)"));
    assert_no_children();
}

/* Whatever the server sends is shown with its control characters replaced. */
static void test_server_text_sanitized(void **state)
{
    (void)state;
    configure("expires_in", "3");
    configure("user_code_suffix", "\x1b[2J\r\x07");
    struct operator op = {NULL, role, ANSWER, 0, 0, ""};
    int r = auth("pg-reauth", &op);
    configure("user_code_suffix", "");
    configure("expires_in", "900");
    assert_int_equal(r, PAM_AUTH_ERR);
    assert_non_null(strstr(op.text, "?[2J??"));
    for (const char *p = op.text; *p; p++)
        assert_true((unsigned char)*p >= 0x20 || *p == '\n');
}

/* qr=on adds a QR code of the verification link, drawn with block characters. */
static void test_qr_code(void **state)
{
    (void)state;
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    service("pg-qr", "auth required MOD reauth qr=on\n");
    assert_int_equal(auth("pg-qr", &op), PAM_SUCCESS);
    assert_non_null(strstr(op.text, "\xe2\x96\x88"));
    assert_non_null(strstr(op.text, "enter the code "));
    struct operator plain = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &plain), PAM_SUCCESS);
    assert_null(strstr(plain.text, "\xe2\x96\x88"));
}

/* The account whose agent the session phase enrolls: poolgate never writes
 * an agent's files as root, so as root it is nobody.  Its name goes to
 * agent[64]; with `name`, its directory work/NAME is made (as root, given
 * to it) and goes to dir, and extra[1024] gets the registration settings
 * for that directory. */
static const struct passwd *agent_account(char *agent, const char *name, char *dir, char *extra)
{
    const struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : getpwuid(getuid());
    assert_non_null(pw);
    snprintf(agent, 64, "%s", pw->pw_name);
    if (geteuid() == 0)
        assert_int_equal(chmod(work, 0711), 0);
    if (!name)
        return pw;
    snprintf(dir, 512, "%s/%s", work, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(dir, pw->pw_uid, pw->pw_gid), 0);
    snprintf(extra, 1024,
             "organization_url = %s\npool = Build Hosts\nagent_dir = %s\nagent_name = pam-%s\n"
             "agent_version = 4.248.0\n",
             getenv("PG_DEVOPS_ORG"), dir, name);
    return pw;
}

/* session ... register: the first login enrolls the agent, the next does not. */
static void test_session_register(void **state)
{
    (void)state;
    char extra[1024], dir[512], path[600], agent[64];
    struct stat st;
    uid_t agent_uid = agent_account(agent, "agent", dir, extra)->pw_uid;
    write_conf(conf, extra);
    service("pg-session", "auth required MOD reauth prompt=info\nsession required MOD register\n");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    int session = -1;
    assert_int_equal(run_for(agent, "pg-session", &op, 0, PAMTEST_OPEN_SESSION, &session),
                     PAM_SUCCESS);
    assert_int_equal(session, PAM_SUCCESS);
    snprintf(path, sizeof(path), "%s/.agent", dir);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_uid, agent_uid);
    assert_logged("register user=");
    assert_logged("pool=\"Build Hosts\" agent=\"pam-agent\"");
    assert_logged("outcome=registered");
    assert_non_null(strstr(op.text, "agent 'pam-agent' registered in pool 'Build Hosts'"));

    loglen = 0;
    logbuf[0] = '\0';
    struct operator again = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for(agent, "pg-session", &again, 0, PAMTEST_OPEN_SESSION, &session),
                     PAM_SUCCESS);
    assert_int_equal(session, PAM_SUCCESS);
    assert_null(strstr(logbuf, "register user="));

    /* The pool has the agent but the files are gone: no silent replace. */
    unlink(path);
    struct operator third = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for(agent, "pg-session", &third, 0, PAMTEST_OPEN_SESSION, &session),
                     PAM_SUCCESS);
    assert_int_equal(session, PAM_SESSION_ERR);
    assert_int_equal(third.style, PAM_ERROR_MSG);
    assert_non_null(strstr(third.text, "use --replace"));
    assert_logged("outcome=failed");
    assert_int_equal(lstat(path, &st), -1);
    write_conf(conf, "");
    assert_no_children();
}

/* session ... register, and the provider refuses the token for Azure
 * DevOps: the operator sees the reason and the administrator's fix, the
 * audit line names the code and the correlation id, no files appear. */
static void test_session_register_refused(void **state)
{
    (void)state;
    char extra[1024], dir[512], path[600], agent[64];
    struct stat st;
    agent_account(agent, "refused", dir, extra);
    write_conf(conf, extra);
    service("pg-session", "auth required MOD reauth prompt=info\nsession required MOD register\n");
    refuse("refresh", "invalid_grant", "65001", "6a7b8c9d-0000-4a6b-8c3d-9e8f7a6b5c4d");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    int session = -1;
    assert_int_equal(run_for(agent, "pg-session", &op, 0, PAMTEST_OPEN_SESSION, &session),
                     PAM_SUCCESS);
    assert_int_equal(session, PAM_SESSION_ERR);
    assert_int_equal(op.style, PAM_ERROR_MSG);
    assert_non_null(strstr(op.text, "poolgate: the agent was not registered: nobody has "
                                    "consented to this app's permissions in the tenant "
                                    "(AADSTS65001)\nAdministrator: grant admin consent"));
    assert_null(strstr(op.text, "6a7b8c9d"));
    assert_logged("outcome=failed reason=\"nobody has consented");
    assert_logged("code=AADSTS65001 correlation_id=6a7b8c9d-0000-4a6b-8c3d-9e8f7a6b5c4d");
    snprintf(path, sizeof(path), "%s/.agent", dir);
    assert_int_equal(lstat(path, &st), -1);
    write_conf(conf, "");
    assert_no_children();
}

/*
 * The attack of a silent refresh: an operator signed in once; later the
 * agent's .agent is gone, its id_token has expired, and someone who can
 * log in as the agent account does so.  Auth refreshes silently (a new
 * id_token with a fresh iat); the session phase must not register the
 * agent, nor from the cached token; only a login whose auth completed a
 * device-code sign-in does.
 */
static void test_session_register_not_by_refresh(void **state)
{
    (void)state;
    char extra[1200], dir[512], path[600], agent[64];
    struct stat st;
    const struct passwd *pw = agent_account(agent, "fresh", dir, extra);
    strcat(extra, "clock_skew = 0\n");
    write_conf(conf, extra);
    service("pg-signin", "auth required MOD reauth prompt=info\n");
    service("pg-cached", "auth required MOD\nsession required MOD register\n");
    service("pg-person", "auth required MOD reauth prompt=info\nsession required MOD register\n");
    snprintf(path, sizeof(path), "%s/.agent", dir);

    configure("token_lifetime", "2");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for(agent, "pg-signin", &op, 0, PAMTEST_ACCOUNT, NULL), PAM_SUCCESS);
    configure("token_lifetime", "3600");
    sleep(3);
    const char *refusal = "the agent was not registered: registration needs a device-code sign-in "
                          "at this login; a stored or refreshed token never registers";
    for (int i = 0; i < 2; i++) { /* refreshed, then from the cache */
        loglen = 0;
        logbuf[0] = '\0';
        struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
        int session = -1;
        assert_int_equal(run_for(agent, "pg-cached", &none, 0, PAMTEST_OPEN_SESSION, &session),
                         PAM_SUCCESS);
        assert_int_equal(session, PAM_SESSION_ERR);
        assert_int_equal(none.style, PAM_ERROR_MSG);
        if (!strstr(none.text, refusal))
            fail_msg("message: %s", none.text);
        assert_logged(i == 0 ? "via=refresh outcome=granted" : "via=cached outcome=granted");
        assert_logged("agent=\"pam-fresh\" agent_id=0 outcome=refused reason=\"registration needs");
        assert_null(strstr(logbuf, "outcome=registered"));
        assert_int_equal(lstat(path, &st), -1);
        assert_int_equal(errno, ENOENT);
    }

    /* The session phase alone, as sshd runs it (auth ran in another
     * process): the stored sign-in, 200 s old by the module's clock and
     * refreshed since, does not register either. */
    loglen = 0;
    logbuf[0] = '\0';
    struct operator alone = {NULL, NULL, ANSWER, 0, 0, ""};
    struct pam_testcase only[] = {pam_test(PAMTEST_OPEN_SESSION, PAM_SESSION_ERR)};
    clock_ahead = 200;
    _pamtest_conv("pg-cached", agent, conv, &alone, only, 1, NULL);
    clock_ahead = 0;
    assert_int_equal(only[0].op_rv, PAM_SESSION_ERR);
    if (!strstr(alone.text, refusal))
        fail_msg("message: %s", alone.text);
    assert_logged("outcome=refused");
    assert_int_equal(lstat(path, &st), -1);

    /* A person signs in at this login: registered. */
    loglen = 0;
    logbuf[0] = '\0';
    struct operator person = {"approve", role, ANSWER, 0, 0, ""};
    int session = -1;
    assert_int_equal(run_for(agent, "pg-person", &person, 0, PAMTEST_OPEN_SESSION, &session),
                     PAM_SUCCESS);
    assert_int_equal(session, PAM_SUCCESS);
    assert_logged("agent=\"pam-fresh\"");
    assert_logged("outcome=registered");
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    write_conf(conf, "");
    assert_no_children();
}

/* ---- sshd's split: auth in one PAM handle, the session in another -------- */

#define TICKET_ENV "POOLGATE_SIGN_IN"

/* sshd authenticates in a child process (OpenSSH's sshpam_thread without
 * pthreads): auth and account run in a PAM handle of their own, and the
 * session phase runs in another, into which sshd copies the child's PAM
 * environment (pam_putenv), nothing else.  Auth here, in its own handle;
 * returns its PAM environment (free with free_env). */
static char **auth_alone(const char *who, const char *svc, struct operator* op)
{
    struct pam_conv c = {conv, op};
    pam_handle_t *h = NULL;
    assert_int_equal(pam_start(svc, who, &c, &h), PAM_SUCCESS);
    assert_int_equal(pam_authenticate(h, 0), PAM_SUCCESS);
    assert_int_equal(pam_acct_mgmt(h, 0), PAM_SUCCESS);
    char **env = pam_getenvlist(h);
    assert_non_null(env);
    pam_end(h, PAM_SUCCESS);
    return env;
}

static void free_env(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

/* The value of TICKET_ENV in env, or NULL. */
static const char *ticket_in(char **env)
{
    for (char **e = env; e && *e; e++)
        if (strncmp(*e, TICKET_ENV "=", sizeof(TICKET_ENV)) == 0)
            return *e + sizeof(TICKET_ENV);
    return NULL;
}

/* The session phase in a handle of its own, given `env` (NULL: none);
 * returns its code.  *left tells whether TICKET_ENV is still in that
 * handle's PAM environment afterwards (what the session would inherit). */
static int session_alone(const char *who, const char *svc, struct operator* op, char **env,
                         bool *left)
{
    struct pam_conv c = {conv, op};
    pam_handle_t *h = NULL;
    assert_int_equal(pam_start(svc, who, &c, &h), PAM_SUCCESS);
    for (char **e = env; e && *e; e++)
        assert_int_equal(pam_putenv(h, *e), PAM_SUCCESS);
    int r = pam_open_session(h, 0);
    *left = pam_getenv(h, TICKET_ENV) != NULL;
    if (r == PAM_SUCCESS)
        pam_close_session(h, 0);
    pam_end(h, r);
    return r;
}

static void reset_log(void)
{
    loglen = 0;
    logbuf[0] = '\0';
}

/*
 * Registration at login under sshd, where auth ran in another process: the
 * sign-in's ticket comes through the PAM environment, registers once, and
 * is gone from the session's environment.  A replay of that environment,
 * a session with the cached token moments after a genuine sign-in (the
 * agent account logging in after deleting .agent), and a forged ticket do
 * not register.
 */
static void test_session_register_split(void **state)
{
    (void)state;
    char extra[1024], dir[512], path[600], agent[64];
    struct stat st;
    bool left = true;
    const struct passwd *pw = agent_account(agent, "split", dir, extra);
    write_conf(conf, extra);
    service("pg-sshd", "auth required MOD reauth prompt=info\naccount required MOD\n"
                       "session required MOD register\n");
    service("pg-bystander", "session required MOD\n");
    snprintf(path, sizeof(path), "%s/.agent", dir);

    /* A person signs in: auth hands the ticket on in the PAM environment. */
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    char **env = auth_alone(agent, "pg-sshd", &op);
    if (ticket_in(env))
        assert_null(strstr(logbuf, ticket_in(env))); /* never logged */

    /* Moments after that genuine sign-in, a login whose transaction did not
     * get its ticket (the agent account with the cached token, .agent
     * deleted) does not register on it.  (Before tickets: a stored sign-in
     * under 120 s old counted.) */
    reset_log();
    struct operator attacker = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(session_alone(agent, "pg-sshd", &attacker, NULL, &left), PAM_SESSION_ERR);
    if (!strstr(attacker.text, "registration needs a device-code sign-in at this login"))
        fail_msg("message: %s", attacker.text);
    assert_logged("outcome=refused");
    assert_null(strstr(logbuf, "outcome=registered"));
    assert_int_equal(lstat(path, &st), -1);

    const char *ticket = ticket_in(env);
    assert_non_null(ticket);
    assert_int_equal(strlen(ticket), 32);
    assert_int_equal(strspn(ticket, "0123456789abcdef"), 32);
    assert_non_null(strstr(stored_of(pw->pw_uid), ticket));

    /* A forged ticket: refused, the genuine one still stored. */
    char *forged[] = {TICKET_ENV "=0123456789abcdef0123456789abcdef", NULL};
    reset_log();
    struct operator forger = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(session_alone(agent, "pg-sshd", &forger, forged, &left), PAM_SESSION_ERR);
    assert_false(left);
    assert_logged("outcome=refused");
    assert_int_equal(lstat(path, &st), -1);
    assert_non_null(strstr(stored_of(pw->pw_uid), ticket));

    /* A session line without `register` takes the ticket out of the
     * environment as well, and uses nothing. */
    assert_int_equal(session_alone(agent, "pg-bystander", &forger, env, &left), PAM_SUCCESS);
    assert_false(left);
    assert_non_null(strstr(stored_of(pw->pw_uid), ticket));

    /* The session of the sign-in's own login (another handle, the PAM
     * environment copied as sshd does): registers, and the ticket is gone
     * from the session's environment and from the store. */
    reset_log();
    struct operator quiet = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(session_alone(agent, "pg-sshd", &quiet, env, &left), PAM_SUCCESS);
    assert_false(left);
    assert_logged("outcome=registered");
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_null(strstr(logbuf, ticket));
    assert_null(strstr(stored_of(pw->pw_uid), ticket)); /* used up */

    /* The same environment again (a replay), .agent deleted: refused. */
    assert_int_equal(unlink(path), 0);
    reset_log();
    struct operator replay = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(session_alone(agent, "pg-sshd", &replay, env, &left), PAM_SESSION_ERR);
    assert_false(left);
    if (!strstr(replay.text, "not the stored sign-in's"))
        fail_msg("message: %s", replay.text);
    assert_logged("outcome=refused");
    assert_null(strstr(logbuf, "outcome=registered"));
    assert_int_equal(lstat(path, &st), -1);
    free_env(env);
    write_conf(conf, "");
    assert_no_children();
}

/* A stored gate token that verifies but ends within a few seconds is
 * refreshed in auth: the account phase, moments later, must not find it
 * expired. */
static void test_refresh_near_expiry(void **state)
{
    (void)state;
    char lines[1024], path[512];
    snprintf(path, sizeof(path), "%s/pg-near", svcdir);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth\n", module,
             conf_fast, helper);
    write_file(path, 0644, lines);
    configure("token_lifetime", "60");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-near", &op), PAM_SUCCESS);
    configure("token_lifetime", "3600");
    snprintf(lines, sizeof(lines),
             "auth required %s config=%s helper=%s\naccount required %s "
             "config=%s helper=%s\n",
             module, conf_fast, helper, module, conf_fast, helper);
    write_file(path, 0644, lines);
    loglen = 0;
    logbuf[0] = '\0';
    struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
    int account = -1;
    clock_ahead = 57; /* the token has 3 s left by the module's clock */
    int r = run("pg-near", &none, 0, PAMTEST_ACCOUNT, &account);
    clock_ahead = 0;
    assert_int_equal(r, PAM_SUCCESS);
    assert_int_equal(account, PAM_SUCCESS);
    assert_int_equal(none.calls, 0);
    assert_logged("auth service=pg-near");
    assert_logged("via=refresh outcome=granted");
    assert_null(strstr(logbuf, "via=cached"));
    assert_no_children();
}

/*
 * A refreshed set whose gate token fails the policy (the operator's role
 * was taken away) is not stored: the stored set is deleted and the next
 * login asks for a sign-in.
 */
static void test_refresh_fails_policy(void **state)
{
    (void)state;
    char lines[1024], path[512];
    snprintf(path, sizeof(path), "%s/pg-policy", svcdir);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s prompt=info\n", module,
             conf_fast, helper);
    write_file(path, 0644, lines);
    forget();
    configure("token_lifetime", "2");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-policy", &op), PAM_SUCCESS);
    configure("token_lifetime", "3600");
    const struct pg_form_field unassign[] = {{"oid", oid}, {"roles", ""}};
    idp_control(control, ca, "roles", unassign, 2);
    sleep(3);
    /* Nobody signs in: refused, and the refreshed set was not stored. */
    configure("expires_in", "3");
    loglen = 0;
    logbuf[0] = '\0';
    struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
    int r = auth("pg-policy", &none);
    configure("expires_in", "900");
    const struct pg_form_field restore[] = {{"oid", oid}};
    idp_control(control, ca, "roles", restore, 1);
    assert_int_equal(r, PAM_AUTH_ERR);
    assert_int_equal(none.calls, 1); /* the sign-in it fell back to */
    assert_string_equal(stored(), "");
    /* The operator signs in: let in. */
    struct operator again = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-policy", &again), PAM_SUCCESS);
    assert_int_equal(again.calls, 1);
    assert_non_null(strstr(stored(), "signed_in_at"));
    assert_no_children();
}

/* ---- concurrent sign-ins for one account --------------------------------- */

/* A sign-in beside the test, in a thread of its own (a second login for
 * the account): its user code goes down `fd`, and nobody in it approves
 * anything; `result` gets its PAM code. */
struct beside {
    pthread_t thread;
    const char *svc;
    int fd;
    int result;
};

static void *beside_run(void *arg)
{
    struct beside *b = arg;
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    report_fd = b->fd;
    __atomic_store_n(&b->result, run(b->svc, &op, 0, PAMTEST_ACCOUNT, NULL), __ATOMIC_RELEASE);
    return NULL;
}

static void sign_in_beside(struct beside *b, const char *svc, int fd)
{
    *b = (struct beside){.svc = svc, .fd = fd, .result = -1};
    assert_int_equal(pthread_create(&b->thread, NULL, beside_run, b), 0);
}

/* One user code from the sign-ins beside, within 180 s (a hang; a code
 * takes a second or two, longer under valgrind on a busy machine). */
static void next_code(FILE *f, char *code, size_t n)
{
    struct pollfd p = {.fd = fileno(f), .events = POLLIN};
    if (poll(&p, 1, 180000) != 1)
        fail_msg("no user code from a sign-in beside; log:\n%s", logbuf);
    assert_non_null(fgets(code, (int)n, f));
    code[strcspn(code, "\n")] = '\0';
}

/* Until `want` of the n sign-ins beside have ended (within 180 s). */
static void wait_ended(struct beside *b, int n, int want)
{
    for (int t = 0; t < 3600; t++) {
        int ended = 0;
        for (int i = 0; i < n; i++)
            ended += __atomic_load_n(&b[i].result, __ATOMIC_ACQUIRE) != -1;
        if (ended >= want)
            return;
        usleep(50000);
    }
    fail_msg("%d sign-ins beside did not end after their approvals", want);
}

static void approve_as(const char *code, const char *name)
{
    const struct pg_form_field f[] = {
        {"user_code", code}, {"roles", role}, {"oid", oid}, {"name", name}};
    idp_control(control, ca, "approve", f, 4);
}

/*
 * The attack of an idle client: someone sits at the code prompt of a login
 * for the account and never signs in.  An operator's sign-in for the same
 * account goes through in the time its own approval takes, not after the
 * store's lock timeout (10 s).
 */
static void test_idle_sign_in_blocks_nobody(void **state)
{
    (void)state;
    int fds[2];
    char code[64];
    service("pg-reauth", "auth required MOD reauth prompt=info\n");
    assert_int_equal(pipe(fds), 0);
    FILE *codes = fdopen(fds[0], "r");
    configure("expires_in", "15");
    struct beside idle;
    sign_in_beside(&idle, "pg-reauth", fds[1]);
    next_code(codes, code, sizeof(code)); /* the idle client waits at its prompt */
    configure("expires_in", "900");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    int r = auth("pg-reauth", &op);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(pthread_join(idle.thread, NULL), 0);
    fclose(codes);
    close(fds[1]);
    assert_int_equal(r, PAM_SUCCESS);
    if (took > 8)
        fail_msg("the sign-in took %.1f s beside an idle one", took);
    assert_int_equal(idle.result, PAM_AUTH_ERR); /* its code expired */
    assert_no_children();
}

/* Six sign-ins for one account at once, approved in random order: each
 * succeeds, and the stored set is whole and the newest sign-in's. */
static void test_concurrent_sign_ins(void **state)
{
    (void)state;
    enum { N = 6 };
    int fds[2];
    char codes[N][64], name[64];
    struct beside kids[N];
    int order[N];
    service("pg-reauth", "auth required MOD reauth prompt=info\n");
    assert_int_equal(pipe(fds), 0);
    FILE *f = fdopen(fds[0], "r");
    for (int i = 0; i < N; i++)
        sign_in_beside(&kids[i], "pg-reauth", fds[1]);
    for (int i = 0; i < N; i++) {
        next_code(f, codes[i], sizeof(codes[i]));
        order[i] = i;
    }
    srand((unsigned)time(NULL));
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    /* One approval at a time, the next once the last sign-in has ended:
     * each completes after the one before however busy the machine (the
     * others keep polling meanwhile). */
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "Operator %d", i);
        approve_as(codes[order[i]], name);
        wait_ended(kids, N, i + 1);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(kids[i].thread, NULL), 0);
        ok += kids[i].result == PAM_SUCCESS;
    }
    fclose(f);
    close(fds[1]);
    assert_int_equal(ok, N);
    /* The stored set: verified from the cache, the last operator's. */
    service("pg-fast", "auth required MOD\n");
    loglen = 0;
    logbuf[0] = '\0';
    struct operator none = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-fast", &none), PAM_SUCCESS);
    assert_int_equal(none.calls, 0);
    snprintf(name, sizeof(name), "name=\"Operator %d\"", N - 1);
    assert_logged(name);
    assert_logged("via=cached outcome=granted");
    assert_no_children();
}

static void test_broken_setup(void **state)
{
    (void)state;
    char lines[1024], path[512];
    snprintf(path, sizeof(path), "%s/pg-broken", svcdir);
    /* A config that does not exist, an unknown argument, a relative path. */
    const char *const bad[] = {"config=/nonexistent/poolgate.conf", "bogus",
                               "helper=poolgate-helper", "prompt=sometimes"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s %s\n", module, conf,
                 helper, bad[i]);
        write_file(path, 0644, lines);
        if (auth("pg-broken", NULL) != PAM_SERVICE_ERR)
            fail_msg("argument %s: not PAM_SERVICE_ERR", bad[i]);
    }
    /* No stored token and no helper to sign in with. */
    forget();
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=/nonexistent/helper\n",
             module, conf);
    write_file(path, 0644, lines);
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-broken", &op), PAM_SERVICE_ERR);
    assert_no_children();
}

/* A stand-in helper: a shell script, run with the helper's fixed environment. */
static void fake_helper(const char *path, const char *script)
{
    char text[1024];
    snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", script);
    write_file(path, 0755, text);
}

static char *slurp_file(const char *path)
{
    char *buf = calloc(1, 8192);
    FILE *f = fopen(path, "r");
    assert_non_null(buf);
    if (!f)
        fail_msg("%s: not written", path);
    buf[fread(buf, 1, 8191, f)] = '\0';
    fclose(f);
    return buf;
}

/* The soft limit /proc/PID/limits shows for `name`, as text. */
static const char *limit_of(const char *limits, const char *name, char *out, size_t n)
{
    const char *at = strstr(limits, name);
    if (!at || sscanf(at + strlen(name), "%63s", out) != 1 || n < 64)
        fail_msg("no '%s' in:\n%s", name, limits);
    return out;
}

static void test_helper_bounded(void **state)
{
    (void)state;
    char path[512], lines[1024], fake[512], script[768], got[64];
    snprintf(path, sizeof(path), "%s/pg-fake", svcdir);
    snprintf(fake, sizeof(fake), "%s/fake-helper", work);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth prompt=info\n",
             module, conf, fake);
    write_file(path, 0644, lines);
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};

    /* The spawner bounds what a helper may take: CPU, descriptors, core
     * dumps and (outside sanitizer builds) address space. */
    char limits[512];
    snprintf(limits, sizeof(limits), "%s/limits", work);
    snprintf(script, sizeof(script), "cat /proc/$$/limits > %s", limits);
    fake_helper(fake, script);
    int rv = auth("pg-fake", &op);
    assert_true(rv != PAM_SUCCESS && rv != PAM_IGNORE);
    char *text = slurp_file(limits);
    assert_string_equal(limit_of(text, "Max cpu time", got, sizeof(got)), "120");
    /* (valgrind keeps the descriptor limit to itself: the spawner's
     * setrlimit is emulated there and never reaches the helper.) */
    if (!RUNNING_ON_VALGRIND)
        assert_string_equal(limit_of(text, "Max open files", got, sizeof(got)), "64");
    assert_string_equal(limit_of(text, "Max core file size", got, sizeof(got)), "0");
#if !defined(__SANITIZE_ADDRESS__)
    assert_string_equal(limit_of(text, "Max address space", got, sizeof(got)), "1073741824");
#endif
    free(text);
    assert_no_children();

    /* A helper that starts a message and stalls: the module gives up on
     * it (PG_MSG_REST_MS) instead of waiting for as long as it sleeps. */
    fake_helper(fake, "printf 'P\\000\\000\\000\\100{\"verification_uri\"'; sleep 3600");
    rv = auth("pg-fake", &op);
    assert_int_equal(rv, PAM_SERVICE_ERR); /* a helper that breaks the protocol */
    assert_no_children();
    unlink(fake);
}

/* ---- the helper as the spawner starts it ---------------------------------- */

extern char **environ;

static int by_number(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* The open descriptors, listed before anything else is opened. */
static int open_fds(int *fds, int max)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d)) && n < max;)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            fds[n++] = atoi(e->d_name);
    if (!d)
        return -1;
    closedir(d);
    qsort(fds, (size_t)n, sizeof(fds[0]), by_number);
    return n;
}

/*
 * This program as a stand-in helper: the module starts it as
 * "poolgate-helper" with no other argument, and main() sends it here.  It
 * writes to helper-report in its working directory (the test's choice):
 * its descriptors and where 0, 1 and 2 lead, its environment, and the
 * kernel's view of its ids, signal mask, ignored signals and no_new_privs.
 * Then it exits without answering: the module's request is not read.
 */
static int report_as_helper(void)
{
    int fds[64], n = open_fds(fds, 64);
    FILE *out = n < 0 ? NULL : fopen("helper-report", "we");
    FILE *status = fopen("/proc/self/status", "re");
    char line[1024];
    int r = out && status ? 0 : 125;
    if (r == 0)
        fputs("fds", out);
    for (int i = 0; r == 0 && i < n; i++)
        fprintf(out, " %d", fds[i]);
    for (int fd = 0; r == 0 && fd <= 2; fd++) {
        char link[64], target[256];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t k = readlink(link, target, sizeof(target) - 1);
        target[k > 0 ? k : 0] = '\0';
        fprintf(out, "\nfd%d %s", fd, target);
    }
    for (char **e = environ; r == 0 && *e; e++)
        fprintf(out, "\nenv %s", *e);
    if (r == 0)
        fputc('\n', out);
    while (r == 0 && fgets(line, sizeof(line), status))
        if (strncmp(line, "Uid:", 4) == 0 || strncmp(line, "Gid:", 4) == 0 ||
            strncmp(line, "Groups:", 7) == 0 || strncmp(line, "SigBlk:", 7) == 0 ||
            strncmp(line, "SigIgn:", 7) == 0 || strncmp(line, "NoNewPrivs:", 11) == 0)
            fputs(line, out);
    if (status)
        fclose(status);
    if (out && fclose(out) != 0)
        r = 125;
    return r;
}

/* One authentication through `svc`, run from `dir`, whose stand-in helper
 * reports there; the report, or NULL when the helper never ran. */
static char *helper_report(const char *svc, const char *dir)
{
    char path[512], back[512];
    snprintf(path, sizeof(path), "%s/helper-report", dir);
    unlink(path);
    assert_non_null(getcwd(back, sizeof(back)));
    assert_int_equal(chdir(dir), 0);
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    int rv = auth(svc, &op);
    assert_int_equal(chdir(back), 0);
    assert_true(rv != PAM_SUCCESS && rv != PAM_IGNORE); /* it never answers */
    assert_no_children();
    return access(path, F_OK) == 0 ? slurp_file(path) : NULL;
}

static void assert_line(const char *report, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (!strstr(report, want))
        fail_msg("not in the helper's report: '%s'\nreport:\n%s", line, report);
}

/* The report's value for `key` ("fd0 " ...): the rest of its line. */
static const char *report_value(const char *report, const char *key, char *out, size_t n)
{
    const char *at = strstr(report, key);
    if (!at)
        fail_msg("no '%s' in the helper's report:\n%s", key, report);
    at += strlen(key);
    snprintf(out, n, "%.*s", (int)strcspn(at, "\n"), at);
    return out;
}

/* A PAM service `name` whose module line uses `config`, `helper_path` and `args`. */
static void service_with(const char *name, const char *config, const char *helper_path,
                         const char *args)
{
    char path[512], lines[1024];
    snprintf(path, sizeof(path), "%s/%s", svcdir, name);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s %s\n", module, config,
             helper_path, args);
    write_file(path, 0644, lines);
}

/*
 * M7: whatever state the host process is in (here: a descriptor open
 * without close-on-exec, SIGUSR2 blocked, SIGUSR1 ignored), the helper
 * starts with the socket as 0 and 1, /dev/null as 2 and nothing else open,
 * PATH and LC_ALL alone in its environment, no signal blocked or ignored,
 * and no_new_privs set.
 */
static void test_helper_hygiene(void **state)
{
    (void)state;
    char fd0[128], fd1[128], envs[512] = "";
    sigset_t usr2, mask;
    struct sigaction ign = {.sa_handler = SIG_IGN}, usr1;
    service_with("pg-hygiene", conf, self, "reauth prompt=info");
    int stray = open("/dev/null", O_RDONLY);
    assert_true(stray > 2);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    assert_int_equal(sigprocmask(SIG_BLOCK, &usr2, &mask), 0);
    assert_int_equal(sigaction(SIGUSR1, &ign, &usr1), 0);
    char *report = helper_report("pg-hygiene", work);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    sigaction(SIGUSR1, &usr1, NULL);
    close(stray);
    if (!report)
        fail_msg("the stand-in helper did not run");

    if (strncmp(report, "fds 0 1 2\n", 10) != 0)
        fail_msg("the helper has other descriptors open (the host's was %d):\n%s", stray, report);
    report_value(report, "\nfd0 ", fd0, sizeof(fd0));
    report_value(report, "\nfd1 ", fd1, sizeof(fd1));
    assert_true(strncmp(fd0, "socket:[", 8) == 0);
    assert_string_equal(fd1, fd0);
    assert_line(report, "fd2 /dev/null"); /* the module has no stderr to give it */
    for (const char *p = report; (p = strstr(p, "\nenv ")); p += 5)
        snprintf(envs + strlen(envs), sizeof(envs) - strlen(envs), "%.*s;",
                 (int)strcspn(p + 5, "\n"), p + 5);
    assert_string_equal(envs, "PATH=/usr/sbin:/usr/bin:/sbin:/bin;LC_ALL=C;");
    assert_line(report, "SigBlk:\t0000000000000000");
    assert_line(report, "SigIgn:\t0000000000000000");
    assert_line(report, "NoNewPrivs:\t1");
    free(report);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(in >= 0 && out >= 0);
    for (ssize_t n; (n = read(in, buf, sizeof(buf))) > 0;)
        assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    assert_int_equal(chmod(to, mode), 0);
}

/*
 * M7, as root: the helper runs as helper_user with that account's gid and
 * none of the host's supplementary groups; and when root could be regained after setuid
 * (here: SECBIT_NO_SETUID_FIXUP, which keeps every capability across
 * setuid), the spawner refuses to run it at all (exit 126).
 */
static void test_helper_account(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    const struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    char dir[256], stand_in[256], nobody_conf[256], want[128];
    /* A copy of this program, and a directory to report in, for nobody. */
    assert_int_equal(chmod(work, 0711), 0);
    snprintf(stand_in, sizeof(stand_in), "%s/stand-in-helper", work);
    copy_file(self, stand_in, 0755);
    snprintf(dir, sizeof(dir), "%s/as-nobody", work);
    mkdir(dir, 0700);
    assert_int_equal(chown(dir, uid, gid), 0);
    snprintf(nobody_conf, sizeof(nobody_conf), "%s/nobody.conf", work);
    write_conf_for(nobody_conf, "nobody", "");
    service_with("pg-nobody", nobody_conf, stand_in, "reauth prompt=info");

    /* The host holds a supplementary group the helper must not keep. */
    gid_t host_groups[64], extra = 4242;
    int ngroups = getgroups(64, host_groups);
    assert_true(ngroups >= 0);
    assert_int_equal(setgroups(1, &extra), 0);
    char *report = helper_report("pg-nobody", dir);
    assert_int_equal(setgroups((size_t)ngroups, host_groups), 0);
    if (!report)
        fail_msg("the stand-in helper did not run as nobody");
    snprintf(want, sizeof(want), "Uid:\t%u\t%u\t%u\t%u", uid, uid, uid, uid);
    assert_line(report, want);
    snprintf(want, sizeof(want), "Gid:\t%u\t%u\t%u\t%u", gid, gid, gid, gid);
    assert_line(report, want);
    char groups[64];
    report_value(report, "\nGroups:", groups, sizeof(groups));
    if (groups[strspn(groups, " \t")])
        fail_msg("the helper kept supplementary groups: %s", groups);
    assert_line(report, "NoNewPrivs:\t1");
    free(report);

    int bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
    assert_true(bits >= 0);
    assert_int_equal(prctl(PR_SET_SECUREBITS, bits | SECBIT_NO_SETUID_FIXUP, 0, 0, 0), 0);
    hold_send = true; /* (the child's verdict is in before the request goes out) */
    hangup_seen = false;
    report = helper_report("pg-nobody", dir);
    hold_send = false;
    assert_int_equal(prctl(PR_SET_SECUREBITS, bits, 0, 0, 0), 0);
    if (report)
        fail_msg("the helper ran although its account could become root again:\n%s", report);
    assert_true(hangup_seen);
    assert_logged("as its account");
    unlink(stand_in);
}

/*
 * M8: the helper is gone before the module writes its request.  SIGPIPE is
 * at its default (fatal) action here: a write that raised it would end
 * this program.  The module fails with a code instead.
 */
static void test_helper_dies_first(void **state)
{
    (void)state;
    char fake[512];
    sigset_t pipe_set, mask;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    snprintf(fake, sizeof(fake), "%s/fake-helper", work);
    fake_helper(fake, "exit 0");
    service_with("pg-dies", conf, fake, "reauth prompt=info");
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    assert_int_equal(sigprocmask(SIG_UNBLOCK, &pipe_set, &mask), 0);
    hold_send = true;
    hangup_seen = false;
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    int rv = auth("pg-dies", &op);
    hold_send = false;
    sigprocmask(SIG_SETMASK, &mask, NULL);
    sigaction(SIGPIPE, &old, NULL);
    assert_true(hangup_seen); /* the helper had gone when the module wrote */
    assert_int_equal(rv, PAM_SERVICE_ERR);
    assert_logged("cannot run the helper");
    assert_no_children();
    unlink(fake);
}

/*
 * F5: whoever may replace entries in cache_dir decides which keys the gate
 * believes.  A cache_dir open to the group, a link, or another account's
 * is refused (PAM_SERVICE_ERR: a broken setup), even where every file in
 * it passes, and without a helper (none could help).
 */
static void test_cache_dir_trust(void **state)
{
    (void)state;
    char cache[256], real[256], want[512];
    struct operator op = {NULL, NULL, ANSWER, 0, 0, ""};
    signed_in();
    snprintf(cache, sizeof(cache), "%s/cache", work);
    service_with("pg-cache", conf, "/nonexistent/helper", "");
    assert_int_equal(run("pg-cache", &op, 0, PAMTEST_ACCOUNT, NULL), PAM_SUCCESS);

    assert_int_equal(chmod(cache, 0770), 0);
    int rv = run("pg-cache", &op, 0, PAMTEST_ACCOUNT, NULL);
    assert_int_equal(chmod(cache, 0700), 0);
    assert_int_equal(rv, PAM_SERVICE_ERR);
    snprintf(want, sizeof(want),
             "cache_dir %s: must not be writable by group or others (mode 0770)", cache);
    assert_logged(want);

    snprintf(real, sizeof(real), "%s/cache.real", work);
    assert_int_equal(rename(cache, real), 0);
    assert_int_equal(symlink(real, cache), 0);
    rv = run("pg-cache", &op, 0, PAMTEST_ACCOUNT, NULL);
    assert_int_equal(unlink(cache), 0);
    assert_int_equal(rename(real, cache), 0);
    assert_int_equal(rv, PAM_SERVICE_ERR);
    snprintf(want, sizeof(want), "cache_dir %s: is a symbolic link", cache);
    assert_logged(want);

    if (geteuid() == 0) { /* (helper_user is root here) */
        assert_int_equal(chown(cache, 65534, 65534), 0);
        rv = run("pg-cache", &op, 0, PAMTEST_ACCOUNT, NULL);
        assert_int_equal(chown(cache, 0, 0), 0);
        assert_int_equal(rv, PAM_SERVICE_ERR);
        assert_logged("must be owned by root (owner uid 65534)");
    }
    assert_int_equal(run("pg-cache", &op, 0, PAMTEST_ACCOUNT, NULL), PAM_SUCCESS);
    assert_int_equal(op.calls, 0);
    assert_no_children();
}

/*
 * A4: the helper account writes the store and the key cache the module
 * believes, so the module does not gate that account (under sudo it would
 * grant root to whoever holds it).  As root only: otherwise the helper
 * runs as the caller.
 */
static void test_helper_user_not_gated(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char self_conf[256];
    snprintf(self_conf, sizeof(self_conf), "%s/self.conf", work);
    write_conf_for(self_conf, "nobody", "");
    service_with("pg-self", self_conf, helper, "reauth prompt=info");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run_for("nobody", "pg-self", &op, 0, PAMTEST_ACCOUNT, NULL), PAM_SERVICE_ERR);
    assert_int_equal(op.calls, 0);
    assert_logged("helper_user nobody is the account 'nobody' being authenticated");
    assert_no_children();
}

/* Refused at load as the module runs as root: `path` (a configuration
 * another account owns, or one naming its ca_file) logged with `owned`. */
static void expect_refused_at_load(const char *path, const char *owned)
{
    char want[768];
    service_with("pg-other", path, helper, "reauth prompt=info");
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(run("pg-other", &op, 0, PAMTEST_ACCOUNT, NULL), PAM_SERVICE_ERR);
    /* The module's own line: the helper, started in its place, would refuse
     * it too (as root), but only after the module believed the file. */
    snprintf(want, sizeof(want),
             "pam_poolgate(pg-other:auth): %s: must be owned by root (owner uid 65534)", owned);
    assert_logged(want);
    assert_int_equal(op.calls, 0);
    assert_no_children();
}

/*
 * The module trusts what root's euid trusts, the euid it asks for once per
 * call: a configuration or a ca_file of another account's (nobody, the
 * agent's account as root) is refused, however valid it reads.  As root
 * only: otherwise the caller's own files are the ones trusted.
 */
static void test_config_of_another_account(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    char other[256], other_ca[256], text[16384], owned[768];
    snprintf(other, sizeof(other), "%s/other.conf", work);
    write_conf(other, "");
    assert_int_equal(chown(other, 65534, 65534), 0);
    expect_refused_at_load(other, other);

    /* A copy of the CA the provider's keys come through, in nobody's hands. */
    snprintf(other_ca, sizeof(other_ca), "%s/other-ca.pem", work);
    FILE *in = fopen(ca, "r");
    assert_non_null(in);
    size_t n = fread(text, 1, sizeof(text) - 1, in);
    fclose(in);
    text[n] = '\0';
    write_file(other_ca, 0644, text);
    assert_int_equal(chown(other_ca, 65534, 65534), 0);
    const char *real_ca = ca;
    ca = other_ca;
    write_conf(other, "");
    ca = real_ca;
    assert_int_equal(chown(other, 0, 0), 0);
    snprintf(owned, sizeof(owned), "%s: ca_file %s", other, other_ca);
    expect_refused_at_load(other, owned);
    unlink(other_ca);
    unlink(other);
}

static void test_account_alone(void **state)
{
    (void)state;
    /* sshd with a public key runs account without auth: the stored set decides. */
    forget();
    service("pg-acct", "account required MOD\n");
    struct pam_testcase t[] = {pam_test(PAMTEST_ACCOUNT, PAM_PERM_DENIED)};
    assert_int_equal(_pamtest_conv("pg-acct", user, NULL, NULL, t, 1, NULL), PAMTEST_ERR_OK);
    assert_logged("account service=pg-acct");
    signed_in();
    struct pam_testcase t2[] = {pam_test(PAMTEST_ACCOUNT, PAM_SUCCESS)};
    assert_int_equal(_pamtest_conv("pg-acct", user, NULL, NULL, t2, 1, NULL), PAMTEST_ERR_OK);
    /* A stored set that no longer meets the policy: refused in account. */
    write_conf(conf, "max_age = 1\nclock_skew = 0\n");
    struct pam_testcase t3[] = {pam_test(PAMTEST_ACCOUNT, PAM_PERM_DENIED)};
    sleep(2);
    int r = _pamtest_conv("pg-acct", user, NULL, NULL, t3, 1, NULL);
    write_conf(conf, "");
    assert_int_equal(r, PAMTEST_ERR_OK);
}

/* A fault run: the service, the account, the operations of the
 * transaction, and what to do before each run (when set). */
struct fault_case {
    const char *svc, *who;
    enum pamtest_ops ops[2];
    int nops;
    void (*before)(long n);
};

static const char *phase_name(enum pamtest_ops op)
{
    return op == PAMTEST_AUTHENTICATE ? "auth" : op == PAMTEST_ACCOUNT ? "account" : "session";
}

/* A phase that returned PAM_SUCCESS must have its own audit line showing
 * the operator's verified token (the session phase: the agent enrolled). */
static bool granted_in_log(const struct fault_case *c, enum pamtest_ops op)
{
    char head[128];
    if (op == PAMTEST_OPEN_SESSION)
        return strstr(logbuf, "outcome=registered") != NULL;
    snprintf(head, sizeof(head), "%s service=%s ", phase_name(op), c->svc);
    for (const char *l = logbuf; (l = strstr(l, head)) != NULL; l++) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[2048];
        snprintf(line, sizeof(line), "%.*s", (int)len, l);
        if (strstr(line, "outcome=granted") && strstr(line, oid))
            return true;
    }
    return false;
}

/* What pam_wrapper's copy of the PAM services holds for `svc`, to tell a
 * failed pam_start's cause in a sweep's report: the copy gone, or the
 * service missing from it. */
static const char *services_seen(const char *svc)
{
    static char seen[600];
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", svcdir, svc);
    snprintf(seen, sizeof(seen), "%s %s, %s %s", svcdir,
             stat(svcdir, &st) == 0 ? "present" : "gone", svc,
             stat(path, &st) == 0 ? "present" : "missing");
    return seen;
}

/*
 * One PAM transaction per call site: the Nth call poolgate's code makes to
 * an allocator, a file or socket function, fork, getpwnam_r or libpam fails
 * (tests/fault/fault.c), for N = 1, 2, ... until a run in which no fault
 * fired.  No run may return PAM_IGNORE, crash, leave a helper behind, or
 * have a phase succeed unless its audit line shows the operator's verified
 * token; the run without a fault must succeed in every phase.  Leaks show
 * in the sanitizer and valgrind runs of this test.  Returns the number of
 * call sites.
 */
static long fault_runs(const struct fault_case *c, const struct operator* model)
{
    for (long n = 1; n < 5000; n++) {
        char at[32], id[64];
        snprintf(at, sizeof(at), "%ld", n);
        snprintf(id, sizeof(id), "%s-%ld", c->svc, n);
        if (c->before)
            c->before(n);
        setenv("PG_FAULT_AT", at, 1);
        setenv("PG_FAULT_RUN", id, 1);
        unsetenv("PG_FAULT_HIT");
        /* (The fault may fire in a child, which becomes the agent account:
         * it reports through a file in a directory anyone may write.) */
        char hitfile[300];
        snprintf(hitfile, sizeof(hitfile), "%s/hits/%s", work, id);
        setenv("PG_FAULT_HITFILE", hitfile, 1);
        loglen = 0;
        logbuf[0] = '\0';
        struct operator op = * model;
        struct pam_testcase t[2];
        /* libpamtest stops at the first phase that fails: -1 marks those
         * it did not run. */
        for (int i = 0; i < c->nops; i++) {
            t[i] = (struct pam_testcase)pam_test(c->ops[i], PAM_SUCCESS);
            t[i].op_rv = -1;
        }
        _pamtest_conv(c->svc, c->who, model->action ? conv : NULL, &op, t, (size_t)c->nops, NULL);
        bool hit = getenv("PG_FAULT_HIT") != NULL || access(hitfile, F_OK) == 0, all = true;
        unsetenv("PG_FAULT_AT");
        for (int i = 0; i < c->nops; i++) {
            int r = t[i].op_rv;
            if (r == PAM_IGNORE)
                fail_msg("%s: fault at call %ld: PAM_IGNORE in %s", c->svc, n,
                         phase_name(c->ops[i]));
            if (r == PAM_SUCCESS && !granted_in_log(c, c->ops[i]))
                fail_msg("%s: fault at call %ld: %s PAM_SUCCESS without a verified token:\n%s",
                         c->svc, n, phase_name(c->ops[i]), logbuf);
            all = all && r == PAM_SUCCESS;
        }
        assert_no_children();
        if (!hit) {
            if (!all)
                fail_msg("%s: without a fault a phase failed (the PAM services: %s):\n%s", c->svc,
                         services_seen(c->svc), logbuf);
            return n - 1;
        }
    }
    fail_msg("%s: the fault never stopped firing", c->svc);
    return -1;
}

/* The session phase's registration, for a new agent each run: its own
 * directory (the agent account's) and name; the pool never saw it. */
static char fault_agent_dir[512];
static uid_t fault_agent_uid;
static gid_t fault_agent_gid;

static void fresh_agent(long n)
{
    char extra[1024];
    snprintf(fault_agent_dir, sizeof(fault_agent_dir), "%s/fault-agent-%ld", work, n);
    assert_int_equal(mkdir(fault_agent_dir, 0755), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(fault_agent_dir, fault_agent_uid, fault_agent_gid), 0);
    snprintf(extra, sizeof(extra),
             "organization_url = %s\npool = Build Hosts\nagent_dir = %s\n"
             "agent_name = fault-agent-%ld\nagent_version = 4.248.0\n",
             getenv("PG_DEVOPS_ORG"), fault_agent_dir, n);
    write_conf(conf, extra);
}

/* Each session run comes after a sign-in of its own, as a login's does:
 * its ticket reaches the faulted transaction in the PAM environment
 * (pam_env.so, as sshd hands on the environment of its auth child). */
static char fault_env_conf[512];
static const char *fault_agent;

static void fresh_agent_signed_in(long n)
{
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    char line[128];
    fresh_agent(n);
    char **env = auth_alone(fault_agent, "pg-fault-login", &op);
    const char *ticket = ticket_in(env);
    if (!ticket)
        fail_msg("the sign-in before session run %ld handed on no ticket", n);
    snprintf(line, sizeof(line), "%s DEFAULT=%s\n", TICKET_ENV, ticket ? ticket : "");
    write_file(fault_env_conf, 0644, line);
    free_env(env);
}

/* After a session run: the agent's files all there or none, nothing else. */
static void agent_files_whole(const char *svc, long n)
{
    static const char *const names[] = {".agent", ".credentials", ".credentials_rsaparams"};
    char path[700];
    struct stat st;
    int present = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fault_agent_dir, names[i]);
        present += lstat(path, &st) == 0;
    }
    DIR *d = opendir(fault_agent_dir);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        entries += e->d_name[0] != '.' || strstr(e->d_name, ".poolgate-");
    if (d)
        closedir(d);
    if ((present != 0 && present != 3) || entries != 0)
        fail_msg("%s: fault at call %ld: the agent's files are half there (%d of 3, %d others)",
                 svc, n, present, entries);
}

static long session_fault_runs(const struct fault_case *c, const struct operator* model)
{
    long sites = fault_runs(c, model);
    for (long n = 1; n <= sites + 1; n++) {
        snprintf(fault_agent_dir, sizeof(fault_agent_dir), "%s/fault-agent-%ld", work, n);
        agent_files_whole(c->svc, n);
    }
    return sites;
}

/* The session phase's registration, after an auth from the agent's stored
 * set (as root, for nobody, whose directory it is) and a sign-in whose
 * ticket the transaction holds.  Returns the call sites. */
static long session_faults(void)
{
    char lines[2048], path[512];
    const struct operator fast_op = {NULL, NULL, ANSWER, 0, 0, ""};
    char agent[64];
    const struct passwd *pw = agent_account(agent, NULL, NULL, NULL);
    fault_agent_uid = pw->pw_uid;
    fault_agent_gid = pw->pw_gid;
    service("pg-fault-login", "auth required MOD reauth prompt=info\naccount required MOD\n");
    fault_agent = agent;
    snprintf(fault_env_conf, sizeof(fault_env_conf), "%s/fault-env.conf", work);
    snprintf(path, sizeof(path), "%s/pg-fault-session", svcdir);
    snprintf(lines, sizeof(lines),
             "auth required %s config=%s helper=%s\n"
             "session required pam_env.so readenv=0 conffile=%s\n"
             "session required %s config=%s helper=%s register\n",
             fault_module, conf, helper, fault_env_conf, fault_module, conf, helper);
    write_file(path, 0644, lines);
    /* Faults from the session phase on (its pam_get_user, the second of the
     * transaction): the fast path before it has its own sweep. */
    setenv("PG_FAULT_AFTER", "pam_get_user:2", 1);
    long sites =
        session_fault_runs(&(struct fault_case){"pg-fault-session",
                                                agent,
                                                {PAMTEST_AUTHENTICATE, PAMTEST_OPEN_SESSION},
                                                2,
                                                fresh_agent_signed_in},
                           &fast_op);
    unsetenv("PG_FAULT_AFTER");
    return sites;
}

static void test_faults(void **state)
{
    (void)state;
    char lines[2048], path[512];
    const struct operator fast_op = {NULL, NULL, ANSWER, 0, 0, ""};
    signed_in();
    snprintf(path, sizeof(path), "%s/hits", work);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chmod(path, 0777), 0);
    snprintf(path, sizeof(path), "%s/pg-fault-fast", svcdir);
    snprintf(lines, sizeof(lines),
             "auth required %s config=%s helper=/nonexistent/helper\n"
             "account required %s config=%s helper=/nonexistent/helper\n",
             fault_module, conf, fault_module, conf);
    write_file(path, 0644, lines);
    long fast = fault_runs(
        &(struct fault_case){
            "pg-fault-fast", user, {PAMTEST_AUTHENTICATE, PAMTEST_ACCOUNT}, 2, NULL},
        &fast_op);
    /* sshd with a public key: the account phase alone, from the stored set. */
    snprintf(path, sizeof(path), "%s/pg-fault-account", svcdir);
    snprintf(lines, sizeof(lines), "account required %s config=%s helper=/nonexistent/helper\n",
             fault_module, conf);
    write_file(path, 0644, lines);
    long account = fault_runs(
        &(struct fault_case){"pg-fault-account", user, {PAMTEST_ACCOUNT}, 1, NULL}, &fast_op);
    snprintf(path, sizeof(path), "%s/pg-fault-signin", svcdir);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth prompt=info\n",
             fault_module, conf, helper);
    write_file(path, 0644, lines);
    long signin =
        fault_runs(&(struct fault_case){"pg-fault-signin", user, {PAMTEST_AUTHENTICATE}, 1, NULL},
                   &(struct operator){"approve", role, ANSWER, 0, 0, ""});
    /* The session phase enrolls the agent (each run makes an RSA key in
     * this process, which valgrind slows to seconds: that sweep runs in
     * the release and sanitizer stages). */
    long session = RUNNING_ON_VALGRIND ? 0 : session_faults();
    write_conf(conf, "");
    printf("fault injection: %ld call sites on the fast path (auth and account), %ld in account "
           "alone, %ld on the sign-in path, %ld with the session's registration (0: not under "
           "valgrind)\n",
           fast, account, signin, session);
    assert_true(account > 5 && fast > account && signin > 10 &&
                (session > account || RUNNING_ON_VALGRIND));
}

int main(int argc, char **argv)
{
    /* Started by the module as its helper (test_helper_hygiene). */
    if (argc == 1 && strcmp(argv[0], "poolgate-helper") == 0)
        return report_as_helper();
    control = getenv("PG_IDP_CONTROL");
    ca = getenv("PG_TEST_CA");
    /* pam_wrapper copied PAM_WRAPPER_SERVICE_DIR here at start-up; the
     * services this test writes go straight to the copy. */
    const char *runtime = getenv("PAM_WRAPPER_RUNTIME_DIR");
    if (argc < 3 || argc > 4 || !control || !ca || !runtime) {
        fprintf(stderr, "usage: dev_idp.py PAM_WRAPPER=1 ... -- test_pam MODULE HELPER "
                        "[FAULT-MODULE]\n");
        return 2;
    }
    /* With the fault-injection build of the module, only that test runs. */
    fault_module = argc == 4 ? argv[3] : NULL;
    if (fault_module)
        cmocka_set_test_filter("test_faults");
    else if (getenv("PG_PAM_TEST")) /* one test, by name (while working on it) */
        cmocka_set_test_filter(getenv("PG_PAM_TEST"));
    else
        cmocka_set_skip_filter("test_faults");
    module = argv[1];
    helper = argv[2];
    snprintf(user, sizeof(user), "%s", getpwuid(getuid())->pw_name);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 2;
    self[n] = '\0';
    snprintf(svcdir, sizeof(svcdir), "%s", runtime);
    snprintf(work, sizeof(work), "/tmp/pg-pam-XXXXXX");
    if (!mkdtemp(work))
        return 2;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/state", work);
    mkdir(dir, 0700);
    snprintf(dir, sizeof(dir), "%s/cache", work);
    mkdir(dir, 0700);
    snprintf(conf, sizeof(conf), "%s/poolgate.conf", work);
    snprintf(conf_fast, sizeof(conf_fast), "%s/short.conf", work);
    write_conf(conf, "");
    write_conf(conf_fast, "clock_skew = 0\n");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    configure("interval", "1");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sign_in_info, setup),
        cmocka_unit_test_setup(test_fast_path, setup),
        cmocka_unit_test_setup(test_sign_in_max_age, setup),
        cmocka_unit_test_setup(test_reauth_always_signs_in, setup),
        cmocka_unit_test_setup(test_missing_role_refused, setup),
        cmocka_unit_test_setup(test_declined, setup),
        cmocka_unit_test_setup(test_enter_prompt, setup),
        cmocka_unit_test_setup(test_auto_prompt, setup),
        cmocka_unit_test_setup(test_silent_uses_a_prompt, setup),
        cmocka_unit_test_setup(test_conversation_absent, setup),
        cmocka_unit_test_setup(test_conversation_fails, setup),
        cmocka_unit_test_setup(test_conversation_null_answer, setup),
        cmocka_unit_test_setup(test_users_filter, setup),
        cmocka_unit_test_setup(test_users_fail_closed, setup),
        cmocka_unit_test_setup(test_users_alias, setup),
        cmocka_unit_test_setup(test_app_token_refused, setup),
        cmocka_unit_test_setup(test_untrusted_claims_in_audit, setup),
        cmocka_unit_test_setup(test_unknown_user_in_log, setup),
        cmocka_unit_test_setup(test_stacks, setup),
        cmocka_unit_test_setup(test_silent_refresh, setup),
        cmocka_unit_test_setup(test_provider_failing, setup),
        cmocka_unit_test_setup(test_provider_failing_until_timeout, setup),
        cmocka_unit_test_setup(test_code_expires, setup),
        cmocka_unit_test_setup(test_conditional_access, setup),
        cmocka_unit_test_setup(test_hostile_refusal, setup),
        cmocka_unit_test_setup(test_refresh_revoked, setup),
        cmocka_unit_test_setup(test_refusal_not_carried, setup),
        cmocka_unit_test_setup(test_server_text_sanitized, setup),
        cmocka_unit_test_setup(test_qr_code, setup),
        cmocka_unit_test_setup(test_session_register, setup),
        cmocka_unit_test_setup(test_session_register_refused, setup),
        cmocka_unit_test_setup(test_session_register_not_by_refresh, setup),
        cmocka_unit_test_setup(test_session_register_split, setup),
        cmocka_unit_test_setup(test_refresh_near_expiry, setup),
        cmocka_unit_test_setup(test_refresh_fails_policy, setup),
        cmocka_unit_test_setup(test_idle_sign_in_blocks_nobody, setup),
        cmocka_unit_test_setup(test_concurrent_sign_ins, setup),
        cmocka_unit_test_setup(test_broken_setup, setup),
        cmocka_unit_test_setup(test_account_alone, setup),
        cmocka_unit_test_setup(test_helper_bounded, setup),
        cmocka_unit_test_setup(test_helper_hygiene, setup),
        cmocka_unit_test_setup(test_helper_dies_first, setup),
        cmocka_unit_test_setup(test_helper_account, setup),
        cmocka_unit_test_setup(test_cache_dir_trust, setup),
        cmocka_unit_test_setup(test_helper_user_not_gated, setup),
        cmocka_unit_test_setup(test_config_of_another_account, setup),
        cmocka_unit_test_setup(test_faults, setup),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
    if (system(cmd) != 0)
        r = r ? r : 1;
    return r;
}
