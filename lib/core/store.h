/*
 * The token store: one directory per numeric uid under state_dir, holding
 * that user's token set.  Used by the helper (which owns state_dir) and by
 * the PAM module's fast path (root, read only).
 *
 *   state_dir/            owner: helper_user or root; not group/other writable
 *   state_dir/<uid>/      owner: the process's euid; mode 0700
 *   state_dir/<uid>/tokens.json   mode 0600; replaced atomically
 *   state_dir/<uid>/lock          advisory lock around read-refresh-write
 */
#ifndef PG_STORE_H
#define PG_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "poolgate/poolgate.h"

#define PG_STORE_MAX_BYTES (64 * 1024)

struct pg_tokenset {
    char *id_token;
    char *access_token;
    char *refresh_token;
    char *scope;
    int64_t expires_at; /* access token expiry, epoch seconds; 0 unknown */
    int64_t stored_at;  /* when the set was written, epoch seconds */
    /* When the person behind it signed in (the device-code sign-in that
     * began this chain of refreshes), epoch seconds; 0 unknown. */
    int64_t signed_in_at;
    /* The single-use enrollment ticket of that sign-in (hex), or NULL: made
     * by the helper at each device-code sign-in, handed to the person's
     * caller only, kept by refreshes, removed by the registration that
     * uses it.  A secret, like the tokens. */
    char *enroll_ticket;
};

/* Hex digits of an enrollment ticket (128 random bits). */
#define PG_TICKET_HEX 32

/* Whether `ticket` is the set's enrollment ticket; compared in constant
 * time.  A set without one matches nothing. */
bool pg_store_ticket_matches(const struct pg_tokenset *ts, const char *ticket);

/* How long after its sign-in a ticket counts: the change it was made for
 * follows within seconds (sudo's command, the same login's session). */
#define PG_TICKET_LIFETIME_S 900

/* Whether the set's ticket is still within PG_TICKET_LIFETIME_S of its
 * sign-in at `now` (a clock set back by more than a minute ends it too):
 * one nobody used, because the agent was registered already or the
 * command never ran, does not stay good for a later change. */
bool pg_store_ticket_fresh(const struct pg_tokenset *ts, int64_t now);

/* Clear every secret and free; leaves an empty set. */
void pg_tokenset_clear(struct pg_tokenset *ts);

/*
 * Open (and with `create`, make) the directory of `uid` under state_dir.
 * Both levels are opened with O_NOFOLLOW|O_DIRECTORY and their owner and
 * mode checked: `owner` is the helper account's uid (the process's own euid
 * in the helper; root reading the store passes the helper account's).  Returns the directory
 * descriptor in *dirfd.
 */
int pg_store_open(const char *state_dir, uid_t uid, bool create, uid_t owner, int *dirfd,
                  struct pg_error *err);

/* Read the token set.  PG_ERR_IO with errno-style text when there is none. */
int pg_store_read(int dirfd, uid_t owner, struct pg_tokenset *out, struct pg_error *err);

/* pg_store_open() without `create`, then pg_store_read(), in fewer system
 * calls and with the same checks and errors: what the gate reads on every
 * login. */
int pg_store_load(const char *state_dir, uid_t uid, uid_t owner, struct pg_tokenset *out,
                  struct pg_error *err);

/* Whether a token set is stored (0 no, 1 yes) or a negative error. */
int pg_store_exists(int dirfd, struct pg_error *err);

/*
 * Replace the token set atomically: a new file (O_EXCL, 0600) is written
 * and fsync'd, renamed over the old one, and the directory fsync'd.  A
 * crash at any instant leaves the old or the new set, never a torn one.
 */
int pg_store_write(int dirfd, const struct pg_tokenset *ts, struct pg_error *err);

/* Remove the token set (logout).  Absent is not an error. */
int pg_store_delete(int dirfd, struct pg_error *err);

/* Take the exclusive advisory lock, waiting at most timeout_ms. */
int pg_store_lock(int dirfd, int timeout_ms, int *lockfd, struct pg_error *err);
void pg_store_unlock(int lockfd);

#endif
