/*
 * The agent's key pair and registration files (see agentfiles.h).
 *
 * MUST:
 *   - Pad every RSA parameter to the length .NET demands for a 2048-bit
 *     key; a stripped leading zero makes the agent reject the file.
 *   - Write as the agent account, never as root into a directory the
 *     account controls (it could plant links); never leave a torn file.
 *   - Clear the private key's text after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentfiles.h"
#include "internal.h"
#include "proto.h"

#define KEY_BITS 2048
#define BOM "\xef\xbb\xbf"

const char *const pg_agent_file_names[PG_AGENT_FILES] = {".credentials_rsaparams", ".credentials",
                                                         ".agent"};

int pg_agent_key_new(EVP_PKEY **key, struct pg_error *err)
{
    *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)KEY_BITS);
    return *key ? 0 : pg_fail(err, PG_ERR_CRYPTO, "cannot generate the agent's RSA key");
}

/* Standard base64 of a parameter, left-padded with zeros to `width` bytes
 * (0: as few bytes as the number needs). */
static char *param_b64(EVP_PKEY *key, const char *name, int width)
{
    BIGNUM *bn = NULL;
    unsigned char raw[KEY_BITS / 8];
    char *out = NULL;
    if (!EVP_PKEY_get_bn_param(key, name, &bn))
        return NULL;
    int n = width ? width : BN_num_bytes(bn);
    if (n > 0 && n <= (int)sizeof(raw) && BN_bn2binpad(bn, raw, n) == n &&
        (out = malloc((size_t)(4 * ((n + 2) / 3) + 1))))
        EVP_EncodeBlock((unsigned char *)out, raw, n);
    pg_memzero(raw, sizeof(raw));
    BN_clear_free(bn);
    return out;
}

int pg_agent_public_key(EVP_PKEY *key, char **modulus, char **exponent, struct pg_error *err)
{
    *modulus = param_b64(key, OSSL_PKEY_PARAM_RSA_N, KEY_BITS / 8);
    *exponent = param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
    if (*modulus && *exponent)
        return 0;
    free(TAKE_PTR(*modulus));
    free(TAKE_PTR(*exponent));
    return pg_fail(err, PG_ERR_CRYPTO, "cannot read the agent's public key");
}

/* The .NET agent's layout: BOM, two-space indent, no final newline. */
static int dump(json_t *o, char **text, size_t *len)
{
    char *json = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!json)
        return PG_ERR_NOMEM;
    *len = strlen(BOM) + strlen(json);
    if ((*text = malloc(*len + 1)))
        snprintf(*text, *len + 1, BOM "%s", json);
    pg_memzero(json, strlen(json));
    free(json);
    return *text ? 0 : PG_ERR_NOMEM;
}

/* RSAParametersSerializable's members, in the order the agent writes them. */
static json_t *rsaparams(EVP_PKEY *key)
{
    static const struct {
        const char *json, *param;
        int width;
    } members[] = {
        {"d", OSSL_PKEY_PARAM_RSA_D, 256},
        {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1, 128},
        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2, 128},
        {"exponent", OSSL_PKEY_PARAM_RSA_E, 0},
        {"inverseQ", OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 128},
        {"modulus", OSSL_PKEY_PARAM_RSA_N, 256},
        {"p", OSSL_PKEY_PARAM_RSA_FACTOR1, 128},
        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2, 128},
    };
    json_t *o = json_pack("{s:s}", "ContainerName", "");
    for (size_t i = 0; o && i < PG_ARRAY_SIZE(members); i++) {
        char *v = param_b64(key, members[i].param, members[i].width);
        if (!v || json_object_set_new(o, members[i].json, json_string(v)) < 0)
            json_decref(TAKE_PTR(o));
        pg_free_secret(v);
    }
    return o;
}

/* Clear the private parameters' strings before the object goes. */
static void clear_object(json_t *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) pg_json_clear_string(v);
    json_decref(o);
}

int pg_agent_files_render(EVP_PKEY *key, const struct pg_agent_settings *s,
                          struct pg_agent_files *out, struct pg_error *err)
{
    memset(out, 0, sizeof(*out));
    json_t *params = rsaparams(key);
    json_t *creds = json_pack("{s:s, s:{s:s, s:s, s:s}}", "scheme", "OAuth", "data", "clientId",
                              s->client_id, "authorizationUrl", s->authorization_url,
                              "oauthEndpointUrl", s->authorization_url);
    json_t *agent =
        json_pack("{s:I, s:s, s:I, s:s, s:s, s:s}", "agentId", (json_int_t)s->agent_id, "agentName",
                  s->agent_name, "poolId", (json_int_t)s->pool_id, "poolName", s->pool_name,
                  "serverUrl", s->server_url, "workFolder", "_work");
    int r = params ? 0 : PG_ERR_CRYPTO;
    if (r == 0)
        r = dump(params, &out->text[PG_AGENT_FILE_RSAPARAMS], &out->len[PG_AGENT_FILE_RSAPARAMS]);
    if (r == 0)
        r = dump(creds, &out->text[PG_AGENT_FILE_CREDENTIALS],
                 &out->len[PG_AGENT_FILE_CREDENTIALS]);
    if (r == 0)
        r = dump(agent, &out->text[PG_AGENT_FILE_AGENT], &out->len[PG_AGENT_FILE_AGENT]);
    clear_object(params);
    json_decref(creds);
    json_decref(agent);
    if (r < 0) {
        pg_agent_files_clear(out);
        return pg_fail(err, r,
                       r == PG_ERR_NOMEM ? "out of memory" : "cannot read the agent's private key");
    }
    return 0;
}

