/* Internal: the signature layer of token verification, exposed to tests. */
#ifndef PG_JWS_H
#define PG_JWS_H

#include "poolgate/poolgate.h"

#define PG_TOKEN_MAX 16384

/*
 * Verify the signature of a compact JWS with the keys in `ks`, allowing only
 * the algorithms in `allowed_algs`.  On success returns 0 and the decoded
 * payload (malloc'd, NUL-terminated beyond *payload_len; the caller frees
 * it).  On failure returns PG_ERR_TOKEN with res->reason and res->detail
 * set, or another negative code.  Nothing of the payload is looked at
 * before the signature has verified.
 */
struct pg_key;
int pg_jws_verify_compact(const struct pg_keyset *ks, unsigned allowed_algs, const char *token,
                          size_t len, unsigned char **payload, size_t *payload_len,
                          struct pg_verify_result *res);

/*
 * The same, without clearing res first, with the key that verified in *key
 * when key is not NULL, and the payload decoded into `local` when it fits
 * in localsz bytes (NUL included): *payload is then local, else malloc'd.
 */
int pg_jws_verify_key(const struct pg_keyset *ks, unsigned allowed_algs, const char *token,
                      size_t len, unsigned char *local, size_t localsz, unsigned char **payload,
                      size_t *payload_len, const struct pg_key **key, struct pg_verify_result *res);

/*
 * The header's kid and alg (its PG_ALG_* bit, 0 when it names none),
 * without verifying anything: only to pick which key of a set to load, and
 * for which algorithm (pg_keyset_parse_for).  PG_ERR_TOKEN when there is no
 * kid.
 */
int pg_jws_peek(const char *token, size_t len, char *kid, size_t kidsz, unsigned *alg);

/* Record a refusal in res.  Cold: the compiler keeps every path to a
 * refusal out of the code an accepted token runs through, which then takes
 * fewer cache lines beside OpenSSL's on every login. */
void pg_refuse_record(struct pg_verify_result *res, enum pg_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), cold));
/* Always PG_ERR_TOKEN, visibly so for static analysis. */
#define pg_refuse(res, reason, ...)                                                                \
    __extension__({                                                                                \
        pg_refuse_record((res), (reason), __VA_ARGS__);                                            \
        PG_ERR_TOKEN;                                                                              \
    })

/* Copy at most max bytes of untrusted text for a message: printable ASCII only. */
void pg_sanitize(char *out, size_t outsz, const char *in, size_t len);

#endif
