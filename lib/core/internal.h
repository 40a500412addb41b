/*
 * Private helpers shared by the library's source files.  Not installed.
 */
#ifndef PG_INTERNAL_H
#define PG_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "poolgate/poolgate.h"

#define PG_EXPORT __attribute__((visibility("default")))
#define PG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Cleanup kit: `_cleanup_(freep) char *s = NULL;` frees s on every return. */
#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void freep(void *p)
{
    free(*(void **)p);
}

/* Take ownership out of a cleanup variable: `*out = TAKE_PTR(p);`. */
#define TAKE_PTR(p)                                                                                \
    __extension__({                                                                                \
        __typeof__(p) _taken = (p);                                                                \
        (p) = NULL;                                                                                \
        _taken;                                                                                    \
    })

#define PG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Record code and a formatted one-line message in err (which may be NULL); returns code. */
void pg_fail_record(struct pg_error *err, int code, const char *fmt, ...) PG_PRINTF(3, 4);
/* (A macro whose value is visibly `code`: static analysis then follows
 * that a failure path returns the negative code it was given.) */
#define pg_fail(err, code, ...)                                                                    \
    __extension__({                                                                                \
        int pg_code_ = (code);                                                                     \
        pg_fail_record((err), pg_code_, __VA_ARGS__);                                              \
        pg_code_;                                                                                  \
    })

/* Free every item and the array; leaves an empty list. */
void pg_strlist_clear(struct pg_strlist *l);
/* Append a copy of s (len bytes); PG_ERR_NOMEM on failure. */
int pg_strlist_add(struct pg_strlist *l, const char *s, size_t len);
bool pg_strlist_contains(const struct pg_strlist *l, const char *s);

/* strndup that never reads past len and fails on embedded NUL (returns NULL, sets *bad). */
char *pg_strndup_checked(const char *s, size_t len);

/*
 * "<scheme>HOST[:PORT]/PATH" checked strictly: a host of letters, digits,
 * '.' and '-' (or a bracketed IPv6 address), no user info, a port up to 65535
 * and a path without query, fragment, spaces or control
 * characters.  The host goes to `host`; returns the path, or NULL.
 */
const char *pg_url_authority(const char *url, const char *scheme, char *host, size_t hostsz);

/* An https:// URL with a host and no whitespace or control characters. */
bool pg_https_url(const char *s);

/* Whether `url` may serve as the instance metadata endpoint: plain http to
 * the link-local address, or to a loopback address (tests).  Here, beside
 * the configuration that checks it, so the core needs no network code. */
bool pg_imds_endpoint_ok(const char *url);

/* keyvault_certificates: at most this many, each a Key Vault secret URI
 * https://<vault>/secrets/<name>[/<version>] with no query or fragment;
 * pg_vault_secret_name copies <name> into `name`. */
#define PG_VAULT_MAX_CERTIFICATES 4
int pg_vault_secret_name(const char *uri, char *name, size_t namesz, struct pg_error *err);

/* Write or read exactly len bytes, retrying on EINTR; PG_ERR_IO otherwise
 * (errno tells why; end of file while reading leaves errno unchanged). */
int pg_write_all(int fd, const void *data, size_t len);
int pg_read_all(int fd, void *data, size_t len);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t pg_monotonic_ms(void);

/* Text from a server or a token made safe for a terminal and for one
 * quoted field of a log line: C0 and C1 controls, DEL, '"' and '\', and
 * every byte that is not part of well-formed UTF-8 become '?'; the result
 * is cut only between characters.  NULL is the empty string. */
void pg_printable(char *out, size_t outsz, const char *in);

/*
 * Append the field ` key=value` of an audit line to the NUL-terminated
 * `out` (a buffer of outsz bytes; no leading space for the first field).
 * The value (NULL: "-") stands bare when it is printable ASCII without
 * space, '"', '\' or '='; else, and always with `quote`, it is quoted:
 * '"' and '\' escaped with '\', C0 and C1 controls and DEL as '?'.  So
 * no value can end its field, add one or start a line, whatever it holds.
 * A value too long for the room left is cut (never inside an escape); a
 * field whose key does not fit is left out.  The one quoting rule of the
 * module's and the CLI's audit lines.
 */
/* pg_config_load() for a caller whose geteuid() is `euid` (the PAM module
 * asks once per call and uses the answer throughout). */
int pg_config_load_as(const char *path, uid_t euid, struct pg_config **out, struct pg_error *err);

void pg_audit_field(char *out, size_t outsz, const char *key, const char *value, bool quote);

/* Whether text may go to a terminal as it is: lines of printable text
 * (UTF-8 allowed), no control character but '\n', no C1 control. */
bool pg_terminal_text(const char *text);

/* Replace each byte of s that is not part of well-formed UTF-8 with '?'. */
void pg_utf8_repair(char *s);

/* Free a string after clearing it (secrets). */
void pg_free_secret(char *s);

#endif
