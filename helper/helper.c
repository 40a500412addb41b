/*
 * poolgate-helper — poolgate's only door to the network.
 *
 * Started by the poolgate CLI and the PAM module with a socket on
 * stdin and stdout, as the helper account when its caller is root.  It reads
 * one request, answers with zero or more events and exactly one DONE, and
 * exits.  docs/helper-protocol.md describes the exchange.
 *
 * MUST:
 *   - Trust nothing from the caller but the request: the config file is
 *     loaded and checked here; the environment is not used.
 *   - Write tokens only to the store, never to stdout, stderr or a log;
 *     the PROMPT event carries the user code and URL, never the device code.
 *   - Hand a sign-in's enrollment ticket only to the caller of that
 *     LOGIN, in its DONE; REGISTER/UNREGISTER consume it before any call.
 *   - Store a rotated refresh token before anything else uses the answer.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <qrencode.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "helper.h"
#include "gate.h"
#include "http.h"
#include "internal.h"
#include "oidc.h"
#include "proto.h"
#include "sandbox.h"
#include "store.h"

/* The one place results become the status codes of DONE (the CLI's exit codes). */
static int status_of(int r)
{
    switch (r) {
    case 0:
        return 0;
    case PG_ERR_DENIED:
    case PG_ERR_TOKEN:
        return 1;
    case PG_ERR_NETWORK:
    case PG_ERR_PROTOCOL:
        return 3;
    default:
        return 2;
    }
}

int add_result(struct request *q, json_t *o)
{
    int r =
        o && (q->result ? json_object_update(q->result, o) : (q->result = json_incref(o), 0)) == 0
            ? 0
            : pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    json_decref(o);
    return r;
}

int fetch_json(struct request *q, const char *url, size_t max, const char *what,
               struct pg_http_response *res)
{
    struct pg_http_opts o = q->http;
    o.max_bytes = max;
    int r = pg_http_get(&o, url, NULL, res, &q->err);
    if (r == 0 && (r = pg_http_expect_json(res, 200, what, &q->err)) < 0)
        pg_http_response_clear(res);
    return r;
}

static int open_cache_dir(struct request *q, int *fd);

/* The discovery document: from the cache while under a day old, else fetched and kept. */
static int discover(struct request *q, struct pg_discovery *d)
{
    int dir = -1;
    int64_t now = pg_system_clock.wall(NULL);
    int r = open_cache_dir(q, &dir);
    if (r < 0)
        return r;
    if (pg_discovery_cache_load(dir, q->cfg->issuer, geteuid(), now, d, NULL) == 0) {
        close(dir);
        return 0;
    }
    char url[2048];
    struct pg_http_response res = {0};
    snprintf(url, sizeof(url), "%s/.well-known/openid-configuration", q->cfg->issuer);
    r = fetch_json(q, url, PG_DISCOVERY_MAX_BYTES, "the discovery endpoint", &res);
    if (r == 0)
        r = pg_discovery_parse(res.body, res.len, q->cfg->issuer, d, &q->err);
    if (r == 0)
        r = pg_discovery_cache_save(dir, q->cfg->issuer, res.body, res.len, now, &q->err);
    pg_http_response_clear(&res);
    close(dir);
    return r;
}

/* Endpoints: all three from the config, or discovery with the config's overrides. */
int endpoints(struct request *q, struct pg_discovery *d)
{
    const struct pg_config *c = q->cfg;
    int r = 0;
    if (!(c->device_authorization_endpoint && c->token_endpoint && c->jwks_uri))
        r = discover(q, d);
    static const size_t fields[] = {offsetof(struct pg_discovery, device_authorization_endpoint),
                                    offsetof(struct pg_discovery, token_endpoint),
                                    offsetof(struct pg_discovery, jwks_uri)};
    const char *given[] = {c->device_authorization_endpoint, c->token_endpoint, c->jwks_uri};
    for (size_t i = 0; r == 0 && i < PG_ARRAY_SIZE(fields); i++) {
        char **slot = (char **)((char *)d + fields[i]);
        if (!given[i])
            continue;
        free(*slot);
        if (!(*slot = strdup(given[i])))
            r = pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    }
    return r;
}

