/*
 * Reading and replacing the files poolgate keeps (token sets, cached keys).
 *
 * MUST: reach files only by openat() with O_NOFOLLOW from a descriptor the
 * caller has checked (or, for the few paths the configuration names, by
 * pg_open_trusted(): O_NOFOLLOW, then type, owner and mode checked on the
 * descriptor, and for the configuration and ca_file pg_open_trusted_path():
 * every directory above checked first, from "/" down); refuse anything but
 * a private regular file of its expected owner (the helper account); never
 * leave a torn file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "internal.h"

/* The type, owner and mode rule of pg_open_trusted(), on a descriptor's stat. */
static int check_trusted(const struct stat *st, bool dir, uid_t owner, const char *what,
                         struct pg_error *err)
{
    if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))
        return pg_fail(err, PG_ERR_PERM, "%s: not a %s", what, dir ? "directory" : "regular file");
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return pg_fail(err, PG_ERR_PERM, "%s: must not be writable by group or others (mode %04o)",
                       what, (unsigned)(st->st_mode & 07777));
    if (st->st_uid == 0 || st->st_uid == owner)
        return 0;
    if (owner == 0)
        return pg_fail(err, PG_ERR_PERM, "%s: must be owned by root (owner uid %u)", what,
                       (unsigned)st->st_uid);
    return pg_fail(err, PG_ERR_PERM, "%s: must be owned by root or uid %u (owner uid %u)", what,
                   (unsigned)owner, (unsigned)st->st_uid);
}

/* Open `name` in `dirfd` (AT_FDCWD: `path` itself) under the rule of
 * pg_open_trusted(). */
static int open_trusted_at(int dirfd, const char *name, bool dir, uid_t owner, const char *what,
                           int *fd, size_t *size, struct pg_error *err)
{
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (dir ? O_DIRECTORY : 0);
    int f = openat(dirfd, name, flags), e = errno;
    struct stat st;
    /* (With O_DIRECTORY, a link in the last component is ENOTDIR, not ELOOP.) */
    if (f < 0 && e == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        e = ELOOP;
    if (f < 0 && e == ELOOP)
        return pg_fail(err, PG_ERR_PERM, "%s: is a symbolic link", what);
    if (f < 0 && e == ENOTDIR && dir)
        return pg_fail(err, PG_ERR_PERM, "%s: not a directory", what);
    if (f < 0)
        return pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(e));
    int r = fstat(f, &st) < 0 ? pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno))
                              : check_trusted(&st, dir, owner, what, err);
    if (r < 0) {
        close(f);
        return r;
    }
    *fd = f;
    if (size)
        *size = (size_t)st.st_size;
    return 0;
}

int pg_open_trusted(const char *path, bool dir, uid_t owner, const char *what, int *fd,
                    struct pg_error *err)
{
    return open_trusted_at(AT_FDCWD, path, dir, owner, what, fd, NULL, err);
}

/*
 * The directory rule of pg_open_trusted_path(), on one directory's stat:
 * root's or `owner`'s, and not writable by group or others unless it is
 * root's and sticky (others may add entries there, but not rename or
 * remove ones they do not own).
 */
static int check_parent(const struct stat *st, uid_t owner, const char *dir, const char *what,
                        struct pg_error *err)
{
    char name[PG_ERROR_MAX];
    /* The directory alone when `what` is the path itself, else "what: dir". */
    snprintf(name, sizeof(name), "%s%s%s", what ? what : "", what ? ": " : "", dir);
    if (!S_ISDIR(st->st_mode))
        return pg_fail(err, PG_ERR_PERM, "%s: not a directory", name);
    if (st->st_uid != 0 && st->st_uid != owner && owner == 0)
        return pg_fail(err, PG_ERR_PERM, "%s: must be owned by root (owner uid %u)", name,
                       (unsigned)st->st_uid);
    if (st->st_uid != 0 && st->st_uid != owner)
        return pg_fail(err, PG_ERR_PERM, "%s: must be owned by root or uid %u (owner uid %u)", name,
                       (unsigned)owner, (unsigned)st->st_uid);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_uid == 0 && (st->st_mode & S_ISVTX)))
        return pg_fail(err, PG_ERR_PERM, "%s: must not be writable by group or others (mode %04o)",
                       name, (unsigned)(st->st_mode & 07777));
    return 0;
}

