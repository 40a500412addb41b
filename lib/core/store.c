/*
 * The token store (see store.h for the layout).
 *
 * MUST:
 *   - Reach every file through openat() from a checked directory
 *     descriptor, with O_NOFOLLOW and O_CLOEXEC (pg_store_load: from
 *     state_dir's, through the uid directory checked by name inside it,
 *     whose entries only the helper account or root can replace); build
 *     paths from numeric uids only.
 *   - Trust a directory or file only when its owner is the process's euid
 *     (or root for state_dir itself) and no group or other bit allows
 *     writing (files: no group or other bit at all).
 *   - Replace the set only by write-temp, fsync, renameat, fsync-directory,
 *     so that a crash or a full disk never leaves a torn or empty set.
 *   - Clear every buffer that held a token.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "internal.h"
#include "json.h"
#include "store.h"

#define TOKENS "tokens.json"
#define LOCKFILE "lock"

void pg_tokenset_clear(struct pg_tokenset *ts)
{
    if (!ts)
        return;
    pg_free_secret(ts->id_token);
    pg_free_secret(ts->access_token);
    pg_free_secret(ts->refresh_token);
    pg_free_secret(ts->enroll_ticket);
    free(ts->scope);
    memset(ts, 0, sizeof(*ts));
}

bool pg_store_ticket_matches(const struct pg_tokenset *ts, const char *ticket)
{
    if (!ts->enroll_ticket || !ticket || strlen(ticket) != PG_TICKET_HEX ||
        strlen(ts->enroll_ticket) != PG_TICKET_HEX)
        return false;
    /* Every byte is looked at: the time says nothing about where they differ. */
    unsigned char diff = 0;
    for (size_t i = 0; i < PG_TICKET_HEX; i++)
        diff |= (unsigned char)(ts->enroll_ticket[i] ^ ticket[i]);
    return diff == 0;
}

bool pg_store_ticket_fresh(const struct pg_tokenset *ts, int64_t now)
{
    int64_t age = now - ts->signed_in_at;
    return ts->signed_in_at > 0 && age >= -60 && age <= PG_TICKET_LIFETIME_S;
}

/* The owner and mode rule of the store's directories, on one's stat. */
static int check_stat(const struct stat *st, const char *what, uid_t owner, bool root_ok,
                      bool exact_0700, struct pg_error *err)
{
    if (st->st_uid != owner && !(root_ok && st->st_uid == 0))
        return pg_fail(err, PG_ERR_PERM, "%s: owned by uid %u, expected uid %u", what,
                       (unsigned)st->st_uid, (unsigned)owner);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) || (exact_0700 && (st->st_mode & 077)))
        return pg_fail(err, PG_ERR_PERM, "%s: unsafe mode %04o", what,
                       (unsigned)(st->st_mode & 07777));
    return 0;
}

static int check_dir(int fd, const char *what, uid_t owner, bool root_ok, bool exact_0700,
                     struct pg_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno));
    return check_stat(&st, what, owner, root_ok, exact_0700, err);
}

/* openat a directory without following links; ELOOP/ENOTDIR become PG_ERR_PERM. */
static int open_dir(int at, const char *name, const char *what, struct pg_error *err)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    if (errno == ELOOP || errno == ENOTDIR)
        return pg_fail(err, PG_ERR_PERM, "%s: not a directory (or a symbolic link)", what);
    return pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno));
}

int pg_store_open(const char *state_dir, uid_t uid, bool create, uid_t owner, int *dirfd,
                  struct pg_error *err)
{
    char name[24], what[PG_ERROR_MAX / 2];
    snprintf(name, sizeof(name), "%u", (unsigned)uid);
    int top = open_dir(AT_FDCWD, state_dir, state_dir, err);
    if (top < 0)
        return top;
    int r = check_dir(top, state_dir, owner, true, false, err);
    snprintf(what, sizeof(what), "%s/%s", state_dir, name);
    if (r == 0 && create && mkdirat(top, name, 0700) < 0 && errno != EEXIST)
        r = pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno));
    int fd = r == 0 ? open_dir(top, name, what, err) : -1;
    if (r == 0 && fd < 0)
        r = fd;
    if (r == 0 && (r = check_dir(fd, what, owner, false, true, err)) < 0)
        close(fd);
    close(top);
    if (r == 0)
        *dirfd = fd;
    return r;
}

static int take_string(const struct pg_json *doc, const char *name, char **out,
                       struct pg_error *err)
{
    const struct pg_json *v = pg_json_get(doc, name);
    if (!v)
        return 0;
    if (v->type != PG_JSON_STRING)
        return pg_fail(err, PG_ERR_IO, "stored token set: '%s' is not a string", name);
    *out = strdup(v->u.s);
    return *out ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
}

/* The strict parser of the tokens, not jansson: this runs on every login
 * (json.h).  Its tree holds the tokens too and is cleared with them. */
static int parse_set(const char *text, size_t len, struct pg_tokenset *ts, struct pg_error *err)
{
    struct pg_json_doc *doc = NULL;
    int r = pg_json_parse(text, len, &doc);
    const struct pg_json *root = pg_json_root(doc);
    if (r == PG_ERR_NOMEM)
        r = pg_fail(err, r, "out of memory");
    else if (r < 0 || root->type != PG_JSON_OBJECT)
        r = pg_fail(err, PG_ERR_IO, "stored token set is corrupt");
    if (r == 0)
        r = take_string(root, "id_token", &ts->id_token, err);
    if (r == 0)
        r = take_string(root, "access_token", &ts->access_token, err);
    if (r == 0)
        r = take_string(root, "refresh_token", &ts->refresh_token, err);
    if (r == 0)
        r = take_string(root, "scope", &ts->scope, err);
    /* Absent in sets stored before tickets existed: such a set has none. */
    if (r == 0)
        r = take_string(root, "enroll_ticket", &ts->enroll_ticket, err);
    if (r == 0) {
        ts->expires_at = pg_json_int(root, "expires_at");
        ts->stored_at = pg_json_int(root, "stored_at");
        ts->signed_in_at = pg_json_int(root, "signed_in_at");
    }
    pg_json_free_secret(doc);
    return r;
}

