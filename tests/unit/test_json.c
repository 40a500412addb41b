/* The strict token JSON parser: grammar, strictness and limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guardpage.h"
#include "json.h"
#include "poolgate/poolgate.h"

static struct pg_json_doc *parse_ok(const char *s)
{
    struct pg_json_doc *d = NULL;
    assert_int_equal(pg_json_parse(s, strlen(s), &d), 0);
    assert_non_null(d);
    return d;
}

static void expect_reject(const char *s, size_t len)
{
    struct pg_json_doc *d = (struct pg_json_doc *)0x1;
    assert_int_equal(pg_json_parse(s, len, &d), PG_ERR_ARG);
    assert_ptr_equal(d, (struct pg_json_doc *)0x1); /* untouched */
}

static void test_object_members(void **state)
{
    (void)state;
    struct pg_json_doc *d =
        parse_ok(" {\"a\":1,\"b\":\"x\\u00e9\\n\",\"c\":[true,false,null],\"d\":{\"e\":-5},"
                 "\"f\":1.5e3}\r\n");
    const struct pg_json *r = pg_json_root(d);
    assert_int_equal(r->type, PG_JSON_OBJECT);
    assert_int_equal(r->len, 5);
    assert_int_equal(pg_json_get(r, "a")->u.i, 1);
    const struct pg_json *b = pg_json_get(r, "b");
    assert_int_equal(b->type, PG_JSON_STRING);
    assert_string_equal(b->u.s, "x\xc3\xa9\n");
    assert_int_equal(b->len, 4);
    const struct pg_json *c = pg_json_get(r, "c");
    assert_int_equal(c->type, PG_JSON_ARRAY);
    assert_int_equal(c->len, 3);
    assert_int_equal(c->u.first->type, PG_JSON_TRUE);
    assert_int_equal(c->u.first->next->type, PG_JSON_FALSE);
    assert_int_equal(c->u.first->next->next->type, PG_JSON_NULL);
    assert_int_equal(pg_json_get(pg_json_get(r, "d"), "e")->u.i, -5);
    assert_int_equal(pg_json_get(r, "f")->type, PG_JSON_REAL);
    assert_null(pg_json_get(r, "missing"));
    assert_null(pg_json_get(c, "a")); /* not an object */
    pg_json_free(d);
}

static void test_surrogate_pair(void **state)
{
    (void)state;
    struct pg_json_doc *d = parse_ok("\"\\ud83d\\ude00\"");
    assert_string_equal(pg_json_root(d)->u.s, "\xf0\x9f\x98\x80");
    pg_json_free(d);
}

