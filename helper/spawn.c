/*
 * Running poolgate-helper from the CLI: one request, the events, the result.
 *
 * MUST: start the helper by absolute path with a fixed environment and no
 * descriptors but the two pipes and stderr; when the caller is root, drop
 * to the helper account (groups, gid, uid, then check uid 0 cannot be
 * regained, then no_new_privs) before exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <qrencode.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "spawn.h"

int helper_account(const char *name, uid_t *uid, gid_t *gid)
{
    if (geteuid() != 0) {
        /* Without root there is no one to become: the helper runs as the caller. */
        *uid = geteuid();
        *gid = getegid();
        return 0;
    }
    struct passwd *pw = getpwnam(name);
    if (!pw)
        return -1;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static void drop_privileges(uid_t uid, gid_t gid)
{
    if (geteuid() != 0 || uid == 0)
        return;
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        _exit(126);
    if (setuid(0) != -1 || geteuid() == 0)
        _exit(126); /* root could be regained: refuse to run */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        _exit(126);
}

static void child(const char *path, uid_t uid, gid_t gid, int in, int out)
{
    static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    char *const argv[] = {"poolgate-helper", NULL};
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
        _exit(127);
    closefrom(STDERR_FILENO + 1);
    signal(SIGPIPE, SIG_DFL);
    drop_privileges(uid, gid);
    execve(path, argv, envp);
    _exit(127);
}

/* Strip control characters from server-provided text before it reaches a terminal. */
static void printable(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o + 1 < outsz; p++)
        out[o++] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
    out[o] = '\0';
}

/* Light modules, or the quiet zone around the symbol. */
static bool light(const QRcode *qr, int x, int y)
{
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
        return true;
    return !(qr->data[y * qr->width + x] & 1);
}

/*
 * The QR code of `text` on stderr, two module rows per line with half
 * blocks, light modules drawn: it reads on dark and light terminals alike.
 * The code only carries the address; the user code is always shown as text.
 */
static void show_qr(const char *text)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    if (!qr)
        return;
    static const char *const cells[4] = {" ", "\u2584", "\u2580", "\u2588"};
    for (int y = -2; y < qr->width + 2; y += 2) {
        for (int x = -2; x < qr->width + 2; x++)
            fputs(cells[light(qr, x, y) << 1 | light(qr, x, y + 1)], stderr);
        fputc('\n', stderr);
    }
    QRcode_free(qr);
}

static void show_prompt(json_t *p, bool qr)
{
    char uri[512], code[96];
    printable(uri, sizeof(uri), json_string_value(json_object_get(p, "verification_uri")));
    printable(code, sizeof(code), json_string_value(json_object_get(p, "user_code")));
    long minutes = (long)(json_integer_value(json_object_get(p, "expires_in")) + 59) / 60;
    fprintf(stderr,
            "To sign in, open %s in a web browser and enter the code %s\n"
            "(the code expires in %ld minute%s).\n",
            uri, code, minutes, minutes == 1 ? "" : "s");
    if (qr)
        show_qr(uri);
    fputs("Waiting for the sign-in to complete...\n", stderr);
}

/* Read events until DONE; returns its status, or -1 with msg set. */
static int read_events(int fd, bool qr, char *msg, size_t msgsz)
{
    for (;;) {
        enum pg_msg_type type;
        json_t *p = NULL;
        struct pg_error err = {0};
        if (pg_msg_read(fd, &type, &p, &err) < 0) {
            snprintf(msg, msgsz, "%s", err.msg);
            return -1;
        }
        if (type == PG_MSG_PROMPT) {
            show_prompt(p, qr);
            json_decref(p);
            continue;
        }
        json_t *st = json_object_get(p, "status");
        int status = type == PG_MSG_DONE && json_is_integer(st) ? (int)json_integer_value(st) : -1;
        snprintf(msg, msgsz, "%s",
                 status < 0 ? "helper protocol: unexpected message"
                            : json_string_value(json_object_get(p, "message")));
        json_decref(p);
        return status >= 0 && status <= 3 ? status : -1;
    }
}

int helper_exchange(const struct helper *h, int type, json_t *request, char *msg, size_t msgsz)
{
    int to[2] = {-1, -1}, from[2] = {-1, -1};
    if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
        snprintf(msg, msgsz, "cannot start the helper: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0)
        child(h->path, h->uid, h->gid, to[0], from[1]);
    close(to[0]);
    close(from[1]);
    int status = -1;
    if (pid < 0)
        snprintf(msg, msgsz, "cannot start the helper: %s", strerror(errno));
    else if (pg_msg_write(to[1], (enum pg_msg_type)type, request) < 0)
        snprintf(msg, msgsz, "cannot start the helper %s", h->path);
    else
        status = read_events(from[0], h->qr, msg, msgsz);
    close(to[1]);
    close(from[0]);
    int ws = 0;
    while (pid > 0 && waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (status < 0 && pid > 0 && WIFEXITED(ws) && WEXITSTATUS(ws) >= 126)
        snprintf(msg, msgsz, "cannot run the helper %s as its account", h->path);
    return status;
}
