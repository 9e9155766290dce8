/* snicache_ssl.h: fills snicache's host SSL table from the host's own OpenSSL or BoringSSL.
 *
 * Hand-written companion of the generated snicache.h. Include it in ONE place of the host
 * after the host's <openssl/ssl.h> is reachable, then:
 *
 *     snicache_ssl_api api;
 *     snicache_ssl_api_init(&api);
 *     snicache_config_new(&api, &config);
 *
 * Every function here is static: the table points at code compiled with the host's headers
 * and linked against the host's library, so libsnicache itself links no SSL library and one
 * build serves OpenSSL >= 1.1.1, OpenSSL 3.x and BoringSSL hosts, linked statically or not.
 * The trampolines below are the callbacks snicache_cache_attach() installs; they only adapt
 * types and constants and call the snicache_on_* functions. */
#ifndef SNICACHE_SSL_H
#define SNICACHE_SSL_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#ifndef OPENSSL_IS_BORINGSSL
#include <openssl/evp.h>
#include <openssl/hmac.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#include <openssl/params.h>
#endif
#endif

#include "snicache.h"

#if !defined(OPENSSL_IS_BORINGSSL) && OPENSSL_VERSION_NUMBER < 0x10101000L
#error "snicache needs OpenSSL 1.1.1 or newer, or BoringSSL"
#endif

static void snicache_ssl__free_conn(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    snicache_hook_free_conn(ptr);
}

static void snicache_ssl__free_cache(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    snicache_hook_release_cache(ptr);
}

static int snicache_ssl__ssl_ex_index_new(void)
{
    return SSL_get_ex_new_index(0, NULL, NULL, NULL, snicache_ssl__free_conn);
}

static int snicache_ssl__ctx_ex_index_new(void)
{
    return SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, snicache_ssl__free_cache);
}

static void *snicache_ssl__ssl_get_ex_data(const void *ssl, int idx)
{
    return SSL_get_ex_data((const SSL *)ssl, idx);
}

static int snicache_ssl__ssl_set_ex_data(void *ssl, int idx, void *data)
{
    return SSL_set_ex_data((SSL *)ssl, idx, data);
}

static void *snicache_ssl__ctx_get_ex_data(const void *ctx, int idx)
{
    return SSL_CTX_get_ex_data((const SSL_CTX *)ctx, idx);
}

static int snicache_ssl__ctx_set_ex_data(void *ctx, int idx, void *data)
{
    return SSL_CTX_set_ex_data((SSL_CTX *)ctx, idx, data);
}

static void *snicache_ssl__ssl_get_ctx(const void *ssl)
{
    return SSL_get_SSL_CTX((const SSL *)ssl);
}

static void *snicache_ssl__ssl_set_ctx(void *ssl, void *ctx)
{
    return SSL_set_SSL_CTX((SSL *)ssl, (SSL_CTX *)ctx);
}

static int snicache_ssl__client_hello_ext(void *ssl, const void *hello, unsigned int type,
                                          const uint8_t **out, size_t *out_len)
{
#ifdef OPENSSL_IS_BORINGSSL
    (void)ssl;
    return hello != NULL
        && SSL_early_callback_ctx_extension_get((const SSL_CLIENT_HELLO *)hello, (uint16_t)type, out, out_len);
#else
    (void)hello;
    return SSL_client_hello_get0_ext((SSL *)ssl, type, out, out_len);
#endif
}

static size_t snicache_ssl__client_hello_session_id(void *ssl, const void *hello, const uint8_t **out)
{
#ifdef OPENSSL_IS_BORINGSSL
    const SSL_CLIENT_HELLO *h = (const SSL_CLIENT_HELLO *)hello;
    (void)ssl;
    if (h == NULL)
        return 0;
    *out = h->session_id;
    return h->session_id_len;
#else
    const unsigned char *id = NULL;
    size_t n;
    (void)hello;
    n = SSL_client_hello_get0_session_id((SSL *)ssl, &id);
    *out = id;
    return n;
#endif
}

static int snicache_ssl__ssl_version(const void *ssl)
{
    return SSL_version((const SSL *)ssl);
}

