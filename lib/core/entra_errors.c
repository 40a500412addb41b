/*
 * Entra ID's refusals, named: the table of AADSTS numbers and OAuth error
 * codes poolgate knows, with a reason for the operator, the
 * administrator's fix and what each means for the stored set.
 *
 * MUST:
 *   - Decide on `error` and the AADSTS number only; the description is
 *     shown (its first line, filtered) but never decides, except that its
 *     "AADSTSnnnnn:" prefix stands in for a missing error_codes.
 *   - authorization_pending and slow_down are decided by `error` before any
 *     AADSTS number: nothing may turn a pending poll into a refusal or back.
 *   - Never copy trace_id, timestamps or more than one line of text; every
 *     string kept is bounded and filtered.
 */
#include <ctype.h>
#include <stdio.h>

#include "entra_errors.h"
#include "internal.h"

#define CA_FIX                                                                                     \
    "exclude this app (the client_id in poolgate.conf) or a group of operators from the "          \
    "Conditional Access policy that blocks the device code flow (its authentication flows "        \
    "condition), best only from your build network (a network-location condition); see "           \
    "Conditional Access in poolgate's documentation"
#define DEVICE_FIX                                                                                 \
    "approve the code on a device the policy accepts (compliant, managed or registered), or "      \
    "exclude this app (the client_id in poolgate.conf) or a group of operators from the policy"

/* AADSTS numbers, most specific first.  A refresh_invalid entry's reason is
 * about the stored sign-in: on the polling path it becomes a refusal of the
 * sign-in itself (see describe()). */
static const struct {
    long aadsts;
    enum pg_idp_class cls;
    const char *reason;
    const char *fix;
} aadsts_table[] = {
    {53003, PG_IDP_CONDITIONAL_ACCESS,
     "a Conditional Access policy blocks device-code sign-in for this app", CA_FIX},
    {50005, PG_IDP_CONDITIONAL_ACCESS,
     "a Conditional Access policy blocks device-code sign-in for this app (device platform not "
     "allowed)",
     CA_FIX},
    {53000, PG_IDP_CONDITIONAL_ACCESS,
     "a Conditional Access policy blocks device-code sign-in for this app (a compliant device "
     "is required)",
     DEVICE_FIX},
    {53001, PG_IDP_CONDITIONAL_ACCESS,
     "a Conditional Access policy blocks device-code sign-in for this app (a domain-joined "
     "device is required)",
     DEVICE_FIX},
    {530003, PG_IDP_CONDITIONAL_ACCESS,
     "a Conditional Access policy blocks device-code sign-in for this app (a managed device is "
     "required)",
     DEVICE_FIX},
    {50097, PG_IDP_CONDITIONAL_ACCESS,
     "a Conditional Access policy blocks device-code sign-in for this app (device "
     "authentication is required)",
     DEVICE_FIX},
    {530036, PG_IDP_REFRESH_INVALID,
     "the stored sign-in no longer counts: an authentication flows policy refuses sessions that "
     "began with a device code",
     "to keep refreshes working, exclude this app (the client_id in poolgate.conf) from the "
     "authentication flows policy; operators can sign in again meanwhile"},
    {700082, PG_IDP_REFRESH_INVALID, "the stored sign-in expired after a time without use", NULL},
    {70008, PG_IDP_REFRESH_INVALID, "the stored sign-in has expired", NULL},
    {50173, PG_IDP_REFRESH_INVALID,
     "the stored sign-in was revoked (a password change or a revoked session)", NULL},
    {50133, PG_IDP_REFRESH_INVALID, "the stored sign-in was invalidated by a password change",
     NULL},
    {50076, PG_IDP_REFRESH_INVALID, "the tenant now requires multi-factor authentication", NULL},
    {50079, PG_IDP_REFRESH_INVALID,
     "the tenant now requires the operator to register for multi-factor authentication", NULL},
    {65001, PG_IDP_CONFIG, "nobody has consented to this app's permissions in the tenant",
     "grant admin consent to the app registration (API permissions, Grant admin consent), or "
     "let the operator consent once"},
    {700016, PG_IDP_CONFIG, "the app (client_id) is not known in the tenant",
     "set client_id and tenant (and the tenant in issuer) in poolgate.conf to the app "
     "registration's Application (client) ID and Directory (tenant) ID"},
    {7000218, PG_IDP_CONFIG, "the app registration does not allow public client flows",
     "in the app registration's Authentication blade, set 'Allow public client flows' to Yes"},
    {50020, PG_IDP_CONFIG, "the operator's account is from another tenant",
     "invite the operator into the configured tenant as a guest, or set issuer and tenant to "
     "the operator's own tenant"},
    {90002, PG_IDP_CONFIG, "the tenant does not exist",
     "set tenant and the tenant in issuer in poolgate.conf to your Directory (tenant) ID"},
};

