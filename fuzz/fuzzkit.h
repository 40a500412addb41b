/*
 * Shared by the fuzz targets of answers from Azure services (IMDS, Key
 * Vault): an HTTP status drawn from the input's first two bytes, and the
 * check that an error message is one printable line.
 */
#ifndef PG_FUZZKIT_H
#define PG_FUZZKIT_H

#include <stdlib.h>
#include <string.h>

static const long fuzz_codes[] = {200, 400, 401, 403, 404, 410, 429, 500, 503};
#define FUZZ_NCODES (sizeof(fuzz_codes) / sizeof(fuzz_codes[0]))

/* A first byte below FUZZ_NCODES picks a usual status; others any number. */
static inline long fuzz_status(unsigned char a, unsigned char b)
{
    return a < FUZZ_NCODES ? fuzz_codes[a] : (long)(a - FUZZ_NCODES) * 256 + b;
}

/* One line a terminal and a log can show: no C0 or C1 control, no DEL. */
static inline void fuzz_check_line(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n == 0 || n == max)
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            abort();
}

#endif
