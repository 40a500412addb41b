/*
 * JWKS parsing (RFC 7517, RFC 7518 §6) into ready-to-use OpenSSL keys.
 *
 * MUST:
 *   - A key is usable only when it is an RSA key of 2048..16384 bits with
 *     e = 65537, or an EC P-256/P-384 key whose point is on its curve; its
 *     `use`, when present, is "sig"; its `alg`, when present, fits its type.
 *   - A kid that appears twice makes every entry with it unusable: which of
 *     them the token meant cannot be known.
 *   - An unusable key is kept with its reason instead of failing the whole
 *     set, so one odd key published beside good ones breaks nothing.
 *   - Verification state (EVP_PKEY_CTX with padding and digest set, or for
 *     the fast path's RS256/384/512 the RSA key itself) is made here, once
 *     per key and algorithm, so verifying a token does no setup.
 *
 * The set is read with the strict parser of json.h (duplicate members
 * refused, as with tokens): the PAM fast path reads it on every login, and
 * jansson's per-member hash tables cost several times what this does.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "internal.h"
#include "json.h"
#include "keys.h"

#define PKCS1_ALGS (PG_ALG_RS256 | PG_ALG_RS384 | PG_ALG_RS512)
#define RSA_ALGS (PKCS1_ALGS | PG_ALG_PS256 | PG_ALG_PS384 | PG_ALG_PS512)
#define KID_MAX 1024

static const char *const alg_names[PG_NALGS] = {"RS256", "RS384", "RS512", "PS256",
                                                "PS384", "PS512", "ES256", "ES384"};

int pg_alg_index(unsigned alg)
{
    for (int i = 0; i < PG_NALGS; i++)
        if (alg == 1u << i)
            return i;
    return -1;
}

PG_EXPORT const char *pg_alg_name(unsigned alg)
{
    int i = pg_alg_index(alg);
    return i < 0 ? NULL : alg_names[i];
}

/* The digest family of an algorithm: 0 SHA-256, 1 SHA-384, 2 SHA-512. */
static int alg_digest(unsigned alg)
{
    if (alg & (PG_ALG_RS256 | PG_ALG_PS256 | PG_ALG_ES256))
        return 0;
    if (alg & (PG_ALG_RS384 | PG_ALG_PS384 | PG_ALG_ES384))
        return 1;
    return 2;
}

const EVP_MD *pg_keyset_md(const struct pg_keyset *ks, unsigned alg)
{
    return ks->md[alg_digest(alg)];
}

