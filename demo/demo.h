/* snicache demo server: what the three source files share.
 *
 *   snicache-demo-server.c  main(): TLS contexts, the snicache cache, signals, clean exit.
 *                           This is the part to read when embedding snicache.
 *   options.c               command-line flags.
 *   loop.c                  the connection loop (epoll, non-blocking OpenSSL) and the tiny
 *                           HTTP responder; nothing snicache-specific except GET / and /stats. */
#ifndef SNICACHE_DEMO_H
#define SNICACHE_DEMO_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "snicache.h"

#define DEMO_MAX_VHOSTS 64

struct demo_vhost {
    char *name;        /* as given: "a.test" or "*.example.com" */
    char *cert;        /* PEM certificate chain file */
    char *key;         /* PEM private key file */
    SSL_CTX *ctx;      /* owned by main(); freed after the cache */
};

struct demo_options {
    const char *listen;          /* "ADDR:PORT" */
    struct demo_vhost vhosts[DEMO_MAX_VHOSTS];
    int n_vhosts;
    const char *default_vhost;   /* NULL: the first --vhost */
    int strict_sni;
    int async_lookup;            /* --async-lookup: pause handshakes while Redis is asked */
    int early_data;              /* --early-data: accept TLS 1.3 0-RTT, at most once per ticket */
    int single_use;              /* --single-use: SNICACHE_VHOST_SINGLE_USE on every vhost */
    const char *store;           /* --store SPEC, for snicache_config_set_store */
    char store_shown[256];       /* the same with any user:password@ hidden, for messages */
    const char *seal_key_file;   /* --seal-key-file PATH, for snicache_config_set_seal_key */
    const char *ticket_secret_file; /* --ticket-secret-file PATH, for snicache_config_set_ticket_keys */
    int threads;
    int workers;                 /* --workers N: prefork processes sharing the listener (0: none) */
    int tls_min, tls_max;        /* TLS1_2_VERSION or TLS1_3_VERSION */
    int tickets;
    unsigned timeout;            /* session lifetime, seconds */
    unsigned io_timeout;         /* seconds a connection may take per handshake or request */
};

/* Most early data a connection reads (its request buffer in loop.c). */
#define DEMO_EARLY_DATA_MAX 8192

/* Parses argv into *o; prints a message and exits 2 on a bad flag, 0 after --help. */
void demo_parse_options(int argc, char **argv, struct demo_options *o);

/* What the connection loop needs from main(). */
struct demo_server {
    int listen_fd;               /* non-blocking, listening */
    int wake_fd;                 /* read end of a pipe: readable once the server must stop */
    SSL_CTX *listener;           /* every connection starts on this context */
    const snicache_cache *cache; /* for GET /stats */
    unsigned io_timeout;
    size_t max_conns_per_worker;
    int async_lookup;            /* connections may pause (SSL_ERROR_WANT_CLIENT_HELLO_CB) */
    int early_data;              /* handshakes read early data first (SSL_read_early_data) */
    atomic_int stop;
};

/* snicache's ready callback (snicache_config_set_async_lookup): the lookup a paused connection
 * waits for has its answer. Runs on a snicache thread; wakes the connection's worker. */
void demo_on_ready(void *userdata, const void *ssl);

/* Runs one worker's event loop until server->stop is set; returns 0, or -1 if it could not start. */
int demo_worker_run(struct demo_server *server, int worker_id);

/* One line to stderr, thread-safe (a single stdio call). */
void demo_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
