/*
 * Fault injection for pam_poolgate.so (a test-only build of the module,
 * linked with -Wl,--wrap for each function below): the Nth call made from
 * poolgate's own code fails, N taken from PG_FAULT_AT.  Counting restarts
 * whenever PG_FAULT_RUN changes, so one test process can run one PAM
 * transaction per N.  When the fault fires, PG_FAULT_HIT is set, so the
 * test knows when N has passed the last call site.
 *
 * Only calls made by poolgate's code are affected (libc, OpenSSL, jansson
 * and libpam keep working): that is what "each call site in turn" means.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <security/pam_modules.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static long calls;
static char run[32];

static bool fail_now(void)
{
    const char *at = getenv("PG_FAULT_AT"), *id = getenv("PG_FAULT_RUN");
    if (!at || !id)
        return false;
    if (strncmp(run, id, sizeof(run) - 1) != 0) {
        snprintf(run, sizeof(run), "%s", id);
        calls = 0;
    }
    if (++calls != atol(at))
        return false;
    setenv("PG_FAULT_HIT", "1", 1);
    return true;
}

#define DECLARE(ret, name, params)                                                                 \
    ret __real_##name params;                                                                      \
    ret __wrap_##name params

DECLARE(void *, malloc, (size_t n));
DECLARE(void *, malloc, (size_t n))
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

DECLARE(void *, calloc, (size_t n, size_t m));
DECLARE(void *, calloc, (size_t n, size_t m))
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, m);
}

DECLARE(void *, realloc, (void *p, size_t n));
DECLARE(void *, realloc, (void *p, size_t n))
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

DECLARE(char *, strdup, (const char *s));
DECLARE(char *, strdup, (const char *s))
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}

DECLARE(char *, strndup, (const char *s, size_t n));
DECLARE(char *, strndup, (const char *s, size_t n))
{
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strndup(s, n);
}

DECLARE(int, vasprintf, (char **out, const char *fmt, va_list ap));
DECLARE(int, vasprintf, (char **out, const char *fmt, va_list ap))
{
    if (fail_now())
        return -1;
    return __real_vasprintf(out, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...);
int __wrap_asprintf(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __wrap_vasprintf(out, fmt, ap);
    va_end(ap);
    return r;
}

int __real_openat(int dir, const char *path, int flags, ...);
int __wrap_openat(int dir, const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

/* open and openat take a mode only with O_CREAT or O_TMPFILE. */
#define MODE_ARG(flags, last, mode)                                                                \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = ((flags) & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;                    \
        va_end(ap);                                                                                \
    } while (0)

int __wrap_openat(int dir, const char *path, int flags, ...)
{
    mode_t mode;
    MODE_ARG(flags, flags, mode);
    if (fail_now()) {
        errno = EMFILE;
        return -1;
    }
    return __real_openat(dir, path, flags, mode);
}

/* open(2) is openat(2) relative to the working directory. */
int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode;
    MODE_ARG(flags, flags, mode);
    return __wrap_openat(AT_FDCWD, path, flags, mode);
}

DECLARE(ssize_t, read, (int fd, void *buf, size_t n));
DECLARE(ssize_t, read, (int fd, void *buf, size_t n))
{
    if (fail_now()) {
        errno = EIO;
        return -1;
    }
    return __real_read(fd, buf, n);
}

DECLARE(ssize_t, send, (int fd, const void *buf, size_t n, int flags));
DECLARE(ssize_t, send, (int fd, const void *buf, size_t n, int flags))
{
    if (fail_now()) {
        errno = EPIPE;
        return -1;
    }
    return __real_send(fd, buf, n, flags);
}

DECLARE(int, fstat, (int fd, struct stat *st));
DECLARE(int, fstat, (int fd, struct stat *st))
{
    if (fail_now()) {
        errno = EIO;
        return -1;
    }
    return __real_fstat(fd, st);
}

DECLARE(int, socketpair, (int d, int t, int p, int sv[2]));
DECLARE(int, socketpair, (int d, int t, int p, int sv[2]))
{
    if (fail_now()) {
        errno = EMFILE;
        return -1;
    }
    return __real_socketpair(d, t, p, sv);
}

DECLARE(pid_t, fork, (void));
DECLARE(pid_t, fork, (void))
{
    if (fail_now()) {
        errno = EAGAIN;
        return -1;
    }
    return __real_fork();
}

DECLARE(int, getpwnam_r,
        (const char *name, struct passwd *pw, char *buf, size_t n, struct passwd **out));
DECLARE(int, getpwnam_r,
        (const char *name, struct passwd *pw, char *buf, size_t n, struct passwd **out))
{
    if (fail_now()) {
        *out = NULL;
        return ENOMEM;
    }
    return __real_getpwnam_r(name, pw, buf, n, out);
}

DECLARE(int, pam_set_data,
        (pam_handle_t * pamh, const char *name, void *data,
         void (*cleanup)(pam_handle_t *, void *, int)));
DECLARE(int, pam_set_data,
        (pam_handle_t * pamh, const char *name, void *data,
         void (*cleanup)(pam_handle_t *, void *, int)))
{
    if (fail_now())
        return PAM_BUF_ERR;
    return __real_pam_set_data(pamh, name, data, cleanup);
}

DECLARE(int, pam_get_user, (pam_handle_t * pamh, const char **user, const char *prompt));
DECLARE(int, pam_get_user, (pam_handle_t * pamh, const char **user, const char *prompt))
{
    if (fail_now())
        return PAM_BUF_ERR;
    return __real_pam_get_user(pamh, user, prompt);
}