static int open_cache_dir(struct request *q, int *fd)
{
    *fd = open(q->cfg->cache_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0)
        return pg_fail(&q->err, PG_ERR_IO, "%s: %s", q->cfg->cache_dir, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
        close(*fd);
        return pg_fail(&q->err, PG_ERR_PERM,
                       "%s: not owned by the helper account, or writable "
                       "by others",
                       q->cfg->cache_dir);
    }
    return 0;
}

int update_keys(struct request *q, const struct pg_discovery *d)
{
    int dir = -1;
    int r = open_cache_dir(q, &dir);
    if (r < 0)
        return r;
    struct pg_keycache_entry e = {0};
    bool cached = pg_keycache_load(dir, q->cfg->issuer, geteuid(), &e, NULL) == 0;
    int64_t now = pg_system_clock.wall(NULL);
    enum pg_keycache_action act = pg_keycache_decide(cached ? &e : NULL, now, q->unknown_kid);
    if (act != PG_KEYCACHE_USE) {
        struct pg_http_response res = {0};
        struct pg_keyset *ks = NULL;
        r = fetch_json(q, d->jwks_uri, PG_HTTP_MAX_KEYSET, "the key set endpoint", &res);
        if (r == 0 && (r = pg_keyset_parse(res.body, res.len, &ks, &q->err)) < 0)
            r = PG_ERR_PROTOCOL;
        if (r == 0) {
            free(e.jwks);
            e.jwks = TAKE_PTR(res.body);
            e.fetched_at = now;
        }
        e.last_attempt = now;
        if (e.jwks && !e.issuer && !(e.issuer = strdup(q->cfg->issuer)) && r == 0)
            r = pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
        if (e.jwks && e.issuer) {
            int s = pg_keycache_save(dir, &e, r == 0 ? &q->err : NULL);
            r = r == 0 ? s : r;
        }
        /* A failed refresh may go on with the cached set, inside its day. */
        if (r < 0 && act == PG_KEYCACHE_REFRESH)
            r = 0;
        pg_keyset_free(ks);
        pg_http_response_clear(&res);
    }
    pg_keycache_entry_clear(&e);
    close(dir);
    return r;
}

/* Light modules, or the quiet zone around the symbol. */
static bool light(const QRcode *qr, int x, int y)
{
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
        return true;
    return !(qr->data[y * qr->width + x] & 1);
}

/*
 * The QR code of `text` as lines of half blocks, two module rows per line,
 * light modules drawn: it reads on dark and light terminals alike.  Only
 * the address is encoded; the user code is always shown as text.
 */
static char *render_qr(const char *text)
{
    static const char *const cells[4] = {" ", "\u2584", "\u2580", "\u2588"};
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    if (!qr)
        return NULL;
    size_t w = (size_t)qr->width + 4, size = (w * 3 + 1) * (w / 2 + 1) + 1, used = 0;
    char *out = malloc(size);
    for (int y = -2; out && y < qr->width + 2; y += 2) {
        for (int x = -2; x < qr->width + 2; x++) {
            const char *c = cells[light(qr, x, y) << 1 | light(qr, x, y + 1)];
            memcpy(out + used, c, strlen(c));
            used += strlen(c);
        }
        out[used++] = '\n';
    }
    if (out)
        out[used] = '\0';
    QRcode_free(qr);
    return out;
}

static int prompt_event(void *ctx, const struct pg_device_auth *a)
{
    const struct request *q = ctx;
    /* How long the operator has: the code's life, or login_timeout when shorter. */
    long valid = a->expires_in < q->cfg->login_timeout ? a->expires_in : q->cfg->login_timeout;
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "verification_uri", a->verification_uri,
                          "user_code", a->user_code, "expires_in", (json_int_t)a->expires_in,
                          "valid_for", (json_int_t)valid);
    if (o && a->message)
        json_object_set_new(o, "message", json_string(a->message));
    char *qr = o && q->qr ? render_qr(a->verification_uri) : NULL;
    if (qr)
        json_object_set_new(o, "qr", json_string(qr));
    free(qr);
    int r = o ? pg_msg_write(STDOUT_FILENO, PG_MSG_PROMPT, o) : PG_ERR_NOMEM;
    json_decref(o);
    return r;
}

