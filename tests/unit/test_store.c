/*
 * The token store: round trip, the trust checks on every level, atomic
 * replacement under a full disk and under SIGKILL at any instant, and the
 * lock between two sign-ins of the same user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "poolgate/poolgate.h"
#include "store.h"

static char top[64];

static int setup(void **state)
{
    (void)state;
    strcpy(top, "/tmp/pg-store-test-XXXXXX");
    return mkdtemp(top) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
    return system(cmd) == 0 ? 0 : -1;
}

static int open_store(uid_t uid, bool create, struct pg_error *err)
{
    int fd = -1;
    int r = pg_store_open(top, uid, create, geteuid(), &fd, err);
    return r < 0 ? r : fd;
}

static struct pg_tokenset sample(const char *tag)
{
    struct pg_tokenset ts = {0};
    char buf[128];
    snprintf(buf, sizeof(buf), "id.%s", tag);
    ts.id_token = strdup(buf);
    snprintf(buf, sizeof(buf), "refresh.%s", tag);
    ts.refresh_token = strdup(buf);
    ts.access_token = strdup("access");
    ts.scope = strdup("openid offline_access");
    ts.expires_at = 1767229200;
    return ts;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct pg_error err = {0};
    int dir = open_store(1000, true, &err);
    assert_true(dir >= 0);
    assert_int_equal(pg_store_exists(dir, &err), 0);
    struct pg_tokenset in = sample("one"), out = {0};
    assert_int_equal(pg_store_write(dir, &in, &err), 0);
    assert_int_equal(pg_store_exists(dir, &err), 1);
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), 0);
    assert_string_equal(out.id_token, "id.one");
    assert_string_equal(out.refresh_token, "refresh.one");
    assert_string_equal(out.access_token, "access");
    assert_string_equal(out.scope, "openid offline_access");
    assert_int_equal(out.expires_at, 1767229200);
    assert_true(out.stored_at > 0);
    assert_int_equal(out.signed_in_at, 0); /* none recorded: unknown */
    assert_null(out.enroll_ticket);        /* a set without a ticket has none */
    struct stat st;
    assert_int_equal(fstatat(dir, "tokens.json", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(fstat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    pg_tokenset_clear(&out);
    /* Replacing leaves no temporary files behind. */
    struct pg_tokenset two = sample("two");
    two.signed_in_at = 1767225600;
    two.enroll_ticket = strdup("00112233445566778899aabbccddeeff");
    assert_int_equal(pg_store_write(dir, &two, &err), 0);
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), 0);
    assert_string_equal(out.id_token, "id.two");
    assert_int_equal(out.signed_in_at, 1767225600);
    assert_string_equal(out.enroll_ticket, "00112233445566778899aabbccddeeff");
    DIR *d = fdopendir(dup(dir));
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)))
        files += e->d_name[0] != '.' || strncmp(e->d_name, ".tokens", 7) == 0;
    closedir(d);
    assert_int_equal(files, 1);
    assert_int_equal(pg_store_delete(dir, &err), 0);
    assert_int_equal(pg_store_exists(dir, &err), 0);
    assert_int_equal(pg_store_delete(dir, &err), 0); /* absent is fine */
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), PG_ERR_IO);
    pg_tokenset_clear(&in);
    pg_tokenset_clear(&two);
    pg_tokenset_clear(&out);
    close(dir);
}

static void test_trust_checks(void **state)
{
    (void)state;
    struct pg_error err = {0};
    char path[128], target[128];
    /* A uid directory that is a symbolic link. */
    snprintf(path, sizeof(path), "%s/2000", top);
    snprintf(target, sizeof(target), "%s/elsewhere", top);
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(open_store(2000, true, &err), PG_ERR_PERM);
    /* A uid directory readable by others. */
    snprintf(path, sizeof(path), "%s/2001", top);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(open_store(2001, false, &err), PG_ERR_PERM);
    assert_non_null(strstr(err.msg, "unsafe mode 0755"));
    /* Directories and files of another owner than the helper account. */
    int own = open_store(2004, true, &err);
    assert_true(own >= 0);
    int other = -1;
    assert_int_equal(pg_store_open(top, 2004, false, geteuid() + 1, &other, &err), PG_ERR_PERM);
    assert_non_null(strstr(err.msg, "expected uid"));
    struct pg_tokenset s1 = sample("o"), o1 = {0};
    assert_int_equal(pg_store_write(own, &s1, &err), 0);
    assert_int_equal(pg_store_read(own, geteuid() + 1, &o1, &err), PG_ERR_PERM);
    pg_tokenset_clear(&s1);
    close(own);
    /* A missing directory without create. */
    assert_int_equal(open_store(2002, false, &err), PG_ERR_IO);

    /* The token file: a symbolic link, then readable by group. */
    int dir = open_store(2003, true, &err);
    assert_true(dir >= 0);
    assert_int_equal(symlinkat("/etc/passwd", dir, "tokens.json"), 0);
    struct pg_tokenset out = {0};
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), PG_ERR_PERM);
    assert_int_equal(unlinkat(dir, "tokens.json", 0), 0);
    struct pg_tokenset in = sample("x");
    assert_int_equal(pg_store_write(dir, &in, &err), 0);
    assert_int_equal(fchmodat(dir, "tokens.json", 0640, 0), 0);
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), PG_ERR_PERM);
    /* Corrupt content is reported, and left in place for the admin. */
    assert_int_equal(fchmodat(dir, "tokens.json", 0600, 0), 0);
    int fd = openat(dir, "tokens.json", O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "{\"id_token\":", 12), 12);
    close(fd);
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), PG_ERR_IO);
    assert_non_null(strstr(err.msg, "corrupt"));
    assert_int_equal(pg_store_exists(dir, &err), 1);
    pg_tokenset_clear(&in);
    close(dir);

    /* The state directory itself writable by group. */
    assert_int_equal(chmod(top, 0770), 0);
    assert_int_equal(open_store(1000, false, &err), PG_ERR_PERM);
    assert_int_equal(chmod(top, 0700), 0);
}

