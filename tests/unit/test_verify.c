/*
 * Token verification and claim policy, one test per rule in security.md's
 * token list.  Tokens are signed here with OpenSSL directly (testkit.h).
 * The broader data-driven corpus lives in tests/fixtures/mktokens.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <strings.h>

#include "jws.h"
#include "poolgate/poolgate.h"
#include "testkit.h"

#define TID "72f988bf-86f1-41af-91ab-2d7cd011db47"
#define OTHER_TID "11111111-2222-3333-4444-555555555555"
#define CID "6e74172b-be56-4843-9ff4-e66a39bb12e3"
#define ISS "https://login.microsoftonline.com/" TID "/v2.0"
#define NOW 1767225600
/* Claims with exp, nbf and iat to fill in (printf format). */
#define TIMES_FMT                                                                                  \
    "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":%d,\"nbf\":%d,\"iat\":%d,"                   \
    "\"sub\":\"s\",\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}"
/* Claims with a tid member (or none) to fill in. */
#define TENANT_FMT                                                                                 \
    "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\""                    \
    "%s,\"roles\":[\"AgentPool.Enroll\"]}"
#define HDR_RS256 "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}"

static const char base_config[] = "issuer = " ISS "\n"
                                  "client_id = " CID "\n"
                                  "tenant = " TID "\n"
                                  "required_roles = AgentPool.Enroll\n"
                                  "algorithms = RS256 PS256 ES256 ES384\n";

struct fixture {
    EVP_PKEY *rsa, *rsa_tmpl, *p256, *p384;
    struct pg_keyset *ks;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->rsa = tk_key("rsa2048-a");
    f->rsa_tmpl = tk_key("rsa2048-b");
    f->p256 = tk_key("p256");
    f->p384 = tk_key("p384");
    if (!f->rsa || !f->rsa_tmpl || !f->p256 || !f->p384)
        return -1;
    char *a = tk_jwk(f->rsa, "r1", ",\"use\":\"sig\"");
    char *b = tk_jwk(f->rsa_tmpl, "t1",
                     ",\"issuer\":\"https://login.microsoftonline.com/{tenantid}/v2.0\"");
    char *c = tk_jwk(f->p256, "e1", NULL), *d = tk_jwk(f->p384, "e2", NULL);
    char doc[16384];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s,%s]}", a, b, c, d);
    free(a), free(b), free(c), free(d);
    if (pg_keyset_parse(doc, strlen(doc), &f->ks, NULL) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->rsa_tmpl);
    EVP_PKEY_free(f->p256);
    EVP_PKEY_free(f->p384);
    pg_keyset_free(f->ks);
    free(f);
    return 0;
}

/* Claims with the usual members; `extra` replaces nothing, it is appended. */
static char *claims(const char *extra)
{
    size_t cap = 1024 + (extra ? strlen(extra) : 0);
    char *buf = malloc(cap);
    snprintf(buf, cap,
             "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"iat\":%d,\"nbf\":%d,\"exp\":%d,"
             "\"name\":\"Alice\",\"oid\":\"a1b2\",\"sub\":\"s-1\",\"tid\":\"" TID "\","
             "\"roles\":[\"AgentPool.Enroll\"]%s}",
             NOW - 60, NOW - 60, NOW + 3600, extra ? extra : "");
    return buf;
}

/* Verify `token` under base_config plus `cfg_extra`; returns the result code. */
static int verify_with(struct fixture *f, const char *cfg_extra, const char *token, size_t len,
                       struct pg_verify_result *res)
{
    char text[2048] = "";
    /* Keys set in cfg_extra replace the base config's line (repeats are errors). */
    const char *line = base_config;
    while (*line) {
        size_t n = strcspn(line, "\n") + 1, key = strcspn(line, " ");
        char probe[64];
        snprintf(probe, sizeof(probe), "%.*s =", (int)key, line);
        if (!cfg_extra || !strstr(cfg_extra, probe))
            strncat(text, line, n);
        line += n;
    }
    strncat(text, cfg_extra ? cfg_extra : "", sizeof(text) - strlen(text) - 1);
    struct pg_config *cfg = NULL;
    struct pg_error err = {0};
    if (pg_config_parse(text, strlen(text), "test.conf", &cfg, &err) != 0)
        fail_msg("config: %s", err.msg);
    int r = pg_verify_token(cfg, f->ks, token, len, &(struct pg_verify_opts){.now = NOW}, res);
    pg_config_free(cfg);
    return r;
}

/* Check the outcome; when `phrase` is given, the refusal's detail must contain it. */
static void expect_detail(struct fixture *f, const char *cfg_extra, const char *token,
                          enum pg_reason want, const char *phrase)
{
    struct pg_verify_result res;
    int r = verify_with(f, cfg_extra, token, strlen(token), &res);
    if (phrase && !strstr(res.detail, phrase))
        fail_msg("detail '%s' does not contain '%s'", res.detail, phrase);
    if (want == PG_REASON_NONE && r != 0)
        fail_msg("expected accept, got %d %s: %s", r, pg_reason_name(res.reason), res.detail);
    if (want != PG_REASON_NONE && (r != PG_ERR_TOKEN || res.reason != want))
        fail_msg("expected %s, got %d %s: %s", pg_reason_name(want), r, pg_reason_name(res.reason),
                 res.detail);
    if (want != PG_REASON_NONE)
        assert_null(res.id.sub); /* no identity on refusal */
    pg_verify_result_clear(&res);
}

