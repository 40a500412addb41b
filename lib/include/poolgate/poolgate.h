/*
 * libpoolgate — configuration, key sets and token verification for poolgate.
 *
 * Conventions (every function in this header follows them):
 *   - Functions return 0 on success or a negative PG_ERR_* code.
 *   - Output parameters are written only on success.
 *   - Where a function takes a `struct pg_error *`, a failure also leaves a
 *     one-line, human-readable reason in it (never a token, key or secret).
 *     The pointer may be NULL when the caller does not want the text.
 *   - Free functions accept NULL.
 *   - The library keeps no global state and never logs or prints.
 *   - Objects are not internally locked: one object, one thread at a time.
 */
#ifndef POOLGATE_H
#define POOLGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes.  All negative; 0 is success. */
enum {
    PG_OK = 0,
    PG_ERR_NOMEM = -1,     /* allocation failed */
    PG_ERR_ARG = -2,       /* invalid argument from the caller */
    PG_ERR_CONFIG = -3,    /* configuration file invalid (syntax or value) */
    PG_ERR_IO = -4,        /* a file could not be opened or read */
    PG_ERR_PERM = -5,      /* a file's owner, mode or type is unsafe */
    PG_ERR_TOKEN = -6,     /* a token failed verification or the policy */
    PG_ERR_KEYSET = -7,    /* a key set document is not a valid JWKS */
    PG_ERR_CRYPTO = -8,    /* an OpenSSL call failed for a reason other than a bad signature */
    PG_ERR_INTERNAL = -9,  /* a broken invariant; a bug */
    PG_ERR_NETWORK = -10,  /* a server could not be reached, or TLS or a time limit failed */
    PG_ERR_PROTOCOL = -11, /* a server answered, but not as the protocol says */
    PG_ERR_DENIED = -12    /* a sign-in was declined, expired, timed out or aborted */
};

/* A short description of an error code ("out of memory", ...). Never NULL. */
const char *pg_strerror(int err);

#define PG_ERROR_MAX 256
struct pg_error {
    int code;
    char msg[PG_ERROR_MAX];
};

/* ------------------------------------------------------------------------
 * Configuration (poolgate.conf(5))
 * ------------------------------------------------------------------------ */

/* JWS algorithms, as a bit mask. */
enum {
    PG_ALG_RS256 = 1u << 0,
    PG_ALG_RS384 = 1u << 1,
    PG_ALG_RS512 = 1u << 2,
    PG_ALG_PS256 = 1u << 3,
    PG_ALG_PS384 = 1u << 4,
    PG_ALG_PS512 = 1u << 5,
    PG_ALG_ES256 = 1u << 6,
    PG_ALG_ES384 = 1u << 7,
};

enum pg_validate { PG_VALIDATE_ID_TOKEN = 0, PG_VALIDATE_ACCESS_TOKEN = 1 };
enum pg_roles_match { PG_ROLES_ALL = 0, PG_ROLES_ANY = 1 };
enum pg_prompt { PG_PROMPT_AUTO = 0, PG_PROMPT_INFO = 1, PG_PROMPT_ENTER = 2 };
enum pg_qr { PG_QR_AUTO = 0, PG_QR_ON = 1, PG_QR_OFF = 2 };
enum pg_credential {
    PG_CRED_DEVICE = 0,
    PG_CRED_CLIENT_CERTIFICATE = 1,
    PG_CRED_MANAGED_IDENTITY = 2
};
enum pg_assertion_alg { PG_ASSERTION_PS256 = 0, PG_ASSERTION_RS256 = 1 };

/* A list of strings; items are unique and non-empty. */
struct pg_strlist {
    char **items;
    size_t count;
};

/*
 * The loaded configuration.  Every key of poolgate.conf(5) has a field;
 * optional keys that are unset are NULL (strings) or -1 (numbers).
 * Defaults from poolgate.conf(5) are already filled in by the loader.
 * Fields are only ever appended at the end.
 */
