/*
 * What the helper does with an identity provider's refusal (entra_errors.h)
 * beyond the message of DONE: the stored refresh token it makes useless is
 * taken out of the store, and DONE carries the refusal's class, number,
 * correlation id and the administrator's fix.
 */
#include <unistd.h>

#include "helper.h"
#include "internal.h"

void drop_refused_refresh(int dir, const char *refused)
{
    struct pg_tokenset now = {0};
    struct pg_error ignored = {0};
    /* Read again: what is stored now may be a newer set than the one refused. */
    if (refused && pg_store_read(dir, geteuid(), &now, &ignored) == 0 && now.refresh_token &&
        strcmp(now.refresh_token, refused) == 0) {
        pg_free_secret(TAKE_PTR(now.refresh_token));
        /* The rest stays: a gate token still inside its lifetime keeps
         * serving the cached path; an expired one is refused as before. */
        pg_store_write(dir, &now, &ignored);
    }
    pg_tokenset_clear(&now);
}

json_t *refusal_json(const struct request *q)
{
    const struct pg_idp_error *e = &q->refusal;
    json_t *o = json_pack("{s:s, s:s}", "class", pg_idp_class_name(e->cls), "error", e->error);
    if (o && e->aadsts)
        json_object_set_new(o, "aadsts", json_integer(e->aadsts));
    if (o && e->correlation[0])
        json_object_set_new(o, "correlation_id", json_string(e->correlation));
    if (o && e->fix)
        json_object_set_new(o, "fix", json_string(e->fix));
    return o;
}
