/*
 * The agent's systemd unit, as the official agent's `svc.sh install` makes
 * it (its vsts.agent.service.template and systemd.svc.sh.template), managed
 * without running any agent-owned code as root: root writes the unit into
 * systemd_unit_dir and runs systemctl; what lives in agent_dir (`.service`,
 * `runsvc.sh`) is written by the agent account (agentfiles.h).
 *
 * The unit's name is the agent's: `vsts.agent.{org}.{pool}.{agent}.service`
 * from organization_url, pool and the agent's name (the configured values),
 * shortened to 80 characters as the agent's CalculateServiceName does and
 * escaped as `systemd-escape --path` does.
 */
#ifndef PG_SERVICE_H
#define PG_SERVICE_H

#include <stdbool.h>
#include <sys/types.h>

#include "poolgate/poolgate.h"

/* The first line of every unit poolgate writes; a unit without it is not
 * poolgate's, and is never overwritten or removed. */
#define PG_SERVICE_MARKER "# Written by poolgate"

struct pg_service {
    const struct pg_config *cfg;
    char unit[256]; /* escaped unit name, e.g. vsts.agent.contoso.Default.build\x2d01.service */
    char description[600]; /* Azure Pipelines Agent (org.pool.agent), unshortened */
    char user[256];        /* the agent account's name (User=) */
    uid_t uid;
    gid_t gid;
};

/* What the unit file in systemd_unit_dir is. */
enum pg_unit_owner { PG_UNIT_NONE, PG_UNIT_POOLGATE, PG_UNIT_FOREIGN };

struct pg_service_state {
    enum pg_unit_owner owner;
    char active[32];  /* ActiveState: active, inactive, failed, ... ("" unknown) */
    char sub[32];     /* SubState: running, dead, ... */
    char enabled[32]; /* UnitFileState: enabled, disabled, ... */
    long main_pid;
};

/*
 * The raw unit name (before escaping) and the description from an
 * organization URL, pool and agent name; exposed for the unit tests.
 * Account: the first path segment for dev.azure.com, else the first label
 * of the host.  PG_ERR_CONFIG when there is none.
 */
int pg_service_names(const char *organization_url, const char *pool, const char *agent, char *raw,
                     size_t rawsz, char *description, size_t descsz, struct pg_error *err);

/* `systemd-escape --path` of a name; PG_ERR_CONFIG when the result does
 * not fit in outsz or is not a valid unit name. */
int pg_service_escape(const char *name, char *out, size_t outsz, struct pg_error *err);

/* Names and account for cfg's agent (agent_dir, organization_url set). */
int pg_service_init(struct pg_service *s, const struct pg_config *cfg, uid_t uid, gid_t gid,
                    struct pg_error *err);

/* The unit file's text (the caller frees it). */
int pg_service_unit_text(const struct pg_service *s, char **out, struct pg_error *err);

/* Write the unit (refusing one that is not poolgate's, and an agent_dir
 * below a directory that is neither root's nor the agent account's, or
 * that others may write to without the sticky bit), the agent's `.service`
 * and `runsvc.sh`, then daemon-reload and enable. */
int pg_service_install(const struct pg_service *s, struct pg_error *err);

/* Stop, disable and remove poolgate's unit and `.service`; daemon-reload.
 * No unit: nothing to do.  A unit that is not poolgate's: PG_ERR_CONFIG. */
int pg_service_uninstall(const struct pg_service *s, struct pg_error *err);

/* systemctl start, stop or restart of the unit ("start", "stop", "restart"). */
int pg_service_control(const struct pg_service *s, const char *verb, struct pg_error *err);

/* Who wrote the unit file, and what systemctl show says of the unit. */
int pg_service_state(const struct pg_service *s, struct pg_service_state *st, struct pg_error *err);

/*
 * The enrollment's hooks (agent_service = yes; without it they do nothing
 * and return 0): before a pool change that replaces or removes the agent,
 * stop its unit when one is there (returns 1 when it was running); when
 * that change then fails, start it again (RESUME: the old files are still
 * in place); after a registration, install and (re)start it; after an
 * unregistration, uninstall it.
 */
enum pg_service_phase {
    PG_SERVICE_BEFORE_CHANGE,
    PG_SERVICE_RESUME,
    PG_SERVICE_AFTER_REGISTER,
    PG_SERVICE_AFTER_UNREGISTER
};
int pg_service_hook(const struct pg_config *cfg, uid_t uid, gid_t gid, enum pg_service_phase phase,
                    struct pg_error *err);

#endif
