/*
 * Certificates kept in Azure Key Vault, read as secrets (a Key Vault
 * certificate's secret holds the certificate with its private key, as PEM
 * or as base64 PKCS#12).
 *
 * MUST:
 *   - Accept only https secret URIs of the documented shape, and send the
 *     token to nothing else.
 *   - Turn Key Vault's errors into what the admin has to change (access
 *     policy or role, the secret's name), never into a retry loop.
 *   - Hand out the private key only as PKCS#8 PEM in a buffer that is
 *     cleared on release.
 */
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <stdio.h>

#include "internal.h"
#include "proto.h"
#include "unattended.h"

/* Key Vault's {"error": {"code", "message"}}, as what to do about it. */
static int vault_error(json_t *doc, long status, struct pg_error *err)
{
    json_t *e = json_object_get(doc, "error");
    char code[64], msg[160];
    const char *c = json_string_value(json_object_get(e, "code"));
    const char *inner =
        json_string_value(json_object_get(json_object_get(e, "innererror"), "code"));
    pg_printable(code, sizeof(code), inner ? inner : c ? c : "no error code");
    pg_printable(msg, sizeof(msg), json_string_value(json_object_get(e, "message")));
    if (status == 403 && strcmp(code, "SecretDisabled") == 0)
        return pg_fail(err, PG_ERR_CONFIG,
                       "the secret is disabled in Key Vault: enable its current version");
    if (status == 403)
        return pg_fail(err, PG_ERR_DENIED,
                       "Key Vault denied access (%s): give this identity the 'get' permission on "
                       "secrets (the Key Vault Secrets User role)",
                       code);
    if (status == 404)
        return pg_fail(err, PG_ERR_CONFIG, "Key Vault has no such secret (%s)", code);
    if (status == 401)
        return pg_fail(err, PG_ERR_DENIED, "Key Vault refused the token (%s): %s", code, msg);
    return pg_fail(err, PG_ERR_PROTOCOL, "Key Vault answered HTTP %ld (%s): %s", status, code, msg);
}

int pg_vault_parse(long status, const char *body, size_t len, char **content_type, char **value,
                   struct pg_error *err)
{
    json_t *doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
    json_t *attrs = json_object_get(doc, "attributes");
    const char *v = json_string_value(json_object_get(doc, "value"));
    const char *ct = json_string_value(json_object_get(doc, "contentType"));
    int r = 0;
    if (!json_is_object(doc))
        r = pg_fail(err, PG_ERR_PROTOCOL, "Key Vault answered HTTP %ld without a JSON object",
                    status);
    else if (status != 200)
        r = vault_error(doc, status, err);
    else if (!v || !*v || json_string_length(json_object_get(doc, "value")) != strlen(v))
        r = pg_fail(err, PG_ERR_PROTOCOL, "Key Vault sent a secret without a value");
    else if (!ct)
        r = pg_fail(err, PG_ERR_CONFIG,
                    "the secret has no contentType: it is not a Key Vault certificate");
    else if (json_is_false(json_object_get(attrs, "enabled")))
        r = pg_fail(err, PG_ERR_CONFIG, "the secret is disabled in Key Vault");
    else if (!(*value = strdup(v)) || !(*content_type = strdup(ct))) {
        pg_free_secret(TAKE_PTR(*value));
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    }
    if (doc && v)
        pg_json_clear_string(json_object_get(doc, "value"));
    json_decref(doc);
    return r;
}

void pg_vault_cert_clear(struct pg_vault_cert *c)
{
    free(c->cert_pem);
    pg_free_secret(c->key_pem);
    c->cert_pem = c->key_pem = NULL;
}

/* A memory BIO's contents as a string. */
static char *bio_string(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    return n > 0 ? strndup(data, (size_t)n) : NULL;
}

