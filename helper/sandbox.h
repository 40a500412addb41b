/* The helper's sandbox: Landlock for files, seccomp for system calls. */
#ifndef PG_SANDBOX_H
#define PG_SANDBOX_H

#include "poolgate/poolgate.h"

/* What sandbox_enter put in place (the rest was unavailable or left out). */
enum {
    SANDBOX_LANDLOCK = 1, /* the kernel enforces the file rules */
    SANDBOX_SECCOMP = 2,  /* the system call filter is loaded */
};

/*
 * Confine the rest of this process, for good, to what a request needs once
 * the configuration is loaded: files under cfg's state_dir and cache_dir,
 * the trust store and what libcurl, OpenSSL and the C library read at run
 * time (Landlock, when the kernel has it), and the system calls of
 * networking, those files, memory, time and threads (seccomp: anything
 * else fails with EPERM; execve, ptrace and the like kill the process).
 * Needs no_new_privs set and a single thread.  *applied (unless NULL)
 * tells which of the two took effect: a kernel without Landlock skips it,
 * and sandbox.c says where seccomp is left out.  Returns 0, or a negative
 * PG_ERR_* code with err set: the caller must then not go on.
 */
int sandbox_enter(const struct pg_config *cfg, unsigned *applied, struct pg_error *err);

#endif
