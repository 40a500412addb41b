/* The strict token JSON parser: grammar, strictness and limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reject(bad[i], strlen(bad[i]));
    expect_reject("{\"a\":\"b\0\"}", 10); /* raw NUL */
}

/* The node area is sized by counting the bytes that may open a value (eight
 * at a time): the densest documents, of every length modulo 8, must fit. */
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
    /* Node capacity is computed up front; a wide flat object must fit exactly. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_members), cmocka_unit_test(test_surrogate_pair),
        cmocka_unit_test(test_int64_limits),   cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_depth_limit),    cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_member_limit),   cmocka_unit_test(test_densest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
