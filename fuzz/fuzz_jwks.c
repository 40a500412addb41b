/* Key set parsing: never crash or leak; counts stay consistent. */
#include <stdlib.h>

#include "poolgate/poolgate.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct pg_keyset *ks = NULL;
    struct pg_error err = {0};
    if (pg_keyset_parse((const char *)data, size, &ks, &err) == 0) {
        if (pg_keyset_usable(ks) > pg_keyset_count(ks))
            abort();
        pg_keyset_free(ks);
    } else if (ks || err.msg[0] == '\0') {
        abort();
    }
    return 0;
}