/* Read and parse the set in `name` below dirfd. */
static int read_set(int dirfd, const char *name, uid_t owner, struct pg_tokenset *out,
                    struct pg_error *err)
{
    char *buf = NULL;
    size_t size = 0;
    int r =
        pg_file_read(dirfd, name, PG_STORE_MAX_BYTES, owner, "stored token set", &buf, &size, err);
    if (r < 0)
        return r;
    struct pg_tokenset ts = {0};
    if ((r = parse_set(buf, size, &ts, err)) == 0)
        *out = ts;
    else
        pg_tokenset_clear(&ts);
    pg_memzero(buf, size);
    free(buf);
    return r;
}

int pg_store_read(int dirfd, uid_t owner, struct pg_tokenset *out, struct pg_error *err)
{
    return read_set(dirfd, TOKENS, owner, out, err);
}

/*
 * The reader's way in (the gate, on every login): state_dir is opened and
 * checked on its descriptor as pg_store_open() does, the account's directory
 * is checked by name below it (fstatat without following a link), and the
 * set is opened through it with O_NOFOLLOW.  Only the helper account or
 * root may replace an entry of a checked state_dir, so the directory looked
 * up for the open is the one checked: the same result as opening it, with
 * two system calls fewer.
 */
int pg_store_load(const char *state_dir, uid_t uid, uid_t owner, struct pg_tokenset *out,
                  struct pg_error *err)
{
    char name[48], what[PG_ERROR_MAX / 2];
    struct stat st;
    int top = open_dir(AT_FDCWD, state_dir, state_dir, err);
    if (top < 0)
        return top;
    snprintf(name, sizeof(name), "%u", (unsigned)uid);
    snprintf(what, sizeof(what), "%s/%s", state_dir, name);
    int r = check_dir(top, state_dir, owner, true, false, err);
    if (r == 0 && fstatat(top, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        r = pg_fail(err, PG_ERR_IO, "%s: %s", what, strerror(errno));
    else if (r == 0 && !S_ISDIR(st.st_mode))
        r = pg_fail(err, PG_ERR_PERM, "%s: not a directory (or a symbolic link)", what);
    else if (r == 0)
        r = check_stat(&st, what, owner, false, true, err);
    snprintf(name + strlen(name), sizeof(name) - strlen(name), "/%s", TOKENS);
    if (r == 0)
        r = read_set(top, name, owner, out, err);
    close(top);
    return r;
}

int pg_store_exists(int dirfd, struct pg_error *err)
{
    struct stat st;
    if (fstatat(dirfd, TOKENS, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return 1;
    return errno == ENOENT ? 0 : pg_fail(err, PG_ERR_IO, "stored token set: %s", strerror(errno));
}

static char *serialize(const struct pg_tokenset *ts)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (ts->id_token)
        json_object_set_new(o, "id_token", json_string(ts->id_token));
    if (ts->access_token)
        json_object_set_new(o, "access_token", json_string(ts->access_token));
    if (ts->refresh_token)
        json_object_set_new(o, "refresh_token", json_string(ts->refresh_token));
    if (ts->scope)
        json_object_set_new(o, "scope", json_string(ts->scope));
    if (ts->enroll_ticket)
        json_object_set_new(o, "enroll_ticket", json_string(ts->enroll_ticket));
    json_object_set_new(o, "expires_at", json_integer(ts->expires_at));
    json_object_set_new(o, "stored_at",
                        json_integer(ts->stored_at ? ts->stored_at : (int64_t)time(NULL)));
    if (ts->signed_in_at)
        json_object_set_new(o, "signed_in_at", json_integer(ts->signed_in_at));
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    /* jansson's copies of the strings are freed without clearing; keep the
     * window short and never let them reach a log. */
    json_decref(o);
    return text;
}

int pg_store_write(int dirfd, const struct pg_tokenset *ts, struct pg_error *err)
{
    char *text = serialize(ts);
    if (!text)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    size_t len = strlen(text);
    int r = pg_file_replace(dirfd, TOKENS, text, len, "token set", err);
    pg_memzero(text, len);
    free(text);
    return r;
}

int pg_store_delete(int dirfd, struct pg_error *err)
{
    if (unlinkat(dirfd, TOKENS, 0) < 0 && errno != ENOENT)
        return pg_fail(err, PG_ERR_IO, "cannot delete the token set: %s", strerror(errno));
    if (fsync(dirfd) < 0)
        return pg_fail(err, PG_ERR_IO, "cannot sync the token store: %s", strerror(errno));
    return 0;
}

int pg_store_lock(int dirfd, int timeout_ms, int *lockfd, struct pg_error *err)
{
    int fd = openat(dirfd, LOCKFILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pg_fail(err, PG_ERR_IO, "cannot open the token store lock: %s", strerror(errno));
    struct timespec step = {0, 20 * 1000000L};
    for (int waited = 0;; waited += 20) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *lockfd = fd;
            return 0;
        }
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= timeout_ms)
            break;
        nanosleep(&step, NULL);
    }
    int e = errno;
    close(fd);
    return pg_fail(err, PG_ERR_IO, "token store is locked by another sign-in%s",
                   e == EWOULDBLOCK ? " (timed out)" : "");
}

void pg_store_unlock(int lockfd)
{
    if (lockfd >= 0)
        close(lockfd); /* closing the descriptor releases the flock */
}
