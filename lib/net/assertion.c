/*
 * Client assertions (RFC 7523) signed with a service principal's
 * certificate, and the client credentials grant that carries them.
 *
 * MUST:
 *   - Read certificate_file only as a private file of its expected owner,
 *     and clear its bytes once parsed; the key lives in this process only.
 *   - Sign exactly what Entra ID verifies: PS256 (RSA-PSS, SHA-256, MGF1
 *     SHA-256, salt length 32) with x5t#S256, or RS256 with x5t; aud the
 *     token endpoint; iss = sub = client id; a fresh random jti; a lifetime
 *     of minutes, not hours.
 */
#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>

#include "fileio.h"
#include "internal.h"
#include "unattended.h"

#define MIN_KEY_BITS 2048

struct pg_client_cert {
    X509 *cert;
    EVP_PKEY *key;
};

void pg_client_cert_free(struct pg_client_cert *c)
{
    if (!c)
        return;
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    free(c);
}

/* The certificate and key from PEM text; each is searched for on its own,
 * so their order in the file does not matter. */
static int parse_pem(const char *pem, size_t len, struct pg_client_cert *c, struct pg_error *err)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (b)
        c->cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!c->cert)
        return pg_fail(err, PG_ERR_CONFIG, "certificate_file holds no PEM certificate");
    /* A password callback that gives none: an encrypted key fails here,
     * instead of prompting on the terminal. */
    if ((b = BIO_new_mem_buf(pem, (int)len)))
        c->key = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
    BIO_free(b);
    if (!c->key)
        return pg_fail(err, PG_ERR_CONFIG, "certificate_file holds no unencrypted PEM private key");
    return 0;
}

static int check_cert(const struct pg_client_cert *c, time_t now, struct pg_error *err)
{
    if (EVP_PKEY_get_base_id(c->key) != EVP_PKEY_RSA)
        return pg_fail(err, PG_ERR_CONFIG, "certificate_file: the private key is not an RSA key");
    if (EVP_PKEY_get_bits(c->key) < MIN_KEY_BITS)
        return pg_fail(err, PG_ERR_CONFIG,
                       "certificate_file: the RSA key has %d bits; at least %d are needed",
                       EVP_PKEY_get_bits(c->key), MIN_KEY_BITS);
    if (X509_check_private_key(c->cert, c->key) != 1)
        return pg_fail(err, PG_ERR_CONFIG,
                       "certificate_file: the private key does not belong to the certificate");
    time_t t = now;
    if (X509_cmp_time(X509_get0_notAfter(c->cert), &t) <= 0)
        return pg_fail(err, PG_ERR_CONFIG,
                       "certificate_file: the certificate has expired; upload a new one to the "
                       "app registration and replace the file");
    if (X509_cmp_time(X509_get0_notBefore(c->cert), &t) > 0)
        return pg_fail(err, PG_ERR_CONFIG, "certificate_file: the certificate is not valid yet");
    return 0;
}

int pg_client_cert_load(const char *path, uid_t owner, time_t now, struct pg_client_cert **out,
                        struct pg_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    struct pg_client_cert *c = calloc(1, sizeof(*c));
    int r = c ? 0 : pg_fail(err, PG_ERR_NOMEM, "out of memory");
    char what[PATH_MAX + 32];
    snprintf(what, sizeof(what), "certificate_file %s", path);
    if (r == 0)
        r = pg_file_read(AT_FDCWD, path, PG_CERT_FILE_MAX, owner, what, &pem, &len, err);
    if (r == PG_ERR_PERM && err) {
        char why[PG_ERROR_MAX];
        snprintf(why, sizeof(why), "%s", err->msg);
        pg_fail(err, r, "%s (it must be a regular file of uid %u with mode 0600)", why,
                (unsigned)owner);
    }
    if (r == 0)
        r = parse_pem(pem, len, c, err);
    if (r == 0)
        r = check_cert(c, now, err);
    if (pem)
        pg_memzero(pem, len);
    free(pem);
    if (r == 0)
        *out = c;
    else
        pg_client_cert_free(c);
    return r;
}

