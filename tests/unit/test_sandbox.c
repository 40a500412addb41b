/*
 * The helper's sandbox (helper/sandbox.c), entered in a forked child for
 * each check: the store, the cache, sockets and a resolver thread still
 * work; other files, execution, fork, ptrace and other architectures'
 * system calls are refused.  The whole helper runs sandboxed in the
 * integration tests, which make the TLS exchanges.
 *
 * Landlock's checks are skipped on a kernel without it, seccomp's in
 * AddressSanitizer builds (sandbox.c says why); when Landlock is missing
 * the program ends with 77 (skipped), having run what it could.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "poolgate/poolgate.h"
#include "sandbox.h"

static char top[64], state_dir[96], cache_dir[96], outside[96], ca_file[96];
static char *use_ca_file; /* ca_file of the next confined() run */
static unsigned applied;  /* what sandbox_enter puts in place on this machine */
static int landlock_abi;

/* Run fn in a child that entered the sandbox first; its wait status.
 * fn returns 0 when its call succeeded, else the errno it failed with. */
static int confined(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* cmocka's handlers must not turn a signal into the next test. */
        const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT};
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
            signal(fatal[i], SIG_DFL);
        struct pg_config cfg = {
            .state_dir = state_dir, .cache_dir = cache_dir, .ca_file = use_ca_file};
        struct pg_error err = {0};
        unsigned a = 0;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || sandbox_enter(&cfg, &a, &err) != 0) {
            fprintf(stderr, "sandbox_enter: %s\n", err.msg);
            _exit(255);
        }
        _exit(fn == NULL ? (int)a : fn());
    }
    int st = -1;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static int errno_of(int r)
{
    return r < 0 ? errno : 0;
}

static int open_errno(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0600);
    int e = errno_of(fd);
    if (fd >= 0)
        close(fd);
    return e;
}

#define assert_exit(st, code)                                                                      \
    do {                                                                                           \
        assert_true(WIFEXITED(st));                                                                \
        assert_int_equal(WEXITSTATUS(st), (code));                                                 \
    } while (0)
/* Refused by Landlock (EACCES), or for symlinks and FIFOs already by
 * seccomp, which does not let the call through at all (EPERM). */
#define assert_refused(st)                                                                         \
    do {                                                                                           \
        assert_true(WIFEXITED(st));                                                                \
        assert_true(WEXITSTATUS(st) == EACCES || WEXITSTATUS(st) == EPERM);                        \
    } while (0)
#define assert_killed(st)                                                                          \
    do {                                                                                           \
        assert_true(WIFSIGNALED(st));                                                              \
        assert_int_equal(WTERMSIG(st), SIGSYS);                                                    \
    } while (0)

static int setup(void **state)
{
    (void)state;
    strcpy(top, "/tmp/pg-sandbox-test-XXXXXX");
    if (!mkdtemp(top))
        return -1;
    snprintf(state_dir, sizeof(state_dir), "%s/state", top);
    snprintf(cache_dir, sizeof(cache_dir), "%s/cache", top);
    snprintf(outside, sizeof(outside), "%s/outside", top);
    snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", top);
    if (mkdir(state_dir, 0700) || mkdir(cache_dir, 0700))
        return -1;
    const char *files[] = {"state/tokens.json", "outside", "ca.pem"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", top, files[i]);
        FILE *f = fopen(path, "w");
        if (!f || fputs("{}\n", f) < 0 || fclose(f))
            return -1;
    }
    landlock_abi =
        (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    int st = confined(NULL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) == 255)
        return -1;
    applied = (unsigned)WEXITSTATUS(st);
    printf("# sandbox here: Landlock %s (ABI %d), seccomp %s\n",
           applied & SANDBOX_LANDLOCK ? "on" : "off", landlock_abi,
           applied & SANDBOX_SECCOMP ? "on" : "off");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    return system(cmd) == 0 ? 0 : -1;
}

/* What the store and the cache do: read, lock, make a directory, write a
 * temporary file, sync, rename it into place, remove it. */
static int store_and_cache(void)
{
    char buf[8], path[128];
    snprintf(path, sizeof(path), "%s/tokens.json", state_dir);
    int e = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, buf, sizeof(buf)) != 3 || flock(fd, LOCK_EX) < 0)
        return errno ? errno : EIO;
    close(fd);
    int dir = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return errno;
    if ((e = errno_of(mkdirat(dir, "1000", 0700))) != 0)
        return e;
    fd = openat(dir, ".keys.tmp", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "{}", 2) != 2 || fsync(fd) < 0 || close(fd) < 0 ||
        renameat(dir, ".keys.tmp", dir, "keys.json") < 0 || unlinkat(dir, "keys.json", 0) < 0 ||
        unlinkat(dir, "1000", AT_REMOVEDIR) < 0 || fsync(dir) < 0)
        return errno;
    return 0;
}

static void test_store_and_cache_work(void **state)
{
    (void)state;
    assert_exit(confined(store_and_cache), 0);
}