/* The certificates (leaf first) and the key as PEM text. */
static int render(X509 *leaf, STACK_OF(X509) * chain, EVP_PKEY *key, struct pg_vault_cert *out,
                  struct pg_error *err)
{
    BIO *c = BIO_new(BIO_s_mem()), *k = key ? BIO_new(BIO_s_secmem()) : NULL;
    bool ok = c && (!key || k) && PEM_write_bio_X509(c, leaf);
    for (int i = 0; ok && i < sk_X509_num(chain); i++)
        ok = PEM_write_bio_X509(c, sk_X509_value(chain, i));
    if (ok && key)
        ok = PEM_write_bio_PrivateKey(k, key, NULL, NULL, 0, NULL, NULL) &&
             (out->key_pem = bio_string(k));
    if (ok)
        ok = (out->cert_pem = bio_string(c)) != NULL;
    BIO_free(c);
    BIO_free(k); /* secure heap: cleared when freed */
    if (!ok)
        pg_vault_cert_clear(out);
    return ok ? 0 : pg_fail(err, PG_ERR_CRYPTO, "cannot write the certificate as PEM");
}

static int from_pem(const char *value, struct pg_vault_cert *out, struct pg_error *err)
{
    BIO *b = BIO_new_mem_buf(value, -1);
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL, *x;
    EVP_PKEY *key = NULL;
    int r = 0;
    while (leaf && chain && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (!sk_X509_push(chain, x))
            X509_free(x);
    BIO_free(b);
    if ((b = BIO_new_mem_buf(value, -1)))
        key = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
    BIO_free(b);
    if (!leaf || !chain)
        r = pg_fail(err, PG_ERR_CONFIG, "the PEM secret holds no certificate");
    else if (key && X509_check_private_key(leaf, key) != 1)
        r = pg_fail(err, PG_ERR_CONFIG, "the PEM secret's key does not belong to its certificate");
    else
        r = render(leaf, chain, key, out, err);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    return r;
}

/* Strict standard base64 (Key Vault's encoding of PKCS#12) into a DER buffer. */
static unsigned char *base64_der(const char *value, int *len)
{
    size_t n = strlen(value);
    if (n == 0 || n % 4 || n > PG_VAULT_MAX_RESPONSE)
        return NULL;
    unsigned char *der = malloc(n / 4 * 3);
    int k = der ? EVP_DecodeBlock(der, (const unsigned char *)value, (int)n) : -1;
    if (k < 0) {
        free(der);
        return NULL;
    }
    /* EVP_DecodeBlock counts padding as zero bytes. */
    *len = k - (value[n - 1] == '=') - (value[n - 2] == '=');
    return der;
}

/* Key Vault's own PKCS#12 files use 2048 iterations or fewer; a count far
 * above this would stall enrollment in key derivation. */
#define PKCS12_MAX_ITERATIONS 100000

/* The iteration count of a password-based algorithm (PBES1, or PBES2 with
 * PBKDF2); 0 for anything else, -1 when its parameters do not parse. */
static long pbe_iterations(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *oid = NULL;
    const void *pval = NULL;
    int ptype = 0;
    X509_ALGOR_get0(&oid, &ptype, &pval, alg);
    if (ptype != V_ASN1_SEQUENCE)
        return 0;
    const unsigned char *p = ASN1_STRING_get0_data(pval);
    long n = ASN1_STRING_length(pval), iter = -1;
    if (OBJ_obj2nid(oid) == NID_pbes2) {
        PBE2PARAM *pbe2 = d2i_PBE2PARAM(NULL, &p, n);
        ASN1_TYPE *kdf = pbe2 ? pbe2->keyfunc->parameter : NULL;
        if (pbe2 && OBJ_obj2nid(pbe2->keyfunc->algorithm) != NID_id_pbkdf2)
            iter = 0;
        else if (kdf && kdf->type == V_ASN1_SEQUENCE) {
            const unsigned char *k = kdf->value.sequence->data;
            PBKDF2PARAM *pbkdf2 = d2i_PBKDF2PARAM(NULL, &k, kdf->value.sequence->length);
            iter = pbkdf2 ? ASN1_INTEGER_get(pbkdf2->iter) : -1;
            PBKDF2PARAM_free(pbkdf2);
        }
        PBE2PARAM_free(pbe2);
    } else {
        PBEPARAM *pbe = d2i_PBEPARAM(NULL, &p, n);
        iter = pbe ? ASN1_INTEGER_get(pbe->iter) : 0;
        PBEPARAM_free(pbe);
    }
    return iter;
}

static bool iterations_ok(const X509_ALGOR *alg)
{
    long iter = pbe_iterations(alg);
    return iter >= 0 && iter <= PKCS12_MAX_ITERATIONS;
}

/* Whether every key derivation the file asks for is bounded: the MAC, the
 * encrypted safes and the shrouded keys of the plain safes (a key shrouded
 * inside an encrypted safe is not looked at; Key Vault never makes one). */
static bool pkcs12_bounded(const PKCS12 *p12)
{
    const ASN1_INTEGER *mac_iter = NULL;
    PKCS12_get0_mac(NULL, NULL, NULL, &mac_iter, p12);
    if (mac_iter &&
        (ASN1_INTEGER_get(mac_iter) < 0 || ASN1_INTEGER_get(mac_iter) > PKCS12_MAX_ITERATIONS))
        return false;
    STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(p12);
    bool ok = safes != NULL;
    for (int i = 0; ok && i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        if (PKCS7_type_is_encrypted(p7)) {
            ok = p7->d.encrypted && iterations_ok(p7->d.encrypted->enc_data->algorithm);
            continue;
        }
        STACK_OF(PKCS12_SAFEBAG) *bags = PKCS7_type_is_data(p7) ? PKCS12_unpack_p7data(p7) : NULL;
        for (int j = 0; ok && j < sk_PKCS12_SAFEBAG_num(bags); j++) {
            const PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
            const X509_ALGOR *alg = NULL;
            if (PKCS12_SAFEBAG_get_nid(bag) == NID_pkcs8ShroudedKeyBag) {
                X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, NULL);
                ok = alg && iterations_ok(alg);
            }
        }
        sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    return ok;
}

static int from_pkcs12(const char *value, struct pg_vault_cert *out, struct pg_error *err)
{
    int len = 0;
    unsigned char *der = base64_der(value, &len);
    const unsigned char *p = der;
    PKCS12 *p12 = der ? d2i_PKCS12(NULL, &p, len) : NULL;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    int r = 0;
    if (!p12)
        r = pg_fail(err, PG_ERR_CONFIG, "the PKCS#12 secret is not valid base64 PKCS#12");
    else if (!pkcs12_bounded(p12))
        r = pg_fail(err, PG_ERR_CONFIG,
                    "the PKCS#12 secret asks for more than %d key derivation iterations, or "
                    "cannot be read",
                    PKCS12_MAX_ITERATIONS);
    /* Key Vault exports PKCS#12 without a password: try the empty one, then none. */
    else if (!PKCS12_parse(p12, "", &key, &leaf, &chain) &&
             !PKCS12_parse(p12, NULL, &key, &leaf, &chain))
        r = pg_fail(err, PG_ERR_CONFIG,
                    "cannot read the PKCS#12 secret (password-protected, or a legacy cipher)");
    else if (!leaf)
        r = pg_fail(err, PG_ERR_CONFIG, "the PKCS#12 secret holds no certificate");
    else
        r = render(leaf, chain, key, out, err);
    if (der)
        pg_memzero(der, (size_t)len);
    free(der);
    PKCS12_free(p12);
    EVP_PKEY_free(key);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return r;
}

int pg_vault_decode(const char *content_type, const char *value, struct pg_vault_cert *out,
                    struct pg_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(content_type, "application/x-pem-file") == 0)
        return from_pem(value, out, err);
    if (strcmp(content_type, "application/x-pkcs12") == 0)
        return from_pkcs12(value, out, err);
    char shown[64];
    pg_printable(shown, sizeof(shown), content_type);
    return pg_fail(err, PG_ERR_CONFIG,
                   "the secret's contentType '%s' is neither application/x-pem-file nor "
                   "application/x-pkcs12",
                   shown);
}
