/*
 * Running poolgate-helper (see spawn.h).
 *
 * MUST: between fork and execve only async-signal-safe calls (the caller may
 * be a multi-threaded host process); no secret in argv or the environment;
 * when root, the child cannot keep or regain any privilege before exec;
 * never leave a zombie or a running helper behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "entra_errors.h"
#include "internal.h"
#include "spawn.h"

/* valgrind (3.19, Debian 12) knows no pidfd_open and reports it on stderr,
 * which the CLI's tests read: under valgrind the pid path is taken. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* How long a helper that has said DONE may take to exit before it is killed. */
#define EXIT_GRACE_MS 30000

int pg_helper_account(const char *name, uid_t euid, uid_t *uid, gid_t *gid, struct pg_error *err)
{
    if (euid != 0) {
        /* Without root there is no one to become: the helper runs as the caller. */
        *uid = euid;
        *gid = getegid();
        return 0;
    }
    char buf[4096];
    struct passwd pw, *found = NULL;
    if (getpwnam_r(name, &pw, buf, sizeof(buf), &found) != 0 || !found)
        return pg_fail(err, PG_ERR_CONFIG, "helper_user '%s' does not exist", name);
    *uid = found->pw_uid;
    *gid = found->pw_gid;
    return 0;
}

/*
 * The helper's resource bounds: a helper fed a hostile answer cannot take
 * the host's memory, CPU or descriptors.  Its work is a few TLS exchanges
 * and JSON documents of at most a few hundred KiB; the address space
 * leaves room for libcurl's resolver threads.  Sanitizer runtimes reserve
 * terabytes of address space: those builds keep the CPU and descriptor
 * bounds only.
 */
#define HELPER_AS_BYTES (1024L * 1024 * 1024)
#define HELPER_CPU_SECONDS 120
#define HELPER_FILES 64

#if defined(__SANITIZE_ADDRESS__)
#define HELPER_BOUND_AS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define HELPER_BOUND_AS 0
#endif
#endif
#ifndef HELPER_BOUND_AS
#define HELPER_BOUND_AS 1
#endif

/* Soft and hard limit n (or the tighter one already there).  Where the
 * hard limit may not change (valgrind keeps the descriptor limit for
 * itself), the soft limit alone.  (setrlimit is a plain system call: safe
 * between fork and execve.) */
static int bound(int resource, rlim_t n)
{
    struct rlimit now, want = {n, n};
    if (getrlimit(resource, &now) < 0)
        return -1;
    if (now.rlim_max != RLIM_INFINITY && now.rlim_max < n)
        want.rlim_cur = want.rlim_max = now.rlim_max; /* never raise a tighter bound */
    if (setrlimit(resource, &want) == 0)
        return 0;
    want.rlim_max = now.rlim_max;
    return setrlimit(resource, &want);
}

int pg_child_reset(int in, int out, int errfd)
{
    sigset_t none;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    /* Any of the three that is 0, 1 or 2 is copied above 2 first: in a host
     * whose 0-2 were closed, socketpair, pipe and open hand those out, and
     * a dup2 onto one of them would overwrite a descriptor still to be
     * placed (the helper's /dev/null at 0 became its socket as stderr),
     * while dup2 onto itself keeps close-on-exec (systemctl's pipe at 1 was
     * closed at execve). */
    int fd[3] = {in, out, errfd};
    for (int i = 0; i < 3; i++)
        if (fd[i] <= STDERR_FILENO && (fd[i] = fcntl(fd[i], F_DUPFD_CLOEXEC, 3)) < 0)
            return -1;
    for (int i = 0; i < 3; i++)
        if (dup2(fd[i], i) < 0)
            return -1;
    closefrom(STDERR_FILENO + 1);
    /* The host's mask and handlers are not the child's: execve keeps the
     * mask and ignored signals, so reset both, the handlers first: a signal
     * pending here (pg_fork_blocked blocks all across fork) must not run a
     * host handler in this process once unblocked. */
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return 0;
}

pid_t pg_fork_blocked(void)
{
    sigset_t all, host;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &host);
    pid_t pid = fork();
    int e = errno;
    if (pid != 0)
        pthread_sigmask(SIG_SETMASK, &host, NULL);
    errno = e;
    return pid;
}

