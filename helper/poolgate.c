/*
 * poolgate — the administrator's command-line tool.
 *
 * Exit codes (poolgate(1)): 0 success; 1 denied or invalid; 2 usage or
 * configuration error; 3 identity provider or Azure DevOps unreachable.
 * Human text goes to stderr, --json and validate's identity to stdout.
 *
 * MUST: never print a token, not even part of one; clear token buffers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg-build-config.h"
#include "poolgate/poolgate.h"

enum { EXIT_OK = 0, EXIT_DENIED = 1, EXIT_USAGE = 2, EXIT_UNAVAILABLE = 3 };

#define TOKEN_READ_MAX (16384 + 2)
#define KEYSET_READ_MAX (256 * 1024)

struct globals {
    const char *config_path;
};

static int complain(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int complain(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("poolgate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* The one place library results become exit codes. */
static int exit_code(int err)
{
    switch (err) {
    case PG_OK:
        return EXIT_OK;
    case PG_ERR_TOKEN:
        return EXIT_DENIED;
    default:
        return EXIT_USAGE;
    }
}

/*
 * Read at most max bytes from path ("-" or NULL: stdin).  *truncated is set
 * when the input holds more than that.  The buffer is NUL-terminated.
 */
static int read_input(const char *path, size_t max, char **out, size_t *outlen, bool *truncated)
{
    bool use_stdin = !path || strcmp(path, "-") == 0;
    int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    char *buf = malloc(max + 2);
    size_t len = 0;
    int r = buf ? 0 : -ENOMEM;
    while (r == 0 && len < max + 1) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (!use_stdin)
        close(fd);
    if (r < 0) {
        if (buf)
            pg_memzero(buf, max + 2);
        free(buf);
        return r;
    }
    *truncated = len > max;
    if (*truncated)
        len = max;
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static int load_config(const struct globals *g, struct pg_config **cfg)
{
    struct pg_error err = {0};
    int r = pg_config_load(g->config_path, cfg, &err);
    if (r < 0)
        return complain(EXIT_USAGE, "%s", err.msg[0] ? err.msg : pg_strerror(r));
    return 0;
}

static int load_keyset_file(const char *path, struct pg_keyset **ks)
{
    char *text = NULL;
    size_t len = 0;
    bool truncated = false;
    int r = read_input(path, KEYSET_READ_MAX, &text, &len, &truncated);
    if (r < 0)
        return complain(EXIT_USAGE, "%s: %s", path, strerror(-r));
    struct pg_error err = {0};
    if (truncated)
        r = complain(EXIT_USAGE, "%s: key set larger than %d bytes", path, KEYSET_READ_MAX);
    else if ((r = pg_keyset_parse(text, len, ks, &err)) < 0)
        r = complain(EXIT_USAGE, "%s: %s", path, err.msg);
    free(text);
    return r;
}

static json_t *strlist_json(const struct pg_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->count; i++)
        json_array_append_new(a, json_string(l->items[i]));
    return a;
}

static void set_opt_string(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

static int print_identity(const struct pg_identity *id)
{
    json_t *o = json_object();
    if (!o)
        return complain(EXIT_USAGE, "out of memory");
    set_opt_string(o, "sub", id->sub);
    set_opt_string(o, "oid", id->oid);
    set_opt_string(o, "tid", id->tid);
    set_opt_string(o, "iss", id->iss);
    json_object_set_new(o, "aud", strlist_json(&id->aud));
    json_object_set_new(o, "exp", json_integer(id->exp));
    if (id->iat >= 0)
        json_object_set_new(o, "iat", json_integer(id->iat));
    if (id->nbf >= 0)
        json_object_set_new(o, "nbf", json_integer(id->nbf));
    json_object_set_new(o, "roles", strlist_json(&id->roles));
    set_opt_string(o, "name", id->name);
    json_object_set_new(o, "app_only", json_boolean(id->app_only));
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    if (!text)
        return complain(EXIT_USAGE, "out of memory");
    int r = puts(text) < 0 || fflush(stdout) != 0 ? complain(EXIT_USAGE, "cannot write output")
                                                  : EXIT_OK;
    free(text);
    return r;
}

static int parse_epoch(const char *s, time_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 253402300799LL)
        return complain(EXIT_USAGE, "--now: '%s' is not a positive epoch time in seconds", s);
    *out = (time_t)v;
    return 0;
}