unsigned pg_alg_from_name(const char *name)
{
    for (int i = 0; i < PG_NALGS; i++)
        if (strcmp(name, alg_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* Decode a base64url member into a BIGNUM; NULL when absent or not strict. */
static BIGNUM *member_bn(const struct pg_json *jwk, const char *name, size_t *nbytes)
{
    const char *s = pg_json_str(jwk, name);
    if (!s)
        return NULL;
    size_t len = strlen(s), outlen = 0;
    if (len == 0 || len > 4096)
        return NULL;
    unsigned char buf[3072];
    if (pg_b64url_decode(s, len, buf, &outlen) < 0 || outlen == 0)
        return NULL;
    if (nbytes)
        *nbytes = outlen;
    return BN_bin2bn(buf, (int)outlen, NULL);
}

/* Build an EVP_PKEY of `type` from params; NULL on any failure. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* `want`: the algorithms verification state is wanted for.  When they are
 * PKCS#1 v1.5 alone (the fast path asks for the token's one), the key is
 * an RSA built directly, which is that state (fastcrypto.c); otherwise an
 * EVP_PKEY for the contexts of load_key(). */
static const char *load_rsa(const struct pg_json *jwk, struct pg_key *k, unsigned want)
{
    const char *why = "RSA key with a malformed 'n' or 'e'";
    size_t nbytes = 0;
    BIGNUM *n = member_bn(jwk, "n", &nbytes);
    BIGNUM *e = member_bn(jwk, "e", NULL);
    OSSL_PARAM_BLD *bld = NULL;
    if (!n || !e)
        goto out;
    why = "RSA key below 2048 bits";
    if (BN_num_bits(n) < 2048)
        goto out;
    why = "RSA key above 16384 bits";
    if (BN_num_bits(n) > 16384)
        goto out;
    why = "RSA exponent other than 65537";
    if (!BN_is_word(e, RSA_F4))
        goto out;
    why = "cannot build the RSA key";
    k->sigbytes = (size_t)BN_num_bytes(n);
    k->algs = RSA_ALGS;
    if (!(want & ~PKCS1_ALGS) && (k->rsa = pg_rsa_pkcs1_new(&n, &e)) != NULL) {
        why = NULL;
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    k->pkey = pkey_from_params("RSA", bld);
    if (!k->pkey)
        goto out;
    why = NULL;
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return why;
}

/* Copy a fixed-width coordinate; false unless exactly `width` bytes. */
static bool ec_coord(const struct pg_json *jwk, const char *name, unsigned char *out, size_t width)
{
    const char *s = pg_json_str(jwk, name);
    size_t outlen = 0;
    unsigned char buf[128];
    if (!s || strlen(s) > 96 || pg_b64url_decode(s, strlen(s), buf, &outlen) < 0 || outlen != width)
        return false;
    memcpy(out, buf, width);
    return true;
}

static const char *load_ec(const struct pg_json *jwk, struct pg_key *k)
{
    const char *crv = pg_json_str(jwk, "crv");
    const char *group;
    size_t width;
    unsigned alg;
    if (crv && strcmp(crv, "P-256") == 0) {
        group = "prime256v1", width = 32, alg = PG_ALG_ES256;
    } else if (crv && strcmp(crv, "P-384") == 0) {
        group = "secp384r1", width = 48, alg = PG_ALG_ES384;
    } else {
        return "EC key on an unsupported curve";
    }
    unsigned char point[1 + 2 * 48];
    point[0] = 0x04; /* uncompressed point: 04 || x || y */
    if (!ec_coord(jwk, "x", point + 1, width) || !ec_coord(jwk, "y", point + 1 + width, width))
        return "EC key with a malformed 'x' or 'y'";

    const char *why = "EC point not on its curve";
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *check = NULL;
    BIGNUM *order = NULL;
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * width))
        goto out;
    k->pkey = pkey_from_params("EC", bld);
    check = k->pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL) : NULL;
    if (!check || EVP_PKEY_public_check(check) != 1)
        goto out;
    why = "cannot read the EC group order";
    if (!EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_ORDER, &order) ||
        BN_bn2binpad(order, k->order, (int)width) != (int)width)
        goto out;
    k->sigbytes = 2 * width;
    k->algs = alg;
    why = NULL;
out:
    BN_free(order);
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    return why;
}

/* `use` must be sig when present; `key_ops` must allow verify when present. */
static const char *check_purpose(const struct pg_json *jwk)
{
    const struct pg_json *use = pg_json_get(jwk, "use");
    if (use && (use->type != PG_JSON_STRING || strcmp(use->u.s, "sig") != 0))
        return "key 'use' is not \"sig\"";
    const struct pg_json *ops = pg_json_get(jwk, "key_ops");
    if (ops) {
        bool verify = false;
        if (ops->type != PG_JSON_ARRAY)
            return "malformed 'key_ops'";
        for (const struct pg_json *op = ops->u.first; op; op = op->next) {
            if (op->type != PG_JSON_STRING)
                return "malformed 'key_ops'";
            verify |= strcmp(op->u.s, "verify") == 0;
        }
        if (!verify)
            return "key 'key_ops' does not allow verify";
    }
    if (pg_json_get(jwk, "d") || pg_json_get(jwk, "p") || pg_json_get(jwk, "k"))
        return "private or symmetric key material in a public key set";
    return NULL;
}

static const char *load_material(const struct pg_json *jwk, struct pg_key *k, unsigned want)
{
    const char *kty = pg_json_str(jwk, "kty");
    if (!kty)
        return "key without a 'kty'";
    if (strcmp(kty, "oct") == 0)
        return "symmetric (oct) key";
    const char *why = check_purpose(jwk);
    if (why)
        return why;
    if (strcmp(kty, "RSA") == 0)
        return load_rsa(jwk, k, want);
    if (strcmp(kty, "EC") == 0)
        return load_ec(jwk, k);
    return "unsupported key type";
}