/* OAuth error codes (RFC 6749 §5.2, RFC 8628 §3.5), when no AADSTS number
 * is known. */
static const struct {
    const char *error;
    enum pg_idp_class cls;
    const char *reason;
} error_table[] = {
    {"authorization_pending", PG_IDP_PENDING, "the sign-in is pending"},
    {"slow_down", PG_IDP_PENDING, "the provider asks to poll more slowly"},
    {"access_denied", PG_IDP_DECLINED, "the sign-in was declined"},
    {"authorization_declined", PG_IDP_DECLINED, "the sign-in was declined"},
    {"expired_token", PG_IDP_EXPIRED, "the sign-in code expired"},
    {"bad_verification_code", PG_IDP_BAD_CODE, "sign-in failed"},
    {"interaction_required", PG_IDP_REFRESH_INVALID,
     "the provider requires a new interactive sign-in"},
    {"invalid_grant", PG_IDP_REFRESH_INVALID, "the provider refused the stored sign-in"},
};

static const char *const class_names[] = {
    [PG_IDP_NONE] = "none",
    [PG_IDP_PENDING] = "pending",
    [PG_IDP_CONDITIONAL_ACCESS] = "conditional_access",
    [PG_IDP_REFRESH_INVALID] = "refresh_invalid",
    [PG_IDP_CONFIG] = "config_error",
    [PG_IDP_DECLINED] = "declined",
    [PG_IDP_EXPIRED] = "expired",
    [PG_IDP_BAD_CODE] = "bad_verification_code",
    [PG_IDP_UNKNOWN] = "unknown",
};

const char *pg_idp_class_name(enum pg_idp_class cls)
{
    return (unsigned)cls < PG_ARRAY_SIZE(class_names) ? class_names[cls] : "unknown";
}

#define AADSTS_MAX 9999999L

/* The first member of error_codes, when it is an array of integers in range. */
static long first_error_code(json_t *codes)
{
    if (!json_is_array(codes) || json_array_size(codes) == 0 || json_array_size(codes) > 16)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(codes, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > AADSTS_MAX)
            return -1;
    }
    return (long)json_integer_value(json_array_get(codes, 0));
}

/* "AADSTS" then 1 to 7 digits then ':'; *rest is what follows (spaces skipped). */
static long description_code(const char *d, const char **rest)
{
    long n = 0;
    size_t i = 6;
    *rest = d;
    if (!d || strncmp(d, "AADSTS", 6) != 0)
        return -1;
    while (i < 13 && isdigit((unsigned char)d[i]))
        n = n * 10 + (d[i++] - '0');
    if (i == 6 || d[i] != ':')
        return -1;
    for (*rest = d + i + 1; **rest == ' ';)
        (*rest)++;
    return n;
}

/* The first line of text, bounded (cut between characters) and filtered. */
static void first_line(char *out, size_t outsz, const char *text)
{
    size_t n = strcspn(text, "\r\n");
    pg_printable(out, n + 1 < outsz ? n + 1 : outsz, text);
}

/* A correlation id is a GUID: anything else is not kept. */
static void keep_correlation(char *out, size_t outsz, const char *id)
{
    out[0] = '\0';
    if (!id || strlen(id) >= outsz || strlen(id) == 0 ||
        strspn(id, "0123456789abcdefABCDEF-") != strlen(id))
        return;
    snprintf(out, outsz, "%s", id);
}

/* What the class means on this path: the error code and the store action. */
static void settle(struct pg_idp_error *e, enum pg_idp_path path)
{
    switch (e->cls) {
    case PG_IDP_CONFIG:
        e->code = PG_ERR_CONFIG;
        break;
    case PG_IDP_UNKNOWN:
        /* As before: an unknown refusal of the code request means the
         * provider answered wrongly; of a poll or a refresh, a refusal. */
        e->code = path == PG_IDP_DEVICE_CODE ? PG_ERR_PROTOCOL : PG_ERR_DENIED;
        break;
    case PG_IDP_REFRESH_INVALID:
        e->code = PG_ERR_DENIED;
        e->drop_refresh = path == PG_IDP_REFRESH;
        if (path != PG_IDP_REFRESH) { /* not about a stored sign-in: the sign-in is refused */
            e->reason = "the provider refused the sign-in";
            e->fix = NULL;
        }
        break;
    default:
        e->code = PG_ERR_DENIED;
    }
}

