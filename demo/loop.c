/* The demo server's connection loop: one epoll event loop per worker thread, non-blocking
 * sockets, non-blocking OpenSSL, and a deliberately small HTTP/1.1 responder.
 *
 * Why this design (and not one blocking connection per thread): a TLS server must keep serving
 * while thousands of clients connect and then say nothing, stop in the middle of a handshake, or
 * trickle bytes. With blocking I/O each such client pins a thread until its receive timeout, so
 * N threads are starved by N idle sockets. Here a worker only ever touches sockets that are ready,
 * an idle connection costs a file descriptor and one `struct conn`, and three bounds keep bad
 * clients from exhausting the server:
 *   - a deadline per phase: the handshake, and then each request (read and answer), must finish
 *     within --io-timeout seconds of its start, however slowly the client trickles bytes;
 *   - a cap on connections per worker (from RLIMIT_NOFILE): at the cap the worker closes its
 *     oldest connection to accept the new one, so idle sockets cannot lock newcomers out;
 *   - requests larger than 8 KiB are answered 431 and closed.
 * Deadlines are start + --io-timeout, the same length for every connection, so a list in order of
 * phase start is also in order of deadline: expiry checks and eviction only look at its head.
 *
 * All workers wait on the one listening socket (EPOLLEXCLUSIVE: one worker is woken per new
 * connection) and each connection stays on the worker that accepted it, so its SSL object is
 * only ever used by one thread, as OpenSSL requires. The snicache cache is shared by all of them
 * (it is thread-safe).
 *
 * With --async-lookup a handshake may pause (SSL_ERROR_WANT_CLIENT_HELLO_CB) while snicache
 * fetches the offered session from Redis. The connection is then parked: out of epoll, still
 * under its deadline. snicache's ready callback (demo_on_ready, on snicache's thread) finds it
 * among the handshaking connections (a mutex-protected table keyed by SSL pointer; a token it
 * does not know is ignored, never dereferenced), queues it on its worker and wakes that worker
 * through the worker's eventfd; the worker drives the handshake again. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

#define REQUEST_MAX DEMO_EARLY_DATA_MAX   /* request line + headers; more is answered 431 */
#define ACCEPT_BATCH 64    /* connections accepted per wake-up before serving others */

enum conn_state {
    ST_HANDSHAKE,  /* SSL_do_handshake until it returns 1 */
    ST_READ,       /* reading one request's header */
    ST_WRITE,      /* writing the response */
    ST_SHUTDOWN,   /* sending close_notify, then close */
};

struct conn {
    struct conn *prev, *next;  /* the worker's list, oldest phase start (= deadline) first */
    long long deadline_ms;
    int fd;
    SSL *ssl;
    enum conn_state state;
    uint32_t events;           /* what epoll waits for on fd */
    int keep_alive;
    char peer[64];
    char in[REQUEST_MAX];
    size_t in_len;
    char *out;                 /* the response being written */
    size_t out_len, out_off;
    /* --async-lookup; all under wait_lock */
    struct worker *worker;
    struct conn *wait_next;    /* next in its wait_table bucket */
    struct conn *ready_next;   /* next in its worker's ready queue */
    int waitable;              /* in wait_table: handshaking */
    int parked;                /* paused; out of epoll until woken */
    int queued;                /* in its worker's ready queue */
    int woken;                 /* woken before it parked: drive it again at once */
    int early_done;            /* --early-data: SSL_read_early_data has finished */
};

struct worker {
    struct demo_server *server;
    int id;
    int epfd;
    struct conn *head, *tail;
    size_t n_conns;
    int ready_fd;              /* eventfd: parked connections were woken (--async-lookup) */
    struct conn *ready;        /* those connections, under wait_lock */
};

/* epoll_event.data.ptr of the two sockets that are not connections. */
static char listen_tag, wake_tag;

void demo_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the worker's connection list ---- */