static void test_int64_limits(void **state)
{
    (void)state;
    struct pg_json_doc *d = parse_ok("[9223372036854775807,-9223372036854775808]");
    const struct pg_json *a = pg_json_root(d);
    assert_true(a->u.first->u.i == INT64_MAX);
    assert_true(a->u.first->next->u.i == INT64_MIN);
    pg_json_free(d);
    expect_reject("9223372036854775808", 19);
    expect_reject("-9223372036854775809", 20);
    expect_reject("99999999999999999999", 20);
    /* A long mantissa is fine when the number is a real (found by fuzz_json). */
    d = parse_ok("[92233720368547758081e4,123456789012345678901234567890.5]");
    assert_int_equal(pg_json_root(d)->u.first->type, PG_JSON_REAL);
    assert_int_equal(pg_json_root(d)->u.first->next->type, PG_JSON_REAL);
    pg_json_free(d);
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        " ",
        "{\"a\":1,\"a\":2}",         /* duplicate member */
        "{\"a\":{\"b\":1,\"b\":1}}", /* duplicate member, nested */
        "{\"\\u0061\":1,\"a\":2}",   /* duplicate after unescaping */
        "{\"a\":1}x",                /* trailing data */
        "{\"a\":1}{}",               /* two values */
        "{\"a\":1,}",                /* trailing comma */
        "[1,]",
        "[01]", /* leading zero */
        "[1.]",
        "[.5]",
        "[1e]",
        "[+1]",
        "[NaN]",
        "[Infinity]",
        "[-Infinity]",
        "[tru]",
        "[nul]",
        "{'a':1}",
        "{a:1}",
        "\"\\ud800\"",        /* lone high surrogate */
        "\"\\udc00\"",        /* lone low surrogate */
        "\"\\ud800\\u0041\"", /* high surrogate without low */
        "\"\\u0000\"",        /* NUL escape */
        "\"\\x41\"",          /* bad escape */
        "\"\\u12G4\"",
        "\"a\tb\"",             /* raw control character */
        "\"\xc3\x28\"",         /* bad continuation */
        "\"\xc0\xaf\"",         /* overlong */
        "\"\xe0\x80\xaf\"",     /* overlong */
        "\"\xed\xa0\x80\"",     /* encoded surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xff\"",
        "\"unterminated",
        "{\"a\" 1}",
        "[1 2]",
        "\f[1]", /* whitespace is space, tab, LF and CR only */
        "[1]\v",
        "[1,\f2]",
        "{\"a\":\xc2\xa0"
        "1}",              /* no-break space */
        "[1]\xe2\x80\xa8", /* line separator */
        "\xef\xbb\xbf[1]", /* byte order mark */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reject(bad[i], strlen(bad[i]));
    expect_reject("{\"a\":\"b\0\"}", 10); /* raw NUL */
    expect_reject("[1,\0 2]", 7);         /* NUL between values */
    expect_reject("[1]\0", 4);            /* NUL after the value */
    expect_reject("{\"a\0\":1}", 8);      /* NUL in a name */
}

/* Nodes come from blocks sized from the input's length and grown as needed:
 * the densest documents, of every length modulo 8, must parse. */
static void test_densest(void **state)
{
    (void)state;
    static const char *const dense[] = {"0",           "[]",       "[0]",
                                        "[0,0]",       "[[]]",     "[[],[]]",
                                        "[[0],[0]]",   "{\"\":0}", "{\"\":[],\"a\":{}}",
                                        "[{},{},[],0]"};
    for (size_t i = 0; i < sizeof(dense) / sizeof(dense[0]); i++)
        pg_json_free(parse_ok(dense[i]));
    char buf[4001];
    for (int n = 1990; n < 2000; n++) {
        size_t off = 0;
        buf[off++] = '[';
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, i ? ",0" : "0");
        buf[off++] = ']';
        struct pg_json_doc *d = NULL;
        assert_int_equal(pg_json_parse(buf, off, &d), 0);
        assert_int_equal(pg_json_root(d)->len, n);
        pg_json_free(d);
        /* Nested openers only: each costs a node. */
        memset(buf, '[', 30), memset(buf + 30, ']', 30);
        assert_int_equal(pg_json_parse(buf + 30 - n % 8 - 1, 2 * (size_t)(n % 8 + 1), &d), 0);
        pg_json_free(d);
    }
}

static void test_depth_limit(void **state)
{
    (void)state;
    char buf[2 * (PG_JSON_MAX_DEPTH + 1) + 1];
    for (int depth = PG_JSON_MAX_DEPTH; depth <= PG_JSON_MAX_DEPTH + 1; depth++) {
        memset(buf, '[', (size_t)depth);
        memset(buf + depth, ']', (size_t)depth);
        struct pg_json_doc *d = NULL;
        int r = pg_json_parse(buf, 2 * (size_t)depth, &d);
        assert_int_equal(r, depth <= PG_JSON_MAX_DEPTH ? 0 : PG_ERR_ARG);
        pg_json_free(d);
    }
}

static void test_many_members(void **state)
{
    (void)state;
    /* A wide flat object: many more nodes than the first block holds. */
    size_t n = 3000, cap = n * 16 + 16, off = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    buf[off++] = '{';
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s\"k%zu\":[%zu]", i ? "," : "", i, i);
    buf[off++] = '}';
    struct pg_json_doc *d = NULL;
    assert_int_equal(pg_json_parse(buf, off, &d), 0);
    assert_int_equal(pg_json_root(d)->len, n);
    assert_int_equal(pg_json_get(pg_json_root(d), "k2999")->u.first->u.i, 2999);
    pg_json_free(d);
    free(buf);
}