/* An `alg` member narrows the key to that one algorithm, which must fit its type. */
static const char *apply_alg(const struct pg_json *jwk, struct pg_key *k)
{
    const struct pg_json *alg = pg_json_get(jwk, "alg");
    if (!alg)
        return NULL;
    unsigned a = alg->type == PG_JSON_STRING ? pg_alg_from_name(alg->u.s) : 0;
    if (!(a & k->algs))
        return "key 'alg' does not fit its key type";
    k->algs = a;
    return NULL;
}

static int make_vctx(struct pg_keyset *ks, struct pg_key *k, unsigned alg)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    const EVP_MD *md = pg_keyset_md(ks, alg);
    bool ok = ctx && EVP_PKEY_verify_init(ctx) == 1;
    if (ok && (alg & RSA_ALGS)) {
        bool pss = alg & (PG_ALG_PS256 | PG_ALG_PS384 | PG_ALG_PS512);
        ok =
            EVP_PKEY_CTX_set_rsa_padding(ctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) == 1;
        /* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash. */
        if (ok && pss)
            ok = EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    }
    if (ok)
        ok = EVP_PKEY_CTX_set_signature_md(ctx, md) == 1;
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        return PG_ERR_CRYPTO;
    }
    k->vctx[pg_alg_index(alg)] = ctx;
    return 0;
}

/* The digests of these algorithms, fetched once for the whole set, when
 * the first key that needs them is loaded. */
static int fetch_digests(struct pg_keyset *ks, unsigned algs)
{
    static const char *const names[3] = {"SHA256", "SHA384", "SHA512"};
    bool need[3] = {false, false, false};
    for (unsigned i = 0; i < PG_NALGS; i++)
        if (algs & (1u << i))
            need[alg_digest(1u << i)] = true;
    for (int i = 0; i < 3; i++) {
        if (!need[i] || ks->md[i])
            continue;
        ks->md[i] = EVP_MD_fetch(NULL, names[i], NULL);
        if (!ks->md[i])
            return PG_ERR_CRYPTO;
    }
    return 0;
}

/* What pg_keyset_parse_for() builds: keys of one kid (all when NULL), and
 * verification state for some algorithms (all when 0). */
struct want {
    const char *kid;
    unsigned algs;
};

static int load_key(struct pg_keyset *ks, const struct pg_json *jwk, struct pg_key *k,
                    const struct want *want)
{
    if (jwk->type != PG_JSON_OBJECT) {
        k->unusable = "key entry is not a JSON object";
        return 0;
    }
    const struct pg_json *kid = pg_json_get(jwk, "kid");
    if (kid && kid->type == PG_JSON_STRING && kid->len > 0 && kid->len <= KID_MAX) {
        /* The parser refuses \u0000, so this is a C string. */
        k->kid = strdup(kid->u.s);
        if (!k->kid)
            return PG_ERR_NOMEM;
    }
    const struct pg_json *iss = pg_json_get(jwk, "issuer");
    if (iss && iss->type == PG_JSON_STRING) {
        k->issuer = strdup(iss->u.s);
        if (!k->issuer)
            return PG_ERR_NOMEM;
    } else if (iss) {
        k->unusable = "key 'issuer' is not a string";
        return 0;
    }
    k->unusable = k->kid ? NULL : "key without a usable 'kid'";
    if (!k->unusable && want->kid && strcmp(k->kid, want->kid) != 0)
        k->unusable = "key not loaded (another kid)";
    if (!k->unusable)
        k->unusable = load_material(jwk, k, want->algs);
    if (!k->unusable)
        k->unusable = apply_alg(jwk, k);
    /* (k->algs stays whole: which algorithms the key fits is the key's; only
     * the state for algorithms nobody will ask for is not made.) */
    if (!k->unusable && !k->rsa) {
        int r = fetch_digests(ks, k->algs & want->algs);
        if (r < 0)
            return r;
    }
    for (unsigned i = 0; !k->unusable && !k->rsa && i < PG_NALGS; i++)
        if (k->algs & want->algs & (1u << i)) {
            int r = make_vctx(ks, k, 1u << i);
            if (r < 0)
                return r;
        }
    return 0;
}

