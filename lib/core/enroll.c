/*
 * The caller's half of agent registration (see enroll.h; the helper's half
 * is helper/enroll.c).
 *
 * MUST:
 *   - Generate the private key here and send only its public half.
 *   - Touch the pool only after every local precondition holds (config,
 *     agent_dir, a helper account apart from the agent account), and the
 *     agent's files only after the pool accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agentfiles.h"
#include "enroll.h"
#include "fileio.h"
#include "internal.h"
#include "service.h"

/* Extra time for the helper beyond login_timeout (its own deadline). */
#define HELPER_SLACK_MS 30000

int pg_agent_name(const struct pg_config *cfg, char *out, size_t outsz, struct pg_error *err)
{
    char host[256] = "";
    if (cfg->agent_name) {
        snprintf(out, outsz, "%s", cfg->agent_name);
        return 0;
    }
    if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
        return pg_fail(err, PG_ERR_CONFIG, "agent_name is not set and the host has no name");
    host[strcspn(host, ".")] = '\0'; /* the short name, as the agent's default */
    snprintf(out, outsz, "%s", host);
    return 0;
}

/* The processor as .NET's agent names it in Agent.OSArchitecture. */
static const char *architecture(const char *machine)
{
    static const struct {
        const char *prefix, *name;
    } map[] = {{"x86_64", "X64"}, {"aarch64", "ARM64"}, {"arm", "ARM"},
               {"i686", "X86"},   {"i386", "X86"},      {"s390x", "S390X"}};
    for (size_t i = 0; i < PG_ARRAY_SIZE(map); i++)
        if (strncmp(machine, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].name;
    return machine;
}

static int settings_ok(const struct pg_config *cfg, struct pg_error *err)
{
    if (!cfg->organization_url)
        return pg_fail(err, PG_ERR_CONFIG, "organization_url is not set in the configuration");
    if (!cfg->agent_dir)
        return pg_fail(err, PG_ERR_CONFIG, "agent_dir is not set in the configuration");
    /* No link anywhere on the way: the agent account may own a parent. */
    int fd = -1, r = pg_open_dir_nolinks(cfg->agent_dir, "agent_dir", &fd, err);
    if (r == 0)
        close(fd);
    if (r == PG_ERR_IO && err) /* missing, say: a setting to fix */
        err->code = PG_ERR_CONFIG;
    return r == PG_ERR_IO ? PG_ERR_CONFIG : r;
}

int pg_helper_not_agent(const struct pg_config *cfg, uid_t helper_uid, uid_t agent_uid,
                        struct pg_error *err)
{
    struct stat st;
    if (geteuid() != 0 || helper_uid == 0)
        return 0;
    if (helper_uid == agent_uid)
        return pg_fail(err, PG_ERR_CONFIG,
                       "helper_user %s is the agent account: give the helper an account of its "
                       "own",
                       cfg->helper_user);
    /* (lstat: a link in its place is refused when the files are written.) */
    if (cfg->agent_dir && lstat(cfg->agent_dir, &st) == 0 && st.st_uid == helper_uid)
        return pg_fail(err, PG_ERR_CONFIG,
                       "helper_user %s owns agent_dir %s: give the helper an account of its own",
                       cfg->helper_user, cfg->agent_dir);
    return 0;
}

/* agent_version, or (unset) what the agent's layout shows, read as the
 * agent account. */
static int agent_version(const struct pg_enroll *e, char version[PG_AGENT_VERSION_MAX],
                         struct pg_error *err)
{
    struct pg_error why = {0};
    if (e->cfg->agent_version) {
        snprintf(version, PG_AGENT_VERSION_MAX, "%s", e->cfg->agent_version);
        return 0;
    }
    if (pg_agent_version_read(e->cfg->agent_dir, e->uid, e->gid, version, &why) == 0)
        return 0;
    return pg_fail(err, PG_ERR_CONFIG, "agent_version is not set in the configuration, and %s",
                   why.msg);
}

/* Everything local that a pool change needs, checked before the pool is
 * touched; the agent's name in `name`. */
static int preconditions(const struct pg_enroll *e, char *name, size_t namesz, struct pg_error *err)
{
    int r = settings_ok(e->cfg, err);
    if (r == 0)
        r = pg_helper_not_agent(e->cfg, e->helper.uid, e->uid, err);
    if (r == 0)
        r = pg_agent_files_check(e->cfg->agent_dir, e->uid, e->gid, err);
    if (r == 0)
        r = pg_agent_name(e->cfg, name, namesz, err);
    return r;
}

/* The request: who, what to register, and the public key. */
static json_t *register_request(const struct pg_enroll *e, const char *name, const char *version,
                                EVP_PKEY *key, struct pg_error *err)
{
    struct utsname u;
    char host[256] = "", os[600];
    char *modulus = NULL, *exponent = NULL;
    json_t *req = NULL;
    if (uname(&u) < 0 || gethostname(host, sizeof(host) - 1) < 0) {
        pg_fail(err, PG_ERR_INTERNAL, "cannot read the host's name: %s", strerror(errno));
        return NULL;
    }
    host[strcspn(host, ".")] = '\0';
    snprintf(os, sizeof(os), "%s %s %s", u.sysname, u.release, u.version);
    if (pg_agent_public_key(key, &modulus, &exponent, err) == 0 &&
        !(req =
              json_pack("{s:s, s:I, s:b, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s}}", "config",
                        e->config_path, "uid", (json_int_t)e->uid, "replace", e->replace, "agent",
                        "name", name, "version", version, "os_description", os, "os_architecture",
                        architecture(u.machine), "computer_name", host, "home_directory",
                        e->cfg->agent_dir, "public_key", "modulus", modulus, "exponent", exponent)))
        pg_fail(err, PG_ERR_NOMEM, "out of memory");
    free(modulus);
    free(exponent);
    return req;
}

/* The ticket of the sign-in made for this change: the helper holds the
 * stored set to it and uses it up. */
static int vouch(const struct pg_enroll *e, json_t *req, struct pg_error *err)
{
    if (e->unattended)
        return 0;
    if (!e->ticket || !e->ticket[0])
        return pg_fail(err, PG_ERR_DENIED, "no sign-in was made for this change");
    if (json_object_set_new(req, "ticket", json_string(e->ticket)) < 0)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    return 0;
}

/* The helper gets a deadline of its own, earlier than ours: it must not
 * change the pool after we have given up waiting for it. */
static int call(const struct pg_enroll *e, enum pg_msg_type type, json_t *req, json_t **done,
                struct pg_enrolled *out, struct pg_error *err)
{
    struct pg_helper h = e->helper;
    h.refusal = &out->refusal;
    int64_t deadline = pg_monotonic_ms() + e->cfg->login_timeout * 1000L + HELPER_SLACK_MS;
    if (!req ||
        json_object_set_new(req, "deadline_ms", json_integer(deadline - HELPER_SLACK_MS / 2)) < 0)
        return pg_fail(err, PG_ERR_NOMEM, "out of memory");
    return pg_helper_call(&h, type, req, deadline, done, err);
}

/* DONE's "agent" as the files need it; NULL members make it malformed. */
static int settings_from(json_t *done, const struct pg_config *cfg, struct pg_agent_settings *s,
                         struct pg_enrolled *out, struct pg_error *err)
{
    json_t *a = json_object_get(done, "agent");
    const char *server = json_string_value(json_object_get(a, "server_url"));
    *s = (struct pg_agent_settings){
        .agent_id = json_integer_value(json_object_get(a, "id")),
        .agent_name = json_string_value(json_object_get(a, "name")),
        .pool_id = json_integer_value(json_object_get(a, "pool_id")),
        .pool_name = json_string_value(json_object_get(a, "pool")),
        /* The agent keeps the URL it was given when the service names none. */
        .server_url = server ? server : cfg->organization_url,
        .client_id = json_string_value(json_object_get(a, "client_id")),
        .authorization_url = json_string_value(json_object_get(a, "authorization_url"))};
    if (s->agent_id <= 0 || !s->agent_name || s->pool_id <= 0 || !s->pool_name)
        return pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: malformed agent");
    out->agent_id = s->agent_id;
    out->pool_id = s->pool_id;
    out->replaced = json_is_true(json_object_get(done, "replaced"));
    /* Azure DevOps' text, shown on terminals and in the PAM conversation. */
    pg_printable(out->agent_name, sizeof(out->agent_name), s->agent_name);
    return 0;
}

/* Who the helper's gate let through, for the audit line. */
static void identity_from(json_t *done, struct pg_enrolled *out)
{
    json_t *id = json_object_get(done, "identity");
    const char *oid = json_string_value(json_object_get(id, "oid"));
    const char *tid = json_string_value(json_object_get(id, "tid"));
    const char *name = json_string_value(json_object_get(id, "name"));
    pg_printable(out->oid, sizeof(out->oid), oid ? oid : "-");
    pg_printable(out->tid, sizeof(out->tid), tid ? tid : "-");
    pg_printable(out->name, sizeof(out->name), name);
}

/* The pool change is made whatever the service does after it: a failure
 * there is reported beside the success, not as the outcome. */
static void service_after(int r, const struct pg_error *why, struct pg_enrolled *out)
{
    if (r < 0)
        snprintf(out->service_error, sizeof(out->service_error), "%s",
                 why->msg[0] ? why->msg : pg_strerror(r));
}

/* The change failed after the agent was stopped: its files are as they
 * were, so it runs again. */
static void resume(const struct pg_enroll *e, struct pg_enrolled *out)
{
    struct pg_error why = {0};
    service_after(pg_service_hook(e->cfg, e->uid, e->gid, PG_SERVICE_RESUME, &why), &why, out);
}

int pg_enroll(const struct pg_enroll *e, struct pg_enrolled *out, struct pg_error *err)
{
    struct pg_error why = {0};
    int running = 0;
    EVP_PKEY *key = NULL;
    json_t *done = NULL;
    struct pg_agent_settings s;
    struct pg_agent_files files = {0};
    char name[257], version[PG_AGENT_VERSION_MAX];
    memset(out, 0, sizeof(*out));
    json_t *unattended = e->unattended ? json_object() : NULL;
    int r = preconditions(e, name, sizeof(name), err);
    if (r == 0)
        r = agent_version(e, version, err);
    if (r == 0 && e->unattended && !unattended)
        r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
    /* The credential's checks (and assertions) before the key: a bad
     * certificate_file fails before anything slow is done. */
    if (r == 0 && unattended)
        r = e->unattended->request(e, pg_monotonic_ms() + e->cfg->login_timeout * 1000L, unattended,
                                   err);
    if (r == 0)
        r = pg_agent_key_new(&key, err);
    /* A replacement changes the agent's credentials: it stops first. */
    if (r == 0 && e->replace &&
        (running = pg_service_hook(e->cfg, e->uid, e->gid, PG_SERVICE_BEFORE_CHANGE, err)) < 0)
        r = running;
    if (r == 0) {
        json_t *req = register_request(e, name, version, key, err);
        r = req ? 0 : PG_ERR_NOMEM;
        if (r == 0 && unattended && json_object_update(req, unattended) < 0)
            r = pg_fail(err, PG_ERR_NOMEM, "out of memory");
        if (r == 0)
            r = vouch(e, req, err);
        if (r == 0)
            r = call(e, PG_MSG_REGISTER, req, &done, out, err);
        json_decref(req);
    }
    json_decref(unattended);
    if (r == 0)
        r = settings_from(done, e->cfg, &s, out, err);
    if (r == 0 && (s.client_id == NULL || s.authorization_url == NULL))
        r = pg_fail(err, PG_ERR_PROTOCOL, "helper protocol: the agent has no OAuth client");
    if (r == 0 && e->unattended) {
        identity_from(done, out);
        r = e->unattended->write(e->cfg, done, e->uid, e->gid, err);
    }
    if (r == 0)
        r = pg_agent_files_render(key, &s, &files, err);
    if (r == 0)
        r = pg_agent_files_write(e->cfg->agent_dir, e->uid, e->gid, &files, err);
    if (r == 0)
        service_after(pg_service_hook(e->cfg, e->uid, e->gid, PG_SERVICE_AFTER_REGISTER, &why),
                      &why, out);
    if (r < 0 && running > 0)
        resume(e, out);
    pg_agent_files_clear(&files);
    json_decref(done);
    EVP_PKEY_free(key);
    return r;
}

int pg_unenroll(const struct pg_enroll *e, struct pg_enrolled *out, struct pg_error *err)
{
    struct pg_error why = {0};
    json_t *done = NULL;
    char name[257];
    memset(out, 0, sizeof(*out));
    int running = 0, r = preconditions(e, name, sizeof(name), err);
    /* The agent stops before it is removed from the pool: nothing changes
     * when it cannot be stopped. */
    if (r == 0 &&
        (running = pg_service_hook(e->cfg, e->uid, e->gid, PG_SERVICE_BEFORE_CHANGE, err)) < 0)
        r = running;
    if (r == 0) {
        json_t *req = json_pack("{s:s, s:I, s:{s:s}}", "config", e->config_path, "uid",
                                (json_int_t)e->uid, "agent", "name", name);
        r = req ? vouch(e, req, err) : pg_fail(err, PG_ERR_NOMEM, "out of memory");
        if (r == 0)
            r = call(e, PG_MSG_UNREGISTER, req, &done, out, err);
        json_decref(req);
    }
    if (r == 0) {
        json_t *a = json_object_get(done, "agent");
        out->agent_id = json_integer_value(json_object_get(a, "id"));
        out->pool_id = json_integer_value(json_object_get(a, "pool_id"));
        out->was_gone = json_is_true(json_object_get(done, "was_gone"));
        snprintf(out->agent_name, sizeof(out->agent_name), "%s", name);
    }
    if (r == 0)
        r = pg_agent_files_remove(e->cfg->agent_dir, e->uid, e->gid, err);
    if (r == 0)
        service_after(pg_service_hook(e->cfg, e->uid, e->gid, PG_SERVICE_AFTER_UNREGISTER, &why),
                      &why, out);
    if (r < 0 && running > 0)
        resume(e, out);
    json_decref(done);
    return r;
}

void pg_enroll_audit(char *out, size_t outsz, const struct pg_enroll_audit *a)
{
    const struct pg_identity *id = a->operator;
    const struct pg_refusal *f = a->refusal;
    char number[32];
    if (!outsz)
        return;
    snprintf(out, outsz, "%s", a->action);
    snprintf(number, sizeof(number), "%lld", (long long)a->agent_id);
    pg_audit_field(out, outsz, "user", a->user, false);
    pg_audit_field(out, outsz, "operator_oid", id ? id->oid : NULL, false);
    pg_audit_field(out, outsz, "tid", id ? id->tid : NULL, false);
    pg_audit_field(out, outsz, "name", id ? id->name : NULL, true);
    pg_audit_field(out, outsz, "organization", a->cfg->organization_url, false);
    pg_audit_field(out, outsz, "pool", a->cfg->pool, true);
    pg_audit_field(out, outsz, "agent", a->agent_name, true);
    pg_audit_field(out, outsz, "agent_id", number, false);
    pg_audit_field(out, outsz, "outcome", a->outcome, false);
    pg_audit_field(out, outsz, "reason", a->reason && a->reason[0] ? a->reason : "ok", true);
    /* As the sign-in's lines have them: what support asks the provider for. */
    pg_audit_field(out, outsz, "code", f && f->code[0] ? f->code : NULL, false);
    pg_audit_field(out, outsz, "correlation_id", f && f->correlation[0] ? f->correlation : NULL,
                   false);
}
