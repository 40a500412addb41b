/*
 * Helper protocol framing (see proto.h).
 *
 * MUST: check the length against PG_PROTO_MAX before allocating; accept only
 * known message types and a single JSON object without NUL bytes.
 */
#include <stdint.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"

int pg_msg_write(int fd, enum pg_msg_type type, json_t *payload)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    if (!text)
        return PG_ERR_NOMEM;
    size_t len = strlen(text);
    unsigned char hdr[5] = {(unsigned char)type, (unsigned char)(len >> 24),
                            (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                            (unsigned char)len};
    int r = len > PG_PROTO_MAX ? PG_ERR_ARG : pg_write_all(fd, hdr, sizeof(hdr));
    if (r == 0)
        r = pg_write_all(fd, (unsigned char *)text, len);
    pg_memzero(text, len);
    free(text);
    return r;
}

static bool known_type(unsigned char t)
{
    return t == PG_MSG_LOGIN || t == PG_MSG_REFRESH || t == PG_MSG_KEYS || t == PG_MSG_LOGOUT ||
           t == PG_MSG_CHECK || t == PG_MSG_REGISTER || t == PG_MSG_UNREGISTER ||
           t == PG_MSG_PROMPT || t == PG_MSG_DONE;
}

int pg_msg_read(int fd, enum pg_msg_type *type, json_t **payload, struct pg_error *err)
{
    unsigned char hdr[5];
    if (pg_read_all(fd, hdr, sizeof(hdr)) < 0)
        return pg_fail(err, PG_ERR_IO, "helper protocol: the other side closed the pipe");
    size_t len = (size_t)hdr[1] << 24 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 8 | hdr[4];
    if (!known_type(hdr[0]))
        return pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: unknown message type");
    if (len > PG_PROTO_MAX)
        return pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: message longer than %d bytes",
                       PG_PROTO_MAX);
    char *buf = malloc(len + 1);
    if (!buf)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    int r = pg_read_all(fd, (unsigned char *)buf, len);
    json_error_t jerr;
    json_t *doc = NULL;
    if (r < 0)
        r = pg_fail(err, PG_ERR_IO, "helper protocol: message cut short");
    else if (!memchr(buf, '\0', len))
        doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    /* (json_is_object evaluates its argument twice: never pass it a call.) */
    if (r == 0 && !json_is_object(doc))
        r = pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: payload is not a JSON object");
    pg_memzero(buf, len);
    free(buf);
    if (r < 0) {
        json_decref(doc);
        return r;
    }
    *type = (enum pg_msg_type)hdr[0];
    *payload = doc;
    return 0;
}

void pg_json_clear_string(json_t *s)
{
    if (json_is_string(s))
        pg_memzero((void *)(uintptr_t)json_string_value(s), json_string_length(s));
}
