/*
 * Strict JSON parser for token segments; see json.h for why it exists.
 *
 * MUST: reject rather than repair.  Every input either yields exactly the
 * tree RFC 8259 describes or an error; no input is read past `len`.
 */
#include <stdbool.h>

#include "internal.h"
#include "json.h"

struct pg_json_doc {
    struct pg_json *nodes; /* all nodes of the tree; nodes[0] is the root */
    size_t nnodes, capnodes;
    char *strings; /* decoded strings, NUL-terminated */
    size_t nstr, capstr;
    /* nodes and strings live in the memory that follows this struct */
};

struct parser {
    const unsigned char *p, *end;
    struct pg_json_doc *doc;
    unsigned depth;
};

static int parse_value(struct parser *ps, struct pg_json *v);

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool take(struct parser *ps, const char *lit, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, lit, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static struct pg_json *new_node(struct parser *ps)
{
    struct pg_json_doc *d = ps->doc;
    if (d->nnodes >= d->capnodes)
        return NULL; /* cannot happen: capacity is an upper bound; fail closed */
    struct pg_json *n = &d->nodes[d->nnodes++];
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

/* Bytes from p that stand for themselves in a string: printable ASCII other
 * than '"' and '\\' (the common case, copied as one run). */
static size_t plain_run(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    const unsigned char *q = p;
    /* Eight bytes at a time while none of them is special: a byte below
     * 0x20, '"', '\\' or one with bit 7 set (the classic zero-byte test,
     * exact for "is there any"); the byte loop finds which one it is. */
    while (end - q >= 8) {
        uint64_t w;
        memcpy(&w, q, 8);
        uint64_t quote = w ^ (ones * '"'), bslash = w ^ (ones * '\\');
        uint64_t special =
            ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) | w;
        if (special & highs)
            break;
        q += 8;
    }
    while (q < end && plain_byte[*q])
        q++;
    return (size_t)(q - p);
}

/* A string after its opening quote; the decoded text goes to the string area. */
static int parse_string(struct parser *ps, const char **out, uint32_t *outlen)
{
    struct pg_json_doc *d = ps->doc;
    char *o = d->strings + d->nstr;
    size_t n = 0;
    for (;;) {
        size_t run = plain_run(ps->p, ps->end);
        memcpy(o + n, ps->p, run);
        n += run;
        ps->p += run;
        if (ps->p >= ps->end)
            return -1;
        unsigned char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c == '\\') {
            ps->p++;
            if (parse_escape(ps, o, &n) < 0)
                return -1;
        } else if (c < 0x80) {
            return -1; /* a control character (plain_run took the rest) */
        } else {
            size_t k = utf8_seq(ps->p, ps->end);
            if (k == 0)
                return -1;
            memcpy(o + n, ps->p, k);
            n += k;
            ps->p += k;
        }
    }
    if (n > UINT32_MAX)
        return -1;
    o[n] = '\0';
    d->nstr += n + 1;
    *out = o;
    *outlen = (uint32_t)n;
    return 0;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 §6 number grammar; integers must fit int64_t. */
static int parse_number(struct parser *ps, struct pg_json *v)
{
    bool neg = false, integer = true, overflow = false;
    uint64_t mag = 0;
    if (ps->p < ps->end && *ps->p == '-') {
        neg = true;
        ps->p++;
    }
    if (ps->p >= ps->end || !is_digit(*ps->p))
        return -1;
    if (*ps->p == '0') {
        ps->p++;
    } else {
        while (ps->p < ps->end && is_digit(*ps->p)) {
            unsigned dgt = *ps->p++ - '0';
            /* Too big for an integer, but it may still turn out to be a real. */
            overflow |= mag > (UINT64_MAX - dgt) / 10;
            mag = mag * 10 + dgt;
        }
    }
    if (ps->p < ps->end && *ps->p == '.') {
        integer = false;
        ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return -1;
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integer = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p))
            return -1;
        while (ps->p < ps->end && is_digit(*ps->p))
            ps->p++;
    }
    if (!integer) {
        v->type = PG_JSON_REAL;
        return 0;
    }
    if (overflow || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return -1;
    v->type = PG_JSON_INT;
    v->u.i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

static bool key_seen(const struct pg_json *first, const char *key, uint32_t keylen)
{
    for (const struct pg_json *m = first; m; m = m->next)
        if (m->keylen == keylen && (keylen == 0 || m->key[0] == key[0]) &&
            memcmp(m->key, key, keylen) == 0)
            return true;
    return false;
}

/* Members or elements after the opening bracket, up to the closing one. */
static int parse_container(struct parser *ps, struct pg_json *v, bool object)
{
    const unsigned char close = object ? '}' : ']';
    struct pg_json *last = NULL;
    v->type = object ? PG_JSON_OBJECT : PG_JSON_ARRAY;
    if (++ps->depth > PG_JSON_MAX_DEPTH)
        return -1;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        uint32_t keylen = 0;
        skip_ws(ps);
        if (object) {
            if (v->len >= PG_JSON_MAX_MEMBERS)
                return -1;
            if (ps->p >= ps->end || *ps->p++ != '"' || parse_string(ps, &key, &keylen) < 0)
                return -1;
            if (key_seen(v->u.first, key, keylen))
                return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p++ != ':')
                return -1;
            skip_ws(ps);
        }
        struct pg_json *child = new_node(ps);
        if (!child || parse_value(ps, child) < 0)
            return -1;
        child->key = key;
        child->keylen = keylen;
        if (last)
            last->next = child;
        else
            v->u.first = child;
        last = child;
        v->len++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return -1;
        unsigned char c = *ps->p++;
        if (c == close)
            break;
        if (c != ',')
            return -1;
    }
    ps->depth--;
    return 0;
}

