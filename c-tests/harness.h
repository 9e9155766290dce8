/* In-process TLS handshakes for the c-tests (and tests/boringssl/header_check.c, on BoringSSL):
 * an OpenSSL 3 client and server talking through memory BIOs that the test pumps by hand (so a
 * test can corrupt a record on the way), throwaway certificates made at run time, and a snicache
 * cache attached to a listener context. */
#ifndef SNICACHE_HARNESS_H
#define SNICACHE_HARNESS_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

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
    const char *sni;           /* NULL: no SNI */
    SSL_SESSION *offer;        /* session the client offers, or NULL */
    int version;               /* TLS1_2_VERSION or TLS1_3_VERSION (0: library default) */
    int corrupt_after;         /* 1: after the handshake, corrupt a client record (the server's fatal alert) */
    int corrupt_server_after;  /* 1: after the handshake, corrupt a server record (the client's fatal alert) */
    int corrupt_server_flight; /* 1: corrupt the server's first flight (a resumption's ends with its Finished:
                                * the client sends a fatal alert in place of its own Finished) */
    uint64_t client_options;   /* SSL_set_options on the client (e.g. SSL_OP_NO_EXTENDED_MASTER_SECRET) */
    const char *cipher_list;   /* client TLS <= 1.2 cipher list, or NULL */
    const char *ciphersuites;  /* client TLS 1.3 suites, or NULL */
};

struct h_result {
    int ok;                   /* the handshake completed */
    int resumed;              /* the server resumed a session */
    int alert;                /* the alert the server sent, if any (-1 none) */
    int server_alerted;       /* the server's connection ended with a fatal alert, sent or received */
    SSL_SESSION *session;     /* the client's session after the handshake (caller frees) */
    snicache_conn_info info;  /* snicache's decision for the server connection */
    int have_info;
    char vhost[256];          /* copied from info */
    char reason[64];
    const char *cipher;       /* the negotiated cipher's OpenSSL name (static), or NULL */
};

/* Options for a connection at `version` (0: library default) with SNI `sni` (NULL: none),
 * offering nothing; the rest zero. */
struct h_opts h_opts_for(int version, const char *sni);

/* One full connection: handshake, one byte of application data each way (so TLS 1.3 tickets
 * arrive), optional record corruption, then a clean shutdown. */
struct h_result h_connect(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o);

#ifndef OPENSSL_IS_BORINGSSL
/* A session the client would not offer under another name on its own: a copy with its
 * hostname rewritten, as an attacker's client would send it. */
SSL_SESSION *h_session_with_hostname(SSL_SESSION *s, const char *hostname);
#endif

/* A copy made through i2d/d2i: it drops the in-memory not_resumable mark OpenSSL sets on a
 * session after a fatal alert, so the client offers it again as an attacker's would. */
SSL_SESSION *h_session_copy(SSL_SESSION *s);

/* A config with `n` vhosts: names[i] served by ctxs[i]; vhost 0 is the default. `vhost_flags`,
 * when not NULL, adds vhost_flags[i] (SNICACHE_VHOST_*) to vhost i's flags. */
snicache_config *h_config(const char **names, SSL_CTX **ctxs, int n);
snicache_config *h_config_flags(const char **names, SSL_CTX **ctxs, const uint32_t *vhost_flags, int n);

/* A listener and its vhosts, as a test server sets them up: ctxs[i] (certificate CN names[i])
 * serves names[i] in `config`, vhost 0 the default. Set the store, rules, ... on `config`, then
 * h_server_start makes the cache and attaches it to the listener. h_server_free releases all. */
#define H_VHOSTS_MAX 8
#define H_NO_TICKET 1u /* SSL_OP_NO_TICKET on the listener and every vhost (ids, stateful TLS 1.3) */
struct h_server {
    int n;
    SSL_CTX *ctxs[H_VHOSTS_MAX];
    SSL_CTX *listener;
    snicache_config *config; /* NULL once freed (h_server_drop_config) */
    const snicache_cache *cache;
};
void h_server_init(struct h_server *s, const char **names, const uint32_t *vhost_flags, int n, unsigned flags);
/* snicache_cache_new + snicache_cache_attach (attach_flags) on the listener, each checked. */
const snicache_cache *h_server_start(struct h_server *s, uint32_t attach_flags);
/* Stateful sessions only (H_NO_TICKET) on the store `store` (e.g. "shm:10m"), started. */
const snicache_cache *h_server_stateful(struct h_server *s, const char **names, int n, const char *store);
/* The cache keeps what it needs: a test may free the config once the cache is made. */
void h_server_drop_config(struct h_server *s);
void h_server_free(struct h_server *s);

#ifndef OPENSSL_IS_BORINGSSL
/* h_connect offering a copy of `s` made by h_session_with_hostname(s, sni) under SNI `sni`, as an
 * attacker's client would; `o` gives the rest (its sni and offer are not used). */
struct h_result h_connect_forged(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o, SSL_SESSION *s,
                                 const char *sni);
#endif
/* h_connect offering h_session_copy(s) (dropping OpenSSL's not_resumable mark); `o` gives the
 * rest (its offer is not used). */
struct h_result h_connect_copy(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o, SSL_SESSION *s);

/* The tests whose sessions must age run in four modes, in order: TLS 1.2 then TLS 1.3, each with
 * stateful sessions (SSL_OP_NO_TICKET) then stateless tickets. h_age calls setup(i, version,
 * stateless) for each mode i, sleeps `wait`, then calls check(i) for each. */
#define H_MODES 4
void h_age(void (*setup)(int i, int version, int stateless), const struct timespec *wait, void (*check)(int i));

/* Forks `n` processes, stdout flushed first (nothing buffered is written twice): process w runs
 * fn(w), then exits 1 if a check failed in it, else 0. pids[w] is its pid. */
void h_fork(int n, void (*fn)(int w), pid_t *pids);

/* Stats helpers. */
snicache_stats h_stats(const snicache_cache *cache, const char *vhost);
uint64_t h_refusals(const snicache_cache *cache, const char *vhost, const char *reason);

int h_done(const char *name);

#endif
