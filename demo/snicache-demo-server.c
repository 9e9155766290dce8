/* snicache-demo-server: a TLS server with several virtual hosts whose session resumption is
 * decided by snicache. This file is the embedding reference (docs/embedding.md walks through it):
 *
 *   1. one SSL_CTX per virtual host (certificate, key, protocol settings), plus a listener
 *      SSL_CTX that every connection starts on;
 *   2. a snicache config: the host SSL table (snicache_ssl.h), the store, lifetimes, strict SNI,
 *      a log callback, and the vhosts with their SSL_CTX;
 *   3. snicache_cache_new, then snicache_cache_attach to the listener (which also attaches
 *      every vhost context);
 *   4. serve (loop.c): SSL_new(listener) per connection; snicache switches each connection to its
 *      vhost's SSL_CTX in the ClientHello callback and stores, finds or refuses its sessions;
 *      snicache_conn_info_get says what it decided;
 *   5. stop: snicache_cache_free, then SSL_CTX_free of every context.
 *
 * Everything else (flags, sockets, the event loop, HTTP) is ordinary server code. */
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "demo.h"
/* Include snicache_ssl.h in exactly one file: it defines static functions that fill the table
 * of host SSL functions from this program's own OpenSSL headers. */
#include "snicache_ssl.h"

static void die_ssl(const char *what)
{
    fprintf(stderr, "snicache-demo-server: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void die_snicache(const char *what, snicache_result r)
{
    char msg[256];
    snicache_result_message(r, msg, sizeof msg);
    fprintf(stderr, "snicache-demo-server: %s: %s\n", what, msg);
    exit(1);
}

/* A --store SPEC that snicache refused: a bad flag value, so exit 2 with snicache's reason. */
static void bad_store(const char *spec, snicache_result r)
{
    char msg[256];
    snicache_result_message(r, msg, sizeof msg);
    fprintf(stderr, "snicache-demo-server: --store '%s': %s\n", spec, msg);
    exit(2);
}

/* Reads 32 to 64 secret bytes from `path` for `flag` into key (65 bytes); exits 2 when it cannot. */
static size_t read_secret(const char *flag, const char *path, unsigned char *key)
{
    size_t n;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "snicache-demo-server: %s '%s': %s\n", flag, path, strerror(errno));
        exit(2);
    }
    n = fread(key, 1, 65, f);
    fclose(f);
    if (n < 32 || n > 64) {
        fprintf(stderr, "snicache-demo-server: %s '%s': %zu bytes, 32 to 64 needed\n", flag, path, n);
        exit(2);
    }
    return n;
}

/* --ticket-secret-file: the master secret of the ticket keys, shared by a fleet. */
static void set_ticket_secret(snicache_config *config, const char *path)
{
    unsigned char key[65];
    size_t n = read_secret("--ticket-secret-file", path, key);
    snicache_result r = snicache_config_set_ticket_keys(config, key, n, 0);
    OPENSSL_cleanse(key, sizeof key);
    if (r != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_ticket_keys", r);
}

/* --seal-key-file: the secret (32 to 64 bytes) sealing the sessions a remote store keeps. */
static void set_seal_key(snicache_config *config, const char *path)
{
    unsigned char key[64];
    size_t n;
    struct stat st;
    snicache_result r;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "snicache-demo-server: --seal-key-file '%s': %s\n", path, strerror(errno));
        exit(2);
    }
    /* The file's real size, not what a bounded read returned. */
    if (fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "snicache-demo-server: --seal-key-file '%s': %s\n", path, strerror(errno));
        fclose(f);
        exit(2);
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "snicache-demo-server: --seal-key-file '%s': %s\n", path,
                S_ISDIR(st.st_mode) ? "is a directory, not a key file" : "not a regular file");
        fclose(f);
        exit(2);
    }
    if (st.st_size < 32 || st.st_size > 64) {
        fprintf(stderr, "snicache-demo-server: --seal-key-file '%s': %lld bytes, 32 to 64 needed\n", path,
                (long long)st.st_size);
        fclose(f);
        exit(2);
    }
    n = fread(key, 1, sizeof key, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        fprintf(stderr, "snicache-demo-server: --seal-key-file '%s': read %zu of %lld bytes\n", path, n,
                (long long)st.st_size);
        exit(2);
    }
    r = snicache_config_set_seal_key(config, key, n);
    OPENSSL_cleanse(key, sizeof key);
    if (r != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_seal_key", r);
}

/* ALPN: this server speaks HTTP/1.1 only; select it when offered, else no ALPN at all. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    unsigned int i = 0;
    (void)ssl;
    (void)arg;
    while (i < inlen && i + 1 + in[i] <= inlen) {
        if (in[i] == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1u + in[i];
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* Protocol settings shared by the listener and every vhost context. The connection keeps the
 * listener's options (versions, SSL_OP_NO_TICKET) after snicache switches it to its vhost's
 * context; setting them on both keeps the two views the same. */