/* pg_store_load (the gate's read) against pg_store_open + pg_store_read:
 * the same code for every unsafe or broken layout, and the message naming
 * the same thing.  `want`: the expected code, `phrase`: in the message. */
static void expect_load(uid_t uid, uid_t owner, int want, const char *phrase)
{
    struct pg_error e1 = {0}, e2 = {0};
    struct pg_tokenset a = {0}, b = {0};
    int dir = -1;
    int r1 = pg_store_open(top, uid, false, owner, &dir, &e1);
    if (r1 == 0) {
        r1 = pg_store_read(dir, owner, &a, &e1);
        close(dir);
    }
    int r2 = pg_store_load(top, uid, owner, &b, &e2);
    if (r1 != want || r2 != want ||
        (phrase && (!strstr(e1.msg, phrase) || !strstr(e2.msg, phrase))))
        fail_msg("uid %u: open+read %d '%s', load %d '%s', wanted %d '%s'", (unsigned)uid, r1,
                 e1.msg, r2, e2.msg, want, phrase ? phrase : "");
    if (want == 0)
        assert_string_equal(a.id_token, b.id_token);
    pg_tokenset_clear(&a);
    pg_tokenset_clear(&b);
}

static void test_load_checks(void **state)
{
    (void)state;
    struct pg_error err = {0};
    char path[160], target[128];
    struct pg_tokenset in = sample("load");
    int dir = open_store(4000, true, &err);
    assert_true(dir >= 0);
    assert_int_equal(pg_store_write(dir, &in, &err), 0);
    expect_load(4000, geteuid(), 0, NULL);
    /* Another owner than the helper account: the directory is refused. */
    expect_load(4000, geteuid() + 1, PG_ERR_PERM, "expected uid");
    /* The set: a link, then readable by group, then corrupt. */
    assert_int_equal(renameat(dir, "tokens.json", dir, "saved"), 0);
    assert_int_equal(symlinkat("saved", dir, "tokens.json"), 0);
    expect_load(4000, geteuid(), PG_ERR_PERM, "symbolic link");
    assert_int_equal(unlinkat(dir, "tokens.json", 0), 0);
    assert_int_equal(renameat(dir, "saved", dir, "tokens.json"), 0);
    assert_int_equal(fchmodat(dir, "tokens.json", 0640, 0), 0);
    expect_load(4000, geteuid(), PG_ERR_PERM, "unsafe type, owner or mode");
    assert_int_equal(fchmodat(dir, "tokens.json", 0600, 0), 0);
    /* The account's directory: readable by group, a link to a good one, a
     * file, missing. */
    assert_int_equal(fchmod(dir, 0750), 0);
    expect_load(4000, geteuid(), PG_ERR_PERM, "unsafe mode 0750");
    assert_int_equal(fchmod(dir, 0700), 0);
    close(dir);
    snprintf(path, sizeof(path), "%s/4001", top);
    snprintf(target, sizeof(target), "%s/4000", top);
    assert_int_equal(symlink(target, path), 0);
    expect_load(4001, geteuid(), PG_ERR_PERM, "not a directory (or a symbolic link)");
    snprintf(path, sizeof(path), "%s/4002", top);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    expect_load(4002, geteuid(), PG_ERR_PERM, "not a directory (or a symbolic link)");
    expect_load(4003, geteuid(), PG_ERR_IO, "No such file or directory");
    /* state_dir writable by group. */
    assert_int_equal(chmod(top, 0770), 0);
    expect_load(4000, geteuid(), PG_ERR_PERM, "unsafe mode 0770");
    assert_int_equal(chmod(top, 0700), 0);
    expect_load(4000, geteuid(), 0, NULL);
    pg_tokenset_clear(&in);
}