static void expect(struct fixture *f, const char *cfg_extra, const char *token, enum pg_reason want)
{
    expect_detail(f, cfg_extra, token, want, NULL);
}

/* Sign claims(extra) with the RSA key under the usual header and check. */
static void expect_claims(struct fixture *f, const char *cfg_extra, const char *extra,
                          enum pg_reason want)
{
    char *c = claims(extra);
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, c);
    expect(f, cfg_extra, t, want);
    free(c), free(t);
}

/* Sign an arbitrary payload with the RSA key under the usual header and check. */
static void expect_payload(struct fixture *f, const char *cfg_extra, const char *payload,
                           enum pg_reason want)
{
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, payload);
    expect(f, cfg_extra, t, want);
    free(t);
}

static void test_accept_and_identity(void **state)
{
    struct fixture *f = *state;
    char *c = claims(",\"preferred_username\":\"alice@contoso.example\"");
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, c);
    struct pg_verify_result res;
    assert_int_equal(verify_with(f, NULL, t, strlen(t), &res), 0);
    assert_int_equal(res.reason, PG_REASON_NONE);
    assert_string_equal(res.id.sub, "s-1");
    assert_string_equal(res.id.oid, "a1b2");
    assert_string_equal(res.id.tid, TID);
    assert_string_equal(res.id.iss, ISS);
    assert_string_equal(res.id.name, "Alice");
    assert_int_equal(res.id.aud.count, 1);
    assert_string_equal(res.id.aud.items[0], CID);
    assert_int_equal(res.id.roles.count, 1);
    assert_string_equal(res.id.roles.items[0], "AgentPool.Enroll");
    assert_int_equal(res.id.exp, NOW + 3600);
    assert_int_equal(res.id.iat, NOW - 60);
    assert_false(res.id.app_only);
    pg_verify_result_clear(&res);
    free(c), free(t);
}

static void test_other_algorithms(void **state)
{
    struct fixture *f = *state;
    char *c = claims(NULL);
    char *t = tk_sign(f->rsa, "PS256", "{\"alg\":\"PS256\",\"kid\":\"r1\"}", c);
    expect(f, NULL, t, PG_REASON_NONE);
    free(t);
    t = tk_sign(f->p256, "ES256", "{\"alg\":\"ES256\",\"kid\":\"e1\"}", c);
    expect(f, NULL, t, PG_REASON_NONE);
    free(t);
    t = tk_sign(f->p384, "ES384", "{\"alg\":\"ES384\",\"kid\":\"e2\"}", c);
    expect(f, NULL, t, PG_REASON_NONE);
    free(t);
    /* RS384 is a valid algorithm for the key but not in this config's allow-list. */
    t = tk_sign(f->rsa, "RS384", "{\"alg\":\"RS384\",\"kid\":\"r1\"}", c);
    expect(f, NULL, t, PG_REASON_ALGORITHM);
    free(t);
    /* The key's type decides: an EC algorithm named with the RSA key. */
    t = tk_sign(f->p256, "ES256", "{\"alg\":\"ES256\",\"kid\":\"r1\"}", c);
    expect(f, NULL, t, PG_REASON_ALGORITHM);
    free(t);
    free(c);
}

static void test_alg_none_and_hmac(void **state)
{
    struct fixture *f = *state;
    static const char *const algs[] = {"none", "None", "NONE", "nOnE", "HS256", "HS512", ""};
    char *c = claims(NULL);
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char h[128];
        snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"kid\":\"r1\"}", algs[i]);
        unsigned char sig[32] = {1};
        char *t = tk_raw(h, c, sig, sizeof(sig));
        /* "none" in any case has its own refusal, before any key is looked at. */
        expect_detail(f, NULL, t, PG_REASON_ALGORITHM,
                      strcasecmp(algs[i], "none") == 0 ? "never accepted" : "not supported");
        t[strlen(t) - 43] = '\0'; /* drop the signature: "h.p." */
        expect(f, NULL, t, PG_REASON_MALFORMED);
        free(t);
    }
    char *t = tk_raw("{\"kid\":\"r1\"}", c, (const unsigned char *)"x", 1);
    expect(f, NULL, t, PG_REASON_ALGORITHM);
    free(t);
    t = tk_raw("{\"alg\":[\"RS256\"],\"kid\":\"r1\"}", c, (const unsigned char *)"x", 1);
    expect(f, NULL, t, PG_REASON_ALGORITHM);
    free(t);
    free(c);
}

static void test_kid_lookup(void **state)
{
    struct fixture *f = *state;
    static const char *const hdrs[] = {
        "{\"alg\":\"RS256\",\"kid\":\"../../dev/null\"}",
        "{\"alg\":\"RS256\",\"kid\":\"' OR 1=1 --\"}",
        "{\"alg\":\"RS256\",\"kid\":\"r\"}",
        "{\"alg\":\"RS256\",\"kid\":\"r1 \"}",
        "{\"alg\":\"RS256\",\"kid\":\"R1\"}",
    };
    char *c = claims(NULL);
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *t = tk_sign(f->rsa, "RS256", hdrs[i], c);
        expect(f, NULL, t, PG_REASON_KEY);
        free(t);
    }
    static const char *const bad[] = {
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"RS256\",\"kid\":null}",
        "{\"alg\":\"RS256\",\"kid\":1}",
        "{\"alg\":\"RS256\",\"kid\":\"\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = tk_sign(f->rsa, "RS256", bad[i], c);
        expect(f, NULL, t, PG_REASON_HEADER);
        free(t);
    }
    free(c);
}