static const char *snicache_ssl__ssl_servername(const void *ssl)
{
    return SSL_get_servername((const SSL *)ssl, TLSEXT_NAMETYPE_host_name);
}

static int snicache_ssl__ssl_extms(void *ssl)
{
#ifdef SSL_OP_NO_EXTENDED_MASTER_SECRET
    if (SSL_get_options((SSL *)ssl) & SSL_OP_NO_EXTENDED_MASTER_SECRET)
        return 0;
#endif
    /* -1 during the handshake (OpenSSL): snicache then uses what the ClientHello offered,
     * which the server accepts whenever it has not disabled extended master secret. */
    return SSL_get_extms_support((SSL *)ssl);
}

static int snicache_ssl__ssl_tickets_enabled(const void *ssl)
{
    return (SSL_get_options((const SSL *)ssl) & SSL_OP_NO_TICKET) == 0;
}

static void *snicache_ssl__ssl_session(const void *ssl)
{
    return SSL_get_session((const SSL *)ssl);
}

static int snicache_ssl__ctx_cipher_enabled(const void *ctx, uint16_t id)
{
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers((const SSL_CTX *)ctx);
    int i;
#ifdef OPENSSL_IS_BORINGSSL
    /* TLS 1.3 suites are not in SSL_CTX_get_ciphers. BoringSSL can restrict them
     * (SSL_CTX_set1_tls13_ciphers) but has no way to read a context's list back, and a
     * connection keeps the list it copied from the listener at SSL_new: SSL_set_SSL_CTX to
     * the vhost's context does not bring the vhost's list. So answer "enabled" and leave the
     * suite to BoringSSL, which resumes a TLS 1.3 session only with the suite it negotiates. */
    if (id >= 0x1301 && id <= 0x1303)
        return 1;
#endif
    for (i = 0; ciphers != NULL && i < (int)sk_SSL_CIPHER_num(ciphers); i++) {
        if (SSL_CIPHER_get_protocol_id(sk_SSL_CIPHER_value(ciphers, i)) == id)
            return 1;
    }
    return 0;
}

static long snicache_ssl__ctx_cert_der(void *ctx, uint8_t *buf, size_t cap)
{
    X509 *cert = SSL_CTX_get0_certificate((SSL_CTX *)ctx);
    int n;
    uint8_t *p = buf;
    if (cert == NULL)
        return 0;
    n = i2d_X509(cert, NULL);
    if (n <= 0 || buf == NULL)
        return n;
    if ((size_t)n > cap)
        return -1;
    return i2d_X509(cert, &p);
}

static int snicache_ssl__ctx_verify_mode(const void *ctx)
{
    return SSL_CTX_get_verify_mode((const SSL_CTX *)ctx);
}

static int snicache_ssl__ctx_set_sid_ctx(void *ctx, const uint8_t *sid, unsigned int len)
{
    return SSL_CTX_set_session_id_context((SSL_CTX *)ctx, sid, len);
}

static long snicache_ssl__session_to_der(void *sess, uint8_t *buf, size_t cap)
{
    int n = i2d_SSL_SESSION((SSL_SESSION *)sess, NULL);
    uint8_t *p = buf;
    if (n <= 0 || buf == NULL)
        return n;
    if ((size_t)n > cap)
        return -1;
    return i2d_SSL_SESSION((SSL_SESSION *)sess, &p);
}

static void *snicache_ssl__session_from_der(const uint8_t *der, size_t len)
{
    const uint8_t *p = der;
    if (der == NULL || len == 0 || len > 0x7fffffff)
        return NULL;
    return d2i_SSL_SESSION(NULL, &p, (long)len);
}

static int snicache_ssl__session_up_ref(void *sess)
{
    return SSL_SESSION_up_ref((SSL_SESSION *)sess);
}

static void snicache_ssl__session_free(void *sess)
{
    SSL_SESSION_free((SSL_SESSION *)sess);
}

static const uint8_t *snicache_ssl__session_id(const void *sess, unsigned int *len)
{
    return SSL_SESSION_get_id((const SSL_SESSION *)sess, len);
}

