/* Small shared helpers: error text, string lists, clearing memory. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

PG_EXPORT const char *pg_strerror(int err)
{
    switch (err) {
    case PG_OK:
        return "success";
    case PG_ERR_NOMEM:
        return "out of memory";
    case PG_ERR_ARG:
        return "invalid argument";
    case PG_ERR_CONFIG:
        return "invalid configuration";
    case PG_ERR_IO:
        return "input/output error";
    case PG_ERR_PERM:
        return "unsafe file ownership or permissions";
    case PG_ERR_TOKEN:
        return "invalid token";
    case PG_ERR_KEYSET:
        return "invalid key set";
    case PG_ERR_CRYPTO:
        return "cryptographic library failure";
    case PG_ERR_INTERNAL:
        return "internal error";
    case PG_ERR_NETWORK:
        return "server unreachable";
    case PG_ERR_PROTOCOL:
        return "unexpected answer from server";
    case PG_ERR_DENIED:
        return "sign-in declined, expired or timed out";
    default:
        return "unknown error";
    }
}

void pg_fail_record(struct pg_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        /* A message is sent as JSON (the helper's DONE), which must be
         * UTF-8: a cut ("%.180s", or the end of msg) may split a character. */
        pg_utf8_repair(err->msg);
    }
}

void pg_strlist_clear(struct pg_strlist *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

int pg_strlist_add(struct pg_strlist *l, const char *s, size_t len)
{
    char **grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
    if (!grown)
        return PG_ERR_NOMEM;
    l->items = grown;
    char *copy = malloc(len + 1);
    if (!copy)
        return PG_ERR_NOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    l->items[l->count++] = copy;
    return 0;
}

bool pg_strlist_contains(const struct pg_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

char *pg_strndup_checked(const char *s, size_t len)
{
    if (memchr(s, '\0', len))
        return NULL;
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

PG_EXPORT void pg_memzero(void *p, size_t len)
{
    if (p && len)
        explicit_bzero(p, len);
}

void pg_free_secret(char *s)
{
    if (s) {
        pg_memzero(s, strlen(s));
        free(s);
    }
}

bool pg_https_url(const char *s)
{
    if (strncmp(s, "https://", 8) != 0 || s[8] == '\0' || s[8] == '/')
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= 0x20 || *c == 0x7f)
            return false;
    return true;
}

const char *pg_url_authority(const char *url, const char *scheme, char *host, size_t hostsz)
{
    size_t n = strlen(scheme), h = 0;
    if (strncmp(url, scheme, n) != 0)
        return NULL;
    const char *p = url + n;
    /* A DNS name or IPv4 address, or a bracketed IPv6 address: no user info. */
    if (*p == '[') {
        const char *end = strchr(p, ']');
        h = end ? (size_t)(end - p) + 1 : 0;
        for (size_t i = 1; i + 1 < h; i++)
            if (!isxdigit((unsigned char)p[i]) && p[i] != ':' && p[i] != '.')
                return NULL;
        if (h < 3)
            return NULL;
    } else {
        while (isalnum((unsigned char)p[h]) || p[h] == '.' || p[h] == '-')
            h++;
    }
    if (h == 0 || h >= hostsz)
        return NULL;
    memcpy(host, p, h);
    host[h] = '\0';
    p += h;
    if (*p == ':') {
        size_t d = 0;
        long port = 0;
        for (; d < 6 && isdigit((unsigned char)p[1 + d]); d++)
            port = port * 10 + (p[1 + d] - '0');
        if (d == 0 || port > 65535)
            return NULL;
        p += 1 + d;
    }
    if (*p != '/')
        return NULL;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c <= 0x20 || *c == 0x7f || *c == '?' || *c == '#')
            return NULL;
    return p;
}

int pg_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        /* On a socket, send() without SIGPIPE: the PAM module must never
         * raise a signal in its host process when the helper has gone. */
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return PG_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int pg_read_all(int fd, void *data, size_t len)
{
    char *p = data;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return PG_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int64_t pg_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * form, no surrogate, nothing above U+10FFFF), or 0 when there is none. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n = 0;
    if (p[0] < 0x80)
        n = 1;
    else if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    /* The second byte's range, narrower after E0, ED, F0 and F4. */
    unsigned char lo = p[0] == 0xe0 ? 0xa0 : p[0] == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = p[0] == 0xed ? 0x9f : p[0] == 0xf4 ? 0x8f : 0xbf;
    for (size_t i = 1; i < n; i++)
        if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
            return 0;
    return n;
}

void pg_utf8_repair(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n == 0)
            *p = '?';
        p += n ? n : 1;
    }
}

void pg_printable(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    if (!outsz)
        return;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o + 1 < outsz;) {
        size_t n = utf8_len(p);
        bool c1 = n == 2 && p[0] == 0xc2 && p[1] <= 0x9f; /* U+0080..U+009F */
        if (n == 0 || c1 || *p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\') {
            out[o++] = '?';
        } else if (o + n < outsz) {
            memcpy(out + o, p, n);
            o += n;
        } else {
            break; /* a character is kept whole or not at all */
        }
        p += n ? n : 1;
    }
    out[o] = '\0';
}

/* A C0 or C1 control or DEL at p (C1 as UTF-8: 0xc2 0x80..0x9f); its length. */
static size_t control_at(const unsigned char *p)
{
    if (*p < 0x20 || *p == 0x7f)
        return 1;
    return p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f ? 2 : 0;
}

/* Whether a value may stand bare: printable ASCII, no space, '"', '\' or '='. */
static bool bare_word(const char *v)
{
    if (!*v)
        return false;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '=')
            return false;
    return true;
}

void pg_audit_field(char *out, size_t outsz, const char *key, const char *value, bool quote)
{
    size_t o = strnlen(out, outsz);
    const char *v = value ? value : "-";
    quote = quote || !bare_word(v);
    /* Room for ' key=', both quotes and the NUL, or the field is left out. */
    if (o + strlen(key) + 5 > outsz)
        return;
    o += (size_t)snprintf(out + o, outsz - o, "%s%s=%s", o ? " " : "", key, quote ? "\"" : "");
    size_t end = outsz - (quote ? 2 : 1); /* keep the closing quote's room */
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        size_t ctl = control_at(p);
        bool esc = !ctl && (*p == '"' || *p == '\\');
        if (o + 1 + esc > end)
            break; /* cut, never inside an escape */
        if (esc)
            out[o++] = '\\';
        out[o++] = ctl ? '?' : (char)*p;
        p += ctl ? ctl : 1;
    }
    if (quote)
        out[o++] = '"';
    out[o] = '\0';
}

bool pg_terminal_text(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p != '\n' && control_at(p))
            return false;
    return true;
}