static int parse_value(struct parser *ps, struct pg_json *v)
{
    if (ps->p >= ps->end)
        return -1;
    switch (*ps->p) {
    case '{':
    case '[':
        return parse_container(ps, v, *ps->p++ == '{');
    case '"':
        ps->p++;
        v->type = PG_JSON_STRING;
        return parse_string(ps, &v->u.s, &v->len);
    case 't':
        v->type = PG_JSON_TRUE;
        return take(ps, "true", 4) ? 0 : -1;
    case 'f':
        v->type = PG_JSON_FALSE;
        return take(ps, "false", 5) ? 0 : -1;
    case 'n':
        v->type = PG_JSON_NULL;
        return take(ps, "null", 4) ? 0 : -1;
    default:
        return parse_number(ps, v);
    }
}

/* How many of the eight bytes of w are `c`: exact, unlike the shorter
 * zero-byte test, which may also flag the byte above a match. */
static unsigned count_byte(uint64_t w, unsigned char c)
{
    const uint64_t ones = 0x0101010101010101u, lows = 0x7f7f7f7f7f7f7f7fu;
    uint64_t t = w ^ (ones * c);
    uint64_t zero = ~(((t & lows) + lows) | t | lows); /* bit 7 of each byte that was c */
    return (unsigned)(((zero >> 7) * ones) >> 56);
}

/*
 * Every value but the root starts after '[', '{' or ',', so their count plus
 * one bounds the number of nodes (commas inside strings only overestimate).
 * Counted eight bytes at a time: this reads every byte of every document
 * the login path parses.  Sizing from the length alone would skip the
 * scan but allocate (and dirty) far more memory.
 */
static size_t node_bound(const char *in, size_t len)
{
    size_t n = 1, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, in + i, 8);
        n += count_byte(w, ',') + count_byte(w, '[') + count_byte(w, '{');
    }
    for (; i < len; i++)
        n += in[i] == ',' || in[i] == '[' || in[i] == '{';
    return n;
}

int pg_json_parse(const char *in, size_t len, struct pg_json_doc **out)
{
    if (!in || !out || len > (size_t)UINT32_MAX)
        return PG_ERR_ARG;
    size_t nodes = node_bound(in, len);
    size_t strbytes = len + len / 2 + 1;
    struct pg_json_doc *doc = malloc(sizeof(*doc) + nodes * sizeof(struct pg_json) + strbytes);
    if (!doc)
        return PG_ERR_NOMEM;
    doc->nodes = (struct pg_json *)(doc + 1);
    doc->nnodes = 0;
    doc->capnodes = nodes;
    doc->strings = (char *)(doc->nodes + nodes);
    doc->nstr = 0;
    doc->capstr = strbytes;

    struct parser ps = {(const unsigned char *)in, (const unsigned char *)in + len, doc, 0};
    struct pg_json *root = new_node(&ps);
    skip_ws(&ps);
    int r = parse_value(&ps, root);
    skip_ws(&ps);
    if (r < 0 || ps.p != ps.end) {
        free(doc);
        return PG_ERR_ARG;
    }
    *out = doc;
    return 0;
}

void pg_json_free(struct pg_json_doc *doc)
{
    free(doc);
}

void pg_json_free_secret(struct pg_json_doc *doc)
{
    if (doc) { /* (only what the parse wrote: the bounds are generous) */
        pg_memzero(doc->strings, doc->nstr);
        pg_memzero(doc->nodes, doc->nnodes * sizeof(struct pg_json));
    }
    free(doc);
}

const struct pg_json *pg_json_root(const struct pg_json_doc *doc)
{
    return doc ? &doc->nodes[0] : NULL;
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
