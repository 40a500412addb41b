/*
 * The helper's sandbox, entered once the request and the configuration
 * are read and before the first network exchange (helper.c).  Two layers:
 *
 *   Landlock: files.  Read, write, create, remove and rename under
 *   state_dir and cache_dir; read the trust store and what the libraries
 *   read at run time; nothing else, and no execution anywhere.  Best
 *   effort: a kernel without Landlock (before 5.13, or with it left out
 *   of the LSM list) runs the helper without this layer.  Newer kernels
 *   also get: no TCP bind (ABI 4), no signals to and no abstract Unix
 *   sockets of processes outside the sandbox (ABI 6).
 *
 *   seccomp: system calls.  An allow list; anything else fails with EPERM,
 *   and those that only an attacker would make (execve, ptrace, mount,
 *   module loading...) kill the process.  x86_64 only, and system calls
 *   of that ABI only.
 *
 * MUST:
 *   - Fail closed: an error other than "this kernel has no Landlock" ends
 *     the request, it is never ignored.
 *   - Stay in step with what the helper does after it: a new kind of file
 *     or system call needs a line here, and the suite runs the helper
 *     sandboxed throughout (tests/unit/test_sandbox.c checks the refusals).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#ifndef __has_feature
#define __has_feature(x) 0 /* gcc before 14 */
#endif
/* The filter's lists are x86_64's (other ABIs name other calls: mmap2,
 * socketcall...); see also sandbox_enter. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !__has_feature(address_sanitizer)
#define SECCOMP_FITS 1
#else
#define SECCOMP_FITS 0
#endif

#include "internal.h"
#include "sandbox.h"

/* The rights of later ABIs, for the Debian 12 headers (ABI 2). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#endif
#define LL_NET_BIND_TCP (1ULL << 0)        /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)        /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; older kernels take a prefix. */
struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE                                                                                   \
    (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                                 \
     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                              \
     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_REFER)
/* The rights Landlock accepts on a rule for a file rather than a directory. */
#define FS_FILE_RIGHTS                                                                             \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |   \
     LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

/*
 * Read only, when present: the C library's resolver and time zone, shared
 * objects loaded late (NSS modules, gconv, OpenSSL's modules), the CPU
 * count malloc asks for once threads start, and the process's own /proc
 * entries.  The configuration and the working directory were read before.
 */
static const char *const runtime_files[] = {
    "/etc/resolv.conf", "/etc/hosts",     "/etc/nsswitch.conf",
    "/etc/host.conf",   "/etc/gai.conf",  "/etc/services",
    "/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo",
    "/usr/lib",         "/lib",           "/usr/lib64",
    "/lib64",           "/usr/local/lib", "/etc/ssl/openssl.cnf",
    "/usr/lib/ssl",     "/dev/urandom",   "/sys/devices/system/cpu",
    "/proc/self",
};

/* The system's trust store: the bundle, the hashed directory and the
 * certificates its links point to. */
static const char *const system_store[] = {
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
};

static int ll_create_ruleset(const struct ruleset_attr *a, size_t size, uint32_t flags)
{
    return (int)syscall(SYS_landlock_create_ruleset, a, size, flags);
}

/* Allow `access` beneath `path`.  A path the helper cannot reach now
 * (missing, or not its to reach) is left out: it stays out of reach, and
 * the helper's own attempt to use it later says why.  Any other failure
 * (no descriptor or memory left) is an error like any other, not a path
 * silently missing from the sandbox. */
static int ll_allow(int ruleset, const char *path, uint64_t access, uint64_t handled,
                    struct pg_error *err)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == ELOOP))
        return 0;
    if (fd < 0)
        return pg_fail(err, PG_ERR_IO, "sandbox: %s: %s", path, strerror(errno));
    struct stat st;
    int r = fstat(fd, &st);
    struct landlock_path_beneath_attr rule = {
        .allowed_access =
            access & handled & (r == 0 && S_ISDIR(st.st_mode) ? ~0ULL : FS_FILE_RIGHTS),
        .parent_fd = fd,
    };
    if (r == 0)
        r = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0);
    int e = errno;
    close(fd);
    return r == 0 ? 0 : pg_fail(err, PG_ERR_IO, "sandbox: %s: %s", path, strerror(e));
}