struct validate_args {
    const char *jwks, *token;
    time_t now;
};

static int validate_parse_args(int argc, char **argv, struct validate_args *a)
{
    static const struct option opts[] = {
        {"jwks", required_argument, NULL, 'j'},
        {"now", required_argument, NULL, 'n'},
        {"token", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            a->jwks = optarg;
            break;
        case 't':
            a->token = optarg;
            break;
        case 'n':
            if ((r = parse_epoch(optarg, &a->now)) != 0)
                return r;
            break;
        case 'h':
            fputs("usage: poolgate [--config PATH] validate [--jwks FILE] [--now EPOCH] "
                  "[--token FILE]\n",
                  stdout);
            return -1;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc)
        return complain(EXIT_USAGE, "validate: unexpected argument '%s'", argv[optind]);
    if (!a->jwks)
        return complain(EXIT_USAGE, "validate: --jwks FILE is required in this version "
                                    "(fetching keys from the issuer is not available yet)");
    return 0;
}

/* Read the token; one trailing newline is allowed and dropped. */
static int read_token(const char *path, char **tok, size_t *len)
{
    bool truncated = false;
    int r = read_input(path, TOKEN_READ_MAX, tok, len, &truncated);
    if (r < 0)
        return complain(EXIT_USAGE, "%s: %s", path && strcmp(path, "-") ? path : "stdin",
                        strerror(-r));
    if (!truncated && *len > 0 && (*tok)[*len - 1] == '\n')
        (*tok)[--*len] = '\0';
    return 0;
}

static int cmd_validate(const struct globals *g, int argc, char **argv)
{
    struct validate_args a = {0};
    struct pg_config *cfg = NULL;
    struct pg_keyset *ks = NULL;
    struct pg_verify_result res = {0};
    char *tok = NULL;
    size_t len = 0;

    int r = validate_parse_args(argc, argv, &a);
    if (r != 0)
        return r < 0 ? EXIT_OK : r;
    if ((r = load_config(g, &cfg)) != 0 || (r = load_keyset_file(a.jwks, &ks)) != 0 ||
        (r = read_token(a.token, &tok, &len)) != 0)
        goto out;
    int v = pg_verify_token(cfg, ks, tok, len, &(struct pg_verify_opts){.now = a.now}, &res);
    if (v == PG_ERR_TOKEN)
        r = complain(EXIT_DENIED, "invalid token: %s: %s", pg_reason_name(res.reason), res.detail);
    else if (v < 0)
        r = complain(exit_code(v), "cannot validate: %s", pg_strerror(v));
    else
        r = print_identity(&res.id);
out:
    if (tok) {
        pg_memzero(tok, len);
        free(tok);
    }
    pg_verify_result_clear(&res);
    pg_keyset_free(ks);
    pg_config_free(cfg);
    return r;
}

static void usage(FILE *f)
{
    fputs("usage: poolgate [--config PATH] COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  validate [--jwks FILE] [--now EPOCH] [--token FILE]\n"
          "           check one token against the configured policy\n"
          "\n"
          "options:\n"
          "  --config PATH   configuration file (default " PG_DEFAULT_CONFIG ")\n"
          "  --help          show this text\n"
          "  --version       show the version\n"
          "\n"
          "See poolgate(1) and poolgate.conf(5).\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    struct globals g = {.config_path = PG_DEFAULT_CONFIG};
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            g.config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            puts("poolgate " PG_VERSION);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(&g, argc - optind, argv + optind);
    return complain(EXIT_USAGE, "unknown command '%s' (see poolgate --help)", cmd);
}