int open_store_locked(struct request *q, bool create, int *dir, int *lock)
{
    int r = pg_store_open(q->cfg->state_dir, q->uid, create, geteuid(), dir, &q->err);
    if (r == 0 && (r = pg_store_lock(*dir, LOCK_TIMEOUT_MS, lock, &q->err)) < 0)
        close(*dir);
    return r;
}

/* The gate token of a set, per `validate`; NULL when it has none. */
static const char *gate_of(const struct request *q, const struct pg_tokenset *ts)
{
    return q->cfg->validate == PG_VALIDATE_ACCESS_TOKEN ? ts->access_token : ts->id_token;
}

/* Check the new gate token under the whole policy before it may be stored.
 * *unknown_kid tells whether it failed only for want of its signing key. */
int verify_gate(struct request *q, const struct pg_tokenset *ts, bool *unknown_kid)
{
    const char *gate = gate_of(q, ts);
    if (!gate)
        return pg_fail(&q->err, PG_ERR_PROTOCOL, "the provider sent no %s",
                       q->cfg->validate == PG_VALIDATE_ACCESS_TOKEN ? "access_token" : "id_token");
    enum pg_gate_keys keys = PG_GATE_KEYS_OK;
    struct pg_verify_result res = {0};
    int r = pg_gate_verify(q->cfg, geteuid(), gate, 0, &keys, &res, &q->err);
    if (r == PG_ERR_TOKEN)
        pg_fail(&q->err, PG_ERR_TOKEN, "invalid token: %s: %s", pg_reason_name(res.reason),
                res.detail);
    *unknown_kid = keys == PG_GATE_KEYS_UNKNOWN_KID;
    pg_verify_result_clear(&res);
    return r;
}

/* Keep the stored set's gate token for DONE: the caller verifies it itself. */
static int take_gate(struct request *q, struct pg_tokenset *ts)
{
    char **gate = q->cfg->validate == PG_VALIDATE_ACCESS_TOKEN ? &ts->access_token : &ts->id_token;
    if (!*gate)
        return pg_fail(&q->err, PG_ERR_PROTOCOL, "the provider sent no %s",
                       q->cfg->validate == PG_VALIDATE_ACCESS_TOKEN ? "access_token" : "id_token");
    q->token = TAKE_PTR(*gate);
    return 0;
}

/*
 * A new set's gate token under the whole policy, with the keys brought up
 * to date first.  Signed by a key the cache does not hold yet: the provider
 * rotated its keys; fetch again (rate-limited by the cache rules) and retry
 * once.  Only a set that passes here is ever stored.
 */
static int verify_new_set(struct request *q, const struct pg_discovery *d,
                          const struct pg_tokenset *ts)
{
    bool unknown_kid = false;
    int r = update_keys(q, d);
    if (r == 0)
        r = verify_gate(q, ts, &unknown_kid);
    if (unknown_kid) {
        q->unknown_kid = true;
        memset(&q->err, 0, sizeof(q->err));
        r = update_keys(q, d);
        if (r == 0)
            r = verify_gate(q, ts, &unknown_kid);
    }
    return r;
}

/* How the set in DONE was obtained, and when the sign-in behind it was
 * made: the caller decides from these whether a person signed in now. */
static int obtained(struct request *q, const char *how, int64_t signed_in_at)
{
    return add_result(
        q, json_pack("{s:s, s:I}", "obtained", how, "signed_in_at", (json_int_t)signed_in_at));
}

/*
 * Store a completed sign-in: the lock is held for the read-compare-write
 * alone.  A stored set from a later sign-in (another person approved a code
 * after this one) is kept, and *kept_other says so; at the same second, the
 * later writer wins.  pg_store_write replaces the file atomically, so no
 * reader ever sees a torn set.
 */