void pg_agent_files_clear(struct pg_agent_files *f)
{
    for (int i = 0; i < PG_AGENT_FILES; i++) {
        if (f->text[i])
            pg_memzero(f->text[i], f->len[i]);
        free(f->text[i]);
    }
    memset(f, 0, sizeof(*f));
}

/* ---- writing as the agent account ------------------------------------------ */

struct work {
    const char *dir;
    const struct pg_agent_files *files; /* NULL: remove */
    char tmp[PG_AGENT_FILES][64];
};

/* In the child: become the agent account when we are root. */
static int become(uid_t uid, gid_t gid)
{
    if (geteuid() != 0 || uid == 0)
        return 0;
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        return errno;
    return setuid(0) == 0 ? EPERM : 0;
}

static int write_one(int dir, const char *tmp, const char *text, size_t len)
{
    unlinkat(dir, tmp, 0); /* a leftover of an interrupted run */
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : 0;
    if (!e && pg_write_all(fd, text, len) < 0)
        e = errno ? errno : EIO;
    if (!e && fsync(fd) < 0)
        e = errno;
    if (fd >= 0 && close(fd) < 0 && !e)
        e = errno;
    return e;
}

/* The child's work (async-signal-safe calls only); returns an errno value. */
static int child_work(const struct work *w)
{
    int dir = open(w->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), e = 0;
    if (dir < 0)
        return errno;
    for (int i = 0; w->files && !e && i < PG_AGENT_FILES; i++)
        e = write_one(dir, w->tmp[i], w->files->text[i], w->files->len[i]);
    for (int i = 0; !e && i < PG_AGENT_FILES; i++) {
        if (w->files && renameat(dir, w->tmp[i], dir, pg_agent_file_names[i]) < 0)
            e = errno;
        else if (!w->files && unlinkat(dir, pg_agent_file_names[PG_AGENT_FILES - 1 - i], 0) < 0 &&
                 errno != ENOENT)
            e = errno;
    }
    for (int i = 0; w->files && e && i < PG_AGENT_FILES; i++)
        unlinkat(dir, w->tmp[i], 0);
    if (!e && fsync(dir) < 0)
        e = errno;
    close(dir);
    return e;
}

/* The child reports its errno value over a pipe: a host process that
 * ignores SIGCHLD gets no exit status to read. */
static int as_agent(struct work *w, uid_t uid, gid_t gid, struct pg_error *err)
{
    int p[2], e = EIO;
    for (int i = 0; i < PG_AGENT_FILES; i++)
        snprintf(w->tmp[i], sizeof(w->tmp[i]), "%s.poolgate-new", pg_agent_file_names[i]);
    if (pipe2(p, O_CLOEXEC) < 0)
        return pg_fail(err, PG_ERR_IO, "cannot make a pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        e = become(uid, gid);
        e = e ? e : child_work(w);
        _exit(pg_write_all(p[1], &e, sizeof(e)) == 0 ? 0 : 1);
    }
    close(p[1]);
    if (pid > 0 && pg_read_all(p[0], &e, sizeof(e)) < 0)
        e = EIO;
    close(p[0]);
    if (pid < 0)
        return pg_fail(err, PG_ERR_INTERNAL, "cannot fork: %s", strerror(errno));
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (e)
        return pg_fail(err, PG_ERR_IO, "cannot %s the agent's files in %s as uid %u: %s",
                       w->files ? "write" : "remove", w->dir, (unsigned)uid, strerror(e));
    return 0;
}

int pg_agent_files_write(const char *agent_dir, uid_t uid, gid_t gid,
                         const struct pg_agent_files *f, struct pg_error *err)
{
    struct work w = {.dir = agent_dir, .files = f};
    return as_agent(&w, uid, gid, err);
}

int pg_agent_files_remove(const char *agent_dir, uid_t uid, gid_t gid, struct pg_error *err)
{
    struct work w = {.dir = agent_dir};
    return as_agent(&w, uid, gid, err);
}

bool pg_agent_registered(const char *agent_dir)
{
    int dir = open(agent_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    bool yes =
        dir >= 0 && fstatat(dir, ".agent", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
    if (dir >= 0)
        close(dir);
    return yes;
}
