/* A C host on BoringSSL: built by tests/boringssl.rs against boring-sys's BoringSSL headers and
 * static libraries with -Wall -Wextra -Wpedantic -Werror, so snicache_ssl.h's BoringSSL branch
 * must compile cleanly; then run. It fills the table with snicache_ssl_api_init(), attaches a
 * cache and drives TLS 1.2 handshakes through memory BIOs: a session resumes under its own
 * SNI, is refused (`sni`) under another name on the same wildcard vhost, and a malformed SNI
 * gets snicache's illegal_parameter alert on the wire. Prints "ok" and exits 0 on success. */
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "snicache.h"
#include "snicache_ssl.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "expected BoringSSL headers"
#endif

static int failures;
static int client_alert = -1;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static SSL_CTX *server_ctx(const char *cn)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *key = EVP_PKEY_new();
    X509 *cert = X509_new();
    X509_NAME *name = X509_get_subject_name(cert);
    EC_KEY_generate_key(ec);
    EVP_PKEY_assign_EC_KEY(key, ec);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

static void client_info(const SSL *ssl, int where, int ret)
{
    (void)ssl;
    if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT && (ret >> 8) == SSL3_AL_FATAL)
        client_alert = ret & 0xff;
}

static void pump(BIO *from, BIO *to)
{
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0)
        BIO_write(to, buf, n);
}

struct result {
    int ok, resumed;
    uint32_t outcome;
    char vhost[64], reason[32];
    SSL_SESSION *session;
};

static struct result handshake(SSL_CTX *listener, SSL_CTX *cctx, const char *sni, SSL_SESSION *offer)
{
    struct result r;
    SSL *c = SSL_new(cctx), *s = SSL_new(listener);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    snicache_conn_info info;
    int i, a = 0, b = 0;

    memset(&r, 0, sizeof r);
    client_alert = -1;
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_set_tlsext_host_name(c, sni);
    if (offer != NULL)
        SSL_set_session(c, offer);
    for (i = 0; i < 20 && (a != 1 || b != 1); i++) {
        if (a != 1)
            a = SSL_do_handshake(c);
        pump(c_out, s_in);
        if (b != 1)
            b = SSL_do_handshake(s);
        pump(s_out, c_in);
    }
    r.ok = a == 1 && b == 1;
    if (r.ok) {
        SSL_shutdown(c);
        pump(c_out, s_in);
        SSL_shutdown(s);
    }
    r.resumed = SSL_session_reused(s);
    if (snicache_conn_info_get(s, &info) == SNICACHE_RESULT_OK) {
        r.outcome = info.outcome;
        snprintf(r.vhost, sizeof r.vhost, "%.*s", (int)info.vhost_len, info.vhost);
        if (info.reason != NULL)
            snprintf(r.reason, sizeof r.reason, "%.*s", (int)info.reason_len, info.reason);
    }
    r.session = SSL_get1_session(c);
    SSL_free(c);
    SSL_free(s);
    return r;
}

int main(void)
{
    snicache_ssl_api api;
    snicache_config *config = NULL;
    const snicache_cache *cache = NULL;
    SSL_CTX *listener = server_ctx("listener"), *a = server_ctx("a.test"), *wild = server_ctx("*.example.com");
    SSL_CTX *client = SSL_CTX_new(TLS_client_method());
    struct result first, again, other, bad;
    uint64_t n = 0;

    SSL_CTX_set_info_callback(client, client_info);
    snicache_ssl_api_init(&api);
    CHECK(api.library == SNICACHE_SSL_LIBRARY_BORINGSSL);
    CHECK(snicache_config_new(&api, &config) == SNICACHE_RESULT_OK);
    CHECK(snicache_config_add_vhost(config, "a.test", a, 0, SNICACHE_VHOST_DEFAULT) == SNICACHE_RESULT_OK);
    CHECK(snicache_config_add_vhost(config, "*.example.com", wild, 0, 0) == SNICACHE_RESULT_OK);
    CHECK(snicache_cache_new(config, &cache) == SNICACHE_RESULT_OK);
    CHECK(snicache_cache_attach(cache, listener, SNICACHE_INSTALL_CLIENT_HELLO | SNICACHE_INSTALL_SESSION_CACHE
                                | SNICACHE_INSTALL_SERVERNAME | SNICACHE_INSTALL_INFO) == SNICACHE_RESULT_OK);
    snicache_config_free(config);

    first = handshake(listener, client, "x.example.com", NULL);
    CHECK(first.ok && !first.resumed && strcmp(first.vhost, "*.example.com") == 0);
    again = handshake(listener, client, "x.example.com", first.session);
    CHECK(again.ok && again.resumed && again.outcome == SNICACHE_OUTCOME_RESUMED);
    other = handshake(listener, client, "y.example.com", first.session);
    CHECK(other.ok && !other.resumed && strcmp(other.reason, "sni") == 0);
    CHECK(snicache_cache_refusals(cache, NULL, "sni", &n) == SNICACHE_RESULT_OK && n == 1);
    bad = handshake(listener, client, "bad!.test", NULL);
    CHECK(!bad.ok && client_alert == SSL_AD_ILLEGAL_PARAMETER);

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(again.session);
    SSL_SESSION_free(other.session);
    SSL_SESSION_free(bad.session);
    snicache_cache_free(cache);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    SSL_CTX_free(a);
    SSL_CTX_free(wild);
    if (failures)
        return 1;
    printf("ok\n");
    return 0;
}