static int store_sign_in(struct request *q, int dir, const struct pg_tokenset *ts, bool *kept_other)
{
    struct pg_tokenset cur = {0};
    struct pg_error ignored = {0};
    int lock = -1;
    int r = pg_store_lock(dir, LOCK_TIMEOUT_MS, &lock, &q->err);
    if (r < 0)
        return r;
    *kept_other =
        pg_store_read(dir, geteuid(), &cur, &ignored) == 0 && cur.signed_in_at > ts->signed_in_at;
    if (!*kept_other)
        r = pg_store_write(dir, ts, &q->err);
    pg_store_unlock(lock);
    pg_tokenset_clear(&cur);
    return r;
}

/* A new enrollment ticket: 128 bits from the kernel, as hex. */
static int new_ticket(struct request *q, char **out)
{
    unsigned char rnd[PG_TICKET_HEX / 2];
    char *hex = malloc(PG_TICKET_HEX + 1);
    if (!hex)
        return pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        free(hex);
        return pg_fail(&q->err, PG_ERR_IO, "no random bytes for the sign-in: %s", strerror(errno));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    pg_memzero(rnd, sizeof(rnd));
    *out = hex;
    return 0;
}

/*
 * The waits between polls of a sign-in, watching the caller's end of the
 * socket: a caller gone (sshd ends a login's process when its client
 * disconnects or its LoginGraceTime runs out, and the module never reaps
 * its helper) leaves nobody to answer.  Polling on until login_timeout
 * would let an unauthenticated client that reaches the code prompt and
 * disconnects, again and again, keep a helper polling per connection, far
 * beyond sshd's own limits.  Nothing is locked or half-written while the
 * sign-in waits (do_login), so the helper ends there.  The caller sends
 * nothing after its request: bytes that arrive anyway are read and dropped.
 */
static void sleep_watching_caller(void *ctx, int64_t ms)
{
    (void)ctx;
    int64_t end = pg_monotonic_ms() + ms;
    for (int64_t left = ms; left > 0; left = end - pg_monotonic_ms()) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        char c;
        if (poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) <= 0)
            continue;
        if ((p.revents & (POLLHUP | POLLERR | POLLNVAL)) || read(STDIN_FILENO, &c, 1) == 0)
            _exit(status_of(PG_ERR_DENIED));
    }
}

/*
 * A device-code sign-in.  No lock is held while a person is awaited or the
 * provider is asked anything: a client idling at the code prompt must not
 * hold up anyone else's sign-in for this account (each has its own device
 * code); the store is locked only to write the result.
 */
static int do_login(struct request *q)
{
    struct pg_discovery d = {0};
    struct pg_tokenset ts = {0};
    int dir = -1;
    int r = endpoints(q, &d);
    /* The store first: an unusable one fails before anyone is asked to sign in. */
    if (r == 0)
        r = pg_store_open(q->cfg->state_dir, q->uid, true, geteuid(), &dir, &q->err);
    if (r == 0) {
        struct pg_device_request req = {
            d.device_authorization_endpoint, d.token_endpoint, q->cfg->client_id, q->cfg->scope,
            q->cfg->login_timeout,           q->cfg->resource};
        struct pg_clock clock = pg_system_clock;
        clock.sleep_ms = sleep_watching_caller;
        r = pg_device_login(&q->http, &req, &clock, prompt_event, q, &ts, &q->err);
    }
    ts.signed_in_at = ts.stored_at; /* a person has just signed in */
    bool kept_other = false;
    if (r == 0)
        r = verify_new_set(q, &d, &ts);
    /* Only this sign-in's caller learns its ticket: a registration needs it. */
    if (r == 0)
        r = new_ticket(q, &ts.enroll_ticket);
    if (r == 0)
        r = store_sign_in(q, dir, &ts, &kept_other);
    if (r == 0)
        r = obtained(q, "sign-in", ts.signed_in_at);
    if (r == 0 && !kept_other)
        r = add_result(q, json_pack("{s:s}", "ticket", ts.enroll_ticket));
    if (r == 0)
        r = take_gate(q, &ts);
    if (dir >= 0)
        close(dir);
    pg_tokenset_clear(&ts);
    pg_discovery_clear(&d);
    return r;
}

