/* Helper protocol framing: round trip, and every malformed message refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "poolgate/poolgate.h"
#include "proto.h"

/* Feed raw bytes through a pipe and read one message back. */
static int read_raw(const void *bytes, size_t n, enum pg_msg_type *type, json_t **payload,
                    struct pg_error *err)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], bytes, n), (ssize_t)n);
    close(p[1]);
    int r = pg_msg_read(p[0], type, payload, err);
    close(p[0]);
    return r;
}

static void frame(unsigned char *out, char type, const char *body, uint32_t claimed)
{
    out[0] = (unsigned char)type;
    out[1] = (unsigned char)(claimed >> 24);
    out[2] = (unsigned char)(claimed >> 16);
    out[3] = (unsigned char)(claimed >> 8);
    out[4] = (unsigned char)claimed;
    memcpy(out + 5, body, strlen(body));
}

static void test_round_trip(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    json_t *o = json_pack("{s:s, s:i}", "config", "/etc/poolgate/poolgate.conf", "uid", 1000);
    assert_int_equal(pg_msg_write(p[1], PG_MSG_LOGIN, o), 0);
    json_decref(o);
    close(p[1]);
    enum pg_msg_type t;
    json_t *got = NULL;
    struct pg_error err = {0};
    assert_int_equal(pg_msg_read(p[0], &t, &got, &err), 0);
    assert_int_equal(t, PG_MSG_LOGIN);
    assert_int_equal(json_integer_value(json_object_get(got, "uid")), 1000);
    json_decref(got);
    /* End of input is an I/O error, not a message. */
    assert_int_equal(pg_msg_read(p[0], &t, &got, &err), PG_ERR_IO);
    close(p[0]);
}

static void test_refusals(void **state)
{
    (void)state;
    unsigned char buf[64];
    enum pg_msg_type t;
    json_t *got = NULL;
    struct pg_error err = {0};
    frame(buf, 'Z', "{}", 2);
    assert_int_equal(read_raw(buf, 7, &t, &got, &err), PG_ERR_PROTOCOL); /* unknown type */
    frame(buf, 'L', "{}", PG_PROTO_MAX + 1);
    assert_int_equal(read_raw(buf, 7, &t, &got, &err), PG_ERR_PROTOCOL); /* too long */
    assert_non_null(strstr(err.msg, "longer than"));
    frame(buf, 'L', "[1]", 3);
    assert_int_equal(read_raw(buf, 8, &t, &got, &err), PG_ERR_PROTOCOL); /* not an object */
    frame(buf, 'L', "{\"a\":1,\"a\":2}", 13);
    assert_int_equal(read_raw(buf, 18, &t, &got, &err), PG_ERR_PROTOCOL); /* duplicate */
    frame(buf, 'L', "{}\0x", 4);
    buf[7] = '\0';
    buf[8] = 'x';
    assert_int_equal(read_raw(buf, 9, &t, &got, &err), PG_ERR_PROTOCOL); /* NUL */
    frame(buf, 'L', "{}", 10);
    assert_int_equal(read_raw(buf, 7, &t, &got, &err), PG_ERR_IO); /* cut short */
    assert_int_equal(read_raw(buf, 3, &t, &got, &err), PG_ERR_IO); /* header cut short */
    assert_null(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