static void list_unlink(struct worker *w, struct conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        w->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(struct worker *w, struct conn *c)
{
    c->prev = w->tail;
    c->next = NULL;
    if (w->tail != NULL)
        w->tail->next = c;
    else
        w->head = c;
    w->tail = c;
}

/* Starts a phase (handshake, or one request): a fresh deadline, so the connection moves to the
 * end of the list. */
static void start_phase(struct worker *w, struct conn *c, enum conn_state state)
{
    c->state = state;
    c->deadline_ms = now_ms() + (long long)w->server->io_timeout * 1000;
    list_unlink(w, c);
    list_append(w, c);
}

/* ---- connections paused by snicache's asynchronous lookups (--async-lookup) ---- */

#define WAIT_BUCKETS 1024
static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *wait_table[WAIT_BUCKETS];   /* handshaking connections, by SSL pointer */

static size_t wait_bucket(const void *ssl)
{
    return ((uintptr_t)ssl >> 4) % WAIT_BUCKETS;
}

static void wait_add(struct worker *w, struct conn *c)
{
    size_t b = wait_bucket(c->ssl);
    if (!w->server->async_lookup)
        return;
    pthread_mutex_lock(&wait_lock);
    c->worker = w;
    c->wait_next = wait_table[b];
    wait_table[b] = c;
    c->waitable = 1;
    pthread_mutex_unlock(&wait_lock);
}

/* Forgets a connection (its handshake ended, or it is closing): a later wake-up for its SSL
 * pointer finds nothing. */
static void wait_remove(struct worker *w, struct conn *c)
{
    struct conn **p;
    if (!c->waitable)
        return;
    pthread_mutex_lock(&wait_lock);
    for (p = &wait_table[wait_bucket(c->ssl)]; *p != NULL; p = &(*p)->wait_next)
        if (*p == c) {
            *p = c->wait_next;
            break;
        }
    if (c->queued)
        for (p = &w->ready; *p != NULL; p = &(*p)->ready_next)
            if (*p == c) {
                *p = c->ready_next;
                break;
            }
    c->waitable = c->queued = 0;
    pthread_mutex_unlock(&wait_lock);
}

void demo_on_ready(void *userdata, const void *ssl)
{
    struct conn *c;
    uint64_t one = 1;
    (void)userdata;
    pthread_mutex_lock(&wait_lock);
    for (c = wait_table[wait_bucket(ssl)]; c != NULL && (const void *)c->ssl != ssl; c = c->wait_next)
        ;
    if (c != NULL && c->parked && !c->queued) {
        c->queued = 1;
        c->ready_next = c->worker->ready;
        c->worker->ready = c;
        if (write(c->worker->ready_fd, &one, sizeof one) != sizeof one)
            demo_log("worker=%d: cannot wake: %s", c->worker->id, strerror(errno));
    } else if (c != NULL) {
        c->woken = 1;   /* not parked yet: it will try again at once */
    }
    pthread_mutex_unlock(&wait_lock);
}

/* The handshake paused: park the connection (out of epoll) until demo_on_ready queues it.
 * Returns 0 when it was already woken and should be driven again now. */
static int park(struct worker *w, struct conn *c)
{
    int woken;
    pthread_mutex_lock(&wait_lock);
    woken = c->woken;
    c->woken = 0;
    c->parked = !woken;
    pthread_mutex_unlock(&wait_lock);
    /* Logged either way: the handshake did pause, however fast the lookup answered. */
    demo_log("handshake paused worker=%d peer=%s: %s", w->id, c->peer,
             woken ? "the session lookup has already answered" : "waiting for snicache's session lookup");
    if (woken)
        return 0;
    if (c->events != 0)
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->events = 0;
    return 1;
}

static void conn_run(struct worker *w, struct conn *c);

/* The worker's eventfd: drives every connection woken since the last time. */
static void run_ready(struct worker *w)
{
    uint64_t n;
    struct conn *c, *next;
    if (read(w->ready_fd, &n, sizeof n) != sizeof n)
        return;
    pthread_mutex_lock(&wait_lock);
    c = w->ready;
    w->ready = NULL;
    for (next = c; next != NULL; next = next->ready_next)
        next->queued = next->parked = 0;
    pthread_mutex_unlock(&wait_lock);
    for (; c != NULL; c = next) {
        next = c->ready_next;   /* conn_run may free c; it closes no other connection */
        conn_run(w, c);
    }
}

/* ---- opening and closing ---- */

/* Closes a connection. `clean`: the connection ended normally after its handshake, so it gets a
 * close_notify (one non-blocking attempt) before SSL_free. OpenSSL treats an established
 * connection freed without SSL_shutdown as failed and removes its session from the cache, which
 * is right after an error and wrong after a normal close. */
static void conn_close(struct worker *w, struct conn *c, int clean)
{
    if (clean && SSL_is_init_finished(c->ssl) && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
    }
    wait_remove(w, c);    /* before SSL_free: the pointer must not be found afterwards */
    SSL_free(c->ssl);     /* also frees snicache's per-connection state (SSL ex_data) */
    close(c->fd);         /* also removes fd from the epoll set */
    list_unlink(w, c);
    free(c->out);
    free(c);
    w->n_conns--;
}

static void conn_new(struct worker *w, int fd, const struct sockaddr_storage *addr)
{
    struct conn *c = calloc(1, sizeof *c);
    struct epoll_event ev;
    int one = 1;

    if (c == NULL || (c->ssl = SSL_new(w->server->listener)) == NULL || !SSL_set_fd(c->ssl, fd)) {
        demo_log("worker=%d: out of memory for a new connection", w->id);
        if (c != NULL)
            SSL_free(c->ssl);
        free(c);
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL_set_accept_state(c->ssl);
    c->fd = fd;
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(a->sin_port));
    } else if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        char ip[INET6_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(a->sin6_port));
    }
    c->events = EPOLLIN;
    memset(&ev, 0, sizeof ev);
    ev.events = c->events;
    ev.data.ptr = c;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        demo_log("worker=%d: epoll_ctl: %s", w->id, strerror(errno));
        SSL_free(c->ssl);
        free(c);
        close(fd);
        return;
    }
    w->n_conns++;
    list_append(w, c);
    wait_add(w, c);
    start_phase(w, c, ST_HANDSHAKE);
}

