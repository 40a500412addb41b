/* Strict base64url: anything accepted must be the one canonical encoding of its bytes. */
#include <stdlib.h>
#include <string.h>

#include "poolgate/poolgate.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        size_t chars = len - i >= 3 ? 4 : len - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
    }
    return o;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    unsigned char *out = malloc(pg_b64url_decoded_len(size) + 1);
    char *again = malloc(size + 4);
    size_t n = 0;
    if (pg_b64url_decode((const char *)data, size, out, &n) == 0) {
        if (n != pg_b64url_decoded_len(size))
            abort();
        if (encode(out, n, again) != size || memcmp(again, data, size) != 0)
            abort(); /* a second encoding of the same bytes was accepted */
    }
    free(out);
    free(again);
    return 0;
}
