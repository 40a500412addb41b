/*
 * Starting and stopping the helper (lib/core/spawn.c) in a host that ignores
 * SIGCHLD or handles it itself: the helper is still reaped with its
 * status, the host's disposition is back afterwards, and a helper that is
 * still running is killed and reaped.
 *
 * The stand-in helper is this program: pg_helper_start() runs it as
 * "poolgate-helper", and main() sends it to stand_in(), which reads the
 * request and does what its "do" member says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "spawn.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static char self[4096];

/* The helper's side: read one request frame, then exit 3 or wait to be killed. */
static int stand_in(void)
{
    char buf[512];
    size_t n = 0;
    while (n < sizeof(buf) - 1) {
        ssize_t r = read(STDIN_FILENO, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            return 1;
        n += (size_t)r;
        if (n >= 5 && memchr(buf + 5, '}', n - 5))
            break;
    }
    buf[n] = '\0';
    if (strstr(buf + 5, "\"wait\""))
        for (;;)
            pause();
    return 3;
}

static void start(struct pg_helper *h, const char *what)
{
    struct pg_error err = {0};
    *h = (struct pg_helper){.path = self, .uid = getuid(), .gid = getgid(), .stderr_fd = -1};
    json_t *req = json_pack("{s:s}", "do", what);
    assert_non_null(req);
    if (pg_helper_start(h, PG_MSG_CHECK, req, &err) != 0)
        fail_msg("pg_helper_start: %s", err.msg);
    json_decref(req);
    assert_true(h->pid > 0);
    /* While it runs, SIGCHLD is at its default. */
    struct sigaction now;
    assert_int_equal(sigaction(SIGCHLD, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, SIG_DFL);
}

static void assert_no_children(void)
{
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void expect_exit_3(int ws)
{
    if (!(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 3))
        fail_msg("wanted exit status 3, got wait status %d", ws);
}

/* (a) A host with SIGCHLD ignored: the kernel would reap the helper itself. */
static void test_sigchld_ignored(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, now;
    sigemptyset(&ign.sa_mask);
    assert_int_equal(sigaction(SIGCHLD, &ign, NULL), 0);
    struct pg_helper h;
    start(&h, "exit");
    usleep(100000); /* let it exit while the host "ignores" SIGCHLD */
    expect_exit_3(pg_helper_stop(&h, false));
    assert_int_equal(sigaction(SIGCHLD, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, SIG_IGN);
    assert_int_equal(h.pid, -1);
    assert_int_equal(h.pidfd, -1);
    assert_no_children();
    signal(SIGCHLD, SIG_DFL);
}

static volatile sig_atomic_t handled;

/* A host that reaps every child from its handler. */
static void reaper(int sig)
{
    (void)sig;
    int e = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        handled++;
    errno = e;
}

/* (b) A host with its own SIGCHLD handler gets it back, flags and all. */
static void test_sigchld_handler(void **state)
{
    (void)state;
    struct sigaction mine = {.sa_handler = reaper, .sa_flags = SA_RESTART}, now;
    sigemptyset(&mine.sa_mask);
    sigaddset(&mine.sa_mask, SIGUSR1);
    assert_int_equal(sigaction(SIGCHLD, &mine, NULL), 0);
    struct pg_helper h;
    start(&h, "exit");
    usleep(100000);
    expect_exit_3(pg_helper_stop(&h, false));
    assert_int_equal(handled, 0); /* the host's handler did not take it */
    assert_int_equal(sigaction(SIGCHLD, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, reaper);
    assert_true(now.sa_flags & SA_RESTART);
    assert_true(sigismember(&now.sa_mask, SIGUSR1));
    assert_no_children();
    signal(SIGCHLD, SIG_DFL);
}

/* (c) A helper still running is killed and reaped: no zombie, no helper. */
static void test_stop_running(void **state)
{
    (void)state;
    struct pg_helper h;
    struct pg_error err = {0};
    enum pg_msg_type t;
    json_t *p = NULL;
    /* Also with SIGCHLD ignored, and at a deadline. */
    for (int ignored = 0; ignored < 2; ignored++) {
        signal(SIGCHLD, ignored ? SIG_IGN : SIG_DFL);
        start(&h, "wait");
        /* The kill goes through the pidfd (under valgrind, which knows no
         * pidfd_open, the spawner falls back to the checked pid). */
        assert_true(h.pidfd >= 0 || RUNNING_ON_VALGRIND);
        pid_t pid = h.pid;
        assert_int_equal(pg_helper_event(&h, pg_monotonic_ms() + 200, &t, &p, &err), PG_ERR_DENIED);
        int ws = pg_helper_stop(&h, true);
        if (!(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL))
            fail_msg("wanted SIGKILL, got wait status %d", ws);
        assert_int_equal(kill(pid, 0), -1);
        assert_no_children();
        assert_ptr_equal(signal(SIGCHLD, SIG_DFL), ignored ? SIG_IGN : SIG_DFL);
    }
}

/* A helper someone else reaped is not signalled or waited for again. */
static void test_reaped_elsewhere(void **state)
{
    (void)state;
    struct pg_helper h, never = {.fd = -1};
    int fd0 = fcntl(STDIN_FILENO, F_GETFD);
    start(&h, "wait");
    assert_int_equal(kill(h.pid, SIGKILL), 0);
    assert_int_equal(waitpid(h.pid, NULL, 0), h.pid); /* a host thread's wait(-1) */
    assert_int_equal(pg_helper_stop(&h, true), -1);
    assert_no_children();
    /* Never started (fd -1, the rest zero, as the module keeps it): nothing to
     * close, kill or restore. */
    assert_int_equal(pg_helper_stop(&never, true), -1);
    assert_int_equal(fcntl(STDIN_FILENO, F_GETFD), fd0);
}

/* Move fd to `at` (closing what was there), close-on-exec as the spawners'
 * O_CLOEXEC descriptors are. */
static int place(int fd, int at)
{
    if (fd != at && (dup3(fd, at, O_CLOEXEC) < 0 || close(fd) < 0))
        return -1;
    return fcntl(at, F_SETFD, FD_CLOEXEC) < 0 ? -1 : at;
}

/* Whether descriptor n is the open file `want` with close-on-exec off. */
static bool is(int n, const struct stat *want)
{
    struct stat st;
    return fstat(n, &st) == 0 && st.st_dev == want->st_dev && st.st_ino == want->st_ino &&
           fcntl(n, F_GETFD) == 0;
}

/* In a child: in, out and err at descriptors at[0..2] (one file where two
 * are equal), which may be 0, 1 or 2 already: a host whose standard
 * descriptors are closed gets those from socketpair, pipe or open.  0 when
 * pg_child_reset left exactly them at 0, 1, 2, inheritable, and nothing
 * else open. */
static int reset_at(const int at[3])
{
    int p[2], q[2], m = memfd_create("err", MFD_CLOEXEC);
    struct stat want[3];
    if (pipe2(p, O_CLOEXEC) < 0 || pipe2(q, O_CLOEXEC) < 0 || m < 0 || fstat(p[0], &want[0]) ||
        fstat(q[1], &want[1]) || fstat(m, &want[2]))
        return 10;
    /* Nothing else open, and the three where the case wants them. */
    int src[3] = {p[0], q[1], m}, fd[3];
    for (int i = 0; i < 3; i++)
        if (dup3(src[i], 40 + i, O_CLOEXEC) < 0)
            return 11;
    for (int n = 0; n < 40; n++)
        close(n);
    for (int i = 0; i < 3; i++) {
        int same = i && at[i] == at[i - 1] ? i - 1 : i == 2 && at[2] == at[0] ? 0 : -1;
        if (same >= 0) /* one file for two (the helper's socket, systemctl's pipe) */
            want[i] = want[same], fd[i] = fd[same];
        else if ((fd[i] = place(40 + i, at[i])) < 0)
            return 11;
    }
    if (pg_child_reset(fd[0], fd[1], fd[2]) < 0)
        return 12;
    for (int i = 0; i < 3; i++)
        if (!is(i, &want[i]))
            return 1 + i;
    for (int n = 3; n < 64; n++)
        if (fcntl(n, F_GETFD) >= 0)
            return 4;
    return 0;
}

/* pg_child_reset places in, out and err whatever descriptors they are.  In a
 * host with 0-2 closed, the helper's socket is 2 and its /dev/null 0; with
 * 0 and 1 closed, systemctl's pipe is 1, the CLI's helper socket 1. */
static void test_child_reset(void **state)
{
    (void)state;
    static const int cases[][3] = {{30, 30, 31}, {2, 2, 0}, {1, 1, 2}, {2, 1, 1}, {3, 2, 2},
                                   {0, 0, 1},    {2, 1, 0}, {1, 2, 0}, {0, 1, 2}, {5, 6, 0}};
    for (size_t i = 0; i < PG_ARRAY_SIZE(cases); i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(reset_at(cases[i]));
        int ws = 0;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
            fail_msg("in, out, err at %d, %d, %d: check %d failed", cases[i][0], cases[i][1],
                     cases[i][2], WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    }
}

/* The host's handler, which must never run in the child. */
static void host_handler(int sig)
{
    (void)sig;
    _exit(99);
}

/* A signal pending in the child (blocked by the host, or by the spawner
 * across fork) meets the default disposition once pg_child_reset unblocks
 * it, never the host's handler: in the child that handler would act on
 * the host's pipes and files as if it were the host. */
static void test_child_reset_signals(void **state)
{
    (void)state;
    struct sigaction mine = {.sa_handler = host_handler}, old;
    sigset_t urg, was;
    sigemptyset(&mine.sa_mask);
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG); /* ignored by default */
    assert_int_equal(sigaction(SIGURG, &mine, &old), 0);
    assert_int_equal(sigprocmask(SIG_BLOCK, &urg, &was), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        raise(SIGURG);
        _exit(null < 0 || pg_child_reset(null, null, null) < 0 ? 12 : 0);
    }
    assert_int_equal(sigprocmask(SIG_SETMASK, &was, NULL), 0);
    assert_int_equal(sigaction(SIGURG, &old, NULL), 0);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        fail_msg("the child ended with wait status %d (exit 99: the host's handler ran)", ws);
}

/*
 * pg_helper_account follows the euid it is given (the module's, asked once
 * per call), not this process's: 0 looks helper_user up, whoever runs the
 * test; any other euid is the helper's uid itself, with the egid, and no
 * name is looked up (a missing helper_user is then no error).
 */
static void test_helper_account_euid(void **state)
{
    (void)state;
    const struct passwd *pw = getpwnam("nobody");
    if (!pw)
        skip();
    uid_t want_uid = pw->pw_uid, uid = 1;
    gid_t want_gid = pw->pw_gid, gid = 1;
    struct pg_error err = {0};
    assert_int_equal(pg_helper_account("nobody", 0, &uid, &gid, &err), 0);
    assert_int_equal(uid, want_uid);
    assert_int_equal(gid, want_gid);
    assert_int_equal(pg_helper_account("pg-no-such-account", 0, &uid, &gid, &err), PG_ERR_CONFIG);
    assert_string_equal(err.msg, "helper_user 'pg-no-such-account' does not exist");

    assert_int_equal(pg_helper_account("nobody", 4242, &uid, &gid, &err), 0);
    assert_int_equal(uid, 4242);
    assert_int_equal(gid, getegid());
    assert_int_equal(pg_helper_account("pg-no-such-account", 4243, &uid, &gid, &err), 0);
    assert_int_equal(uid, 4243);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (strcmp(argv[0], "poolgate-helper") == 0)
        return stand_in();
    if (!realpath(argv[0], self))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigchld_ignored),     cmocka_unit_test(test_sigchld_handler),
        cmocka_unit_test(test_stop_running),        cmocka_unit_test(test_reaped_elsewhere),
        cmocka_unit_test(test_child_reset),         cmocka_unit_test(test_child_reset_signals),
        cmocka_unit_test(test_helper_account_euid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
