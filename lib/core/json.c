/*
 * Strict JSON parser for token segments; see json.h for why it exists.
 *
 * MUST: reject rather than repair.  Every input either yields exactly the
 * tree RFC 8259 describes or an error; no input is read past `len`.
 */
#include <stdbool.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "internal.h"
#include "json.h"

/* Nodes come from blocks: the first, sized from the input's length, in the
 * document's own allocation; each further one twice the size of the last. */
struct block {
    struct block *prev;
    size_t used, cap;
    struct pg_json nodes[];
};

struct pg_json_doc {
    struct block *blocks; /* the newest first; the oldest is in this allocation */
    struct pg_json *root;
    char *strings; /* decoded strings, NUL-terminated, in this allocation */
    size_t nstr;
    bool allocated; /* false: in the caller's buffer (pg_json_parse_in) */
};

/*
 * The parse functions take the position and return the one after what
 * they read, or NULL for an error: the position stays in a register on
 * the common path.  `p` here is only for the rare paths (escapes, UTF-8).
 */
struct parser {
    const unsigned char *p, *end;
    char *out;                       /* where the next string goes in the string area */
    struct pg_json *node, *node_end; /* the free nodes of the newest block */
    struct pg_json_doc *doc;
    unsigned depth;
    bool nomem;
};

typedef const unsigned char *pos;

static pos parse_value(struct parser *ps, pos p, struct pg_json *v);

static pos skip_ws(pos p, pos end)
{
    /* (Documents poolgate reads are mostly compact: one test for those.) */
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static pos take(pos p, pos end, const char *lit, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* The newest block is full: a new one, twice its size. */
static __attribute__((noinline)) bool grow(struct parser *ps)
{
    struct block *b = ps->doc->blocks;
    size_t cap = b->cap * 2;
    struct block *nb = cap < SIZE_MAX / 2 / sizeof(struct pg_json)
                           ? malloc(sizeof(*nb) + cap * sizeof(struct pg_json))
                           : NULL;
    if (!nb) {
        ps->nomem = true;
        return false;
    }
    b->used = b->cap;
    nb->prev = b;
    nb->used = 0;
    nb->cap = cap;
    ps->doc->blocks = nb;
    ps->node = nb->nodes;
    ps->node_end = nb->nodes + cap;
    return true;
}

static struct pg_json *new_node(struct parser *ps)
{
    if (ps->node == ps->node_end && !grow(ps))
        return NULL;
    struct pg_json *n = ps->node++;
    memset(n, 0, sizeof(*n));
    return n;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629 table), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);
    unsigned c = p[0];
    if (c >= 0xc2 && c <= 0xdf)
        return avail >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (avail < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (avail < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0; /* overlong, or beyond U+10FFFF */
        return 4;
    }
    return 0;
}

static void put_utf8(char *o, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xc0 | cp >> 6);
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xe0 | cp >> 12);
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        o[(*n)++] = (char)(0xf0 | cp >> 18);
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* \uXXXX (and its low half when it is a high surrogate), after the backslash-u. */
static int parse_uescape(struct parser *ps, uint32_t *cp)
{
    if (ps->end - ps->p < 4 || hex4(ps->p, cp) < 0)
        return -1;
    ps->p += 4;
    if (*cp >= 0xdc00 && *cp <= 0xdfff)
        return -1; /* lone low surrogate */
    if (*cp >= 0xd800 && *cp <= 0xdbff) {
        uint32_t lo;
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
            hex4(ps->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
            return -1;
        ps->p += 6;
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return *cp == 0 ? -1 : 0; /* NUL would make C strings lie */
}

static int parse_escape(struct parser *ps, char *o, size_t *n)
{
    if (ps->p >= ps->end)
        return -1;
    unsigned char c = *ps->p++;
    char out;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        out = (char)c;
        break;
    case 'b':
        out = '\b';
        break;
    case 'f':
        out = '\f';
        break;
    case 'n':
        out = '\n';
        break;
    case 'r':
        out = '\r';
        break;
    case 't':
        out = '\t';
        break;
    default: {
        uint32_t cp;
        if (c != 'u' || parse_uescape(ps, &cp) < 0)
            return -1;
        put_utf8(o, n, cp);
        return 0;
    }
    }
    o[(*n)++] = out;
    return 0;
}

/* Bytes that stand for themselves in a string (1): printable ASCII but '"'
 * and '\\'.  Control characters and bytes above 0x7f are 0. */
/* clang-format off */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,  /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 0x70 */
};
/* clang-format on */

