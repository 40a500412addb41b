/* Internal view of a parsed key set (jwks.c), used by the verifier (jws.c). */
#ifndef PG_KEYS_H
#define PG_KEYS_H

#include <openssl/evp.h>

#include "fastcrypto.h"

#include "poolgate/poolgate.h"

#define PG_NALGS 8
#define PG_KEYSET_MAX_KEYS 100
#define PG_KEYSET_MAX_BYTES (256 * 1024)

struct pg_key {
    char *kid;            /* NULL when the entry has none */
    char *issuer;         /* Entra's per-key issuer (may hold "{tenantid}"), or NULL */
    const char *unusable; /* why no token may use this key, or NULL */
    EVP_PKEY *pkey;       /* NULL when `rsa` holds the key instead */
    RSA *rsa; /* RS256/RS384/RS512 only, made when no other algorithm is wanted (fastcrypto.c) */
    unsigned algs;           /* PG_ALG_* this key can verify */
    size_t sigbytes;         /* exact signature length: RSA modulus, or 2 * EC coordinate */
    unsigned char order[66]; /* EC group order, big-endian, sigbytes/2 long */
    /* Verification state made once at load, one per algorithm (index = bit number). */
    EVP_PKEY_CTX *vctx[PG_NALGS];
};

struct pg_keyset {
    struct pg_key *keys;
    size_t count;
    EVP_MD *md[3]; /* SHA-256, SHA-384, SHA-512, fetched once (NULL: not wanted) */
};

/*
 * pg_keyset_parse, building OpenSSL keys only for the entries whose kid is
 * `kid` (all when NULL): every other entry is kept with its kid, as
 * unusable.  Verification state and digests are made only for the
 * algorithms in `alg` (a PG_ALG_* mask; 0: all); a key keeps the whole set
 * of algorithms it fits, and verifying with one whose state was not made
 * fails closed.  A verification that selects keys by exact kid, for a
 * token of that algorithm, sees the same result as with the whole set, at a
 * fraction of the cost (the PAM fast path).
 */
int pg_keyset_parse_for(const char *json, size_t len, const char *kid, unsigned alg,
                        struct pg_keyset **out, struct pg_error *err);

/* The PG_ALG_* bit of an algorithm's exact name, or 0. */
unsigned pg_alg_from_name(const char *name);

/* Index of the single bit in alg (0..7), or -1. */
int pg_alg_index(unsigned alg);

/* The key whose kid equals kid exactly (kidlen bytes), or NULL. */
const struct pg_key *pg_keyset_find(const struct pg_keyset *ks, const char *kid, size_t kidlen);

/* The digest for an algorithm, fetched at load (NULL when not wanted then). */
const EVP_MD *pg_keyset_md(const struct pg_keyset *ks, unsigned alg);

#endif