/* One member more than PG_JSON_MAX_MEMBERS: refused (the duplicate check is
 * linear per member, so this bounds its cost on a 256 KiB key set). */
static void test_member_limit(void **state)
{
    (void)state;
    size_t cap = (PG_JSON_MAX_MEMBERS + 1) * 16 + 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (size_t n = PG_JSON_MAX_MEMBERS; n <= PG_JSON_MAX_MEMBERS + 1; n++) {
        size_t off = 0;
        buf[off++] = '{';
        for (size_t i = 0; i < n; i++)
            off += (size_t)snprintf(buf + off, cap - off, "%s\"k%zu\":0", i ? "," : "", i);
        buf[off++] = '}';
        struct pg_json_doc *d = NULL;
        assert_int_equal(pg_json_parse(buf, off, &d), n <= PG_JSON_MAX_MEMBERS ? 0 : PG_ERR_ARG);
        pg_json_free(d);
    }
    free(buf);
}

/*
 * Strings are scanned sixteen bytes at a time: an escape, a UTF-8 sequence,
 * a control character or the closing quote at every offset, in strings
 * that end far from and close to the end of the document.
 */
static void test_string_offsets(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *decoded; /* NULL: refused */
    } specials[] = {
        {"\\n", "\n"},
        {"\\\"", "\""},
        {"\\\\", "\\"},
        {"\\u00e9", "\xc3\xa9"},
        {"\\ud83d\\ude00", "\xf0\x9f\x98\x80"},
        {"\xc3\xa9", "\xc3\xa9"},
        {"\xe2\x82\xac", "\xe2\x82\xac"},
        {"\x7f", "\x7f"},
        {"\x1f", NULL},
        {"\t", NULL},
        {"\xc3", NULL},
        {"\x80", NULL},
        {"\\u0000", NULL},
    };
    char doc[160], want[80];
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
        for (int before = 0; before < 40; before++)
            for (int after = 0; after < 20; after += 19) {
                int n = snprintf(doc, sizeof(doc), "[\"%.*s%s%.*s\"]", before,
                                 "abcdefghijklmnopqrstuvwxyz0123456789ABCD", specials[i].raw, after,
                                 "0123456789abcdefghijk");
                if (!specials[i].decoded) {
                    expect_reject(doc, (size_t)n);
                    continue;
                }
                snprintf(want, sizeof(want), "%.*s%s%.*s", before,
                         "abcdefghijklmnopqrstuvwxyz0123456789ABCD", specials[i].decoded, after,
                         "0123456789abcdefghijk");
                struct pg_json_doc *d = parse_ok(doc);
                const struct pg_json *s = pg_json_root(d)->u.first;
                assert_int_equal(s->type, PG_JSON_STRING);
                assert_string_equal(s->u.s, want);
                assert_int_equal(s->len, strlen(want));
                pg_json_free(d);
                /* Cut anywhere inside the string: unterminated. */
                for (int cut = 1; cut < n - 2; cut += 7)
                    expect_reject(doc, (size_t)cut);
            }
}

/* Duplicate names are found among many members, wherever the second one is
 * (names are filtered by a hash first, so many share one). */
static void test_duplicates_among_many(void **state)
{
    (void)state;
    size_t cap = 300 * 16 + 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (size_t dup = 0; dup <= 300; dup += 23) {
        size_t off = 0;
        buf[off++] = '{';
        for (size_t i = 0; i < 300; i++)
            off += (size_t)snprintf(buf + off, cap - off, "%s\"n%zu\":%zu", i ? "," : "", i, i);
        if (dup < 300)
            off += (size_t)snprintf(buf + off, cap - off, ",\"n%zu\":0", dup);
        buf[off++] = '}';
        struct pg_json_doc *d = NULL;
        assert_int_equal(pg_json_parse(buf, off, &d), dup < 300 ? PG_ERR_ARG : 0);
        pg_json_free(d);
    }
    free(buf);
}