static int landlock(const struct pg_config *cfg, bool *applied, struct pg_error *err)
{
    int abi = ll_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0 && (errno == ENOSYS || errno == EOPNOTSUPP))
        return 0; /* no Landlock in this kernel: best effort */
    if (abi < 0)
        return pg_fail(err, PG_ERR_IO, "sandbox: landlock: %s", strerror(errno));
    struct ruleset_attr a = {
        .handled_access_fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1, /* every right of ABI 1 */
    };
    if (abi >= 2)
        a.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        a.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 4)
        a.handled_access_net = LL_NET_BIND_TCP; /* connecting stays free */
    if (abi >= 5)
        a.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    if (abi >= 6)
        a.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
    int ruleset = ll_create_ruleset(&a, sizeof(a), 0);
    if (ruleset < 0)
        return pg_fail(err, PG_ERR_IO, "sandbox: landlock: %s", strerror(errno));
    uint64_t h = a.handled_access_fs;
    int r = ll_allow(ruleset, cfg->state_dir, FS_READ | FS_WRITE, h, err);
    if (r == 0)
        r = ll_allow(ruleset, cfg->cache_dir, FS_READ | FS_WRITE, h, err);
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(runtime_files); i++)
        r = ll_allow(ruleset, runtime_files[i], FS_READ, h, err);
    if (r == 0 && cfg->ca_file)
        r = ll_allow(ruleset, cfg->ca_file, FS_READ, h, err);
    /* libcurl checks an https:// proxy against the system's store, whatever ca_file says. */
    bool system = !cfg->ca_file || (cfg->proxy && strncmp(cfg->proxy, "https://", 8) == 0);
    for (size_t i = 0; r == 0 && system && i < PG_ARRAY_SIZE(system_store); i++)
        r = ll_allow(ruleset, system_store[i], FS_READ, h, err);
    if (r == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
        r = pg_fail(err, PG_ERR_IO, "sandbox: landlock: %s", strerror(errno));
    close(ruleset);
    *applied = r == 0;
    return r;
}

/* Allowed with any arguments. */
static const int allowed[] = {
    /* files, through descriptors Landlock has let open */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(openat), SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
    SCMP_SYS(statx), SCMP_SYS(lseek), SCMP_SYS(getdents64), SCMP_SYS(fcntl), SCMP_SYS(flock),
    SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(fchmod), SCMP_SYS(mkdirat),
    SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(unlinkat), SCMP_SYS(faccessat),
    SCMP_SYS(faccessat2), SCMP_SYS(readlinkat), SCMP_SYS(dup), SCMP_SYS(dup3), SCMP_SYS(pipe2),
    /* networking (the kinds of socket: below) */
    SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
    SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg),
    SCMP_SYS(shutdown), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
    SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait),
    SCMP_SYS(eventfd2),
    /* memory */
    SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
    SCMP_SYS(madvise),
    /* time */
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
    SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
    /* threads (libcurl's resolver runs getaddrinfo in one) and signals */
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(tgkill),
    SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
    SCMP_SYS(restart_syscall), SCMP_SYS(exit), SCMP_SYS(exit_group),
    /* who and where we are */
    SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(getresuid),
    SCMP_SYS(getresgid), SCMP_SYS(uname), SCMP_SYS(sysinfo), SCMP_SYS(getrandom)};

