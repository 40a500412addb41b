/*
 * pam_sm_authenticate end to end (pam/pam_poolgate.c compiled in), with a
 * fake poolgate-helper whose answer is the input: the byte stream of
 * PROMPT and DONE frames (type, 4-byte big-endian length, JSON) it writes
 * back to every request, the LOGIN of the sign-in and the KEYS that an
 * unknown kid brings.  The module runs with "reauth prompt=info qr=off" on
 * a PAM handle of pam_start_confdir() (a private service file, never
 * /etc/pam.d), a private configuration, and a key cache holding one RSA
 * key (kid "fuzz-key") whose private half is thrown away at start: no
 * input can carry a token that verifies.
 *
 * An input that starts with 'S' takes the other way in: the stored set.
 * After the 'S', two bytes (big-endian) give the length of the token set
 * file the store then holds (the rest of the input is the helper's
 * answer), and the module runs without "reauth": it reads and verifies the
 * stored set, asks the helper for a REFRESH, and signs in when that fails.
 *
 * Aborts when: the module returns PAM_SUCCESS or PAM_IGNORE, or any code
 * gate_result() does not give; it keeps a gate token (pam_set_data) after
 * refusing; a helper is left running or unreaped (waitpid(-1) must say
 * ECHILD) or a descriptor left open; a syslog message is not one printable
 * line, or the call logged other than exactly one audit line, "refused";
 * a conversation message holds a control character other than a newline
 * (the threat model: the helper writes the prompt's text, printable only).
 *
 * Each input forks and executes the helper (fuzz/fake_helper.c, copied
 * next to the answer file in the private directory; a trial answer at
 * start proves that it runs): the fork of a sanitized process dominates,
 * expect tens to a few hundred executions a second, not thousands.
 */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <security/pam_modules.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oidc.h"
#include "poolgate/poolgate.h"
#include "fuzzkit.h"
#include "../tests/unit/testkit.h"

#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define CID "6e74172b-be56-4843-9ff4-e66a39bb12e3"
#define ISS "https://login.microsoftonline.com/" TID "/v2.0"

static const char *dir;
static char conf_arg[4200], helper_arg[4200], cache[4096], store[4096];
static pam_handle_t *pamh;
static int base_fds, audits;
static char audit[8192]; /* the last audit line */
static int64_t keys_saved;

/* ---- syslog, caught: pam_syslog() reaches these ----------------------- */

/* (FUZZ_PAM_LOG=1 shows them on stderr, to follow a reproducer.) */
__attribute__((format(printf, 1, 0))) static void caught(const char *fmt, va_list ap)
{
    char line[8192];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (getenv("FUZZ_PAM_LOG"))
        fprintf(stderr, "syslog: %s\n", line);
    fuzz_check_line(line, sizeof(line));
    const char *outcome = strstr(line, " outcome=");
    if (outcome) {
        audits++;
        snprintf(audit, sizeof(audit), "%s", line);
        if (strncmp(outcome, " outcome=refused ", 17) != 0)
            abort();
    }
}

#define FMT(a, b) __attribute__((format(printf, a, b)))
FMT(2, 3) void syslog(int pri, const char *fmt, ...);
FMT(3, 4) void __syslog_chk(int pri, int flag, const char *fmt, ...);
FMT(2, 0) void vsyslog(int pri, const char *fmt, va_list ap);
FMT(3, 0) void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap);

void syslog(int pri, const char *fmt, ...)
{
    (void)pri;
    va_list ap;
    va_start(ap, fmt);
    caught(fmt, ap);
    va_end(ap);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
    (void)pri, (void)flag;
    va_list ap;
    va_start(ap, fmt);
    caught(fmt, ap);
    va_end(ap);
}

void vsyslog(int pri, const char *fmt, va_list ap)
{
    (void)pri;
    caught(fmt, ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
    (void)pri, (void)flag;
    caught(fmt, ap);
}

/* ---- the person at the terminal ----------------------------------------- */

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));
    if (!r)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        fuzz_check_text(msg[i]->msg, 1 << 20, true);
        r[i].resp = strdup(""); /* Enter, whatever is asked */
    }
    *resp = r;
    return PAM_SUCCESS;
}

/* ---- the setting -------------------------------------------------------- */

/* The key cache as the helper would leave it: one key nobody can sign with,
 * fetched now and never attempted since (so an unknown kid asks for KEYS). */
static void save_keys(void)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    char *jwk = tk_jwk(key, "fuzz-key", ",\"use\":\"sig\"");
    EVP_PKEY_free(key);
    char jwks[4200];
    snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", jwk);
    free(jwk);
    keys_saved = (int64_t)time(NULL);
    struct pg_keycache_entry e = {
        .issuer = (char *)ISS, .jwks = jwks, .fetched_at = keys_saved, .last_attempt = 0};
    int fd = open(cache, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct pg_error err = {0};
    if (fd < 0 || pg_keycache_save(fd, &e, &err) != 0) {
        fprintf(stderr, "fuzz_pam: key cache: %s\n", err.msg);
        abort();
    }
    close(fd);
}