static const uint8_t *snicache_ssl__session_id_context(const void *sess, unsigned int *len)
{
    return SSL_SESSION_get0_id_context((const SSL_SESSION *)sess, len);
}

static uint64_t snicache_ssl__session_time(const void *sess)
{
    return (uint64_t)SSL_SESSION_get_time((const SSL_SESSION *)sess);
}

static int snicache_ssl__session_version(const void *sess)
{
    return SSL_SESSION_get_protocol_version((const SSL_SESSION *)sess);
}

static uint16_t snicache_ssl__session_cipher(const void *sess)
{
    const SSL_CIPHER *c = SSL_SESSION_get0_cipher((const SSL_SESSION *)sess);
    return c == NULL ? 0 : SSL_CIPHER_get_protocol_id(c);
}

static void snicache_ssl__session_alpn(const void *sess, const uint8_t **out, size_t *len)
{
#ifdef OPENSSL_IS_BORINGSSL
    (void)sess;
    *out = NULL;
    *len = 0;
#else
    SSL_SESSION_get0_alpn_selected((const SSL_SESSION *)sess, out, len);
#endif
}

static int snicache_ssl__session_set_appdata(void *sess, const uint8_t *data, size_t len)
{
#ifdef OPENSSL_IS_BORINGSSL
    (void)sess; (void)data; (void)len;
    return 0;
#else
    return SSL_SESSION_set1_ticket_appdata((SSL_SESSION *)sess, data, len);
#endif
}

static int snicache_ssl__session_get_appdata(void *sess, const uint8_t **data, size_t *len)
{
#ifdef OPENSSL_IS_BORINGSSL
    (void)sess; (void)data; (void)len;
    return 0;
#else
    void *p = NULL;
    int ok = SSL_SESSION_get0_ticket_appdata((SSL_SESSION *)sess, &p, len);
    *data = (const uint8_t *)p;
    return ok && p != NULL;
#endif
}

static void *snicache_ssl__pending_session(void)
{
#ifdef OPENSSL_IS_BORINGSSL
    return SSL_magic_pending_session_ptr();
#else
    return NULL;
#endif
}

static int snicache_ssl__ticket_key_init(void *cipher_ctx, void *mac_ctx, const uint8_t *aes, const uint8_t *hmac,
                                         const uint8_t *iv, int enc)
{
#ifdef OPENSSL_IS_BORINGSSL
    (void)cipher_ctx; (void)mac_ctx; (void)aes; (void)hmac; (void)iv; (void)enc;
    return 0; /* BoringSSL hosts use the ticket AEAD method below */
#else
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)hmac, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_CTX_set_params((EVP_MAC_CTX *)mac_ctx, params))
        return 0;
#else
    if (!HMAC_Init_ex((HMAC_CTX *)mac_ctx, hmac, 32, EVP_sha256(), NULL))
        return 0;
#endif
    if (enc)
        return EVP_EncryptInit_ex((EVP_CIPHER_CTX *)cipher_ctx, EVP_aes_256_cbc(), NULL, aes, iv);
    return EVP_DecryptInit_ex((EVP_CIPHER_CTX *)cipher_ctx, EVP_aes_256_cbc(), NULL, aes, iv);
#endif
}

/* ---- Callback trampolines: the host's exact callback types, calling snicache_on_*. ---- */

#ifdef OPENSSL_IS_BORINGSSL
static enum ssl_select_cert_result_t snicache_ssl__select_cert(const SSL_CLIENT_HELLO *hello)
{
    int alert = 0;
    int r = snicache_on_client_hello(hello->ssl, hello, &alert, NULL);
    if (r == SNICACHE_CLIENT_HELLO_RETRY)
        return ssl_select_cert_retry;
    if (r == 1)
        return ssl_select_cert_success;
    /* BoringSSL answers ssl_select_cert_error with handshake_failure; sending snicache's alert
     * (illegal_parameter, unrecognized_name) first puts that one on the wire instead. */
    SSL_send_fatal_alert(hello->ssl, (uint8_t)alert);
    return ssl_select_cert_error;
}

/* BoringSSL runs no callback on the second ClientHello (after a HelloRetryRequest); its message
 * callback sees it, so snicache checks its server_name there. The fatal alert sent here also
 * makes the handshake fail at its next write (the ServerHello). */
static void snicache_ssl__msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
                              void *arg)
{
    const uint8_t *msg = (const uint8_t *)buf;
    SSL_CLIENT_HELLO hello;
    int alert = 0;
    (void)version; (void)arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 4 || msg[0] != SSL3_MT_CLIENT_HELLO)
        return;
    if (!SSL_parse_client_hello(ssl, &hello, msg + 4, len - 4))
        return; /* BoringSSL refuses it itself */
    if (!snicache_on_client_hello_again(ssl, &hello, &alert))
        SSL_send_fatal_alert(ssl, (uint8_t)alert);
}
#else
static int snicache_ssl__client_hello(SSL *ssl, int *alert, void *arg)
{
    /* RETRY: asynchronous lookups are fetching the offered session; the handshake returns
     * SSL_ERROR_WANT_CLIENT_HELLO_CB until the host drives it again after the ready callback. */
    int r = snicache_on_client_hello(ssl, NULL, alert, arg);
    if (r == SNICACHE_CLIENT_HELLO_RETRY)
        return SSL_CLIENT_HELLO_RETRY;
    return r == 1 ? SSL_CLIENT_HELLO_SUCCESS : SSL_CLIENT_HELLO_ERROR;
}

/* A ticket's identity for 0-RTT at most once: its session's resumption secret. */
static size_t snicache_ssl__session_secret(const SSL_SESSION *sess, unsigned char *buf, size_t cap)
{
    return sess == NULL ? 0 : SSL_SESSION_get_master_key(sess, buf, cap);
}

static int snicache_ssl__ticket_generate(SSL *ssl, void *arg)
{
    unsigned char secret[SSL_MAX_MASTER_KEY_LENGTH];
    size_t n = snicache_ssl__session_secret(SSL_get0_session(ssl), secret, sizeof(secret));
    snicache_on_ticket_issued(ssl, secret, n);
    OPENSSL_cleanse(secret, sizeof(secret));
    return snicache_on_ticket_generate(ssl, arg);
}

static int snicache_ssl__allow_early_data(SSL *ssl, void *arg)
{
    unsigned char secret[SSL_MAX_MASTER_KEY_LENGTH];
    size_t n = snicache_ssl__session_secret(SSL_get0_session(ssl), secret, sizeof(secret));
    int ok = snicache_on_allow_early_data(ssl, secret, n);
    (void)arg;
    OPENSSL_cleanse(secret, sizeof(secret));
    return ok;
}