/* One step of the walk: check the directory `dir` names (the path cut after
 * the component) without following a link in that component: by name, or,
 * when `fd` is given (the last directory, where the file is opened), on a
 * descriptor opened with O_PATH, which *fd then holds.  *missed: it is not
 * a directory reached without a link (a link, or missing), rather than one
 * that failed its check. */
static int walk_step(const char *dir, uid_t owner, const char *prefix, bool *missed, int *fd,
                     struct pg_error *err)
{
    struct stat st = {0}; /* (set by the call that succeeded; zero otherwise) */
    int d = fd ? open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    int e = 0;
    if (fd ? d < 0 || fstat(d, &st) < 0 : fstatat(AT_FDCWD, dir, &st, AT_SYMLINK_NOFOLLOW) < 0)
        e = errno ? errno : EIO; /* never 0: st is unset */
    else if (S_ISLNK(st.st_mode))
        e = ELOOP;
    *missed = e != 0;
    /* (A component that became a link or a file since realpath: PERM.) */
    int r = e == 0
                ? check_parent(&st, owner, dir, prefix, err)
                : pg_fail(err, e == ELOOP || e == ENOTDIR ? PG_ERR_PERM : PG_ERR_IO, "%s%s%s: %s",
                          prefix ? prefix : "", prefix ? ": " : "", dir, strerror(e));
    if (r == 0 && fd)
        *fd = d;
    else if (d >= 0)
        close(d);
    return r;
}

/* Walk `dir` (absolute, without an empty, "." or ".." component) down from
 * "/", checking each directory before the next is looked up through it;
 * *fd ends on the last one.  While a component is checked, dir is cut after
 * it, to name it. */
static int walk(char *dir, uid_t owner, const char *prefix, bool *missed, int *fd,
                struct pg_error *err)
{
    int r = walk_step("/", owner, prefix, missed, dir[1] ? NULL : fd, err);
    for (char *p = dir + 1; r == 0 && *p;) {
        char *end = strchrnul(p, '/'), save = *end;
        *end = '\0';
        r = walk_step(dir, owner, prefix, missed, save ? NULL : fd, err);
        *end = save;
        p = save ? end + 1 : end;
    }
    return r;
}

/* Whether `dir` is spelled as realpath() spells a directory: absolute,
 * without an empty, "." or ".." component.  (Links do not show in the
 * spelling: the walk meets them.) */
static bool plain_absolute(const char *dir)
{
    if (dir[0] != '/')
        return false;
    for (const char *p = dir + 1; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n + (p[n] == '/');
        if (p[-1] == '/' && !*p)
            return false; /* a trailing slash */
    }
    return true;
}

/*
 * OpenSSH's safe_path(), the last directory on a descriptor.  The parent is
 * resolved with realpath() (links in the directories are allowed; what
 * counts is where they lead), then walked down from "/": each directory
 * above the last is checked with fstatat(AT_SYMLINK_NOFOLLOW) on its path,
 * and only then is the next one looked up through it; the last is opened
 * with O_PATH|O_NOFOLLOW and checked on that descriptor, and the file is
 * opened relative to it, with O_NOFOLLOW, and checked on its own.
 *
 * Why this is race-free: a checked directory can be changed only by root
 * or `owner` (or, sticky, its entries only by their owners), so once "/" and
 * then each directory below it has passed, nobody else can rename, replace
 * or turn into a link any component of the path; a swap before a check
 * makes that check fail (a link, a stranger's directory), never pass.  What
 * names alone cannot keep: the directory the file is in, removed by its
 * owner after its check, and its name, free again in a sticky parent,
 * taken by someone else before the open.  Its descriptor keeps it: the file
 * is looked up in the directory that was checked.  (Above it, such a
 * replacement is itself looked up and checked by the next step.)
 *
 * A parent already spelled as realpath() would spell it is walked as it is
 * first (the common case: a readlink per component saved on every login);
 * only when a component is a link or missing is the walk made again on
 * realpath()'s answer.  Both walks check the same directories when the
 * first one reaches its end: every component it met was a directory, not a
 * link.
 */
