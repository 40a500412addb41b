/*
 * Fault injection for test-only builds of pam_poolgate.so, poolgate and
 * poolgate-helper, linked with -Wl,--wrap for each function below (and, for
 * the programs, those of fault_programs.c): the Nth call made from poolgate's own
 * code fails, N taken from PG_FAULT_AT.  Counting restarts whenever
 * PG_FAULT_RUN changes, so one test process can run one PAM transaction per
 * N.  When the fault fires, PG_FAULT_HIT is set in the process, the file
 * PG_FAULT_HITFILE names (if any) is created and, when
 * PG_FAULT_MARK is set, a line PG_FAULT_LINE N goes to standard error
 * (which the helper's sandbox still allows): so the test knows when N has
 * passed the last call site, in its own process or in a program it ran
 * (PG_FAULT_MARK=trace adds a backtrace of the failing call).
 * PG_FAULT_AFTER=NAME:K counts nothing (and fails nothing) before the Kth
 * call of the wrapped function NAME, which is the first counted: a sweep
 * of one PAM phase that needs an earlier phase to succeed every time.
 *
 * Only calls made by poolgate's code are affected (libc, OpenSSL, jansson,
 * libcurl and libpam keep working): that is what "each call site in turn"
 * means.
 */
#include "fault.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <openssl/rsa.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static long calls, gate_calls;
static char run[32];

/* Whether PG_FAULT_AFTER's gate (NAME:K) has opened, counting this call. */
static bool past_gate(const char *fn)
{
    const char *after = getenv("PG_FAULT_AFTER"), *colon = after ? strchr(after, ':') : NULL;
    if (!colon)
        return true;
    if (strlen(fn) == (size_t)(colon - after) && strncmp(fn, after, strlen(fn)) == 0)
        gate_calls++;
    return gate_calls >= atol(colon + 1);
}

int __real_openat64(int dir, const char *path, int flags, ...);

bool pg_fault_now(const char *fn)
{
    const char *at = getenv("PG_FAULT_AT"), *id = getenv("PG_FAULT_RUN");
    if (!at || !id)
        return false;
    if (strncmp(run, id, sizeof(run) - 1) != 0) {
        snprintf(run, sizeof(run), "%s", id);
        calls = gate_calls = 0;
    }
    if (!past_gate(fn) || ++calls != atol(at))
        return false;
    setenv("PG_FAULT_HIT", "1", 1);
    /* A forked child's environment is its own: a file tells the test. */
    const char *hitfile = getenv("PG_FAULT_HITFILE");
    int fd =
        hitfile ? __real_openat64(AT_FDCWD, hitfile, O_WRONLY | O_CREAT | O_CLOEXEC, 0666) : -1;
    if (fd >= 0)
        close(fd);
    const char *mark = getenv("PG_FAULT_MARK");
    if (mark)
        dprintf(STDERR_FILENO, "%s%ld (%s)\n", PG_FAULT_LINE, calls, fn);
    if (mark && strcmp(mark, "trace") == 0) {
        void *frames[16]; /* where the failing call came from, when debugging */
        backtrace_symbols_fd(frames, backtrace(frames, 16), STDERR_FILENO);
    }
    return true;
}

WRAP(void *, malloc, (size_t n), (n), FAIL(ENOMEM, NULL))
WRAP(void *, calloc, (size_t n, size_t m), (n, m), FAIL(ENOMEM, NULL))
WRAP(void *, realloc, (void *p, size_t n), (p, n), FAIL(ENOMEM, NULL))
WRAP(char *, strdup, (const char *s), (s), FAIL(ENOMEM, NULL))
WRAP(char *, strndup, (const char *s, size_t n), (s, n), FAIL(ENOMEM, NULL))
WRAP(int, vasprintf, (char **out, const char *fmt, va_list ap), (out, fmt, ap), -1)

int __wrap_asprintf(char **out, const char *fmt, ...);
int __wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __wrap_vasprintf(out, fmt, ap);
    va_end(ap);
    return r;
}

/* With _FILE_OFFSET_BITS=64 glibc's headers turn open and openat into
 * open64 and openat64 (as fstat into fstat64): the names poolgate's objects
 * call, so the ones wrapped. */
int __wrap_openat64(int dir, const char *path, int flags, ...);
int __wrap_open64(const char *path, int flags, ...);

/* open and openat take a mode only with O_CREAT or O_TMPFILE. */
#define MODE_ARG(flags, last, mode)                                                                \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = ((flags) & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;                    \
        va_end(ap);                                                                                \
    } while (0)

int __wrap_openat64(int dir, const char *path, int flags, ...)
{
    mode_t mode;
    MODE_ARG(flags, flags, mode);
    if (pg_fault_now("openat"))
        return FAIL(EMFILE, -1);
    return __real_openat64(dir, path, flags, mode);
}

/* open(2) is openat(2) relative to the working directory. */
int __wrap_open64(const char *path, int flags, ...)
{
    mode_t mode;
    MODE_ARG(flags, flags, mode);
    return __wrap_openat64(AT_FDCWD, path, flags, mode);
}

WRAP(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n), FAIL(EIO, -1))
WRAP(ssize_t, send, (int fd, const void *buf, size_t n, int flags), (fd, buf, n, flags),
     FAIL(EPIPE, -1))
WRAP(int, fstat, (int fd, struct stat *st), (fd, st), FAIL(EIO, -1))
/* With _FILE_OFFSET_BITS=64 glibc's headers turn fstat and fstatat into
 * these: the names poolgate's objects actually call. */
WRAP(int, fstat64, (int fd, struct stat64 *st), (fd, st), FAIL(EIO, -1))
WRAP(int, fstatat64, (int dir, const char *path, struct stat64 *st, int flags),
     (dir, path, st, flags), FAIL(EIO, -1))
WRAP(int, socketpair, (int d, int t, int p, int sv[2]), (d, t, p, sv), FAIL(EMFILE, -1))
WRAP(pid_t, fork, (void), (), FAIL(EAGAIN, -1))
/* The login fast path's direct RSA (lib/core/fastcrypto.c), in the module
 * as in the programs: a key that cannot be made falls back to EVP, a failed
 * verification refuses. */
WRAP(RSA *, RSA_new, (void), (), NULL)
WRAP(int, RSA_verify,
     (int type, const unsigned char *m, unsigned int mlen, const unsigned char *sig,
      unsigned int slen, RSA *rsa),
     (type, m, mlen, sig, slen, rsa), 0)
WRAP(int, getpwnam_r,
     (const char *name, struct passwd *pw, char *buf, size_t n, struct passwd **out),
     (name, pw, buf, n, out), (*out = NULL, ENOMEM))