/* Integers: 19 digits always fit the 64-bit magnitude, 20 never fit int64. */
static void test_integer_digits(void **state)
{
    (void)state;
    struct pg_json_doc *d = parse_ok("[1000000000000000000,-1000000000000000000,0,-0]");
    const struct pg_json *a = pg_json_root(d)->u.first;
    assert_true(a->u.i == INT64_C(1000000000000000000));
    assert_true(a->next->u.i == -INT64_C(1000000000000000000));
    assert_true(a->next->next->u.i == 0 && a->next->next->next->u.i == 0);
    pg_json_free(d);
    expect_reject("9999999999999999999", 19);
    expect_reject("10000000000000000000", 20);
    expect_reject("-10000000000000000000", 21);
    expect_reject("18446744073709551616", 20); /* 2^64: wraps to 0 */
    expect_reject("36893488147419103232", 20); /* 2^65 */
    /* Every length, eight digits at a time then one at a time; a byte just
     * outside '0'..'9' ('/' and ':') anywhere ends the number. */
    static const char digits[] = "1234567890123456789";
    char buf[40];
    for (int n = 1; n <= 19; n++) {
        snprintf(buf, sizeof(buf), "[%.*s]", n, digits);
        d = parse_ok(buf);
        assert_true(pg_json_root(d)->u.first->u.i == strtoll(buf + 1, NULL, 10));
        pg_json_free(d);
        for (int at = 0; at < n; at++)
            for (const char *c = "/:"; *c; c++) {
                snprintf(buf, sizeof(buf), "[%.*s%c%s]", at, digits, *c, digits + at + 1);
                expect_reject(buf, strlen(buf));
            }
    }
}

/* Two trees are the same: types, names, values, strings and their lengths. */
static void assert_same_tree(const struct pg_json *a, const struct pg_json *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->keylen, b->keylen);
    assert_memory_equal(a->key ? a->key : "", b->key ? b->key : "", a->keylen);
    assert_int_equal(a->len, b->len);
    if (a->type == PG_JSON_INT)
        assert_true(a->u.i == b->u.i);
    if (a->type == PG_JSON_STRING)
        assert_memory_equal(a->u.s, b->u.s, (size_t)a->len + 1);
    if (a->type != PG_JSON_ARRAY && a->type != PG_JSON_OBJECT)
        return;
    const struct pg_json *x = a->u.first, *y = b->u.first;
    for (; x && y; x = x->next, y = y->next)
        assert_same_tree(x, y);
    assert_true(!x && !y);
}

/*
 * pg_json_parse_in: in a caller's buffer of every size from too small to
 * ample, the same tree as pg_json_parse, the document placed in the buffer
 * exactly when it fits (and its further blocks, for dense documents, freed
 * by pg_json_free: the sanitizer and valgrind runs see any leak).
 */
static void test_parse_in_buffer(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}",
        "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]",
        "[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]",
        "{\"a\":\"\\u00e9\\ud83d\\ude00 "
        "\\n\",\"b\":[1.5,-2,true,null],\"c\":{\"d\":\"0123456789abcdef0\"}}",
        "\"0123456789abcdef0123456789abcdef\"",
        "7",
    };
    PG_JSON_BUF(2048) buf;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        size_t len = strlen(docs[i]);
        struct pg_json_doc *want = parse_ok(docs[i]);
        bool fitted = false;
        for (size_t sz = 0; sz <= sizeof(buf); sz += 8) {
            struct pg_json_doc *d = NULL;
            memset(&buf, 0xa5, sizeof(buf));
            assert_int_equal(pg_json_parse_in(docs[i], len, &buf, sz, &d), 0);
            bool in = (void *)d == (void *)&buf;
            assert_true(in || !fitted); /* a larger buffer fits it too */
            fitted = in;
            assert_same_tree(pg_json_root(d), pg_json_root(want));
            pg_json_free(d);
            /* Refused the same way in any buffer, nothing left to free. */
            d = (struct pg_json_doc *)0x1;
            assert_int_equal(pg_json_parse_in(docs[i], len - 1, &buf, sz, &d), PG_ERR_ARG);
            assert_ptr_equal(d, (struct pg_json_doc *)0x1);
        }
        assert_true(fitted);
        pg_json_free(want);
    }
}

