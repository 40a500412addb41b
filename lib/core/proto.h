/*
 * The helper protocol: typed, length-capped messages over a pipe between
 * poolgate-helper and the program that started it (the CLI, later the PAM
 * module).  docs/helper-protocol.md describes who may send what.
 *
 *   message = type (1 byte) | length (4 bytes, big-endian) | payload
 *   payload = one JSON object, at most PG_PROTO_MAX bytes
 */
#ifndef PG_PROTO_H
#define PG_PROTO_H

#include <jansson.h>

#include "poolgate/poolgate.h"

#define PG_PROTO_MAX (64 * 1024)
/* Once a message's first byte has arrived, the rest is due within this. */
#define PG_MSG_REST_MS 10000

enum pg_msg_type {
    /* requests, to the helper */
    PG_MSG_LOGIN = 'L',      /* {"config", "uid"}: device sign-in, store the set */
    PG_MSG_REFRESH = 'R',    /* {"config", "uid"}: redeem the stored refresh token */
    PG_MSG_KEYS = 'K',       /* {"config", "unknown_kid"}: bring the key cache up to date */
    PG_MSG_LOGOUT = 'O',     /* {"config", "uid"}: delete the stored set */
    PG_MSG_CHECK = 'C',      /* {"config"}: poolgate doctor's checks of the provider */
    PG_MSG_REGISTER = 'G',   /* {"config", "uid", "agent", "public_key", "replace",
                                "ticket"}: enroll */
    PG_MSG_UNREGISTER = 'U', /* {"config", "uid", "agent", "ticket"}: remove from the pool */
    /* events, from the helper */
    PG_MSG_PROMPT = 'P', /* {"verification_uri", "user_code", "expires_in", "message"?} */
    PG_MSG_DONE = 'D',   /* {"status", "message"}: the last message of every exchange */
};

/* Write one message; PG_ERR_IO on a write failure. */
int pg_msg_write(int fd, enum pg_msg_type type, json_t *payload);

/*
 * Read one message: checks the length cap before allocating, rejects
 * unknown types, embedded NULs and anything but one JSON object.  On
 * success *payload is owned by the caller.  PG_ERR_IO at end of input.
 */
int pg_msg_read(int fd, enum pg_msg_type *type, json_t **payload, struct pg_error *err);

/* Overwrite a JSON string's bytes in place (a token, before json_decref). */
void pg_json_clear_string(json_t *s);

#endif