/* Whether two strings (either may be NULL) differ. */
static bool differ(const char *a, const char *b)
{
    return (a || b) && (!a || !b || strcmp(a, b) != 0);
}

/*
 * Whether the set read under the lock was stored by another helper while
 * this one waited (its refresh token or gate token is not the one `seen`
 * before the lock: a gate token alone can come back byte for byte, as
 * signatures such as RS256 are deterministic) and can be handed out as it
 * is: it verifies from the cached keys and is further than
 * PG_GATE_EXPIRY_MARGIN_S from its end.  Logins arriving together at the
 * stored token's expiry each ask for a refresh; redeeming the refresh
 * token again for every queued request would hold the lock across one
 * more exchange with the provider each, and a row of unauthenticated
 * clients could keep an operator's completed sign-in from being stored
 * (it waits LOCK_TIMEOUT_MS for the lock).
 */
static bool stored_meanwhile(struct request *q, const struct pg_tokenset *seen,
                             const struct pg_tokenset *cur)
{
    const char *gate = gate_of(q, cur);
    if (!gate ||
        !(differ(seen->refresh_token, cur->refresh_token) || differ(gate_of(q, seen), gate)))
        return false;
    enum pg_gate_keys keys = PG_GATE_KEYS_OK;
    struct pg_verify_result res = {0};
    struct pg_error ignored = {0};
    bool usable = pg_gate_verify(q->cfg, geteuid(), gate, 0, &keys, &res, &ignored) == 0 &&
                  res.id.exp + q->cfg->clock_skew - (int64_t)time(NULL) > PG_GATE_EXPIRY_MARGIN_S;
    pg_verify_result_clear(&res);
    return usable;
}

/*
 * The rotation, under the lock (RFC 6749 §6: the provider may retire the
 * old refresh token as soon as it answers), and the check of the answer.
 * A refreshed set whose gate token fails the policy (a role taken away,
 * another tenant) is never stored; as the old refresh token may be spent
 * already, the stored set is deleted: fail closed, the next login asks
 * for a sign-in.  Keys are fetched here only when the answer names a key
 * the cache lacks (a provider's key rollover), bounded by http_timeout.
 */
static int rotate(struct request *q, const struct pg_discovery *d, int dir, struct pg_tokenset *old,
                  struct pg_tokenset *fresh)
{
    int r = pg_refresh(&q->http, d->token_endpoint, q->cfg->client_id, old->refresh_token,
                       q->cfg->scope, q->cfg->resource, &pg_system_clock, fresh, &q->err);
    /* Keep the old refresh token only when the provider did not rotate it. */
    if (r == 0 && !fresh->refresh_token)
        fresh->refresh_token = TAKE_PTR(old->refresh_token);
    fresh->signed_in_at = old->signed_in_at; /* a refresh is no sign-in */
    /* The ticket is the person's sign-in's: kept, never handed out here. */
    fresh->enroll_ticket = TAKE_PTR(old->enroll_ticket);
    bool answered = r == 0;
    if (r == 0)
        r = verify_new_set(q, d, fresh);
    if (answered && r == PG_ERR_TOKEN) {
        char why[PG_ERROR_MAX];
        struct pg_error ignored = {0};
        snprintf(why, sizeof(why), "%s", q->err.msg);
        pg_store_delete(dir, &ignored);
        r = pg_fail(&q->err, PG_ERR_DENIED,
                    "the refreshed token does not meet the policy (%.300s); the stored set is "
                    "deleted: sign in again",
                    why);
    }
    if (r == 0)
        r = pg_store_write(dir, fresh, &q->err);
    if (r < 0 && q->refusal.drop_refresh) /* expired, revoked: keep nothing unusable */
        drop_refused_refresh(dir, old->refresh_token);
    return r;
}