static void test_forbidden_header_members(void **state)
{
    struct fixture *f = *state;
    static const char *const members[] = {
        "\"jwk\":{\"kty\":\"RSA\"}",
        "\"jku\":\"https://evil.example/keys\"",
        "\"x5u\":\"https://evil.example/c\"",
        "\"x5c\":[\"MIIB\"]",
        "\"crit\":[\"exp\"]",
        "\"crit\":[]",
        "\"b64\":false",
        "\"b64\":true",
    };
    char *c = claims(NULL);
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        char h[256];
        snprintf(h, sizeof(h), "{\"alg\":\"RS256\",\"kid\":\"r1\",%s}", members[i]);
        char *t = tk_sign(f->rsa, "RS256", h, c);
        expect(f, NULL, t, PG_REASON_HEADER);
        free(t);
    }
    char *t = tk_sign(f->rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"r1\",\"alg\":\"RS256\"}", c);
    expect(f, NULL, t, PG_REASON_MALFORMED); /* duplicate header member */
    free(t);
    free(c);
}

/*
 * Header members are sorted by name in one pass (three-byte names as a
 * number): a name is the one it decodes to, escapes and all, and only
 * that one; a name spelt twice is refused by the parser.
 */
static void test_header_member_names(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *hdr;
        enum pg_reason want;
    } cases[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"zip\":\"DEF\"}", PG_REASON_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"\\u006aku\":\"https://e.example\"}",
         PG_REASON_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"cri\\u0074\":[]}", PG_REASON_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"x5\\u0063\":[]}", PG_REASON_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"\\u0061lg\":\"none\"}", PG_REASON_MALFORMED},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"ki\\u0064\":\"t1\"}", PG_REASON_MALFORMED},
        {"{\"\\u0061lg\":\"RS256\",\"\\u006bid\":\"r1\"}", PG_REASON_NONE},
        {"{\"Alg\":\"RS256\",\"kid\":\"r1\"}", PG_REASON_ALGORITHM},
        {"{\"alg \":\"RS256\",\"kid\":\"r1\"}", PG_REASON_ALGORITHM},
        {"{\"al\":\"RS256\",\"kid\":\"r1\"}", PG_REASON_ALGORITHM},
        {"{\"alg\":\"RS256\",\"kids\":\"r1\"}", PG_REASON_HEADER},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit \":[],\"cri\":[],\"jwks\":1}", PG_REASON_NONE},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":1}", PG_REASON_HEADER},
    };
    char *c = claims(NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = tk_sign(f->rsa, "RS256", cases[i].hdr, c);
        expect(f, NULL, t, cases[i].want);
        free(t);
    }
    free(c);
}

/*
 * Claims are sorted by name in one pass too: a claim spelt with escapes is
 * that claim (and a second spelling of it a duplicate), a near miss is
 * another claim, and a roles claim that is also read for itself is checked
 * as both.
 */
static void test_claim_names(void **state)
{
    struct fixture *f = *state;
    expect_claims(f, NULL, ",\"e\\u0078p\":1", PG_REASON_MALFORMED);
    expect_claims(f, NULL, ",\"\\u0073ub\":\"other\"", PG_REASON_MALFORMED);
    expect_claims(f, NULL, ",\"upn\":\"a\",\"up\\u006e\":\"b\"", PG_REASON_MALFORMED);
    /* Near misses of exp: no exp claim. */
    static const char *const near[] = {"Exp", "exp ", "ex", "expx", "e"};
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf),
                 "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"%s\":1767229200,\"sub\":\"s\","
                 "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}",
                 near[i]);
        expect_payload(f, NULL, buf, PG_REASON_CLAIMS);
    }
    /* Escaped names of claims read: the same claims. */
    expect_payload(f, NULL,
                   "{\"\\u0061ud\":\"" CID "\",\"is\\u0073\":\"" ISS "\",\"e\\u0078p\":1767229200,"
                   "\"su\\u0062\":\"s\",\"\\u0074id\":\"" TID
                   "\",\"rol\\u0065s\":[\"AgentPool.Enroll\"]}",
                   PG_REASON_NONE);
    /* The roles claim names a claim read for itself: both checks apply. */
    expect_claims(f, "roles_claim = exp\n", NULL, PG_REASON_CLAIMS);
    expect_claims(f, "roles_claim = name\nrequired_roles = Alice\n", NULL, PG_REASON_CLAIMS);
    expect_payload(f, "roles_claim = aud\nrequired_roles = " CID "\n",
                   "{\"aud\":[\"" CID "\"],\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                   "\"tid\":\"" TID "\"}",
                   PG_REASON_NONE);
    expect_payload(f, "roles_claim = aud\nrequired_roles = " CID "\n",
                   "{\"aud\":[\"" CID "\",7],\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                   "\"tid\":\"" TID "\"}",
                   PG_REASON_CLAIMS);
    /* Display name: the first string of name, preferred_username and upn. */
    static const struct {
        const char *members, *name;
    } names[] = {
        {"\"upn\":\"u\",\"preferred_username\":\"p\",\"name\":\"n\"", "n"},
        {"\"upn\":\"u\",\"preferred_username\":\"p\",\"name\":1", "p"},
        {"\"upn\":\"u\",\"preferred_username\":[\"p\"],\"name\":null", "u"},
        {"\"upn\":7", NULL},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf),
                 "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                 "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"],%s}",
                 names[i].members);
        char *t = tk_sign(f->rsa, "RS256", HDR_RS256, buf);
        struct pg_verify_result res;
        assert_int_equal(verify_with(f, NULL, t, strlen(t), &res), 0);
        if (names[i].name)
            assert_string_equal(res.id.name, names[i].name);
        else
            assert_null(res.id.name);
        pg_verify_result_clear(&res);
        free(t);
    }
}

