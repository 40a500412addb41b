/*
 * Agent registration as the privileged caller does it (the CLI run through
 * sudo, the PAM module's session phase): make the key pair here, let the
 * helper talk to Azure DevOps, write the agent's files as the agent account.
 * The caller checks the gate before and writes the audit line after.
 */
#ifndef PG_ENROLL_H
#define PG_ENROLL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "entra_errors.h"
#include "spawn.h"

struct pg_enroll;

/*
 * The credential of an unattended registration.  It lives in the network
 * layer (lib/net/credential.c: assertions signed with certificate_file, Key
 * Vault certificates written afterwards), which the PAM module never links:
 * the CLI hands it in, so this file names none of it.
 */
struct pg_enroll_credential {
    /* Mark the REGISTER request unattended and add what the credential
     * needs (assertions), before the agent's key is made. */
    int (*request)(const struct pg_enroll *e, int64_t deadline, json_t *req, struct pg_error *err);
    /* After the pool accepted: write what DONE brought (Key Vault files). */
    int (*write)(const struct pg_config *cfg, json_t *done, uid_t uid, gid_t gid,
                 struct pg_error *err);
};

struct pg_enroll {
    const struct pg_config *cfg;
    const char *config_path; /* sent to the helper, which loads and checks it itself */
    struct pg_helper helper; /* path, uid, gid, stderr_fd */
    uid_t uid;               /* the agent account: whose token set, whose files */
    gid_t gid;
    bool replace;
    /* Tokens from the configured credential, not a stored sign-in: NULL for
     * an operator's registration. */
    const struct pg_enroll_credential *unattended;
    /* Interactive: the enrollment ticket of the sign-in a person completed
     * for this change (the helper's LOGIN returned it); the helper refuses
     * unless the stored set carries it, and uses it up. */
    const char *ticket;
};

struct pg_enrolled {
    int64_t agent_id;
    int64_t pool_id;
    char agent_name[257]; /* as Azure DevOps named it, made printable (pg_printable) */
    bool replaced;        /* register: an agent of that name was replaced */
    bool was_gone;        /* unregister: the pool no longer had it */
    /* unattended: the service principal or managed identity the gate passed */
    char oid[64];
    char tid[64];
    char name[128];
    /* agent_service: why the unit could not be (un)installed or started
     * after the pool change succeeded; "" when it was. */
    char service_error[PG_ERROR_MAX];
    /* A failure the provider caused (the token for Azure DevOps refused:
     * consent, Conditional Access, a revoked session): its class, code,
     * correlation id and the administrator's fix; empty otherwise. */
    struct pg_refusal refusal;
};

/* agent_name, or the short host name when it is not set. */
int pg_agent_name(const struct pg_config *cfg, char *out, size_t outsz, struct pg_error *err);

/*
 * The helper account must be neither the agent account nor the owner of
 * agent_dir: it writes the key cache and the token store the gate
 * believes, so an account that runs pipeline jobs and holds it passes the
 * gate at will.  PG_ERR_CONFIG, naming helper_user, when it is.  Only a
 * root caller has accounts to keep apart (otherwise the helper runs as the
 * caller), and helper_user root is left to poolgate doctor's warning (the
 * agent account is never root).
 */
int pg_helper_not_agent(const struct pg_config *cfg, uid_t helper_uid, uid_t agent_uid,
                        struct pg_error *err);

/* Register (or with `replace`, re-register) the agent and write its files.
 * A failure leaves any files already in agent_dir as they were.  With
 * agent_service, a replacement stops the agent's unit before the pool is
 * touched, and a success installs and restarts it (service_error says
 * when that failed).  agent_version unset: the version in the agent's
 * layout (pg_agent_version_read), else PG_ERR_CONFIG. */
int pg_enroll(const struct pg_enroll *e, struct pg_enrolled *out, struct pg_error *err);

/* Remove the agent from its pool, then its files.  With agent_service,
 * its unit is stopped first (a failure there changes nothing) and
 * uninstalled after. */
int pg_unenroll(const struct pg_enroll *e, struct pg_enrolled *out, struct pg_error *err);

/* What the audit line of a pool change names. */
struct pg_enroll_audit {
    const char *action;                 /* register, unregister */
    const char *user;                   /* the local (agent) account */
    const struct pg_identity *operator; /* who signed in; NULL when unknown */
    const struct pg_config *cfg;        /* organization and pool */
    const char *agent_name;
    int64_t agent_id;    /* 0 when none */
    const char *outcome; /* registered, replaced, unregistered, refused, failed */
    const char *reason;
    /* The provider's refusal behind a failure, for a support ticket
     * (code=, correlation_id=); NULL or empty: "-". */
    const struct pg_refusal *refusal;
};

/* The line, for LOG_AUTHPRIV (library code logs nothing itself). */
void pg_enroll_audit(char *out, size_t outsz, const struct pg_enroll_audit *a);

#endif
