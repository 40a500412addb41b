/*
 * Fault injection for test-only builds (see fault.c): pg_fault_now(fn) says
 * whether this call is the one to fail; DECLARE names the real function and
 * declares its wrapper, as -Wl,--wrap=NAME wants them; WRAP writes the
 * usual wrapper.
 */
#ifndef POOLGATE_FAULT_H
#define POOLGATE_FAULT_H

#include <stdbool.h>

bool pg_fault_now(const char *fn);

/* What a program prints to standard error, followed by "N (function)", when
 * its Nth call fails (only with PG_FAULT_MARK set). */
#define PG_FAULT_LINE "poolgate-fault: failing call "

#define DECLARE(ret, name, params)                                                                 \
    ret __real_##name params;                                                                      \
    ret __wrap_##name params

/* Set errno, then be value: how most libc functions fail. */
#define FAIL(e, value) (errno = (e), (value))

/* The wrapper of name: when the fault fires it returns `failed` (an
 * expression, which may set errno first), else it calls the real function. */
#define WRAP(ret, name, params, args, failed)                                                      \
    DECLARE(ret, name, params);                                                                    \
    DECLARE(ret, name, params)                                                                     \
    {                                                                                              \
        if (pg_fault_now(#name))                                                                   \
            return failed;                                                                         \
        return __real_##name args;                                                                 \
    }

#endif
