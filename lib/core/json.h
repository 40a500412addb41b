/*
 * A strict, read-only JSON parser for JWS headers and claims sets.
 *
 * Why not jansson here: token verification runs on every login, and
 * jansson's per-member hash tables cost about as much as the RSA
 * verification itself.  This parser builds the whole tree in one
 * allocation, or none (pg_json_parse_in), for all but node-dense documents,
 * and scans strings sixteen bytes at a time.  It is stricter than RFC 8259
 * requires, on purpose:
 *   - duplicate member names in any object are rejected (RFC 8725 §3.x,
 *     and security.md item 8);
 *   - invalid UTF-8, overlong forms, surrogates, lone surrogate escapes
 *     and the escape \u0000 are rejected, so every string is a C string;
 *   - integers outside int64 are rejected; non-integers are kept only as
 *     "real" with no value, since no claim poolgate reads is fractional;
 *   - nesting deeper than PG_JSON_MAX_DEPTH and trailing data are rejected.
 *   - an object with more than PG_JSON_MAX_MEMBERS members is rejected,
 *     which bounds the duplicate check (linear per member) on the largest
 *     input it reads, a 256 KiB key set.
 * The PAM fast path reads everything with it: the token, the stored token
 * set, the key cache and the key set in it.  jansson (with
 * JSON_REJECT_DUPLICATES) is still used for protocol responses and for
 * writing files, where speed does not matter.
 */
#ifndef PG_JSON_H
#define PG_JSON_H

#include <stddef.h>
#include <stdint.h>

#define PG_JSON_MAX_DEPTH 32
#define PG_JSON_MAX_MEMBERS 4096

enum pg_json_type {
    PG_JSON_NULL,
    PG_JSON_FALSE,
    PG_JSON_TRUE,
    PG_JSON_INT,
    PG_JSON_REAL,
    PG_JSON_STRING,
    PG_JSON_ARRAY,
    PG_JSON_OBJECT,
};

struct pg_json {
    enum pg_json_type type;
    uint32_t len;         /* string: bytes (no NUL inside); array/object: children */
    uint32_t keylen;      /* object members: length of key */
    const char *key;      /* object members: the member name, else NULL */
    struct pg_json *next; /* next sibling in the parent, or NULL */
    union {
        int64_t i;             /* PG_JSON_INT */
        const char *s;         /* PG_JSON_STRING, NUL-terminated */
        struct pg_json *first; /* PG_JSON_ARRAY / PG_JSON_OBJECT */
    } u;
};

struct pg_json_doc;

/* 0, PG_ERR_ARG for anything that is not one strict JSON value, or PG_ERR_NOMEM. */
int pg_json_parse(const char *in, size_t len, struct pg_json_doc **out);
/*
 * pg_json_parse, with the document in `buf` (bufsz bytes, aligned for any
 * object) when it fits there: no allocation for the small documents read on
 * every login, a token's header and claims.  pg_json_free releases it as
 * any other; buf stays the caller's and must outlive the document.
 */
int pg_json_parse_in(const char *in, size_t len, void *buf, size_t bufsz, struct pg_json_doc **out);
/* A buffer of n bytes for pg_json_parse_in, aligned for any object. */
#define PG_JSON_BUF(n)                                                                             \
    union {                                                                                        \
        max_align_t align;                                                                         \
        unsigned char bytes[n];                                                                    \
    }
void pg_json_free(struct pg_json_doc *doc);
/* pg_json_free, clearing the tree and its strings first (they held a secret). */
void pg_json_free_secret(struct pg_json_doc *doc);
const struct pg_json *pg_json_root(const struct pg_json_doc *doc);

/* The member named `key` of an object, or NULL (also when obj is not an object). */
const struct pg_json *pg_json_get(const struct pg_json *obj, const char *key);

/*
 * A member's name as a number when it is three bytes long (0 otherwise:
 * names hold no NUL byte), and PG_JSON_NAME3 the same for the letters of
 * a name: a switch on it sorts an object's members by name in one pass,
 * for the objects read on every login (a token's header and claims).
 */
#define PG_JSON_NAME3(a, b, c)                                                                     \
    ((uint32_t)(unsigned char)(a) | (uint32_t)(unsigned char)(b) << 8 |                            \
     (uint32_t)(unsigned char)(c) << 16)

static inline uint32_t pg_json_name3(const struct pg_json *m)
{
    return m->keylen == 3 ? PG_JSON_NAME3(m->key[0], m->key[1], m->key[2]) : 0;
}

/* The member's string, or NULL when it is absent or not a string. */
const char *pg_json_str(const struct pg_json *obj, const char *key);

/* The member's integer, or 0 when it is absent or not an integer. */
int64_t pg_json_int(const struct pg_json *obj, const char *key);

#endif