static void accept_some(struct worker *w)
{
    int i;
    for (i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd;

        /* At the cap, the oldest connection makes room: idle sockets cannot lock others out. */
        if (w->n_conns >= w->server->max_conns_per_worker && w->head != NULL) {
            demo_log("worker=%d peer=%s: closed to make room (%zu connections)", w->id, w->head->peer,
                     w->n_conns);
            conn_close(w, w->head, w->head->state != ST_HANDSHAKE);
        }
        fd = accept(w->server->listen_fd, (struct sockaddr *)&addr, &len);
        if (fd >= 0) {
            conn_new(w, fd, &addr);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && w->head != NULL) {
            demo_log("worker=%d: out of file descriptors; closing the oldest connection", w->id);
            conn_close(w, w->head, w->head->state != ST_HANDSHAKE);
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            demo_log("worker=%d: accept: %s", w->id, strerror(errno));
        return;
    }
}

/* ---- logging what snicache decided ---- */

/* One line per completed handshake: vhost, SNI, and resumed / full / refused with the reason,
 * as snicache_conn_info_get reports them. */
static void log_handshake(struct worker *w, struct conn *c)
{
    snicache_conn_info info;
    const char *proto = SSL_get_version(c->ssl);
    int reused = SSL_session_reused(c->ssl);

    if (snicache_conn_info_get(c->ssl, &info) != SNICACHE_RESULT_OK) {
        demo_log("handshake worker=%d peer=%s proto=%s vhost=? sni=? result=%s", w->id, c->peer, proto,
                 reused ? "resumed" : "full");
        return;
    }
    demo_log("handshake worker=%d peer=%s proto=%s vhost=%.*s sni=%.*s result=%s%s%.*s%s", w->id, c->peer, proto,
             (int)info.vhost_len, info.vhost, info.sni != NULL ? (int)info.sni_len : 1,
             info.sni != NULL ? info.sni : "-",
             reused ? "resumed" : info.outcome == SNICACHE_OUTCOME_REFUSED ? "refused" : "full",
             info.outcome == SNICACHE_OUTCOME_REFUSED ? " reason=" : "",
             info.reason != NULL ? (int)info.reason_len : 0, info.reason != NULL ? info.reason : "",
             !w->server->early_data ? ""
             : SSL_get_early_data_status(c->ssl) == SSL_EARLY_DATA_ACCEPTED ? " early_data=accepted"
             : SSL_get_early_data_status(c->ssl) == SSL_EARLY_DATA_REJECTED ? " early_data=rejected"
                                                                             : " early_data=none");
}

static void log_handshake_failure(struct worker *w, struct conn *c, const char *why)
{
    snicache_conn_info info;
    int have = snicache_conn_info_get(c->ssl, &info) == SNICACHE_RESULT_OK && info.sni != NULL;
    demo_log("handshake failed worker=%d peer=%s sni=%.*s: %s", w->id, c->peer, have ? (int)info.sni_len : 1,
             have ? info.sni : "-", why);
}

/* ---- the HTTP responder ---- */

static void respond(struct conn *c, int status, const char *reason, const char *type, const char *body,
                    size_t body_len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                     status, reason, type, body_len, c->keep_alive ? "keep-alive" : "close");
    free(c->out);
    c->out = malloc((size_t)n + body_len);
    c->out_off = 0;
    c->out_len = 0;
    if (c->out == NULL)
        return;   /* nothing to write: the connection just closes */
    memcpy(c->out, head, (size_t)n);
    memcpy(c->out + n, body, body_len);
    c->out_len = (size_t)n + body_len;
}