/* How many bytes plain_copy may write past the string it copies (copies
 * of the input that follows it): the string area has room for them, and
 * pg_json_free_secret clears them too. */
#define COPY_OVERRUN 15

/*
 * Copy the bytes from p that stand for themselves in a string (printable
 * ASCII other than '"' and '\\': nearly all of every document) to o, and
 * return how many there are.  It may write up to COPY_OVERRUN bytes beyond
 * those into o.
 */
static size_t plain_copy(const unsigned char *p, const unsigned char *end, char *o)
{
    const unsigned char *q = p;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - q >= 16) {
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)q);
        _mm_storeu_si128((__m128i *)(void *)(o + (q - p)), c);
        __m128i special =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(c, quote), _mm_cmpeq_epi8(c, bslash)),
                         _mm_cmpgt_epi8(space, c));
        unsigned m = (unsigned)_mm_movemask_epi8(special);
        if (m)
            return (size_t)(q - p) + (size_t)__builtin_ctz(m);
        q += 16;
    }
#endif
    while (q < end && plain_byte[*q]) {
        o[q - p] = (char)*q;
        q++;
    }
    return (size_t)(q - p);
}

/* At a byte plain_copy stopped on inside a string, other than the closing
 * quote: an escape or a UTF-8 sequence, decoded to o + n.  Returns the new
 * length, or SIZE_MAX for a control character or anything invalid.  (Apart,
 * and taking no addresses, so that the common path stays short.) */
static __attribute__((noinline)) size_t string_special(struct parser *ps, char *o, size_t n)
{
    if (*ps->p == '\\') {
        ps->p++;
        return parse_escape(ps, o, &n) < 0 ? SIZE_MAX : n;
    }
    if (*ps->p < 0x80)
        return SIZE_MAX; /* a control character (plain_copy took the rest) */
    size_t k = utf8_seq(ps->p, ps->end);
    if (k == 0)
        return SIZE_MAX;
    memcpy(o + n, ps->p, k);
    ps->p += k;
    return n + k;
}

