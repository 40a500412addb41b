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
 *   - Verification state (EVP_PKEY_CTX with padding and digest set) is made
 *     here, once per key and algorithm, so verifying a token does no setup.
 */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "internal.h"
#include "keys.h"

#define RSA_ALGS                                                                                   \
    (PG_ALG_RS256 | PG_ALG_RS384 | PG_ALG_RS512 | PG_ALG_PS256 | PG_ALG_PS384 | PG_ALG_PS512)
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

static unsigned alg_from_name(const char *name)
{
    for (int i = 0; i < PG_NALGS; i++)
        if (strcmp(name, alg_names[i]) == 0)
            return 1u << i;
    return 0;
}

/* Decode a base64url member into a BIGNUM; NULL when absent or not strict. */
static BIGNUM *member_bn(json_t *jwk, const char *name, size_t *nbytes)
{
    const char *s = json_string_value(json_object_get(jwk, name));
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

static const char *load_rsa(json_t *jwk, struct pg_key *k)
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
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    k->pkey = pkey_from_params("RSA", bld);
    if (!k->pkey)
        goto out;
    k->sigbytes = (size_t)BN_num_bytes(n);
    k->algs = RSA_ALGS;
    why = NULL;
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return why;
}

/* Copy a fixed-width coordinate; false unless exactly `width` bytes. */
static bool ec_coord(json_t *jwk, const char *name, unsigned char *out, size_t width)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t outlen = 0;
    unsigned char buf[128];
    if (!s || strlen(s) > 96 || pg_b64url_decode(s, strlen(s), buf, &outlen) < 0 || outlen != width)
        return false;
    memcpy(out, buf, width);
    return true;
}

static const char *load_ec(json_t *jwk, struct pg_key *k)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
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
static const char *check_purpose(json_t *jwk)
{
    json_t *use = json_object_get(jwk, "use");
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
        return "key 'use' is not \"sig\"";
    json_t *ops = json_object_get(jwk, "key_ops");
    if (ops) {
        size_t i;
        json_t *op;
        bool verify = false;
        if (!json_is_array(ops))
            return "malformed 'key_ops'";
        json_array_foreach(ops, i, op)
        {
            if (!json_is_string(op))
                return "malformed 'key_ops'";
            verify |= strcmp(json_string_value(op), "verify") == 0;
        }
        if (!verify)
            return "key 'key_ops' does not allow verify";
    }
    if (json_object_get(jwk, "d") || json_object_get(jwk, "p") || json_object_get(jwk, "k"))
        return "private or symmetric key material in a public key set";
    return NULL;
}

static const char *load_material(json_t *jwk, struct pg_key *k)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty)
        return "key without a 'kty'";
    if (strcmp(kty, "oct") == 0)
        return "symmetric (oct) key";
    const char *why = check_purpose(jwk);
    if (why)
        return why;
    if (strcmp(kty, "RSA") == 0)
        return load_rsa(jwk, k);
    if (strcmp(kty, "EC") == 0)
        return load_ec(jwk, k);
    return "unsupported key type";
}

/* An `alg` member narrows the key to that one algorithm, which must fit its type. */
static const char *apply_alg(json_t *jwk, struct pg_key *k)
{
    json_t *alg = json_object_get(jwk, "alg");
    if (!alg)
        return NULL;
    unsigned a = json_is_string(alg) ? alg_from_name(json_string_value(alg)) : 0;
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

static int load_key(struct pg_keyset *ks, json_t *jwk, struct pg_key *k, const char *only)
{
    if (!json_is_object(jwk)) {
        k->unusable = "key entry is not a JSON object";
        return 0;
    }
    json_t *kid = json_object_get(jwk, "kid");
    if (json_is_string(kid) && json_string_length(kid) > 0 && json_string_length(kid) <= KID_MAX) {
        /* jansson refuses \u0000 without JSON_ALLOW_NUL, so this is a C string. */
        k->kid = strdup(json_string_value(kid));
        if (!k->kid)
            return PG_ERR_NOMEM;
    }
    json_t *iss = json_object_get(jwk, "issuer");
    if (json_is_string(iss)) {
        k->issuer = strdup(json_string_value(iss));
        if (!k->issuer)
            return PG_ERR_NOMEM;
    } else if (iss) {
        k->unusable = "key 'issuer' is not a string";
        return 0;
    }
    k->unusable = k->kid ? NULL : "key without a usable 'kid'";
    if (!k->unusable && only && strcmp(k->kid, only) != 0)
        k->unusable = "key not loaded (another kid)";
    if (!k->unusable)
        k->unusable = load_material(jwk, k);
    if (!k->unusable)
        k->unusable = apply_alg(jwk, k);
    for (unsigned i = 0; !k->unusable && i < PG_NALGS; i++)
        if (k->algs & (1u << i)) {
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

static int fetch_digests(struct pg_keyset *ks)
{
    static const char *const names[3] = {"SHA256", "SHA384", "SHA512"};
    for (int i = 0; i < 3; i++) {
        ks->md[i] = EVP_MD_fetch(NULL, names[i], NULL);
        if (!ks->md[i])
            return PG_ERR_CRYPTO;
    }
    return 0;
}

PG_EXPORT int pg_keyset_parse(const char *json, size_t len, struct pg_keyset **out,
                              struct pg_error *err)
{
    return pg_keyset_parse_for(json, len, NULL, out, err);
}

int pg_keyset_parse_for(const char *json, size_t len, const char *only, struct pg_keyset **out,
                        struct pg_error *err)
{
    if (!json || !out)
        return pg_fail(err, PG_ERR_ARG, "no key set given");
    if (len > PG_KEYSET_MAX_BYTES)
        return pg_fail(err, PG_ERR_KEYSET, "key set larger than %d bytes", PG_KEYSET_MAX_BYTES);

    int r;
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *keys = json_object_get(doc, "keys");
    struct pg_keyset *ks = NULL;
    if (!doc) {
        r = pg_fail(err, PG_ERR_KEYSET, "key set is not valid JSON (line %d: %s)", jerr.line,
                    jerr.text);
        goto out;
    }
    if (!json_is_array(keys)) {
        r = pg_fail(err, PG_ERR_KEYSET, "key set has no \"keys\" array");
        goto out;
    }
    if (json_array_size(keys) > PG_KEYSET_MAX_KEYS) {
        r = pg_fail(err, PG_ERR_KEYSET, "key set has more than %d keys", PG_KEYSET_MAX_KEYS);
        goto out;
    }
    ks = calloc(1, sizeof(*ks));
    r = ks && (ks->keys = calloc(json_array_size(keys) + 1, sizeof(*ks->keys))) ? fetch_digests(ks)
                                                                                : PG_ERR_NOMEM;
    for (size_t i = 0; r == 0 && i < json_array_size(keys); i++, ks->count++)
        r = load_key(ks, json_array_get(keys, i), &ks->keys[i], only);
    if (r < 0) {
        r = pg_fail(err, r, "cannot load the key set: %s", pg_strerror(r));
        goto out;
    }
    mark_duplicates(ks);
    *out = TAKE_PTR(ks);
out:
    pg_keyset_free(ks);
    json_decref(doc);
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
