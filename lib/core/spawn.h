/*
 * Starting poolgate-helper and talking to it: shared by the CLI and the PAM
 * module, which runs inside someone else's process (sshd, sudo, login).
 *
 * The helper gets one end of a socket pair as its stdin and stdout; writes
 * to it never raise SIGPIPE in the caller (MSG_NOSIGNAL), reads wait on a
 * CLOCK_MONOTONIC deadline, and a helper that overstays is killed and
 * reaped.  No signal handler is installed.  From pg_helper_start() to
 * pg_helper_stop() SIGCHLD is at its default disposition (as pam_unix does
 * around unix_chkpwd), so that a host that ignores SIGCHLD (the kernel
 * would reap the helper and drop its status) or reaps every child from a
 * handler cannot take the helper from us; pg_helper_stop() restores the
 * host's disposition.  The process-wide cost: while a helper runs, the
 * host's own SIGCHLD handler does not run.  Helpers overlapping in time
 * must be stopped in the reverse order of their start.
 */
#ifndef PG_SPAWN_H
#define PG_SPAWN_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct pg_refusal;

struct pg_helper {
    const char *path; /* absolute path of poolgate-helper */
    uid_t uid;        /* the account it runs as when the caller is root */
    gid_t gid;
    int stderr_fd;   /* the helper's stderr; -1: /dev/null */
    pid_t pid;       /* set by pg_helper_start */
    int fd;          /* our end of the socket pair */
    int pidfd;       /* the helper's pidfd, -1 without one (kernel < 5.3) */
    bool chld_saved; /* chld holds the host's SIGCHLD disposition */
    struct sigaction chld;
    /* pg_helper_call: where a failed DONE's provider refusal goes (its
     * class, code, correlation id and the administrator's fix); NULL when
     * the caller does not want it. */
    struct pg_refusal *refusal;
};

/*
 * The helper account's ids: helper_user's when the caller (effective uid
 * `euid`, the caller's geteuid()) is root, the caller's own otherwise
 * (development and tests).  Looked up with getpwnam_r, so it is safe inside
 * a host process.  PG_ERR_CONFIG when the account does not exist.
 */
int pg_helper_account(const char *name, uid_t euid, uid_t *uid, gid_t *gid, struct pg_error *err);

/*
 * In a forked child, before execve (async-signal-safe calls only): in, out
 * and errfd become descriptors 0, 1 and 2 (whichever they are, 0-2
 * included), every other descriptor is closed, the signal mask is emptied
 * and every disposition is the default.  -1 when a descriptor cannot be
 * placed.
 */
int pg_child_reset(int in, int out, int errfd);

/*
 * fork() with every signal blocked across it, so that no handler of the
 * host runs in the child before pg_child_reset() puts the defaults back;
 * the parent's mask is restored at once, the child keeps all blocked until
 * pg_child_reset() empties the mask.  fork's result, errno kept.
 */
pid_t pg_fork_blocked(void);

/*
 * Start the helper: fork, and in the child (async-signal-safe calls only)
 * wire the socket to stdin and stdout, close every other descriptor, reset
 * the signal mask and dispositions, drop to h->uid/h->gid when root (groups,
 * gid, uid, check that uid 0 cannot be regained, no_new_privs) and execve
 * with a fixed environment.  Then send the request.
 */
int pg_helper_start(struct pg_helper *h, enum pg_msg_type type, json_t *request,
                    struct pg_error *err);

/*
 * Read the next event, waiting until deadline_ms (CLOCK_MONOTONIC
 * milliseconds; 0 waits without limit).  PG_ERR_DENIED when the deadline
 * passes, PG_ERR_PROTOCOL/PG_ERR_IO when the helper breaks the protocol or
 * goes away.
 */
int pg_helper_event(struct pg_helper *h, int64_t deadline_ms, enum pg_msg_type *type,
                    json_t **payload, struct pg_error *err);

/*
 * A whole exchange that needs no conversation: start, wait for DONE until
 * deadline_ms, stop.  A DONE with status 0 is returned in *done (the
 * caller's to release); another status becomes the matching error
 * (1 PG_ERR_DENIED, 2 PG_ERR_CONFIG, 3 PG_ERR_NETWORK) with the helper's
 * message, and the provider's refusal it carried in *h->refusal (cleared
 * first) when that is set.
 */
int pg_helper_call(struct pg_helper *h, enum pg_msg_type type, json_t *request, int64_t deadline_ms,
                   json_t **done, struct pg_error *err);

/*
 * Close our end, reap the helper and restore the host's SIGCHLD
 * disposition.  With `kill`, or when it has not exited within a grace
 * period, it is killed with SIGKILL first (through its pidfd, so that a
 * pid that someone else reaped and the kernel gave away is never hit).
 * Returns the wait status, or -1 when it was reaped by someone else (a
 * host thread waiting for any child).  Safe to call on a helper that never
 * started (fd -1; pid, pidfd and chld_saved may be left zero).
 */
int pg_helper_stop(struct pg_helper *h, bool kill);

#endif
