/*
 * Strict base64url: RFC 4648 vectors and every form security.md says to
 * reject.  The decoder's source is compiled into this test (not linked from
 * the library) so that each of its vector paths can be run on its own, on
 * every input length, whichever one pg_b64url_decode would pick here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/core/b64url.c"
#include "guardpage.h"

static int decode(const char *in, unsigned char *out, size_t *outlen)
{
    return pg_b64url_decode(in, strlen(in), out, outlen);
}

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10, unpadded, in the URL-safe alphabet. */
    static const struct {
        const char *enc, *dec;
    } v[] = {{"", ""},           {"Zg", "f"},          {"Zm8", "fo"},         {"Zm9v", "foo"},
             {"Zm9vYg", "foob"}, {"Zm9vYmE", "fooba"}, {"Zm9vYmFy", "foobar"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned char out[16];
        size_t n = 99;
        assert_int_equal(decode(v[i].enc, out, &n), 0);
        assert_int_equal(n, strlen(v[i].dec));
        assert_memory_equal(out, v[i].dec, n);
        assert_int_equal(pg_b64url_decoded_len(strlen(v[i].enc)), n);
    }
}

static void test_url_alphabet(void **state)
{
    (void)state;
    unsigned char out[8];
    size_t n = 0;
    assert_int_equal(decode("-_8", out, &n), 0); /* 0xfb 0xff */
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg==",    /* padding */
        "Zm8=",    /* padding */
        "+_8",     /* standard alphabet */
        "-/8",     /* standard alphabet */
        "Zm 9v",   /* space */
        "Zm9v\n",  /* LF */
        "Zm9v\r",  /* CR */
        "Zm9\tv",  /* tab */
        "Zm9vY",   /* length % 4 == 1 */
        "Zh",      /* unused bits set: 'h' leaves 0b0001 */
        "Zm9",     /* unused bits set: '9' leaves 0b01 */
        "Zm\x80v", /* non-ASCII */
        "Zm.v",    /* dot */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char out[16];
        size_t n = 12345;
        assert_int_equal(decode(bad[i], out, &n), PG_ERR_ARG);
        assert_int_equal(n, 12345); /* output untouched on failure */
    }
}

static void test_embedded_nul(void **state)
{
    (void)state;
    unsigned char out[8];
    size_t n = 0;
    assert_int_equal(pg_b64url_decode("Zm\0v", 4, out, &n), PG_ERR_ARG);
}

static void test_every_byte_round_trip(void **state)
{
    (void)state;
    /* Every 2-character string is either rejected or is the one encoding of its byte. */
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int accepted = 0;
    for (int a = 0; a < 64; a++)
        for (int b = 0; b < 64; b++) {
            char in[3] = {alpha[a], alpha[b], 0};
            unsigned char out[2];
            size_t n = 0;
            if (decode(in, out, &n) == 0) {
                accepted++;
                assert_int_equal(n, 1);
                assert_int_equal(out[0], (unsigned)(a << 2 | b >> 4));
            }
        }
    assert_int_equal(accepted, 256);
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Reference encoder and decoder, one character at a time. */
static size_t encode_ref(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        size_t chars = len - i >= 3 ? 4 : len - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
    }
    return o;
}

static int decode_ref(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    static signed char value[256]; /* from the alphabet string alone */
    if (value[0] == 0) {
        memset(value, -1, sizeof(value));
        for (int i = 0; i < 64; i++)
            value[(unsigned char)alphabet[i]] = (signed char)i;
    }
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        signed char v = value[(unsigned char)in[i]];
        if (v < 0)
            return -1;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *outlen = o;
    return acc == 0 ? 0 : -1;
}

/* Long inputs take the 32- and 16-character steps, then the scalar rest:
 * every length up to 400 bytes round-trips, into a buffer of exactly the
 * decoded length (so a sanitizer sees any write past it). */
static void test_long_round_trip(void **state)
{
    (void)state;
    unsigned char data[400];
    char enc[540];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 151 + 7 * (i >> 3));
    for (size_t len = 0; len <= sizeof(data); len++) {
        size_t elen = encode_ref(data, len, enc);
        unsigned char *out = malloc(pg_b64url_decoded_len(elen) + 1);
        size_t n = 0;
        assert_int_equal(pg_b64url_decode(enc, elen, out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, data, len);
        free(out);
    }
}

/* Every byte value at every position of inputs of 118, 46 and 26
 * characters (whole blocks of 64, 32 or 16, then one block over the last
 * whole groups, then two characters): the same verdict and bytes as the
 * reference decoder, whichever of the vector paths this machine takes. */
static void test_every_byte_everywhere(void **state)
{
    (void)state;
    static const size_t lens[] = {88, 34, 19}, chars[] = {118, 46, 26};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        unsigned char data[88], out[90], want[90];
        char enc[120];
        for (size_t i = 0; i < lens[l]; i++)
            data[i] = (unsigned char)(i * 37 + 11);
        size_t elen = encode_ref(data, lens[l], enc);
        assert_int_equal(elen, chars[l]);
        for (size_t pos = 0; pos < elen; pos++)
            for (int b = 0; b < 256; b++) {
                char in[120];
                memcpy(in, enc, elen);
                in[pos] = (char)b;
                size_t n = 12345, wn = 0;
                int r = pg_b64url_decode(in, elen, out, &n);
                if (decode_ref(in, elen, want, &wn) != 0) {
                    assert_int_equal(r, PG_ERR_ARG);
                    assert_int_equal(n, 12345);
                } else {
                    assert_int_equal(r, 0);
                    assert_int_equal(n, wn);
                    assert_memory_equal(out, want, n);
                }
            }
    }
}