static void test_signature_forms(void **state)
{
    struct fixture *f = *state;
    char *c = claims(NULL);
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, c);
    size_t len = strlen(t);
    char *copy = strdup(t);
    /* One flipped bit in the signature, the payload, the header. */
    copy[len - 5] = copy[len - 5] == 'A' ? 'B' : 'A';
    expect(f, NULL, copy, PG_REASON_SIGNATURE);
    strcpy(copy, t);
    char *dot = strchr(copy, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    expect(f, NULL, copy, PG_REASON_SIGNATURE);
    /* Signatures of the wrong length for the key. */
    unsigned char junk[512] = {0x5a};
    static const size_t lens[] = {1, 128, 255, 257, 512};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char *w = tk_raw(HDR_RS256, c, junk, lens[i]);
        expect_detail(f, NULL, w, PG_REASON_SIGNATURE, "the key makes 256-byte signatures");
        free(w);
    }
    /* Extra parts, missing parts. */
    char buf[8192];
    snprintf(buf, sizeof(buf), "%s.", t);
    expect(f, NULL, buf, PG_REASON_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.a.b", t);
    expect(f, NULL, buf, PG_REASON_MALFORMED);
    strcpy(copy, t);
    *strrchr(copy, '.') = '\0';
    expect(f, NULL, copy, PG_REASON_MALFORMED);
    expect(f, NULL, "", PG_REASON_MALFORMED);
    expect(f, NULL, "..", PG_REASON_MALFORMED);
    /* Signature signed by another key under this kid. */
    char *other = tk_sign(f->rsa_tmpl, "RS256", HDR_RS256, c);
    expect(f, NULL, other, PG_REASON_SIGNATURE);
    free(other);
    free(copy), free(t), free(c);
}

static void test_ecdsa_edge_values(void **state)
{
    struct fixture *f = *state;
    /* P-256 order n. */
    static const unsigned char n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                        0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
    unsigned char sig[64];
    char *c = claims(NULL);
    const char *h = "{\"alg\":\"ES256\",\"kid\":\"e1\"}";
    for (int form = 0; form < 4; form++) {
        memset(sig, 0, sizeof(sig));
        if (form == 1)
            memcpy(sig, n, 32), sig[63] = 1; /* r = n */
        if (form == 2)
            sig[31] = 1, memcpy(sig + 32, n, 32); /* s = n */
        if (form == 3)
            memset(sig, 0xff, sizeof(sig)); /* r, s > n */
        char *t = tk_raw(h, c, sig, sizeof(sig));
        /* Refused by poolgate's own range check, not left to OpenSSL. */
        expect_detail(f, NULL, t, PG_REASON_SIGNATURE, "out of range");
        free(t);
    }
    free(c);
}

static void test_base64url_strictness(void **state)
{
    struct fixture *f = *state;
    char *c = claims(NULL);
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, c);
    static const char *const inserts[] = {"=", "+", "/", " ", "\n", "\r\n"};
    char buf[8192];
    char *h = tk_b64url_str(HDR_RS256), *p = tk_b64url_str(c);
    for (size_t i = 0; i < sizeof(inserts) / sizeof(inserts[0]); i++) {
        /* In the header and the payload the odd encoding is itself signed, so
         * only the decoder can refuse it; in the signature it is appended. */
        snprintf(buf, sizeof(buf), "%s%s.%s", h, inserts[i], p);
        char *signed_h = tk_sign_input(f->rsa, "RS256", buf);
        expect(f, NULL, signed_h, PG_REASON_MALFORMED);
        snprintf(buf, sizeof(buf), "%s.%s%s", h, p, inserts[i]);
        char *signed_p = tk_sign_input(f->rsa, "RS256", buf);
        expect(f, NULL, signed_p, PG_REASON_MALFORMED);
        snprintf(buf, sizeof(buf), "%s%s", t, inserts[i]);
        expect(f, NULL, buf, PG_REASON_MALFORMED);
        free(signed_h), free(signed_p);
    }
    /* Non-zero unused bits: the last character of a 2-mod-4 segment, bumped. */
    strcpy(buf, t);
    char *last = buf + strlen(buf) - 1;
    *last = *last == 'A' ? 'B' : (char)(*last + 1);
    expect(f, NULL, buf, PG_REASON_MALFORMED);
    free(h), free(p), free(t), free(c);
}