/* Never part of the helper's work: whoever makes these is not the helper any more. */
static const int fatal[] = {
    /* other programs and other processes' memory */
    SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
    SCMP_SYS(process_vm_writev), SCMP_SYS(pidfd_getfd), SCMP_SYS(kcmp),
    /* mounts and namespaces */
    SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(chroot), SCMP_SYS(unshare),
    SCMP_SYS(setns), SCMP_SYS(fsopen), SCMP_SYS(fsconfig), SCMP_SYS(fsmount), SCMP_SYS(fspick),
    SCMP_SYS(move_mount), SCMP_SYS(open_tree), SCMP_SYS(mount_setattr), SCMP_SYS(open_by_handle_at),
    SCMP_SYS(name_to_handle_at),
    /* the kernel and the machine */
    SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(kexec_load),
    SCMP_SYS(kexec_file_load), SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd),
    SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key), SCMP_SYS(personality),
    SCMP_SYS(iopl), SCMP_SYS(ioperm), SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff),
    SCMP_SYS(acct), SCMP_SYS(quotactl), SCMP_SYS(uselib), SCMP_SYS(vhangup),
    /* the clock */
    SCMP_SYS(settimeofday), SCMP_SYS(clock_settime), SCMP_SYS(clock_adjtime), SCMP_SYS(adjtimex)};

/* Argument n equals v (both data given: clang's -Wextra wants every field). */
#define ARG_EQ(n, v) SCMP_CMP((n), SCMP_CMP_EQ, (scmp_datum_t)(v), 0)

static int seccomp(struct pg_error *err)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!f)
        return pg_fail(err, PG_ERR_NOMEM, "sandbox: seccomp: out of memory");
    int r = seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(allowed); i++)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(fatal); i++)
        r = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, fatal[i], 0);
    /* clone only for a thread (fork fails); clone3 hides its flags in
     * memory a filter cannot read, so it is "not implemented" and the C
     * library falls back to clone. */
    const uint64_t thread = CLONE_VM | CLONE_THREAD | CLONE_SIGHAND;
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             SCMP_CMP(0, SCMP_CMP_MASKED_EQ, thread, thread));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Sockets: TCP and UDP (DNS), Unix (nscd, systemd-resolved, libcurl's
     * wake-up pair), and routing netlink (getaddrinfo's AI_ADDRCONFIG). */
    static const int domains[] = {AF_INET, AF_INET6, AF_UNIX};
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(domains); i++)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, ARG_EQ(0, domains[i]));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, ARG_EQ(0, AF_NETLINK),
                             ARG_EQ(2, NETLINK_ROUTE));
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, ARG_EQ(0, AF_UNIX));
    /* ioctl: bytes waiting (the resolver), non-blocking mode, isatty. */
    static const unsigned long requests[] = {FIONREAD, FIONBIO, TCGETS};
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(requests); i++)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, ARG_EQ(1, requests[i]));
    /* Limits may be read (thread stacks), never set. */
    if (r == 0)
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1, ARG_EQ(2, 0));
    if (r == 0)
        r = seccomp_load(f);
    seccomp_release(f);
    return r == 0 ? 0 : pg_fail(err, PG_ERR_IO, "sandbox: seccomp: %s", strerror(-r));
}

/*
 * Left out where a tool shares the process and needs what the sandbox
 * refuses:
 *   - valgrind (3.19) implements neither seccomp(2) nor Landlock's system
 *     calls (it warns about each and fails it): under valgrind nothing is
 *     applied, as on a kernel without either;
 *   - AddressSanitizer's leak checker stops the threads at exit from a
 *     clone()d tracer, with ptrace(): ASan builds get no seccomp filter
 *     (Landlock stays).
 * The filter is also left out on other architectures than x86_64, for
 * which its lists were not made.
 */
int sandbox_enter(const struct pg_config *cfg, unsigned *applied, struct pg_error *err)
{
    bool ll = false;
    unsigned done = 0;
    int r = RUNNING_ON_VALGRIND ? 0 : landlock(cfg, &ll, err);
    if (r == 0 && ll)
        done |= SANDBOX_LANDLOCK;
    if (r == 0 && !RUNNING_ON_VALGRIND && SECCOMP_FITS && (r = seccomp(err)) == 0)
        done |= SANDBOX_SECCOMP;
    if (applied)
        *applied = done;
    return r;
}