bool pg_idp_error_parse(json_t *doc, enum pg_idp_path path, struct pg_idp_error *out)
{
    const char *error = json_string_value(json_object_get(doc, "error"));
    const char *desc = json_string_value(json_object_get(doc, "error_description"));
    const char *rest = desc ? desc : "";
    struct pg_idp_error e = {.cls = PG_IDP_UNKNOWN, .reason = "sign-in failed"};
    if (!error || !json_is_object(doc))
        return false;
    pg_printable(e.error, sizeof(e.error), error);
    long from_desc = description_code(desc, &rest);
    json_t *codes = json_object_get(doc, "error_codes");
    e.aadsts = codes ? first_error_code(codes) : from_desc;
    e.aadsts = e.aadsts < 0 ? 0 : e.aadsts;
    if (desc)
        first_line(e.summary, sizeof(e.summary), rest);
    keep_correlation(e.correlation, sizeof(e.correlation),
                     json_string_value(json_object_get(doc, "correlation_id")));
    bool found = false;
    for (size_t i = 0; i < PG_ARRAY_SIZE(error_table); i++)
        if (strcmp(error, error_table[i].error) == 0 && error_table[i].cls == PG_IDP_PENDING) {
            e.cls = PG_IDP_PENDING;
            e.reason = error_table[i].reason;
            found = true;
        }
    for (size_t i = 0; !found && e.aadsts && i < PG_ARRAY_SIZE(aadsts_table); i++)
        if (aadsts_table[i].aadsts == e.aadsts) {
            e.cls = aadsts_table[i].cls;
            e.reason = aadsts_table[i].reason;
            e.fix = aadsts_table[i].fix;
            found = true;
        }
    for (size_t i = 0; !found && i < PG_ARRAY_SIZE(error_table); i++)
        if (strcmp(error, error_table[i].error) == 0) {
            e.cls = error_table[i].cls;
            e.reason = error_table[i].reason;
            found = true;
        }
    settle(&e, path);
    *out = e;
    return true;
}

void pg_idp_error_detail(const struct pg_idp_error *e, char *out, size_t outsz)
{
    char code[24] = "";
    if (e->aadsts)
        snprintf(code, sizeof(code), " AADSTS%ld", e->aadsts);
    snprintf(out, outsz, "%s%s%s%s", e->error, code, e->summary[0] ? ": " : "", e->summary);
}

int pg_idp_error_fail(const struct pg_idp_error *e, struct pg_error *err)
{
    char detail[PG_ERROR_MAX];
    switch (e->cls) {
    case PG_IDP_DECLINED:
    case PG_IDP_EXPIRED:
        return pg_fail(err, e->code, "%s", e->reason);
    case PG_IDP_CONDITIONAL_ACCESS:
    case PG_IDP_REFRESH_INVALID:
    case PG_IDP_CONFIG:
        if (e->aadsts)
            snprintf(detail, sizeof(detail), "AADSTS%ld", e->aadsts);
        else
            snprintf(detail, sizeof(detail), "%s", e->error);
        return pg_fail(err, e->code, "%s (%s)%s", e->reason, detail,
                       e->drop_refresh ? ": sign in again" : "");
    default:
        /* Unknown to poolgate: the provider's own words, first line only. */
        pg_idp_error_detail(e, detail, sizeof(detail));
        return pg_fail(err, e->code, "%s: %s", e->reason, detail);
    }
}

/* An unquoted field of an audit line: letters, digits and the marks in
 * `marks`; anything else (a space or '=' would begin a field of its own,
 * "code=x outcome=granted") becomes '?'. */
static void audit_word(char *out, size_t outsz, const char *in, const char *marks)
{
    pg_printable(out, outsz, in);
    for (char *c = out; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr(marks, *c))
            *c = '?';
}

void pg_refusal_from_done(json_t *done, struct pg_refusal *f)
{
    json_t *o = json_object_get(done, "provider"), *n = json_object_get(o, "aadsts");
    memset(f, 0, sizeof(*f));
    if (!json_is_object(o))
        return;
    audit_word(f->cls, sizeof(f->cls), json_string_value(json_object_get(o, "class")), "_");
    if (json_is_integer(n))
        snprintf(f->code, sizeof(f->code), "AADSTS%lld", (long long)json_integer_value(n));
    else
        audit_word(f->code, sizeof(f->code), json_string_value(json_object_get(o, "error")), "_-.");
    audit_word(f->correlation, sizeof(f->correlation),
               json_string_value(json_object_get(o, "correlation_id")), "-");
    pg_printable(f->fix, sizeof(f->fix), json_string_value(json_object_get(o, "fix")));
}