static int read_shadow(void)
{
    return open_errno("/etc/shadow", O_RDONLY);
}
static int read_passwd(void)
{
    return open_errno("/etc/passwd", O_RDONLY);
}
static int write_passwd(void)
{
    return open_errno("/etc/passwd", O_WRONLY);
}
static int read_outside(void)
{
    return open_errno(outside, O_RDONLY);
}
static int create_in_tmp(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/new", top);
    return open_errno(path, O_WRONLY | O_CREAT | O_EXCL);
}
static int symlink_in_state(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/link", state_dir);
    return errno_of(symlink("/etc/shadow", path));
}
static int fifo_in_cache(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/fifo", cache_dir);
    return errno_of(mkfifo(path, 0600));
}

static void test_other_files_refused(void **state)
{
    (void)state;
    if (!(applied & SANDBOX_LANDLOCK))
        skip();
    int (*const refused[])(void) = {read_shadow, read_passwd, write_passwd, read_outside,
                                    create_in_tmp};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        printf("# refused file access %zu\n", i);
        assert_exit(confined(refused[i]), EACCES);
    }
    assert_refused(confined(symlink_in_state));
    assert_refused(confined(fifo_in_cache));
}

static int read_system_store(void)
{
    return open_errno("/etc/ssl/certs/ca-certificates.crt", O_RDONLY);
}
static int read_ca_file(void)
{
    return open_errno(ca_file, O_RDONLY);
}

/* ca_file replaces the system's trust store. */
static void test_trust_store(void **state)
{
    (void)state;
    if (!(applied & SANDBOX_LANDLOCK))
        skip();
    if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
        assert_exit(confined(read_system_store), 0);
    use_ca_file = ca_file;
    int with_ca_file = confined(read_system_store), ca = confined(read_ca_file);
    use_ca_file = NULL;
    assert_exit(with_ca_file, EACCES);
    assert_exit(ca, 0);
}

static int run_true(void)
{
    char *const argv[] = {"true", NULL};
    execve("/bin/true", argv, argv + 1);
    return errno;
}

static void test_exec_refused(void **state)
{
    (void)state;
    int st = confined(run_true);
    if (applied & SANDBOX_SECCOMP)
        assert_killed(st);
    else if (applied & SANDBOX_LANDLOCK)
        assert_exit(st, EACCES);
    else
        skip();
}

static int do_fork(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    return pid < 0 ? errno : 0;
}
static int packet_socket(void)
{
    return errno_of(socket(AF_PACKET, SOCK_RAW, 0));
}
static int audit_socket(void)
{
    return errno_of(socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT));
}
static int raise_limit(void)
{
    struct rlimit l = {RLIM_INFINITY, RLIM_INFINITY};
    return errno_of(setrlimit(RLIMIT_NOFILE, &l));
}
static int clone3_call(void)
{
    return errno_of((int)syscall(SYS_clone3, NULL, 0));
}
static int trace_me(void)
{
    return errno_of((int)ptrace(PTRACE_TRACEME, 0, NULL, NULL));
}
static int mount_tmp(void)
{
    return errno_of((int)syscall(SYS_mount, "none", top, "tmpfs", 0, NULL));
}
/* getpid as an x32 system call: another ABI than the filter's. */
static int x32_call(void)
{
    return errno_of((int)syscall(0x40000000 | SYS_getpid));
}

static void test_system_calls_refused(void **state)
{
    (void)state;
    if (!(applied & SANDBOX_SECCOMP))
        skip();
    assert_exit(confined(do_fork), EPERM);
    assert_exit(confined(packet_socket), EPERM);
    assert_exit(confined(audit_socket), EPERM);
    assert_exit(confined(raise_limit), EPERM);
    /* The C library then makes its threads with clone(). */
    assert_exit(confined(clone3_call), ENOSYS);
    assert_killed(confined(trace_me));
    assert_killed(confined(mount_tmp));
    assert_killed(confined(x32_call));
}

static int bind_tcp(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return s < 0 ? errno : errno_of(bind(s, (struct sockaddr *)&a, sizeof(a)));
}

static void test_tcp_bind_refused(void **state)
{
    (void)state;
    if (!(applied & SANDBOX_LANDLOCK) || landlock_abi < 4)
        skip();
    assert_exit(confined(bind_tcp), EACCES);
}

static void *resolve(void *arg)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    *(int *)arg = getaddrinfo("localhost", "443", &hints, &res);
    freeaddrinfo(res);
    return NULL;
}

/* What libcurl does: TCP and netlink sockets, a socket pair, and the
 * threaded resolver's getaddrinfo through the C library's NSS. */
static int network_and_threads(void)
{
    int sv[2], r = EAI_SYSTEM;
    pthread_t t;
    if (socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) < 0 ||
        socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0) < 0 ||
        socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return errno;
    if ((errno = pthread_create(&t, NULL, resolve, &r)) != 0 || (errno = pthread_join(t, NULL)))
        return errno;
    return r == 0 ? 0 : 200;
}

static void test_network_and_threads_work(void **state)
{
    (void)state;
    assert_exit(confined(network_and_threads), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_and_cache_work),
        cmocka_unit_test(test_other_files_refused),
        cmocka_unit_test(test_trust_store),
        cmocka_unit_test(test_exec_refused),
        cmocka_unit_test(test_system_calls_refused),
        cmocka_unit_test(test_tcp_bind_refused),
        cmocka_unit_test(test_network_and_threads_work),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed ? failed : applied & SANDBOX_LANDLOCK ? 0 : 77;
}