static void test_oversized(void **state)
{
    struct fixture *f = *state;
    char *pad = malloc(PG_TOKEN_MAX);
    memset(pad, 'a', PG_TOKEN_MAX - 400);
    pad[PG_TOKEN_MAX - 400] = '\0';
    char *extra = malloc(PG_TOKEN_MAX);
    snprintf(extra, PG_TOKEN_MAX, ",\"pad\":\"%s\"", pad);
    char *c = claims(extra);
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, c);
    assert_true(strlen(t) > PG_TOKEN_MAX);
    expect(f, NULL, t, PG_REASON_MALFORMED);
    free(pad), free(extra), free(c), free(t);
    /* Large but allowed: a header, a payload and their documents beyond
     * what the verifier keeps on its stack, in every combination. */
    for (int big = 1; big < 4; big++) {
        char hdr[1200], *groups = malloc(8192);
        size_t off = (size_t)snprintf(groups, 8192, ",\"groups\":[");
        for (int i = 0; i < ((big & 1) ? 700 : 1); i++)
            off += (size_t)snprintf(groups + off, 8192 - off, "%s\"g%d\"", i ? "," : "", i);
        snprintf(groups + off, 8192 - off, "]");
        off = (size_t)snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"r1\",\"x\":[");
        for (int i = 0; i < ((big & 2) ? 300 : 0); i++)
            off += (size_t)snprintf(hdr + off, sizeof(hdr) - off, "0,");
        snprintf(hdr + off, sizeof(hdr) - off, "0]}");
        c = claims(groups);
        t = tk_sign(f->rsa, "RS256", hdr, c);
        struct pg_verify_result res;
        assert_int_equal(
            verify_with(f, "roles_claim = groups\nrequired_roles = g0\n", t, strlen(t), &res), 0);
        assert_int_equal(res.id.roles.count, (big & 1) ? 700 : 1);
        assert_string_equal(res.id.sub, "s-1");
        pg_verify_result_clear(&res);
        free(groups), free(c), free(t);
    }
}

static void test_duplicate_and_bad_json(void **state)
{
    struct fixture *f = *state;
    expect_claims(f, NULL, ",\"tid\":\"" TID "\"", PG_REASON_MALFORMED);
    expect_claims(f, NULL, ",\"aud\":\"" CID "\"", PG_REASON_MALFORMED);
    expect_claims(f, NULL, ",\"roles\":[]", PG_REASON_MALFORMED);
    expect_payload(f, NULL, "[1,2]", PG_REASON_MALFORMED);
    expect_payload(f, NULL, "{\"exp\":1} x", PG_REASON_MALFORMED);
    expect_payload(f, NULL, "{\"exp\":NaN}", PG_REASON_MALFORMED);
    expect_payload(f, NULL, "{\"name\":\"\xff\"}", PG_REASON_MALFORMED);
    expect_payload(f, NULL, "{\"name\":\"\\ud800\"}", PG_REASON_MALFORMED);
}

static void test_numeric_claims(void **state)
{
    struct fixture *f = *state;
    char buf[512];
    static const char *const bad[] = {"\"1767229200\"", "true",         "null",
                                      "[1767229200]",   "-1",           "1767229200.5",
                                      "1e10",           "253402300800", "9223372036854775807"};
    static const char *const names[] = {"exp", "nbf", "iat"};
    for (size_t n = 0; n < 3; n++)
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            /* Rebuild the claims with this one member replaced. */
            snprintf(buf, sizeof(buf),
                     "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"%s\":%s,%s\"sub\":\"s\","
                     "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}",
                     names[n], bad[i], n == 0 ? "" : "\"exp\":1767229200,");
            expect_payload(f, NULL, buf, PG_REASON_CLAIMS);
        }
    expect_payload(f, NULL,
                   "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"sub\":\"s\",\"tid\":\"" TID "\","
                   "\"roles\":[\"AgentPool.Enroll\"]}",
                   PG_REASON_CLAIMS); /* no exp */
    expect_payload(f, NULL, "{\"exp\":99999999999999999999}", PG_REASON_MALFORMED);
}

static void test_times(void **state)
{
    struct fixture *f = *state;
    char buf[512];
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW - 119, NOW - 999, NOW - 999);
    expect_payload(f, NULL, buf, PG_REASON_NONE); /* within clock_skew */
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW - 121, NOW - 999, NOW - 999);
    expect_payload(f, NULL, buf, PG_REASON_EXPIRED);
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW - 1, NOW - 999, NOW - 999);
    expect_payload(f, "clock_skew = 0\n", buf, PG_REASON_EXPIRED);
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW + 999, NOW + 119, NOW - 10);
    expect_payload(f, NULL, buf, PG_REASON_NONE);
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW + 999, NOW + 121, NOW - 10);
    expect_payload(f, NULL, buf, PG_REASON_NOT_YET);
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW + 999, NOW - 10, NOW + 121);
    expect_payload(f, NULL, buf, PG_REASON_NOT_YET);
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW + 999, NOW - 10, NOW - 301);
    expect_payload(f, "max_age = 300\n", buf, PG_REASON_TOO_OLD);
    snprintf(buf, sizeof(buf), TIMES_FMT, NOW + 999, NOW - 10, NOW - 299);
    expect_payload(f, "max_age = 300\n", buf, PG_REASON_NONE);
    expect_payload(f, "max_age = 300\n",
                   "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                   "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}",
                   PG_REASON_TOO_OLD); /* max_age needs iat */
}

