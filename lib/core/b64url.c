/*
 * Strict base64url (RFC 4648 §5) without padding, as JWS compact
 * serialisation requires (RFC 7515 §2).
 *
 * MUST: accept exactly one encoding per byte string.  Padding, whitespace,
 * the standard alphabet's '+' and '/', a length of 1 modulo 4 and non-zero
 * unused trailing bits are all rejected, so a token cannot be re-encoded
 * into a second form that still verifies.
 */
#include "internal.h"

/* The value of each base64url character; NO (0xff) for every other byte. */
#define NO 0xff
/* clang-format off */
static const unsigned char b64url_value[256] = {
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, 62, NO, NO,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, NO, NO, NO, NO, NO, NO,
    NO,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, NO, NO, NO, NO, 63,
    NO, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
    NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO, NO,
};
/* clang-format on */

PG_EXPORT size_t pg_b64url_decoded_len(size_t len)
{
    return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PG_B64URL_SIMD 1

/*
 * Which vector path this CPU may take.  With glibc, from the record of the
 * CPU its loader made when the process started: asking executes no CPUID
 * instruction (in a virtual machine each one traps to the hypervisor) and
 * needs no constructor.  __builtin_cpu_supports would link libgcc's, which
 * runs at every load of the PAM module (the host loads it anew for each
 * handle) and cost about 13 us of pam_start there.  Both answer "active":
 * the CPU has it and the kernel saves its registers.
 */
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h>
#define PG_CPU_AVX512VBMI()                                                                        \
    (CPU_FEATURE_ACTIVE(AVX512F) && CPU_FEATURE_ACTIVE(AVX512BW) && CPU_FEATURE_ACTIVE(AVX512_VBMI))
#define PG_CPU_AVX2() CPU_FEATURE_ACTIVE(AVX2)
#define PG_CPU_SSSE3() CPU_FEATURE_ACTIVE(SSSE3)
#else
#define PG_CPU_AVX512VBMI()                                                                        \
    (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&                    \
     __builtin_cpu_supports("avx512vbmi"))
#define PG_CPU_AVX2() __builtin_cpu_supports("avx2")
#define PG_CPU_SSSE3() __builtin_cpu_supports("ssse3")
#endif

/*
 * Tokens are decoded on every login (a 2048-bit key's signature alone is
 * 342 characters), so x86-64 decodes 16 or 32 characters per step with
 * SSSE3 or AVX2 (64 with AVX-512 VBMI: below).  A character is invalid
 * when the class bit of its high nibble is among the bits its low nibble
 * rules out:
 *   bit 0: high 0, 1 or 8-F (all)     bit 1: high 2, all but low D ('-')
 *   bit 2: high 3, low A-F             bit 3: high 4 or 6, low 0
 *   bit 4: high 5, low B-E             bit 5: high 7, low B-F
 * Its value is the character plus SHIFT[high nibble], and 33 more for '_'.
 * Then pairs of 6-bit values become 12 bits, pairs of those 24, and ORDER
 * puts each group's three bytes big-endian, four groups a 16-byte lane.
 * The decoders return how many characters they decoded, stopping before
 * the first block with any invalid character: the scalar loop then
 * refuses it.
 */
#define HI_CLASS 1, 1, 2, 4, 8, 16, 8, 32, 1, 1, 1, 1, 1, 1, 1, 1
#define LO_CLASS 11, 3, 3, 3, 3, 3, 3, 3, 3, 3, 7, 55, 55, 53, 55, 39
#define SHIFT 0, 0, 17, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0
#define ORDER 2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1

/* One block of 16 characters to 12 bytes at o; false when any is invalid. */
__attribute__((target("ssse3"), always_inline)) static inline bool
block_ssse3(const unsigned char *p, unsigned char *o)
{
    const __m128i nibble = _mm_set1_epi8(0x0f);
    __m128i c = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i hi = _mm_and_si128(_mm_srli_epi32(c, 4), nibble);
    __m128i bad =
        _mm_and_si128(_mm_shuffle_epi8(_mm_setr_epi8(HI_CLASS), hi),
                      _mm_shuffle_epi8(_mm_setr_epi8(LO_CLASS), _mm_and_si128(c, nibble)));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) != 0xffff)
        return false;
    __m128i under = _mm_and_si128(_mm_cmpeq_epi8(c, _mm_set1_epi8('_')), _mm_set1_epi8(33));
    __m128i v = _mm_add_epi8(c, _mm_add_epi8(_mm_shuffle_epi8(_mm_setr_epi8(SHIFT), hi), under));
    v = _mm_maddubs_epi16(v, _mm_set1_epi32(0x01400140));
    v = _mm_madd_epi16(v, _mm_set1_epi32(0x00011000));
    v = _mm_shuffle_epi8(v, _mm_setr_epi8(ORDER));
    _mm_storel_epi64((__m128i *)(void *)o, v);
    uint32_t last = (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(v, 8));
    memcpy(o + 8, &last, 4);
    return true;
}