static SSL_CTX *server_ctx_new(const struct demo_options *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die_ssl("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, o->tls_min);
    SSL_CTX_set_max_proto_version(ctx, o->tls_max);
    /* SSL_OP_NO_TICKET: TLS 1.2 resumes by session id, TLS 1.3 by stateful session; snicache
     * stores both. With tickets on, snicache checks each ticket's vhost and SNI when it is
     * decrypted (and stores only the TLS 1.2 session ids that are still issued). */
    if (!o->tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* OpenSSL's own lifetime check (and the ticket lifetime hint) agree with snicache's. */
    SSL_CTX_set_timeout(ctx, (long)o->timeout);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    /* --early-data: at most one request's worth (the connection's request buffer).
     * SSL_OP_NO_ANTI_REPLAY (as nginx does): OpenSSL's own anti-replay (stateful tickets, each
     * removed on use) holds only within one process's cache; snicache's single-use entries
     * replace it, across workers and servers, and tickets stay as --tickets says. */
    if (o->early_data) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_ANTI_REPLAY);
        SSL_CTX_set_max_early_data(ctx, DEMO_EARLY_DATA_MAX);
        SSL_CTX_set_recv_max_early_data(ctx, DEMO_EARLY_DATA_MAX);
    }
    return ctx;
}

static SSL_CTX *vhost_ctx_new(const struct demo_options *o, const struct demo_vhost *v)
{
    SSL_CTX *ctx = server_ctx_new(o);
    char what[512];
    snprintf(what, sizeof what, "%s: cannot use certificate '%s' with key '%s'", v->name, v->cert, v->key);
    /* The certificate (and verify mode, if clients were verified) must be final before
     * snicache_cache_new: snicache derives each vhost's session id context from them. */
    if (SSL_CTX_use_certificate_chain_file(ctx, v->cert) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, v->key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "snicache-demo-server: --vhost %s\n", what);
        ERR_print_errors_fp(stderr);
        exit(2);   /* a bad --vhost value */
    }
    return ctx;
}

/* snicache's own log lines (refusals at INFO, store errors at WARN). Called from the worker
 * threads during handshakes, so it must be thread-safe: demo_log is one stdio call. */
static void on_snicache_log(void *userdata, snicache_log_level level, const char *message, size_t len)
{
    static const char *const names[] = {"?", "error", "warn", "info", "debug"};
    (void)userdata;
    demo_log("snicache %s: %.*s", level <= 4 ? names[level] : "?", (int)len, message);
}

/* Builds the cache: a config (copied by snicache_cache_new, freed right after), then the cache,
 * then attaching it to the listener context, which attaches it to every vhost context too. */