/*
 * A refresh.  The set is read once before the lock is awaited, and again
 * under it: a set another helper stored meanwhile is handed out as it is
 * (stored_meanwhile), else the stored refresh token is redeemed (rotate).
 * The key set is brought up to date before the lock.
 */
static int do_refresh(struct request *q)
{
    struct pg_discovery d = {0};
    struct pg_tokenset seen = {0}, old = {0}, fresh = {0};
    struct pg_error ignored = {0};
    int dir = -1, lock = -1;
    int r = pg_store_open(q->cfg->state_dir, q->uid, false, geteuid(), &dir, &q->err);
    /* (Unread, `seen` tells nothing: then the refresh is made.) */
    bool seen_ok = r == 0 && pg_store_read(dir, geteuid(), &seen, &ignored) == 0;
    if (r == 0)
        r = endpoints(q, &d);
    if (r == 0)
        r = update_keys(q, &d);
    if (r == 0)
        r = pg_store_lock(dir, LOCK_TIMEOUT_MS, &lock, &q->err);
    if (r < 0)
        goto out;
    if ((r = pg_store_read(dir, geteuid(), &old, &q->err)) == 0 && !old.refresh_token)
        r = pg_fail(&q->err, PG_ERR_DENIED, "no refresh token is stored");
    if (r == 0)
        r = pg_sign_in_fresh(q->cfg, &old, (int64_t)time(NULL), &q->err);
    if (r == 0 && seen_ok && stored_meanwhile(q, &seen, &old)) {
        fresh = old;
        old = (struct pg_tokenset){0};
    } else if (r == 0)
        r = rotate(q, &d, dir, &old, &fresh);
    pg_store_unlock(lock);
    if (r == 0)
        r = obtained(q, "refresh", fresh.signed_in_at);
    if (r == 0)
        r = take_gate(q, &fresh);
out:
    if (dir >= 0)
        close(dir);
    pg_tokenset_clear(&seen);
    pg_tokenset_clear(&old);
    pg_tokenset_clear(&fresh);
    pg_discovery_clear(&d);
    return r;
}

/* The token endpoint goes back too: unattended enrollment signs its
 * client assertions for that audience. */
static int do_keys(struct request *q)
{
    struct pg_discovery d = {0};
    int r = endpoints(q, &d);
    if (r == 0)
        r = update_keys(q, &d);
    if (r == 0 && !(q->result = json_pack("{s:s}", "token_endpoint", d.token_endpoint)))
        r = pg_fail(&q->err, PG_ERR_NOMEM, "out of memory");
    pg_discovery_clear(&d);
    return r;
}

/* Whether this user has no store directory at all: then a logout has
 * nothing to do.  Any other failure to open the store is an error, or a
 * logout could report success and leave the set behind. */
static bool never_stored(const struct request *q)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/%u", q->cfg->state_dir, (unsigned)q->uid);
    return n > 0 && (size_t)n < sizeof(path) &&
           fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

static int do_logout(struct request *q)
{
    int dir = -1, lock = -1;
    if (never_stored(q))
        return 0;
    int r = open_store_locked(q, false, &dir, &lock);
    if (r == 0) {
        r = pg_store_delete(dir, &q->err);
        pg_store_unlock(lock);
        close(dir);
    }
    return r;
}

static const struct {
    enum pg_msg_type type;
    int (*handler)(struct request *q);
} handlers[] = {
    {PG_MSG_LOGIN, do_login},   {PG_MSG_REFRESH, do_refresh},   {PG_MSG_KEYS, do_keys},
    {PG_MSG_LOGOUT, do_logout}, {PG_MSG_REGISTER, do_register}, {PG_MSG_UNREGISTER, do_unregister},
    {PG_MSG_CHECK, do_check},
};

