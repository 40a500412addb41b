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

PG_EXPORT int pg_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    if (!in || !out || !outlen || len % 4 == 1)
        return PG_ERR_ARG;

    size_t o = 0, i = 0;
    const unsigned char *u = (const unsigned char *)in;
    /* Whole groups of four characters (three bytes) first: tokens and keys
     * are decoded on every login.  Any NO sets bit 7 of the OR. */
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
