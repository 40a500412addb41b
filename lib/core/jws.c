/*
 * JWS compact serialisation: split, decode, check the header, verify the
 * signature (RFC 7515, RFC 7518 §3, RFC 8725).
 *
 * MUST:
 *   - Accept a signature only when OpenSSL's verify returns exactly 1.
 *   - Choose the key only by exact kid, and the algorithm only from the
 *     caller's allow-list; there is no "none" and no HMAC path at all.
 *   - Never decode or look at the payload before the signature verified.
 *   - Refuse header-carried keys and key URLs (jwk, jku, x5u, x5c), crit
 *     and b64: nothing in a token may widen what the verifier trusts.
 */
#include <openssl/ecdsa.h>
#include <stdio.h>

#include "internal.h"
#include "json.h"
#include "jws.h"
#include "keys.h"

void pg_refuse_record(struct pg_verify_result *res, enum pg_reason reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    res->reason = reason;
    vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
    va_end(ap);
}

void pg_sanitize(char *out, size_t outsz, const char *in, size_t len)
{
    size_t o = 0, max = outsz > 64 ? 64 : outsz - 1;
    for (size_t i = 0; i < len && o < max; i++) {
        unsigned char c = (unsigned char)in[i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (len > max && o >= 3)
        memcpy(out + o - 3, "...", 3);
    out[o] = '\0';
}

/* The three segments of a compact JWS. */
struct segments {
    const char *h, *p, *s;
    size_t hlen, plen, slen;
};

static int split(const char *token, size_t len, struct segments *sg, struct pg_verify_result *res)
{
    if (len == 0)
        return pg_refuse(res, PG_REASON_MALFORMED, "empty token");
    if (len > PG_TOKEN_MAX)
        return pg_refuse(res, PG_REASON_MALFORMED, "token longer than %d bytes", PG_TOKEN_MAX);
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2)
        return pg_refuse(res, PG_REASON_MALFORMED, "not a compact JWS (fewer than three parts)");
    if (memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return pg_refuse(res, PG_REASON_MALFORMED,
                         "more than three parts (an encrypted JWE is not accepted)");
    sg->h = token, sg->hlen = (size_t)(d1 - token);
    sg->p = d1 + 1, sg->plen = (size_t)(d2 - d1 - 1);
    sg->s = d2 + 1, sg->slen = len - (size_t)(d2 + 1 - token);
    if (sg->hlen == 0 || sg->slen == 0)
        return pg_refuse(res, PG_REASON_MALFORMED, "empty %s",
                         sg->hlen == 0 ? "header" : "signature");
    return 0;
}

/*
 * Decode one segment (NUL-terminated for convenience) into `local` when it
 * fits in `localsz` bytes, else into a fresh buffer the caller frees:
 * *out says which.  Headers and signatures fit in a few hundred bytes.
 */
static int decode_segment(const char *in, size_t len, const char *what, unsigned char *local,
                          size_t localsz, unsigned char **out, size_t *outlen,
                          struct pg_verify_result *res)
{
    size_t need = pg_b64url_decoded_len(len) + 1;
    unsigned char *buf = need <= localsz ? local : malloc(need);
    if (!buf)
        return PG_ERR_NOMEM;
    if (pg_b64url_decode(in, len, buf, outlen) < 0) {
        if (buf != local)
            free(buf);
        return pg_refuse(res, PG_REASON_MALFORMED, "%s is not strict base64url", what);
    }
    buf[*outlen] = '\0';
    *out = buf;
    return 0;
}

/* Header members that are refused, in the order the refusal names them,
 * and those read. */
static const char *const forbidden_header[] = {"jwk", "jku", "x5u", "x5c", "crit", "b64", "zip"};
enum { HDR_CRIT = 4, HDR_ALG = PG_ARRAY_SIZE(forbidden_header), HDR_KID, HDR_TYP, HDR_OTHER };

/* Which of those a header member is (HDR_OTHER: none). */
static unsigned header_member(const struct pg_json *m)
{
    switch (pg_json_name3(m)) {
    case PG_JSON_NAME3('j', 'w', 'k'):
        return 0;
    case PG_JSON_NAME3('j', 'k', 'u'):
        return 1;
    case PG_JSON_NAME3('x', '5', 'u'):
        return 2;
    case PG_JSON_NAME3('x', '5', 'c'):
        return 3;
    case PG_JSON_NAME3('b', '6', '4'):
        return 5;
    case PG_JSON_NAME3('z', 'i', 'p'):
        return 6;
    case PG_JSON_NAME3('a', 'l', 'g'):
        return HDR_ALG;
    case PG_JSON_NAME3('k', 'i', 'd'):
        return HDR_KID;
    case PG_JSON_NAME3('t', 'y', 'p'):
        return HDR_TYP;
    case 0:
        return m->keylen == 4 && memcmp(m->key, "crit", 4) == 0 ? HDR_CRIT : HDR_OTHER;
    default:
        return HDR_OTHER;
    }
}

/* Header rules; on success *alg is the allowed algorithm and *kid the key id. */
static int check_header(const struct pg_json *hdr, unsigned allowed, unsigned *alg,
                        const struct pg_json **kid, struct pg_verify_result *res)
{
    const struct pg_json *m[HDR_OTHER + 1] = {0};
    if (hdr->type != PG_JSON_OBJECT)
        return pg_refuse(res, PG_REASON_MALFORMED, "header is not a JSON object");
    /* One pass over the members (the parser refused duplicates). */
    for (const struct pg_json *v = hdr->u.first; v; v = v->next)
        m[header_member(v)] = v;
    for (size_t i = 0; i < PG_ARRAY_SIZE(forbidden_header); i++)
        if (m[i])
            return pg_refuse(res, PG_REASON_HEADER, "header member '%s' is not accepted",
                             forbidden_header[i]);
    const struct pg_json *a = m[HDR_ALG];
    if (!a || a->type != PG_JSON_STRING)
        return pg_refuse(res, PG_REASON_ALGORITHM, "header has no 'alg' string");
    unsigned found = pg_alg_from_name(a->u.s);
    if (!(found & allowed)) {
        char shown[72];
        pg_sanitize(shown, sizeof(shown), a->u.s, a->len);
        if (strcasecmp(a->u.s, "none") == 0)
            return pg_refuse(res, PG_REASON_ALGORITHM, "alg '%s' is never accepted", shown);
        if (!found)
            return pg_refuse(res, PG_REASON_ALGORITHM, "alg '%s' is not supported", shown);
        return pg_refuse(res, PG_REASON_ALGORITHM,
                         "alg '%s' is not allowed by the 'algorithms' setting", shown);
    }
    const struct pg_json *k = m[HDR_KID];
    if (!k || k->type != PG_JSON_STRING || k->len == 0)
        return pg_refuse(res, PG_REASON_HEADER, "header has no 'kid' string");
    const struct pg_json *typ = m[HDR_TYP];
    if (typ && typ->type != PG_JSON_STRING)
        return pg_refuse(res, PG_REASON_HEADER, "header 'typ' is not a string");
    *alg = found;
    *kid = k;
    return 0;
}

/* ECDSA: raw r||s (RFC 7518 §3.4) to DER, refusing r or s outside [1, n-1]. */
static int ecdsa_der(const struct pg_key *k, const unsigned char *sig, unsigned char **der,
                     size_t *derlen, struct pg_verify_result *res)
{
    size_t w = k->sigbytes / 2;
    static const unsigned char zero[66];
    for (int half = 0; half < 2; half++) {
        const unsigned char *v = sig + half * w;
        if (memcmp(v, zero, w) == 0 || memcmp(v, k->order, w) >= 0)
            return pg_refuse(res, PG_REASON_SIGNATURE, "ECDSA signature value out of range");
    }
    int r = PG_ERR_NOMEM;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(sig, (int)w, NULL), *bs = BN_bin2bn(sig + w, (int)w, NULL);
    if (!es || !br || !bs || ECDSA_SIG_set0(es, br, bs) != 1)
        goto out;
    br = bs = NULL; /* owned by es now */
    unsigned char *p = NULL;
    int n = i2d_ECDSA_SIG(es, &p);
    if (n <= 0)
        goto out;
    *der = p;
    *derlen = (size_t)n;
    r = 0;
out:
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(es);
    return r;
}

static int verify_signature(const struct pg_keyset *ks, const struct pg_key *k, unsigned alg,
                            const struct segments *sg, const unsigned char *sig, size_t siglen,
                            struct pg_verify_result *res)
{
    unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned mdlen = 0;
    size_t derlen = siglen;
    const unsigned char *vsig = sig;
    int r;
    if (siglen != k->sigbytes)
        return pg_refuse(res, PG_REASON_SIGNATURE,
                         "signature is %zu bytes; the key makes %zu-byte signatures", siglen,
                         k->sigbytes);
    if (alg & (PG_ALG_ES256 | PG_ALG_ES384)) {
        r = ecdsa_der(k, sig, &der, &derlen, res);
        if (r < 0)
            return r;
        vsig = der;
    }
    /* The signing input is the header and payload exactly as transmitted. */
    size_t inlen = sg->hlen + 1 + sg->plen;
    /* (A set loaded for another algorithm has no state for this one.) */
    const EVP_MD *dg = pg_keyset_md(ks, alg);
    EVP_PKEY_CTX *vctx = k->vctx[pg_alg_index(alg)];
    int ok = PG_ERR_CRYPTO;
    if (k->rsa)
        ok = pg_rsa_pkcs1_verify(k->rsa, alg, sg->h, inlen, vsig, derlen);
    else if (dg && vctx && EVP_Digest(sg->h, inlen, md, &mdlen, dg, NULL) == 1)
        ok = EVP_PKEY_verify(vctx, vsig, derlen, md, mdlen) == 1;
    r = ok < 0 ? ok : ok ? 0 : pg_refuse(res, PG_REASON_SIGNATURE, "signature does not verify");
    OPENSSL_free(der);
    return r;
}

static int select_key(const struct pg_keyset *ks, const struct pg_json *kid, unsigned alg,
                      const struct pg_key **out, struct pg_verify_result *res)
{
    const struct pg_key *k = pg_keyset_find(ks, kid->u.s, kid->len);
    if (k && !k->unusable && (k->algs & alg)) {
        *out = k;
        return 0;
    }
    char shown[72];
    pg_sanitize(shown, sizeof(shown), kid->u.s, kid->len);
    if (!k)
        return pg_refuse(res, PG_REASON_KEY, "no key with kid '%s' in the key set", shown);
    if (k->unusable)
        return pg_refuse(res, PG_REASON_KEY, "key '%s' is unusable: %s", shown, k->unusable);
    return pg_refuse(res, PG_REASON_ALGORITHM, "key '%s' cannot verify alg %s", shown,
                     pg_alg_name(alg));
}

int pg_jws_verify_key(const struct pg_keyset *ks, unsigned allowed_algs, const char *token,
                      size_t len, unsigned char *local, size_t localsz, unsigned char **payload,
                      size_t *payload_len, const struct pg_key **key, struct pg_verify_result *res)
{
    struct segments sg = {0};
    /* A header, its parsed document and a signature (up to 8192-bit RSA)
     * fit on the stack. */
    unsigned char hlocal[512], slocal[1025];
    PG_JSON_BUF(1024) hdocbuf;
    unsigned char *hbuf = NULL, *sig = NULL, *pbuf = NULL;
    size_t hlen = 0, siglen = 0, plen = 0;
    struct pg_json_doc *hdoc = NULL;
    const struct pg_json *kid = NULL;
    const struct pg_key *k = NULL;
    unsigned alg = 0;

    int r = split(token, len, &sg, res);
    if (r == 0)
        r = decode_segment(sg.h, sg.hlen, "header", hlocal, sizeof(hlocal), &hbuf, &hlen, res);
    if (r == 0 && (r = pg_json_parse_in((const char *)hbuf, hlen, &hdocbuf, sizeof(hdocbuf),
                                        &hdoc)) == PG_ERR_ARG)
        r = pg_refuse(res, PG_REASON_MALFORMED, "header is not strict JSON");
    if (r == 0)
        r = check_header(pg_json_root(hdoc), allowed_algs, &alg, &kid, res);
    if (r == 0)
        r = select_key(ks, kid, alg, &k, res);
    if (r == 0)
        r = decode_segment(sg.s, sg.slen, "signature", slocal, sizeof(slocal), &sig, &siglen, res);
    if (r == 0)
        r = verify_signature(ks, k, alg, &sg, sig, siglen, res);
    /* Only now, with the signature verified, is the payload decoded. */
    if (r == 0)
        r = decode_segment(sg.p, sg.plen, "payload", local, localsz, &pbuf, &plen, res);
    if (r == 0) {
        *payload = TAKE_PTR(pbuf);
        *payload_len = plen;
        if (key)
            *key = k;
    }
    pg_json_free(hdoc);
    if (hbuf != hlocal)
        free(hbuf);
    if (sig != slocal)
        free(sig);
    return r;
}

int pg_jws_peek(const char *token, size_t len, char *kid, size_t kidsz, unsigned *alg)
{
    struct pg_verify_result res = {0};
    struct segments sg = {0};
    unsigned char hlocal[512], *hbuf = NULL;
    PG_JSON_BUF(1024) hdocbuf;
    size_t hlen = 0;
    struct pg_json_doc *hdoc = NULL;
    int r = split(token, len, &sg, &res);
    if (r == 0)
        r = decode_segment(sg.h, sg.hlen, "header", hlocal, sizeof(hlocal), &hbuf, &hlen, &res);
    if (r == 0)
        r = pg_json_parse_in((const char *)hbuf, hlen, &hdocbuf, sizeof(hdocbuf), &hdoc);
    const struct pg_json *k = r == 0 ? pg_json_get(pg_json_root(hdoc), "kid") : NULL;
    if (r == 0 && (!k || k->type != PG_JSON_STRING || k->len == 0 || k->len >= kidsz ||
                   memchr(k->u.s, '\0', k->len)))
        r = PG_ERR_TOKEN;
    if (r == 0) {
        const struct pg_json *a = pg_json_get(pg_json_root(hdoc), "alg");
        memcpy(kid, k->u.s, k->len);
        kid[k->len] = '\0';
        *alg = a && a->type == PG_JSON_STRING ? pg_alg_from_name(a->u.s) : 0;
    }
    pg_json_free(hdoc);
    if (hbuf != hlocal)
        free(hbuf);
    return r < 0 ? r : 0;
}

int pg_jws_verify_compact(const struct pg_keyset *ks, unsigned allowed_algs, const char *token,
                          size_t len, unsigned char **payload, size_t *payload_len,
                          struct pg_verify_result *res)
{
    memset(res, 0, sizeof(*res));
    return pg_jws_verify_key(ks, allowed_algs, token, len, NULL, 0, payload, payload_len, NULL,
                             res);
}