static int parse_request(json_t *p, struct request *q)
{
    const char *config = json_string_value(json_object_get(p, "config"));
    json_t *uid = json_object_get(p, "uid");
    if (!config || (uid && (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
                            json_integer_value(uid) > 0x7fffffff)))
        return pg_fail(&q->err, PG_ERR_ARG, "malformed request");
    q->uid = (uid_t)json_integer_value(uid);
    q->unknown_kid = json_is_true(json_object_get(p, "unknown_kid"));
    q->qr = json_is_true(json_object_get(p, "qr"));
    q->payload = p;
    int r = pg_config_load(config, &q->cfg, &q->err);
    if (r == 0)
        q->http = (struct pg_http_opts){.ca_file = q->cfg->ca_file,
                                        .proxy = q->cfg->proxy,
                                        .timeout = q->cfg->http_timeout,
                                        .max_bytes = PG_HTTP_MAX_TOKEN_RESPONSE,
                                        .refusal = &q->refusal};
    return r;
}

/*
 * The helper is never set-uid or set-gid: it refuses to run if it finds
 * itself so.  Whatever started it, it keeps no descriptor beyond the pipes
 * and stderr, and nothing it might exec can gain privileges.  It leaves
 * its caller's terminal: su and sudo start it in the foreground process
 * group of a terminal their user controls, whose ^Z (SIGTSTP, sent
 * whatever the uids) stopped it with the store lock held, locking every
 * sign-in for the account out for as long as the job stayed stopped.  (As
 * a process group leader, started by hand, it cannot leave its session:
 * the job control signals are ignored then too.)
 */
static bool harden(void)
{
    if (getuid() != geteuid() || getgid() != getegid())
        return false;
    (void)setsid();
    signal(SIGTSTP, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    closefrom(STDERR_FILENO + 1);
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
}

int main(void)
{
    struct request q = {0};
    enum pg_msg_type type = PG_MSG_DONE;
    json_t *payload = NULL;
    int r;

    if (!harden()) {
        fputs("poolgate-helper: refusing to run set-uid or set-gid\n", stderr);
        return 2;
    }
    umask(077);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    r = pg_msg_read(STDIN_FILENO, &type, &payload, &q.err);
    if (r == 0)
        r = parse_request(payload, &q);
    /* Every exchange of this run goes through one set of connections: the
     * discovery document, the key set, the code and the polls share one
     * TLS handshake with the provider. */
    if (r == 0 && pg_http_conn_new(&q.http.conn) < 0)
        r = pg_fail(&q.err, PG_ERR_NOMEM, "out of memory");
    /* Confined from here on: the request and the configuration are read. */
    if (r == 0)
        r = sandbox_enter(q.cfg, NULL, &q.err);
    if (r == 0) {
        r = pg_fail(&q.err, PG_ERR_ARG, "not a request");
        for (size_t i = 0; i < PG_ARRAY_SIZE(handlers); i++)
            if (handlers[i].type == type) {
                memset(&q.err, 0, sizeof(q.err));
                r = handlers[i].handler(&q);
            }
    }
    json_t *done = json_pack("{s:i, s:s}", "status", status_of(r), "message",
                             r == 0         ? "ok"
                             : q.err.msg[0] ? q.err.msg
                                            : pg_strerror(r));
    if (done && r == 0 && q.token)
        json_object_set_new(done, "token", json_string(q.token));
    if (done && r == 0 && q.result && json_object_update(done, q.result) < 0)
        json_decref(TAKE_PTR(done));
    /* A refusal by the provider: its class, number and the administrator's fix. */
    if (done && r < 0 && q.refusal.cls != PG_IDP_NONE)
        json_object_set_new(done, "provider", refusal_json(&q));
    int w = done ? pg_msg_write(STDOUT_FILENO, PG_MSG_DONE, done) : PG_ERR_NOMEM;
    pg_json_clear_string(json_object_get(done, "token"));
    pg_json_clear_string(json_object_get(done, "ticket"));
    json_decref(done);
    pg_free_secret(q.token);
    json_decref(q.result);
    json_decref(payload);
    pg_config_free(q.cfg);
    pg_http_conn_free(q.http.conn);
    curl_global_cleanup();
    return w == 0 ? status_of(r) : 2;
}