/* A string after its opening quote; the decoded text goes to the string area. */
static inline pos parse_string(struct parser *ps, pos p, const char **out, uint32_t *outlen)
{
    char *o = ps->out;
    size_t n = 0;
    for (;;) {
        size_t run = plain_copy(p, ps->end, o + n);
        n += run;
        p += run;
        if (p >= ps->end)
            return NULL;
        if (*p == '"')
            break;
        ps->p = p;
        if ((n = string_special(ps, o, n)) == SIZE_MAX)
            return NULL;
        p = ps->p;
    }
    /* (n is below the input's length, which pg_json_parse bounds to 32 bits.) */
    o[n] = '\0';
    ps->out = o + n + 1;
    *out = o;
    *outlen = (uint32_t)n;
    return p + 1;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Eight digits at p as their value, when they are all digits (a NumericDate
 * has ten): each byte's high nibble 3 and low nibble at most 9, then pairs,
 * fours and eights combined with three multiplications. */
static bool eight_digits(pos p, uint64_t *value)
{
    const uint64_t high = 0xf0f0f0f0f0f0f0f0u;
    uint64_t w;
    memcpy(&w, p, 8);
    if ((w & high) != 0x3030303030303030u ||
        ((w + 0x0606060606060606u) & high) != 0x3030303030303030u)
        return false;
    w -= 0x3030303030303030u;
    w = w * 10 + (w >> 8);
    w = ((w & 0x000000ff000000ffu) * (100 + (UINT64_C(1000000) << 32)) +
         ((w >> 16) & 0x000000ff000000ffu) * (1 + (UINT64_C(10000) << 32))) >>
        32;
    *value = w;
    return true;
}
#endif

static pos skip_digits(pos p, pos end)
{
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* RFC 8259 §6 number grammar; integers must fit int64_t. */
static pos parse_number(pos p, pos end, struct pg_json *v)
{
    bool neg = false, integer = true;
    uint64_t mag = 0;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return NULL;
    pos digits = p;
    if (*p == '0') {
        p++;
    } else {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t eight;
        for (; end - p >= 8 && eight_digits(p, &eight); p += 8)
            mag = mag * 100000000 + eight;
#endif
        for (; p < end && is_digit(*p); p++)
            mag = mag * 10 + (unsigned)(*p - '0');
    }
    /* No leading zeros: up to 19 digits fit in 64 bits (the value is checked
     * below), 20 or more are too big for an integer, but it may still turn
     * out to be a real. */
    bool overflow = p - digits > 19;
    if (p < end && *p == '.') {
        integer = false;
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
    }
    if (!integer) {
        v->type = PG_JSON_REAL;
        return p;
    }
    if (overflow || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return NULL;
    v->type = PG_JSON_INT;
    v->u.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return p;
}

static bool key_seen(const struct pg_json *first, const char *key, uint32_t keylen)
{
    for (const struct pg_json *m = first; m; m = m->next)
        if (m->keylen == keylen && (keylen == 0 || m->key[0] == key[0]) &&
            memcmp(m->key, key, keylen) == 0)
            return true;
    return false;
}

/* A member name's hash, 0..255, from its length, first, middle and last
 * bytes: for the duplicate check. */
static unsigned name_hash(const char *key, size_t keylen)
{
    const unsigned char *k = (const unsigned char *)key;
    uint32_t v = keylen == 0 ? 0
                             : (uint32_t)k[0] | (uint32_t)k[keylen / 2] << 8 |
                                   (uint32_t)k[keylen - 1] << 16 | (uint32_t)keylen << 24;
    return (v * 0x9e3779b1u) >> 24;
}

/* The byte at *pp after any whitespace (*pp moved to it), or -1 at the end
 * of the input.  Whitespace is rare between tokens: one test when there is
 * none. */
static inline int peek(pos *pp, pos end)
{
    pos p = *pp;
    if (p<end && * p> ' ')
        return *p;
    *pp = p = skip_ws(p, end);
    return p < end ? *p : -1;
}

/* Members or elements after the opening bracket, up to the closing one. */
static pos parse_container(struct parser *ps, pos p, struct pg_json *v, bool object)
{
    const int close = object ? '}' : ']';
    pos end = ps->end;
    struct pg_json **link = &v->u.first; /* where the next member goes */
    uint32_t count = 0;
    uint64_t names[4] = {0}; /* bit name_hash of every member so far */
    v->type = object ? PG_JSON_OBJECT : PG_JSON_ARRAY;
    if (++ps->depth > PG_JSON_MAX_DEPTH)
        return NULL;
    int c = peek(&p, end);
    if (c == close) {
        ps->depth--;
        return p + 1;
    }
    for (;;) {
        const char *key = NULL;
        uint32_t keylen = 0;
        if (object) {
            if (c != '"' || count >= PG_JSON_MAX_MEMBERS ||
                !(p = parse_string(ps, p + 1, &key, &keylen)))
                return NULL;
            /* Only a name whose hash was seen before needs a look at the others. */
            unsigned h = name_hash(key, keylen);
            uint64_t bit = (uint64_t)1 << (h & 63);
            if ((names[h >> 6] & bit) && key_seen(v->u.first, key, keylen))
                return NULL;
            names[h >> 6] |= bit;
            if (peek(&p, end) != ':')
                return NULL;
            p++;
            c = peek(&p, end);
        }
        struct pg_json *child = new_node(ps);
        if (!child)
            return NULL;
        /* Strings, the most common values, without the general dispatch. */
        if (c == '"') {
            child->type = PG_JSON_STRING;
            p = parse_string(ps, p + 1, &child->u.s, &child->len);
        } else {
            p = parse_value(ps, p, child);
        }
        if (!p)
            return NULL;
        child->key = key;
        child->keylen = keylen;
        *link = child;
        link = &child->next;
        count++;
        c = peek(&p, end);
        if (c == close)
            break;
        if (c != ',')
            return NULL;
        p++;
        c = peek(&p, end);
    }
    v->len = count;
    ps->depth--;
    return p + 1;
}

static pos parse_value(struct parser *ps, pos p, struct pg_json *v)
{
    if (p >= ps->end)
        return NULL;
    switch (*p) {
    case '{':
    case '[':
        return parse_container(ps, p + 1, v, *p == '{');
    case '"':
        v->type = PG_JSON_STRING;
        return parse_string(ps, p + 1, &v->u.s, &v->len);
    case 't':
        v->type = PG_JSON_TRUE;
        return take(p, ps->end, "true", 4);
    case 'f':
        v->type = PG_JSON_FALSE;
        return take(p, ps->end, "false", 5);
    case 'n':
        v->type = PG_JSON_NULL;
        return take(p, ps->end, "null", 4);
    default:
        return parse_number(p, ps->end, v);
    }
}

/* Free the document, clearing what the parse wrote first when `wipe`. */
static void free_doc(struct pg_json_doc *doc, bool wipe)
{
    if (!doc)
        return;
    if (wipe) /* (nstr is at most len: the overrun is inside the string area) */
        pg_memzero(doc->strings, doc->nstr + COPY_OVERRUN);
    for (struct block *b = doc->blocks, *prev; b; b = prev) {
        prev = b->prev;
        if (wipe)
            pg_memzero(b->nodes, b->used * sizeof(struct pg_json));
        if (prev) /* (the first block is part of doc) */
            free(b);
    }
    if (doc->allocated)
        free(doc);
}

int pg_json_parse(const char *in, size_t len, struct pg_json_doc **out)
{
    return pg_json_parse_in(in, len, NULL, 0, out);
}

int pg_json_parse_in(const char *in, size_t len, void *buf, size_t bufsz, struct pg_json_doc **out)
{
    if (!in || !out || len > (size_t)UINT32_MAX)
        return PG_ERR_ARG;
    /* Every value but the root takes at least two bytes (a separator and
     * itself), but most take far more: start with room for one node per 32
     * bytes and grow.  Strings: each decodes to fewer bytes than its quoted
     * form (escapes only shrink), NUL included, and plain_copy may write
     * COPY_OVERRUN bytes past the end of the last one. */
    size_t cap = len / 32 + 8, strbytes = len + 1 + COPY_OVERRUN;
    size_t need =
        sizeof(struct pg_json_doc) + sizeof(struct block) + cap * sizeof(struct pg_json) + strbytes;
    struct pg_json_doc *doc = need <= bufsz ? buf : malloc(need);
    if (!doc)
        return PG_ERR_NOMEM;
    doc->allocated = doc != buf;
    struct block *first = (struct block *)(doc + 1);
    first->prev = NULL;
    first->used = 0;
    first->cap = cap;
    doc->blocks = first;
    doc->strings = (char *)(first->nodes + cap);

    pos end = (pos)in + len;
    struct parser ps = {NULL, end, doc->strings, first->nodes, first->nodes + cap, doc, 0, false};
    doc->root = new_node(&ps);
    pos p = parse_value(&ps, skip_ws((pos)in, end), doc->root);
    doc->nstr = (size_t)(ps.out - doc->strings);
    doc->blocks->used = (size_t)(ps.node - doc->blocks->nodes);
    if (!p || skip_ws(p, end) != end) {
        /* The caller may be reading a secret (the stored set), and a string
         * cut short by the error lies past nstr: clear the whole string
         * area and the nodes, as pg_json_free_secret would. */
        doc->nstr = strbytes - COPY_OVERRUN;
        free_doc(doc, true);
        return ps.nomem ? PG_ERR_NOMEM : PG_ERR_ARG;
    }
    *out = doc;
    return 0;
}

void pg_json_free(struct pg_json_doc *doc)
{
    free_doc(doc, false);
}

void pg_json_free_secret(struct pg_json_doc *doc)
{
    free_doc(doc, true);
}

const struct pg_json *pg_json_root(const struct pg_json_doc *doc)
{
    return doc ? doc->root : NULL;
}

const struct pg_json *pg_json_get(const struct pg_json *obj, const char *key)
{
    if (!obj || obj->type != PG_JSON_OBJECT)
        return NULL;
    size_t keylen = strlen(key);
    for (const struct pg_json *m = obj->u.first; m; m = m->next)
        if (m->keylen == keylen && memcmp(m->key, key, keylen) == 0)
            return m;
    return NULL;
}

const char *pg_json_str(const struct pg_json *obj, const char *key)
{
    const struct pg_json *v = pg_json_get(obj, key);
    return v && v->type == PG_JSON_STRING ? v->u.s : NULL;
}

int64_t pg_json_int(const struct pg_json *obj, const char *key)
{
    const struct pg_json *v = pg_json_get(obj, key);
    return v && v->type == PG_JSON_INT ? v->u.i : 0;
}