/* ---- Each decoder path on its own ---- */

typedef size_t (*vector_fn)(const unsigned char *, size_t, unsigned char *);

/* The scalar loop alone (vector NULL) and each vector path this CPU has,
 * and the buffers they read and write, each ending at a guard page. */
struct sweep {
    vector_fn fns[4];
    const char *names[4];
    size_t n;
    struct guarded in, out;
};

static void sweep_add(struct sweep *s, vector_fn fn, const char *name)
{
    s->fns[s->n] = fn;
    s->names[s->n++] = name;
}

static void sweep_open(struct sweep *s)
{
    s->n = 0;
    sweep_add(s, NULL, "scalar");
#ifdef PG_B64URL_SIMD
    if (PG_CPU_SSSE3())
        sweep_add(s, decode_ssse3, "ssse3");
    if (PG_CPU_AVX2())
        sweep_add(s, decode_avx2, "avx2");
    if (PG_CPU_AVX512VBMI())
        sweep_add(s, decode_avx512, "avx512");
#endif
    guarded_open(&s->in);
    guarded_open(&s->out);
}

static void sweep_close(struct sweep *s)
{
    guarded_close(&s->in);
    guarded_close(&s->out);
}

/* in (len characters) through path p, against the reference: the same
 * verdict and bytes. */
static void check_path(const struct sweep *s, size_t p, const unsigned char *in, size_t len)
{
    unsigned char want[600];
    size_t wn = 0, n = 12345;
    int wr = decode_ref((const char *)in, len, want, &wn);
    unsigned char *out = guarded_end(&s->out, pg_b64url_decoded_len(len));
    int r = decode_with(s->fns[p], guarded_copy(&s->in, in, len), len, out, &n);
    if (wr != 0) {
        if (r != PG_ERR_ARG || n != 12345)
            fail_msg("%s accepted a refused input of %zu characters", s->names[p], len);
        return;
    }
    if (r != 0 || n != wn || memcmp(out, want, n) != 0)
        fail_msg("%s decoded %zu characters wrongly (r=%d, n=%zu)", s->names[p], len, r, n);
}

/* Every length from 0 to 400 characters (every count of whole blocks, every
 * tail, len % 4 of 0 to 3) on every path: the encoding of some bytes, then
 * it spoilt by a byte outside the alphabet (padding, the standard
 * alphabet's '+' and '/', NUL, bytes with bit 7 set) at the first, the
 * middle and the last position, and by a set unused bit at the end. */
static void test_paths_every_length(void **state)
{
    (void)state;
    struct sweep sw;
    sweep_open(&sw);
    static const unsigned char bad[] = {'=', '+', '/', '.', ' ', '\n', 0, 0x80, 0xad, 0xdf, 0xff};
    unsigned char data[300], enc[401];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 151 + 7 * (i >> 3));
    for (size_t p = 0; p < sw.n; p++)
        for (size_t len = 0; len <= 400; len++) {
            size_t elen = encode_ref(data, pg_b64url_decoded_len(len), (char *)enc);
            if (len % 4 == 1) { /* no encoding has this length: any text */
                memset(enc, 'A', len);
                elen = len;
            }
            assert_int_equal(elen, len);
            check_path(&sw, p, enc, len);
            for (size_t b = 0; len > 0 && b < sizeof(bad); b++) {
                const size_t at[] = {0, len / 2, len - 1};
                for (size_t k = 0; k < 3; k++) {
                    unsigned char keep = enc[at[k]];
                    enc[at[k]] = bad[b];
                    check_path(&sw, p, enc, len);
                    enc[at[k]] = keep;
                }
            }
            if (len % 4 >= 2) { /* the last character's unused bits, one by one */
                unsigned char keep = enc[len - 1];
                const char *v = strchr(alphabet, keep);
                for (unsigned bit = 1; bit < (len % 4 == 2 ? 16u : 4u); bit <<= 1) {
                    enc[len - 1] = (unsigned char)alphabet[(v - alphabet) ^ bit];
                    check_path(&sw, p, enc, len);
                }
                enc[len - 1] = keep;
            }
        }
    sweep_close(&sw);
}

/* Every byte value at every position, on every path, of lengths that give
 * each path one block exactly, blocks and a partial group, blocks and one
 * overlapping block over the last whole groups then a partial group, and
 * two blocks and whole groups. */
static void test_paths_every_byte_everywhere(void **state)
{
    (void)state;
    struct sweep sw;
    sweep_open(&sw);
    static const size_t lens[] = {16, 26, 32, 46, 64, 67, 118, 132, 134};
    unsigned char data[120], enc[140];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        size_t len = lens[l];
        assert_int_equal(encode_ref(data, pg_b64url_decoded_len(len), (char *)enc), len);
        for (size_t p = 0; p < sw.n; p++)
            for (size_t pos = 0; pos < len; pos++) {
                unsigned char keep = enc[pos];
                for (int b = 0; b < 256; b++) {
                    enc[pos] = (unsigned char)b;
                    check_path(&sw, p, enc, len);
                }
                enc[pos] = keep;
            }
    }
    sweep_close(&sw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_every_byte_round_trip),
        cmocka_unit_test(test_long_round_trip),
        cmocka_unit_test(test_every_byte_everywhere),
        cmocka_unit_test(test_paths_every_length),
        cmocka_unit_test(test_paths_every_byte_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