int pg_open_trusted_path(const char *path, uid_t owner, const char *what, int *fd, size_t *size,
                         struct pg_error *err)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *parent = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    const char *prefix = strcmp(what, path) == 0 ? NULL : what;
    int r = 0, dirfd = -1;
    bool missed = true;
    if (!parent)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (*base && plain_absolute(parent))
        r = walk(parent, owner, prefix, &missed, &dirfd, err);
    if (missed) {
        char *real = realpath(parent, NULL);
        int e = errno;
        if (!real)
            r = pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(e));
        else if (!*base)
            r = pg_fail(err, PG_ERR_PERM, "%s: not a regular file", what);
        else
            r = walk(real, owner, prefix, &missed, &dirfd, err);
        free(real);
    }
    free(parent);
    if (r == 0)
        r = open_trusted_at(dirfd, base, false, owner, what, fd, size, err);
    if (dirfd >= 0)
        close(dirfd);
    return r;
}

static int open_private(int dirfd, const char *name, const char *what, size_t max, uid_t owner,
                        int *out, size_t *size, struct pg_error *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ELOOP)
        return pg_fail(err, PG_ERR_PERM, "%s is a symbolic link", what);
    if (fd < 0)
        return pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno));
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0)
        r = pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno));
    else if (!S_ISREG(st.st_mode) || st.st_uid != owner || (st.st_mode & 077))
        r = pg_fail(err, PG_ERR_PERM, "%s has an unsafe type, owner or mode", what);
    else if ((size_t)st.st_size > max)
        r = pg_fail(err, PG_ERR_IO, "%s is larger than %zu bytes", what, max);
    if (r < 0) {
        close(fd);
        return r;
    }
    *out = fd;
    *size = (size_t)st.st_size;
    return 0;
}