static void test_audience(void **state)
{
    struct fixture *f = *state;
    char buf[512];
    static const struct {
        const char *aud;
        enum pg_reason want;
    } cases[] = {
        {"[\"other\",\"" CID "\"]", PG_REASON_NONE},
        {"[]", PG_REASON_AUDIENCE},
        {"[\"" CID "\",1]", PG_REASON_CLAIMS},
        {"[\"" CID "\",null]", PG_REASON_CLAIMS},
        {"[[\"" CID "\"]]", PG_REASON_CLAIMS},
        {"{\"a\":\"" CID "\"}", PG_REASON_CLAIMS},
        {"\"6e74172b\"", PG_REASON_AUDIENCE},
        {"\"" CID "x\"", PG_REASON_AUDIENCE},
        {"\"6E74172B-BE56-4843-9FF4-E66A39BB12E3\"", PG_REASON_AUDIENCE},
        {"\"api://" CID "\"", PG_REASON_AUDIENCE},
        {"\"\"", PG_REASON_AUDIENCE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "{\"aud\":%s,\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                 "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}",
                 cases[i].aud);
        expect_payload(f, NULL, buf, cases[i].want);
    }
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256,
                      "{\"aud\":[],\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                      "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}");
    expect_detail(f, NULL, t, PG_REASON_AUDIENCE, "empty array");
    free(t);
    /* audience configured separately from client_id. */
    snprintf(buf, sizeof(buf),
             "{\"aud\":\"api://poolgate\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
             "\"tid\":\"" TID "\",\"scp\":\"Enroll\",\"roles\":[\"AgentPool.Enroll\"]}");
    expect_payload(f, "audience = api://poolgate\nvalidate = access_token\n", buf, PG_REASON_NONE);
    expect_payload(f, NULL, buf, PG_REASON_AUDIENCE);
}

static void test_issuer(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        ISS "/",
        "https://login.microsoftonline.com/" TID "/v2",
        "https://login.microsoftonline.com/" TID "/V2.0",
        "HTTPS://login.microsoftonline.com/" TID "/v2.0",
        "https://login.microsoftonline.com/{tenantid}/v2.0",
        "https://login.microsoftonline.com.evil.example/" TID "/v2.0",
        "https://sts.windows.net/" TID "/",
    };
    char buf[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "{\"aud\":\"" CID "\",\"iss\":\"%s\",\"exp\":1767229200,\"sub\":\"s\","
                 "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}",
                 bad[i]);
        expect_payload(f, NULL, buf, PG_REASON_ISSUER);
    }
    expect_payload(f, NULL,
                   "{\"aud\":\"" CID "\",\"iss\":7,\"exp\":1767229200,\"sub\":\"s\","
                   "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\"]}",
                   PG_REASON_CLAIMS);
}

static void test_key_issuer_template(void **state)
{
    struct fixture *f = *state;
    const char *h = "{\"alg\":\"RS256\",\"kid\":\"t1\"}";
    char *c = claims(NULL);
    char *t = tk_sign(f->rsa_tmpl, "RS256", h, c);
    expect(f, NULL, t, PG_REASON_NONE);
    free(t), free(c);
    /* A token of another tenant under the same issuer template: iss and tid agree
     * with each other, the config's issuer refuses it first. */
    const char *other =
        "{\"aud\":\"" CID "\",\"iss\":\"https://login.microsoftonline.com/" OTHER_TID
        "/v2.0\",\"exp\":1767229200,\"sub\":\"s\",\"tid\":\"" OTHER_TID "\","
        "\"roles\":[\"AgentPool.Enroll\"]}";
    t = tk_sign(f->rsa_tmpl, "RS256", h, other);
    expect(f, NULL, t, PG_REASON_ISSUER);
    free(t);
    /* iss right, tid of another tenant: the key's template refuses. */
    const char *mixed = "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                        "\"tid\":\"" OTHER_TID "\",\"roles\":[\"AgentPool.Enroll\"]}";
    t = tk_sign(f->rsa_tmpl, "RS256", h, mixed);
    expect(f, NULL, t, PG_REASON_ISSUER);
    free(t);
}

static void test_tenant(void **state)
{
    struct fixture *f = *state;
    char buf[512];
    snprintf(buf, sizeof(buf), TENANT_FMT, "");
    expect_payload(f, NULL, buf, PG_REASON_TENANT); /* tid missing */
    snprintf(buf, sizeof(buf), TENANT_FMT, ",\"tid\":\"" OTHER_TID "\"");
    expect_payload(f, NULL, buf, PG_REASON_TENANT);
    snprintf(buf, sizeof(buf), TENANT_FMT, ",\"tid\":\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\"");
    expect_payload(f, NULL, buf, PG_REASON_TENANT);
    snprintf(buf, sizeof(buf), TENANT_FMT, ",\"tid\":[\"" TID "\"]");
    expect_payload(f, NULL, buf, PG_REASON_CLAIMS);
    /* Without `tenant`: the Entra issuer's own tenant segment still binds tid. */
    const char *no_tenant_cfg = "issuer = " ISS "\nclient_id = " CID "\n";
    struct pg_config *cfg = NULL;
    assert_int_equal(pg_config_parse(no_tenant_cfg, strlen(no_tenant_cfg), "t", &cfg, NULL), 0);
    snprintf(buf, sizeof(buf), TENANT_FMT, ",\"tid\":\"" OTHER_TID "\"");
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, buf);
    struct pg_verify_result res;
    assert_int_equal(pg_verify_token(cfg, f->ks, t, strlen(t), &(struct pg_verify_opts){NOW}, &res),
                     PG_ERR_TOKEN);
    assert_int_equal(res.reason, PG_REASON_TENANT);
    pg_verify_result_clear(&res);
    free(t);
    pg_config_free(cfg);
}

