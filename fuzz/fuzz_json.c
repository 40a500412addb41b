/*
 * The strict token JSON parser, differentially against jansson with
 * duplicate rejection: the two must agree on every document except where
 * json.h documents a difference (nesting deeper than PG_JSON_MAX_DEPTH,
 * an object of more than PG_JSON_MAX_MEMBERS members, reals kept without
 * a value).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "poolgate/poolgate.h"

static bool has_real(const struct pg_json *v)
{
    if (v->type == PG_JSON_REAL)
        return true;
    if (v->type == PG_JSON_ARRAY || v->type == PG_JSON_OBJECT)
        for (const struct pg_json *c = v->u.first; c; c = c->next)
            if (has_real(c))
                return true;
    return false;
}

/* The nesting depth of j (wide = false), or the most members any object in
 * it has (wide = true): the two limits json.h documents. */
static size_t measure(json_t *j, bool wide)
{
    bool container = json_is_array(j) || json_is_object(j);
    size_t m = wide && json_is_object(j) ? json_object_size(j) : 0, i;
    const char *k;
    json_t *c;
    if (json_is_array(j))
        json_array_foreach(j, i, c) if (measure(c, wide) > m) m = measure(c, wide);
    if (json_is_object(j))
        json_object_foreach(j, k, c) if (measure(c, wide) > m) m = measure(c, wide);
    return wide ? m : m + container;
}

static void same(const struct pg_json *v, json_t *j)
{
    switch (v->type) {
    case PG_JSON_NULL:
        if (!json_is_null(j))
            abort();
        break;
    case PG_JSON_TRUE:
    case PG_JSON_FALSE:
        if (!json_is_boolean(j) || json_is_true(j) != (v->type == PG_JSON_TRUE))
            abort();
        break;
    case PG_JSON_INT:
        if (!json_is_integer(j) || json_integer_value(j) != v->u.i)
            abort();
        break;
    case PG_JSON_REAL:
        if (!json_is_real(j))
            abort();
        break;
    case PG_JSON_STRING:
        if (!json_is_string(j) || json_string_length(j) != v->len ||
            memcmp(json_string_value(j), v->u.s, v->len) != 0 || strlen(v->u.s) != v->len)
            abort();
        break;
    case PG_JSON_ARRAY: {
        if (!json_is_array(j) || json_array_size(j) != v->len)
            abort();
        size_t i = 0;
        for (const struct pg_json *c = v->u.first; c; c = c->next)
            same(c, json_array_get(j, i++));
        break;
    }
    case PG_JSON_OBJECT:
        if (!json_is_object(j) || json_object_size(j) != v->len)
            abort();
        for (const struct pg_json *c = v->u.first; c; c = c->next) {
            json_t *m = json_object_get(j, c->key);
            if (!m || pg_json_get(v, c->key) != c)
                abort();
            same(c, m);
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct pg_json_doc *doc = NULL;
    int r = pg_json_parse((const char *)data, size, &doc);
    json_error_t err;
    json_t *j =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (r == 0 && j)
        same(pg_json_root(doc), j);
    else if (r == 0 && !has_real(pg_json_root(doc)))
        abort(); /* accepted what jansson refuses, and not for a real's range */
    else if (r != 0 && j && measure(j, false) <= PG_JSON_MAX_DEPTH &&
             measure(j, true) <= PG_JSON_MAX_MEMBERS && !memchr(data, '\0', size))
        abort(); /* refused a document jansson accepts (jansson stops reading at a NUL byte) */
    json_decref(j);
    pg_json_free(doc);
    return 0;
}