static const snicache_cache *cache_new(const struct demo_options *o, SSL_CTX *listener)
{
    snicache_ssl_api api;
    snicache_config *config = NULL;
    const snicache_cache *cache = NULL;
    snicache_result r;
    int i;

    snicache_ssl_api_init(&api);
    if ((r = snicache_config_new(&api, &config)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_new", r);
    /* "memory[:SIZE]", "shm:SIZE" or "redis://HOST:PORT": snicache parses it and says why not. */
    if ((r = snicache_config_set_store(config, o->store)) != SNICACHE_RESULT_OK)
        bad_store(o->store_shown, r);
    if (o->seal_key_file != NULL)
        set_seal_key(config, o->seal_key_file);
    if (o->ticket_secret_file != NULL)
        set_ticket_secret(config, o->ticket_secret_file);
    /* Lookups the local tier cannot answer pause the handshake (SSL_ERROR_WANT_CLIENT_HELLO_CB)
     * instead of asking Redis on the worker thread; demo_on_ready (loop.c) resumes it. */
    if (o->async_lookup && (r = snicache_config_set_async_lookup(config, demo_on_ready, NULL)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_async_lookup", r);
    if ((r = snicache_config_set_timeout(config, o->timeout)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_timeout", r);
    if ((r = snicache_config_set_strict_sni(config, o->strict_sni != 0)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_strict_sni", r);
    /* Each ticket's early data is accepted once (snicache's allow-early-data callback). */
    if ((r = snicache_config_set_early_data(config, o->early_data != 0)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_early_data", r);
    /* The callback and its userdata (none here) must outlive the cache. */
    if ((r = snicache_config_set_log(config, on_snicache_log, NULL, SNICACHE_LOG_LEVEL_INFO)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_config_set_log", r);

    for (i = 0; i < o->n_vhosts; i++) {
        const struct demo_vhost *v = &o->vhosts[i];
        int is_default = o->default_vhost != NULL ? strcmp(v->name, o->default_vhost) == 0 : i == 0;
        /* The SSL_CTX is borrowed: it must outlive the cache (main frees it after the cache).
         * Timeout 0: the config's default lifetime. */
        r = snicache_config_add_vhost(config, v->name, v->ctx, 0,
                                      (is_default ? SNICACHE_VHOST_DEFAULT : 0)
                                          | (o->single_use ? SNICACHE_VHOST_SINGLE_USE : 0));
        if (r != SNICACHE_RESULT_OK) {
            char msg[256];
            snicache_result_message(r, msg, sizeof msg);
            fprintf(stderr, "snicache-demo-server: --vhost %s: %s\n", v->name, msg);
            exit(2);
        }
    }

    if ((r = snicache_cache_new(config, &cache)) != SNICACHE_RESULT_OK) {
        /* A well-formed spec of a store this libsnicache does not have is refused here. */
        if (r == SNICACHE_RESULT_INVALID_PARAMETER && strncmp(o->store, "memory", 6) != 0)
            bad_store(o->store_shown, r);
        die_snicache("snicache_cache_new", r);
    }
    snicache_config_free(config);
    /* 0: every callback (ClientHello, session new/get/remove, servername, info, ticket check).
     * Call before the context serves its first connection, from one thread. */
    if ((r = snicache_cache_attach(cache, listener, 0)) != SNICACHE_RESULT_OK)
        die_snicache("snicache_cache_attach", r);
    return cache;
}

/* A non-blocking listening socket for "ADDR:PORT" ("[v6]:PORT" too); port 0 picks a free one. */
static int listen_on(const char *spec)
{
    char host[256], port[16], shown[300];
    const char *colon = strrchr(spec, ':');
    size_t hlen = (size_t)(colon - spec);
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    int fd, one = 1, rc;

    if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
        spec++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host || strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port) {
        fprintf(stderr, "snicache-demo-server: --listen '%s': expected ADDR:PORT\n", spec);
        exit(2);
    }
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    strcpy(port, colon + 1);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        fprintf(stderr, "snicache-demo-server: --listen '%s:%s': %s (ADDR must be a numeric address)\n", host, port,
                gai_strerror(rc));
        exit(2);
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        fprintf(stderr, "snicache-demo-server: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
        exit(1);
    }
    freeaddrinfo(ai);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0
        && getnameinfo((struct sockaddr *)&bound, blen, host, sizeof host, port, sizeof port,
                       NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        snprintf(shown, sizeof shown, strchr(host, ':') != NULL ? "[%s]:%s" : "%s:%s", host, port);
        demo_log("listening on %s", shown);
    }
    return fd;
}

/* As many file descriptors as allowed: each connection, idle or not, holds one. */
static size_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (size_t)rl.rlim_cur;
}

struct worker_arg {
    struct demo_server *server;
    int id;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    if (demo_worker_run(a->server, a->id) != 0)
        demo_log("worker=%d could not start", a->id);
    return NULL;
}

/* Runs o->threads event-loop threads (ids first_id, first_id + 1, ...) until SIGTERM or SIGINT.
 * Returns 0 after a clean stop. */
static int serve_threads(const struct demo_options *o, struct demo_server *server, sigset_t *stop_signals,
                         int first_id)
{
    struct worker_arg *args = calloc((size_t)o->threads, sizeof *args);
    pthread_t *threads = calloc((size_t)o->threads, sizeof *threads);
    int pipefd[2], sig = 0, i;

    atomic_init(&server->stop, 0);
    if (threads == NULL || args == NULL || pipe(pipefd) != 0) {
        perror("snicache-demo-server");
        return 1;
    }
    server->wake_fd = pipefd[0];
    for (i = 0; i < o->threads; i++) {
        args[i].server = server;
        args[i].id = first_id + i;
        if (pthread_create(&threads[i], NULL, worker_main, &args[i]) != 0) {
            fprintf(stderr, "snicache-demo-server: cannot start thread %d\n", i);
            return 1;
        }
    }
    while (sigwait(stop_signals, &sig) != 0)
        ;
    demo_log("signal %d: stopping", sig);
    atomic_store(&server->stop, 1);
    if (write(pipefd[1], "x", 1) != 1)
        demo_log("cannot wake the workers: %s", strerror(errno));
    for (i = 0; i < o->threads; i++)
        pthread_join(threads[i], NULL);
    close(pipefd[0]);
    close(pipefd[1]);
    free(threads);
    free(args);
    return 0;
}

/* Forks worker process p: its threads get ids p * o->threads + t (GET / and the log show them). */
static pid_t fork_worker(const struct demo_options *o, struct demo_server *server, sigset_t *stop_signals, int p)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* The child inherited the cache, the listening socket and the blocked signal mask. */
        int rc = serve_threads(o, server, stop_signals, p * o->threads);
        fflush(NULL);
        _exit(rc);
    }
    if (pid < 0)
        demo_log("fork: %s", strerror(errno));
    return pid;
}

/* Prefork: forks o->workers processes, re-forks one that dies, and on SIGTERM or SIGINT passes
 * SIGTERM on and waits for them all. Returns 0 after a clean stop. */
static int serve_processes(const struct demo_options *o, struct demo_server *server, sigset_t *stop_signals)
{
    pid_t pids[64];
    sigset_t waitset = *stop_signals;
    int p, sig = 0, status;

    sigaddset(&waitset, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &waitset, NULL);
    fflush(NULL);
    for (p = 0; p < o->workers; p++)
        if ((pids[p] = fork_worker(o, server, stop_signals, p)) < 0)
            return 1;
    for (;;) {
        pid_t dead;
        if (sigwait(&waitset, &sig) != 0)
            continue;
        if (sig != SIGCHLD)
            break;
        while ((dead = waitpid(-1, &status, WNOHANG)) > 0)
            for (p = 0; p < o->workers; p++)
                if (pids[p] == dead) {
                    demo_log("worker process %d (pid %d) died (status %d): forking it again", p, (int)dead, status);
                    pids[p] = fork_worker(o, server, stop_signals, p);
                }
    }
    demo_log("signal %d: stopping %d worker processes", sig, o->workers);
    for (p = 0; p < o->workers; p++)
        if (pids[p] > 0)
            kill(pids[p], SIGTERM);
    for (p = 0; p < o->workers; p++)
        if (pids[p] > 0)
            waitpid(pids[p], &status, 0);
    return 0;
}

int main(int argc, char **argv)
{
    static struct demo_options o;   /* large (vhost table); static keeps it off the stack */
    struct demo_server server;
    struct sigaction sa;
    sigset_t stop_signals;
    int i;
    size_t fd_limit;

    demo_parse_options(argc, argv, &o);

    /* A client that vanishes makes write() fail with EPIPE instead of killing the process. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /* SIGTERM and SIGINT are blocked in every thread (threads inherit the mask) and taken by
     * sigwait() in main, which then stops the workers: no work in a signal handler. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    /* 1. TLS contexts: one per vhost, and the listener every connection starts on. The listener
     * needs no certificate: snicache moves each connection to its vhost's context in the
     * ClientHello callback, before a certificate is chosen. */
    for (i = 0; i < o.n_vhosts; i++)
        o.vhosts[i].ctx = vhost_ctx_new(&o, &o.vhosts[i]);
    memset(&server, 0, sizeof server);
    server.listener = server_ctx_new(&o);

    /* 2 and 3. The snicache cache, attached to the listener and every vhost context. */
    server.cache = cache_new(&o, server.listener);

    fd_limit = raise_fd_limit();
    server.listen_fd = listen_on(o.listen);
    server.io_timeout = o.io_timeout;
    server.async_lookup = o.async_lookup;
    server.early_data = o.early_data;
    server.max_conns_per_worker = (fd_limit > 64 ? fd_limit - 32 : 32) / (size_t)o.threads;
    if (o.workers > 0)
        demo_log("prefork: %d worker processes", o.workers);
    demo_log("serving %d vhost(s) with %d thread(s), store %s, tickets %s, TLS %s..%s, strict SNI %s, async lookup %s",
             o.n_vhosts, o.threads, o.store_shown, o.tickets ? "on" : "off", o.tls_min == TLS1_3_VERSION ? "1.3" : "1.2",
             o.tls_max == TLS1_3_VERSION ? "1.3" : "1.2", o.strict_sni ? "on" : "off", o.async_lookup ? "on" : "off");
    /* 4. Serve: threads in this process, or --workers processes forked now, after the cache
     * exists, so they share it (with shm:SIZE, its sessions and counters too). */
    if (o.workers > 0 ? serve_processes(&o, &server, &stop_signals) != 0
                      : serve_threads(&o, &server, &stop_signals, 0) != 0)
        return 1;

    /* 5. Free everything: the workers freed their SSL objects; then our reference to the cache,
     * then the contexts (each holds a reference to the cache; the last one frees it). */
    snicache_cache_free(server.cache);
    SSL_CTX_free(server.listener);
    for (i = 0; i < o.n_vhosts; i++) {
        SSL_CTX_free(o.vhosts[i].ctx);
        free(o.vhosts[i].name);
        free(o.vhosts[i].cert);
        free(o.vhosts[i].key);
    }
    close(server.listen_fd);
    demo_log("stopped");
    return 0;
}