struct pg_config {
    char *path; /* the file it was loaded from (or the name given to the parser) */

    char *issuer;
    char *client_id;
    char *tenant;
    char *scope;
    char *device_authorization_endpoint;
    char *token_endpoint;
    char *jwks_uri;
    char *ca_file;
    char *proxy;
    long http_timeout;

    enum pg_validate validate;
    char *audience; /* defaults to client_id */
    struct pg_strlist required_roles;
    enum pg_roles_match roles_match;
    char *roles_claim;
    unsigned algorithms; /* PG_ALG_* mask */
    long clock_skew;
    long max_age; /* -1: unset */
    long login_timeout;
    enum pg_prompt prompt;
    enum pg_qr qr;

    char *helper_user;
    char *state_dir;
    char *cache_dir;

    char *organization_url;
    char *pool;
    char *agent_name; /* NULL: the short host name, resolved at use */
    char *agent_dir;
    char *agent_version;
    char *devops_scope;

    enum pg_credential credential;
    char *certificate_file;
    char *managed_identity_client_id;
    char *managed_identity_object_id;
    char *managed_identity_resource_id;
    char *gate_scope;
    struct pg_strlist keyvault_certificates;
    char *keyvault_certificate_dir;
    bool allow_app_tokens; /* as configured; see pg_config_app_tokens_allowed() */
    char *resource;        /* RFC 8707 resource indicator for the sign-in and refresh; NULL: none */
    enum pg_assertion_alg assertion_algorithm; /* client_certificate's assertions */
    char *imds_endpoint;                       /* NULL: the link-local instance metadata endpoint */
    long sign_in_max_age;   /* -1: unset; else the age in seconds past which a stored
                               set's device sign-in no longer counts (nor refreshes) */
    bool agent_service;     /* register/unregister manage the agent's systemd unit */
    char *systemd_unit_dir; /* where the unit is written (/etc/systemd/system) */
    char *systemctl;        /* the systemctl program run (/usr/bin/systemctl) */
    char *agent_user;       /* NULL: unset; the agent account of register --unattended */
};

/*
 * Load and check a configuration file.
 *
 * The file is opened without following a symbolic link and must be a
 * regular file that is not writable by group or others.  It must be owned
 * by root; when the calling process is not root, a file owned by the
 * caller is accepted too (development and tests).  Any syntax error,
 * unknown or repeated key, or invalid value fails with PG_ERR_CONFIG and a
 * message of the form "FILE:LINE: what was wrong".  The ca_file it names
 * must pass the same owner and mode checks (PG_ERR_PERM, or PG_ERR_IO when
 * it cannot be opened; the message names ca_file).
 */
int pg_config_load(const char *path, struct pg_config **out, struct pg_error *err);

/*
 * Parse configuration text that is already in memory.  `name` is used in
 * messages and kept as cfg->path.  No file checks are made.  Embedded NUL
 * bytes are an error.
 */
int pg_config_parse(const char *text, size_t len, const char *name, struct pg_config **out,
                    struct pg_error *err);

void pg_config_free(struct pg_config *cfg);

/* Whether app-only tokens may pass the gate of a sign-in: allow_app_tokens
 * alone.  (`poolgate register --unattended` takes them whatever this says:
 * it allows them in its own copy of the policy.) */
bool pg_config_app_tokens_allowed(const struct pg_config *cfg);

/* The JWS algorithm name for one PG_ALG_* bit, or NULL. */
const char *pg_alg_name(unsigned alg);

/* ------------------------------------------------------------------------
 * Strict base64url (RFC 4648 §5, without padding)
 * ------------------------------------------------------------------------ */

/*
 * Decode `len` characters of unpadded base64url into `out`, which must have
 * room for pg_b64url_decoded_len(len) bytes and must not overlap `in` (some
 * characters are read again after bytes before them were written).  Rejects
 * padding, whitespace, '+', '/', any other character, a length of 1 modulo
 * 4, and non-zero unused bits.  Returns PG_ERR_ARG on any of these.
 */