/* Unpadded base64url of `len` bytes into `out` (room for 4*ceil(len/3)+1). */
static void b64url(const unsigned char *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
}

int pg_client_cert_thumbprint(const struct pg_client_cert *c, bool sha256, char out[64])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!X509_digest(c->cert, sha256 ? EVP_sha256() : EVP_sha1(), md, &n) || n > 32)
        return PG_ERR_CRYPTO;
    b64url(md, n, out);
    return 0;
}

/* base64url of a JSON object's compact text; NULL on failure. */
static char *segment(json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *out = text ? malloc(4 * (strlen(text) / 3 + 1) + 1) : NULL;
    if (out)
        b64url((const unsigned char *)text, strlen(text), out);
    free(text);
    return out;
}

/* The signature over `input`, base64url-encoded, appended after a '.'. */
static int sign(EVP_PKEY *key, unsigned alg, char **jws, struct pg_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0, inlen = strlen(*jws);
    char *out = NULL;
    bool ok =
        md && EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) == 1 &&
        (alg != PG_ALG_PS256 || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1 &&
                                 EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1)) &&
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)*jws, inlen) == 1 &&
        (sig = malloc(siglen)) &&
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)*jws, inlen) == 1 &&
        (out = malloc(inlen + 1 + 4 * (siglen / 3 + 1) + 1));
    if (ok) {
        memcpy(out, *jws, inlen);
        out[inlen] = '.';
        b64url(sig, siglen, out + inlen + 1);
        free(*jws);
        *jws = out;
    }
    free(sig);
    EVP_MD_CTX_free(md);
    return ok ? 0 : pg_fail(err, PG_ERR_CRYPTO, "cannot sign the client assertion");
}

int pg_client_assertion(const struct pg_client_cert *c, unsigned alg, const char *client_id,
                        const char *audience, time_t now, char **out, struct pg_error *err)
{
    char thumb[64], jti[37];
    unsigned char rnd[16];
    if ((alg != PG_ALG_PS256 && alg != PG_ALG_RS256) || !client_id || !audience)
        return pg_fail(err, PG_ERR_ARG, "invalid arguments");
    if (pg_client_cert_thumbprint(c, alg == PG_ALG_PS256, thumb) < 0 || RAND_bytes(rnd, 16) != 1)
        return pg_fail(err, PG_ERR_CRYPTO, "cannot make the client assertion");
    rnd[6] = (rnd[6] & 0x0f) | 0x40; /* a version 4 UUID, as Entra's own libraries send */
    rnd[8] = (rnd[8] & 0x3f) | 0x80;
    for (int i = 0, o = 0; i < 16; i++)
        o += snprintf(jti + o, sizeof(jti) - (size_t)o, "%s%02x",
                      i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", rnd[i]);
    json_t *header = json_pack("{s:s, s:s, s:s}", "alg", alg == PG_ALG_PS256 ? "PS256" : "RS256",
                               "typ", "JWT", alg == PG_ALG_PS256 ? "x5t#S256" : "x5t", thumb);
    json_t *claims =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "aud", audience, "iss", client_id, "sub",
                  client_id, "jti", jti, "nbf", (json_int_t)now, "iat", (json_int_t)now, "exp",
                  (json_int_t)(now + PG_ASSERTION_LIFETIME));
    char *h = segment(header), *p = segment(claims), *jws = NULL;
    int r = h && p && asprintf(&jws, "%s.%s", h, p) >= 0 ? 0 : (jws = NULL, PG_ERR_NOMEM);
    if (r < 0)
        pg_fail(err, r, "out of memory");
    else
        r = sign(c->key, alg, &jws, err);
    if (r == 0)
        *out = jws;
    else
        free(jws);
    free(h);
    free(p);
    json_decref(header);
    json_decref(claims);
    return r;
}
