/* Built with the c-tests against OpenSSL 3, and with tests/boringssl/header_check.c against
 * BoringSSL (OPENSSL_IS_BORINGSSL), where the session rewriting and per-connection TLS 1.3 suites
 * are not available. */
#include "harness.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef OPENSSL_IS_BORINGSSL
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#endif

int h_failures;
static _Thread_local int last_client_alert = -1;

/* A fresh P-256 key. */
static EVP_PKEY *p256_key(void)
{
#ifdef OPENSSL_IS_BORINGSSL
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *key = EVP_PKEY_new();
    if (ec == NULL || key == NULL || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(key, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
#else
    return EVP_EC_gen("P-256");
#endif
}

SSL_CTX *h_server_ctx(const char *cn)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = p256_key();
    X509 *cert = X509_new();
    X509_NAME *name;
    if (ctx == NULL || key == NULL || cert == NULL)
        return NULL;
#ifdef OPENSSL_IS_BORINGSSL
    X509_set_version(cert, 2); /* v3 */
#endif
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

static void client_info(const SSL *ssl, int where, int ret)
{
    (void)ssl;
    if ((where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT && (ret >> 8) == SSL3_AL_FATAL)
        last_client_alert = ret & 0xff;
}

SSL_CTX *h_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_info_callback(ctx, client_info);
    return ctx;
}

/* Moves every pending byte from one side's write BIO to the other's read BIO. */
static void pump(BIO *from, BIO *to, int corrupt)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
        if (corrupt)
            buf[n - 1] ^= 0x5a;
        BIO_write(to, buf, n);
    }
}

static int fatal(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return rc <= 0 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

struct h_opts h_opts_for(int version, const char *sni)
{
    struct h_opts o;
    memset(&o, 0, sizeof o);
    o.version = version;
    o.sni = sni;
    return o;
}

struct h_result h_connect(SSL_CTX *listener, SSL_CTX *cctx, const struct h_opts *o)
{
    struct h_result r;
    SSL *c = SSL_new(cctx), *s = SSL_new(listener);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    int i, a = 0, b = 0;
    char byte;

    memset(&r, 0, sizeof r);
    r.alert = -1;
    last_client_alert = -1;
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (o->version) {
        SSL_set_min_proto_version(c, o->version);
        SSL_set_max_proto_version(c, o->version);
    }
    if (o->sni)
        SSL_set_tlsext_host_name(c, o->sni);
    if (o->offer)
        SSL_set_session(c, o->offer);
    if (o->client_options)
        SSL_set_options(c, o->client_options);
    if (o->cipher_list)
        SSL_set_cipher_list(c, o->cipher_list);
#ifdef OPENSSL_IS_BORINGSSL
    CHECK(o->ciphersuites == NULL); /* no per-connection TLS 1.3 suites */
#else
    if (o->ciphersuites)
        SSL_set_ciphersuites(c, o->ciphersuites);
#endif

    /* Errors are read right after each call: writing into a memory BIO clears its retry flag. */
    for (i = 0; i < 50; i++) {
        int dead_c = 0, dead_s = 0;
        if (a != 1) {
            a = SSL_do_handshake(c);
            dead_c = fatal(c, a);
        }
        pump(c_out, s_in, 0);
        if (b != 1) {
            b = SSL_do_handshake(s);
            dead_s = fatal(s, b);
        }
        pump(s_out, c_in, o->corrupt_server_flight && i == 0);
        if ((a == 1 && b == 1) || dead_c || dead_s)
            break;
    }
    r.ok = a == 1 && b == 1;
    if (o->corrupt_server_flight)
        CHECK(a != 1); /* the client refused the corrupted flight */
    if (r.ok) {
        /* Application data both ways: the client reads the server's byte, and with it any
         * TLS 1.3 NewSessionTicket sent before it. */
        SSL_write(s, "s", 1);
        pump(s_out, c_in, o->corrupt_server_after);
        if (SSL_read(c, &byte, 1) <= 0) {
            pump(c_out, s_in, 0); /* the client's alert */
            r.server_alerted = fatal(s, SSL_read(s, &byte, 1));
        } else {
            SSL_write(c, "c", 1);
            pump(c_out, s_in, o->corrupt_after);
            if (SSL_read(s, &byte, 1) <= 0) {
                r.server_alerted = 1;
                pump(s_out, c_in, 0);
                SSL_read(c, &byte, 1);
            } else {
                SSL_shutdown(c);
                pump(c_out, s_in, 0);
                SSL_shutdown(s);
                pump(s_out, c_in, 0);
                SSL_shutdown(c);
            }
        }
    } else if (o->corrupt_server_flight) {
        /* The client answered the corrupted flight with an alert: the server reads it. */
        pump(c_out, s_in, 0);
        r.server_alerted = fatal(s, SSL_do_handshake(s));
    } else {
        if (getenv("H_DEBUG"))
            ERR_print_errors_fp(stderr);
        pump(s_out, c_in, 0);
        SSL_do_handshake(c);
    }
    r.alert = last_client_alert;
    r.resumed = SSL_session_reused(s);
    r.cipher = SSL_get_current_cipher(s) ? SSL_CIPHER_get_name(SSL_get_current_cipher(s)) : NULL;
    r.session = SSL_get1_session(c);
    if (snicache_conn_info_get(s, &r.info) == SNICACHE_RESULT_OK) {
        r.have_info = 1;
        snprintf(r.vhost, sizeof r.vhost, "%.*s", (int)r.info.vhost_len, r.info.vhost);
        if (r.info.reason)
            snprintf(r.reason, sizeof r.reason, "%.*s", (int)r.info.reason_len, r.info.reason);
    }
    SSL_free(c);
    SSL_free(s);
    return r;
}

#ifndef OPENSSL_IS_BORINGSSL
SSL_SESSION *h_session_with_hostname(SSL_SESSION *s, const char *hostname)
{
    SSL_SESSION *copy = SSL_SESSION_dup(s);
    SSL_SESSION_set1_hostname(copy, hostname);
    return copy;
}
#endif

SSL_SESSION *h_session_copy(SSL_SESSION *s)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    SSL_SESSION *copy;
    int n = i2d_SSL_SESSION(s, &der);
    if (n <= 0)
        return NULL;
    p = der;
    copy = d2i_SSL_SESSION(NULL, &p, n);
    OPENSSL_free(der);
    return copy;
}