static void key_clear(struct pg_key *k)
{
    free(k->kid);
    free(k->issuer);
    EVP_PKEY_free(k->pkey);
    pg_rsa_pkcs1_free(k->rsa);
    for (int i = 0; i < PG_NALGS; i++)
        EVP_PKEY_CTX_free(k->vctx[i]);
}

static void mark_duplicates(struct pg_keyset *ks)
{
    for (size_t i = 0; i < ks->count; i++)
        for (size_t j = i + 1; j < ks->count; j++)
            if (ks->keys[i].kid && ks->keys[j].kid && strcmp(ks->keys[i].kid, ks->keys[j].kid) == 0)
                ks->keys[i].unusable = ks->keys[j].unusable = "kid appears more than once";
}

PG_EXPORT int pg_keyset_parse(const char *json, size_t len, struct pg_keyset **out,
                              struct pg_error *err)
{
    return pg_keyset_parse_for(json, len, NULL, 0, out, err);
}

int pg_keyset_parse_for(const char *json, size_t len, const char *kid, unsigned alg,
                        struct pg_keyset **out, struct pg_error *err)
{
    if (!json || !out)
        return pg_fail(err, PG_ERR_ARG, "no key set given");
    if (len > PG_KEYSET_MAX_BYTES)
        return pg_fail(err, PG_ERR_KEYSET, "key set larger than %d bytes", PG_KEYSET_MAX_BYTES);

    const struct want want = {kid, alg ? alg : ~0u};
    struct pg_json_doc *doc = NULL;
    struct pg_keyset *ks = NULL;
    int r = pg_json_parse(json, len, &doc);
    const struct pg_json *root = pg_json_root(doc), *keys = pg_json_get(root, "keys");
    if (r < 0 && r != PG_ERR_ARG) {
        r = pg_fail(err, r, "cannot load the key set: %s", pg_strerror(r));
        goto out;
    }
    if (r < 0 || root->type != PG_JSON_OBJECT) {
        r = pg_fail(err, PG_ERR_KEYSET, "key set is not a strict JSON object");
        goto out;
    }
    if (!keys || keys->type != PG_JSON_ARRAY) {
        r = pg_fail(err, PG_ERR_KEYSET, "key set has no \"keys\" array");
        goto out;
    }
    if (keys->len > PG_KEYSET_MAX_KEYS) {
        r = pg_fail(err, PG_ERR_KEYSET, "key set has more than %d keys", PG_KEYSET_MAX_KEYS);
        goto out;
    }
    ks = calloc(1, sizeof(*ks));
    r = ks && (ks->keys = calloc((size_t)keys->len + 1, sizeof(*ks->keys))) ? 0 : PG_ERR_NOMEM;
    for (const struct pg_json *jwk = keys->u.first; r == 0 && jwk; jwk = jwk->next, ks->count++)
        r = load_key(ks, jwk, &ks->keys[ks->count], &want);
    if (r < 0) {
        r = pg_fail(err, r, "cannot load the key set: %s", pg_strerror(r));
        goto out;
    }
    mark_duplicates(ks);
    *out = TAKE_PTR(ks);
out:
    pg_keyset_free(ks);
    pg_json_free(doc);
    return r;
}

PG_EXPORT void pg_keyset_free(struct pg_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->count; i++)
        key_clear(&ks->keys[i]);
    for (int i = 0; i < 3; i++)
        EVP_MD_free(ks->md[i]);
    free(ks->keys);
    free(ks);
}

PG_EXPORT size_t pg_keyset_count(const struct pg_keyset *ks)
{
    return ks ? ks->count : 0;
}

PG_EXPORT size_t pg_keyset_usable(const struct pg_keyset *ks)
{
    size_t n = 0;
    for (size_t i = 0; ks && i < ks->count; i++)
        n += ks->keys[i].unusable == NULL;
    return n;
}

const struct pg_key *pg_keyset_find(const struct pg_keyset *ks, const char *kid, size_t kidlen)
{
    for (size_t i = 0; i < ks->count; i++) {
        const char *k = ks->keys[i].kid;
        if (k && strlen(k) == kidlen && memcmp(k, kid, kidlen) == 0)
            return &ks->keys[i];
    }
    return NULL;
}