int pg_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);
size_t pg_b64url_decoded_len(size_t len);

/* ------------------------------------------------------------------------
 * Key sets (RFC 7517 JWKS)
 * ------------------------------------------------------------------------ */

struct pg_keyset;

/*
 * Parse a JWKS document.  The document must be a JSON object with a "keys"
 * array; anything else is PG_ERR_KEYSET.  Individual keys that are unusable
 * (weak, wrong type, `use` other than "sig", duplicated `kid`, ...) do not
 * fail the parse: they are kept with the reason, and a token naming such a
 * key is rejected with that reason.
 */
int pg_keyset_parse(const char *json, size_t len, struct pg_keyset **out, struct pg_error *err);
void pg_keyset_free(struct pg_keyset *ks);

/* Number of entries, and number of entries a token could be verified with. */
size_t pg_keyset_count(const struct pg_keyset *ks);
size_t pg_keyset_usable(const struct pg_keyset *ks);

/* ------------------------------------------------------------------------
 * Token verification
 * ------------------------------------------------------------------------ */

/* Why a token was refused.  PG_REASON_NONE on success. */
enum pg_reason {
    PG_REASON_NONE = 0,
    PG_REASON_MALFORMED, /* not a compact JWS, bad base64url, bad JSON, too long */
    PG_REASON_HEADER,    /* forbidden or malformed header member */
    PG_REASON_ALGORITHM, /* alg not allowed */
    PG_REASON_KEY,       /* no usable key for the kid */
    PG_REASON_SIGNATURE, /* signature does not verify */
    PG_REASON_CLAIMS,    /* a claim has the wrong type or form */
    PG_REASON_EXPIRED,   /* exp in the past */
    PG_REASON_NOT_YET,   /* nbf or iat in the future */
    PG_REASON_TOO_OLD,   /* iat older than max_age */
    PG_REASON_ISSUER,    /* iss differs */
    PG_REASON_AUDIENCE,  /* aud does not contain the audience */
    PG_REASON_TENANT,    /* tid missing or wrong */
    PG_REASON_APP_TOKEN, /* app-only token on a user gate */
    PG_REASON_ROLES,     /* required roles not carried */
};

/* The verified identity.  Strings are owned by the result. */
struct pg_identity {
    char *sub;
    char *oid;
    char *tid;
    char *iss;
    char *name; /* display only: name, preferred_username or upn; may be NULL */
    struct pg_strlist aud;
    struct pg_strlist roles;
    int64_t exp;
    int64_t iat; /* -1 when absent */
    int64_t nbf; /* -1 when absent */
    bool app_only;
};

struct pg_verify_result {
    enum pg_reason reason;
    char detail[PG_ERROR_MAX]; /* one line; never contains the token */
    struct pg_identity id;     /* filled only on success */
};

/* Verification options beyond the configuration. */
struct pg_verify_opts {
    time_t now; /* the wall clock for exp/nbf/iat; 0 means time(NULL) */
};

/*
 * Verify a compact JWS `token` (length `len`, no trailing newline) with the
 * keys in `ks` under the policy in `cfg`.  The signature is checked before
 * any claim is read.  Returns 0 when the token is genuine and meets the whole
 * policy, PG_ERR_TOKEN when it does not (res->reason and res->detail say
 * why), or another negative code for a failure that says nothing about the
 * token (PG_ERR_NOMEM, ...).  `res` is always initialised; release it with
 * pg_verify_result_clear().  `opts` may be NULL.
 */
int pg_verify_token(const struct pg_config *cfg, const struct pg_keyset *ks, const char *token,
                    size_t len, const struct pg_verify_opts *opts, struct pg_verify_result *res);

void pg_verify_result_clear(struct pg_verify_result *res);

/* A short name for a reason ("expired", "audience", ...). Never NULL. */
const char *pg_reason_name(enum pg_reason reason);

/* Overwrite `len` bytes at `p` in a way the compiler cannot elide. */
void pg_memzero(void *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif
