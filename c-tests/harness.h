/* In-process TLS handshakes for the c-tests: OpenSSL 3 client and server talking through memory
 * BIOs that the test pumps by hand (so a test can corrupt a record on the way), throwaway
 * certificates made at run time, and a snicache cache attached to a listener context. */
#ifndef SNICACHE_HARNESS_H
#define SNICACHE_HARNESS_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>

#include "snicache.h"
#include "snicache_ssl.h"

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
            h_failures++;                                                               \
        }                                                                               \
    } while (0)

#define CHECK_OK(expr)                                                                   \
    do {                                                                                 \
        snicache_result r_ = (expr);                                                     \
        if (r_ != SNICACHE_RESULT_OK) {                                                  \
            char m_[256];                                                                \
            snicache_result_message(r_, m_, sizeof m_);                                  \
            fprintf(stderr, "%s:%d: %s -> %u (%s)\n", __FILE__, __LINE__, #expr, r_, m_); \
            h_failures++;                                                                \
        }                                                                                \
    } while (0)

extern int h_failures;

/* A server context with a fresh self-signed certificate for `cn`, TLS 1.2..1.3. */
SSL_CTX *h_server_ctx(const char *cn);
/* A client context that verifies nothing and keeps no session cache of its own. */
SSL_CTX *h_client_ctx(void);

struct h_conn {
    SSL *client;
    SSL *server;
};

struct h_opts {
    const char *sni;          /* NULL: no SNI */
    SSL_SESSION *offer;       /* session the client offers, or NULL */
    int version;              /* TLS1_2_VERSION or TLS1_3_VERSION (0: library default) */
    int corrupt_after;        /* 1: after the handshake, corrupt a client record (fatal alert) */
    uint64_t client_options;  /* SSL_set_options on the client (e.g. SSL_OP_NO_EXTENDED_MASTER_SECRET) */
    const char *cipher_list;  /* client TLS <= 1.2 cipher list, or NULL */
    const char *ciphersuites; /* client TLS 1.3 suites, or NULL */
};

struct h_result {
    int ok;                   /* the handshake completed */
    int resumed;              /* the server resumed a session */
    int alert;                /* the alert the server sent, if any (-1 none) */
    SSL_SESSION *session;     /* the client's session after the handshake (caller frees) */
    snicache_conn_info info;  /* snicache's decision for the server connection */
    int have_info;
    char vhost[256];          /* copied from info */
    char reason[64];
    const char *cipher;       /* the negotiated cipher's OpenSSL name (static), or NULL */
};

/* One full connection: handshake, one byte of application data each way (so TLS 1.3 tickets
 * arrive), optional record corruption, then a clean shutdown. */
struct h_result h_connect(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o);

/* A session the client would not offer under another name on its own: a copy with its
 * hostname rewritten, as an attacker's client would send it. */
SSL_SESSION *h_session_with_hostname(SSL_SESSION *s, const char *hostname);

/* A copy made through i2d/d2i: it drops the in-memory not_resumable mark OpenSSL sets on a
 * session after a fatal alert, so the client offers it again as an attacker's would. */
SSL_SESSION *h_session_copy(SSL_SESSION *s);

/* A config with `n` vhosts: names[i] served by ctxs[i]; vhost 0 is the default. */
snicache_config *h_config(const char **names, SSL_CTX **ctxs, int n);

/* A listener with two vhosts (names[0] the default), all with SSL_OP_NO_TICKET (session ids in
 * TLS 1.2, stateful sessions in TLS 1.3), a client context, and a cache on the store `store`
 * (e.g. "shm:10m") attached to the listener. Returns the cache (NULL when it could not be made);
 * the other pieces come back through the pointers. h_stateful_free releases them all. */
const snicache_cache *h_stateful_new(const char **names, const char *store, SSL_CTX **ctxs, SSL_CTX **listener,
                                     SSL_CTX **client, snicache_config **config);
void h_stateful_free(const snicache_cache *cache, snicache_config *config, SSL_CTX *client, SSL_CTX *listener,
                     SSL_CTX **ctxs);

/* Stats helpers. */
snicache_stats h_stats(const snicache_cache *cache, const char *vhost);
uint64_t h_refusals(const snicache_cache *cache, const char *vhost, const char *reason);

int h_done(const char *name);

#endif