/* No part of "PIN1" left in buf after `what`. */
static void assert_no_secret(const void *buf, size_t len, const char *what, const char *doc)
{
    if (memmem(buf, len, "PIN", 3) || memmem(buf, len, "IN1", 3))
        fail_msg("part of a secret left after %s: %s", what, doc);
}

/*
 * pg_json_free_secret clears every byte the parse wrote: strings are
 * copied sixteen bytes at a time, so copying one string also writes the
 * bytes that follow it in the input, which may be (part of) a secret
 * placed after the last string the document keeps.  In a caller's buffer
 * that can be looked at afterwards: no byte of the secret may be left.
 */
static void test_free_secret_clears_all(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"k\":      \"PIN1\"}",
        "{\"k\"\t:\t\"PIN1\", \"r\" :\"PIN1\"}",
        "[\"a\",    \"PIN1\"]",
        "{\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1\",\"x\":\"y\"}",
        "{\"x\":\"y\",\"refresh_token\":\"PIN1\"}",
    };
    PG_JSON_BUF(1024) buf;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct pg_json_doc *d = NULL;
        memset(&buf, 0, sizeof(buf));
        assert_int_equal(pg_json_parse_in(docs[i], strlen(docs[i]), &buf, sizeof(buf), &d), 0);
        assert_ptr_equal(d, &buf);
        pg_json_free_secret(d);
        assert_no_secret(&buf, sizeof(buf), "pg_json_free_secret", docs[i]);
    }
}

/* A parse that fails leaves nothing of the strings it copied, whole or cut
 * short by the error, nor of its nodes: the stored set is read this way. */
static void test_failed_parse_clears(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1\\x\"}",
        "{\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1\x01\"}",
        "{\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1",
        "{\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1\",\"x\":tru}",
        "{\"a\":\"PIN1\",\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1\"} x",
        "[\"PIN1\", \"PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1PIN1\\u12\"]",
    };
    PG_JSON_BUF(1024) buf;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct pg_json_doc *d = NULL;
        memset(&buf, 0, sizeof(buf));
        assert_int_equal(pg_json_parse_in(docs[i], strlen(docs[i]), &buf, sizeof(buf), &d),
                         PG_ERR_ARG);
        assert_null(d);
        assert_no_secret(&buf, sizeof(buf), "a failed parse", docs[i]);
    }
}

/* The smallest buffer pg_json_parse_in places a document of `valid`'s
 * length in (the size depends on the length alone). */
static size_t exact_fit(const char *valid)
{
    size_t len = strlen(valid);
    for (size_t sz = 0;; sz++) {
        void *buf = malloc(sz ? sz : 1);
        struct pg_json_doc *d = NULL;
        assert_non_null(buf);
        assert_int_equal(pg_json_parse_in(valid, len, buf, sz, &d), 0);
        bool in = (void *)d == buf;
        pg_json_free(d);
        free(buf);
        if (in)
            return sz;
    }
}

/* Parse `doc` in a buffer of exactly `sz` bytes with GUARD bytes after it:
 * want is the parse's answer; the document, if any, is freed as a secret.
 * Nothing of the secret is left inside, nothing is written past sz. */
#define GUARD 64
static void wipe_in_exact_buffer(const char *doc, size_t sz, int want)
{
    unsigned char *buf = malloc(sz + GUARD);
    assert_non_null(buf);
    memset(buf, 0, sz);
    memset(buf + sz, 0xa5, GUARD);
    struct pg_json_doc *d = NULL;
    assert_int_equal(pg_json_parse_in(doc, strlen(doc), buf, sz, &d), want);
    assert_true(want != 0 || (void *)d == (void *)buf);
    pg_json_free_secret(d);
    assert_no_secret(buf, sz, want ? "a failed parse" : "pg_json_free_secret", doc);
    for (size_t i = 0; i < GUARD; i++)
        if (buf[sz + i] != 0xa5)
            fail_msg("byte %zu past a buffer of %zu bytes written: %s", i, sz, doc);
    free(buf);
}

