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

/* Value + 1 for the base64url alphabet; 0 marks every other byte. */
static const unsigned char b64url_value[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

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
     * are decoded on every login. */
    for (; i + 4 <= len; i += 4) {
        unsigned a = b64url_value[u[i]], b = b64url_value[u[i + 1]], c = b64url_value[u[i + 2]],
                 d = b64url_value[u[i + 3]];
        if (!a || !b || !c || !d)
            return PG_ERR_ARG;
        uint32_t v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    for (; i < len; i++) {
        unsigned v = b64url_value[(unsigned char)in[i]];
        if (v == 0)
            return PG_ERR_ARG;
        acc = (acc << 6) | (v - 1);
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
