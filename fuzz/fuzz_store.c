/*
 * The token store's file: the bytes of state_dir/<uid>/tokens.json as
 * pg_store_read() reads and parses them (its parser is static, so each
 * input is written, mode 0600 and owned by the fuzzer's uid as the reader
 * demands, into a private directory made once).  Nothing may crash or
 * leak.  A success must hold each token as a NUL-terminated string no
 * longer than the input (or NULL, every member being optional) and only
 * for an input within PG_STORE_MAX_BYTES; a failure must be PG_ERR_IO (or
 * PG_ERR_NOMEM) with a one-line printable message naming the stored set,
 * and must leave the output untouched.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poolgate/poolgate.h"
#include "fuzzkit.h"
#include "store.h"

static const char *dir;
static int dirfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    dir = fuzz_tmpdir("fz-store");
    if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        abort();
    return 0;
}

static void check_token(const char *s, size_t size)
{
    if (s && strlen(s) > size)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    fuzz_write(dir, "tokens.json", data, size, 0600);
    struct pg_tokenset ts = {0};
    struct pg_error err = {0};
    int r = pg_store_read(dirfd, geteuid(), &ts, &err);
    if (r == 0) {
        if (size > PG_STORE_MAX_BYTES)
            abort();
        check_token(ts.id_token, size);
        check_token(ts.access_token, size);
        check_token(ts.refresh_token, size);
        check_token(ts.scope, size);
        check_token(ts.enroll_ticket, size);
        pg_tokenset_clear(&ts);
    } else {
        if ((r != PG_ERR_IO && r != PG_ERR_NOMEM) || err.code != r)
            abort();
        fuzz_check_line(err.msg, sizeof(err.msg));
        if (r == PG_ERR_IO && !strstr(err.msg, "stored token set"))
            abort();
        if (ts.id_token || ts.access_token || ts.refresh_token || ts.scope || ts.expires_at ||
            ts.stored_at || ts.signed_in_at || ts.enroll_ticket)
            abort(); /* a refusal handed something out */
    }
    return 0;
}