/*
 * The clearing of a document in a caller's buffer that just fits it stays
 * inside that buffer, whether the parse failed (the whole string area and
 * every node block are cleared) or succeeded (pg_json_free_secret), also
 * when the nodes grew into blocks of their own (a dense array beside the
 * secret, before or after it), and leaves nothing of the secret.  (In the
 * sanitizer and valgrind runs, the blocks are also seen freed once each.)
 */
static void test_wipe_stays_in_buffer(void **state)
{
    (void)state;
    char dense[600], valid[1024], bad[1024];
    for (size_t i = 0; i < 299; i++)
        memcpy(dense + 2 * i, "0,", 2);
    strcpy(dense + 598, "0");
    /* The dense array goes between the two halves of each shape. */
    static const char *const shapes[][2] = {
        {"{\"n\":[", "],\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1PIN1\"}"},
        {"{\"refresh_token\":\"PIN1PIN1PIN1PIN1PIN1PIN1\",\"n\":[", "]}"},
        {"{\"refresh_token\":\"PIN1PIN1\\nPIN1PIN1\\u0041\",\"n\":[", "],\"x\":\"y\"}"},
    };
    /* Each shape valid, then spoilt at its last bytes: the same length. */
    static const char *const spoilers[] = {" ", "\x01}", "-", "}}"};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        snprintf(valid, sizeof(valid), "%s%s%s", shapes[i][0], dense, shapes[i][1]);
        size_t len = strlen(valid), sz = exact_fit(valid);
        wipe_in_exact_buffer(valid, sz, 0);
        for (size_t k = 0; k < sizeof(spoilers) / sizeof(spoilers[0]); k++) {
            size_t n = strlen(spoilers[k]);
            memcpy(bad, valid, len + 1);
            memcpy(bad + len - n, spoilers[k], n);
            wipe_in_exact_buffer(bad, sz, PG_ERR_ARG);
        }
    }
}

/*
 * No byte past `len` is read, whatever ends the input: each document, and
 * each of its prefixes, placed to end at an inaccessible page (strings are
 * scanned sixteen bytes at a time, digits eight at a time).
 */
static void test_no_read_past_end(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "\"0123456789abcdef0123456789abcdef\"",
        "[\"0123456789abcde\",\"0123456789abcdef\",\"0123456789abcdefg\"]",
        "\"\\u00e9\\ud83d\\ude00\\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
        "[1234567890123456789,-9223372036854775808,12345678,123456789,1.25e-10,0]",
        "{\"exp\":1767229200,\"t\":true,\"f\":false,\"n\":null}",
        "12345678",
        "1234567890123456",
        "-1234567",
        " \t\r\n[ \t\r\n] \t\r\n",
    };
    struct guarded g;
    guarded_open(&g);
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        size_t len = strlen(docs[i]);
        struct pg_json_doc *d = NULL;
        assert_int_equal(pg_json_parse(guarded_copy(&g, docs[i], len), len, &d), 0);
        pg_json_free(d);
        for (size_t cut = 0; cut < len; cut++) {
            d = NULL;
            int r = pg_json_parse(guarded_copy(&g, docs[i], cut), cut, &d);
            assert_true(r == 0 || r == PG_ERR_ARG);
            pg_json_free(d);
        }
    }
    guarded_close(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_members),
        cmocka_unit_test(test_surrogate_pair),
        cmocka_unit_test(test_int64_limits),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_member_limit),
        cmocka_unit_test(test_densest),
        cmocka_unit_test(test_string_offsets),
        cmocka_unit_test(test_duplicates_among_many),
        cmocka_unit_test(test_integer_digits),
        cmocka_unit_test(test_parse_in_buffer),
        cmocka_unit_test(test_free_secret_clears_all),
        cmocka_unit_test(test_failed_parse_clears),
        cmocka_unit_test(test_wipe_stays_in_buffer),
        cmocka_unit_test(test_no_read_past_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
