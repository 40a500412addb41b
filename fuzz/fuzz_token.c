/*
 * Token verification end to end.  Mode 0 (any input): the input is a token;
 * the fuzzer cannot forge an RSA or ECDSA signature, so pg_verify_token must
 * never accept.  Mode 1 (first byte 0x01): the rest is a claims set that is
 * signed here with the key the key set holds, so the fuzzer explores the
 * claim policy; whatever it accepts must meet the policy.
 */
#include <stdlib.h>
#include <string.h>

#include "poolgate/poolgate.h"
#include "../tests/unit/testkit.h"

#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define NOW 1767225600

static EVP_PKEY *rsa, *p256;
static struct pg_keyset *ks;
static struct pg_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static const char conf[] = "issuer = https://login.microsoftonline.com/" TID "/v2.0\n"
                               "client_id = 6e74172b-be56-4843-9ff4-e66a39bb12e3\n"
                               "tenant = " TID "\n"
                               "required_roles = AgentPool.Enroll\n"
                               "algorithms = RS256 ES256\n";
    rsa = EVP_RSA_gen(2048);
    p256 = EVP_EC_gen("P-256");
    char *a = tk_jwk(rsa, "r1", ",\"use\":\"sig\""), *b = tk_jwk(p256, "e1", NULL);
    char doc[8192];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
    free(a), free(b);
    if (pg_keyset_parse(doc, strlen(doc), &ks, NULL) != 0 ||
        pg_config_parse(conf, strlen(conf), "fuzz.conf", &cfg, NULL) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    bool signed_here = size > 0 && data[0] == 0x01;
    char *token = NULL;
    if (signed_here) {
        char *claims = malloc(size);
        memcpy(claims, data + 1, size - 1);
        claims[size - 1] = '\0';
        token = tk_sign(rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}", claims);
        free(claims);
    } else {
        token = malloc(size + 1);
        memcpy(token, data, size);
        token[size] = '\0';
    }
    size_t len = signed_here ? strlen(token) : size;
    struct pg_verify_result res;
    int r = pg_verify_token(cfg, ks, token, len, &(struct pg_verify_opts){.now = NOW}, &res);
    if (r == 0) {
        if (!signed_here)
            abort(); /* accepted a signature nobody made */
        if (!res.id.tid || strcmp(res.id.tid, TID) != 0 || !(res.id.roles.count > 0) ||
            res.id.exp + 120 < NOW)
            abort();
        bool role = false;
        for (size_t i = 0; i < res.id.roles.count; i++)
            role |= strcmp(res.id.roles.items[i], "AgentPool.Enroll") == 0;
        if (!role)
            abort();
    } else if (r == PG_ERR_TOKEN && res.id.sub) {
        abort(); /* identity leaked from a refusal */
    }
    pg_verify_result_clear(&res);
    free(token);
    return 0;
}
