/* Config parsing: never crash or leak; every refusal names the file. */
#include <stdlib.h>
#include <string.h>

#include "poolgate/poolgate.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    int r = pg_config_parse((const char *)data, size, "fuzz.conf", &cfg, &err);
    if (r == 0) {
        if (!cfg || !cfg->issuer || !cfg->client_id || !cfg->audience)
            abort();
        pg_config_free(cfg);
    } else if (cfg || strncmp(err.msg, "fuzz.conf", 9) != 0 ||
               memchr(err.msg, '\0', sizeof(err.msg)) == NULL) {
        abort();
    }
    return 0;
}
