/*
 * Running poolgate-helper from the CLI: one request, the events on the
 * terminal, the result.  Starting, privilege drop and reaping are in
 * lib/core/spawn.c, shared with the PAM module.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "exchange.h"
#include "spawn.h"

static void show_prompt(json_t *p)
{
    char uri[512], code[96];
    pg_printable(uri, sizeof(uri), json_string_value(json_object_get(p, "verification_uri")));
    pg_printable(code, sizeof(code), json_string_value(json_object_get(p, "user_code")));
    /* valid_for: the code's life or login_timeout, whichever ends first. */
    json_t *valid = json_object_get(p, "valid_for");
    json_int_t s = json_integer_value(valid ? valid : json_object_get(p, "expires_in"));
    long minutes = (long)((s < 0 ? 0 : s > 86400 ? 86400 : s) + 59) / 60;
    fprintf(stderr,
            "To sign in, open %s in a web browser and enter the code %s\n"
            "(the code is valid for %ld minute%s).\n",
            uri, code, minutes, minutes == 1 ? "" : "s");
    /* The helper draws the QR code from the address: blocks and newlines.
     * Anything else is not shown at all, as the module does. */
    json_t *q = json_object_get(p, "qr");
    const char *qr = json_string_value(q);
    if (qr && json_string_length(q) == strlen(qr) && pg_terminal_text(qr))
        fputs(qr, stderr);
    fputs("Waiting for the sign-in to complete...\n", stderr);
}

/* Read events until DONE; returns its status, or -1 with msg set. */
static int read_events(struct pg_helper *ph, char *msg, size_t msgsz, struct helper_done *out)
{
    for (;;) {
        enum pg_msg_type type;
        json_t *p = NULL;
        struct pg_error err = {0};
        if (pg_helper_event(ph, 0, &type, &p, &err) < 0) {
            snprintf(msg, msgsz, "%s", err.msg);
            return -1;
        }
        if (type == PG_MSG_PROMPT) {
            show_prompt(p);
            json_decref(p);
            continue;
        }
        json_t *st = json_object_get(p, "status"), *tok = json_object_get(p, "token"),
               *ticket = json_object_get(p, "ticket");
        int status = type == PG_MSG_DONE && json_is_integer(st) ? (int)json_integer_value(st) : -1;
        /* (It may quote the provider or Azure DevOps: shown filtered.) */
        pg_printable(msg, msgsz,
                     status < 0 ? "helper protocol: unexpected message"
                                : json_string_value(json_object_get(p, "message")));
        if (out)
            pg_refusal_from_done(p, &out->ref);
        if (out && json_is_string(tok) && status == 0 &&
            !(out->token = strdup(json_string_value(tok))))
            status = -1;
        if (out && json_is_string(ticket) && status == 0 &&
            !(out->ticket = strdup(json_string_value(ticket))))
            status = -1;
        if (out && status == 0)
            out->signed_in_at = json_integer_value(json_object_get(p, "signed_in_at"));
        pg_json_clear_string(tok);
        pg_json_clear_string(ticket);
        json_decref(p);
        return status >= 0 && status <= 3 ? status : -1;
    }
}

int helper_exchange(const struct helper *h, int type, json_t *request, char *msg, size_t msgsz,
                    struct helper_done *out)
{
    struct pg_helper ph = {
        .path = h->path, .uid = h->uid, .gid = h->gid, .stderr_fd = STDERR_FILENO};
    struct pg_error err = {0};
    int status = -1;
    if (out)
        *out = (struct helper_done){0};
    if (h->qr && json_object_set_new(request, "qr", json_true()) < 0)
        snprintf(msg, msgsz, "out of memory");
    else if (pg_helper_start(&ph, (enum pg_msg_type)type, request, &err) < 0)
        snprintf(msg, msgsz, "%s", err.msg);
    else
        status = read_events(&ph, msg, msgsz, out);
    int ws = pg_helper_stop(&ph, status < 0);
    if (status < 0 && ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) >= 126)
        snprintf(msg, msgsz, "cannot run the helper %s as its account", h->path);
    return status;
}
