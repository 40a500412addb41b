/*
 * The Key Vault side of unattended enrollment: secret answers, the
 * certificate decoders behind them and the secret URI check.  The first
 * input byte is a flag.  Even: the next two bytes are the HTTP status (a
 * byte below 9 picks 200, 400, 401, 403, 404, 410, 429, 500 or 503; any
 * other pair is a number, (byte1 - 9) * 256 + byte2) and the rest is the
 * body; a secret it yields is decoded as its contentType says, and the
 * body, as a string, is also a secret URI.  Odd: the rest is a secret's
 * value, decoded both as PEM and as base64 PKCS#12, so the decoders see
 * inputs no JSON wrapper would carry.  Nothing may crash or leak; a success
 * holds what it promises (a certificate PEM, a 1..127 character name of an
 * https URI), and a failure leaves nothing behind and says why on one
 * printable line.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "poolgate/poolgate.h"
#include "fuzzkit.h"
#include "unattended.h"

#define BEGIN_CERT "-----BEGIN CERTIFICATE-----"

static void check_failure(int r, const struct pg_error *err)
{
    if (r >= 0 || r < PG_ERR_DENIED || err->code != r)
        abort();
    fuzz_check_line(err->msg, sizeof(err->msg));
}

static void decode(const char *content_type, const char *value)
{
    struct pg_vault_cert cert;
    struct pg_error err = {0};
    int r = pg_vault_decode(content_type, value, &cert, &err);
    if (r == 0) {
        if (!cert.cert_pem || strncmp(cert.cert_pem, BEGIN_CERT, sizeof(BEGIN_CERT) - 1) != 0)
            abort();
        if (cert.key_pem && strncmp(cert.key_pem, "-----BEGIN PRIVATE KEY-----", 27) != 0)
            abort(); /* a key only ever as PKCS#8 */
    } else {
        check_failure(r, &err);
        if (cert.cert_pem || cert.key_pem)
            abort();
    }
    pg_vault_cert_clear(&cert);
}

static void answer(long status, const char *s, size_t n)
{
    char *content_type = NULL, *value = NULL;
    struct pg_error err = {0};
    int r = pg_vault_parse(status, s, n, &content_type, &value, &err);
    if (r == 0) {
        if (status != 200 || !content_type || !value || !*value)
            abort();
        decode(content_type, value);
        free(content_type);
        pg_free_secret(value);
    } else {
        check_failure(r, &err);
        if (content_type || value)
            abort();
    }
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static void secret_uri(const char *uri)
{
    char name[128];
    struct pg_error err = {0};
    if (pg_vault_secret_name(uri, name, sizeof(name), &err) != 0)
        return;
    size_t n = strnlen(name, sizeof(name));
    if (n == 0 || n > 127 || strncmp(uri, "https://", 8) != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    bool raw = size > 0 && data[0] % 2 == 1;
    size_t skip = raw ? 1 : 3;
    if (size < skip)
        return 0;
    size_t n = size - skip;
    char *s = malloc(n + 1);
    memcpy(s, data + skip, n);
    s[n] = '\0';
    if (raw) {
        decode("application/x-pem-file", s);
        decode("application/x-pkcs12", s);
    } else {
        answer(fuzz_status(data[1], data[2]), (const char *)data + skip, n);
        secret_uri(s);
    }
    free(s);
    return 0;
}