/*
 * An issuer is Entra-shaped, and then binds tid to its tenant segment, only
 * when that segment is exactly a GUID: one character changed anywhere in
 * it, to a hex digit or a dash or anything else, in both issuer forms.
 */
static void test_issuer_tenant_shape(void **state)
{
    struct fixture *f = *state;
    /* (With each end of the ranges '0'-'9', 'A'-'F' and 'a'-'f' and the
     * byte either side of it.) */
    static const char subst[] = "0aF9fAgGz-._~/:@`";
    for (int form = 0; form < 2; form++)
        for (int at = 0; at < 36; at++)
            for (const char *ch = subst; *ch; ch++) {
                char guid[37], iss[128], cfgtext[256], payload[512];
                memcpy(guid, TID, 37);
                guid[at] = *ch;
                bool dash = at == 8 || at == 13 || at == 18 || at == 23;
                bool shaped = dash ? *ch == '-' : strchr("0123456789abcdefABCDEF", *ch) != NULL;
                snprintf(iss, sizeof(iss),
                         form ? "https://sts.windows.net/%s/"
                              : "https://login.microsoftonline.com/%s/v2.0",
                         guid);
                /* ES256: 1224 signatures, which RSA would make minutes long
                 * under valgrind. */
                snprintf(cfgtext, sizeof(cfgtext),
                         "issuer = %s\nclient_id = " CID "\nalgorithms = ES256\n", iss);
                snprintf(payload, sizeof(payload),
                         "{\"aud\":\"" CID "\",\"iss\":\"%s\",\"exp\":1767229200,\"sub\":\"s\","
                         "\"tid\":\"" OTHER_TID "\"}",
                         iss);
                struct pg_config *cfg = NULL;
                assert_int_equal(pg_config_parse(cfgtext, strlen(cfgtext), "t", &cfg, NULL), 0);
                char *t = tk_sign(f->p256, "ES256", "{\"alg\":\"ES256\",\"kid\":\"e1\"}", payload);
                struct pg_verify_result res;
                int r =
                    pg_verify_token(cfg, f->ks, t, strlen(t), &(struct pg_verify_opts){NOW}, &res);
                if (shaped) {
                    assert_int_equal(r, PG_ERR_TOKEN);
                    assert_int_equal(res.reason, PG_REASON_TENANT);
                } else {
                    assert_int_equal(r, 0);
                }
                pg_verify_result_clear(&res);
                free(t);
                pg_config_free(cfg);
            }
}

static void test_generic_oidc(void **state)
{
    struct fixture *f = *state;
    const char *cfgtext = "issuer = https://idp.example.test/realms/build\n"
                          "client_id = poolgate\n"
                          "roles_claim = realm_access.roles\n"
                          "required_roles = enroll\n";
    struct pg_config *cfg = NULL;
    assert_int_equal(pg_config_parse(cfgtext, strlen(cfgtext), "t", &cfg, NULL), 0);
    const char *payload = "{\"aud\":\"poolgate\",\"iss\":\"https://idp.example.test/realms/build\","
                          "\"exp\":1767229200,\"sub\":\"u1\",\"realm_access\":{\"roles\":"
                          "[\"enroll\",\"x\"]}}";
    char *t = tk_sign(f->rsa, "RS256", HDR_RS256, payload);
    struct pg_verify_result res;
    assert_int_equal(pg_verify_token(cfg, f->ks, t, strlen(t), &(struct pg_verify_opts){NOW}, &res),
                     0);
    assert_null(res.id.tid);
    assert_int_equal(res.id.roles.count, 2);
    pg_verify_result_clear(&res);
    free(t);
    /* Top-level "roles" is not looked at when roles_claim points elsewhere. */
    t = tk_sign(f->rsa, "RS256", HDR_RS256,
                "{\"aud\":\"poolgate\",\"iss\":\"https://idp.example.test/realms/build\","
                "\"exp\":1767229200,\"sub\":\"u1\",\"roles\":[\"enroll\"]}");
    assert_int_equal(pg_verify_token(cfg, f->ks, t, strlen(t), &(struct pg_verify_opts){NOW}, &res),
                     PG_ERR_TOKEN);
    assert_int_equal(res.reason, PG_REASON_ROLES);
    pg_verify_result_clear(&res);
    free(t);
    pg_config_free(cfg);
}

