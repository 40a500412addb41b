/* Files that poolgate trusts: read with owner and mode checked, replaced atomically. */
#ifndef PG_FILEIO_H
#define PG_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "poolgate/poolgate.h"

/*
 * Open `path` for reading without following a symbolic link in its last
 * component (and without blocking on a FIFO), and keep the descriptor only
 * when it shows a regular file (with `dir`: a directory) owned by root or
 * by `owner`, that neither group nor others may write.  Messages start
 * with `what`.  PG_ERR_PERM when it is not to be trusted, PG_ERR_IO when
 * it cannot be opened.  The rule of the configuration file (pass geteuid():
 * root's, or the caller's own when the caller is not root), of ca_file,
 * and of cache_dir as the module reads it (pass the helper account).
 */
int pg_open_trusted(const char *path, bool dir, uid_t owner, const char *what, int *fd,
                    struct pg_error *err);

/*
 * pg_open_trusted() for a regular file whose every directory, from its
 * parent up to "/" (links in them resolved), is checked too, as OpenSSH
 * checks its files: owned by root or by `owner`, and not writable by group
 * or others unless root's and sticky (/tmp), each before the next is looked
 * up through it, the last on a descriptor.  The file is then opened
 * relative to that descriptor (O_NOFOLLOW) and checked on its own; *size
 * (unless NULL): its size then.  Messages name the directory (after `what`
 * and ": " when `what` is not `path` itself).  The rule of the configuration
 * file and of ca_file.
 */
int pg_open_trusted_path(const char *path, uid_t owner, const char *what, int *fd, size_t *size,
                         struct pg_error *err);

/*
 * Read `name` in `dirfd` (no symbolic links): it must be a regular file
 * owned by `owner` with no group or other permission bits, and
 * at most `max` bytes.  The buffer is NUL-terminated; clear it with
 * pg_memzero before freeing when it may hold a secret.  `what` names the
 * file in messages.
 */
int pg_file_read(int dirfd, const char *name, size_t max, uid_t owner, const char *what, char **out,
                 size_t *len, struct pg_error *err);

/*
 * Replace `name` in `dirfd` atomically with `len` bytes of `data`, mode
 * 0600: an O_EXCL temporary file, fsync, renameat, fsync of the directory.
 * On failure the temporary file is removed and the old file is untouched.
 */
int pg_file_replace(int dirfd, const char *name, const void *data, size_t len, const char *what,
                    struct pg_error *err);

/* The same with the new file's mode and owner (uid -1: the writer's). */
int pg_file_replace_as(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                       uid_t uid, gid_t gid, const char *what, struct pg_error *err);

/*
 * Open the directory `path` (absolute) for reading without following a
 * symbolic link anywhere in it, not only in its last component:
 * openat2(2) with RESOLVE_NO_SYMLINKS, or where the kernel lacks it
 * (ENOSYS) pg_dir_walk_nofollow().  Returns 0, or a negative errno value;
 * -ELOOP means a component is a link, and then *link_len (when not NULL)
 * is the length of the leading part of `path` that names it (0 when it
 * could not be told).  System calls only, no allocation: safe in a child
 * forked from a threaded process.  The rule for agent_dir, whose parents
 * the agent account may own.
 */
int pg_dir_open_nofollow(const char *path, int *fd, size_t *link_len);

/* The fallback: from "/" down, one component at a time, each opened
 * relative to the one above with O_NOFOLLOW|O_DIRECTORY (O_PATH but for
 * the last), so no name is resolved twice.  Callable directly for tests. */
int pg_dir_walk_nofollow(const char *path, int *fd, size_t *link_len);

/*
 * pg_dir_open_nofollow() with the message: "<what> <path>: <link> is a
 * symbolic link; poolgate does not follow links in <what>" (PG_ERR_PERM),
 * or "<what> <path>: <reason>" (PG_ERR_PERM for a component that is not a
 * directory, else PG_ERR_IO).
 */
int pg_open_dir_nolinks(const char *path, const char *what, int *fd, struct pg_error *err);

/* The message of a -ELOOP (or other negative errno) from pg_dir_open_nofollow(). */
int pg_dir_error(const char *path, const char *what, int e, size_t link_len, struct pg_error *err);

#endif