/* fuzz/fake_helper, built next to this program, copied into the private
 * directory, where it finds the answer. */
static void install_helper(void)
{
    char self[4096], path[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - sizeof("fake_helper"));
    if (n <= 0)
        abort();
    self[n] = '\0';
    strcpy(strrchr(self, '/') + 1, "fake_helper");
    FILE *f = fopen(self, "rb");
    static char bin[1 << 22];
    size_t len = f ? fread(bin, 1, sizeof(bin), f) : 0;
    if (!f || ferror(f) || !feof(f) || len == 0) {
        fprintf(stderr, "fuzz_pam: cannot read %s\n", self);
        abort();
    }
    fclose(f);
    fuzz_write(dir, "poolgate-helper", bin, len, 0700);
    snprintf(helper_arg, sizeof(helper_arg), "helper=%s", fuzz_path(path, dir, "poolgate-helper"));
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* One authentication with `answer` from the helper, and the stored set
 * `stored` (none when NULL: then a sign-in is demanded); aborts on a broken
 * invariant. */
static void authenticate(const void *answer, size_t size, const void *stored, size_t stored_size)
{
    if ((int64_t)time(NULL) - keys_saved > 3600)
        save_keys(); /* keep the cached set within its hour */
    fuzz_write(dir, "answer", answer, size, 0600);
    char tokens[4200];
    if (stored)
        fuzz_write(store, "tokens.json", stored, stored_size, 0600);
    else
        unlink(fuzz_path(tokens, store, "tokens.json"));
    const char *argv[] = {conf_arg, helper_arg, "prompt=info", "qr=off", "reauth"};
    audits = 0;
    int r = pam_sm_authenticate(pamh, 0, stored ? 4 : 5, argv);
    if (r != PAM_AUTH_ERR && r != PAM_AUTHINFO_UNAVAIL && r != PAM_SERVICE_ERR &&
        r != PAM_BUF_ERR && r != PAM_CONV_ERR)
        abort(); /* PAM_SUCCESS, PAM_IGNORE, or a code gate_result never gives */
    const void *kept = NULL;
    if (pam_get_data(pamh, "poolgate:gate-token", &kept) == PAM_SUCCESS)
        abort();
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
        abort(); /* a helper still running, or a zombie */
    if (count_fds() != base_fds || audits != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size >= 3 && data[0] == 'S') {
        size_t n = (size_t)data[1] << 8 | data[2];
        n = n < size - 3 ? n : size - 3;
        authenticate(data + 3 + n, size - 3 - n, data + 3, n);
    } else
        authenticate(data, size, NULL, 0);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static const struct pam_conv pc = {conv, NULL};
    char state[4096], pamd[4096], text[16384], path[4096];
    struct passwd *pw = getpwuid(geteuid());
    if (!pw)
        abort();
    char user[256];
    snprintf(user, sizeof(user), "%s", pw->pw_name);
    dir = fuzz_tmpdir("fz-pam");
    fuzz_mkdir(state, dir, "state");
    char uid[32];
    snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
    fuzz_mkdir(store, state, uid);
    fuzz_mkdir(cache, dir, "cache");
    fuzz_mkdir(pamd, dir, "pam.d");
    snprintf(text, sizeof(text),
             "issuer = " ISS "\nclient_id = " CID "\ntenant = " TID "\n"
             "required_roles = AgentPool.Enroll\nstate_dir = %s\ncache_dir = %s\n"
             "helper_user = %s\nhttp_timeout = 2\nlogin_timeout = 30\n",
             state, cache, user);
    fuzz_write(dir, "poolgate.conf", text, strlen(text), 0600);
    snprintf(conf_arg, sizeof(conf_arg), "config=%s", fuzz_path(path, dir, "poolgate.conf"));
    static const char service[] = "auth required pam_permit.so\n";
    fuzz_write(pamd, "poolgate-fuzz", service, strlen(service), 0644);
    fuzz_write(pamd, "other", service, strlen(service), 0644); /* else PAM logs its absence */
    save_keys();
    install_helper();
    if (pam_start_confdir("poolgate-fuzz", user, &pc, pamd, &pamh) != PAM_SUCCESS)
        abort();
    base_fds = count_fds();
    /* A helper that cannot run would pass every check and test nothing. */
    static const char trial[] = "D\0\0\0\x28{\"status\":1,\"message\":\"fuzz_pam: trial\"}";
    authenticate(trial, sizeof(trial) - 1, NULL, 0);
    if (!strstr(audit, "reason=\"fuzz_pam: trial\"")) {
        fprintf(stderr, "fuzz_pam: the fake helper does not answer: %s\n", audit);
        abort();
    }
    return 0;
}