/* GET /: who answered, as snicache sees it. */
static void respond_whoami(struct worker *w, struct conn *c)
{
    snicache_conn_info info;
    char body[640];
    int n;
    if (snicache_conn_info_get(c->ssl, &info) != SNICACHE_RESULT_OK) {
        info.vhost = "?";
        info.vhost_len = 1;
        info.sni = NULL;
    }
    n = snprintf(body, sizeof body, "vhost=%.*s sni=%.*s resumed=%d proto=%s worker=%d pid=%d\n", (int)info.vhost_len,
                 info.vhost, info.sni != NULL ? (int)info.sni_len : 1, info.sni != NULL ? info.sni : "-",
                 SSL_session_reused(c->ssl) ? 1 : 0, SSL_get_version(c->ssl), w->id, (int)getpid());
    respond(c, 200, "OK", "text/plain", body, (size_t)n);
}

/* GET /stats: snicache's counters, totals and per vhost, as JSON. */
static void respond_stats(struct worker *w, struct conn *c)
{
    size_t len = 0, cap;
    char *json = NULL;
    snicache_result r = snicache_cache_stats_json(w->server->cache, NULL, 0, &len);
    /* The counters may grow a digit between the two calls: leave room, and retry if short. */
    while (r == SNICACHE_RESULT_OK) {
        cap = len + 256;
        free(json);
        if ((json = malloc(cap)) == NULL)
            break;
        r = snicache_cache_stats_json(w->server->cache, json, cap, &len);
        if (r == SNICACHE_RESULT_OK) {
            json[len++] = '\n';   /* replaces the NUL: the body is not a C string */
            respond(c, 200, "OK", "application/json", json, len);
            free(json);
            return;
        }
        if (r == SNICACHE_RESULT_BUFFER_TOO_SMALL)
            r = SNICACHE_RESULT_OK;
    }
    free(json);
    respond(c, 500, "Internal Server Error", "text/plain", "stats unavailable\n", 18);
}

/* The end of the request header ("\r\n\r\n" or "\n\n"), or 0 when not all there yet. */
static size_t header_length(const struct conn *c)
{
    size_t i;
    for (i = 1; i < c->in_len; i++) {
        if (c->in[i] != '\n')
            continue;
        if (c->in[i - 1] == '\n')
            return i + 1;
        if (i >= 3 && c->in[i - 1] == '\r' && c->in[i - 2] == '\n')
            return i + 1;
    }
    return 0;
}

/* A "Connection:" header whose value contains "close" (case-insensitive). */
static int wants_close(const char *h, size_t len)
{
    size_t i, j;
    for (i = 0; i + 11 < len; i++) {
        if ((i == 0 || h[i - 1] == '\n') && strncasecmp(h + i, "connection:", 11) == 0) {
            for (j = i + 11; j + 5 <= len && h[j] != '\n'; j++)
                if (strncasecmp(h + j, "close", 5) == 0)
                    return 1;
        }
    }
    return 0;
}