/* One block of 32 characters to 24 bytes at o; false when any is invalid. */
__attribute__((target("avx2"), always_inline)) static inline bool block_avx2(const unsigned char *p,
                                                                             unsigned char *o)
{
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi32(c, 4), nibble);
    if (!_mm256_testz_si256(
            _mm256_shuffle_epi8(_mm256_setr_epi8(HI_CLASS, HI_CLASS), hi),
            _mm256_shuffle_epi8(_mm256_setr_epi8(LO_CLASS, LO_CLASS), _mm256_and_si256(c, nibble))))
        return false;
    __m256i under =
        _mm256_and_si256(_mm256_cmpeq_epi8(c, _mm256_set1_epi8('_')), _mm256_set1_epi8(33));
    __m256i v = _mm256_add_epi8(
        c, _mm256_add_epi8(_mm256_shuffle_epi8(_mm256_setr_epi8(SHIFT, SHIFT), hi), under));
    v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
    v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));
    /* Twelve bytes in each lane; the second lane's moved next to the first's. */
    v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, _mm256_setr_epi8(ORDER, ORDER)),
                                    _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7));
    _mm_storeu_si128((__m128i *)(void *)o, _mm256_castsi256_si128(v));
    _mm_storel_epi64((__m128i *)(void *)(o + 16), _mm256_extracti128_si256(v, 1));
    return true;
}

/*
 * One block of 64 characters to 48 bytes at o with AVX-512 VBMI; false
 * when any is invalid.  The value of each character is looked up directly
 * in the first half of b64url_value (two registers of 64 entries); NO and
 * every byte from 0x80 up leave bit 7 set.  The same multiply-adds as
 * below, then one byte permutation packs sixteen groups of three.
 */
__attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline)) static inline bool
block_avx512(const unsigned char *p, unsigned char *o)
{
    static const unsigned char pack[64] = {
        2,  1,  0,  6,  5,  4,  10, 9,  8,  14, 13, 12, 18, 17, 16, 22, 21, 20, 26, 25, 24, 30,
        29, 28, 34, 33, 32, 38, 37, 36, 42, 41, 40, 46, 45, 44, 50, 49, 48, 54, 53, 52, 58, 57,
        56, 62, 61, 60, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
    __m512i c = _mm512_loadu_si512((const void *)p);
    __m512i v = _mm512_permutex2var_epi8(_mm512_loadu_si512((const void *)b64url_value), c,
                                         _mm512_loadu_si512((const void *)(b64url_value + 64)));
    if (_mm512_movepi8_mask(_mm512_or_si512(c, v)) != 0)
        return false;
    v = _mm512_maddubs_epi16(v, _mm512_set1_epi32(0x01400140));
    v = _mm512_madd_epi16(v, _mm512_set1_epi32(0x00011000));
    v = _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)pack), v);
    _mm512_mask_storeu_epi8(o, (__mmask64)0xffffffffffffu, v);
    return true;
}

/*
 * A decoder `name` of blocks of `step` characters while whole ones are
 * left; then the last whole groups of four (fewer than a block) as one
 * more block that ends with them and so starts inside the one before:
 * those characters decode to the same bytes again.  Only a partial group
 * is left for the scalar loop, or the block with the first invalid
 * character.
 */
#define BLOCK_DECODER(name, isa, block, step)                                                      \
    __attribute__((target(isa))) static size_t name(const unsigned char *in, size_t len,           \
                                                    unsigned char *out)                            \
    {                                                                                              \
        size_t i = 0;                                                                              \
        for (; len - i >= (step); i += (step))                                                     \
            if (!block(in + i, out + i / 4 * 3))                                                   \
                return i;                                                                          \
        size_t whole = (len - i) & ~(size_t)3, at = i + whole - (step);                            \
        return whole > 0 && i > 0 && block(in + at, out + at / 4 * 3) ? i + whole : i;             \
    }

BLOCK_DECODER(decode_ssse3, "ssse3", block_ssse3, 16)
BLOCK_DECODER(decode_avx2, "avx2", block_avx2, 32)
BLOCK_DECODER(decode_avx512, "avx512f,avx512bw,avx512vbmi", block_avx512, 64)
#endif

/*
 * Check the arguments, let `vector` (when not NULL) decode what it can from
 * the start, then the whole groups of four characters (three bytes) left,
 * then the last partial group.  Any NO sets bit 7 of the OR.
 */
static inline int decode_with(size_t (*vector)(const unsigned char *, size_t, unsigned char *),
                              const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    if (!in || !out || !outlen || len % 4 == 1)
        return PG_ERR_ARG;

    const unsigned char *u = (const unsigned char *)in;
    size_t i = vector ? vector(u, len, out) : 0, o = i / 4 * 3;
    for (; i + 4 <= len; i += 4) {
        uint32_t a = b64url_value[u[i]], b = b64url_value[u[i + 1]], c = b64url_value[u[i + 2]],
                 d = b64url_value[u[i + 3]];
        if ((a | b | c | d) & 0x80)
            return PG_ERR_ARG;
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        out[o] = (unsigned char)(v >> 16);
        out[o + 1] = (unsigned char)(v >> 8);
        out[o + 2] = (unsigned char)v;
        o += 3;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    for (; i < len; i++) {
        unsigned v = b64url_value[u[i]];
        if (v == NO)
            return PG_ERR_ARG;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Left-over bits (2 or 4) must be zero: otherwise two encodings decode alike. */
    if (acc != 0)
        return PG_ERR_ARG;
    *outlen = o;
    return 0;
}

PG_EXPORT int pg_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    size_t (*vector)(const unsigned char *, size_t, unsigned char *) = NULL;
#ifdef PG_B64URL_SIMD
    if (len >= 64 && PG_CPU_AVX512VBMI())
        vector = decode_avx512;
    else if (len >= 32 && PG_CPU_AVX2())
        vector = decode_avx2;
    else if (len >= 16 && PG_CPU_SSSE3())
        vector = decode_ssse3;
#endif
    return decode_with(vector, in, len, out, outlen);
}
