/*
 * Fault injection for the test-only builds of poolgate and poolgate-helper
 * (see fault.c): the further calls their code makes that can fail -- file
 * system, processes, accounts, libcurl, OpenSSL and libqrencode.  Each
 * fails the way the real function reports an error.
 */
#include "fault.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <qrencode.h>

WRAP(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n), FAIL(EIO, -1))
WRAP(int, renameat, (int from, const char *a, int to, const char *b), (from, a, to, b),
     FAIL(EIO, -1))
WRAP(int, linkat, (int from, const char *a, int to, const char *b, int flags),
     (from, a, to, b, flags), FAIL(EIO, -1))
WRAP(int, fsync, (int fd), (fd), FAIL(EIO, -1))
WRAP(int, pipe2, (int fds[2], int flags), (fds, flags), FAIL(EMFILE, -1))
WRAP(int, mkdirat, (int dir, const char *path, mode_t mode), (dir, path, mode), FAIL(ENOSPC, -1))
WRAP(int, unlinkat, (int dir, const char *path, int flags), (dir, path, flags), FAIL(EIO, -1))
WRAP(int, flock, (int fd, int op), (fd, op), FAIL(ENOLCK, -1))
WRAP(int, fchown, (int fd, uid_t uid, gid_t gid), (fd, uid, gid), FAIL(EIO, -1))
WRAP(int, fchmod, (int fd, mode_t mode), (fd, mode), FAIL(EIO, -1))
WRAP(int, poll, (struct pollfd * fds, nfds_t n, int timeout), (fds, n, timeout), FAIL(ENOMEM, -1))
/* (Built with 64-bit file offsets, stdio.h names fopen64 for fopen.) */
WRAP(FILE *, fopen64, (const char *path, const char *mode), (path, mode), FAIL(ENOMEM, NULL))
WRAP(DIR *, opendir, (const char *path), (path), FAIL(ENOMEM, NULL))
WRAP(int, getpwuid_r, (uid_t uid, struct passwd *pw, char *buf, size_t n, struct passwd **out),
     (uid, pw, buf, n, out), (*out = NULL, ENOMEM))

WRAP(CURL *, curl_easy_init, (void), (), NULL)
WRAP(CURLcode, curl_easy_perform, (CURL * h), (h), CURLE_OUT_OF_MEMORY)
WRAP(struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s), (l, s), NULL)

/* Both take one more argument: a long, a curl_off_t, or a pointer to data
 * or to a function.  On the LP64 targets poolgate builds for, all of them
 * travel in the same 64-bit argument slot, so passing it on as a pointer
 * hands the real function the same bits. */
DECLARE(CURLcode, curl_easy_setopt, (CURL * h, CURLoption o, ...));
DECLARE(CURLcode, curl_easy_setopt, (CURL * h, CURLoption o, ...))
{
    va_list ap;
    va_start(ap, o);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return pg_fault_now("curl_easy_setopt") ? CURLE_OUT_OF_MEMORY
                                            : __real_curl_easy_setopt(h, o, arg);
}

DECLARE(CURLcode, curl_easy_getinfo, (CURL * h, CURLINFO i, ...));
DECLARE(CURLcode, curl_easy_getinfo, (CURL * h, CURLINFO i, ...))
{
    va_list ap;
    va_start(ap, i);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return pg_fault_now("curl_easy_getinfo") ? CURLE_BAD_FUNCTION_ARGUMENT
                                             : __real_curl_easy_getinfo(h, i, arg);
}

WRAP(BIGNUM *, BN_bin2bn, (const unsigned char *s, int n, BIGNUM *ret), (s, n, ret), NULL)
WRAP(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_new, (void), (), NULL)
WRAP(int, OSSL_PARAM_BLD_push_BN, (OSSL_PARAM_BLD * b, const char *k, const BIGNUM *bn), (b, k, bn),
     0)
WRAP(OSSL_PARAM *, OSSL_PARAM_BLD_to_param, (OSSL_PARAM_BLD * b), (b), NULL)
WRAP(EVP_PKEY_CTX *, EVP_PKEY_CTX_new_from_name,
     (OSSL_LIB_CTX * lib, const char *name, const char *propq), (lib, name, propq), NULL)
WRAP(EVP_PKEY_CTX *, EVP_PKEY_CTX_new_from_pkey,
     (OSSL_LIB_CTX * lib, EVP_PKEY *key, const char *propq), (lib, key, propq), NULL)
WRAP(int, EVP_PKEY_fromdata_init, (EVP_PKEY_CTX * c), (c), 0)
WRAP(int, EVP_PKEY_fromdata, (EVP_PKEY_CTX * c, EVP_PKEY **key, int sel, OSSL_PARAM *p),
     (c, key, sel, p), 0)
WRAP(int, EVP_PKEY_verify_init, (EVP_PKEY_CTX * c), (c), 0)
WRAP(EVP_MD_CTX *, EVP_MD_CTX_new, (void), (), NULL)
WRAP(EVP_MD *, EVP_MD_fetch, (OSSL_LIB_CTX * lib, const char *name, const char *propq),
     (lib, name, propq), NULL)
WRAP(int, EVP_DigestSignInit,
     (EVP_MD_CTX * c, EVP_PKEY_CTX **pc, const EVP_MD *md, ENGINE *e, EVP_PKEY *key),
     (c, pc, md, e, key), 0)
WRAP(int, EVP_DigestSign,
     (EVP_MD_CTX * c, unsigned char *sig, size_t *len, const unsigned char *tbs, size_t n),
     (c, sig, len, tbs, n), 0)
WRAP(int, EVP_Digest,
     (const void *data, size_t n, unsigned char *md, unsigned int *len, const EVP_MD *type,
      ENGINE *e),
     (data, n, md, len, type, e), 0)
WRAP(int, RAND_bytes, (unsigned char *buf, int n), (buf, n), 0)
WRAP(BIO *, BIO_new, (const BIO_METHOD *m), (m), NULL)
WRAP(BIO *, BIO_new_mem_buf, (const void *buf, int n), (buf, n), NULL)
WRAP(ECDSA_SIG *, ECDSA_SIG_new, (void), (), NULL)
WRAP(int, X509_digest, (const X509 *x, const EVP_MD *type, unsigned char *md, unsigned int *len),
     (x, type, md, len), 0)

WRAP(QRcode *, QRcode_encodeString,
     (const char *s, int version, QRecLevel level, QRencodeMode mode, int casesensitive),
     (s, version, level, mode, casesensitive), FAIL(ENOMEM, NULL))