/* Answers the request in c->in (or its absence when the buffer is full); returns the number of
 * bytes of c->in it used. */
static size_t handle_request(struct worker *w, struct conn *c)
{
    size_t hlen = header_length(c);
    char method[8], target[64], version[16];
    const char *line_end;
    int n;

    if (hlen == 0) {
        c->keep_alive = 0;
        respond(c, 431, "Request Header Fields Too Large", "text/plain", "request header too large\n", 25);
        return c->in_len;
    }
    /* Only the request line matters: METHOD SP TARGET SP HTTP/1.x */
    line_end = memchr(c->in, '\n', hlen);
    n = 0;
    if (line_end != NULL && (size_t)(line_end - c->in) < 100) {
        char line[100];
        memcpy(line, c->in, (size_t)(line_end - c->in));
        line[line_end - c->in] = '\0';
        n = sscanf(line, "%7s %63s %15s", method, target, version);
    }
    if (n != 3 || strncmp(version, "HTTP/1.", 7) != 0) {
        c->keep_alive = 0;
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
        return c->in_len;
    }
    c->keep_alive = strcmp(version, "HTTP/1.1") == 0 && !wants_close(c->in, hlen);
    if (strcmp(method, "GET") == 0 && strcmp(target, "/") == 0)
        respond_whoami(w, c);
    else if (strcmp(method, "GET") == 0 && strcmp(target, "/stats") == 0)
        respond_stats(w, c);
    else
        respond(c, 404, "Not Found", "text/plain", "not found\n", 10);
    return hlen;   /* GET has no body; anything after the header is the next request */
}

/* ---- the per-connection state machine ---- */

static void want(struct worker *w, struct conn *c, uint32_t events)
{
    struct epoll_event ev;
    if (c->events == events)
        return;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = c;
    /* events 0: a parked connection, removed from the set */
    epoll_ctl(w->epfd, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* Why an SSL call failed, for the log. */
static const char *ssl_failure(int err)
{
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && ERR_reason_error_string(e) != NULL)
        return ERR_reason_error_string(e);
    if (err == SSL_ERROR_SYSCALL)
        return errno != 0 ? strerror(errno) : "connection closed by the client";
    if (err == SSL_ERROR_ZERO_RETURN)
        return "closed by the client";
    return "SSL error";
}

/* Drives one connection as far as it can go without blocking. */
static void conn_run(struct worker *w, struct conn *c)
{
    for (;;) {
        int rc = 0, err;
        ERR_clear_error();   /* SSL_get_error reads this thread's error queue */
        errno = 0;
        switch (c->state) {
        case ST_HANDSHAKE:
            if (w->server->early_data && !c->early_done) {
                /* Early data (a request sent with the ClientHello) lands in c->in; ST_READ
                 * serves it once the handshake is done. FINISH: none, rejected, or all read. */
                size_t n = 0;
                int r = SSL_read_early_data(c->ssl, c->in + c->in_len, sizeof c->in - c->in_len, &n);
                if (r == SSL_READ_EARLY_DATA_SUCCESS) {
                    c->in_len += n;
                    continue;
                }
                if (r == SSL_READ_EARLY_DATA_FINISH) {
                    c->early_done = 1;
                    continue;
                }
                rc = -1;
                break;
            }
            rc = SSL_do_handshake(c->ssl);
            if (rc == 1) {
                wait_remove(w, c);
                log_handshake(w, c);
                start_phase(w, c, ST_READ);
                continue;
            }
            break;
        case ST_READ:
            if (header_length(c) != 0 || c->in_len == sizeof c->in) {
                size_t used = handle_request(w, c);
                memmove(c->in, c->in + used, c->in_len - used);
                c->in_len -= used;
                c->state = ST_WRITE;
                continue;
            }
            rc = SSL_read(c->ssl, c->in + c->in_len, (int)(sizeof c->in - c->in_len));
            if (rc > 0) {
                c->in_len += (size_t)rc;
                continue;
            }
            break;
        case ST_WRITE:
            if (c->out_off == c->out_len) {
                if (c->keep_alive) {
                    start_phase(w, c, ST_READ);   /* any pipelined request is already in c->in */
                } else {
                    c->state = ST_SHUTDOWN;
                }
                continue;
            }
            rc = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
            if (rc > 0) {
                c->out_off += (size_t)rc;
                continue;
            }
            break;
        case ST_SHUTDOWN:
            /* 0: our close_notify is out; there is no need to wait for the client's. */
            rc = SSL_shutdown(c->ssl);
            if (rc >= 0) {
                conn_close(w, c, 1);
                return;
            }
            break;
        }

        err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_WANT_CLIENT_HELLO_CB) {
            if (park(w, c))
                return;
            continue;
        }
        if (err == SSL_ERROR_WANT_READ) {
            want(w, c, EPOLLIN);
            return;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            want(w, c, EPOLLOUT);
            return;
        }
        if (c->state == ST_HANDSHAKE) {
            log_handshake_failure(w, c, ssl_failure(err));
            conn_close(w, c, 0);
        } else {
            /* The client's close_notify between requests is a normal end; anything else is not. */
            conn_close(w, c, err == SSL_ERROR_ZERO_RETURN && c->in_len == 0);
        }
        return;
    }
}

