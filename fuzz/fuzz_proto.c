/* Helper protocol messages read from a pipe: capped, typed, never crashing or leaking. */
#include <stdlib.h>
#include <unistd.h>

#include "poolgate/poolgate.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    int p[2];
    if (size > 60000 || pipe(p) < 0)
        return 0;
    if (write(p[1], data, size) != (ssize_t)size)
        abort();
    close(p[1]);
    for (;;) {
        enum pg_msg_type t;
        json_t *msg = NULL;
        if (pg_msg_read(p[0], &t, &msg, NULL) < 0)
            break;
        if (!json_is_object(msg))
            abort();
        json_decref(msg);
    }
    close(p[0]);
    return 0;
}
