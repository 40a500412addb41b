/*
 * Fault injection, the module's calls into libpam (see fault.c).
 */
#include "fault.h"

#include <security/pam_modules.h>

DECLARE(int, pam_set_data,
        (pam_handle_t * pamh, const char *name, void *data,
         void (*cleanup)(pam_handle_t *, void *, int)));
DECLARE(int, pam_set_data,
        (pam_handle_t * pamh, const char *name, void *data,
         void (*cleanup)(pam_handle_t *, void *, int)))
{
    if (pg_fault_now("pam_set_data"))
        return PAM_BUF_ERR;
    return __real_pam_set_data(pamh, name, data, cleanup);
}

DECLARE(int, pam_get_user, (pam_handle_t * pamh, const char **user, const char *prompt));
DECLARE(int, pam_get_user, (pam_handle_t * pamh, const char **user, const char *prompt))
{
    if (pg_fault_now("pam_get_user"))
        return PAM_BUF_ERR;
    return __real_pam_get_user(pamh, user, prompt);
}
