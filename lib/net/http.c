/*
 * HTTP client on libcurl, with every limit poolgate's threat model asks for.
 *
 * MUST:
 *   - https only, for the request and for any redirect; redirects are not
 *     followed at all (an OAuth endpoint that redirects is broken or hostile).
 *     The single exception is the instance metadata call, which the caller
 *     marks with allow_plain_http.
 *   - Verify the peer and the host name; TLS 1.2 at least; trust ca_file
 *     when given.
 *   - Bound every exchange: connect timeout, total timeout (never past the
 *     caller's deadline), low-speed cutoff, and a body size cap enforced
 *     while receiving.
 *   - Set the proxy explicitly, so environment variables never choose one;
 *     no netrc, no signals, no verbose output (it would print bodies).
 *   - Clear every buffer that held a response body.
 *   - Keep connections only in a caller's pg_http_conn, and nothing else of
 *     a request there: each one sets all of its options and limits again.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "internal.h"

#define CONNECT_TIMEOUT_MS 5000L
#define LOW_SPEED_BYTES 32L  /* per second, ... */
#define LOW_SPEED_SECONDS 5L /* ... for this long, ends the exchange */

struct pg_http_conn {
    CURL *curl; /* its connection cache is what is kept */
};

struct body {
    char *data;
    size_t len, cap, max;
    bool overflow;
    int64_t date; /* the response's Date header, epoch seconds; 0 none */
};

/* Only the Date header is kept (poolgate doctor compares clocks with it). */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    char line[128];
    if (n > 5 && n < sizeof(line) && strncasecmp(ptr, "date:", 5) == 0) {
        memcpy(line, ptr + 5, n - 5);
        line[n - 5] = '\0';
        time_t t = curl_getdate(line, NULL);
        b->date = t > 0 ? (int64_t)t : 0;
    }
    return n;
}

/* Grow without leaving stale copies of what may be a token behind. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->overflow = true;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = malloc(cap);
        if (!grown)
            return 0;
        if (b->data) {
            memcpy(grown, b->data, b->len);
            pg_memzero(b->data, b->cap);
            free(b->data);
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void body_clear(struct body *b)
{
    if (b->data)
        pg_memzero(b->data, b->cap);
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* The total time allowed: the configured timeout, cut to the deadline. */
static long timeout_ms(const struct pg_http_opts *o)
{
    long ms = (o->timeout > 0 ? o->timeout : 10) * 1000L;
    if (o->deadline_ms > 0) {
        int64_t left = o->deadline_ms - pg_monotonic_ms();
        if (left < ms)
            ms = left > 0 ? (long)left : 1;
    }
    return ms;
}

static bool set_limits(CURL *c, const struct pg_http_opts *o, struct body *b)
{
    const char *protocols = o->allow_plain_http ? "http,https" : "https";
    long total = timeout_ms(o);
    return curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK &&
           /* ca_file replaces the system's store: libcurl's default CA
            * directory (/etc/ssl/certs) is not consulted beside it. */
           (!o->ca_file || (curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file) == CURLE_OK &&
                            curl_easy_setopt(c, CURLOPT_CAPATH, NULL) == CURLE_OK)) &&
           curl_easy_setopt(c, CURLOPT_PROXY, o->proxy ? o->proxy : "") == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_NOPROXY, o->proxy ? "" : "*") == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                            total < CONNECT_TIMEOUT_MS ? total : CONNECT_TIMEOUT_MS) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_SECONDS) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_VERBOSE, 0L) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)b->max) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_WRITEDATA, b) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_HEADERDATA, b) == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_USERAGENT, "poolgate") == CURLE_OK &&
           curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, NULL) == CURLE_OK;
}

/* Media type without parameters, lower-cased. */
static char *media_type(CURL *c)
{
    char *ct = NULL;
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || !ct)
        return NULL;
    size_t n = strcspn(ct, "; \t");
    char *out = pg_strndup_checked(ct, n);
    for (size_t i = 0; out && i < n; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return out;
}

/* A URL for messages: scheme, host and path, never the query. */
static void show_url(char *out, size_t outsz, const char *url)
{
    snprintf(out, outsz, "%.*s", (int)strcspn(url, "?#"), url);
}

static int perform(CURL *c, const struct pg_http_opts *o, const char *url, struct curl_slist *hdrs,
                   struct pg_http_response *res, struct pg_error *err)
{
    struct body b = {.max = o->max_bytes ? o->max_bytes : PG_HTTP_MAX_TOKEN_RESPONSE};
    char where[160];
    show_url(where, sizeof(where), url);
    int r = pg_fail(err, PG_ERR_INTERNAL, "cannot set up the HTTP request to %s", where);
    if (!set_limits(c, o, &b) || curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK)
        goto out;
    CURLcode cr = curl_easy_perform(c);
    if (b.overflow || cr == CURLE_FILESIZE_EXCEEDED) {
        r = pg_fail(err, PG_ERR_PROTOCOL, "%s: response larger than %zu bytes", where, b.max);
        goto out;
    }
    if (cr != CURLE_OK) {
        r = pg_fail(err, cr == CURLE_OUT_OF_MEMORY ? PG_ERR_NOMEM : PG_ERR_NETWORK, "%s: %s", where,
                    curl_easy_strerror(cr));
        goto out;
    }
    memset(res, 0, sizeof(*res));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
    res->content_type = media_type(c);
    if (res->status >= 300 && res->status < 400) {
        pg_http_response_clear(res);
        r = pg_fail(err, PG_ERR_NETWORK, "%s: redirect refused", where);
        goto out;
    }
    if (!b.data && !(b.data = calloc(1, 1))) {
        pg_http_response_clear(res);
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
        goto out;
    }
    res->body = TAKE_PTR(b.data);
    res->len = b.len;
    res->date = b.date;
    r = 0;
out:
    body_clear(&b);
    return r;
}