static _Noreturn void child(const struct pg_helper *h, int sock, int errfd)
{
    static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    static char *const argv[] = {"poolgate-helper", NULL};

    if (pg_child_reset(sock, sock, errfd) < 0)
        _exit(127);
    /* (helper_user root keeps root: a development setup, which poolgate
     * doctor reports.) */
    if (geteuid() == 0 && h->uid != 0) {
        if (setgroups(0, NULL) < 0 || setgid(h->gid) < 0 || setuid(h->uid) < 0)
            _exit(126);
        if (setuid(0) != -1 || geteuid() == 0)
            _exit(126); /* root could be regained: refuse to run */
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit(126);
    if (bound(RLIMIT_CPU, HELPER_CPU_SECONDS) < 0 || bound(RLIMIT_NOFILE, HELPER_FILES) < 0 ||
        (HELPER_BOUND_AS && bound(RLIMIT_AS, HELPER_AS_BYTES) < 0) || bound(RLIMIT_CORE, 0) < 0)
        _exit(126);
    execve(h->path, argv, envp);
    _exit(127);
}

/* Whether the helper is still our child to wait for (running or a zombie):
 * waitid refuses a process that is not our child, whatever its pid. */
static bool still_ours(const struct pg_helper *h)
{
    siginfo_t si;
    return waitid(h->pidfd >= 0 ? P_PIDFD : P_PID, h->pidfd >= 0 ? (id_t)h->pidfd : (id_t)h->pid,
                  &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

int pg_helper_start(struct pg_helper *h, enum pg_msg_type type, json_t *request,
                    struct pg_error *err)
{
    int sv[2] = {-1, -1}, devnull = -1;
    h->pid = -1;
    h->fd = -1;
    h->pidfd = -1;
    h->chld_saved = false;
    if (h->path[0] != '/')
        return pg_fail(err, PG_ERR_CONFIG, "the helper path %s is not absolute", h->path);
    if (h->stderr_fd < 0 && (devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
        return pg_fail(err, PG_ERR_IO, "/dev/null: %s", strerror(errno));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        if (devnull >= 0)
            close(devnull);
        return pg_fail(err, PG_ERR_IO, "cannot start the helper: %s", strerror(e));
    }
    /* SIGCHLD at its default from before the fork until pg_helper_stop()
     * has reaped the helper: ignored (SIG_IGN, SA_NOCLDWAIT), the kernel
     * would reap the helper itself and its status would be lost; a host
     * handler could reap it with waitpid(-1).  (The child resets every
     * disposition anyway, see child().) */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    h->chld_saved = sigaction(SIGCHLD, &dfl, &h->chld) == 0;
    pid_t pid = h->chld_saved ? pg_fork_blocked() : -1;
    if (pid == 0)
        child(h, sv[1], h->stderr_fd < 0 ? devnull : h->stderr_fd);
    int e = errno;
    close(sv[1]);
    if (devnull >= 0)
        close(devnull);
    h->pid = pid;
    h->fd = sv[0];
    if (pid > 0) {
        /* The pidfd names this process for good, even once it is reaped
         * (Linux >= 5.4; without one, the pid is used).  Until pidfd_open,
         * only a host thread waiting for any child could have reaped it;
         * then the pid may already be a stranger's, which still_ours()
         * tells: the helper is treated as gone. */
        h->pidfd = RUNNING_ON_VALGRIND ? -1 : pidfd_open(pid, 0);
        if (h->pidfd >= 0 && !still_ours(h) && errno == EINVAL) {
            close(h->pidfd); /* Linux 5.3: pidfds, but no waitid(P_PIDFD) */
            h->pidfd = -1;
        }
        if ((h->pidfd < 0 && errno == ESRCH) || !still_ours(h)) {
            if (h->pidfd >= 0)
                close(h->pidfd);
            h->pidfd = -1;
            h->pid = 0;
        }
    }
    if (pid < 0) {
        pg_helper_stop(h, true);
        return pg_fail(err, PG_ERR_IO, "cannot start the helper: %s", strerror(e));
    }
    if (pg_msg_write(h->fd, type, request) < 0) {
        int ws = pg_helper_stop(h, true);
        if (ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 126)
            return pg_fail(err, PG_ERR_CONFIG, "cannot run the helper %s as its account", h->path);
        return pg_fail(err, PG_ERR_CONFIG, "cannot run the helper %s", h->path);
    }
    return 0;
}

/* Wait until fd is readable or the deadline passes (0: no deadline). */
static int wait_readable(int fd, int64_t deadline_ms)
{
    for (;;) {
        int timeout = -1;
        if (deadline_ms > 0) {
            int64_t left = deadline_ms - pg_monotonic_ms();
            if (left <= 0)
                return PG_ERR_DENIED;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, timeout);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return PG_ERR_IO;
    }
}

int pg_helper_event(struct pg_helper *h, int64_t deadline_ms, enum pg_msg_type *type,
                    json_t **payload, struct pg_error *err)
{
    int r = wait_readable(h->fd, deadline_ms);
    if (r == PG_ERR_DENIED)
        return pg_fail(err, r, "the sign-in timed out");
    if (r < 0)
        return pg_fail(err, r, "helper protocol: %s", strerror(errno));
    /* A message is written whole by the helper; once its first byte is here
     * the rest follows without waiting on a person.  A helper that stalls
     * mid-message still cannot hold the caller past the deadline or
     * PG_MSG_REST_MS, whichever comes first. */
    int64_t rest = PG_MSG_REST_MS;
    if (deadline_ms > 0 && deadline_ms - pg_monotonic_ms() < rest)
        rest = deadline_ms - pg_monotonic_ms() > 0 ? deadline_ms - pg_monotonic_ms() : 1;
    struct timeval tv = {(time_t)(rest / 1000), (suseconds_t)(rest % 1000) * 1000};
    if (setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return pg_fail(err, PG_ERR_IO, "helper protocol: %s", strerror(errno));
    return pg_msg_read(h->fd, type, payload, err);
}

/*
 * Reap the helper, waiting (options 0) or not (WNOHANG).  Returns the wait
 * status, -1 when it is not ours to reap any more, or -2 while it runs.
 * Through the pidfd, waitid can only ever reap this very process.
 */
static int reap(const struct pg_helper *h, int options)
{
    for (;;) {
        siginfo_t si = {0};
        int r = waitid(h->pidfd >= 0 ? P_PIDFD : P_PID,
                       h->pidfd >= 0 ? (id_t)h->pidfd : (id_t)h->pid, &si, WEXITED | options);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1; /* ECHILD: reaped by someone else */
        if (si.si_pid == 0)
            return -2;
        return si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0)
                                        : si.si_status | (si.si_code == CLD_DUMPED ? WCOREFLAG : 0);
    }
}

/*
 * Reap the helper if it exits within ms (naps of 1 ms growing to 50 ms:
 * a helper that said DONE is normally gone at the first look).  Returns
 * as reap().
 */
static int reap_within(const struct pg_helper *h, int ms)
{
    int64_t end = pg_monotonic_ms() + ms;
    long nap = 1;
    for (;;) {
        int ws = reap(h, WNOHANG);
        if (ws != -2 || pg_monotonic_ms() >= end)
            return ws;
        struct timespec ts = {0, nap * 1000000L};
        nanosleep(&ts, NULL);
        nap = nap < 50 ? nap * 2 : 50;
    }
}

int pg_helper_stop(struct pg_helper *h, bool kill_it)
{
    int ws = -1;
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    if (h->pid > 0) {
        ws = kill_it ? -2 : reap_within(h, EXIT_GRACE_MS);
        /* Without a pidfd, a pid is signalled only while it is still our
         * child: unreaped, it cannot have been given away. */
        if (ws == -2 && h->pidfd < 0 && !still_ours(h))
            ws = -1;
        if (ws == -2) {
            if (h->pidfd >= 0)
                pidfd_send_signal(h->pidfd, SIGKILL, NULL, 0);
            else
                kill(h->pid, SIGKILL);
            ws = reap(h, 0);
        }
        if (h->pidfd >= 0)
            close(h->pidfd);
    }
    h->pid = -1;
    h->pidfd = -1;
    /* Only now, with the helper reaped, may SIGCHLD be ignored again. */
    if (h->chld_saved)
        sigaction(SIGCHLD, &h->chld, NULL);
    h->chld_saved = false;
    return ws;
}

/* The status of DONE (the CLI's exit codes) as a library result. */
static int from_status(json_int_t status)
{
    static const int codes[] = {0, PG_ERR_DENIED, PG_ERR_CONFIG, PG_ERR_NETWORK};
    return status >= 0 && status <= 3 ? codes[status] : PG_ERR_PROTOCOL;
}

int pg_helper_call(struct pg_helper *h, enum pg_msg_type type, json_t *request, int64_t deadline_ms,
                   json_t **done, struct pg_error *err)
{
    enum pg_msg_type t = PG_MSG_DONE;
    json_t *p = NULL;
    *done = NULL;
    if (h->refusal)
        memset(h->refusal, 0, sizeof(*h->refusal));
    int r = pg_helper_start(h, type, request, err);
    if (r == 0 && (r = pg_helper_event(h, deadline_ms, &t, &p, err)) == PG_ERR_DENIED)
        r = pg_fail(err, PG_ERR_NETWORK, "the helper did not answer in time");
    json_t *status = json_object_get(p, "status");
    const char *msg = json_string_value(json_object_get(p, "message"));
    if (r == 0 && (t != PG_MSG_DONE || !json_is_integer(status) || !msg))
        r = pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: unexpected message");
    if (r == 0 && (r = from_status(json_integer_value(status))) < 0) {
        pg_fail(err, r, "%s", msg);
        if (h->refusal)
            pg_refusal_from_done(p, h->refusal);
    }
    pg_helper_stop(h, !p); /* no answer: it may still be running */
    if (r == 0)
        *done = TAKE_PTR(p);
    json_decref(p);
    return r;
}