static SSL_TICKET_RETURN snicache_ssl__ticket_decrypt(SSL *ssl, SSL_SESSION *sess, const unsigned char *key_name,
                                                      size_t key_name_len, SSL_TICKET_STATUS status, void *arg)
{
    int r;
    (void)key_name; (void)key_name_len;
    switch (status) {
    case SSL_TICKET_SUCCESS:
        /* 2: TLS 1.3, where every resumption gets a new ticket (USE alone sends none). */
        r = snicache_on_ticket_decrypt(ssl, sess, 1, arg);
        return r == 2 ? SSL_TICKET_RETURN_USE_RENEW : r ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_SUCCESS_RENEW:
        return snicache_on_ticket_decrypt(ssl, sess, 1, arg) ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
        return SSL_TICKET_RETURN_ABORT;
    case SSL_TICKET_NO_DECRYPT: /* unknown key, or failed authentication */
        snicache_on_ticket_decrypt(ssl, sess, -1, arg);
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    default: /* SSL_TICKET_EMPTY: a full handshake and a new ticket */
        snicache_on_ticket_decrypt(ssl, sess, 0, arg);
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}
#endif

#ifdef OPENSSL_IS_BORINGSSL
static size_t snicache_ssl__ticket_overhead(SSL *ssl)
{
    return snicache_on_ticket_overhead(ssl);
}

static int snicache_ssl__ticket_seal(SSL *ssl, uint8_t *out, size_t *out_len, size_t max_out, const uint8_t *in,
                                     size_t in_len)
{
    return snicache_on_ticket_seal(ssl, out, out_len, max_out, in, in_len);
}

static enum ssl_ticket_aead_result_t snicache_ssl__ticket_open(SSL *ssl, uint8_t *out, size_t *out_len,
                                                               size_t max_out, const uint8_t *in, size_t in_len)
{
    int r = snicache_on_ticket_open(ssl, out, out_len, max_out, in, in_len);
    if (r == SNICACHE_TICKET_OPEN_NO_EARLY_DATA) {
        /* resume, but this ticket's early data was already accepted once (a replay): BoringSSL
         * reads the flag after opening the ticket and rejects the early data (1-RTT) */
        SSL_set_early_data_enabled(ssl, 0);
        return ssl_ticket_aead_success;
    }
    return r == 1 ? ssl_ticket_aead_success : r == 0 ? ssl_ticket_aead_ignore_ticket : ssl_ticket_aead_error;
}

static const SSL_TICKET_AEAD_METHOD snicache_ssl__ticket_aead = {
    snicache_ssl__ticket_overhead,
    snicache_ssl__ticket_seal,
    snicache_ssl__ticket_open,
};
#elif OPENSSL_VERSION_NUMBER >= 0x30000000L
static int snicache_ssl__ticket_key(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                                    EVP_MAC_CTX *hctx, int enc)
{
    return snicache_on_ticket_key(ssl, key_name, iv, cctx, hctx, enc);
}
#else
static int snicache_ssl__ticket_key(SSL *ssl, unsigned char *key_name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                                    HMAC_CTX *hctx, int enc)
{
    return snicache_on_ticket_key(ssl, key_name, iv, cctx, hctx, enc);
}
#endif

static int snicache_ssl__servername(SSL *ssl, int *alert, void *arg)
{
    return snicache_on_servername(ssl, alert, arg);
}

static SSL_SESSION *snicache_ssl__get_session(SSL *ssl, const unsigned char *id, int id_len, int *copy)
{
    return (SSL_SESSION *)snicache_on_get_session(ssl, id, id_len, copy);
}

static int snicache_ssl__new_session(SSL *ssl, SSL_SESSION *sess)
{
    return snicache_on_new_session(ssl, sess);
}

static void snicache_ssl__remove_session(SSL_CTX *ctx, SSL_SESSION *sess)
{
    snicache_on_remove_session(ctx, sess);
}

static void snicache_ssl__info(const SSL *ssl, int where, int ret)
{
    /* Called for every handshake state change; only fatal alerts concern snicache. */
    if ((where & SSL_CB_ALERT) && ((ret >> 8) & 0xff) == SSL3_AL_FATAL)
        snicache_on_info(ssl, where, ret);
}

static int snicache_ssl__ctx_install(void *vctx, uint32_t flags, void *arg)
{
    SSL_CTX *ctx = (SSL_CTX *)vctx;
    if (flags & SNICACHE_INSTALL_CLIENT_HELLO) {
#ifdef OPENSSL_IS_BORINGSSL
        SSL_CTX_set_select_certificate_cb(ctx, snicache_ssl__select_cert);
        SSL_CTX_set_msg_callback(ctx, snicache_ssl__msg);
#else
        SSL_CTX_set_client_hello_cb(ctx, snicache_ssl__client_hello, arg);
#endif
    }
    if (flags & SNICACHE_INSTALL_SESSION_CACHE) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, snicache_ssl__new_session);
        SSL_CTX_sess_set_get_cb(ctx, snicache_ssl__get_session);
        SSL_CTX_sess_set_remove_cb(ctx, snicache_ssl__remove_session);
    }
    if (flags & SNICACHE_INSTALL_SERVERNAME) {
        SSL_CTX_set_tlsext_servername_callback(ctx, snicache_ssl__servername);
        SSL_CTX_set_tlsext_servername_arg(ctx, arg);
    }
    if (flags & SNICACHE_INSTALL_INFO)
        SSL_CTX_set_info_callback(ctx, snicache_ssl__info);
    if (flags & SNICACHE_INSTALL_TICKET_KEYS) {
#ifdef OPENSSL_IS_BORINGSSL
        SSL_CTX_set_ticket_aead_method(ctx, &snicache_ssl__ticket_aead);
#elif OPENSSL_VERSION_NUMBER >= 0x30000000L
        if (!SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, snicache_ssl__ticket_key))
            return 0;