/* Headers from a NULL-terminated list; NULL with *ok false when out of memory. */
static struct curl_slist *header_list(const char *const *headers, bool *ok)
{
    struct curl_slist *hdrs = NULL, *next;
    *ok = true;
    for (size_t i = 0; headers && headers[i]; i++) {
        if (!(next = curl_slist_append(hdrs, headers[i]))) {
            curl_slist_free_all(hdrs);
            *ok = false;
            return NULL;
        }
        hdrs = next;
    }
    return hdrs;
}

int pg_http_conn_new(struct pg_http_conn **out)
{
    struct pg_http_conn *c = calloc(1, sizeof(*c));
    if (c && !(c->curl = curl_easy_init()))
        free(TAKE_PTR(c));
    *out = c;
    return c ? 0 : PG_ERR_NOMEM;
}

void pg_http_conn_free(struct pg_http_conn *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

int pg_http_request(const struct pg_http_opts *o, const char *method, const char *url,
                    const char *const *headers, const char *body, struct pg_http_response *res,
                    struct pg_error *err)
{
    CURL *c = o->conn ? o->conn->curl : curl_easy_init();
    bool ok = false;
    struct curl_slist *hdrs = header_list(headers, &ok);
    int r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    if (!c || !ok)
        goto out;
    r = pg_fail(err, PG_ERR_INTERNAL, "cannot set up the HTTP %s request", method);
    if (strcmp(method, "GET") != 0 &&
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
        goto out;
    if (body &&
        (curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) != CURLE_OK))
        goto out;
    r = perform(c, o, url, hdrs, res, err);
out:
    /* A kept handle forgets every option (the body and headers, freed
     * below, among them) and keeps only its connections. */
    if (o->conn)
        curl_easy_reset(c);
    else
        curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    return r;
}

int pg_http_get(const struct pg_http_opts *o, const char *url, const char *const *headers,
                struct pg_http_response *res, struct pg_error *err)
{
    return pg_http_request(o, "GET", url, headers, NULL, res, err);
}

int pg_http_post_form(const struct pg_http_opts *o, const char *url,
                      const struct pg_form_field *fields, size_t n, struct pg_http_response *res,
                      struct pg_error *err)
{
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    char *form = NULL;
    if (pg_form_encode(fields, n, &form) < 0)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    int r = pg_http_request(o, "POST", url, headers, form, res, err);
    pg_free_secret(form); /* it may carry a device code or refresh token */
    return r;
}

static bool form_unreserved(unsigned char ch)
{
    return isalnum(ch) || ch == '*' || ch == '-' || ch == '.' || ch == '_';
}

static size_t form_escape(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (form_unreserved(*p)) {
            if (out)
                out[o] = (char)*p;
            o++;
        } else if (*p == ' ') {
            if (out)
                out[o] = '+';
            o++;
        } else {
            if (out) {
                out[o] = '%';
                out[o + 1] = hex[*p >> 4];
                out[o + 2] = hex[*p & 15];
            }
            o += 3;
        }
    }
    return o;
}

int pg_form_encode(const struct pg_form_field *fields, size_t n, char **out)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += form_escape(fields[i].name, NULL) + form_escape(fields[i].value, NULL) + 2;
    char *buf = malloc(len), *p = buf;
    if (!buf)
        return PG_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = '&';
        p += form_escape(fields[i].name, p);
        *p++ = '=';
        p += form_escape(fields[i].value, p);
    }
    *p = '\0';
    *out = buf;
    return 0;
}

int pg_url_escape(const char *s, char **out)
{
    static const char hex[] = "0123456789ABCDEF";
    char *buf = malloc(strlen(s) * 3 + 1), *o = buf;
    if (!buf)
        return PG_ERR_NOMEM;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    *out = buf;
    return 0;
}

/* application/json, or a JSON-based type with the +json suffix (RFC 6839
 * §3.1), such as application/jwk-set+json, which key sets are served as. */
static bool json_media_type(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    return t && (strcmp(t, "application/json") == 0 ||
                 (strncmp(t, "application/", 12) == 0 && n > 17 &&
                  strcmp(t + n - 5, "+json") == 0 && !strchr(t + 12, '/')));
}

int pg_http_expect_json(const struct pg_http_response *res, long want, const char *what,
                        struct pg_error *err)
{
    if (res->status != want)
        return pg_fail(err, PG_ERR_PROTOCOL, "%s answered HTTP %ld", what, res->status);
    if (!json_media_type(res->content_type))
        return pg_fail(err, PG_ERR_PROTOCOL, "%s answered with content type %s, not JSON", what,
                       res->content_type ? res->content_type : "(none)");
    return 0;
}

void pg_http_response_clear(struct pg_http_response *res)
{
    if (!res)
        return;
    free(res->content_type);
    if (res->body)
        pg_memzero(res->body, res->len);
    free(res->body);
    memset(res, 0, sizeof(*res));
}