/* Closes connections whose phase outlived --io-timeout; returns the ms until the next deadline. */
static int expire(struct worker *w)
{
    long long now = now_ms();
    while (w->head != NULL && w->head->deadline_ms <= now) {
        struct conn *c = w->head;
        if (c->state == ST_HANDSHAKE)
            log_handshake_failure(w, c, "timed out");
        /* After the handshake a slow or idle client did nothing wrong: close it cleanly. */
        conn_close(w, c, c->state != ST_HANDSHAKE);
    }
    if (w->head == NULL)
        return 1000;
    return w->head->deadline_ms - now > 1000 ? 1000 : (int)(w->head->deadline_ms - now);
}

int demo_worker_run(struct demo_server *server, int worker_id)
{
    struct worker w;
    struct epoll_event ev, events[128];

    memset(&w, 0, sizeof w);
    w.server = server;
    w.id = worker_id;
    if ((w.epfd = epoll_create1(0)) < 0) {
        demo_log("worker=%d: epoll_create1: %s", worker_id, strerror(errno));
        return -1;
    }
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.ptr = &listen_tag;
    if (epoll_ctl(w.epfd, EPOLL_CTL_ADD, server->listen_fd, &ev) != 0) {
        demo_log("worker=%d: epoll_ctl(listen): %s", worker_id, strerror(errno));
        close(w.epfd);
        return -1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_tag;
    epoll_ctl(w.epfd, EPOLL_CTL_ADD, server->wake_fd, &ev);
    w.ready_fd = -1;
    if (server->async_lookup) {
        if ((w.ready_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
            demo_log("worker=%d: eventfd: %s", worker_id, strerror(errno));
            close(w.epfd);
            return -1;
        }
        ev.data.ptr = &w.ready_fd;
        epoll_ctl(w.epfd, EPOLL_CTL_ADD, w.ready_fd, &ev);
    }

    while (!atomic_load(&server->stop)) {
        int i, accepting = 0, n = epoll_wait(w.epfd, events, (int)(sizeof events / sizeof events[0]), expire(&w));
        for (i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &listen_tag)
                accepting = 1;
            else if (p == &w.ready_fd)
                run_ready(&w);
            else if (p != &wake_tag)
                conn_run(&w, p);
        }
        /* Accept last: making room may close a connection that is still in events[]. */
        if (accepting)
            accept_some(&w);
        if (n < 0 && errno != EINTR) {
            demo_log("worker=%d: epoll_wait: %s", worker_id, strerror(errno));
            break;
        }
    }

    /* Stopping: established connections get a close_notify, so their sessions stay valid. */
    while (w.head != NULL)
        conn_close(&w, w.head, w.head->state != ST_HANDSHAKE);
    /* No connection of this worker is left in wait_table, so no wake-up writes to it now. */
    if (w.ready_fd >= 0)
        close(w.ready_fd);
    close(w.epfd);
    return 0;
}
