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
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
static char work[128], svcdir[256], conf[256], conf_fast[256], user[64];
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

/* The ASan runtime is not first when pam_wrapper is preloaded; that is expected here. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "verify_asan_link_order=0";
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

static void act(struct operator* op, const char *text)
{
    const char *p = strstr(text, "enter the code ");
    char code[64];
    if (!op->action || !p || sscanf(p + 15, "%63s", code) != 1)
        return;
    const struct pg_form_field f[] = {
        {"user_code", code}, {"roles", op->roles}, {"oid", oid}, {"name", "Olga Operator"}};
    idp_control(control, ca, op->action, f, 4);
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

static void write_conf(const char *path, const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "issuer = %s\nclient_id = %s\ntenant = %s\nrequired_roles = %s\nca_file = %s\n"
             "state_dir = %s/state\ncache_dir = %s/cache\nlogin_timeout = 60\n"
             "helper_user = %s\n%s",
             getenv("PG_IDP_ISSUER"), getenv("PG_IDP_CLIENT_ID"), getenv("PG_IDP_TENANT"), role, ca,
             work, work, user, extra);
    write_file(path, 0600, text);
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

static char *store_path(char *buf, size_t n)
{
    snprintf(buf, n, "%s/state/%u/tokens.json", work, (unsigned)getuid());
    return buf;
}

static void forget(void)
{
    char p[512];
    unlink(store_path(p, sizeof(p)));
}

/* The stored set's bytes (empty when none), to show a failure left it intact. */
static char *stored(void)
{
    char p[512];
    static char buf[2][65536];
    static int which;
    char *b = buf[which ^= 1];
    b[0] = '\0';
    FILE *f = fopen(store_path(p, sizeof(p)), "r");
    if (f) {
        b[fread(b, 1, sizeof(buf[0]) - 1, f)] = '\0';
        fclose(f);
    }
    return b;
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
    service("pg-others", "auth sufficient MOD reauth users=nobody-here,someone\n"
                         "auth required pam_deny.so\n"
                         "account sufficient MOD users=nobody-here,someone\n"
                         "account required pam_deny.so\n");
    int acct = -1;
    assert_int_equal(auth("pg-others", &op), PAM_AUTH_ERR);
    struct pam_testcase t[] = {pam_test(PAMTEST_ACCOUNT, PAM_AUTH_ERR)};
    assert_int_equal(_pamtest_conv("pg-others", user, conv, &op, t, 1, NULL), PAMTEST_ERR_OK);
    service("pg-others", "auth required MOD reauth users=nobody-here,someone\n"
                         "auth required pam_permit.so\n"
                         "account required MOD users=nobody-here,someone\n"
                         "account required pam_permit.so\n");
    assert_int_equal(run("pg-others", &op, 0, PAMTEST_ACCOUNT, &acct), PAM_SUCCESS);
    assert_int_equal(acct, PAM_SUCCESS);
    assert_int_equal(op.calls, 0);
    assert_null(strstr(logbuf, "service=pg-others"));
    snprintf(lines, sizeof(lines), "auth required MOD reauth users=someone,%s\n", user);
    service("pg-me", lines);
    struct operator op2 = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-me", &op2), PAM_SUCCESS);
    assert_int_equal(op2.calls, 1);
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

static void test_provider_failing(void **state)
{
    (void)state;
    const struct pg_form_field f[] = {{"path", "devicecode"}, {"kind", "500"}, {"count", "1"}};
    idp_control(control, ca, "fault", f, 3);
    struct operator op = {"approve", role, ANSWER, 0, 0, ""};
    assert_int_equal(auth("pg-reauth", &op), PAM_AUTHINFO_UNAVAIL);
    assert_int_equal(op.calls, 0);
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
    assert_non_null(strstr(op.text, "expires in 1 minute)"));
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

/* session ... register: the first login enrolls the agent, the next does not. */
static void test_session_register(void **state)
{
    (void)state;
    char extra[1024], dir[512], path[600];
    struct stat st;
    /* poolgate never writes an agent's files as root: as root, the agent
     * account is nobody, whose directory it is. */
    const struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : getpwuid(getuid());
    assert_non_null(pw);
    char agent[64];
    snprintf(agent, sizeof(agent), "%s", pw->pw_name);
    uid_t agent_uid = pw->pw_uid;
    gid_t agent_gid = pw->pw_gid;
    snprintf(dir, sizeof(dir), "%s/agent", work);
    mkdir(dir, 0755);
    if (geteuid() == 0) {
        assert_int_equal(chmod(work, 0711), 0);
        assert_int_equal(chown(dir, agent_uid, agent_gid), 0);
    }
    snprintf(extra, sizeof(extra),
             "organization_url = %s\npool = Build Hosts\nagent_dir = %s\nagent_name = pam-agent\n"
             "agent_version = 4.248.0\n",
             getenv("PG_DEVOPS_ORG"), dir);
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

/*
 * One PAM transaction per call site: the Nth call poolgate's code makes to
 * an allocator, a file or socket function, fork, getpwnam_r or libpam fails
 * (tests/fault/fault.c), for N = 1, 2, ... until a run in which no fault
 * fired.  No run may return PAM_IGNORE, crash, leave a helper behind, or
 * grant access unless the audit line shows the operator's verified token;
 * the run without a fault must grant.  Leaks show in the sanitizer and
 * valgrind runs of this test.  Returns the number of call sites.
 */
static long fault_runs(const char *svc, const struct operator* model)
{
    for (long n = 1; n < 5000; n++) {
        char at[32], id[64];
        snprintf(at, sizeof(at), "%ld", n);
        snprintf(id, sizeof(id), "%s-%ld", svc, n);
        setenv("PG_FAULT_AT", at, 1);
        setenv("PG_FAULT_RUN", id, 1);
        unsetenv("PG_FAULT_HIT");
        loglen = 0;
        logbuf[0] = '\0';
        struct operator op = * model;
        int r = auth(svc, &op);
        bool hit = getenv("PG_FAULT_HIT") != NULL;
        unsetenv("PG_FAULT_AT");
        if (r == PAM_IGNORE)
            fail_msg("%s: fault at call %ld: PAM_IGNORE", svc, n);
        if (r == PAM_SUCCESS && !(strstr(logbuf, "outcome=granted") && strstr(logbuf, oid)))
            fail_msg("%s: fault at call %ld: PAM_SUCCESS without a verified token:\n%s", svc, n,
                     logbuf);
        assert_no_children();
        if (!hit) {
            if (r != PAM_SUCCESS)
                fail_msg("%s: without a fault the module returned %d", svc, r);
            return n - 1;
        }
    }
    fail_msg("%s: the fault never stopped firing", svc);
    return -1;
}

static void test_faults(void **state)
{
    (void)state;
    char lines[1024], path[512];
    signed_in();
    snprintf(path, sizeof(path), "%s/pg-fault-fast", svcdir);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=/nonexistent/helper\n",
             fault_module, conf);
    write_file(path, 0644, lines);
    long fast = fault_runs("pg-fault-fast", &(struct operator){NULL, NULL, ANSWER, 0, 0, ""});
    snprintf(path, sizeof(path), "%s/pg-fault-signin", svcdir);
    snprintf(lines, sizeof(lines), "auth required %s config=%s helper=%s reauth prompt=info\n",
             fault_module, conf, helper);
    write_file(path, 0644, lines);
    long signin =
        fault_runs("pg-fault-signin", &(struct operator){"approve", role, ANSWER, 0, 0, ""});
    printf("fault injection: %ld call sites on the fast path, %ld on the sign-in path\n", fast,
           signin);
    assert_true(fast > 10 && signin > fast);
}

int main(int argc, char **argv)
{
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
    else
        cmocka_set_skip_filter("test_faults");
    module = argv[1];
    helper = argv[2];
    snprintf(user, sizeof(user), "%s", getpwuid(getuid())->pw_name);
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
        cmocka_unit_test_setup(test_stacks, setup),
        cmocka_unit_test_setup(test_silent_refresh, setup),
        cmocka_unit_test_setup(test_provider_failing, setup),
        cmocka_unit_test_setup(test_code_expires, setup),
        cmocka_unit_test_setup(test_server_text_sanitized, setup),
        cmocka_unit_test_setup(test_qr_code, setup),
        cmocka_unit_test_setup(test_session_register, setup),
        cmocka_unit_test_setup(test_broken_setup, setup),
        cmocka_unit_test_setup(test_account_alone, setup),
        cmocka_unit_test_setup(test_helper_bounded, setup),
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