int pg_file_read(int dirfd, const char *name, size_t max, uid_t owner, const char *what, char **out,
                 size_t *len, struct pg_error *err)
{
    int fd = -1;
    size_t size = 0;
    int r = open_private(dirfd, name, what, max, owner, &fd, &size, err);
    if (r < 0)
        return r;
    char *buf = malloc(size + 1);
    r = buf ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (r == 0 && pg_read_all(fd, buf, size) < 0)
        r = pg_fail(err, PG_ERR_IO, "%s: short read", what);
    close(fd);
    if (r < 0) {
        if (buf)
            pg_memzero(buf, size);
        free(buf);
        return r;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return 0;
}

int pg_file_replace(int dirfd, const char *name, const void *data, size_t len, const char *what,
                    struct pg_error *err)
{
    return pg_file_replace_as(dirfd, name, data, len, 0600, (uid_t)-1, (gid_t)-1, what, err);
}

/* The new file's mode and owner, set on the descriptor before it is renamed
 * into place, so the name never shows a file with the wrong ones. */
static int set_mode(int fd, mode_t mode, uid_t uid, gid_t gid)
{
    if (uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
        return -1;
    return fchmod(fd, mode);
}

int pg_file_replace_as(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                       uid_t uid, gid_t gid, const char *what, struct pg_error *err)
{
    char tmp[96];
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (unsigned)time(NULL);
    snprintf(tmp, sizeof(tmp), ".%.60s.%d.%08x", name, (int)getpid(), rnd);

    int r = 0, fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        r = pg_fail(err, PG_ERR_IO, "cannot create a new %s: %s", what, strerror(errno));
    if (r == 0 && (r = pg_write_all(fd, data, len)) < 0)
        r = pg_fail(err, PG_ERR_IO, "cannot write the %s: %s", what, strerror(errno));
    if (r == 0 && set_mode(fd, mode, uid, gid) < 0)
        r = pg_fail(err, PG_ERR_IO, "cannot set the owner or mode of the %s: %s", what,
                    strerror(errno));
    if (r == 0 && fsync(fd) < 0)
        r = pg_fail(err, PG_ERR_IO, "cannot write the %s: %s", what, strerror(errno));
    if (fd >= 0 && close(fd) < 0 && r == 0)
        r = pg_fail(err, PG_ERR_IO, "cannot write the %s: %s", what, strerror(errno));
    if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
        r = pg_fail(err, PG_ERR_IO, "cannot replace the %s: %s", what, strerror(errno));
    if (r == 0 && fsync(dirfd) < 0)
        r = pg_fail(err, PG_ERR_IO, "cannot sync the directory of the %s: %s", what,
                    strerror(errno));
    if (r < 0 && fd >= 0)
        unlinkat(dirfd, tmp, 0); /* the old file stays as it was */
    return r;
}

/* ---- directories reached without any link ---------------------------------- */

/* Whether `name` in `dirfd` is a symbolic link (after an open refused it). */
static bool is_link_at(int dirfd, const char *name)
{
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

int pg_dir_walk_nofollow(const char *path, int *fd, size_t *link_len)
{
    char name[NAME_MAX + 1];
    const char *p = path;
    int dir, e = 0;
    if (link_len)
        *link_len = 0;
    if (path[0] != '/')
        return -EINVAL;
    if ((dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -errno;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, "/");
        if (len > NAME_MAX) {
            e = ENAMETOOLONG;
            break;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        p += len;
        /* Only the search right is needed on the way; the last is read. */
        bool last = p[strspn(p, "/")] == '\0';
        int next =
            openat(dir, name,
                   (last ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        /* (With O_DIRECTORY a link is ENOTDIR, with O_PATH it may open.) */
        if (next < 0 && (errno == ELOOP || errno == ENOTDIR) && is_link_at(dir, name)) {
            e = ELOOP;
            if (link_len)
                *link_len = (size_t)(p - path);
        } else if (next < 0)
            e = errno;
        close(dir);
        dir = next;
        if (e)
            return -e;
    }
    if (e) {
        close(dir);
        return -e;
    }
    *fd = dir;
    return 0;
}

int pg_dir_open_nofollow(const char *path, int *fd, size_t *link_len)
{
    if (link_len)
        *link_len = 0;
    if (path[0] != '/')
        return -EINVAL;
#ifdef SYS_openat2
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY,
                           .resolve = RESOLVE_NO_SYMLINKS};
    long d = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
    if (d >= 0) {
        *fd = (int)d;
        return 0;
    }
    /* A link somewhere: the walk names it (and if it has gone since, the
     * walk opens the directory as safely). */
    if (errno != ENOSYS && errno != ELOOP)
        return -errno;
#endif
    return pg_dir_walk_nofollow(path, fd, link_len);
}

int pg_dir_error(const char *path, const char *what, int e, size_t link_len, struct pg_error *err)
{
    if (e == -ELOOP && link_len)
        return pg_fail(err, PG_ERR_PERM,
                       "%s %s: %.*s is a symbolic link; poolgate does not follow links in %s", what,
                       path, (int)link_len, path, what);
    if (e == -ELOOP)
        return pg_fail(err, PG_ERR_PERM,
                       "%s %s: a symbolic link in it; poolgate does not follow links in %s", what,
                       path, what);
    return pg_fail(err, e == -ENOTDIR ? PG_ERR_PERM : PG_ERR_IO, "%s %s: %s", what, path,
                   e == -EINVAL ? "not an absolute path" : strerror(-e));
}

int pg_open_dir_nolinks(const char *path, const char *what, int *fd, struct pg_error *err)
{
    size_t link_len = 0;
    int e = pg_dir_open_nofollow(path, fd, &link_len);
    return e < 0 ? pg_dir_error(path, what, e, link_len, err) : 0;
}