static void test_roles(void **state)
{
    struct fixture *f = *state;
    char buf[512];
    static const struct {
        const char *roles;
        enum pg_reason want;
    } cases[] = {
        {"[\"x\",\"AgentPool.Enroll\"]", PG_REASON_NONE},
        {"[]", PG_REASON_ROLES},
        {"[\"agentpool.enroll\"]", PG_REASON_ROLES},
        {"[\"AgentPool.Enroll \"]", PG_REASON_ROLES},
        {"[\"\\uff21gentPool.Enroll\"]", PG_REASON_ROLES},  /* fullwidth A */
        {"[\"Agent\\u200bPool.Enroll\"]", PG_REASON_ROLES}, /* zero-width space */
        {"[\"AgentPool.Enroll\\u200b\"]", PG_REASON_ROLES},
        {"[\"AgentPool.Enrol\"]", PG_REASON_ROLES},
        {"\"AgentPool.Enroll\"", PG_REASON_CLAIMS},
        {"[[\"AgentPool.Enroll\"]]", PG_REASON_CLAIMS},
        {"[\"AgentPool.Enroll\",1]", PG_REASON_CLAIMS},
        {"[\"AgentPool.Enroll\",null]", PG_REASON_CLAIMS},
        {"{\"0\":\"AgentPool.Enroll\"}", PG_REASON_CLAIMS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                 "\"tid\":\"" TID "\",\"roles\":%s}",
                 cases[i].roles);
        expect_payload(f, NULL, buf, cases[i].want);
    }
    expect_payload(f, NULL,
                   "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                   "\"tid\":\"" TID "\"}",
                   PG_REASON_ROLES); /* no roles claim at all */
    expect_payload(f, NULL,
                   "{\"aud\":\"" CID "\",\"iss\":\"" ISS "\",\"exp\":1767229200,\"sub\":\"s\","
                   "\"tid\":\"" TID "\",\"roles\":[\"AgentPool.Enroll\\u0000\"]}",
                   PG_REASON_MALFORMED); /* NUL is refused by the parser */
    /* all / any */
    expect_claims(f, "required_roles = AgentPool.Enroll Build.Admin\n", NULL, PG_REASON_ROLES);
    expect_claims(f, "required_roles = AgentPool.Enroll Build.Admin\nroles_match = any\n", NULL,
                  PG_REASON_NONE);
    expect_claims(f, "required_roles = Build.Admin Other\nroles_match = any\n", NULL,
                  PG_REASON_ROLES);
    /* Another top-level roles claim; or one that is also a claim read for
     * itself: it is found for both. */
    expect_claims(f, "roles_claim = groups\n", ",\"groups\":[\"AgentPool.Enroll\"]",
                  PG_REASON_NONE);
    expect_claims(f, "roles_claim = groups\n", NULL, PG_REASON_ROLES);
    char *c = claims(NULL), *t = tk_sign(f->rsa, "RS256", HDR_RS256, c);
    expect_detail(f, "roles_claim = aud\n", t, PG_REASON_CLAIMS, "'aud' is not an array");
    free(c), free(t);
}

static void test_app_tokens(void **state)
{
    struct fixture *f = *state;
    expect_claims(f, NULL, ",\"idtyp\":\"app\"", PG_REASON_APP_TOKEN);
    expect_claims(f, "allow_app_tokens = yes\n", ",\"idtyp\":\"app\"", PG_REASON_NONE);
    /* An unattended credential does not open the sign-in's gate to them. */
    expect_claims(f, "credential = managed_identity\ngate_scope = api://g/.default\n",
                  ",\"idtyp\":\"app\"", PG_REASON_APP_TOKEN);
    expect_claims(f, NULL, ",\"idtyp\":\"user\"", PG_REASON_NONE);
    expect_claims(f, NULL, ",\"idtyp\":1", PG_REASON_CLAIMS);
    /* Access tokens without scp on an Entra issuer are app-only. */
    expect_claims(f, "validate = access_token\n", NULL, PG_REASON_APP_TOKEN);
    expect_claims(f, "validate = access_token\n", ",\"scp\":\"Enroll\"", PG_REASON_NONE);
    /* id_tokens never carry scp: that is normal. */
    expect_claims(f, NULL, NULL, PG_REASON_NONE);
}

static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    struct pg_verify_result res;
    assert_int_equal(pg_verify_token(NULL, f->ks, "a", 1, NULL, &res), PG_ERR_ARG);
    assert_int_equal(pg_verify_token(NULL, NULL, NULL, 0, NULL, NULL), PG_ERR_ARG);
    pg_verify_result_clear(NULL);
    assert_string_equal(pg_reason_name((enum pg_reason)999), "unknown");
    assert_string_equal(pg_reason_name(PG_REASON_NOT_YET), "not-yet-valid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_and_identity),
        cmocka_unit_test(test_other_algorithms),
        cmocka_unit_test(test_alg_none_and_hmac),
        cmocka_unit_test(test_kid_lookup),
        cmocka_unit_test(test_forbidden_header_members),
        cmocka_unit_test(test_header_member_names),
        cmocka_unit_test(test_claim_names),
        cmocka_unit_test(test_signature_forms),
        cmocka_unit_test(test_ecdsa_edge_values),
        cmocka_unit_test(test_base64url_strictness),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_duplicate_and_bad_json),
        cmocka_unit_test(test_numeric_claims),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_key_issuer_template),
        cmocka_unit_test(test_tenant),
        cmocka_unit_test(test_issuer_tenant_shape),
        cmocka_unit_test(test_generic_oidc),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_app_tokens),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
