/*
 * The official Azure Pipelines agent's registration files, made and written
 * by the privileged caller (never the helper): the agent's key pair, and
 * `.agent`, `.credentials`, `.credentials_rsaparams` in agent_dir.
 *
 * docs/registration.md shows the format: UTF-8 with a byte order mark,
 * JSON indented by two spaces, no final newline, keys in the agent's order;
 * every RSA parameter standard base64 at the fixed length .NET's
 * RSA.ImportParameters demands.
 */
#ifndef PG_AGENTFILES_H
#define PG_AGENTFILES_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "poolgate/poolgate.h"

enum { PG_AGENT_FILE_RSAPARAMS, PG_AGENT_FILE_CREDENTIALS, PG_AGENT_FILE_AGENT, PG_AGENT_FILES };

/* Names in agent_dir, in the order they are put in place (.agent last: it
 * is what marks the agent as registered). */
extern const char *const pg_agent_file_names[PG_AGENT_FILES];

struct pg_agent_settings {
    int64_t agent_id;
    const char *agent_name;
    int64_t pool_id;
    const char *pool_name;
    const char *server_url;
    const char *client_id;
    const char *authorization_url;
};

struct pg_agent_files {
    char *text[PG_AGENT_FILES]; /* the rsaparams text is a secret: cleared on release */
    size_t len[PG_AGENT_FILES];
};

/* A fresh RSA-2048 key pair. */
int pg_agent_key_new(EVP_PKEY **key, struct pg_error *err);

/* The public half as the registration sends it: standard base64 of the
 * big-endian modulus (256 bytes) and exponent (no leading zeros). */
int pg_agent_public_key(EVP_PKEY *key, char **modulus, char **exponent, struct pg_error *err);

/* The three files' bytes. */
int pg_agent_files_render(EVP_PKEY *key, const struct pg_agent_settings *s,
                          struct pg_agent_files *out, struct pg_error *err);
void pg_agent_files_clear(struct pg_agent_files *f);

/*
 * Put the files in place as the agent account (uid, gid): a child process
 * takes that identity when the caller is root, so the kernel applies the
 * account's own permissions and every file is its own, mode 0600; the
 * child cannot be traced or dump core, and is killed if it hangs.  Under
 * an exclusive lock on the directory, each file is written beside its
 * final name, synced, then renamed over it; nothing is renamed unless all
 * three were written, and .agent goes last.
 */
int pg_agent_files_write(const char *agent_dir, uid_t uid, gid_t gid,
                         const struct pg_agent_files *f, struct pg_error *err);

/*
 * Before the pool is touched: agent_dir must be a directory reached
 * without any symbolic link (pg_dir_open_nofollow(): none in its parents
 * either; PG_ERR_PERM naming the link) owned by the agent account, which must not be root, and the
 * account must be able to create files in it.  PG_ERR_CONFIG otherwise.
 */
int pg_agent_files_check(const char *agent_dir, uid_t uid, gid_t gid, struct pg_error *err);

/* Remove the three files, as the agent account.  Absent files are fine. */
int pg_agent_files_remove(const char *agent_dir, uid_t uid, gid_t gid, struct pg_error *err);

/* Room for a version string (N.N.N) and its NUL. */
#define PG_AGENT_VERSION_MAX 32

/*
 * The agent's version as its layout shows it, read as the agent account
 * without following any link and without running agent code: the link
 * `bin` -> `bin.<version>` the agent's self-update leaves.  A fresh extract
 * (`bin` a directory) records it nowhere readable: PG_ERR_CONFIG, as for a
 * link elsewhere or to a missing directory; the message says which.
 */
int pg_agent_version_read(const char *agent_dir, uid_t uid, gid_t gid,
                          char version[PG_AGENT_VERSION_MAX], struct pg_error *err);

/*
 * As the agent account, what the agent's own svc.sh leaves in agent_dir
 * beside its unit: `runsvc.sh`, copied from the agent's bin directory
 * (reached as pg_agent_version_read does), and `.service` naming the unit.
 * With unit NULL, `.service` is removed (runsvc.sh stays, as svc.sh leaves
 * it).
 */
int pg_agent_service_files(const char *agent_dir, uid_t uid, gid_t gid, const char *unit,
                           struct pg_error *err);

/* Whether agent_dir holds a `.agent` (a regular file; no link followed
 * on the way, in agent_dir's parents neither). */
bool pg_agent_registered(const char *agent_dir);

#endif
