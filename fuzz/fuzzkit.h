/*
 * Shared by the fuzz targets.  For answers from Azure services (IMDS, Key
 * Vault): an HTTP status drawn from the input's first two bytes.  For every
 * target: the check that a message is one printable line (or printable
 * lines).  For the targets that need files (the token store, the PAM
 * module): a private directory made once and removed at exit, and files
 * written into it with a given mode.
 */
#ifndef PG_FUZZKIT_H
#define PG_FUZZKIT_H

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const long fuzz_codes[] = {200, 400, 401, 403, 404, 410, 429, 500, 503};
#define FUZZ_NCODES (sizeof(fuzz_codes) / sizeof(fuzz_codes[0]))

/* A first byte below FUZZ_NCODES picks a usual status; others any number. */
static inline long fuzz_status(unsigned char a, unsigned char b)
{
    return a < FUZZ_NCODES ? fuzz_codes[a] : (long)(a - FUZZ_NCODES) * 256 + b;
}

/* Text a terminal and a log can show: not empty, shorter than max, no C0
 * or C1 control and no DEL; with `lines`, newlines are allowed. */
static inline void fuzz_check_text(const char *s, size_t max, bool lines)
{
    size_t n = strnlen(s, max);
    if (n == 0 || n == max)
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && !(lines && *p == '\n')) || *p == 0x7f ||
            (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            abort();
}

/* One line a terminal and a log can show. */
static inline void fuzz_check_line(const char *s, size_t max)
{
    fuzz_check_text(s, max, false);
}

/* ---- private files ------------------------------------------------------ */

static inline char *fuzz_dir_name(void)
{
    static char dir[64];
    return dir;
}

static inline int fuzz_remove(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(path);
}

static inline void fuzz_cleanup(void)
{
    nftw(fuzz_dir_name(), fuzz_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* A private directory, /tmp/NAME-XXXXXX (mode 0700, owned by the fuzzer's
 * uid): made on the first call, removed with its contents at exit. */
static inline const char *fuzz_tmpdir(const char *name)
{
    char *dir = fuzz_dir_name();
    if (!dir[0]) {
        snprintf(dir, 64, "/tmp/%s-XXXXXX", name);
        if (!mkdtemp(dir))
            abort();
        atexit(fuzz_cleanup);
    }
    return dir;
}

/* dir/name into out (PATH_MAX bytes). */
static inline char *fuzz_path(char *out, const char *dir, const char *name)
{
    if (snprintf(out, 4096, "%s/%s", dir, name) >= 4096)
        abort();
    return out;
}

/* Replace dir/name with `len` bytes of data and exactly `mode`; a failure
 * is the harness's, not the code's under test: abort with a message.  A
 * new file each time: ext4 flushes a file truncated and written again to
 * disk at close, which would cost each input milliseconds. */
static inline void fuzz_write(const char *dir, const char *name, const void *data, size_t len,
                              mode_t mode)
{
    char path[4096];
    fuzz_path(path, dir, name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    bool ok = fd >= 0 && fchmod(fd, mode) == 0;
    for (size_t done = 0; ok && done < len;) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        ok = n > 0;
        done += ok ? (size_t)n : 0;
    }
    if (fd < 0 || close(fd) != 0 || !ok) {
        perror(path);
        abort();
    }
}

/* A directory dir/name, mode 0700. */
static inline char *fuzz_mkdir(char *out, const char *dir, const char *name)
{
    fuzz_path(out, dir, name);
    if (mkdir(out, 0700) != 0) {
        perror(out);
        abort();
    }
    return out;
}

#endif
