/*
 * Strict base64url: anything accepted must be the one canonical encoding of
 * its bytes, and every vector path this CPU has gives the scalar loop's
 * verdict and bytes (the decoder's source is compiled in to reach them).
 */
#include <stdlib.h>
#include <string.h>

#include "../lib/core/b64url.c"

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

/* Each vector path against the scalar loop, into a buffer of exactly the
 * decoded length. */
static void same_as_scalar(const unsigned char *data, size_t size)
{
    size_t (*paths[3])(const unsigned char *, size_t, unsigned char *) = {NULL, NULL, NULL};
#ifdef PG_B64URL_SIMD
    if (PG_CPU_SSSE3())
        paths[0] = decode_ssse3;
    if (PG_CPU_AVX2())
        paths[1] = decode_avx2;
    if (PG_CPU_AVX512VBMI())
        paths[2] = decode_avx512;
#endif
    size_t cap = pg_b64url_decoded_len(size);
    unsigned char *want = malloc(cap + (cap == 0)), *got = malloc(cap + (cap == 0));
    size_t wn = 0;
    int wr = decode_with(NULL, (const char *)data, size, want, &wn);
    for (size_t i = 0; i < 3; i++) {
        size_t n = 0;
        if (paths[i] && (decode_with(paths[i], (const char *)data, size, got, &n) != wr ||
                         (wr == 0 && (n != wn || memcmp(got, want, n) != 0))))
            abort();
    }
    free(want);
    free(got);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    same_as_scalar(data, size);
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