static void test_full_disk_keeps_old_set(void **state)
{
    (void)state;
    struct pg_error err = {0};
    int dir = open_store(3000, true, &err);
    struct pg_tokenset old = sample("old"), big = sample("new"), out = {0};
    assert_int_equal(pg_store_write(dir, &old, &err), 0);
    free(big.id_token);
    big.id_token = malloc(20000);
    memset(big.id_token, 'A', 19999);
    big.id_token[19999] = '\0';
    /* A file-size limit makes write() fail as a full disk would. */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        struct pg_error e2 = {0};
        _exit(pg_store_write(dir, &big, &e2) == PG_ERR_IO && strstr(e2.msg, "cannot write") ? 0
                                                                                            : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(pg_store_read(dir, geteuid(), &out, &err), 0);
    assert_string_equal(out.id_token, "id.old"); /* nothing lost */
    DIR *d = fdopendir(dup(dir));
    struct dirent *e;
    while ((e = readdir(d)))
        assert_true(strncmp(e->d_name, ".tokens", 7) != 0); /* temp removed */
    closedir(d);
    pg_tokenset_clear(&old);
    pg_tokenset_clear(&big);
    pg_tokenset_clear(&out);
    close(dir);
}

static void test_kill_at_any_instant(void **state)
{
    (void)state;
    struct pg_error err = {0};
    int dir = open_store(4000, true, &err);
    struct pg_tokenset a = sample("a"), out = {0};
    assert_int_equal(pg_store_write(dir, &a, &err), 0);
    for (int round = 0; round < 40; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (unsigned i = 0;; i++) {
                char tag[32];
                snprintf(tag, sizeof(tag), "w%u", i);
                struct pg_tokenset t = sample(tag);
                struct pg_error e2 = {0};
                pg_store_write(dir, &t, &e2);
                pg_tokenset_clear(&t);
            }
        }
        struct timespec ts = {0, (long)(1 + round % 7) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* Whatever instant the writer died at, a whole set is stored. */
        if (pg_store_read(dir, geteuid(), &out, &err) != 0)
            fail_msg("round %d: %s", round, err.msg);
        assert_true(strncmp(out.id_token, "id.", 3) == 0);
        assert_true(strncmp(out.refresh_token, "refresh.", 8) == 0);
        assert_string_equal(out.id_token + 3, out.refresh_token + 8);
        pg_tokenset_clear(&out);
    }
    pg_tokenset_clear(&a);
    close(dir);
}

static void test_lock(void **state)
{
    (void)state;
    struct pg_error err = {0};
    int dir = open_store(5000, true, &err);
    int l1 = -1, l2 = -1;
    assert_int_equal(pg_store_lock(dir, 100, &l1, &err), 0);
    /* A second sign-in of the same user waits, then gives up. */
    assert_int_equal(pg_store_lock(dir, 100, &l2, &err), PG_ERR_IO);
    assert_non_null(strstr(err.msg, "locked"));
    pg_store_unlock(l1);
    assert_int_equal(pg_store_lock(dir, 100, &l2, &err), 0);
    pg_store_unlock(l2);
    pg_store_unlock(-1);
    close(dir);
}

/* A ticket matches only itself, whole, and counts only for
 * PG_TICKET_LIFETIME_S after its sign-in. */
static void test_ticket(void **state)
{
    (void)state;
    char ticket[] = "0123456789abcdef0123456789abcdef";
    struct pg_tokenset ts = {.enroll_ticket = ticket, .signed_in_at = 1000000};
    assert_true(pg_store_ticket_matches(&ts, "0123456789abcdef0123456789abcdef"));
    assert_false(pg_store_ticket_matches(&ts, "0123456789abcdef0123456789abcde"));
    assert_false(pg_store_ticket_matches(&ts, "0123456789abcdef0123456789abcdee"));
    assert_false(pg_store_ticket_matches(&ts, NULL));
    assert_true(pg_store_ticket_fresh(&ts, 1000000));
    assert_true(pg_store_ticket_fresh(&ts, 1000000 + PG_TICKET_LIFETIME_S));
    assert_false(pg_store_ticket_fresh(&ts, 1000000 + PG_TICKET_LIFETIME_S + 1));
    assert_true(pg_store_ticket_fresh(&ts, 1000000 - 60));
    assert_false(pg_store_ticket_fresh(&ts, 1000000 - 61)); /* the clock set far back */
    ts.signed_in_at = 0;                                    /* of unknown age */
    assert_false(pg_store_ticket_fresh(&ts, 1000000));
    ts.enroll_ticket = NULL;
    assert_false(pg_store_ticket_matches(&ts, "0123456789abcdef0123456789abcdef"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_trust_checks),
        cmocka_unit_test(test_load_checks),
        cmocka_unit_test(test_full_disk_keeps_old_set),
        cmocka_unit_test(test_kill_at_any_instant),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_ticket),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