#else
        if (!SSL_CTX_set_tlsext_ticket_key_cb(ctx, snicache_ssl__ticket_key))
            return 0;
#endif
    }
#ifndef OPENSSL_IS_BORINGSSL
    if (flags & SNICACHE_INSTALL_EARLY_DATA)
        SSL_CTX_set_allow_early_data_cb(ctx, snicache_ssl__allow_early_data, arg);
    if ((flags & SNICACHE_INSTALL_TICKET_CHECK)
        && !SSL_CTX_set_session_ticket_cb(ctx, snicache_ssl__ticket_generate, snicache_ssl__ticket_decrypt, arg))
        return 0;
#endif
    return 1;
}

/* Fills *api from the host's SSL library. */
static inline void snicache_ssl_api_init(snicache_ssl_api *api)
{
    api->version = SNICACHE_SSL_API_VERSION;
    api->size = (uint32_t)sizeof(*api);
#ifdef OPENSSL_IS_BORINGSSL
    api->library = SNICACHE_SSL_LIBRARY_BORINGSSL;
#else
    api->library = SNICACHE_SSL_LIBRARY_OPENSSL;
#endif
    api->ssl_ex_index_new = snicache_ssl__ssl_ex_index_new;
    api->ctx_ex_index_new = snicache_ssl__ctx_ex_index_new;
    api->ssl_get_ex_data = snicache_ssl__ssl_get_ex_data;
    api->ssl_set_ex_data = snicache_ssl__ssl_set_ex_data;
    api->ctx_get_ex_data = snicache_ssl__ctx_get_ex_data;
    api->ctx_set_ex_data = snicache_ssl__ctx_set_ex_data;
    api->ssl_get_ctx = snicache_ssl__ssl_get_ctx;
    api->ssl_set_ctx = snicache_ssl__ssl_set_ctx;
    api->client_hello_ext = snicache_ssl__client_hello_ext;
    api->client_hello_session_id = snicache_ssl__client_hello_session_id;
    api->ssl_version = snicache_ssl__ssl_version;
    api->ssl_servername = snicache_ssl__ssl_servername;
    api->ssl_extms = snicache_ssl__ssl_extms;
    api->ssl_tickets_enabled = snicache_ssl__ssl_tickets_enabled;
    api->ssl_session = snicache_ssl__ssl_session;
    api->ctx_cipher_enabled = snicache_ssl__ctx_cipher_enabled;
    api->ctx_cert_der = snicache_ssl__ctx_cert_der;
    api->ctx_verify_mode = snicache_ssl__ctx_verify_mode;
    api->ctx_set_sid_ctx = snicache_ssl__ctx_set_sid_ctx;
    api->ctx_install = snicache_ssl__ctx_install;
    api->session_to_der = snicache_ssl__session_to_der;
    api->session_from_der = snicache_ssl__session_from_der;
    api->session_up_ref = snicache_ssl__session_up_ref;
    api->session_free = snicache_ssl__session_free;
    api->session_id = snicache_ssl__session_id;
    api->session_id_context = snicache_ssl__session_id_context;
    api->session_time = snicache_ssl__session_time;
    api->session_version = snicache_ssl__session_version;
    api->session_cipher = snicache_ssl__session_cipher;
    api->session_alpn = snicache_ssl__session_alpn;
    api->session_set_appdata = snicache_ssl__session_set_appdata;
    api->session_get_appdata = snicache_ssl__session_get_appdata;
    api->ticket_key_init = snicache_ssl__ticket_key_init;
    api->pending_session = snicache_ssl__pending_session;
}

#endif /* SNICACHE_SSL_H */