snicache_config *h_config(const char **names, SSL_CTX **ctxs, int n)
{
    return h_config_flags(names, ctxs, NULL, n);
}

snicache_config *h_config_flags(const char **names, SSL_CTX **ctxs, const uint32_t *vhost_flags, int n)
{
    snicache_ssl_api api;
    snicache_config *config = NULL;
    int i;
    snicache_ssl_api_init(&api);
    CHECK_OK(snicache_config_new(&api, &config));
    for (i = 0; i < n; i++)
        CHECK_OK(snicache_config_add_vhost(config, names[i], ctxs[i], 0,
                                           (i == 0 ? SNICACHE_VHOST_DEFAULT : 0) | (vhost_flags ? vhost_flags[i] : 0)));
    return config;
}

void h_server_init(struct h_server *s, const char **names, const uint32_t *vhost_flags, int n, unsigned flags)
{
    int i;
    memset(s, 0, sizeof *s);
    CHECK(n <= H_VHOSTS_MAX);
    s->n = n < H_VHOSTS_MAX ? n : H_VHOSTS_MAX;
    for (i = 0; i < s->n; i++)
        s->ctxs[i] = h_server_ctx(names[i]);
    s->listener = h_server_ctx("listener");
    if (flags & H_NO_TICKET) {
        SSL_CTX_set_options(s->listener, SSL_OP_NO_TICKET);
        for (i = 0; i < s->n; i++)
            SSL_CTX_set_options(s->ctxs[i], SSL_OP_NO_TICKET);
    }
    s->config = h_config_flags(names, s->ctxs, vhost_flags, s->n);
}

const snicache_cache *h_server_start(struct h_server *s, uint32_t attach_flags)
{
    CHECK_OK(snicache_cache_new(s->config, &s->cache));
    if (s->cache != NULL)
        CHECK_OK(snicache_cache_attach(s->cache, s->listener, attach_flags));
    return s->cache;
}

const snicache_cache *h_server_stateful(struct h_server *s, const char **names, int n, const char *store)
{
    h_server_init(s, names, NULL, n, H_NO_TICKET);
    CHECK_OK(snicache_config_set_store(s->config, store));
    return h_server_start(s, 0);
}

void h_server_drop_config(struct h_server *s)
{
    snicache_config_free(s->config);
    s->config = NULL;
}

void h_server_free(struct h_server *s)
{
    int i;
    snicache_cache_free(s->cache);
    snicache_config_free(s->config);
    SSL_CTX_free(s->listener);
    for (i = 0; i < s->n; i++)
        SSL_CTX_free(s->ctxs[i]);
    memset(s, 0, sizeof *s);
}

#ifndef OPENSSL_IS_BORINGSSL
struct h_result h_connect_forged(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o, SSL_SESSION *s,
                                 const char *sni)
{
    struct h_opts forged_o = *o;
    struct h_result r;
    forged_o.offer = h_session_with_hostname(s, sni);
    forged_o.sni = sni;
    r = h_connect(listener, client, &forged_o);
    SSL_SESSION_free(forged_o.offer);
    return r;
}
#endif

struct h_result h_connect_copy(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o, SSL_SESSION *s)
{
    struct h_opts copy_o = *o;
    struct h_result r;
    copy_o.offer = h_session_copy(s);
    r = h_connect(listener, client, &copy_o);
    SSL_SESSION_free(copy_o.offer);
    return r;
}

void h_fork(int n, void (*fn)(int w), pid_t *pids)
{
    int w;
    for (w = 0; w < n; w++) {
        fflush(stdout);
        pids[w] = fork();
        if (pids[w] == 0) {
            fn(w);
            _exit(h_failures ? 1 : 0);
        }
    }
}

void h_age(void (*setup)(int i, int version, int stateless), const struct timespec *wait, void (*check)(int i))
{
    int i;
    for (i = 0; i < H_MODES; i++)
        setup(i, i < 2 ? TLS1_2_VERSION : TLS1_3_VERSION, i % 2);
    nanosleep(wait, NULL);
    for (i = 0; i < H_MODES; i++)
        check(i);
}

snicache_stats h_stats(const snicache_cache *cache, const char *vhost)
{
    snicache_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(snicache_cache_stats(cache, vhost, &st));
    return st;
}

uint64_t h_refusals(const snicache_cache *cache, const char *vhost, const char *reason)
{
    uint64_t n = 0;
    CHECK_OK(snicache_cache_refusals(cache, vhost, reason, &n));
    return n;
}

int h_done(const char *name)
{
    if (h_failures) {
        fprintf(stderr, "FAIL %s: %d check(s) failed\n", name, h_failures);
        return 1;
    }
    printf("ok %s\n", name);
    return 0;
}
